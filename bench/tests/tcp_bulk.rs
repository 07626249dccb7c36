//! A bulk TCP transfer between pods on two kxdp nodes completes, verified
//! byte for byte, with both node dataplanes in the modes the benchmark uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::PathBuf;

use kxdp_config::{PollMode, WorkerSpec};
use kxdp_control::stats;
use kxdp_testbed::{
    pod_ip, privileged_test, tcp_transfer, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay,
};

fn kxdp_binary() -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/kxdp
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("kxdp")
}

fn run(mode1: PollMode, mode2: PollMode) {
    let workers = |mode: PollMode, core: usize| WorkerSpec {
        count: 1,
        cores: vec![core],
        poll_mode: mode,
        ..WorkerSpec::default()
    };
    let mut n1 = NodeSpec::new("node1", NodeKind::Kxdp).with_pod("tx", "blue", pod_ip(1, 10));
    let mut n2 = NodeSpec::new("node2", NodeKind::Kxdp).with_pod("rx", "blue", pod_ip(2, 10));
    n1.workers = workers(mode1, 1);
    n2.workers = workers(mode2, 0);
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(n1)
        .with_node(n2);
    let tb = Testbed::build(spec).unwrap();
    let kxdp = kxdp_binary();
    assert!(
        kxdp.exists(),
        "build the kxdp binary first: {}",
        kxdp.display()
    );
    let p1 = tb.start_kxdp("node1", &kxdp, &[]).unwrap();
    let p2 = tb.start_kxdp("node2", &kxdp, &[]).unwrap();
    let (tx, rx) = (tb.pod("tx").unwrap(), tb.pod("rx").unwrap());
    let result = tcp_transfer(&tx.netns, &rx.netns, IpAddr::V4(rx.ip), 64 << 20);
    for p in [&p1, &p2] {
        let socket = kxdp_control::api::api_socket_path(
            &kxdp_config::NodeConfig::from_file(p.config_path()).unwrap(),
        );
        let s = stats::fetch(&socket).expect("stats of a running kxdp");
        eprintln!("{}:\n{}", p.node(), stats::print(&s));
        // The kernel's side of every socket is read too (XDP_STATISTICS):
        // drops kxdp's own counters cannot see.
        assert!(!s.ports.is_empty());
        for port in &s.ports {
            assert!(port.kernel.is_some(), "no XDP_STATISTICS for {port:?}");
        }
    }
    let transfer = result.expect("64 MiB over TCP through kxdp");
    eprintln!(
        "{mode1:?}/{mode2:?}: {:.2} Gbit/s",
        transfer.bits_per_second() / 1e9
    );
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn tcp_bulk_crosses_kxdp_nodes() {
    privileged_test("tcp_bulk_crosses_kxdp_nodes");
    run(PollMode::Adaptive, PollMode::Adaptive);
    run(PollMode::Busy, PollMode::Adaptive);
}
