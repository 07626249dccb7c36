//! One node's running dataplane: AF_XDP sockets on every configured
//! interface, kxdp's XDP program attached to each (with a bpf_link, so it
//! dies with the process), and pinned poll-mode workers.
//!
//! Worker `w` binds queue `w` of every interface: each worker owns one UMEM
//! shared by its sockets, its free list, its pipeline state and counters.
//! The sockets are opened on the worker's own thread (the UMEM and rings
//! never cross threads); the thread hands back the socket fds so that the
//! main thread can insert them into each interface's XSKMAP.
//!
//! A link watcher thread looks up every interface's index a few times a
//! second. When a pod's veth (or the underlay) is deleted and created
//! again under the same name, it asks each worker, on the worker's own
//! thread, to bind a new socket for that port (the kernel unbinds a socket
//! whose device goes away), attaches kxdp's XDP program to the new
//! interface and puts the new sockets in its XSKMAP: forwarding resumes
//! without a restart, and `kxdp stats` counts the rebind.
//!
//! With `workers.pod_napi: worker-core`, each pod interface's NAPI threads
//! go on the workers' cores once its XDP program is on (at start, when a
//! pod is attached at run time and when its interface is bound again), and
//! its threaded setting goes back before the program goes
//! ([`crate::pod_napi`]).

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use kxdp_config::{InterfaceRole, InterfaceSpec, NodeConfig, XdpMode};
use kxdp_dataplane::bpf::{BpfError, XdpAttachMode, XdpAttachment, XdpFilter};
use kxdp_dataplane::chain_hook::monotonic_ns;
use kxdp_dataplane::counters::{Counters, SharedCounters};
use kxdp_dataplane::tables::{TableError, TableHandle, Tables};
use kxdp_dataplane::trace::TraceHub;
use kxdp_dataplane::verdict::PortId;
use kxdp_dataplane::worker::{pin_to_core, Worker, WorkerCommand, WorkerOptions};
use kxdp_dataplane::xsk::{
    interface_index, BindMode, Waker, XskBackend, XskError, XskOptions, XskPortSpec,
};
use kxdp_dataplane::DropReason;
use kxdp_vnf_chains::{
    ChainError, ChainInput, ChainSetHandle, CompileOptions, DataplaneChains, SharedChainStats,
    WorkerLimits,
};
use serde::Serialize;

use crate::hostport::{HostPortError, HostPortGuard};
use crate::lifecycle::PortLifecycle;
use crate::pod_napi::{Placement, PodNapiPlacer};
use crate::readiness::{Readiness, RunningWorker};
use crate::report::Report;

