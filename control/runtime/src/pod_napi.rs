//! `workers.pod_napi: worker-core`: the pods' veth receive work (each
//! veth queue's NAPI: kxdp's XDP program, the redirect and the copy into
//! a worker's UMEM) moved onto the workers' cores.
//!
//! As the kernel has it, a veth's NAPI runs in the softirq of the core
//! that transmitted into the veth: the pod's. With `worker-core`, once
//! kxdp's XDP program is on a pod interface (a veth has NAPI instances
//! only with an XDP program or GRO on), kxdp
//!
//! 1. writes `1` to `/sys/class/net/IF/threaded`, remembering the value
//!    it found;
//! 2. finds the interface's NAPI threads through the kernel's `netdev`
//!    netlink family ([`crate::netdev`]), waiting up to [`THREAD_WAIT`]
//!    for them;
//! 3. pins the thread of queue `q` to the core of worker `q` (the worker
//!    that binds that queue) with `sched_setaffinity`. veth numbers its
//!    NAPI instances in queue order, so the `q`-th lowest NAPI id serves
//!    queue `q` (the kernel's queue dump would say so, but veth leaves
//!    the queue's NAPI id out). The threads of queues beyond the workers'
//!    (no worker binds them, so kxdp's program has no socket for their
//!    frames) are left unpinned.
//!
//! The threads keep the kernel's SCHED_OTHER: at SCHED_FIFO a NAPI thread
//! under load starves a busy worker on the same core (measured: 94–99 %
//! of a 64-byte flood lost). The old `threaded` value goes back when the
//! port is detached, when kxdp stops and when its start fails.
//!
//! Nothing here fails the node: when an interface cannot be placed (no
//! sysfs file, EPERM, an XDP program in generic mode and so no NAPI, no
//! thread within [`THREAD_WAIT`], a NAPI thread outside kxdp's pid
//! namespace), kxdp logs a warning naming the interface and the reason,
//! the port says so in `kxdp stats` ([`Placement`]) and forwards as the
//! kernel places its NAPI.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kxdp_config::{InterfaceRole, InterfaceSpec, NodeConfig, PodNapi};
use nix::sched::CpuSet;
use nix::unistd::Pid;

use crate::netdev::{Napi, NetdevError, NetdevSocket};
use crate::report::Report;

/// How long kxdp waits for an interface's NAPI threads after setting
/// threaded mode (the kernel starts them at once; this is a margin).
pub const THREAD_WAIT: Duration = Duration::from_secs(2);

/// How often it looks while it waits.
const THREAD_POLL: Duration = Duration::from_millis(20);

/// Linux's `TASK_COMM_LEN` less its NUL: before Linux 6.13, a kernel
/// thread's `/proc/PID/comm` is its name cut there; since, the whole name.
const COMM_LEN: usize = 15;

/// Why an interface's NAPI could not be put on the workers' cores.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// Its `threaded` file could not be read or written.
    #[error("setting {path} to 1")]
    Threaded {
        /// The sysfs file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Its index could not be read.
    #[error("looking up its interface index")]
    Index(#[source] io::Error),
    /// The kernel's netdev family did not answer.
    #[error("asking the kernel for its NAPI threads")]
    Netdev(#[source] NetdevError),
    /// Fewer NAPI threads than workers came up in time.
    #[error("{found} NAPI thread(s) for {workers} worker(s) after {waited:?}")]
    NoThread {
        /// Threads found.
        found: usize,
        /// Workers that bind a queue each.
        workers: usize,
        /// How long it waited.
        waited: Duration,
    },
    /// The pid the kernel gave is not that NAPI thread here.
    #[error("pid {pid} is not NAPI thread {expected:?} in kxdp's pid namespace (its comm: {comm:?}); run kxdp in the host's pid namespace")]
    ForeignThread {
        /// The pid.
        pid: u32,
        /// The comm the thread should have.
        expected: String,
        /// The comm it has, if any.
        comm: Option<String>,
    },
    /// `sched_setaffinity` refused.
    #[error("pinning NAPI thread {pid} to core {core}")]
    Pin {
        /// The thread.
        pid: u32,
        /// The core.
        core: usize,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Where one port's NAPI (one interface queue's) runs, as `kxdp stats`
/// shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Where the kernel runs it (`pod_napi: kernel`, or not a pod
    /// interface, or a queue without a worker).
    #[default]
    Kernel,
    /// Its thread, pinned to a worker's core.
    Core {
        /// The core.
        core: usize,
        /// The NAPI's id.
        napi_id: u32,
        /// Its kernel thread.
        pid: u32,
    },
    /// `worker-core` was asked for and failed: where the kernel runs it.
    NotPlaced(String),
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Kernel => f.write_str("kernel"),
            Placement::Core { core, napi_id, pid } => {
                write!(f, "core {core} (NAPI {napi_id}, thread {pid})")
            }
            Placement::NotPlaced(why) => write!(f, "kernel (worker-core failed: {why})"),
        }
    }
}

