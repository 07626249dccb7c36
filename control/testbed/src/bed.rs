//! The testbed itself: its namespaces, nodes, pods and links, built from a
//! [`TopologySpec`] and removed on drop.

mod fabric_hosts;
mod kxdp;
mod services;
mod vnfs;

use crate::error::{Result, TestbedError};
use crate::fabric::FabricHost;
use crate::kernel_node;
use crate::netns::{self, find_program, list_netns, veth_pair, Netns, NetnsGuard, NETNS_RUN_DIR};
use crate::report::PathKind;
use crate::topology::{
    self, Node, NodeKind, Pod, TopologySpec, Underlay, UnderlayOffloads, CNI_BRIDGE, FABRIC_BRIDGE,
    POD_IF, POD_MTU, UNDERLAY_IF, UNDERLAY_MTU,
};
use crate::vnf::VnfPod;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use kxdp_config::{NodeConfig, TenantSpec};

use netns::{delete_netns, run_command};

/// Every name a testbed creates starts with this, then `<pid>-<seq>-`.
pub const NAME_FAMILY: &str = "kx";

/// Scratch directories are `<temp dir>/kxdp-testbed-<prefix without the trailing dash>`.
const SCRATCH_PREFIX: &str = "kxdp-testbed-";

static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// A built topology. Dropping it deletes everything it created.
#[derive(Debug)]
pub struct Testbed {
    prefix: String,
    tenants: Vec<TenantSpec>,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    fabric: Option<Netns>,
    configs: BTreeMap<String, NodeConfig>,
    /// VNF pods added with [`Testbed::add_vnf`].
    vnfs: Vec<VnfPod>,
    /// Hosts on the fabric bridge added with [`Testbed::add_fabric_host`].
    fabric_hosts: Vec<FabricHost>,
    /// The namespaces, in creation order; dropped (deleted) before `scratch`.
    guards: Vec<NetnsGuard>,
    scratch: ScratchDir,
}

