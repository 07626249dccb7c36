//! The in-memory pipeline benchmark: Mpps on one core and ns per packet for
//! local forwarding, VXLAN encapsulation and decapsulation, at 64- and
//! 1500-byte frames, batch 64, with route tables of 10, 10k and 100k entries.
//!
//! Frames are rewritten in place by the pipeline, so every batch first
//! restores the headers it touched (a 128-byte copy per frame, or the whole
//! frame for decap, whose outer headers are read again). That restore is
//! timed on its own and subtracted; both figures are printed.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use kxdp_config::NodeConfig;
use kxdp_dataplane::io::{Desc, MIN_HEADROOM};
use kxdp_dataplane::pipeline::Pipeline;
use kxdp_dataplane::tables::Tables;
use kxdp_dataplane::vxlan;
use kxdp_dataplane::Verdict;
use serde::Serialize;

/// The benchmark's node: pods a and b on ports 1 and 2, remote node2;
/// a jumbo underlay so that 1500-byte frames can be encapsulated.
const CONFIG: &str = r#"
node:
  name: bench1
  vtep: { ip: 192.168.100.1, interface: ul0, underlay_mtu: 9000 }
  pod_cidrs: [ { tenant: blue, cidr: 10.244.1.0/24 } ]
interfaces:
  - { name: ul0, role: underlay, mac: "02:00:00:00:00:01" }
  - { name: vpa, role: pod, mac: "02:00:00:00:01:0a" }
  - { name: vpb, role: pod, mac: "02:00:00:00:01:0b" }
tenants: [ { name: blue, vni: 100 } ]
pods:
  - { name: pod-a, tenant: blue, ip: 10.244.1.2, mac: "02:00:00:01:01:0a", interface: vpa }
  - { name: pod-b, tenant: blue, ip: 10.244.1.3, mac: "02:00:00:01:01:0b", interface: vpb }
remote_nodes:
  - name: node2
    vtep_ip: 192.168.100.2
    vtep_mac: "02:00:00:00:00:02"
    pod_cidrs: [ { tenant: blue, cidr: 10.244.2.0/24 } ]
"#;

const POD_A_MAC: [u8; 6] = [2, 0, 0, 1, 1, 0x0a];
const VPA_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x0a];
const UL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const NODE2_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const FRAME_SIZE: usize = 2048;
const BATCH: usize = 64;
/// Distinct frames cycled through (distinct destinations and flows).
const DISTINCT: usize = 1024;

/// What is measured.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Pod to pod on this node.
    LocalForward,
    /// Pod to a remote node.
    VxlanEncap,
    /// Remote node to a pod.
    VxlanDecap,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 3] = [
        Scenario::LocalForward,
        Scenario::VxlanEncap,
        Scenario::VxlanDecap,
    ];

    /// Label in tables and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::LocalForward => "local-forward",
            Scenario::VxlanEncap => "vxlan-encap",
            Scenario::VxlanDecap => "vxlan-decap",
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;

    /// A scenario by its [label](Scenario::label).
    fn from_str(s: &str) -> Result<Scenario, String> {
        crate::by_label(&Scenario::ALL, Scenario::label, "scenario", s)
    }
}

/// One row of the result.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineResult {
    /// Scenario.
    pub scenario: Scenario,
    /// Frame size in bytes (the pod's frame).
    pub frame_bytes: usize,
    /// Routes in the table.
    pub routes: usize,
    /// Batch size.
    pub batch: usize,
    /// Million packets per second on one core (restore subtracted).
    pub mpps: f64,
    /// Nanoseconds per packet (restore subtracted).
    pub ns_per_packet: f64,
    /// Nanoseconds per packet including the restore copy.
    pub ns_per_packet_with_restore: f64,
}

fn udp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    frame_bytes: usize,
) -> Vec<u8> {
    let payload = vec![0x5au8; frame_bytes.saturating_sub(42)];
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, 7000);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec cannot fail.
    let _ = b.write(&mut out, &payload);
    out
}

