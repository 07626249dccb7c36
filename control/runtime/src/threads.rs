//! Where kxdp's own threads run: off the workers' cores.

/// Keep the calling thread (`thread` names it in logs: "API", "metrics",
/// "Kubernetes agent") off `avoid`, the workers' cores, when any core is
/// left for it.
pub fn avoid_cores(avoid: &[usize], thread: &str) {
    if avoid.is_empty() {
        return;
    }
    let Ok(current) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return;
    };
    let mut set = nix::sched::CpuSet::new();
    let mut any = false;
    for cpu in 0..nix::sched::CpuSet::count() {
        if current.is_set(cpu).unwrap_or(false) && !avoid.contains(&cpu) {
            any |= set.set(cpu).is_ok();
        }
    }
    if !any {
        tracing::info!(
            ?avoid,
            thread,
            "every core runs a worker: this thread shares them"
        );
        return;
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        tracing::warn!(error = %e, thread, "could not keep this thread off the workers' cores");
    }
}