/// Starting the node, or binding a re-created interface again, failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration's tables do not compile.
    #[error("compiling the tables")]
    Tables(#[source] TableError),
    /// The configuration's service chains exceed a capacity limit (the
    /// only refusal of a validated configuration's chains).
    #[error("compiling the service chains")]
    Chains(#[source] ChainError),
    /// An interface has fewer queues than there are workers.
    #[error("interfaces[{index}].queues: {interface} has {queues} queue(s) but workers.count is {workers}: every worker binds one queue of every interface")]
    TooFewQueues {
        /// Its position in `interfaces`.
        index: usize,
        /// Its name.
        interface: String,
        /// Its queues.
        queues: u16,
        /// The workers.
        workers: usize,
    },
    /// The host port could not be set up.
    #[error("setting up the host port")]
    HostPort(#[source] HostPortError),
    /// kxdp's XDP program could not be attached.
    #[error("attaching kxdp's XDP program to {interface}")]
    Attach {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: BpfError,
    },
    /// A worker could not open its sockets.
    #[error("opening AF_XDP sockets of worker {worker}")]
    OpenSockets {
        /// The worker.
        worker: usize,
        /// Why.
        #[source]
        source: XskError,
    },
    /// A worker did not say whether it opened its sockets.
    #[error("worker {worker} did not open its sockets within {waited:?}")]
    OpenTimeout {
        /// The worker.
        worker: usize,
        /// How long it was waited for.
        waited: Duration,
    },
    /// A thread could not be started.
    #[error("spawning {thread}")]
    Spawn {
        /// Which.
        thread: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker's socket could not go in an interface's XSKMAP.
    #[error("registering worker {worker}'s socket in {interface}'s XSKMAP")]
    Register {
        /// The worker.
        worker: usize,
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: BpfError,
    },
    /// More interfaces than port numbers.
    #[error("interface {0} has no port number (too many interfaces)")]
    PortNumber(usize),
    /// A worker has stopped (while binding a port again).
    #[error("worker {0} has stopped")]
    WorkerStopped(usize),
    /// A worker did not answer within the time given.
    #[error("worker {0} did not answer")]
    WorkerSilent(usize),
    /// A worker could not bind a port again.
    #[error("worker {worker}")]
    Rebind {
        /// The worker.
        worker: usize,
        /// Why.
        #[source]
        source: XskError,
    },
}

/// UMEM geometry per worker. 2048-byte chunks hold a 1514-byte frame after
/// the kernel's 256-byte headroom (which also takes the 50-byte VXLAN header
/// when encapsulating in place).
const FRAME_SIZE: u32 = 2048;
/// Pod interfaces a node may gain at run time, beyond its file's, that
/// each worker's UMEM is sized for (Kubernetes' default of 110 pods a node).
pub const RUNTIME_PODS: usize = 110;

/// Frames per worker UMEM: room for every port's base fill share twice over
/// (one share in its fill ring, one in flight to a tx ring), for the file's
/// interfaces and [`RUNTIME_PODS`] more, and for one busy stream's whole
/// window twice over (four rings: its sender's fill ring grown to the
/// ring, its frames waiting in the receiver's socket until their sent
/// skbs are freed), rounded up to 4096, at least 4096. Two interfaces:
/// 45,056 frames, 88 MiB per worker. Without the stream's room (32,768
/// frames, the shares rounded up to a power of two), a node with 110 pods
/// ran short under one pod-to-pod TCP stream at 4 Gbit/s: the free list
/// fell below the idle ports' reserve, the busy port's share fell back to
/// its base, and its socket dropped thousands of segments
/// (`fill_ring_empty`) in some runs of `kxdp-bench pods`.
pub fn frame_count(file_interfaces: usize) -> u32 {
    let shares = (file_interfaces + RUNTIME_PODS) * 2 * kxdp_dataplane::worker::FILL_BASE;
    let want = shares + 4 * RING_SIZE as usize;
    u32::try_from(want.div_ceil(4096).max(1) * 4096).unwrap_or(1 << 20)
}
/// Entries in each fill, completion, rx and tx ring. A pod's single TCP
/// stream can have its whole window in flight at once (its send buffer,
/// 4 MiB at most by default, is about 2,900 segments at pod MTU 1450), and
/// while the worker is held off (a loop of over 1 ms happens: the pod's
/// stack runs inside the worker's transmit syscalls) that lands in the rx
/// ring; with 1,024 entries the kernel dropped the excess (`rx_ring_full`)
/// in 2 of 3 rounds of a full `kxdp-bench nut` run, 0.1–0.9 % of the
/// stream's segments retransmitted. 4,096 holds a whole window: no drop in
/// 6 runs. The rings are kernel memory (about 192 KiB a socket), not UMEM.
const RING_SIZE: u32 = 4096;
/// How long a starting worker may take to open its sockets.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a port is bound as, for logs and stats.
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    /// Worker.
    pub worker: usize,
    /// Interface name.
    pub interface: String,
    /// Queue.
    pub queue: u32,
    /// "zero-copy" or "copy".
    pub bind_mode: String,
    /// "native" or "generic".
    pub xdp_mode: String,
    /// The AF_XDP socket (owned by the worker; read for XDP_STATISTICS);
    /// replaced when the port is bound again.
    #[serde(skip)]
    pub fd: Arc<AtomicI32>,
    /// Where the NAPI of its queue runs (`workers.pod_napi`); replaced
    /// when the port is bound again.
    #[serde(skip)]
    pub napi: Arc<Mutex<Placement>>,
}

impl PortInfo {
    /// Where the NAPI of its queue runs now, as `kxdp stats` shows it.
    pub fn napi_placement(&self) -> String {
        self.napi
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_string()
    }
}

/// The bound ports, shared by the runtime (which adds and removes pod
/// interfaces at run time) and its readers (stats, gRPC, /metrics).
#[derive(Clone, Debug, Default)]
pub struct SharedPorts(Arc<Mutex<Vec<PortInfo>>>);

impl SharedPorts {
    /// The ports bound now.
    pub fn snapshot(&self) -> Vec<PortInfo> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, info: PortInfo) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(info);
    }

    fn remove_interface(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p| p.interface != name);
    }
}

impl From<Vec<PortInfo>> for SharedPorts {
    fn from(ports: Vec<PortInfo>) -> Self {
        SharedPorts(Arc::new(Mutex::new(ports)))
    }
}

