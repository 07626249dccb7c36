//! What a testbed is made of: the specification a test writes
//! ([`TopologySpec`]), and the plan derived from it without touching the
//! system: every namespace and interface name, address and MAC, and the kxdp
//! configuration of each kxdp node. Planning is a pure function so that the
//! addressing scheme and the generated configurations are tested without
//! privileges; [`Testbed::build`](super::Testbed::build) then carries the
//! plan out.
//!
//! Addressing (N is a node's 1-based position in `nodes`):
//! - VTEP / underlay: `192.168.100.N/24` on `ul0`, MTU 1500.
//! - Pod CIDR of node N: `10.244.N.0/24` for every tenant it serves (tenants
//!   reuse the same CIDRs: their addresses overlap, VNIs keep them apart);
//!   gateway `10.244.N.1`.
//! - Pod MTU 1450: the 1500-byte underlay minus the 50 bytes of VXLAN
//!   encapsulation (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8).
//! - MACs are `02:00:00:KK:NN:II` (locally administered): KK the kind of
//!   interface, NN the node number, II the pod's index on its node.
//! - A kxdp node with a host port ([`NodeSpec::with_host_port`]): kxdp's
//!   side `kxdp-h0` (`02:00:00:05:NN:00`), the node's side `kxdp-host`
//!   (both created by kxdp at start); the node's address is its VTEP
//!   address; the cluster's pod CIDR is `10.244.0.0/16`, its Service CIDR
//!   `10.96.0.0/16`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnetwork::{IpNetwork, Ipv4Network};
use kxdp_config::{
    ClusterSpec, ControlSpec, EgressSpec, HostSpec, InterfaceRole, InterfaceSpec, MacAddr,
    NodeConfig, PodCidrSpec, RemoteNodeSpec, TenantSpec, VtepSpec, WorkerSpec,
};

use super::error::{Result, TestbedError};
use super::netns::Netns;

/// The underlay interface of every node.
pub const UNDERLAY_IF: &str = "ul0";
/// The interface inside every pod.
pub const POD_IF: &str = "eth0";
/// The bridge of a kernel vxlan node (what Flannel's bridge CNI calls it).
pub const CNI_BRIDGE: &str = "cni0";
/// The bridge of the `Switch` underlay, in the fabric namespace.
pub const FABRIC_BRIDGE: &str = "br0";
/// MTU of the underlay.
pub const UNDERLAY_MTU: u16 = 1500;
/// Bytes VXLAN adds to an inner Ethernet frame's IP packet: outer Ethernet
/// (14) + IPv4 (20) + UDP (8) + VXLAN (8).
pub const VXLAN_OVERHEAD: u16 = 50;
/// MTU of pod interfaces: the underlay MTU minus the VXLAN overhead.
pub const POD_MTU: u16 = UNDERLAY_MTU - VXLAN_OVERHEAD;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// Prefix length of every node's pod CIDR.
pub const POD_CIDR_LEN: u8 = 24;
/// Most nodes a testbed can hold (node numbers are one address octet).
pub const MAX_NODES: usize = 250;
/// Longest pod name: the host-side interface `v<pod>` must fit IFNAMSIZ-1.
pub const MAX_POD_NAME: usize = 14;
/// kxdp's side of a node's host port (a node with [`NodeSpec::host_port`]).
pub const HOST_IF: &str = "kxdp-h0";
/// The node's side of the host port (kxdp's default name for it).
pub const HOST_PEER: &str = "kxdp-host";

const MAC_UNDERLAY: u8 = 0x01;
const MAC_FLANNEL: u8 = 0x02;
const MAC_CNI_BRIDGE: u8 = 0x03;
const MAC_FABRIC_PORT: u8 = 0x04;
const MAC_HOST_PORT: u8 = 0x05;
const MAC_POD: u8 = 0x10;
const MAC_POD_HOST: u8 = 0x11;

/// How a node forwards its pods' traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// kxdp forwards (started with [`Testbed::start_kxdp`](super::Testbed::start_kxdp));
    /// pods are attached point-to-point, the dataplane answers ARP for the gateway.
    Kxdp,
    /// The Linux kernel forwards, the way Flannel's vxlan backend sets a node
    /// up: a `cni0` bridge, a `flannel.<vni>` vxlan device, static routes,
    /// neighbours and fdb entries for every remote node. Serves one tenant
    /// (this kernel has no VRF, so overlapping tenant CIDRs cannot share it).
    KernelVxlan,
    /// The Linux kernel routes, without an overlay (Flannel's `host-gw`
    /// backend): a `cni0` bridge and, for every remote node, a route to its
    /// pod CIDR via its underlay address. Talks only to other routed nodes;
    /// serves one tenant. The `routed` baseline of benchmarks.
    Routed,
}

impl NodeKind {
    /// Whether the kernel forwards this node's pods (a `cni0` bridge).
    pub fn is_kernel(self) -> bool {
        matches!(self, NodeKind::KernelVxlan | NodeKind::Routed)
    }
}

