//! kxdp's control layer: the `kxdp` binary's commands (run, demo, stats),
//! the node runtime that binds AF_XDP sockets and starts workers, the stats
//! endpoint, and the testbed that builds nodes and pods out of network
//! namespaces.

pub mod api;
pub mod cli;
pub mod demo;
pub mod hostport;
pub mod k8s;
pub mod metrics;
pub mod runtime;
pub mod stats;
pub mod testbed;
pub mod trace;
