//! Validation of a parsed [`NodeConfig`](crate::NodeConfig).
//!
//! Everything the dataplane compiles into tables and chains is checked
//! here, so that a configuration from any source (file, gRPC, Kubernetes)
//! is refused whole, with the path of the first offending field
//! (`pods[3].ip`, `remote_nodes[0].pod_cidrs[1].cidr`,
//! `chains[2].functions[1]`), before it can reach a worker. The table and
//! chain compilers rely on it: on a configuration that passed, they fail
//! only on capacity limits. The only thing read from the machine is its set of online
//! CPUs ([`Machine`]), and tests pass their own.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::{
    ConfigError, FunctionSpec, InterfaceRole, MacAddr, NodeConfig, PodCidrSpec, PodNapi, Protocol,
    RouteTarget, IMPLICIT_SERVICES_CHAIN,
};

/// The largest `workers.batch_size`: the AF_XDP rings kxdp opens hold 1024
/// descriptors, and a batch larger than a ring never fills.
pub const MAX_BATCH_SIZE: u16 = 1024;

/// Bytes VXLAN adds around a pod's IP packet: outer Ethernet (14), IPv4 (20),
/// UDP (8) and VXLAN (8).
const VXLAN_OVERHEAD: u16 = 50;

/// The smallest pod MTU when every pod CIDR is IPv4 (RFC 791: every host
/// takes 576-byte datagrams).
const MIN_POD_MTU_V4: u16 = 576;

/// The smallest pod MTU when a pod CIDR is IPv6 (RFC 8200: 1280).
const MIN_POD_MTU_V6: u16 = 1280;

/// Largest VNI: VXLAN carries 24 bits.
const MAX_VNI: u32 = 0x00FF_FFFF;

/// Longest Linux interface name (IFNAMSIZ − 1).
const MAX_INTERFACE_NAME: usize = 15;

/// More CPUs than any Linux kernel supports (NR_CPUS tops out at 8192);
/// a CPU list beyond it is not trusted.
const MAX_CPUS: usize = 1 << 16;

/// What validation needs to know about the machine the configuration is for:
/// which CPUs exist (`workers.cores` must name them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    online_cpus: Option<BTreeSet<usize>>,
}

impl Machine {
    /// This machine: the online CPUs from `/sys/devices/system/cpu/online`,
    /// or CPUs `0..n` with `n` from [`std::thread::available_parallelism`]
    /// when that file cannot be read; unknown (cores unchecked) when neither
    /// answers.
    pub fn this_machine() -> Machine {
        let from_sysfs = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|list| parse_cpu_list(&list));
        let online_cpus = from_sysfs.or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| (0..n.get()).collect())
        });
        Machine { online_cpus }
    }

    /// A machine with CPUs `0..count` online.
    pub fn with_cpus(count: usize) -> Machine {
        Machine {
            online_cpus: Some((0..count).collect()),
        }
    }

    /// A machine with exactly these CPUs online.
    pub fn with_online_cpus(cpus: impl IntoIterator<Item = usize>) -> Machine {
        Machine {
            online_cpus: Some(cpus.into_iter().collect()),
        }
    }

    /// A machine whose CPUs are not known: `workers.cores` is only checked
    /// for duplicates.
    pub fn unknown() -> Machine {
        Machine { online_cpus: None }
    }

    /// The online CPUs, when known.
    pub fn online_cpus(&self) -> Option<&BTreeSet<usize>> {
        self.online_cpus.as_ref()
    }
}

/// Parse a Linux CPU list (`0-3,6,8-9`, as in `/sys/devices/system/cpu/online`).
/// `None` when it is malformed or absurdly large.
pub(crate) fn parse_cpu_list(list: &str) -> Option<BTreeSet<usize>> {
    let list = list.trim();
    let mut cpus = BTreeSet::new();
    if list.is_empty() {
        return Some(cpus);
    }
    for part in list.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let cpu: usize = part.trim().parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last >= MAX_CPUS {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Check the whole configuration against this machine; the first problem
/// found is returned with its field path.
pub fn validate(config: &NodeConfig) -> Result<(), ConfigError> {
    validate_with(config, &Machine::this_machine())
}

/// Check the whole configuration against `machine`; the first problem found
/// is returned with its field path.
pub fn validate_with(config: &NodeConfig, machine: &Machine) -> Result<(), ConfigError> {
    let tenants = check_tenants(config)?;
    check_node(config)?;
    check_interfaces(config)?;
    check_workers(config, machine)?;
    check_pod_cidrs(config, &tenants)?;
    check_pods(config, &tenants)?;
    check_remote_nodes(config)?;
    check_routes(config, &tenants)?;
    check_services(config, &tenants)?;
    check_chains(config, &tenants)?;
    check_cluster(config)?;
    check_host(config, &tenants)?;
    Ok(())
}

type Checked<T = ()> = Result<T, ConfigError>;

fn refuse<T>(field: impl Into<String>, message: impl Into<String>) -> Checked<T> {
    Err(ConfigError::invalid(field, message))
}

/// The tenants by name: their index in `tenants`.
struct Tenants<'a> {
    by_name: HashMap<&'a str, usize>,
    names: Vec<&'a str>,
}

impl<'a> Tenants<'a> {
    /// Refuse `name` at `field` unless it is a tenant.
    fn check(&self, field: impl Into<String>, name: &str) -> Checked {
        if self.by_name.contains_key(name) {
            return Ok(());
        }
        let known = if self.names.is_empty() {
            "there are no tenants".to_string()
        } else {
            format!("tenants: {}", self.names.join(", "))
        };
        refuse(field, format!("unknown tenant {name:?} ({known})"))
    }
}

fn check_tenants(config: &NodeConfig) -> Checked<Tenants<'_>> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut by_vni: HashMap<u32, usize> = HashMap::new();
    for (i, tenant) in config.tenants.iter().enumerate() {
        if tenant.name.trim().is_empty() {
            return refuse(format!("tenants[{i}].name"), "a tenant needs a name");
        }
        if let Some(first) = by_name.insert(tenant.name.as_str(), i) {
            return refuse(
                format!("tenants[{i}].name"),
                format!("{:?} is already the name of tenants[{first}]", tenant.name),
            );
        }
        if tenant.vni == 0 || tenant.vni > MAX_VNI {
            return refuse(
                format!("tenants[{i}].vni"),
                format!(
                    "{} is not a usable VNI (1 to {MAX_VNI}: 24 bits, 0 reserved)",
                    tenant.vni
                ),
            );
        }
        if let Some(first) = by_vni.insert(tenant.vni, i) {
            let other = config.tenants.get(first).map_or("", |t| t.name.as_str());
            return refuse(
                format!("tenants[{i}].vni"),
                format!(
                    "{} is already the VNI of tenant {other} (tenants[{first}].vni): a VNI names one tenant",
                    tenant.vni
                ),
            );
        }
    }
    Ok(Tenants {
        by_name,
        names: config.tenants.iter().map(|t| t.name.as_str()).collect(),
    })
}