/// Add the kernel's drops at `worker`'s sockets (`XDP_STATISTICS`: fill
/// ring empty, rx ring full, others such as frames larger than a UMEM
/// frame) to its drop reasons, so that they show among kxdp's own. Read
/// when counters are read (one getsockopt per socket), never on the hot
/// path. A socket bound again after its interface was re-created starts
/// from zero.
pub fn add_socket_drops(counters: &mut Counters, worker: usize, ports: &[PortInfo]) {
    for port in ports.iter().filter(|p| p.worker == worker) {
        let Ok(s) = kxdp_dataplane::xsk::socket_statistics(port.fd.load(Ordering::Relaxed)) else {
            continue;
        };
        count_socket_drops(counters, &s);
    }
}

/// A socket's kernel drops as kxdp's drop reasons.
fn count_socket_drops(counters: &mut Counters, s: &kxdp_dataplane::xsk::XdpStatistics) {
    counters.drop_n(DropReason::FillRingEmpty, s.rx_fill_ring_empty_descs);
    counters.drop_n(DropReason::RxRingFull, s.rx_ring_full);
    counters.drop_n(
        DropReason::SocketRxDropped,
        s.rx_dropped.saturating_sub(s.rx_fill_ring_empty_descs),
    );
}

/// A running node dataplane. Dropping it stops the workers and detaches the
/// XDP programs.
#[derive(Debug)]
pub struct NodeRuntime {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
    attachments: Arc<Mutex<Vec<XdpAttachment>>>,
    /// Per-worker counters.
    pub counters: Vec<Arc<SharedCounters>>,
    /// Per-worker service chain counters (published when a worker is idle).
    pub chain_stats: Vec<Arc<SharedChainStats>>,
    /// The tables.
    pub tables: TableHandle,
    /// The service chains (published like the tables; the workers' chain
    /// hooks read them).
    pub chains: ChainSetHandle,
    /// How each port is bound (pod interfaces come and go at run time).
    pub ports: SharedPorts,
    /// Binds and unbinds pod interfaces at run time (the API's store
    /// calls it: [`NodeRuntime::port_lifecycle`]).
    lifecycle: Arc<RuntimePorts>,
    /// The configuration it runs.
    pub config: NodeConfig,
    /// The workers' trace point (`kxdp trace`).
    pub trace: Arc<TraceHub>,
    /// Workers inside their loop (for `/readyz`).
    running_workers: Arc<AtomicUsize>,
    /// The host port's node side (removed after the workers stop).
    host_port: Option<Arc<Mutex<HostPortGuard>>>,
    /// The pod interfaces' NAPI placement, put back before the XDP
    /// programs go.
    pod_napi: Arc<PodNapiPlacer>,
}

struct Opened {
    fds: Vec<RawFd>,
    modes: Vec<BindMode>,
    waker: Waker,
}

/// A worker's command channel, and the waker that ends its sleep so an
/// adaptive worker runs a command at once.
#[derive(Clone, Debug)]
struct WorkerHandle {
    commands: mpsc::Sender<WorkerCommand<XskBackend, DataplaneChains>>,
    waker: Waker,
}

impl WorkerHandle {
    /// Hand the worker `command` and wake it; `Err` when it has stopped.
    fn send(&self, command: WorkerCommand<XskBackend, DataplaneChains>) -> Result<(), ()> {
        self.commands.send(command).map_err(drop)?;
        self.waker.wake();
        Ok(())
    }
}

