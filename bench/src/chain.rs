//! The in-memory service-chain benchmark: Mpps on one core and ns per packet
//! of a three-stage chain — policy, per-flow policer, Maglev load balancer —
//! driven through [`ChainWorker::process`] over batches of 64-byte TCP
//! frames, as a dataplane worker drives it between parsing and routing.
//!
//! The traffic: 16 client pods (`app=client`) open 8192 connections in all
//! to a Service (ClusterIP `10.96.0.10:80`) with eight ready endpoints
//! (`app=web` pods, target port 8080). The clients' NetworkPolicy allows
//! egress to the service range on TCP 80, so the policy stage passes every
//! packet; the policer's per-flow rate is far above what each connection
//! sends here, so it passes every packet too; the load balancer rewrites
//! each frame's destination to its connection's backend. After the first
//! round every packet belongs to an established connection (one lookup in
//! the worker's connection table), which is the steady state of a node.
//!
//! The load balancer rewrites frames in place, so every batch first
//! restores the frames it rewrote (a 64-byte copy each); the restore is
//! timed on its own and subtracted, as in [`crate::pipeline`]. Time is the
//! thread's time on its core (`/proc/thread-self/schedstat`), so that other
//! processes sharing the core do not count against the chain; the wall
//! clock time is reported beside it. Building
//! each packet's [`PacketContext`] from its parsed metadata (the flow key)
//! is part of the measured cost, parsing is not (the pipeline benchmark
//! measures it).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use kxdp_config::NodeConfig;
use kxdp_dataplane::packet::{self, FrameMeta, L3};
use kxdp_vnf_chains::{
    ChainInput, ChainSet, ChainVerdict, ChainWorker, CompileOptions, Frames, PacketContext,
    WorkerLimits,
};
use serde::Serialize;

/// Frames per batch, as a worker's rx batch.
pub const BATCH: usize = 64;
/// Client pods.
pub const CLIENTS: usize = 16;
/// Connections in all (distinct frames cycled through) of the headline
/// figure; [`run_all`] also measures [`FEW_FLOWS`].
pub const FLOWS: usize = 8192;
/// Connections of the second row: their connection entries stay in the
/// core's caches.
pub const FEW_FLOWS: usize = 1024;
/// Endpoints of the Service.
pub const BACKENDS: usize = 8;
/// Bytes of each frame (Ethernet + IPv4 + TCP + 10 bytes of data).
pub const FRAME_BYTES: usize = 64;
/// The Service's ClusterIP.
pub const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The Service's port and its endpoints' target port.
pub const SERVICE_PORT: u16 = 80;
/// The endpoints' port.
pub const TARGET_PORT: u16 = 8080;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0x10, 1, 0x10];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0x11, 1, 0x10];

/// The address of client pod `i`.
pub fn client_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 1, 10 + i as u8)
}

/// The address of backend pod `i`.
pub fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 1, 100 + i as u8)
}

