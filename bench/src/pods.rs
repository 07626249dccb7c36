//! `kxdp-bench pods`: a node full of pods (issue #16). One kxdp node with
//! one worker gets pods added through the API at run time, as the CNI
//! plugin adds them (2, then 30, then 110: Kubernetes' default limit per
//! node); at each count, with every other pod idle:
//!
//! - **TCP** from pod 1 to pod 2, three transfers: the median goodput,
//!   and over all three the segments retransmitted, the frames the kernel
//!   dropped at their AF_XDP sockets (`fill_ring_empty` and the rest) and
//!   the worker's cycles per packet;
//! - **request/response**: UDP echo from pod 1 to pod 2, p50/p99;
//! - **bursts**: 100-byte UDP datagrams sent back to back from pod 3 to a
//!   socket in pod 4 (pods 1 and 2 when there are only two), in growing
//!   bursts; the largest that arrives whole is reported, and where the
//!   first lossy one lost its datagrams;
//! - every pod answers a ping from the node's first pod.
//!
//! Once with a busy-polling worker on its own core and once with an
//! adaptive one. The pods' node is built afresh per worker mode; kxdp's
//! resident memory is read at each count.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kxdp_config::{PollMode, WorkerSpec};
use kxdp_control::api::{api_socket_path, ApiTarget, BlockingClient};
use kxdp_node::stats::NodeStats;
use kxdp_testbed::{
    pod_ip, snmp_counters, tcp_transfer, udp_echo_server, udp_rtt, KxdpProcess, Netns, NodeKind,
    NodeSpec, RuntimePod, Testbed, TopologySpec, Underlay,
};
use serde::Serialize;

use crate::latency::Percentiles;

/// The node under test.
const NODE: &str = "node1";
/// The node's pod from its configuration file (the ping source).
const FILE_POD: &str = "a1";
/// Bytes of each datagram of a burst.
const BURST_DATAGRAM: usize = 100;
/// TCP transfers per pod count (the median is reported: one transfer of
/// 100 MB lasts under half a second, and this machine is shared).
const TCP_TRANSFERS: usize = 3;
/// Time for a burst's last datagrams to land before counting.
const BURST_SETTLE: Duration = Duration::from_millis(300);

/// Parameters of a run.
#[derive(Clone, Debug)]
pub struct PodsOptions {
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// Pod counts to measure at, ascending.
    pub counts: Vec<u32>,
    /// Worker modes, in order.
    pub modes: Vec<PollMode>,
    /// Bytes per TCP transfer.
    pub tcp_bytes: u64,
    /// Request/response probes per count.
    pub probes: u64,
    /// Burst sizes tried, ascending (stops at the first with a loss).
    pub bursts: Vec<u64>,
    /// Core of the kxdp worker.
    pub worker_core: usize,
    /// Core of this process (senders, receivers, servers) and kxdp's other
    /// threads.
    pub client_core: usize,
}

impl PodsOptions {
    /// 2, 30 and 110 pods; busy and adaptive; 100 MB of TCP, 2,000 probes,
    /// bursts of 512 to 16,384.
    pub fn new(kxdp: PathBuf) -> PodsOptions {
        PodsOptions {
            kxdp,
            counts: vec![2, 30, 110],
            modes: vec![PollMode::Busy, PollMode::Adaptive],
            tcp_bytes: 100_000_000,
            probes: 2_000,
            bursts: vec![512, 1024, 2048, 4096, 8192, 16_384],
            worker_core: 1,
            client_core: 0,
        }
    }

    /// A run for CI's smoke test: 2 and 6 pods, adaptive only, small.
    pub fn quick(kxdp: PathBuf) -> PodsOptions {
        PodsOptions {
            counts: vec![2, 6],
            modes: vec![PollMode::Adaptive],
            tcp_bytes: 8_000_000,
            probes: 200,
            bursts: vec![256, 1024],
            ..PodsOptions::new(kxdp)
        }
    }
}

/// Where the first burst with a loss lost its datagrams.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BurstLoss {
    /// Datagrams in that burst.
    pub burst: u64,
    /// Lost in all.
    pub lost: u64,
    /// At the sending pod's AF_XDP socket (the kernel's XDP_STATISTICS).
    pub at_socket: u64,
    /// Counted by kxdp's own drop reasons (socket drops excluded).
    pub in_kxdp: u64,
    /// At the sending pod's `eth0` before XDP (`tx_dropped`).
    pub at_veth: u64,
    /// Refused by the sender's own kernel (the send failed).
    pub refused: u64,
}

