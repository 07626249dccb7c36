//! Path MTU: pods have MTU 1450 on a 1500-byte underlay, because VXLAN adds
//! 50 bytes (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8). A 1450-byte packet
//! crosses nodes; a pod whose interface was raised to 1500 sends packets
//! that would leave as 1501–1550-byte underlay packets: kxdp drops each one
//! and counts it as `exceeds_mtu`, answers "fragmentation needed, MTU
//! 1450" (so the pod's kernel learns the path MTU and stops sending them),
//! and none reaches the other node.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test mtu -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kxdp_testbed::{
    pod_ip, privileged_test, NodeKind, NodeSpec, TopologySpec, Underlay, POD_MTU, UNDERLAY_MTU,
    VXLAN_OVERHEAD,
};
use kxdp_tests::{ip_of, kxdp_binary, ping_df, Capture, Cluster};

/// ICMP echo payload that makes an IP packet of `ip_len` bytes.
fn payload_for(ip_len: u16) -> u16 {
    ip_len - 20 - 8
}

const COUNT: u32 = 10;

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn frames_over_the_path_mtu_are_dropped_and_counted() {
    privileged_test("frames_over_the_path_mtu_are_dropped_and_counted");
    assert_eq!(POD_MTU, 1450);
    assert_eq!(POD_MTU + VXLAN_OVERHEAD, UNDERLAY_MTU);
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("big", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)));
    let mut c = Cluster::build("mtu", spec, kxdp_binary!());
    // A misconfigured pod: MTU 1500 on both ends of its veth (the host side
    // must take the frames too), as if it ignored the CNI's MTU.
    let big = c.pod("big").clone();
    big.netns
        .ip(&["link", "set", "dev", "eth0", "mtu", "1500"])
        .unwrap();
    c.node("n1")
        .netns
        .ip(&["link", "set", "dev", &big.host_interface, "mtu", "1500"])
        .unwrap();
    c.start_kxdp("n1");
    c.start_kxdp("n2");
    let b1 = c.pod("b1").clone();

    // At the path MTU: 1450 bytes inside, exactly 1500 on the underlay.
    let at_mtu = ping_df(&big.netns, ip_of(&b1), payload_for(POD_MTU), COUNT);
    assert_eq!(
        (at_mtu.transmitted, at_mtu.received),
        (u64::from(COUNT), u64::from(COUNT)),
        "1450-byte packets must cross\n{}",
        c.logs()
    );
    let back = ping_df(&b1.netns, ip_of(&big), payload_for(POD_MTU), COUNT);
    assert_eq!(back.received, u64::from(COUNT), "1450-byte packets back");

    // One byte over, and a full 1500-byte packet: dropped on n1, counted,
    // never seen on n2 or in b1.
    let dir = c.tb().scratch_dir().to_path_buf();
    for ip_len in [POD_MTU + 1, 1500] {
        // Forget the path MTU learned from the last round's error.
        big.netns.ip(&["route", "flush", "cache"]).unwrap();
        let capture = Capture::start(&b1.netns, "eth0", "icmp", &dir);
        let (n1_before, n2_before) = (c.totals("n1"), c.totals("n2"));
        let over = ping_df(&big.netns, ip_of(&b1), payload_for(ip_len), COUNT);
        assert_eq!(
            (over.transmitted, over.received),
            (u64::from(COUNT), 0),
            "{ip_len}-byte packets must not cross"
        );
        let seen = capture.stop();
        assert!(
            seen.is_empty(),
            "{ip_len}-byte packets reached b1: {seen:?}"
        );
        let n1 = c.totals("n1").since(&n1_before);
        let n2 = c.totals("n2").since(&n2_before);
        eprintln!("{ip_len} bytes: n1 {n1:?}\n           n2 {n2:?}");
        // The first is dropped and answered with fragmentation needed; the
        // pod then knows the path MTU and refuses the rest itself (ping
        // -M do: "message too long"). Every one that reached n1 is counted.
        assert!(n1.dropped("exceeds_mtu") >= 1, "{n1:?}");
        assert_eq!(
            n1.dropped("exceeds_mtu"),
            n1.rx,
            "n1 must count every oversized frame as exceeds_mtu: {n1:?}"
        );
        let route = big
            .netns
            .ip(&["route", "get", &ip_of(&b1).to_string()])
            .unwrap();
        assert!(
            route.contains("mtu 1450"),
            "the pod learned the path MTU: {route}"
        );
        assert_eq!(n1.encapsulated, 0, "an oversized frame was encapsulated");
        assert_eq!(n2.decapsulated, 0, "an oversized frame reached n2");
    }

    // The path still works afterwards.
    let again = ping_df(&big.netns, ip_of(&b1), payload_for(POD_MTU), COUNT);
    assert_eq!(again.received, u64::from(COUNT));
    c.finish();
}
