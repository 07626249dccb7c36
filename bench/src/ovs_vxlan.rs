//! Open vSwitch as a Flannel-compatible VXLAN node: the `ovs-vxlan` row of
//! the node-under-test table, the job kxdp does, done by OVS's userspace
//! datapath (`datapath_type=netdev`) with `afxdp` ports, on a testbed node
//! built as a kxdp node (pods with a /32 address and an on-link gateway,
//! `ul0` holding the VTEP address) with kxdp not started.
//!
//! # Layout (OVS native tunnelling)
//!
//! - `br-phy`: `ul0` as an `afxdp` port (OpenFlow port 1), one flow
//!   `NORMAL`. Its internal port (a tap in the node's namespace) takes over
//!   the VTEP address from `ul0` and `ul0`'s MAC (`other_config:hwaddr`),
//!   so the peer's ARP for the VTEP is answered by the node's kernel through
//!   OVS, as it was for `ul0`. OVS learns the route to the peer VTEPs from
//!   the kernel's routing table (`dev br-phy`) and gets each peer's `ul0`
//!   MAC pinned with `ovs-appctl tnl/neigh/set`.
//! - `br-int`: the host side of each pod's veth as an `afxdp` port
//!   (OpenFlow ports 1, 2, … in pod order), and one `type=vxlan` port per
//!   remote node (`remote_ip` its VTEP, `local_ip` ours, `key` the tenant's
//!   VNI, `dst_port` the testbed's VXLAN port, [`VXLAN_PORT`]; ports 100,
//!   101, …). An output to a VXLAN port is encapsulated by the datapath
//!   (`tnl_push`) and sent out of `br-phy`; VXLAN arriving on `ul0` for our
//!   VTEP is decapsulated (`tnl_pop`) and enters `br-int` on the VXLAN port.
//! - `afxdp` ports in native (driver) XDP mode: on veth that is copy mode,
//!   `native-with-zerocopy` is refused (EOPNOTSUPP).
//!
//! # Flows on `br-int` (what kxdp does per packet, in OpenFlow)
//!
//! Table 0 admits: from a pod's port, an ARP request for the gateway is
//! answered in place (ARP responder, with the pod veth's host-side MAC, as
//! kxdp answers) and IPv4 from the pod's own address goes on to table 1
//! (a source check); IPv4 from a VXLAN port goes on to table 1; anything
//! else is dropped. Table 1 routes: to a local pod's address, rewrite both
//! MACs (host side → pod), `dec_ttl`, out of its port; to a remote node's
//! pod CIDR, rewrite both MACs (inner source our VTEP MAC, inner destination
//! the remote VTEP MAC: a Flannel node accepts only its `flannel.<vni>`
//! MAC), `dec_ttl`, out of that node's VXLAN port; anything else dropped.
//!
//! # Processes
//!
//! A private ovsdb-server and ovs-vswitchd ([`OvsDaemons`], the same as the
//! `external` module's L2 forwarder), run in the node's namespace with
//! their files in a temporary directory. One PMD thread polls every `afxdp`
//! port on the core given (`other_config:pmd-cpu-mask`); ovs-vswitchd's
//! other threads (main, handlers, revalidators, urcu) inherit this
//! process's CPU affinity. Stopped (also on drop) by deleting both bridges
//! (which closes the ports and detaches their XDP programs),
//! `ovs-appctl exit --cleanup`, then the database server; the VTEP address
//! goes back onto `ul0`, XDP programs or promiscuous mode left behind are
//! removed.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kxdp_config::MacAddr;
use kxdp_testbed::{Netns, NodeKind, Testbed, POD_CIDR_LEN, UNDERLAY_IF, VXLAN_PORT};

use crate::external::{
    ovs_appctl, ovs_ofctl, ovs_vsctl, prepare_run, restore_interfaces, xdp_programs, ExternalKind,
    InterfaceState, OvsDaemons, RunDir, READY_TIMEOUT,
};