impl NodeRuntime {
    /// Start the dataplane for `config`, validated here (a refusal is
    /// [`RuntimeError::Tables`] with [`TableError::Config`]).
    pub fn start(
        mut config: NodeConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<NodeRuntime, RuntimeError> {
        fill_mtus(&mut config);
        // `Tables::compile` validates the configuration as compiled (with
        // the MTUs filled in), the one validation here: the chains below
        // compile from it validated, so only a capacity limit refuses them.
        let tables = Tables::compile(&config, 1).map_err(RuntimeError::Tables)?;
        let handle = TableHandle::new(tables);
        let chains = ChainSetHandle::compile_initial(
            &ChainInput::from_config(&config),
            CompileOptions::default(),
        )
        .map_err(RuntimeError::Chains)?;
        let worker_count = usize::from(config.workers.count.max(1));
        for (i, itf) in config.interfaces.iter().enumerate() {
            if usize::from(itf.queues) < worker_count {
                return Err(RuntimeError::TooFewQueues {
                    index: i,
                    interface: itf.name.clone(),
                    queues: itf.queues,
                    workers: worker_count,
                });
            }
        }

        // The host port's pair must exist before kxdp attaches to its side.
        let host_port = HostPortGuard::setup(&config)
            .map_err(RuntimeError::HostPort)?
            .map(|g| Arc::new(Mutex::new(g)));

        // Attach XDP programs first: frames for queues without a socket yet
        // are dropped (pods) or passed (underlay) until the sockets register.
        // The pods' NAPI threads go on the workers' cores once a program
        // is on (a veth has NAPI only then); a failed start drops the
        // placer first, which puts the threaded settings back.
        let pod_napi = Arc::new(PodNapiPlacer::new(&config));
        let mut attachments = Vec::new();
        let mut ifindexes = Vec::new();
        let mut placements = Vec::new();
        for itf in &config.interfaces {
            attachments.push(attach_xdp(&config, itf)?);
            ifindexes.push(interface_index(&itf.name).unwrap_or(0));
            placements.push(pod_napi.place(itf, worker_count));
        }

        let mut counters = Vec::new();
        let mut chain_stats = Vec::new();
        let mut workers = Vec::new();
        let mut ports = Vec::new();
        let mut commands = Vec::new();
        let trace = Arc::new(TraceHub::new());
        let running_workers = Arc::new(AtomicUsize::new(0));
        for w in 0..worker_count {
            let specs: Vec<XskPortSpec> = config
                .interfaces
                .iter()
                .map(|itf| XskPortSpec {
                    ifname: itf.name.clone(),
                    queue_id: w as u32,
                })
                .collect();
            let options = XskOptions {
                frame_size: FRAME_SIZE,
                frame_count: frame_count(config.interfaces.len()),
                ring_size: RING_SIZE,
                zero_copy: config.workers.zero_copy,
                force_copy: false,
            };
            let shared = Arc::new(SharedCounters::default());
            counters.push(Arc::clone(&shared));
            let worker_chain_stats = Arc::new(SharedChainStats::default());
            chain_stats.push(Arc::clone(&worker_chain_stats));
            let worker_chains = chains.clone();
            let reader = handle.reader();
            let worker_options = WorkerOptions {
                index: w,
                batch_size: usize::from(config.workers.batch_size.max(1)),
                poll_mode: config.workers.poll_mode,
                ..WorkerOptions::default()
            };
            let core = if config.workers.cores.is_empty() {
                None
            } else {
                Some(config.workers.cores[w % config.workers.cores.len()])
            };
            let (opened_tx, opened_rx) = mpsc::channel::<Result<Opened, RuntimeError>>();
            let (command_tx, command_rx) =
                mpsc::channel::<WorkerCommand<XskBackend, DataplaneChains>>();
            let thread_stop = Arc::clone(&stop);
            let thread_trace = Arc::clone(&trace);
            let thread_running = Arc::clone(&running_workers);
            let handle = std::thread::Builder::new()
                .name(format!("kxdp-worker-{w}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !pin_to_core(Some(core)) {
                            tracing::warn!(worker = w, core, "could not pin worker to core");
                        }
                    }
                    let backend = match XskBackend::open(&specs, &options) {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = opened_tx.send(Err(RuntimeError::OpenSockets {
                                worker: w,
                                source: e,
                            }));
                            return;
                        }
                    };
                    // The chain state (connection table and all) is made
                    // on the worker's own thread, like its sockets.
                    let limits = WorkerLimits {
                        batch_size: worker_options.batch_size,
                        ..WorkerLimits::default()
                    };
                    let hook = DataplaneChains::new(
                        &worker_chains,
                        limits,
                        monotonic_ns(),
                        worker_chain_stats,
                    );
                    let mut worker =
                        Worker::with_hook(backend, reader, shared, worker_options, hook);
                    worker.set_commands(command_rx);
                    worker.set_trace(thread_trace);
                    // The fill rings are stocked before the sockets go in
                    // the XSKMAPs (once `opened` is sent): a frame the
                    // program redirects to a socket with an empty fill ring
                    // is lost (`fill_ring_empty`).
                    worker.prime();
                    let io = worker.io();
                    let opened = Opened {
                        fds: (0..specs.len()).map(|p| io.socket_fd(p as u16)).collect(),
                        modes: (0..specs.len()).map(|p| io.bind_mode(p as u16)).collect(),
                        waker: io.waker(),
                    };
                    if opened_tx.send(Ok(opened)).is_err() {
                        return;
                    }
                    let _running = RunningWorker::enter(thread_running);
                    worker.run(&thread_stop);
                })
                .map_err(|source| RuntimeError::Spawn {
                    thread: "a worker thread",
                    source,
                })?;
            workers.push(handle);
            let opened = match opened_rx.recv_timeout(OPEN_TIMEOUT) {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(RuntimeError::OpenTimeout {
                        worker: w,
                        waited: OPEN_TIMEOUT,
                    });
                }
            };
            commands.push(WorkerHandle {
                commands: command_tx,
                waker: opened.waker.clone(),
            });
            for (p, itf) in config.interfaces.iter().enumerate() {
                attachments[p]
                    .register_socket(w as u32, opened.fds[p])
                    .map_err(|source| RuntimeError::Register {
                        worker: w,
                        interface: itf.name.clone(),
                        source,
                    })?;
                let bind_mode = match opened.modes[p] {
                    BindMode::ZeroCopy => "zero-copy",
                    BindMode::Copy => "copy",
                };
                let xdp_mode = format!("{:?}", attachments[p].mode()).to_lowercase();
                tracing::info!(worker = w, interface = %itf.name, queue = w, bind_mode, xdp_mode = %xdp_mode, "AF_XDP socket bound");
                let napi = placements[p].get(w).cloned().unwrap_or(Placement::Kernel);
                ports.push(PortInfo {
                    worker: w,
                    interface: itf.name.clone(),
                    queue: w as u32,
                    bind_mode: bind_mode.to_string(),
                    xdp_mode,
                    fd: Arc::new(AtomicI32::new(opened.fds[p])),
                    napi: Arc::new(Mutex::new(napi)),
                });
            }
        }

        let attachments = Arc::new(Mutex::new(attachments));
        let shared_ports = SharedPorts::from(ports.clone());
        let lifecycle = Arc::new(RuntimePorts {
            config: config.clone(),
            commands: commands.clone(),
            attachments: Mutex::default(),
            ports: shared_ports.clone(),
            pod_napi: Arc::clone(&pod_napi),
        });
        let watcher = LinkWatcher {
            config: config.clone(),
            ifindexes,
            attachments: Arc::clone(&attachments),
            commands,
            ports,
            stop: Arc::clone(&stop),
            pod_napi: Arc::clone(&pod_napi),
        };
        let watcher = std::thread::Builder::new()
            .name("kxdp-link-watch".into())
            .spawn(move || watcher.run())
            .map_err(|source| RuntimeError::Spawn {
                thread: "the link watcher",
                source,
            })?;

        Ok(NodeRuntime {
            stop,
            workers,
            watcher: Some(watcher),
            attachments,
            counters,
            chain_stats,
            tables: handle,
            chains,
            ports: shared_ports,
            lifecycle,
            config,
            trace,
            running_workers,
            host_port,
            pod_napi,
        })
    }

    /// What binds the pod interfaces upserted through the API at run time
    /// and unbinds those deleted (see [`RuntimePorts`]).
    pub fn port_lifecycle(&self) -> Arc<dyn PortLifecycle> {
        Arc::clone(&self.lifecycle) as Arc<dyn PortLifecycle>
    }

    /// A function that brings the host port's NodePort rules in line with
    /// a new desired state (the API's store calls it after each apply);
    /// `None` without a host port. It holds the port weakly: the port is
    /// still removed when the runtime stops.
    pub fn host_port_sync(&self) -> Option<impl Fn(&NodeConfig) + Send + Sync + 'static> {
        let weak = Arc::downgrade(self.host_port.as_ref()?);
        Some(move |config: &NodeConfig| {
            if let Some(port) = weak.upgrade() {
                let mut port = port.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = port.sync(config) {
                    tracing::error!(error = %Report(&e), "updating the host port's NodePort rules");
                }
            }
        })
    }

    /// What `/readyz` checks, shareable with the metrics thread.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            running_workers: Arc::clone(&self.running_workers),
            workers: self.counters.len(),
            attachments: Arc::clone(&self.attachments),
            interfaces: self
                .config
                .interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            tables: self.tables.clone(),
            stop: Arc::clone(&self.stop),
        }
    }

    /// The local VTEP address.
    pub fn vtep(&self) -> Ipv4Addr {
        self.config.node.vtep.ip
    }

    /// Stop the workers, wait for them, and detach every XDP program.
    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // Threaded NAPI back as it was, while the programs (and so the
        // veths' NAPI) are still there.
        self.pod_napi.restore_all();
        // Dropping the attachments closes the bpf_link fds: the programs detach.
        self.attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.lifecycle
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        // Then the host port: its pair, routes and rules.
        self.host_port.take();
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// Give every interface without an `mtu` its own: the host port's pair
/// MTU, or what the interface has now (a pod's veth carries its pod's).
/// Packets larger than it are refused with an ICMP error instead of being
/// dropped unseen by the kernel past kxdp.
fn fill_mtus(config: &mut NodeConfig) {
    let host_mtu = config.host.as_ref().map(|h| h.mtu_or(&config.node));
    for itf in &mut config.interfaces {
        if itf.mtu.is_some() {
            continue;
        }
        itf.mtu = match itf.role {
            InterfaceRole::Host => host_mtu,
            InterfaceRole::Underlay => None,
            InterfaceRole::Pod => {
                std::fs::read_to_string(format!("/sys/class/net/{}/mtu", itf.name))
                    .ok()
                    .and_then(|m| m.trim().parse().ok())
            }
        };
    }
}

