//! The chain executor: one worker's state for every chain of the current
//! [`ChainSet`], the batch loop that classifies packets (or resumes those
//! coming back from a VNF) and runs each chain's stages over them, and its
//! plug into the dataplane's worker.
//!
//! A batch is run packet by packet (after one pass that prefetches every
//! packet's connection entry): each packet goes through its chain's stages,
//! forward packets in order, return packets in reverse, while its context
//! and entry are in the first-level cache. A packet leaves its chain at the
//! first drop or redirect, or after the last stage.
//!
//! Connections: each packet is looked up once in the worker's connection
//! table ([`crate::conntrack`]), which gives its chain, its direction and
//! the per-flow state of the chain's functions. The first packet of a flow
//! is classified and gets an entry; unless the chain drops it (then the
//! entry goes again: a denied first packet must not decide which end
//! initiated the flow), the reversed tuple gets an entry as
//! [`Direction::Reply`], and so does the translated reply tuple when a load
//! balancer translated the packet. A flow that matches no chain is
//! remembered as such until the next swap.
//!
//! # In the dataplane's worker
//!
//! [`DataplaneChains`] implements the pipeline's [`ChainHook`] over a
//! [`ChainWorker`] and the published [`ChainSet`], and [`ChainSetHandle`]
//! publishes chain sets to every worker the way the forwarding tables are
//! published (RCU with arc-swap, a generation per snapshot, the writer
//! frees replaced ones).
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
use kxdp_config::FunctionSpec;
use kxdp_dataplane::chain_hook::{ChainFrames, ChainHook, ChainPacket, ChainVerdict, CHAIN_BATCH};
use kxdp_dataplane::{DropReason, PortId};

use crate::chain::{
    function_kind, occurrence, ChainCounters, ChainInput, ChainSet, ChainStats, CompileOptions,
    CompiledChain, StageCounters, StageState,
};
use crate::conntrack::{
    split, Connection, Conntrack, Direction, FlowHandle, Frames, PacketContext, StageAction,
    Translation, NO_CHAIN,
};
use crate::error::ChainError;
use crate::load_balancer::LbEnv;

/// Sizes of a worker's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Entries of the connection table (flow directions: a connection
    /// through a load balancer takes three, most others two).
    pub flow_capacity: usize,
    /// How long a connection entry lives after its last packet.
    pub idle_timeout_ns: u64,
    /// The largest batch expected (scratch space is sized for it).
    pub batch_size: usize,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            flow_capacity: 1 << 16,
            idle_timeout_ns: 120_000_000_000,
            batch_size: 256,
        }
    }
}

#[derive(Debug)]
struct StageRuntime {
    spec: FunctionSpec,
    /// Identifies the stage's per-flow state in connection entries; a new
    /// state gets a new one, so entries of a replaced stage are not reused.
    owner: u32,
    counters: StageCounters,
    state: StageState,
}

#[derive(Debug)]
struct ChainRuntime {
    name: String,
    counters: ChainCounters,
    stages: Vec<StageRuntime>,
}

/// One worker's chain state: per chain and stage, the functions' state and
/// counters, and the connection table. Owned by the worker, never shared.
#[derive(Debug)]
pub struct ChainWorker {
    generation: Option<u64>,
    limits: WorkerLimits,
    conntrack: Conntrack,
    chains: Vec<ChainRuntime>,
    next_owner: u32,
    /// Per packet of the batch: its flow key's hash (computed once, for the
    /// prefetch and the lookup).
    hashes: Vec<u64>,
}

impl ChainWorker {
    /// A worker's state for `set`, created at `now` (allocates every table).
    pub fn new(set: &ChainSet, limits: WorkerLimits, now: u64) -> Self {
        let mut worker = ChainWorker {
            generation: None,
            limits,
            conntrack: Conntrack::new(limits.flow_capacity, limits.idle_timeout_ns),
            chains: Vec::new(),
            next_owner: 1,
            hashes: Vec::with_capacity(limits.batch_size),
        };
        worker.adopt(set, now);
        worker
    }

