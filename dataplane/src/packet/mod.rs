//! Frame parsing (Ethernet, 802.1Q, ARP, IPv4, IPv6, UDP, TCP, ICMP,
//! ICMPv6) through the checked views of [`crate::wire`].
//!
//! A frame is parsed once into a small [`FrameMeta`] (offsets, addresses,
//! the transport's ports or ICMP type); the rest of the pipeline works from
//! it. Untrusted bytes only ever go through checked constructors: after
//! [`parse`] succeeds, the offsets in the metadata are within the frame,
//! and nothing panics on any input.

pub mod arp;
pub mod icmp;
pub mod nd;
#[cfg(test)]
pub(crate) mod testframes;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::verdict::DropReason;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{
    arp as wire_arp, icmpv4, icmpv6, ip_protocol, ipv4, ipv6, ipv6ext, tcp, udp, vlan,
};

/// Length of an Ethernet II header.
pub const ETH_HEADER_LEN: usize = ethernet::HEADER_LEN;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = vlan::HEADER_LEN;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = wire_arp::LEN;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = ipv6::HEADER_LEN;
/// An IPv6 fragment header's length.
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;
/// Most IPv6 extension headers [`parse`] walks before it stops looking for
/// the transport (and reports the last next-header value as `ip_proto`).
pub const MAX_IPV6_EXTENSIONS: usize = 8;

/// IP protocol numbers (those the parser reads a header of, and the rest
/// kxdp knows).
pub use crate::wire::ip_protocol as ip_proto;

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

/// The transport layer of a frame, as far as [`parse`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// No transport header to read: ARP, a non-first fragment, an IPv6
    /// packet with extension headers (`FrameMeta::l4_offset` is 0).
    None,
    /// A protocol the parser does not read (GRE, SCTP, ESP…, or ICMP in
    /// the other IP version); `FrameMeta::l4_offset` is the start of the
    /// IP payload.
    Other,
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP in IPv4.
    Icmp {
        /// Message type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// The identifier of an echo request or reply; 0 for other types.
        ident: u16,
    },
    /// ICMPv6 in IPv6.
    Icmpv6 {
        /// Message type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// The identifier of an echo request or reply; 0 for other types.
        ident: u16,
    },
}

impl L4 {
    /// The pair a 5-tuple hashes as ports: UDP/TCP source and destination
    /// port; ICMP/ICMPv6 the echo identifier and type << 8 | code; (0, 0)
    /// otherwise.
    #[inline(always)]
    pub fn ports(self) -> (u16, u16) {
        match self {
            L4::Udp { src_port, dst_port } | L4::Tcp { src_port, dst_port } => (src_port, dst_port),
            L4::Icmp {
                msg_type,
                code,
                ident,
            }
            | L4::Icmpv6 {
                msg_type,
                code,
                ident,
            } => (ident, u16::from_be_bytes([msg_type, code])),
            L4::None | L4::Other => (0, 0),
        }
    }

    /// The ICMP or ICMPv6 (type, code).
    #[inline]
    pub fn icmp(self) -> Option<(u8, u8)> {
        match self {
            L4::Icmp { msg_type, code, .. } | L4::Icmpv6 { msg_type, code, .. } => {
                Some((msg_type, code))
            }
            _ => None,
        }
    }

    /// Set the source port of UDP or TCP (nothing else has one here).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        if let L4::Udp { src_port, .. } | L4::Tcp { src_port, .. } = self {
            *src_port = port;
        }
    }

    /// Set the destination port of UDP or TCP.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        if let L4::Udp { dst_port, .. } | L4::Tcp { dst_port, .. } = self {
            *dst_port = port;
        }
    }
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
    /// ([`L4::None`]). For a protocol the parser does not know
    /// ([`L4::Other`]) it is the start of the IP payload. When `l4` is UDP,
    /// TCP, ICMP or ICMPv6, that header (TCP: with its options) is within
    /// the IP packet.
    pub l4_offset: usize,
    /// The transport layer.
    pub l4: L4,
    /// IPv4 fragment (MF set or non-zero offset), or IPv6 with a fragment header.
    pub is_fragment: bool,
}

impl FrameMeta {
    /// A hash of the flow (addresses, protocol, ports), the same in both
    /// directions is NOT required; stable for a flow; spreads well in the low
    /// and high bits. Used for the VXLAN source port and RSS-like sharding.
    ///
    /// Fragments hash on addresses and protocol only, so every fragment of a
    /// packet takes the same path (a first fragment's ports are ignored).
    /// The mixing is wyhash's folded 64×64→128 multiply, applied twice.
    #[inline]
    pub fn flow_hash(&self) -> u32 {
        // The ports are packed apart (bits 32.. and 0..16) on purpose: read
        // as one 32-bit word right after `parse` wrote them as two 16-bit
        // words, they cost a store-forwarding stall (~8 ns here).
        let ports = if self.is_fragment {
            0
        } else {
            let (src_port, dst_port) = self.l4.ports();
            (u64::from(src_port) << 32) | u64::from(dst_port)
        };
        let tail = (u64::from(self.ip_proto) << 16) | ports;
        let h = match self.l3 {
            L3::Ipv4 { src, dst } => {
                let addrs = (u64::from(src.to_bits()) << 32) | u64::from(dst.to_bits());
                fold_mul(addrs ^ HASH_K0, tail ^ HASH_K1)
            }
            L3::Ipv6 { src, dst } => {
                let (s, d) = (src.to_bits(), dst.to_bits());
                let hs = fold_mul((s as u64) ^ HASH_K0, ((s >> 64) as u64) ^ HASH_K1);
                let hd = fold_mul((d as u64) ^ HASH_K2, ((d >> 64) as u64) ^ HASH_K3);
                fold_mul(hs ^ tail ^ HASH_K1, hd ^ HASH_K0)
            }
            L3::Arp => fold_mul(HASH_K0, tail ^ HASH_K1),
        };
        let h = fold_mul(h ^ HASH_K2, HASH_K3);
        (h ^ (h >> 32)) as u32
    }

