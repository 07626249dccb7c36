//! Hosts on the `Switch` underlay besides the nodes: namespaces attached
//! to the fabric bridge `br0` the way machines outside the cluster share
//! the nodes' network — an external client of NodePorts, or an "internet"
//! host that pods reach through their node's egress.
//!
//! A fabric host `<name>` is a namespace `<prefix>x-<name>` whose `eth0`
//! (`02:00:00:06:00:HH`, HH the last octet of its address) holds an
//! address of the underlay's `192.168.100.0/24`, joined by a veth to the
//! bridge port `h<name>` (`02:00:00:07:00:HH`) in the fabric namespace.
//! It may also hold addresses outside the underlay on its `lo` (/32: the
//! kernel answers for them on any interface), which nodes reach through a
//! route via the host's underlay address ([`Testbed::route_via_fabric_host`]),
//! as a node reaches the internet through its gateway.
//!
//! Planning ([`plan_fabric_host`]) is pure; [`Testbed::add_fabric_host`]
//! carries it out. Everything lives in namespaces under the testbed's
//! prefix and goes with them.

use std::net::Ipv4Addr;

use kxdp_config::MacAddr;

use super::error::{Result, TestbedError};
use super::netns::Netns;
use super::topology::Node;

/// The interface inside a fabric host.
pub const FABRIC_HOST_IF: &str = "eth0";
/// Longest fabric host name: its bridge port `h<name>` must fit IFNAMSIZ-1.
pub const MAX_FABRIC_HOST_NAME: usize = 14;

/// MAC kinds (the `KK` of `02:00:00:KK:NN:II`, see the topology module).
pub(crate) const MAC_FABRIC_HOST: u8 = 0x06;
pub(crate) const MAC_FABRIC_HOST_PORT: u8 = 0x07;

/// A host on the fabric bridge, as built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricHost {
    /// Its name.
    pub name: String,
    /// Its network namespace.
    pub netns: Netns,
    /// Its address on the underlay (`192.168.100.x/24` on `eth0`).
    pub ip: Ipv4Addr,
    /// The MAC of its `eth0`.
    pub mac: MacAddr,
    /// Its bridge port in the fabric namespace (`h<name>`).
    pub fabric_port: String,
    /// The MAC of its bridge port.
    pub fabric_port_mac: MacAddr,
    /// Addresses it also holds, on `lo` (/32).
    pub loopback: Vec<Ipv4Addr>,
}

impl AsRef<Netns> for FabricHost {
    fn as_ref(&self) -> &Netns {
        &self.netns
    }
}

