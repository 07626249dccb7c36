//! A sequence of table updates against a reference model.
//!
//! The input is a list of operations (derived with `arbitrary`): upsert or
//! delete a tenant, a pod CIDR of this node, a pod, a remote node, a route,
//! or add a probe address. Each is applied to a copy of a model
//! [`NodeConfig`] and offered to a [`TableHandle`] with `apply` (validate,
//! compile, publish). Names, addresses and MACs come from small sets so
//! that updates collide, overlap and get refused often.
//!
//! After every operation:
//! - `apply` accepts exactly what `validate` accepts (a configuration that
//!   validates always compiles);
//! - a refused update leaves the published snapshot (the same `Arc`, its
//!   generation) and so every lookup as it was, and the model unchanged;
//! - an accepted one publishes a higher generation, and the tables then
//!   agree with the model: tenants and VNIs, each port's pod, and the
//!   longest-prefix match of every probe address (each prefix's first and
//!   last address and its neighbours outside, each pod address, the probes)
//!   in every tenant, against a naive reference LPM over the model's pods,
//!   remote pod CIDRs and routes.
//!
//! At the end, the final model survives a round trip through its YAML form.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use ipnetwork::IpNetwork;
use kxdp_config::{
    MacAddr, NodeConfig, PodCidrSpec, PodSpec, RemoteNodeSpec, RouteSpec, RouteTarget, TenantSpec,
};
use kxdp_dataplane::tables::{NextHop, PortKind, TableHandle, Tables, TenantId};
use libfuzzer_sys::fuzz_target;

/// Most operations run per input (a longer input is cut).
const MAX_OPS: usize = 24;
/// Tenant names t0..t3 (t0 and t1 exist at the start).
const TENANTS: u8 = 4;
/// Pod names p0..p5, interfaces vp0..vp5 (index 6 picks the underlay).
const PODS: u8 = 6;
/// Remote node names n0..n2.
const NODES: u8 = 3;

/// The starting point: two tenants, this node's CIDRs, six idle pod ports.
const BASE_YAML: &str = "
node:
  name: local
  vtep: {ip: 192.168.0.1, interface: ul0}
  pod_cidrs:
    - {tenant: t0, cidr: 10.0.0.0/24}
    - {tenant: t0, cidr: 'fd00:0:0:0::/64'}
    - {tenant: t1, cidr: 10.0.0.0/24}
interfaces:
  - {name: ul0, role: underlay, mac: '02:00:00:00:00:10'}
  - {name: vp0, role: pod, mac: '02:00:00:00:00:00'}
  - {name: vp1, role: pod, mac: '02:00:00:00:00:01'}
  - {name: vp2, role: pod, mac: '02:00:00:00:00:02'}
  - {name: vp3, role: pod, mac: '02:00:00:00:00:03'}
  - {name: vp4, role: pod, mac: '02:00:00:00:00:04'}
  - {name: vp5, role: pod, mac: '02:00:00:00:00:05'}
tenants:
  - {name: t0, vni: 1}
  - {name: t1, vni: 2}
";

/// An address from a small space: 10.0.N.H or fd00:0:0:N::H, N in 0..4,
/// half of them in N = 0 (this node's pod CIDRs at the start).
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Addr {
    V4 { net: u8, host: u8 },
    V6 { net: u8, host: u8 },
}

/// The third byte of an IPv4 address, the fourth group of an IPv6 one.
fn subnet(net: u8) -> u8 {
    if net < 128 {
        0
    } else {
        net % 4
    }
}

impl Addr {
    fn ip(self) -> IpAddr {
        match self {
            Addr::V4 { net, host } => IpAddr::V4(Ipv4Addr::new(10, 0, subnet(net), host)),
            Addr::V6 { net, host } => IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0,
                0,
                u16::from(subnet(net)),
                0,
                0,
                0,
                u16::from(host),
            )),
        }
    }
}

impl Addr {
    /// The same net and host in the other family than `other`.
    fn flipped_to(self, other: Addr) -> Addr {
        let (Addr::V4 { net, host } | Addr::V6 { net, host }) = self;
        match other {
            Addr::V4 { .. } => Addr::V6 { net, host },
            Addr::V6 { .. } => Addr::V4 { net, host },
        }
    }
}

