//! The generated `kxdp.v1` messages, client and server, and the transport
//! limit both ends set.

#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]

tonic::include_proto!("kxdp.v1");

/// The encoded file descriptor set of `kxdp.v1`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kxdp_v1_descriptor");

/// The full name of the service, as reflection lists it.
pub const SERVICE_NAME: &str = "kxdp.v1.DataplaneService";

/// The largest message the API takes or sends, at both ends (a resync of
/// 100k endpoints is a few MiB).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
