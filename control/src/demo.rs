//! `kxdp demo`: build a two-node testbed (network namespaces, two pods per
//! node, one underlay veth between the nodes), run one kxdp per node in
//! adaptive mode, send ICMP, UDP and TCP between pods on the same node and
//! across nodes, print a table, and remove everything.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::stats;
use crate::testbed::{
    self, format_table, ping, tcp_echo_server, tcp_rtt, udp_echo_server, udp_rtt, NodeKind,
    NodeSpec, PairResult, Testbed, TopologySpec, Underlay,
};

/// How much traffic each pair gets.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Exchanges per pair and protocol.
    pub count: u64,
    /// Time between exchanges.
    pub interval: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            count: 200,
            interval: Duration::from_millis(5),
        }
    }
}

/// The demo topology: node1 (pods a, b) and node2 (pods c, d), one tenant.
pub fn topology() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(
            NodeSpec::new("node1", NodeKind::Kxdp)
                .with_pod("pod-a", "blue", testbed::pod_ip(1, 2))
                .with_pod("pod-b", "blue", testbed::pod_ip(1, 3)),
        )
        .with_node(
            NodeSpec::new("node2", NodeKind::Kxdp)
                .with_pod("pod-c", "blue", testbed::pod_ip(2, 2))
                .with_pod("pod-d", "blue", testbed::pod_ip(2, 3)),
        )
}

/// Run the demo with the `kxdp` binary at `kxdp`; returns the table rows.
pub fn run(kxdp: &Path, options: DemoOptions) -> anyhow::Result<Vec<PairResult>> {
    if let Err(why) = testbed::check_privileges() {
        anyhow::bail!("kxdp demo needs root (network namespaces, XDP, AF_XDP): {why}");
    }
    eprintln!("building the testbed: 2 nodes, 4 pods, an underlay veth…");
    let bed = Testbed::build(topology()).context("building the testbed")?;
    eprintln!("starting kxdp on node1 and node2 (adaptive polling)…");
    let mut procs = Vec::new();
    for node in ["node1", "node2"] {
        procs.push(
            bed.start_kxdp(node, kxdp, &[])
                .with_context(|| format!("starting kxdp on {node}"))?,
        );
    }

    let pairs = [
        ("pod-a", "pod-b"),
        ("pod-b", "pod-a"),
        ("pod-a", "pod-c"),
        ("pod-c", "pod-a"),
        ("pod-b", "pod-d"),
        ("pod-d", "pod-b"),
    ];
    let mut servers = Vec::new();
    for pod in ["pod-a", "pod-b", "pod-c", "pod-d"] {
        let p = bed.pod(pod)?;
        servers.push(udp_echo_server(&p.netns, 7000)?);
        servers.push(tcp_echo_server(&p.netns, 7001)?);
    }
    let mut rows = Vec::new();
    let timeout = Duration::from_millis(500);
    for (from, to) in pairs {
        let src = bed.pod(from)?;
        let dst = bed.pod(to)?;
        let path = bed.path_kind(from, to)?.label().to_string();
        let name = format!("{from} -> {to}");
        let ip = IpAddr::V4(dst.ip);
        eprintln!("  {name} ({path}): icmp, udp, tcp");
        let icmp = ping(
            &src.netns,
            ip,
            options.count as u32,
            options.interval.max(Duration::from_millis(2)),
        )?;
        rows.push(PairResult::new(&name, &path, "icmp", &icmp));
        let udp = udp_rtt(
            &src.netns,
            ip,
            7000,
            options.count,
            options.interval,
            timeout,
        )?;
        rows.push(PairResult::new(&name, &path, "udp", &udp));
        let tcp = tcp_rtt(
            &src.netns,
            ip,
            7001,
            options.count,
            options.interval,
            timeout,
        )?;
        rows.push(PairResult::new(&name, &path, "tcp", &tcp));
    }
    drop(servers);

    println!();
    println!("pod-to-pod through kxdp (AF_XDP, adaptive polling; RTT in microseconds)");
    print!("{}", format_table(&rows));
    println!();
    for p in &procs {
        let socket = kxdp_config::NodeConfig::from_file(p.config_path())
            .map(|c| c.control_socket())
            .unwrap_or_else(|_| format!("/run/kxdp/{}.sock", p.node()));
        match stats::fetch(Path::new(&socket)) {
            Ok(s) => {
                println!("kxdp stats, {}:", p.node());
                print!("{}", stats::print(&s));
                println!();
            }
            Err(e) => eprintln!("could not read {}'s stats: {e}", p.node()),
        }
    }
    eprintln!("removing the testbed…");
    drop(procs);
    drop(bed);
    Ok(rows)
}
