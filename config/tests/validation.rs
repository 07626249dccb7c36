//! Validation refuses a bad configuration with the path of the offending
//! field. Every test starts from one valid configuration, changes one thing,
//! and checks the exact field path and that the message names the value.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use kxdp_config::{
    ChainSpec, ConfigError, FunctionSpec, InterfaceRole, InterfaceSpec, MacAddr, Machine,
    NodeConfig, PodCidrSpec, PodNapi, PolicerScope, Protocol, RouteSpec, RouteTarget,
    MAX_BATCH_SIZE,
};
use proptest::prelude::*;

/// Two tenants whose CIDRs overlap on purpose (blue and red reuse
/// 10.244.1.0/24), dual stack for blue, two workers pinned to cores 0 and 1,
/// two remote nodes, routes of every kind, a service and a chain with an
/// external VNF.
const BASE: &str = r#"
node:
  name: node1
  vtep: { ip: 192.168.100.1, interface: ul0, underlay_mtu: 1500 }
  pod_cidrs:
    - { tenant: blue, cidr: 10.244.1.0/24 }
    - { tenant: blue, cidr: "fd00:10:244:1::/64" }
    - { tenant: red, cidr: 10.244.1.0/24, gateway: 10.244.1.254 }
interfaces:
  - { name: ul0, role: underlay, mac: "02:00:00:01:01:00", queues: 2 }
  - { name: vblue-a, role: pod, mac: "02:00:00:11:01:00", queues: 2 }
  - { name: vblue-b, role: pod, mac: "02:00:00:11:01:01", queues: 2 }
  - { name: vred-a, role: pod, mac: "02:00:00:11:01:02", queues: 2 }
  - { name: vred-b, role: pod, mac: "02:00:00:11:01:03", queues: 2 }
  - { name: vnf-in, role: pod, mac: "02:00:00:11:01:04", queues: 2 }
  - { name: vnf-out, role: pod, mac: "02:00:00:11:01:05", queues: 2 }
workers: { count: 2, cores: [0, 1], batch_size: 64 }
tenants:
  - { name: blue, vni: 100 }
  - { name: red, vni: 200 }
pods:
  - { name: blue-a, tenant: blue, ip: 10.244.1.10, ipv6: "fd00:10:244:1::10", mac: "02:00:00:10:01:00", interface: vblue-a }
  - { name: blue-b, tenant: blue, ip: 10.244.1.11, mac: "02:00:00:10:01:01", interface: vblue-b }
  - { name: red-a, tenant: red, ip: 10.244.1.10, mac: "02:00:00:10:01:02", interface: vred-a }
  - { name: red-b, tenant: red, ip: 10.244.1.11, mac: "02:00:00:10:01:03", interface: vred-b }
remote_nodes:
  - name: node2
    vtep_ip: 192.168.100.2
    vtep_mac: "02:00:00:01:02:00"
    pod_cidrs:
      - { tenant: blue, cidr: 10.244.2.0/24 }
      - { tenant: blue, cidr: "fd00:10:244:2::/64" }
      - { tenant: red, cidr: 10.244.2.0/24 }
  - name: k3
    vtep_ip: 192.168.100.3
    vtep_mac: "02:00:00:02:03:00"
    underlay_mac: "02:00:00:01:03:00"
    pod_cidrs:
      - { tenant: blue, cidr: 10.244.3.0/24 }
routes:
  - { tenant: blue, prefix: 10.250.0.0/16, via: { node: node2 } }
  - { tenant: red, prefix: 10.251.0.0/24, via: { pod: red-a } }
  - { tenant: blue, prefix: 10.99.0.0/16, via: blackhole }
services:
  - { name: web, tenant: blue, cluster_ip: 10.96.0.10, ports: [ { port: 80 } ], endpoints: [ { ip: 10.244.1.10 } ] }
chains:
  - name: through-vnf
    tenant: blue
    functions:
      - { type: external, to_interface: vnf-in, from_interface: vnf-out }
      - { type: counter }
"#;

/// The machine the tests validate for: four CPUs.
fn machine() -> Machine {
    Machine::with_cpus(4)
}

fn base() -> NodeConfig {
    NodeConfig::parse_yaml(BASE).unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn chain(yaml: &str) -> ChainSpec {
    serde_yaml::from_str(yaml).unwrap()
}

/// Apply `mutate` to the base configuration and check that validation
/// refuses it at `field`, with a message that contains every one of `mentions`.
#[track_caller]
fn refused(mutate: impl FnOnce(&mut NodeConfig), field: &str, mentions: &[&str]) {
    let mut config = base();
    mutate(&mut config);
    let err = config
        .validate_with(&machine())
        .expect_err("the mutated configuration must be refused");
    assert_eq!(err.field(), Some(field), "wrong field in {err}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{field}: ")), "{text}");
    for needle in mentions {
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
}

/// Replace `from` (which must occur) by `to` in the base YAML and parse it.
#[track_caller]
fn parse_refused(from: &str, to: &str, field: &str, mentions: &[&str]) {
    assert!(BASE.contains(from), "{from:?} is not in the base YAML");
    let yaml = BASE.replacen(from, to, 1);
    let err = NodeConfig::from_yaml_str(&yaml).expect_err("must not parse");
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    assert_eq!(err.field(), Some(field), "wrong field in {err}");
    for needle in mentions {
        assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
    }
}

// ---------------------------------------------------------------- accepted

#[test]
fn the_base_configuration_is_valid() {
    let config = base();
    config.validate_with(&machine()).unwrap();
    // And the whole file path: parse, validate, round trip.
    let yaml = config.to_yaml();
    let again = NodeConfig::parse_yaml(&yaml).unwrap();
    assert_eq!(again, config);
    again.validate_with(&machine()).unwrap();
}

#[test]
fn tenants_may_reuse_each_others_addresses() {
    let config = base();
    let blue = config
        .node
        .pod_cidrs
        .iter()
        .find(|c| c.tenant == "blue")
        .unwrap();
    let red = config
        .node
        .pod_cidrs
        .iter()
        .find(|c| c.tenant == "red")
        .unwrap();
    assert_eq!(blue.cidr, red.cidr);
    assert_eq!(config.pods[0].ip, config.pods[2].ip);
    config.validate_with(&machine()).unwrap();
}

#[test]
fn cores_are_checked_only_against_a_known_machine() {
    let mut config = base();
    config.workers.cores = vec![0, 63];
    assert!(config.validate_with(&machine()).is_err());
    config.validate_with(&Machine::unknown()).unwrap();
    config
        .validate_with(&Machine::with_online_cpus([0, 63]))
        .unwrap();
}

