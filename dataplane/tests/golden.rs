//! Golden tests: kxdp's VXLAN encapsulation and decapsulation against frames
//! captured from the Linux kernel's vxlan device.
//!
//! `fixtures/make-golden.sh` (run as root) sent IPv4 ICMP, IPv4 UDP, IPv4 TCP
//! SYN and IPv6 UDP through a kernel vxlan device (`id 42 local 192.0.2.1
//! remote 192.0.2.2 dstport 4789 df set ttl 64 nolearning`) and captured
//! what came out on the underlay veth, two packets of one flow per file. For
//! each captured frame this test takes the inner frame, encapsulates it with
//! kxdp's [`vxlan::encap`] using the same MACs, addresses, VNI and port, and
//! compares the result byte for byte with the kernel's, except the fields
//! that must differ:
//!
//! - outer IPv4 identification: the kernel numbers its packets (non-zero,
//!   incrementing); kxdp sends 0, which RFC 6864 allows for atomic (DF set,
//!   unfragmented) datagrams;
//! - outer IPv4 header checksum: it covers the identification; each side's
//!   is checked valid on its own;
//! - outer UDP source port: both derive it from a hash of the inner flow,
//!   with different hash functions and ranges. kxdp uses 49152..=65535
//!   (RFC 7348 §5); the kernel, with `srcport` unset, uses the local port
//!   range, 32768..=60999 by default (`ip_local_port_range`). Each is checked
//!   to be stable across the two packets of a flow, except the kernel's for
//!   the TCP SYN's retransmission: Linux re-hashes a socket's flow after a
//!   retransmission timeout (`sk_rethink_txhash`), on purpose, so the
//!   retransmitted SYN leaves from another port;
//! - outer UDP checksum: the kernel's vxlan device computes one by default
//!   (iproute2 shows `udpcsum`); kxdp sends zero, as RFC 7348 §5 says it
//!   should. The kernel's is checked valid with kxdp's checksum code.
//!
//! The test also decapsulates the kernel's frames with kxdp's
//! [`vxlan::decap`] and checks the inner frame comes back exactly.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::ops::Range;

use kxdp_dataplane::packet::{self, ip_proto, L3};
use kxdp_dataplane::vxlan::{self, EncapTemplate, ENCAP_OVERHEAD, VXLAN_PORT};
use kxdp_dataplane::wire::checksum;
use kxdp_dataplane::DropReason;
use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;

// The parameters make-golden.sh used.
const VNI: u32 = 42;
const UNDERLAY_A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const UNDERLAY_B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const UNDERLAY_A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
const UNDERLAY_B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
const VX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x42];
const OVERLAY_B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x42];
const OVERLAY_A_IP4: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);
const OVERLAY_B_IP4: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 2);
const UDP_DPORT: u16 = 5000;
const TCP_DPORT: u16 = 8080;

// Fields of the outer headers (offsets in the outer frame).
const IP_ID: Range<usize> = 18..20;
const IP_CHECKSUM: Range<usize> = 24..26;
const UDP_SRC_PORT: Range<usize> = 34..36;
const UDP_CHECKSUM: Range<usize> = 40..42;

/// The kernel's default `ip_local_port_range`, its vxlan source ports.
const KERNEL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;
const KXDP_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The frames of one pcap fixture, checked to be whole Ethernet frames.
fn read_pcap(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = PcapReader::new(file).unwrap();
    assert_eq!(reader.header().datalink, DataLink::ETHERNET, "{name}");
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        assert_eq!(
            packet.orig_len as usize,
            packet.data.len(),
            "{name}: truncated capture"
        );
        frames.push(packet.data.into_owned());
    }
    assert_eq!(frames.len(), 2, "{name}: two packets of one flow");
    frames
}

fn be16(bytes: &[u8], range: Range<usize>) -> u16 {
    u16::from_be_bytes([bytes[range.start], bytes[range.start + 1]])
}

/// Whether the outer UDP checksum of `frame` is correct (over the IPv4
/// pseudo-header and the whole datagram).
fn outer_udp_checksum_valid(frame: &[u8]) -> bool {
    let udp = &frame[34..];
    let pseudo = checksum::sum(&frame[26..34], 0) + u32::from(ip_proto::UDP) + udp.len() as u32;
    checksum::finish(checksum::sum(udp, pseudo)) == 0
}

