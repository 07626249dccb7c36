//! The stats endpoint of a running `kxdp run`: a Unix socket (mode 0600)
//! that answers one JSON document per connection, and the client that
//! `kxdp stats` uses to read and print it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use kxdp_dataplane::counters::CounterSnapshot;
use kxdp_dataplane::DropReason;
use serde::{Deserialize, Serialize};

use crate::runtime::{NodeRuntime, PortInfo};

/// What `kxdp stats` reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStats {
    /// Node name.
    pub node: String,
    /// The tables' generation.
    pub generation: u64,
    /// Routes in the tables.
    pub routes: usize,
    /// Per worker counters.
    pub workers: Vec<CounterSnapshot>,
    /// How each port is bound.
    pub ports: Vec<PortRow>,
}

impl NodeStats {
    /// The kernel's drops at `interface`'s sockets (XDP_STATISTICS, summed
    /// over workers): (every drop, of which `fill_ring_empty`).
    pub fn socket_drops(&self, interface: &str) -> (u64, u64) {
        self.ports
            .iter()
            .filter(|p| p.interface == interface)
            .filter_map(|p| p.kernel)
            .fold((0, 0), |(all, empty), k| {
                (all + k.total(), empty + k.rx_fill_ring_empty)
            })
    }
}

/// One bound port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortRow {
    /// Worker.
    pub worker: usize,
    /// Interface.
    pub interface: String,
    /// Queue.
    pub queue: u32,
    /// copy / zero-copy.
    pub bind_mode: String,
    /// native / generic.
    pub xdp_mode: String,
    /// The kernel's drop counters of the socket (XDP_STATISTICS): frames
    /// the kernel could not hand to kxdp, which kxdp's own counters cannot
    /// see. Absent when the getsockopt failed.
    #[serde(default)]
    pub kernel: Option<KernelDrops>,
}

/// `XDP_STATISTICS` of one AF_XDP socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDrops {
    /// Dropped for want of a fill-ring entry or for size.
    pub rx_dropped: u64,
    /// Dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid rx descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid tx descriptors (never completed).
    pub tx_invalid_descs: u64,
}

impl KernelDrops {
    /// Frames lost in the kernel.
    pub fn total(&self) -> u64 {
        self.rx_dropped + self.rx_ring_full + self.rx_invalid_descs + self.tx_invalid_descs
    }
}

impl From<&PortInfo> for PortRow {
    fn from(p: &PortInfo) -> Self {
        let kernel = kxdp_dataplane::xsk::socket_statistics(p.fd.load(Ordering::Relaxed))
            .ok()
            .map(|s| KernelDrops {
                rx_dropped: s.rx_dropped,
                rx_ring_full: s.rx_ring_full,
                rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
                rx_invalid_descs: s.rx_invalid_descs,
                tx_invalid_descs: s.tx_invalid_descs,
            });
        PortRow {
            worker: p.worker,
            interface: p.interface.clone(),
            queue: p.queue,
            bind_mode: p.bind_mode.clone(),
            xdp_mode: p.xdp_mode.clone(),
            kernel,
        }
    }
}

/// Read the runtime's counters.
pub fn collect(runtime: &NodeRuntime) -> NodeStats {
    let tables = runtime.tables.current();
    let ports = runtime.ports.snapshot();
    NodeStats {
        node: runtime.config.node.name.clone(),
        generation: tables.generation(),
        routes: tables.route_count(),
        workers: runtime
            .counters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.snapshot();
                crate::runtime::add_socket_drops(&mut c, i, &ports);
                CounterSnapshot::from_counters(i, &c)
            })
            .collect(),
        ports: ports.iter().map(PortRow::from).collect(),
    }
}

/// The listening stats socket; removed on drop.
#[derive(Debug)]
pub struct StatsServer {
    listener: UnixListener,
    path: PathBuf,
}

