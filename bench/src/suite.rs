//! `kxdp bench`: the paths side by side, in one run, on one topology.
//!
//! The headline table comes first: one node under test beside a kernel
//! VXLAN peer (the `nut` module). Then the two-node tables, where both
//! nodes run the same dataplane.
//!
//! Each round builds, for every path in turn (A B C A B C …), the same
//! two-node testbed with only the node dataplane swapped — plain kernel
//! routing (`routed`), the kernel's vxlan device (`kernel-vxlan`), or kxdp —
//! and measures on it: UDP request/response latency (blocking and spinning
//! client, at a low fixed rate and under a background stream), TCP
//! throughput, and the packet rate of 64-byte UDP with an AF_XDP generator
//! (the rate module, which also measures DPDK testpmd and OVS forwarding
//! with AF_XDP when they are installed, and lists them as skipped with the
//! reason when not). Every figure is reported as the median over rounds
//! with min and max. The in-memory pipeline rates are measured in the same
//! run.
//!
//! Cores, on this 2-core machine: node1's kxdp worker busy-polls on core 1,
//! which nothing else uses; everything else shares core 0: node2's kxdp
//! worker in adaptive mode (two busy workers would time-slice one core, in
//! scheduler slices of milliseconds), the client, the echo server and the
//! background stream. The spinning client runs at nice 19 so that the
//! wake-ups it waits for on its own core are not held up by its spinning.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kxdp_config::{PollMode, WorkerSpec};
use kxdp_testbed::{
    self, pod_ip, tcp_transfer, KxdpProcess, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay,
};
use serde::Serialize;

pub use crate::figures::LatencyFigures;
use crate::figures::{summarise_latency, write_latency_plots};
pub use crate::latency::Spread;
use crate::latency::{self, LatencyCase, LatencyOptions, LatencyPods};

/// A dataplane under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathName {
    /// Kernel routing over veth, no overlay (Flannel host-gw).
    Routed,
    /// The kernel's vxlan device (Flannel vxlan).
    KernelVxlan,
    /// kxdp on both nodes.
    Kxdp,
}

impl PathName {
    /// Every path, in round order.
    pub const ALL: [PathName; 3] = [PathName::Routed, PathName::KernelVxlan, PathName::Kxdp];

    /// Label in tables and file names.
    pub fn label(self) -> &'static str {
        match self {
            PathName::Routed => "routed",
            PathName::KernelVxlan => "kernel-vxlan",
            PathName::Kxdp => "kxdp",
        }
    }

    fn node_kind(self) -> NodeKind {
        match self {
            PathName::Routed => NodeKind::Routed,
            PathName::KernelVxlan => NodeKind::KernelVxlan,
            PathName::Kxdp => NodeKind::Kxdp,
        }
    }
}

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// The node-under-test measurement (the headline table; its rounds are
    /// its own, interleaved row by row).
    pub nut: crate::nut::NutOptions,
    /// Rounds (each path once per round).
    pub rounds: usize,
    /// Latency probes per case and round.
    pub latency: LatencyOptions,
    /// Bytes of the TCP transfer.
    pub tcp_bytes: u64,
    /// Seconds per in-memory pipeline measurement.
    pub pipeline_seconds: f64,
    /// The packet-rate measurement (its rounds are its own, interleaved
    /// kxdp / kernel-vxlan).
    pub rate: crate::rate::RateOptions,
    /// The pods-per-node measurement.
    pub pods: crate::pods::PodsOptions,
    /// Where the JSON, the HdrHistogram logs and the plots go.
    pub out_dir: PathBuf,
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// Core of the kxdp workers.
    pub worker_core: usize,
    /// Core of the client.
    pub client_core: usize,
}