#[test]
fn a_local_vtep_mac_equal_to_the_underlay_mac_is_fine() {
    // The testbed and a kernel vxlan device both do this.
    let mut config = base();
    config.node.vtep.mac = Some(config.interfaces[0].mac);
    config.validate_with(&machine()).unwrap();
}

// ------------------------------------------------------------ node and VTEP

#[test]
fn refuses_an_empty_node_name() {
    refused(|c| c.node.name = String::new(), "node.name", &["name"]);
}

#[test]
fn refuses_a_vtep_that_is_not_unicast() {
    refused(
        |c| c.node.vtep.ip = "224.0.0.5".parse().unwrap(),
        "node.vtep.ip",
        &["224.0.0.5", "multicast"],
    );
    refused(
        |c| c.node.vtep.ip = "0.0.0.0".parse().unwrap(),
        "node.vtep.ip",
        &["0.0.0.0"],
    );
}

#[test]
fn refuses_a_multicast_vtep_mac() {
    refused(
        |c| c.node.vtep.mac = Some(mac("01:00:5e:00:00:01")),
        "node.vtep.mac",
        &["01:00:5e:00:00:01", "multicast"],
    );
}

#[test]
fn refuses_udp_port_zero() {
    refused(|c| c.node.vtep.udp_port = 0, "node.vtep.udp_port", &["0"]);
}

#[test]
fn refuses_an_underlay_mtu_too_small_for_vxlan() {
    // IPv6 pods need 1280 after the 50 bytes of VXLAN.
    refused(
        |c| c.node.vtep.underlay_mtu = 1329,
        "node.vtep.underlay_mtu",
        &["1329", "1330"],
    );
    let mut config = base();
    config.node.vtep.underlay_mtu = 1330;
    config.validate_with(&machine()).unwrap();
    // IPv4 only: 576 + 50.
    let v4_only = |c: &mut NodeConfig| {
        c.node.pod_cidrs.retain(|p| p.cidr.is_ipv4());
        for r in &mut c.remote_nodes {
            r.pod_cidrs.retain(|p| p.cidr.is_ipv4());
        }
        for p in &mut c.pods {
            p.ipv6 = None;
        }
    };
    refused(
        |c| {
            v4_only(c);
            c.node.vtep.underlay_mtu = 600;
        },
        "node.vtep.underlay_mtu",
        &["600", "626"],
    );
    let mut config = base();
    v4_only(&mut config);
    config.node.vtep.underlay_mtu = 626;
    config.validate_with(&machine()).unwrap();
}

// ------------------------------------------------------------------ tenants

#[test]
fn refuses_vni_zero() {
    refused(|c| c.tenants[0].vni = 0, "tenants[0].vni", &["0"]);
}

#[test]
fn refuses_a_vni_beyond_24_bits() {
    refused(
        |c| c.tenants[1].vni = 1 << 24,
        "tenants[1].vni",
        &["16777216"],
    );
    let mut config = base();
    config.tenants[1].vni = 0xFF_FFFF;
    config.validate_with(&machine()).unwrap();
}

#[test]
fn refuses_duplicate_vnis() {
    refused(
        |c| c.tenants[1].vni = 100,
        "tenants[1].vni",
        &["100", "blue", "tenants[0].vni"],
    );
}

#[test]
fn refuses_duplicate_tenant_names() {
    refused(
        |c| c.tenants[1].name = "blue".into(),
        "tenants[1].name",
        &["blue", "tenants[0]"],
    );
}

#[test]
fn refuses_an_empty_tenant_name() {
    refused(
        |c| c.tenants[0].name = " ".into(),
        "tenants[0].name",
        &["name"],
    );
}

#[test]
fn refuses_an_unknown_tenant_in_a_local_pod_cidr() {
    refused(
        |c| c.node.pod_cidrs[0].tenant = "green".into(),
        "node.pod_cidrs[0].tenant",
        &["green", "blue, red"],
    );
}

#[test]
fn refuses_an_unknown_tenant_of_a_pod() {
    refused(
        |c| c.pods[3].tenant = "green".into(),
        "pods[3].tenant",
        &["green"],
    );
}

#[test]
fn refuses_an_unknown_tenant_in_a_remote_pod_cidr() {
    refused(
        |c| c.remote_nodes[1].pod_cidrs[0].tenant = "green".into(),
        "remote_nodes[1].pod_cidrs[0].tenant",
        &["green"],
    );
}

#[test]
fn refuses_an_unknown_tenant_of_a_route() {
    refused(
        |c| c.routes[2].tenant = "green".into(),
        "routes[2].tenant",
        &["green"],
    );
}

#[test]
fn refuses_an_unknown_tenant_of_a_service_or_chain() {
    refused(
        |c| c.services[0].tenant = "green".into(),
        "services[0].tenant",
        &["green"],
    );
    refused(
        |c| c.chains[0].tenant = "green".into(),
        "chains[0].tenant",
        &["green"],
    );
}

// ---------------------------------------------------------------- pod CIDRs

#[test]
fn refuses_overlapping_local_pod_cidrs_of_one_tenant() {
    refused(
        |c| {
            c.node.pod_cidrs.push(PodCidrSpec {
                tenant: "blue".into(),
                cidr: net("10.244.1.128/25"),
                gateway: None,
            })
        },
        "node.pod_cidrs[3].cidr",
        &["10.244.1.128/25", "10.244.1.0/24", "node1", "blue"],
    );
}

#[test]
fn refuses_a_second_local_pod_cidr_of_one_tenant_and_family() {
    refused(
        |c| {
            c.node.pod_cidrs.push(PodCidrSpec {
                tenant: "blue".into(),
                cidr: net("10.245.1.0/24"),
                gateway: None,
            })
        },
        "node.pod_cidrs[3].cidr",
        &[
            "10.245.1.0/24",
            "IPv4",
            "blue",
            "node1",
            "node.pod_cidrs[0]",
        ],
    );
}

#[test]
fn refuses_a_remote_pod_cidr_overlapping_the_local_one() {
    refused(
        |c| c.remote_nodes[0].pod_cidrs[0].cidr = net("10.244.0.0/16"),
        "remote_nodes[0].pod_cidrs[0].cidr",
        &[
            "10.244.0.0/16",
            "node1",
            "10.244.1.0/24",
            "node.pod_cidrs[0].cidr",
        ],
    );
}

#[test]
fn refuses_two_remote_nodes_with_one_tenants_cidr() {
    refused(
        |c| c.remote_nodes[1].pod_cidrs[0].cidr = net("10.244.2.0/24"),
        "remote_nodes[1].pod_cidrs[0].cidr",
        &[
            "10.244.2.0/24",
            "node2",
            "remote_nodes[0].pod_cidrs[0].cidr",
        ],
    );
}

