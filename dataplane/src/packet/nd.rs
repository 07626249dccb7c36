//! IPv6 neighbour advertisement for the pods' gateway address.
//!
//! The IPv6 twin of [`super::arp`]: a neighbour solicitation (RFC 4861 §4.3)
//! for the gateway is validated as §7.1.1 asks and rewritten in place into
//! the solicited advertisement (§4.4, §7.2.4).

use std::net::Ipv6Addr;

use super::{FrameMeta, IPV6_HEADER_LEN, L3};
use crate::verdict::DropReason;
use crate::wire::icmpv6::{
    self, msg_type, nd_flag, nd_option, NdOption, LINK_LAYER_OPTION_LEN, NEIGHBOR_MESSAGE_LEN,
};
use crate::wire::{ethernet, ip_protocol, ipv6};

const TYPE_NEIGHBOUR_SOLICITATION: u8 = msg_type::NEIGHBOR_SOLICIT;
const TYPE_NEIGHBOUR_ADVERTISEMENT: u8 = msg_type::NEIGHBOR_ADVERT;
/// Type, code, checksum, reserved/flags, target address.
const ND_MESSAGE_LEN: usize = NEIGHBOR_MESSAGE_LEN;
const FLAG_ROUTER: u8 = nd_flag::ROUTER;
const FLAG_SOLICITED: u8 = nd_flag::SOLICITED;
const FLAG_OVERRIDE: u8 = nd_flag::OVERRIDE;
/// The hop limit neighbour discovery messages carry (RFC 4861 §7.1.1).
const ND_HOP_LIMIT: u8 = 255;