fn check_mac(field: impl Into<String>, mac: MacAddr) -> Checked {
    if mac.octets() == [0; 6] {
        return refuse(field, format!("{mac} is the all-zero MAC address"));
    }
    if mac.is_multicast() {
        return refuse(
            field,
            format!("{mac} is a multicast MAC address (group bit set); an interface needs a unicast one"),
        );
    }
    Ok(())
}

fn check_unicast_v4(field: impl Into<String>, ip: Ipv4Addr) -> Checked {
    let problem = if ip.is_unspecified() {
        "the unspecified address"
    } else if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else {
        return Ok(());
    };
    refuse(
        field,
        format!("{ip} is {problem}; a VTEP needs a unicast address"),
    )
}

fn check_node(config: &NodeConfig) -> Checked {
    let node = &config.node;
    if node.name.trim().is_empty() {
        return refuse("node.name", "the node needs a name");
    }
    let vtep = &node.vtep;
    check_unicast_v4("node.vtep.ip", vtep.ip)?;
    if let Some(mac) = vtep.mac {
        check_mac("node.vtep.mac", mac)?;
    }
    if vtep.udp_port == 0 {
        return refuse(
            "node.vtep.udp_port",
            "0 is not a UDP port (VXLAN's is 4789)",
        );
    }
    let ipv6 = node
        .pod_cidrs
        .iter()
        .chain(config.remote_nodes.iter().flat_map(|r| &r.pod_cidrs))
        .any(|c| c.cidr.is_ipv6());
    let (min_pod_mtu, why) = if ipv6 {
        (MIN_POD_MTU_V6, "IPv6 needs 1280")
    } else {
        (MIN_POD_MTU_V4, "IPv4 hosts must take 576")
    };
    if vtep.underlay_mtu < min_pod_mtu + VXLAN_OVERHEAD {
        return refuse(
            "node.vtep.underlay_mtu",
            format!(
                "{} leaves pods {} bytes after VXLAN's {VXLAN_OVERHEAD}; {why}, so the underlay needs at least {}",
                vtep.underlay_mtu,
                vtep.underlay_mtu.saturating_sub(VXLAN_OVERHEAD),
                min_pod_mtu + VXLAN_OVERHEAD
            ),
        );
    }
    Ok(())
}

/// What Linux accepts as an interface name (`dev_valid_name`).
fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an interface needs a name")
    } else if name.len() > MAX_INTERFACE_NAME {
        Some("is longer than Linux's 15-byte limit for interface names")
    } else if name == "." || name == ".." {
        Some("is not a valid interface name")
    } else if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        Some("contains '/', ':' or whitespace, which Linux refuses in interface names")
    } else {
        None
    }
}

