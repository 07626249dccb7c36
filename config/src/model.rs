//! The declarative model of one kxdp node and the network it takes part in.
//!
//! Every source of configuration (a YAML file, the gRPC API, the Kubernetes
//! agent) produces this model; the dataplane compiles it into tables.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// A MAC address, written `02:00:00:00:01:01` in YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// The whole configuration of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node.
    pub node: NodeSpec,
    /// The interfaces kxdp owns: the underlay and the host side of each pod's veth.
    pub interfaces: Vec<InterfaceSpec>,
    /// Worker threads.
    #[serde(default)]
    pub workers: WorkerSpec,
    /// Tenants and their VXLAN network identifiers.
    pub tenants: Vec<TenantSpec>,
    /// Pods on this node.
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    /// Other nodes of the cluster, reached over VXLAN.
    #[serde(default)]
    pub remote_nodes: Vec<RemoteNodeSpec>,
    /// Extra routes, beyond pods and remote pod CIDRs.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// The control surface: the gRPC API's sockets, the metrics endpoint.
    #[serde(default)]
    pub control: ControlSpec,
    /// Namespaces and their labels (for policy namespace selectors).
    #[serde(default)]
    pub namespaces: Vec<crate::NamespaceSpec>,
    /// Services with their endpoints.
    #[serde(default)]
    pub services: Vec<crate::ServiceSpec>,
    /// NetworkPolicies.
    #[serde(default)]
    pub policies: Vec<crate::NetworkPolicySpec>,
    /// Service chains.
    #[serde(default)]
    pub chains: Vec<crate::ChainSpec>,
    /// The host port: kxdp's interface pair into the node's own network
    /// stack (node ↔ pod traffic, egress, NodePorts). Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSpec>,
    /// The cluster's address plan: its pod and Service CIDRs and the
    /// NodePort range (what kube-proxy's and the CNI's flags say).
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// ICMP errors kxdp sends as the pods' first-hop router.
    #[serde(default, skip_serializing_if = "IcmpSpec::is_default")]
    pub icmp: IcmpSpec,
}

/// ICMP errors (time exceeded, destination unreachable, fragmentation
/// needed / packet too big), sent from the pods' gateway address and
/// rate-limited per source as the kernel's `icmp_ratelimit` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpSpec {
    /// Send them at all; true unless set.
    #[serde(default = "default_true")]
    pub errors: bool,
    /// Errors per second to one source address (per worker).
    #[serde(default = "default_icmp_rate")]
    pub per_source_per_second: u32,
    /// How many a source may get at once before the rate applies.
    #[serde(default = "default_icmp_burst")]
    pub per_source_burst: u32,
    /// Errors per second in all (per worker), whatever their sources.
    #[serde(default = "default_icmp_total")]
    pub total_per_second: u32,
}

fn default_icmp_rate() -> u32 {
    100
}
fn default_icmp_burst() -> u32 {
    20
}
fn default_icmp_total() -> u32 {
    1000
}

impl Default for IcmpSpec {
    fn default() -> Self {
        IcmpSpec {
            errors: true,
            per_source_per_second: default_icmp_rate(),
            per_source_burst: default_icmp_burst(),
            total_per_second: default_icmp_total(),
        }
    }
}

impl IcmpSpec {
    /// Whether this is the default.
    pub fn is_default(&self) -> bool {
        *self == IcmpSpec::default()
    }
}

/// This node: its name, VTEP and pod CIDRs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The node name (as Kubernetes knows it).
    pub name: String,
    /// The VTEP: the underlay address that VXLAN is sent from and received at.
    pub vtep: VtepSpec,
    /// The pod CIDRs of this node, one or more per tenant (IPv4 and/or IPv6).
    pub pod_cidrs: Vec<PodCidrSpec>,
}

/// The local VXLAN tunnel endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtepSpec {
    /// The VTEP's IPv4 address on the underlay.
    pub ip: Ipv4Addr,
    /// The underlay interface (one of `interfaces`, with role `underlay`).
    pub interface: String,
    /// The MAC used as the inner source MAC of encapsulated frames (the way a
    /// kernel vxlan device's MAC is). Defaults to the underlay interface's MAC.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// UDP destination port; 4789 (IANA) unless set.
    #[serde(default = "default_vxlan_port")]
    pub udp_port: u16,
    /// MTU of the underlay; frames whose encapsulation would exceed it are dropped.
    #[serde(default = "default_underlay_mtu")]
    pub underlay_mtu: u16,
}

