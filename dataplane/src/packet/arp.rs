//! The ARP responder for the pods' gateway address.
//!
//! Pods have no bridge to the node: the dataplane answers ARP for their
//! gateway itself, by turning the request into the reply in place (no
//! allocation, no copy of the frame).

use std::net::Ipv4Addr;

use super::{FrameMeta, ARP_LEN, L3};
use crate::verdict::DropReason;
use crate::wire::arp::{operation, Packet};
use crate::wire::ethernet;

/// Turn an ARP request for `gateway` (an Ethernet/IPv4 ARP request, target
/// protocol address == gateway) into the reply, in place: Ethernet dst = the
/// requester, src = `our_mac`; opcode 2; sender = (our_mac, gateway); target =
/// the requester. Returns the reply's length (the request's ARP part, 42
/// bytes plus any VLAN tag, which is kept). Anything else is refused:
/// malformed ARP → [`DropReason::MalformedArp`], a request for another
/// address, a reply, or a gratuitous ARP → [`DropReason::ArpNotForGateway`].
///
/// The requester is the ARP sender hardware address (as Linux answers). A
/// gratuitous ARP is one whose sender and target protocol addresses are
/// equal; an RFC 5227 probe (sender 0.0.0.0) for the gateway is answered, so
/// a pod learns the address is taken.
pub fn answer_gateway(
    frame: &mut [u8],
    meta: &FrameMeta,
    gateway: Ipv4Addr,
    our_mac: [u8; 6],
) -> Result<usize, DropReason> {
    if meta.l3 != L3::Arp {
        return Err(DropReason::MalformedArp);
    }
    let reply_len = meta.l3_offset + ARP_LEN;
    let Some(frame) = frame.get_mut(..reply_len) else {
        return Err(DropReason::MalformedArp);
    };
    let (link, arp) = frame.split_at_mut(meta.l3_offset);
    let Ok(mut eth) = ethernet::Frame::new_checked(link) else {
        return Err(DropReason::MalformedArp);
    };
    let mut arp = Packet::new_unchecked(arp);
    if !arp.is_ethernet_ipv4() {
        return Err(DropReason::MalformedArp);
    }
    let sender_ip = arp.source_protocol_addr();
    let target_ip = arp.target_protocol_addr();
    if arp.operation() != operation::REQUEST || target_ip != gateway || sender_ip == target_ip {
        return Err(DropReason::ArpNotForGateway);
    }
    let requester = arp.source_hardware_addr();
    eth.set_dst_addr(requester);
    eth.set_src_addr(our_mac);
    arp.set_operation(operation::REPLY);
    arp.set_source_hardware_addr(our_mac);
    arp.set_source_protocol_addr(gateway);
    arp.set_target_hardware_addr(requester);
    arp.set_target_protocol_addr(sender_ip);
    Ok(reply_len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::{parse, testframes};
    use etherparse::{ArpOperation, ArpPacketSlice, Ethernet2HeaderSlice};
    use hex_literal::hex;

    // Field offsets inside an Ethernet/IPv4 ARP packet (RFC 826), to
    // damage fixtures with.
    const HTYPE: usize = 0;
    const PTYPE: usize = 2;
    const HLEN: usize = 4;
    const PLEN: usize = 5;
    const TPA: usize = 24;

    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    const OUR_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

    /// A request from 10.1.0.5 (02:00:00:00:00:01) for 10.1.0.1, padded to
    /// the 60-byte Ethernet minimum.
    const REQUEST: [u8; 60] = hex!(
        "ffffffffffff 020000000001 0806"
        "0001 0800 06 04 0001 020000000001 0a010005 000000000000 0a010001"
        "000000000000000000000000000000000000"
    );

    #[test]
    fn answers_request_for_gateway() {
        let mut frame = REQUEST;
        let meta = parse(&frame).unwrap();
        let len = answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).unwrap();
        assert_eq!(len, 42);
        assert_eq!(
            frame[..42],
            hex!(
                "020000000001 02aabbccddee 0806"
                "0001 0800 06 04 0002 02aabbccddee 0a010001 020000000001 0a010005"
            )
        );
        // Read back with etherparse.
        let eth = Ethernet2HeaderSlice::from_slice(&frame[..len]).unwrap();
        assert_eq!(eth.destination(), testframes::POD_MAC);
        let arp = ArpPacketSlice::from_slice(&frame[14..len]).unwrap();
        assert_eq!(arp.operation(), ArpOperation::REPLY);
        assert_eq!(arp.sender_hw_addr(), OUR_MAC);
        assert_eq!(arp.sender_protocol_addr(), GATEWAY.octets());
        assert_eq!(arp.target_hw_addr(), testframes::POD_MAC);
        assert_eq!(arp.target_protocol_addr(), testframes::POD_V4.octets());
    }

    #[test]
    fn keeps_vlan_tag() {
        let mut frame = hex!(
            "ffffffffffff 020000000001 8100 0007 0806"
            "0001 0800 06 04 0001 020000000001 0a010005 000000000000 0a010001"
        );
        let meta = parse(&frame).unwrap();
        assert_eq!(meta.vlan, Some(7));
        let len = answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).unwrap();
        assert_eq!(len, 46);
        assert_eq!(frame[12..18], hex!("8100 0007 0806"));
        assert_eq!(frame[18 + 6..18 + 8], hex!("0002"));
    }

    #[test]
    fn answers_probe_with_zero_target_ip() {
        let mut frame = testframes::arp(1, testframes::POD_MAC, Ipv4Addr::UNSPECIFIED, GATEWAY);
        let meta = parse(&frame).unwrap();
        let len = answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).unwrap();
        assert_eq!(frame[14 + TPA..len], [0, 0, 0, 0]);
    }

    #[test]
    fn refuses_everything_else() {
        let other = testframes::arp(
            1,
            testframes::POD_MAC,
            testframes::POD_V4,
            Ipv4Addr::new(10, 1, 0, 9),
        );
        let reply = testframes::arp(2, testframes::POD_MAC, testframes::POD_V4, GATEWAY);
        let gratuitous = testframes::arp(1, testframes::POD_MAC, GATEWAY, GATEWAY);
        for frame in [other, reply, gratuitous] {
            let mut copy = frame.clone();
            let meta = parse(&frame).unwrap();
            assert_eq!(
                answer_gateway(&mut copy, &meta, GATEWAY, OUR_MAC),
                Err(DropReason::ArpNotForGateway)
            );
            assert_eq!(copy, frame, "refused frames are not modified");
        }
    }

    #[test]
    fn malformed_is_refused() {
        // Not ARP metadata at all.
        let mut udp = testframes::ipv4_udp(1, 2, b"x");
        let meta = parse(&udp).unwrap();
        assert_eq!(
            answer_gateway(&mut udp, &meta, GATEWAY, OUR_MAC),
            Err(DropReason::MalformedArp)
        );
        // Metadata of a whole request, bytes cut short or changed.
        let meta = parse(&REQUEST).unwrap();
        for cut in 0..42 {
            let mut short = REQUEST[..cut].to_vec();
            assert_eq!(
                answer_gateway(&mut short, &meta, GATEWAY, OUR_MAC),
                Err(DropReason::MalformedArp)
            );
        }
        for (offset, value) in [
            (14 + HTYPE + 1, 6u8),
            (14 + PTYPE, 0x86),
            (14 + HLEN, 8),
            (14 + PLEN, 16),
        ] {
            let mut frame = REQUEST;
            frame[offset] = value;
            assert_eq!(
                answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC),
                Err(DropReason::MalformedArp)
            );
        }
    }
}
