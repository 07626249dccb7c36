//! Packet rate of 64-byte UDP from a pod across nodes: kxdp against the
//! paths a user would otherwise pick, measured in the same run on the same
//! topology, interleaved round by round (kxdp, kernel-vxlan, routed,
//! testpmd, ovs, kxdp, …).
//!
//! Topology (built anew for every measurement): two nodes on a direct
//! underlay veth, pod `src` (10.244.1.2) on node1 and pod `dst`
//! (10.244.2.2) on node2, one tenant (VNI 100). Only the nodes' dataplane
//! differs ([`RatePath`]):
//! - **kxdp**: [`NodeKind::Kxdp`], one busy-polling kxdp worker on node1
//!   (VXLAN encapsulation), and in `pod-to-pod` an adaptive one on node2;
//! - **kernel-vxlan**: [`NodeKind::KernelVxlan`], the kernel's bridge,
//!   routing and vxlan device (Flannel's vxlan backend);
//! - **routed**: [`NodeKind::Routed`], kernel routing over the underlay
//!   without an overlay (Flannel's host-gw backend);
//! - **testpmd** and **ovs**: DPDK's `dpdk-testpmd` (`net_af_xdp`) or Open
//!   vSwitch's userspace datapath (`afxdp` ports) forwarding on node1
//!   between the host side of `src`'s veth and `ul0`, on the same DUT core
//!   as kxdp's worker, on a [`NodeKind::Kxdp`] node whose kxdp is not
//!   started ([`crate::external`]). These are plain L2 forwarders with a
//!   MAC rewrite: the frame crosses the underlay as the 64 bytes the pod
//!   sent, not encapsulated, no route looked up, no TTL decremented. They
//!   are measured with the **underlay sink only**: on the receiving side
//!   the same forwarder would have to run on node2 on the generator's core,
//!   which would then measure the generator's core, not node1's dataplane;
//!   their `pod-to-pod` row is left out (the table says so).
//!
//! When `dpdk-testpmd` or `ovs-vswitchd` is not installed
//! ([`ExternalKind::check_installed`]) its path is not measured and the
//! report lists it under `skipped` with the reason; the other paths run as
//! usual.
//!
//! The generator ([`crate::generator`]) transmits from `src`'s `eth0` with
//! AF_XDP; the counting sink (an XDP program that counts and drops) sits at
//! one of two places ([`SinkPoint`]):
//! - **underlay** (`encap`): on node2's `ul0`. What is measured is node1
//!   alone: one kxdp worker (or the kernel) taking frames from a pod and
//!   encapsulating them into VXLAN. Node2's dataplane is not involved (kxdp
//!   is not started there; on a kernel node the sink drops before the
//!   stack).
//! - **pod** (`pod-to-pod`): on `dst`'s `eth0`. Both nodes forward: node1
//!   encapsulates, node2 decapsulates and delivers.
//!
//! Cores (2-core machine): the node1 dataplane under test has core 1 to
//! itself — kxdp's one busy-polling worker, testpmd's forwarding lcore or
//! OVS's PMD thread, or, for the kernel (kernel-vxlan, routed), the threaded
//! NAPI of node1's pod veth, where the kernel's bridge, routing and vxlan
//! encapsulation run (GRO is switched on for that veth, which threaded NAPI
//! needs). Everything else is on core 0: the generator thread, the veth
//! NAPI threads of the sink and of node2's underlay (threaded, pinned), and
//! in `pod-to-pod` node2's kxdp worker (adaptive polling). For kxdp, testpmd
//! and ovs the receive work of node1's pod veth (XDP redirect into the
//! dataplane's AF_XDP socket, the copy into its UMEM) runs in a NAPI thread
//! pinned to core 0 as well. Every
//! sample lists where each piece ran (`placement`).
//!
//! Figures per sample: generator tx rate, the frames its veth dropped,
//! node1's forwarding rate (column `node1 encap`; kxdp: the worker's
//! `encapsulated` counter; kernel-vxlan: tx packets of the `flannel.100`
//! device; routed, testpmd, ovs: tx packets of node1's `ul0`, frames
//! forwarded without encapsulation), the rate at the sink,
//! loss, the busy share of each core from /proc/stat, the per-core rate of
//! the dataplane under test (encapsulations per busy second of core 1), and
//! CPU seconds per million packets (core 1 alone, and all cores less the
//! generator thread's own time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use kxdp_config::{MacAddr, PollMode, WorkerSpec};
use kxdp_testbed::{
    flannel_device, pod_ip, KxdpProcess, Netns, NodeKind, NodeSpec, Testbed, TopologySpec,
    Underlay, POD_IF, UNDERLAY_IF,
};
use serde::Serialize;

use crate::external::{self, ExternalKind, ForwardSpec};
use crate::generator::{FlowSpec, Generator, GeneratorOptions, Sink};

/// The tenant and its VNI.
const TENANT: &str = "blue";
const VNI: u32 = 100;
/// Real-time priority of the NAPI threads (SCHED_FIFO): like softirq
/// work, they preempt every ordinary thread on their core when they have
/// frames, so the spinning generator (or a build sharing the machine) does
/// not starve the receive work that is measured.
const NAPI_FIFO_PRIORITY: u32 = 50;
/// UDP destination port of the generated flows (discard).
const DST_PORT: u16 = 9;
/// UDP source port of the first flow.
const SRC_PORT: u16 = 40000;

/// The dataplane under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RatePath {
    /// kxdp on the nodes: one busy-polling worker on node1.
    Kxdp,
    /// The kernel's vxlan device (Flannel's vxlan backend).
    KernelVxlan,
    /// Kernel routing without an overlay (Flannel's host-gw backend).
    Routed,
    /// DPDK testpmd with the net_af_xdp driver on node1 (plain L2 forwarding
    /// with a MAC rewrite, no encapsulation: see `crate::external`).
    Testpmd,
    /// Open vSwitch's userspace datapath with afxdp ports on node1 (plain
    /// L2 forwarding with a MAC rewrite, no encapsulation).
    Ovs,
}

impl RatePath {
    /// Every path, in round order.
    pub const ALL: [RatePath; 5] = [
        RatePath::Kxdp,
        RatePath::KernelVxlan,
        RatePath::Routed,
        RatePath::Testpmd,
        RatePath::Ovs,
    ];

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            RatePath::Kxdp => "kxdp",
            RatePath::KernelVxlan => "kernel-vxlan",
            RatePath::Routed => "routed",
            RatePath::Testpmd => "testpmd",
            RatePath::Ovs => "ovs",
        }
    }

    fn node_kind(self) -> NodeKind {
        match self {
            RatePath::Kxdp | RatePath::Testpmd | RatePath::Ovs => NodeKind::Kxdp,
            RatePath::KernelVxlan => NodeKind::KernelVxlan,
            RatePath::Routed => NodeKind::Routed,
        }
    }

    /// The external AF_XDP dataplane of this path, if it is one.
    pub fn external(self) -> Option<ExternalKind> {
        match self {
            RatePath::Testpmd => Some(ExternalKind::Testpmd),
            RatePath::Ovs => Some(ExternalKind::Ovs),
            _ => None,
        }
    }

    /// Whether this path is measured with this sink: the external
    /// forwarders run on node1 only (pod to underlay), so only the
    /// underlay sink applies to them.
    pub fn measures(self, sink: SinkPoint) -> bool {
        self.external().is_none() || sink == SinkPoint::Underlay
    }
}