    /// The generation of the set the state follows.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// The worker's limits.
    pub fn limits(&self) -> WorkerLimits {
        self.limits
    }

    /// Follow a new chain set (done by [`ChainWorker::process`] when the
    /// set's generation changes; allocates, once per swap). A stage keeps
    /// its state, counters and per-flow state when its chain (by name)
    /// still has a stage with the same function spec (the n-th such, if
    /// several); other stages start afresh. Flows of a chain that still
    /// exists stay with it; flows of removed chains, and flows that matched
    /// no chain, are classified again.
    pub fn adopt(&mut self, set: &ChainSet, now: u64) {
        let mut old = std::mem::take(&mut self.chains);
        let mut remap = vec![NO_CHAIN; old.len()];
        for (new_index, chain) in set.chains.iter().enumerate() {
            let old_index = old.iter().position(|c| c.name == chain.spec.name);
            if let Some(i) = old_index {
                remap[i] = new_index as u16;
            }
            // The previous stages of the chain, each with its n-th.
            let mut previous: Vec<(usize, Option<StageRuntime>)> = match old_index {
                Some(i) => {
                    let stages = std::mem::take(&mut old[i].stages);
                    let specs: Vec<FunctionSpec> = stages.iter().map(|s| s.spec.clone()).collect();
                    stages
                        .into_iter()
                        .enumerate()
                        .map(|(p, stage)| (occurrence(&specs, p), Some(stage)))
                        .collect()
                }
                None => Vec::new(),
            };
            let counters = old_index.map(|i| old[i].counters).unwrap_or_default();
            let specs: Vec<FunctionSpec> = chain.stages.iter().map(|s| s.spec.clone()).collect();
            let mut stages = Vec::with_capacity(chain.stages.len());
            for (s, stage) in chain.stages.iter().enumerate() {
                let nth = occurrence(&specs, s);
                let kept = previous.iter_mut().find_map(|(p_nth, p)| {
                    if *p_nth == nth && p.as_ref().is_some_and(|p| p.spec == stage.spec) {
                        p.take()
                    } else {
                        None
                    }
                });
                let runtime = match kept {
                    Some(mut runtime) => {
                        runtime.state.reconfigure(&stage.stage);
                        runtime
                    }
                    None => {
                        let owner = self.next_owner;
                        self.next_owner = self.next_owner.wrapping_add(1).max(1);
                        StageRuntime {
                            spec: stage.spec.clone(),
                            owner,
                            counters: StageCounters::default(),
                            state: stage.stage.fresh(now),
                        }
                    }
                };
                stages.push(runtime);
            }
            self.chains.push(ChainRuntime {
                name: chain.spec.name.clone(),
                counters,
                stages,
            });
        }
        self.conntrack
            .table
            .retain(|_, entry| match remap.get(usize::from(entry.chain)) {
                Some(&new) if new != NO_CHAIN => {
                    entry.chain = new;
                    true
                }
                _ => false,
            });
        self.generation = Some(set.generation);
    }