/// What the kernel finishes for frames leaving a node's underlay `ul0`.
///
/// A kxdp node's AF_XDP copy-mode sockets receive frames as they arrive:
/// a peer that leaves checksums unfinished (`CHECKSUM_PARTIAL`, as a veth
/// with transmit offloads on does) or sends segmentation-offload
/// superframes would hand kxdp work a NIC on a real wire never hands it.
/// So by default every node's `ul0` finishes its frames in software, as if
/// a NIC did; a node peering only with kernel nodes can keep the kernel's
/// defaults, as Flannel runs ([`NodeSpec::with_underlay_offloads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnderlayOffloads {
    /// `ethtool -K ul0 tx off`: checksums finished before a frame leaves,
    /// and with transmit checksumming off the kernel turns off TSO and GSO
    /// too (segments are cut before they leave). What a kxdp peer needs;
    /// the default of every node.
    #[default]
    TxOff,
    /// Every offload at the kernel's default for a veth, as a node running
    /// Flannel has it: only for nodes whose peers are all kernel nodes.
    KernelDefault,
}

impl UnderlayOffloads {
    /// Label in reports: `tx off` or `default`.
    pub fn label(self) -> &'static str {
        match self {
            UnderlayOffloads::TxOff => "tx off",
            UnderlayOffloads::KernelDefault => "default",
        }
    }
}

/// How the nodes' underlay interfaces are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underlay {
    /// One veth pair between the `ul0` of exactly two nodes.
    Direct,
    /// A bridge in a separate "fabric" namespace, one veth to each node.
    Switch,
}

/// A pod to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    /// Unique in the testbed (name pods per tenant when addresses overlap,
    /// e.g. `blue-a` and `red-a`); `[a-z0-9-]`, at most [`MAX_POD_NAME`] chars.
    pub name: String,
    /// One of the topology's tenants.
    pub tenant: String,
    /// An address in its node's pod CIDR `10.244.N.0/24` (not .0, .1, .255).
    pub ip: Ipv4Addr,
    /// Labels, copied into the kxdp configuration (identity-based policy).
    pub labels: BTreeMap<String, String>,
}

impl PodSpec {
    /// A pod without labels.
    pub fn new(name: &str, tenant: &str, ip: Ipv4Addr) -> PodSpec {
        PodSpec {
            name: name.to_string(),
            tenant: tenant.to_string(),
            ip,
            labels: BTreeMap::new(),
        }
    }
}

/// A node to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Unique in the testbed; `[a-z0-9-]`, at most 32 chars.
    pub name: String,
    /// kxdp or kernel vxlan.
    pub kind: NodeKind,
    /// Its pods.
    pub pods: Vec<PodSpec>,
    /// The `workers` section of its kxdp configuration (kxdp nodes only).
    pub workers: WorkerSpec,
    /// Whether kxdp gives the node a host port (kxdp nodes only; off by
    /// default): see [`NodeSpec::with_host_port`].
    pub host_port: bool,
    /// What the kernel finishes for frames leaving its `ul0`
    /// ([`UnderlayOffloads::TxOff`] unless set).
    pub underlay_offloads: UnderlayOffloads,
}

impl NodeSpec {
    /// A node without pods, default workers.
    pub fn new(name: &str, kind: NodeKind) -> NodeSpec {
        NodeSpec {
            name: name.to_string(),
            kind,
            pods: Vec::new(),
            workers: WorkerSpec::default(),
            host_port: false,
            underlay_offloads: UnderlayOffloads::default(),
        }
    }

    /// Set what the kernel finishes for frames leaving this node's `ul0`:
    /// [`UnderlayOffloads::KernelDefault`] keeps every offload at its
    /// default (a kernel node among kernel nodes, as Flannel runs), which a
    /// kxdp peer must not receive.
    pub fn with_underlay_offloads(mut self, offloads: UnderlayOffloads) -> NodeSpec {
        self.underlay_offloads = offloads;
        self
    }

    /// Give this kxdp node a host port, as a node of a Kubernetes cluster
    /// has: its configuration gets the interface [`HOST_IF`] (role host)
    /// and a `host` section (peer [`HOST_PEER`], the node's address its
    /// VTEP address, the first tenant reaching the node), the cluster's
    /// pod and Service CIDRs ([`CLUSTER_POD_CIDR`], [`SERVICE_CIDR`]), and
    /// every remote node its VTEP address as its node address. In the
    /// node's namespace, interfaces created after the build (the host
    /// port's pair) have IPv6, as on a stock node; the testbed's own stay
    /// IPv4-only.
    pub fn with_host_port(mut self) -> NodeSpec {
        self.host_port = true;
        self
    }

    /// Add a pod.
    pub fn with_pod(mut self, name: &str, tenant: &str, ip: Ipv4Addr) -> NodeSpec {
        self.pods.push(PodSpec::new(name, tenant, ip));
        self
    }
}