/// A pod CIDR of a node, for one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodCidrSpec {
    /// The tenant that owns the addresses.
    pub tenant: String,
    /// The prefix.
    pub cidr: IpNetwork,
    /// The pods' gateway address, answered by the dataplane (ARP / neighbour
    /// discovery). Defaults to the first host address of `cidr`.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The role of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceRole {
    /// The host side of a pod's veth: every frame goes to the dataplane.
    Pod,
    /// The node's underlay: only VXLAN to the local VTEP goes to the dataplane.
    Underlay,
    /// kxdp's side of the host port (see [`HostSpec`]): every frame goes to
    /// the dataplane. kxdp creates the pair at start and removes it at stop.
    Host,
}

/// One interface that kxdp binds AF_XDP sockets to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    /// The Linux interface name.
    pub name: String,
    /// Pod-facing or underlay.
    pub role: InterfaceRole,
    /// The interface's MAC (the source MAC of frames kxdp sends out of it).
    pub mac: MacAddr,
    /// Number of queues to bind (one socket per queue); 1 unless set.
    #[serde(default = "default_queues")]
    pub queues: u16,
    /// The largest IP packet the interface's far end takes (a pod's eth0
    /// MTU): larger packets to it are refused with an ICMP error instead
    /// of vanishing in the kernel. `kxdp run` reads the interface's own
    /// MTU when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// How workers wait for work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin forever: lowest latency, one core fully used per worker.
    Busy,
    /// Spin briefly, then sleep in poll() until the kernel wakes the worker.
    #[default]
    Adaptive,
}

/// AF_XDP bind mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (skb) mode with a log line.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Where the receive work of the pods' veths (their NAPI: the kernel's
/// XDP run, the redirect and the copy into a worker's UMEM) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PodNapi {
    /// As the kernel has it: a veth's NAPI runs in the softirq of the core
    /// that transmitted into it (the pod's).
    #[default]
    Kernel,
    /// Threaded NAPI on every pod interface (`/sys/class/net/IF/threaded`
    /// set to 1 while kxdp owns it, the old value put back when it lets
    /// go), each queue's NAPI thread pinned to the core of the worker that
    /// owns that queue, at the kernel's SCHED_OTHER. The pods' redirect
    /// and copy then run on the worker's core, beside the worker: faster
    /// TCP and a lower p99 under load, but a pod that floods takes a share
    /// of the worker's core, and a spinning client's low-rate latency
    /// rises. Needs `workers.cores`.
    WorkerCore,
}

impl PodNapi {
    /// The default: written configs leave it out, so a node config written
    /// by today's tools still reads in a kxdp that predates the setting.
    pub fn is_kernel(&self) -> bool {
        *self == PodNapi::Kernel
    }
}

/// The worker threads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Number of workers; each owns one queue of every interface.
    #[serde(default = "default_worker_count")]
    pub count: u16,
    /// Cores to pin workers to (worker i on cores[i % len]); empty: no pinning.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Frames per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u16,
    /// Busy or adaptive polling.
    #[serde(default)]
    pub poll_mode: PollMode,
    /// XDP attach mode.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// Ask for zero-copy AF_XDP (falls back to copy mode when the driver cannot).
    #[serde(default = "default_true")]
    pub zero_copy: bool,
    /// Where the pod interfaces' receive work (NAPI) runs: `kernel`
    /// (default) or `worker-core` (see [`PodNapi`]).
    #[serde(default, skip_serializing_if = "PodNapi::is_kernel")]
    pub pod_napi: PodNapi,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            count: default_worker_count(),
            cores: Vec::new(),
            batch_size: default_batch_size(),
            poll_mode: PollMode::default(),
            xdp_mode: XdpMode::default(),
            zero_copy: true,
            pod_napi: PodNapi::default(),
        }
    }
}

/// A tenant: an isolated pod network with its own VXLAN VNI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Tenant name.
    pub name: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
}