/// Puts the pod interfaces' NAPI threads on the workers' cores and keeps
/// what it changed, to put it back (see the module documentation).
/// Dropping it puts back whatever is still changed.
#[derive(Debug)]
pub struct PodNapiPlacer {
    /// `worker-core` asked for.
    enabled: bool,
    /// Worker `w`'s core, by `w`.
    worker_cores: Vec<usize>,
    /// `/sys/class/net`, or a test's directory.
    sysfs_net: PathBuf,
    /// Each interface whose `threaded` kxdp set, with the value it found.
    threaded_before: Mutex<BTreeMap<String, String>>,
}

impl PodNapiPlacer {
    /// The placer `config` asks for (one that places nothing under
    /// `pod_napi: kernel`).
    pub fn new(config: &NodeConfig) -> PodNapiPlacer {
        let workers = usize::from(config.workers.count.max(1));
        let cores = &config.workers.cores;
        PodNapiPlacer {
            enabled: config.workers.pod_napi == PodNapi::WorkerCore && !cores.is_empty(),
            worker_cores: if cores.is_empty() {
                Vec::new()
            } else {
                (0..workers).map(|w| cores[w % cores.len()]).collect()
            },
            sysfs_net: PathBuf::from("/sys/class/net"),
            threaded_before: Mutex::default(),
        }
    }

    /// Place `itf`'s NAPI threads, once kxdp's XDP program is on it: one
    /// [`Placement`] per worker (worker `w` binds queue `w`), of `workers`.
    /// A failure is logged and returned as [`Placement::NotPlaced`]; the
    /// port works either way.
    pub fn place(&self, itf: &InterfaceSpec, workers: usize) -> Vec<Placement> {
        if !self.enabled || itf.role != InterfaceRole::Pod {
            return vec![Placement::Kernel; workers];
        }
        match self.try_place(itf, workers) {
            Ok(placed) => {
                tracing::info!(interface = %itf.name, placed = ?placed, "pod NAPI threads on the workers' cores");
                placed
            }
            Err(e) => {
                // Threaded but unpinned would be neither placement.
                self.restore(&itf.name);
                let why = Report(&e).to_string();
                tracing::warn!(interface = %itf.name, reason = %why, "pod_napi worker-core: this interface's NAPI stays where the kernel runs it");
                vec![Placement::NotPlaced(why); workers]
            }
        }
    }

    fn try_place(
        &self,
        itf: &InterfaceSpec,
        workers: usize,
    ) -> Result<Vec<Placement>, PlacementError> {
        self.enable_threaded(&itf.name)?;
        let ifindex =
            kxdp_dataplane::xsk::interface_index(&itf.name).map_err(PlacementError::Index)?;
        let napis = wait_for_threads(ifindex, workers)?;
        let mut placed = Vec::with_capacity(workers);
        for (w, napi) in napis.iter().take(workers).enumerate() {
            let core = self.worker_cores[w % self.worker_cores.len()];
            // `wait_for_threads` returns only NAPIs with a thread.
            let pid = napi.pid.unwrap_or(0);
            check_napi_thread(pid, &itf.name, napi.id)?;
            pin(pid, core)?;
            placed.push(Placement::Core {
                core,
                napi_id: napi.id,
                pid,
            });
        }
        Ok(placed)
    }

    /// Set `interface`'s `threaded` to 1, remembering the value found
    /// (the first one: an interface set again keeps its original).
    fn enable_threaded(&self, interface: &str) -> Result<(), PlacementError> {
        let path = self.sysfs_net.join(interface).join("threaded");
        let failed = |source| PlacementError::Threaded {
            path: path.display().to_string(),
            source,
        };
        let before = std::fs::read_to_string(&path).map_err(failed)?;
        let mut changed = self
            .threaded_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = !changed.contains_key(interface);
        if first {
            changed.insert(interface.to_string(), before.trim().to_string());
        }
        if let Err(e) = std::fs::write(&path, "1") {
            if first {
                changed.remove(interface);
            }
            return Err(failed(e));
        }
        Ok(())
    }

    /// Put `interface`'s `threaded` back as kxdp found it (nothing when
    /// kxdp did not change it). Call before its XDP program goes: the
    /// kernel takes a veth's threaded setting only while it has NAPI.
    pub fn restore(&self, interface: &str) {
        let before = self
            .threaded_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(interface);
        if let Some(before) = before {
            self.write_back(interface, &before);
        }
    }