/// A whole topology.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologySpec {
    /// The nodes; node N (1-based position) gets VTEP 192.168.100.N and pod CIDR 10.244.N.0/24.
    pub nodes: Vec<NodeSpec>,
    /// Tenants and their VNIs (e.g. blue 100, red 200).
    pub tenants: Vec<TenantSpec>,
    /// How the underlay is wired.
    pub underlay: Underlay,
}

impl TopologySpec {
    /// A topology with the given tenants (`(name, vni)`), no nodes yet.
    pub fn new(underlay: Underlay, tenants: &[(&str, u32)]) -> TopologySpec {
        TopologySpec {
            nodes: Vec::new(),
            tenants: tenants
                .iter()
                .map(|(name, vni)| TenantSpec {
                    name: (*name).to_string(),
                    vni: *vni,
                })
                .collect(),
            underlay,
        }
    }

    /// Add a node.
    pub fn with_node(mut self, node: NodeSpec) -> TopologySpec {
        self.nodes.push(node);
        self
    }
}

/// The VTEP address of node `number` (1-based): `192.168.100.<number>`.
pub fn vtep_ip(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 100, number)
}

/// The pod CIDR network address of node `number`: `10.244.<number>.0`.
pub fn pod_cidr(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, number, 0)
}

/// Pod address `host` on node `number`: `10.244.<number>.<host>`.
pub fn pod_ip(number: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, number, host)
}

/// The pods' gateway on node `number`: `10.244.<number>.1`.
pub fn gateway_ip(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, number, 1)
}

/// The cluster's pod CIDR, holding every node's: `10.244.0.0/16`.
pub const CLUSTER_POD_CIDR: Ipv4Network = network(Ipv4Addr::new(10, 244, 0, 0), 16);

/// The cluster's Service CIDR (the ClusterIPs): `10.96.0.0/16`.
pub const SERVICE_CIDR: Ipv4Network = network(Ipv4Addr::new(10, 96, 0, 0), 16);

const fn network(address: Ipv4Addr, prefix: u8) -> Ipv4Network {
    match Ipv4Network::new_checked(address, prefix) {
        Some(network) => network,
        None => panic!("not a prefix length"),
    }
}

/// The kernel vxlan device of a tenant on a kernel node (as Flannel names it).
pub fn flannel_device(vni: u32) -> String {
    format!("flannel.{vni}")
}

fn mac(kind: u8, node: u8, index: u8) -> MacAddr {
    MacAddr([0x02, 0x00, 0x00, kind, node, index])
}

/// A node as built.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// kxdp or kernel vxlan.
    pub kind: NodeKind,
    /// 1-based number: the last octet of its VTEP, the third of its pod CIDR.
    pub number: u8,
    /// Its network namespace.
    pub netns: Netns,
    /// Its VTEP address (on `ul0`, /24).
    pub vtep_ip: Ipv4Addr,
    /// The MAC of its `ul0`: the outer destination MAC of VXLAN sent to it.
    pub underlay_mac: MacAddr,
    /// The inner destination MAC of VXLAN sent to it: `ul0`'s MAC on a kxdp
    /// node, the `flannel.<vni>` devices' MAC on a kernel node.
    pub vtep_mac: MacAddr,
    /// Network address of its pod CIDR (`10.244.N.0`, prefix [`POD_CIDR_LEN`]).
    pub pod_cidr: Ipv4Addr,
    /// Its pods' gateway (`10.244.N.1`).
    pub gateway: Ipv4Addr,
    /// The tenants it serves (all of them on a kxdp node, one on a kernel node).
    pub tenants: Vec<String>,
    /// Its pods, by name.
    pub pods: Vec<String>,
    /// The interfaces kxdp binds on it: `ul0`, then each pod's host side,
    /// then kxdp's side of its host port ([`HOST_IF`]) if it has one.
    pub interfaces: Vec<String>,
    /// Whether kxdp gives it a host port (see [`NodeSpec::with_host_port`]).
    pub host_port: bool,
    /// What the kernel finishes for frames leaving its `ul0`.
    pub underlay_offloads: UnderlayOffloads,
}

impl AsRef<Netns> for Node {
    fn as_ref(&self) -> &Netns {
        &self.netns
    }
}