/// Attach kxdp's XDP program to `itf`: everything to the sockets on a pod
/// interface, only VXLAN for the local VTEP on the underlay.
fn attach_xdp(config: &NodeConfig, itf: &InterfaceSpec) -> Result<XdpAttachment, RuntimeError> {
    let filter = match itf.role {
        InterfaceRole::Pod | InterfaceRole::Host => XdpFilter::All,
        InterfaceRole::Underlay => XdpFilter::Vxlan {
            vtep: config.node.vtep.ip,
            udp_port: config.node.vtep.udp_port,
        },
    };
    let mode = match config.workers.xdp_mode {
        XdpMode::Auto => XdpAttachMode::Auto,
        XdpMode::Native => XdpAttachMode::Native,
        XdpMode::Generic => XdpAttachMode::Generic,
    };
    let attachment = XdpAttachment::attach(&itf.name, filter, mode, u32::from(itf.queues))
        .map_err(|source| RuntimeError::Attach {
            interface: itf.name.clone(),
            source,
        })?;
    tracing::info!(interface = %itf.name, mode = ?attachment.mode(), program_id = attachment.program_id(), "XDP program attached");
    Ok(attachment)
}

/// Pod interfaces bound and unbound at run time (a CNI plugin's ADD and
/// DEL, through the API's store).
///
/// Attaching port `p` (a number the store keeps for the interface while
/// it lives): kxdp's XDP program goes on the interface, then each worker,
/// on its own thread, opens a socket on queue `w` sharing its UMEM and
/// takes the port into its loop, and the sockets go in the program's
/// XSKMAP; only then does the store publish tables that route to the pod.
/// Every worker binds the interface, as for the file's interfaces (worker
/// `w` binds queue `w`; a pod's flows stay on the worker its veth queue
/// hashes them to): the interface needs at least as many queues as there
/// are workers. Detaching (after the published tables stopped routing to
/// it): the XDP program goes first (no frame reaches the sockets after
/// that), then each worker closes its socket and takes back what its
/// rings held; frames received and not yet read are dropped as
/// `port_down`, and anything the kernel kept is counted as stranded, so
/// the frame accounting balances.
#[derive(Debug)]
pub struct RuntimePorts {
    config: NodeConfig,
    commands: Vec<WorkerHandle>,
    attachments: Mutex<std::collections::HashMap<PortId, XdpAttachment>>,
    ports: SharedPorts,
    pod_napi: Arc<PodNapiPlacer>,
}

