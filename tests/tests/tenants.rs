//! Tenant isolation: two tenants (VNIs 100 and 200) whose pods use the
//! same addresses on the same nodes. Each tenant's pods talk to each other,
//! on one node and across nodes; while one tenant talks, `tcpdump` in the
//! other tenant's pods with the same addresses sees no frame at all; and a
//! pod cannot reach an address that exists only in the other tenant.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test tenants -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use kxdp_testbed::{
    ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, udp_echo_server, udp_rtt,
    udp_rtt_with, EchoServer, NodeKind, NodeSpec, RttOptions, TopologySpec, Underlay,
};
use kxdp_tests::{assert_all_lost, assert_no_loss, ip_of, kxdp_binary, ping_df, Capture, Cluster};

const ICMP_COUNT: u32 = 10;
const UDP_COUNT: u64 = 50;
const TCP_COUNT: u64 = 50;
const UDP_PORT: u16 = 7000;
const TCP_PORT: u16 = 7001;

/// Blue and red pods with the same addresses on both nodes, and one pod
/// per node that exists only in red.
fn overlapping_tenants() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100), ("red", 200)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("blue-a", "blue", pod_ip(1, 10))
                .with_pod("red-a", "red", pod_ip(1, 10))
                .with_pod("blue-a2", "blue", pod_ip(1, 11))
                .with_pod("red-a2", "red", pod_ip(1, 11))
                .with_pod("red-x", "red", pod_ip(1, 20)),
        )
        .with_node(
            NodeSpec::new("n2", NodeKind::Kxdp)
                .with_pod("blue-b", "blue", pod_ip(2, 10))
                .with_pod("red-b", "red", pod_ip(2, 10))
                .with_pod("red-y", "red", pod_ip(2, 20)),
        )
}

/// The pods of `tenant` that have a twin (same address) in the other one.
fn twins(tenant: &str) -> [String; 3] {
    [
        format!("{tenant}-a"),
        format!("{tenant}-a2"),
        format!("{tenant}-b"),
    ]
}