/// One pod count in one worker mode.
#[derive(Clone, Debug, Serialize)]
pub struct PodsRow {
    /// `busy` or `adaptive`.
    pub mode: String,
    /// Pods on the node added at run time (the file's pod not counted).
    pub pods: u32,
    /// Pods that answered a ping from the file's pod.
    pub answered_ping: u32,
    /// Seconds to wire and add the pods since the previous count.
    pub add_seconds: f64,
    /// TCP pod 1 → pod 2, Gbit/s: the median of [`TCP_TRANSFERS`].
    pub tcp_gbps: f64,
    /// Every transfer's goodput, Gbit/s, in order.
    pub tcp_gbps_each: Vec<f64>,
    /// Segments pod 1 sent.
    pub tcp_segments: u64,
    /// Of which retransmitted.
    pub tcp_retransmits: u64,
    /// Frames the kernel dropped at pod 1's and pod 2's sockets during the
    /// transfer.
    pub socket_drops: u64,
    /// Of which for an empty fill ring.
    pub fill_ring_empty: u64,
    /// Frames kxdp dropped during the transfer (every reason).
    pub kxdp_drops: u64,
    /// The worker's cycles per packet over the transfer's busy loops.
    pub cycles_per_packet: f64,
    /// UDP request/response pod 1 → pod 2.
    pub rr: Percentiles,
    /// Requests not answered.
    pub rr_lost: u64,
    /// Largest burst tried that arrived whole (0: none).
    pub largest_whole_burst: u64,
    /// The first burst with a loss, if one had any.
    pub first_lossy_burst: Option<BurstLoss>,
    /// kxdp's resident memory, kB.
    pub rss_kb: u64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct PodsReport {
    /// Rows, by mode then pod count.
    pub rows: Vec<PodsRow>,
    /// kxdp's frames per worker (UMEM) and frame size.
    pub umem: String,
    /// Which core ran what.
    pub cores: String,
}

fn mode_label(mode: PollMode) -> &'static str {
    match mode {
        PollMode::Busy => "busy",
        PollMode::Adaptive => "adaptive",
    }
}

/// Run every mode and count.
pub fn run(options: &PodsOptions, progress: &mut dyn FnMut(&str)) -> Result<PodsReport> {
    anyhow::ensure!(
        options.counts.first().is_some_and(|&c| c >= 2),
        "pod counts must start at 2 or more"
    );
    anyhow::ensure!(
        options.counts.windows(2).all(|w| w[0] < w[1]) && options.counts.last() <= Some(&200),
        "pod counts must be ascending, at most 200"
    );
    kxdp_dataplane::worker::pin_to_core(Some(options.client_core));
    let mut rows = Vec::new();
    let mut umem = String::new();
    for &mode in &options.modes {
        let label = mode_label(mode);
        progress(&format!("{label}: building the node"));
        let mut bed = Bed::build(options, mode)?;
        if umem.is_empty() {
            umem = bed.umem()?;
        }
        let mut api = bed.api()?;
        let mut pods: Vec<RuntimePod> = Vec::new();
        for &count in &options.counts {
            let started = Instant::now();
            while pods.len() < count as usize {
                let i = pods.len() as u32 + 1;
                progress(&format!("{label}: adding pod {i}/{count}"));
                let pod = RuntimePod::wire(&bed.testbed, NODE, i, runtime_ip(i))?;
                pod.register(&mut api, "blue")?;
                pods.push(pod);
            }
            let add_seconds = started.elapsed().as_secs_f64();
            progress(&format!("{label}, {count} pods: measuring"));
            let row = measure(&mut bed, options, mode, &pods, add_seconds, progress)
                .with_context(|| format!("{label} worker, {count} pods"))?;
            rows.push(row);
        }
        progress(&format!("{label}: removing the pods"));
        for pod in pods {
            pod.remove(&mut api)?;
        }
    }
    Ok(PodsReport {
        rows,
        umem,
        cores: format!(
            "kxdp worker: core {} (busy poll, or adaptive); senders, receivers, echo server, kxdp's other threads and the veths' softirq: core {}",
            options.worker_core, options.client_core
        ),
    })
}

/// Run-time pod `i`'s address: `10.244.1.(20 + i)`.
fn runtime_ip(i: u32) -> Ipv4Addr {
    pod_ip(1, (20 + i).min(250) as u8)
}

