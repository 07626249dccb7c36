//! AF_XDP sockets: one UMEM shared by several sockets, with the fill,
//! completion, rx and tx rings of each, behind [`PacketIo`].
//!
//! The shape every backend has is AF_XDP's, and is defined here: a frame
//! is a [`Desc`] (an `xdp_desc`) in a UMEM chunk ([`chunk_of`]), moved by
//! batches through the four rings of [`PacketIo`]. The in-memory backend
//! ([`crate::io::memory`]) has the same shape.
//!
//! An [`XskBackend`] is what one worker drives: one socket ("port") per
//! (interface, queue) it serves, numbered in the order given to
//! [`XskBackend::open`], all bound to **one UMEM** with `XDP_SHARED_UMEM`.
//! Each socket has its own fill and completion ring, which the kernel allows
//! (since 5.10) for sockets on different devices or queues. The point of
//! sharing: a worker receives a frame on one interface and transmits the very
//! same UMEM chunk on another, without a userspace copy. In copy mode the
//! kernel copies at the boundary anyway (into the chunk on rx, into an skb on
//! tx); a per-interface UMEM would add a second copy in userspace on every
//! forwarded frame. In zero-copy mode it is no copy at all.
//!
//! Sockets bind with `XDP_USE_NEED_WAKEUP`, so the kernel tells us when a
//! syscall is needed ([`PacketIo::kick`]); rx descriptors point at the data,
//! `XDP_PACKET_HEADROOM` (256) bytes into its chunk (aligned chunk mode, no
//! extra UMEM headroom); tx descriptors may start anywhere inside a chunk.
//!
//! Safe code: the ring protocol and the syscalls are `kxdp_sys::xsk`.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::verdict::PortId;
use kxdp_sys::xsk::{self as sys, ConsumerRing, Mmap, ProducerRing, XdpDesc};

pub(crate) use sys::if_index;

/// A frame descriptor, exactly like an AF_XDP `xdp_desc`: the byte offset of
/// the frame's data inside the UMEM and its length. The data sits inside one
/// chunk of `frame_size` bytes, with at least [`MIN_HEADROOM`] bytes of that
/// chunk before it (room for an encapsulation header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Offset of the first byte of the frame in the UMEM.
    pub addr: u64,
    /// Length of the frame in bytes.
    pub len: u32,
}

/// Headroom every backend leaves before received data (AF_XDP leaves
/// XDP_PACKET_HEADROOM, 256 bytes).
pub const MIN_HEADROOM: usize = 256;

/// A packet I/O backend with AF_XDP semantics.
///
/// Frames are UMEM chunks named by their offset. The caller owns the free
/// frames and moves them: free → [`fill`](PacketIo::fill) → (kernel) →
/// [`receive`](PacketIo::receive) → caller → [`transmit`](PacketIo::transmit)
/// → (kernel) → [`complete`](PacketIo::complete) → free. Every call moves a
/// batch; none allocates.
pub trait PacketIo {
    /// Number of ports (interfaces × queues this backend serves).
    fn port_count(&self) -> usize;
    /// Size of one UMEM chunk (a power of two).
    fn frame_size(&self) -> u32;
    /// Number of chunks in the UMEM.
    fn frame_count(&self) -> u32;
    /// The whole UMEM.
    fn umem(&mut self) -> &mut [u8];
    /// Free slots in `port`'s fill ring.
    fn fill_capacity(&self, port: PortId) -> usize;
    /// Give empty chunks (chunk-start offsets) to `port`'s fill ring;
    /// returns how many were taken, from the front of `addrs`.
    fn fill(&mut self, port: PortId, addrs: &[u64]) -> usize;
    /// Take up to `out.len()` received frames from `port`'s rx ring.
    fn receive(&mut self, port: PortId, out: &mut [Desc]) -> usize;
    /// Queue frames on `port`'s tx ring; returns how many were taken, from
    /// the front of `descs`. The rest stay with the caller.
    fn transmit(&mut self, port: PortId, descs: &[Desc]) -> usize;
    /// Take up to `out.len()` completed tx frames (their descriptor addresses).
    fn complete(&mut self, port: PortId, out: &mut [u64]) -> usize;
    /// Tell the kernel about new tx (and fill) entries if it asked to be
    /// woken (need_wakeup); at most one syscall.
    fn kick(&mut self, port: PortId) -> io::Result<()>;
    /// Sleep until any port has received frames or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
    /// The worker has been awake with work for a while: what
    /// [`PacketIo::wait`] set up to watch the ports may go until the next
    /// sleep sets it up again (see [`XskBackend::sleep_watches`]).
    fn stop_watching(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The chunk a descriptor address lies in (its start offset).
#[inline]
pub fn chunk_of(addr: u64, frame_size: u32) -> u64 {
    addr & !(u64::from(frame_size) - 1)
}

/// The index of interface `name` in the calling thread's network namespace
/// (`if_nametoindex`): an error when there is none. A deleted and
/// re-created interface gets a new index.
pub fn interface_index(name: &str) -> io::Result<u32> {
    sys::if_index(name)
}

/// One socket to open: an interface and one of its queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskPortSpec {
    /// Interface name, resolved in the calling thread's network namespace.
    pub ifname: String,
    /// Queue to bind (rx and tx).
    pub queue_id: u32,
}

/// How to build the UMEM and the sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskOptions {
    /// Chunk size: 2048 or 4096.
    pub frame_size: u32,
    /// Number of chunks in the (shared) UMEM.
    pub frame_count: u32,
    /// Entries of each ring (fill, completion, rx, tx) of each socket; a
    /// power of two.
    pub ring_size: u32,
    /// Ask for zero-copy; when a driver cannot, every socket falls back to
    /// copy mode (logged at info). False means copy mode.
    pub zero_copy: bool,
    /// Copy mode even if `zero_copy` is set.
    pub force_copy: bool,
}

impl Default for XskOptions {
    fn default() -> Self {
        XskOptions {
            frame_size: 2048,
            frame_count: 4096,
            ring_size: 1024,
            zero_copy: true,
            force_copy: false,
        }
    }
}

