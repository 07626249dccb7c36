//! The underlay stays the node's: with kxdp attached to `ul0` on both
//! nodes, only VXLAN for the local VTEP goes to kxdp; ARP, ICMP, UDP to
//! other ports and TCP between the nodes' own addresses still reach the
//! kernel stack (the node's SSH, kubelet and API server traffic).
//!
//! Run: `CI=true cargo test -p kxdp-tests --test underlay -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use kxdp_testbed::{
    ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, udp_echo_server, udp_rtt, NodeKind,
    NodeSpec, TopologySpec, Underlay, VXLAN_PORT,
};
use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, Cluster};

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn non_vxlan_underlay_traffic_reaches_the_kernel() {
    privileged_test("non_vxlan_underlay_traffic_reaches_the_kernel");
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("a1", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)));
    let c = Cluster::start("underlay", spec, kxdp_binary!());
    let n1 = c.node("n1").clone();
    let n2 = c.node("n2").clone();
    // Flush the nodes' neighbour caches so that ARP has to cross too.
    for node in [&n1, &n2] {
        node.netns.ip(&["neigh", "flush", "dev", "ul0"]).unwrap();
    }

    // Node to node, VTEP address to VTEP address, both ways.
    let (n1_before, n2_before) = (c.totals("n1"), c.totals("n2"));
    for (from, to) in [(&n1, &n2), (&n2, &n1)] {
        let what = format!("{} -> {} ({})", from.name, to.name, to.vtep_ip);
        let icmp = ping(
            &from.netns,
            IpAddr::V4(to.vtep_ip),
            20,
            Duration::from_millis(5),
        )
        .unwrap();
        assert_no_loss(&icmp, &format!("{what} icmp\n{}", c.logs()));
        // UDP to a port other than 4789, and TCP, on the VTEP address.
        let udp_server = udp_echo_server(&to.netns, 5000).unwrap();
        let tcp_server = tcp_echo_server(&to.netns, 5001).unwrap();
        assert_ne!(udp_server.port(), VXLAN_PORT);
        let udp = udp_rtt(
            &from.netns,
            IpAddr::V4(to.vtep_ip),
            5000,
            50,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&udp, &format!("{what} udp:5000"));
        assert!(
            udp_server.echoed() >= 50,
            "{what}: the node's UDP socket got {} datagrams",
            udp_server.echoed()
        );
        let tcp = tcp_rtt(
            &from.netns,
            IpAddr::V4(to.vtep_ip),
            5001,
            50,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&tcp, &format!("{what} tcp:5001"));
        assert!(
            tcp_server.echoed() >= 1,
            "{what}: the node's TCP socket got nothing"
        );
    }
    // None of it went to kxdp: its sockets only see VXLAN.
    for (node, before) in [("n1", &n1_before), ("n2", &n2_before)] {
        let t = c.totals(node).since(before);
        eprintln!("node-to-node traffic, {node}: {t:?}");
        assert_eq!(
            t.rx, 0,
            "{node}'s kxdp received node-to-node traffic: {t:?}"
        );
    }

    // And VXLAN still goes to kxdp on the same interface.
    let n2_before = c.totals("n2");
    let pods = ping(
        &c.pod("a1").netns,
        ip_of(c.pod("b1")),
        10,
        Duration::from_millis(5),
    )
    .unwrap();
    assert_no_loss(&pods, "a1 -> b1 icmp");
    let t = c.totals("n2").since(&n2_before);
    assert!(t.decapsulated >= 10, "n2 decapsulated {}", t.decapsulated);
    c.finish();
}