/// The node with kxdp running; kxdp stopped on drop, before the testbed goes.
struct Bed {
    process: KxdpProcess,
    testbed: Testbed,
}

impl Bed {
    fn build(options: &PodsOptions, mode: PollMode) -> Result<Bed> {
        let mut node =
            NodeSpec::new(NODE, NodeKind::Kxdp).with_pod(FILE_POD, "blue", pod_ip(1, 10));
        node.workers = WorkerSpec {
            count: 1,
            cores: vec![options.worker_core],
            poll_mode: mode,
            ..WorkerSpec::default()
        };
        // A direct underlay joins two nodes: the second is a kernel node
        // (nothing of it runs during the measures).
        let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
            .with_node(node)
            .with_node(NodeSpec::new("node2", NodeKind::KernelVxlan));
        let testbed = Testbed::build(spec).context("building the node")?;
        let process = testbed
            .start_kxdp(NODE, &options.kxdp, &[])
            .context("starting kxdp")?;
        Ok(Bed { process, testbed })
    }

    fn api(&self) -> Result<BlockingClient> {
        let socket = api_socket_path(self.testbed.node_config(NODE)?);
        Ok(BlockingClient::connect(&ApiTarget::Unix(socket))?)
    }

    fn stats(&self) -> Result<NodeStats> {
        let socket = api_socket_path(self.testbed.node_config(NODE)?);
        Ok(kxdp_control::stats::fetch(&socket)?)
    }

    fn umem(&self) -> Result<String> {
        let frames = self
            .stats()?
            .workers
            .first()
            .map(|w| w.frames.total)
            .unwrap_or_default();
        Ok(format!("{frames} frames per worker"))
    }

    fn rss_kb(&mut self) -> Result<u64> {
        let pid = self.process.pid().context("kxdp has exited")?;
        Ok(kxdp_testbed::rss_kb(pid)?)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.process.terminate();
    }
}

/// kxdp's drops over every reason (socket drops included).
fn kxdp_drops(stats: &NodeStats) -> u64 {
    stats.workers.iter().map(|w| w.total_drops()).sum()
}

/// (busy cycles, packets received) of the workers.
fn busy_cycles(stats: &NodeStats) -> (f64, u64) {
    stats.workers.iter().fold((0.0, 0), |(c, n), w| {
        (
            c + w.cycles_per_packet * w.rx_packets as f64,
            n + w.rx_packets,
        )
    })
}

fn tx_dropped(netns: &Netns) -> Result<u64> {
    Ok(netns.link_counter("eth0", "tx_dropped")?)
}

