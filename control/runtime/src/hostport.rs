//! The host port: kxdp's veth pair into the node's own network stack.
//!
//! kxdp's side (`host.interface`, role `host`) is a port like a pod's: its
//! XDP program sends every frame to the workers. The node's side
//! (`host.peer`, `kxdp-host` by default) is set up here, in the network
//! namespace kxdp runs in (the node's):
//!
//! - the pods' gateway addresses of the host tenants, as /32 and /128, so
//!   the node answers for them (ping to the gateway, a node-local DNS
//!   cache on it) and sources its translated NodePort traffic from one;
//! - the cluster's pod CIDRs and Service CIDRs routed into the pair through
//!   a link-local next hop (169.254.1.1, fe80::1) held as a permanent
//!   neighbour with kxdp's MAC (no ARP, no neighbour discovery), with the
//!   node's own address as the preferred source: node → pod (kubelet
//!   probes, hostNetwork pods) and node → ClusterIP go through kxdp;
//! - forwarding on, reverse-path filtering off and local sources accepted
//!   on the pair, transmit checksum offload off (kxdp forwards frames to
//!   other nodes and must not carry unfinished checksums);
//! - an nftables table `inet kxdp`: pods' egress (sources in the egress
//!   tenants' pod CIDRs, destinations outside the cluster's pod and
//!   Service CIDRs and outside `host.egress.except`) masqueraded to the
//!   node's address, as Flannel's `ipMasq` does; and NodePorts: a packet to
//!   one of the node's own addresses on a Service's node port is
//!   translated to the Service's ClusterIP and port and its source to the
//!   node's pod gateway address, so kxdp balances it like any Service
//!   traffic and the endpoint's reply (to the gateway address, which every
//!   node routes to this one) comes back here to be translated back.
//!
//! Why the node's kernel translates egress and NodePorts, not kxdp: both
//! need a connection tracker that allocates source ports, times out
//! connections and translates the ICMP errors that refer to them; the
//! kernel has a complete one beside the host port, kxdp's is the load
//! balancer's (destination only). The NodePort rules only map ports to
//! ClusterIPs: which endpoint serves is kxdp's (Maglev, affinity).
//!
//! Everything is made with `ip`, `ethtool` (iproute2, ethtool) and `nft`
//! (nftables), which the image carries. Removing the pair removes its
//! addresses, routes and neighbours with it; the table is deleted. Both
//! are removed at stop and, after a crash, at the next start.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnetwork::IpNetwork;
use kxdp_config::{HostSpec, NodeConfig, Protocol};
use kxdp_dataplane::tables::cluster_cidrs;

use crate::report::Report;

/// The link-local IPv4 next hop the node routes pods and Services through.
pub const NEXT_HOP_V4: &str = "169.254.1.1";
/// The link-local IPv6 next hop.
pub const NEXT_HOP_V6: &str = "fe80::1";
/// The nftables table kxdp owns (family inet).
pub const NFT_TABLE: &str = "kxdp";