/// How a socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM.
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// The kernel's drop counters of one socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than an invalid descriptor (no fill
    /// entry, frame larger than a chunk).
    pub rx_dropped: u64,
    /// Invalid descriptors seen in the rx ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors seen in the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty.
    pub tx_ring_empty_descs: u64,
}

/// Occupancy of one socket's rings plus the kernel's counters.
///
/// `fill` and `tx` count entries published by us and not yet taken by the
/// kernel; `rx` and `completion` count entries the kernel published that we
/// have not taken yet. (In copy mode a chunk the kernel took from the fill
/// ring while the rx ring was full sits in the kernel's own free list until
/// the next frame arrives: it appears in none of these.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Chunks waiting in the fill ring.
    pub fill: u32,
    /// Frames waiting in the rx ring.
    pub rx: u32,
    /// Frames waiting in the tx ring.
    pub tx: u32,
    /// Addresses waiting in the completion ring.
    pub completion: u32,
    /// `XDP_STATISTICS`, if the getsockopt succeeded.
    pub kernel: Option<XdpStatistics>,
}

/// Why opening AF_XDP sockets failed.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The options or port list are unusable.
    #[error("invalid AF_XDP options: {0}")]
    InvalidOptions(String),
    /// The interface does not exist in this network namespace.
    #[error("interface {ifname:?} not found")]
    NoSuchInterface {
        /// The interface name.
        ifname: String,
        /// The error of if_nametoindex.
        #[source]
        source: io::Error,
    },
    /// The UMEM could not be allocated.
    #[error("allocating a UMEM of {len} bytes failed")]
    Umem {
        /// Bytes asked for.
        len: u64,
        /// The error of mmap.
        #[source]
        source: io::Error,
    },
    /// A socket set-up step (socket, setsockopt, getsockopt, mmap) failed.
    #[error("AF_XDP {step} failed for {ifname} queue {queue_id}")]
    Setup {
        /// The step that failed.
        step: &'static str,
        /// The interface.
        ifname: String,
        /// The queue.
        queue_id: u32,
        /// The error of the syscall.
        #[source]
        source: io::Error,
    },
    /// bind() failed.
    #[error("AF_XDP bind in {mode} mode failed for {ifname} queue {queue_id}")]
    Bind {
        /// The mode asked for.
        mode: BindMode,
        /// The interface.
        ifname: String,
        /// The queue.
        queue_id: u32,
        /// The error of bind.
        #[source]
        source: io::Error,
    },
    /// The epoll set the sockets are waited on could not be made or changed.
    #[error("epoll over the AF_XDP sockets")]
    Epoll(#[source] nix::errno::Errno),
}

/// One bound socket and its rings.
#[derive(Debug)]
struct XskPort {
    spec: XskPortSpec,
    mode: BindMode,
    /// Frames one copy-mode `sendto` moves (see [`tx_budget_for`]).
    tx_budget: u32,
    fill: ProducerRing<u64>,
    completion: ConsumerRing<u64>,
    rx: ConsumerRing<XdpDesc>,
    tx: ProducerRing<XdpDesc>,
    /// Each ring owns its mapping; the socket is closed after them.
    fd: OwnedFd,
}

impl XskPort {
    /// Everything its rings hold that is ours: fill entries the kernel
    /// never took, received and completed frames, tx entries never sent.
    fn reclaim(&mut self) -> Reclaimed {
        let mut back = Reclaimed::default();
        self.fill.unconsumed(|a| back.fill.push(a));
        self.tx.unconsumed(|d| back.tx.push(d.addr));
        let size = self.rx.ready_now() as usize;
        self.rx.consume(size, |_, d| back.rx.push(d.addr));
        let size = self.completion.ready_now() as usize;
        self.completion
            .consume(size, |_, a| back.completion.push(a));
        back
    }
}

/// AF_XDP sockets sharing one UMEM; see the module documentation.
///
/// Dropping it closes the sockets (which removes them from any XSKMAP), then
/// unmaps their rings and the UMEM.
#[derive(Debug)]
pub struct XskBackend {
    /// By port number; `None` for a port removed at run time (its number
    /// stays free until a new port takes it).
    ports: Vec<Option<XskPort>>,
    /// Every port's socket, for [`PacketIo::wait`]: an epoll set, so that
    /// an adaptive worker's sleep costs the same over 200 sockets as over
    /// two (poll(2) walks every descriptor on each call and wake-up).
    waiter: Epoll,
    /// Whether the ports' sockets are in `waiter`: from a
    /// [`PacketIo::wait`] to the next [`PacketIo::stop_watching`] (which an
    /// adaptive worker calls once it has been awake with work for a
    /// while). A socket in an epoll set has a sleeper on its
    /// wait queue for good, so every batch the kernel redirects to it pays
    /// a wake-up (the queue's lock with interrupts off, epoll's callback)
    /// on the core that received the frames, the pods' core. A busy
    /// worker never sleeps: its sockets never join the set and the kernel
    /// skips that wake-up.
    watching: bool,
    /// What [`Epoll::wait`] fills (no allocation per call).
    ready: Vec<EpollEvent>,
    /// In the epoll set too: a [`Waker`] ends a sleep (a command for the
    /// worker is waiting).
    wake: Arc<EventFd>,
    frame_size: u32,
    frame_count: u32,
    /// The options it was opened with (for [`XskBackend::rebind`]).
    options: XskOptions,
    /// Declared last: unmapped after every socket is closed.
    umem: Mmap,
}

/// How many of a backend's sockets a [`PortOpener`] may share the UMEM
/// through (the first that accepts a new socket is used).
const OPENER_SHARES: usize = 4;

/// Opens sockets sharing a backend's UMEM on any thread; see
/// [`XskBackend::port_opener`]. It holds duplicates of some of the
/// backend's sockets (the UMEM stays registered while any is open).
#[derive(Debug)]
pub struct PortOpener {
    share: Vec<OwnedFd>,
    options: XskOptions,
    mode: BindMode,
}