/// The all-nodes multicast group and its Ethernet address (RFC 2464 §7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Turn an ICMPv6 neighbour solicitation whose target is `gateway` into a
/// solicited neighbour advertisement (router flag, solicited flag, override
/// flag, target link-layer address option = `our_mac`), in place: Ethernet
/// dst = the soliciter's MAC, src = `our_mac`; IPv6 src = `gateway`, dst =
/// the soliciter's address (or ff02::1 if it was unspecified, i.e. DAD), hop
/// limit 255, ICMPv6 checksum correct. Returns the new frame length.
/// Anything else (other ICMPv6 types, other targets, hop limit != 255,
/// malformed) → [`DropReason::NdNotForGateway`] or
/// [`DropReason::MalformedL4`].
///
/// Details from RFC 4861: the answer to a DAD probe (unspecified source) goes
/// to all nodes, at Ethernet 33:33:00:00:00:01, with the solicited flag clear
/// (§7.2.4). The solicitation is validated as §7.1.1 says (code 0, at least
/// 24 bytes, correct checksum, target not multicast, options of non-zero
/// length within the message, no source link-layer option in a DAD probe
/// and a solicited-node destination for one); a failure is
/// [`DropReason::MalformedL4`]. The advertisement is 86 bytes (plus any
/// VLAN tag); when `frame` is shorter than that (a DAD probe carries no
/// option, so its frame is 8 bytes shorter) the target link-layer option is
/// left out, which §7.2.4 allows for a unicast answer and DAD tolerates.
/// Pass the frame's whole buffer to always get the option.
pub fn answer_gateway(
    frame: &mut [u8],
    meta: &FrameMeta,
    gateway: Ipv6Addr,
    our_mac: [u8; 6],
) -> Result<usize, DropReason> {
    let L3::Ipv6 { src, dst } = meta.l3 else {
        return Err(DropReason::NdNotForGateway);
    };
    if meta.ip_proto != ip_protocol::ICMPV6 || meta.l4_offset != meta.l3_offset + IPV6_HEADER_LEN {
        return Err(DropReason::NdNotForGateway);
    }
    let l3_end = meta.l3_offset + meta.l3_len;
    let Some(message) = frame.get(meta.l4_offset..l3_end) else {
        return Err(DropReason::MalformedL4);
    };
    let Ok(message) = icmpv6::Packet::new_checked(message) else {
        return Err(DropReason::MalformedL4);
    };
    if message.msg_type() != TYPE_NEIGHBOUR_SOLICITATION {
        return Err(DropReason::NdNotForGateway);
    }
    let hop_limit = frame
        .get(meta.l3_offset..)
        .and_then(|ip| ipv6::Packet::new_checked(ip).ok())
        .map_or(0, |ip| ip.hop_limit());
    if hop_limit != ND_HOP_LIMIT {
        return Err(DropReason::NdNotForGateway);
    }
    let target = validate_solicitation(message, src, dst)?;
    if target != gateway {
        return Err(DropReason::NdNotForGateway);
    }
    let dad = src.is_unspecified();
    let (ip_dst, eth_dst, flags) = if dad {
        (ALL_NODES, ALL_NODES_MAC, FLAG_ROUTER | FLAG_OVERRIDE)
    } else {
        (
            src,
            meta.src_mac,
            FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE,
        )
    };
    let full_len = meta.l4_offset + ND_MESSAGE_LEN + LINK_LAYER_OPTION_LEN;
    let message_len = if frame.len() >= full_len {
        ND_MESSAGE_LEN + LINK_LAYER_OPTION_LEN
    } else {
        ND_MESSAGE_LEN
    };
    let reply_len = meta.l4_offset + message_len;
    let Some(reply) = frame.get_mut(..reply_len) else {
        return Err(DropReason::MalformedL4);
    };
    let (link, rest) = reply.split_at_mut(meta.l3_offset);
    let (ip, icmp) = rest.split_at_mut(IPV6_HEADER_LEN);
    let Ok(mut eth) = ethernet::Frame::new_checked(link) else {
        return Err(DropReason::MalformedL4);
    };
    eth.set_dst_addr(eth_dst);
    eth.set_src_addr(our_mac);
    let mut ip = ipv6::Packet::new_unchecked(ip);
    // Version 6, traffic class 0, flow label 0.
    ip.set_version_class_flow(6, 0, 0);
    ip.set_payload_len(message_len as u16);
    ip.set_next_header(ip_protocol::ICMPV6);
    ip.set_hop_limit(ND_HOP_LIMIT);
    ip.set_src_addr(gateway);
    ip.set_dst_addr(ip_dst);
    let mut icmp = icmpv6::Packet::new_unchecked(icmp);
    icmp.set_msg_type(TYPE_NEIGHBOUR_ADVERTISEMENT);
    icmp.set_msg_code(0);
    icmp.set_nd_flags(flags);
    icmp.set_target_addr(gateway);
    // Present only when the buffer had room for it (`message_len`).
    NdOption::new_unchecked(icmp.nd_options_mut())
        .set_link_layer_addr(nd_option::TARGET_LINK_LAYER_ADDR, our_mac);
    icmp.fill_checksum(gateway, ip_dst);
    Ok(reply_len)
}

/// The ICMPv6 checksum of `message` (checksum field zero) between `src` and
/// `dst` (RFC 4443 §2.3: over the IPv6 pseudo-header and the message).
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    icmpv6::Packet::new_unchecked(message).compute_checksum(src, dst)
}

