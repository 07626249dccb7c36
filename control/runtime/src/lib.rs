//! kxdp's node runtime: the layer between the dataplane and the control
//! plane. It binds the AF_XDP sockets, attaches kxdp's XDP program to every
//! interface, starts the pinned workers and binds or unbinds pod
//! interfaces at run time (`runtime`, `lifecycle`), sets up the host port
//! into the node's own stack (`hostport`), says whether the node is ready
//! (`readiness`), keeps kxdp's own threads off the workers' cores
//! (`threads`), reads the counters as plain data (`stats`) and checks the
//! host settings it depends on but does not own (`host`).
//!
//! It serves nothing: no gRPC, HTTP, Kubernetes or socket server here. The
//! control plane (`kxdp-control`: the API, metrics, trace and the agent)
//! reads and drives it.

#![forbid(unsafe_code)]

pub mod host;
pub mod hostport;
pub mod lifecycle;
pub mod readiness;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod threads;