/// Prefix lengths worth trying in [`Addr`]'s IPv4 space.
const V4_LENGTHS: [u8; 13] = [0, 8, 16, 21, 22, 23, 24, 25, 26, 28, 30, 31, 32];
/// Prefix lengths worth trying in [`Addr`]'s IPv6 space.
const V6_LENGTHS: [u8; 13] = [0, 16, 48, 61, 62, 63, 64, 65, 96, 120, 126, 127, 128];

/// A prefix of [`Addr`]'s space; `len` picks the length, and (rarely, for
/// `len >= 0xf0`) keeps host bits set, which validation refuses.
#[derive(Arbitrary, Clone, Copy, Debug)]
struct Prefix {
    addr: Addr,
    len: u8,
}

impl Prefix {
    fn network(self) -> IpNetwork {
        let ip = self.addr.ip();
        let lengths = if ip.is_ipv4() { V4_LENGTHS } else { V6_LENGTHS };
        let len = lengths[usize::from(self.len) % lengths.len()];
        let Ok(net) = IpNetwork::new(ip, len) else {
            unreachable!("{len} fits {ip}");
        };
        if self.len >= 0xf0 {
            return net;
        }
        match IpNetwork::new(net.network(), len) {
            Ok(canonical) => canonical,
            Err(_) => net,
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Via {
    Pod(u8),
    Node(u8),
    Blackhole,
}

#[derive(Arbitrary, Clone, Debug)]
enum Op {
    UpsertTenant {
        tenant: u8,
        vni: u8,
    },
    DeleteTenant {
        tenant: u8,
    },
    /// Set this node's pod CIDR of a tenant and the prefix's family.
    UpsertNodeCidr {
        tenant: u8,
        cidr: Prefix,
        gateway: Option<Addr>,
    },
    DeleteNodeCidr {
        tenant: u8,
        v6: bool,
    },
    UpsertPod {
        pod: u8,
        tenant: u8,
        ip: Addr,
        /// The dual-stack address: taken in the other family than `ip`.
        ipv6: Option<Addr>,
        mac: u8,
        interface: u8,
    },
    DeletePod {
        pod: u8,
    },
    UpsertRemoteNode {
        node: u8,
        vtep: u8,
        mac: u8,
        cidrs: Vec<(u8, Prefix)>,
    },
    DeleteRemoteNode {
        node: u8,
    },
    UpsertRoute {
        tenant: u8,
        prefix: Prefix,
        via: Via,
    },
    DeleteRoute {
        index: u8,
    },
    Probe(Addr),
}

/// Half of the picks are t0 or t1, which exist at the start.
fn tenant_name(i: u8) -> String {
    format!("t{}", if i < 128 { i % 2 } else { i % TENANTS })
}
fn pod_name(i: u8) -> String {
    format!("p{}", i % PODS)
}
fn node_name(i: u8) -> String {
    format!("n{}", i % NODES)
}

/// Replace the item `matches` finds, or append `item`.
fn upsert<T>(items: &mut Vec<T>, item: T, matches: impl Fn(&T) -> bool) {
    match items.iter_mut().find(|x| matches(x)) {
        Some(slot) => *slot = item,
        None => items.push(item),
    }
}

/// Apply `op` to `config`; probe addresses go to `probes`.
fn apply_op(config: &mut NodeConfig, op: &Op, probes: &mut Vec<IpAddr>) {
    match *op {
        Op::UpsertTenant { tenant, vni } => {
            let name = tenant_name(tenant);
            let spec = TenantSpec {
                name: name.clone(),
                vni: u32::from(vni % 6),
            };
            upsert(&mut config.tenants, spec, |t| t.name == name);
        }
        Op::DeleteTenant { tenant } => {
            let name = tenant_name(tenant);
            config.tenants.retain(|t| t.name != name);
        }
        Op::UpsertNodeCidr {
            tenant,
            cidr,
            gateway,
        } => {
            let spec = PodCidrSpec {
                tenant: tenant_name(tenant),
                cidr: cidr.network(),
                gateway: gateway.map(Addr::ip),
            };
            let (name, v6) = (spec.tenant.clone(), spec.cidr.is_ipv6());
            upsert(&mut config.node.pod_cidrs, spec, |c| {
                c.tenant == name && c.cidr.is_ipv6() == v6
            });
        }
        Op::DeleteNodeCidr { tenant, v6 } => {
            let name = tenant_name(tenant);
            config
                .node
                .pod_cidrs
                .retain(|c| !(c.tenant == name && c.cidr.is_ipv6() == v6));
        }
        Op::UpsertPod {
            pod,
            tenant,
            ip,
            ipv6,
            mac,
            interface,
        } => {
            let interface = interface % (PODS + 1);
            let spec = PodSpec {
                name: pod_name(pod),
                tenant: tenant_name(tenant),
                ip: ip.ip(),
                // Always the other family (a same-family `ipv6` is a refusal
                // too trivial to spend inputs on).
                ipv6: ipv6.map(|a| a.flipped_to(ip).ip()),
                mac: MacAddr([2, 0, 0, 0, 1, mac % 8]),
                interface: if interface == PODS {
                    "ul0".to_string()
                } else {
                    format!("vp{interface}")
                },
                labels: Default::default(),
                namespace: "default".to_string(),
                container_id: None,
            };
            let name = spec.name.clone();
            upsert(&mut config.pods, spec, |p| p.name == name);
        }
        Op::DeletePod { pod } => {
            let name = pod_name(pod);
            config.pods.retain(|p| p.name != name);
        }
        Op::UpsertRemoteNode {
            node,
            vtep,
            mac,
            ref cidrs,
        } => {
            let spec = RemoteNodeSpec {
                name: node_name(node),
                // .1 is this node's own VTEP: refused.
                vtep_ip: Ipv4Addr::new(192, 168, 0, 1 + vtep % 5),
                vtep_mac: MacAddr([2, 0, 0, 0, 2, mac % 4]),
                underlay_mac: None,
                pod_cidrs: cidrs
                    .iter()
                    .take(3)
                    .map(|&(tenant, cidr)| PodCidrSpec {
                        tenant: tenant_name(tenant),
                        cidr: cidr.network(),
                        gateway: None,
                    })
                    .collect(),
                node_ips: Vec::new(),
            };
            let name = spec.name.clone();
            upsert(&mut config.remote_nodes, spec, |n| n.name == name);
        }
        Op::DeleteRemoteNode { node } => {
            let name = node_name(node);
            config.remote_nodes.retain(|n| n.name != name);
        }
        Op::UpsertRoute {
            tenant,
            prefix,
            via,
        } => {
            let spec = RouteSpec {
                tenant: tenant_name(tenant),
                prefix: prefix.network(),
                via: match via {
                    Via::Pod(p) => RouteTarget::Pod(pod_name(p)),
                    Via::Node(n) => RouteTarget::Node(node_name(n)),
                    Via::Blackhole => RouteTarget::Blackhole,
                },
            };
            let (name, net) = (spec.tenant.clone(), spec.prefix);
            upsert(&mut config.routes, spec, |r| {
                r.tenant == name && r.prefix == net
            });
        }
        Op::DeleteRoute { index } => {
            if !config.routes.is_empty() {
                config
                    .routes
                    .remove(usize::from(index) % config.routes.len());
            }
        }
        Op::Probe(addr) => probes.push(addr.ip()),
    }
}

/// What a lookup should find, in the model's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    /// A pod on this node: its port and MAC.
    Local {
        port: u16,
        mac: [u8; 6],
    },
    /// A remote node: its name, VTEP address and MAC, and the tenant's VNI.
    Remote {
        node: String,
        vtep: Ipv4Addr,
        mac: [u8; 6],
        vni: u32,
    },
    Blackhole,
}

/// An address as (is IPv6, value, width in bits).
fn bits(ip: IpAddr) -> (bool, u128, u32) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (true, u128::from(a), 128),
    }
}