fn check_interfaces(config: &NodeConfig) -> Checked {
    let vtep_interface = config.node.vtep.interface.as_str();
    match config
        .interfaces
        .iter()
        .find(|itf| itf.name == vtep_interface)
    {
        None => {
            return refuse(
                "node.vtep.interface",
                format!("{vtep_interface:?} is not one of interfaces"),
            )
        }
        Some(itf) if itf.role != InterfaceRole::Underlay => {
            let role = if itf.role == InterfaceRole::Host {
                "host"
            } else {
                "pod"
            };
            return refuse(
                "node.vtep.interface",
                format!(
                    "{vtep_interface} has role {role}; the VTEP's interface must have role underlay"
                ),
            );
        }
        Some(_) => {}
    }
    // Interface MACs may repeat: Calico, for one, gives every host-side veth
    // ee:ee:ee:ee:ee:ee. Pods' MACs may not (see check_pods).
    let workers = config.workers.count;
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, itf) in config.interfaces.iter().enumerate() {
        if let Some(problem) = interface_name_problem(&itf.name) {
            let message = if itf.name.is_empty() {
                problem.to_string()
            } else {
                format!("{:?} {problem}", itf.name)
            };
            return refuse(format!("interfaces[{i}].name"), message);
        }
        if let Some(first) = names.insert(itf.name.as_str(), i) {
            return refuse(
                format!("interfaces[{i}].name"),
                format!("{} is already interfaces[{first}]", itf.name),
            );
        }
        if itf.role == InterfaceRole::Underlay && itf.name != vtep_interface {
            return refuse(
                format!("interfaces[{i}].role"),
                format!(
                    "{} is a second underlay interface; the only underlay is the VTEP's ({vtep_interface}, node.vtep.interface)",
                    itf.name
                ),
            );
        }
        check_mac(format!("interfaces[{i}].mac"), itf.mac)?;
        if itf.queues == 0 {
            return refuse(
                format!("interfaces[{i}].queues"),
                format!("{} has 0 queues; at least one is needed", itf.name),
            );
        }
        if itf.queues < workers {
            return refuse(
                format!("interfaces[{i}].queues"),
                format!(
                    "{} has {} queue(s) but workers.count is {workers}: every worker binds one queue of every interface",
                    itf.name, itf.queues
                ),
            );
        }
    }
    Ok(())
}

/// `0-1,4` for a set of CPUs.
fn format_cpu_list(cpus: &BTreeSet<usize>) -> String {
    let mut out = String::new();
    let mut iter = cpus.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if first == last {
            let _ = write!(out, "{first}");
        } else {
            let _ = write!(out, "{first}-{last}");
        }
    }
    out
}

fn check_workers(config: &NodeConfig, machine: &Machine) -> Checked {
    let workers = &config.workers;
    if workers.count == 0 {
        return refuse("workers.count", "0 workers; at least one is needed");
    }
    if workers.batch_size == 0 {
        return refuse("workers.batch_size", "0; a batch holds at least one frame");
    }
    if workers.batch_size > MAX_BATCH_SIZE {
        return refuse(
            "workers.batch_size",
            format!(
                "{} is larger than {MAX_BATCH_SIZE}, the size of kxdp's AF_XDP rings",
                workers.batch_size
            ),
        );
    }
    if workers.pod_napi == PodNapi::WorkerCore && workers.cores.is_empty() {
        return refuse(
            "workers.pod_napi",
            "worker-core pins the pods' NAPI threads to the workers' cores, but workers.cores is empty: list the workers' cores",
        );
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for (i, &core) in workers.cores.iter().enumerate() {
        if let Some(online) = machine.online_cpus() {
            if !online.contains(&core) {
                return refuse(
                    format!("workers.cores[{i}]"),
                    format!(
                        "core {core} does not exist on this machine (online CPUs: {})",
                        format_cpu_list(online)
                    ),
                );
            }
        }
        if let Some(first) = seen.insert(core, i) {
            return refuse(
                format!("workers.cores[{i}]"),
                format!("core {core} is already listed (workers.cores[{first}])"),
            );
        }
    }
    Ok(())
}

/// The first and last address of a prefix, as numbers in one space per
/// family.
fn address_range(net: IpNetwork) -> (u128, u128) {
    match net {
        IpNetwork::V4(n) => {
            let first = u128::from(u32::from(n.network()));
            let size = 1u128 << (32 - u32::from(n.prefix()));
            (first, first + (size - 1))
        }
        IpNetwork::V6(n) => {
            let first = u128::from(n.network());
            let host_bits = 128 - u32::from(n.prefix());
            let mask = if host_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            (first, first | mask)
        }
    }
}

/// Refuse a prefix written with host bits set (`10.244.1.7/24`).
fn check_canonical(field: &str, net: IpNetwork) -> Checked {
    let network = match net {
        IpNetwork::V4(n) => IpAddr::V4(n.network()),
        IpNetwork::V6(n) => IpAddr::V6(n.network()),
    };
    if network != net.ip() {
        return refuse(
            field,
            format!(
                "{net} has host bits set; the prefix is {network}/{}",
                net.prefix()
            ),
        );
    }
    Ok(())
}

/// The IPv4 broadcast address of a prefix that has one (/30 and shorter).
fn broadcast_v4(net: IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) if n.prefix() <= 30 => Some(IpAddr::V4(n.broadcast())),
        _ => None,
    }
}

/// The network address of a prefix that reserves it (IPv4 /30 and shorter,
/// IPv6 /126 and shorter: the subnet-router anycast address).
fn reserved_network(net: IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) if n.prefix() <= 30 => Some(IpAddr::V4(n.network())),
        IpNetwork::V6(n) if n.prefix() <= 126 => Some(IpAddr::V6(n.network())),
        _ => None,
    }
}

/// One pod CIDR entry: where it is written and whose it is.
struct CidrEntry<'a> {
    field: String,
    node: &'a str,
    spec: &'a PodCidrSpec,
}