/// How long a worker may take to add or remove a port.
const PORT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

impl RuntimePorts {
    /// Run `command` on worker `w`'s thread and wait for its answer.
    fn on_worker<T: Send + 'static>(
        &self,
        w: usize,
        command: impl FnOnce(&mut Worker<XskBackend, DataplaneChains>) -> T + Send + 'static,
    ) -> Result<T, String> {
        let (reply_tx, reply_rx) = mpsc::channel::<T>();
        let boxed: WorkerCommand<XskBackend, DataplaneChains> = Box::new(move |worker| {
            let _ = reply_tx.send(command(worker));
        });
        self.commands
            .get(w)
            .ok_or_else(|| format!("no worker {w}"))?
            .send(boxed)
            .map_err(|()| format!("worker {w} has stopped"))?;
        reply_rx
            .recv_timeout(PORT_COMMAND_TIMEOUT)
            .map_err(|_| format!("worker {w} did not answer within {PORT_COMMAND_TIMEOUT:?}"))
    }

    /// Take `port` out of worker `w` (its rings' frames go back to the
    /// worker) and close its socket here: closing waits for an RCU grace
    /// period, which the worker's other ports must not wait for.
    fn remove_from_worker(&self, w: usize, port: PortId) {
        let removed = self.on_worker(w, move |worker| {
            worker.io_mut().take_port(port).map(|(back, closing)| {
                worker.port_removed(port, &back.fill, &back.rx, &back.tx, &back.completion);
                // Its kernel drops were read live while it was listed; now
                // they stay in the worker's own counters.
                if let Ok(s) = closing.statistics() {
                    count_socket_drops(&mut worker.pipeline_mut().counters, &s);
                }
                closing
            })
        });
        match removed {
            Ok(closing) => drop(closing),
            Err(error) => {
                tracing::warn!(worker = w, port, %error, "could not remove a port from a worker");
            }
        }
    }

    /// Open and bind worker `w`'s socket for `spec` on this thread (the
    /// worker only lends a duplicate of a socket to share its UMEM
    /// through), then have the worker install it and give it frames.
    fn add_to_worker(
        &self,
        w: usize,
        port: PortId,
        spec: XskPortSpec,
    ) -> Result<(RawFd, BindMode), String> {
        let opener = self
            .on_worker(w, |worker| worker.io().port_opener())?
            .map_err(|e| format!("worker {w}: {e}"))?;
        let prepared = opener.open(&spec).map_err(|e| format!("worker {w}: {e}"))?;
        drop(opener);
        self.on_worker(w, move |worker| {
            worker.io_mut().install_port(port, prepared).map(|()| {
                worker.port_added(port);
                (worker.io().socket_fd(port), worker.io().bind_mode(port))
            })
        })?
        .map_err(|e| format!("worker {w}: {e}"))
    }
}

