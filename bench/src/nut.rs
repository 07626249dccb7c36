//! The node under test: `kxdp bench`'s headline table.
//!
//! Every row builds the same two-node testbed on a direct underlay veth and
//! swaps only node1's dataplane, the node under test. **Node2 is always a
//! kernel VXLAN node in Flannel's layout** (a `cni0` bridge, `flannel.1`,
//! static routes, neighbours and fdb entries; VNI 1 as Flannel's default),
//! identical in every row but `routed`, whose host-gw layout needs both
//! nodes routed. A kernel node needs no core of its own; a kxdp node, as in
//! production NFV, gets one: node1's kxdp worker has core 1 to itself.
//!
//! Rows ([`NutRow`]), interleaved round by round (A B C … A B C):
//! - `kernel-vxlan`: node1 a Flannel kernel node too, every offload at the
//!   kernel's default on both nodes: the kernel as deployed;
//! - `kernel-vxlan-tx-off`: the same with the setting the kxdp rows need,
//!   transmit offloads off on both nodes' `ul0` (node2's so that kxdp
//!   receives finished checksums, as from a NIC on a wire): what that
//!   setting costs the kernel;
//! - `routed`: both nodes host-gw, no overlay (reference only);
//! - `kxdp`: node1 runs kxdp with one busy-polling worker on core 1;
//! - `kxdp-adaptive`: the same with an adaptive worker;
//! - `ovs-vxlan`: Open vSwitch's userspace datapath on node1, listed with
//!   the reason it is not measured yet.
//!
//! Per row and round: UDP request/response latency (the `latency` module:
//! client pod on node1, echo server pod on node2, blocking and spinning
//! client, at a low rate and under a background stream from a loader pod on
//! node1 to a sink pod on node2), and TCP goodput in each direction (node1
//! → node2 and node2 → node1, one connection, pod to pod). The 64-byte
//! packet rate per row is not measured here yet (the `rate` module measures
//! it for the two-node layouts).
//!
//! Cores (2-core machine): everything this process starts (client, echo
//! server, background stream and its sink, TCP sender and receiver, kxdp's
//! non-worker threads) runs on core 0; node1's kxdp worker on core 1. The
//! kernel's veth, bridge, routing and vxlan work runs in the softirq of the
//! core that transmitted into the veth: core 0 for what the pods send, core
//! 1 for what kxdp's worker sends (its copy-mode `sendto` on `ul0`, so
//! node2's receive of kxdp's frames runs on core 1). Each row lists where
//! each piece ran (`placement`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use kxdp_config::{PollMode, WorkerSpec};
use kxdp_testbed::{
    pod_ip, tcp_transfer, KxdpProcess, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay,
    UnderlayOffloads,
};
use serde::Serialize;

use crate::figures::{self, LatencyFigures};
use crate::latency::{self, LatencyCase, LatencyOptions, LatencyPods, LatencySample, Spread};

/// The tenant and its VNI (Flannel's default VNI: device `flannel.1`).
const TENANT: &str = "blue";
const VNI: u32 = 1;

/// What node1, the node under test, runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NutRow {
    /// A Flannel kernel VXLAN node, every offload at its default on both
    /// nodes (the baseline).
    KernelVxlan,
    /// The same with transmit offloads off on both nodes' underlay, the
    /// setting the kxdp rows need.
    KernelVxlanTxOff,
    /// Both nodes host-gw, no overlay (reference only).
    Routed,
    /// kxdp, one busy-polling worker on the worker core.
    Kxdp,
    /// kxdp, one adaptive worker on the worker core.
    KxdpAdaptive,
    /// Open vSwitch's userspace datapath with afxdp ports and a VXLAN
    /// tunnel port (not measured yet).
    OvsVxlan,
}

impl NutRow {
    /// Every row, in round and table order.
    pub const ALL: [NutRow; 6] = [
        NutRow::KernelVxlan,
        NutRow::KernelVxlanTxOff,
        NutRow::Routed,
        NutRow::Kxdp,
        NutRow::KxdpAdaptive,
        NutRow::OvsVxlan,
    ];