    /// Run a batch through the chains of `set` at `now` (nanoseconds, the
    /// same clock for every worker). `batch[i]` describes `frames`' frame
    /// `i`. On return every context's `outcome` says what to do with the
    /// frame; a passed or redirected frame may have been rewritten (and its
    /// `meta` with it). Allocates nothing unless `set` is new to this worker
    /// or the batch is larger than [`WorkerLimits::batch_size`].
    pub fn process<F: Frames + ?Sized>(
        &mut self,
        set: &ChainSet,
        now: u64,
        batch: &mut [PacketContext],
        frames: &mut F,
    ) {
        if self.generation != Some(set.generation) {
            self.adopt(set, now);
        }
        // With thousands of flows a packet's connection entry is a cache
        // miss; looked up one after another, each miss stalls the core in
        // turn. So first the hashes and a prefetch of every packet's bucket
        // tags, then of the matching entries, and only then the lookups:
        // the misses of the whole batch overlap.
        self.hashes.clear();
        let table = &self.conntrack.table;
        for ctx in batch.iter() {
            let hash = if ctx.is_ip && set.classifier.has_chains(ctx.tenant) {
                let hash = ctx.flow.hash();
                table.prefetch_tags(hash);
                hash
            } else {
                0
            };
            self.hashes.push(hash);
        }
        for (ctx, &hash) in batch.iter().zip(&self.hashes) {
            if ctx.is_ip {
                table.prefetch_slots(hash);
            }
        }
        // Then packet by packet: its lookup (now a cache hit), and every
        // stage of its chain until it leaves it, while its context and
        // connection entry are in the core's first-level cache.
        for i in 0..batch.len() {
            let Some(ctx) = batch.get_mut(i) else {
                continue;
            };
            let hash = self
                .hashes
                .get(i)
                .copied()
                .unwrap_or_else(|| ctx.flow.hash());
            self.enter(set, now, ctx, hash);
            while ctx.running {
                let chain = ctx.chain;
                let Some(compiled) = set.chains.get(usize::from(chain)) else {
                    ctx.running = false;
                    break;
                };
                self.run_stage(set, compiled, now, ctx, i, frames);
            }
        }
    }

    /// Find (or make) a packet's connection entry, or resume it, and count
    /// its entry into the chain. `hash` is `ctx.flow`'s.
    #[inline]
    fn enter(&mut self, set: &ChainSet, now: u64, ctx: &mut PacketContext, hash: u64) {
        ctx.running = false;
        ctx.outcome = ChainVerdict::NoChain;
        ctx.nat = None;
        ctx.fresh = false;
        ctx.handle = FlowHandle::NONE;
        ctx.chain = NO_CHAIN;
        ctx.action = StageAction::Pass;
        if !ctx.is_ip {
            return;
        }
        let (chain, first) = if let Some(point) = set.resume_point(ctx.in_port) {
            let Some(compiled) = set.chains.get(usize::from(point.chain)) else {
                return;
            };
            if let Some(StageState::External { config, .. }) = compiled
                .stages
                .get(usize::from(point.stage))
                .map(|s| &s.stage)
            {
                config.liveness.note_return(now);
            }
            ctx.tenant = compiled.tenant;
            let mut flow = ctx.flow;
            flow.tenant = compiled.tenant;
            ctx.set_flow(flow);
            ctx.direction = point.direction;
            // Its entry, made anew if the VNF changed the tuple or the entry
            // went away meanwhile.
            let table = &mut self.conntrack.table;
            let hash = ctx.flow.hash();
            let handle = match table.get_handle(&ctx.flow, hash, now) {
                Some(handle) if table.at_mut(handle).is_some_and(|e| e.chain == point.chain) => {
                    handle
                }
                _ => table.insert_handle(
                    ctx.flow,
                    hash,
                    Connection::new(point.chain, point.direction, true),
                    now,
                ),
            };
            ctx.handle = handle;
            if let Some(runtime) = self.chains.get_mut(usize::from(point.chain)) {
                runtime.counters.resumed += 1;
            }
            (
                point.chain,
                compiled.next_stage(point.stage, point.direction),
            )
        } else {
            if !set.classifier.has_chains(ctx.tenant) {
                return;
            }
            let table = &mut self.conntrack.table;
            let (handle, chain, direction) = match table.get_handle(&ctx.flow, hash, now) {
                Some(handle) => {
                    let Some(entry) = table.at_mut(handle) else {
                        return;
                    };
                    if entry.chain == NO_CHAIN {
                        return;
                    }
                    (handle, entry.chain, entry.direction)
                }
                None => {
                    if set.classifier.uses_identities(ctx.tenant) && !ctx.identities_known {
                        let map = &set.identity_map;
                        ctx.src_identity = map.lookup(ctx.tenant, ctx.flow.src, ctx.flow.ipv6);
                        ctx.dst_identity = map.lookup(ctx.tenant, ctx.flow.dst, ctx.flow.ipv6);
                        ctx.identities_known = true;
                    }
                    match set
                        .classifier
                        .classify(&ctx.flow, ctx.src_identity, ctx.dst_identity)
                    {
                        None => {
                            table.insert_handle(ctx.flow, hash, Connection::default(), now);
                            return;
                        }
                        Some((chain, direction)) => {
                            ctx.fresh = true;
                            let entry = Connection::new(chain, direction, false);
                            let handle = table.insert_handle(ctx.flow, hash, entry, now);
                            (handle, chain, direction)
                        }
                    }
                }
            };
            let Some(compiled) = set.chains.get(usize::from(chain)) else {
                return;
            };
            ctx.handle = handle;
            ctx.direction = direction;
            if let Some(runtime) = self.chains.get_mut(usize::from(chain)) {
                runtime.counters.packets += 1;
                runtime.counters.bytes += u64::from(ctx.len);
                if direction == Direction::Reply {
                    runtime.counters.reply_packets += 1;
                }
            }
            (chain, compiled.first_stage(direction))
        };
        ctx.chain = chain;
        match first {
            Some(stage) => {
                ctx.stage = stage;
                ctx.running = true;
            }
            None => self.finish(chain, ctx, StageAction::Pass, now),
        }
    }