impl Testbed {
    /// Build `spec`: namespaces, veths, addresses, routes, kernel vxlan
    /// peers, and the kxdp configuration of each kxdp node (in memory; see
    /// [`Testbed::write_config`]). Leftovers of dead runs are removed first.
    /// On error, whatever was already created is removed.
    pub fn build(spec: TopologySpec) -> Result<Testbed> {
        if let Err(e) = Testbed::cleanup_stale() {
            eprintln!("testbed: cleaning up leftovers of dead runs failed: {e}");
        }
        let prefix = format!(
            "{NAME_FAMILY}{}-{}-",
            std::process::id(),
            NEXT_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = ScratchDir::create(&prefix)?;
        let plan = topology::plan(&spec, &prefix, scratch.path())?;
        let mut testbed = Testbed {
            prefix,
            tenants: spec.tenants.clone(),
            nodes: plan.nodes,
            pods: plan.pods,
            fabric: plan.fabric,
            configs: plan.configs,
            vnfs: Vec::new(),
            fabric_hosts: Vec::new(),
            guards: Vec::new(),
            scratch,
        };
        testbed.create_namespaces()?;
        testbed.wire_underlay(spec.underlay)?;
        for node in &testbed.nodes {
            testbed.configure_node(node)?;
        }
        for pod in &testbed.pods {
            testbed.attach_pod(pod)?;
        }
        for node in testbed.nodes.iter().filter(|n| n.kind.is_kernel()) {
            kernel_node::configure_peers(node, &testbed.nodes, &testbed.tenants)?;
        }
        for node in testbed.nodes.iter().filter(|n| n.host_port) {
            // As on a stock node, the interfaces created from now on (the
            // host port kxdp makes at start) have IPv6: kxdp gives the
            // node's side an IPv6 next hop. Those made above stay IPv4-only.
            match node
                .netns
                .set_sysctl("net.ipv6.conf.default.disable_ipv6", "0")
            {
                Err(TestbedError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(testbed)
    }

    fn create_namespaces(&mut self) -> Result<()> {
        let names: Vec<String> = self
            .fabric
            .iter()
            .chain(self.nodes.iter().map(|n| &n.netns))
            .chain(self.pods.iter().map(|p| &p.netns))
            .map(|ns| ns.name().to_string())
            .collect();
        for name in names {
            let guard = NetnsGuard::create(&name)?;
            self.guards.push(guard);
            let ns = Netns::named(&name);
            // The testbed is IPv4: IPv6 would add router solicitations, MLD
            // and DAD frames to every measurement and counter.
            for key in [
                "net.ipv6.conf.all.disable_ipv6",
                "net.ipv6.conf.default.disable_ipv6",
            ] {
                match ns.set_sysctl(key, "1") {
                    Err(TestbedError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    fn wire_underlay(&self, underlay: Underlay) -> Result<()> {
        let mtu = UNDERLAY_MTU.to_string();
        match underlay {
            Underlay::Direct => {
                let [a, b] = self.nodes.as_slice() else {
                    return Err(TestbedError::Spec(
                        "a Direct underlay joins exactly two nodes".into(),
                    ));
                };
                veth_pair(
                    (UNDERLAY_IF, &a.netns, &a.underlay_mac.to_string()),
                    (UNDERLAY_IF, &b.netns, &b.underlay_mac.to_string()),
                    &mtu,
                )?;
            }
            Underlay::Switch => {
                let fabric = self.fabric.as_ref().ok_or_else(|| {
                    TestbedError::Spec("a Switch underlay needs a fabric namespace".into())
                })?;
                fabric.ip(&["link", "add", FABRIC_BRIDGE, "type", "bridge"])?;
                fabric.ip(&["link", "set", FABRIC_BRIDGE, "up"])?;
                for node in &self.nodes {
                    let port = format!("n{}", node.number);
                    veth_pair(
                        (UNDERLAY_IF, &node.netns, &node.underlay_mac.to_string()),
                        (
                            &port,
                            fabric,
                            &topology::fabric_port_mac(node.number).to_string(),
                        ),
                        &mtu,
                    )?;
                    fabric.ip(&["link", "set", &port, "master", FABRIC_BRIDGE, "up"])?;
                }
            }
        }
        Ok(())
    }

    fn configure_node(&self, node: &Node) -> Result<()> {
        let ns = &node.netns;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", node.vtep_ip),
            "dev",
            UNDERLAY_IF,
        ])?;
        ns.ip(&["link", "set", UNDERLAY_IF, "up"])?;
        // Every node's underlay port queues what it sends, as a NIC does
        // (a veth would drop a burst that a kxdp peer's XDP ring cannot
        // take yet, where a wire's sender would have queued it).
        default_qdisc(ns, UNDERLAY_IF)?;
        match node.underlay_offloads {
            // Let the kernel finish checksums before frames leave ul0, as a
            // NIC would on a wire: the peer may be kxdp, whose AF_XDP
            // copy-mode sockets would otherwise receive CHECKSUM_PARTIAL
            // frames unfinished.
            UnderlayOffloads::TxOff => {
                ns.exec("ethtool", &["-K", UNDERLAY_IF, "tx", "off"])?;
            }
            // Among kernel nodes only (the plan checks): as Flannel runs.
            UnderlayOffloads::KernelDefault => {}
        }
        if node.kind.is_kernel() {
            kernel_node::configure_base(node, &self.tenants)?;
        }
        Ok(())
    }

    fn attach_pod(&self, pod: &Pod) -> Result<()> {
        let node = self.node(&pod.node)?;
        let mtu = POD_MTU.to_string();
        veth_pair(
            (&pod.host_interface, &node.netns, &pod.host_mac.to_string()),
            (POD_IF, &pod.netns, &pod.mac.to_string()),
            &mtu,
        )?;
        let ns = &pod.netns;
        let gateway = pod.gateway.to_string();
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/{}", pod.ip, pod.prefix_len),
            "dev",
            POD_IF,
        ])?;
        ns.ip(&["link", "set", POD_IF, "up"])?;
        match node.kind {
            NodeKind::Kxdp => {
                // Point-to-point: no bridge, the dataplane answers ARP for the gateway.
                ns.ip(&["route", "add", &gateway, "dev", POD_IF, "scope", "link"])?;
                ns.ip(&[
                    "route", "add", "default", "via", &gateway, "dev", POD_IF, "onlink",
                ])?;
                // Finish checksums in the pod, as a CNI plugin does for a
                // userspace dataplane: AF_XDP copy mode hands CHECKSUM_PARTIAL
                // frames to userspace with the checksum unfinished.
                ns.exec("ethtool", &["-K", POD_IF, "tx", "off"])?;
                default_qdisc(ns, POD_IF)?;
                node.netns.ip(&["link", "set", &pod.host_interface, "up"])?;
            }
            NodeKind::KernelVxlan | NodeKind::Routed => {
                ns.ip(&["route", "add", "default", "via", &gateway, "dev", POD_IF])?;
                node.netns.ip(&[
                    "link",
                    "set",
                    &pod.host_interface,
                    "master",
                    CNI_BRIDGE,
                    "up",
                ])?;
            }
        }
        Ok(())
    }

    /// The run's name prefix (`kx<pid>-<seq>-`): every namespace this testbed
    /// made starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespaces this testbed made, in creation order.
    pub fn names(&self) -> Vec<String> {
        self.guards.iter().map(|g| g.name().to_string()).collect()
    }

    /// The directory holding configurations, logs and control sockets;
    /// removed with the testbed.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The tenants.
    pub fn tenants(&self) -> &[TenantSpec] {
        &self.tenants
    }

    /// All nodes, in specification order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// All pods, node by node.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The fabric namespace of a `Switch` underlay.
    pub fn fabric(&self) -> Option<&Netns> {
        self.fabric.as_ref()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TestbedError::NotFound {
                what: "node",
                name: name.to_string(),
            })
    }

    /// The pod called `name`.
    pub fn pod(&self, name: &str) -> Result<&Pod> {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| TestbedError::NotFound {
                what: "pod",
                name: name.to_string(),
            })
    }

    /// The kxdp configuration of kxdp node `node`.
    pub fn node_config(&self, node: &str) -> Result<&NodeConfig> {
        self.configs
            .get(node)
            .ok_or_else(|| TestbedError::NotFound {
                what: "kxdp node",
                name: node.to_string(),
            })
    }

    /// The kxdp configuration of kxdp node `node`, to adjust (workers,
    /// routes, policies) before [`Testbed::write_config`] or
    /// [`Testbed::start_kxdp`].
    pub fn node_config_mut(&mut self, node: &str) -> Result<&mut NodeConfig> {
        self.configs
            .get_mut(node)
            .ok_or_else(|| TestbedError::NotFound {
                what: "kxdp node",
                name: node.to_string(),
            })
    }

    /// Write the kxdp configuration of `node` as YAML to
    /// `<scratch dir>/<node>.yaml` and return the path.
    pub fn write_config(&self, node: &str) -> Result<PathBuf> {
        let config = self.node_config(node)?;
        let path = self.scratch.path().join(format!("{node}.yaml"));
        std::fs::write(&path, config.to_yaml())
            .map_err(|e| TestbedError::io(format!("cannot write {}", path.display()), e))?;
        Ok(path)
    }

    /// What kind of path a packet from pod `from` to pod `to` takes.
    pub fn path_kind(&self, from: &str, to: &str) -> Result<PathKind> {
        let from = self.node(&self.pod(from)?.node)?;
        let to = self.node(&self.pod(to)?.node)?;
        Ok(if from.name == to.name {
            PathKind::SameNode
        } else if from.kind.is_kernel() || to.kind.is_kernel() {
            PathKind::KernelNode
        } else {
            PathKind::CrossNode
        })
    }

    /// Remove what testbeds of dead processes left behind: namespaces and
    /// root-namespace links named `kx<pid>-<seq>-…` whose pid is not alive,
    /// and their scratch directories. Returns what was removed. Never
    /// touches names of live processes (this one included) or names outside
    /// the testbed's family.
    pub fn cleanup_stale() -> Result<Vec<String>> {
        remove_named(|name| stale_pid(name).is_some())
    }

    /// Remove every namespace, root-namespace link and scratch directory
    /// that testbeds of this process made (`kx<this pid>-…`), whoever still
    /// holds them: for a process stopped by a signal, whose testbeds' drops
    /// will not run (see [`crate::remove_on_signal`]). Returns what was
    /// removed.
    pub fn remove_own() -> Result<Vec<String>> {
        let own = std::process::id();
        remove_named(|name| name_pid(name) == Some(own))
    }

    /// Everything still on the system whose name starts with `prefix`:
    /// named namespaces, links of the root namespace, and the scratch
    /// directory. Empty once a testbed with that prefix is dropped.
    pub fn leftovers(prefix: &str) -> Result<Vec<String>> {
        let mut found: Vec<String> = list_netns()?
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| format!("netns {n}"))
            .collect();
        found.extend(
            root_links()?
                .into_iter()
                .filter(|n| n.starts_with(prefix))
                .map(|n| format!("link {n}")),
        );
        let scratch = scratch_path(prefix);
        if scratch.exists() {
            found.push(format!("directory {}", scratch.display()));
        }
        Ok(found)
    }
}

/// Remove the namespaces, root-namespace links and scratch directories
/// whose testbed name `wanted` picks; what was removed.
fn remove_named(wanted: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list_netns()? {
        if wanted(&name) {
            match delete_netns(&name) {
                Ok(()) => removed.push(name),
                // Another process (or this one's own drop) may be removing
                // the same namespace.
                Err(_) if !Path::new(NETNS_RUN_DIR).join(&name).exists() => {}
                Err(e) => return Err(e),
            }
        }
    }
    for name in root_links()? {
        if wanted(&name) && run_command("ip", &["link", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if let Some(rest) = file_name.strip_prefix(SCRATCH_PREFIX) {
                if wanted(rest) && std::fs::remove_dir_all(entry.path()).is_ok() {
                    removed.push(entry.path().display().to_string());
                }
            }
        }
    }
    Ok(removed)
}

/// Link names of the root namespace (`ip -o link show`).
fn root_links() -> Result<Vec<String>> {
    let out = run_command("ip", &["-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect())
}

/// The pid in a testbed name `kx<pid>-<seq>-…` (or `kx<pid>-<seq>`), if it
/// is one and that process is gone.
fn stale_pid(name: &str) -> Option<u32> {
    let pid = name_pid(name)?;
    (!Path::new("/proc").join(pid.to_string()).exists()).then_some(pid)
}

/// The pid in a testbed name `kx<pid>-<seq>[-…]`.
fn name_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_FAMILY)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let seq = parts.next()?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || !all_digits(seq) {
        return None;
    }
    pid.parse().ok()
}

fn scratch_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", prefix.trim_end_matches('-')))
}

/// A directory removed (with its contents) on drop.
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(prefix: &str) -> Result<ScratchDir> {
        let path = scratch_path(prefix);
        std::fs::create_dir_all(&path)
            .map_err(|e| TestbedError::io(format!("cannot create {}", path.display()), e))?;
        Ok(ScratchDir { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.path) {
            // Already removed (by a signal's clean-up, see `on_signal`).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("testbed: cannot remove {}: {e}", self.path.display()),
            Ok(()) => {}
        }
    }
}

/// Whether this process can build testbeds: root, and `ip`, `bridge` and
/// `ethtool` installed. `Err` says what is missing.
pub fn check_privileges() -> std::result::Result<(), String> {
    if let Some(why) = kxdp_harness::missing_privileges() {
        return Err(why);
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("bridge", "iproute2"),
        ("ethtool", "ethtool"),
    ] {
        if find_program(tool).is_none() {
            return Err(format!("`{tool}` is not installed (package {package})"));
        }
    }
    Ok(())
}

/// Give `ifname` (a veth end) the qdisc kxdp-cni gives a pod
/// ([`kxdp_cni::link::default_pod_qdisc`], its fallback where the kernel
/// refuses it). A veth has none of its own, unlike a NIC. Where the other
/// end has an XDP program (kxdp's, on a pod's host end or on a kxdp node's
/// `ul0`), the veth hands it frames through a NAPI ring of 256, and
/// without a qdisc a burst that the NAPI has not drained yet is dropped
/// (this end's `tx_dropped`) instead of held back.
pub(crate) fn default_qdisc(ns: &Netns, ifname: &str) -> Result<()> {
    use kxdp_cni::link::{default_pod_qdisc, FALLBACK_QDISC};
    let qdisc = default_pod_qdisc();
    let attach = |q: &str| {
        ns.exec("tc", &["qdisc", "replace", "dev", ifname, "root", q])
            .map(|_| ())
    };
    match attach(&qdisc) {
        Err(_) if qdisc != FALLBACK_QDISC => attach(FALLBACK_QDISC),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pids_of_testbed_names_only() {
        assert_eq!(name_pid("kx1234-0-n-n1"), Some(1234));
        assert_eq!(name_pid("kx1234-17-fabric"), Some(1234));
        assert_eq!(name_pid("kx1234-17"), Some(1234));
        assert_eq!(name_pid("kxprobe-a"), None);
        assert_eq!(name_pid("kx-1-n"), None);
        assert_eq!(name_pid("kx12a-1-n"), None);
        assert_eq!(name_pid("kx12-n1"), None);
        assert_eq!(name_pid("blue-1-2"), None);
    }

    #[test]
    fn live_pids_are_not_stale() {
        let own = format!("kx{}-0-n-x", std::process::id());
        assert_eq!(stale_pid(&own), None);
        // Pids are below 2^22 on Linux: this one cannot be alive.
        assert_eq!(stale_pid("kx4294967-0-n-x"), Some(4_294_967));
    }

    #[test]
    fn scratch_path_drops_the_trailing_dash() {
        assert!(scratch_path("kx1-2-").ends_with("kxdp-testbed-kx1-2"));
    }
}