/// The benchmark's node: clients and backends as local pods, their
/// policies, the Service and the chain (in the configuration's YAML, so
/// that it is compiled exactly as `kxdp run` compiles a node's file).
pub fn config_yaml(policer_rate_pps: u64) -> String {
    let mut interfaces =
        String::from("  - { name: ul0, role: underlay, mac: \"02:00:00:01:01:00\" }\n");
    let mut pods = String::new();
    let mut endpoints = String::new();
    for i in 0..CLIENTS {
        interfaces.push_str(&format!(
            "  - {{ name: vc{i}, role: pod, mac: \"02:00:00:11:01:{:02x}\" }}\n",
            0x10 + i
        ));
        pods.push_str(&format!(
            "  - {{ name: client-{i}, tenant: blue, ip: {}, mac: \"02:00:00:10:01:{:02x}\", interface: vc{i}, labels: {{ app: client }} }}\n",
            client_ip(i),
            0x10 + i
        ));
    }
    for i in 0..BACKENDS {
        interfaces.push_str(&format!(
            "  - {{ name: vw{i}, role: pod, mac: \"02:00:00:11:01:{:02x}\" }}\n",
            0x80 + i
        ));
        pods.push_str(&format!(
            "  - {{ name: web-{i}, tenant: blue, ip: {}, mac: \"02:00:00:10:01:{:02x}\", interface: vw{i}, labels: {{ app: web }} }}\n",
            backend_ip(i),
            0x80 + i
        ));
        endpoints.push_str(&format!(
            "      - {{ ip: {}, pod: web-{i} }}\n",
            backend_ip(i)
        ));
    }
    format!(
        r#"node:
  name: bench1
  vtep: {{ ip: 192.168.100.1, interface: ul0 }}
  pod_cidrs: [ {{ tenant: blue, cidr: 10.244.1.0/24 }} ]
interfaces:
{interfaces}tenants: [ {{ name: blue, vni: 100 }} ]
pods:
{pods}services:
  - name: web
    tenant: blue
    cluster_ip: {CLUSTER_IP}
    ports: [ {{ protocol: tcp, port: {SERVICE_PORT}, target_port: {TARGET_PORT} }} ]
    endpoints:
{endpoints}policies:
  - name: clients
    pod_selector: {{ match_labels: {{ app: client }} }}
    policy_types: [Egress]
    egress:
      - to: [ {{ ip_block: {{ cidr: 10.96.0.0/12 }} }} ]
        ports: [ {{ protocol: tcp, port: {SERVICE_PORT} }} ]
      - ports: [ {{ protocol: udp, port: 53 }} ]
  - name: web
    pod_selector: {{ match_labels: {{ app: web }} }}
    ingress:
      - from: [ {{ pod_selector: {{ match_labels: {{ app: client }} }} }} ]
        ports: [ {{ protocol: tcp, port: {TARGET_PORT} }} ]
chains:
  - name: web
    tenant: blue
    classifier: {{ dst: 10.96.0.0/16, protocol: tcp }}
    functions:
      - {{ type: policy }}
      - {{ type: policer, rate_pps: {policer_rate_pps}, burst: 1000 }}
      - {{ type: load_balancer }}
"#
    )
}

/// The node configuration of [`config_yaml`].
pub fn config(policer_rate_pps: u64) -> NodeConfig {
    match NodeConfig::from_yaml_str(&config_yaml(policer_rate_pps)) {
        Ok(c) => c,
        Err(e) => panic!("the chain benchmark's own config is invalid: {e}"),
    }
}

/// The compiled chain set of `config`.
pub fn chain_set(config: &NodeConfig) -> ChainSet {
    match ChainSet::compile(
        &ChainInput::from_config(config),
        1,
        CompileOptions::default(),
        None,
    ) {
        Ok(set) => set,
        Err(e) => panic!("the chain benchmark's chain does not compile: {e}"),
    }
}

/// One connection's first-direction frame: client `flow % CLIENTS` from
/// port `20000 + flow / CLIENTS` to the ClusterIP.
pub fn frame(flow: usize) -> Vec<u8> {
    let client = client_ip(flow % CLIENTS);
    let sport = 20000u16.wrapping_add((flow / CLIENTS) as u16);
    let payload = [0x5au8; FRAME_BYTES - 54];
    let builder = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC)
        .ipv4(client.octets(), CLUSTER_IP.octets(), 64)
        .tcp(sport, SERVICE_PORT, 1000 + flow as u32, 64_000)
        .ack(1)
        .psh();
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    // Writing into a Vec cannot fail.
    let _ = builder.write(&mut out, &payload);
    out
}

/// The frames of the batch starting at flow `first`, in one flat buffer of
/// [`FRAME_BYTES`] per frame (what a worker's UMEM chunks are to it).
struct FlatFrames<'a> {
    buf: &'a mut [u8],
    first: usize,
}

impl Frames for FlatFrames<'_> {
    #[inline]
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        let at = (self.first + index) * FRAME_BYTES;
        self.buf.get_mut(at..at + FRAME_BYTES)
    }
}

/// What the chain did with the frames of one verification pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// Frames that passed the chain (to be routed).
    pub passed: u64,
    /// Frames the chain dropped.
    pub dropped: u64,
    /// Frames no chain claimed.
    pub no_chain: u64,
    /// Frames redirected into a VNF.
    pub redirected: u64,
    /// Passed frames rewritten to each backend, by backend index.
    pub per_backend: Vec<u64>,
    /// Passed frames whose destination is no backend.
    pub stray: u64,
}