/// A pod on this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// Pod name (namespace/name in Kubernetes).
    pub name: String,
    /// The tenant the pod belongs to.
    pub tenant: String,
    /// The pod's IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// An optional second address of the other family (dual stack).
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// The MAC of the pod's own interface (eth0 inside the pod).
    pub mac: MacAddr,
    /// The host-side interface of the pod's veth (one of `interfaces`, role `pod`).
    pub interface: String,
    /// Labels, for identity-based policy.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its Kubernetes namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The container runtime's id of the pod's sandbox, when a CNI plugin
    /// registered it (`kxdp-cni`); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// A remote node, reached over VXLAN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteNodeSpec {
    /// Node name.
    pub name: String,
    /// Its VTEP address.
    pub vtep_ip: Ipv4Addr,
    /// Its VTEP MAC: the inner destination MAC of frames sent to it (for a
    /// kernel vxlan node, the vxlan device's MAC).
    pub vtep_mac: MacAddr,
    /// The outer destination MAC (the underlay next hop). Unset: the MAC
    /// the node's kernel resolves for the next hop towards `vtep_ip` out
    /// of the underlay, else `vtep_mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay_mac: Option<MacAddr>,
    /// Its pod CIDRs, per tenant.
    pub pod_cidrs: Vec<PodCidrSpec>,
    /// Its own addresses (its InternalIPs: kubelet, hostNetwork pods, the
    /// API server), reached over VXLAN from the tenants that may reach
    /// nodes ([`HostSpec::tenants`]); its VTEP address unless set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ips: Vec<IpAddr>,
}

impl RemoteNodeSpec {
    /// Its addresses: `node_ips`, or its VTEP address when none is set.
    pub fn node_addresses(&self) -> Vec<IpAddr> {
        if self.node_ips.is_empty() {
            vec![IpAddr::V4(self.vtep_ip)]
        } else {
            self.node_ips.clone()
        }
    }
}

/// The host port: a veth pair between kxdp and the node's own network
/// stack, the way VPP's tap serves Calico-VPP. kxdp delivers into it what
/// is for the node (its addresses, the pods' gateway addresses) and what
/// leaves the cluster; the node routes the cluster's pod CIDRs and Service
/// CIDRs into it. kxdp sets the node side up at start (addresses, routes,
/// a static neighbour, MTU, offloads, forwarding, the egress and NodePort
/// rules) and removes all of it at stop, or at the next start after a
/// crash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// kxdp's side: one of `interfaces`, with role `host`.
    pub interface: String,
    /// The node's side of the pair; `kxdp-host` unless set.
    #[serde(default = "default_host_peer")]
    pub peer: String,
    /// The node side's MAC; the kxdp side's with its last byte + 1 unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_mac: Option<MacAddr>,
    /// The node's own addresses (its InternalIPs); the VTEP address unless set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_ips: Vec<IpAddr>,
    /// The tenants whose pods may reach the node (and egress, and be reached
    /// from it); the first tenant unless set. Their pod CIDRs must not
    /// overlap: the node's own routing table has no tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// MTU of the pair; the underlay MTU minus VXLAN's 50 bytes unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Traffic leaving the cluster.
    #[serde(default)]
    pub egress: EgressSpec,
}

fn default_host_peer() -> String {
    "kxdp-host".to_string()
}

impl HostSpec {
    /// The node's addresses: `node_ips`, or the VTEP address.
    pub fn node_addresses(&self, node: &NodeSpec) -> Vec<IpAddr> {
        if self.node_ips.is_empty() {
            vec![IpAddr::V4(node.vtep.ip)]
        } else {
            self.node_ips.clone()
        }
    }

    /// The tenants that may reach the node: `tenants`, or the first tenant.
    pub fn host_tenants<'a>(&'a self, tenants: &'a [TenantSpec]) -> Vec<&'a str> {
        if self.tenants.is_empty() {
            tenants.iter().take(1).map(|t| t.name.as_str()).collect()
        } else {
            self.tenants.iter().map(String::as_str).collect()
        }
    }

    /// The tenants whose egress leaves through the node, masqueraded.
    pub fn egress_tenants<'a>(&'a self, tenants: &'a [TenantSpec]) -> Vec<&'a str> {
        match &self.egress.tenants {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => self.host_tenants(tenants),
        }
    }

    /// The node side's MAC.
    pub fn peer_mac_or(&self, kxdp_side: MacAddr) -> MacAddr {
        self.peer_mac.unwrap_or_else(|| {
            let mut mac = kxdp_side.0;
            mac[5] = mac[5].wrapping_add(1);
            MacAddr(mac)
        })
    }