#[test]
fn refuses_overlapping_ipv6_pod_cidrs() {
    refused(
        |c| c.remote_nodes[0].pod_cidrs[1].cidr = net("fd00:10:244::/48"),
        "remote_nodes[0].pod_cidrs[1].cidr",
        &["fd00:10:244::/48", "fd00:10:244:1::/64"],
    );
}

#[test]
fn refuses_a_pod_cidr_with_host_bits() {
    refused(
        |c| c.node.pod_cidrs[0].cidr = net("10.244.1.7/24"),
        "node.pod_cidrs[0].cidr",
        &["10.244.1.7/24", "10.244.1.0/24"],
    );
}

#[test]
fn refuses_a_gateway_outside_its_cidr() {
    refused(
        |c| c.node.pod_cidrs[2].gateway = Some(ip("10.244.9.1")),
        "node.pod_cidrs[2].gateway",
        &["10.244.9.1", "10.244.1.0/24"],
    );
    refused(
        |c| c.node.pod_cidrs[2].gateway = Some(ip("10.244.1.255")),
        "node.pod_cidrs[2].gateway",
        &["10.244.1.255", "broadcast"],
    );
}

// --------------------------------------------------------------------- pods

#[test]
fn refuses_a_pod_ip_outside_its_nodes_cidr() {
    refused(
        |c| c.pods[3].ip = ip("10.9.0.7"),
        "pods[3].ip",
        &["10.9.0.7 is outside node1's pod CIDR 10.244.1.0/24"],
    );
}

#[test]
fn refuses_a_pod_ip_in_another_nodes_cidr() {
    refused(
        |c| c.pods[1].ip = ip("10.244.2.20"),
        "pods[1].ip",
        &["10.244.2.20", "10.244.1.0/24"],
    );
}

#[test]
fn refuses_a_pod_ip_of_a_family_its_tenant_has_no_cidr_for() {
    refused(
        |c| c.pods[2].ip = ip("fd00:10:244:1::20"),
        "pods[2].ip",
        &["fd00:10:244:1::20", "no IPv6 pod CIDR", "red"],
    );
}

#[test]
fn refuses_the_network_gateway_and_broadcast_addresses_as_pod_ips() {
    refused(
        |c| c.pods[0].ip = ip("10.244.1.0"),
        "pods[0].ip",
        &["10.244.1.0", "network"],
    );
    refused(
        |c| c.pods[0].ip = ip("10.244.1.1"),
        "pods[0].ip",
        &["10.244.1.1", "gateway"],
    );
    refused(
        |c| c.pods[0].ip = ip("10.244.1.255"),
        "pods[0].ip",
        &["10.244.1.255", "broadcast"],
    );
    // red's gateway is explicit: .254.
    refused(
        |c| c.pods[3].ip = ip("10.244.1.254"),
        "pods[3].ip",
        &["10.244.1.254", "gateway"],
    );
    refused(
        |c| c.pods[0].ipv6 = Some(ip("fd00:10:244:1::1")),
        "pods[0].ipv6",
        &["fd00:10:244:1::1", "gateway"],
    );
}

#[test]
fn refuses_a_pod_ipv6_outside_its_cidr() {
    refused(
        |c| c.pods[0].ipv6 = Some(ip("fd00:10:244:2::10")),
        "pods[0].ipv6",
        &["fd00:10:244:2::10", "fd00:10:244:1::/64"],
    );
}

#[test]
fn refuses_a_second_address_of_the_same_family() {
    refused(
        |c| c.pods[0].ipv6 = Some(ip("10.244.1.40")),
        "pods[0].ipv6",
        &["10.244.1.40", "same family"],
    );
}

#[test]
fn refuses_duplicate_pod_ips_within_a_tenant() {
    refused(
        |c| c.pods[1].ip = ip("10.244.1.10"),
        "pods[1].ip",
        &["10.244.1.10", "blue", "pods[0].ip"],
    );
}

#[test]
fn refuses_duplicate_pod_names() {
    refused(
        |c| c.pods[2].name = "blue-a".into(),
        "pods[2].name",
        &["blue-a", "pods[0]"],
    );
}

#[test]
fn refuses_duplicate_pod_macs() {
    refused(
        |c| c.pods[3].mac = mac("02:00:00:10:01:00"),
        "pods[3].mac",
        &["02:00:00:10:01:00", "blue-a"],
    );
}

#[test]
fn refuses_a_pod_mac_that_is_an_interfaces_mac() {
    refused(
        |c| c.pods[1].mac = mac("02:00:00:11:01:01"),
        "pods[1].mac",
        &["02:00:00:11:01:01", "vblue-b"],
    );
    refused(
        |c| c.pods[1].mac = mac("02:00:00:01:01:00"),
        "pods[1].mac",
        &["02:00:00:01:01:00", "ul0"],
    );
}

#[test]
fn refuses_a_pod_mac_that_is_the_vtep_mac() {
    refused(
        |c| c.node.vtep.mac = Some(mac("02:00:00:10:01:02")),
        "pods[2].mac",
        &["02:00:00:10:01:02", "node.vtep.mac"],
    );
}

#[test]
fn refuses_multicast_and_zero_pod_macs() {
    refused(
        |c| c.pods[0].mac = mac("33:33:00:00:00:01"),
        "pods[0].mac",
        &["33:33:00:00:00:01", "multicast"],
    );
    refused(
        |c| c.pods[0].mac = MacAddr::BROADCAST,
        "pods[0].mac",
        &["ff:ff:ff:ff:ff:ff"],
    );
    refused(
        |c| c.pods[0].mac = MacAddr([0; 6]),
        "pods[0].mac",
        &["00:00:00:00:00:00", "zero"],
    );
}

#[test]
fn refuses_a_pod_on_an_unknown_interface() {
    refused(
        |c| c.pods[1].interface = "vnope".into(),
        "pods[1].interface",
        &["vnope"],
    );
}

#[test]
fn refuses_a_pod_on_the_underlay() {
    refused(
        |c| c.pods[1].interface = "ul0".into(),
        "pods[1].interface",
        &["ul0", "underlay"],
    );
}

#[test]
fn refuses_two_pods_on_one_interface() {
    refused(
        |c| c.pods[3].interface = "vred-a".into(),
        "pods[3].interface",
        &["vred-a", "red-a"],
    );
}

#[test]
fn refuses_an_empty_pod_name() {
    refused(
        |c| c.pods[1].name = String::new(),
        "pods[1].name",
        &["name"],
    );
}

// --------------------------------------------------------------- interfaces

#[test]
fn refuses_duplicate_interface_names() {
    refused(
        |c| c.interfaces[4].name = "vblue-a".into(),
        "interfaces[4].name",
        &["vblue-a", "interfaces[1]"],
    );
}