    /// Label in tables and file names.
    pub fn label(self) -> &'static str {
        match self {
            NutRow::KernelVxlan => "kernel-vxlan",
            NutRow::KernelVxlanTxOff => "kernel-vxlan-tx-off",
            NutRow::Routed => "routed",
            NutRow::Kxdp => "kxdp",
            NutRow::KxdpAdaptive => "kxdp-adaptive",
            NutRow::OvsVxlan => "ovs-vxlan",
        }
    }

    /// Why this row is not measured, if it is not.
    pub fn not_measured(self) -> Option<&'static str> {
        match self {
            NutRow::OvsVxlan => Some(
                "Open vSwitch as node1 (afxdp ports for the pod veths and ul0, a VXLAN tunnel \
                 port to node2, PMD on the worker core) is not built into the bench yet (#18)",
            ),
            _ => None,
        }
    }

    fn node1_kind(self) -> NodeKind {
        match self {
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff => NodeKind::KernelVxlan,
            NutRow::Routed => NodeKind::Routed,
            NutRow::Kxdp | NutRow::KxdpAdaptive | NutRow::OvsVxlan => NodeKind::Kxdp,
        }
    }

    fn node2_kind(self) -> NodeKind {
        match self {
            NutRow::Routed => NodeKind::Routed,
            _ => NodeKind::KernelVxlan,
        }
    }

    /// Offloads of node1's and node2's `ul0`.
    fn offloads(self) -> (UnderlayOffloads, UnderlayOffloads) {
        match self {
            NutRow::KernelVxlan | NutRow::Routed => (
                UnderlayOffloads::KernelDefault,
                UnderlayOffloads::KernelDefault,
            ),
            NutRow::KernelVxlanTxOff | NutRow::Kxdp | NutRow::KxdpAdaptive | NutRow::OvsVxlan => {
                (UnderlayOffloads::TxOff, UnderlayOffloads::TxOff)
            }
        }
    }

    fn poll_mode(self) -> Option<PollMode> {
        match self {
            NutRow::Kxdp => Some(PollMode::Busy),
            NutRow::KxdpAdaptive => Some(PollMode::Adaptive),
            _ => None,
        }
    }

    /// What node1 and node2 are in this row, in words.
    fn nodes(self, worker_core: usize) -> (String, String) {
        let (o1, o2) = self.offloads();
        let node1 = match self {
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff => {
                format!("kernel vxlan (Flannel), ul0 offloads {}", o1.label())
            }
            NutRow::Routed => format!("kernel host-gw, ul0 offloads {}", o1.label()),
            NutRow::Kxdp | NutRow::KxdpAdaptive => format!(
                "kxdp, 1 {} worker on core {worker_core}, ul0 offloads {}",
                mode_label(self.poll_mode()),
                o1.label()
            ),
            NutRow::OvsVxlan => {
                format!("Open vSwitch userspace datapath, PMD on core {worker_core}")
            }
        };
        let node2 = match self.node2_kind() {
            NodeKind::Routed => format!("kernel host-gw (reference), ul0 offloads {}", o2.label()),
            _ => format!("kernel vxlan (Flannel), ul0 offloads {}", o2.label()),
        };
        (node1, node2)
    }

    /// The topology of this row: client and loader pods on node1, server
    /// and sink pods on node2.
    fn topology(self, worker_core: usize) -> TopologySpec {
        let (o1, o2) = self.offloads();
        let mut node1 = NodeSpec::new("node1", self.node1_kind())
            .with_pod("client", TENANT, pod_ip(1, 10))
            .with_pod("loader", TENANT, pod_ip(1, 11))
            .with_underlay_offloads(o1);
        if let Some(mode) = self.poll_mode() {
            node1.workers = WorkerSpec {
                count: 1,
                cores: vec![worker_core],
                poll_mode: mode,
                ..WorkerSpec::default()
            };
        }
        let node2 = NodeSpec::new("node2", self.node2_kind())
            .with_pod("server", TENANT, pod_ip(2, 10))
            .with_pod("sink", TENANT, pod_ip(2, 11))
            .with_underlay_offloads(o2);
        TopologySpec::new(Underlay::Direct, &[(TENANT, VNI)])
            .with_node(node1)
            .with_node(node2)
    }

    /// Where each piece runs in this row.
    fn placement(self, worker_core: usize, other_core: usize) -> Vec<String> {
        let mut placement = vec![format!(
            "core {other_core}: client, echo server, background stream and its sink, \
             TCP sender and receiver (this process; the spinning client at nice 19)"
        )];
        match self {
            NutRow::Kxdp | NutRow::KxdpAdaptive => {
                placement.push(format!(
                    "core {worker_core}: node1 kxdp worker ({} poll), nothing else scheduled",
                    mode_label(self.poll_mode())
                ));
                placement.push(format!(
                    "core {worker_core}: softirq of the worker's copy-mode transmits on ul0: \
                     node2's receive of them (vxlan decap, bridge, delivery to the pod)"
                ));
                placement.push(format!(
                    "core {other_core}: kxdp's other threads (control, API); softirq of the \
                     pods' transmits: node1's pod-veth XDP redirect into the worker's socket, \
                     node2's bridge, routing and vxlan encap, node1's ul0 XDP redirect"
                ));
            }
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff | NutRow::Routed => {
                placement.push(format!(
                    "core {other_core}: softirq of the pods' transmits: both nodes' bridge, \
                     routing{} (veth receive runs on the transmitting core)",
                    if self == NutRow::Routed {
                        ""
                    } else {
                        ", vxlan encap and decap"
                    }
                ));
                placement.push(format!(
                    "core {worker_core}: nothing of the bench (a kernel node needs no core of its own)"
                ));
            }
            NutRow::OvsVxlan => {}
        }
        placement
    }
}

