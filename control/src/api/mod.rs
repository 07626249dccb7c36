//! The gRPC control API (`kxdp.v1`): the desired-state store that every
//! source of configuration applies through, the tonic service over it, the
//! listeners (a Unix socket by default, TCP only with mutual TLS), and the
//! client that the `kxdp` CLI uses.
//!
//! An in-process source (the Kubernetes agent) applies through the same
//! [`DesiredStateStore`] that the service wraps ([`DataplaneApi::store`]);
//! an out-of-process one through [`BlockingClient`] or the generated
//! [`ApiClient`]. Both get the same semantics: atomic, validated whole,
//! keyed and idempotent.

pub mod client;
pub mod convert;
pub mod file;
pub mod proto;
pub mod render;
pub mod server;
pub mod service;
pub mod store;

pub use client::{ApiClient, ApiTarget, BlockingClient, ClientError};
pub use server::{api_socket_path, ApiServer, ApiServerError, ApiServerOptions};
pub use service::DataplaneApi;
pub use store::{
    ApplyMode, ApplyOutcome, ChangeSet, DesiredStateStore, FieldError, KeySet, ObjectKind,
    ObjectSet,
};