/// Whether `net` holds `ip`: the top `prefix` bits agree.
fn holds(net: IpNetwork, ip: IpAddr) -> bool {
    let (v6, a, width) = bits(ip);
    let (net_v6, n, _) = bits(net.ip());
    if v6 != net_v6 {
        return false;
    }
    let shift = width - u32::from(net.prefix());
    a.checked_shr(shift).unwrap_or(0) == n.checked_shr(shift).unwrap_or(0)
}

/// The naive reference: every (tenant, prefix, next hop) the model routes,
/// in the order the compiler inserts them (a later entry for the same prefix
/// replaces an earlier one).
fn reference_routes(config: &NodeConfig) -> Vec<(TenantId, IpNetwork, Expected)> {
    let tenant_id = |name: &str| {
        config
            .tenants
            .iter()
            .position(|t| t.name == name)
            .map(|i| i as TenantId)
    };
    let port_of = |interface: &str| {
        config
            .interfaces
            .iter()
            .position(|i| i.name == interface)
            .map(|i| i as u16)
    };
    let vni_of = |name: &str| {
        config
            .tenants
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.vni)
    };
    let mut out = Vec::new();
    for pod in &config.pods {
        let (Some(tenant), Some(port)) = (tenant_id(&pod.tenant), port_of(&pod.interface)) else {
            continue;
        };
        for ip in std::iter::once(pod.ip).chain(pod.ipv6) {
            let host = if ip.is_ipv4() { 32 } else { 128 };
            if let Ok(net) = IpNetwork::new(ip, host) {
                let hop = Expected::Local {
                    port,
                    mac: pod.mac.0,
                };
                out.push((tenant, net, hop));
            }
        }
    }
    let remote = |node: &RemoteNodeSpec, tenant: &str| Expected::Remote {
        node: node.name.clone(),
        vtep: node.vtep_ip,
        mac: node.vtep_mac.0,
        vni: vni_of(tenant).unwrap_or(0),
    };
    for node in &config.remote_nodes {
        for cidr in &node.pod_cidrs {
            if let Some(tenant) = tenant_id(&cidr.tenant) {
                out.push((tenant, cidr.cidr, remote(node, &cidr.tenant)));
            }
        }
    }
    for route in &config.routes {
        let Some(tenant) = tenant_id(&route.tenant) else {
            continue;
        };
        let hop = match &route.via {
            RouteTarget::Blackhole => Some(Expected::Blackhole),
            RouteTarget::Pod(name) => config.pods.iter().find(|p| &p.name == name).and_then(|p| {
                Some(Expected::Local {
                    port: port_of(&p.interface)?,
                    mac: p.mac.0,
                })
            }),
            RouteTarget::Node(name) => config
                .remote_nodes
                .iter()
                .find(|n| &n.name == name)
                .map(|n| remote(n, &route.tenant)),
        };
        if let Some(hop) = hop {
            out.push((tenant, route.prefix, hop));
        }
    }
    out
}