impl PortLifecycle for RuntimePorts {
    fn attach(&self, port: PortId, itf: &InterfaceSpec) -> Result<(), String> {
        let workers = self.commands.len();
        if usize::from(itf.queues) < workers {
            return Err(format!(
                "{} has {} queue(s) but this node runs {workers} worker(s): every worker binds one queue (create the veth with numtxqueues/numrxqueues {workers})",
                itf.name, itf.queues
            ));
        }
        if interface_index(&itf.name).is_err() {
            return Err(format!("no interface named {:?} on this node", itf.name));
        }
        let attachment = attach_xdp(&self.config, itf).map_err(|e| Report(&e).to_string())?;
        let mut bound: Vec<(RawFd, BindMode)> = Vec::with_capacity(workers);
        for w in 0..workers {
            let spec = XskPortSpec {
                ifname: itf.name.clone(),
                queue_id: w as u32,
            };
            match self.add_to_worker(w, port, spec) {
                Ok(b) => bound.push(b),
                Err(error) => {
                    drop(attachment);
                    for w in 0..bound.len() {
                        self.remove_from_worker(w, port);
                    }
                    return Err(error);
                }
            }
        }
        for (w, (fd, _)) in bound.iter().enumerate() {
            if let Err(e) = attachment.register_socket(w as u32, *fd) {
                drop(attachment);
                for w in 0..bound.len() {
                    self.remove_from_worker(w, port);
                }
                return Err(format!(
                    "registering worker {w}'s socket in {}'s XSKMAP: {e}",
                    itf.name
                ));
            }
        }
        let xdp_mode = format!("{:?}", attachment.mode()).to_lowercase();
        let placements = self.pod_napi.place(itf, workers);
        for (w, (fd, mode)) in bound.iter().enumerate() {
            let bind_mode = match mode {
                BindMode::ZeroCopy => "zero-copy",
                BindMode::Copy => "copy",
            };
            self.ports.push(PortInfo {
                worker: w,
                interface: itf.name.clone(),
                queue: w as u32,
                bind_mode: bind_mode.to_string(),
                xdp_mode: xdp_mode.clone(),
                fd: Arc::new(AtomicI32::new(*fd)),
                napi: Arc::new(Mutex::new(
                    placements.get(w).cloned().unwrap_or(Placement::Kernel),
                )),
            });
        }
        tracing::info!(interface = %itf.name, port, workers, "pod interface attached at run time");
        self.attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port, attachment);
        Ok(())
    }

    fn detach(&self, port: PortId, itf: &InterfaceSpec) {
        // Threaded NAPI back as it was, while the program keeps the
        // veth's NAPI; then the program: no frame reaches the sockets
        // after this.
        self.pod_napi.restore(&itf.name);
        let attachment = self
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port);
        drop(attachment);
        self.ports.remove_interface(&itf.name);
        for w in 0..self.commands.len() {
            self.remove_from_worker(w, port);
        }
        tracing::info!(interface = %itf.name, port, "pod interface detached at run time");
    }
}