impl PortOpener {
    /// Open and bind a socket for `spec` sharing the UMEM, with its own
    /// fill and completion rings, ready for [`XskBackend::install_port`].
    /// No frame can reach it before its interface's XSKMAP names it.
    pub fn open(&self, spec: &XskPortSpec) -> Result<PreparedPort, XskError> {
        let mut last_error = None;
        for fd in &self.share {
            match open_port(
                UmemSource::Share(fd.as_raw_fd()),
                spec,
                &self.options,
                self.mode,
            ) {
                Ok(p) => return Ok(PreparedPort(p)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            XskError::InvalidOptions("no socket to share the UMEM through".to_string())
        }))
    }
}

/// A socket opened by [`PortOpener::open`], not yet a port of a backend.
#[derive(Debug)]
pub struct PreparedPort(XskPort);

/// A socket taken out of a backend by [`XskBackend::take_port`]: dropping
/// it closes the socket and unmaps its rings.
#[derive(Debug)]
pub struct ClosingPort {
    _socket: XskPort,
}

impl ClosingPort {
    /// The socket's kernel drop counters (`XDP_STATISTICS`), read before it
    /// closes so that its drops outlive it.
    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        statistics(self._socket.fd.as_raw_fd())
    }
}

/// Where a new socket gets its UMEM.
#[derive(Clone, Copy)]
enum UmemSource<'a> {
    /// Register this memory (the backend's first socket).
    Register(&'a Mmap),
    /// Share the UMEM of the socket with this descriptor.
    Share(RawFd),
}

/// What [`XskBackend::rebind`] got back from the old socket: chunk
/// addresses, by the ring they were found in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Fill-ring entries the kernel never took.
    pub fill: Vec<u64>,
    /// Frames received and not yet read (dropped: their port is gone).
    pub rx: Vec<u64>,
    /// Tx-ring entries the kernel never took.
    pub tx: Vec<u64>,
    /// Sent frames not yet reaped from the completion ring.
    pub completion: Vec<u64>,
}