impl StatsServer {
    /// Bind `path` (replacing a stale socket), mode 0600.
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            // A live instance answers; a stale socket file is refused connection.
            if UnixStream::connect(path).is_ok() {
                anyhow::bail!("{} is in use by another running kxdp", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(StatsServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Answer requests until `stop` is set.
    pub fn serve(&self, runtime: &NodeRuntime, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, runtime) {
                        tracing::debug!(error = %e, "stats client went away");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stats socket accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn answer(stream: UnixStream, runtime: &NodeRuntime) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut stream = stream;
    match request.trim() {
        "stats" | "" => {
            let body = serde_json::to_string(&collect(runtime))?;
            stream.write_all(body.as_bytes())?;
        }
        other => {
            let body = serde_json::json!({ "error": format!("unknown request {other:?}") });
            stream.write_all(body.to_string().as_bytes())?;
        }
    }
    Ok(())
}

/// Ask a running kxdp for its stats.
pub fn fetch(path: &Path) -> anyhow::Result<NodeStats> {
    let mut stream = UnixStream::connect(path)
        .with_context(|| format!("connecting to {} (is `kxdp run` running?)", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"stats\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    serde_json::from_str(&body)
        .with_context(|| format!("reading the stats from {}", path.display()))
}

/// Print stats as tables: per worker rx/tx, then drops by reason.
pub fn print(stats: &NodeStats) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "node {}  tables generation {}  routes {}\n\n",
        stats.node, stats.generation, stats.routes
    ));
    out.push_str(&format!(
        "{:<8}{:>14}{:>14}{:>14}{:>14}{:>10}{:>10}{:>12}{:>10}\n",
        "worker",
        "rx_packets",
        "tx_packets",
        "drops",
        "encap",
        "decap",
        "arp/nd",
        "sleeps",
        "cyc/pkt"
    ));
    for w in &stats.workers {
        out.push_str(&format!(
            "{:<8}{:>14}{:>14}{:>14}{:>14}{:>10}{:>10}{:>12}{:>10.0}\n",
            w.worker,
            w.rx_packets,
            w.tx_packets,
            w.total_drops(),
            w.encapsulated,
            w.decapsulated,
            w.neighbour_replies,
            w.sleeps,
            w.cycles_per_packet
        ));
    }
    out.push_str("\nworker loops and UMEM frames (at the last idle accounting)\n");
    for w in &stats.workers {
        let f = &w.frames;
        out.push_str(&format!(
            "  worker {}  longest loop {} µs  loops over 1 ms {}  ports rebound {}  frames free {} in fill {} in tx {} stranded {} of {}  {}\n",
            w.worker,
            w.max_loop_ns / 1000,
            w.slow_loops,
            w.port_rebinds,
            f.free,
            f.in_fill,
            f.in_tx,
            f.stranded,
            f.total,
            if f.balanced() {
                "balanced".to_string()
            } else {
                format!("NOT BALANCED ({} of {} checks failed)", f.failures, f.checks)
            }
        ));
    }
    out.push_str("\ndrops by reason\n");
    let mut any = false;
    for reason in DropReason::ALL {
        let per_worker: Vec<u64> = stats
            .workers
            .iter()
            .map(|w| w.drops.get(reason.label()).copied().unwrap_or(0))
            .collect();
        let total: u64 = per_worker.iter().sum();
        if total > 0 {
            any = true;
            out.push_str(&format!(
                "  {:<24}{:>12}   per worker {:?}\n",
                reason.label(),
                total,
                per_worker
            ));
        }
    }
    if !any {
        out.push_str("  (none)\n");
    }
    out.push_str("\nports (kernel drops: XDP_STATISTICS of each socket)\n");
    for p in &stats.ports {
        let kernel = match p.kernel {
            Some(k) if k.total() == 0 && k.rx_fill_ring_empty == 0 => "kernel drops 0".to_string(),
            Some(k) => format!(
                "kernel drops: rx_dropped {} rx_ring_full {} fill_ring_empty {} rx_invalid {} tx_invalid {}",
                k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty, k.rx_invalid_descs, k.tx_invalid_descs
            ),
            None => "kernel drops unknown".to_string(),
        };
        out.push_str(&format!(
            "  worker {} {}:{}  AF_XDP {}  XDP {}  {kernel}\n",
            p.worker, p.interface, p.queue, p.bind_mode, p.xdp_mode
        ));
    }
    out
}
