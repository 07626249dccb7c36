//! The forwarding tables and their lock-free publication (RCU).
//!
//! [`Tables`] is an immutable snapshot compiled from a validated
//! [`NodeConfig`]: ports and their roles, tenants by VNI, per-tenant LPM
//! routes to next hops (a local pod or a remote VTEP with its precomputed
//! VXLAN header template). A [`TableHandle`] publishes snapshots with one
//! atomic pointer swap (arc-swap); each worker holds a [`TableReader`] that
//! sees a new snapshot at its next batch and never takes a lock. An update is
//! compiled whole off the hot path and published, or refused with the
//! running tables left exactly as they were.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Cache};
use ipnetwork::IpNetwork;
use kxdp_config::{InterfaceRole, NodeConfig, RouteTarget};
use rustc_hash::{FxHashMap, FxHashSet};

use self::lpm::Lpm;
pub use self::lpm::TenantId;
use crate::verdict::PortId;
use crate::vxlan::EncapTemplate;

/// Why a configuration could not be compiled into tables. Validation runs
/// once: the two entry points that take a configuration from anywhere
/// ([`Tables::compile`], [`TableHandle::apply`]) validate it and refuse it
/// with [`TableError::Config`]; the compilers behind them
/// ([`Tables::compile_validated`], [`Tables::compile_with_ports`], which a
/// caller that validated itself calls, as the API's store does) do not
/// validate again and refuse only [`TableError::TooMany`].
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The configuration did not validate (only from [`Tables::compile`]
    /// and [`TableHandle::apply`]).
    #[error(transparent)]
    Config(#[from] kxdp_config::ConfigError),
    /// More ports, tenants or next hops than the table indices hold.
    #[error("{what}: {count} is more than the tables hold ({max})")]
    TooMany {
        /// What overflowed.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
}

/// A pod attached to a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPort {
    /// Pod name.
    pub name: String,
    /// Tenant.
    pub tenant: TenantId,
    /// The pod's MAC (anti-spoofing: frames from the pod must carry it).
    pub mac: [u8; 6],
    /// The pod's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The IPv4 gateway the dataplane answers ARP for.
    pub gateway4: Option<Ipv4Addr>,
    /// The IPv6 gateway the dataplane answers neighbour solicitations for.
    pub gateway6: Option<Ipv6Addr>,
}

/// kxdp's side of the host port: the way into the node's own stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The tenants that may reach the node, in order: a frame from the node
    /// is routed in the first whose table knows its destination (the
    /// first one otherwise).
    pub tenants: Vec<TenantId>,
    /// The node side's MAC (frames from the node carry it; frames to the
    /// node are addressed to it).
    pub peer_mac: [u8; 6],
}

impl HostPort {
    /// Whether `tenant` may reach the node.
    #[inline]
    pub fn allows(&self, tenant: TenantId) -> bool {
        self.tenants.contains(&tenant)
    }
}

/// What a port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// The host side of a pod's veth.
    Pod(Box<PodPort>),
    /// The host port (kxdp's side).
    Host(Box<HostPort>),
    /// A pod-facing interface with no pod (frames are dropped).
    Idle,
    /// The underlay.
    Underlay,
}

/// A port: an interface the workers bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Interface name.
    pub name: String,
    /// The interface's MAC: source MAC of frames sent out of it.
    pub mac: [u8; 6],
    /// Role and attached pod.
    pub kind: PortKind,
    /// The largest IP packet its far end takes; 0: not checked.
    pub mtu: u16,
}

/// Where a route leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// A pod on this node.
    Local {
        /// Its port.
        port: PortId,
        /// Its MAC (the rewritten destination MAC).
        mac: [u8; 6],
    },
    /// A remote VTEP, for one tenant.
    Remote {
        /// Remote node name.
        node: String,
        /// Inner destination MAC (the remote VTEP MAC).
        inner_dst_mac: [u8; 6],
        /// Precomputed outer headers (with the tenant's VNI).
        template: EncapTemplate,
    },
    /// Drop.
    Blackhole,
    /// Inside the cluster's pod or Service CIDRs but nobody's: dropped as
    /// `no_route` (not sent to egress).
    Unreachable,
}

/// The local VTEP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalVtep {
    /// VTEP address.
    pub ip: Ipv4Addr,
    /// VXLAN UDP port.
    pub udp_port: u16,
    /// Inner source MAC of encapsulated frames.
    pub mac: [u8; 6],
    /// The underlay port.
    pub port: PortId,
    /// Underlay MTU.
    pub mtu: u16,
}