    /// Run a packet's next stage (`ctx.stage` of chain `ctx.chain`, which
    /// is `compiled`): count it, then move the packet on to the stage after,
    /// or out of the chain. `index` is the packet's frame in `frames`.
    #[inline(always)]
    fn run_stage<F: Frames + ?Sized>(
        &mut self,
        set: &ChainSet,
        compiled: &CompiledChain,
        now: u64,
        ctx: &mut PacketContext,
        index: usize,
        frames: &mut F,
    ) {
        let (chain, stage) = (ctx.chain, ctx.stage);
        let Some(runtime) = self
            .chains
            .get_mut(usize::from(chain))
            .and_then(|c| c.stages.get_mut(usize::from(stage)))
        else {
            // Only if adopt() went wrong: the packet leaves the chain.
            self.finish(chain, ctx, StageAction::Pass, now);
            return;
        };
        let conntrack = &mut self.conntrack;
        let owner = runtime.owner;
        // Each function decides for this one packet, with its settings and
        // state from the one stage value.
        ctx.action = match &mut runtime.state {
            StageState::Policy(state) => state.decide(&set.policy_env(), now, ctx, conntrack),
            StageState::Policer(state) => state.decide(owner, now, ctx, conntrack),
            StageState::LoadBalancer { config, state } => {
                let env = LbEnv {
                    config,
                    services: &set.services,
                    owner,
                };
                match frames.frame_mut(index) {
                    Some(frame) => state.decide(&env, now, ctx, frame, conntrack),
                    None => StageAction::Drop(DropReason::ChainMalformedFrame),
                }
            }
            StageState::External { config, state } => state.decide(config, ctx.direction, now),
            StageState::Mirror { port } => {
                if frames.mirror(index, *port) {
                    runtime.counters.mirrored += 1;
                } else {
                    runtime.counters.mirror_failed += 1;
                }
                StageAction::Pass
            }
            StageState::Counter => StageAction::Pass,
        };
        let action = ctx.action;
        let counters = &mut runtime.counters;
        counters.packets += 1;
        counters.bytes += u64::from(ctx.len);
        match action {
            StageAction::Pass => {
                counters.passed += 1;
                match compiled.next_stage(stage, ctx.direction) {
                    Some(next) => ctx.stage = next,
                    None => self.finish(chain, ctx, action, now),
                }
            }
            StageAction::Drop(_) => {
                counters.dropped += 1;
                self.finish(chain, ctx, action, now)
            }
            StageAction::Redirect(_) => {
                counters.redirected += 1;
                self.finish(chain, ctx, action, now)
            }
        }
    }

