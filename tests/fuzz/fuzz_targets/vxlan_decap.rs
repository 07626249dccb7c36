//! VXLAN decapsulation: `kxdp_dataplane::vxlan::decap` on arbitrary bytes.
//!
//! Beyond "never panics": an accepted frame's inner frame lies inside it
//! and its VNI has 24 bits; the same frame is refused for another VTEP
//! address or port; and re-encapsulating the inner frame with kxdp's own
//! `encap` decapsulates back to the same VNI and bytes. Each input is tried
//! as it is and with its IPv4 header checksums fixed up.
#![no_main]

use std::net::Ipv4Addr;

use kxdp_dataplane::vxlan::{self, EncapTemplate, ENCAP_OVERHEAD, VXLAN_PORT};
use kxdp_fuzz::fix_ipv4_checksums;
use libfuzzer_sys::fuzz_target;

/// The receiving VTEP of `dataplane/fixtures/golden-*.pcap` (the seeds).
const VTEP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fuzz_target!(|frame: &[u8]| {
    check(frame);
    // Again with the IPv4 checksums made right, so mutated addresses and
    // lengths get past the checksum check.
    let mut fixed = frame.to_vec();
    fix_ipv4_checksums(&mut fixed);
    if fixed != frame {
        check(&fixed);
    }
});

fn check(frame: &[u8]) {
    let Ok(decap) = vxlan::decap(frame, VTEP, VXLAN_PORT) else {
        return;
    };
    assert!(decap.vni <= 0x00ff_ffff, "VNI {:#x}", decap.vni);
    let inner_end = decap.inner_offset + decap.inner_len;
    assert!(decap.inner_offset >= ENCAP_OVERHEAD, "{decap:?}");
    assert!(inner_end <= frame.len(), "{decap:?} past {}", frame.len());

    // Only for this VTEP and port.
    let other = Ipv4Addr::from(u32::from(VTEP) ^ 1);
    assert!(
        vxlan::decap(frame, other, VXLAN_PORT).is_err(),
        "accepted for {other}"
    );
    assert!(
        vxlan::decap(frame, VTEP, VXLAN_PORT ^ 1).is_err(),
        "accepted for another port"
    );

    // Round trip through kxdp's encap.
    let inner = &frame[decap.inner_offset..inner_end];
    let template = EncapTemplate::new(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        Ipv4Addr::new(192, 0, 2, 1),
        VTEP,
        decap.vni,
        VXLAN_PORT,
    );
    let mut chunk = vec![0u8; ENCAP_OVERHEAD + inner.len()];
    chunk[ENCAP_OVERHEAD..].copy_from_slice(inner);
    let start = vxlan::encap(&mut chunk, ENCAP_OVERHEAD, inner.len(), &template, 50_000);
    assert_eq!(start, 0);
    let again = vxlan::decap(&chunk, VTEP, VXLAN_PORT).expect("kxdp's own encap decapsulates");
    assert_eq!(again.vni, decap.vni);
    assert_eq!(again.inner_offset, ENCAP_OVERHEAD);
    assert_eq!(
        &chunk[again.inner_offset..again.inner_offset + again.inner_len],
        inner
    );
}