    /// An ICMPv6 neighbour solicitation (whose transport the parser read).
    #[inline]
    pub fn is_neighbour_solicitation(&self) -> bool {
        matches!(
            self.l4,
            L4::Icmpv6 {
                msg_type: icmpv6::msg_type::NEIGHBOR_SOLICIT,
                ..
            }
        )
    }
}

// wyhash's secret constants: odd, with balanced bits.
const HASH_K0: u64 = 0xa076_1d64_78bd_642f;
const HASH_K1: u64 = 0xe703_7ed1_a0b4_28db;
const HASH_K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const HASH_K3: u64 = 0x5899_65cc_7537_4cc3;

/// Multiply to 128 bits and fold the halves: every input bit reaches the
/// high output bits, and the fold brings them back to the low ones.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Parse an Ethernet frame. Validates every header it reads: Ethernet (and one
/// 802.1Q tag), then ARP, IPv4 (version, IHL >= 5, total length within the
/// frame and >= header, header checksum), or IPv6 (version, payload length
/// within the frame), then the UDP/TCP/ICMP/ICMPv6 header when present (UDP
/// length, TCP data offset). Unknown EtherTypes give
/// [`DropReason::UnsupportedEthertype`]; never panics.
///
/// Errors: [`DropReason::Runt`] (under 14 bytes),
/// [`DropReason::MalformedVlan`] (truncated or stacked tags),
/// [`DropReason::MalformedArp`] (not a whole Ethernet/IPv4 ARP packet),
/// [`DropReason::MalformedIpv4`], [`DropReason::Ipv4BadLength`],
/// [`DropReason::Ipv4BadChecksum`], [`DropReason::MalformedIpv6`] (also a
/// truncated extension header), [`DropReason::MalformedL4`] (a truncated
/// transport header, UDP length < 8 or past the IP payload, TCP data offset
/// < 5 or past the IP payload, an ICMP timestamp (reply) that is not 20
/// bytes). A first fragment must hold its whole transport header (RFC
/// 1858's tiny-fragment rule); its UDP length is not compared with the
/// fragment's size.
// Inlined into its callers: the `FrameMeta` is then built where it is
// used, not returned through memory and copied out.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<FrameMeta, DropReason> {
    // One length check, then views of fixed-size headers (`&[u8; N]`):
    // their field reads need no check of their own.
    let (header, payload) = frame
        .split_first_chunk::<ETH_HEADER_LEN>()
        .ok_or(DropReason::Runt)?;
    let eth = ethernet::Frame::new_unchecked(header);
    let ether_type = eth.ethertype();
    if ether_type == EtherType::IPV4 {
        // The hot path, untagged IPv4, apart from the rest: sharing one body
        // with the VLAN, ARP and IPv6 paths cost it registers (and ~30%).
        let network = parse_ipv4(payload, ETH_HEADER_LEN)?;
        return Ok(FrameMeta::new(&eth, None, ETH_HEADER_LEN, network));
    }
    parse_not_ipv4(eth, payload, ether_type)
}

/// [`parse`] for everything but untagged IPv4.
#[inline(never)]
fn parse_not_ipv4(
    eth: ethernet::Frame<&[u8; ETH_HEADER_LEN]>,
    mut packet: &[u8],
    mut ether_type: EtherType,
) -> Result<FrameMeta, DropReason> {
    let mut l3_offset = ETH_HEADER_LEN;
    let mut vlan = None;
    if ether_type == EtherType::VLAN {
        let tag = vlan::Tag::new_checked(packet).map_err(|_| DropReason::MalformedVlan)?;
        ether_type = tag.ethertype();
        if matches!(
            ether_type,
            EtherType::VLAN | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED
        ) {
            return Err(DropReason::MalformedVlan);
        }
        vlan = Some(tag.vlan_id());
        l3_offset += VLAN_TAG_LEN;
        packet = packet.get(VLAN_TAG_LEN..).unwrap_or_default();
    }
    let network = match ether_type {
        EtherType::IPV4 => parse_ipv4(packet, l3_offset)?,
        EtherType::IPV6 => parse_ipv6(packet, l3_offset)?,
        EtherType::ARP => parse_arp(packet)?,
        _ => return Err(DropReason::UnsupportedEthertype),
    };
    Ok(FrameMeta::new(&eth, vlan, l3_offset, network))
}

impl FrameMeta {
    /// Built in one go from values: filling a struct field by field through
    /// a pointer and copying it out cost a store-forwarding stall per packet.
    #[inline(always)]
    fn new(
        eth: &ethernet::Frame<&[u8; ETH_HEADER_LEN]>,
        vlan: Option<u16>,
        l3_offset: usize,
        network: Network,
    ) -> Self {
        FrameMeta {
            dst_mac: eth.dst_addr(),
            src_mac: eth.src_addr(),
            vlan,
            l3_offset,
            l3: network.l3,
            l3_len: network.l3_len,
            ip_proto: network.ip_proto,
            l4_offset: network.transport.offset,
            l4: network.transport.l4,
            is_fragment: network.is_fragment,
        }
    }
}

/// What the network layer parsers learn.
struct Network {
    l3: L3,
    l3_len: usize,
    ip_proto: u8,
    is_fragment: bool,
    transport: Transport,
}

/// What the transport parser learns.
struct Transport {
    /// 0 when there is no transport header to read.
    offset: usize,
    l4: L4,
}

impl Transport {
    /// No transport header to read.
    const NONE: Transport = Transport {
        offset: 0,
        l4: L4::None,
    };
}

/// An Ethernet/IPv4 ARP packet (hardware type 1, protocol 0x0800, address
/// lengths 6 and 4); the operation is left to the responder.
fn parse_arp(packet: &[u8]) -> Result<Network, DropReason> {
    let arp = wire_arp::Packet::new_checked(packet).map_err(|_| DropReason::MalformedArp)?;
    if !arp.is_ethernet_ipv4() {
        return Err(DropReason::MalformedArp);
    }
    Ok(Network {
        l3: L3::Arp,
        l3_len: ARP_LEN,
        ip_proto: 0,
        is_fragment: false,
        transport: Transport::NONE,
    })
}