/// The bridge of the pods' ports and the VXLAN ports.
pub const INTEGRATION_BRIDGE: &str = "br-int";
/// The bridge of the underlay port, whose internal port holds the VTEP.
pub const UNDERLAY_BRIDGE: &str = "br-phy";
/// `ul0`'s OpenFlow port on [`UNDERLAY_BRIDGE`].
const UNDERLAY_OFPORT: u16 = 1;
/// The first pod's OpenFlow port on [`INTEGRATION_BRIDGE`].
const FIRST_POD_OFPORT: u16 = 1;
/// The first VXLAN port's OpenFlow port on [`INTEGRATION_BRIDGE`].
const FIRST_TUNNEL_OFPORT: u16 = 100;
/// Prefix length of the VTEP address on the underlay (the testbed's /24).
const VTEP_PREFIX_LEN: u8 = 24;

/// A pod whose veth OVS serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsPod {
    /// The host side of its veth (`v<pod>`), an `afxdp` port.
    pub interface: String,
    /// That host side's MAC: the gateway's MAC as the pod sees it.
    pub host_mac: MacAddr,
    /// The pod's `eth0` MAC.
    pub mac: MacAddr,
    /// The pod's address (/32).
    pub ip: Ipv4Addr,
    /// Its OpenFlow port on [`INTEGRATION_BRIDGE`].
    pub ofport: u16,
}

/// A remote node reached through a VXLAN port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsRemote {
    /// The VXLAN port's name.
    pub port: String,
    /// Its OpenFlow port on [`INTEGRATION_BRIDGE`].
    pub ofport: u16,
    /// Its VTEP address.
    pub vtep_ip: Ipv4Addr,
    /// Its `ul0` MAC (the outer destination MAC).
    pub underlay_mac: MacAddr,
    /// The inner destination MAC it accepts (`flannel.<vni>`'s MAC on a
    /// kernel node).
    pub vtep_mac: MacAddr,
    /// Its pod CIDR's network address (prefix [`POD_CIDR_LEN`]).
    pub pod_cidr: Ipv4Addr,
}

/// What one OVS VXLAN node serves (in the namespace given to
/// [`start_ovs_vxlan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OvsVxlanSpec {
    /// The tenant's VNI (the VXLAN key).
    pub vni: u32,
    /// The VXLAN UDP port (the peer's `flannel.<vni>` `dstport`).
    pub vxlan_port: u16,
    /// The underlay interface (`ul0`).
    pub underlay_interface: String,
    /// Its MAC: also the VTEP MAC the peers send to (a kxdp node's).
    pub underlay_mac: MacAddr,
    /// The VTEP address (on `ul0` until OVS starts, then on `br-phy`).
    pub vtep_ip: Ipv4Addr,
    /// The pods' gateway, answered by the ARP responder.
    pub gateway: Ipv4Addr,
    /// The node's pods.
    pub pods: Vec<OvsPod>,
    /// The remote nodes serving the tenant.
    pub remotes: Vec<OvsRemote>,
    /// The PMD thread's core.
    pub core: usize,
}

impl OvsVxlanSpec {
    /// For testbed node `node`, a kxdp-kind node (kxdp not started) whose
    /// pods are all of one tenant, with its PMD thread on `core`: VXLAN to
    /// every other node serving that tenant that is not host-gw routed.
    pub fn for_node(testbed: &Testbed, node: &str, core: usize) -> Result<OvsVxlanSpec> {
        let node = testbed.node(node)?;
        if node.kind != NodeKind::Kxdp {
            bail!(
                "node {}: OVS replaces kxdp on a kxdp-kind node (pods /32 with an on-link \
                 gateway), this node is {:?}",
                node.name,
                node.kind
            );
        }
        let mut pods = Vec::new();
        let mut tenant: Option<(String, u32)> = None;
        for (name, ofport) in node.pods.iter().zip(FIRST_POD_OFPORT..) {
            let pod = testbed.pod(name)?;
            match &tenant {
                None => tenant = Some((pod.tenant.clone(), pod.vni)),
                Some((t, _)) if *t != pod.tenant => bail!(
                    "node {}: pods of tenants {t} and {}: this OVS layout serves one tenant \
                     (one VNI on one integration bridge)",
                    node.name,
                    pod.tenant
                ),
                Some(_) => {}
            }
            pods.push(OvsPod {
                interface: pod.host_interface.clone(),
                host_mac: pod.host_mac,
                mac: pod.mac,
                ip: pod.ip,
                ofport,
            });
        }
        let Some((tenant, vni)) = tenant else {
            bail!("node {}: no pods for OVS to serve", node.name);
        };
        let remotes = testbed
            .nodes()
            .iter()
            .filter(|r| {
                r.name != node.name && r.kind != NodeKind::Routed && r.tenants.contains(&tenant)
            })
            .zip(FIRST_TUNNEL_OFPORT..)
            .map(|(r, ofport)| OvsRemote {
                port: format!("vxlan-n{}", r.number),
                ofport,
                vtep_ip: r.vtep_ip,
                underlay_mac: r.underlay_mac,
                vtep_mac: r.vtep_mac,
                pod_cidr: r.pod_cidr,
            })
            .collect();
        Ok(OvsVxlanSpec {
            vni,
            vxlan_port: VXLAN_PORT,
            underlay_interface: UNDERLAY_IF.to_string(),
            underlay_mac: node.underlay_mac,
            vtep_ip: node.vtep_ip,
            gateway: node.gateway,
            pods,
            remotes,
            core,
        })
    }