/// RFC 4861 §7.1.1 checks of a solicitation (type already known to be 135).
/// Returns its target.
fn validate_solicitation(
    message: icmpv6::Packet<&[u8]>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Result<Ipv6Addr, DropReason> {
    if message.msg_code() != 0 || message.as_ref().len() < ND_MESSAGE_LEN {
        return Err(DropReason::MalformedL4);
    }
    // Summed with its own checksum field, a correct message gives 0.
    if message.compute_checksum(src, dst) != 0 {
        return Err(DropReason::MalformedL4);
    }
    let target = message.target_addr();
    if target.is_multicast() {
        return Err(DropReason::MalformedL4);
    }
    let mut options = message.nd_options();
    let mut source_link_layer = false;
    while !options.is_empty() {
        let Ok(option) = NdOption::new_checked(options) else {
            return Err(DropReason::MalformedL4);
        };
        source_link_layer |= option.option_type() == nd_option::SOURCE_LINK_LAYER_ADDR;
        options = options.get(option.option_len()..).unwrap_or_default();
    }
    if src.is_unspecified() && (source_link_layer || !is_solicited_node(dst)) {
        return Err(DropReason::MalformedL4);
    }
    Ok(target)
}

/// ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
fn is_solicited_node(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..12] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01] && o[12] == 0xff
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::{parse, testframes};
    use etherparse::{Icmpv6Slice, Icmpv6Type, Ipv6HeaderSlice};
    use hex_literal::hex;

    const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
    const OUR_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

    /// A solicitation from fd00:1::5 (02:00:00:00:00:01) for fd00:1::1, to
    /// ff02::1:ff00:1, with a source link-layer option.
    const SOLICITATION: [u8; 86] = hex!(
        "3333ff000001 020000000001 86dd"
        "60000000 0020 3a ff fd000001000000000000000000000005 ff0200000000000000000001ff000001"
        "87 00 7d93 00000000 fd000001000000000000000000000001 0101020000000001"
    );

    fn check_reply(frame: &[u8], len: usize, ip_dst: Ipv6Addr, eth_dst: [u8; 6], flags: u8) {
        assert_eq!(frame[..6], eth_dst);
        assert_eq!(frame[6..12], OUR_MAC);
        let ip = Ipv6HeaderSlice::from_slice(&frame[14..len]).unwrap();
        assert_eq!(ip.source_addr(), GATEWAY);
        assert_eq!(ip.destination_addr(), ip_dst);
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(usize::from(ip.payload_length()), len - 54);
        let icmp = Icmpv6Slice::from_slice(&frame[54..len]).unwrap();
        // etherparse recomputes the checksum independently.
        assert!(icmp.is_checksum_valid(GATEWAY.octets(), ip_dst.octets()));
        match icmp.icmp_type() {
            Icmpv6Type::NeighborAdvertisement(header) => {
                assert!(header.router);
                assert_eq!(header.solicited, flags & FLAG_SOLICITED != 0);
                assert!(header.r#override);
            }
            other => panic!("not an advertisement: {other:?}"),
        }
        assert_eq!(frame[62..78], GATEWAY.octets());
    }

    #[test]
    fn fixture_checksum_is_valid() {
        // The fixture's checksum was computed by a script; check it two ways.
        let icmp = Icmpv6Slice::from_slice(&SOLICITATION[54..]).unwrap();
        let ip = Ipv6HeaderSlice::from_slice(&SOLICITATION[14..]).unwrap();
        assert!(icmp.is_checksum_valid(ip.source(), ip.destination()));
        assert_eq!(
            icmpv6_checksum(ip.source_addr(), ip.destination_addr(), &SOLICITATION[54..]),
            0
        );
    }

    #[test]
    fn answers_solicitation_for_gateway() {
        let mut frame = SOLICITATION;
        let meta = parse(&frame).unwrap();
        let len = answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).unwrap();
        assert_eq!(len, 86);
        check_reply(
            &frame,
            len,
            testframes::POD_V6,
            testframes::POD_MAC,
            FLAG_SOLICITED,
        );
        assert_eq!(frame[78..86], hex!("0201 02aabbccddee"));
        // The reply parses as a frame of its own.
        let reply = parse(&frame[..len]).unwrap();
        assert_eq!(
            reply.l4.ports().1,
            u16::from(TYPE_NEIGHBOUR_ADVERTISEMENT) << 8
        );
    }

    #[test]
    fn answers_built_solicitation() {
        let mut frame = testframes::neighbour_solicitation(testframes::POD_V6, GATEWAY);
        assert_eq!(frame[..], SOLICITATION[..], "builder and fixture agree");
        let meta = parse(&frame).unwrap();
        assert!(answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).is_ok());
    }

    #[test]
    fn answers_dad_to_all_nodes_without_solicited_flag() {
        let mut frame = testframes::neighbour_solicitation(Ipv6Addr::UNSPECIFIED, GATEWAY);
        assert_eq!(frame.len(), 78);
        let meta = parse(&frame).unwrap();
        let len = answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).unwrap();
        // No room for the option in a 78-byte frame.
        assert_eq!(len, 78);
        check_reply(&frame, len, ALL_NODES, ALL_NODES_MAC, 0);

        // With room in the buffer, the option is there.
        let mut buffer = testframes::neighbour_solicitation(Ipv6Addr::UNSPECIFIED, GATEWAY);
        buffer.resize(200, 0xee);
        let len = answer_gateway(&mut buffer, &meta, GATEWAY, OUR_MAC).unwrap();
        assert_eq!(len, 86);
        check_reply(&buffer, len, ALL_NODES, ALL_NODES_MAC, 0);
        assert_eq!(buffer[78..86], hex!("0201 02aabbccddee"));
    }

    #[test]
    fn refuses_other_targets_types_and_hop_limits() {
        let other_target = testframes::neighbour_solicitation(
            testframes::POD_V6,
            Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 9),
        );
        let echo = testframes::ipv6_icmp_echo(1, 1, b"ping");
        let udp = testframes::ipv6_udp(1, 2, b"x");
        let arp = testframes::arp(
            1,
            testframes::POD_MAC,
            testframes::POD_V4,
            testframes::PEER_V4,
        );
        let mut low_hop = SOLICITATION.to_vec();
        low_hop[21] = 254;
        for frame in [other_target, echo, udp, arp, low_hop] {
            let meta = parse(&frame).unwrap();
            let mut copy = frame.clone();
            assert_eq!(
                answer_gateway(&mut copy, &meta, GATEWAY, OUR_MAC),
                Err(DropReason::NdNotForGateway)
            );
            assert_eq!(copy, frame);
        }
    }

    #[test]
    fn refuses_malformed_solicitations() {
        let meta = parse(&SOLICITATION).unwrap();
        let cases: [(usize, u8); 5] = [
            (55, 1),    // code 1
            (56, 0x00), // checksum wrong
            (79, 0),    // option length 0
            (79, 2),    // option past the end
            (62, 0xff), // target multicast
        ];
        for (offset, value) in cases {
            let mut frame = SOLICITATION;
            frame[offset] = value;
            if offset != 56 {
                // Keep the checksum right so the field under test is what fails.
                frame[56..58].copy_from_slice(&[0, 0]);
                let sum = icmpv6_checksum(
                    testframes::POD_V6,
                    Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap()),
                    &frame[54..],
                );
                frame[56..58].copy_from_slice(&sum.to_be_bytes());
            }
            assert_eq!(
                answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC),
                Err(DropReason::MalformedL4),
                "byte {offset} = {value:#x}"
            );
        }
        // DAD with a source link-layer option.
        let mut dad = SOLICITATION;
        dad[22..38].fill(0);
        dad[56..58].fill(0);
        let sum = icmpv6_checksum(
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::from(<[u8; 16]>::try_from(&dad[38..54]).unwrap()),
            &dad[54..],
        );
        dad[56..58].copy_from_slice(&sum.to_be_bytes());
        let dad_meta = parse(&dad).unwrap();
        assert_eq!(
            answer_gateway(&mut dad, &dad_meta, GATEWAY, OUR_MAC),
            Err(DropReason::MalformedL4)
        );
        // Shorter than a solicitation.
        let mut short = SOLICITATION;
        short[18..20].copy_from_slice(&hex!("0010"));
        let short_meta = parse(&short).unwrap();
        assert_eq!(
            answer_gateway(&mut short, &short_meta, GATEWAY, OUR_MAC),
            Err(DropReason::MalformedL4)
        );
        // Metadata of a whole solicitation, frame cut short: never a panic.
        for cut in 0..86 {
            let mut frame = SOLICITATION[..cut].to_vec();
            assert!(answer_gateway(&mut frame, &meta, GATEWAY, OUR_MAC).is_err());
        }
    }
}