    /// Put back every interface kxdp changed.
    pub fn restore_all(&self) {
        let changed = std::mem::take(
            &mut *self
                .threaded_before
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (interface, before) in changed {
            self.write_back(&interface, &before);
        }
    }

    fn write_back(&self, interface: &str, before: &str) {
        let path = self.sysfs_net.join(interface).join("threaded");
        match std::fs::write(&path, before) {
            Ok(()) => {
                tracing::info!(
                    interface,
                    threaded = before,
                    "pod NAPI: threaded mode put back"
                )
            }
            // The interface is gone (its pod was deleted): nothing to put back.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(interface, threaded = before, error = %e, "pod NAPI: could not put threaded mode back");
            }
        }
    }

    /// The interfaces whose `threaded` kxdp changed, with the value it
    /// found.
    pub fn changed(&self) -> BTreeMap<String, String> {
        self.threaded_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for PodNapiPlacer {
    fn drop(&mut self) {
        self.restore_all();
    }
}

/// The NAPI instances of `ifindex` in queue order (lowest id first), once
/// at least `workers` of them have a thread; waits up to [`THREAD_WAIT`].
fn wait_for_threads(ifindex: u32, workers: usize) -> Result<Vec<Napi>, PlacementError> {
    let mut socket = NetdevSocket::open().map_err(PlacementError::Netdev)?;
    let started = Instant::now();
    loop {
        let mut napis = socket.napis(ifindex).map_err(PlacementError::Netdev)?;
        napis.sort_by_key(|n| n.id);
        let threaded = napis.iter().take_while(|n| n.pid.is_some()).count();
        if threaded >= workers {
            return Ok(napis);
        }
        if started.elapsed() >= THREAD_WAIT {
            return Err(PlacementError::NoThread {
                found: threaded,
                workers,
                waited: THREAD_WAIT,
            });
        }
        std::thread::sleep(THREAD_POLL);
    }
}

/// The name the kernel gives NAPI `napi_id`'s thread on `interface`
/// (`napi/%s-%d`).
fn napi_thread_name(interface: &str, napi_id: u32) -> String {
    format!("napi/{interface}-{napi_id}")
}

/// Whether `comm` (from `/proc/PID/comm`) is thread `name`'s: the whole
/// name (Linux 6.13 on: kernel threads keep their full name there) or its
/// first 15 characters (before).
fn is_thread_comm(comm: &str, name: &str) -> bool {
    comm == name
        || (name.chars().count() > COMM_LEN && comm.chars().eq(name.chars().take(COMM_LEN)))
}

/// Check that `pid` is that NAPI thread in this pid namespace: in a
/// container without the host's pid namespace, the kernel's (global) pid
/// names another process or none.
fn check_napi_thread(pid: u32, interface: &str, napi_id: u32) -> Result<(), PlacementError> {
    let expected = napi_thread_name(interface, napi_id);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end_matches('\n').to_string());
    if comm
        .as_deref()
        .is_some_and(|c| is_thread_comm(c, &expected))
    {
        Ok(())
    } else {
        Err(PlacementError::ForeignThread {
            pid,
            expected,
            comm,
        })
    }
}

/// Pin thread `pid` to `core`.
fn pin(pid: u32, core: usize) -> Result<(), PlacementError> {
    let failed = |source| PlacementError::Pin { pid, core, source };
    let mut set = CpuSet::new();
    set.set(core).map_err(failed)?;
    let pid_t = i32::try_from(pid).map_err(|_| failed(nix::Error::ESRCH))?;
    nix::sched::sched_setaffinity(Pid::from_raw(pid_t), &set).map_err(failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_dir::TestDir;

    fn placer(dir: &TestDir, files: &[(&str, &str)]) -> PodNapiPlacer {
        for (interface, threaded) in files {
            let d = dir.path().join(interface);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("threaded"), format!("{threaded}\n")).unwrap();
        }
        PodNapiPlacer {
            enabled: true,
            worker_cores: vec![1],
            sysfs_net: dir.path().to_path_buf(),
            threaded_before: Mutex::default(),
        }
    }

    fn threaded(dir: &TestDir, interface: &str) -> String {
        std::fs::read_to_string(dir.path().join(interface).join("threaded"))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn threaded_is_set_and_put_back_as_found() {
        let dir = TestDir::new("pod-napi");
        let placer = placer(&dir, &[("vp0", "0"), ("vp1", "2")]);
        placer.enable_threaded("vp0").unwrap();
        placer.enable_threaded("vp1").unwrap();
        assert_eq!(threaded(&dir, "vp0"), "1");
        assert_eq!(threaded(&dir, "vp1"), "1");
        // Set again (the interface bound again): the first value is kept.
        placer.enable_threaded("vp0").unwrap();
        assert_eq!(placer.changed()["vp0"], "0");
        placer.restore("vp0");
        assert_eq!(threaded(&dir, "vp0"), "0");
        assert_eq!(threaded(&dir, "vp1"), "1");
        // Restoring twice does nothing more.
        std::fs::write(dir.path().join("vp0/threaded"), "1").unwrap();
        placer.restore("vp0");
        assert_eq!(threaded(&dir, "vp0"), "1");
        drop(placer);
        assert_eq!(
            threaded(&dir, "vp1"),
            "2",
            "dropping the placer puts back the rest"
        );
    }

    #[test]
    fn a_missing_file_changes_nothing_and_a_gone_interface_is_forgotten() {
        let dir = TestDir::new("pod-napi");
        let placer = placer(&dir, &[("vp0", "0")]);
        let err = placer.enable_threaded("nope").unwrap_err();
        assert!(
            Report(&err).to_string().contains("nope/threaded"),
            "{}",
            Report(&err)
        );
        assert!(placer.changed().is_empty());
        placer.enable_threaded("vp0").unwrap();
        std::fs::remove_dir_all(dir.path().join("vp0")).unwrap();
        placer.restore_all();
        assert!(placer.changed().is_empty());
    }

    #[test]
    fn kernel_placement_touches_nothing() {
        let dir = TestDir::new("pod-napi");
        let mut placer = placer(&dir, &[("vp0", "0")]);
        placer.enabled = false;
        let itf = interface("vp0", "pod");
        assert_eq!(
            placer.place(&itf, 2),
            [Placement::Kernel, Placement::Kernel]
        );
        assert_eq!(threaded(&dir, "vp0"), "0");
        placer.enabled = true;
        let underlay = interface("vp0", "underlay");
        assert_eq!(placer.place(&underlay, 1), [Placement::Kernel]);
        assert_eq!(threaded(&dir, "vp0"), "0");
    }

    #[test]
    fn a_failed_placement_names_why_and_the_port_stays() {
        let dir = TestDir::new("pod-napi");
        let placer = placer(&dir, &[]);
        let placed = placer.place(&interface("vp9", "pod"), 1);
        match &placed[..] {
            [Placement::NotPlaced(why)] => assert!(why.contains("vp9/threaded"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(placed[0]
            .to_string()
            .starts_with("kernel (worker-core failed: setting "));
    }

    #[test]
    fn workers_get_their_cores_in_turn() {
        let mut config = kxdp_config::NodeConfig::parse_yaml(include_str!(
            "../../../config/examples/two-node/node1.yaml"
        ))
        .unwrap();
        config.workers.count = 3;
        config.workers.cores = vec![1, 3];
        config.workers.pod_napi = PodNapi::WorkerCore;
        let placer = PodNapiPlacer::new(&config);
        assert!(placer.enabled);
        assert_eq!(placer.worker_cores, [1, 3, 1]);
        config.workers.pod_napi = PodNapi::Kernel;
        assert!(!PodNapiPlacer::new(&config).enabled);
    }

    #[test]
    fn napi_thread_comms_match_the_whole_or_the_cut_name() {
        assert_eq!(napi_thread_name("vp0", 6065), "napi/vp0-6065");
        let long = napi_thread_name("vclient", 9841);
        assert_eq!(long, "napi/vclient-9841");
        // Linux 6.13 on shows the whole name; before, 15 characters.
        assert!(is_thread_comm("napi/vclient-9841", &long));
        assert!(is_thread_comm("napi/vclient-98", &long));
        assert!(!is_thread_comm("napi/vclient-9", &long));
        assert!(!is_thread_comm("napi/vclient-9842", &long));
        assert!(!is_thread_comm("napi/vclient-984", &long));
        assert!(is_thread_comm("napi/vp0-6065", "napi/vp0-6065"));
        assert!(!is_thread_comm("napi/vp0-606", "napi/vp0-6065"));
        assert!(matches!(
            check_napi_thread(std::process::id(), "vp0", 1),
            Err(PlacementError::ForeignThread { .. })
        ));
    }

    fn interface(name: &str, role: &str) -> InterfaceSpec {
        let role = match role {
            "pod" => InterfaceRole::Pod,
            _ => InterfaceRole::Underlay,
        };
        InterfaceSpec {
            name: name.to_string(),
            role,
            mac: kxdp_config::MacAddr([2, 0, 0, 0, 0, 1]),
            queues: 1,
            mtu: None,
        }
    }
}