#[inline(always)]
fn parse_ipv4(packet: &[u8], l3_offset: usize) -> Result<Network, DropReason> {
    // The fixed header (20 bytes) as an array: its fields are read with no
    // further check. Then IHL >= 5 and the options within `packet`.
    let (header, _) = packet
        .split_first_chunk::<{ ipv4::HEADER_LEN }>()
        .ok_or(DropReason::MalformedIpv4)?;
    let ip = ipv4::Packet::new_unchecked(header);
    if ip.version() != 4 {
        return Err(DropReason::MalformedIpv4);
    }
    let header_len = ip.header_len();
    if header_len < ipv4::HEADER_LEN || header_len > packet.len() {
        return Err(DropReason::MalformedIpv4);
    }
    let total_len = usize::from(ip.total_len());
    if total_len < header_len || total_len > packet.len() {
        return Err(DropReason::Ipv4BadLength);
    }
    // Summed with its own checksum field, a correct header folds to 0xffff
    // (the options too, when there are any).
    let checksum_ok = if header_len == ipv4::HEADER_LEN {
        ip.verify_checksum()
    } else {
        ipv4::Packet::new_unchecked(packet).verify_checksum()
    };
    if !checksum_ok {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let fragment_offset = ip.frag_offset();
    let is_fragment = fragment_offset != 0 || ip.more_frags();
    let ip_proto = ip.protocol();
    let transport = if fragment_offset == 0 {
        parse_transport(
            // header_len <= total_len <= packet.len(), checked above.
            packet.get(header_len..total_len).unwrap_or_default(),
            l3_offset + header_len,
            ip_proto,
            false,
            is_fragment,
        )?
    } else {
        Transport::NONE
    };
    Ok(Network {
        l3: L3::Ipv4 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        },
        l3_len: total_len,
        ip_proto,
        is_fragment,
        transport,
    })
}

fn parse_ipv6(packet: &[u8], l3_offset: usize) -> Result<Network, DropReason> {
    let ip = ipv6::Packet::new_checked(packet).map_err(|_| DropReason::MalformedIpv6)?;
    if ip.version() != 6 {
        return Err(DropReason::MalformedIpv6);
    }
    let total_len = ip.total_len();
    if total_len > packet.len() {
        return Err(DropReason::MalformedIpv6);
    }
    let body = ip.payload();
    let mut next = ip.next_header();
    let mut offset = 0;
    let mut extensions = 0;
    let mut is_fragment = false;
    // Walk the extension headers to learn the transport protocol and whether
    // this is a fragment. The transport itself is read only without any.
    while extensions < MAX_IPV6_EXTENSIONS {
        let rest = body.get(offset..).unwrap_or_default();
        match next {
            ip_protocol::IPV6_FRAGMENT => {
                let fragment = ipv6ext::FragmentHeader::new_checked(rest)
                    .map_err(|_| DropReason::MalformedIpv6)?;
                is_fragment = true;
                // What follows may be cut: the fragment's protocol is all we keep.
                next = fragment.next_header();
                // A first fragment must hold its whole transport header, as
                // for IPv4 (RFC 1858; RFC 7112 asks for the whole header
                // chain): ports split across fragments would slip past
                // every rule that reads them.
                if fragment.frag_offset() == 0 {
                    let after = rest.get(IPV6_FRAGMENT_HEADER_LEN..).unwrap_or_default();
                    parse_transport(after, 0, next, true, true)?;
                }
                extensions += 1;
                break;
            }
            ip_protocol::AUTHENTICATION => {
                let auth = ipv6ext::AuthHeader::new_checked(rest)
                    .map_err(|_| DropReason::MalformedIpv6)?;
                next = auth.next_header();
                offset += auth.header_len();
            }
            ip_protocol::HOP_BY_HOP
            | ip_protocol::IPV6_ROUTE
            | ip_protocol::IPV6_DESTINATION_OPTIONS
            | ip_protocol::MOBILITY
            | ip_protocol::HIP
            | ip_protocol::SHIM6 => {
                let ext =
                    ipv6ext::ExtHeader::new_checked(rest).map_err(|_| DropReason::MalformedIpv6)?;
                next = ext.next_header();
                offset += ext.header_len();
            }
            _ => break,
        }
        extensions += 1;
    }
    let transport = if extensions == 0 {
        parse_transport(body, l3_offset + IPV6_HEADER_LEN, next, true, false)?
    } else {
        Transport::NONE
    };
    Ok(Network {
        l3: L3::Ipv6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
        },
        l3_len: total_len,
        ip_proto: next,
        is_fragment,
        transport,
    })
}