/// Longest prefix match over `routes`, the slow way.
fn reference_lookup(
    routes: &[(TenantId, IpNetwork, Expected)],
    tenant: TenantId,
    ip: IpAddr,
) -> Option<Expected> {
    let mut best: Option<(u8, &Expected)> = None;
    for (t, net, hop) in routes {
        if *t == tenant && holds(*net, ip) && best.is_none_or(|(len, _)| net.prefix() >= len) {
            best = Some((net.prefix(), hop));
        }
    }
    best.map(|(_, hop)| hop.clone())
}

/// What the tables found, in the model's terms.
fn found(tables: &Tables, tenant: TenantId, ip: IpAddr) -> Option<Expected> {
    let hop = match ip {
        IpAddr::V4(a) => tables.lookup_v4(tenant, a),
        IpAddr::V6(a) => tables.lookup_v6(tenant, a),
    }?;
    Some(match hop {
        NextHop::Local { port, mac } => Expected::Local {
            port: *port,
            mac: *mac,
        },
        NextHop::Remote {
            node,
            inner_dst_mac,
            template,
        } => Expected::Remote {
            node: node.clone(),
            vtep: Ipv4Addr::new(
                template.bytes[30],
                template.bytes[31],
                template.bytes[32],
                template.bytes[33],
            ),
            mac: *inner_dst_mac,
            vni: template.vni(),
        },
        NextHop::Blackhole => Expected::Blackhole,
        // Inside the cluster's CIDRs but nobody's: dropped as no_route,
        // what the model calls no route.
        NextHop::Unreachable => return None,
    })
}