#[test]
fn refuses_interface_names_linux_refuses() {
    refused(
        |c| c.interfaces[5].name = "a-name-of-16-chr".into(),
        "interfaces[5].name",
        &["a-name-of-16-chr", "15"],
    );
    refused(
        |c| c.interfaces[5].name = "v/1".into(),
        "interfaces[5].name",
        &["v/1"],
    );
    refused(
        |c| c.interfaces[5].name = String::new(),
        "interfaces[5].name",
        &["name"],
    );
}

#[test]
fn refuses_multicast_and_zero_interface_macs() {
    refused(
        |c| c.interfaces[2].mac = mac("03:00:00:00:00:01"),
        "interfaces[2].mac",
        &["03:00:00:00:00:01", "multicast"],
    );
    refused(
        |c| c.interfaces[0].mac = MacAddr([0; 6]),
        "interfaces[0].mac",
        &["00:00:00:00:00:00"],
    );
}

#[test]
fn refuses_a_vtep_interface_that_is_missing() {
    refused(
        |c| c.node.vtep.interface = "eth9".into(),
        "node.vtep.interface",
        &["eth9"],
    );
}

#[test]
fn refuses_a_vtep_interface_that_is_not_the_underlay() {
    refused(
        |c| c.node.vtep.interface = "vnf-in".into(),
        "node.vtep.interface",
        &["vnf-in", "underlay"],
    );
}

#[test]
fn refuses_a_second_underlay() {
    refused(
        |c| c.interfaces[6].role = InterfaceRole::Underlay,
        "interfaces[6].role",
        &["vnf-out", "ul0"],
    );
}

#[test]
fn refuses_interfaces_without_a_queue_per_worker() {
    refused(
        |c| c.interfaces[3].queues = 1,
        "interfaces[3].queues",
        &["vred-a", "1 queue", "workers.count is 2"],
    );
    refused(
        |c| c.interfaces[3].queues = 0,
        "interfaces[3].queues",
        &["vred-a", "0"],
    );
    refused(
        |c| {
            c.interfaces.push(InterfaceSpec {
                name: "vspare".into(),
                role: InterfaceRole::Pod,
                mac: mac("02:00:00:11:01:09"),
                queues: 1,
                mtu: None,
            })
        },
        "interfaces[7].queues",
        &["vspare"],
    );
}

// ------------------------------------------------------------- remote nodes

#[test]
fn refuses_duplicate_remote_node_names() {
    refused(
        |c| c.remote_nodes[1].name = "node2".into(),
        "remote_nodes[1].name",
        &["node2", "remote_nodes[0]"],
    );
}

#[test]
fn refuses_a_remote_node_named_like_this_node() {
    refused(
        |c| c.remote_nodes[0].name = "node1".into(),
        "remote_nodes[0].name",
        &["node1", "node.name"],
    );
}

#[test]
fn refuses_duplicate_remote_vteps() {
    refused(
        |c| c.remote_nodes[1].vtep_ip = "192.168.100.2".parse().unwrap(),
        "remote_nodes[1].vtep_ip",
        &["192.168.100.2", "node2"],
    );
}

#[test]
fn refuses_a_remote_vtep_equal_to_the_local_one() {
    refused(
        |c| c.remote_nodes[0].vtep_ip = "192.168.100.1".parse().unwrap(),
        "remote_nodes[0].vtep_ip",
        &["192.168.100.1", "node.vtep.ip"],
    );
}

#[test]
fn refuses_a_remote_vtep_that_is_not_unicast() {
    refused(
        |c| c.remote_nodes[0].vtep_ip = "255.255.255.255".parse().unwrap(),
        "remote_nodes[0].vtep_ip",
        &["255.255.255.255", "broadcast"],
    );
}

#[test]
fn refuses_multicast_remote_macs() {
    refused(
        |c| c.remote_nodes[0].vtep_mac = mac("01:00:00:00:00:02"),
        "remote_nodes[0].vtep_mac",
        &["01:00:00:00:00:02", "multicast"],
    );
    refused(
        |c| c.remote_nodes[1].underlay_mac = Some(MacAddr::BROADCAST),
        "remote_nodes[1].underlay_mac",
        &["ff:ff:ff:ff:ff:ff"],
    );
}

// ------------------------------------------------------------------ workers

#[test]
fn refuses_zero_workers() {
    refused(|c| c.workers.count = 0, "workers.count", &["0"]);
}

#[test]
fn refuses_a_zero_batch_size() {
    refused(|c| c.workers.batch_size = 0, "workers.batch_size", &["0"]);
}

#[test]
fn refuses_a_batch_larger_than_a_ring() {
    refused(
        |c| c.workers.batch_size = MAX_BATCH_SIZE + 1,
        "workers.batch_size",
        &["1025", "1024"],
    );
    let mut config = base();
    config.workers.batch_size = MAX_BATCH_SIZE;
    config.validate_with(&machine()).unwrap();
}

#[test]
fn refuses_a_core_that_does_not_exist() {
    refused(
        |c| c.workers.cores = vec![0, 1, 4],
        "workers.cores[2]",
        &["core 4", "0-3"],
    );
    let mut config = base();
    config.workers.cores = vec![2];
    let err = config
        .validate_with(&Machine::with_online_cpus([0, 1, 3]))
        .unwrap_err();
    assert_eq!(err.field(), Some("workers.cores[0]"));
    assert!(err.to_string().contains("0-1,3"), "{err}");
}

#[test]
fn refuses_duplicate_cores() {
    refused(
        |c| c.workers.cores = vec![1, 0, 1],
        "workers.cores[2]",
        &["core 1", "workers.cores[0]"],
    );
}

#[test]
fn pod_napi_is_kernel_unless_set_and_parses_kebab_case() {
    assert_eq!(base().workers.pod_napi, PodNapi::Kernel);
    let yaml = BASE.replacen(
        "batch_size: 64 }",
        "batch_size: 64, pod_napi: worker-core }",
        1,
    );
    let config = NodeConfig::parse_yaml(&yaml).unwrap();
    assert_eq!(config.workers.pod_napi, PodNapi::WorkerCore);
    config.validate_with(&machine()).unwrap();
    let yaml = BASE.replacen("batch_size: 64 }", "batch_size: 64, pod_napi: kernel }", 1);
    let config = NodeConfig::parse_yaml(&yaml).unwrap();
    assert_eq!(config.workers.pod_napi, PodNapi::Kernel);
    // Written back as it is read; the default is left out, so a kxdp that
    // predates the setting reads a config written with it at its default.
    assert!(!base().to_yaml().contains("pod_napi"));
    let mut config = base();
    config.workers.pod_napi = PodNapi::WorkerCore;
    assert!(config.to_yaml().contains("pod_napi: worker-core"));
    parse_refused(
        "batch_size: 64 }",
        "batch_size: 64, pod_napi: worker_core }",
        "workers.pod_napi",
        &["worker_core", "worker-core"],
    );
}

