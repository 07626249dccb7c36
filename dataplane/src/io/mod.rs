//! I/O backends: the AF_XDP sockets ([`crate::xsk`]) and an in-memory
//! backend of the same shape ([`memory`], for tests and benchmarks). The
//! shape itself — [`Desc`], [`PacketIo`], [`chunk_of`] — is AF_XDP's and
//! is defined with it in [`crate::xsk`]; it is named here too.

pub mod memory;

pub use crate::xsk::{chunk_of, Desc, PacketIo, MIN_HEADROOM};