    /// The pair's MTU.
    pub fn mtu_or(&self, node: &NodeSpec) -> u16 {
        self.mtu
            .unwrap_or_else(|| node.vtep.underlay_mtu.saturating_sub(50))
    }
}

/// Traffic from pods to destinations outside every pod and Service CIDR.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSpec {
    /// Tenants whose pods reach outside the cluster, through the node with
    /// the node's address as their source (Flannel's `ipMasq`); the host
    /// tenants unless set (`[]`: no egress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<String>>,
    /// Destinations that leave through the node but keep the pod's address
    /// as their source (no masquerade).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNetwork>,
}

/// The cluster's address plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Every pod CIDR of the cluster (`--cluster-cidr`); the union of the
    /// nodes' pod CIDRs unless set. Never masqueraded; an address in them
    /// that no node owns is unreachable, not egress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<IpNetwork>,
    /// The Service CIDRs (`--service-cluster-ip-range`): routed by the node
    /// into the host port; never egress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_cidrs: Vec<IpNetwork>,
    /// The NodePort range (`--service-node-port-range`).
    #[serde(default = "default_node_port_range")]
    pub node_port_range: crate::PortRange,
    /// Balance every Service for every pod of its tenant without a chain
    /// (kxdp replaces kube-proxy); on unless set to false.
    #[serde(default = "default_true")]
    pub service_load_balancing: bool,
}

fn default_node_port_range() -> crate::PortRange {
    crate::PortRange {
        first: 30000,
        last: 32767,
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            pod_cidrs: Vec::new(),
            service_cidrs: Vec::new(),
            node_port_range: default_node_port_range(),
            service_load_balancing: true,
        }
    }
}

impl ClusterSpec {
    /// Whether this is the default (nothing set).
    pub fn is_default(&self) -> bool {
        *self == ClusterSpec::default()
    }
}

/// What an extra route points at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteTarget {
    /// A remote node, by name.
    Node(String),
    /// A local pod, by name.
    Pod(String),
    /// Drop (a blackhole route).
    Blackhole,
}

/// An extra route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The tenant whose table gets the route.
    pub tenant: String,
    /// Destination prefix.
    pub prefix: IpNetwork,
    /// Where it goes: `{node: node2}`, `{pod: pod-a}` or `blackhole`.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub via: RouteTarget,
}

/// The control surface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControlSpec {
    /// Where the node's sockets are: the gRPC API's is beside this path,
    /// with `.api.sock` for `.sock`; `/run/kxdp/<node>.sock` unless set.
    /// (Nothing listens on this path itself since the JSON stats socket
    /// was retired: the API and `/metrics` show the same counters.)
    #[serde(default)]
    pub socket: Option<String>,
    /// The gRPC API's Unix socket (mode 0600); beside `socket`, with
    /// `.api.sock` for `.sock` (`/run/kxdp/<node>.api.sock`), unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket: Option<String>,
    /// A group allowed to use the gRPC API's Unix socket: the socket becomes
    /// root:GROUP with mode 0660 (an operator group, or the group of a
    /// CNI plugin). Unset: root only, mode 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_socket_group: Option<String>,
    /// The gRPC API on TCP, always with mutual TLS (there is no plaintext
    /// TCP listener); off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_tcp: Option<ApiTcpSpec>,
    /// The OpenMetrics endpoint (`/metrics`, `/healthz`, `/readyz`) on plain
    /// HTTP, `ADDRESS:PORT` such as `127.0.0.1:9464`; off unless set (or
    /// `kxdp run --metrics ADDR`). It only reads counters and table sizes:
    /// bind it where only the scraper reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// The gRPC API on TCP with mutual TLS: the server presents `cert` and
/// accepts only clients whose certificate `client_ca` signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTcpSpec {
    /// Address and port to listen on, e.g. `0.0.0.0:50051`.
    pub listen: std::net::SocketAddr,
    /// The server's certificate chain (PEM).
    pub cert: String,
    /// The server's private key (PEM).
    pub key: String,
    /// The CA certificate(s) that sign client certificates (PEM).
    pub client_ca: String,
}

fn default_vxlan_port() -> u16 {
    4789
}
fn default_underlay_mtu() -> u16 {
    1500
}
fn default_queues() -> u16 {
    1
}
fn default_worker_count() -> u16 {
    1
}
fn default_batch_size() -> u16 {
    64
}
fn default_true() -> bool {
    true
}