/// One immutable snapshot of everything the workers read.
#[derive(Clone, Debug)]
pub struct Tables {
    generation: u64,
    ports: Vec<Port>,
    tenants: Vec<Tenant>,
    vni_index: FxHashMap<u32, TenantId>,
    /// (remote VTEP address, tenant) pairs that may send us VXLAN: a remote
    /// node's VTEP for each tenant it has pod CIDRs in.
    vtep_sources: FxHashSet<(Ipv4Addr, TenantId)>,
    routes4: Lpm<u32, u32>,
    routes6: Lpm<u128, u32>,
    next_hops: Vec<NextHop>,
    vtep: LocalVtep,
    /// MACs that belong to this node: the VTEP's and every port's (an
    /// inner frame from the underlay must be addressed to one of them).
    local_macs: FxHashSet<[u8; 6]>,
    /// Per tenant: this node's gateway addresses (IPv4, IPv6), the source
    /// of the ICMP errors kxdp sends.
    gateways: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    /// ICMP error settings.
    icmp: kxdp_config::IcmpSpec,
}

impl Tables {
    /// Validate and compile a configuration into tables with the given
    /// generation: for a configuration nobody validated yet (a caller that
    /// did calls [`Tables::compile_validated`]).
    pub fn compile(config: &NodeConfig, generation: u64) -> Result<Tables, TableError> {
        config.validate()?;
        Self::compile_validated(config, generation)
    }

    /// Compile a configuration that has already been validated; its
    /// interfaces are ports 0, 1, … in their order. Does not validate
    /// again: refuses only [`TableError::TooMany`].
    pub fn compile_validated(config: &NodeConfig, generation: u64) -> Result<Tables, TableError> {
        let slots: Vec<Option<&str>> = config
            .interfaces
            .iter()
            .map(|i| Some(i.name.as_str()))
            .collect();
        Self::compile_with_ports(config, generation, &slots)
    }

