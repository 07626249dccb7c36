//! Per-worker counters: packets and bytes in and out, and drops by reason.
//!
//! A worker counts into plain integers it owns ([`Counters`]) and publishes
//! them once per loop into [`SharedCounters`] (relaxed atomic stores: one
//! writer, many readers, no lock, no read-modify-write on the hot path).
//! Readers take a [`CounterSnapshot`] and sum across workers.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::verdict::DropReason;

/// The worker-owned counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames handed to a tx ring.
    pub tx_packets: u64,
    /// Bytes handed to a tx ring.
    pub tx_bytes: u64,
    /// Frames handed to the kernel stack.
    pub passed: u64,
    /// ARP and neighbour solicitations answered.
    pub neighbour_replies: u64,
    /// Frames encapsulated in VXLAN.
    pub encapsulated: u64,
    /// Frames decapsulated from VXLAN.
    pub decapsulated: u64,
    /// ICMP time exceeded sent (TTL or hop limit ran out here).
    pub icmp_time_exceeded: u64,
    /// ICMP destination unreachable sent (no route, nobody's address, a
    /// Service without endpoints).
    pub icmp_unreachable: u64,
    /// ICMP fragmentation needed / packet too big sent.
    pub icmp_too_big: u64,
    /// ICMP errors not sent: over the per-source or total rate.
    pub icmp_rate_limited: u64,
    /// Loop iterations that moved at least one frame.
    pub busy_loops: u64,
    /// Times the worker slept in poll().
    pub sleeps: u64,
    /// CPU cycles (TSC) spent in loops that moved frames (for cycles/packet).
    pub busy_cycles: u64,
    /// Gauge: the longest loop iteration (one pass over every port, without
    /// the sleep in poll()) since start, in nanoseconds of wall time.
    pub max_loop_ns: u64,
    /// Loop iterations that took longer than 1 ms (wall time: a preempted
    /// worker counts too).
    pub slow_loops: u64,
    /// Gauge: UMEM frames of the worker, from its last frame accounting.
    pub frames_total: u64,
    /// Gauge: frames in the worker's free list at the last accounting.
    pub frames_free: u64,
    /// Gauge: frames given to fill rings and not received back.
    pub frames_in_fill: u64,
    /// Gauge: frames given to tx rings and not completed.
    pub frames_in_tx: u64,
    /// Gauge: frames held by replaced sockets that the kernel never gave
    /// back.
    pub frames_stranded: u64,
    /// Ports whose socket was replaced because their interface was
    /// re-created.
    pub port_rebinds: u64,
    /// Frame accountings done (the worker checks when idle, at most once
    /// a second).
    pub accounting_checks: u64,
    /// Accountings that did not balance (a frame lost or counted twice).
    pub accounting_failures: u64,
    /// Drops, indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
}

// By hand: `Default` is derived only for arrays of up to 32 elements, and
// there are more drop reasons than that.
impl Default for Counters {
    fn default() -> Self {
        Counters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            passed: 0,
            neighbour_replies: 0,
            encapsulated: 0,
            decapsulated: 0,
            icmp_time_exceeded: 0,
            icmp_unreachable: 0,
            icmp_too_big: 0,
            icmp_rate_limited: 0,
            busy_loops: 0,
            sleeps: 0,
            busy_cycles: 0,
            max_loop_ns: 0,
            slow_loops: 0,
            frames_total: 0,
            frames_free: 0,
            frames_in_fill: 0,
            frames_in_tx: 0,
            frames_stranded: 0,
            port_rebinds: 0,
            accounting_checks: 0,
            accounting_failures: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Count one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Count `n` drops.
    #[inline]
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        self.drops[reason.index()] += n;
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }
}

macro_rules! shared_fields {
    ($($field:ident),*) => {
        /// Counters readable from other threads, written by one worker.
        #[derive(Debug)]
        pub struct SharedCounters {
            $(
                #[doc = concat!("Published `", stringify!($field), "`.")]
                pub $field: AtomicU64,
            )*
            /// Published drops by reason.
            pub drops: [AtomicU64; DropReason::COUNT],
        }

        // By hand: arrays of more than 32 elements have no derived `Default`.
        impl Default for SharedCounters {
            fn default() -> Self {
                SharedCounters {
                    $( $field: AtomicU64::new(0), )*
                    drops: std::array::from_fn(|_| AtomicU64::new(0)),
                }
            }
        }

        impl SharedCounters {
            /// Publish the worker's counters (single writer: plain relaxed stores).
            pub fn publish(&self, c: &Counters) {
                $( self.$field.store(c.$field, Ordering::Relaxed); )*
                for (slot, value) in self.drops.iter().zip(c.drops.iter()) {
                    slot.store(*value, Ordering::Relaxed);
                }
            }

            /// Read a snapshot.
            pub fn snapshot(&self) -> Counters {
                let mut c = Counters {
                    $( $field: self.$field.load(Ordering::Relaxed), )*
                    ..Counters::default()
                };
                for (value, slot) in c.drops.iter_mut().zip(self.drops.iter()) {
                    *value = slot.load(Ordering::Relaxed);
                }
                c
            }
        }
    };
}

