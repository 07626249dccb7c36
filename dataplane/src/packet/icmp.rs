//! ICMP errors built in place: the offending packet becomes the quote of
//! the error that answers it (RFC 792 / RFC 1812 §4.3.2.3 for IPv4, RFC 4443
//! §2.4 for IPv6), with the new Ethernet, IP and ICMP headers written into
//! the chunk's headroom in front of it. Nothing is copied but the headers.
//!
//! The rules of who never gets an error (RFC 1812 §4.3.2.7, RFC 4443 §2.4
//! (e)): not an ICMP error, not a non-first fragment, not a packet sent to
//! or from a multicast, broadcast or unspecified address.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{FrameMeta, ETH_HEADER_LEN, L3, L4};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{icmpv4, icmpv6, ip_protocol, ipv4, ipv6};

/// An error to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, port unreachable (a Service without
    /// endpoints: the client's connect fails at once, as kube-proxy's
    /// REJECT makes it).
    PortUnreachable,
    /// Destination unreachable, network unreachable (IPv6: no route).
    NetUnreachable,
    /// Destination unreachable, host unreachable (IPv6: address
    /// unreachable): inside the cluster's CIDRs, but nobody's.
    HostUnreachable,
    /// Time exceeded in transit: the TTL or hop limit ran out here
    /// (traceroute's answer).
    TimeExceeded,
    /// Fragmentation needed and DF set (IPv6: packet too big), with the
    /// MTU of the next hop (path MTU discovery's answer).
    TooBig {
        /// The largest packet the next hop takes.
        mtu: u16,
    },
}

impl IcmpError {
    /// (type, code) in ICMPv4.
    fn v4(self) -> (u8, u8) {
        match self {
            IcmpError::PortUnreachable => (3, 3),
            IcmpError::NetUnreachable => (3, 0),
            IcmpError::HostUnreachable => (3, 1),
            IcmpError::TimeExceeded => (11, 0),
            IcmpError::TooBig { .. } => (3, 4),
        }
    }

    /// (type, code) in ICMPv6.
    fn v6(self) -> (u8, u8) {
        match self {
            IcmpError::PortUnreachable => (1, 4),
            IcmpError::NetUnreachable => (1, 0),
            IcmpError::HostUnreachable => (1, 3),
            IcmpError::TimeExceeded => (3, 0),
            IcmpError::TooBig { .. } => (2, 0),
        }
    }

    /// The four bytes after type, code and checksum.
    fn rest(self, v6: bool) -> [u8; 4] {
        match (self, v6) {
            // RFC 1191: the next-hop MTU in the low 16 bits.
            (IcmpError::TooBig { mtu }, false) => {
                let [hi, lo] = mtu.to_be_bytes();
                [0, 0, hi, lo]
            }
            // RFC 4443 §3.2: the MTU as 32 bits.
            (IcmpError::TooBig { mtu }, true) => u32::from(mtu).to_be_bytes(),
            _ => [0; 4],
        }
    }
}

/// Largest IPv4 error datagram (RFC 1812 §4.3.2.3: no more than 576 bytes).
const MAX_V4_ERROR: usize = 576;
/// Largest IPv6 error packet (RFC 4443 §2.4 (c): the minimum MTU, 1280).
const MAX_V6_ERROR: usize = 1280;
/// IPv4 header (no options) + ICMP header.
const V4_HEADERS: usize = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
/// IPv6 header + ICMPv6 header.
const V6_HEADERS: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
/// The DSCP/ECN byte of an error: class selector 6 (internetwork
/// control), as Linux sends its ICMP errors.
const ERROR_DSCP_ECN: u8 = 0xc0;
/// The error's hop limit / TTL.
const TTL: u8 = 64;

/// Whether `meta`'s packet may be answered with an ICMP error.
pub fn may_answer(frame: &[u8], meta: &FrameMeta) -> bool {
    if ethernet::is_multicast(&meta.src_mac) || ethernet::is_multicast(&meta.dst_mac) {
        return false;
    }
    match meta.l3 {
        L3::Arp => false,
        L3::Ipv4 { src, dst } => {
            let offset = frame
                .get(meta.l3_offset..)
                .and_then(|ip| ipv4::Packet::new_checked(ip).ok())
                .map_or(1, |ip| ip.frag_offset());
            // ICMP that the parser could not read (a non-first fragment)
            // or that is not a query is taken for an error.
            let error = meta.ip_proto == ip_protocol::ICMP
                && !matches!(
                    meta.l4,
                    L4::Icmp {
                        msg_type: icmpv4::msg_type::ECHO_REPLY
                            | icmpv4::msg_type::ECHO_REQUEST
                            | icmpv4::msg_type::TIMESTAMP
                            ..=icmpv4::msg_type::ADDRESS_MASK_REPLY,
                        ..
                    }
                );
            offset == 0
                && !error
                && !src.is_multicast()
                && !src.is_broadcast()
                && !src.is_unspecified()
                && !dst.is_multicast()
                && !dst.is_broadcast()
        }
        L3::Ipv6 { src, dst } => {
            // Types below 128 are errors; a packet whose transport the
            // parser could not place (a non-first fragment) is not answered.
            let error = meta.ip_proto == ip_protocol::ICMPV6
                && !matches!(
                    meta.l4,
                    L4::Icmpv6 {
                        msg_type: icmpv6::msg_type::FIRST_INFORMATIONAL..,
                        ..
                    }
                );
            let unanswerable = (meta.is_fragment && meta.l4_offset == 0)
                || error
                || src.is_multicast()
                || src.is_unspecified()
                || dst.is_multicast();
            !unanswerable
        }
    }
}