    /// Compile a validated configuration whose interfaces are bound as
    /// the ports `slots` names: `slots[p]` is port `p`'s interface, `None`
    /// a port no interface holds now (a pod interface detached at run time:
    /// port numbers stay with their interface while it lives, so the
    /// workers' sockets never move). Frames are never sent to a free port.
    /// An interface of `config` that no slot names gets no port.
    pub fn compile_with_ports(
        config: &NodeConfig,
        generation: u64,
        slots: &[Option<&str>],
    ) -> Result<Tables, TableError> {
        if slots.len() > usize::from(PortId::MAX) {
            return Err(TableError::TooMany {
                what: "interfaces",
                count: slots.len(),
                max: usize::from(PortId::MAX),
            });
        }
        let by_name: FxHashMap<&str, &kxdp_config::InterfaceSpec> = config
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i))
            .collect();
        if config.tenants.len() > usize::from(TenantId::MAX) {
            return Err(TableError::TooMany {
                what: "tenants",
                count: config.tenants.len(),
                max: usize::from(TenantId::MAX),
            });
        }
        let tenant_ids: FxHashMap<&str, TenantId> = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i as TenantId))
            .collect();
        let tenants: Vec<Tenant> = config
            .tenants
            .iter()
            .map(|t| Tenant {
                name: t.name.clone(),
                vni: t.vni,
            })
            .collect();
        let vni_index = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.vni, i as TenantId))
            .collect();
        let port_ids: FxHashMap<&str, PortId> = slots
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let name = (*name)?;
                by_name.contains_key(name).then_some((name, i as PortId))
            })
            .collect();

        // Gateways of this node's CIDRs, per tenant and family.
        let gateway = |tenant: &str, v6: bool| -> Option<IpAddr> {
            config
                .node
                .pod_cidrs
                .iter()
                .find(|c| c.tenant == tenant && c.cidr.is_ipv6() == v6)
                .map(|c| c.gateway_ip())
        };

        let host_tenants: Vec<TenantId> = config
            .host
            .as_ref()
            .map(|h| {
                h.host_tenants(&config.tenants)
                    .iter()
                    .filter_map(|t| tenant_ids.get(t).copied())
                    .collect()
            })
            .unwrap_or_default();
        let mut ports: Vec<Port> = slots
            .iter()
            .map(|name| name.and_then(|n| by_name.get(n)))
            .map(|itf| match itf {
                None => Port {
                    name: String::new(),
                    mac: [0; 6],
                    mtu: 0,
                    kind: PortKind::Idle,
                },
                Some(itf) => Port {
                    name: itf.name.clone(),
                    mac: itf.mac.0,
                    mtu: itf.mtu.unwrap_or(0),
                    kind: match itf.role {
                        InterfaceRole::Underlay => PortKind::Underlay,
                        InterfaceRole::Pod => PortKind::Idle,
                        InterfaceRole::Host => PortKind::Host(Box::new(HostPort {
                            tenants: host_tenants.clone(),
                            peer_mac: config
                                .host
                                .as_ref()
                                .map(|h| h.peer_mac_or(itf.mac).0)
                                .unwrap_or([0; 6]),
                        })),
                    },
                },
            })
            .collect();

        let mut next_hops: Vec<NextHop> = Vec::new();
        let mut routes4 = Lpm::new();
        let mut routes6 = Lpm::new();
        let mut insert = |tenant: TenantId, prefix: IpNetwork, hop: u32| match prefix {
            IpNetwork::V4(n) => {
                routes4.insert(tenant, u32::from(n.network()), n.prefix(), hop);
            }
            IpNetwork::V6(n) => {
                routes6.insert(tenant, u128::from(n.network()), n.prefix(), hop);
            }
        };

        // The cluster's pod and Service CIDRs: in a tenant whose egress
        // leaves through the node (its default route), an address there
        // that no route below claims is unreachable, never egress. (Other
        // tenants have no default route: such an address is no route.)
        let unreachable = next_hops.len() as u32;
        next_hops.push(NextHop::Unreachable);
        if let Some(host) = &config.host {
            let cidrs = cluster_cidrs(config);
            for name in host.egress_tenants(&config.tenants) {
                if let Some(&t) = tenant_ids.get(name) {
                    for cidr in &cidrs {
                        insert(t, *cidr, unreachable);
                    }
                }
            }
        }
        // The host port: the node's addresses and the pods' gateways in the
        // host tenants, and egress (the default route) in the egress ones.
        let host_hop = config.host.as_ref().and_then(|host| {
            let port = *port_ids.get(host.interface.as_str())?;
            let itf = by_name.get(host.interface.as_str())?;
            let hop = next_hops.len() as u32;
            next_hops.push(NextHop::Local {
                port,
                mac: host.peer_mac_or(itf.mac).0,
            });
            for &t in &host_tenants {
                let name = tenants[usize::from(t)].name.as_str();
                for ip in host.node_addresses(&config.node) {
                    insert(t, IpNetwork::from(ip), hop);
                }
                for cidr in config.node.pod_cidrs.iter().filter(|c| c.tenant == name) {
                    insert(t, IpNetwork::from(cidr.gateway_ip()), hop);
                }
            }
            for name in host.egress_tenants(&config.tenants) {
                if let Some(&t) = tenant_ids.get(name) {
                    if let Ok(any) = ipnetwork::Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0) {
                        insert(t, IpNetwork::V4(any), hop);
                    }
                    if let Ok(any) = ipnetwork::Ipv6Network::new(Ipv6Addr::UNSPECIFIED, 0) {
                        insert(t, IpNetwork::V6(any), hop);
                    }
                }
            }
            Some(hop)
        });
        let _ = host_hop;

        let mut pod_hops: FxHashMap<&str, u32> = FxHashMap::default();
        for pod in &config.pods {
            let (Some(&tenant), Some(&port)) = (
                tenant_ids.get(pod.tenant.as_str()),
                port_ids.get(pod.interface.as_str()),
            ) else {
                continue; // validation refuses these; compile_validated trusts it
            };
            let (mut ipv4, mut ipv6) = (None, None);
            for ip in std::iter::once(pod.ip).chain(pod.ipv6) {
                match ip {
                    IpAddr::V4(a) => ipv4 = Some(a),
                    IpAddr::V6(a) => ipv6 = Some(a),
                }
            }
            let hop = next_hops.len() as u32;
            next_hops.push(NextHop::Local {
                port,
                mac: pod.mac.0,
            });
            pod_hops.insert(pod.name.as_str(), hop);
            if let Some(a) = ipv4 {
                insert(tenant, IpNetwork::V4(ipnetwork::Ipv4Network::from(a)), hop);
            }
            if let Some(a) = ipv6 {
                insert(tenant, IpNetwork::V6(ipnetwork::Ipv6Network::from(a)), hop);
            }
            if let Some(p) = ports.get_mut(usize::from(port)) {
                p.kind = PortKind::Pod(Box::new(PodPort {
                    name: pod.name.clone(),
                    tenant,
                    mac: pod.mac.0,
                    ipv4,
                    ipv6,
                    gateway4: match gateway(&pod.tenant, false) {
                        Some(IpAddr::V4(g)) => Some(g),
                        _ => None,
                    },
                    gateway6: match gateway(&pod.tenant, true) {
                        Some(IpAddr::V6(g)) => Some(g),
                        _ => None,
                    },
                }));
            }
        }

        let underlay_port = port_ids
            .get(config.node.vtep.interface.as_str())
            .copied()
            .unwrap_or(0);
        let underlay_mac = by_name
            .get(config.node.vtep.interface.as_str())
            .map(|i| i.mac.0)
            .unwrap_or([0; 6]);
        let vtep = LocalVtep {
            ip: config.node.vtep.ip,
            udp_port: config.node.vtep.udp_port,
            mac: config.node.vtep.mac.map(|m| m.0).unwrap_or(underlay_mac),
            port: underlay_port,
            mtu: config.node.vtep.underlay_mtu,
        };

        let mut node_hops: FxHashMap<(&str, TenantId), u32> = FxHashMap::default();
        let mut vtep_sources = FxHashSet::default();
        for node in &config.remote_nodes {
            for cidr in &node.pod_cidrs {
                let Some(&tenant) = tenant_ids.get(cidr.tenant.as_str()) else {
                    continue;
                };
                vtep_sources.insert((node.vtep_ip, tenant));
                let hop = *node_hops
                    .entry((node.name.as_str(), tenant))
                    .or_insert_with(|| {
                        let hop = next_hops.len() as u32;
                        next_hops.push(NextHop::Remote {
                            node: node.name.clone(),
                            inner_dst_mac: node.vtep_mac.0,
                            template: EncapTemplate::new(
                                underlay_mac,
                                node.underlay_mac.unwrap_or(node.vtep_mac).0,
                                vtep.ip,
                                node.vtep_ip,
                                tenants[usize::from(tenant)].vni,
                                vtep.udp_port,
                            ),
                        });
                        hop
                    });
                insert(tenant, cidr.cidr, hop);
            }
            // Its node addresses, in the host tenants (a kxdp node hands
            // them to its host port; a kernel vxlan node takes them itself).
            for &t in &host_tenants {
                let hop = *node_hops.entry((node.name.as_str(), t)).or_insert_with(|| {
                    let hop = next_hops.len() as u32;
                    next_hops.push(NextHop::Remote {
                        node: node.name.clone(),
                        inner_dst_mac: node.vtep_mac.0,
                        template: EncapTemplate::new(
                            underlay_mac,
                            node.underlay_mac.unwrap_or(node.vtep_mac).0,
                            vtep.ip,
                            node.vtep_ip,
                            tenants[usize::from(t)].vni,
                            vtep.udp_port,
                        ),
                    });
                    hop
                });
                vtep_sources.insert((node.vtep_ip, t));
                for ip in node.node_addresses() {
                    insert(t, IpNetwork::from(ip), hop);
                }
            }
        }

        let mut blackhole: Option<u32> = None;
        for route in &config.routes {
            let Some(&tenant) = tenant_ids.get(route.tenant.as_str()) else {
                continue;
            };
            let hop = match &route.via {
                RouteTarget::Pod(name) => pod_hops.get(name.as_str()).copied(),
                RouteTarget::Node(name) => node_hops.get(&(name.as_str(), tenant)).copied(),
                RouteTarget::Blackhole => Some(*blackhole.get_or_insert_with(|| {
                    next_hops.push(NextHop::Blackhole);
                    (next_hops.len() - 1) as u32
                })),
            };
            if let Some(hop) = hop {
                insert(tenant, route.prefix, hop);
            }
        }

        let local_macs = ports
            .iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| p.mac)
            .chain(std::iter::once(vtep.mac))
            .collect();
        let gateways = tenants
            .iter()
            .map(|t| {
                let v4 = match gateway(&t.name, false) {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                };
                let v6 = match gateway(&t.name, true) {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                };
                (v4, v6)
            })
            .collect();
        Ok(Tables {
            gateways,
            icmp: config.icmp.clone(),
            local_macs,
            generation,
            ports,
            tenants,
            vni_index,
            vtep_sources,
            routes4,
            routes6,
            next_hops,
            vtep,
        })
    }

    /// The snapshot's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A port.
    #[inline]
    pub fn port(&self, port: PortId) -> Option<&Port> {
        self.ports.get(usize::from(port))
    }

    /// All ports.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The tenant of a VNI.
    #[inline]
    pub fn tenant_by_vni(&self, vni: u32) -> Option<TenantId> {
        self.vni_index.get(&vni).copied()
    }

    /// Whether `src` is a remote VTEP that serves `tenant` (may send us
    /// VXLAN for it).
    #[inline]
    pub fn is_vtep_source(&self, src: Ipv4Addr, tenant: TenantId) -> bool {
        self.vtep_sources.contains(&(src, tenant))
    }

    /// All tenants.
    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    /// This node's IPv4 gateway address in `tenant`.
    #[inline]
    pub fn gateway_v4(&self, tenant: TenantId) -> Option<Ipv4Addr> {
        self.gateways.get(usize::from(tenant)).and_then(|g| g.0)
    }

    /// This node's IPv6 gateway address in `tenant`.
    #[inline]
    pub fn gateway_v6(&self, tenant: TenantId) -> Option<Ipv6Addr> {
        self.gateways.get(usize::from(tenant)).and_then(|g| g.1)
    }

    /// ICMP error settings.
    #[inline]
    pub fn icmp(&self) -> &kxdp_config::IcmpSpec {
        &self.icmp
    }

    /// Whether `mac` belongs to this node (the VTEP's or a port's).
    #[inline]
    pub fn is_local_mac(&self, mac: &[u8; 6]) -> bool {
        *mac == self.vtep.mac || self.local_macs.contains(mac)
    }

    /// The local VTEP.
    #[inline]
    pub fn vtep(&self) -> &LocalVtep {
        &self.vtep
    }

    /// Longest-prefix match of an IPv4 destination in a tenant.
    #[inline]
    pub fn lookup_v4(&self, tenant: TenantId, dst: Ipv4Addr) -> Option<&NextHop> {
        let hop = *self.routes4.lookup(tenant, u32::from(dst))?;
        self.next_hops.get(hop as usize)
    }

    /// Longest-prefix match of an IPv6 destination in a tenant.
    #[inline]
    pub fn lookup_v6(&self, tenant: TenantId, dst: Ipv6Addr) -> Option<&NextHop> {
        let hop = *self.routes6.lookup(tenant, u128::from(dst))?;
        self.next_hops.get(hop as usize)
    }

    /// Number of IPv4 and IPv6 routes.
    pub fn route_count(&self) -> usize {
        self.routes4.len() + self.routes6.len()
    }

    /// Every route, for dumps: (tenant, prefix, next hop).
    pub fn routes(&self) -> Vec<(TenantId, IpNetwork, &NextHop)> {
        let mut out = Vec::with_capacity(self.route_count());
        for (t, len, addr, hop) in self.routes4.iter() {
            if let (Ok(net), Some(h)) = (
                ipnetwork::Ipv4Network::new(Ipv4Addr::from(addr), len),
                self.next_hops.get(*hop as usize),
            ) {
                out.push((t, IpNetwork::V4(net), h));
            }
        }
        for (t, len, addr, hop) in self.routes6.iter() {
            if let (Ok(net), Some(h)) = (
                ipnetwork::Ipv6Network::new(Ipv6Addr::from(addr), len),
                self.next_hops.get(*hop as usize),
            ) {
                out.push((t, IpNetwork::V6(net), h));
            }
        }
        out.sort_by_key(|(t, net, _)| (*t, net.is_ipv6(), net.ip(), net.prefix()));
        out
    }

    /// Add IPv4 routes straight to a remote next hop (benchmarks and tests:
    /// large tables without a large YAML). The next hop is a copy of the
    /// route that `via` currently resolves to in `tenant`.
    pub fn add_routes_v4(
        &mut self,
        tenant: TenantId,
        via: Ipv4Addr,
        prefixes: &[(Ipv4Addr, u8)],
    ) -> bool {
        let Some(&hop) = self.routes4.lookup(tenant, u32::from(via)) else {
            return false;
        };
        for (addr, len) in prefixes {
            self.routes4.insert(tenant, u32::from(*addr), *len, hop);
        }
        true
    }
}