impl XskBackend {
    /// Allocate the UMEM and open, set up and bind one socket per port.
    ///
    /// Needs CAP_NET_RAW (socket) and CAP_IPC_LOCK or enough RLIMIT_MEMLOCK
    /// (UMEM registration); an attempt to raise RLIMIT_MEMLOCK is made and
    /// its failure only logged. Interfaces are looked up in the calling
    /// thread's network namespace. Kernel ≥ 5.10 (shared UMEM across
    /// devices with one fill/completion ring pair per socket).
    pub fn open(ports: &[XskPortSpec], opts: &XskOptions) -> Result<Self, XskError> {
        validate(ports, opts)?;
        if let Err(error) = sys::raise_memlock_limit() {
            tracing::debug!(%error, "could not raise RLIMIT_MEMLOCK; relying on CAP_IPC_LOCK");
        }
        let umem_len = u64::from(opts.frame_size) * u64::from(opts.frame_count);
        let umem = usize::try_from(umem_len)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))
            .and_then(Mmap::anonymous)
            .map_err(|source| XskError::Umem {
                len: umem_len,
                source,
            })?;

        let mut bound = None;
        if opts.zero_copy && !opts.force_copy {
            match bind_all(&umem, ports, opts, BindMode::ZeroCopy) {
                Ok(p) => bound = Some(p),
                Err(error @ XskError::Bind { .. }) => {
                    let cause = std::error::Error::source(&error).map(ToString::to_string);
                    tracing::info!(
                        %error,
                        cause = cause.as_deref().unwrap_or(""),
                        "zero-copy AF_XDP unavailable, falling back to copy mode"
                    );
                }
                Err(other) => return Err(other),
            }
        }
        let bound = match bound {
            Some(p) => p,
            None => bind_all(&umem, ports, opts, BindMode::Copy)?,
        };
        // The ports join the set at the first sleep (`watching`).
        let waiter = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(XskError::Epoll)?;
        let wake = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(XskError::Epoll)?;
        waiter
            .add(&wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN))
            .map_err(XskError::Epoll)?;
        for (i, p) in bound.iter().enumerate() {
            tracing::info!(
                port = i,
                ifname = %p.spec.ifname,
                queue = p.spec.queue_id,
                mode = %p.mode,
                "AF_XDP socket bound"
            );
        }
        Ok(XskBackend {
            ports: bound.into_iter().map(Some).collect(),
            waiter,
            watching: false,
            ready: vec![EpollEvent::empty(); READY_EVENTS],
            wake: Arc::new(wake),
            frame_size: opts.frame_size,
            frame_count: opts.frame_count,
            options: opts.clone(),
            umem,
        })
    }

    /// Replace `port`'s socket by a new one on the same interface name and
    /// queue, sharing the UMEM: for when the interface was deleted and
    /// created again (the kernel unbinds a socket whose device goes away,
    /// and an unbound socket cannot bind again). The new socket shares the
    /// UMEM through the first other port that accepts it.
    ///
    /// Returns what the old socket still held that is ours again (its
    /// rings are read once the new socket is bound, then it is closed).
    /// Chunks the kernel had taken from the old rings and never gave back
    /// (a copy-mode receive buffer, a send in flight) are not in it: the
    /// caller counts them as stranded. The caller must put the new
    /// socket in the new interface's XSKMAP ([`XskBackend::socket_fd`]).
    pub fn rebind(&mut self, port: PortId) -> Result<Reclaimed, XskError> {
        let index = usize::from(port);
        let Some(old) = self.slot(port) else {
            return Err(XskError::InvalidOptions(format!("no port {port}")));
        };
        let spec = old.spec.clone();
        let mode = old.mode;
        let mut last_error = None;
        let mut new_port = None;
        for (q, other) in self.ports.iter().enumerate() {
            let Some(other) = other.as_ref().filter(|_| q != index) else {
                continue;
            };
            match open_port(
                UmemSource::Share(other.fd.as_raw_fd()),
                &spec,
                &self.options,
                mode,
            ) {
                Ok(p) => {
                    new_port = Some(p);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let new_port = match (new_port, last_error) {
            (Some(p), _) => p,
            (None, Some(e)) => return Err(e),
            // The only port: register the UMEM again on the same memory.
            (None, None) => {
                open_port(UmemSource::Register(&self.umem), &spec, &self.options, mode)?
            }
        };
        if self.watching {
            watch(&self.waiter, &new_port, index).map_err(XskError::Epoll)?;
        }
        let Some(mut old) = self.ports[index].replace(new_port) else {
            return Err(XskError::InvalidOptions(format!("no port {port}")));
        };
        // Closed below; out of the set first, or the set would keep the
        // old socket's file open.
        let _ = self.waiter.delete(&old.fd);
        let back = old.reclaim();
        tracing::info!(
            port,
            ifname = %spec.ifname,
            queue = spec.queue_id,
            fill = back.fill.len(),
            rx = back.rx.len(),
            tx = back.tx.len(),
            completion = back.completion.len(),
            "AF_XDP socket bound again"
        );
        Ok(back)
    }

    fn slot(&self, port: PortId) -> Option<&XskPort> {
        self.ports.get(usize::from(port)).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, port: PortId) -> Option<&mut XskPort> {
        self.ports
            .get_mut(usize::from(port))
            .and_then(Option::as_mut)
    }

    /// What another thread needs to open a socket sharing this backend's
    /// UMEM ([`PortOpener::open`]): a port added at run time is opened and
    /// bound off the worker's thread (socket, ring setup, mmap and bind are
    /// syscalls, and a bind may wait for a busy queue), so the worker only
    /// installs the finished socket ([`XskBackend::install_port`]) and its
    /// other ports keep flowing meanwhile.
    pub fn port_opener(&self) -> Result<PortOpener, XskError> {
        let mode = self
            .ports
            .iter()
            .flatten()
            .next()
            .map_or(BindMode::Copy, |p| p.mode);
        let mut share = Vec::with_capacity(OPENER_SHARES);
        for p in self.ports.iter().flatten().take(OPENER_SHARES) {
            let fd = p.fd.try_clone().map_err(|source| XskError::Setup {
                step: "dup of a socket to share the UMEM through",
                ifname: p.spec.ifname.clone(),
                queue_id: p.spec.queue_id,
                source,
            })?;
            share.push(fd);
        }
        if share.is_empty() {
            return Err(XskError::InvalidOptions(
                "no socket left to share the UMEM through".to_string(),
            ));
        }
        Ok(PortOpener {
            share,
            options: self.options.clone(),
            mode,
        })
    }

    /// Take the socket opened by [`PortOpener::open`] as port `port` (a
    /// number no port holds): a pod interface added at run time. The
    /// caller puts the socket in the interface's XSKMAP
    /// ([`XskBackend::socket_fd`]) and gives its fill ring frames. On
    /// error the socket is handed back closed (dropped here).
    pub fn install_port(&mut self, port: PortId, prepared: PreparedPort) -> Result<(), XskError> {
        let index = usize::from(port);
        if self.slot(port).is_some() {
            return Err(XskError::InvalidOptions(format!("port {port} is taken")));
        }
        let new_port = prepared.0;
        if self.watching {
            watch(&self.waiter, &new_port, index).map_err(XskError::Epoll)?;
        }
        if self.ports.len() <= index {
            self.ports.resize_with(index + 1, || None);
        }
        tracing::info!(
            port,
            ifname = %new_port.spec.ifname,
            queue = new_port.spec.queue_id,
            mode = %new_port.mode,
            "AF_XDP socket bound (added at run time)"
        );
        self.ports[index] = Some(new_port);
        Ok(())
    }

    /// Take port `port`'s socket out (its interface was removed at run
    /// time; the caller has detached the XDP program first) and return
    /// what its rings still held, with the socket itself: dropping the
    /// [`ClosingPort`] closes it, which waits for an RCU grace period in
    /// the kernel, so a worker hands it to another thread to drop. `None`
    /// when no port has that number. Chunks the kernel took and never gave
    /// back are not in the [`Reclaimed`] (the caller counts them as
    /// stranded). The number stays free for a later port.
    pub fn take_port(&mut self, port: PortId) -> Option<(Reclaimed, ClosingPort)> {
        let index = usize::from(port);
        let mut old = self.ports.get_mut(index)?.take()?;
        // Frames still in the tx ring: one kick so the kernel sends (and
        // completes) what it can before the socket goes.
        if old.tx.outstanding() > 0 {
            let _ = sys::wake_tx(old.fd.as_raw_fd());
        }
        let back = old.reclaim();
        let _ = self.waiter.delete(&old.fd);
        tracing::info!(
            port,
            ifname = %old.spec.ifname,
            fill = back.fill.len(),
            rx = back.rx.len(),
            tx = back.tx.len(),
            completion = back.completion.len(),
            "AF_XDP socket taken out (port removed at run time)"
        );
        Some((back, ClosingPort { _socket: old }))
    }

    /// The socket of `port`, to put in the XSKMAP of its interface.
    ///
    /// # Panics
    ///
    /// If `port` is not a port of this backend (a programming error).
    pub fn socket_fd(&self, port: PortId) -> RawFd {
        self.port(port).fd.as_raw_fd()
    }

    /// The descriptors its sleep ([`PacketIo::wait`]) watches now, as the
    /// kernel lists them (`tfd:` in the epoll set's `/proc/self/fdinfo`):
    /// the waker's eventfd always, the ports' sockets once it has slept
    /// (a busy worker's never). For tests and diagnostics.
    pub fn sleep_watches(&self) -> io::Result<Vec<RawFd>> {
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", self.waiter.0.as_raw_fd()))?;
        Ok(info
            .lines()
            .filter_map(|l| l.strip_prefix("tfd:"))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect())
    }

    /// A handle that ends this backend's sleeps from another thread.
    pub fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.wake))
    }

    /// The NAPI id the kernel marked `port`'s socket with once a frame
    /// reached it (`SO_INCOMING_NAPI_ID`): busy polling (`SO_BUSY_POLL`,
    /// `SO_PREFER_BUSY_POLL`) runs that NAPI from the polling thread, and
    /// does nothing while it is 0. On veth in copy mode the kernel leaves
    /// it 0 (Linux 6.18; the privileged `afxdp` test prints it).
    ///
    /// # Panics
    ///
    /// If `port` is not a port of this backend.
    pub fn incoming_napi_id(&self, port: PortId) -> io::Result<u32> {
        sys::incoming_napi_id(self.socket_fd(port))
    }

    /// How `port` is bound, as the kernel reports it.
    ///
    /// # Panics
    ///
    /// If `port` is not a port of this backend.
    pub fn bind_mode(&self, port: PortId) -> BindMode {
        self.port(port).mode
    }

    /// How many frames one copy-mode `sendto` on `port` moves: the tx
    /// ring's size where the kernel takes `XDP_MAX_TX_SKB_BUDGET`, else
    /// its default 32 (0 for a port that does not exist).
    pub fn tx_budget(&self, port: PortId) -> u32 {
        self.slot(port).map_or(0, |p| p.tx_budget)
    }

    /// The interface and queue of `port`, if it exists.
    pub fn port_spec(&self, port: PortId) -> Option<&XskPortSpec> {
        self.slot(port).map(|p| &p.spec)
    }

    /// Ring occupancy and kernel counters of `port` (all zero for a port
    /// that does not exist). One getsockopt: for stats, not per batch.
    pub fn ring_stats(&self, port: PortId) -> RingStats {
        let Some(p) = self.slot(port) else {
            return RingStats::default();
        };
        RingStats {
            fill: p.fill.outstanding(),
            rx: p.rx.ready_now(),
            tx: p.tx.outstanding(),
            completion: p.completion.ready_now(),
            kernel: statistics(p.fd.as_raw_fd()).ok(),
        }
    }

    fn port(&self, port: PortId) -> &XskPort {
        match self.slot(port) {
            Some(p) => p,
            None => panic!(
                "port {port} out of range: this backend has {} ports",
                self.ports.len()
            ),
        }
    }

    /// Whether a tx descriptor lies inside one chunk of the UMEM.
    #[inline]
    fn tx_desc_valid(desc: &Desc, frame_size: u32, umem_len: u64) -> bool {
        let offset_in_chunk = desc.addr & u64::from(frame_size - 1);
        desc.len > 0
            && desc.addr < umem_len
            && offset_in_chunk + u64::from(desc.len) <= u64::from(frame_size)
    }
}

