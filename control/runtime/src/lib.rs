//! kxdp's node runtime: the layer between the dataplane and the control
//! plane. It binds the AF_XDP sockets, attaches kxdp's XDP program to every
//! interface, starts the pinned workers and binds or unbinds pod
//! interfaces at run time (`runtime`, `lifecycle`), puts the pods' veth
//! NAPI threads on the workers' cores where asked (`pod_napi`, through the
//! kernel's netdev netlink family: `netdev`), sets up the host port
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
pub mod netdev;
pub mod pod_napi;
pub mod readiness;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod threads;

/// A directory removed on drop, for tests of code that reads sysfs (no
/// tempfile crate in this crate).
#[cfg(test)]
mod test_dir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TestDir(PathBuf);

    impl TestDir {
        /// A new empty directory; `what` goes in its name.
        pub fn new(what: &str) -> TestDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "kxdp-{what}-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            if let Err(e) = std::fs::create_dir_all(&path) {
                panic!("{}: {e}", path.display());
            }
            TestDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
