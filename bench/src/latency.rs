//! Pod-to-pod UDP request/response latency on a built testbed.
//!
//! One client pod sends a 64-byte request to an echo server in a pod on the
//! other node and waits for its reply before the next request (the testbed's
//! [`udp_rtt_with`]); every round trip goes into an HdrHistogram. Two knobs:
//!
//! - the **client** either blocks in the kernel until data arrives, paying
//!   the wake-up, or spins on a non-blocking socket (the echo server always
//!   blocks);
//! - the **load**: none besides the probes (a low fixed rate, one exchange
//!   per `interval`), or a background stream of 64-byte UDP datagrams at a
//!   set rate from another pod on the client's node to another pod on the
//!   server's node, crossing the same dataplanes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use kxdp_testbed::{udp_echo_server_with, udp_rtt_with, Netns, RttOptions, WaitMode};
use serde::Serialize;

/// How the client and its echo server wait for data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientMode {
    /// Sleep in the kernel until data arrives.
    Blocking,
    /// Spin on non-blocking sockets.
    Spin,
}

impl ClientMode {
    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            ClientMode::Blocking => "blocking",
            ClientMode::Spin => "spin",
        }
    }

    fn wait(self) -> WaitMode {
        match self {
            ClientMode::Blocking => WaitMode::Blocking,
            ClientMode::Spin => WaitMode::Spin,
        }
    }
}

/// Whether a background stream crosses the path while probes are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadLevel {
    /// Only the probes.
    Low,
    /// Probes plus the background stream.
    Loaded,
}

impl LoadLevel {
    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            LoadLevel::Low => "low",
            LoadLevel::Loaded => "loaded",
        }
    }
}

/// One latency measurement: a client mode at a load level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LatencyCase {
    /// Client mode.
    pub client: ClientMode,
    /// Load level.
    pub load: LoadLevel,
}

impl LatencyCase {
    /// Every combination, in table order.
    pub const ALL: [LatencyCase; 4] = [
        LatencyCase {
            client: ClientMode::Blocking,
            load: LoadLevel::Low,
        },
        LatencyCase {
            client: ClientMode::Spin,
            load: LoadLevel::Low,
        },
        LatencyCase {
            client: ClientMode::Blocking,
            load: LoadLevel::Loaded,
        },
        LatencyCase {
            client: ClientMode::Spin,
            load: LoadLevel::Loaded,
        },
    ];

    /// `blocking/low` and so on.
    pub fn label(self) -> String {
        format!("{}/{}", self.client.label(), self.load.label())
    }
}

/// Parameters of a measurement.
#[derive(Clone, Debug)]
pub struct LatencyOptions {
    /// Round trips.
    pub count: u64,
    /// Time from the start of one request to the next.
    pub interval: Duration,
    /// Reply timeout (a lost reply costs this, and counts as lost).
    pub timeout: Duration,
    /// Rate of the background stream in `Loaded` cases, datagrams per second.
    pub load_pps: u64,
    /// Core the client thread is pinned to.
    pub client_core: Option<usize>,
}

/// The pods of a measurement.
#[derive(Debug)]
pub struct LatencyPods<'a> {
    /// The client pod.
    pub client: &'a Netns,
    /// The server pod.
    pub server: &'a Netns,
    /// The server pod's address.
    pub server_ip: Ipv4Addr,
    /// The background stream's sender (on the client's node).
    pub load_from: &'a Netns,
    /// Its receiver (on the server's node).
    pub load_to: &'a Netns,
    /// The receiver's address.
    pub load_to_ip: Ipv4Addr,
}

/// What one measurement saw.
#[derive(Clone, Debug)]
pub struct LatencySample {
    /// The case.
    pub case: LatencyCase,
    /// Requests sent.
    pub sent: u64,
    /// Replies received in time.
    pub received: u64,
    /// Background datagrams sent and received (0 at `Low`).
    pub load_sent: u64,
    /// Background datagrams that arrived.
    pub load_received: u64,
    /// Round-trip times, nanoseconds.
    pub histogram: Histogram<u64>,
}

/// The percentiles a table shows, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Percentiles {
    /// From a histogram in nanoseconds; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            p9999_us: us(0.9999),
            max_us: h.max() as f64 / 1000.0,
        }
    }
}

/// UDP port of the echo server.
const ECHO_PORT: u16 = 7100;
/// UDP port of the background stream's sink.
const SINK_PORT: u16 = 7101;

