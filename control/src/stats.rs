//! What `kxdp stats` shows, from the client side: a running node's
//! counters read over its gRPC API (`GetCounters`, through
//! [`crate::api::client`]) into the node's own [`NodeStats`], and the
//! tables they print as. The API and `/metrics` read the same counters
//! (`kxdp_node::stats`): there is one way to observe a node.

use std::path::Path;

use kxdp_dataplane::DropReason;
use kxdp_node::stats::NodeStats;

use crate::api::client::{ApiTarget, BlockingClient, ClientError};

/// Read the counters of the kxdp whose API listens on `api_socket` (see
/// `api::api_socket_path`); an error when none answers there.
pub fn fetch(api_socket: &Path) -> Result<NodeStats, ClientError> {
    BlockingClient::connect(&ApiTarget::Unix(api_socket.to_path_buf()))?.node_stats()
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
    out.push_str("\nICMP errors sent (time exceeded, unreachable, fragmentation needed / too big) and held back by the rate limit\n");
    for w in &stats.workers {
        out.push_str(&format!(
            "  worker {}  time_exceeded {}  unreachable {}  too_big {}  rate_limited {}\n",
            w.worker, w.icmp.time_exceeded, w.icmp.unreachable, w.icmp.too_big, w.icmp.rate_limited
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
        let napi = if p.napi.is_empty() {
            String::new()
        } else {
            format!("  NAPI {}", p.napi)
        };
        out.push_str(&format!(
            "  worker {} {}:{}  AF_XDP {}  XDP {}{napi}  {kernel}\n",
            p.worker, p.interface, p.queue, p.bind_mode, p.xdp_mode
        ));
    }
    out
}