    /// A packet leaves its chain.
    #[inline(always)]
    fn finish(&mut self, chain: u16, ctx: &mut PacketContext, action: StageAction, now: u64) {
        ctx.running = false;
        let counters = self
            .chains
            .get_mut(usize::from(chain))
            .map(|c| &mut c.counters);
        ctx.outcome = match action {
            StageAction::Pass => {
                if let Some(c) = counters {
                    c.passed += 1;
                }
                ChainVerdict::Pass
            }
            StageAction::Drop(reason) => {
                if let Some(c) = counters {
                    c.dropped += 1;
                    if let Some(slot) = reason.chain_index().and_then(|i| c.drops.get_mut(i)) {
                        *slot += 1;
                    }
                }
                ChainVerdict::Drop(reason)
            }
            StageAction::Redirect(port) => {
                if let Some(c) = counters {
                    c.redirected += 1;
                }
                ChainVerdict::Redirect(port)
            }
        };
        if matches!(action, StageAction::Pass)
            && ctx.nat.is_none()
            && self
                .conntrack
                .table
                .at_mut(ctx.handle)
                .is_some_and(|e| e.confirmed())
        {
            // The steady state: an established connection passed, no new
            // translation to remember.
            return;
        }
        self.remember(chain, ctx, action, now);
    }

    /// What a packet leaving its chain changes in the connection table
    /// (all but the steady state of [`ChainWorker::finish`]).
    #[inline(never)]
    fn remember(&mut self, chain: u16, ctx: &mut PacketContext, action: StageAction, now: u64) {
        let table = &mut self.conntrack.table;
        let handle = ctx.handle;
        if matches!(action, StageAction::Drop(_)) {
            // A first packet that does not make it leaves no connection
            // (unless another packet of the flow made it meanwhile).
            if ctx.fresh && table.at_mut(handle).is_some_and(|e| !e.confirmed()) {
                table.remove_at(handle);
            }
            return;
        }
        // The first packet of the flow to make it through: its entry is
        // confirmed, and the reversed tuple gets one.
        let (needs_reply, allowed, epoch) = match table.at_mut(handle) {
            Some(entry) => {
                let first = !entry.confirmed();
                entry.confirm();
                (first, entry.policy_allowed(), entry.policy_epoch)
            }
            None => (false, false, 0),
        };
        let reply_entry = || {
            let mut entry = Connection::new(chain, flip(ctx.direction), true);
            entry.set_policy(allowed, epoch);
            entry
        };
        if let Some(key) = table.key_at(handle).filter(|_| needs_reply) {
            let reversed = key.reversed();
            table.insert_handle(reversed, reversed.hash(), reply_entry(), now);
        }
        if let Some(nat) = ctx.nat {
            // Replies to the translated tuple belong to this chain, and get
            // the service's address back.
            let reversed = ctx.flow.reversed();
            let mut entry = reply_entry();
            entry.translation = Translation::Reply {
                ip: split(nat.ip),
                port: nat.port,
            };
            table.insert_handle(reversed, reversed.hash(), entry, now);
        }
    }

    /// Per chain and stage counters (allocates: for the control plane).
    pub fn stats(&self) -> Vec<ChainStats> {
        self.chains
            .iter()
            .map(|c| ChainStats {
                chain: c.name.clone(),
                counters: c.counters,
                stages: c
                    .stages
                    .iter()
                    .map(|s| (function_kind(&s.spec), s.counters))
                    .collect(),
            })
            .collect()
    }

    /// A stage's state, by chain name and stage index (for inspection).
    pub fn stage_state(&self, chain: &str, stage: usize) -> Option<&StageState> {
        self.chains
            .iter()
            .find(|c| c.name == chain)
            .and_then(|c| c.stages.get(stage))
            .map(|s| &s.state)
    }

    /// Connection entries evicted from full buckets so far.
    pub fn evictions(&self) -> u64 {
        self.conntrack.evictions()
    }
}

#[inline]
fn flip(direction: Direction) -> Direction {
    match direction {
        Direction::Forward => Direction::Reply,
        Direction::Reply => Direction::Forward,
    }
}

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
