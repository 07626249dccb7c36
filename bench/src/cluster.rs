//! `kxdp-bench cluster`: the latencies a cluster's pod network adds to
//! what the kubelet and Service clients do, through kxdp and through the
//! kernel, measured in the same run.
//!
//! Two measures, each `requests` HTTP GETs on a new TCP connection apiece
//! (timed from the connect to the whole response, as a kubelet probe or a
//! short-lived client):
//!
//! - **node → pod**: from node1's own namespace to a pod on node1, as the
//!   kubelet probes it;
//! - **pod → ClusterIP**: from a pod on node1 to the Service 10.96.0.20:80,
//!   whose one endpoint is an HTTP server in a pod on node2.
//!
//! Two paths, built afresh and interleaved round by round (kxdp, kernel,
//! kxdp, kernel …) on the same topology:
//!
//! - **kxdp**: two kxdp nodes with host ports (one adaptive worker each):
//!   the node reaches its pod through the host port, kxdp balances the
//!   Service (Maglev) and carries it to node2 in VXLAN;
//! - **kernel**: two nodes set up as Flannel's vxlan backend does (`cni0`
//!   bridge, `flannel.100`), with the ClusterIP translated the way
//!   kube-proxy's iptables mode does it: a DNAT rule for the ClusterIP in
//!   a `nat` prerouting chain of node1's namespace (nftables).
//!
//! Every figure is the median over rounds of each round's percentile,
//! with min and max; the ratio is kxdp's median over the kernel's. Which
//! core ran what is read back from `/proc` and printed with the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kxdp_config::{PollMode, Protocol, WorkerSpec};
use kxdp_testbed::{
    http_get, http_rtt, http_server, pod_ip, HttpReply, KxdpProcess, Netns, NodeKind, NodeSpec,
    Testbed, TopologySpec, Underlay,
};
use serde::Serialize;

use kxdp_bench::latency::Percentiles;
use kxdp_bench::suite::Spread;

/// The Service's ClusterIP.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// The Service's port, and its endpoint's.
pub const SERVICE_PORT: u16 = 80;
/// Requests made and not measured before each measure (ARP, neighbour
/// and conntrack entries, the load balancer's first decisions, caches).
const WARMUP_REQUESTS: u64 = 20;

/// A pod network under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterPath {
    /// kxdp nodes with host ports; kxdp balances the Service.
    Kxdp,
    /// Flannel vxlan nodes; kube-proxy-style DNAT on node1.
    Kernel,
}

impl ClusterPath {
    /// Round order.
    pub const ALL: [ClusterPath; 2] = [ClusterPath::Kxdp, ClusterPath::Kernel];

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            ClusterPath::Kxdp => "kxdp",
            ClusterPath::Kernel => "kernel",
        }
    }

    fn node_kind(self) -> NodeKind {
        match self {
            ClusterPath::Kxdp => NodeKind::Kxdp,
            ClusterPath::Kernel => NodeKind::KernelVxlan,
        }
    }
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMeasure {
    /// node1 → a pod on node1 (a kubelet probe).
    NodeToPod,
    /// A pod on node1 → the ClusterIP, endpoint on node2.
    PodToClusterIp,
}

impl ClusterMeasure {
    /// Table order.
    pub const ALL: [ClusterMeasure; 2] =
        [ClusterMeasure::NodeToPod, ClusterMeasure::PodToClusterIp];

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            ClusterMeasure::NodeToPod => "node -> pod",
            ClusterMeasure::PodToClusterIp => "pod -> ClusterIP",
        }
    }
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// HTTP GETs per measure and round.
    pub requests: u64,
    /// Rounds (each path once per round).
    pub rounds: usize,
    /// Time from the start of one request to the start of the next.
    pub interval: Duration,
    /// A request not answered within this counts as lost.
    pub timeout: Duration,
    /// Core of both nodes' kxdp workers.
    pub worker_core: usize,
    /// Core of this process: the clients, the HTTP servers, kxdp's other
    /// threads.
    pub client_core: usize,
}

impl ClusterOptions {
    /// 1000 requests every 2 ms, 3 rounds, workers on core 1, the rest on core 0.
    pub fn new(kxdp: PathBuf) -> ClusterOptions {
        ClusterOptions {
            kxdp,
            requests: 1000,
            rounds: 3,
            interval: Duration::from_millis(2),
            timeout: Duration::from_secs(1),
            worker_core: 1,
            client_core: 0,
        }
    }
}

