//! [`Testbed`] methods for what [`crate::fabric`] defines.

use super::Testbed;
use crate::error::{Result, TestbedError};
use crate::fabric::{plan_fabric_host, FabricHost, FABRIC_HOST_IF};
use crate::netns::NetnsGuard;
use crate::topology::{FABRIC_BRIDGE, UNDERLAY_IF, UNDERLAY_MTU};
use std::net::Ipv4Addr;

impl Testbed {
    /// Attach a host `name` at `ip` (in `192.168.100.0/24`, above the
    /// nodes' addresses) to the fabric bridge of a `Switch` underlay,
    /// holding `loopback` addresses besides (e.g. `203.0.113.10`, an
    /// "internet" server). Removed with the testbed.
    pub fn add_fabric_host(
        &mut self,
        name: &str,
        ip: Ipv4Addr,
        loopback: &[Ipv4Addr],
    ) -> Result<FabricHost> {
        let Some(fabric) = self.fabric.clone() else {
            return Err(TestbedError::Spec(format!(
                "fabric host {name:?}: only a Switch underlay has a fabric bridge"
            )));
        };
        let host = plan_fabric_host(
            &self.prefix,
            name,
            ip,
            loopback,
            &self.nodes,
            &self.fabric_hosts,
        )?;
        let guard = NetnsGuard::create(host.netns.name())?;
        self.guards.push(guard);
        match host.netns.set_sysctl("net.ipv6.conf.all.disable_ipv6", "1") {
            Err(TestbedError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        crate::netns::veth_pair(
            (FABRIC_HOST_IF, &host.netns, &host.mac.to_string()),
            (
                &host.fabric_port,
                &fabric,
                &host.fabric_port_mac.to_string(),
            ),
            &UNDERLAY_MTU.to_string(),
        )?;
        fabric.ip(&[
            "link",
            "set",
            &host.fabric_port,
            "master",
            FABRIC_BRIDGE,
            "up",
        ])?;
        let ns = &host.netns;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", host.ip),
            "dev",
            FABRIC_HOST_IF,
        ])?;
        ns.ip(&["link", "set", FABRIC_HOST_IF, "up"])?;
        // Finished checksums on the wire, as from a NIC (see ul0's).
        ns.exec("ethtool", &["-K", FABRIC_HOST_IF, "tx", "off"])?;
        for extra in &host.loopback {
            ns.ip(&["addr", "add", &format!("{extra}/32"), "dev", "lo"])?;
        }
        self.fabric_hosts.push(host.clone());
        Ok(host)
    }

    /// Route `destination` (a CIDR such as `203.0.113.0/24`, or
    /// `default`) in node `node`'s namespace via fabric host `host`'s
    /// underlay address: the node reaches what that host holds the way it
    /// would reach the internet through its gateway.
    pub fn route_via_fabric_host(&self, node: &str, destination: &str, host: &str) -> Result<()> {
        let host = self.fabric_host(host)?;
        let node = self.node(node)?;
        node.netns.ip(&[
            "route",
            "add",
            destination,
            "via",
            &host.ip.to_string(),
            "dev",
            UNDERLAY_IF,
        ])?;
        Ok(())
    }

    /// The fabric host called `name`.
    pub fn fabric_host(&self, name: &str) -> Result<&FabricHost> {
        self.fabric_hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| TestbedError::NotFound {
                what: "fabric host",
                name: name.to_string(),
            })
    }

    /// Every fabric host.
    pub fn fabric_hosts(&self) -> &[FabricHost] {
        &self.fabric_hosts
    }
}