/// The cluster's pod CIDRs (`cluster.pod_cidrs`, or every node's pod
/// CIDRs) and its Service CIDRs.
pub fn cluster_cidrs(config: &NodeConfig) -> Vec<IpNetwork> {
    // The cluster's pod CIDRs; for a family they do not list at all (a
    // dual-stack node in a cluster given IPv4 only; none listed: both),
    // the nodes' pod CIDRs of that family: a pod's own network is never
    // "the world". (A tenant's CIDR outside a family's cluster CIDRs stays
    // outside: tenants other than the host's may overlap anything.)
    let mut out: Vec<IpNetwork> = config.cluster.pod_cidrs.clone();
    let listed = |v6: bool| config.cluster.pod_cidrs.iter().any(|n| n.is_ipv6() == v6);
    out.extend(
        config
            .node
            .pod_cidrs
            .iter()
            .chain(config.remote_nodes.iter().flat_map(|n| n.pod_cidrs.iter()))
            .map(|c| c.cidr)
            .filter(|c| !listed(c.is_ipv6())),
    );
    out.extend(config.cluster.service_cidrs.iter().copied());
    out.sort_by_key(|n| (n.is_ipv6(), n.ip(), n.prefix()));
    out.dedup();
    out
}

/// Publishes table snapshots to the workers (the writer side of the RCU).
///
/// The writer keeps the last [`RETIRED_SNAPSHOTS`] replaced snapshots alive
/// and frees older ones itself: a worker that moves on to a new snapshot
/// then only drops a reference, and never frees a whole table set (tens to
/// hundreds of microseconds for large tables) inside its loop.
#[derive(Debug, Clone)]
pub struct TableHandle {
    current: Arc<ArcSwap<Tables>>,
    next_generation: Arc<AtomicU64>,
    retired: Arc<std::sync::Mutex<std::collections::VecDeque<Arc<Tables>>>>,
}