/// A pod as built.
#[derive(Clone, Debug, PartialEq)]
pub struct Pod {
    /// Its name.
    pub name: String,
    /// Its tenant.
    pub tenant: String,
    /// Its VNI.
    pub vni: u32,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The prefix length of that address on `eth0`: 32 on a kxdp node
    /// (point-to-point, routes through the gateway), 24 on a kernel node
    /// (Flannel's bridge CNI).
    pub prefix_len: u8,
    /// The MAC of its `eth0`.
    pub mac: MacAddr,
    /// The node it lives on.
    pub node: String,
    /// The host side of its veth, in the node's namespace (`v<pod>`).
    pub host_interface: String,
    /// The MAC of the host side.
    pub host_mac: MacAddr,
    /// Its default gateway.
    pub gateway: Ipv4Addr,
    /// Its network namespace.
    pub netns: Netns,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl AsRef<Netns> for Pod {
    fn as_ref(&self) -> &Netns {
        &self.netns
    }
}

/// Everything [`plan`] decides.
#[derive(Debug)]
pub(crate) struct Plan {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub fabric: Option<Netns>,
    pub configs: BTreeMap<String, NodeConfig>,
}

fn spec_error(message: String) -> TestbedError {
    TestbedError::Spec(message)
}

fn check_name(what: &str, name: &str, max: usize) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_alnum = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !starts_alnum || name.len() > max {
        return Err(spec_error(format!(
            "{what} name {name:?}: use 1 to {max} characters of [a-z0-9-], starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Decide every name, address, MAC and configuration of `spec`; `prefix` is
/// the run's namespace prefix, `scratch` the directory for control sockets.
pub(crate) fn plan(spec: &TopologySpec, prefix: &str, scratch: &Path) -> Result<Plan> {
    if spec.nodes.is_empty() {
        return Err(spec_error("no nodes".into()));
    }
    if spec.nodes.len() > MAX_NODES {
        return Err(spec_error(format!(
            "{} nodes, at most {MAX_NODES}",
            spec.nodes.len()
        )));
    }
    if spec.underlay == Underlay::Direct && spec.nodes.len() != 2 {
        return Err(spec_error(format!(
            "a Direct underlay joins exactly two nodes, this topology has {}",
            spec.nodes.len()
        )));
    }
    if spec.tenants.is_empty() {
        return Err(spec_error("no tenants".into()));
    }
    let mut tenant_vni: BTreeMap<&str, u32> = BTreeMap::new();
    let mut vnis = BTreeSet::new();
    for tenant in &spec.tenants {
        if tenant.name.is_empty() {
            return Err(spec_error("a tenant has an empty name".into()));
        }
        if tenant.vni == 0 || tenant.vni > 0x00ff_ffff {
            return Err(spec_error(format!(
                "tenant {}: VNI {} is not in 1..=16777215",
                tenant.name, tenant.vni
            )));
        }
        if tenant_vni.insert(&tenant.name, tenant.vni).is_some() {
            return Err(spec_error(format!(
                "tenant {} is listed twice",
                tenant.name
            )));
        }
        if !vnis.insert(tenant.vni) {
            return Err(spec_error(format!(
                "VNI {} is used by two tenants",
                tenant.vni
            )));
        }
    }

    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    let mut node_names = BTreeSet::new();
    let mut pod_names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for (position, node_spec) in spec.nodes.iter().enumerate() {
        check_name("node", &node_spec.name, 32)?;
        if !node_names.insert(node_spec.name.as_str()) {
            return Err(spec_error(format!(
                "node {} is listed twice",
                node_spec.name
            )));
        }
        let number = u8::try_from(position + 1).map_err(|_| spec_error("too many nodes".into()))?;
        if node_spec.pods.len() > 250 {
            return Err(spec_error(format!(
                "node {}: at most 250 pods",
                node_spec.name
            )));
        }
        let tenants: Vec<String> = match node_spec.kind {
            NodeKind::Kxdp => spec.tenants.iter().map(|t| t.name.clone()).collect(),
            NodeKind::KernelVxlan | NodeKind::Routed => {
                let served: BTreeSet<&str> =
                    node_spec.pods.iter().map(|p| p.tenant.as_str()).collect();
                match served.len() {
                    0 => vec![spec.tenants[0].name.clone()],
                    1 => served.iter().map(|t| (*t).to_string()).collect(),
                    _ => {
                        return Err(spec_error(format!(
                            "kernel node {} has pods of tenants {served:?}: a kernel vxlan node serves one tenant \
                             (overlapping tenant CIDRs would need VRFs, which this kernel lacks)",
                            node_spec.name
                        )))
                    }
                }
            }
        };
        if node_spec.host_port && node_spec.kind != NodeKind::Kxdp {
            return Err(spec_error(format!(
                "node {}: only a kxdp node has a host port (kxdp creates it)",
                node_spec.name
            )));
        }
        if node_spec.kind == NodeKind::KernelVxlan {
            for tenant in &tenants {
                let vni = tenant_vni.get(tenant.as_str()).copied().unwrap_or_default();
                if flannel_device(vni).len() > 15 {
                    return Err(spec_error(format!(
                        "kernel node {}: device name {} is longer than 15 characters",
                        node_spec.name,
                        flannel_device(vni)
                    )));
                }
            }
        }
        let cidr = Ipv4Network::new(pod_cidr(number), POD_CIDR_LEN)
            .map_err(|e| spec_error(format!("node {}: {e}", node_spec.name)))?;
        let mut pod_names_here = Vec::new();
        let mut interfaces = vec![UNDERLAY_IF.to_string()];
        for (index, pod_spec) in node_spec.pods.iter().enumerate() {
            check_name("pod", &pod_spec.name, MAX_POD_NAME)?;
            if !pod_names.insert(pod_spec.name.as_str()) {
                return Err(spec_error(format!("pod {} is listed twice", pod_spec.name)));
            }
            let vni = *tenant_vni.get(pod_spec.tenant.as_str()).ok_or_else(|| {
                spec_error(format!(
                    "pod {}: unknown tenant {:?}",
                    pod_spec.name, pod_spec.tenant
                ))
            })?;
            let host = pod_spec.ip.octets()[3];
            if !cidr.contains(pod_spec.ip) || host == 0 || host == 1 || host == 255 {
                return Err(spec_error(format!(
                    "pod {}: address {} is not a pod address of node {} ({cidr}, .2 to .254)",
                    pod_spec.name, pod_spec.ip, node_spec.name
                )));
            }
            if !addresses.insert((pod_spec.tenant.as_str(), pod_spec.ip)) {
                return Err(spec_error(format!(
                    "pod {}: address {} is already used in tenant {}",
                    pod_spec.name, pod_spec.ip, pod_spec.tenant
                )));
            }
            let index = u8::try_from(index).map_err(|_| spec_error("too many pods".into()))?;
            let host_interface = format!("v{}", pod_spec.name);
            interfaces.push(host_interface.clone());
            pod_names_here.push(pod_spec.name.clone());
            pods.push(Pod {
                name: pod_spec.name.clone(),
                tenant: pod_spec.tenant.clone(),
                vni,
                ip: pod_spec.ip,
                prefix_len: match node_spec.kind {
                    NodeKind::Kxdp => 32,
                    NodeKind::KernelVxlan | NodeKind::Routed => POD_CIDR_LEN,
                },
                mac: mac(MAC_POD, number, index),
                node: node_spec.name.clone(),
                host_interface,
                host_mac: mac(MAC_POD_HOST, number, index),
                gateway: gateway_ip(number),
                netns: Netns::named(&format!("{prefix}p-{}", pod_spec.name)),
                labels: pod_spec.labels.clone(),
            });
        }
        if node_spec.host_port {
            interfaces.push(HOST_IF.to_string());
        }
        let underlay_mac = mac(MAC_UNDERLAY, number, 0);
        nodes.push(Node {
            name: node_spec.name.clone(),
            kind: node_spec.kind,
            number,
            netns: Netns::named(&format!("{prefix}n-{}", node_spec.name)),
            vtep_ip: vtep_ip(number),
            underlay_mac,
            vtep_mac: match node_spec.kind {
                NodeKind::Kxdp => underlay_mac,
                NodeKind::KernelVxlan | NodeKind::Routed => mac(MAC_FLANNEL, number, 0),
            },
            pod_cidr: pod_cidr(number),
            gateway: gateway_ip(number),
            tenants,
            pods: pod_names_here,
            interfaces,
            host_port: node_spec.host_port,
            underlay_offloads: node_spec.underlay_offloads,
        });
    }

    for node in nodes
        .iter()
        .filter(|n| n.underlay_offloads == UnderlayOffloads::KernelDefault)
    {
        if let Some(kxdp) = nodes
            .iter()
            .find(|n| n.kind == NodeKind::Kxdp && n.name != node.name)
        {
            return Err(spec_error(format!(
                "node {}: underlay offloads at the kernel's default, but node {} runs kxdp, \
                 whose AF_XDP sockets would receive its frames with checksums unfinished",
                node.name, kxdp.name
            )));
        }
    }

    let mut configs = BTreeMap::new();
    for (node, node_spec) in nodes.iter().zip(&spec.nodes) {
        if node.kind == NodeKind::Kxdp {
            let config = kxdp_config(spec, node, node_spec, &nodes, &pods, scratch)?;
            configs.insert(node.name.clone(), config);
        }
    }
    Ok(Plan {
        nodes,
        pods,
        fabric: (spec.underlay == Underlay::Switch)
            .then(|| Netns::named(&format!("{prefix}fabric"))),
        configs,
    })
}

/// The MAC of a kernel node's `cni0` bridge.
pub(crate) fn cni_bridge_mac(number: u8) -> MacAddr {
    mac(MAC_CNI_BRIDGE, number, 0)
}

/// The MAC of the fabric-side end of node `number`'s underlay veth.
pub(crate) fn fabric_port_mac(number: u8) -> MacAddr {
    mac(MAC_FABRIC_PORT, number, 0)
}

/// The MAC of kxdp's side of node `number`'s host port; kxdp gives the
/// node's side the same with its last byte + 1.
pub fn host_port_mac(number: u8) -> MacAddr {
    mac(MAC_HOST_PORT, number, 0)
}

fn pod_cidrs(node: &Node) -> Result<Vec<PodCidrSpec>> {
    let cidr = Ipv4Network::new(node.pod_cidr, POD_CIDR_LEN)
        .map_err(|e| spec_error(format!("node {}: {e}", node.name)))?;
    Ok(node
        .tenants
        .iter()
        .map(|tenant| PodCidrSpec {
            tenant: tenant.clone(),
            cidr: IpNetwork::V4(cidr),
            gateway: Some(IpAddr::V4(node.gateway)),
        })
        .collect())
}

fn kxdp_config(
    spec: &TopologySpec,
    node: &Node,
    node_spec: &NodeSpec,
    nodes: &[Node],
    pods: &[Pod],
    scratch: &Path,
) -> Result<NodeConfig> {
    let own_pods: Vec<&Pod> = pods.iter().filter(|p| p.node == node.name).collect();
    let mut interfaces = vec![InterfaceSpec {
        name: UNDERLAY_IF.to_string(),
        role: InterfaceRole::Underlay,
        mac: node.underlay_mac,
        queues: 1,
        mtu: None,
    }];
    interfaces.extend(own_pods.iter().map(|pod| InterfaceSpec {
        name: pod.host_interface.clone(),
        role: InterfaceRole::Pod,
        mac: pod.host_mac,
        queues: 1,
        mtu: None,
    }));
    let mut remote_nodes = Vec::new();
    for remote in nodes.iter().filter(|n| n.name != node.name) {
        remote_nodes.push(RemoteNodeSpec {
            name: remote.name.clone(),
            vtep_ip: remote.vtep_ip,
            vtep_mac: remote.vtep_mac,
            underlay_mac: Some(remote.underlay_mac),
            pod_cidrs: pod_cidrs(remote)?,
            // With a host port, a remote node is reached at its address.
            node_ips: if node.host_port {
                vec![IpAddr::V4(remote.vtep_ip)]
            } else {
                Vec::new()
            },
        });
    }
    let (host, cluster) = if node.host_port {
        interfaces.push(InterfaceSpec {
            name: HOST_IF.to_string(),
            role: InterfaceRole::Host,
            mac: host_port_mac(node.number),
            queues: 1,
            mtu: None,
        });
        let host = HostSpec {
            interface: HOST_IF.to_string(),
            peer: HOST_PEER.to_string(),
            peer_mac: None,
            node_ips: vec![IpAddr::V4(node.vtep_ip)],
            tenants: spec
                .tenants
                .iter()
                .take(1)
                .map(|t| t.name.clone())
                .collect(),
            mtu: None,
            egress: EgressSpec::default(),
        };
        let cluster = ClusterSpec {
            pod_cidrs: vec![IpNetwork::V4(CLUSTER_POD_CIDR)],
            service_cidrs: vec![IpNetwork::V4(SERVICE_CIDR)],
            ..ClusterSpec::default()
        };
        (Some(host), cluster)
    } else {
        (None, ClusterSpec::default())
    };
    Ok(NodeConfig {
        node: kxdp_config::NodeSpec {
            name: node.name.clone(),
            vtep: VtepSpec {
                ip: node.vtep_ip,
                interface: UNDERLAY_IF.to_string(),
                mac: Some(node.underlay_mac),
                udp_port: VXLAN_PORT,
                underlay_mtu: UNDERLAY_MTU,
            },
            pod_cidrs: pod_cidrs(node)?,
        },
        interfaces,
        workers: node_spec.workers.clone(),
        tenants: spec.tenants.clone(),
        pods: own_pods
            .iter()
            .map(|pod| kxdp_config::PodSpec {
                name: pod.name.clone(),
                tenant: pod.tenant.clone(),
                ip: IpAddr::V4(pod.ip),
                ipv6: None,
                mac: pod.mac,
                interface: pod.host_interface.clone(),
                labels: pod.labels.clone(),
                namespace: "default".to_string(),
                container_id: None,
            })
            .collect(),
        remote_nodes,
        routes: Vec::new(),
        namespaces: Vec::new(),
        services: Vec::new(),
        policies: Vec::new(),
        chains: Vec::new(),
        host,
        cluster,
        icmp: kxdp_config::IcmpSpec::default(),
        control: ControlSpec {
            socket: Some(
                scratch
                    .join(format!("{}.sock", node.name))
                    .display()
                    .to_string(),
            ),
            ..ControlSpec::default()
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn two_tenant_spec() -> TopologySpec {
        TopologySpec::new(Underlay::Switch, &[("blue", 100), ("red", 200)])
            .with_node(
                NodeSpec::new("n1", NodeKind::Kxdp)
                    .with_pod("blue-a", "blue", pod_ip(1, 10))
                    .with_pod("red-a", "red", pod_ip(1, 10)),
            )
            .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod(
                "blue-b",
                "blue",
                pod_ip(2, 10),
            ))
            .with_node(NodeSpec::new("k3", NodeKind::KernelVxlan).with_pod(
                "blue-k",
                "blue",
                pod_ip(3, 10),
            ))
    }

    #[test]
    fn plans_names_addresses_and_macs() {
        let plan = plan(&two_tenant_spec(), "kx1-0-", Path::new("/tmp/x")).unwrap();
        assert_eq!(plan.nodes.len(), 3);
        let n1 = &plan.nodes[0];
        assert_eq!(n1.netns.name(), "kx1-0-n-n1");
        assert_eq!(n1.vtep_ip, Ipv4Addr::new(192, 168, 100, 1));
        assert_eq!(n1.underlay_mac.to_string(), "02:00:00:01:01:00");
        assert_eq!(n1.vtep_mac, n1.underlay_mac);
        assert_eq!(n1.interfaces, ["ul0", "vblue-a", "vred-a"]);
        assert_eq!(n1.tenants, ["blue", "red"]);
        let k3 = &plan.nodes[2];
        assert_eq!(k3.vtep_mac.to_string(), "02:00:00:02:03:00");
        assert_eq!(k3.tenants, ["blue"]);
        let red_a = plan.pods.iter().find(|p| p.name == "red-a").unwrap();
        assert_eq!(red_a.mac.to_string(), "02:00:00:10:01:01");
        assert_eq!(red_a.host_mac.to_string(), "02:00:00:11:01:01");
        assert_eq!(red_a.vni, 200);
        assert_eq!(red_a.prefix_len, 32);
        assert_eq!(red_a.gateway, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(red_a.netns.name(), "kx1-0-p-red-a");
        let blue_k = plan.pods.iter().find(|p| p.name == "blue-k").unwrap();
        assert_eq!(blue_k.prefix_len, 24);
        assert_eq!(plan.fabric.as_ref().map(Netns::name), Some("kx1-0-fabric"));
        assert_eq!(POD_MTU, 1450);
    }

    #[test]
    fn kxdp_configs_point_at_the_right_macs() {
        let plan = plan(&two_tenant_spec(), "kx1-0-", Path::new("/tmp/x")).unwrap();
        assert_eq!(
            plan.configs.keys().collect::<Vec<_>>(),
            ["n1", "n2"],
            "no config for the kernel node"
        );
        let c = &plan.configs["n1"];
        assert_eq!(c.node.vtep.interface, "ul0");
        assert_eq!(c.node.pod_cidrs.len(), 2);
        assert_eq!(c.node.pod_cidrs[1].tenant, "red");
        assert_eq!(c.node.pod_cidrs[1].cidr.to_string(), "10.244.1.0/24");
        assert_eq!(c.interfaces.len(), 3);
        assert_eq!(c.interfaces[0].role, InterfaceRole::Underlay);
        assert_eq!(c.interfaces[2].name, "vred-a");
        assert_eq!(c.interfaces[2].role, InterfaceRole::Pod);
        assert_eq!(c.pods[1].interface, "vred-a");
        assert_eq!(c.control.socket.as_deref(), Some("/tmp/x/n1.sock"));
        let k3 = c.remote_nodes.iter().find(|r| r.name == "k3").unwrap();
        assert_eq!(k3.vtep_ip, Ipv4Addr::new(192, 168, 100, 3));
        assert_eq!(
            k3.vtep_mac.to_string(),
            "02:00:00:02:03:00",
            "inner dst: flannel MAC"
        );
        assert_eq!(
            k3.underlay_mac.unwrap().to_string(),
            "02:00:00:01:03:00",
            "outer dst: ul0 MAC"
        );
        assert_eq!(k3.pod_cidrs.len(), 1, "a kernel node serves one tenant");
        let n2 = c.remote_nodes.iter().find(|r| r.name == "n2").unwrap();
        assert_eq!(n2.vtep_mac, n2.underlay_mac.unwrap());
        assert_eq!(n2.pod_cidrs.len(), 2);
        // The YAML round-trips through the config crate.
        let back = NodeConfig::from_yaml_str(&c.to_yaml()).unwrap();
        assert_eq!(&back, c);
    }

    #[test]
    fn no_host_port_unless_asked() {
        let plan = plan(&two_tenant_spec(), "kx1-0-", Path::new("/tmp/x")).unwrap();
        for (name, c) in &plan.configs {
            assert_eq!(c.host, None, "{name}");
            assert!(c.cluster.is_default(), "{name}");
            assert!(
                c.interfaces.iter().all(|i| i.role != InterfaceRole::Host),
                "{name}"
            );
            assert!(
                c.remote_nodes.iter().all(|r| r.node_ips.is_empty()),
                "{name}"
            );
        }
        assert!(plan.nodes.iter().all(|n| !n.host_port));
    }

    #[test]
    fn a_host_port_node_gets_the_cluster_plan() {
        let mut spec = two_tenant_spec();
        spec.nodes[0] = spec.nodes[0].clone().with_host_port();
        let plan = plan(&spec, "kx1-0-", Path::new("/tmp/x")).unwrap();
        let n1 = &plan.nodes[0];
        assert!(n1.host_port);
        assert_eq!(
            n1.interfaces,
            ["ul0", "vblue-a", "vred-a", "kxdp-h0"],
            "kxdp binds the host port too"
        );
        let c = &plan.configs["n1"];
        let host_if = c.interfaces.last().unwrap();
        assert_eq!(host_if.name, HOST_IF);
        assert_eq!(host_if.role, InterfaceRole::Host);
        assert_eq!(host_if.mac.to_string(), "02:00:00:05:01:00");
        let host = c.host.as_ref().unwrap();
        assert_eq!(host.interface, "kxdp-h0");
        assert_eq!(host.peer, "kxdp-host");
        assert_eq!(host.node_ips, [IpAddr::V4(Ipv4Addr::new(192, 168, 100, 1))]);
        assert_eq!(host.tenants, ["blue"], "the first tenant reaches the node");
        assert_eq!(
            host.peer_mac_or(host_if.mac).to_string(),
            "02:00:00:05:01:01"
        );
        assert_eq!(c.cluster.pod_cidrs[0].to_string(), "10.244.0.0/16");
        assert_eq!(c.cluster.service_cidrs[0].to_string(), "10.96.0.0/16");
        assert!(c.cluster.service_load_balancing);
        let node_ips: Vec<(&str, String)> = c
            .remote_nodes
            .iter()
            .map(|r| (r.name.as_str(), format!("{:?}", r.node_ips)))
            .collect();
        assert_eq!(
            node_ips,
            [
                ("n2", "[192.168.100.2]".to_string()),
                ("k3", "[192.168.100.3]".to_string())
            ]
        );
        // The other kxdp node is as before.
        let c2 = &plan.configs["n2"];
        assert_eq!(c2.host, None);
        assert!(c2.remote_nodes.iter().all(|r| r.node_ips.is_empty()));
        // It validates, and round-trips through YAML.
        let back = NodeConfig::from_yaml_str(&c.to_yaml()).unwrap();
        assert_eq!(&back, c);
    }

    #[test]
    fn underlay_offloads_are_per_node() {
        let planned = plan(&two_tenant_spec(), "kx1-0-", Path::new("/tmp/x")).unwrap();
        assert!(
            planned
                .nodes
                .iter()
                .all(|n| n.underlay_offloads == UnderlayOffloads::TxOff),
            "tx off unless asked"
        );
        // Kernel nodes among themselves keep the kernel's defaults.
        let kernel_only = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
            .with_node(
                NodeSpec::new("k1", NodeKind::KernelVxlan)
                    .with_underlay_offloads(UnderlayOffloads::KernelDefault),
            )
            .with_node(NodeSpec::new("k2", NodeKind::KernelVxlan));
        let planned = plan(&kernel_only, "kx1-0-", Path::new("/tmp/x")).unwrap();
        let offloads: Vec<UnderlayOffloads> =
            planned.nodes.iter().map(|n| n.underlay_offloads).collect();
        assert_eq!(
            offloads,
            [UnderlayOffloads::KernelDefault, UnderlayOffloads::TxOff]
        );
        // A kxdp node beside a kernel node with tx off is fine; beside one
        // with the kernel's defaults it is not.
        let mixed = |offloads| {
            TopologySpec::new(Underlay::Direct, &[("blue", 100)])
                .with_node(NodeSpec::new("n1", NodeKind::Kxdp))
                .with_node(
                    NodeSpec::new("k2", NodeKind::KernelVxlan).with_underlay_offloads(offloads),
                )
        };
        assert!(plan_ok(&mixed(UnderlayOffloads::TxOff)));
        let err = plan(
            &mixed(UnderlayOffloads::KernelDefault),
            "kx1-0-",
            Path::new("/tmp"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("node k2: underlay offloads"), "{err}");
        assert!(err.contains("node n1 runs kxdp"), "{err}");
    }

    fn plan_ok(spec: &TopologySpec) -> bool {
        plan(spec, "kx1-0-", Path::new("/tmp")).is_ok()
    }

    #[test]
    fn refuses_bad_specs() {
        let base = two_tenant_spec();
        type Mutation = fn(&mut TopologySpec);
        let cases: [(&str, Mutation); 14] = [
            ("Direct", |s| s.underlay = Underlay::Direct),
            ("unknown tenant", |s| {
                s.nodes[0].pods[0].tenant = "green".into()
            }),
            ("not a pod address", |s| {
                s.nodes[0].pods[0].ip = pod_ip(2, 10)
            }),
            ("not a pod address", |s| {
                s.nodes[0].pods[0].ip = pod_ip(1, 1)
            }),
            ("already used", |s| {
                s.nodes[0].pods[1].tenant = "blue".into()
            }),
            ("pod blue-a is listed twice", |s| {
                s.nodes[1].pods[0].name = "blue-a".into()
            }),
            ("pod name", |s| {
                s.nodes[0].pods[0].name = "a-very-long-podname".into()
            }),
            ("node name", |s| s.nodes[0].name = "N1".into()),
            ("node n2 is listed twice", |s| s.nodes[2].name = "n2".into()),
            ("serves one tenant", |s| {
                s.nodes[2]
                    .pods
                    .push(PodSpec::new("red-k", "red", pod_ip(3, 11)))
            }),
            ("used by two tenants", |s| s.tenants[1].vni = 100),
            ("VNI", |s| s.tenants[1].vni = 1 << 24),
            ("longer than 15", |s| s.tenants[0].vni = 10_000_000),
            ("only a kxdp node has a host port", |s| {
                s.nodes[2].host_port = true
            }),
        ];
        for (expected, mutate) in cases {
            let mut spec = base.clone();
            mutate(&mut spec);
            let err = plan(&spec, "kx1-0-", Path::new("/tmp"))
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