impl std::str::FromStr for RatePath {
    type Err = String;

    /// A path by its [label](RatePath::label).
    fn from_str(s: &str) -> Result<RatePath, String> {
        crate::by_label(&RatePath::ALL, RatePath::label, "path", s)
    }
}

/// A path that was not measured, and why.
#[derive(Clone, Debug, Serialize)]
pub struct SkippedPath {
    /// The path.
    pub path: RatePath,
    /// Why.
    pub reason: String,
}

/// Where the counting sink sits; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkPoint {
    /// Node2's `ul0`: node1's encapsulation alone.
    Underlay,
    /// The receiving pod's `eth0`: pod to pod, both nodes forwarding.
    Pod,
}

impl SinkPoint {
    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            SinkPoint::Underlay => "encap (sink: node2 ul0)",
            SinkPoint::Pod => "pod-to-pod (sink: dst eth0)",
        }
    }
}

/// Parameters of a rate run.
#[derive(Clone, Debug)]
pub struct RateOptions {
    /// Seconds of each measurement window.
    pub seconds: f64,
    /// Seconds the generator runs before the window opens.
    pub warmup: f64,
    /// Rounds (each path and sink once per round), at least 1.
    pub rounds: usize,
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// Core of node1's dataplane under test (kxdp worker / kernel NAPI).
    pub dut_core: usize,
    /// Core of the generator and of everything else.
    pub generator_core: usize,
    /// Distinct UDP source ports.
    pub flows: u16,
    /// Frame length handed to the interface (no FCS).
    pub frame_bytes: usize,
    /// Where to count, each measured every round.
    pub sinks: Vec<SinkPoint>,
    /// The paths to measure, in round order (default [`RatePath::ALL`]).
    pub paths: Vec<RatePath>,
    /// Put the veths' receive work in pinned NAPI threads (see the module
    /// documentation); false leaves it in the softirq of whichever CPU
    /// transmitted into the veth.
    pub threaded_napi: bool,
}

impl RateOptions {
    /// Defaults: 5 s windows after 1 s of warm-up, 3 rounds, the DUT on
    /// core 1 and the rest on core 0, 8 flows of 64-byte frames, both sinks.
    pub fn new(kxdp: PathBuf) -> RateOptions {
        RateOptions {
            seconds: 5.0,
            warmup: 1.0,
            rounds: 3,
            kxdp,
            dut_core: 1,
            generator_core: 0,
            flows: 8,
            frame_bytes: 64,
            sinks: vec![SinkPoint::Underlay, SinkPoint::Pod],
            paths: RatePath::ALL.to_vec(),
            threaded_napi: true,
        }
    }
}

/// Busy share of one core over the window, from /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CoreLoad {
    /// The core.
    pub core: usize,
    /// Busy share (everything but idle and iowait), 0..1.
    pub busy: f64,
    /// Of which softirq, 0..1.
    pub softirq: f64,
    /// Of which processes at a positive nice value, 0..1 (on this shared
    /// machine: mostly other people's builds at nice 19).
    pub nice: f64,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct RateSample {
    /// Dataplane.
    pub path: RatePath,
    /// Sink.
    pub sink: SinkPoint,
    /// Round (0-based).
    pub round: usize,
    /// Length of the window, seconds.
    pub seconds: f64,
    /// Frames the generator's socket completed per second.
    pub generator_tx_pps: f64,
    /// Of those, frames the generator's veth dropped per second (its peer's
    /// receive ring was full).
    pub generator_dropped_pps: f64,
    /// Node1's VXLAN encapsulations per second.
    pub encap_pps: f64,
    /// Frames per second at the sink.
    pub received_pps: f64,
    /// Mean length of the frames at the sink (a check that they are the
    /// generator's: 64, or 114 with the VXLAN headers on the underlay).
    pub received_frame_bytes: f64,
    /// 1 − received / generator tx, in percent.
    pub loss_pct: f64,
    /// Busy share of every core.
    pub cores: Vec<CoreLoad>,
    /// Encapsulations per busy second of the DUT core.
    pub dut_per_core_pps: f64,
    /// Busy seconds of the DUT core per million encapsulations.
    pub dut_cpu_s_per_mpkt: f64,
    /// Busy seconds of all cores, less the generator thread's own CPU
    /// time, per million packets received.
    pub total_cpu_s_per_mpkt: f64,
    /// The kxdp worker's cycles per packet from its own counters (since
    /// start; kxdp only).
    pub worker_cycles_per_packet: Option<f64>,
    /// Where the generator's frames went (kxdp only).
    pub ledger: Option<FrameLedger>,
    /// What ran where.
    pub placement: Vec<String>,
}

/// Where the generator's frames went in a kxdp sample, per second of the
/// window: the generator's veth, then each kxdp node's sockets (the
/// kernel's XDP_STATISTICS) and worker (its drops by reason), then the
/// sink. What no counter explains is `unaccounted`: frames in flight at
/// either end of the window, and the few milliseconds between reading the
/// nodes' counters and the sink's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FrameLedger {
    /// Frames the generator's socket completed.
    pub generated: f64,
    /// Of those, dropped by its veth (the peer's ring was full).
    pub veth_dropped: f64,
    /// Each kxdp node on the path, in path order.
    pub nodes: Vec<NodeLedger>,
    /// Counted at the sink.
    pub received: f64,
    /// generated − veth drops − every node's drops − received.
    pub unaccounted: f64,
}

/// One kxdp node's share of a [`FrameLedger`], per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeLedger {
    /// Node name.
    pub node: String,
    /// Frames its workers received.
    pub worker_rx: f64,
    /// Frames its workers transmitted.
    pub worker_tx: f64,
    /// The kernel's drops at its AF_XDP sockets, every port (also among
    /// `worker_drops`, under the socket reasons).
    pub socket_drops: f64,
    /// Times its sockets found the fill ring empty (XDP_STATISTICS; a
    /// count of events, part of the drops above).
    pub fill_ring_empty: f64,
    /// Its workers' drops, by reason (only reasons that moved).
    pub worker_drops: BTreeMap<String, f64>,
}

impl NodeLedger {
    /// Between two readings `seconds` apart.
    fn between(
        node: &str,
        before: &kxdp_node::stats::NodeStats,
        after: &kxdp_node::stats::NodeStats,
        seconds: f64,
    ) -> NodeLedger {
        let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds.max(1e-9);
        let sum = |st: &kxdp_node::stats::NodeStats,
                   f: fn(&kxdp_dataplane::counters::CounterSnapshot) -> u64| {
            st.workers.iter().map(f).sum::<u64>()
        };
        let sockets = |st: &kxdp_node::stats::NodeStats| {
            st.ports
                .iter()
                .filter_map(|p| p.kernel)
                .fold((0u64, 0u64), |(all, empty), k| {
                    (all + k.total(), empty + k.rx_fill_ring_empty)
                })
        };
        let drops = |st: &kxdp_node::stats::NodeStats| {
            let mut by: BTreeMap<String, u64> = BTreeMap::new();
            for w in &st.workers {
                for (reason, n) in &w.drops {
                    *by.entry(reason.clone()).or_default() += n;
                }
            }
            by
        };
        let (b, a) = (sockets(before), sockets(after));
        let (db, da) = (drops(before), drops(after));
        NodeLedger {
            node: node.to_string(),
            worker_rx: per_s(sum(before, |w| w.rx_packets), sum(after, |w| w.rx_packets)),
            worker_tx: per_s(sum(before, |w| w.tx_packets), sum(after, |w| w.tx_packets)),
            socket_drops: per_s(b.0, a.0),
            fill_ring_empty: per_s(b.1, a.1),
            worker_drops: da
                .iter()
                .map(|(r, n)| (r.clone(), per_s(db.get(r).copied().unwrap_or(0), *n)))
                .filter(|(_, n)| *n > 0.0)
                .collect(),
        }
    }

