//! kxdp's control plane over the node runtime (`kxdp-node`): the gRPC API
//! and its client, what `kxdp stats` reads through it (`stats`), metrics,
//! the trace server and capture, and the Kubernetes agent. The `kxdp` binary's commands are in
//! `kxdp-cli`; the netns testbed in `kxdp-testbed`.

pub mod api;
pub mod k8s;
pub mod metrics;
pub mod neighbours;
pub mod stats;
pub mod trace;
pub mod trace_capture;
