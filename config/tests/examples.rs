//! The example configurations under `config/examples/` parse and validate,
//! and the two-node testbed's files agree with each other.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kxdp_config::{MacAddr, NodeConfig};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
}

fn load(relative: &str) -> NodeConfig {
    let path = examples_dir().join(relative);
    NodeConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses_validates_and_round_trips() {
    let mut files = Vec::new();
    yaml_files(&examples_dir(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(examples_dir())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "two-node/node1.yaml",
        "two-node/node2.yaml",
        "two-tenants.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for path in &files {
        let config =
            NodeConfig::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = NodeConfig::from_yaml_str(&config.to_yaml())
            .unwrap_or_else(|e| panic!("{} after a round trip: {e}", path.display()));
        assert_eq!(again, config, "{}", path.display());
    }
}

/// The VTEP MAC a node announces: explicit, or its underlay interface's.
fn local_vtep_mac(config: &NodeConfig) -> MacAddr {
    config.node.vtep.mac.unwrap_or_else(|| {
        config
            .interfaces
            .iter()
            .find(|i| i.name == config.node.vtep.interface)
            .unwrap()
            .mac
    })
}

/// Check that `from` sees `to` the way `to` describes itself.
fn sees_as_it_is(from: &NodeConfig, to: &NodeConfig) {
    let remote = from
        .remote_nodes
        .iter()
        .find(|r| r.name == to.node.name)
        .unwrap_or_else(|| panic!("{} lists no remote node {}", from.node.name, to.node.name));
    assert_eq!(remote.vtep_ip, to.node.vtep.ip, "{}: VTEP IP", to.node.name);
    assert_eq!(
        remote.vtep_mac,
        local_vtep_mac(to),
        "{}: VTEP MAC",
        to.node.name
    );
    let seen: BTreeSet<(String, String)> = remote
        .pod_cidrs
        .iter()
        .map(|c| (c.tenant.clone(), c.cidr.to_string()))
        .collect();
    let own: BTreeSet<(String, String)> = to
        .node
        .pod_cidrs
        .iter()
        .map(|c| (c.tenant.clone(), c.cidr.to_string()))
        .collect();
    assert_eq!(
        seen, own,
        "{}'s pod CIDRs as {} sees them",
        to.node.name, from.node.name
    );
    for (theirs, mine) in remote.pod_cidrs.iter().zip(&to.node.pod_cidrs) {
        assert_eq!(
            theirs.gateway_ip(),
            mine.gateway_ip(),
            "gateway of {}",
            mine.cidr
        );
    }
    assert_eq!(from.node.vtep.udp_port, to.node.vtep.udp_port);
    assert_eq!(from.node.vtep.underlay_mtu, to.node.vtep.underlay_mtu);
}

#[test]
fn the_two_node_testbed_is_consistent() {
    let node1 = load("two-node/node1.yaml");
    let node2 = load("two-node/node2.yaml");
    assert_eq!(node1.node.name, "node1");
    assert_eq!(node2.node.name, "node2");
    assert_eq!(
        node1.tenants, node2.tenants,
        "same tenants and VNIs on both nodes"
    );
    assert!(node1
        .tenants
        .iter()
        .any(|t| t.name == "default" && t.vni == 1));
    sees_as_it_is(&node1, &node2);
    sees_as_it_is(&node2, &node1);
    assert_eq!(node1.node.pod_cidrs[0].cidr.to_string(), "10.244.1.0/24");
    assert_eq!(node2.node.pod_cidrs[0].cidr.to_string(), "10.244.2.0/24");
    // Like the testbed: the underlay is ul0, a pod P's host side is vP.
    for config in [&node1, &node2] {
        assert_eq!(config.node.vtep.interface, "ul0");
        for pod in &config.pods {
            assert_eq!(pod.interface, format!("v{}", pod.name));
        }
    }
    // No pod name or MAC is used on both nodes.
    let names =
        |c: &NodeConfig| -> BTreeSet<String> { c.pods.iter().map(|p| p.name.clone()).collect() };
    assert!(names(&node1).is_disjoint(&names(&node2)));
    let macs = |c: &NodeConfig| -> BTreeSet<MacAddr> {
        c.pods
            .iter()
            .map(|p| p.mac)
            .chain(c.interfaces.iter().map(|i| i.mac))
            .collect()
    };
    assert!(macs(&node1).is_disjoint(&macs(&node2)));
}

#[test]
fn the_two_tenant_example_reuses_addresses_across_tenants() {
    let config = load("two-tenants.yaml");
    let blue = config.pods.iter().find(|p| p.tenant == "blue").unwrap();
    let red = config.pods.iter().find(|p| p.tenant == "red").unwrap();
    assert_eq!(blue.ip, red.ip);
    let vnis: BTreeSet<u32> = config.tenants.iter().map(|t| t.vni).collect();
    assert_eq!(vnis.len(), 2);
}