fn check_one_pod_cidr(entry: &CidrEntry<'_>, tenants: &Tenants<'_>) -> Checked {
    let spec = entry.spec;
    tenants.check(format!("{}.tenant", entry.field), &spec.tenant)?;
    check_canonical(&format!("{}.cidr", entry.field), spec.cidr)?;
    if let Some(gateway) = spec.gateway {
        let field = format!("{}.gateway", entry.field);
        if !spec.cidr.contains(gateway) {
            return refuse(
                field,
                format!("{gateway} is outside its pod CIDR {}", spec.cidr),
            );
        }
        if reserved_network(spec.cidr) == Some(gateway) {
            return refuse(
                field,
                format!("{gateway} is the network address of {}", spec.cidr),
            );
        }
        if broadcast_v4(spec.cidr) == Some(gateway) {
            return refuse(
                field,
                format!("{gateway} is the broadcast address of {}", spec.cidr),
            );
        }
    }
    Ok(())
}

/// Every pod CIDR (this node's and the remote nodes'): known tenant,
/// canonical prefix, gateway inside, and no overlap with another CIDR of the
/// same tenant (tenants may reuse each other's addresses: VNIs keep them
/// apart).
fn check_pod_cidrs(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let mut entries: Vec<CidrEntry<'_>> = Vec::new();
    for (i, spec) in config.node.pod_cidrs.iter().enumerate() {
        entries.push(CidrEntry {
            field: format!("node.pod_cidrs[{i}]"),
            node: &config.node.name,
            spec,
        });
    }
    for (r, remote) in config.remote_nodes.iter().enumerate() {
        for (i, spec) in remote.pod_cidrs.iter().enumerate() {
            entries.push(CidrEntry {
                field: format!("remote_nodes[{r}].pod_cidrs[{i}]"),
                node: &remote.name,
                spec,
            });
        }
    }
    for entry in &entries {
        check_one_pod_cidr(entry, tenants)?;
    }

    // Sort by (tenant, family, first address) and sweep: a CIDR overlaps an
    // earlier one of its group when it starts before the widest end so far.
    let mut order: Vec<(&str, bool, u128, u128, usize)> = entries
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let (first, last) = address_range(e.spec.cidr);
            (
                e.spec.tenant.as_str(),
                e.spec.cidr.is_ipv6(),
                first,
                last,
                index,
            )
        })
        .collect();
    order.sort_unstable();
    let mut overlaps: Option<(usize, usize)> = None;
    let mut widest: Option<(&str, bool, u128, usize)> = None;
    for &(tenant, v6, first, last, index) in &order {
        match widest {
            Some((w_tenant, w_v6, w_last, w_index))
                if w_tenant == tenant && w_v6 == v6 && first <= w_last =>
            {
                let pair = (index.max(w_index), index.min(w_index));
                // Report the overlap whose later entry comes first in the file.
                if overlaps.is_none_or(|(later, _)| pair.0 < later) {
                    overlaps = Some(pair);
                }
                if last > w_last {
                    widest = Some((tenant, v6, last, index));
                }
            }
            _ => widest = Some((tenant, v6, last, index)),
        }
    }
    if let Some((later, earlier)) = overlaps {
        if let (Some(a), Some(b)) = (entries.get(later), entries.get(earlier)) {
            return refuse(
                format!("{}.cidr", a.field),
                format!(
                    "{} of tenant {} overlaps {}'s pod CIDR {} ({}.cidr); a tenant's pod CIDRs must not overlap",
                    a.spec.cidr, a.spec.tenant, b.node, b.spec.cidr, b.field
                ),
            );
        }
    }
    // This node gives each pod of a tenant one gateway per address family
    // (the first CIDR's): a second local CIDR of the same tenant and family
    // would leave its pods with a gateway outside their own CIDR.
    for (i, spec) in config.node.pod_cidrs.iter().enumerate() {
        if let Some(first) = config.node.pod_cidrs[..i]
            .iter()
            .position(|c| c.tenant == spec.tenant && c.cidr.is_ipv6() == spec.cidr.is_ipv6())
        {
            return refuse(
                format!("node.pod_cidrs[{i}].cidr"),
                format!(
                    "{} is a second {} pod CIDR of tenant {} on {} (node.pod_cidrs[{first}] is {}); one per tenant and address family",
                    spec.cidr,
                    if spec.cidr.is_ipv6() { "IPv6" } else { "IPv4" },
                    spec.tenant,
                    config.node.name,
                    config.node.pod_cidrs[first].cidr
                ),
            );
        }
    }
    Ok(())
}

/// Check one address of a pod: inside one of this node's CIDRs of its
/// tenant and family, and not the network, gateway or broadcast address.
fn check_pod_address(config: &NodeConfig, field: &str, tenant: &str, ip: IpAddr) -> Checked {
    let node = &config.node.name;
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let cidrs: Vec<&PodCidrSpec> = config
        .node
        .pod_cidrs
        .iter()
        .filter(|c| c.tenant == tenant && c.cidr.is_ipv4() == ip.is_ipv4())
        .collect();
    if cidrs.is_empty() {
        return refuse(
            field,
            format!("{ip}: {node} has no {family} pod CIDR for tenant {tenant}"),
        );
    }
    let Some(cidr) = cidrs.iter().find(|c| c.cidr.contains(ip)) else {
        let list: Vec<String> = cidrs.iter().map(|c| c.cidr.to_string()).collect();
        let message = if list.len() == 1 {
            format!("{ip} is outside {node}'s pod CIDR {}", list.join(""))
        } else {
            format!(
                "{ip} is outside {node}'s pod CIDRs {} of tenant {tenant}",
                list.join(", ")
            )
        };
        return refuse(field, message);
    };
    if reserved_network(cidr.cidr) == Some(ip) {
        return refuse(
            field,
            format!(
                "{ip} is the network address of {node}'s pod CIDR {}",
                cidr.cidr
            ),
        );
    }
    if broadcast_v4(cidr.cidr) == Some(ip) {
        return refuse(
            field,
            format!(
                "{ip} is the broadcast address of {node}'s pod CIDR {}",
                cidr.cidr
            ),
        );
    }
    if cidr.gateway_ip() == ip {
        return refuse(
            field,
            format!(
                "{ip} is the pods' gateway in {node}'s pod CIDR {} (answered by kxdp)",
                cidr.cidr
            ),
        );
    }
    Ok(())
}