#[test]
fn refuses_worker_core_pod_napi_without_cores() {
    refused(
        |c| {
            c.workers.pod_napi = PodNapi::WorkerCore;
            c.workers.cores.clear();
        },
        "workers.pod_napi",
        &["worker-core", "workers.cores"],
    );
    // Without cores, the kernel's placement is fine.
    let mut config = base();
    config.workers.cores.clear();
    config.validate_with(&machine()).unwrap();
}

// ------------------------------------------------------------------- routes

#[test]
fn refuses_a_route_via_an_unknown_node() {
    refused(
        |c| c.routes[0].via = RouteTarget::Node("node9".into()),
        "routes[0].via",
        &["node9"],
    );
}

#[test]
fn refuses_a_route_via_a_node_without_the_tenant() {
    refused(
        |c| {
            c.routes.push(RouteSpec {
                tenant: "red".into(),
                prefix: net("10.252.0.0/16"),
                via: RouteTarget::Node("k3".into()),
            })
        },
        "routes[3].via",
        &["k3", "red"],
    );
}

#[test]
fn refuses_a_route_via_an_unknown_pod() {
    refused(
        |c| c.routes[1].via = RouteTarget::Pod("red-z".into()),
        "routes[1].via",
        &["red-z"],
    );
}

#[test]
fn refuses_a_route_into_another_tenants_pod() {
    refused(
        |c| c.routes[1].via = RouteTarget::Pod("blue-a".into()),
        "routes[1].via",
        &["blue-a", "blue", "red"],
    );
}

#[test]
fn refuses_a_duplicate_route() {
    refused(
        |c| c.routes[2].prefix = net("10.250.0.0/16"),
        "routes[2].prefix",
        &["10.250.0.0/16", "routes[0]"],
    );
    // The same prefix in another tenant is another table.
    let mut config = base();
    config.routes[1].prefix = net("10.250.0.0/16");
    config.validate_with(&machine()).unwrap();
}

#[test]
fn refuses_a_route_prefix_with_host_bits() {
    refused(
        |c| c.routes[0].prefix = net("10.250.1.0/16"),
        "routes[0].prefix",
        &["10.250.1.0/16", "10.250.0.0/16"],
    );
}

// ------------------------------------------------------------------- chains

#[test]
fn refuses_a_chain_through_an_unknown_interface() {
    refused(
        |c| {
            c.chains[0].functions[0] = FunctionSpec::External {
                to_interface: "vnf-in".into(),
                from_interface: "vnf-gone".into(),
                failure: Default::default(),
                timeout_ms: 200,
            }
        },
        "chains[0].functions[0].from_interface",
        &["vnf-gone"],
    );
    refused(
        |c| {
            c.chains[0].functions[1] = FunctionSpec::Mirror {
                interface: "tap9".into(),
            }
        },
        "chains[0].functions[1].interface",
        &["tap9"],
    );
}

/// Moved from the chain compiler's tests (`vnf-chains/tests/chains.rs`,
/// `bad_chains_are_refused`): the compiler no longer refuses these, the
/// validator does, naming the field.
#[test]
fn bad_chains_are_refused() {
    // Duplicate name.
    refused(
        |c| c.chains.push(c.chains[0].clone()),
        "chains[1].name",
        &["duplicate chain name", "through-vnf", "chains[0]"],
    );
    // vnf-out returns twice.
    refused(
        |c| {
            c.chains.push(chain(
                "name: x\ntenant: blue\nfunctions: [{type: external, to_interface: vblue-a, from_interface: vnf-out}]\n",
            ))
        },
        "chains[1].functions[0]",
        &[
            "\"vnf-out\"",
            "already used by another external hop",
            "chains[0].functions[0]",
        ],
    );
    // Unknown tenant.
    refused(
        |c| c.chains[0].tenant = "green".into(),
        "chains[0].tenant",
        &["unknown tenant", "green"],
    );
    // Unknown interface.
    refused(
        |c| {
            c.chains[0].functions[1] = FunctionSpec::Mirror {
                interface: "nope".into(),
            }
        },
        "chains[0].functions[1].interface",
        &["nope"],
    );
}

#[test]
fn refuses_an_external_hop_whose_interfaces_are_one() {
    refused(
        |c| {
            c.chains[0].functions[0] = FunctionSpec::External {
                to_interface: "vnf-out".into(),
                from_interface: "vnf-out".into(),
                failure: Default::default(),
                timeout_ms: 200,
            }
        },
        "chains[0].functions[0]",
        &["\"vnf-out\"", "already used by this external hop"],
    );
}

#[test]
fn a_symmetric_chain_takes_replies_back_on_its_to_interface() {
    // Not symmetric: vnf-in only sends into the VNF, so another hop may
    // take frames back on it.
    let second = "name: x\ntenant: blue\nfunctions: [{type: external, to_interface: vblue-a, from_interface: vnf-in}]\n";
    let mut config = base();
    config.chains.push(chain(second));
    config.validate_with(&machine()).unwrap();
    // Symmetric: replies come back on vnf-in too.
    refused(
        |c| {
            c.chains[0].symmetric = true;
            c.chains.push(chain(second));
        },
        "chains[1].functions[0]",
        &["\"vnf-in\"", "already used by another external hop"],
    );
}

#[test]
fn refuses_a_chain_named_like_kxdps_implicit_chains() {
    refused(
        |c| c.chains[0].name = "kxdp:services:blue:0".into(),
        "chains[0].name",
        &["kxdp:services:blue:0", "kxdp's own"],
    );
}

/// Moved from the chain compiler's tests (`vnf-chains/tests/chains.rs`):
/// a second function keeping per-flow state in one chain is refused.
#[test]
fn one_load_balancer_and_one_per_flow_policer_per_chain() {
    let lb = FunctionSpec::LoadBalancer { services: vec![] };
    refused(
        |c| {
            c.chains[0].functions = vec![lb.clone(), FunctionSpec::Counter, lb.clone()];
        },
        "chains[0].functions[2]",
        &["only one load_balancer", "functions[0]"],
    );
    let policer = |rate_pps, per| FunctionSpec::Policer {
        rate_pps,
        burst: 1,
        per,
    };
    refused(
        |c| {
            c.chains[0].functions = vec![
                policer(1, PolicerScope::Flow),
                policer(2, PolicerScope::Flow),
            ];
        },
        "chains[0].functions[1]",
        &["only one per-flow policer"],
    );
    // Class policers are not per flow: as many as wanted.
    let mut config = base();
    config.chains[0].functions = vec![
        policer(1, PolicerScope::Class),
        policer(2, PolicerScope::Flow),
    ];
    config.validate_with(&machine()).unwrap();
}