    /// Every frame this node's counters saw dropped, per second. The
    /// workers' drop reasons already hold their sockets' kernel drops
    /// (`fill_ring_empty`, `rx_ring_full`, `socket_rx_dropped`), so those
    /// are not added again.
    fn dropped(&self) -> f64 {
        self.worker_drops.values().sum::<f64>()
    }
}

/// A figure over rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Figure {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Figure {
    /// Of `values` (all zero when empty; non-finite values are skipped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Figure {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Figure::default();
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Figure {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One path and sink over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct RateSummary {
    /// Dataplane.
    pub path: RatePath,
    /// Sink.
    pub sink: SinkPoint,
    /// Generator tx, pps.
    pub generator_tx_pps: Figure,
    /// Node1 encapsulations, pps.
    pub encap_pps: Figure,
    /// At the sink, pps.
    pub received_pps: Figure,
    /// Loss, percent.
    pub loss_pct: Figure,
    /// Encapsulations per busy second of the DUT core.
    pub dut_per_core_pps: Figure,
    /// DUT core CPU seconds per million encapsulations.
    pub dut_cpu_s_per_mpkt: Figure,
    /// All cores less the generator, CPU seconds per million received.
    pub total_cpu_s_per_mpkt: Figure,
}

/// kxdp over kernel-vxlan for one sink.
#[derive(Clone, Debug, Serialize)]
pub struct RateRatio {
    /// Sink.
    pub sink: SinkPoint,
    /// The path kxdp is compared with.
    pub against: RatePath,
    /// Medians of received pps, kxdp / kernel-vxlan.
    pub received_pps: f64,
    /// Medians of DUT per-core rates, kxdp / kernel-vxlan.
    pub dut_per_core_pps: f64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RateReport {
    /// Frame length (no FCS; 4 more on a wire).
    pub frame_bytes: usize,
    /// Flows.
    pub flows: u16,
    /// Window, seconds.
    pub seconds: f64,
    /// Rounds.
    pub rounds: usize,
    /// The DUT core.
    pub dut_core: usize,
    /// The generator core.
    pub generator_core: usize,
    /// Every measurement, in the order taken.
    pub samples: Vec<RateSample>,
    /// Per path and sink, over rounds.
    pub summaries: Vec<RateSummary>,
    /// kxdp / each other path measured.
    pub ratios: Vec<RateRatio>,
    /// Paths not measured (an external dataplane not installed).
    pub skipped: Vec<SkippedPath>,
}

/// Run every path and sink, `rounds` times, interleaved; `progress` gets a
/// line before each measurement.
pub fn run(options: &RateOptions, progress: &mut dyn FnMut(&str)) -> Result<RateReport> {
    if options.seconds <= 0.0 || options.warmup < 0.0 {
        bail!("the window must be positive and the warm-up not negative");
    }
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    let mut paths = Vec::new();
    for &path in &options.paths {
        if paths.contains(&path) {
            continue;
        }
        match path.external().map(ExternalKind::check_installed) {
            Some(Err(reason)) => skipped.push(SkippedPath { path, reason }),
            _ => paths.push(path),
        }
    }
    let total = options.rounds.max(1)
        * options
            .sinks
            .iter()
            .map(|&sink| paths.iter().filter(|p| p.measures(sink)).count())
            .sum::<usize>();
    for round in 0..options.rounds.max(1) {
        for &sink in &options.sinks {
            for &path in paths.iter().filter(|p| p.measures(sink)) {
                progress(&format!(
                    "rate {}/{total}: round {}, {}, {}",
                    samples.len() + 1,
                    round + 1,
                    path.label(),
                    sink.label()
                ));
                let sample = measure(path, sink, round, options)
                    .with_context(|| format!("{} {} round {round}", path.label(), sink.label()))?;
                samples.push(sample);
            }
        }
    }
    Ok(summarise(options, samples, skipped))
}

fn summarise(
    options: &RateOptions,
    samples: Vec<RateSample>,
    skipped: Vec<SkippedPath>,
) -> RateReport {
    let mut groups: BTreeMap<(SinkPoint, RatePath), Vec<&RateSample>> = BTreeMap::new();
    for s in &samples {
        groups.entry((s.sink, s.path)).or_default().push(s);
    }
    let summaries: Vec<RateSummary> = groups
        .iter()
        .map(|(&(sink, path), group)| {
            let fig = |f: fn(&RateSample) -> f64| Figure::of(group.iter().map(|s| f(s)));
            RateSummary {
                path,
                sink,
                generator_tx_pps: fig(|s| s.generator_tx_pps),
                encap_pps: fig(|s| s.encap_pps),
                received_pps: fig(|s| s.received_pps),
                loss_pct: fig(|s| s.loss_pct),
                dut_per_core_pps: fig(|s| s.dut_per_core_pps),
                dut_cpu_s_per_mpkt: fig(|s| s.dut_cpu_s_per_mpkt),
                total_cpu_s_per_mpkt: fig(|s| s.total_cpu_s_per_mpkt),
            }
        })
        .collect();
    let mut ratios = Vec::new();
    for &sink in &options.sinks {
        let find = |path| summaries.iter().find(|s| s.sink == sink && s.path == path);
        for against in RatePath::ALL.into_iter().filter(|p| *p != RatePath::Kxdp) {
            if let (Some(k), Some(v)) = (find(RatePath::Kxdp), find(against)) {
                let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
                ratios.push(RateRatio {
                    sink,
                    against,
                    received_pps: ratio(k.received_pps.median, v.received_pps.median),
                    dut_per_core_pps: ratio(k.dut_per_core_pps.median, v.dut_per_core_pps.median),
                });
            }
        }
    }
    RateReport {
        frame_bytes: options.frame_bytes,
        flows: options.flows,
        seconds: options.seconds,
        rounds: options.rounds.max(1),
        dut_core: options.dut_core,
        generator_core: options.generator_core,
        samples,
        summaries,
        ratios,
        skipped,
    }
}

/// The two-node topology of a measurement.
fn topology(path: RatePath, options: &RateOptions) -> TopologySpec {
    let mut node1 = NodeSpec::new("node1", path.node_kind()).with_pod("src", TENANT, pod_ip(1, 2));
    node1.workers = WorkerSpec {
        count: 1,
        cores: vec![options.dut_core],
        poll_mode: PollMode::Busy,
        zero_copy: false,
        ..WorkerSpec::default()
    };
    let mut node2 = NodeSpec::new("node2", path.node_kind()).with_pod("dst", TENANT, pod_ip(2, 2));
    node2.workers = WorkerSpec {
        count: 1,
        cores: vec![options.generator_core],
        poll_mode: PollMode::Adaptive,
        zero_copy: false,
        ..WorkerSpec::default()
    };
    TopologySpec::new(Underlay::Direct, &[(TENANT, VNI)])
        .with_node(node1)
        .with_node(node2)
}

/// Counter readings at one instant.
#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    generated: u64,
    generator_cpu: f64,
    sink_packets: u64,
    sink_bytes: u64,
    cpu: Vec<CpuTimes>,
    /// Node1 encapsulations, read at their own instant.
    encap: (Instant, u64),
    /// Tx drops of the generator's interface, at their own instant.
    gen_dropped: (Instant, u64),
}

/// Measure one path with one sink.
pub fn measure(
    path: RatePath,
    sink_point: SinkPoint,
    round: usize,
    options: &RateOptions,
) -> Result<RateSample> {
    let bed = Testbed::build(topology(path, options)).context("building the testbed")?;
    let node1 = bed.node("node1")?.clone();
    let node2 = bed.node("node2")?.clone();
    let src = bed.pod("src")?.clone();
    let dst = bed.pod("dst")?.clone();
    let dut = options.dut_core;
    let other = options.generator_core;
    let mut placement = vec![format!(
        "core {other}: generator thread (AF_XDP copy-mode tx on src/eth0)"
    )];

    // The sink drops ARP: resolve the underlay neighbours for good.
    for (here, there) in [(&node1, &node2), (&node2, &node1)] {
        crate::external::pin_neighbour(
            &here.netns,
            &there.vtep_ip,
            &there.underlay_mac,
            UNDERLAY_IF,
        )?;
    }
    if matches!(path, RatePath::KernelVxlan | RatePath::Routed) {
        crate::external::pin_neighbour(&node2.netns, &dst.ip, &dst.mac, kxdp_testbed::CNI_BRIDGE)?;
    }

    let mut processes: Vec<KxdpProcess> = Vec::new();
    if path == RatePath::Kxdp {
        processes.push(
            bed.start_kxdp("node1", &options.kxdp, &[])
                .context("starting kxdp on node1")?,
        );
        placement.push(format!(
            "core {dut}: node1 kxdp worker (busy poll, 1 worker)"
        ));
        if sink_point == SinkPoint::Pod {
            processes.push(
                bed.start_kxdp("node2", &options.kxdp, &[])
                    .context("starting kxdp on node2")?,
            );
            placement.push(format!("core {other}: node2 kxdp worker (adaptive poll)"));
        }
    }

    // An external forwarder answers no ARP: the pod gets a permanent
    // neighbour for its gateway (the host side of its veth).
    let mut forwarder = None;
    if let Some(kind) = path.external() {
        external::pin_gateway_neighbour(&bed, "src")?;
        let spec = ForwardSpec::between(&bed, "src", "dst", dut)?;
        forwarder = Some(match kind {
            ExternalKind::Testpmd => external::start_testpmd(&spec)?,
            ExternalKind::Ovs => external::start_ovs(&spec)?,
        });
        placement.push(format!(
            "core {dut}: node1 {} forwarding thread (pod veth <-> ul0, MAC rewrite, no encap)",
            kind.name()
        ));
    }

    // The gateway's MAC as the sending pod resolves it.
    let gateway = src.gateway.to_string();
    let _ = src
        .netns
        .exec_output("ping", &["-c", "1", "-W", "1", &gateway]);
    let gateway_mac = neighbour_mac(&src.netns, src.gateway)
        .with_context(|| format!("src pod did not resolve its gateway {gateway}"))?;
    if sink_point == SinkPoint::Pod {
        // The path works before the sink takes the frames away.
        // One reply of three is enough: the first request may go while
        // node2 still resolves the pod's MAC (iputils also prints the loss
        // as "33.3333%", so the summary line is not matched as text).
        let rtt = kxdp_testbed::ping(
            &src.netns,
            std::net::IpAddr::V4(dst.ip),
            3,
            Duration::from_millis(200),
        )?;
        if rtt.received == 0 {
            bail!(
                "src cannot reach dst {} before the measurement: 0 of {} pings answered",
                dst.ip,
                rtt.sent
            );
        }
    }

    // A veth hands a frame to its peer's NAPI (where XDP and threaded NAPI
    // act) only if the sending end has no TSO or the skb comes from a local
    // socket (veth_skb_is_eligible_for_gro); otherwise it goes to the
    // backlog of the transmitting CPU and bypasses the peer's XDP program.
    // The testbed turns tx offloads off in kxdp pods and on every ul0; do
    // the same for the ends that feed this measurement, on both paths.
    src.netns.exec("ethtool", &["-K", POD_IF, "tx", "off"])?;
    if sink_point == SinkPoint::Pod {
        node2
            .netns
            .exec("ethtool", &["-K", &dst.host_interface, "tx", "off"])?;
    }

    let (sink_ns, sink_if, sink_what) = match sink_point {
        SinkPoint::Underlay => (&node2.netns, UNDERLAY_IF, "node2/ul0"),
        SinkPoint::Pod => (&dst.netns, POD_IF, "dst/eth0"),
    };
    let sink = Sink::attach(sink_ns, sink_if)?;
    let napi = threaded_napi(sink_ns, sink_if, other, options.threaded_napi)?;
    placement.push(format!(
        "core {other}: {napi} (threaded NAPI of {sink_what}: counting sink)"
    ));
    match path {
        RatePath::KernelVxlan | RatePath::Routed => {
            let host_if = &src.host_interface;
            node1.netns.exec("ethtool", &["-K", host_if, "gro", "on"])?;
            let napi = threaded_napi(&node1.netns, host_if, dut, options.threaded_napi)?;
            placement.push(format!(
                "core {dut}: {napi} (threaded NAPI of node1/{host_if}: the kernel's {}, ul0 xmit)",
                if path == RatePath::Routed {
                    "routing"
                } else {
                    "bridge, routing, vxlan encap"
                }
            ));
            if sink_point == SinkPoint::Pod {
                node2
                    .netns
                    .exec("ethtool", &["-K", UNDERLAY_IF, "gro", "on"])?;
                let napi = threaded_napi(&node2.netns, UNDERLAY_IF, other, options.threaded_napi)?;
                placement.push(format!(
                    "core {other}: {napi} (threaded NAPI of node2/ul0: {}, dst veth xmit)",
                    if path == RatePath::Routed {
                        "routing"
                    } else {
                        "vxlan decap, bridge, routing"
                    }
                ));
            }
        }
        RatePath::Kxdp | RatePath::Testpmd | RatePath::Ovs => {
            let host_if = &src.host_interface;
            let napi = threaded_napi(&node1.netns, host_if, other, options.threaded_napi)?;
            placement.push(format!(
                "core {other}: {napi} (threaded NAPI of node1/{host_if}: XDP redirect, copy into the DUT's UMEM)"
            ));
            if sink_point == SinkPoint::Pod {
                let napi = threaded_napi(&node2.netns, UNDERLAY_IF, other, options.threaded_napi)?;
                placement.push(format!(
                    "core {other}: {napi} (threaded NAPI of node2/ul0: XDP redirect into node2's kxdp)"
                ));
            }
        }
    }

    let flows = FlowSpec {
        src_mac: src.mac,
        dst_mac: gateway_mac,
        src_ip: src.ip,
        dst_ip: dst.ip,
        src_port: SRC_PORT,
        dst_port: DST_PORT,
        flows: options.flows.max(1),
        frame_bytes: options.frame_bytes,
    };
    let encap_reader = EncapReader::new(&bed, path, &node1)?;
    let mut generator = Generator::start(
        &src.netns,
        &flows,
        &GeneratorOptions {
            ifname: POD_IF.to_string(),
            core: Some(other),
            nice: None,
        },
    )?;
    // The kxdp nodes on the path, for the ledger.
    let ledger_nodes: Vec<(String, PathBuf)> = processes
        .iter()
        .map(|p| {
            let config = bed.node_config(p.node())?;
            Ok((
                p.node().to_string(),
                kxdp_control::api::api_socket_path(config),
            ))
        })
        .collect::<Result<_>>()?;
    let read_nodes = || -> Result<Vec<kxdp_node::stats::NodeStats>> {
        ledger_nodes
            .iter()
            .map(|(_, socket)| kxdp_stats(socket))
            .collect()
    };
    std::thread::sleep(Duration::from_secs_f64(options.warmup));
    let nodes_before = read_nodes()?;
    let before = snapshot(&generator, &sink, &encap_reader, &src.netns)?;
    std::thread::sleep(Duration::from_secs_f64(options.seconds));
    let after = snapshot(&generator, &sink, &encap_reader, &src.netns)?;
    let nodes_after = read_nodes()?;
    let totals = generator.stop()?;
    if totals.completed == 0 {
        bail!("the generator sent nothing");
    }
    for p in &mut processes {
        if !p.is_running() {
            bail!(
                "kxdp on {} died during the measurement:\n{}",
                p.node(),
                p.log_tail(20)
            );
        }
    }
    let cycles = match path {
        RatePath::Kxdp => encap_reader.worker_cycles_per_packet(),
        _ => None,
    };
    drop(processes);
    if let Some(forwarder) = forwarder {
        forwarder
            .stop()
            .context("stopping the external forwarder")?;
    }
    let mut sample = compute(
        path, sink_point, round, options, &before, &after, cycles, placement,
    );
    if !ledger_nodes.is_empty() {
        let nodes = ledger_nodes
            .iter()
            .zip(nodes_before.iter().zip(&nodes_after))
            .map(|((name, _), (b, a))| NodeLedger::between(name, b, a, sample.seconds))
            .collect();
        sample.ledger = Some(ledger(&sample, nodes));
    }
    Ok(sample)
}

/// The ledger of `sample` with its kxdp nodes' shares.
fn ledger(sample: &RateSample, nodes: Vec<NodeLedger>) -> FrameLedger {
    let dropped: f64 = nodes.iter().map(NodeLedger::dropped).sum();
    FrameLedger {
        generated: sample.generator_tx_pps,
        veth_dropped: sample.generator_dropped_pps,
        received: sample.received_pps,
        unaccounted: sample.generator_tx_pps
            - sample.generator_dropped_pps
            - dropped
            - sample.received_pps,
        nodes,
    }
}

#[allow(clippy::too_many_arguments)]
fn compute(
    path: RatePath,
    sink: SinkPoint,
    round: usize,
    options: &RateOptions,
    before: &Snapshot,
    after: &Snapshot,
    worker_cycles_per_packet: Option<f64>,
    placement: Vec<String>,
) -> RateSample {
    let secs = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64().max(1e-9);
    let window = secs(before.at, after.at);
    let generated = after.generated.saturating_sub(before.generated) as f64;
    let received = after.sink_packets.saturating_sub(before.sink_packets) as f64;
    let received_bytes = after.sink_bytes.saturating_sub(before.sink_bytes) as f64;
    let encap = after.encap.1.saturating_sub(before.encap.1) as f64;
    let encap_window = secs(before.encap.0, after.encap.0);
    let dropped = after.gen_dropped.1.saturating_sub(before.gen_dropped.1) as f64;
    let dropped_window = secs(before.gen_dropped.0, after.gen_dropped.0);
    let cores = core_loads(&before.cpu, &after.cpu);
    let busy_seconds = |core: usize| {
        cores
            .iter()
            .find(|c| c.core == core)
            .map_or(0.0, |c| c.busy * window)
    };
    let dut_busy = busy_seconds(options.dut_core);
    let all_busy: f64 = cores.iter().map(|c| c.busy * window).sum();
    let generator_cpu = (after.generator_cpu - before.generator_cpu).max(0.0);
    let encap_pps = encap / encap_window;
    let per_mpkt = |seconds: f64, packets: f64| {
        if packets > 0.0 {
            seconds / (packets / 1e6)
        } else {
            f64::NAN
        }
    };
    RateSample {
        path,
        sink,
        round,
        seconds: window,
        generator_tx_pps: generated / window,
        generator_dropped_pps: dropped / dropped_window,
        encap_pps,
        received_pps: received / window,
        received_frame_bytes: if received > 0.0 {
            received_bytes / received
        } else {
            0.0
        },
        loss_pct: if generated > 0.0 {
            (1.0 - received / generated) * 100.0
        } else {
            f64::NAN
        },
        dut_per_core_pps: if dut_busy > 0.0 {
            encap_pps * window / dut_busy
        } else {
            f64::NAN
        },
        dut_cpu_s_per_mpkt: per_mpkt(dut_busy, encap_pps * window),
        total_cpu_s_per_mpkt: per_mpkt((all_busy - generator_cpu).max(0.0), received),
        cores,
        worker_cycles_per_packet,
        ledger: None,
        placement,
    }
}

fn snapshot(
    generator: &Generator,
    sink: &Sink,
    encap: &EncapReader,
    src_ns: &Netns,
) -> Result<Snapshot> {
    let at = Instant::now();
    let generated = generator.completed();
    let count = sink.read()?;
    let cpu = read_proc_stat()?;
    let generator_cpu = generator.thread_cpu_seconds().unwrap_or(0.0);
    let encap = (Instant::now(), encap.read()?);
    let gen_dropped = (Instant::now(), link_stats(src_ns, POD_IF)?.tx_dropped);
    Ok(Snapshot {
        at,
        generated,
        generator_cpu,
        sink_packets: count.packets,
        sink_bytes: count.bytes,
        cpu,
        encap,
        gen_dropped,
    })
}

/// How node1's encapsulations are read.
#[derive(Debug)]
enum EncapReader {
    /// kxdp's API socket: the workers' `encapsulated` counters.
    Kxdp(PathBuf),
    /// Tx packets of the node's `flannel.<vni>` device.
    Kernel(Netns, String),
    /// Tx packets of node1's `ul0` (routed and the external forwarders:
    /// frames forwarded onto the underlay, not encapsulated).
    Underlay(Netns),
}

impl EncapReader {
    fn new(bed: &Testbed, path: RatePath, node1: &kxdp_testbed::Node) -> Result<Self> {
        Ok(match path {
            RatePath::Kxdp => {
                let config = bed.node_config(&node1.name)?;
                EncapReader::Kxdp(kxdp_control::api::api_socket_path(config))
            }
            RatePath::KernelVxlan => EncapReader::Kernel(node1.netns.clone(), flannel_device(VNI)),
            RatePath::Routed | RatePath::Testpmd | RatePath::Ovs => {
                EncapReader::Underlay(node1.netns.clone())
            }
        })
    }

    fn read(&self) -> Result<u64> {
        match self {
            EncapReader::Kxdp(socket) => Ok(kxdp_stats(socket)?
                .workers
                .iter()
                .map(|w| w.encapsulated)
                .sum()),
            EncapReader::Kernel(netns, device) => Ok(link_stats(netns, device)?.tx_packets),
            EncapReader::Underlay(netns) => Ok(link_stats(netns, UNDERLAY_IF)?.tx_packets),
        }
    }

    fn worker_cycles_per_packet(&self) -> Option<f64> {
        match self {
            EncapReader::Kxdp(socket) => kxdp_stats(socket)
                .ok()?
                .workers
                .first()
                .map(|w| w.cycles_per_packet),
            EncapReader::Kernel(..) | EncapReader::Underlay(..) => None,
        }
    }
}

fn kxdp_stats(socket: &Path) -> Result<kxdp_node::stats::NodeStats> {
    Ok(kxdp_control::stats::fetch(socket)?)
}

/// The tx counters of an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkStats {
    pub(crate) tx_packets: u64,
    pub(crate) tx_dropped: u64,
}