/// Build the tables with `routes` routes in all (extra /32s to node2).
fn tables(routes: usize) -> Tables {
    let config = match NodeConfig::from_yaml_str(CONFIG) {
        Ok(c) => c,
        Err(e) => panic!("the benchmark's own config is invalid: {e}"),
    };
    let mut tables = match Tables::compile(&config, 1) {
        Ok(t) => t,
        Err(e) => panic!("the benchmark's own config does not compile: {e}"),
    };
    let extra = routes.saturating_sub(tables.route_count());
    let prefixes: Vec<(Ipv4Addr, u8)> = (0..extra as u32)
        .map(|i| (Ipv4Addr::from(0x0b00_0000u32 + i), 32))
        .collect();
    tables.add_routes_v4(0, Ipv4Addr::new(10, 244, 2, 1), &prefixes);
    tables
}

/// The frames a scenario cycles through, and the port they arrive on.
fn frames(scenario: Scenario, routes: usize, frame_bytes: usize) -> (u16, Vec<Vec<u8>>) {
    let pod_a = Ipv4Addr::new(10, 244, 1, 2);
    let remote_dsts = routes.saturating_sub(3).max(1) as u32;
    match scenario {
        Scenario::LocalForward => (
            1,
            (0..DISTINCT)
                .map(|i| {
                    udp4(
                        POD_A_MAC,
                        VPA_MAC,
                        pod_a,
                        Ipv4Addr::new(10, 244, 1, 3),
                        10000 + i as u16,
                        frame_bytes,
                    )
                })
                .collect(),
        ),
        Scenario::VxlanEncap => (
            1,
            (0..DISTINCT)
                .map(|i| {
                    // Spread destinations over the whole table.
                    let pick = (i as u32).wrapping_mul(2_654_435_761) % remote_dsts;
                    let dst = if routes <= 10 {
                        Ipv4Addr::new(10, 244, 2, (i % 250) as u8 + 2)
                    } else {
                        Ipv4Addr::from(0x0b00_0000u32 + pick)
                    };
                    udp4(
                        POD_A_MAC,
                        VPA_MAC,
                        pod_a,
                        dst,
                        10000 + i as u16,
                        frame_bytes,
                    )
                })
                .collect(),
        ),
        Scenario::VxlanDecap => {
            let tpl = vxlan::EncapTemplate::new(
                NODE2_MAC,
                UL_MAC,
                Ipv4Addr::new(192, 168, 100, 2),
                Ipv4Addr::new(192, 168, 100, 1),
                100,
                4789,
            );
            (
                0,
                (0..DISTINCT)
                    .map(|i| {
                        let dst = Ipv4Addr::new(10, 244, 1, 2 + (i % 2) as u8);
                        let inner = udp4(
                            NODE2_MAC,
                            UL_MAC,
                            Ipv4Addr::new(10, 244, 2, 9),
                            dst,
                            10000 + i as u16,
                            frame_bytes,
                        );
                        let mut chunk = vec![0u8; FRAME_SIZE + inner.len()];
                        chunk[256..256 + inner.len()].copy_from_slice(&inner);
                        let off =
                            vxlan::encap(&mut chunk, 256, inner.len(), &tpl, 50000 + i as u16);
                        chunk[off..off + inner.len() + vxlan::ENCAP_OVERHEAD].to_vec()
                    })
                    .collect(),
            )
        }
    }
}

