//! kxdp's benchmarks: the in-memory pipeline rate (this crate's `pipeline`
//! module) and service-chain rate (`chain`), and, on the testbed, one node
//! under test beside a kernel VXLAN peer (`nut`, the headline table) and
//! pod-to-pod latency and rate beside the kernel's own paths.

pub mod chain;
pub mod external;
pub mod figures;
pub mod generator;
pub mod halt_poll;
pub mod latency;
pub mod nut;
pub mod ovs_vxlan;
pub mod pipeline;
pub mod plot;
pub mod pods;
pub mod profile;
pub mod rate;
pub mod suite;