/// Replaced snapshots the writer keeps before it frees them.
pub const RETIRED_SNAPSHOTS: usize = 4;

impl TableHandle {
    /// Start with the given tables.
    pub fn new(tables: Tables) -> Self {
        let next = tables.generation + 1;
        TableHandle {
            current: Arc::new(ArcSwap::from_pointee(tables)),
            next_generation: Arc::new(AtomicU64::new(next)),
            retired: Arc::default(),
        }
    }

    /// Swap in `tables`; keep the replaced snapshot among the retired ones
    /// and free the oldest here, on the writer's thread (the lock is the
    /// writers' only: workers never take it).
    fn swap_in(&self, tables: Tables) {
        let old = self.current.swap(Arc::new(tables));
        let oldest = {
            let mut retired = self
                .retired
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            retired.push_back(old);
            if retired.len() > RETIRED_SNAPSHOTS {
                retired.pop_front()
            } else {
                None
            }
        };
        drop(oldest);
    }

    /// Validate `config`, compile it into a new generation and publish it
    /// with one swap. On error nothing changes.
    pub fn apply(&self, config: &NodeConfig) -> Result<u64, TableError> {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let tables = Tables::compile(config, generation)?;
        self.swap_in(tables);
        Ok(generation)
    }

    /// Publish already-compiled tables (their generation is replaced by the next one).
    pub fn publish(&self, mut tables: Tables) -> u64 {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        tables.generation = generation;
        self.swap_in(tables);
        generation
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// A reader for one worker.
    pub fn reader(&self) -> TableReader {
        TableReader {
            cache: Cache::new(Arc::clone(&self.current)),
        }
    }
}

/// A worker's view of the tables: lock-free, sees a new snapshot on the next
/// [`load`](TableReader::load) after it is published.
pub struct TableReader {
    cache: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader").finish_non_exhaustive()
    }
}