/// How often the link watcher looks up the interfaces' indexes.
const LINK_WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// How long a worker may take to bind a port again.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);

/// Notices interfaces deleted and created again (a new index under the
/// same name) and binds their ports again; see the module documentation.
struct LinkWatcher {
    config: NodeConfig,
    /// The index each interface had when its port was (last) bound; 0 while
    /// it is gone.
    ifindexes: Vec<u32>,
    attachments: Arc<Mutex<Vec<XdpAttachment>>>,
    /// One per worker.
    commands: Vec<WorkerHandle>,
    ports: Vec<PortInfo>,
    stop: Arc<AtomicBool>,
    pod_napi: Arc<PodNapiPlacer>,
}

impl LinkWatcher {
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(LINK_WATCH_INTERVAL);
            for i in 0..self.config.interfaces.len() {
                self.check(i);
            }
        }
    }

    fn check(&mut self, i: usize) {
        let name = self.config.interfaces[i].name.clone();
        match interface_index(&name) {
            Ok(index) if index == self.ifindexes[i] => {}
            Ok(index) => match self.rebind(i) {
                Ok(()) => {
                    tracing::info!(interface = %name, ifindex = index, "interface re-created: port bound again, XDP attached");
                    self.ifindexes[i] = index;
                }
                Err(error) => {
                    tracing::warn!(interface = %name, error = %Report(&error), "binding a re-created interface failed; will retry");
                }
            },
            Err(_) if self.ifindexes[i] != 0 => {
                tracing::warn!(interface = %name, "interface gone; waiting for it to come back");
                self.ifindexes[i] = 0;
            }
            Err(_) => {}
        }
    }

    /// New sockets for port `i` on every worker (each on its own thread),
    /// then kxdp's XDP program on the new interface with them in its XSKMAP.
    fn rebind(&mut self, i: usize) -> Result<(), RuntimeError> {
        let port = PortId::try_from(i).map_err(|_| RuntimeError::PortNumber(i))?;
        let mut fds = Vec::with_capacity(self.commands.len());
        for (w, commands) in self.commands.iter().enumerate() {
            let (reply_tx, reply_rx) = mpsc::channel::<Result<RawFd, XskError>>();
            let command: WorkerCommand<XskBackend, DataplaneChains> = Box::new(move |worker| {
                let result = worker.io_mut().rebind(port).map(|back| {
                    worker.port_rebound(port, &back.fill, &back.rx, &back.tx, &back.completion);
                    worker.io().socket_fd(port)
                });
                let _ = reply_tx.send(result);
            });
            commands
                .send(command)
                .map_err(|()| RuntimeError::WorkerStopped(w))?;
            let fd = reply_rx
                .recv_timeout(REBIND_TIMEOUT)
                .map_err(|_| RuntimeError::WorkerSilent(w))?
                .map_err(|source| RuntimeError::Rebind { worker: w, source })?;
            fds.push(fd);
        }
        let attachment = attach_xdp(&self.config, &self.config.interfaces[i])?;
        for (w, fd) in fds.iter().enumerate() {
            attachment
                .register_socket(w as u32, *fd)
                .map_err(|source| RuntimeError::Register {
                    worker: w,
                    interface: self.config.interfaces[i].name.clone(),
                    source,
                })?;
        }
        let placements = self
            .pod_napi
            .place(&self.config.interfaces[i], self.commands.len());
        let name = &self.config.interfaces[i].name;
        for info in self.ports.iter().filter(|p| &p.interface == name) {
            if let Some(fd) = fds.get(info.worker) {
                info.fd.store(*fd, Ordering::Relaxed);
            }
            if let Some(placement) = placements.get(info.worker) {
                *info.napi.lock().unwrap_or_else(PoisonError::into_inner) = placement.clone();
            }
        }
        let mut attachments = self
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = attachments.get_mut(i) {
            // The old attachment's link went with the old device.
            *slot = attachment;
        }
        Ok(())
    }
}
