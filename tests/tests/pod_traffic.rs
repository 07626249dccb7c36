//! ICMP, UDP and TCP between pods through kxdp: on one node (MACs
//! rewritten, no VXLAN) and across two kxdp nodes (VXLAN over the underlay
//! veth), in both directions, checked against kxdp's own counters.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test pod_traffic -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kxdp_testbed::{
    ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, tcp_transfer, udp_echo_server,
    udp_rtt, NodeKind, NodeSpec, PathKind, TopologySpec, Underlay,
};
use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, Cluster};

const ICMP_COUNT: u32 = 20;
const UDP_COUNT: u64 = 100;
const TCP_COUNT: u64 = 100;
const TRANSFER_BYTES: u64 = 2_000_000;
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Lowest acceptable goodput of a bulk TCP transfer: far below what the
/// path does when nothing stalls (hundreds of Mbit/s); below it, frames
/// were held up somewhere for a long time.
const MIN_GOODPUT_BPS: f64 = 8e6;

fn assert_goodput(what: &str, transfer: &kxdp_testbed::Transfer) {
    assert!(
        transfer.bits_per_second() >= MIN_GOODPUT_BPS,
        "{what}: {} bytes in {:?} ({:.1} Mbit/s), below {} Mbit/s",
        transfer.bytes,
        transfer.duration,
        transfer.bits_per_second() / 1e6,
        MIN_GOODPUT_BPS / 1e6
    );
}

/// Two kxdp nodes joined by one underlay veth, two pods each, one tenant.
fn two_by_two() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("a1", "blue", pod_ip(1, 10))
                .with_pod("a2", "blue", pod_ip(1, 11)),
        )
        .with_node(
            NodeSpec::new("n2", NodeKind::Kxdp)
                .with_pod("b1", "blue", pod_ip(2, 10))
                .with_pod("b2", "blue", pod_ip(2, 11)),
        )
}