/// Moved from the chain compiler's tests (`vnf-chains/tests/load_balancer.rs`,
/// `a_load_balancer_balances_only_the_services_it_names`): unknown names
/// are refused.
#[test]
fn a_load_balancer_names_services_of_its_tenant() {
    let lb = |name: &str| FunctionSpec::LoadBalancer {
        services: vec![name.into()],
    };
    let mut config = base();
    config.chains[0].functions.push(lb("default/web"));
    config.validate_with(&machine()).unwrap();
    refused(
        |c| c.chains[0].functions.push(lb("default/nope")),
        "chains[0].functions[2]",
        &["unknown service", "default/nope"],
    );
    // default/web is blue's: a chain of red cannot balance it.
    refused(
        |c| {
            c.chains.push(chain(
                "name: red-lb\ntenant: red\nfunctions: [{type: load_balancer, services: [default/web]}]\n",
            ))
        },
        "chains[1].functions[0]",
        &["unknown service", "default/web", "red"],
    );
}

// ----------------------------------------------------------------- services

/// Moved from the chain compiler (`ChainError::EndpointFamily`).
#[test]
fn refuses_an_endpoint_of_another_family_than_the_cluster_ip() {
    refused(
        |c| {
            let mut endpoint = c.services[0].endpoints[0].clone();
            endpoint.ip = ip("fd00:10:244:1::10");
            c.services[0].endpoints.push(endpoint);
        },
        "services[0].endpoints",
        &["fd00:10:244:1::10", "address family", "10.96.0.10"],
    );
}

/// Moved from the chain compiler (`ChainError::DuplicateServicePort`).
#[test]
fn refuses_a_service_port_twice_in_a_tenant() {
    let second = |c: &mut NodeConfig| {
        let mut other = c.services[0].clone();
        other.name = "web2".into();
        c.services.push(other);
    };
    refused(
        second,
        "services[1].ports",
        &["10.96.0.10 port 80", "default/web", "services[0].ports[0]"],
    );
    refused(
        |c| {
            let port = c.services[0].ports[0].clone();
            c.services[0].ports.push(port);
        },
        "services[0].ports",
        &["10.96.0.10 port 80", "this service"],
    );
    // Another protocol, or another tenant, is another service port.
    let mut config = base();
    second(&mut config);
    config.services[1].ports[0].protocol = Protocol::Udp;
    config.validate_with(&machine()).unwrap();
    let mut config = base();
    second(&mut config);
    config.services[1].tenant = "red".into();
    config.services[1].endpoints.clear();
    config.validate_with(&machine()).unwrap();
}

// ------------------------------------------------------- malformed at parse

#[test]
fn a_malformed_pod_ip_names_its_field() {
    parse_refused(
        "ip: 10.244.1.11, mac: \"02:00:00:10:01:01\"",
        "ip: 10.244.1.300, mac: \"02:00:00:10:01:01\"",
        "pods[1].ip",
        &["pods[1].ip: invalid IP address syntax"],
    );
}

#[test]
fn a_malformed_mac_names_its_field() {
    parse_refused(
        "mac: \"02:00:00:10:01:03\"",
        "mac: \"02:00:00:10:01\"",
        "pods[3].mac",
        &["02:00:00:10:01"],
    );
}

#[test]
fn a_malformed_cidr_names_its_field() {
    parse_refused(
        "cidr: 10.244.3.0/24",
        "cidr: 10.244.3.0/33",
        "remote_nodes[1].pod_cidrs[0].cidr",
        &[],
    );
}

#[test]
fn a_malformed_vtep_names_its_field() {
    parse_refused(
        "ip: 192.168.100.1,",
        "ip: 192.168.100,",
        "node.vtep.ip",
        &["invalid"],
    );
}

#[test]
fn a_wrongly_typed_value_names_its_field() {
    parse_refused(
        "batch_size: 64",
        "batch_size: -1",
        "workers.batch_size",
        &["-1"],
    );
    parse_refused(
        "{ name: blue, vni: 100 }",
        "{ name: blue, vni: 100000000000 }",
        "tenants[0].vni",
        &["100000000000"],
    );
}

#[test]
fn an_unknown_field_names_where_it_is() {
    parse_refused(
        "  - name: k3\n",
        "  - name: k3\n    colour: green\n",
        "remote_nodes[1].colour",
        &["colour"],
    );
}

#[test]
fn a_yaml_syntax_error_is_a_parse_error() {
    for yaml in ["\tnode: 1", "{", "["] {
        let err = NodeConfig::from_yaml_str(yaml).unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{yaml:?}: {err:?}");
        assert_eq!(err.field(), None);
    }
    // Where the parser was inside a field when it failed, that field is named.
    let err = NodeConfig::from_yaml_str("node: \"unterminated").unwrap_err();
    assert_eq!(err.field(), Some("node"), "{err}");
}

#[test]
fn from_yaml_str_validates() {
    let yaml = BASE.replacen("vni: 100", "vni: 0", 1);
    let err = NodeConfig::from_yaml_str(&yaml).unwrap_err();
    assert_eq!(err.field(), Some("tenants[0].vni"));
}

// ------------------------------------------------------ random mutations