    /// The interfaces OVS opens as `afxdp` ports: `ul0`, then the pods'.
    pub fn afxdp_interfaces(&self) -> Vec<&str> {
        std::iter::once(self.underlay_interface.as_str())
            .chain(self.pods.iter().map(|p| p.interface.as_str()))
            .collect()
    }

    /// `ovs-vsctl` arguments creating both bridges and their ports.
    fn bridge_commands(&self) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
        let afxdp_port = |bridge: &str, interface: &str, ofport: u16| -> Vec<String> {
            [
                "--",
                "add-port",
                bridge,
                interface,
                "--",
                "set",
                "interface",
                interface,
                "type=afxdp",
                "options:xdp-mode=native",
            ]
            .iter()
            .map(|w| w.to_string())
            .chain([format!("ofport_request={ofport}")])
            .collect()
        };
        push(&[
            "add-br",
            UNDERLAY_BRIDGE,
            "--",
            "set",
            "bridge",
            UNDERLAY_BRIDGE,
            "datapath_type=netdev",
            "fail_mode=secure",
        ]);
        let hwaddr = format!("other_config:hwaddr={}", self.underlay_mac);
        push(&[&hwaddr]);
        args.extend(afxdp_port(
            UNDERLAY_BRIDGE,
            &self.underlay_interface,
            UNDERLAY_OFPORT,
        ));
        let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
        push(&[
            "--",
            "add-br",
            INTEGRATION_BRIDGE,
            "--",
            "set",
            "bridge",
            INTEGRATION_BRIDGE,
            "datapath_type=netdev",
            "fail_mode=secure",
        ]);
        for pod in &self.pods {
            args.extend(afxdp_port(INTEGRATION_BRIDGE, &pod.interface, pod.ofport));
        }
        for remote in &self.remotes {
            args.extend(
                [
                    "--",
                    "add-port",
                    INTEGRATION_BRIDGE,
                    &remote.port,
                    "--",
                    "set",
                    "interface",
                    &remote.port,
                    "type=vxlan",
                ]
                .iter()
                .map(|w| w.to_string()),
            );
            args.extend([
                format!("options:remote_ip={}", remote.vtep_ip),
                format!("options:local_ip={}", self.vtep_ip),
                format!("options:key={}", self.vni),
                format!("options:dst_port={}", self.vxlan_port),
                format!("ofport_request={}", remote.ofport),
            ]);
        }
        args
    }

    /// The OpenFlow rules of `br-phy` and `br-int` (see the module
    /// documentation), in `ovs-ofctl add-flows` syntax.
    pub fn flows(&self) -> (Vec<String>, Vec<String>) {
        let underlay = vec!["priority=0,actions=NORMAL".to_string()];
        let mut integration = Vec::new();
        let gateway = self.gateway;
        for pod in &self.pods {
            let (port, mac) = (pod.ofport, pod.host_mac);
            integration.push(format!(
                "table=0,priority=100,in_port={port},arp,arp_op=1,arp_tpa={gateway},\
                 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:{mac},\
                 load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
                 move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:{mac}->arp_sha,\
                 set_field:{gateway}->arp_spa,IN_PORT"
            ));
            integration.push(format!(
                "table=0,priority=90,in_port={port},ip,nw_src={},actions=resubmit(,1)",
                pod.ip
            ));
            integration.push(format!(
                "table=1,priority=100,ip,nw_dst={},actions=mod_dl_src:{mac},mod_dl_dst:{},\
                 dec_ttl,output:{port}",
                pod.ip, pod.mac
            ));
        }
        for remote in &self.remotes {
            integration.push(format!(
                "table=0,priority=90,in_port={},ip,actions=resubmit(,1)",
                remote.ofport
            ));
            integration.push(format!(
                "table=1,priority=50,ip,nw_dst={}/{POD_CIDR_LEN},actions=mod_dl_src:{},\
                 mod_dl_dst:{},dec_ttl,output:{}",
                remote.pod_cidr, self.underlay_mac, remote.vtep_mac, remote.ofport
            ));
        }
        integration.push("table=0,priority=0,actions=drop".to_string());
        integration.push("table=1,priority=0,actions=drop".to_string());
        (underlay, integration)
    }
}

