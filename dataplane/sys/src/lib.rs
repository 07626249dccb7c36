//! The one room of kxdp with `unsafe` code (as quinn-udp sits beside
//! quinn-proto): everything that touches memory shared with the kernel or
//! calls into it without a safe wrapper from a crate.
//!
//! - [`xsk`]: the AF_XDP ring protocol and syscalls (socket, socket options,
//!   mmap of rings and UMEM, bind, wake-ups, poll);
//! - [`bpf`]: the bpf(2) syscall, through one function that tests can
//!   replace ([`bpf::override_syscall`]), and its typed wrappers;
//! - [`cycles`] (the TSC), [`prefetch`] (a cache hint) and [`hugepage`]
//!   (madvise).
//!
//! Each function here is safe to call; every `unsafe` block carries a
//! `// SAFETY:` comment. `kxdp-dataplane` and `kxdp-vnf-chains` are
//! `#![forbid(unsafe_code)]` and use these.

#![allow(unsafe_code)]

pub mod bpf;
pub mod cycles;
pub mod hugepage;
pub mod prefetch;
pub mod xsk;