/// One result row.
#[derive(Clone, Debug, Serialize)]
pub struct ChainResult {
    /// The chain's stages.
    pub stages: String,
    /// Connections cycled through.
    pub flows: usize,
    /// The Service's endpoints.
    pub backends: usize,
    /// Frame size in bytes.
    pub frame_bytes: usize,
    /// Batch size.
    pub batch: usize,
    /// Packets run through the chain while timed.
    pub packets: u64,
    /// Million packets per second on one core (restore subtracted), per
    /// second of the thread's time on its core.
    pub mpps: f64,
    /// Nanoseconds on the core per packet (restore subtracted).
    pub ns_per_packet: f64,
    /// Nanoseconds on the core per packet including the restore copy.
    pub ns_per_packet_with_restore: f64,
    /// Wall-clock nanoseconds per packet (restore subtracted): above
    /// `ns_per_packet` when other work shared the core.
    pub wall_ns_per_packet: f64,
    /// The chain's packet counter, over every packet it was given.
    pub chain_packets: u64,
    /// The chain's drop counter.
    pub chain_drops: u64,
    /// A last pass over every connection, untimed: what the chain decided.
    pub verdicts: Verdicts,
}

/// Measure the chain over `flows` connections (rounded down to a multiple
/// of [`BATCH`], at most 65,536) for about `duration` (twice: once warming
/// up).
pub fn measure(flows: usize, duration: Duration) -> ChainResult {
    let flows = (flows.clamp(BATCH, 1 << 16) / BATCH) * BATCH;
    let config = config(1_000_000);
    let set = chain_set(&config);
    let originals: Vec<u8> = (0..flows).flat_map(frame).collect();
    let metas: Vec<FrameMeta> = (0..flows)
        .map(|f| {
            let at = f * FRAME_BYTES;
            match packet::parse(&originals[at..at + FRAME_BYTES]) {
                Ok(meta) => meta,
                Err(e) => panic!("the chain benchmark's frame {f} does not parse: {e:?}"),
            }
        })
        .collect();
    let mut buf = originals.clone();
    // A connection through a load balancer takes three entries.
    let limits = WorkerLimits {
        batch_size: BATCH,
        flow_capacity: (4 * flows)
            .next_power_of_two()
            .max(WorkerLimits::default().flow_capacity),
        ..WorkerLimits::default()
    };
    let clock = Instant::now();
    let now = || clock.elapsed().as_nanos() as u64 + 1;
    let mut worker = ChainWorker::new(&set, limits, now());
    let empty = match packet::parse(&originals[..FRAME_BYTES]) {
        Ok(meta) => PacketContext::new(&originals[..FRAME_BYTES], meta, 1, 0),
        Err(e) => panic!("frame 0 does not parse: {e:?}"),
    };
    let mut contexts = [empty; BATCH];

    let mut run = |with_chain: bool, worker: &mut ChainWorker, buf: &mut [u8]| -> Timed {
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        let mut packets = 0u64;
        let mut first = 0usize;
        // KXDP_BENCH_ROUNDS: a fixed number of rounds instead of a time
        // (instruction counts under callgrind compare like for like).
        let rounds = fixed_rounds();
        let mut round = 0u64;
        while rounds.map_or(start.elapsed() < duration, |n| round < n) {
            round += 1;
            for _ in 0..64 {
                let span = first * FRAME_BYTES..(first + BATCH) * FRAME_BYTES;
                buf[span.clone()].copy_from_slice(&originals[span]);
                if with_chain {
                    for (j, ctx) in contexts.iter_mut().enumerate() {
                        let f = first + j;
                        let at = f * FRAME_BYTES;
                        // The flow's client port: its pod's interface.
                        let in_port = 1 + (f % CLIENTS) as u16;
                        *ctx = PacketContext::new(&buf[at..at + FRAME_BYTES], metas[f], in_port, 0);
                    }
                    let mut frames = FlatFrames {
                        buf: &mut *buf,
                        first,
                    };
                    worker.process(&set, now(), &mut contexts, &mut frames);
                }
                black_box(&mut contexts);
                black_box(&mut *buf);
                first = (first + BATCH) % flows;
                packets += BATCH as u64;
            }
        }
        let wall_ns = start.elapsed().as_nanos() as f64;
        let cpu_ns = match (cpu_start, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64,
            _ => wall_ns,
        };
        Timed {
            packets,
            wall_ns,
            cpu_ns,
        }
    };

    let warm = run(true, &mut worker, &mut buf).packets;
    let chained = run(true, &mut worker, &mut buf);
    let restore = run(false, &mut worker, &mut buf);
    let packets = chained.packets;
    let per_packet = |t: &Timed, ns: f64| ns / t.packets.max(1) as f64;
    let with_restore = per_packet(&chained, chained.cpu_ns);
    let ns = (with_restore - per_packet(&restore, restore.cpu_ns)).max(0.01);
    let wall_ns =
        (per_packet(&chained, chained.wall_ns) - per_packet(&restore, restore.wall_ns)).max(0.01);

    // One more pass over every connection, untimed, looking at each outcome.
    buf.copy_from_slice(&originals);
    let mut verdicts = Verdicts {
        per_backend: vec![0; BACKENDS],
        ..Verdicts::default()
    };
    for first in (0..flows).step_by(BATCH) {
        for (j, ctx) in contexts.iter_mut().enumerate() {
            let f = first + j;
            let at = f * FRAME_BYTES;
            *ctx = PacketContext::new(
                &buf[at..at + FRAME_BYTES],
                metas[f],
                1 + (f % CLIENTS) as u16,
                0,
            );
        }
        worker.process(
            &set,
            now(),
            &mut contexts,
            &mut FlatFrames {
                buf: &mut buf,
                first,
            },
        );
        for (j, ctx) in contexts.iter().enumerate() {
            match ctx.outcome {
                ChainVerdict::Pass => {
                    verdicts.passed += 1;
                    let at = (first + j) * FRAME_BYTES;
                    let rewritten = packet::parse(&buf[at..at + FRAME_BYTES]);
                    let backend = match rewritten {
                        Ok(FrameMeta {
                            l3: L3::Ipv4 { dst, .. },
                            l4,
                            ..
                        }) if l4.ports().1 == TARGET_PORT && dst == ctx_dst(ctx) => {
                            (0..BACKENDS).find(|&b| backend_ip(b) == dst)
                        }
                        _ => None,
                    };
                    match backend {
                        Some(b) => verdicts.per_backend[b] += 1,
                        None => verdicts.stray += 1,
                    }
                }
                ChainVerdict::Drop(_) => verdicts.dropped += 1,
                ChainVerdict::NoChain => verdicts.no_chain += 1,
                ChainVerdict::Redirect(_) => verdicts.redirected += 1,
            }
        }
    }
    let stats = worker.stats();
    let (chain_packets, chain_drops) = stats
        .iter()
        .find(|s| s.chain == "web")
        .map_or((0, 0), |s| (s.counters.packets, s.counters.dropped));
    debug_assert!(chain_packets >= warm);

    ChainResult {
        stages: "policy → policer → load balancer".to_string(),
        flows,
        backends: BACKENDS,
        frame_bytes: FRAME_BYTES,
        batch: BATCH,
        packets,
        mpps: 1000.0 / ns,
        ns_per_packet: ns,
        ns_per_packet_with_restore: with_restore,
        wall_ns_per_packet: wall_ns,
        chain_packets,
        chain_drops,
        verdicts,
    }
}

