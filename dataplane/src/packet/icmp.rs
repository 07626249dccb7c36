//! ICMP errors built in place: the offending packet becomes the quote of
//! the error that answers it (RFC 792 / RFC 1812 §4.3.2.3 for IPv4, RFC 4443
//! §2.4 for IPv6), with the new Ethernet, IP and ICMP headers written into
//! the chunk's headroom in front of it. Nothing is copied but the headers.
//!
//! The rules of who never gets an error (RFC 1812 §4.3.2.7, RFC 4443 §2.4
//! (e)): not an ICMP error, not a non-first fragment, not a packet sent to
//! or from a multicast, broadcast or unspecified address.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{checksum, ip_proto, nd::icmpv6_checksum, FrameMeta, ETH_HEADER_LEN, L3};

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
const V4_HEADERS: usize = 20 + 8;
/// IPv6 header + ICMPv6 header.
const V6_HEADERS: usize = 40 + 8;
/// The error's hop limit / TTL.
const TTL: u8 = 64;

/// Whether `meta`'s packet may be answered with an ICMP error.
pub fn may_answer(frame: &[u8], meta: &FrameMeta) -> bool {
    if meta.src_mac[0] & 1 == 1 || meta.dst_mac[0] & 1 == 1 {
        return false;
    }
    let l4 = meta.l4_offset;
    match meta.l3 {
        L3::Arp => false,
        L3::Ipv4 { src, dst } => {
            let offset = frame
                .get(meta.l3_offset + 6..meta.l3_offset + 8)
                .map_or(1, |b| u16::from_be_bytes([b[0], b[1]]) & 0x1fff);
            let error = meta.ip_proto == ip_proto::ICMP
                && (l4 == 0
                    || frame
                        .get(l4)
                        .is_none_or(|&t| !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)));
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
            let error = meta.ip_proto == ip_proto::ICMPV6
                && (l4 == 0 || frame.get(l4).is_none_or(|&t| t < 128));
            let unanswerable = (meta.is_fragment && l4 == 0)
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
            write_ethernet(out, peer_mac, our_mac, 0x0800);
            write_ipv4(&mut out[ETH_HEADER_LEN..], total, from, src);
            let icmp = &mut out[ETH_HEADER_LEN + 20..];
            let (kind, code) = error.v4();
            let [r0, r1, r2, r3] = error.rest(false);
            icmp[..8].copy_from_slice(&[kind, code, 0, 0, r0, r1, r2, r3]);
            let sum = checksum::finish(checksum::sum(icmp, 0));
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
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
            write_ethernet(out, peer_mac, our_mac, 0x86dd);
            write_ipv6(&mut out[ETH_HEADER_LEN..], payload, from, src);
            let icmp = &mut out[ETH_HEADER_LEN + 40..];
            let (kind, code) = error.v6();
            let [r0, r1, r2, r3] = error.rest(true);
            icmp[..8].copy_from_slice(&[kind, code, 0, 0, r0, r1, r2, r3]);
            let sum = icmpv6_checksum(from, src, icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            Some((start, ETH_HEADER_LEN + 40 + payload))
        }
    }
}

fn write_ethernet(out: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

fn write_ipv4(out: &mut [u8], total: usize, src: Ipv4Addr, dst: Ipv4Addr) {
    let header = &mut out[..20];
    header.copy_from_slice(&[
        0x45,
        0xc0,
        0,
        0,
        0,
        0,
        0,
        0,
        TTL,
        ip_proto::ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    header[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    header[12..16].copy_from_slice(&src.octets());
    header[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::ipv4_header(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

fn write_ipv6(out: &mut [u8], payload: usize, src: Ipv6Addr, dst: Ipv6Addr) {
    let header = &mut out[..40];
    header[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, ip_proto::ICMPV6, TTL]);
    header[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    header[8..24].copy_from_slice(&src.octets());
    header[24..40].copy_from_slice(&dst.octets());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::packet::{parse, testframes};
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
