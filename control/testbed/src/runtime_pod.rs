//! Pods made while kxdp runs, wired the way `kxdp-cni` wires one and
//! registered the way its ADD and DEL reach kxdp: a veth with one queue
//! per worker, its peer in the pod's namespace as `eth0` with a /32 and the
//! gateway on-link, then one `Apply` (an `interfaces` and a `pods` upsert);
//! removal is one `Apply` of their deletes, then the veth and the namespace
//! go. The tests of pods at run time and `kxdp-bench pods` use it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use kxdp_config::{InterfaceRole, InterfaceSpec, MacAddr, PodSpec};

use super::{Netns, NetnsGuard, Result, Testbed, TestbedError, POD_IF};
use kxdp_control::api::{BlockingClient, ChangeSet, KeySet, ObjectSet};
use kxdp_node::report::Report;

/// The pod interfaces' MTU (the testbed's VXLAN underlay is 1500).
const MTU: &str = "1450";

/// A pod made at run time on a kxdp node.
#[derive(Debug)]
pub struct RuntimePod {
    /// Its name in kxdp (`default/rp<i>`).
    pub name: String,
    /// The host side of its veth, in the node's namespace (`kr<i>`).
    pub host_if: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The host side's MAC.
    pub host_mac: MacAddr,
    /// `eth0`'s MAC.
    pub mac: MacAddr,
    /// Queues of its veth (one per worker of the node).
    pub queues: u16,
    /// Its namespace (removed on drop).
    pub netns: NetnsGuard,
    /// The node's namespace.
    node: Netns,
    index: u32,
    /// The host side was deleted by [`RuntimePod::remove`].
    removed: bool,
}

/// A locally administered MAC for run-time pod `i` (`kind` 1: host side,
/// 2: the pod's `eth0`).
fn runtime_mac(kind: u8, i: u32) -> MacAddr {
    MacAddr([0x02, kind, 0, 0, (i >> 8) as u8, i as u8])
}

impl RuntimePod {
    /// Wire pod `i` (`kr<i>` on the host, namespace `<prefix>rp<i>`) with
    /// address `ip` on kxdp node `node`, without telling kxdp. Returns once
    /// the pod's `eth0` can send.
    pub fn wire(testbed: &Testbed, node: &str, i: u32, ip: Ipv4Addr) -> Result<RuntimePod> {
        let node_ns = testbed.node(node)?.netns.clone();
        let gateway = testbed.node(node)?.gateway.to_string();
        let queues = testbed.node_config(node)?.workers.count.max(1);
        let ns_name = format!("{}rp{i}", testbed.prefix());
        let netns = NetnsGuard::create(&ns_name)?;
        // IPv4 only, as the testbed's pods: IPv6 would add router
        // solicitations, MLD and DAD to every pod's first frames and counters.
        for key in [
            "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6",
        ] {
            netns.set_sysctl(key, "1")?;
        }
        let pod = RuntimePod {
            name: format!("default/rp{i}"),
            host_if: format!("kr{i}"),
            ip,
            host_mac: runtime_mac(1, i),
            mac: runtime_mac(2, i),
            queues,
            netns,
            node: node_ns,
            index: i,
            removed: false,
        };
        let q = queues.to_string();
        let (host_mac, mac) = (pod.host_mac.to_string(), pod.mac.to_string());
        pod.node.ip(&[
            "link",
            "add",
            &pod.host_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "address",
            &host_mac,
            "mtu",
            MTU,
            "type",
            "veth",
            "peer",
            "name",
            POD_IF,
            "netns",
            &ns_name,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "address",
            &mac,
            "mtu",
            MTU,
        ])?;
        let ns = &pod.netns;
        ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", POD_IF])?;
        ns.ip(&["link", "set", POD_IF, "up"])?;
        ns.ip(&["route", "add", &gateway, "dev", POD_IF, "scope", "link"])?;
        ns.ip(&[
            "route", "add", "default", "via", &gateway, "dev", POD_IF, "onlink",
        ])?;
        // Checksums finished in the pod, as kxdp-cni does (AF_XDP copy
        // mode hands CHECKSUM_PARTIAL frames over unfinished).
        ns.exec("ethtool", &["-K", POD_IF, "tx", "off"])?;
        crate::bed::default_qdisc(ns, POD_IF)?;
        pod.node
            .exec("ethtool", &["-K", &pod.host_if, "tx", "off"])?;
        pod.node.ip(&["link", "set", &pod.host_if, "up"])?;
        // The kernel's link watch gives the pod's eth0 its queueing
        // discipline when the carrier comes up, up to a second later (until
        // then its packets are dropped): a runtime starts the container
        // after ADD, by which time it has; here, wait for it, so that what
        // is measured from ADD is kxdp's.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let link = ns.ip(&["-o", "link", "show", POD_IF])?;
            if link.contains("state UP") && !link.contains("qdisc noop") {
                return Ok(pod);
            }
            if Instant::now() > deadline {
                return Err(TestbedError::Timeout(format!(
                    "{ns_name}: eth0 not up 3 s after its veth: {link}"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `Apply` a CNI ADD makes: the interface and the pod, in `tenant`.
    pub fn register(&self, api: &mut BlockingClient, tenant: &str) -> Result<()> {
        let change = ChangeSet::upsert(ObjectSet {
            interfaces: vec![InterfaceSpec {
                name: self.host_if.clone(),
                role: InterfaceRole::Pod,
                mac: self.host_mac,
                queues: self.queues,
                mtu: Some(1450),
            }],
            pods: vec![PodSpec {
                name: self.name.clone(),
                tenant: tenant.into(),
                ip: IpAddr::V4(self.ip),
                ipv6: None,
                mac: self.mac,
                interface: self.host_if.clone(),
                labels: Default::default(),
                namespace: "default".into(),
                container_id: Some(format!("{:064x}", self.index)),
            }],
            ..ObjectSet::default()
        });
        api.apply(&change)
            .map(drop)
            .map_err(|e| TestbedError::Api(format!("ADD of {}: {}", self.name, Report(&e))))
    }

    /// The `Apply` a CNI DEL makes, then the veth and the namespace go.
    pub fn remove(mut self, api: &mut BlockingClient) -> Result<()> {
        api.apply(&ChangeSet::delete(KeySet {
            pods: vec![self.name.clone()],
            interfaces: vec![self.host_if.clone()],
            ..KeySet::default()
        }))
        .map_err(|e| TestbedError::Api(format!("DEL of {}: {}", self.name, Report(&e))))?;
        self.node.ip(&["link", "del", &self.host_if])?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for RuntimePod {
    fn drop(&mut self) {
        // The veth goes with its peer's namespace (dropped after this);
        // deleting the host side here too makes that immediate.
        if !self.removed {
            let _ = self.node.exec_output("ip", &["link", "del", &self.host_if]);
        }
    }
}
