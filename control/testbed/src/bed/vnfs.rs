//! [`Testbed`] methods for what [`crate::vnf`] defines.

use super::Testbed;
use crate::error::{Result, TestbedError};
use crate::netns::{Netns, NetnsGuard};
use crate::vnf::{check_vnf_name, VnfPod, MAC_VNF, MAC_VNF_HOST, VNF_IN_IF, VNF_OUT_IF};
use kxdp_config::{InterfaceRole, InterfaceSpec, MacAddr};

impl Testbed {
    /// Add VNF pod `name` to kxdp node `node` (see the module docs), before
    /// kxdp starts there: its namespace, both veth pairs, the forwarding
    /// filters, and both node-side interfaces in the node's kxdp
    /// configuration and interface list. Removed with the testbed.
    pub fn add_vnf(&mut self, node: &str, name: &str) -> Result<VnfPod> {
        check_vnf_name(name)?;
        let (number, node_netns) = {
            let n = self.node(node)?;
            (n.number, n.netns.clone())
        };
        let config = self.node_config(node)?;
        let to_interface = format!("v{name}-i");
        let from_interface = format!("v{name}-o");
        for interface in [&to_interface, &from_interface] {
            if config.interfaces.iter().any(|i| &i.name == interface) {
                return Err(TestbedError::Spec(format!(
                    "VNF pod {name}: node {node} already has an interface {interface}"
                )));
            }
        }
        if self.vnfs.iter().any(|v| v.name == name) {
            return Err(TestbedError::Spec(format!("VNF pod {name} exists already")));
        }
        let index = u8::try_from(self.vnfs.len() * 2)
            .map_err(|_| TestbedError::Spec("too many VNF pods".into()))?;
        let mac = |kind: u8, i: u8| MacAddr([0x02, 0x00, 0x00, kind, number, i]);
        let vnf = VnfPod {
            name: name.to_string(),
            node: node.to_string(),
            netns: Netns::named(&format!("{}f-{name}", self.prefix)),
            to_mac: mac(MAC_VNF_HOST, index),
            from_mac: mac(MAC_VNF_HOST, index + 1),
            to_interface,
            from_interface,
        };
        let guard = NetnsGuard::create(vnf.netns.name())?;
        self.guards.push(guard);
        match vnf.netns.set_sysctl("net.ipv6.conf.all.disable_ipv6", "1") {
            Err(TestbedError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        let mtu = super::POD_MTU.to_string();
        for (host, host_mac, inner, inner_mac) in [
            (
                &vnf.to_interface,
                vnf.to_mac,
                VNF_IN_IF,
                mac(MAC_VNF, index),
            ),
            (
                &vnf.from_interface,
                vnf.from_mac,
                VNF_OUT_IF,
                mac(MAC_VNF, index + 1),
            ),
        ] {
            crate::netns::veth_pair(
                (host, &node_netns, &host_mac.to_string()),
                (inner, &vnf.netns, &inner_mac.to_string()),
                &mtu,
            )?;
            vnf.netns.ip(&["link", "set", inner, "up"])?;
            vnf.netns
                .exec("tc", &["qdisc", "add", "dev", inner, "clsact"])?;
            node_netns.ip(&["link", "set", host, "up"])?;
        }
        vnf.restore()?;
        let config = self.node_config_mut(node)?;
        for (name, mac) in [
            (&vnf.to_interface, vnf.to_mac),
            (&vnf.from_interface, vnf.from_mac),
        ] {
            config.interfaces.push(InterfaceSpec {
                name: name.clone(),
                role: InterfaceRole::Pod,
                mac,
                queues: 1,
                mtu: None,
            });
        }
        if let Some(n) = self.nodes.iter_mut().find(|n| n.name == node) {
            n.interfaces.push(vnf.to_interface.clone());
            n.interfaces.push(vnf.from_interface.clone());
        }
        self.vnfs.push(vnf.clone());
        Ok(vnf)
    }

    /// The VNF pod called `name`.
    pub fn vnf(&self, name: &str) -> Result<&VnfPod> {
        self.vnfs
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| TestbedError::NotFound {
                what: "VNF pod",
                name: name.to_string(),
            })
    }

    /// Every VNF pod.
    pub fn vnfs(&self) -> &[VnfPod] {
        &self.vnfs
    }
}
