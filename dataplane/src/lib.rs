//! kxdp's dataplane layer: packet views and parsing, VXLAN, the forwarding
//! tables and their lock-free (RCU) publication, the batch pipeline, drop
//! counters, the I/O backend trait with its in-memory and AF_XDP backends,
//! the XDP program loader, and the poll-mode workers.
//!
//! The pipeline, tables and packet code are sans-IO: they take byte buffers
//! and never open a socket, read a clock or spawn a thread. No `unsafe`
//! here: the AF_XDP rings and syscalls, the bpf(2) syscall, the TSC,
//! prefetch and madvise primitives live in `kxdp-sys` (`dataplane/sys`),
//! which `xsk`, `bpf` and `worker` use. Nothing here knows about gRPC or
//! Kubernetes.

#![forbid(unsafe_code)]

pub mod bpf;
pub mod forward;
pub mod io;
pub mod packet;
pub mod pipeline;
pub mod tables;
pub mod trace;
pub mod verdict;
pub mod wire;
pub mod worker;
pub mod xsk;

pub use forward::vxlan;
pub use pipeline::{chain_hook, counters};
pub use verdict::{DropReason, PortId, Verdict};