/// One change to the base configuration, drawn at random.
#[derive(Clone, Debug)]
enum Mutation {
    Vni(usize, u32),
    TenantName(usize, String),
    PodIp(usize, IpAddr),
    PodIpv6(usize, Option<IpAddr>),
    PodMac(usize, [u8; 6]),
    PodName(usize, String),
    PodTenant(usize, String),
    PodInterface(usize, String),
    LocalCidr(usize, IpAddr, u8),
    RemoteCidr(usize, usize, IpAddr, u8),
    Gateway(usize, Option<IpAddr>),
    InterfaceName(usize, String),
    InterfaceMac(usize, [u8; 6]),
    InterfaceQueues(usize, u16),
    Workers(u16, u16, Vec<usize>),
    VtepPort(u16),
    VtepMtu(u16),
    RemoteVtep(usize, [u8; 4]),
    RouteVia(usize, u8, String),
    RoutePrefix(usize, IpAddr, u8),
    RemoveTenant(usize),
    RemoveInterface(usize),
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("blue".to_string()),
        Just("red".to_string()),
        Just("blue-a".to_string()),
        Just("node2".to_string()),
        Just("vred-a".to_string()),
        Just("ul0".to_string()),
        "[a-z0-9./: -]{0,20}",
    ]
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        (0u8..=255).prop_map(|h| IpAddr::from([10, 244, 1, h])),
        (0u8..=3, 0u8..=255).prop_map(|(n, h)| IpAddr::from([10, 244, n, h])),
        any::<u16>().prop_map(|h| ip(&format!("fd00:10:244:1::{h:x}"))),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn mac_bytes() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        any::<[u8; 6]>(),
        (0u8..8).prop_map(|i| [2, 0, 0, 0x10, 1, i]),
        (0u8..8).prop_map(|i| [2, 0, 0, 0x11, 1, i]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = || 0usize..8;
    prop_oneof![
        (i(), any::<u32>()).prop_map(|(i, v)| Mutation::Vni(i, v)),
        (i(), name()).prop_map(|(i, n)| Mutation::TenantName(i, n)),
        (i(), address()).prop_map(|(i, a)| Mutation::PodIp(i, a)),
        (i(), proptest::option::of(address())).prop_map(|(i, a)| Mutation::PodIpv6(i, a)),
        (i(), mac_bytes()).prop_map(|(i, m)| Mutation::PodMac(i, m)),
        (i(), name()).prop_map(|(i, n)| Mutation::PodName(i, n)),
        (i(), name()).prop_map(|(i, n)| Mutation::PodTenant(i, n)),
        (i(), name()).prop_map(|(i, n)| Mutation::PodInterface(i, n)),
        (i(), address(), 0u8..=130).prop_map(|(i, a, p)| Mutation::LocalCidr(i, a, p)),
        (i(), i(), address(), 0u8..=130).prop_map(|(r, i, a, p)| Mutation::RemoteCidr(r, i, a, p)),
        (i(), proptest::option::of(address())).prop_map(|(i, a)| Mutation::Gateway(i, a)),
        (i(), name()).prop_map(|(i, n)| Mutation::InterfaceName(i, n)),
        (i(), mac_bytes()).prop_map(|(i, m)| Mutation::InterfaceMac(i, m)),
        (i(), 0u16..4).prop_map(|(i, q)| Mutation::InterfaceQueues(i, q)),
        (
            0u16..4,
            prop_oneof![
                Just(0u16),
                Just(1),
                Just(64),
                Just(1024),
                Just(1025),
                any::<u16>()
            ],
            proptest::collection::vec(0usize..6, 0..4)
        )
            .prop_map(|(c, b, cores)| Mutation::Workers(c, b, cores)),
        any::<u16>().prop_map(Mutation::VtepPort),
        any::<u16>().prop_map(Mutation::VtepMtu),
        (
            i(),
            prop_oneof![any::<[u8; 4]>(), (0u8..5).prop_map(|n| [192, 168, 100, n])]
        )
            .prop_map(|(i, v)| Mutation::RemoteVtep(i, v)),
        (i(), 0u8..3, name()).prop_map(|(i, k, n)| Mutation::RouteVia(i, k, n)),
        (i(), address(), 0u8..=130).prop_map(|(i, a, p)| Mutation::RoutePrefix(i, a, p)),
        i().prop_map(Mutation::RemoveTenant),
        i().prop_map(Mutation::RemoveInterface),
    ]
}

/// A prefix from an address and a length, when the length fits the family.
fn prefix(a: IpAddr, len: u8) -> Option<IpNetwork> {
    IpNetwork::new(a, len).ok()
}