/// A running OVS VXLAN node; see the module documentation. Dropping it
/// stops it and cleans up (errors are printed); [`OvsVxlanNode::stop`]
/// does the same and returns the first error.
#[derive(Debug)]
pub struct OvsVxlanNode {
    netns: Netns,
    spec: OvsVxlanSpec,
    daemons: Option<OvsDaemons>,
    before: Vec<InterfaceState>,
    /// Whether the VTEP address was taken off `ul0` (to put it back).
    address_moved: bool,
    started_at: Instant,
    startup: Duration,
    /// Declared last: removed after the processes stopped.
    run_dir: RunDir,
}

/// Start OVS as a VXLAN node for `spec` in the node namespace `netns` (the
/// testbed node's: [`Node::netns`](kxdp_testbed::Node::netns)) and wait until it is ready: its
/// PMD thread polls every `afxdp` port, each carries an XDP program, and
/// OVS routes every remote VTEP through `br-phy` (at most
/// [`READY_TIMEOUT`]).
pub fn start_ovs_vxlan(netns: &Netns, spec: &OvsVxlanSpec) -> Result<OvsVxlanNode> {
    ExternalKind::Ovs
        .check_installed()
        .map_err(anyhow::Error::msg)?;
    let (_name, run_dir, before) = prepare_run(netns, &spec.afxdp_interfaces())?;
    let started_at = Instant::now();
    let daemons = OvsDaemons::start(netns, run_dir.path(), spec.core)?;
    let mut node = OvsVxlanNode {
        netns: netns.clone(),
        spec: spec.clone(),
        daemons: Some(daemons),
        before,
        address_moved: false,
        started_at,
        startup: Duration::ZERO,
        run_dir,
    };
    if let Err(e) = node.configure() {
        bail!(
            "configuring OVS as a VXLAN node failed: {e:#}; ovs-vswitchd's log ends:\n{}",
            node.log_tail(25)
        );
    }
    node.wait_ready()?;
    Ok(node)
}

impl OvsVxlanNode {
    /// What it serves.
    pub fn spec(&self) -> &OvsVxlanSpec {
        &self.spec
    }

