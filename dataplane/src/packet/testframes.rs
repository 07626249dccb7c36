//! Frames for the packet and VXLAN tests, built with etherparse's
//! `PacketBuilder` (an implementation independent of the parser under test),
//! and proptest strategies that generate valid frames of every kind.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv6Type, PacketBuilder, VlanId};
use proptest::prelude::*;

/// The pod's MAC in test frames.
pub const POD_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// The gateway (the dataplane's port) MAC in test frames.
pub const GW_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
/// The pod's IPv4 address.
pub const POD_V4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 5);
/// Another pod's IPv4 address.
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 7);
/// The pod's IPv6 address.
pub const POD_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5);
/// Another pod's IPv6 address.
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 7);

fn eth() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    PacketBuilder::ethernet2(POD_MAC, GW_MAC)
}

/// Ethernet/IPv4/UDP from the pod to the peer.
pub fn ipv4_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let builder = eth()
        .ipv4(POD_V4.octets(), PEER_V4.octets(), 64)
        .udp(src_port, dst_port);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

/// Ethernet/802.1Q/IPv4/UDP.
pub fn vlan_ipv4_udp(vid: u16, payload: &[u8]) -> Vec<u8> {
    let builder = eth()
        .single_vlan(VlanId::try_new(vid).unwrap())
        .ipv4(POD_V4.octets(), PEER_V4.octets(), 64)
        .udp(1000, 2000);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

/// Ethernet/IPv4/TCP SYN.
pub fn ipv4_tcp_syn(src_port: u16, dst_port: u16) -> Vec<u8> {
    let builder = eth()
        .ipv4(POD_V4.octets(), PEER_V4.octets(), 64)
        .tcp(src_port, dst_port, 0x1234_5678, 64240)
        .syn();
    let mut out = Vec::new();
    builder.write(&mut out, &[]).unwrap();
    out
}

/// Ethernet/IPv4/ICMP echo request.
pub fn ipv4_icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let builder = eth()
        .ipv4(POD_V4.octets(), PEER_V4.octets(), 64)
        .icmpv4_echo_request(id, seq);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

/// Ethernet/IPv6/UDP.
pub fn ipv6_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let builder = eth()
        .ipv6(POD_V6.octets(), PEER_V6.octets(), 64)
        .udp(src_port, dst_port);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

/// Ethernet/IPv6/TCP SYN.
pub fn ipv6_tcp_syn(src_port: u16, dst_port: u16) -> Vec<u8> {
    let builder = eth()
        .ipv6(POD_V6.octets(), PEER_V6.octets(), 64)
        .tcp(src_port, dst_port, 7, 1000)
        .syn();
    let mut out = Vec::new();
    builder.write(&mut out, &[]).unwrap();
    out
}

/// Ethernet/IPv6/ICMPv6 echo request.
pub fn ipv6_icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let builder = eth()
        .ipv6(POD_V6.octets(), PEER_V6.octets(), 64)
        .icmpv6_echo_request(id, seq);
    let mut out = Vec::new();
    builder.write(&mut out, payload).unwrap();
    out
}

/// Ethernet/ARP, Ethernet/IPv4, with `operation` (1 request, 2 reply).
pub fn arp(
    operation: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    out.extend_from_slice(&[0xff; 6]);
    out.extend_from_slice(&sender_mac);
    out.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
    out.extend_from_slice(&operation.to_be_bytes());
    out.extend_from_slice(&sender_mac);
    out.extend_from_slice(&sender_ip.octets());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&target_ip.octets());
    out
}

/// Ethernet/IPv6/ICMPv6 neighbour solicitation for `target`, from `src`
/// (with a source link-layer option when `src` is specified), to the
/// solicited-node multicast address of `target`, hop limit 255.
pub fn neighbour_solicitation(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let dst = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let d = dst.octets();
    let dst_mac = [0x33, 0x33, d[12], d[13], d[14], d[15]];
    let mut body = t.to_vec();
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&POD_MAC);
    }
    let builder = PacketBuilder::ethernet2(POD_MAC, dst_mac)
        .ipv6(src.octets(), dst.octets(), 255)
        .icmpv6(Icmpv6Type::NeighborSolicitation);
    let mut out = Vec::new();
    builder.write(&mut out, &body).unwrap();
    out
}

/// Any valid IPv4 or IPv6 frame (UDP, TCP, ICMP/ICMPv6, or a protocol the
/// parser does not read) with a random payload, from random addresses.
pub fn arb_ip_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        0u8..4,
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<(u16, u16)>(),
        2u8..=255,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(v6, kind, s4, d4, s6, d6, (sp, dp), ttl, payload)| {
            let start = eth();
            let mut out = Vec::new();
            if v6 {
                let ip = start.ipv6(s6, d6, ttl);
                match kind {
                    0 => ip.udp(sp, dp).write(&mut out, &payload).unwrap(),
                    1 => ip
                        .tcp(sp, dp, 1, 100)
                        .ack(9)
                        .write(&mut out, &payload)
                        .unwrap(),
                    2 => ip
                        .icmpv6_echo_request(sp, dp)
                        .write(&mut out, &payload)
                        .unwrap(),
                    _ => ip
                        .write(&mut out, etherparse::IpNumber(132), &payload)
                        .unwrap(),
                }
            } else {
                let ip = start.ipv4(s4, d4, ttl);
                match kind {
                    0 => ip.udp(sp, dp).write(&mut out, &payload).unwrap(),
                    1 => ip
                        .tcp(sp, dp, 1, 100)
                        .ack(9)
                        .write(&mut out, &payload)
                        .unwrap(),
                    2 => ip
                        .icmpv4_echo_request(sp, dp)
                        .write(&mut out, &payload)
                        .unwrap(),
                    _ => ip
                        .write(&mut out, etherparse::IpNumber(47), &payload)
                        .unwrap(),
                }
            }
            out
        })
}