impl TableReader {
    /// The current snapshot (one atomic load when unchanged).
    #[inline]
    pub fn load(&mut self) -> &Arc<Tables> {
        self.cache.load()
    }
}

pub mod lpm {
    //! Longest-prefix match, per tenant, for IPv4 and IPv6.
    //!
    //! Written here rather than taken from a crate (prefix-trie, ip_network_table)
    //! because the workers need an immutable, allocation-free lookup that is as
    //! fast as a hash probe when, as in a pod network, only a handful of prefix
    //! lengths are in use (pods are /32 or /128, node CIDRs /24 or /64): one hash
    //! table keyed by (tenant, length, masked address), probed from the longest
    //! length present to the shortest. A lookup costs one probe per distinct
    //! length, independent of the number of routes.

    use rustc_hash::FxHashMap;

    /// A tenant's index in the tables.
    pub type TenantId = u16;

    /// An immutable LPM table for one address family (`A` is `u32` for IPv4,
    /// `u128` for IPv6), mapping prefixes to values of type `V`.
    #[derive(Clone, Debug)]
    pub struct Lpm<A: Address, V> {
        /// Prefix lengths present, longest first.
        lengths: Vec<u8>,
        entries: FxHashMap<(TenantId, u8, A), V>,
    }

    /// An address family's integer form.
    pub trait Address: Copy + Eq + std::hash::Hash + std::fmt::Debug {
        /// Bits in an address.
        const BITS: u8;
        /// The address with all bits after the first `len` cleared.
        fn masked(self, len: u8) -> Self;
    }

    impl Address for u32 {
        const BITS: u8 = 32;
        #[inline]
        fn masked(self, len: u8) -> Self {
            if len == 0 {
                0
            } else {
                self & (u32::MAX << (32 - u32::from(len.min(32))))
            }
        }
    }