impl PacketIo for XskBackend {
    /// Port numbers in use and free ones below the highest.
    fn port_count(&self) -> usize {
        self.ports.len()
    }

    fn frame_size(&self) -> u32 {
        self.frame_size
    }

    fn frame_count(&self) -> u32 {
        self.frame_count
    }

    fn umem(&mut self) -> &mut [u8] {
        self.umem.as_mut_slice()
    }

    fn fill_capacity(&self, port: PortId) -> usize {
        self.slot(port).map_or(0, |p| p.fill.free_now() as usize)
    }

    /// Addresses beyond the UMEM are not taken (the kernel would silently
    /// discard them, losing the chunk): `fill` stops at the first one and
    /// leaves it, and everything after it, with the caller.
    fn fill(&mut self, port: PortId, addrs: &[u64]) -> usize {
        let umem_len = self.umem.len() as u64;
        let Some(p) = self.slot_mut(port) else {
            return 0;
        };
        let valid = addrs.iter().take_while(|&&a| a < umem_len).count();
        debug_assert_eq!(valid, addrs.len(), "fill address outside the UMEM");
        p.fill.produce(valid, |i| addrs[i])
    }

    fn receive(&mut self, port: PortId, out: &mut [Desc]) -> usize {
        let Some(p) = self.slot_mut(port) else {
            return 0;
        };
        p.rx.consume(out.len(), |i, d| {
            out[i] = Desc {
                addr: d.addr,
                len: d.len,
            }
        })
    }

    /// A descriptor must lie inside one chunk and have a non-zero length
    /// (otherwise the kernel counts it in `tx_invalid_descs` and never
    /// completes it, losing the chunk): `transmit` stops at the first one
    /// that does not and leaves it, and everything after it, with the caller.
    fn transmit(&mut self, port: PortId, descs: &[Desc]) -> usize {
        let frame_size = self.frame_size;
        let umem_len = self.umem.len() as u64;
        let Some(p) = self.slot_mut(port) else {
            return 0;
        };
        let valid = descs
            .iter()
            .take_while(|d| XskBackend::tx_desc_valid(d, frame_size, umem_len))
            .count();
        debug_assert_eq!(valid, descs.len(), "tx descriptor outside one chunk");
        p.tx.produce(valid, |i| XdpDesc {
            addr: descs[i].addr,
            len: descs[i].len,
            options: 0,
        })
    }

    fn complete(&mut self, port: PortId, out: &mut [u64]) -> usize {
        let Some(p) = self.slot_mut(port) else {
            return 0;
        };
        p.completion.consume(out.len(), |i, addr| out[i] = addr)
    }