pub(crate) fn link_stats(netns: &Netns, ifname: &str) -> Result<LinkStats> {
    let json = netns.ip(&["-s", "-j", "link", "show", "dev", ifname])?;
    parse_link_stats(&json).with_context(|| format!("no statistics for {ifname} in {json}"))
}

fn parse_link_stats(json: &str) -> Option<LinkStats> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let tx = v.get(0)?.get("stats64")?.get("tx")?;
    Some(LinkStats {
        tx_packets: tx.get("packets")?.as_u64()?,
        tx_dropped: tx.get("dropped")?.as_u64()?,
    })
}

/// The MAC `netns`'s neighbour table holds for `addr`.
pub(crate) fn neighbour_mac(netns: &Netns, addr: Ipv4Addr) -> Result<MacAddr> {
    let json = netns.ip(&["-j", "neigh", "show", "to", &addr.to_string()])?;
    parse_neighbour_mac(&json).ok_or_else(|| anyhow!("no neighbour entry for {addr}: {json}"))
}

fn parse_neighbour_mac(json: &str) -> Option<MacAddr> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.as_array()?
        .iter()
        .filter_map(|n| n.get("lladdr")?.as_str())
        .find_map(|mac| mac.parse().ok())
}

/// Steer the receive work of `ifname` in `netns` to `core` with RPS: every
/// rx queue's `rps_cpus` becomes that core's mask, read back to check.
/// A veth without NAPI hands what its peer sends to `netif_rx`, which
/// queues it on the transmitting core's backlog unless RPS names another;
/// with this, the receive (IP, vxlan, bridge, the pod's stack) runs on
/// `core` whoever sent the frame.
pub(crate) fn steer_receive(netns: &Netns, ifname: &str, core: usize) -> Result<String> {
    if core >= 64 {
        bail!("RPS steering to core {core}: only cores 0-63 are supported here");
    }
    let mask = format!("{:x}", 1u64 << core);
    // /sys/class/net shows the namespace sysfs was mounted in: `ip netns
    // exec` mounts one for the namespace.
    let out = netns.exec(
        "sh",
        &[
            "-c",
            &format!(
                "for q in /sys/class/net/{ifname}/queues/rx-*; do echo {mask} > $q/rps_cpus; \
                 done; cat /sys/class/net/{ifname}/queues/rx-*/rps_cpus"
            ),
        ],
    )?;
    let masks: Vec<&str> = out.split_whitespace().collect();
    let steered = |m: &&str| u64::from_str_radix(&m.replace(',', ""), 16).ok() == Some(1 << core);
    if masks.is_empty() || !masks.iter().all(steered) {
        bail!(
            "RPS on {ifname} in {}: rps_cpus reads {masks:?}, not core {core}'s mask {mask}",
            netns.name()
        );
    }
    Ok(format!("{ifname}: RPS to core {core}"))
}

