//! kxdp's dataplane layer: packet views and parsing, VXLAN, the forwarding
//! tables and their lock-free (RCU) publication, the batch pipeline, drop
//! counters, the I/O backend trait with its in-memory and AF_XDP backends,
//! the XDP program loader, and the poll-mode workers.
//!
//! The pipeline, tables and packet code are sans-IO: they take byte buffers
//! and never open a socket, read a clock or spawn a thread. Only `xsk` (the
//! AF_XDP rings), `bpf` (the bpf(2) syscalls), `cycles` (the TSC),
//! `prefetch` (a cache hint) and `hugepage` (madvise) may use `unsafe`.
//! Nothing here knows about gRPC or Kubernetes.

pub mod bpf;
pub mod chain_hook;
pub mod counters;
pub mod cycles;
pub mod hugepage;
pub mod io;
pub mod lpm;
pub mod packet;
pub mod pipeline;
pub mod prefetch;
pub mod tables;
pub mod trace;
pub mod verdict;
pub mod vxlan;
pub mod wire;
pub mod worker;
pub mod xsk;

pub use verdict::{DropReason, PortId, Verdict};
