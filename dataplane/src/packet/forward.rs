//! In-place rewrites for forwarding without NAT: MACs and TTL / hop limit.

use super::{checksum, FrameMeta, L3};
use crate::verdict::DropReason;

/// Offset of the TTL inside an IPv4 header (the protocol byte follows it).
const IPV4_TTL: usize = 8;
/// Offset of the header checksum inside an IPv4 header.
const IPV4_CHECKSUM: usize = 10;
/// Offset of the hop limit inside an IPv6 header.
const IPV6_HOP_LIMIT: usize = 7;

/// Write destination and source MACs.
///
/// A frame shorter than the two addresses (which [`super::parse`] never
/// accepts) is left as it is.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    if let Some(macs) = frame.get_mut(..12) {
        macs[..6].copy_from_slice(&dst);
        macs[6..].copy_from_slice(&src);
    }
}

/// Decrement the IPv4 TTL (with an incremental header checksum update) or the
/// IPv6 hop limit. A TTL/hop limit of 0 or 1 gives [`DropReason::TtlExpired`]
/// and leaves the frame untouched. ARP frames are left alone (Ok).
///
/// `meta` must come from [`super::parse`] of this frame; a frame too short
/// for the header it names gives [`DropReason::MalformedIpv4`] or
/// [`DropReason::MalformedIpv6`] instead of a panic.
#[inline]
pub fn decrement_ttl(frame: &mut [u8], meta: &FrameMeta) -> Result<(), DropReason> {
    match meta.l3 {
        L3::Arp => Ok(()),
        L3::Ipv4 { .. } => {
            let Some(header) = frame.get_mut(meta.l3_offset..meta.l3_offset + 20) else {
                return Err(DropReason::MalformedIpv4);
            };
            let ttl = header[IPV4_TTL];
            if ttl <= 1 {
                return Err(DropReason::TtlExpired);
            }
            // The TTL shares its 16-bit checksum word with the protocol.
            let protocol = header[IPV4_TTL + 1];
            let old_word = u16::from_be_bytes([ttl, protocol]);
            let new_word = u16::from_be_bytes([ttl - 1, protocol]);
            let old_sum = u16::from_be_bytes([header[IPV4_CHECKSUM], header[IPV4_CHECKSUM + 1]]);
            let new_sum = checksum::update16(old_sum, old_word, new_word);
            header[IPV4_TTL] = ttl - 1;
            header[IPV4_CHECKSUM..IPV4_CHECKSUM + 2].copy_from_slice(&new_sum.to_be_bytes());
            Ok(())
        }
        L3::Ipv6 { .. } => {
            let Some(hop_limit) = frame.get_mut(meta.l3_offset + IPV6_HOP_LIMIT) else {
                return Err(DropReason::MalformedIpv6);
            };
            if *hop_limit <= 1 {
                return Err(DropReason::TtlExpired);
            }
            *hop_limit -= 1;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::{parse, testframes};
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn set_macs_writes_both_addresses() {
        let mut frame = testframes::ipv4_udp(1, 2, b"x");
        let rest = frame[12..].to_vec();
        set_macs(&mut frame, [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        assert_eq!(frame[..12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(frame[12..], rest[..]);
        let mut short = [0u8; 11];
        set_macs(&mut short, [1; 6], [2; 6]);
        assert_eq!(short, [0; 11]);
    }

    #[test]
    fn ipv4_ttl_fixture() {
        // The RFC 1071-style example header from the checksum tests, TTL 64.
        let mut frame = hex!(
            "020000000001 0200000000fe 0800"
            "4500 0073 0000 4000 4011 b861 c0a80001 c0a800c7"
        )
        .to_vec();
        frame.extend_from_slice(&[0u8; 0x73 - 20]);
        // The UDP header of the fixture is zeros: fill a valid one.
        frame[34..42].copy_from_slice(&hex!("1234 5678 005f 0000"));
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[22], 63);
        // 0xb861 + 0x0100 (one less in the TTL's high byte of the word).
        assert_eq!(frame[24..26], hex!("b961"));
        assert!(parse(&frame).is_ok(), "checksum still valid");
    }

    #[test]
    fn ttl_one_and_zero_expire_untouched() {
        for ttl in [0u8, 1] {
            let mut frame = testframes::ipv4_udp(1, 2, b"x");
            frame[22] = ttl;
            let sum = checksum::ipv4_header(&frame[14..34]);
            frame[24..26].copy_from_slice(&sum.to_be_bytes());
            let before = frame.clone();
            let meta = parse(&frame).unwrap();
            assert_eq!(
                decrement_ttl(&mut frame, &meta),
                Err(DropReason::TtlExpired)
            );
            assert_eq!(frame, before);
        }
        for hop in [0u8, 1] {
            let mut frame = testframes::ipv6_udp(1, 2, b"x");
            frame[21] = hop;
            let before = frame.clone();
            let meta = parse(&frame).unwrap();
            assert_eq!(
                decrement_ttl(&mut frame, &meta),
                Err(DropReason::TtlExpired)
            );
            assert_eq!(frame, before);
        }
    }

    #[test]
    fn ipv6_hop_limit_decrements() {
        let mut frame = testframes::ipv6_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[21], 63);
    }

    #[test]
    fn vlan_frame_uses_l3_offset() {
        let mut frame = testframes::vlan_ipv4_udp(7, b"abc");
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[18 + 8], 63);
        assert!(parse(&frame).is_ok());
    }

    #[test]
    fn arp_is_left_alone() {
        let mut frame = testframes::arp(
            1,
            testframes::POD_MAC,
            testframes::POD_V4,
            testframes::PEER_V4,
        );
        let before = frame.clone();
        let meta = parse(&frame).unwrap();
        assert_eq!(decrement_ttl(&mut frame, &meta), Ok(()));
        assert_eq!(frame, before);
    }

    #[test]
    fn short_frame_is_an_error_not_a_panic() {
        let frame = testframes::ipv4_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        let mut short = frame[..30].to_vec();
        assert_eq!(
            decrement_ttl(&mut short, &meta),
            Err(DropReason::MalformedIpv4)
        );
        let frame = testframes::ipv6_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        let mut short = frame[..20].to_vec();
        assert_eq!(
            decrement_ttl(&mut short, &meta),
            Err(DropReason::MalformedIpv6)
        );
    }

    proptest! {
        /// RFC 1624 incremental update == full recomputation, for random
        /// IPv4 headers (random options too).
        #[test]
        fn incremental_ttl_checksum_equals_recomputation(
            mut header in proptest::collection::vec(any::<u8>(), 60),
            ihl in 5u8..=15,
            ttl in 2u8..=255,
        ) {
            let header_len = usize::from(ihl) * 4;
            header.truncate(header_len);
            header[0] = 0x40 | ihl;
            header[2..4].copy_from_slice(&(header_len as u16).to_be_bytes());
            header[6] &= 0x40; // DF or nothing; never a fragment
            header[7] = 0;
            header[8] = ttl;
            let sum = checksum::ipv4_header(&header);
            header[10..12].copy_from_slice(&sum.to_be_bytes());
            let mut frame = hex!("020000000001 0200000000fe 0800").to_vec();
            frame.extend_from_slice(&header);
            let meta = parse(&frame);
            // Random protocol bytes may name a transport whose header is
            // missing (IHL-only packets): only the IPv4 layer matters here.
            let meta = match meta {
                Ok(meta) => meta,
                Err(DropReason::MalformedL4) => {
                    frame[14 + 9] = 253; // experimental protocol: no header read
                    let sum = checksum::ipv4_header(&frame[14..14 + header_len]);
                    frame[24..26].copy_from_slice(&sum.to_be_bytes());
                    parse(&frame).unwrap()
                }
                Err(other) => panic!("unexpected {other:?}"),
            };
            decrement_ttl(&mut frame, &meta).unwrap();
            let written = u16::from_be_bytes([frame[24], frame[25]]);
            prop_assert_eq!(frame[22], ttl - 1);
            prop_assert_eq!(written, checksum::ipv4_header(&frame[14..14 + header_len]));
        }
    }
}
