//! ICMP error generation: `kxdp_dataplane::packet::icmp::answer_in_place`
//! on arbitrary frames placed after 256 bytes of headroom, for every kind
//! of error.
//!
//! Beyond "never panics": an error is built only for what may be answered
//! (never for an ICMP error, a non-first fragment, a multicast or
//! broadcast); it lies inside the chunk, never reads or writes past the
//! frame's own bytes (the quote is a prefix of the original IP packet), and
//! always parses back as an IPv4 or IPv6 packet with correct checksums
//! and the sender as its destination.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kxdp_dataplane::packet::icmp::{self, IcmpError};
use kxdp_dataplane::packet::{self, nd::icmpv6_checksum, L3};
use kxdp_dataplane::wire::checksum;
use kxdp_fuzz::fix_ipv4_checksums;
use libfuzzer_sys::fuzz_target;

const HEADROOM: usize = 256;

fuzz_target!(|frame: &[u8]| {
    check(frame);
    let mut fixed = frame.to_vec();
    fix_ipv4_checksums(&mut fixed);
    if fixed != frame {
        check(&fixed);
    }
});

fn check(frame: &[u8]) {
    if frame.len() > 2048 - HEADROOM {
        return;
    }
    let Ok(meta) = packet::parse(frame) else {
        return;
    };
    let errors = [
        IcmpError::PortUnreachable,
        IcmpError::NetUnreachable,
        IcmpError::HostUnreachable,
        IcmpError::TimeExceeded,
        IcmpError::TooBig { mtu: 1450 },
    ];
    for error in errors {
        let mut chunk = vec![0xa5u8; 2048];
        chunk[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let from = match meta.l3 {
            L3::Ipv4 { .. } => IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1)),
            _ => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        };
        let answerable = icmp::may_answer(frame, &meta);
        let Some((start, len)) = icmp::answer_in_place(
            &mut chunk,
            HEADROOM,
            frame.len(),
            &meta,
            error,
            Some(from),
            [2, 0, 0, 0, 0, 1],
        ) else {
            continue;
        };
        assert!(answerable, "answered what may not be: {meta:?}");
        let end = start + len;
        assert!(end <= HEADROOM + frame.len(), "past the original frame");
        // Nothing after the new frame changed.
        assert_eq!(&chunk[end..HEADROOM + frame.len()], &frame[end - HEADROOM..]);
        let out = &chunk[start..end];
        let parsed = packet::parse(out).expect("the error parses");
        match (parsed.l3, meta.l3) {
            (L3::Ipv4 { src, dst }, L3::Ipv4 { src: sender, .. }) => {
                assert_eq!(IpAddr::V4(src), from);
                assert_eq!(dst, sender);
                assert_eq!(checksum::finish(checksum::sum(&out[14..34], 0)), 0);
                assert_eq!(checksum::finish(checksum::sum(&out[34..], 0)), 0);
                assert!(out.len() - 14 <= 576);
            }
            (L3::Ipv6 { src, dst }, L3::Ipv6 { src: sender, .. }) => {
                assert_eq!(IpAddr::V6(src), from);
                assert_eq!(dst, sender);
                let mut message = out[54..].to_vec();
                let sum = [message[2], message[3]];
                message[2..4].copy_from_slice(&[0, 0]);
                assert_eq!(icmpv6_checksum(src, dst, &message).to_be_bytes(), sum);
                assert!(out.len() - 14 <= 1280);
            }
            other => panic!("family changed: {other:?}"),
        }
    }
}