fn check_pods(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let interfaces: HashMap<&str, (usize, InterfaceRole)> = config
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, itf)| (itf.name.as_str(), (i, itf.role)))
        .collect();
    let mut interface_macs: HashMap<MacAddr, usize> = HashMap::new();
    for (i, itf) in config.interfaces.iter().enumerate() {
        interface_macs.entry(itf.mac).or_insert(i);
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut macs: HashMap<MacAddr, usize> = HashMap::new();
    let mut attached: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<(&str, IpAddr), String> = HashMap::new();
    for (i, pod) in config.pods.iter().enumerate() {
        if pod.name.trim().is_empty() {
            return refuse(format!("pods[{i}].name"), "a pod needs a name");
        }
        if let Some(first) = names.insert(pod.name.as_str(), i) {
            return refuse(
                format!("pods[{i}].name"),
                format!("{} is already the name of pods[{first}]", pod.name),
            );
        }
        tenants.check(format!("pods[{i}].tenant"), &pod.tenant)?;

        let mac_field = format!("pods[{i}].mac");
        check_mac(&mac_field, pod.mac)?;
        if let Some(first) = macs.insert(pod.mac, i) {
            let other = config.pods.get(first).map_or("", |p| p.name.as_str());
            return refuse(
                mac_field,
                format!(
                    "{} is already the MAC of pod {other} (pods[{first}].mac)",
                    pod.mac
                ),
            );
        }
        if let Some(&itf) = interface_macs.get(&pod.mac) {
            let other = config.interfaces.get(itf).map_or("", |x| x.name.as_str());
            return refuse(
                mac_field,
                format!(
                    "{} is the MAC of interface {other} (interfaces[{itf}].mac); a pod's MAC must be its own",
                    pod.mac
                ),
            );
        }
        if config.node.vtep.mac == Some(pod.mac) {
            return refuse(
                mac_field,
                format!("{} is the VTEP's MAC (node.vtep.mac)", pod.mac),
            );
        }

        let itf_field = format!("pods[{i}].interface");
        match interfaces.get(pod.interface.as_str()) {
            None => {
                return refuse(
                    itf_field,
                    format!("{:?} is not one of interfaces", pod.interface),
                )
            }
            Some(&(index, InterfaceRole::Underlay)) => {
                return refuse(
                    itf_field,
                    format!(
                        "{} is the underlay (interfaces[{index}].role); a pod's interface must have role pod",
                        pod.interface
                    ),
                )
            }
            Some(&(index, InterfaceRole::Host)) => {
                return refuse(
                    itf_field,
                    format!(
                        "{} is the host port (interfaces[{index}].role); a pod's interface must have role pod",
                        pod.interface
                    ),
                )
            }
            Some(&(_, InterfaceRole::Pod)) => {}
        }
        if let Some(first) = attached.insert(pod.interface.as_str(), i) {
            let other = config.pods.get(first).map_or("", |p| p.name.as_str());
            return refuse(
                itf_field,
                format!(
                    "{} is already the interface of pod {other} (pods[{first}].interface); one pod per interface",
                    pod.interface
                ),
            );
        }

        let ip_field = format!("pods[{i}].ip");
        check_pod_address(config, &ip_field, &pod.tenant, pod.ip)?;
        let mut own = vec![(ip_field, pod.ip)];
        if let Some(ipv6) = pod.ipv6 {
            let field = format!("pods[{i}].ipv6");
            if ipv6.is_ipv4() == pod.ip.is_ipv4() {
                return refuse(
                    field,
                    format!(
                        "{ipv6} is of the same family as ip {}; ipv6 holds the dual-stack address of the other family",
                        pod.ip
                    ),
                );
            }
            check_pod_address(config, &field, &pod.tenant, ipv6)?;
            own.push((field, ipv6));
        }
        for (field, ip) in own {
            if let Some(first) = addresses.get(&(pod.tenant.as_str(), ip)) {
                let message = format!(
                    "{ip} is already the address of another pod of tenant {} ({first})",
                    pod.tenant
                );
                return refuse(field, message);
            }
            addresses.insert((pod.tenant.as_str(), ip), field);
        }
    }
    Ok(())
}

