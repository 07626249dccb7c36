//! One node's running dataplane: AF_XDP sockets on every configured
//! interface, kxdp's XDP program attached to each (with a bpf_link, so it
//! dies with the process), and pinned poll-mode workers.
//!
//! Worker `w` binds queue `w` of every interface: each worker owns one UMEM
//! shared by its sockets, its free list, its pipeline state and counters.
//! The sockets are opened on the worker's own thread (the UMEM and rings
//! never cross threads); the thread hands back the socket fds so that the
//! main thread can insert them into each interface's XSKMAP.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use kxdp_config::{InterfaceRole, NodeConfig, XdpMode};
use kxdp_dataplane::bpf::{XdpAttachMode, XdpAttachment, XdpFilter};
use kxdp_dataplane::counters::SharedCounters;
use kxdp_dataplane::tables::{TableHandle, Tables};
use kxdp_dataplane::worker::{pin_to_core, Worker, WorkerOptions};
use kxdp_dataplane::xsk::{BindMode, XskBackend, XskOptions, XskPortSpec};
use serde::Serialize;

/// UMEM geometry per worker. 2048-byte chunks hold a 1514-byte frame after
/// the kernel's 256-byte headroom (which also takes the 50-byte VXLAN header
/// when encapsulating in place).
const FRAME_SIZE: u32 = 2048;
/// Frames per worker UMEM: 8 MiB per worker.
const FRAME_COUNT: u32 = 4096;
/// Entries in each fill, completion, rx and tx ring.
const RING_SIZE: u32 = 1024;

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
    /// The AF_XDP socket (owned by the worker; read for XDP_STATISTICS).
    pub fd: std::os::fd::RawFd,
}

/// A running node dataplane. Dropping it stops the workers and detaches the
/// XDP programs.
#[derive(Debug)]
pub struct NodeRuntime {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    attachments: Vec<XdpAttachment>,
    /// Per-worker counters.
    pub counters: Vec<Arc<SharedCounters>>,
    /// The tables.
    pub tables: TableHandle,
    /// How each port is bound.
    pub ports: Vec<PortInfo>,
    /// The configuration it runs.
    pub config: NodeConfig,
}

struct Opened {
    fds: Vec<RawFd>,
    modes: Vec<BindMode>,
}

impl NodeRuntime {
    /// Start the dataplane for `config` (already validated by the caller or
    /// validated here).
    pub fn start(config: NodeConfig, stop: Arc<AtomicBool>) -> anyhow::Result<NodeRuntime> {
        let tables = Tables::compile(&config, 1).context("compiling the tables")?;
        let handle = TableHandle::new(tables);
        let worker_count = usize::from(config.workers.count.max(1));
        for (i, itf) in config.interfaces.iter().enumerate() {
            if usize::from(itf.queues) < worker_count {
                bail!(
                    "interfaces[{i}].queues: {} has {} queue(s) but workers.count is {worker_count}: every worker binds one queue of every interface",
                    itf.name,
                    itf.queues
                );
            }
        }

        // Attach XDP programs first: frames for queues without a socket yet
        // are dropped (pods) or passed (underlay) until the sockets register.
        let mut attachments = Vec::new();
        for itf in &config.interfaces {
            let filter = match itf.role {
                InterfaceRole::Pod => XdpFilter::All,
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
                .with_context(|| format!("attaching kxdp's XDP program to {}", itf.name))?;
            tracing::info!(interface = %itf.name, mode = ?attachment.mode(), program_id = attachment.program_id(), "XDP program attached");
            attachments.push(attachment);
        }

        let mut counters = Vec::new();
        let mut workers = Vec::new();
        let mut ports = Vec::new();
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
                frame_count: FRAME_COUNT,
                ring_size: RING_SIZE,
                zero_copy: config.workers.zero_copy,
                force_copy: false,
            };
            let shared = Arc::new(SharedCounters::default());
            counters.push(Arc::clone(&shared));
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
            let (opened_tx, opened_rx) = mpsc::channel::<anyhow::Result<Opened>>();
            let thread_stop = Arc::clone(&stop);
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
                            let _ = opened_tx.send(Err(anyhow::Error::new(e)
                                .context(format!("opening AF_XDP sockets of worker {w}"))));
                            return;
                        }
                    };
                    let opened = Opened {
                        fds: (0..specs.len())
                            .map(|p| backend.socket_fd(p as u16))
                            .collect(),
                        modes: (0..specs.len())
                            .map(|p| backend.bind_mode(p as u16))
                            .collect(),
                    };
                    if opened_tx.send(Ok(opened)).is_err() {
                        return;
                    }
                    let mut worker = Worker::new(backend, reader, shared, worker_options);
                    worker.run(&thread_stop);
                })
                .context("spawning a worker thread")?;
            workers.push(handle);
            let opened = match opened_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                Err(_) => {
                    stop.store(true, Ordering::Relaxed);
                    bail!("worker {w} did not open its sockets within 10 s");
                }
            };
            for (p, itf) in config.interfaces.iter().enumerate() {
                attachments[p]
                    .register_socket(w as u32, opened.fds[p])
                    .with_context(|| {
                        format!("registering worker {w}'s socket in {}'s XSKMAP", itf.name)
                    })?;
                let bind_mode = match opened.modes[p] {
                    BindMode::ZeroCopy => "zero-copy",
                    BindMode::Copy => "copy",
                };
                let xdp_mode = format!("{:?}", attachments[p].mode()).to_lowercase();
                tracing::info!(worker = w, interface = %itf.name, queue = w, bind_mode, xdp_mode = %xdp_mode, "AF_XDP socket bound");
                ports.push(PortInfo {
                    worker: w,
                    interface: itf.name.clone(),
                    queue: w as u32,
                    bind_mode: bind_mode.to_string(),
                    xdp_mode,
                    fd: opened.fds[p],
                });
            }
        }

        Ok(NodeRuntime {
            stop,
            workers,
            attachments,
            counters,
            tables: handle,
            ports,
            config,
        })
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
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // Dropping the attachments closes the bpf_link fds: the programs detach.
        self.attachments.clear();
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        self.stop_workers();
    }
}