/// One path's figures.
#[derive(Clone, Debug, Serialize)]
pub struct PathFigures {
    /// The path.
    pub path: PathName,
    /// Latency per case.
    pub latency: Vec<LatencyFigures>,
    /// TCP goodput, Gbit/s.
    pub tcp_gbps: Spread,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteResult {
    /// The node under test beside a kernel VXLAN peer: the headline table.
    pub nut: crate::nut::NutReport,
    /// Rounds made (two-node paths).
    pub rounds: usize,
    /// Which core ran what (two-node paths).
    pub cores: BTreeMap<String, String>,
    /// Core of the kxdp workers (node1's; node2's is the client's).
    pub worker_core: usize,
    /// Core of the client and everything else.
    pub client_core: usize,
    /// Per path.
    pub paths: Vec<PathFigures>,
    /// The TCP congestion control of the two-node paths' senders (their
    /// namespaces inherit the machine's `net.ipv4.tcp_congestion_control`;
    /// distinct values joined by ", ").
    pub tcp_congestion_control: String,
    /// 64-byte UDP packet rate with an AF_XDP generator, kxdp against
    /// kernel-vxlan, routed, testpmd and OVS (or why one was skipped), with
    /// CPU cost (the rate module).
    pub rate: crate::rate::RateReport,
    /// A node full of pods: one worker with 2, 30 and 110 pod interfaces.
    pub pods: crate::pods::PodsReport,
    /// In-memory pipeline rates.
    pub pipeline: Vec<crate::pipeline::PipelineResult>,
    /// In-memory service-chain rates.
    pub chain: Vec<crate::chain::ChainResult>,
    /// Files written.
    pub files: Vec<String>,
}

/// What one round of one path measured.
struct RoundSample {
    latency: Vec<latency::LatencySample>,
    tcp_gbps: f64,
    /// The congestion control of the TCP sender's namespace.
    tcp_congestion: String,
}

/// The bench topology: client, loader on node1; server, sink on node2.
fn topology(path: PathName, worker_core: usize, other_core: usize) -> TopologySpec {
    let kind = path.node_kind();
    let workers = |mode: PollMode, core: usize| WorkerSpec {
        count: 1,
        cores: vec![core],
        poll_mode: mode,
        ..WorkerSpec::default()
    };
    let mut n1 = NodeSpec::new("node1", kind)
        .with_pod("client", "blue", pod_ip(1, 10))
        .with_pod("loader", "blue", pod_ip(1, 11));
    let mut n2 = NodeSpec::new("node2", kind)
        .with_pod("server", "blue", pod_ip(2, 10))
        .with_pod("sink", "blue", pod_ip(2, 11));
    n1.workers = workers(PollMode::Busy, worker_core);
    n2.workers = workers(PollMode::Adaptive, other_core);
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(n1)
        .with_node(n2)
}

/// A built testbed with its dataplane running.
struct Bed {
    procs: Vec<KxdpProcess>,
    testbed: Testbed,
}

impl Bed {
    fn build(path: PathName, options: &SuiteOptions) -> Result<Bed> {
        let testbed = Testbed::build(topology(path, options.worker_core, options.client_core))
            .with_context(|| format!("building the {} testbed", path.label()))?;
        let mut procs = Vec::new();
        if path == PathName::Kxdp {
            for node in ["node1", "node2"] {
                procs.push(
                    testbed
                        .start_kxdp(node, &options.kxdp, &[])
                        .with_context(|| format!("starting kxdp on {node}"))?,
                );
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

fn measure_round(
    path: PathName,
    options: &SuiteOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RoundSample> {
    let bed = Bed::build(path, options)?;
    let tb = &bed.testbed;
    let pod = |name: &str| tb.pod(name).with_context(|| format!("pod {name}"));
    let (client, server, loader, sink) =
        (pod("client")?, pod("server")?, pod("loader")?, pod("sink")?);
    let pods = LatencyPods {
        client: &client.netns,
        server: &server.netns,
        server_ip: server.ip,
        load_from: &loader.netns,
        load_to: &sink.netns,
        load_to_ip: sink.ip,
    };
    // Warm up: neighbours resolved, caches filled.
    let _ = kxdp_testbed::ping(
        &client.netns,
        std::net::IpAddr::V4(server.ip),
        3,
        Duration::from_millis(10),
    );
    let samples = latency::measure_all(&pods, &options.latency, path.label(), progress)?;
    progress(&format!("{} tcp", path.label()));
    let tcp_congestion = client
        .netns
        .sysctl(crate::nut::TCP_CONGESTION_SYSCTL)
        .with_context(|| format!("{}: the client's TCP congestion control", path.label()))?;
    let transfer = tcp_transfer(
        &client.netns,
        &server.netns,
        std::net::IpAddr::V4(server.ip),
        options.tcp_bytes,
    )
    .with_context(|| format!("{} tcp transfer", path.label()))?;
    Ok(RoundSample {
        latency: samples,
        tcp_gbps: transfer.bits_per_second() / 1e9,
        tcp_congestion,
    })
}

/// Run everything; `progress` gets a short line per step.
pub fn run(options: &SuiteOptions, progress: &mut dyn FnMut(&str)) -> Result<SuiteResult> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    // Everything this process starts from here on (echo servers, the
    // background stream, kxdp processes' non-worker threads) inherits the
    // client's core: the busy kxdp worker keeps its core to itself.
    kxdp_dataplane::worker::pin_to_core(Some(options.client_core));
    let nut = crate::nut::run(&options.nut, progress).context("node under test")?;
    let mut per_path: BTreeMap<PathName, Vec<RoundSample>> = BTreeMap::new();
    for round in 0..options.rounds {
        for path in PathName::ALL {
            let mut step =
                |s: &str| progress(&format!("round {}/{}: {s}", round + 1, options.rounds));
            let sample = measure_round(path, options, &mut step)?;
            per_path.entry(path).or_default().push(sample);
        }
    }
    let rate = crate::rate::run(&options.rate, progress).context("packet rate")?;
    let pods = crate::pods::run(&options.pods, progress).context("pods per node")?;
    progress("in-memory pipeline");
    let pipeline =
        crate::pipeline::run_all(Duration::from_secs_f64(options.pipeline_seconds), |r| {
            progress(&format!(
                "pipeline {:?} {} B {} routes",
                r.scenario, r.frame_bytes, r.routes
            ))
        });
    progress("in-memory service chain");
    let chain = crate::chain::run_all(Duration::from_secs_f64(options.pipeline_seconds));

    let tcp_congestion_control = per_path
        .values()
        .flatten()
        .map(|r| r.tcp_congestion.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ");
    let mut files = nut.files.clone();
    let mut paths = Vec::new();
    let mut merged_by_case: BTreeMap<String, Vec<(String, Histogram<u64>)>> = BTreeMap::new();
    for (path, rounds) in &per_path {
        let latency_rounds: Vec<&[latency::LatencySample]> =
            rounds.iter().map(|r| r.latency.as_slice()).collect();
        let mut latency_figures = Vec::new();
        for (figures, merged) in
            summarise_latency(path.label(), &latency_rounds, &options.out_dir, &mut files)?
        {
            merged_by_case
                .entry(figures.case.clone())
                .or_default()
                .push((path.label().to_string(), merged));
            latency_figures.push(figures);
        }
        paths.push(PathFigures {
            path: *path,
            latency: latency_figures,
            tcp_gbps: Spread::of(&rounds.iter().map(|r| r.tcp_gbps).collect::<Vec<_>>()),
        });
    }
    write_latency_plots("latency", "", &merged_by_case, &options.out_dir, &mut files)?;
    let mut cores = BTreeMap::new();
    cores.insert(
        "kxdp worker".to_string(),
        format!(
            "node1: core {} (busy poll); node2: core {} (adaptive)",
            options.worker_core, options.client_core
        ),
    );
    cores.insert(
        "client, echo server, background stream".to_string(),
        format!(
            "core {} (the spinning client at nice 19)",
            options.client_core
        ),
    );
    cores.insert(
        "kernel softirq (veth, vxlan)".to_string(),
        "the core of the sending thread".to_string(),
    );
    let result = SuiteResult {
        nut,
        rounds: options.rounds,
        cores,
        worker_core: options.worker_core,
        client_core: options.client_core,
        paths,
        tcp_congestion_control,
        rate,
        pods,
        pipeline,
        chain,
        files,
    };
    Ok(result)
}

/// The terminal table.
pub fn table(result: &SuiteResult) -> String {
    let mut s = crate::nut::table(&result.nut);
    let _ = writeln!(
        s,
        "\n## Two nodes of one kind (routed, kernel-vxlan; kxdp: node1 busy worker on core {}, \
         node2 adaptive worker on core {} beside the client)\n",
        result.worker_core, result.client_core
    );
    let _ = writeln!(
        s,
        "UDP request/response latency, µs: median over {} round(s) [min–max]",
        result.rounds
    );
    let _ = writeln!(
        s,
        "{:<14}{:<16}{:>22}{:>22}{:>22}{:>22}{:>9}",
        "path", "client/load", "p50", "p99", "p99.9", "max", "loss%"
    );
    let cell = |sp: &Spread| format!("{:.1} [{:.0}–{:.0}]", sp.median, sp.min, sp.max);
    for case in LatencyCase::ALL {
        for p in &result.paths {
            if let Some(l) = p.latency.iter().find(|l| l.case == case.label()) {
                let _ = writeln!(
                    s,
                    "{:<14}{:<16}{:>22}{:>22}{:>22}{:>22}{:>9.2}",
                    p.path.label(),
                    l.case,
                    cell(&l.p50_us),
                    cell(&l.p99_us),
                    cell(&l.p999_us),
                    cell(&l.max_us),
                    l.loss_percent.median
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nTCP goodput pod to pod across nodes, Gbit/s; congestion control {} (the machine's)",
        result.tcp_congestion_control
    );
    for p in &result.paths {
        let _ = writeln!(
            s,
            "{:<14}{:>8.2} [{:.2}–{:.2}]",
            p.path.label(),
            p.tcp_gbps.median,
            p.tcp_gbps.min,
            p.tcp_gbps.max
        );
    }
    let _ = writeln!(s);
    s.push_str(&crate::rate::table(&result.rate));
    let _ = writeln!(s);
    s.push_str(&crate::pods::table(&result.pods));
    let _ = writeln!(s, "\nin-memory pipeline, one core");
    s.push_str(&crate::pipeline::table(&result.pipeline));
    let _ = writeln!(s, "\nin-memory service chain, one core");
    s.push_str(&crate::chain::table(&result.chain));
    let _ = writeln!(s, "\ncores (two-node tables):");
    for (what, core) in &result.cores {
        let _ = writeln!(s, "  {what}: {core}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).median, 5.0);
    }
}
