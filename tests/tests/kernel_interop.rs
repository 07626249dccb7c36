//! Interoperability with a node that uses the Linux kernel's vxlan device
//! the way Flannel's vxlan backend does (`flannel.<vni>`, a `cni0` bridge,
//! static routes, neighbours and fdb entries): pods on two kxdp nodes and
//! pods on the kernel node reach each other over plain RFC 7348 VXLAN, in
//! both directions, with ICMP, UDP and TCP.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test kernel_interop -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kxdp_testbed::{
    flannel_device, ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, tcp_transfer,
    udp_echo_server, udp_rtt, NodeKind, NodeSpec, PathKind, TopologySpec, Underlay,
};
use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, link_packets, Cluster};

const ICMP_COUNT: u32 = 20;
const UDP_COUNT: u64 = 100;
const TCP_COUNT: u64 = 100;
const TRANSFER_BYTES: u64 = 1_000_000;
const VNI: u32 = 100;
/// Lowest acceptable goodput of a bulk TCP transfer (see its use).
const MIN_GOODPUT_BPS: f64 = 8e6;

/// Two kxdp nodes and a Flannel-style kernel vxlan node on one switch.
fn with_kernel_node() -> TopologySpec {
    TopologySpec::new(Underlay::Switch, &[("blue", VNI)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("a1", "blue", pod_ip(1, 10))
                .with_pod("a2", "blue", pod_ip(1, 11)),
        )
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)))
        .with_node(
            NodeSpec::new("k3", NodeKind::KernelVxlan)
                .with_pod("k1", "blue", pod_ip(3, 10))
                .with_pod("k2", "blue", pod_ip(3, 11)),
        )
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn kxdp_pods_and_kernel_vxlan_pods_talk_both_ways() {
    privileged_test("kxdp_pods_and_kernel_vxlan_pods_talk_both_ways");
    let c = Cluster::start("kernel_interop", with_kernel_node(), kxdp_binary!());
    let mut servers = Vec::new();
    for pod in ["a1", "a2", "b1", "k1", "k2"] {
        let netns = &c.pod(pod).netns;
        servers.push(udp_echo_server(netns, 7000).unwrap());
        servers.push(tcp_echo_server(netns, 7001).unwrap());
    }
    let k3 = c.node("k3").netns.clone();
    let flannel = flannel_device(VNI);

    let before = [c.totals("n1"), c.totals("n2")];
    let (k3_rx_before, k3_tx_before) = link_packets(&k3, &flannel);
    let pairs = [
        ("a1", "k1"),
        ("k1", "a1"),
        ("a2", "k2"),
        ("k2", "a2"),
        ("b1", "k1"),
        ("k2", "b1"),
    ];
    let mut per_kxdp_node = [0u64; 2];
    for (from, to) in pairs {
        assert_eq!(c.tb().path_kind(from, to).unwrap(), PathKind::KernelNode);
        let src = c.pod(from);
        let dst = c.pod(to);
        let what = format!("{from} -> {to}");
        let icmp = ping(&src.netns, ip_of(dst), ICMP_COUNT, Duration::from_millis(5)).unwrap();
        assert_no_loss(&icmp, &format!("{what} icmp\n{}", c.logs()));
        let udp = udp_rtt(
            &src.netns,
            ip_of(dst),
            7000,
            UDP_COUNT,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&udp, &format!("{what} udp"));
        let tcp = tcp_rtt(
            &src.netns,
            ip_of(dst),
            7001,
            TCP_COUNT,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&tcp, &format!("{what} tcp"));
        eprintln!(
            "  {what}: icmp p50 {:?}, udp p50 {:?}, tcp p50 {:?}",
            icmp.p50().unwrap(),
            udp.p50().unwrap(),
            tcp.p50().unwrap()
        );
        let kxdp_pod = if from.starts_with('k') { to } else { from };
        let index = usize::from(c.pod(kxdp_pod).node == "n2");
        per_kxdp_node[index] += u64::from(ICMP_COUNT) + UDP_COUNT + TCP_COUNT;
    }
    for (i, node) in ["n1", "n2"].into_iter().enumerate() {
        let t = c.totals(node).since(&before[i]);
        eprintln!("{node}: {t:?}");
        // Each exchange is one frame out to k3 (encapsulated) and one back
        // (decapsulated), whichever side started it.
        assert!(
            t.encapsulated >= per_kxdp_node[i],
            "{node} encapsulated {} < {}",
            t.encapsulated,
            per_kxdp_node[i]
        );
        assert!(
            t.decapsulated >= per_kxdp_node[i],
            "{node} decapsulated {} < {}",
            t.decapsulated,
            per_kxdp_node[i]
        );
    }
    // The kernel's vxlan device carried the same frames.
    let (k3_rx, k3_tx) = link_packets(&k3, &flannel);
    let total: u64 = per_kxdp_node.iter().sum();
    assert!(
        k3_rx - k3_rx_before >= total && k3_tx - k3_tx_before >= total,
        "{flannel} on k3: rx {} tx {}, expected at least {total} each",
        k3_rx - k3_rx_before,
        k3_tx - k3_tx_before
    );

    // Full-size frames both ways (MTU 1450 inside, 1500 outside), every
    // byte checked by the receiver.
    for (from, to) in [("a1", "k1"), ("k2", "b1")] {
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
        // A floor far below what either path does when nothing stalls
        // (hundreds of Mbit/s): below it, frames sat somewhere for seconds.
        assert!(
            transfer.bits_per_second() >= MIN_GOODPUT_BPS,
            "{from} -> {to}: {:.1} Mbit/s, below {} Mbit/s: frames were held up",
            transfer.bits_per_second() / 1e6,
            MIN_GOODPUT_BPS / 1e6
        );
    }
    drop(servers);
    c.finish();
}