    /// The need_wakeup protocol of `Documentation/networking/af_xdp.rst`
    /// and `net/xdp/xsk.c`:
    ///
    /// - tx: when the tx ring holds entries the kernel has not consumed and
    ///   either the ring's need_wakeup flag is set or the socket is in copy
    ///   mode (copy-mode tx only ever happens inside a syscall, and the
    ///   kernel sends at most the socket's tx budget per call: 32, or the
    ///   whole ring where kxdp could raise it), one
    ///   `sendto(fd, NULL, 0, MSG_DONTWAIT)`;
    /// - rx: when the fill ring's need_wakeup flag is set (only zero-copy
    ///   drivers set it, when they ran out of fill entries),
    ///   `recvfrom(MSG_DONTWAIT)`, which makes the kernel call the driver's
    ///   wakeup for rx in zero-copy mode (a copy-mode socket gets a
    ///   zero-timeout poll instead, the call the document names);
    /// - both: one zero-timeout `poll()`, which wakes both directions.
    ///
    /// EAGAIN, EBUSY, ENOBUFS and ENETDOWN mean "try again later" (tx
    /// budget spent, skb allocation failed, frame dropped by the device,
    /// interface down) and return Ok: the caller kicks again on its next
    /// loop.
    fn kick(&mut self, port: PortId) -> io::Result<()> {
        let Some(p) = self.slot(port) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no port {port}"),
            ));
        };
        // Our producer-index stores (fill, tx) must be ordered before the
        // flag loads below, or we could read a flag the kernel cleared
        // before it saw our new entries and then set again: a StoreLoad
        // ordering only a full fence gives. One per kick, i.e. per batch.
        fence(Ordering::SeqCst);
        let fd = p.fd.as_raw_fd();
        let tx_wakeup = p.tx.outstanding() > 0 && (p.mode == BindMode::Copy || p.tx.needs_wakeup());
        let rx_wakeup = p.fill.needs_wakeup();
        let result = match (tx_wakeup, rx_wakeup) {
            (false, false) => return Ok(()),
            (true, false) => sys::wake_tx(fd),
            (false, true) if p.mode == BindMode::ZeroCopy => sys::wake_rx(fd),
            (false, true) | (true, true) => {
                let mut pfd = [libc::pollfd {
                    fd,
                    events: libc::POLLIN | libc::POLLOUT,
                    revents: 0,
                }];
                sys::poll(&mut pfd, Duration::ZERO).map(|_| ())
            }
        };
        match result {
            Err(e) if is_transient(&e) => Ok(()),
            other => other,
        }
    }

    /// Take the sockets out of the sleep's epoll set (one syscall each):
    /// while they are in it, the kernel runs a wake-up for every batch it
    /// redirects to them. The next [`PacketIo::wait`] puts them back.
    fn stop_watching(&mut self) -> io::Result<()> {
        if !self.watching {
            return Ok(());
        }
        self.watching = false;
        for p in self.ports.iter().flatten() {
            match self.waiter.delete(&p.fd) {
                // ENOENT: not in the set (added while not watching).
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        Ok(())
    }

    /// Sleep until a socket has frames to receive, at most `timeout`
    /// (epoll_wait over every socket; rounded up to a millisecond). The
    /// worker sleeps only with nothing on its tx rings, so the transmit a
    /// copy-mode socket's poll() would do on the side is not needed.
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if !self.watching {
            for (i, p) in self.ports.iter().enumerate() {
                if let Some(p) = p {
                    // EEXIST: added by an earlier call that failed part-way.
                    match watch(&self.waiter, p, i) {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => return Err(io::Error::from(e)),
                    }
                }
            }
            self.watching = true;
        }
        let ms = u16::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        match self.waiter.wait(&mut self.ready, ms) {
            Ok(n) => {
                if self.ready[..n].iter().any(|e| e.data() == WAKE_TOKEN) {
                    // Reset the counter (level-triggered: it would end
                    // every later sleep at once). EAGAIN: already reset.
                    let _ = self.wake.read();
                }
                Ok(())
            }
            Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// The epoll tag of the waker's eventfd (ports are tagged with their
/// numbers, which are 16-bit).
const WAKE_TOKEN: u64 = u64::MAX;

/// Ends an [`XskBackend`]'s sleep in [`PacketIo::wait`] from another
/// thread (one eventfd write): whoever hands its worker a command wakes it,
/// so an adaptive worker runs the command at once instead of after its
/// sleep (up to `max_sleep`).
#[derive(Clone, Debug)]
pub struct Waker(Arc<EventFd>);

impl Waker {
    /// End the current sleep, or the next one if the worker is awake.
    pub fn wake(&self) {
        // Fails only when the counter would overflow: it is then set.
        let _ = self.0.write(1);
    }
}

/// Events one [`PacketIo::wait`] takes in (more ready sockets are simply
/// left for the worker's loop, which reads every ring anyway).
const READY_EVENTS: usize = 16;

/// Add `port`'s socket to `waiter` for frames to receive (level-triggered),
/// tagged with its number.
fn watch(waiter: &Epoll, port: &XskPort, number: usize) -> nix::Result<()> {
    waiter.add(
        &port.fd,
        EpollEvent::new(EpollFlags::EPOLLIN, number as u64),
    )
}

/// Errors of a wakeup syscall after which the caller just retries later.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN)
    )
}

fn validate(ports: &[XskPortSpec], opts: &XskOptions) -> Result<(), XskError> {
    let invalid = |m: String| Err(XskError::InvalidOptions(m));
    if opts.frame_size != 2048 && opts.frame_size != 4096 {
        return invalid(format!(
            "frame_size {} (must be 2048 or 4096)",
            opts.frame_size
        ));
    }
    if opts.frame_count == 0 {
        return invalid("frame_count 0".into());
    }
    if !opts.ring_size.is_power_of_two() {
        return invalid(format!(
            "ring_size {} (must be a power of two)",
            opts.ring_size
        ));
    }
    if ports.is_empty() {
        return invalid("no ports".into());
    }
    if ports.len() > usize::from(PortId::MAX) + 1 {
        return invalid(format!("{} ports (at most {})", ports.len(), PortId::MAX));
    }
    for (i, a) in ports.iter().enumerate() {
        if ports[..i]
            .iter()
            .any(|b| b.ifname == a.ifname && b.queue_id == a.queue_id)
        {
            return invalid(format!(
                "port {i}: {} queue {} is listed twice",
                a.ifname, a.queue_id
            ));
        }
    }
    Ok(())
}

/// Open and bind one socket per port in `mode`; the first registers the
/// UMEM, the others share it.
fn bind_all(
    umem: &Mmap,
    ports: &[XskPortSpec],
    opts: &XskOptions,
    mode: BindMode,
) -> Result<Vec<XskPort>, XskError> {
    let mut bound: Vec<XskPort> = Vec::with_capacity(ports.len());
    for spec in ports {
        let source = match bound.first() {
            Some(p) => UmemSource::Share(p.fd.as_raw_fd()),
            None => UmemSource::Register(umem),
        };
        let port = open_port(source, spec, opts, mode)?;
        bound.push(port);
    }
    Ok(bound)
}

fn open_port(
    umem: UmemSource<'_>,
    spec: &XskPortSpec,
    opts: &XskOptions,
    mode: BindMode,
) -> Result<XskPort, XskError> {
    let (register, shared_with) = match umem {
        UmemSource::Register(memory) => (Some(memory), None),
        UmemSource::Share(fd) => (None, Some(fd)),
    };
    let setup = |step: &'static str| {
        move |source: io::Error| XskError::Setup {
            step,
            ifname: spec.ifname.clone(),
            queue_id: spec.queue_id,
            source,
        }
    };
    let ifindex = sys::if_index(&spec.ifname).map_err(|source| XskError::NoSuchInterface {
        ifname: spec.ifname.clone(),
        source,
    })?;
    let fd = sys::xdp_socket().map_err(setup("socket"))?;

    if let Some(umem) = register {
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem.len() as u64,
            chunk_size: opts.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::set_xdp_option(&fd, libc::XDP_UMEM_REG, &reg).map_err(setup("UMEM registration"))?;
    }
    // Every socket gets its own fill and completion ring: a socket sharing
    // the UMEM on another device or queue needs them (and we never open two
    // sockets on the same device and queue).
    let size = opts.ring_size;
    for (name, step) in [
        (libc::XDP_UMEM_FILL_RING, "fill ring setsockopt"),
        (libc::XDP_UMEM_COMPLETION_RING, "completion ring setsockopt"),
        (libc::XDP_RX_RING, "rx ring setsockopt"),
        (libc::XDP_TX_RING, "tx ring setsockopt"),
    ] {
        sys::set_xdp_option(&fd, name, &size).map_err(setup(step))?;
    }
    let tx_budget = raise_tx_budget(&fd, size);
    let (offsets, len) = sys::get_xdp_option(fd.as_raw_fd(), libc::XDP_MMAP_OFFSETS, ZERO_OFFSETS)
        .map_err(setup("XDP_MMAP_OFFSETS"))?;
    if len < size_of::<libc::xdp_mmap_offsets>() {
        return Err(setup("XDP_MMAP_OFFSETS")(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel without ring flags (need_wakeup needs 5.4+)",
        )));
    }

    let raw = fd.as_raw_fd();
    let fill =
        sys::map_producer_ring::<u64>(raw, &offsets.fr, size, libc::XDP_UMEM_PGOFF_FILL_RING)
            .map_err(setup("fill ring mmap"))?;
    let completion =
        sys::map_consumer_ring::<u64>(raw, &offsets.cr, size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(setup("completion ring mmap"))?;
    let rx =
        sys::map_consumer_ring::<XdpDesc>(raw, &offsets.rx, size, libc::XDP_PGOFF_RX_RING as u64)
            .map_err(setup("rx ring mmap"))?;
    let tx =
        sys::map_producer_ring::<XdpDesc>(raw, &offsets.tx, size, libc::XDP_PGOFF_TX_RING as u64)
            .map_err(setup("tx ring mmap"))?;

    // A socket sharing the UMEM may not pass mode flags: it inherits the
    // mode (and need_wakeup) of the socket that registered the UMEM.
    let (flags, shared_fd) = match shared_with {
        Some(first) => (libc::XDP_SHARED_UMEM, first as u32),
        None => {
            let mode_flag = match mode {
                BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
                BindMode::Copy => libc::XDP_COPY,
            };
            (libc::XDP_USE_NEED_WAKEUP | mode_flag, 0)
        }
    };
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: spec.queue_id,
        sxdp_shared_umem_fd: shared_fd,
    };
    bind_retrying_busy(&fd, &addr).map_err(|source| XskError::Bind {
        mode,
        ifname: spec.ifname.clone(),
        queue_id: spec.queue_id,
        source,
    })?;
    let (options, _) = sys::get_xdp_option(raw, libc::XDP_OPTIONS, libc::xdp_options { flags: 0 })
        .map_err(setup("XDP_OPTIONS"))?;
    let actual = if options.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
        BindMode::ZeroCopy
    } else {
        BindMode::Copy
    };

    Ok(XskPort {
        spec: spec.clone(),
        mode: actual,
        tx_budget,
        fill,
        completion,
        rx,
        tx,
        fd,
    })
}