/// ICMP, UDP and TCP round trips from `from` to `to` (echo servers at
/// `udp_port`/`tcp_port` in `to`), all without loss. Returns the number of
/// request frames sent (each also has a reply frame).
fn exchange(c: &Cluster, from: &str, to: &str, udp_port: u16, tcp_port: u16) -> u64 {
    let src = c.pod(from);
    let dst = c.pod(to);
    let what = format!("{from} -> {to}");
    let icmp = ping(&src.netns, ip_of(dst), ICMP_COUNT, Duration::from_millis(5)).unwrap();
    assert_no_loss(&icmp, &format!("{what} icmp\n{}", c.logs()));
    let udp = udp_rtt(
        &src.netns,
        ip_of(dst),
        udp_port,
        UDP_COUNT,
        Duration::from_millis(1),
        REPLY_TIMEOUT,
    )
    .unwrap();
    assert_no_loss(&udp, &format!("{what} udp"));
    let tcp = tcp_rtt(
        &src.netns,
        ip_of(dst),
        tcp_port,
        TCP_COUNT,
        Duration::from_millis(1),
        REPLY_TIMEOUT,
    )
    .unwrap();
    assert_no_loss(&tcp, &format!("{what} tcp"));
    eprintln!(
        "  {what}: icmp p50 {:?}, udp p50 {:?}, tcp p50 {:?}",
        icmp.p50().unwrap(),
        udp.p50().unwrap(),
        tcp.p50().unwrap()
    );
    u64::from(ICMP_COUNT) + UDP_COUNT + TCP_COUNT
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn pods_talk_on_one_node_and_across_nodes_both_ways() {
    privileged_test("pods_talk_on_one_node_and_across_nodes_both_ways");
    let c = Cluster::start("pod_traffic", two_by_two(), kxdp_binary!());
    let mut servers = Vec::new();
    for pod in ["a1", "a2", "b1", "b2"] {
        let netns = &c.pod(pod).netns;
        servers.push((
            pod,
            udp_echo_server(netns, 7000).unwrap(),
            tcp_echo_server(netns, 7001).unwrap(),
        ));
    }

    // Same node: n1 forwards between its two pods itself; nothing is
    // encapsulated and nothing reaches n2.
    let (n1_before, n2_before) = (c.totals("n1"), c.totals("n2"));
    let mut requests = 0;
    for (from, to) in [("a1", "a2"), ("a2", "a1")] {
        assert_eq!(c.tb().path_kind(from, to).unwrap(), PathKind::SameNode);
        requests += exchange(&c, from, to, 7000, 7001);
    }
    let n1 = c.totals("n1").since(&n1_before);
    let n2 = c.totals("n2").since(&n2_before);
    eprintln!("same node: n1 {n1:?}\n           n2 {n2:?}");
    // Every request and every reply is one frame in and one frame out.
    assert!(
        n1.rx >= 2 * requests,
        "n1 received {} < {}",
        n1.rx,
        2 * requests
    );
    assert!(
        n1.tx >= 2 * requests,
        "n1 sent {} < {}",
        n1.tx,
        2 * requests
    );
    assert_eq!(n1.encapsulated, 0, "same-node traffic was encapsulated");
    assert_eq!(n1.decapsulated, 0);
    assert_eq!(n2.rx, 0, "same-node traffic of n1 reached n2: {n2:?}");

    // Across nodes: every frame one way is encapsulated on its node and
    // decapsulated on the other.
    let (n1_before, n2_before) = (c.totals("n1"), c.totals("n2"));
    let mut per_direction = 0;
    for (from, to) in [("a1", "b1"), ("b1", "a1"), ("a2", "b2"), ("b2", "a2")] {
        assert_eq!(c.tb().path_kind(from, to).unwrap(), PathKind::CrossNode);
        // A request one way, its reply the other.
        per_direction += exchange(&c, from, to, 7000, 7001);
    }
    let n1 = c.totals("n1").since(&n1_before);
    let n2 = c.totals("n2").since(&n2_before);
    eprintln!("cross node: n1 {n1:?}\n            n2 {n2:?}");
    for (name, t) in [("n1", &n1), ("n2", &n2)] {
        assert!(
            t.encapsulated >= per_direction,
            "{name} encapsulated {} < {per_direction}",
            t.encapsulated
        );
        assert!(
            t.decapsulated >= per_direction,
            "{name} decapsulated {} < {per_direction}",
            t.decapsulated
        );
        assert!(t.rx >= t.encapsulated + t.decapsulated);
        assert!(t.tx >= t.encapsulated + t.decapsulated);
    }

    // Bulk TCP (full 1450-byte frames), every byte checked by the receiver:
    // on one node, and across nodes both ways.
    for (from, to) in [("a1", "a2"), ("a1", "b1"), ("b2", "a2")] {
        let n1_before = c.totals("n1");
        let transfer = tcp_transfer(
            &c.pod(from).netns,
            &c.pod(to).netns,
            ip_of(c.pod(to)),
            TRANSFER_BYTES,
        )
        .unwrap_or_else(|e| panic!("{from} -> {to} tcp transfer: {e}\n{}", c.logs()));
        assert_eq!(transfer.bytes, TRANSFER_BYTES);
        eprintln!(
            "  {from} -> {to} tcp transfer: {} bytes in {:?}",
            transfer.bytes, transfer.duration
        );
        assert_goodput(&format!("{from} -> {to} tcp transfer"), &transfer);
        // Segments carry at most MTU 1450 - 40 bytes of headers.
        let segments = TRANSFER_BYTES / 1410;
        let n1 = c.totals("n1").since(&n1_before);
        match c.tb().path_kind(from, to).unwrap() {
            PathKind::SameNode => assert!(n1.tx >= segments && n1.encapsulated == 0, "{n1:?}"),
            _ if from == "a1" => assert!(n1.encapsulated >= segments, "{n1:?}"),
            _ => assert!(n1.decapsulated >= segments, "{n1:?}"),
        }
    }
    for (pod, udp, tcp) in &servers {
        assert!(
            udp.echoed() >= UDP_COUNT,
            "{pod} echoed {} UDP",
            udp.echoed()
        );
        assert!(tcp.echoed() >= 1, "{pod} echoed no TCP");
    }
    let stats = c.stats("n1");
    assert!(!stats.ports.is_empty());
    for port in &stats.ports {
        eprintln!(
            "  n1 {}:{} AF_XDP {} XDP {}",
            port.interface, port.queue, port.bind_mode, port.xdp_mode
        );
    }
    drop(servers);
    c.finish();
}
