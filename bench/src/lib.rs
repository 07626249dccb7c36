//! kxdp's benchmarks: the in-memory pipeline rate (this crate's `pipeline`
//! module) and service-chain rate (`chain`), and, on the testbed, one node
//! under test beside a kernel VXLAN peer (`nut`, the headline table) and
//! pod-to-pod latency and rate beside the kernel's own paths.

pub mod chain;
pub mod external;
pub mod figures;
pub mod generator;
pub mod halt_poll;
pub mod hops;
pub mod latency;
pub mod nut;
pub mod ovs_vxlan;
pub mod pipeline;
pub mod plot;
pub mod pods;
pub mod profile;
pub mod rate;
pub mod suite;

/// The one of `all` whose `label` is `s`, for the command line; the error
/// names `s`, the `kind` of thing it should have been and every label.
pub fn by_label<T: Copy>(
    all: &[T],
    label: fn(T) -> &'static str,
    kind: &str,
    s: &str,
) -> Result<T, String> {
    all.iter().copied().find(|&t| label(t) == s).ok_or_else(|| {
        let labels: Vec<&str> = all.iter().map(|&t| label(t)).collect();
        format!("{s:?} is not a {kind} ({})", labels.join(", "))
    })
}