/// Decide the names and MACs of fabric host `name` at `ip` (with
/// `loopback` addresses on its `lo`), refusing what would clash with the
/// nodes or the hosts already there. Pure.
pub(crate) fn plan_fabric_host(
    prefix: &str,
    name: &str,
    ip: Ipv4Addr,
    loopback: &[Ipv4Addr],
    nodes: &[Node],
    existing: &[FabricHost],
) -> Result<FabricHost> {
    let refuse = |why: String| Err(TestbedError::Spec(format!("fabric host {name:?}: {why}")));
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_alnum = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_chars || !starts_alnum || name.len() > MAX_FABRIC_HOST_NAME {
        return refuse(format!(
            "use 1 to {MAX_FABRIC_HOST_NAME} characters of [a-z0-9-], starting with a letter or digit"
        ));
    }
    let [a, b, c, host] = ip.octets();
    if [a, b, c] != [192, 168, 100] || host == 0 || host == 255 {
        return refuse(format!(
            "{ip} is not a host address of the underlay 192.168.100.0/24"
        ));
    }
    if let Some(node) = nodes.iter().find(|n| n.vtep_ip == ip) {
        return refuse(format!("{ip} is node {}'s address", node.name));
    }
    for other in existing {
        if other.name == name {
            return refuse("exists already".into());
        }
        if other.ip == ip || other.loopback.contains(&ip) {
            return refuse(format!("{ip} is already fabric host {}'s", other.name));
        }
    }
    for extra in loopback {
        if extra.octets()[..3] == [192, 168, 100] {
            return refuse(format!(
                "loopback address {extra} is inside the underlay; give it as the host's address"
            ));
        }
        if let Some(other) = existing
            .iter()
            .find(|o| o.loopback.contains(extra) || o.ip == *extra)
        {
            return refuse(format!("{extra} is already fabric host {}'s", other.name));
        }
    }
    Ok(FabricHost {
        name: name.to_string(),
        netns: Netns::named(&format!("{prefix}x-{name}")),
        ip,
        mac: MacAddr([0x02, 0x00, 0x00, MAC_FABRIC_HOST, 0, host]),
        fabric_port: format!("h{name}"),
        fabric_port_mac: MacAddr([0x02, 0x00, 0x00, MAC_FABRIC_HOST_PORT, 0, host]),
        loopback: loopback.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;
    use crate::topology::{plan, NodeKind, NodeSpec, TopologySpec, Underlay};

    fn nodes() -> Vec<Node> {
        let spec = TopologySpec::new(Underlay::Switch, &[("blue", 100)])
            .with_node(NodeSpec::new("n1", NodeKind::Kxdp))
            .with_node(NodeSpec::new("n2", NodeKind::Kxdp));
        plan(&spec, "kx1-0-", Path::new("/tmp/x")).unwrap().nodes
    }

    #[test]
    fn plans_names_and_macs_from_the_address() {
        let internet = Ipv4Addr::new(203, 0, 113, 10);
        let host = plan_fabric_host(
            "kx1-0-",
            "internet",
            Ipv4Addr::new(192, 168, 100, 200),
            &[internet],
            &nodes(),
            &[],
        )
        .unwrap();
        assert_eq!(host.netns.name(), "kx1-0-x-internet");
        assert_eq!(host.fabric_port, "hinternet");
        assert_eq!(host.mac.to_string(), "02:00:00:06:00:c8");
        assert_eq!(host.fabric_port_mac.to_string(), "02:00:00:07:00:c8");
        assert_eq!(host.loopback, [internet]);
    }

    #[test]
    fn refuses_clashes() {
        let nodes = nodes();
        let client = plan_fabric_host(
            "kx1-0-",
            "client",
            Ipv4Addr::new(192, 168, 100, 50),
            &[Ipv4Addr::new(198, 51, 100, 1)],
            &nodes,
            &[],
        )
        .unwrap();
        let existing = [client];
        let cases: [(&str, &str, [u8; 4], Vec<Ipv4Addr>); 8] = [
            ("1 to 14", "Client", [192, 168, 100, 60], vec![]),
            (
                "1 to 14",
                "a-much-too-long-name",
                [192, 168, 100, 60],
                vec![],
            ),
            ("not a host address", "x", [10, 0, 0, 1], vec![]),
            ("not a host address", "x", [192, 168, 100, 255], vec![]),
            ("node n2's address", "x", [192, 168, 100, 2], vec![]),
            ("exists already", "client", [192, 168, 100, 60], vec![]),
            (
                "already fabric host client's",
                "x",
                [192, 168, 100, 50],
                vec![],
            ),
            (
                "already fabric host client's",
                "x",
                [192, 168, 100, 60],
                vec![Ipv4Addr::new(198, 51, 100, 1)],
            ),
        ];
        for (expected, name, ip, loopback) in cases {
            let err = plan_fabric_host("kx1-0-", name, ip.into(), &loopback, &nodes, &existing)
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
        let err = plan_fabric_host(
            "kx1-0-",
            "x",
            Ipv4Addr::new(192, 168, 100, 60),
            &[Ipv4Addr::new(192, 168, 100, 61)],
            &nodes,
            &existing,
        )
        .expect_err("an underlay address on lo");
        assert!(err.to_string().contains("inside the underlay"), "{err}");
    }
}