/// One measure of one path over the rounds, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterRow {
    /// The path.
    pub path: ClusterPath,
    /// The measure.
    pub measure: ClusterMeasure,
    /// Median.
    pub p50_us: Spread,
    /// 99th percentile.
    pub p99_us: Spread,
    /// Largest.
    pub max_us: Spread,
    /// Lost requests, percent.
    pub loss_percent: Spread,
    /// All rounds merged.
    pub merged: Percentiles,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterReport {
    /// Rounds made.
    pub rounds: usize,
    /// Requests per measure and round.
    pub requests: u64,
    /// Per path and measure.
    pub rows: Vec<ClusterRow>,
    /// Where each piece ran, per path in round order (read from /proc in
    /// the first round).
    pub placement: Vec<(String, Vec<String>)>,
}

/// One round of one path.
struct RoundSample {
    histograms: BTreeMap<ClusterMeasure, (u64, u64, Histogram<u64>)>,
    placement: Vec<String>,
}

/// node1: the client pod and the probed pod; node2: the Service's endpoint.
fn topology(path: ClusterPath, options: &ClusterOptions) -> TopologySpec {
    let kind = path.node_kind();
    let mut node1 = NodeSpec::new("node1", kind)
        .with_pod("client", "blue", pod_ip(1, 10))
        .with_pod("probed", "blue", pod_ip(1, 20));
    let mut node2 = NodeSpec::new("node2", kind).with_pod("backend", "blue", pod_ip(2, 20));
    if path == ClusterPath::Kxdp {
        let workers = WorkerSpec {
            count: 1,
            cores: vec![options.worker_core],
            poll_mode: PollMode::Adaptive,
            ..WorkerSpec::default()
        };
        node1 = node1.with_host_port();
        node2 = node2.with_host_port();
        node1.workers = workers.clone();
        node2.workers = workers;
    }
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(node1)
        .with_node(node2)
}

/// A built testbed with its dataplane running; kxdp stopped on drop,
/// before the testbed goes.
struct Bed {
    procs: Vec<KxdpProcess>,
    testbed: Testbed,
}

impl Bed {
    fn build(path: ClusterPath, options: &ClusterOptions) -> Result<Bed> {
        let mut testbed = Testbed::build(topology(path, options))
            .with_context(|| format!("building the {} testbed", path.label()))?;
        let backend_ip = testbed.pod("backend")?.ip;
        let mut procs = Vec::new();
        match path {
            ClusterPath::Kxdp => {
                let service = testbed.service_spec(
                    "web",
                    SERVICE_IP,
                    Protocol::Tcp,
                    SERVICE_PORT,
                    SERVICE_PORT,
                    &["backend"],
                )?;
                testbed.add_service(service);
                for node in ["node1", "node2"] {
                    procs.push(
                        testbed
                            .start_kxdp(node, &options.kxdp, &[])
                            .with_context(|| format!("starting kxdp on {node}"))?,
                    );
                }
            }
            ClusterPath::Kernel => {
                kube_proxy_dnat(&testbed.node("node1")?.netns, backend_ip)?;
            }
        }
        Ok(Bed { procs, testbed })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.terminate();
        }
    }
}

/// What kube-proxy's iptables mode does for a ClusterIP with one
/// endpoint, in nftables: in a `nat` prerouting chain, traffic to the
/// ClusterIP and port is translated to the endpoint.
fn kube_proxy_dnat(node: &Netns, backend: Ipv4Addr) -> Result<()> {
    let chain = [
        "add",
        "chain",
        "ip",
        "nat",
        "prerouting",
        "{",
        "type",
        "nat",
        "hook",
        "prerouting",
        "priority",
        "dstnat",
        ";",
        "}",
    ];
    let service_port = SERVICE_PORT.to_string();
    let rule = [
        "add",
        "rule",
        "ip",
        "nat",
        "prerouting",
        "ip",
        "daddr",
        &SERVICE_IP.to_string(),
        "tcp",
        "dport",
        &service_port,
        "dnat",
        "to",
        &format!("{backend}:{SERVICE_PORT}"),
    ]
    .map(str::to_string);
    node.exec("nft", &["add", "table", "ip", "nat"])
        .context("nft: the nat table (is nftables installed?)")?;
    node.exec("nft", &chain)
        .context("nft: the prerouting chain")?;
    node.exec("nft", &rule)
        .context("nft: the ClusterIP DNAT rule")?;
    Ok(())
}