/// Measure one configuration for about `duration`.
pub fn measure(
    scenario: Scenario,
    frame_bytes: usize,
    routes: usize,
    duration: Duration,
) -> PipelineResult {
    let tables = tables(routes);
    let (port, frames) = frames(scenario, routes, frame_bytes);
    // A UMEM with one chunk per distinct frame.
    let mut umem = vec![0u8; FRAME_SIZE * DISTINCT];
    let mut originals = Vec::with_capacity(DISTINCT);
    for (i, f) in frames.iter().enumerate() {
        let at = i * FRAME_SIZE + MIN_HEADROOM;
        let len = f.len().min(FRAME_SIZE - MIN_HEADROOM);
        umem[at..at + len].copy_from_slice(&f[..len]);
        originals.push(Desc {
            addr: at as u64,
            len: len as u32,
        });
    }
    // Restore only what the pipeline touches: the first 128 bytes (headers),
    // all of them for decap, whose outer headers it reads again.
    let restore_len = match scenario {
        Scenario::VxlanDecap => 128 + vxlan::ENCAP_OVERHEAD,
        _ => 128,
    };
    let pristine: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| f[..f.len().min(restore_len)].to_vec())
        .collect();

    let mut pipeline = Pipeline::new();
    let mut descs = [Desc::default(); BATCH];
    let mut verdicts = [Verdict::Pass; BATCH];

    let restore = |umem: &mut [u8], descs: &mut [Desc; BATCH], first: usize| {
        for (j, d) in descs.iter_mut().enumerate() {
            let i = (first + j) % DISTINCT;
            *d = originals[i];
            let at = d.addr as usize;
            umem[at..at + pristine[i].len()].copy_from_slice(&pristine[i]);
        }
    };

    let run = |with_pipeline: bool,
               umem: &mut [u8],
               pipeline: &mut Pipeline,
               descs: &mut [Desc; BATCH],
               verdicts: &mut [Verdict; BATCH]|
     -> (u64, Duration) {
        let start = Instant::now();
        let mut packets = 0u64;
        let mut first = 0usize;
        // KXDP_BENCH_ROUNDS: a fixed number of rounds instead of a time
        // (instruction counts under callgrind compare like for like).
        let rounds = fixed_rounds();
        let mut round = 0u64;
        while rounds.map_or(start.elapsed() < duration, |n| round < n) {
            round += 1;
            for _ in 0..64 {
                restore(umem, descs, first);
                if with_pipeline {
                    pipeline.process_batch(&tables, port, umem, FRAME_SIZE as u32, descs, verdicts);
                }
                black_box(&mut *verdicts);
                black_box(&mut *descs);
                first = (first + BATCH) % DISTINCT;
                packets += BATCH as u64;
            }
        }
        (packets, start.elapsed())
    };

    // Warm up, then measure.
    run(true, &mut umem, &mut pipeline, &mut descs, &mut verdicts);
    let (packets, elapsed) = run(true, &mut umem, &mut pipeline, &mut descs, &mut verdicts);
    let (rpackets, relapsed) = run(false, &mut umem, &mut pipeline, &mut descs, &mut verdicts);
    let with_restore = elapsed.as_nanos() as f64 / packets as f64;
    let restore_only = relapsed.as_nanos() as f64 / rpackets as f64;
    let ns = (with_restore - restore_only).max(0.01);

    // The pipeline must have done the work: every frame transmitted.
    let drops = pipeline.counters.total_drops();
    assert_eq!(
        drops, 0,
        "{scenario:?} {frame_bytes}B {routes} routes: {:?}",
        pipeline.counters
    );

    PipelineResult {
        scenario,
        frame_bytes,
        routes,
        batch: BATCH,
        mpps: 1000.0 / ns,
        ns_per_packet: ns,
        ns_per_packet_with_restore: with_restore,
    }
}

/// The whole matrix.
pub fn run_all(duration: Duration, progress: impl FnMut(&PipelineResult)) -> Vec<PipelineResult> {
    run(&Scenario::ALL, duration, progress)
}

/// The matrix for `scenarios` only (every frame size and route count), so
/// that one path can be compared or profiled alone.
pub fn run(
    scenarios: &[Scenario],
    duration: Duration,
    mut progress: impl FnMut(&PipelineResult),
) -> Vec<PipelineResult> {
    let mut out = Vec::new();
    for &scenario in scenarios {
        for frame_bytes in [64, 1500] {
            for routes in [10, 10_000, 100_000] {
                let r = measure(scenario, frame_bytes, routes, duration);
                progress(&r);
                out.push(r);
            }
        }
    }
    out
}

/// Format results as a table.
pub fn table(results: &[PipelineResult]) -> String {
    let mut s = format!(
        "{:<15}{:>7}{:>9}{:>7}{:>10}{:>10}{:>14}\n",
        "scenario", "bytes", "routes", "batch", "Mpps", "ns/pkt", "ns+restore"
    );
    for r in results {
        s.push_str(&format!(
            "{:<15}{:>7}{:>9}{:>7}{:>10.2}{:>10.1}{:>14.1}\n",
            r.scenario.label(),
            r.frame_bytes,
            r.routes,
            r.batch,
            r.mpps,
            r.ns_per_packet,
            r.ns_per_packet_with_restore
        ));
    }
    s
}

/// `KXDP_BENCH_ROUNDS`, when set: rounds of 64 batches per measurement.
fn fixed_rounds() -> Option<u64> {
    std::env::var("KXDP_BENCH_ROUNDS").ok()?.parse().ok()
}