fn measure(
    bed: &mut Bed,
    options: &PodsOptions,
    mode: PollMode,
    pods: &[RuntimePod],
    add_seconds: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<PodsRow> {
    let (p1, p2) = (&pods[0], &pods[1]);
    let count = pods.len() as u32;
    let label = mode_label(mode);

    progress(&format!("{label}, {count} pods: ping every pod"));
    let source = &bed.testbed.pod(FILE_POD)?.netns;
    let answered_ping = pods
        .iter()
        .filter(|p| {
            source
                .exec_output("ping", &["-c", "1", "-W", "2", &p.ip.to_string()])
                .is_ok_and(|o| o.status.success())
        })
        .count() as u32;

    progress(&format!("{label}, {count} pods: TCP pod 1 -> pod 2"));
    let before = bed.stats()?;
    let (out0, retrans0) = snmp_counters(&p1.netns, "Tcp:", ["OutSegs", "RetransSegs"])?;
    let mut tcp_gbps_each = Vec::new();
    for _ in 0..TCP_TRANSFERS {
        let t = tcp_transfer(&p1.netns, &p2.netns, IpAddr::V4(p2.ip), options.tcp_bytes)?;
        tcp_gbps_each.push(t.bytes as f64 * 8.0 / t.duration.as_secs_f64() / 1e9);
    }
    let (out1, retrans1) = snmp_counters(&p1.netns, "Tcp:", ["OutSegs", "RetransSegs"])?;
    let after = bed.stats()?;
    let drops_at = |s: &NodeStats| {
        let (a, b) = (s.socket_drops(&p1.host_if), s.socket_drops(&p2.host_if));
        (a.0 + b.0, a.1 + b.1)
    };
    let (sock0, empty0) = drops_at(&before);
    let (sock1, empty1) = drops_at(&after);
    let (cycles0, rx0) = busy_cycles(&before);
    let (cycles1, rx1) = busy_cycles(&after);
    let cycles_per_packet = if rx1 > rx0 {
        (cycles1 - cycles0) / (rx1 - rx0) as f64
    } else {
        0.0
    };

    progress(&format!("{label}, {count} pods: request/response"));
    let server = udp_echo_server(&p2.netns, 0)?;
    let rtt = udp_rtt(
        &p1.netns,
        IpAddr::V4(p2.ip),
        server.port(),
        options.probes,
        Duration::from_millis(1),
        Duration::from_millis(200),
    )?;
    drop(server);

    let (from, to) = if pods.len() >= 4 {
        (&pods[2], &pods[3])
    } else {
        (p1, p2)
    };
    let mut largest_whole_burst = 0;
    let mut first_lossy_burst = None;
    for &burst in &options.bursts {
        progress(&format!("{label}, {count} pods: burst of {burst}"));
        let loss = send_burst(bed, from, to, burst)?;
        if loss.lost > 0 {
            first_lossy_burst = Some(loss);
            break;
        }
        largest_whole_burst = burst;
    }

    Ok(PodsRow {
        mode: label.to_string(),
        pods: count,
        answered_ping,
        add_seconds,
        tcp_gbps: crate::latency::Spread::of(&tcp_gbps_each).median,
        tcp_gbps_each,
        tcp_segments: out1 - out0,
        tcp_retransmits: retrans1 - retrans0,
        socket_drops: sock1 - sock0,
        fill_ring_empty: empty1 - empty0,
        kxdp_drops: kxdp_drops(&after) - kxdp_drops(&before),
        cycles_per_packet,
        rr: Percentiles::of(&rtt.histogram),
        rr_lost: rtt.lost,
        largest_whole_burst,
        first_lossy_burst,
        rss_kb: bed.rss_kb()?,
    })
}

/// `burst` datagrams back to back from `from` to a socket in `to` that
/// reads only afterwards: what did not reach `to`'s kernel (queued on the
/// socket or over its buffer, both counted there), and where it was lost.
fn send_burst(bed: &Bed, from: &RuntimePod, to: &RuntimePod, burst: u64) -> Result<BurstLoss> {
    let sink = to
        .netns
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))??;
    let port = sink.local_addr()?.port();
    let sender = from
        .netns
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))??;
    let (_, overflow0) = snmp_counters(&to.netns, "Udp:", ["InDatagrams", "RcvbufErrors"])?;
    let veth0 = tx_dropped(&from.netns)?;
    let before = bed.stats()?;
    let payload = [0x5au8; BURST_DATAGRAM];
    let mut refused = 0u64;
    for _ in 0..burst {
        // A send the sender's own kernel refuses (ENOBUFS) never left it.
        if sender.send_to(&payload, (to.ip, port)).is_err() {
            refused += 1;
        }
    }
    std::thread::sleep(BURST_SETTLE);
    sink.set_nonblocking(true)?;
    let mut queued = 0u64;
    let mut buf = [0u8; 256];
    while sink.recv(&mut buf).is_ok() {
        queued += 1;
    }
    let after = bed.stats()?;
    let (_, overflow1) = snmp_counters(&to.netns, "Udp:", ["InDatagrams", "RcvbufErrors"])?;
    let reached = queued + (overflow1 - overflow0);
    let at_socket = after.socket_drops(&from.host_if).0 - before.socket_drops(&from.host_if).0;
    let all_kxdp = kxdp_drops(&after) - kxdp_drops(&before);
    Ok(BurstLoss {
        burst,
        lost: burst.saturating_sub(reached),
        at_socket,
        in_kxdp: all_kxdp.saturating_sub(at_socket),
        at_veth: tx_dropped(&from.netns)? - veth0,
        refused,
    })
}

/// The largest burst taken whole; "≥" when no burst tried lost anything.
fn burst_cell(r: &PodsRow) -> String {
    match r.first_lossy_burst {
        Some(_) => r.largest_whole_burst.to_string(),
        None => format!("≥{}", r.largest_whole_burst),
    }
}