/// Measure every case of [`LatencyCase::ALL`] between `pods`, in that
/// order, telling `progress` `<label> latency <case>` before each.
pub fn measure_all(
    pods: &LatencyPods<'_>,
    options: &LatencyOptions,
    label: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<LatencySample>> {
    let mut samples = Vec::with_capacity(LatencyCase::ALL.len());
    for case in LatencyCase::ALL {
        let step = format!("{label} latency {}", case.label());
        progress(&step);
        samples.push(measure(pods, case, options).context(step)?);
    }
    Ok(samples)
}

/// Measure one case between `pods`.
pub fn measure(
    pods: &LatencyPods<'_>,
    case: LatencyCase,
    options: &LatencyOptions,
) -> Result<LatencySample> {
    // The server always blocks: a spinning server would take the core that
    // the client and node2's dataplane share on this 2-core machine.
    let server = udp_echo_server_with(pods.server, ECHO_PORT, WaitMode::Blocking)
        .context("starting the echo server")?;
    let load = match case.load {
        LoadLevel::Low => None,
        LoadLevel::Loaded => Some(
            Background::start(
                pods.load_from,
                pods.load_to,
                SocketAddr::new(IpAddr::V4(pods.load_to_ip), SINK_PORT),
                options.load_pps,
            )
            .context("starting the background stream")?,
        ),
    };
    if load.is_some() {
        // Let the stream reach its rate before the probes start.
        std::thread::sleep(Duration::from_millis(100));
    }
    let client = pods.client.clone();
    let to = SocketAddr::new(IpAddr::V4(pods.server_ip), server.port());
    let rtt_options = RttOptions {
        count: options.count,
        interval: options.interval,
        timeout: options.timeout,
        payload_len: 64,
        wait: case.client.wait(),
    };
    let core = options.client_core;
    let spin = case.client == ClientMode::Spin;
    let rtt = std::thread::spawn(move || {
        kxdp_dataplane::worker::pin_to_core(core);
        if spin {
            // On a 2-core machine the spinning client shares its core with
            // the echo server and the kernel's (or kxdp's) wake-ups it waits
            // for: at nice 19 it yields to them at once instead of holding
            // the core for a scheduler slice.
            renice_this_thread(19);
        }
        udp_rtt_with(&client, to, &rtt_options)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the client thread panicked"))?
    .context("measuring round trips")?;
    let (load_sent, load_received) = match load {
        Some(load) => load.stop(),
        None => (0, 0),
    };
    drop(server);
    Ok(LatencySample {
        case,
        sent: rtt.sent,
        received: rtt.received,
        load_sent,
        load_received,
        histogram: rtt.histogram,
    })
}

/// Lower the calling thread's priority (`renice`; no unsafe FFI needed for
/// a once-per-measurement call). Failure only costs accuracy: logged.
fn renice_this_thread(nice: i32) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
    let Some(tid) = tid else {
        eprintln!("bench: cannot find this thread's id to renice it");
        return;
    };
    let ok = std::process::Command::new("renice")
        .args(["-n", &nice.to_string(), "-p", &tid])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("bench: renice of the client thread failed");
    }
}

/// A paced UDP stream from one pod to a draining sink in another.
struct Background {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    fn start(from: &Netns, to: &Netns, sink: SocketAddr, pps: u64) -> Result<Background> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let rx = to
            .run_in(move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, sink.port())))?
            .context("binding the sink")?;
        rx.set_read_timeout(Some(Duration::from_millis(50)))?;
        let tx = from
            .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?
            .context("binding the sender")?;
        tx.connect(sink)?;
        let mut threads = Vec::new();
        {
            let (stop, received) = (stop.clone(), received.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if rx.recv(&mut buf).is_ok() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        {
            let (stop, sent) = (stop.clone(), sent.clone());
            threads.push(std::thread::spawn(move || {
                let payload = [0x5au8; 64 - 42];
                let pps = pps.max(1);
                // Paced in bursts of up to 32 every 1/(pps/32) s: sleeping per
                // datagram would cost more than the stream.
                let burst = 32u64.min(pps);
                let period = Duration::from_nanos(1_000_000_000 * burst / pps);
                let start = Instant::now();
                let mut bursts = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..burst {
                        if tx.send(&payload).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    bursts = bursts.saturating_add(1);
                    let next = start + period.saturating_mul(bursts);
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                }
            }));
        }
        Ok(Background {
            stop,
            sent,
            received,
            threads,
        })
    }

    /// Stop; returns (sent, received).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        // Let what is in flight arrive before the sink stops.
        std::thread::sleep(Duration::from_millis(60));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A figure over rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Median over rounds.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Rounds.
    pub n: usize,
}

impl Spread {
    /// Of `values` (all zero when empty).
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_us - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max_us - 1000.0).abs() < 1.0, "{p:?}");
        assert!(p.p50_us <= p.p90_us && p.p90_us <= p.p99_us && p.p99_us <= p.p999_us);
        assert_eq!(
            Percentiles::of(&Histogram::<u64>::new(3).unwrap()),
            Percentiles::default()
        );
    }
}
