//! Shared by kxdp's fuzz targets (`fuzz_targets/`): the fixed
//! configurations they run frames and updates against.

use std::net::IpAddr;

use kxdp_config::NodeConfig;
use kxdp_dataplane::tables::{PortKind, Tables};

/// The pipeline tests' node: two pods (ports 1 and 2, dual stack on one),
/// one remote node, tenant blue (VNI 100), VTEP 192.168.100.1 on port 0.
pub const NODE1_YAML: &str = include_str!("../../../dataplane/tests/fixtures/node1.yaml");

/// The example node shared by tenants blue (VNI 100) and red (VNI 200) with
/// overlapping addresses, extra routes to a node and to a blackhole.
pub const TWO_TENANTS_YAML: &str = include_str!("../../../config/examples/two-tenants.yaml");

/// Parse, validate and compile a fixture. Panics on a bad fixture: that is
/// a broken test set-up, not a finding.
pub fn compile_fixture(yaml: &str) -> Tables {
    let config = match NodeConfig::from_yaml_str(yaml) {
        Ok(config) => config,
        Err(e) => panic!("fixture does not validate: {e}"),
    };
    match Tables::compile(&config, 1) {
        Ok(tables) => tables,
        Err(e) => panic!("fixture does not compile: {e}"),
    }
}

/// EtherType of IPv4.
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// Rewrite the IPv4 header checksum of an Ethernet/IPv4 frame so that it is
/// right, and, when the frame is UDP to port 4789 (VXLAN), the inner
/// frame's too. Lets a fuzzer change addresses and lengths without being
/// stopped at every checksum check; anything that does not look like such a
/// frame is left alone. The sum is RFC 1071's, written here on purpose
/// rather than taken from the code under test.
pub fn fix_ipv4_checksums(frame: &mut [u8]) {
    if let Some(inner) = fix_one(frame) {
        if let Some(inner_frame) = frame.get_mut(inner..) {
            let _ = fix_one(inner_frame);
        }
    }
}

/// Fix the checksum of the IPv4 header at byte 14; the offset of the inner
/// frame when it is VXLAN.
fn fix_one(frame: &mut [u8]) -> Option<usize> {
    if frame.get(12..14)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ihl = usize::from(*frame.get(14)? & 0x0f) * 4;
    let header = frame.get_mut(14..14 + ihl)?;
    if ihl < 20 {
        return None;
    }
    header[10] = 0;
    header[11] = 0;
    let checksum = !(ones_complement_sum(header, 0) as u16);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    let is_udp = header[9] == 17;
    let udp = 14 + ihl;
    let port = frame.get(udp + 2..udp + 4)?;
    (is_udp && port == [0x12, 0xb5]).then_some(udp + 16)
}