/// The terminal table.
pub fn table(report: &PodsReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pods per node: one kxdp worker, pods added at run time through the API, traffic between two of them while the rest idle ({})",
        report.umem
    );
    let _ = writeln!(
        s,
        "{:<9}{:>5}{:>6}{:>8}{:>8}{:>9}{:>10}{:>11}{:>8}{:>16}{:>7}{:>8}{:>9}",
        "worker",
        "pods",
        "ping",
        "add s",
        "TCP Gb",
        "retrans",
        "sock drop",
        "fill empty",
        "cyc/pkt",
        "RR p50/p99 µs",
        "lost",
        "burst",
        "RSS MB"
    );
    for r in &report.rows {
        let _ = writeln!(
            s,
            "{:<9}{:>5}{:>6}{:>8.1}{:>8.2}{:>9}{:>10}{:>11}{:>8.0}{:>16}{:>7}{:>8}{:>9.1}",
            r.mode,
            r.pods,
            r.answered_ping,
            r.add_seconds,
            r.tcp_gbps,
            r.tcp_retransmits,
            r.socket_drops,
            r.fill_ring_empty,
            r.cycles_per_packet,
            format!("{:.0}/{:.0}", r.rr.p50_us, r.rr.p99_us),
            r.rr_lost,
            burst_cell(r),
            r.rss_kb as f64 / 1024.0
        );
    }
    for r in &report.rows {
        if let Some(l) = &r.first_lossy_burst {
            let _ = writeln!(
                s,
                "  {} {} pods: burst of {} lost {} ({} at the sender's socket, {} in kxdp, {} at its veth, {} refused by its kernel)",
                r.mode, r.pods, l.burst, l.lost, l.at_socket, l.in_kxdp, l.at_veth, l.refused
            );
        }
    }
    let _ = writeln!(
        s,
        "  burst: the largest burst of 100-byte datagrams (pod 3 -> pod 4) taken without loss; cyc/pkt: the worker's busy cycles per received frame during the TCP transfer"
    );
    let _ = writeln!(s, "  cores: {}", report.cores);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mode: &str, pods: u32, lossy: bool) -> PodsRow {
        PodsRow {
            mode: mode.into(),
            pods,
            answered_ping: pods,
            add_seconds: 1.5,
            tcp_gbps: 2.25,
            tcp_gbps_each: vec![2.0, 2.25, 2.5],
            tcp_segments: 1000,
            tcp_retransmits: 3,
            socket_drops: 4,
            fill_ring_empty: 2,
            kxdp_drops: 0,
            cycles_per_packet: 812.4,
            rr: Percentiles {
                p50_us: 61.0,
                p99_us: 140.0,
                ..Percentiles::default()
            },
            rr_lost: 0,
            largest_whole_burst: 4096,
            first_lossy_burst: lossy.then_some(BurstLoss {
                burst: 8192,
                lost: 17,
                at_socket: 17,
                in_kxdp: 0,
                at_veth: 0,
                refused: 0,
            }),
            rss_kb: 61_440,
        }
    }

    #[test]
    fn the_table_shows_every_row_and_where_a_burst_was_lost() {
        let report = PodsReport {
            rows: vec![row("busy", 2, false), row("adaptive", 110, true)],
            umem: "4096 frames per worker".into(),
            cores: "worker: core 1".into(),
        };
        let t = table(&report);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("4096 frames per worker"), "{t}");
        assert!(
            lines[2].starts_with("busy") && lines[2].contains("2.25"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("adaptive") && lines[3].contains(" 110"),
            "{t}"
        );
        assert!(
            lines[3].contains("61/140") && lines[3].contains("60.0"),
            "{t}"
        );
        assert!(lines[2].contains("≥4096") && !lines[3].contains('≥'), "{t}");
        assert!(
            t.contains("adaptive 110 pods: burst of 8192 lost 17 (17 at the sender's socket"),
            "{t}"
        );
        assert!(!t.contains("busy 2 pods: burst"), "{t}");
    }

    #[test]
    fn runtime_addresses_stay_inside_the_nodes_pod_cidr() {
        assert_eq!(runtime_ip(1), Ipv4Addr::new(10, 244, 1, 21));
        assert_eq!(runtime_ip(110), Ipv4Addr::new(10, 244, 1, 130));
        assert_eq!(runtime_ip(1000), Ipv4Addr::new(10, 244, 1, 250));
    }

    #[test]
    fn counts_must_start_at_two_and_ascend() {
        let mut o = PodsOptions::new(PathBuf::from("/nonexistent"));
        o.counts = vec![1, 30];
        assert!(run(&o, &mut |_| {}).is_err());
        o.counts = vec![30, 2];
        assert!(run(&o, &mut |_| {}).is_err());
    }
}