/// kxdp's encapsulation of `inner`, as the pipeline does it: the inner frame
/// sits after headroom in a chunk, the outer headers go before it.
fn kxdp_encap(inner: &[u8]) -> Vec<u8> {
    let template = EncapTemplate::new(
        UNDERLAY_A_MAC,
        UNDERLAY_B_MAC,
        UNDERLAY_A_IP,
        UNDERLAY_B_IP,
        VNI,
        VXLAN_PORT,
    );
    let meta = packet::parse(inner).unwrap();
    let headroom = 256;
    let mut chunk = vec![0u8; 2048];
    chunk[headroom..headroom + inner.len()].copy_from_slice(inner);
    let start = vxlan::encap(
        &mut chunk,
        headroom,
        inner.len(),
        &template,
        vxlan::source_port(meta.flow_hash()),
    );
    chunk[start..headroom + inner.len()].to_vec()
}

/// What one fixture must contain.
struct Golden {
    file: &'static str,
    /// Checks on the parsed inner frame.
    check_inner: fn(&packet::FrameMeta),
    /// Whether the kernel kept one source port for the flow's two packets.
    kernel_port_stable: bool,
}

fn check_file(golden: &Golden) {
    let name = golden.file;
    let frames = read_pcap(name);
    let mut kxdp_ports = Vec::new();
    let mut kernel_ports = Vec::new();
    for (n, kernel) in frames.iter().enumerate() {
        // 1. kxdp decapsulates the kernel's frame.
        let d = vxlan::decap(kernel, UNDERLAY_B_IP, VXLAN_PORT)
            .unwrap_or_else(|r| panic!("{name}#{n}: {r:?}"));
        assert_eq!(d.vni, VNI, "{name}#{n}");
        assert_eq!(d.inner_offset, ENCAP_OVERHEAD, "{name}#{n}");
        assert_eq!(d.inner_len, kernel.len() - ENCAP_OVERHEAD, "{name}#{n}");
        let inner = &kernel[d.inner_offset..d.inner_offset + d.inner_len];
        let meta = packet::parse(inner).unwrap_or_else(|r| panic!("{name}#{n}: inner {r:?}"));
        assert_eq!(
            (meta.src_mac, meta.dst_mac),
            (VX_MAC, OVERLAY_B_MAC),
            "{name}#{n}"
        );
        (golden.check_inner)(&meta);
        // Not ours when addressed to another VTEP or port.
        assert_eq!(
            vxlan::decap(kernel, UNDERLAY_A_IP, VXLAN_PORT),
            Err(DropReason::VxlanNotForUs)
        );
        assert_eq!(
            vxlan::decap(kernel, UNDERLAY_B_IP, 8472),
            Err(DropReason::VxlanNotForUs)
        );

        // 2. kxdp encapsulates the same inner frame.
        let ours = kxdp_encap(inner);
        assert_eq!(ours.len(), kernel.len(), "{name}#{n}");
        let differs = [IP_ID, IP_CHECKSUM, UDP_SRC_PORT, UDP_CHECKSUM];
        for i in 0..ours.len() {
            if differs.iter().any(|r| r.contains(&i)) {
                continue;
            }
            assert_eq!(
                ours[i],
                kernel[i],
                "{name}#{n}: byte {i} differs\n kxdp:   {:02x?}\n kernel: {:02x?}",
                &ours[..ENCAP_OVERHEAD],
                &kernel[..ENCAP_OVERHEAD]
            );
        }

        // 3. The fields that differ, each on its own terms.
        assert_eq!(be16(&ours, IP_ID), 0, "kxdp sends ID 0");
        assert_ne!(
            be16(kernel, IP_ID),
            0,
            "{name}#{n}: the kernel numbers its packets"
        );
        assert_eq!(
            checksum::finish(checksum::sum(&ours[14..34], 0)),
            0,
            "{name}#{n}: kxdp's IPv4 checksum"
        );
        assert_eq!(
            checksum::finish(checksum::sum(&kernel[14..34], 0)),
            0,
            "{name}#{n}: kernel's IPv4 checksum"
        );
        assert_eq!(
            checksum::ipv4_header(&ours[14..34]),
            be16(&ours, IP_CHECKSUM),
            "{name}#{n}: incremental checksum equals a full one"
        );
        assert_eq!(be16(&ours, UDP_CHECKSUM), 0, "kxdp sends no UDP checksum");
        assert_ne!(
            be16(kernel, UDP_CHECKSUM),
            0,
            "{name}#{n}: kernel default udpcsum"
        );
        assert!(
            outer_udp_checksum_valid(kernel),
            "{name}#{n}: kernel's UDP checksum"
        );
        let (our_port, kernel_port) = (be16(&ours, UDP_SRC_PORT), be16(kernel, UDP_SRC_PORT));
        assert!(
            KXDP_PORTS.contains(&our_port),
            "{name}#{n}: kxdp port {our_port}"
        );
        assert!(
            KERNEL_PORTS.contains(&kernel_port),
            "{name}#{n}: kernel port {kernel_port}"
        );
        kxdp_ports.push(our_port);
        kernel_ports.push(kernel_port);

        // 4. kxdp decapsulates its own frame back to the same inner frame.
        let back = vxlan::decap(&ours, UNDERLAY_B_IP, VXLAN_PORT).unwrap();
        assert_eq!(back, d);
        assert_eq!(
            &ours[back.inner_offset..back.inner_offset + back.inner_len],
            inner
        );
    }
    assert_eq!(
        kxdp_ports[0], kxdp_ports[1],
        "{name}: kxdp's port is stable for a flow"
    );
    if golden.kernel_port_stable {
        assert_eq!(kernel_ports[0], kernel_ports[1], "{name}: kernel's port");
    } else {
        assert_ne!(
            kernel_ports[0], kernel_ports[1],
            "{name}: the kernel re-hashed the retransmission"
        );
    }
}

