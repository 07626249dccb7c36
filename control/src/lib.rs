//! kxdp's control layer: the node runtime that binds AF_XDP sockets and
//! starts workers, the stats endpoint, the gRPC API, metrics, the trace
//! server and the Kubernetes agent. The `kxdp` binary's commands are in
//! `kxdp-cli`; the netns testbed in `kxdp-testbed`.

pub mod api;
pub mod hostport;
pub mod k8s;
pub mod metrics;
pub mod readiness;
pub mod runtime;
pub mod stats;
pub mod threads;
pub mod trace;
pub mod trace_capture;
