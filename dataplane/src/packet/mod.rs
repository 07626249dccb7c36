//! Frame views and parsing (Ethernet, 802.1Q, ARP, IPv4, IPv6, UDP, TCP, ICMP,
//! ICMPv6) over byte buffers, built on etherparse's checked slices.
//!
//! A frame is parsed once into a small [`FrameMeta`] (offsets, addresses,
//! ports); the rest of the pipeline works from it. Untrusted bytes only ever
//! go through checked constructors: after [`parse`] succeeds, the offsets in
//! the metadata are within the frame, and nothing panics on any input.

pub mod arp;
pub mod checksum;
pub mod forward;
pub mod nd;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::verdict::DropReason;

/// Length of an Ethernet II header.
pub const ETH_HEADER_LEN: usize = 14;

/// The network layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// An ARP packet (Ethernet/IPv4), at `FrameMeta::l3_offset`.
    Arp,
    /// IPv4.
    Ipv4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// IPv6.
    Ipv6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

/// What [`parse`] learns about a frame. Offsets are from the frame's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The 802.1Q VLAN ID, when the frame carries one tag.
    pub vlan: Option<u16>,
    /// Offset of the network header (after Ethernet and any VLAN tag).
    pub l3_offset: usize,
    /// The network layer.
    pub l3: L3,
    /// Length of the IP packet as its header says (IPv4 total length, IPv6
    /// 40 + payload length); 28 for ARP. `l3_offset + l3_len <= frame.len()`;
    /// bytes after it are Ethernet padding.
    pub l3_len: usize,
    /// IP protocol / IPv6 next header of the transport (0 for ARP).
    pub ip_proto: u8,
    /// Offset of the transport header; 0 when there is none to read
    /// (ARP, a non-first fragment, an IPv6 extension header chain).
    pub l4_offset: usize,
    /// UDP/TCP source port; ICMP/ICMPv6: the echo identifier or 0.
    pub src_port: u16,
    /// UDP/TCP destination port; ICMP/ICMPv6: the type << 8 | code.
    pub dst_port: u16,
    /// IPv4 fragment (MF set or non-zero offset), or IPv6 with a fragment header.
    pub is_fragment: bool,
}

impl FrameMeta {
    /// A hash of the flow (addresses, protocol, ports), the same in both
    /// directions is NOT required; stable for a flow; spreads well in the low
    /// and high bits. Used for the VXLAN source port and RSS-like sharding.
    pub fn flow_hash(&self) -> u32 {
        todo!("packet work item")
    }
}

/// Parse an Ethernet frame. Validates every header it reads: Ethernet (and one
/// 802.1Q tag), then ARP, IPv4 (version, IHL >= 5, total length within the
/// frame and >= header, header checksum), or IPv6 (version, payload length
/// within the frame), then the UDP/TCP/ICMP/ICMPv6 header when present (UDP
/// length, TCP data offset). Unknown EtherTypes give
/// [`DropReason::UnsupportedEthertype`]; never panics.
pub fn parse(frame: &[u8]) -> Result<FrameMeta, DropReason> {
    let _ = frame;
    todo!("packet work item")
}
