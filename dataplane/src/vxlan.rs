//! VXLAN (RFC 7348) over an IPv4 underlay: encapsulation from a precomputed
//! per-destination header template, and validated decapsulation.

use std::net::Ipv4Addr;

use crate::verdict::DropReason;

/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
pub const ENCAP_OVERHEAD: usize = 50;
/// IANA's VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// The outer headers for one (remote VTEP, VNI), built once when tables are
/// compiled; encapsulation copies it and patches the lengths, the source
/// port and the checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncapTemplate {
    /// The 50 bytes of outer headers, with zero lengths, source port and checksum.
    pub bytes: [u8; ENCAP_OVERHEAD],
}

impl EncapTemplate {
    /// Outer Ethernet src/dst, outer IPv4 src/dst (TTL 64, DF set, TOS 0,
    /// ID 0), UDP destination port, VXLAN I flag and VNI.
    pub fn new(
        outer_src_mac: [u8; 6],
        outer_dst_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        vni: u32,
        udp_dst_port: u16,
    ) -> Self {
        let _ = (outer_src_mac, outer_dst_mac, src_ip, dst_ip, vni, udp_dst_port);
        todo!("packet work item")
    }
}

/// The UDP source port for a flow hash, in 49152..=65535 like the kernel's
/// default range, so flows spread over ECMP and RSS.
pub fn source_port(flow_hash: u32) -> u16 {
    let _ = flow_hash;
    todo!("packet work item")
}

/// Write the outer headers into the `ENCAP_OVERHEAD` bytes before `data_off`
/// in `chunk`, for an inner frame of `inner_len` bytes at `data_off`. Returns
/// the new data offset (`data_off - ENCAP_OVERHEAD`); the new length is
/// `inner_len + ENCAP_OVERHEAD`. Outer IPv4 total length, UDP length, UDP
/// source port and IPv4 header checksum are filled in; the UDP checksum is 0
/// (allowed over IPv4, as the kernel's vxlan device sends by default).
///
/// Panics only if the caller breaks the contract: `data_off >= ENCAP_OVERHEAD`
/// and `data_off + inner_len <= chunk.len()` (the pipeline guarantees both).
pub fn encap(
    chunk: &mut [u8],
    data_off: usize,
    inner_len: usize,
    template: &EncapTemplate,
    src_port: u16,
) -> usize {
    let _ = (chunk, data_off, inner_len, template, src_port);
    todo!("packet work item")
}

/// A validated VXLAN frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decap {
    /// The VNI.
    pub vni: u32,
    /// Offset of the inner Ethernet frame from the start of the outer frame.
    pub inner_offset: usize,
    /// Length of the inner frame (outer UDP length - 16).
    pub inner_len: usize,
}

/// Validate an outer frame: Ethernet (no VLAN) / IPv4 (version, IHL, total
/// length, checksum, not a fragment) / UDP to `udp_port` (length consistent)
/// / VXLAN with the I flag; IPv4 destination must be `vtep`. Errors:
/// [`DropReason::VxlanMalformed`], [`DropReason::VxlanNotForUs`],
/// [`DropReason::VxlanBadFlags`], [`DropReason::UnderlayNotVxlan`] (not
/// IPv4/UDP at all). The VNI is returned, not checked (the tables know it).
pub fn decap(frame: &[u8], vtep: Ipv4Addr, udp_port: u16) -> Result<Decap, DropReason> {
    let _ = (frame, vtep, udp_port);
    todo!("packet work item")
}