/// Packets run and the time they took.
struct Timed {
    packets: u64,
    wall_ns: f64,
    cpu_ns: f64,
}

/// This thread's time on a core so far, in nanoseconds (the first field of
/// `/proc/thread-self/schedstat`); `None` where the kernel does not say.
/// The kernel brings a running thread's figure up to date only when it
/// schedules, so yield first (it returns at once when nothing else waits).
fn thread_cpu_ns() -> Option<u64> {
    std::thread::yield_now();
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Every chain measurement, `duration` each.
pub fn run_all(duration: Duration) -> Vec<ChainResult> {
    vec![measure(FLOWS, duration), measure(FEW_FLOWS, duration)]
}

/// The destination the chain left in a packet's metadata.
fn ctx_dst(ctx: &PacketContext) -> Ipv4Addr {
    match ctx.meta.l3 {
        L3::Ipv4 { dst, .. } => dst,
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// Format results as a table.
pub fn table(results: &[ChainResult]) -> String {
    let mut s = format!(
        "{:<34}{:>7}{:>10}{:>7}{:>7}{:>10}{:>10}{:>14}{:>13}\n",
        "chain",
        "flows",
        "backends",
        "bytes",
        "batch",
        "Mpps",
        "ns/pkt",
        "ns+restore",
        "wall ns/pkt"
    );
    for r in results {
        s.push_str(&format!(
            "{:<34}{:>7}{:>10}{:>7}{:>7}{:>10.2}{:>10.1}{:>14.1}{:>13.1}\n",
            r.stages,
            r.flows,
            r.backends,
            r.frame_bytes,
            r.batch,
            r.mpps,
            r.ns_per_packet,
            r.ns_per_packet_with_restore,
            r.wall_ns_per_packet
        ));
    }
    s
}

/// `KXDP_BENCH_ROUNDS`, when set: rounds of 64 batches per measurement.
fn fixed_rounds() -> Option<u64> {
    std::env::var("KXDP_BENCH_ROUNDS").ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_passes_every_packet_to_a_backend() {
        let r = measure(FLOWS, Duration::from_millis(20));
        assert!(r.packets > 0, "{r:?}");
        // Every packet given to the chain was counted by it: warm-up,
        // timed run and the verification pass.
        assert!(r.chain_packets >= r.packets + FLOWS as u64, "{r:?}");
        assert_eq!(r.chain_drops, 0, "{r:?}");
        let v = &r.verdicts;
        assert_eq!(v.passed, FLOWS as u64, "{v:?}");
        assert_eq!((v.dropped, v.no_chain, v.redirected, v.stray), (0, 0, 0, 0));
        // Maglev spreads 8192 connections over 8 backends: each gets some,
        // none more than twice its share.
        for (b, n) in v.per_backend.iter().enumerate() {
            assert!(
                *n > 0 && *n < 2 * (FLOWS / BACKENDS) as u64,
                "backend {b}: {n} of {FLOWS}: {v:?}"
            );
        }
        assert!(r.mpps > 0.0 && r.ns_per_packet > 0.0 && r.wall_ns_per_packet > 0.0);
        assert!(table(&[r]).contains("policy → policer → load balancer"));
    }

    #[test]
    fn thread_time_advances_with_work() {
        let Some(a) = thread_cpu_ns() else {
            return; // No schedstat here: wall time is used instead.
        };
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let b = thread_cpu_ns().unwrap_or(0);
        assert!(b > a, "{a} -> {b} after {x}");
    }

    #[test]
    fn a_slow_policer_drops_and_the_verdicts_say_so() {
        // The same traffic through a 1 pps policer with a burst of 1000:
        // after the bursts are spent, packets are dropped, by the policer.
        let config = config(1);
        let set = chain_set(&config);
        let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 1);
        let mut frames: Vec<Vec<u8>> = (0..4).map(|_| frame(7)).collect();
        let mut dropped = 0;
        for round in 0..400u64 {
            let mut contexts: Vec<PacketContext> = frames
                .iter()
                .map(|f| match packet::parse(f) {
                    Ok(meta) => PacketContext::new(f, meta, 1, 0),
                    Err(e) => panic!("{e:?}"),
                })
                .collect();
            worker.process(&set, 1 + round, &mut contexts, &mut frames);
            dropped += contexts
                .iter()
                .filter(|c| matches!(c.outcome, ChainVerdict::Drop(_)))
                .count();
            frames = (0..4).map(|_| frame(7)).collect();
        }
        assert_eq!(dropped, 1600 - 1000, "1000 burst, then (almost) nothing");
    }
}