    /// The PIDs of ovs-vswitchd and ovsdb-server.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons
            .as_ref()
            .map(OvsDaemons::pids)
            .unwrap_or_default()
    }

    /// Its temporary directory (logs, database; removed when it stops).
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// How long it took from spawning to ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Whether ovs-vswitchd still runs.
    pub fn is_running(&mut self) -> bool {
        self.daemons.as_mut().is_some_and(OvsDaemons::running)
    }

    /// The last `lines` lines of ovs-vswitchd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemons
            .as_ref()
            .map(|d| d.log_tail(lines))
            .unwrap_or_default()
    }

    /// `ovs-appctl dpif-netdev/pmd-stats-show`: the PMD thread's packets
    /// and cycles so far.
    pub fn pmd_stats(&self) -> Result<String> {
        ovs_appctl(self.run_dir(), &["dpif-netdev/pmd-stats-show".into()])
    }

    fn configure(&mut self) -> Result<()> {
        let dir = self.run_dir.path().to_path_buf();
        let spec = &self.spec;
        ovs_vsctl(&dir, &spec.bridge_commands())?;
        let ports = spec
            .afxdp_interfaces()
            .into_iter()
            .map(str::to_string)
            .chain(spec.remotes.iter().map(|r| r.port.clone()));
        for port in ports {
            let error = ovs_vsctl(
                &dir,
                &[
                    "get".into(),
                    "interface".into(),
                    port.clone(),
                    "error".into(),
                ],
            )?;
            let error = error.trim();
            if !error.is_empty() && error != "[]" {
                bail!("OVS cannot open {port}: {error}");
            }
        }
        let (underlay_flows, integration_flows) = spec.flows();
        for (bridge, flows) in [
            (UNDERLAY_BRIDGE, underlay_flows),
            (INTEGRATION_BRIDGE, integration_flows),
        ] {
            let file = dir.join(format!("{bridge}.flows"));
            std::fs::write(&file, flows.join("\n") + "\n")
                .with_context(|| format!("cannot write {}", file.display()))?;
            ovs_ofctl(&dir, &["del-flows".into(), bridge.into()])?;
            ovs_ofctl(
                &dir,
                &[
                    "add-flows".into(),
                    bridge.into(),
                    file.display().to_string(),
                ],
            )?;
        }
        // The VTEP address moves onto br-phy's internal port: the kernel
        // answers ARP for it there, and OVS's tunnel route goes through it.
        let ns = &self.netns;
        let vtep = format!("{}/{VTEP_PREFIX_LEN}", spec.vtep_ip);
        self.address_moved = true;
        ns.ip(&["addr", "del", &vtep, "dev", &spec.underlay_interface])?;
        ns.ip(&["addr", "add", &vtep, "dev", UNDERLAY_BRIDGE])?;
        ns.ip(&["link", "set", UNDERLAY_BRIDGE, "up"])?;
        for remote in &spec.remotes {
            ovs_appctl(
                &dir,
                &[
                    "tnl/neigh/set".into(),
                    UNDERLAY_BRIDGE.into(),
                    remote.vtep_ip.to_string(),
                    remote.underlay_mac.to_string(),
                ],
            )?;
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = self.started_at + READY_TIMEOUT;
        let dir = self.run_dir.path().to_path_buf();
        loop {
            if !self.is_running() {
                bail!("ovs-vswitchd exited; its log ends:\n{}", self.log_tail(25));
            }
            let rxqs = ovs_appctl(&dir, &["dpif-netdev/pmd-rxq-show".into()])?;
            let polled = self
                .spec
                .afxdp_interfaces()
                .iter()
                .all(|i| rxqs.contains(&format!("port: {i} ")));
            let mut routed = true;
            for remote in &self.spec.remotes {
                let route = ovs_appctl(
                    &dir,
                    &["ovs/route/lookup".into(), remote.vtep_ip.to_string()],
                )
                .unwrap_or_default();
                routed &= route.contains(UNDERLAY_BRIDGE);
            }
            if polled && routed {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "OVS VXLAN node not ready within {READY_TIMEOUT:?} (PMD polls every port: \
                     {polled}; remote VTEPs routed via {UNDERLAY_BRIDGE}: {routed}); \
                     ovs-vswitchd's log ends:\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let interfaces = self.spec.afxdp_interfaces();
        let attached = xdp_programs(&self.netns, &interfaces)?;
        if attached.len() != interfaces.len() {
            bail!(
                "OVS polls its ports, but XDP programs are attached only to {:?} of {interfaces:?}",
                attached.iter().map(|a| &a.interface).collect::<Vec<_>>()
            );
        }
        self.startup = self.started_at.elapsed();
        Ok(())
    }

    /// Stop it and clean up; the first failure is returned after the
    /// cleanup ran to the end.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(daemons) = self.daemons.take() else {
            return Ok(());
        };
        let ns = &self.netns;
        let mut errors = daemons.stop(ns, &[INTEGRATION_BRIDGE, UNDERLAY_BRIDGE]);
        // br-phy (and the address on it) is gone: the VTEP goes back onto
        // ul0, unless the namespace went first.
        if self.address_moved
            && ns
                .ip(&["link", "show", &self.spec.underlay_interface])
                .is_ok()
        {
            let vtep = format!("{}/{VTEP_PREFIX_LEN}", self.spec.vtep_ip);
            let present = ns
                .ip(&["-o", "addr", "show", "dev", &self.spec.underlay_interface])
                .is_ok_and(|out| out.contains(&vtep));
            if !present {
                if let Err(e) = ns.ip(&["addr", "add", &vtep, "dev", &self.spec.underlay_interface])
                {
                    errors.push(format!("cannot put {vtep} back onto ul0: {e}"));
                }
            }
        }
        errors.extend(restore_interfaces(ns, &self.before, true));
        match errors.first() {
            None => Ok(()),
            Some(_) => bail!("stopping the OVS VXLAN node: {}", errors.join("; ")),
        }
    }
}

