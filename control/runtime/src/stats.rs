//! A running node's counters as plain data: per worker (kxdp's drop
//! reasons with the kernel's socket drops folded in) and per bound port
//! (how it is bound, the kernel's `XDP_STATISTICS`). Every reader takes
//! the workers' counters through [`worker_counters`]: the gRPC API
//! (`GetCounters`, which `kxdp stats` reads into a [`NodeStats`], and
//! `WatchCounters`) and `/metrics` show the same numbers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kxdp_dataplane::counters::{CounterSnapshot, Counters, SharedCounters};
use serde::{Deserialize, Serialize};

use crate::runtime::{add_socket_drops, PortInfo};

/// What `kxdp stats` shows.
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
    /// Where the NAPI of its queue runs (`workers.pod_napi`): `kernel`,
    /// `core N (NAPI id, thread pid)`, or `kernel (worker-core failed:
    /// why)`; empty from a node that predates it.
    #[serde(default)]
    pub napi: String,
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
            napi: p.napi_placement(),
            kernel,
        }
    }
}

/// Every worker's counters now (by worker index), with the kernel's drops
/// at its sockets folded into its drop reasons (see
/// [`add_socket_drops`]): what `kxdp stats`, the API and `/metrics` show.
pub fn worker_counters(counters: &[Arc<SharedCounters>], ports: &[PortInfo]) -> Vec<Counters> {
    counters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.snapshot();
            add_socket_drops(&mut c, i, ports);
            c
        })
        .collect()
}