/// Turn the packet at `chunk[offset..offset + len]` (parsed as `meta`) into
/// `error` from `from` (an address of the same family; the packet's own
/// destination when `None`), addressed back to its sender through the MAC
/// it came from, sent by `our_mac`. Returns the new frame's offset and
/// length, or `None` when the packet may not be answered (see
/// [`may_answer`]) or the chunk has no room in front of it.
pub fn answer_in_place(
    chunk: &mut [u8],
    offset: usize,
    len: usize,
    meta: &FrameMeta,
    error: IcmpError,
    from: Option<std::net::IpAddr>,
    our_mac: [u8; 6],
) -> Option<(usize, usize)> {
    let frame = chunk.get(offset..offset.checked_add(len)?)?;
    if !may_answer(frame, meta) {
        return None;
    }
    let ip_start = offset + meta.l3_offset;
    let ip_len = meta.l3_len.min(len.checked_sub(meta.l3_offset)?);
    let peer_mac = meta.src_mac;
    match meta.l3 {
        L3::Arp => None,
        L3::Ipv4 { src, dst } => {
            let from = match from {
                Some(std::net::IpAddr::V4(a)) => a,
                None => dst,
                Some(_) => return None,
            };
            let quote = ip_len.min(MAX_V4_ERROR - V4_HEADERS);
            let start = ip_start.checked_sub(ETH_HEADER_LEN + V4_HEADERS)?;
            let total = V4_HEADERS + quote;
            let out = chunk.get_mut(start..ip_start + quote)?;
            let (link, rest) = out.split_at_mut(ETH_HEADER_LEN);
            write_ethernet(link, peer_mac, our_mac, EtherType::IPV4);
            let (ip, icmp) = rest.split_at_mut(ipv4::HEADER_LEN);
            write_ipv4(ip, total, from, src);
            let mut icmp = icmpv4::Packet::new_unchecked(icmp);
            let (kind, code) = error.v4();
            icmp.set_msg_type(kind);
            icmp.set_msg_code(code);
            icmp.set_rest_of_header(error.rest(false));
            icmp.fill_checksum();
            Some((start, ETH_HEADER_LEN + total))
        }
        L3::Ipv6 { src, dst } => {
            let from = match from {
                Some(std::net::IpAddr::V6(a)) => a,
                None => dst,
                Some(_) => return None,
            };
            let quote = ip_len.min(MAX_V6_ERROR - V6_HEADERS);
            let start = ip_start.checked_sub(ETH_HEADER_LEN + V6_HEADERS)?;
            let payload = 8 + quote;
            let out = chunk.get_mut(start..ip_start + quote)?;
            let (link, rest) = out.split_at_mut(ETH_HEADER_LEN);
            write_ethernet(link, peer_mac, our_mac, EtherType::IPV6);
            let (ip, icmp) = rest.split_at_mut(ipv6::HEADER_LEN);
            write_ipv6(ip, payload, from, src);
            let mut icmp = icmpv6::Packet::new_unchecked(icmp);
            let (kind, code) = error.v6();
            icmp.set_msg_type(kind);
            icmp.set_msg_code(code);
            icmp.set_rest_of_header(error.rest(true));
            icmp.fill_checksum(from, src);
            Some((start, ETH_HEADER_LEN + ipv6::HEADER_LEN + payload))
        }
    }
}

fn write_ethernet(out: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: EtherType) {
    let mut eth = ethernet::Frame::new_unchecked(out);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(ethertype);
}