impl Drop for OvsVxlanNode {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("ovs-vxlan: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn spec() -> OvsVxlanSpec {
        OvsVxlanSpec {
            vni: 1,
            vxlan_port: 4789,
            underlay_interface: "ul0".into(),
            underlay_mac: mac(1),
            vtep_ip: Ipv4Addr::new(192, 168, 100, 1),
            gateway: Ipv4Addr::new(10, 244, 1, 1),
            pods: vec![OvsPod {
                interface: "vclient".into(),
                host_mac: mac(0x11),
                mac: mac(0x10),
                ip: Ipv4Addr::new(10, 244, 1, 10),
                ofport: 1,
            }],
            remotes: vec![OvsRemote {
                port: "vxlan-n2".into(),
                ofport: 100,
                vtep_ip: Ipv4Addr::new(192, 168, 100, 2),
                underlay_mac: mac(2),
                vtep_mac: mac(0x22),
                pod_cidr: Ipv4Addr::new(10, 244, 2, 0),
            }],
            core: 1,
        }
    }

    #[test]
    fn flows_answer_arp_check_sources_and_route_into_the_tunnel() {
        let (underlay, integration) = spec().flows();
        assert_eq!(underlay, ["priority=0,actions=NORMAL"]);
        let has = |needle: &str| integration.iter().any(|f| f.contains(needle));
        assert!(has("in_port=1,arp,arp_op=1,arp_tpa=10.244.1.1"));
        assert!(has("set_field:02:00:00:00:00:11->arp_sha"));
        assert!(has("in_port=1,ip,nw_src=10.244.1.10,actions=resubmit(,1)"));
        assert!(has("in_port=100,ip,actions=resubmit(,1)"));
        assert!(has(
            "nw_dst=10.244.1.10,actions=mod_dl_src:02:00:00:00:00:11,mod_dl_dst:02:00:00:00:00:10,dec_ttl,output:1"
        ));
        // Inner destination: the remote VTEP MAC (flannel.1's), not its ul0.
        assert!(has(
            "nw_dst=10.244.2.0/24,actions=mod_dl_src:02:00:00:00:00:01,mod_dl_dst:02:00:00:00:00:22,dec_ttl,output:100"
        ));
        assert_eq!(integration.iter().filter(|f| f.contains("drop")).count(), 2);
    }

    #[test]
    fn bridges_hold_afxdp_ports_and_a_vxlan_port_per_remote() {
        let s = spec();
        assert_eq!(s.afxdp_interfaces(), ["ul0", "vclient"]);
        let args = s.bridge_commands().join(" ");
        assert!(args.contains("add-br br-phy -- set bridge br-phy datapath_type=netdev"));
        assert!(args.contains("other_config:hwaddr=02:00:00:00:00:01"));
        assert!(args.contains(
            "add-port br-phy ul0 -- set interface ul0 type=afxdp options:xdp-mode=native ofport_request=1"
        ));
        assert!(args.contains(
            "add-port br-int vclient -- set interface vclient type=afxdp options:xdp-mode=native ofport_request=1"
        ));
        assert!(args.contains(
            "type=vxlan options:remote_ip=192.168.100.2 options:local_ip=192.168.100.1 \
             options:key=1 options:dst_port=4789 ofport_request=100"
        ));
    }
}