/// Switch `ifname` in `netns` to threaded NAPI, pin its NAPI thread to
/// `core` and make it SCHED_FIFO ([`NAPI_FIFO_PRIORITY`]); returns the
/// thread's name and pid. The veth must already have an XDP program or GRO
/// on (before that it has no NAPI instance).
pub(crate) fn threaded_napi(
    netns: &Netns,
    ifname: &str,
    core: usize,
    enabled: bool,
) -> Result<String> {
    if !enabled {
        return Ok(format!(
            "softirq of the transmitting CPU (not threaded; planned core {core})"
        ));
    }
    let before = napi_threads(ifname);
    // /sys/class/net shows the namespace sysfs was mounted in: `ip netns
    // exec` mounts one for the namespace.
    netns.exec(
        "sh",
        &["-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")],
    )?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let new: Vec<(u32, String)> = napi_threads(ifname)
            .into_iter()
            .filter(|t| !before.contains(t))
            .collect();
        match new.as_slice() {
            [(pid, name)] => {
                let pid_s = pid.to_string();
                kxdp_testbed::find_program("taskset")
                    .ok_or_else(|| anyhow!("taskset (util-linux) is not installed"))?;
                let out = std::process::Command::new("taskset")
                    .args(["-pc", &core.to_string(), &pid_s])
                    .output()
                    .context("running taskset")?;
                if !out.status.success() {
                    bail!(
                        "taskset -pc {core} {pid} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let out = std::process::Command::new("chrt")
                    .args(["-f", "-p", &NAPI_FIFO_PRIORITY.to_string(), &pid_s])
                    .output()
                    .context("running chrt")?;
                if !out.status.success() {
                    bail!(
                        "chrt -f -p {NAPI_FIFO_PRIORITY} {pid} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                return Ok(format!(
                    "{name} (pid {pid}, SCHED_FIFO {NAPI_FIFO_PRIORITY})"
                ));
            }
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            [] => bail!("no NAPI thread appeared for {ifname} in {}", netns.name()),
            more => bail!(
                "{} new NAPI threads for {ifname} at once (another run?): {more:?}",
                more.len()
            ),
        }
    }
}