fn check_remote_nodes(config: &NodeConfig) -> Checked {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut vteps: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (r, remote) in config.remote_nodes.iter().enumerate() {
        let field = |name: &str| format!("remote_nodes[{r}].{name}");
        if remote.name.trim().is_empty() {
            return refuse(field("name"), "a remote node needs a name");
        }
        if remote.name == config.node.name {
            return refuse(
                field("name"),
                format!("{} is this node's own name (node.name)", remote.name),
            );
        }
        if let Some(first) = names.insert(remote.name.as_str(), r) {
            return refuse(
                field("name"),
                format!("{} is already remote_nodes[{first}]", remote.name),
            );
        }
        check_unicast_v4(field("vtep_ip"), remote.vtep_ip)?;
        if remote.vtep_ip == config.node.vtep.ip {
            return refuse(
                field("vtep_ip"),
                format!("{} is this node's own VTEP (node.vtep.ip)", remote.vtep_ip),
            );
        }
        if let Some(first) = vteps.insert(remote.vtep_ip, r) {
            let other = config
                .remote_nodes
                .get(first)
                .map_or("", |n| n.name.as_str());
            return refuse(
                field("vtep_ip"),
                format!(
                    "{} is already the VTEP of {other} (remote_nodes[{first}].vtep_ip)",
                    remote.vtep_ip
                ),
            );
        }
        check_mac(field("vtep_mac"), remote.vtep_mac)?;
        if let Some(mac) = remote.underlay_mac {
            check_mac(field("underlay_mac"), mac)?;
        }
    }
    Ok(())
}

