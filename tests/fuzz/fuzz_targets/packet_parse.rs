//! Frame parsing: `kxdp_dataplane::packet::parse` on arbitrary bytes.
//!
//! Beyond "never panics", checks the promises `parse` documents: every
//! offset in the metadata lies inside the frame, the addresses are the
//! frame's own bytes, bytes past the IP packet are only padding (trimming
//! them parses the same), and a TTL decrement keeps the frame valid (the
//! incremental checksum update is right).
#![no_main]

use kxdp_dataplane::forward;
use kxdp_dataplane::packet::{self, ETH_HEADER_LEN, VLAN_TAG_LEN};
use kxdp_dataplane::packet::{FrameMeta, L3};
use kxdp_dataplane::DropReason;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(meta) = packet::parse(frame) else {
        return;
    };
    check_meta(frame, &meta);

    // Ethernet padding after the IP packet does not change the result.
    let l3_end = meta.l3_offset + meta.l3_len;
    assert_eq!(
        packet::parse(&frame[..l3_end]),
        Ok(meta),
        "trimmed to {l3_end}"
    );

    // The hash is a pure function of the metadata.
    assert_eq!(meta.flow_hash(), meta.flow_hash());

    // TTL decrement: the frame still parses to the same metadata (the
    // checksum was updated correctly), with the TTL one less.
    let mut copy = frame.to_vec();
    match forward::decrement_ttl(&mut copy, &meta) {
        Ok(()) => {
            assert_eq!(packet::parse(&copy), Ok(meta), "after the TTL decrement");
            let ttl_at = match meta.l3 {
                L3::Arp => None,
                L3::Ipv4 { .. } => Some(meta.l3_offset + 8),
                L3::Ipv6 { .. } => Some(meta.l3_offset + 7),
            };
            if let Some(at) = ttl_at {
                assert_eq!(copy[at], frame[at] - 1);
            } else {
                assert_eq!(copy, frame, "ARP is left alone");
            }
        }
        Err(DropReason::TtlExpired) => assert_eq!(copy, frame, "refused, yet rewritten"),
        Err(other) => panic!("decrement_ttl of a parsed frame failed: {other:?}"),
    }
});

fn check_meta(frame: &[u8], meta: &FrameMeta) {
    assert_eq!(meta.dst_mac, frame[..6]);
    assert_eq!(meta.src_mac, frame[6..12]);
    let expected_l3_offset = match meta.vlan {
        None => ETH_HEADER_LEN,
        Some(_) => ETH_HEADER_LEN + VLAN_TAG_LEN,
    };
    assert_eq!(meta.l3_offset, expected_l3_offset);
    let l3_end = meta.l3_offset + meta.l3_len;
    assert!(
        l3_end <= frame.len(),
        "l3 end {l3_end} past {}",
        frame.len()
    );
    if meta.l4_offset == 0 {
        assert_eq!(
            (meta.l4.ports().0, meta.l4.ports().1),
            (0, 0),
            "ports without a transport"
        );
    } else {
        assert!(
            meta.l4_offset > meta.l3_offset && meta.l4_offset <= l3_end,
            "l4 offset {} outside {}..={l3_end}",
            meta.l4_offset,
            meta.l3_offset
        );
    }
    let l3 = &frame[meta.l3_offset..l3_end];
    match meta.l3 {
        L3::Arp => {
            assert_eq!(meta.l3_len, packet::ARP_LEN);
            assert_eq!(meta.ip_proto, 0);
            assert_eq!(meta.l4_offset, 0);
        }
        L3::Ipv4 { src, dst } => {
            assert_eq!(l3[0] >> 4, 4);
            assert_eq!(src.octets(), l3[12..16]);
            assert_eq!(dst.octets(), l3[16..20]);
            assert_eq!(usize::from(u16::from_be_bytes([l3[2], l3[3]])), meta.l3_len);
            if meta.l4_offset != 0 {
                assert_eq!(
                    meta.l4_offset - meta.l3_offset,
                    usize::from(l3[0] & 0xf) * 4
                );
                assert_eq!(meta.ip_proto, l3[9]);
            }
        }
        L3::Ipv6 { src, dst } => {
            assert_eq!(l3[0] >> 4, 6);
            assert_eq!(src.octets(), l3[8..24]);
            assert_eq!(dst.octets(), l3[24..40]);
            assert_eq!(
                usize::from(u16::from_be_bytes([l3[4], l3[5]])) + packet::IPV6_HEADER_LEN,
                meta.l3_len
            );
        }
    }
}