/// Read the transport header of protocol `proto` at the start of `payload`
/// (the IP payload, cut at the IP length), which is at `offset` in the frame.
#[inline(always)]
fn parse_transport(
    payload: &[u8],
    offset: usize,
    proto: u8,
    ipv6: bool,
    is_fragment: bool,
) -> Result<Transport, DropReason> {
    // UDP first, out of the match: the common case (pod traffic, VXLAN)
    // takes one predictable comparison rather than the match's tree.
    if proto == ip_protocol::UDP {
        let (header, _) = payload
            .split_first_chunk::<{ udp::HEADER_LEN }>()
            .ok_or(DropReason::MalformedL4)?;
        let udp = udp::Packet::new_unchecked(header);
        let length = usize::from(udp.len());
        // A first fragment carries only part of the datagram its UDP
        // length describes.
        if length < udp::HEADER_LEN || (!is_fragment && length > payload.len()) {
            return Err(DropReason::MalformedL4);
        }
        let l4 = L4::Udp {
            src_port: udp.src_port(),
            dst_port: udp.dst_port(),
        };
        return Ok(Transport { offset, l4 });
    }
    let l4 = match proto {
        ip_protocol::TCP => {
            // Length >= 20, data offset >= 5 and the options within.
            let tcp = tcp::Packet::new_checked(payload).map_err(|_| DropReason::MalformedL4)?;
            L4::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
            }
        }
        ip_protocol::ICMP if !ipv6 => {
            let icmp = icmpv4::Packet::new_checked(payload).map_err(|_| DropReason::MalformedL4)?;
            let (msg_type, code) = (icmp.msg_type(), icmp.msg_code());
            let ident = match msg_type {
                icmpv4::msg_type::ECHO_REPLY | icmpv4::msg_type::ECHO_REQUEST => icmp.echo_ident(),
                // A timestamp message (code 0) is exactly 20 bytes, as
                // etherparse's checked slice held it before the views.
                icmpv4::msg_type::TIMESTAMP | icmpv4::msg_type::TIMESTAMP_REPLY
                    if code == 0 && payload.len() != icmpv4::TIMESTAMP_LEN =>
                {
                    return Err(DropReason::MalformedL4)
                }
                _ => 0,
            };
            L4::Icmp {
                msg_type,
                code,
                ident,
            }
        }
        ip_protocol::ICMPV6 if ipv6 => {
            let icmp = icmpv6::Packet::new_checked(payload).map_err(|_| DropReason::MalformedL4)?;
            let msg_type = icmp.msg_type();
            let ident = match msg_type {
                icmpv6::msg_type::ECHO_REQUEST | icmpv6::msg_type::ECHO_REPLY => icmp.echo_ident(),
                _ => 0,
            };
            L4::Icmpv6 {
                msg_type,
                code: icmp.msg_code(),
                ident,
            }
        }
        _ => L4::Other,
    };
    Ok(Transport { offset, l4 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::checksum;
    use hex_literal::hex;
    use proptest::prelude::*;
    use testframes::{PEER_V4, PEER_V6, POD_V4, POD_V6};

    /// IPv4/UDP 10.1.0.5:1000 → 10.2.0.7:2000, payload "hello".
    const IPV4_UDP: [u8; 47] = hex!(
        "0200000000fe 020000000001 0800"
        "4500 0021 0000 4000 40 11 26be 0a010005 0a020007"
        "03e8 07d0 000d 9c3b"
        "68656c6c6f"
    );
    /// IPv4/TCP SYN 10.1.0.5:40000 → 10.2.0.7:80, with an MSS option (data offset 6).
    const IPV4_TCP: [u8; 58] = hex!(
        "0200000000fe 020000000001 0800"
        "4500 002c 0001 0000 40 06 66bd 0a010005 0a020007"
        "9c40 0050 00000001 00000000 6002 faf0 ec95 0000 020405b4"
    );
    /// IPv4/ICMP echo request, id 0x1234, seq 1.
    const IPV4_ICMP: [u8; 42] = hex!(
        "0200000000fe 020000000001 0800"
        "4500 001c 0002 0000 40 01 66d1 0a010005 0a020007"
        "08 00 e5ca 1234 0001"
    );
    /// IPv6/UDP fd00:1::5:1000 → fd00:2::7:2000, payload "hi".
    const IPV6_UDP: [u8; 64] = hex!(
        "0200000000fe 020000000001 86dd"
        "60000000 000a 11 40 fd000001000000000000000000000005 fd000002000000000000000000000007"
        "03e8 07d0 000a 91a8 6869"
    );
    /// IPv6/ICMPv6 echo reply, id 0x0707.
    const IPV6_ICMP: [u8; 62] = hex!(
        "0200000000fe 020000000001 86dd"
        "60000000 0008 3a 40 fd000001000000000000000000000005 fd000002000000000000000000000007"
        "81 00 7da2 0707 0003"
    );
    /// An ARP request in a VLAN 100 tag, padded to 64 bytes.
    const VLAN_ARP: [u8; 64] = hex!(
        "ffffffffffff 020000000001 8100 0064 0806"
        "0001 0800 06 04 0001 020000000001 0a010005 000000000000 0a010001"
        "000000000000000000000000000000000000"
    );

    /// Fix the IPv4 header checksum at `l3` (after a test changed a field).
    fn fix_checksum(frame: &mut [u8], l3: usize) {
        let ihl = usize::from(frame[l3] & 0xf) * 4;
        let end = (l3 + ihl.max(20)).min(frame.len());
        frame[l3 + 10..l3 + 12].fill(0);
        let sum = checksum::ipv4_header(&frame[l3..end]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Fix the fixtures' checksums once, so that they need not be computed by hand.
    fn fixture<const N: usize>(bytes: [u8; N]) -> [u8; N] {
        let mut frame = bytes;
        if frame[12..14] == [0x08, 0x00] {
            fix_checksum(&mut frame, 14);
        }
        frame
    }

    #[test]
    fn fixture_checksums_are_right() {
        for frame in [&IPV4_UDP[..], &IPV4_TCP[..], &IPV4_ICMP[..]] {
            assert_eq!(checksum::finish(checksum::sum(&frame[14..34], 0)), 0);
        }
    }

    #[test]
    fn ipv4_udp() {
        let meta = parse(&IPV4_UDP).unwrap();
        assert_eq!(
            meta,
            FrameMeta {
                dst_mac: testframes::GW_MAC,
                src_mac: testframes::POD_MAC,
                vlan: None,
                l3_offset: 14,
                l3: L3::Ipv4 {
                    src: POD_V4,
                    dst: PEER_V4
                },
                l3_len: 33,
                ip_proto: ip_proto::UDP,
                l4_offset: 34,
                l4: L4::Udp {
                    src_port: 1000,
                    dst_port: 2000
                },
                is_fragment: false,
            }
        );
    }

    #[test]
    fn ipv4_tcp_with_options() {
        let meta = parse(&IPV4_TCP).unwrap();
        assert_eq!(meta.ip_proto, ip_proto::TCP);
        assert_eq!(
            (meta.l4_offset, meta.l4.ports().0, meta.l4.ports().1),
            (34, 40000, 80)
        );
        assert_eq!(meta.l3_len, 44);
    }

    #[test]
    fn ipv4_icmp_echo() {
        let meta = parse(&IPV4_ICMP).unwrap();
        assert_eq!(meta.ip_proto, ip_proto::ICMP);
        assert_eq!(meta.l4.ports(), (0x1234, 0x0800));
        assert_eq!(
            meta.l4,
            L4::Icmp {
                msg_type: 8,
                code: 0,
                ident: 0x1234
            }
        );
        // A non-echo message has no identifier: type 3 code 1.
        let mut unreachable = IPV4_ICMP;
        unreachable[34..36].copy_from_slice(&[3, 1]);
        let meta = parse(&unreachable).unwrap();
        assert_eq!(meta.l4.ports(), (0, 0x0301));
        assert_eq!(meta.l4.icmp(), Some((3, 1)));
    }

    #[test]
    fn ipv6_udp() {
        let meta = parse(&IPV6_UDP).unwrap();
        assert_eq!(
            meta.l3,
            L3::Ipv6 {
                src: POD_V6,
                dst: PEER_V6
            }
        );
        assert_eq!(
            (meta.l3_len, meta.ip_proto, meta.l4_offset),
            (50, ip_proto::UDP, 54)
        );
        assert_eq!(meta.l4.ports(), (1000, 2000));
        assert!(!meta.is_fragment);
    }

    #[test]
    fn ipv6_icmp_echo_reply() {
        let meta = parse(&IPV6_ICMP).unwrap();
        assert_eq!(meta.ip_proto, ip_proto::ICMPV6);
        assert_eq!(meta.l4.ports(), (0x0707, 0x8100));
    }

    #[test]
    fn vlan_arp() {
        let meta = parse(&VLAN_ARP).unwrap();
        assert_eq!(meta.vlan, Some(100));
        assert_eq!((meta.l3, meta.l3_offset, meta.l3_len), (L3::Arp, 18, 28));
        assert_eq!((meta.ip_proto, meta.l4_offset), (0, 0));
        assert_eq!(meta.dst_mac, [0xff; 6]);
    }

    #[test]
    fn builder_frames_agree_with_etherparse() {
        // Every kind of frame built by etherparse parses, with the fields
        // etherparse's own full parser finds.
        let frames = [
            testframes::ipv4_udp(5, 6, b"abc"),
            testframes::ipv4_tcp_syn(7, 8),
            testframes::ipv4_icmp_echo(9, 10, b"x"),
            testframes::ipv6_udp(11, 12, b""),
            testframes::ipv6_tcp_syn(13, 14),
            testframes::ipv6_icmp_echo(15, 16, b"yz"),
            testframes::vlan_ipv4_udp(4094, b"v"),
        ];
        for frame in &frames {
            let meta = parse(frame).unwrap();
            let sliced = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
            let (sp, dp) = match sliced.transport.unwrap() {
                etherparse::TransportSlice::Udp(u) => (u.source_port(), u.destination_port()),
                etherparse::TransportSlice::Tcp(t) => (t.source_port(), t.destination_port()),
                etherparse::TransportSlice::Icmpv4(i) => (
                    u16::from_be_bytes([i.bytes5to8()[0], i.bytes5to8()[1]]),
                    u16::from_be_bytes([i.type_u8(), i.code_u8()]),
                ),
                etherparse::TransportSlice::Icmpv6(i) => (
                    u16::from_be_bytes([i.bytes5to8()[0], i.bytes5to8()[1]]),
                    u16::from_be_bytes([i.type_u8(), i.code_u8()]),
                ),
                other => panic!("{other:?}"),
            };
            assert_eq!(meta.l4.ports(), (sp, dp));
            assert_eq!(meta.l3_offset + meta.l3_len, frame.len());
        }
    }

    #[test]
    fn padding_is_not_part_of_the_packet() {
        let mut frame = IPV4_ICMP.to_vec();
        frame.resize(60, 0);
        let meta = parse(&frame).unwrap();
        assert_eq!(meta.l3_offset + meta.l3_len, 42);
    }

    #[test]
    fn ethertypes_and_vlans() {
        assert_eq!(parse(&[0u8; 13]), Err(DropReason::Runt));
        let mut frame = IPV4_UDP;
        for ether_type in [
            [0x88, 0xcc],
            [0x88, 0x47],
            [0x86, 0xdc],
            [0x88, 0xa8],
            [0x00, 0x2e],
        ] {
            frame[12..14].copy_from_slice(&ether_type);
            assert_eq!(parse(&frame), Err(DropReason::UnsupportedEthertype));
        }
        // Stacked tags.
        for inner in [[0x81, 0x00], [0x88, 0xa8], [0x91, 0x00]] {
            let mut stacked = VLAN_ARP;
            stacked[16..18].copy_from_slice(&inner);
            assert_eq!(parse(&stacked), Err(DropReason::MalformedVlan));
        }
        // Truncated tag.
        for cut in 14..18 {
            assert_eq!(parse(&VLAN_ARP[..cut]), Err(DropReason::MalformedVlan));
        }
        // A tag before IPv4.
        let vlan = testframes::vlan_ipv4_udp(5, b"z");
        let meta = parse(&vlan).unwrap();
        assert_eq!(
            (meta.vlan, meta.l3_offset, meta.l4_offset),
            (Some(5), 18, 38)
        );
    }

    #[test]
    fn arp_must_be_ethernet_ipv4() {
        for (offset, value) in [(19, 6u8), (20, 0x86), (22, 8), (23, 6)] {
            let mut frame = VLAN_ARP;
            frame[offset] = value;
            assert_eq!(
                parse(&frame),
                Err(DropReason::MalformedArp),
                "byte {offset}"
            );
        }
    }

    /// The reason a frame cut at `cut` bytes gets, from the structure of the
    /// valid frame: this is the truncation corpus's oracle.
    fn truncation_reason(frame: &[u8], cut: usize) -> Option<DropReason> {
        let meta = parse(frame).unwrap();
        let l3 = meta.l3_offset;
        if cut < ETH_HEADER_LEN {
            return Some(DropReason::Runt);
        }
        if meta.vlan.is_some() && cut < 18 {
            return Some(DropReason::MalformedVlan);
        }
        if cut >= l3 + meta.l3_len {
            return None;
        }
        Some(match meta.l3 {
            L3::Arp => DropReason::MalformedArp,
            L3::Ipv4 { .. } if cut < l3 + usize::from(frame[l3] & 0xf) * 4 => {
                DropReason::MalformedIpv4
            }
            L3::Ipv4 { .. } => DropReason::Ipv4BadLength,
            L3::Ipv6 { .. } => DropReason::MalformedIpv6,
        })
    }

    fn corpus() -> Vec<Vec<u8>> {
        vec![
            fixture(IPV4_UDP).to_vec(),
            fixture(IPV4_TCP).to_vec(),
            fixture(IPV4_ICMP).to_vec(),
            IPV6_UDP.to_vec(),
            IPV6_ICMP.to_vec(),
            VLAN_ARP[..46].to_vec(),
            testframes::vlan_ipv4_udp(3, b"payload"),
            testframes::ipv6_tcp_syn(1, 2),
            testframes::arp(1, testframes::POD_MAC, POD_V4, PEER_V4),
        ]
    }

    #[test]
    fn truncated_at_every_offset() {
        for frame in corpus() {
            for cut in 0..=frame.len() {
                let expected = truncation_reason(&frame, cut);
                assert_eq!(
                    parse(&frame[..cut]).err(),
                    expected,
                    "cut {cut} of {frame:02x?}"
                );
            }
        }
    }

    /// Cut the IP packet (not the frame) at every offset inside the
    /// transport header, with the IP length made consistent: the transport
    /// check is what fails.
    #[test]
    fn transport_cut_at_every_offset() {
        for frame in corpus() {
            let meta = parse(&frame).unwrap();
            if meta.l4_offset == 0 {
                continue;
            }
            let l3 = meta.l3_offset;
            let header_len = match meta.ip_proto {
                ip_proto::TCP => usize::from(frame[meta.l4_offset + 12] >> 4) * 4,
                _ => 8,
            };
            for l4_cut in 0..header_len {
                let mut cut = frame[..meta.l4_offset + l4_cut].to_vec();
                let ip_len = cut.len() - l3;
                match meta.l3 {
                    L3::Ipv4 { .. } => {
                        cut[l3 + 2..l3 + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                        fix_checksum(&mut cut, l3);
                    }
                    _ => cut[l3 + 4..l3 + 6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes()),
                }
                assert_eq!(
                    parse(&cut),
                    Err(DropReason::MalformedL4),
                    "l4 cut {l4_cut} of {frame:02x?}"
                );
            }
        }
    }

    #[test]
    fn corrupted_ipv4_fields() {
        let good = fixture(IPV4_UDP);
        let corrupt = |offset: usize, value: &[u8], fix: bool| {
            let mut frame = good;
            frame[offset..offset + value.len()].copy_from_slice(value);
            if fix {
                fix_checksum(&mut frame, 14);
            }
            parse(&frame)
        };
        use DropReason::*;
        // Version.
        assert_eq!(corrupt(14, &[0x65], true), Err(MalformedIpv4));
        assert_eq!(corrupt(14, &[0x05], true), Err(MalformedIpv4));
        // IHL below 5, IHL past the frame, IHL past the total length.
        for ihl in 0..5u8 {
            assert_eq!(corrupt(14, &[0x40 | ihl], false), Err(MalformedIpv4));
        }
        assert_eq!(corrupt(14, &[0x4f], false), Err(MalformedIpv4));
        // IHL 7: the options eat the UDP header, 5 bytes are left of it.
        assert_eq!(corrupt(14, &[0x47], true), Err(MalformedL4));
        // IHL 15 inside a padded frame, but past the total length.
        let mut padded = good.to_vec();
        padded.resize(80, 0);
        padded[14] = 0x4f;
        fix_checksum(&mut padded, 14);
        assert_eq!(parse(&padded), Err(Ipv4BadLength));
        // Total length: under the header, past the frame.
        assert_eq!(corrupt(16, &19u16.to_be_bytes(), true), Err(Ipv4BadLength));
        assert_eq!(corrupt(16, &0u16.to_be_bytes(), true), Err(Ipv4BadLength));
        assert_eq!(corrupt(16, &34u16.to_be_bytes(), true), Err(Ipv4BadLength));
        // Checksum: any single bit of the header flipped.
        for byte in 14..34 {
            for bit in 0..8 {
                let mut frame = good;
                frame[byte] ^= 1 << bit;
                assert!(parse(&frame).is_err(), "flip {byte}.{bit}");
            }
        }
        assert_eq!(corrupt(24, &[0, 0], false), Err(Ipv4BadChecksum));
        // UDP length: under 8, past the payload; shorter is accepted.
        assert_eq!(corrupt(38, &7u16.to_be_bytes(), false), Err(MalformedL4));
        assert_eq!(corrupt(38, &0u16.to_be_bytes(), false), Err(MalformedL4));
        assert_eq!(corrupt(38, &14u16.to_be_bytes(), false), Err(MalformedL4));
        assert!(corrupt(38, &8u16.to_be_bytes(), false).is_ok());
    }

    #[test]
    fn corrupted_tcp_data_offset() {
        let good = fixture(IPV4_TCP);
        for data_offset in 0..16u8 {
            let mut frame = good;
            frame[46] = data_offset << 4;
            let expected = match data_offset {
                0..=4 => Err(DropReason::MalformedL4),
                // The segment is 24 bytes: offsets 5 and 6 fit, more do not.
                5 | 6 => Ok(()),
                _ => Err(DropReason::MalformedL4),
            };
            assert_eq!(
                parse(&frame).map(|_| ()),
                expected,
                "data offset {data_offset}"
            );
        }
    }

    #[test]
    fn corrupted_ipv6_fields() {
        let mut frame = IPV6_UDP;
        frame[14] = 0x40;
        assert_eq!(parse(&frame), Err(DropReason::MalformedIpv6));
        let mut frame = IPV6_UDP;
        frame[18..20].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(parse(&frame), Err(DropReason::MalformedIpv6));
        let mut frame = IPV6_UDP;
        frame[58..60].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(parse(&frame), Err(DropReason::MalformedL4));
    }

    #[test]
    fn ipv4_fragments() {
        let mut first = fixture(IPV4_UDP);
        first[20] = 0x20; // MF
        fix_checksum(&mut first, 14);
        // The first fragment's UDP length covers the whole datagram.
        first[38..40].copy_from_slice(&1400u16.to_be_bytes());
        let first_meta = parse(&first).unwrap();
        assert!(first_meta.is_fragment);
        assert_eq!((first_meta.l4_offset, first_meta.l4.ports().0), (34, 1000));

        let mut later = fixture(IPV4_UDP);
        later[20..22].copy_from_slice(&0x00b9u16.to_be_bytes()); // offset 185 × 8, last
        later[34..47].copy_from_slice(b"arbitrary dat");
        fix_checksum(&mut later, 14);
        let later_meta = parse(&later).unwrap();
        assert!(later_meta.is_fragment);
        assert_eq!(
            (
                later_meta.l4_offset,
                later_meta.l4.ports().0,
                later_meta.l4.ports().1
            ),
            (0, 0, 0)
        );
        assert_eq!(later_meta.ip_proto, ip_proto::UDP);
        // All fragments of a packet hash alike.
        assert_eq!(first_meta.flow_hash(), later_meta.flow_hash());

        // A first fragment too short for its transport header is refused.
        let mut tiny = fixture(IPV4_TCP);
        tiny[20] = 0x20;
        tiny[16..18].copy_from_slice(&36u16.to_be_bytes());
        fix_checksum(&mut tiny, 14);
        assert_eq!(parse(&tiny[..50]), Err(DropReason::MalformedL4));
    }

    /// IPv6 with `ext` (extension headers, 8-byte multiples) between the
    /// fixed header and a UDP datagram; `first` is the first next header.
    fn ipv6_with_extensions(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut frame = IPV6_UDP[..54].to_vec();
        frame[20] = first;
        frame.extend_from_slice(ext);
        frame.extend_from_slice(&IPV6_UDP[54..]);
        let payload = (frame.len() - 54) as u16;
        frame[18..20].copy_from_slice(&payload.to_be_bytes());
        frame
    }

    #[test]
    fn ipv6_extension_headers() {
        // Hop-by-hop (8 bytes, PadN) then UDP.
        let hop = hex!("11 00 0104 00000000");
        let meta = parse(&ipv6_with_extensions(0, &hop)).unwrap();
        assert_eq!(
            (meta.ip_proto, meta.l4_offset, meta.is_fragment),
            (ip_proto::UDP, 0, false)
        );
        // Destination options → routing → UDP.
        let chain = hex!("2b 00 0104 00000000  11 00 0000 00000000");
        let meta = parse(&ipv6_with_extensions(60, &chain)).unwrap();
        assert_eq!(meta.ip_proto, ip_proto::UDP);
        // Authentication header (length in 4-byte units, minus 2).
        let auth = hex!("11 01 0000 00000001 00000002");
        let meta = parse(&ipv6_with_extensions(51, &auth[..12])).unwrap();
        assert_eq!(meta.ip_proto, ip_proto::UDP);
        // Fragment header: a fragment, with the fragment's protocol.
        let fragment = hex!("11 00 0001 12345678");
        let first = parse(&ipv6_with_extensions(44, &fragment)).unwrap();
        assert_eq!(
            (first.ip_proto, first.l4_offset, first.is_fragment),
            (ip_proto::UDP, 0, true)
        );
        let later = parse(&ipv6_with_extensions(44, &hex!("11 00 0100 12345678"))).unwrap();
        assert_eq!(first.flow_hash(), later.flow_hash());
        // A first fragment too short for its UDP header is refused, as for
        // IPv4; a later fragment carries no header to check.
        for (fragment, tiny) in [
            (hex!("11 00 0001 12345678"), Err(DropReason::MalformedL4)),
            (hex!("11 00 0101 12345678"), Ok(true)),
        ] {
            let mut frame = IPV6_UDP[..54].to_vec();
            frame[20] = 44;
            frame.extend_from_slice(&fragment);
            frame.extend_from_slice(&IPV6_UDP[54..56]);
            frame[18..20].copy_from_slice(&10u16.to_be_bytes());
            assert_eq!(parse(&frame).map(|m| m.is_fragment), tiny);
        }
        // Truncated extension headers: the header's length runs past the packet.
        let long_hop = hex!("11 05 0104 00000000");
        assert_eq!(
            parse(&ipv6_with_extensions(0, &long_hop)),
            Err(DropReason::MalformedIpv6)
        );
        let frame = ipv6_with_extensions(44, &fragment);
        let mut cut = frame[..58].to_vec();
        cut[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse(&cut), Err(DropReason::MalformedIpv6));
        // A chain longer than the parser walks: no transport, no error.
        let mut many = Vec::new();
        for _ in 0..MAX_IPV6_EXTENSIONS + 2 {
            many.extend_from_slice(&hex!("3c 00 0104 00000000"));
        }
        let meta = parse(&ipv6_with_extensions(60, &many)).unwrap();
        assert_eq!((meta.ip_proto, meta.l4_offset), (60, 0));
    }

    #[test]
    fn unknown_protocols_keep_the_payload_offset() {
        let mut frame = fixture(IPV4_UDP);
        frame[23] = 47; // GRE
        fix_checksum(&mut frame, 14);
        let meta = parse(&frame).unwrap();
        assert_eq!(
            (meta.ip_proto, meta.l4_offset, meta.l4.ports()),
            (47, 34, (0, 0))
        );
    }

    #[test]
    fn flow_hash_depends_on_every_field() {
        let base = parse(&IPV4_UDP).unwrap();
        let h = base.flow_hash();
        assert_eq!(h, parse(&IPV4_UDP).unwrap().flow_hash(), "stable");
        let variants = [
            FrameMeta {
                l4: L4::Udp {
                    src_port: 1001,
                    dst_port: 2000,
                },
                ..base
            },
            FrameMeta {
                l4: L4::Udp {
                    src_port: 1000,
                    dst_port: 2001,
                },
                ..base
            },
            FrameMeta {
                ip_proto: ip_proto::TCP,
                ..base
            },
            FrameMeta {
                l3: L3::Ipv4 {
                    src: Ipv4Addr::new(10, 1, 0, 6),
                    dst: PEER_V4,
                },
                ..base
            },
            FrameMeta {
                l3: L3::Ipv4 {
                    src: POD_V4,
                    dst: Ipv4Addr::new(10, 2, 0, 8),
                },
                ..base
            },
            FrameMeta {
                l3: L3::Ipv4 {
                    src: PEER_V4,
                    dst: POD_V4,
                },
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.flow_hash(), h, "{v:?}");
        }
        // MACs, VLAN and lengths are not part of the flow.
        let same = FrameMeta {
            src_mac: [9; 6],
            vlan: Some(3),
            l3_len: 1000,
            ..base
        };
        assert_eq!(same.flow_hash(), h);
        let v6 = parse(&IPV6_UDP).unwrap();
        assert_ne!(
            v6.flow_hash(),
            FrameMeta {
                l4: L4::Udp {
                    src_port: 1,
                    dst_port: 2000
                },
                ..v6
            }
            .flow_hash()
        );
        assert_ne!(
            v6.flow_hash(),
            FrameMeta {
                l3: L3::Ipv6 {
                    src: PEER_V6,
                    dst: POD_V6
                },
                ..v6
            }
            .flow_hash()
        );
    }

    /// Buckets of `bits` bits taken from the low and the high end of the
    /// hash, for flows that differ in one field by small steps: no bucket
    /// may hold much more than its fair share.
    fn assert_spreads(hashes: &[u32], bits: u32) {
        let buckets = 1usize << bits;
        let fair = hashes.len() / buckets;
        for (name, shift) in [("low", 0), ("high", 32 - bits)] {
            let mut counts = vec![0usize; buckets];
            for h in hashes {
                counts[((h >> shift) as usize) & (buckets - 1)] += 1;
            }
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            assert!(
                max < fair * 2 && min > fair / 3,
                "{name} bits: min {min} max {max} fair {fair}"
            );
        }
    }

    #[test]
    fn flow_hash_spreads_in_low_and_high_bits() {
        let base = parse(&IPV4_UDP).unwrap();
        let by_port: Vec<u32> = (0..65535u16)
            .map(|p| {
                FrameMeta {
                    l4: L4::Udp {
                        src_port: p,
                        dst_port: 2000,
                    },
                    ..base
                }
                .flow_hash()
            })
            .collect();
        assert_spreads(&by_port, 8);
        let by_addr: Vec<u32> = (0..65536u32)
            .map(|i| {
                FrameMeta {
                    l3: L3::Ipv4 {
                        src: Ipv4Addr::from_bits(0x0a00_0000 + i),
                        dst: PEER_V4,
                    },
                    ..base
                }
                .flow_hash()
            })
            .collect();
        assert_spreads(&by_addr, 8);
        let v6 = parse(&IPV6_UDP).unwrap();
        let by_v6: Vec<u32> = (0..65536u128)
            .map(|i| {
                FrameMeta {
                    l3: L3::Ipv6 {
                        src: POD_V6,
                        dst: Ipv6Addr::from_bits(PEER_V6.to_bits() + i),
                    },
                    ..v6
                }
                .flow_hash()
            })
            .collect();
        assert_spreads(&by_v6, 8);
    }

    /// Rough cost of parse + flow_hash on 64-byte frames (the real benchmark
    /// is bench/). `cargo test --release -p kxdp-dataplane --lib --
    /// --ignored --nocapture timing`.
    #[test]
    #[ignore = "timing, run in release"]
    fn timing_parse_flow_hash() {
        let frames = [
            (
                "IPv4/UDP",
                testframes::ipv4_udp(1000, 2000, &[0u8; 64 - 42]),
            ),
            ("IPv4/TCP", {
                let mut f = testframes::ipv4_tcp_syn(1000, 80);
                f.resize(64, 0);
                f
            }),
            (
                "IPv6/UDP",
                testframes::ipv6_udp(1000, 2000, &[0u8; 64 - 62 + 2]),
            ),
        ];
        for (name, frame) in &frames {
            let rounds = 20_000_000u32;
            let start = std::time::Instant::now();
            let mut acc = 0u32;
            for _ in 0..rounds {
                if let Ok(meta) = parse(std::hint::black_box(frame)) {
                    acc = acc.wrapping_add(meta.flow_hash());
                }
            }
            std::hint::black_box(acc);
            let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
            println!(
                "parse + flow_hash {name} ({} bytes): {ns:.2} ns/packet",
                frame.len()
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(meta) = parse(&bytes) {
                prop_assert!(meta.l3_offset + meta.l3_len <= bytes.len());
                prop_assert!(meta.l4_offset <= meta.l3_offset + meta.l3_len);
            }
        }

        /// Mostly-valid input reaches the deep paths: valid frames with one
        /// byte changed and cut anywhere.
        #[test]
        fn parse_never_panics_on_damaged_frames(
            frame in testframes::arb_ip_frame(),
            index in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut frame = frame;
            let i = index.index(frame.len());
            frame[i] = value;
            let cut = cut.index(frame.len() + 1);
            if let Ok(meta) = parse(&frame[..cut]) {
                prop_assert!(meta.l3_offset + meta.l3_len <= cut);
            }
        }

        #[test]
        fn valid_frames_parse(frame in testframes::arb_ip_frame()) {
            let meta = parse(&frame).unwrap();
            prop_assert_eq!(meta.l3_offset + meta.l3_len, frame.len());
            prop_assert_eq!(meta.l4_offset, meta.l3_offset + if frame[12] == 0x86 { 40 } else { 20 });
        }
    }
}
