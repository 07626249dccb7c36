//! The service chains in the dataplane's worker: [`DataplaneChains`]
//! implements the pipeline's [`ChainHook`] over a [`ChainWorker`] and the
//! published [`ChainSet`], and [`ChainSetHandle`] publishes chain sets to
//! every worker the way the forwarding tables are published (RCU with
//! arc-swap, a generation per snapshot, the writer frees replaced ones).
//!
//! Each worker's chain counters ([`ChainStats`]) are published into a
//! [`SharedChainStats`] when the worker is idle (at most about once a
//! second): the stats reader (API thread) never waits for a worker and the
//! worker never takes a lock.
//!
//! A chain's drops are the dataplane's [`DropReason`]s: one fate type from
//! the first check to the tx ring.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Cache};
use kxdp_dataplane::chain_hook::{ChainFrames, ChainHook, ChainPacket, CHAIN_BATCH};
use kxdp_dataplane::PortId;

use crate::chain::{ChainInput, ChainSet, CompileOptions};
use crate::context::{Frames, PacketContext};
use crate::counter::ChainStats;
use crate::error::ChainError;
use crate::executor::{ChainWorker, WorkerLimits};

/// Replaced chain sets the writer keeps before it frees them (so a worker
/// that moves on never frees a whole set inside its loop).
pub const RETIRED_CHAIN_SETS: usize = 4;

/// Publishes [`ChainSet`]s to the workers (the writer side of the RCU).
#[derive(Debug, Clone)]
pub struct ChainSetHandle {
    current: Arc<ArcSwap<ChainSet>>,
    next_generation: Arc<AtomicU64>,
    retired: Arc<Mutex<VecDeque<Arc<ChainSet>>>>,
}

impl ChainSetHandle {
    /// Start with `set`.
    pub fn new(set: ChainSet) -> Self {
        let next = set.generation() + 1;
        ChainSetHandle {
            current: Arc::new(ArcSwap::from_pointee(set)),
            next_generation: Arc::new(AtomicU64::new(next)),
            retired: Arc::default(),
        }
    }

    /// Compile the first set of a node from its model (generation 1).
    pub fn compile_initial(
        input: &ChainInput<'_>,
        options: CompileOptions,
    ) -> Result<Self, ChainError> {
        Ok(ChainSetHandle::new(ChainSet::compile(
            input, 1, options, None,
        )?))
    }

    /// Compile `input` into the next generation, following the current set
    /// (stable identities, reused tables: see [`ChainSet::compile`]). Not
    /// published: hand it to [`ChainSetHandle::publish`] once everything
    /// else of the change compiled too.
    pub fn compile(&self, input: &ChainInput<'_>) -> Result<ChainSet, ChainError> {
        let current = self.current();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        ChainSet::compile(input, generation, current.options(), Some(&current))
    }

    /// Publish `set` with one swap; the replaced set is kept among the
    /// retired ones and the oldest is freed here. Returns its generation.
    pub fn publish(&self, set: ChainSet) -> u64 {
        let generation = set.generation();
        let old = self.current.swap(Arc::new(set));
        let oldest = {
            let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
            retired.push_back(old);
            if retired.len() > RETIRED_CHAIN_SETS {
                retired.pop_front()
            } else {
                None
            }
        };
        drop(oldest);
        generation
    }

    /// The current set.
    pub fn current(&self) -> Arc<ChainSet> {
        self.current.load_full()
    }

    /// A reader for one worker.
    pub fn reader(&self) -> ChainSetReader {
        ChainSetReader {
            cache: Cache::new(Arc::clone(&self.current)),
        }
    }
}

/// A worker's view of the chain sets: lock-free, one atomic load per batch
/// when unchanged.
pub struct ChainSetReader {
    cache: Cache<Arc<ArcSwap<ChainSet>>, Arc<ChainSet>>,
}

impl std::fmt::Debug for ChainSetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSetReader").finish_non_exhaustive()
    }
}

impl ChainSetReader {
    /// The current set.
    #[inline]
    pub fn load(&mut self) -> &Arc<ChainSet> {
        self.cache.load()
    }
}

/// One worker's chain counters, as it last published them (when idle).
#[derive(Debug, Default)]
pub struct SharedChainStats {
    stats: ArcSwap<Vec<ChainStats>>,
    generation: AtomicU64,
}

impl SharedChainStats {
    /// Publish a worker's stats (by the worker, when idle).
    pub fn publish(&self, stats: Vec<ChainStats>, generation: u64) {
        self.stats.store(Arc::new(stats));
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// The last published stats.
    pub fn snapshot(&self) -> Arc<Vec<ChainStats>> {
        self.stats.load_full()
    }

    /// The generation of the chain set the last published stats follow.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Every worker's stats summed by chain and stage.
    pub fn merged(workers: &[Arc<SharedChainStats>]) -> Vec<ChainStats> {
        let snapshots: Vec<Arc<Vec<ChainStats>>> = workers.iter().map(|w| w.snapshot()).collect();
        ChainStats::merge(snapshots.iter().map(|s| s.as_slice()))
    }
}

/// The worker's UMEM frames of a chain batch, indexed like the batch.
impl Frames for ChainFrames<'_, '_> {
    #[inline]
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        ChainFrames::frame_mut(self, index)
    }