/// RFC 1071: the one's-complement sum of `data` (big-endian words, an odd
/// last byte padded), folded to 16 bits, not inverted.
fn ones_complement_sum(data: &[u8], initial: u32) -> u32 {
    let mut sum = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .fold(initial, u32::wrapping_add);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// A pod a frame can come from.
#[derive(Clone, Copy, Debug)]
pub struct PodTarget {
    /// The pod's MAC.
    pub mac: [u8; 6],
    /// Its port's MAC.
    pub port_mac: [u8; 6],
    /// Its IPv4 address.
    pub ipv4: Option<IpAddr>,
    /// Its IPv6 address.
    pub ipv6: Option<IpAddr>,
}

/// What a table set offers a frame builder: its pods, its VNIs, the local
/// VTEP, and the addresses worth sending to.
#[derive(Debug)]
pub struct Targets {
    /// Every pod port's pod.
    pub pods: Vec<PodTarget>,
    /// Every tenant's VNI, and one no tenant has.
    pub vnis: Vec<u32>,
    /// The underlay port's MAC, the VTEP address and its UDP port.
    pub underlay: ([u8; 6], IpAddr, u16),
    /// Pod and gateway addresses, and each routed prefix's first, second and
    /// last address.
    pub addresses: Vec<IpAddr>,
}

impl Targets {
    /// Collect them from compiled tables.
    pub fn of(tables: &Tables) -> Targets {
        let mut pods = Vec::new();
        let mut addresses = Vec::new();
        for port in tables.ports() {
            if let PortKind::Pod(pod) = &port.kind {
                let ipv4 = pod.ipv4.map(IpAddr::V4);
                let ipv6 = pod.ipv6.map(IpAddr::V6);
                pods.push(PodTarget {
                    mac: pod.mac,
                    port_mac: port.mac,
                    ipv4,
                    ipv6,
                });
                addresses.extend(ipv4.into_iter().chain(ipv6));
                addresses.extend(pod.gateway4.map(IpAddr::V4));
                addresses.extend(pod.gateway6.map(IpAddr::V6));
            }
        }
        for (_, net, _) in tables.routes() {
            let (first, last) = (net.network(), net.broadcast());
            let second = match first {
                IpAddr::V4(a) => IpAddr::V4(a.to_bits().wrapping_add(1).into()),
                IpAddr::V6(a) => IpAddr::V6(a.to_bits().wrapping_add(1).into()),
            };
            addresses.extend([first, second, last]);
        }
        addresses.sort_unstable();
        addresses.dedup();
        let mut vnis: Vec<u32> = tables.tenants().iter().map(|t| t.vni).collect();
        vnis.push(0x00ab_cdef);
        let vtep = tables.vtep();
        let underlay_mac = tables.port(vtep.port).map(|p| p.mac).unwrap_or([0; 6]);
        Targets {
            pods,
            vnis,
            underlay: (underlay_mac, IpAddr::V4(vtep.ip), vtep.udp_port),
            addresses,
        }
    }

    /// Build a well-formed frame from a few choices, the way a pod or a
    /// remote VTEP would send it: `[kind, source, destination, ttl,
    /// payload…]`. Kind (mod 4): from a pod over IPv4 or IPv6 (source: which
    /// pod; its own MACs and address), or VXLAN from a remote node
    /// (source: which VNI) carrying an IPv4 or IPv6 packet. The destination
    /// picks one of [`Targets::addresses`] of the right family. Checksums
    /// are right. `None` when the choices do not fit (no pod, no address).
    pub fn frame(&self, choices: &[u8]) -> Option<Vec<u8>> {
        let [kind, source, destination, ttl, payload @ ..] = choices else {
            return None;
        };
        let v6 = kind & 1 == 1;
        let of_family: Vec<IpAddr> = self
            .addresses
            .iter()
            .copied()
            .filter(|a| a.is_ipv6() == v6)
            .collect();
        let dst = *of_family.get(usize::from(*destination) % of_family.len().max(1))?;
        if kind & 2 == 0 {
            let pod = self
                .pods
                .get(usize::from(*source) % self.pods.len().max(1))?;
            let src = if v6 { pod.ipv6 } else { pod.ipv4 }?;
            let packet = ip_udp(src, dst, *ttl, 40_000, 5_000, payload)?;
            return Some(ethernet(pod.port_mac, pod.mac, v6, &packet));
        }
        let vni = *self.vnis.get(usize::from(*source) % self.vnis.len())?;
        let src = if v6 {
            IpAddr::V6([0xfd00, 0, 0, 0x99, 0, 0, 0, 7].into())
        } else {
            IpAddr::V4([10, 0, 99, 7].into())
        };
        let inner_packet = ip_udp(src, dst, *ttl, 40_000, 5_000, payload)?;
        let (underlay_mac, vtep, udp_port) = self.underlay;
        let inner = ethernet(
            [2, 0, 0, 0, 0xee, 1],
            [2, 0, 0, 0, 0xee, 2],
            v6,
            &inner_packet,
        );
        let mut vxlan = vec![0x08, 0, 0, 0];
        vxlan.extend_from_slice(&(vni << 8).to_be_bytes());
        vxlan.extend_from_slice(&inner);
        let remote = IpAddr::V4([192, 168, 100, 2].into());
        let outer = ip_udp(remote, vtep, 64, 50_000, udp_port, &vxlan)?;
        Some(ethernet(underlay_mac, [2, 0, 0, 0, 0xee, 3], false, &outer))
    }
}

/// An Ethernet frame around an IP packet.
fn ethernet(dst: [u8; 6], src: [u8; 6], v6: bool, packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + packet.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &ETHERTYPE_IPV4 });
    frame.extend_from_slice(packet);
    frame
}

/// An IPv4 or IPv6 packet with a UDP datagram, checksums right. `None` for
/// mixed families or a payload too long.
fn ip_udp(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    sport: u16,
    dport: u16,
    data: &[u8],
) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(8 + data.len()).ok()?;
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(data);
    let mut packet = Vec::new();
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = udp_len.checked_add(20)?;
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&total.to_be_bytes());
            packet.extend_from_slice(&[0, 1, 0x40, 0, ttl, 17, 0, 0]);
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            let checksum = !(ones_complement_sum(&packet, 0) as u16);
            packet[10..12].copy_from_slice(&checksum.to_be_bytes());
            let mut pseudo = [s.octets(), d.octets()].concat();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&udp_len.to_be_bytes());
            pseudo
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&udp_len.to_be_bytes());
            packet.extend_from_slice(&[17, ttl]);
            packet.extend_from_slice(&s.octets());
            packet.extend_from_slice(&d.octets());
            let mut pseudo = [s.octets(), d.octets()].concat();
            pseudo.extend_from_slice(&u32::from(udp_len).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            pseudo
        }
        _ => return None,
    };
    let sum = ones_complement_sum(&udp, ones_complement_sum(&pseudo, 0));
    let checksum = match !(sum as u16) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&checksum.to_be_bytes());
    packet.extend_from_slice(&udp);
    Some(packet)
}
