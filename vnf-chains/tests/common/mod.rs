//! Shared helpers of the integration tests: frames built with etherparse,
//! a model builder, and an in-memory [`Frames`] that records mirror copies.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use etherparse::PacketBuilder;
use kxdp_config::{
    ChainSpec, EndpointSpec, InterfaceRole, InterfaceSpec, MacAddr, NamespaceSpec,
    NetworkPolicySpec, PodSpec, Protocol, ServicePortSpec, ServiceSpec, TenantSpec,
};
use kxdp_dataplane::packet;
use kxdp_dataplane::PortId;
use kxdp_vnf_chains::{ChainInput, ChainSet, CompileOptions, Frames, PacketContext, TableSize};

pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

/// A TCP or UDP frame between two addresses of one family.
pub fn frame(
    proto: Protocol,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = dst.parse().unwrap();
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => builder.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => builder.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut out = Vec::new();
    match proto {
        Protocol::Tcp => {
            let b = ip.tcp(sport, dport, 0x0102_0304, 65_000).ack(7).psh();
            b.write(&mut out, payload).unwrap();
        }
        Protocol::Udp => ip.udp(sport, dport).write(&mut out, payload).unwrap(),
        Protocol::Sctp => panic!("no SCTP builder"),
    }
    out
}

/// An ICMP echo request (v4).
pub fn ping(src: &str, dst: &str, id: u16) -> Vec<u8> {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4_echo_request(id, 1)
        .write(&mut out, b"ping")
        .unwrap();
    out
}

/// The context of a frame, parsed with the dataplane's parser.
pub fn context(frame: &[u8], in_port: PortId, tenant: u16) -> PacketContext {
    let meta = packet::parse(frame).unwrap();
    PacketContext::new(frame, meta, in_port, tenant)
}

/// One's-complement sum, the textbook way (16-bit words).
fn ones_sum(data: &[u8], mut acc: u32) -> u32 {
    for pair in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Check every checksum of an Ethernet/IP/TCP|UDP frame by full
/// recomputation (independent of the crate's incremental updates).
pub fn assert_checksums_valid(frame: &[u8]) {
    let l3 = &frame[14..];
    let (proto, l4, pseudo) = match l3[0] >> 4 {
        4 => {
            let ihl = usize::from(l3[0] & 0xf) * 4;
            assert_eq!(ones_sum(&l3[..ihl], 0), 0xffff, "IPv4 header checksum");
            let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            let l4 = &l3[ihl..total];
            let mut pseudo = l3[12..20].to_vec();
            pseudo.extend_from_slice(&[0, l3[9]]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            (l3[9], l4, pseudo)
        }
        6 => {
            let len = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
            let l4 = &l3[40..40 + len];
            let mut pseudo = l3[8..40].to_vec();
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, l3[6]]);
            (l3[6], l4, pseudo)
        }
        v => panic!("IP version {v}"),
    };
    if proto == 17 && l4[6..8] == [0, 0] {
        return; // IPv4 UDP without a checksum.
    }
    assert!(proto == 6 || proto == 17 || proto == 58);
    let sum = ones_sum(l4, ones_sum(&pseudo, 0));
    assert_eq!(sum, 0xffff, "transport checksum of proto {proto}");
}

/// Frames in memory, recording mirror copies.
#[derive(Debug, Default)]
pub struct TestFrames {
    pub frames: Vec<Vec<u8>>,
    pub mirrored: Vec<(PortId, Vec<u8>)>,
}

impl Frames for TestFrames {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.frames.get_mut(index).map(Vec::as_mut_slice)
    }

    fn mirror(&mut self, index: usize, port: PortId) -> bool {
        let copy = self.frames[index].clone();
        self.mirrored.push((port, copy));
        true
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn pod(name: &str, ns: &str, ip: &str, pairs: &[(&str, &str)]) -> PodSpec {
    PodSpec {
        name: name.into(),
        tenant: "blue".into(),
        ip: ip.parse().unwrap(),
        ipv6: None,
        mac: MacAddr([2, 0, 0, 0, 1, 1]),
        interface: format!("veth-{name}"),
        labels: labels(pairs),
        namespace: ns.into(),
        container_id: None,
    }
}

pub fn interface(name: &str) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        role: InterfaceRole::Pod,
        mac: MacAddr([2, 0, 0, 0, 2, 2]),
        queues: 1,
        mtu: None,
    }
}

pub fn service(name: &str, ip: &str, port: u16, target: u16, endpoints: &[&str]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        namespace: "default".into(),
        tenant: "blue".into(),
        cluster_ip: ip.parse().unwrap(),
        ports: vec![ServicePortSpec {
            name: None,
            protocol: Protocol::Tcp,
            port,
            target_port: Some(target),
            node_port: None,
        }],
        endpoints: endpoints
            .iter()
            .map(|e| EndpointSpec {
                ip: e.parse().unwrap(),
                pod: None,
                node: None,
                ready: true,
                serving: true,
                terminating: false,
            })
            .collect(),
        client_ip_affinity: false,
        internal_traffic_local: false,
    }
}

/// A whole model, owned, to compile chain sets from.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub tenants: Vec<TenantSpec>,
    pub interfaces: Vec<InterfaceSpec>,
    pub pods: Vec<PodSpec>,
    pub namespaces: Vec<NamespaceSpec>,
    pub services: Vec<ServiceSpec>,
    pub policies: Vec<NetworkPolicySpec>,
    pub chains: Vec<ChainSpec>,
    /// Service CIDRs balanced without a chain (implicit Service chains).
    pub service_cidrs: Vec<ipnetwork::IpNetwork>,
    /// This node's own addresses.
    pub node_addresses: Vec<std::net::IpAddr>,
}

impl Model {
    /// Tenants blue (0) and red (1); interfaces p0..p7 (ports 0..7).
    pub fn new() -> Self {
        Model {
            tenants: vec![
                TenantSpec {
                    name: "blue".into(),
                    vni: 100,
                },
                TenantSpec {
                    name: "red".into(),
                    vni: 200,
                },
            ],
            interfaces: (0..8).map(|i| interface(&format!("p{i}"))).collect(),
            ..Model::default()
        }
    }

    pub fn input(&self) -> ChainInput<'_> {
        ChainInput {
            tenants: &self.tenants,
            interfaces: &self.interfaces,
            ports: None,
            pods: &self.pods,
            namespaces: &self.namespaces,
            services: &self.services,
            policies: &self.policies,
            chains: &self.chains,
            node: "node1",
            service_cidrs: &self.service_cidrs,
            node_addresses: &self.node_addresses,
            vtep_address: None,
        }
    }

    pub fn compile(&self, generation: u64, previous: Option<&ChainSet>) -> ChainSet {
        ChainSet::compile(&self.input(), generation, small_tables(), previous).unwrap()
    }
}

/// Maglev tables small enough for fast tests (a prime).
pub fn small_tables() -> CompileOptions {
    CompileOptions {
        maglev_table_size: TableSize::new(4093).unwrap(),
    }
}

/// A chain from YAML.
pub fn chain(yaml: &str) -> ChainSpec {
    serde_yaml::from_str(yaml).unwrap()
}