    #[inline]
    fn mirror(&mut self, index: usize, port: PortId) -> bool {
        ChainFrames::mirror(self, index, port)
    }
}

/// The chain hook of one dataplane worker: its [`ChainWorker`] state, a
/// reader of the published chain sets, reused packet contexts, and where
/// it publishes its counters.
#[derive(Debug)]
pub struct DataplaneChains {
    reader: ChainSetReader,
    worker: ChainWorker,
    contexts: Vec<PacketContext>,
    stats: Arc<SharedChainStats>,
}

impl DataplaneChains {
    /// A worker's hook reading `chains`, with its tables sized by `limits`,
    /// created at `now_ns`; it publishes its counters to `stats`.
    pub fn new(
        chains: &ChainSetHandle,
        limits: WorkerLimits,
        now_ns: u64,
        stats: Arc<SharedChainStats>,
    ) -> Self {
        let mut reader = chains.reader();
        let worker = ChainWorker::new(reader.load(), limits, now_ns);
        DataplaneChains {
            reader,
            worker,
            contexts: Vec::with_capacity(CHAIN_BATCH.max(limits.batch_size)),
            stats,
        }
    }

    /// The worker's chain state.
    pub fn chain_worker(&self) -> &ChainWorker {
        &self.worker
    }

    /// Publish the counters now (the worker does it when idle).
    pub fn publish_stats(&self) {
        let generation = self.worker.generation().unwrap_or(0);
        self.stats.publish(self.worker.stats(), generation);
    }
}

impl ChainHook for DataplaneChains {
    #[inline]
    fn begin_batch(&mut self, in_port: PortId) -> bool {
        self.reader.load().resume_point(in_port).is_some()
    }

    /// Loads the current set (as `begin_batch` then does again, from the
    /// reader's cache). A set published between this load and the batch's
    /// `process` that has more mirror stages per chain than the one before
    /// finds too few lent frames for that one batch: the copies beyond them
    /// are counted as `mirror_no_frame`.
    #[inline]
    fn mirror_copies(&mut self) -> usize {
        self.reader.load().mirror_copies()
    }

    fn process(
        &mut self,
        now_ns: u64,
        packets: &mut [ChainPacket],
        frames: &mut ChainFrames<'_, '_>,
    ) {
        let set = self.reader.load();
        if set.is_empty() {
            return;
        }
        // The pipeline hands at most CHAIN_BATCH packets, which the
        // contexts have room for: one batch, never split, no allocation.
        self.contexts.clear();
        for (i, packet) in packets.iter().enumerate() {
            let frame = frames.frame(i).unwrap_or(&[]);
            self.contexts.push(PacketContext::new(
                frame,
                packet.meta,
                packet.in_port,
                packet.tenant,
            ));
        }
        self.worker.process(set, now_ns, &mut self.contexts, frames);
        for (packet, ctx) in packets.iter_mut().zip(self.contexts.iter()) {
            packet.meta = ctx.meta;
            packet.tenant = ctx.tenant;
            packet.verdict = ctx.outcome;
        }
    }

    fn on_idle(&mut self, now_ns: u64) {
        let set = self.reader.load();
        if self.worker.generation() != Some(set.generation()) {
            self.worker.adopt(set, now_ns);
        }
        self.publish_stats();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_set_reaches_readers_and_the_writer_frees_old_ones() {
        let handle = ChainSetHandle::new(ChainSet::empty(1));
        let mut reader = handle.reader();
        assert_eq!(reader.load().generation(), 1);
        let first = Arc::downgrade(reader.load());
        let input = ChainInput {
            tenants: &[],
            interfaces: &[],
            ports: None,
            pods: &[],
            namespaces: &[],
            services: &[],
            policies: &[],
            chains: &[],
            node: "",
            service_cidrs: &[],
            node_addresses: &[],
            vtep_address: None,
        };
        let set = handle.compile(&input).expect("an empty model compiles");
        assert_eq!(set.generation(), 2);
        assert_eq!(handle.publish(set), 2);
        assert_eq!(reader.load().generation(), 2);
        assert!(first.upgrade().is_some(), "kept by the writer");
        for _ in 0..RETIRED_CHAIN_SETS {
            let set = handle.compile(&input).expect("compiles");
            handle.publish(set);
        }
        assert!(first.upgrade().is_none(), "freed by the writer");
        assert_eq!(reader.load().generation(), 2 + RETIRED_CHAIN_SETS as u64);
    }
}