/// `XDP_MAX_TX_SKB_BUDGET` (`include/uapi/linux/if_xdp.h`, Linux 6.17+;
/// not in the libc crate yet).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// The kernel's frames per copy-mode `sendto` when nobody raises it
/// (`TX_BATCH_SIZE` in `net/xdp/xsk.c`), and the lowest budget it takes.
pub const DEFAULT_TX_BUDGET: u32 = 32;

/// The copy-mode transmit budget kxdp asks for on a tx ring of
/// `ring_size` entries: the whole ring, so that one `sendto` sends
/// everything the worker queued (a batch and whatever an earlier kick
/// left) instead of 32 frames and `EAGAIN`. The kernel takes
/// 32..=ring size; a smaller ring keeps the default.
pub fn tx_budget_for(ring_size: u32) -> Option<u32> {
    (ring_size > DEFAULT_TX_BUDGET).then_some(ring_size)
}

/// Raise the socket's copy-mode transmit budget (see [`tx_budget_for`])
/// and return the budget in force. A kernel without the option (before
/// 6.17: `ENOPROTOOPT`) keeps its 32, which only costs more `sendto`s,
/// so that is logged, not an error. Zero-copy sockets ignore it (their
/// driver's NAPI sends).
fn raise_tx_budget(fd: &OwnedFd, ring_size: u32) -> u32 {
    let Some(budget) = tx_budget_for(ring_size) else {
        return DEFAULT_TX_BUDGET;
    };
    match sys::set_xdp_option(fd, XDP_MAX_TX_SKB_BUDGET, &budget) {
        Ok(()) => budget,
        Err(e) => {
            tracing::debug!(error = %e, "XDP_MAX_TX_SKB_BUDGET refused: 32 frames per sendto");
            DEFAULT_TX_BUDGET
        }
    }
}