shared_fields!(
    rx_packets,
    rx_bytes,
    tx_packets,
    tx_bytes,
    passed,
    neighbour_replies,
    encapsulated,
    decapsulated,
    icmp_time_exceeded,
    icmp_unreachable,
    icmp_too_big,
    icmp_rate_limited,
    busy_loops,
    sleeps,
    busy_cycles,
    max_loop_ns,
    slow_loops,
    frames_total,
    frames_free,
    frames_in_fill,
    frames_in_tx,
    frames_stranded,
    port_rebinds,
    accounting_checks,
    accounting_failures
);

/// A serializable view of one worker's counters, with drops by label.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct CounterSnapshot {
    /// Worker index.
    pub worker: usize,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames handed to the kernel.
    pub passed: u64,
    /// ARP/ND replies sent.
    pub neighbour_replies: u64,
    /// VXLAN encapsulations.
    pub encapsulated: u64,
    /// VXLAN decapsulations.
    pub decapsulated: u64,
    /// ICMP errors sent, by kind, and those the rate limit held back.
    #[serde(default)]
    pub icmp: IcmpCounts,
    /// Sleeps in poll().
    pub sleeps: u64,
    /// Cycles per packet over busy loops (0 when nothing moved).
    pub cycles_per_packet: f64,
    /// The longest loop iteration since start, in nanoseconds.
    #[serde(default)]
    pub max_loop_ns: u64,
    /// Loop iterations over 1 ms.
    #[serde(default)]
    pub slow_loops: u64,
    /// Where the worker's UMEM frames were at its last accounting.
    #[serde(default)]
    pub frames: FrameGauges,
    /// Ports rebound after their interface was re-created.
    #[serde(default)]
    pub port_rebinds: u64,
    /// Non-zero drops, by reason label.
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// ICMP errors a worker sent, by kind.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct IcmpCounts {
    /// Time exceeded.
    pub time_exceeded: u64,
    /// Destination unreachable.
    pub unreachable: u64,
    /// Fragmentation needed / packet too big.
    pub too_big: u64,
    /// Not sent: over the rate limit.
    pub rate_limited: u64,
}

/// A worker's frame accounting as published (see
/// `worker::FrameAccounting`): every UMEM frame free, in a fill ring or in
/// a tx ring, exactly once.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FrameGauges {
    /// UMEM frames in all (0 before the first accounting).
    pub total: u64,
    /// In the worker's free list.
    pub free: u64,
    /// Given to fill rings, not received back.
    pub in_fill: u64,
    /// Given to tx rings, not completed.
    pub in_tx: u64,
    /// Held by replaced sockets, never given back by the kernel.
    #[serde(default)]
    pub stranded: u64,
    /// Accountings done.
    pub checks: u64,
    /// Accountings that did not balance.
    pub failures: u64,
}

impl FrameGauges {
    /// The last accounting balanced and none ever failed.
    pub fn balanced(&self) -> bool {
        self.failures == 0 && self.free + self.in_fill + self.in_tx + self.stranded == self.total
    }
}

impl CounterSnapshot {
    /// Build from a worker's counters.
    pub fn from_counters(worker: usize, c: &Counters) -> Self {
        let drops = DropReason::ALL
            .iter()
            .filter(|r| c.drops[r.index()] > 0)
            .map(|r| (r.label().to_string(), c.drops[r.index()]))
            .collect();
        let moved = c.rx_packets.max(1);
        CounterSnapshot {
            worker,
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            passed: c.passed,
            neighbour_replies: c.neighbour_replies,
            encapsulated: c.encapsulated,
            decapsulated: c.decapsulated,
            icmp: IcmpCounts {
                time_exceeded: c.icmp_time_exceeded,
                unreachable: c.icmp_unreachable,
                too_big: c.icmp_too_big,
                rate_limited: c.icmp_rate_limited,
            },
            sleeps: c.sleeps,
            max_loop_ns: c.max_loop_ns,
            slow_loops: c.slow_loops,
            port_rebinds: c.port_rebinds,
            frames: FrameGauges {
                total: c.frames_total,
                free: c.frames_free,
                in_fill: c.frames_in_fill,
                in_tx: c.frames_in_tx,
                stranded: c.frames_stranded,
                checks: c.accounting_checks,
                failures: c.accounting_failures,
            },
            cycles_per_packet: if c.rx_packets == 0 {
                0.0
            } else {
                c.busy_cycles as f64 / moved as f64
            },
            drops,
        }
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }
}
