//! kxdp's network functions layer: the chain classifier and the functions
//! (policy, policer, load balancer, counter, mirror, external VNF hop) that
//! steer selected traffic through service chains.
//!
//! Sans-IO like the pipeline: no sockets, no clocks (time comes in as a
//! nanosecond timestamp), no threads, no locks, and no allocation on the
//! per-packet path — tables are allocated when a [`ChainSet`] is compiled or
//! when a worker's [`ChainWorker`] state is created or adopts a new set.
//!
//! # The pieces
//!
//! - [`ChainSet`] — an immutable snapshot compiled from the model
//!   ([`ChainInput`], e.g. [`ChainInput::from_config`]): chains with their
//!   compiled stages, the [`Classifier`], the identity universe and
//!   [`IdentityMap`], the compiled [`PolicySet`], the [`ServiceTable`] with
//!   one Maglev table per service port, and the VNF return ports. Publish it
//!   the way the forwarding tables are published (RCU, `arc-swap`): workers
//!   only read it.
//! - [`ChainWorker`] — one worker's mutable state: per chain and stage the
//!   function's state (class buckets, VNF liveness view, decision counters)
//!   and counters, and the connection table ([`conntrack`]): per flow
//!   direction its chain, its direction and the per-flow state of the
//!   chain's functions (policy verdict, policer bucket, load-balancer
//!   translation) in one 64-byte entry, so a packet costs one hash lookup
//!   whatever its chain holds. Never shared.
//! - [`PacketContext`] — one packet: [`FrameMeta`](kxdp_dataplane::packet::FrameMeta),
//!   length, ingress port, tenant, [`FlowKey`], identities, [`Direction`],
//!   and, after processing, its [`ChainVerdict`]. `Copy`, so a worker keeps a
//!   reused array of them.
//! - [`Frames`] — where the batch's frame bytes live (the worker implements
//!   it over its UMEM chunks; mirror copies go into free frames it lends
//!   the batch, and it sends them after the batch).
//!
//! # How the dataplane worker uses it
//!
//! ```text
//! // control plane, on every model change:
//! let set = ChainSet::compile(&ChainInput::from_config(&config), generation,
//!                             CompileOptions::default(), Some(&current))?;
//! publish(Arc::new(set));                        // arc-swap, like Tables
//!
//! // worker start:
//! let mut chains = ChainWorker::new(&set, WorkerLimits::default(), now_ns);
//!
//! // per batch, after parse + ARP/ND, before routing:
//! for each IP frame i:  contexts[i] = PacketContext::new(frame_i, meta_i, in_port, tenant);
//! chains.process(&set, now_ns, &mut contexts[..n], &mut frames);
//! for each i: match contexts[i].outcome {
//!     ChainVerdict::NoChain | ChainVerdict::Pass =>
//!         route contexts[i].meta (the load balancer may have rewritten the
//!         destination) in contexts[i].tenant, as today;
//!     ChainVerdict::Drop(reason) => count reason (a DropReason);
//!     ChainVerdict::Redirect(port) => set MACs for that port's pod, Tx(port),
//!         no TTL decrement;
//! }
//! ```
//!
//! - `process` adopts a new [`ChainSet`] by itself when its generation
//!   differs from the last one it saw (allocating once, at the swap).
//! - Frames arriving on a VNF's return interface
//!   ([`ChainSet::resume_point`] is `Some`) must be given to `process` like
//!   any other — it resumes them after their hop — and must be exempt from
//!   the pod source check (they carry the original sender's addresses).
//!   Their `tenant` is set to the chain's.
//! - `now_ns` comes from one monotonic clock shared by all workers (VNF
//!   liveness compares timestamps across workers).
//! - [`ChainWorker::stats`] gives per-chain and per-stage counters
//!   ([`ChainStats`], summed across workers with [`ChainStats::merge`]).
//! - [`executor`] also does all of this for the dataplane's worker:
//!   [`DataplaneChains`] is its `ChainHook` (the pipeline calls it per
//!   batch; see `kxdp_dataplane::chain_hook`), [`ChainSetHandle`]
//!   publishes sets, [`SharedChainStats`] carries each worker's counters
//!   to the API.
//!
//! # Semantics
//!
//! - Classification: per tenant, the highest-priority matching chain (ties
//!   by name); symmetric chains also claim their return traffic. A flow is
//!   classified at its first packet and both its directions stay with the
//!   chain (in the connection table) for as long as the chain exists and
//!   the entries do not expire: a new snapshot that changes a chain's
//!   classifier affects new flows only; flows that matched no chain are
//!   classified again after every swap. See [`chain`], [`executor`].
//! - Stages run in order for forward traffic. Return traffic of a symmetric
//!   chain runs them in reverse; return traffic of any other chain runs only
//!   its load balancer (to translate the source back).
//! - A chain may hold one load balancer and one per-flow policer (their
//!   per-flow state has one place in the connection entry); any number of
//!   the other functions.
//! - A swap keeps, for each chain (by name), the state, counters and
//!   per-flow state of every stage whose function spec is unchanged; so a
//!   load balancer keeps its connections across endpoint changes, a policy
//!   its allowed connections (checked again under the new policies and
//!   addresses at their next packet), and flows of unchanged chains are
//!   neither dropped nor reordered (the executor never reorders: outcomes
//!   are per index of the batch).
//! - Policy position: before a load balancer a policy stage sees the
//!   ClusterIP (no pod: only ipBlocks and the client's egress apply); after
//!   it, the backend pod, whose ingress policy then applies — as Kubernetes
//!   applies NetworkPolicy to translated connections.
//! - Functions: [`policy`], [`policer`], [`load_balancer`] (with [`maglev`]
//!   and [`nat`]), [`external`], mirror (a copy through [`Frames::mirror`]
//!   at its place in the chain; the original is untouched) and counter (see
//!   the counters of [`chain`]).
//!
//! A chain drops with the dataplane's `DropReason` (one of
//! `DropReason::CHAIN`): one fate type from the first check to the tx ring.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod chain;
pub mod conntrack;
pub mod error;
pub mod executor;
pub mod external;
pub mod load_balancer;
pub mod maglev;
pub mod nat;
pub mod policer;
pub mod policy;
pub mod service;

pub use chain::{
    ChainCounters, ChainInput, ChainSet, ChainStats, Classifier, CompileOptions, ResumePoint,
    StageCounters, StageState,
};
pub use conntrack::{
    Direction, FlowKey, FlowTable, Frames, Identities, IdentityId, IdentityKey, IdentityMap,
    IdentitySet, PacketContext, StageAction,
};
pub use error::ChainError;
pub use executor::{
    ChainSetHandle, ChainSetReader, ChainWorker, DataplaneChains, SharedChainStats, WorkerLimits,
};
/// What a chain decides for a packet: the pipeline's own type.
pub use kxdp_dataplane::chain_hook::ChainVerdict;
pub use maglev::{Backend, MaglevTable, TableSize};
pub use policy::PolicySet;
pub use service::ServiceTable;
