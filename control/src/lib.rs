//! kxdp's control layer: the `kxdp` binary's commands (run, demo, stats) and
//! the testbed that builds nodes and pods out of network namespaces.

pub mod testbed;