#[test]
fn ipv4_icmp_matches_kernel() {
    check_file(&Golden {
        file: "golden-ipv4-icmp.pcap",
        check_inner: |meta| {
            assert_eq!(
                meta.l3,
                L3::Ipv4 {
                    src: OVERLAY_A_IP4,
                    dst: OVERLAY_B_IP4
                }
            );
            assert_eq!(meta.ip_proto, ip_proto::ICMP);
            assert_eq!(meta.l4.ports().1, 0x0800, "echo request");
        },
        kernel_port_stable: true,
    });
}

#[test]
fn ipv4_udp_matches_kernel() {
    check_file(&Golden {
        file: "golden-ipv4-udp.pcap",
        check_inner: |meta| {
            assert_eq!(
                meta.l3,
                L3::Ipv4 {
                    src: OVERLAY_A_IP4,
                    dst: OVERLAY_B_IP4
                }
            );
            assert_eq!(
                (meta.ip_proto, meta.l4.ports().1),
                (ip_proto::UDP, UDP_DPORT)
            );
        },
        kernel_port_stable: true,
    });
}

#[test]
fn ipv4_tcp_syn_matches_kernel() {
    check_file(&Golden {
        file: "golden-ipv4-tcp-syn.pcap",
        check_inner: |meta| {
            assert_eq!(
                meta.l3,
                L3::Ipv4 {
                    src: OVERLAY_A_IP4,
                    dst: OVERLAY_B_IP4
                }
            );
            assert_eq!(
                (meta.ip_proto, meta.l4.ports().1),
                (ip_proto::TCP, TCP_DPORT)
            );
        },
        kernel_port_stable: false,
    });
}

#[test]
fn ipv6_udp_matches_kernel() {
    check_file(&Golden {
        file: "golden-ipv6-udp.pcap",
        check_inner: |meta| {
            assert_eq!(
                meta.l3,
                L3::Ipv6 {
                    src: "fd42::1".parse().unwrap(),
                    dst: "fd42::2".parse().unwrap()
                }
            );
            assert_eq!(
                (meta.ip_proto, meta.l4.ports().1),
                (ip_proto::UDP, UDP_DPORT)
            );
        },
        kernel_port_stable: true,
    });
}

#[test]
fn kernel_frames_damaged_are_refused() {
    // The kernel's own frames, corrupted: decap gives the documented reason.
    let frame = read_pcap("golden-ipv4-udp.pcap").remove(0);
    let mut bad_flags = frame.clone();
    bad_flags[42] = 0;
    assert_eq!(
        vxlan::decap(&bad_flags, UNDERLAY_B_IP, VXLAN_PORT),
        Err(DropReason::VxlanBadFlags)
    );
    let mut bad_checksum = frame.clone();
    bad_checksum[24] ^= 0xff;
    assert_eq!(
        vxlan::decap(&bad_checksum, UNDERLAY_B_IP, VXLAN_PORT),
        Err(DropReason::VxlanMalformed)
    );
    for cut in 0..frame.len() {
        assert!(
            vxlan::decap(&frame[..cut], UNDERLAY_B_IP, VXLAN_PORT).is_err(),
            "cut {cut}"
        );
    }
}