/// ICMP, UDP and TCP between `tenant`'s pods (same node and across nodes,
/// both ways) while the other tenant's twins capture: the talking pods'
/// captures see the traffic, the twins' captures see nothing.
fn tenant_talks_alone(c: &Cluster, tenant: &str, other: &str) {
    let dir = c.tb().scratch_dir().to_path_buf();
    let start = |pod: &str| Capture::start(&c.pod(pod).netns, "eth0", "ip", &dir);
    let twin_captures: Vec<(String, Capture)> = twins(other)
        .into_iter()
        .map(|p| {
            let capture = start(&p);
            (p, capture)
        })
        .collect();
    let own_capture = start(&format!("{tenant}-b"));

    let a = format!("{tenant}-a");
    let a2 = format!("{tenant}-a2");
    let b = format!("{tenant}-b");
    let mut to_b = 0;
    for (from, to) in [(&a, &b), (&b, &a), (&a, &a2), (&a2, &a)] {
        let src = c.pod(from);
        let dst = c.pod(to);
        let what = format!("{from} -> {to}");
        let icmp = ping(&src.netns, ip_of(dst), ICMP_COUNT, Duration::from_millis(5)).unwrap();
        assert_no_loss(&icmp, &format!("{what} icmp\n{}", c.logs()));
        let udp = udp_rtt(
            &src.netns,
            ip_of(dst),
            UDP_PORT,
            UDP_COUNT,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&udp, &format!("{what} udp"));
        let tcp = tcp_rtt(
            &src.netns,
            ip_of(dst),
            TCP_PORT,
            TCP_COUNT,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&tcp, &format!("{what} tcp"));
        if from == &b || to == &b {
            to_b += u64::from(ICMP_COUNT) + UDP_COUNT + TCP_COUNT;
        }
    }

    let seen = own_capture.stop();
    eprintln!("{tenant}: {b} captured {} frames", seen.len());
    // Each exchange with b is a request and a reply on b's eth0.
    assert!(
        seen.len() as u64 >= 2 * to_b,
        "{b}'s own capture saw {} frames, expected at least {}: the capture does not work",
        seen.len(),
        2 * to_b
    );
    for (pod, capture) in twin_captures {
        let leaked = capture.stop();
        assert!(
            leaked.is_empty(),
            "{} frames of tenant {tenant} reached {pod} (tenant {other}), first: {:?}",
            leaked.len(),
            leaked.iter().take(5).collect::<Vec<_>>()
        );
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn tenants_with_overlapping_addresses_stay_apart() {
    privileged_test("tenants_with_overlapping_addresses_stay_apart");
    let c = Cluster::start("tenants", overlapping_tenants(), kxdp_binary!());
    assert_eq!(c.pod("blue-a").ip, c.pod("red-a").ip);
    assert_eq!(c.pod("blue-b").ip, c.pod("red-b").ip);
    let mut servers: Vec<(String, EchoServer, EchoServer)> = Vec::new();
    for pod in c.tb().pods() {
        servers.push((
            pod.name.clone(),
            udp_echo_server(&pod.netns, UDP_PORT).unwrap(),
            tcp_echo_server(&pod.netns, TCP_PORT).unwrap(),
        ));
    }

    tenant_talks_alone(&c, "blue", "red");
    tenant_talks_alone(&c, "red", "blue");
    let echoed = |name: &str| {
        let (_, udp, tcp) = servers.iter().find(|(n, _, _)| n == name).unwrap();
        (udp.echoed(), tcp.echoed())
    };
    for tenant in ["blue", "red"] {
        for pod in twins(tenant) {
            let (udp, tcp) = echoed(&pod);
            assert!(
                udp >= UDP_COUNT && tcp >= 1,
                "{pod} echoed {udp} UDP, {tcp} TCP"
            );
        }
    }

    // Addresses that exist only in red: blue cannot reach them, on its own
    // node (red-x, 10.244.1.20) or across nodes (red-y, 10.244.2.20).
    let dir = c.tb().scratch_dir().to_path_buf();
    let blue_a = c.pod("blue-a");
    // n1 finds no such pod in blue's table; n2 finds no local blue pod for
    // what arrives on blue's VNI.
    for (target, node, reason) in [
        ("red-x", "n1", "no_route"),
        ("red-y", "n2", "vxlan_no_local_pod"),
    ] {
        let pod = c.pod(target);
        let capture = Capture::start(&pod.netns, "eth0", "ip", &dir);
        let before = c.totals(node);
        let echoed_before = echoed(target).0;
        let what = format!("blue-a -> {} (only {target} of red has it)", pod.ip);
        let icmp = ping_df(&blue_a.netns, ip_of(pod), 56, 5);
        assert_eq!((icmp.transmitted, icmp.received), (5, 0), "{what} icmp");
        let options = RttOptions {
            count: 10,
            interval: Duration::from_millis(2),
            timeout: Duration::from_millis(100),
            ..RttOptions::default()
        };
        let udp = udp_rtt_with(
            &blue_a.netns,
            SocketAddr::new(ip_of(pod), UDP_PORT),
            &options,
        )
        .unwrap();
        assert_all_lost(&udp, &format!("{what} udp"));
        let leaked = capture.stop();
        assert!(
            leaked.is_empty(),
            "{what}: {} frames reached {target}: {:?}",
            leaked.len(),
            leaked.iter().take(5).collect::<Vec<_>>()
        );
        assert_eq!(
            echoed(target).0,
            echoed_before,
            "{target} echoed blue's UDP"
        );
        // kxdp dropped them, and said why.
        let dropped = c.totals(node).since(&before);
        eprintln!("{what}: {node} {dropped:?}");
        assert!(
            dropped.dropped(reason) >= 5 + 10,
            "{node} counted {} {reason} drops for 15 frames to a foreign address: {dropped:?}",
            dropped.dropped(reason)
        );
    }

    // A red pod still reaches red-x and red-y: the addresses are real.
    let red_a = c.pod("red-a");
    for target in ["red-x", "red-y"] {
        let icmp = ping(
            &red_a.netns,
            ip_of(c.pod(target)),
            5,
            Duration::from_millis(5),
        )
        .unwrap();
        assert_no_loss(&icmp, &format!("red-a -> {target}"));
    }
    // The same address answers from the right tenant: a UDP reply to blue-a
    // from 10.244.2.10 is counted by blue-b's server, not red-b's.
    let (blue_before, red_before) = (echoed("blue-b").0, echoed("red-b").0);
    let udp = udp_rtt(
        &blue_a.netns,
        IpAddr::V4(Ipv4Addr::new(10, 244, 2, 10)),
        UDP_PORT,
        20,
        Duration::from_millis(1),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_no_loss(&udp, "blue-a -> 10.244.2.10 udp");
    assert!(echoed("blue-b").0 >= blue_before + 20);
    assert_eq!(echoed("red-b").0, red_before, "red-b answered blue");
    drop(servers);
    c.finish();
}