fn measure_round(
    path: ClusterPath,
    options: &ClusterOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RoundSample> {
    progress(&format!("{}: building the testbed", path.label()));
    let bed = Bed::build(path, options)?;
    let tb = &bed.testbed;
    let node1 = tb.node("node1")?;
    let client = tb.pod("client")?;
    let probed = tb.pod("probed")?;
    let backend = tb.pod("backend")?;
    let probed_server = http_server(
        &probed.netns,
        SERVICE_PORT,
        HttpReply::Identity("probed".into()),
    )?;
    let backend_server = http_server(
        &backend.netns,
        SERVICE_PORT,
        HttpReply::Identity("backend".into()),
    )?;
    let targets = [
        (
            ClusterMeasure::NodeToPod,
            &node1.netns,
            SocketAddr::from((probed.ip, SERVICE_PORT)),
            "probed",
        ),
        (
            ClusterMeasure::PodToClusterIp,
            &client.netns,
            SocketAddr::from((SERVICE_IP, SERVICE_PORT)),
            "backend",
        ),
    ];
    let mut histograms = BTreeMap::new();
    for (measure, from, to, expect) in targets {
        // The path works, and answers from the right pod, before it is timed.
        let first = http_get(from, to, options.timeout)
            .with_context(|| format!("{}: {} GET http://{to}/", path.label(), measure.label()))?;
        anyhow::ensure!(
            first.status == 200 && first.body.trim() == expect,
            "{}: {}: http://{to}/ answered {} {:?}, expected 200 from {expect}",
            path.label(),
            measure.label(),
            first.status,
            first.body
        );
        http_rtt(from, to, WARMUP_REQUESTS, options.interval, options.timeout)?;
        progress(&format!(
            "{}: {} ({} requests)",
            path.label(),
            measure.label(),
            options.requests
        ));
        let rtt = http_rtt(
            from,
            to,
            options.requests,
            options.interval,
            options.timeout,
        )
        .with_context(|| format!("{}: {}", path.label(), measure.label()))?;
        histograms.insert(measure, (rtt.sent, rtt.received, rtt.histogram));
    }
    let served = backend_server.served();
    anyhow::ensure!(
        served >= histograms[&ClusterMeasure::PodToClusterIp].1,
        "{}: the backend answered {served} requests, fewer than the ClusterIP's replies",
        path.label()
    );
    let placement = placement(path, options, &bed.procs);
    drop(probed_server);
    drop(backend_server);
    Ok(RoundSample {
        histograms,
        placement,
    })
}

/// Where each piece of `path` ran: kxdp's threads as /proc shows their
/// allowed cores, and this process's (clients, servers).
fn placement(path: ClusterPath, options: &ClusterOptions, procs: &[KxdpProcess]) -> Vec<String> {
    let mut lines = vec![format!(
        "core {}: this process — HTTP clients (node1's probe, the client pod), HTTP servers (probed, backend pods); this process's allowed cores: {}",
        options.client_core,
        allowed_cores("/proc/thread-self/status").unwrap_or_else(|| "?".into())
    )];
    for p in procs {
        let Some(pid) = p.pid() else { continue };
        let mut by_cores: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let dir = task.path();
                let comm = std::fs::read_to_string(dir.join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                let cores = allowed_cores(&dir.join("status").display().to_string())
                    .unwrap_or_else(|| "?".into());
                *by_cores.entry(cores).or_default().entry(comm).or_default() += 1;
            }
        }
        for (cores, threads) in by_cores {
            let threads: Vec<String> = threads
                .iter()
                .map(|(comm, n)| {
                    if *n > 1 {
                        format!("{comm} ×{n}")
                    } else {
                        comm.clone()
                    }
                })
                .collect();
            lines.push(format!(
                "core {cores}: {} kxdp (pid {pid}) threads {}",
                p.node(),
                threads.join(", ")
            ));
        }
    }
    lines.push(match path {
        ClusterPath::Kxdp => format!(
            "kernel: a pod's or the node's transmit (veth, XDP redirect to kxdp) on the sender's core ({}); kxdp's transmits (veth receive into the pods and node) on the worker's core ({})",
            options.client_core, options.worker_core
        ),
        ClusterPath::Kernel => format!(
            "kernel: every hop (veth, cni0, DNAT, vxlan) in softirq on the sender's core: all on core {}",
            options.client_core
        ),
    });
    lines
}

/// `Cpus_allowed_list` of a `/proc/…/status` file.
fn allowed_cores(status: &str) -> Option<String> {
    std::fs::read_to_string(status).ok()?.lines().find_map(|l| {
        l.strip_prefix("Cpus_allowed_list:")
            .map(|v| v.trim().to_string())
    })
}