    impl Address for u128 {
        const BITS: u8 = 128;
        #[inline]
        fn masked(self, len: u8) -> Self {
            if len == 0 {
                0
            } else {
                self & (u128::MAX << (128 - u32::from(len.min(128))))
            }
        }
    }

    impl<A: Address, V> Default for Lpm<A, V> {
        fn default() -> Self {
            Lpm {
                lengths: Vec::new(),
                entries: FxHashMap::default(),
            }
        }
    }

    impl<A: Address, V> Lpm<A, V> {
        /// An empty table.
        pub fn new() -> Self {
            Self::default()
        }

        /// Insert or replace a prefix; `len` is clamped to the family's width.
        /// Returns the previous value for exactly this prefix.
        pub fn insert(&mut self, tenant: TenantId, addr: A, len: u8, value: V) -> Option<V> {
            let len = len.min(A::BITS);
            if let Err(pos) = self.lengths.binary_search_by(|l| len.cmp(l)) {
                self.lengths.insert(pos, len);
            }
            self.entries.insert((tenant, len, addr.masked(len)), value)
        }

        /// Remove exactly this prefix.
        pub fn remove(&mut self, tenant: TenantId, addr: A, len: u8) -> Option<V> {
            let len = len.min(A::BITS);
            let removed = self.entries.remove(&(tenant, len, addr.masked(len)));
            if removed.is_some() && !self.entries.keys().any(|(_, l, _)| *l == len) {
                self.lengths.retain(|l| *l != len);
            }
            removed
        }

        /// The value of the longest prefix of `tenant` that contains `addr`.
        #[inline]
        pub fn lookup(&self, tenant: TenantId, addr: A) -> Option<&V> {
            for &len in &self.lengths {
                if let Some(v) = self.entries.get(&(tenant, len, addr.masked(len))) {
                    return Some(v);
                }
            }
            None
        }

        /// The value stored for exactly this prefix.
        pub fn get_exact(&self, tenant: TenantId, addr: A, len: u8) -> Option<&V> {
            let len = len.min(A::BITS);
            self.entries.get(&(tenant, len, addr.masked(len)))
        }

        /// Number of prefixes.
        pub fn len(&self) -> usize {
            self.entries.len()
        }

        /// True when empty.
        pub fn is_empty(&self) -> bool {
            self.entries.is_empty()
        }