/// Setting up the host port failed.
#[derive(Debug, thiserror::Error)]
pub enum HostPortError {
    /// `host.interface` names no interface of the configuration.
    #[error("host.interface: {0:?} is not one of interfaces")]
    NotAnInterface(String),
    /// A tool (ip, ethtool, nft) could not be run.
    #[error("running {tool}")]
    Spawn {
        /// The tool and what it is.
        tool: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{command}: {stderr}")]
    Failed {
        /// The command line (for nft, the script follows `stderr`).
        command: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A sysctl could not be set.
    #[error("setting {name} = {value} (set it on the node, e.g. sysctl -w {name}={value}, if kxdp's container cannot)")]
    Sysctl {
        /// Its name, dotted.
        name: String,
        /// The value it needs.
        value: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The nftables rules were refused.
    #[error("installing the host port's egress and NodePort rules")]
    Rules(#[source] Box<HostPortError>),
}

/// The host port's node side, set up; removed on drop.
#[derive(Debug)]
pub struct HostPortGuard {
    interface: String,
    nat: String,
}

impl HostPortGuard {
    /// Remove what a previous kxdp left (after `kill -9`), then create the
    /// pair and set the node's side up. `None` when the config has no host
    /// port.
    pub fn setup(config: &NodeConfig) -> Result<Option<HostPortGuard>, HostPortError> {
        let Some(host) = &config.host else {
            return Ok(None);
        };
        let Some(itf) = config.interfaces.iter().find(|i| i.name == host.interface) else {
            return Err(HostPortError::NotAnInterface(host.interface.clone()));
        };
        remove_stale(&host.interface);
        let mtu = host.mtu_or(&config.node).to_string();
        let peer_mac = host.peer_mac_or(itf.mac).to_string();
        let kxdp_mac = itf.mac.to_string();
        ip(&[
            "link",
            "add",
            &host.interface,
            "mtu",
            &mtu,
            "address",
            &kxdp_mac,
            "type",
            "veth",
            "peer",
            "name",
            &host.peer,
            "mtu",
            &mtu,
            "address",
            &peer_mac,
        ])?;
        let guard = HostPortGuard {
            interface: host.interface.clone(),
            nat: String::new(),
        };
        guard.configure(config, host, &kxdp_mac, &mtu)?;
        let mut guard = guard;
        guard.sync(config)?;
        Ok(Some(guard))
    }

    fn configure(
        &self,
        config: &NodeConfig,
        host: &HostSpec,
        kxdp_mac: &str,
        mtu: &str,
    ) -> Result<(), HostPortError> {
        let peer = host.peer.as_str();
        // IPv6 on the node's side: no duplicate address detection, no
        // router advertisements (kxdp sends none).
        let _ = ensure_sysctl(&format!("net/ipv6/conf/{peer}/accept_dad"), "0");
        let _ = ensure_sysctl(&format!("net/ipv6/conf/{peer}/accept_ra"), "0");
        // Egress and NodePorts are forwarded by the node: required.
        ensure_sysctl("net/ipv4/ip_forward", "1")?;
        for (key, value) in [
            ("net/ipv6/conf/all/forwarding".to_string(), "1"),
            (format!("net/ipv4/conf/{peer}/rp_filter"), "0"),
            // The `kubernetes` Service's endpoint may be this node itself:
            // its packets come back with a local source.
            (format!("net/ipv4/conf/{peer}/accept_local"), "1"),
        ] {
            if let Err(e) = ensure_sysctl(&key, value) {
                tracing::warn!(error = %Report(&e), "host port");
            }
        }
        // The effective rp_filter is the larger of `all` and the device's:
        // strict (1) would drop replies the node routes asymmetrically.
        if read_sysctl("net/ipv4/conf/all/rp_filter").as_deref() == Some("1") {
            if let Err(e) = ensure_sysctl("net/ipv4/conf/all/rp_filter", "2") {
                tracing::warn!(error = %Report(&e), "host port");
            }
        }
        ethtool_tx_off(peer)?;
        // A node without IPv6 (disabled, or on this device) gets the IPv4
        // half only.
        let ipv6 =
            read_sysctl(&format!("net/ipv6/conf/{peer}/disable_ipv6")).as_deref() == Some("0");
        if !ipv6 {
            tracing::info!(
                peer,
                "IPv6 is off on the node: the host port carries IPv4 only"
            );
        }
        ip(&["link", "set", &host.interface, "up"])?;
        ip(&["link", "set", peer, "up"])?;
        let tenants = host.host_tenants(&config.tenants);
        for cidr in config
            .node
            .pod_cidrs
            .iter()
            .filter(|c| tenants.contains(&c.tenant.as_str()))
        {
            let gateway = cidr.gateway_ip();
            let address = match gateway {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            };
            if gateway.is_ipv6() && !ipv6 {
                continue;
            }
            let mut args = vec!["addr", "replace", address.as_str(), "dev", peer];
            if gateway.is_ipv6() {
                args.push("nodad");
            }
            ip(&args)?;
        }
        ip(&[
            "neigh",
            "replace",
            NEXT_HOP_V4,
            "lladdr",
            kxdp_mac,
            "dev",
            peer,
            "nud",
            "permanent",
        ])?;
        if ipv6 {
            ip(&[
                "-6",
                "neigh",
                "replace",
                NEXT_HOP_V6,
                "lladdr",
                kxdp_mac,
                "dev",
                peer,
                "nud",
                "permanent",
            ])?;
        }
        let addresses = host.node_addresses(&config.node);
        let src4 = addresses
            .iter()
            .find(|a| a.is_ipv4())
            .map(ToString::to_string);
        let src6 = addresses
            .iter()
            .find(|a| a.is_ipv6())
            .map(ToString::to_string);
        for cidr in cluster_cidrs(config) {
            if cidr.is_ipv6() && !ipv6 {
                continue;
            }
            let prefix = cidr.to_string();
            let mut args: Vec<&str> = Vec::new();
            let src = if cidr.is_ipv4() {
                args.extend(["route", "replace", &prefix, "via", NEXT_HOP_V4]);
                src4.as_deref()
            } else {
                args.extend(["-6", "route", "replace", &prefix, "via", NEXT_HOP_V6]);
                src6.as_deref()
            };
            args.extend(["dev", peer, "onlink", "mtu", mtu]);
            if let Some(src) = src {
                args.extend(["src", src]);
            }
            ip(&args)?;
        }
        Ok(())
    }

    /// Bring the translation rules in line with `config` (its Services'
    /// node ports change at run time); nothing is done when they are
    /// already right. One nftables transaction: the table is replaced whole.
    pub fn sync(&mut self, config: &NodeConfig) -> Result<(), HostPortError> {
        let Some(host) = &config.host else {
            return Ok(());
        };
        let ruleset = nat_ruleset(config, host);
        if ruleset == self.nat {
            return Ok(());
        }
        let mut script = String::new();
        if !self.nat.is_empty() || nft_table_exists() {
            let _ = writeln!(script, "delete table inet {NFT_TABLE}");
        }
        script.push_str(&ruleset);
        nft(&script).map_err(|e| HostPortError::Rules(Box::new(e)))?;
        self.nat = ruleset;
        Ok(())
    }

    /// kxdp's side of the pair.
    pub fn interface(&self) -> &str {
        &self.interface
    }
}

impl Drop for HostPortGuard {
    fn drop(&mut self) {
        remove_stale(&self.interface);
    }
}

/// Remove a host port pair and kxdp's nftables table, if they exist.
pub fn remove_stale(interface: &str) {
    if std::path::Path::new("/sys/class/net")
        .join(interface)
        .exists()
    {
        if let Err(e) = ip(&["link", "del", interface]) {
            tracing::warn!(interface, error = %e, "removing the host port");
        }
    }
    if nft_table_exists() {
        if let Err(e) = nft(&format!("delete table inet {NFT_TABLE}\n")) {
            tracing::warn!(error = %e, "removing kxdp's nftables table");
        }
    }
}

/// The nftables table for `config`: egress masquerade and NodePorts.
pub fn nat_ruleset(config: &NodeConfig, host: &HostSpec) -> String {
    let cluster = cluster_cidrs(config);
    let egress_tenants = host.egress_tenants(&config.tenants);
    let pods: Vec<IpNetwork> = config
        .node
        .pod_cidrs
        .iter()
        .filter(|c| egress_tenants.contains(&c.tenant.as_str()))
        .map(|c| c.cidr)
        .collect();
    let host_tenants = host.host_tenants(&config.tenants);
    let gateway = |v6: bool| {
        config
            .node
            .pod_cidrs
            .iter()
            .find(|c| host_tenants.first() == Some(&c.tenant.as_str()) && c.cidr.is_ipv6() == v6)
            .map(|c| c.gateway_ip())
    };
    let peer = host.peer.as_str();
    let mut out = String::new();
    let _ = writeln!(out, "table inet {NFT_TABLE} {{");
    for (family, v6) in [("4", false), ("6", true)] {
        let kind = if v6 { "ipv6_addr" } else { "ipv4_addr" };
        let pick = |nets: &[IpNetwork]| -> Vec<String> {
            nets.iter()
                .filter(|n| n.is_ipv6() == v6)
                .map(ToString::to_string)
                .collect()
        };
        for (name, nets) in [
            ("cluster", pick(&cluster)),
            ("pods", pick(&pods)),
            ("except", pick(&host.egress.except)),
        ] {
            let _ = write!(
                out,
                "  set {name}{family} {{ type {kind}; flags interval; auto-merge;"
            );
            if !nets.is_empty() {
                let _ = write!(out, " elements = {{ {} }};", nets.join(", "));
            }
            let _ = writeln!(out, " }}");
        }
    }
    // NodePorts: node address:port → ClusterIP:port, same family.
    let mut dnat = Vec::new();
    let mut seen = BTreeSet::new();
    let range = config.cluster.node_port_range;
    for service in &config.services {
        if !host_tenants.contains(&service.tenant.as_str()) {
            continue;
        }
        for port in &service.ports {
            let Some(node_port) = port.node_port else {
                continue;
            };
            if node_port < range.first || node_port > range.last {
                continue;
            }
            let proto = match port.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            if !seen.insert((service.cluster_ip.is_ipv6(), proto, node_port)) {
                continue;
            }
            let (nfproto, to) = match service.cluster_ip {
                IpAddr::V4(a) => ("ipv4", format!("ip to {a}:{}", port.port)),
                IpAddr::V6(a) => ("ipv6", format!("ip6 to [{a}]:{}", port.port)),
            };
            dnat.push(format!(
                "meta nfproto {nfproto} fib daddr type local meta l4proto {proto} th dport {node_port} dnat {to}"
            ));
        }
    }
    for (chain, hook) in [("nodeports", "prerouting"), ("nodeports_local", "output")] {
        let _ = writeln!(
            out,
            "  chain {chain} {{ type nat hook {hook} priority -100; policy accept;"
        );
        for rule in &dnat {
            let _ = writeln!(out, "    {rule}");
        }
        let _ = writeln!(out, "  }}");
    }
    let _ = writeln!(
        out,
        "  chain postrouting {{ type nat hook postrouting priority 100; policy accept;"
    );
    for (v6, ipf) in [(false, "ip"), (true, "ip6")] {
        let family = if v6 { "6" } else { "4" };
        if let Some(gateway) = gateway(v6) {
            let _ = writeln!(
                out,
                "    oifname \"{peer}\" meta nfproto ipv{family} ct status dnat snat {ipf} to {gateway}"
            );
        }
        let _ = writeln!(
            out,
            "    oifname != \"{peer}\" {ipf} saddr @pods{family} {ipf} daddr != @cluster{family} {ipf} daddr != @except{family} masquerade"
        );
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

fn ip(args: &[&str]) -> Result<(), HostPortError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| HostPortError::Spawn {
            tool: "ip (iproute2)",
            source,
        })?;
    if !output.status.success() {
        return Err(HostPortError::Failed {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn ethtool_tx_off(interface: &str) -> Result<(), HostPortError> {
    let output = Command::new("ethtool")
        .args(["-K", interface, "tx", "off"])
        .output()
        .map_err(|source| HostPortError::Spawn {
            tool: "ethtool",
            source,
        })?;
    if !output.status.success() {
        return Err(HostPortError::Failed {
            command: format!("ethtool -K {interface} tx off"),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn nft(script: &str) -> Result<(), HostPortError> {
    let spawn = |source| HostPortError::Spawn {
        tool: "nft (nftables)",
        source,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(spawn)?;
    }
    let output = child.wait_with_output().map_err(spawn)?;
    if !output.status.success() {
        return Err(HostPortError::Failed {
            command: "nft".to_string(),
            stderr: format!(
                "{}\n{script}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

fn nft_table_exists() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", NFT_TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Set a sysctl unless it already has `value`. In a container whose
/// /proc/sys is read-only, a value that is already right is enough; a
/// wrong one is an error that says what the node must set.
fn ensure_sysctl(key: &str, value: &str) -> Result<(), HostPortError> {
    if read_sysctl(key).as_deref() == Some(value) {
        return Ok(());
    }
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|source| HostPortError::Sysctl {
        name: key.replace('/', "."),
        value: value.to_string(),
        source,
    })
}

fn read_sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CONFIG: &str = r#"
node:
  name: node1
  vtep: {ip: 192.168.100.1, interface: ul0}
  pod_cidrs:
    - {tenant: default, cidr: 10.244.1.0/24}
    - {tenant: red, cidr: 10.245.1.0/24}
interfaces:
  - {name: ul0, role: underlay, mac: "02:00:00:01:01:00"}
  - {name: kxdp-h0, role: host, mac: "02:00:00:05:01:00"}
tenants: [{name: default, vni: 1}, {name: red, vni: 2}]
host:
  interface: kxdp-h0
  egress: {except: [198.51.100.0/24]}
cluster:
  pod_cidrs: [10.244.0.0/16]
  service_cidrs: [10.96.0.0/16]
services:
  - name: web
    tenant: default
    cluster_ip: 10.96.0.20
    ports: [{port: 80, target_port: 8080, node_port: 30080}, {port: 53, protocol: udp}]
  - name: other
    tenant: red
    cluster_ip: 10.96.0.30
    ports: [{port: 80, node_port: 30081}]
"#;

    #[test]
    fn the_ruleset_masquerades_egress_and_maps_node_ports_of_host_tenants_only() {
        let config = NodeConfig::parse_yaml(CONFIG).unwrap();
        config.validate().unwrap();
        let host = config.host.as_ref().unwrap();
        let rules = nat_ruleset(&config, host);
        assert!(rules.contains("set cluster4 { type ipv4_addr; flags interval; auto-merge; elements = { 10.96.0.0/16, 10.244.0.0/16 }; }"), "{rules}");
        // Only the default tenant (the host tenant) egresses.
        assert!(rules.contains("set pods4 { type ipv4_addr; flags interval; auto-merge; elements = { 10.244.1.0/24 }; }"), "{rules}");
        assert!(rules.contains("elements = { 198.51.100.0/24 }"), "{rules}");
        assert!(
            rules.contains("th dport 30080 dnat ip to 10.96.0.20:80"),
            "{rules}"
        );
        assert!(
            !rules.contains("30081"),
            "a red Service's NodePort: {rules}"
        );
        assert!(
            rules.contains(
                "oifname \"kxdp-host\" meta nfproto ipv4 ct status dnat snat ip to 10.244.1.1"
            ),
            "{rules}"
        );
        assert!(rules.contains("oifname != \"kxdp-host\" ip saddr @pods4 ip daddr != @cluster4 ip daddr != @except4 masquerade"), "{rules}");
        // No IPv6 gateway: no IPv6 NodePort source translation.
        assert!(!rules.contains("snat ip6"), "{rules}");
    }
}
