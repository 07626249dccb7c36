//! kxdp's benchmarks: the in-memory pipeline rate (this crate's `pipeline`
//! module) and service-chain rate (`chain`), and, on the testbed, pod-to-pod
//! latency and rate beside the kernel's own paths.

pub mod chain;
pub mod external;
pub mod generator;
pub mod latency;
pub mod pipeline;
pub mod plot;
pub mod pods;
pub mod rate;
pub mod suite;