fn mode_label(mode: Option<PollMode>) -> &'static str {
    match mode {
        Some(PollMode::Busy) => "busy",
        Some(PollMode::Adaptive) => "adaptive",
        _ => "-",
    }
}

impl std::str::FromStr for NutRow {
    type Err = String;

    /// A row by its [label](NutRow::label).
    fn from_str(s: &str) -> Result<NutRow, String> {
        NutRow::ALL
            .into_iter()
            .find(|r| r.label() == s)
            .ok_or_else(|| {
                let labels: Vec<&str> = NutRow::ALL.iter().map(|r| r.label()).collect();
                format!("unknown row {s:?} (one of {})", labels.join(", "))
            })
    }
}

/// Parameters of a node-under-test run.
#[derive(Clone, Debug)]
pub struct NutOptions {
    /// Rounds (each measured row once per round), at least 1.
    pub rounds: usize,
    /// Latency probes, pacing and background stream.
    pub latency: LatencyOptions,
    /// Bytes of each TCP transfer (one per direction).
    pub tcp_bytes: u64,
    /// Where the HdrHistogram logs and plots go.
    pub out_dir: PathBuf,
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// Core of node1's kxdp worker, which nothing else uses.
    pub worker_core: usize,
    /// Core of everything else.
    pub other_core: usize,
    /// Rows, in round order (default [`NutRow::ALL`]).
    pub rows: Vec<NutRow>,
}

/// One row's figures over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct NutRowFigures {
    /// The row.
    pub row: NutRow,
    /// Node1, the node under test, in words.
    pub node1: String,
    /// Node2, the peer, in words.
    pub node2: String,
    /// Why the row was not measured (then every figure list is empty).
    pub not_measured: Option<String>,
    /// Latency per case ([`LatencyCase::ALL`] order).
    pub latency: Vec<LatencyFigures>,
    /// TCP goodput pod to pod, node1 → node2, Gbit/s.
    pub tcp_node1_to_node2_gbps: Spread,
    /// TCP goodput pod to pod, node2 → node1, Gbit/s.
    pub tcp_node2_to_node1_gbps: Spread,
    /// What ran where.
    pub placement: Vec<String>,
}

/// The whole node-under-test run.
#[derive(Clone, Debug, Serialize)]
pub struct NutReport {
    /// Rounds made.
    pub rounds: usize,
    /// Probes per latency case and round.
    pub probes: u64,
    /// Background stream in the loaded cases, datagrams/s.
    pub load_pps: u64,
    /// Bytes per TCP transfer.
    pub tcp_bytes: u64,
    /// Which core ran what.
    pub cores: BTreeMap<String, String>,
    /// Per row, in table order.
    pub rows: Vec<NutRowFigures>,
    /// What is not measured yet in any row, and why.
    pub not_measured: Vec<String>,
    /// Files written (HdrHistogram logs and plots).
    pub files: Vec<String>,
}