/// The addresses worth looking up: each prefix's first and last address
/// and the addresses just outside it, plus the probes.
fn probe_addresses(routes: &[(TenantId, IpNetwork, Expected)], probes: &[IpAddr]) -> Vec<IpAddr> {
    let mut out = probes.to_vec();
    for (_, net, _) in routes {
        let (v6, first, width) = bits(net.network());
        let (_, last, _) = bits(net.broadcast());
        let max = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        for a in [
            first,
            last,
            first.wrapping_sub(1) & max,
            last.wrapping_add(1) & max,
        ] {
            out.push(if v6 {
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::from(a as u32))
            });
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The tables agree with the model.
fn check_agrees(tables: &Tables, config: &NodeConfig, probes: &[IpAddr]) {
    let tenants: Vec<(&str, u32)> = tables
        .tenants()
        .iter()
        .map(|t| (t.name.as_str(), t.vni))
        .collect();
    let model: Vec<(&str, u32)> = config
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.vni))
        .collect();
    assert_eq!(tenants, model, "tenants");
    for (i, t) in config.tenants.iter().enumerate() {
        assert_eq!(
            tables.tenant_by_vni(t.vni),
            Some(i as TenantId),
            "VNI {}",
            t.vni
        );
    }

    assert_eq!(tables.ports().len(), config.interfaces.len());
    for (i, itf) in config.interfaces.iter().enumerate() {
        let port = &tables.ports()[i];
        assert_eq!(
            (port.name.as_str(), port.mac),
            (itf.name.as_str(), itf.mac.0)
        );
        let pod = config.pods.iter().find(|p| p.interface == itf.name);
        match (&port.kind, pod) {
            (PortKind::Pod(port_pod), Some(pod)) => {
                assert_eq!(port_pod.name, pod.name);
                assert_eq!(port_pod.mac, pod.mac.0);
                let tenant = config.tenants.iter().position(|t| t.name == pod.tenant);
                assert_eq!(Some(usize::from(port_pod.tenant)), tenant);
                let addresses: Vec<IpAddr> = std::iter::once(pod.ip).chain(pod.ipv6).collect();
                assert_eq!(
                    port_pod.ipv4.map(IpAddr::V4),
                    addresses.iter().copied().find(IpAddr::is_ipv4)
                );
                assert_eq!(
                    port_pod.ipv6.map(IpAddr::V6),
                    addresses.iter().copied().find(IpAddr::is_ipv6)
                );
                let gateway = |v6: bool| {
                    config
                        .node
                        .pod_cidrs
                        .iter()
                        .find(|c| c.tenant == pod.tenant && c.cidr.is_ipv6() == v6)
                        .map(PodCidrSpec::gateway_ip)
                };
                assert_eq!(port_pod.gateway4.map(IpAddr::V4), gateway(false));
                assert_eq!(port_pod.gateway6.map(IpAddr::V6), gateway(true));
            }
            (PortKind::Underlay, None) => assert_eq!(itf.name, config.node.vtep.interface),
            (PortKind::Idle, None) => {}
            (kind, pod) => panic!("port {} is {kind:?}, the model has pod {pod:?}", itf.name),
        }
    }

    let routes = reference_routes(config);
    let addresses = probe_addresses(&routes, probes);
    // One tenant past the last: nothing is routed there.
    for tenant in 0..=config.tenants.len() as TenantId {
        for &ip in &addresses {
            assert_eq!(
                found(tables, tenant, ip),
                reference_lookup(&routes, tenant, ip),
                "lookup of {ip} in tenant {tenant}"
            );
        }
    }
}

fn base() -> &'static NodeConfig {
    static BASE: OnceLock<NodeConfig> = OnceLock::new();
    BASE.get_or_init(|| match NodeConfig::from_yaml_str(BASE_YAML) {
        Ok(config) => config,
        Err(e) => panic!("the base configuration does not validate: {e}"),
    })
}

fuzz_target!(|ops: Vec<Op>| {
    let mut model = base().clone();
    let handle = match Tables::compile(&model, 1) {
        Ok(tables) => TableHandle::new(tables),
        Err(e) => panic!("the base configuration does not compile: {e}"),
    };
    let mut probes = Vec::new();
    for op in ops.iter().take(MAX_OPS) {
        let mut candidate = model.clone();
        apply_op(&mut candidate, op, &mut probes);
        let before = handle.current();
        let valid = candidate.validate();
        match handle.apply(&candidate) {
            Ok(generation) => {
                if let Err(e) = valid {
                    panic!("applied although it does not validate ({e}): {op:?}");
                }
                let now = handle.current();
                assert_eq!(now.generation(), generation);
                assert!(generation > before.generation(), "generation went back");
                model = candidate;
                check_agrees(&now, &model, &probes);
            }
            Err(e) => {
                if valid.is_ok() {
                    panic!("validates but does not compile ({e}): {op:?}");
                }
                let now = handle.current();
                assert!(
                    Arc::ptr_eq(&now, &before),
                    "a refused update replaced the tables"
                );
                assert_eq!(now.generation(), before.generation());
                check_agrees(&now, &model, &probes);
            }
        }
    }
    // What `kxdp get -o yaml` prints, `kxdp apply` takes back.
    match NodeConfig::from_yaml_str(&model.to_yaml()) {
        Ok(again) => assert_eq!(again, model, "the YAML round trip changed it"),
        Err(e) => panic!("the YAML form does not parse back: {e}"),
    }
});
