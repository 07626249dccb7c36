//! Privileged test of Open vSwitch as a VXLAN node (`kxdp_bench::ovs_vxlan`,
//! the `ovs-vxlan` row of `kxdp-bench nut`): node 1 a kxdp-kind node served
//! by OVS's userspace datapath (afxdp ports, VXLAN tunnel port), node 2 a
//! Flannel kernel VXLAN node. Pods on both must reach each other (ping each
//! way, a TCP transfer each way), and after the stop no process, XDP
//! program, OVS device or directory may remain, with the VTEP address back
//! on `ul0`.
//!
//! Listed as ignored where Open vSwitch is not installed (`cfg(kxdp_ovs)`,
//! see build.rs): the benchmark needs it, not the build.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use kxdp_bench::external::{process_alive, xdp_programs};
use kxdp_bench::ovs_vxlan::{start_ovs_vxlan, OvsVxlanSpec, INTEGRATION_BRIDGE, UNDERLAY_BRIDGE};
use kxdp_testbed::{
    pod_ip, privileged_test, tcp_transfer, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay,
    UNDERLAY_IF,
};

#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_ovs)),
    ignore = "needs root and Open vSwitch (scripts/setup-bench)"
)]
fn ovs_vxlan_node_talks_to_a_flannel_node_and_cleans_up() {
    privileged_test("ovs_vxlan_node_talks_to_a_flannel_node_and_cleans_up");
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 1)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("oa", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::KernelVxlan).with_pod(
            "ob",
            "blue",
            pod_ip(2, 10),
        ));
    let testbed = Testbed::build(spec).unwrap();
    let prefix = testbed.prefix().to_string();
    let node1 = testbed.node("n1").unwrap().clone();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ovs_spec = OvsVxlanSpec::for_node(&testbed, "n1", 1 % cores).unwrap();
    assert_eq!(ovs_spec.remotes.len(), 1);
    assert_eq!(
        ovs_spec.remotes[0].vtep_mac,
        testbed.node("n2").unwrap().vtep_mac
    );
    let ovs = start_ovs_vxlan(&node1.netns, &ovs_spec).unwrap();
    let pids = ovs.pids();
    let run_dir = ovs.run_dir().to_path_buf();
    eprintln!("started in {:?}, pids {pids:?}", ovs.startup_time());
    assert!(pids.iter().all(|p| process_alive(*p)));

    let (a, b) = (testbed.pod("oa").unwrap(), testbed.pod("ob").unwrap());
    for (from, to) in [(a, b), (b, a)] {
        let rtt = kxdp_testbed::ping(&from.netns, IpAddr::V4(to.ip), 3, Duration::from_millis(20))
            .unwrap();
        assert_eq!(
            rtt.received, rtt.sent,
            "{} -> {}: {rtt:?}",
            from.name, to.name
        );
    }
    for (from, to) in [(a, b), (b, a)] {
        let t = tcp_transfer(&from.netns, &to.netns, IpAddr::V4(to.ip), 4 << 20).unwrap();
        eprintln!(
            "tcp {} -> {}: {:.2} Gbit/s",
            from.name,
            to.name,
            t.bits_per_second() / 1e9
        );
    }
    eprintln!("{}", ovs.pmd_stats().unwrap());

    ovs.stop().unwrap();
    for pid in &pids {
        assert!(!process_alive(*pid), "pid {pid} still runs");
    }
    assert_ovs_left_nothing(&node1, &ovs_spec, &run_dir);
    drop(testbed);
    assert_eq!(Testbed::leftovers(&prefix).unwrap(), Vec::<String>::new());
}

/// Kill OVS's processes with SIGKILL (as a crash would), then stop: the
/// stop reports the crash and still removes what they left (XDP programs,
/// OVS's taps, the directory) and puts the VTEP back on `ul0`.
#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_ovs)),
    ignore = "needs root and Open vSwitch (scripts/setup-bench)"
)]
fn a_killed_ovs_vxlan_node_leaves_nothing_behind() {
    privileged_test("a_killed_ovs_vxlan_node_leaves_nothing_behind");
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 1)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("ka", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::KernelVxlan).with_pod(
            "kb",
            "blue",
            pod_ip(2, 10),
        ));
    let testbed = Testbed::build(spec).unwrap();
    let prefix = testbed.prefix().to_string();
    let node1 = testbed.node("n1").unwrap().clone();
    let ovs_spec = OvsVxlanSpec::for_node(&testbed, "n1", 0).unwrap();
    let ovs = start_ovs_vxlan(&node1.netns, &ovs_spec).unwrap();
    let pids = ovs.pids();
    let run_dir = ovs.run_dir().to_path_buf();
    for pid in &pids {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| process_alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let error = ovs.stop().expect_err("a killed OVS cannot stop cleanly");
    assert!(error.to_string().contains("had exited"), "{error:#}");
    assert_ovs_left_nothing(&node1, &ovs_spec, &run_dir);
    drop(testbed);
    assert_eq!(Testbed::leftovers(&prefix).unwrap(), Vec::<String>::new());
}

/// After OVS stopped (cleanly or not): no run directory, XDP program,
/// bridge or tap left on node1, and its VTEP address back on `ul0`.
fn assert_ovs_left_nothing(
    node1: &kxdp_testbed::Node,
    ovs_spec: &OvsVxlanSpec,
    run_dir: &std::path::Path,
) {
    assert!(!run_dir.exists(), "{} is still there", run_dir.display());
    assert_eq!(
        xdp_programs(&node1.netns, &ovs_spec.afxdp_interfaces()).unwrap(),
        vec![]
    );
    let links = node1.netns.ip(&["-o", "link", "show"]).unwrap();
    for device in [INTEGRATION_BRIDGE, UNDERLAY_BRIDGE, "ovs-netdev"] {
        assert!(!links.contains(device), "{device} left: {links}");
    }
    let addresses = node1
        .netns
        .ip(&["-o", "addr", "show", "dev", UNDERLAY_IF])
        .unwrap();
    assert!(
        addresses.contains(&format!("{}/24", node1.vtep_ip)),
        "the VTEP is not back on ul0: {addresses}"
    );
}