/// Kernel threads named `napi/<ifname>-<id>` (pid, name).
fn napi_threads(ifname: &str) -> Vec<(u32, String)> {
    let prefix = format!("napi/{ifname}-");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let comm = comm.trim();
            comm.starts_with(&prefix).then(|| (pid, comm.to_string()))
        })
        .collect()
}

/// Jiffies of one core from /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    core: usize,
    total: u64,
    idle: u64,
    softirq: u64,
    nice: u64,
}

/// Every core's jiffies now.
pub(crate) fn read_proc_stat() -> Result<Vec<CpuTimes>> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(parse_proc_stat(&text))
}

fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let core: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            // user nice system idle iowait irq softirq steal (guest time is
            // already inside user).
            let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
            if v.len() < 8 {
                return None;
            }
            Some(CpuTimes {
                core,
                total: v.iter().sum(),
                idle: v[3] + v[4],
                softirq: v[6],
                nice: v[1],
            })
        })
        .collect()
}

/// Busy shares of every core between two readings.
pub(crate) fn core_loads(before: &[CpuTimes], after: &[CpuTimes]) -> Vec<CoreLoad> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.core == a.core)?;
            let total = a.total.saturating_sub(b.total) as f64;
            if total <= 0.0 {
                return None;
            }
            let idle = a.idle.saturating_sub(b.idle) as f64;
            Some(CoreLoad {
                core: a.core,
                busy: ((total - idle) / total).clamp(0.0, 1.0),
                softirq: a.softirq.saturating_sub(b.softirq) as f64 / total,
                nice: a.nice.saturating_sub(b.nice) as f64 / total,
            })
        })
        .collect()
}