fn write_ipv4(out: &mut [u8], total: usize, src: Ipv4Addr, dst: Ipv4Addr) {
    let mut ip = ipv4::Packet::new_unchecked(out);
    ip.set_version_and_header_len(4, ipv4::HEADER_LEN);
    ip.set_dscp_ecn(ERROR_DSCP_ECN);
    ip.set_total_len(total as u16);
    ip.set_ident(0);
    ip.set_fragmentation(false, false, 0);
    ip.set_ttl(TTL);
    ip.set_protocol(ip_protocol::ICMP);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

fn write_ipv6(out: &mut [u8], payload: usize, src: Ipv6Addr, dst: Ipv6Addr) {
    let mut ip = ipv6::Packet::new_unchecked(out);
    ip.set_version_class_flow(6, 0, 0);
    ip.set_payload_len(payload as u16);
    ip.set_next_header(ip_protocol::ICMPV6);
    ip.set_hop_limit(TTL);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::packet::{nd::icmpv6_checksum, parse, testframes};
    use crate::wire::checksum;
    use etherparse::{Icmpv4Type, Icmpv6Type, SlicedPacket, TransportSlice};

    const HEADROOM: usize = 256;

    fn in_chunk(frame: &[u8]) -> Vec<u8> {
        let mut chunk = vec![0u8; 2048];
        chunk[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        chunk
    }

    #[test]
    fn a_udp_packet_becomes_a_port_unreachable_quoting_it() {
        let original = testframes::ipv4_udp(40_000, 53, b"query");
        let meta = parse(&original).unwrap();
        let mut chunk = in_chunk(&original);
        let mac = [2, 0, 0, 0, 0, 0x99];
        let (start, len) = answer_in_place(
            &mut chunk,
            HEADROOM,
            original.len(),
            &meta,
            IcmpError::PortUnreachable,
            None,
            mac,
        )
        .unwrap();
        let reply = &chunk[start..start + len];
        let parsed = SlicedPacket::from_ethernet(reply).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &parsed.net else {
            panic!("not IPv4")
        };
        let L3::Ipv4 { src, dst } = meta.l3 else {
            panic!()
        };
        assert_eq!(ip.header().source_addr(), dst);
        assert_eq!(ip.header().destination_addr(), src);
        assert_eq!(
            checksum::finish(checksum::sum(&reply[14..34], 0)),
            0,
            "header checksum valid"
        );
        let Some(TransportSlice::Icmpv4(icmp)) = &parsed.transport else {
            panic!("not ICMP")
        };
        assert!(matches!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(_)
        ));
        assert_eq!(
            checksum::finish(checksum::sum(&reply[34..], 0)),
            0,
            "ICMP checksum valid"
        );
        // The quote is the original IP packet, whole (it is short).
        assert_eq!(&reply[42..], &original[14..]);
        assert_eq!(&reply[..6], &meta.src_mac);
        assert_eq!(&reply[6..12], &mac);
    }

    #[test]
    fn ipv6_errors_quote_and_checksum_like_rfc_4443() {
        let original = testframes::ipv6_udp(40_000, 53, &[7u8; 1400]);
        let meta = parse(&original).unwrap();
        let mut chunk = in_chunk(&original);
        let (start, len) = answer_in_place(
            &mut chunk,
            HEADROOM,
            original.len(),
            &meta,
            IcmpError::PortUnreachable,
            None,
            [2, 0, 0, 0, 0, 1],
        )
        .unwrap();
        assert_eq!(len, 14 + 1280, "no longer than the minimum MTU");
        let reply = &chunk[start..start + len];
        let parsed = SlicedPacket::from_ethernet(reply).unwrap();
        let Some(TransportSlice::Icmpv6(icmp)) = &parsed.transport else {
            panic!("not ICMPv6")
        };
        assert!(matches!(
            icmp.icmp_type(),
            Icmpv6Type::DestinationUnreachable(_)
        ));
        let L3::Ipv6 { src, dst } = meta.l3 else {
            panic!()
        };
        let mut message = reply[54..].to_vec();
        message[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(
            icmpv6_checksum(dst, src, &message).to_be_bytes(),
            [reply[56], reply[57]]
        );
    }

    #[test]
    fn errors_are_never_answered_with_errors() {
        let mut original = testframes::ipv4_icmp_echo(1, 1, b"x");
        let meta = parse(&original).unwrap();
        assert!(may_answer(&original, &meta), "an echo request may be");
        // Make it a destination unreachable.
        let l4 = meta.l4_offset;
        original[l4] = 3;
        let meta = parse(&original).unwrap();
        assert!(!may_answer(&original, &meta));
        let mut chunk = in_chunk(&original);
        assert!(answer_in_place(
            &mut chunk,
            HEADROOM,
            original.len(),
            &meta,
            IcmpError::PortUnreachable,
            None,
            [2, 0, 0, 0, 0, 1]
        )
        .is_none());
    }

    #[test]
    fn no_room_in_front_is_no_answer_not_a_panic() {
        let original = testframes::ipv4_udp(1, 2, b"x");
        let meta = parse(&original).unwrap();
        let mut chunk = original.clone();
        assert!(answer_in_place(
            &mut chunk,
            0,
            original.len(),
            &meta,
            IcmpError::PortUnreachable,
            None,
            [2, 0, 0, 0, 0, 1]
        )
        .is_none());
    }
}