/// How long bind() retries EBUSY.
const BIND_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// bind(), retrying EBUSY for up to [`BIND_BUSY_TIMEOUT`]: the kernel
/// detaches a closed socket's buffer pool from its queue in a work item
/// (`xp_release_deferred`), so right after a previous backend on the same
/// queue was dropped (a restart, a reconfiguration) the queue is briefly
/// still busy. A queue held by a live socket stays busy and fails after the
/// timeout.
fn bind_retrying_busy(fd: &OwnedFd, addr: &libc::sockaddr_xdp) -> io::Result<()> {
    let deadline = std::time::Instant::now() + BIND_BUSY_TIMEOUT;
    loop {
        match sys::bind_xdp(fd, addr) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

const ZERO_RING_OFFSET: libc::xdp_ring_offset = libc::xdp_ring_offset {
    producer: 0,
    consumer: 0,
    desc: 0,
    flags: 0,
};

const ZERO_OFFSETS: libc::xdp_mmap_offsets = libc::xdp_mmap_offsets {
    rx: ZERO_RING_OFFSET,
    tx: ZERO_RING_OFFSET,
    fr: ZERO_RING_OFFSET,
    cr: ZERO_RING_OFFSET,
};

/// `XDP_STATISTICS` of the AF_XDP socket `fd` (for readers outside the
/// worker that owns it, such as the stats server: a getsockopt, no access
/// to the rings). An error when `fd` is not an AF_XDP socket.
pub fn socket_statistics(fd: RawFd) -> io::Result<XdpStatistics> {
    statistics(fd)
}

/// `XDP_STATISTICS` of a socket.
fn statistics(fd: RawFd) -> io::Result<XdpStatistics> {
    let zero = libc::xdp_statistics {
        rx_dropped: 0,
        rx_invalid_descs: 0,
        tx_invalid_descs: 0,
        rx_ring_full: 0,
        rx_fill_ring_empty_descs: 0,
        tx_ring_empty_descs: 0,
    };
    let (s, _) = sys::get_xdp_option(fd, libc::XDP_STATISTICS, zero)?;
    Ok(XdpStatistics {
        rx_dropped: s.rx_dropped,
        rx_invalid_descs: s.rx_invalid_descs,
        tx_invalid_descs: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
        tx_ring_empty_descs: s.tx_ring_empty_descs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ifname: &str, queue_id: u32) -> XskPortSpec {
        XskPortSpec {
            ifname: ifname.into(),
            queue_id,
        }
    }

    #[test]
    fn options_are_validated_before_any_syscall() {
        let ok = XskOptions::default();
        let ports = [spec("eth9", 0)];
        for bad in [
            XskOptions {
                frame_size: 1024,
                ..ok.clone()
            },
            XskOptions {
                frame_count: 0,
                ..ok.clone()
            },
            XskOptions {
                ring_size: 1000,
                ..ok.clone()
            },
        ] {
            assert!(matches!(
                validate(&ports, &bad),
                Err(XskError::InvalidOptions(_))
            ));
        }
        assert!(matches!(
            validate(&[], &ok),
            Err(XskError::InvalidOptions(_))
        ));
        let dup = [spec("a0", 0), spec("b0", 0), spec("a0", 0)];
        assert!(
            matches!(validate(&dup, &ok), Err(XskError::InvalidOptions(m)) if m.contains("twice"))
        );
        assert!(validate(&[spec("a0", 0), spec("a0", 1)], &ok).is_ok());
    }

    #[test]
    fn the_tx_budget_asked_for_is_the_whole_ring_within_the_kernel_s_range() {
        // The kernel takes 32..=ring size: the whole ring above 32, the
        // default (nothing asked) at or below it.
        assert_eq!(tx_budget_for(1024), Some(1024));
        assert_eq!(tx_budget_for(64), Some(64));
        assert_eq!(tx_budget_for(DEFAULT_TX_BUDGET), None);
        assert_eq!(tx_budget_for(16), None);
    }

    #[test]
    fn tx_descriptors_must_stay_inside_one_chunk() {
        let umem_len = 4 * 2048;
        let d = |addr, len| Desc { addr, len };
        assert!(XskBackend::tx_desc_valid(
            &d(2048 + 256, 60),
            2048,
            umem_len
        ));
        assert!(XskBackend::tx_desc_valid(&d(2048, 2048), 2048, umem_len));
        // Encapsulation moved the start back into the headroom: still fine.
        assert!(XskBackend::tx_desc_valid(
            &d(2048 + 206, 110),
            2048,
            umem_len
        ));
        assert!(!XskBackend::tx_desc_valid(
            &d(2048 + 256, 1793),
            2048,
            umem_len
        ));
        assert!(!XskBackend::tx_desc_valid(&d(2048, 0), 2048, umem_len));
        assert!(!XskBackend::tx_desc_valid(&d(umem_len, 60), 2048, umem_len));
    }

    #[test]
    fn backend_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<XskBackend>();
    }

    #[test]
    fn transient_wakeup_errors() {
        for errno in [libc::EAGAIN, libc::EBUSY, libc::ENOBUFS, libc::ENETDOWN] {
            assert!(is_transient(&io::Error::from_raw_os_error(errno)));
        }
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::ENXIO)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::EBADF)));
    }

    #[test]
    fn open_reports_a_missing_interface() {
        // Runs unprivileged too: the interface lookup comes before socket().
        let opts = XskOptions {
            frame_count: 16,
            ring_size: 16,
            ..XskOptions::default()
        };
        let err = XskBackend::open(&[spec("kxdp-nonexist", 0)], &opts)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("kxdp-nonexist") && e.contains("not found")),
            "{err:?}"
        );
    }
}