/// The report as a table.
pub fn table(report: &RateReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "packet rate: {}-byte UDP frames ({} on a wire), {} flows, {} round(s) of {:.1} s; \
         median [min … max]",
        report.frame_bytes,
        report.frame_bytes + 4,
        report.flows,
        report.rounds,
        report.seconds
    );
    let _ = writeln!(
        s,
        "cores: generator {} · dataplane under test (node1) {}",
        report.generator_core, report.dut_core
    );
    let kpps = |f: &Figure| {
        format!(
            "{:.0} [{:.0}…{:.0}]",
            f.median / 1e3,
            f.min / 1e3,
            f.max / 1e3
        )
    };
    let plain = |f: &Figure, digits: usize| {
        format!(
            "{:.*} [{:.*}…{:.*}]",
            digits, f.median, digits, f.min, digits, f.max
        )
    };
    for sink in [SinkPoint::Underlay, SinkPoint::Pod] {
        let rows: Vec<&RateSummary> = report.summaries.iter().filter(|r| r.sink == sink).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{}", sink.label());
        let _ = writeln!(
            s,
            "{:<14}{:>22}{:>22}{:>22}{:>18}{:>22}{:>20}{:>20}",
            "path",
            "gen tx kpps",
            "node1 encap kpps",
            "received kpps",
            "loss %",
            "DUT kpps/core",
            "DUT cpu-s/Mpkt",
            "total cpu-s/Mpkt"
        );
        for r in rows {
            let _ = writeln!(
                s,
                "{:<14}{:>22}{:>22}{:>22}{:>18}{:>22}{:>20}{:>20}",
                r.path.label(),
                kpps(&r.generator_tx_pps),
                kpps(&r.encap_pps),
                kpps(&r.received_pps),
                plain(&r.loss_pct, 1),
                kpps(&r.dut_per_core_pps),
                plain(&r.dut_cpu_s_per_mpkt, 2),
                plain(&r.total_cpu_s_per_mpkt, 2),
            );
        }
        for ratio in report.ratios.iter().filter(|r| r.sink == sink) {
            let _ = writeln!(
                s,
                "kxdp / {}: received {:.2}×, per DUT core {:.2}×",
                ratio.against.label(),
                ratio.received_pps,
                ratio.dut_per_core_pps
            );
        }
    }
    let pod_rows = report.summaries.iter().any(|r| r.sink == SinkPoint::Pod);
    if pod_rows {
        for path in RatePath::ALL.into_iter().filter(|p| {
            !p.measures(SinkPoint::Pod)
                && report
                    .summaries
                    .iter()
                    .any(|r| r.path == *p && r.sink == SinkPoint::Underlay)
        }) {
            let _ = writeln!(
                s,
                "{}: pod-to-pod n/a (forwarder on node1 only; underlay sink)",
                path.label()
            );
        }
    }
    if !report.skipped.is_empty() {
        s.push('\n');
    }
    for skipped in &report.skipped {
        let _ = writeln!(
            s,
            "{}: not measured: {}",
            skipped.path.label(),
            skipped.reason
        );
    }
    let ledgers: Vec<(&RateSample, &FrameLedger)> = report
        .samples
        .iter()
        .filter_map(|x| x.ledger.as_ref().map(|l| (x, l)))
        .collect();
    if !ledgers.is_empty() {
        let _ = writeln!(s, "\nwhere kxdp's frames went, kpps (counters of the generator's veth, each kxdp node's sockets and workers, the sink):");
    }
    for (sample, l) in ledgers {
        let k = |x: f64| format!("{:.1}", x / 1e3);
        let mut line = format!(
            "  {} round {}: generated {}, veth dropped {}",
            sample.sink.label(),
            sample.round + 1,
            k(l.generated),
            k(l.veth_dropped)
        );
        for n in &l.nodes {
            let _ = write!(
                line,
                "; {} rx {} tx {}, of its drops at its sockets {} (fill ring empty {})",
                n.node,
                k(n.worker_rx),
                k(n.worker_tx),
                k(n.socket_drops),
                k(n.fill_ring_empty)
            );
            for (reason, v) in &n.worker_drops {
                let _ = write!(line, ", {reason} {}", k(*v));
            }
        }
        let _ = writeln!(
            line,
            "; received {}; unaccounted {}",
            k(l.received),
            k(l.unaccounted)
        );
        s.push_str(&line);
    }
    if let Some(first) = report.samples.first() {
        let _ = writeln!(
            s,
            "\nplacement ({} , {}):",
            first.path.label(),
            first.sink.label()
        );
        for line in &first.placement {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn figures_are_median_min_max() {
        let f = Figure::of([3.0, 1.0, 2.0]);
        assert_eq!((f.median, f.min, f.max), (2.0, 1.0, 3.0));
        let f = Figure::of([4.0, 1.0, 2.0, f64::NAN, 3.0]);
        assert_eq!((f.median, f.min, f.max), (2.5, 1.0, 4.0));
        assert_eq!(Figure::of([]), Figure::default());
    }

    #[test]
    fn parses_proc_stat_and_computes_core_loads() {
        let before = parse_proc_stat(
            "cpu  10 0 10 80 0 0 0 0 0 0\n\
             cpu0 100 0 50 800 50 0 10 0 0 0\n\
             cpu1 0 0 0 1000 0 0 0 0 0 0\nintr 5\n",
        );
        assert_eq!(before.len(), 2, "the aggregate line is skipped");
        let after = parse_proc_stat(
            "cpu0 150 0 100 800 50 0 60 0 0 0\n\
             cpu1 0 0 50 1050 0 0 0 0 0 0\n",
        );
        let loads = core_loads(&before, &after);
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[0].core, 0);
        assert!((loads[0].busy - 1.0).abs() < 1e-9, "{loads:?}");
        assert!((loads[0].softirq - 50.0 / 150.0).abs() < 1e-9);
        assert!((loads[1].busy - 0.5).abs() < 1e-9);
        assert!((loads[0].nice - 0.0).abs() < 1e-9);
        let later = parse_proc_stat("cpu1 0 30 50 1070 0 0 0 0 0 0\n");
        let loads = core_loads(&after, &later);
        assert!((loads[0].nice - 0.6).abs() < 1e-9, "{loads:?}");
    }

    #[test]
    fn parses_ip_json() {
        let link = r#"[{"ifname":"eth0","stats64":{"rx":{"packets":1},"tx":{"bytes":9,"packets":42,"dropped":7}}}]"#;
        assert_eq!(
            parse_link_stats(link),
            Some(LinkStats {
                tx_packets: 42,
                tx_dropped: 7
            })
        );
        assert_eq!(parse_link_stats("[]"), None);
        let neigh = r#"[{"dst":"10.244.1.1","dev":"eth0","lladdr":"02:00:00:11:01:00","state":["REACHABLE"]}]"#;
        assert_eq!(
            parse_neighbour_mac(neigh),
            Some(MacAddr([2, 0, 0, 0x11, 1, 0]))
        );
        assert_eq!(
            parse_neighbour_mac(r#"[{"dst":"10.244.1.1","state":["FAILED"]}]"#),
            None
        );
    }

    fn node_stats(
        rx: u64,
        tx: u64,
        socket_dropped: u64,
        drops: &[(&str, u64)],
    ) -> kxdp_node::stats::NodeStats {
        let worker = kxdp_dataplane::counters::CounterSnapshot {
            rx_packets: rx,
            tx_packets: tx,
            drops: drops.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            ..Default::default()
        };
        serde_json::from_value(serde_json::json!({
            "node": "n",
            "generation": 1,
            "routes": 0,
            "workers": [worker],
            "ports": [{
                "worker": 0, "interface": "ul0", "queue": 0,
                "bind_mode": "copy", "xdp_mode": "native",
                "kernel": {"rx_dropped": socket_dropped, "rx_ring_full": 0,
                           "rx_fill_ring_empty": 3, "rx_invalid_descs": 0,
                           "tx_invalid_descs": 0}
            }]
        }))
        .expect("node stats")
    }

    #[test]
    fn the_ledger_accounts_for_every_counted_frame_per_second() {
        // Two seconds: node1 took 1,800 of 2,000 frames (200 dropped at
        // its socket, which its workers count as rx_ring_full), dropped
        // 100 as no_route, sent 1,700; node2 got them, dropped 50 as
        // ttl_expired; the sink counted 1,600 (50 not accounted for).
        let n1 = NodeLedger::between(
            "node1",
            &node_stats(10, 10, 5, &[("no_route", 1), ("rx_ring_full", 5)]),
            &node_stats(
                1_810,
                1_710,
                205,
                &[("no_route", 101), ("rx_ring_full", 205), ("unmoved", 0)],
            ),
            2.0,
        );
        assert_eq!(n1.worker_rx, 900.0);
        assert_eq!(n1.worker_tx, 850.0);
        assert_eq!(n1.socket_drops, 100.0);
        assert_eq!(n1.worker_drops.get("no_route"), Some(&50.0));
        assert!(!n1.worker_drops.contains_key("unmoved"));
        let n2 = NodeLedger::between(
            "node2",
            &node_stats(0, 0, 0, &[]),
            &node_stats(1_700, 1_650, 0, &[("ttl_expired", 50)]),
            2.0,
        );
        let mut s = sample(RatePath::Kxdp, SinkPoint::Pod, 800.0, 0.0);
        s.generator_tx_pps = 1_000.0;
        s.generator_dropped_pps = 0.0;
        let l = ledger(&s, vec![n1, n2]);
        assert_eq!(l.generated, 1_000.0);
        assert_eq!(l.received, 800.0);
        // The socket drops once, not twice.
        assert_eq!(l.unaccounted, 1_000.0 - 100.0 - 50.0 - 25.0 - 800.0);
        assert_eq!(l.unaccounted, 25.0);
        s.ledger = Some(l);
        let text = table(&RateReport {
            frame_bytes: 64,
            flows: 8,
            seconds: 2.0,
            rounds: 1,
            dut_core: 1,
            generator_core: 0,
            samples: vec![s],
            summaries: Vec::new(),
            ratios: Vec::new(),
            skipped: Vec::new(),
        });
        assert!(text.contains("where kxdp's frames went"), "{text}");
        assert!(
            text.contains("node1 rx 0.9 tx 0.8, of its drops at its sockets 0.1"),
            "{text}"
        );
        assert!(text.contains("no_route 0.1"), "{text}");
        assert!(text.contains("ttl_expired 0.0"), "{text}");
        assert!(text.contains("unaccounted 0.0"), "{text}");
    }

    fn sample(path: RatePath, sink: SinkPoint, rx: f64, per_core: f64) -> RateSample {
        RateSample {
            path,
            sink,
            round: 0,
            seconds: 1.0,
            generator_tx_pps: 1e6,
            generator_dropped_pps: 0.0,
            encap_pps: rx,
            received_pps: rx,
            received_frame_bytes: 64.0,
            loss_pct: 0.0,
            cores: Vec::new(),
            dut_per_core_pps: per_core,
            dut_cpu_s_per_mpkt: 1.0,
            total_cpu_s_per_mpkt: 1.0,
            worker_cycles_per_packet: None,
            ledger: None,
            placement: Vec::new(),
        }
    }

    #[test]
    fn summaries_and_ratios() {
        let mut options = RateOptions::new(PathBuf::from("kxdp"));
        options.sinks = vec![SinkPoint::Underlay];
        let samples = vec![
            sample(RatePath::Kxdp, SinkPoint::Underlay, 900.0, 1000.0),
            sample(RatePath::KernelVxlan, SinkPoint::Underlay, 100.0, 200.0),
            sample(RatePath::Kxdp, SinkPoint::Underlay, 1100.0, 1000.0),
            sample(RatePath::KernelVxlan, SinkPoint::Underlay, 100.0, 200.0),
        ];
        let skipped = vec![SkippedPath {
            path: RatePath::Ovs,
            reason: "`ovs-vswitchd` is not installed".into(),
        }];
        let report = summarise(&options, samples, skipped);
        assert_eq!(report.summaries.len(), 2);
        let kxdp = report
            .summaries
            .iter()
            .find(|s| s.path == RatePath::Kxdp)
            .unwrap();
        assert_eq!(kxdp.received_pps.median, 1000.0);
        assert_eq!(kxdp.received_pps.min, 900.0);
        assert_eq!(report.ratios.len(), 1);
        assert!((report.ratios[0].received_pps - 10.0).abs() < 1e-9);
        assert!((report.ratios[0].dut_per_core_pps - 5.0).abs() < 1e-9);
        let t = table(&report);
        assert_eq!(report.ratios[0].against, RatePath::KernelVxlan);
        assert!(
            t.contains("kxdp / kernel-vxlan") && t.contains("10.00×"),
            "{t}"
        );
        assert!(t.contains("ovs: not measured: `ovs-vswitchd`"), "{t}");
    }

    #[test]
    fn external_paths_ratios_and_pod_sink_not_applicable() {
        assert!(RatePath::Testpmd.measures(SinkPoint::Underlay));
        assert!(!RatePath::Testpmd.measures(SinkPoint::Pod));
        assert!(!RatePath::Ovs.measures(SinkPoint::Pod));
        assert!(RatePath::Routed.measures(SinkPoint::Pod));
        let options = RateOptions::new(PathBuf::from("kxdp"));
        let samples = vec![
            sample(RatePath::Kxdp, SinkPoint::Underlay, 1200.0, 1500.0),
            sample(RatePath::Testpmd, SinkPoint::Underlay, 600.0, 500.0),
            sample(RatePath::Routed, SinkPoint::Underlay, 300.0, 300.0),
            sample(RatePath::Kxdp, SinkPoint::Pod, 800.0, 1000.0),
            sample(RatePath::Routed, SinkPoint::Pod, 200.0, 250.0),
        ];
        let report = summarise(&options, samples, Vec::new());
        let ratio = |sink, against| {
            report
                .ratios
                .iter()
                .find(|r| r.sink == sink && r.against == against)
                .map(|r| r.received_pps)
        };
        assert_eq!(ratio(SinkPoint::Underlay, RatePath::Testpmd), Some(2.0));
        assert_eq!(ratio(SinkPoint::Underlay, RatePath::Routed), Some(4.0));
        assert_eq!(ratio(SinkPoint::Pod, RatePath::Routed), Some(4.0));
        assert_eq!(ratio(SinkPoint::Pod, RatePath::Testpmd), None);
        assert_eq!(ratio(SinkPoint::Underlay, RatePath::Ovs), None);
        let t = table(&report);
        assert!(t.contains("kxdp / testpmd: received 2.00×"), "{t}");
        assert!(t.contains("testpmd: pod-to-pod n/a"), "{t}");
        assert!(!t.contains("ovs: pod-to-pod n/a"), "{t}");
    }

    #[test]
    fn paths_parse_from_their_labels() {
        for path in RatePath::ALL {
            assert_eq!(path.label().parse::<RatePath>(), Ok(path));
        }
        assert!("dpdk".parse::<RatePath>().is_err());
    }
}