/// Run every round; `progress` gets a short line per step.
pub fn run(options: &ClusterOptions, progress: &mut dyn FnMut(&str)) -> Result<ClusterReport> {
    // Everything this process starts from here on (clients, servers, the
    // kxdp processes' non-worker threads) inherits this core.
    anyhow::ensure!(
        kxdp_dataplane::worker::pin_to_core(Some(options.client_core)),
        "cannot pin this process to core {}",
        options.client_core
    );
    let mut samples: BTreeMap<ClusterPath, Vec<RoundSample>> = BTreeMap::new();
    for round in 0..options.rounds {
        for path in ClusterPath::ALL {
            let mut step =
                |s: &str| progress(&format!("round {}/{}: {s}", round + 1, options.rounds));
            let sample = measure_round(path, options, &mut step)?;
            samples.entry(path).or_default().push(sample);
        }
    }
    let mut rows = Vec::new();
    for measure in ClusterMeasure::ALL {
        for path in ClusterPath::ALL {
            let rounds: Vec<&(u64, u64, Histogram<u64>)> = samples
                .get(&path)
                .map(|s| {
                    s.iter()
                        .filter_map(|r| r.histograms.get(&measure))
                        .collect()
                })
                .unwrap_or_default();
            let per_round: Vec<Percentiles> =
                rounds.iter().map(|(_, _, h)| Percentiles::of(h)).collect();
            let pick = |f: fn(&Percentiles) -> f64| {
                Spread::of(&per_round.iter().map(f).collect::<Vec<_>>())
            };
            let mut merged =
                Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).context("histogram")?;
            for (_, _, h) in &rounds {
                merged.add(h).context("merging histograms")?;
            }
            rows.push(ClusterRow {
                path,
                measure,
                p50_us: pick(|p| p.p50_us),
                p99_us: pick(|p| p.p99_us),
                max_us: pick(|p| p.max_us),
                loss_percent: Spread::of(
                    &rounds
                        .iter()
                        .map(|(sent, received, _)| {
                            if *sent == 0 {
                                0.0
                            } else {
                                (sent - received.min(sent)) as f64 * 100.0 / *sent as f64
                            }
                        })
                        .collect::<Vec<_>>(),
                ),
                merged: Percentiles::of(&merged),
            });
        }
    }
    let placement = ClusterPath::ALL
        .iter()
        .filter_map(|path| {
            let first = samples.get(path)?.first()?;
            Some((path.label().to_string(), first.placement.clone()))
        })
        .collect();
    Ok(ClusterReport {
        rounds: options.rounds,
        requests: options.requests,
        rows,
        placement,
    })
}

/// The terminal table: per measure a kxdp row, a kernel row and their
/// ratio, then the placement.
pub fn table(report: &ClusterReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "HTTP GET on a new connection each, {} requests per measure and round; µs, median over {} round(s) [min–max]",
        report.requests, report.rounds
    );
    let _ = writeln!(
        s,
        "{:<18}{:<13}{:>22}{:>22}{:>24}{:>8}",
        "measure", "path", "p50", "p99", "max", "loss%"
    );
    let cell = |sp: &Spread| format!("{:.1} [{:.0}–{:.0}]", sp.median, sp.min, sp.max);
    for measure in ClusterMeasure::ALL {
        let find = |path| {
            report
                .rows
                .iter()
                .find(|r| r.measure == measure && r.path == path)
        };
        for path in ClusterPath::ALL {
            if let Some(r) = find(path) {
                let _ = writeln!(
                    s,
                    "{:<18}{:<13}{:>22}{:>22}{:>24}{:>8.2}",
                    measure.label(),
                    path.label(),
                    cell(&r.p50_us),
                    cell(&r.p99_us),
                    cell(&r.max_us),
                    r.loss_percent.median
                );
            }
        }
        if let (Some(k), Some(b)) = (find(ClusterPath::Kxdp), find(ClusterPath::Kernel)) {
            let ratio = |a: &Spread, b: &Spread| {
                if b.median > 0.0 {
                    format!("{:.2}×", a.median / b.median)
                } else {
                    "-".into()
                }
            };
            let _ = writeln!(
                s,
                "{:<18}{:<13}{:>22}{:>22}{:>24}",
                measure.label(),
                "kxdp/kernel",
                ratio(&k.p50_us, &b.p50_us),
                ratio(&k.p99_us, &b.p99_us),
                ratio(&k.max_us, &b.max_us)
            );
        }
    }
    let _ = writeln!(s, "\ncores:");
    for (path, lines) in &report.placement {
        let _ = writeln!(s, "  {path}:");
        for line in lines {
            let _ = writeln!(s, "    {line}");
        }
    }
    s
}