/// What one round of one row measured.
struct RoundSample {
    latency: Vec<LatencySample>,
    tcp_1_to_2_gbps: f64,
    tcp_2_to_1_gbps: f64,
}

/// A built testbed with node1's kxdp running (kxdp rows).
struct Bed {
    kxdp: Option<KxdpProcess>,
    testbed: Testbed,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(p) = &mut self.kxdp {
            let _ = p.terminate();
        }
    }
}

fn measure_round(
    row: NutRow,
    options: &NutOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RoundSample> {
    let testbed = Testbed::build(row.topology(options.worker_core))
        .with_context(|| format!("building the {} testbed", row.label()))?;
    let kxdp = match row.node1_kind() {
        NodeKind::Kxdp => Some(
            testbed
                .start_kxdp("node1", &options.kxdp, &[])
                .context("starting kxdp on node1")?,
        ),
        _ => None,
    };
    let mut bed = Bed { kxdp, testbed };
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
    // Warm up: neighbours resolved, caches filled; and the path works.
    let warm = kxdp_testbed::ping(
        &client.netns,
        IpAddr::V4(server.ip),
        3,
        Duration::from_millis(10),
    )
    .with_context(|| format!("{}: ping client -> server", row.label()))?;
    if warm.received == 0 {
        bail!(
            "{}: the client cannot reach the server {}: 0 of {} pings answered",
            row.label(),
            server.ip,
            warm.sent
        );
    }
    let samples = latency::measure_all(&pods, &options.latency, row.label(), progress)?;
    let mut tcp = |from: &kxdp_testbed::Pod, to: &kxdp_testbed::Pod, way: &str| {
        let step = format!("{} tcp {way}", row.label());
        progress(&step);
        tcp_transfer(&from.netns, &to.netns, IpAddr::V4(to.ip), options.tcp_bytes).context(step)
    };
    let there = tcp(client, server, "node1 -> node2")?;
    let back = tcp(server, client, "node2 -> node1")?;
    if let Some(p) = &mut bed.kxdp {
        if !p.is_running() {
            bail!(
                "kxdp on node1 died during the {} measurement:\n{}",
                row.label(),
                p.log_tail(20)
            );
        }
    }
    Ok(RoundSample {
        latency: samples,
        tcp_1_to_2_gbps: there.bits_per_second() / 1e9,
        tcp_2_to_1_gbps: back.bits_per_second() / 1e9,
    })
}

/// Run every row `rounds` times, interleaved; `progress` gets a short line
/// per step.
pub fn run(options: &NutOptions, progress: &mut dyn FnMut(&str)) -> Result<NutReport> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    // Everything this process starts from here on (echo servers, the
    // background stream, TCP threads, kxdp's non-worker threads) inherits
    // this core: node1's kxdp worker keeps its core to itself.
    kxdp_dataplane::worker::pin_to_core(Some(options.other_core));
    let mut rows: Vec<NutRow> = Vec::new();
    for &row in &options.rows {
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let rounds = options.rounds.max(1);
    let mut per_row: BTreeMap<NutRow, Vec<RoundSample>> = BTreeMap::new();
    for round in 0..rounds {
        for &row in rows.iter().filter(|r| r.not_measured().is_none()) {
            let mut step = |s: &str| {
                progress(&format!(
                    "node under test, round {}/{rounds}: {s}",
                    round + 1
                ))
            };
            let sample = measure_round(row, options, &mut step)?;
            per_row.entry(row).or_default().push(sample);
        }
    }

    let mut files = Vec::new();
    let mut figures = Vec::new();
    let mut curves_by_case: BTreeMap<String, Vec<(String, Histogram<u64>)>> = BTreeMap::new();
    for &row in &rows {
        let (node1, node2) = row.nodes(options.worker_core);
        let placement = row.placement(options.worker_core, options.other_core);
        let Some(samples) = per_row.get(&row) else {
            figures.push(NutRowFigures {
                row,
                node1,
                node2,
                not_measured: Some(
                    row.not_measured()
                        .unwrap_or("not in the rows asked for")
                        .to_string(),
                ),
                latency: Vec::new(),
                tcp_node1_to_node2_gbps: Spread::default(),
                tcp_node2_to_node1_gbps: Spread::default(),
                placement,
            });
            continue;
        };
        let latency_rounds: Vec<&[LatencySample]> =
            samples.iter().map(|s| s.latency.as_slice()).collect();
        let mut latency = Vec::new();
        for (f, merged) in figures::summarise_latency(
            &format!("nut-{}", row.label()),
            &latency_rounds,
            &options.out_dir,
            &mut files,
        )? {
            curves_by_case
                .entry(f.case.clone())
                .or_default()
                .push((row.label().to_string(), merged));
            latency.push(f);
        }
        let spread =
            |f: fn(&RoundSample) -> f64| Spread::of(&samples.iter().map(f).collect::<Vec<_>>());
        figures.push(NutRowFigures {
            row,
            node1,
            node2,
            not_measured: None,
            latency,
            tcp_node1_to_node2_gbps: spread(|s| s.tcp_1_to_2_gbps),
            tcp_node2_to_node1_gbps: spread(|s| s.tcp_2_to_1_gbps),
            placement,
        });
    }
    figures::write_latency_plots(
        "nut-latency",
        ", node under test (node2: kernel vxlan)",
        &curves_by_case,
        &options.out_dir,
        &mut files,
    )?;
    Ok(NutReport {
        rounds,
        probes: options.latency.count,
        load_pps: options.latency.load_pps,
        tcp_bytes: options.tcp_bytes,
        cores: cores(options),
        rows: figures,
        not_measured: vec![
            "64-byte packet rate per row (encap: generator in a node1 pod, sink on node2's ul0; \
             decap: generator in a node2 pod, sink on the node1 pod's eth0): not in this table yet; \
             `kxdp-bench rate` (the rate table of the full run) measures it for two-node layouts"
                .to_string(),
        ],
        files,
    })
}

/// Which core runs what, for every row.
fn cores(options: &NutOptions) -> BTreeMap<String, String> {
    let (w, o) = (options.worker_core, options.other_core);
    let mut cores = BTreeMap::new();
    cores.insert(
        "node1 kxdp worker (kxdp rows)".to_string(),
        format!("core {w}, alone: busy poll (kxdp) or adaptive (kxdp-adaptive)"),
    );
    cores.insert(
        "kxdp's other threads (control, API)".to_string(),
        format!("core {o}"),
    );
    cores.insert(
        "client, echo server, background stream and sink, TCP sender and receiver".to_string(),
        format!("core {o} (the spinning client at nice 19)"),
    );
    cores.insert(
        "kernel softirq (veth receive, bridge, routing, vxlan)".to_string(),
        format!(
            "the core that transmitted into the veth: core {o} for the pods' frames, \
             core {w} for what node1's kxdp worker sends"
        ),
    );
    cores
}

/// The terminal table (markdown).
pub fn table(report: &NutReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Node under test: node1 is the node under test, node2 is always a kernel VXLAN node \
         (Flannel layout)"
    );
    let _ = writeln!(
        s,
        "\nmedian over {} round(s) [min–max]; {} probes per case and round; background stream {} \
         datagrams/s; TCP {} MiB per transfer\n",
        report.rounds,
        report.probes,
        report.load_pps,
        report.tcp_bytes >> 20
    );
    let _ = writeln!(s, "| row | node1 (under test) | node2 |");
    let _ = writeln!(s, "|---|---|---|");
    for r in &report.rows {
        let _ = writeln!(s, "| {} | {} | {} |", r.row.label(), r.node1, r.node2);
    }
    let cell = |sp: &Spread| format!("{:.1} [{:.0}–{:.0}]", sp.median, sp.min, sp.max);
    let _ = writeln!(s, "\nUDP request/response latency, µs\n");
    let _ = writeln!(
        s,
        "| row | client/load | p50 | p90 | p99 | p99.9 | max | loss % | stream delivered % |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for case in LatencyCase::ALL {
        for r in &report.rows {
            if let Some(reason) = &r.not_measured {
                if case == LatencyCase::ALL[0] {
                    let _ = writeln!(
                        s,
                        "| {} | all | not measured: {reason} | | | | | | |",
                        r.row.label()
                    );
                }
                continue;
            }
            if let Some(l) = r.latency.iter().find(|l| l.case == case.label()) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
                    r.row.label(),
                    l.case,
                    cell(&l.p50_us),
                    cell(&l.p90_us),
                    cell(&l.p99_us),
                    cell(&l.p999_us),
                    cell(&l.max_us),
                    l.loss_percent.median,
                    l.load_delivered_percent.median
                );
            }
        }
    }
    let gbps = |sp: &Spread| format!("{:.2} [{:.2}–{:.2}]", sp.median, sp.min, sp.max);
    let _ = writeln!(s, "\nTCP goodput pod to pod, one connection, Gbit/s\n");
    let _ = writeln!(s, "| row | node1 → node2 | node2 → node1 |");
    let _ = writeln!(s, "|---|---|---|");
    for r in &report.rows {
        match &r.not_measured {
            Some(reason) => {
                let _ = writeln!(s, "| {} | not measured: {reason} | |", r.row.label());
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    r.row.label(),
                    gbps(&r.tcp_node1_to_node2_gbps),
                    gbps(&r.tcp_node2_to_node1_gbps)
                );
            }
        }
    }
    for r in &report.rows {
        if let Some(reason) = &r.not_measured {
            let _ = writeln!(s, "\n{}: not measured: {reason}", r.row.label());
        }
    }
    for what in &report.not_measured {
        let _ = writeln!(s, "\nnot measured: {what}");
    }
    let _ = writeln!(s, "\ncores (node under test):");
    for (what, core) in &report.cores {
        let _ = writeln!(s, "  {what}: {core}");
    }
    for r in report.rows.iter().filter(|r| r.not_measured.is_none()) {
        let _ = writeln!(s, "  {}:", r.row.label());
        for p in &r.placement {
            let _ = writeln!(s, "    {p}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_parse_from_their_labels() {
        for row in NutRow::ALL {
            assert_eq!(row.label().parse::<NutRow>().unwrap(), row);
        }
        assert!("ovs".parse::<NutRow>().is_err());
    }

    #[test]
    fn node2_is_a_kernel_vxlan_node_in_every_row_but_routed() {
        for row in NutRow::ALL {
            let spec = row.topology(1);
            assert_eq!(spec.nodes.len(), 2);
            let expected = if row == NutRow::Routed {
                NodeKind::Routed
            } else {
                NodeKind::KernelVxlan
            };
            assert_eq!(spec.nodes[1].kind, expected, "{}", row.label());
            assert_eq!(spec.tenants[0].vni, 1, "flannel.1");
        }
    }

    #[test]
    fn kxdp_rows_get_one_worker_on_the_worker_core_and_a_tx_off_peer() {
        for (row, mode) in [
            (NutRow::Kxdp, PollMode::Busy),
            (NutRow::KxdpAdaptive, PollMode::Adaptive),
        ] {
            let spec = row.topology(1);
            let n1 = &spec.nodes[0];
            assert_eq!(n1.kind, NodeKind::Kxdp);
            assert_eq!(n1.workers.count, 1);
            assert_eq!(n1.workers.cores, [1]);
            assert_eq!(n1.workers.poll_mode, mode);
            assert_eq!(spec.nodes[1].underlay_offloads, UnderlayOffloads::TxOff);
        }
        let spec = NutRow::KernelVxlan.topology(1);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::KernelDefault));
        let spec = NutRow::KernelVxlanTxOff.topology(1);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::TxOff));
    }

    #[test]
    fn only_ovs_is_not_measured() {
        let skipped: Vec<NutRow> = NutRow::ALL
            .into_iter()
            .filter(|r| r.not_measured().is_some())
            .collect();
        assert_eq!(skipped, [NutRow::OvsVxlan]);
    }
}