fn check_routes(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let mut seen: HashMap<(&str, IpNetwork), usize> = HashMap::new();
    for (i, route) in config.routes.iter().enumerate() {
        tenants.check(format!("routes[{i}].tenant"), &route.tenant)?;
        let prefix_field = format!("routes[{i}].prefix");
        check_canonical(&prefix_field, route.prefix)?;
        if let Some(first) = seen.insert((route.tenant.as_str(), route.prefix), i) {
            return refuse(
                prefix_field,
                format!(
                    "{} is already routed in tenant {} by routes[{first}]",
                    route.prefix, route.tenant
                ),
            );
        }
        let via = format!("routes[{i}].via");
        match &route.via {
            RouteTarget::Blackhole => {}
            RouteTarget::Pod(name) => match config.pods.iter().find(|p| &p.name == name) {
                None => return refuse(via, format!("pod {name:?} is not one of pods")),
                Some(pod) if pod.tenant != route.tenant => {
                    return refuse(
                        via,
                        format!(
                            "pod {name} belongs to tenant {}, not {}: a route cannot cross tenants",
                            pod.tenant, route.tenant
                        ),
                    )
                }
                Some(_) => {}
            },
            RouteTarget::Node(name) => {
                match config.remote_nodes.iter().find(|n| &n.name == name) {
                    None => {
                        return refuse(via, format!("node {name:?} is not one of remote_nodes"))
                    }
                    Some(node) if !node.pod_cidrs.iter().any(|c| c.tenant == route.tenant) => {
                        return refuse(
                            via,
                            format!(
                                "node {name} has no pod CIDR of tenant {}, so it does not carry that tenant's traffic",
                                route.tenant
                            ),
                        )
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

fn check_cluster(config: &NodeConfig) -> Checked {
    let cluster = &config.cluster;
    for (i, cidr) in cluster.pod_cidrs.iter().enumerate() {
        check_canonical(&format!("cluster.pod_cidrs[{i}]"), *cidr)?;
    }
    for (i, cidr) in cluster.service_cidrs.iter().enumerate() {
        let field = format!("cluster.service_cidrs[{i}]");
        check_canonical(&field, *cidr)?;
        if let Some(pods) = cluster.pod_cidrs.iter().find(|p| overlaps(**p, *cidr)) {
            return refuse(
                field,
                format!("{cidr} overlaps the cluster pod CIDR {pods}"),
            );
        }
    }
    let range = cluster.node_port_range;
    if range.first == 0 || range.first > range.last {
        return refuse(
            "cluster.node_port_range",
            format!(
                "{}-{} is not a range of ports (first must be at least 1 and at most last)",
                range.first, range.last
            ),
        );
    }
    for (s, service) in config.services.iter().enumerate() {
        for (p, port) in service.ports.iter().enumerate() {
            if let Some(node_port) = port.node_port {
                if node_port < range.first || node_port > range.last {
                    return refuse(
                        format!("services[{s}].ports[{p}].node_port"),
                        format!(
                            "{node_port} is outside the NodePort range {}-{} (cluster.node_port_range)",
                            range.first, range.last
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let (a0, a1) = address_range(a);
    let (b0, b1) = address_range(b);
    a0 <= b1 && b0 <= a1
}

fn check_host(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let Some(host) = &config.host else {
        if let Some(i) = config
            .interfaces
            .iter()
            .position(|itf| itf.role == InterfaceRole::Host)
        {
            return refuse(
                format!("interfaces[{i}].role"),
                "an interface with role host needs the host section (host.interface)",
            );
        }
        return Ok(());
    };
    match config
        .interfaces
        .iter()
        .position(|itf| itf.name == host.interface)
    {
        None => {
            return refuse(
                "host.interface",
                format!("{:?} is not one of interfaces", host.interface),
            )
        }
        Some(i) if config.interfaces[i].role != InterfaceRole::Host => {
            return refuse(
                "host.interface",
                format!("{} (interfaces[{i}]) must have role host", host.interface),
            )
        }
        Some(_) => {}
    }
    if let Some(i) = config
        .interfaces
        .iter()
        .position(|itf| itf.role == InterfaceRole::Host && itf.name != host.interface)
    {
        return refuse(
            format!("interfaces[{i}].role"),
            format!(
                "{} is a second host port; the only one is host.interface ({})",
                config.interfaces[i].name, host.interface
            ),
        );
    }
    if let Some(problem) = interface_name_problem(&host.peer) {
        return refuse("host.peer", format!("{:?} {problem}", host.peer));
    }
    if host.peer == host.interface || config.interfaces.iter().any(|i| i.name == host.peer) {
        return refuse(
            "host.peer",
            format!(
                "{} is one of interfaces; the node's side of the host port is its own interface",
                host.peer
            ),
        );
    }
    if let Some(mac) = host.peer_mac {
        check_mac("host.peer_mac", mac)?;
    }
    for (i, ip) in host.node_ips.iter().enumerate() {
        let unusable = match ip {
            IpAddr::V4(a) => {
                a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()
            }
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback(),
        };
        if unusable {
            return refuse(
                format!("host.node_ips[{i}]"),
                format!("{ip} is not a unicast address a node can have"),
            );
        }
        if config.node.pod_cidrs.iter().any(|c| c.cidr.contains(*ip)) {
            return refuse(
                format!("host.node_ips[{i}]"),
                format!("{ip} is inside one of this node's pod CIDRs (node.pod_cidrs)"),
            );
        }
    }
    if let Some(mtu) = host.mtu {
        if !(576..=9000).contains(&mtu) {
            return refuse("host.mtu", format!("{mtu} is outside 576-9000"));
        }
    }
    for (i, tenant) in host.tenants.iter().enumerate() {
        tenants.check(format!("host.tenants[{i}]"), tenant)?;
        if host.tenants[..i].contains(tenant) {
            return refuse(
                format!("host.tenants[{i}]"),
                format!("{tenant} is listed twice"),
            );
        }
    }
    let host_tenants = host.host_tenants(&config.tenants);
    if let Some(list) = &host.egress.tenants {
        for (i, tenant) in list.iter().enumerate() {
            tenants.check(format!("host.egress.tenants[{i}]"), tenant)?;
            if !host_tenants.contains(&tenant.as_str()) {
                return refuse(
                    format!("host.egress.tenants[{i}]"),
                    format!(
                        "tenant {tenant} may not reach the node (host.tenants), and egress leaves through the node"
                    ),
                );
            }
        }
    }
    for (i, cidr) in host.egress.except.iter().enumerate() {
        check_canonical(&format!("host.egress.except[{i}]"), *cidr)?;
    }
    // The node's routing table has no tenants: the host tenants' pod CIDRs
    // (here and on every remote node) must not overlap across tenants.
    let mut cidrs: Vec<(&str, IpNetwork, String)> = Vec::new();
    for (i, c) in config.node.pod_cidrs.iter().enumerate() {
        cidrs.push((c.tenant.as_str(), c.cidr, format!("node.pod_cidrs[{i}]")));
    }
    for (r, node) in config.remote_nodes.iter().enumerate() {
        for (i, c) in node.pod_cidrs.iter().enumerate() {
            cidrs.push((
                c.tenant.as_str(),
                c.cidr,
                format!("remote_nodes[{r}].pod_cidrs[{i}]"),
            ));
        }
    }
    cidrs.retain(|(t, _, _)| host_tenants.contains(t));
    for (a, (ta, ca, _)) in cidrs.iter().enumerate() {
        for (tb, cb, field) in &cidrs[a + 1..] {
            if ta != tb && overlaps(*ca, *cb) {
                return refuse(
                    "host.tenants",
                    format!(
                        "tenants {ta} and {tb} both reach the node but their pod CIDRs overlap ({ca} and {cb} at {field}); the node cannot tell them apart"
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Services: known tenant, endpoints of the ClusterIP's family, and no
/// (tenant, ClusterIP, protocol, port) twice. The paths name the list a
/// refusal is about (`services[2].endpoints`, `services[2].ports`), as the
/// chain compiler named them when it refused these.
fn check_services(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let mut ports: HashMap<(&str, IpAddr, Protocol, u16), (usize, usize)> = HashMap::new();
    for (i, service) in config.services.iter().enumerate() {
        tenants.check(format!("services[{i}].tenant"), &service.tenant)?;
        let family = service.cluster_ip.is_ipv6();
        if let Some(endpoint) = service.endpoints.iter().find(|e| e.ip.is_ipv6() != family) {
            return refuse(
                format!("services[{i}].endpoints"),
                format!(
                    "{} is not of the ClusterIP's address family (ClusterIP {})",
                    endpoint.ip, service.cluster_ip
                ),
            );
        }
        for (p, port) in service.ports.iter().enumerate() {
            let key = (
                service.tenant.as_str(),
                service.cluster_ip,
                port.protocol,
                port.port,
            );
            if let Some((first, first_port)) = ports.insert(key, (i, p)) {
                let whose = if first == i {
                    "this service".to_string()
                } else {
                    let other = config.services.get(first);
                    format!(
                        "another service, {}",
                        other.map_or(String::new(), |o| format!("{}/{}", o.namespace, o.name))
                    )
                };
                return refuse(
                    format!("services[{i}].ports"),
                    format!(
                        "{} port {} is already a port of {whose} (services[{first}].ports[{first_port}])",
                        service.cluster_ip, port.port
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Chains: known tenant, a name of their own (not kxdp's implicit chains'),
/// known interfaces and services, one function per kind of per-flow state,
/// and each interface the return interface of at most one external hop. A
/// chain set compiled from a configuration that passed these has nothing
/// to refuse but capacity.
fn check_chains(config: &NodeConfig, tenants: &Tenants<'_>) -> Checked {
    let interface_known = |name: &str| config.interfaces.iter().any(|itf| itf.name == name);
    let mut names: HashMap<&str, usize> = HashMap::new();
    // Interfaces external hops take frames back on: the chain and stage.
    let mut returns: HashMap<&str, (usize, usize)> = HashMap::new();
    for (c, chain) in config.chains.iter().enumerate() {
        tenants.check(format!("chains[{c}].tenant"), &chain.tenant)?;
        if let Some(first) = names.insert(chain.name.as_str(), c) {
            return refuse(
                format!("chains[{c}].name"),
                format!(
                    "duplicate chain name {:?} (also chains[{first}].name)",
                    chain.name
                ),
            );
        }
        if chain.name.starts_with(IMPLICIT_SERVICES_CHAIN) {
            return refuse(
                format!("chains[{c}].name"),
                format!(
                    "{:?}: names starting with {IMPLICIT_SERVICES_CHAIN:?} are kxdp's own (its implicit Service chains)",
                    chain.name
                ),
            );
        }
        for (f, function) in chain.functions.iter().enumerate() {
            let field = format!("chains[{c}].functions[{f}]");
            let names: Vec<(&str, &str)> = match function {
                FunctionSpec::Mirror { interface } => vec![("interface", interface)],
                FunctionSpec::External {
                    to_interface,
                    from_interface,
                    ..
                } => vec![
                    ("to_interface", to_interface),
                    ("from_interface", from_interface),
                ],
                _ => Vec::new(),
            };
            for (key, name) in names {
                if !interface_known(name) {
                    return refuse(
                        format!("{field}.{key}"),
                        format!("{name:?} is not one of interfaces"),
                    );
                }
            }
            if let Some(kind) = function.flow_state_kind() {
                if let Some(first) = chain.functions[..f]
                    .iter()
                    .position(|other| other.flow_state_kind() == Some(kind))
                {
                    return refuse(
                        field,
                        format!(
                            "a chain may have only one {kind} (functions[{first}] is one): its per-flow state has one place in a connection"
                        ),
                    );
                }
            }
            match function {
                FunctionSpec::LoadBalancer { services } => {
                    for name in services {
                        let known = config.services.iter().any(|s| {
                            s.tenant == chain.tenant
                                && format!("{}/{}", s.namespace, s.name) == *name
                        });
                        if !known {
                            return refuse(
                                field,
                                format!(
                                    "unknown service {name:?} (no service of tenant {} is named so)",
                                    chain.tenant
                                ),
                            );
                        }
                    }
                }
                FunctionSpec::External {
                    to_interface,
                    from_interface,
                    ..
                } => {
                    if to_interface == from_interface {
                        return refuse(
                            field,
                            format!(
                                "interface {from_interface:?} is already used by this external hop (to_interface and from_interface): a frame coming back on it cannot be placed"
                            ),
                        );
                    }
                    // Frames come back on from_interface; on a symmetric
                    // chain, replies on to_interface too.
                    let mut taken = vec![from_interface.as_str()];
                    if chain.symmetric {
                        taken.push(to_interface.as_str());
                    }
                    for name in taken {
                        if let Some((first_chain, first_stage)) = returns.insert(name, (c, f)) {
                            return refuse(
                                field,
                                format!(
                                    "interface {name:?} is already used by another external hop (chains[{first_chain}].functions[{first_stage}]): a frame coming back on it cannot be placed"
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_sysfs_writes_them() {
        let parsed = parse_cpu_list("0-3,6,8-9\n");
        assert_eq!(
            parsed,
            Some([0, 1, 2, 3, 6, 8, 9].into_iter().collect::<BTreeSet<_>>())
        );
        assert_eq!(parse_cpu_list("0"), Some([0].into_iter().collect()));
        assert_eq!(parse_cpu_list(""), Some(BTreeSet::new()));
        for bad in ["3-1", "x", "0-", "1,,2", "0-99999999"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
        let cpus = parse_cpu_list("0-3,6,8-9").unwrap_or_default();
        assert_eq!(format_cpu_list(&cpus), "0-3,6,8-9");
    }

    #[test]
    fn this_machine_has_at_least_one_cpu() {
        let machine = Machine::this_machine();
        let cpus = machine.online_cpus().map(BTreeSet::len).unwrap_or(0);
        assert!(cpus >= 1, "{machine:?}");
    }

    #[test]
    fn address_ranges_cover_whole_prefixes() {
        let net = |s: &str| {
            s.parse::<IpNetwork>()
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        assert_eq!(address_range(net("10.0.0.0/8")), (0x0a00_0000, 0x0aff_ffff));
        assert_eq!(address_range(net("0.0.0.0/0")), (0, 0xffff_ffff));
        assert_eq!(address_range(net("::/0")), (0, u128::MAX));
        assert_eq!(
            address_range(net("fd00::1/128")).1,
            address_range(net("fd00::1/128")).0
        );
    }
}