fn apply(config: &mut NodeConfig, mutation: &Mutation) {
    use Mutation as M;
    match mutation.clone() {
        M::Vni(i, v) => {
            if let Some(t) = config.tenants.get_mut(i) {
                t.vni = v;
            }
        }
        M::TenantName(i, n) => {
            if let Some(t) = config.tenants.get_mut(i) {
                t.name = n;
            }
        }
        M::PodIp(i, a) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.ip = a;
            }
        }
        M::PodIpv6(i, a) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.ipv6 = a;
            }
        }
        M::PodMac(i, m) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.mac = MacAddr(m);
            }
        }
        M::PodName(i, n) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.name = n;
            }
        }
        M::PodTenant(i, n) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.tenant = n;
            }
        }
        M::PodInterface(i, n) => {
            if let Some(p) = config.pods.get_mut(i) {
                p.interface = n;
            }
        }
        M::LocalCidr(i, a, len) => {
            if let (Some(c), Some(net)) = (config.node.pod_cidrs.get_mut(i), prefix(a, len)) {
                c.cidr = net;
            }
        }
        M::RemoteCidr(r, i, a, len) => {
            let cidr = config
                .remote_nodes
                .get_mut(r)
                .and_then(|n| n.pod_cidrs.get_mut(i));
            if let (Some(c), Some(net)) = (cidr, prefix(a, len)) {
                c.cidr = net;
            }
        }
        M::Gateway(i, a) => {
            if let Some(c) = config.node.pod_cidrs.get_mut(i) {
                c.gateway = a;
            }
        }
        M::InterfaceName(i, n) => {
            if let Some(x) = config.interfaces.get_mut(i) {
                x.name = n;
            }
        }
        M::InterfaceMac(i, m) => {
            if let Some(x) = config.interfaces.get_mut(i) {
                x.mac = MacAddr(m);
            }
        }
        M::InterfaceQueues(i, q) => {
            if let Some(x) = config.interfaces.get_mut(i) {
                x.queues = q;
            }
        }
        M::Workers(count, batch, cores) => {
            config.workers.count = count;
            config.workers.batch_size = batch;
            config.workers.cores = cores;
        }
        M::VtepPort(p) => config.node.vtep.udp_port = p,
        M::VtepMtu(m) => config.node.vtep.underlay_mtu = m,
        M::RemoteVtep(i, v) => {
            if let Some(n) = config.remote_nodes.get_mut(i) {
                n.vtep_ip = v.into();
            }
        }
        M::RouteVia(i, kind, n) => {
            if let Some(r) = config.routes.get_mut(i) {
                r.via = match kind {
                    0 => RouteTarget::Node(n),
                    1 => RouteTarget::Pod(n),
                    _ => RouteTarget::Blackhole,
                };
            }
        }
        M::RoutePrefix(i, a, len) => {
            if let (Some(r), Some(net)) = (config.routes.get_mut(i), prefix(a, len)) {
                r.prefix = net;
            }
        }
        M::RemoveTenant(i) => {
            if i < config.tenants.len() {
                config.tenants.remove(i);
            }
        }
        M::RemoveInterface(i) => {
            if i < config.interfaces.len() {
                config.interfaces.remove(i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any single change is accepted or refused, never a panic; a refusal
    /// names a field, and the YAML form gets the same verdict.
    #[test]
    fn single_mutations_never_panic(m in mutation()) {
        let mut config = base();
        apply(&mut config, &m);
        let verdict = config.validate_with(&machine());
        if let Err(err) = &verdict {
            let field = err.field().expect("a validation error names its field");
            prop_assert!(!field.is_empty());
            prop_assert!(err.to_string().starts_with(&format!("{field}: ")), "{}", err);
        }
        let again = NodeConfig::parse_yaml(&config.to_yaml()).unwrap();
        prop_assert_eq!(&again, &config);
        let again_verdict = again.validate_with(&machine());
        prop_assert_eq!(
            verdict.as_ref().map_err(ToString::to_string),
            again_verdict.as_ref().map_err(ToString::to_string)
        );
    }

    /// Pod addresses drawn from the whole space: accepted exactly when inside
    /// the tenant's CIDR of this node and not one of its reserved addresses.
    #[test]
    fn a_pod_ip_is_accepted_exactly_inside_its_cidr(host in prop_oneof![
        any::<[u8; 4]>(),
        any::<u8>().prop_map(|h| [10, 244, 1, h]),
        any::<u8>().prop_map(|h| [10, 244, 2, h]),
    ]) {
        let mut config = base();
        let addr = IpAddr::from(host);
        config.pods[1].ip = addr; // blue-b
        let verdict = config.validate_with(&machine());
        let inside = host[..3] == [10, 244, 1] && !matches!(host[3], 0 | 1 | 10 | 255);
        prop_assert_eq!(verdict.is_ok(), inside, "{} {:?}", addr, verdict);
        if let Err(err) = verdict {
            prop_assert_eq!(err.field(), Some("pods[1].ip"));
        }
    }

    /// The overlap sweep agrees with comparing every pair: remote nodes with
    /// random blue CIDRs around this node's 10.244.1.0/24 are refused
    /// exactly when two of blue's IPv4 CIDRs overlap.
    #[test]
    fn overlaps_are_found_exactly(cidrs in proptest::collection::vec((0u8..4, any::<u8>(), 16u8..=26), 0..6)) {
        let mut config = base();
        config.routes.clear();
        config.remote_nodes.clear();
        let mut blue: Vec<IpNetwork> = vec![net("10.244.1.0/24")];
        for (n, (third, fourth, len)) in cidrs.into_iter().enumerate() {
            let raw = ipnetwork::Ipv4Network::new([10, 244, third, fourth].into(), len).unwrap();
            let cidr = IpNetwork::V4(ipnetwork::Ipv4Network::new(raw.network(), len).unwrap());
            blue.push(cidr);
            let number = u8::try_from(n).unwrap() + 10;
            config.remote_nodes.push(kxdp_config::RemoteNodeSpec {
                name: format!("n{number}"),
                vtep_ip: [192, 168, 100, number].into(),
                vtep_mac: MacAddr([2, 0, 0, 1, number, 0]),
                underlay_mac: None,
                pod_cidrs: vec![PodCidrSpec { tenant: "blue".into(), cidr, gateway: None }],
                node_ips: Vec::new(),
            });
        }
        let overlap = blue.iter().enumerate().any(|(i, a)| {
            blue[i + 1..].iter().any(|b| a.contains(b.ip()) || b.contains(a.ip()))
        });
        let verdict = config.validate_with(&machine());
        prop_assert_eq!(verdict.is_err(), overlap, "{:?} {:?}", blue, verdict);
        if let Err(err) = verdict {
            let field = err.field().unwrap_or_default();
            prop_assert!(field.ends_with(".cidr"), "{}", err);
            prop_assert!(field.starts_with("remote_nodes["), "{}", err);
        }
    }
}

// ------------------------------------------------- host port and cluster

/// The base configuration with a host port for tenant blue.
fn with_host(config: &mut NodeConfig) {
    config.interfaces.push(InterfaceSpec {
        name: "kxdp-h0".into(),
        role: InterfaceRole::Host,
        mac: mac("02:00:00:05:01:00"),
        queues: 2,
        mtu: None,
    });
    config.host = Some(
        serde_yaml::from_str("interface: kxdp-h0\ntenants: [blue]\nnode_ips: [192.168.100.1]\n")
            .unwrap(),
    );
    config.cluster.pod_cidrs = vec![net("10.244.0.0/16")];
    config.cluster.service_cidrs = vec![net("10.96.0.0/16")];
}

#[test]
fn a_host_port_and_cluster_plan_are_valid_and_round_trip() {
    let mut config = base();
    with_host(&mut config);
    config.validate_with(&machine()).unwrap();
    let again = NodeConfig::parse_yaml(&config.to_yaml()).unwrap();
    assert_eq!(again, config);
}

#[test]
fn refuses_a_host_port_interface_that_is_missing_or_not_role_host() {
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().interface = "nope".into();
        },
        "host.interface",
        &["nope", "not one of interfaces"],
    );
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().interface = "vnf-out".into();
        },
        "host.interface",
        &["vnf-out", "role host"],
    );
}

#[test]
fn refuses_an_interface_of_role_host_without_the_host_section() {
    refused(
        |c| {
            with_host(c);
            c.host = None;
        },
        "interfaces[7].role",
        &["host.interface"],
    );
}

#[test]
fn refuses_a_pod_on_the_host_port() {
    refused(
        |c| {
            with_host(c);
            c.pods[1].interface = "kxdp-h0".into();
        },
        "pods[1].interface",
        &["host port"],
    );
}

#[test]
fn refuses_a_host_peer_named_like_an_interface() {
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().peer = "ul0".into();
        },
        "host.peer",
        &["ul0"],
    );
}

#[test]
fn refuses_a_node_ip_inside_a_pod_cidr() {
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().node_ips = vec![ip("10.244.1.50")];
        },
        "host.node_ips[0]",
        &["10.244.1.50", "pod CIDR"],
    );
}

#[test]
fn refuses_host_tenants_whose_pod_cidrs_overlap() {
    // blue and red both use 10.244.1.0/24: the node cannot tell them apart.
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().tenants = vec!["blue".into(), "red".into()];
        },
        "host.tenants",
        &["blue", "red", "overlap"],
    );
}

#[test]
fn refuses_an_unknown_host_tenant_and_egress_for_a_tenant_off_the_host() {
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().tenants = vec!["green".into()];
        },
        "host.tenants[0]",
        &["green"],
    );
    refused(
        |c| {
            with_host(c);
            c.host.as_mut().unwrap().egress.tenants = Some(vec!["red".into()]);
        },
        "host.egress.tenants[0]",
        &["red", "host.tenants"],
    );
}

#[test]
fn refuses_a_service_cidr_overlapping_the_pod_cidrs() {
    refused(
        |c| {
            with_host(c);
            c.cluster.service_cidrs = vec![net("10.244.128.0/17")];
        },
        "cluster.service_cidrs[0]",
        &["10.244.128.0/17", "10.244.0.0/16"],
    );
}

#[test]
fn refuses_a_node_port_outside_the_range() {
    refused(
        |c| {
            with_host(c);
            c.services[0].ports[0].node_port = Some(8080);
        },
        "services[0].ports[0].node_port",
        &["8080", "30000-32767"],
    );
    refused(
        |c| {
            c.cluster.node_port_range.first = 40000;
        },
        "cluster.node_port_range",
        &["40000-32767"],
    );
}
