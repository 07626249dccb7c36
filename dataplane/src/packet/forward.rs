//! In-place rewrites for forwarding without NAT: MACs and TTL / hop limit.

use super::{FrameMeta, L3};
use crate::verdict::DropReason;
use crate::wire::{ethernet, ipv4, ipv6};

/// Write destination and source MACs.
///
/// A frame shorter than an Ethernet header (which [`super::parse`] never
/// accepts) is left as it is.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    let mut eth = ethernet::Frame::new_unchecked(frame);
    if eth.check_len().is_ok() {
        eth.set_dst_addr(dst);
        eth.set_src_addr(src);
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
            let Some(header) = frame.get_mut(meta.l3_offset..meta.l3_offset + ipv4::HEADER_LEN)
            else {
                return Err(DropReason::MalformedIpv4);
            };
            let mut ip = ipv4::Packet::new_unchecked(header);
            if ip.ttl() <= 1 {
                return Err(DropReason::TtlExpired);
            }
            ip.decrement_ttl();
            Ok(())
        }
        L3::Ipv6 { .. } => {
            let Some(header) = frame.get_mut(meta.l3_offset..meta.l3_offset + ipv6::HEADER_LEN)
            else {
                return Err(DropReason::MalformedIpv6);
            };
            let mut ip = ipv6::Packet::new_unchecked(header);
            let hop_limit = ip.hop_limit();
            if hop_limit <= 1 {
                return Err(DropReason::TtlExpired);
            }
            ip.set_hop_limit(hop_limit - 1);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::{parse, testframes};
    use crate::wire::checksum;
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