        /// Every entry: (tenant, prefix length, masked address, value).
        pub fn iter(&self) -> impl Iterator<Item = (TenantId, u8, A, &V)> {
            self.entries.iter().map(|((t, l, a), v)| (*t, *l, *a, v))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        /// The obvious reference: scan every prefix, keep the longest match.
        fn naive<V: Clone>(
            routes: &[(TenantId, u32, u8, V)],
            tenant: TenantId,
            addr: u32,
        ) -> Option<V> {
            let mut best: Option<(u8, V)> = None;
            for (t, a, l, v) in routes {
                let l = (*l).min(32);
                if *t == tenant
                    && a.masked(l) == addr.masked(l)
                    && best.as_ref().is_none_or(|(bl, _)| l >= *bl)
                {
                    best = Some((l, v.clone()));
                }
            }
            best.map(|(_, v)| v)
        }

        #[test]
        fn longest_prefix_wins_and_tenants_are_separate() {
            let mut lpm = Lpm::<u32, &str>::new();
            lpm.insert(0, 0x0af4_0000, 16, "cluster");
            lpm.insert(0, 0x0af4_0100, 24, "node1");
            lpm.insert(0, 0x0af4_0102, 32, "pod");
            lpm.insert(1, 0x0af4_0100, 24, "other-tenant");
            assert_eq!(lpm.lookup(0, 0x0af4_0102), Some(&"pod"));
            assert_eq!(lpm.lookup(0, 0x0af4_0103), Some(&"node1"));
            assert_eq!(lpm.lookup(0, 0x0af4_0203), Some(&"cluster"));
            assert_eq!(lpm.lookup(0, 0x0a00_0001), None);
            assert_eq!(lpm.lookup(1, 0x0af4_0102), Some(&"other-tenant"));
            assert_eq!(lpm.lookup(2, 0x0af4_0102), None);
            assert_eq!(lpm.remove(0, 0x0af4_0102, 32), Some("pod"));
            assert_eq!(lpm.lookup(0, 0x0af4_0102), Some(&"node1"));
            assert_eq!(lpm.remove(0, 0x0af4_0102, 32), None);
        }

        #[test]
        fn default_route_and_ipv6() {
            let mut lpm = Lpm::<u128, u8>::new();
            lpm.insert(0, 0, 0, 1);
            lpm.insert(0, 0xfd00_0000_0000_0000_0000_0000_0000_0000, 8, 2);
            assert_eq!(
                lpm.lookup(0, 0xfd12_0000_0000_0000_0000_0000_0000_0001),
                Some(&2)
            );
            assert_eq!(
                lpm.lookup(0, 0x2001_0000_0000_0000_0000_0000_0000_0001),
                Some(&1)
            );
        }

        proptest! {
            #[test]
            fn agrees_with_naive_reference(
                routes in proptest::collection::vec((0u16..3, any::<u32>(), 0u8..=32, any::<u16>()), 0..200),
                probes in proptest::collection::vec((0u16..3, any::<u32>()), 1..200),
            ) {
                let mut lpm = Lpm::<u32, u16>::new();
                let mut reference: Vec<(TenantId, u32, u8, u16)> = Vec::new();
                for (t, a, l, v) in &routes {
                    lpm.insert(*t, *a, *l, *v);
                    // Later inserts of the same prefix replace earlier ones.
                    reference.retain(|(rt, ra, rl, _)| !(*rt == *t && *rl == *l && ra.masked(*l) == a.masked(*l)));
                    reference.push((*t, *a, *l, *v));
                }
                // Probe both random addresses and addresses inside the routes.
                for (i, (t, a)) in probes.iter().enumerate() {
                    let addr = if i % 2 == 0 || routes.is_empty() { *a } else {
                        let (_, ra, rl, _) = routes[i % routes.len()];
                        ra.masked(rl) | (a & !u32::MAX.checked_shl(32 - u32::from(rl)).unwrap_or(0))
                    };
                    prop_assert_eq!(lpm.lookup(*t, addr).copied(), naive(&reference, *t, addr));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = include_str!("../tests/fixtures/node1.yaml");

    #[test]
    fn a_pod_cidr_outside_the_clusters_is_still_of_the_cluster() {
        let mut config = NodeConfig::from_yaml_str(CONFIG).expect("fixture");
        let strings = |c: &NodeConfig| -> Vec<String> {
            cluster_cidrs(c).iter().map(ToString::to_string).collect()
        };
        // No cluster CIDRs: every node's pod CIDRs.
        assert_eq!(
            strings(&config),
            [
                "10.244.1.0/24",
                "10.244.2.0/24",
                "fd00:10:244:1::/64",
                "fd00:10:244:2::/64"
            ]
        );
        // A cluster CIDR of one family stands for that family; the other
        // family's node CIDRs stay.
        config.cluster.pod_cidrs = vec!["10.244.0.0/16".parse().expect("cidr")];
        assert_eq!(
            strings(&config),
            ["10.244.0.0/16", "fd00:10:244:1::/64", "fd00:10:244:2::/64"]
        );
        config.cluster.pod_cidrs = vec!["10.244.1.0/24".parse().expect("cidr")];
        assert_eq!(
            strings(&config),
            ["10.244.1.0/24", "fd00:10:244:1::/64", "fd00:10:244:2::/64"],
            "a node CIDR outside the family's cluster CIDRs stays outside"
        );
        config.cluster.pod_cidrs = vec![
            "10.244.0.0/16".parse().expect("cidr"),
            "fd00:10:244::/48".parse().expect("cidr"),
        ];
        assert_eq!(strings(&config), ["10.244.0.0/16", "fd00:10:244::/48"]);
    }

    /// A worker that moves on to a new snapshot never holds the last
    /// reference to the old one (it would free a whole table set inside its
    /// loop): the writer keeps it and frees it later, itself.
    #[test]
    fn a_reader_never_frees_a_replaced_snapshot() {
        let config = NodeConfig::from_yaml_str(CONFIG).expect("fixture");
        let handle = TableHandle::new(Tables::compile(&config, 1).expect("compiles"));
        let mut reader = handle.reader();
        let first = Arc::downgrade(reader.load());
        handle.apply(&config).expect("compiles");
        let second = reader.load().generation();
        assert_eq!(second, 2);
        assert!(
            first.upgrade().is_some(),
            "the reader held the last reference of the replaced snapshot"
        );
        for _ in 0..RETIRED_SNAPSHOTS {
            handle.apply(&config).expect("compiles");
        }
        // Freed by the writer once enough newer ones were published.
        assert!(first.upgrade().is_none());
        assert_eq!(
            reader.load().generation(),
            2 + RETIRED_SNAPSHOTS as u64,
            "the reader sees the newest"
        );
    }
}