/// A kxdp node told of a Flannel node as Flannel's own annotation tells
/// it (its VTEP MAC is `flannel.1`'s, no underlay MAC): kxdp takes the
/// outer destination MAC from its kernel's neighbour table, so the
/// Flannel node's NIC accepts the frames.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_flannel_peer_without_an_underlay_mac_is_reached_through_the_kernels_neighbour() {
    privileged_test(
        "a_flannel_peer_without_an_underlay_mac_is_reached_through_the_kernels_neighbour",
    );
    let spec = TopologySpec::new(Underlay::Switch, &[("blue", VNI)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("a1", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("k3", NodeKind::KernelVxlan).with_pod(
            "k1",
            "blue",
            pod_ip(2, 10),
        ));
    let mut c = Cluster::build("kernel_interop_neigh", spec, kxdp_binary!());
    let config = c.tb_mut().node_config_mut("n1").unwrap();
    let k3 = config
        .remote_nodes
        .iter_mut()
        .find(|n| n.name == "k3")
        .expect("k3 is a remote node of n1");
    let nic = k3.underlay_mac.take().expect("the testbed names k3's NIC");
    let vtep_mac = k3.vtep_mac;
    assert_ne!(nic, vtep_mac, "k3's VTEP MAC is flannel.1's, not its NIC's");
    c.start_kxdp("n1");
    let a1 = c.pod("a1").clone();
    let k1 = ip_of(c.pod("k1"));
    // The first frames may leave before the kernel has resolved k3.
    let reached = kxdp_tests::eventually(Duration::from_secs(10), || {
        ping(&a1.netns, k1, 1, Duration::from_millis(10)).is_ok_and(|r| r.received == 1)
    });
    assert!(reached, "a1 never reached k1\n{}", c.logs());
    let icmp = ping(&a1.netns, k1, ICMP_COUNT, Duration::from_millis(5)).unwrap();
    assert_no_loss(&icmp, &format!("a1 -> k1 icmp\n{}", c.logs()));
    // The tables send to k3's NIC; the desired state is as it was given.
    let socket = c.api_socket("n1");
    let cli = |args: &[&str]| {
        let socket = ["--socket", socket.to_str().unwrap()];
        c.node("n1")
            .netns
            .exec(kxdp_binary!().to_str().unwrap(), &[args, &socket].concat())
            .unwrap()
    };
    let dump = cli(&["dump", "-o", "json"]);
    assert!(dump.contains(&nic.to_string()), "{dump}");
    let got = cli(&["get", "nodes", "-o", "yaml"]);
    assert!(
        got.contains(&format!("vtep_mac: {vtep_mac}")) && !got.contains(&nic.to_string()),
        "{got}"
    );
    c.finish();
}
