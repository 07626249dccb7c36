//! Poll-mode workers: the loop that moves frames between an I/O backend's
//! rings and the pipeline, in batches.
//!
//! A worker owns its backend (its UMEM and sockets), its free-frame list,
//! its pipeline (with per-worker state and counters) and a table reader.
//! Every UMEM frame is always in exactly one place: the free list, a fill
//! ring (or the kernel's rx path), the worker's hands during a batch (the
//! batch's frames, and free frames lent to it for mirror copies, see
//! [`crate::chain_hook`]), a tx ring (or the kernel's tx path), or a
//! completion ring. [`Worker::accounting`] checks that.
//!
//! Poll modes: `Busy` spins; `Adaptive` spins for a short while after the
//! last frame (200 µs: longer than a request's round trip through a peer
//! node, so the reply finds the worker awake), then sleeps in `poll()`
//! until the kernel wakes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use kxdp_config::PollMode;

use crate::chain_hook::{monotonic_ns, ChainHook, MirrorCopy, MirrorFrames, NoChains};
use crate::counters::SharedCounters;
use crate::io::{chunk_of, Desc, PacketIo};
use crate::pipeline::{DropTap, Pipeline};
use crate::tables::TableReader;
use crate::trace::{wall_clock_ns, TraceHub, TracePoint};
use crate::verdict::{DropReason, PortId, Verdict};
use kxdp_sys::cycles;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Worker index (for logs and stats).
    pub index: usize,
    /// Frames per receive batch.
    pub batch_size: usize,
    /// Busy or adaptive.
    pub poll_mode: PollMode,
    /// In adaptive mode: how long to keep spinning after the last frame.
    /// The default, 200 µs, covers a round trip through a peer (tens of
    /// microseconds, more on a VM's halted vCPUs): with 50 µs the worker
    /// slept before most replies came back, and each paid a wake-up of the
    /// worker's core (spinning low-rate p50 90 → 55 µs in `kxdp-bench nut`,
    /// equal to the busy worker). Traffic above 5,000 frames/s keeps it
    /// spinning; an idle node still sleeps.
    pub spin_time: Duration,
    /// Longest sleep in poll() (the stop flag is checked at least this often).
    pub max_sleep: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            index: 0,
            batch_size: 64,
            poll_mode: PollMode::Adaptive,
            spin_time: Duration::from_micros(200),
            max_sleep: Duration::from_millis(100),
        }
    }
}

/// Where the worker's frames are, from its own bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameAccounting {
    /// UMEM frames in all.
    pub total: u64,
    /// In the worker's free list.
    pub free: u64,
    /// Given to fill rings and not yet received back.
    pub in_fill: u64,
    /// Given to tx rings and not yet completed.
    pub in_tx: u64,
    /// Held by sockets that were replaced ([`Worker::port_rebound`]) and
    /// never given back by the kernel: out of use, but accounted for.
    pub stranded: u64,
    /// The free list holds no address twice and only chunk starts.
    pub free_list_consistent: bool,
}

impl FrameAccounting {
    /// Every frame is accounted for exactly once.
    pub fn balanced(&self) -> bool {
        self.free_list_consistent
            && self.free + self.in_fill + self.in_tx + self.stranded == self.total
    }
}

/// A worker: a backend, a pipeline (with its chain hook, none by default),
/// a table reader, and the frame bookkeeping.
#[derive(Debug)]
pub struct Worker<B: PacketIo, H: ChainHook = NoChains> {
    io: B,
    pipeline: Pipeline<H>,
    tables: TableReader,
    shared: Arc<SharedCounters>,
    options: WorkerOptions,
    free: Vec<u64>,
    rx: Vec<Desc>,
    verdicts: Vec<Verdict>,
    staged: Vec<Vec<Desc>>,
    /// Free frames lent to the current batch for mirror copies (empty
    /// between batches); grows only when a chain set asks for more copies
    /// per packet than any before.
    mirror_frames: Vec<MirrorCopy>,
    addrs: Vec<u64>,
    fill_target: Vec<usize>,
    /// The ports it started with (the node file's interfaces: the underlay,
    /// the host port, the file's pods); they keep their starting fill
    /// share when pods come and go at run time.
    start_ports: usize,
    in_fill: Vec<usize>,
    in_tx: Vec<usize>,
    stranded: u64,
    trace: Option<Arc<TraceHub>>,
    /// Whether the pipeline holds a drop trace's session.
    drop_tapped: bool,
    commands: Option<mpsc::Receiver<WorkerCommand<B, H>>>,
}

/// The fill share every live port keeps (refilled from the free list
/// whatever the other ports hold): a burst between two loops of a copy-mode
/// veth fits in it.
pub const FILL_BASE: usize = 128;

/// Most frames staged for one egress port in one loop.
const MAX_STAGE: usize = 2048;

/// A port's staging capacity: a batch from every port, up to [`MAX_STAGE`]
/// (twice a 1024-entry tx ring; more in one loop could not be sent and
/// would be dropped as `tx_ring_full` anyway). Without the cap the stages
/// grew with the square of the ports: 12.8 MB at 112 ports, batch 64.
fn stage_capacity(batch: usize, ports: usize) -> usize {
    (batch * ports).min(MAX_STAGE.max(batch))
}

/// A port's starting fill share: a quarter of the frames over the ports
/// (the rest stays for transmit and for shares that grow with demand), at
/// least [`FILL_BASE`].
fn initial_fill(frame_count: usize, ports: usize) -> usize {
    (frame_count / (4 * ports.max(1))).max(FILL_BASE)
}

/// Work for a worker's own thread, sent by the control side and run
/// between two loop iterations (e.g. rebinding a port whose interface was
/// re-created: the worker owns its sockets).
pub type WorkerCommand<B, H = NoChains> = Box<dyn FnOnce(&mut Worker<B, H>) + Send>;

impl<B: PacketIo> Worker<B> {
    /// A worker over `io`, without service chains. All UMEM frames start in
    /// the free list; each port's fill ring is kept at most
    /// `frame_count / (2 × ports)` deep so that half the frames stay
    /// available for transmit.
    pub fn new(
        io: B,
        tables: TableReader,
        shared: Arc<SharedCounters>,
        options: WorkerOptions,
    ) -> Self {
        Worker::with_hook(io, tables, shared, options, NoChains)
    }
}

impl<B: PacketIo, H: ChainHook> Worker<B, H> {
    /// A worker over `io` whose pipeline runs routable frames through the
    /// chain `hook` (see [`crate::chain_hook`]); otherwise as [`Worker::new`].
    pub fn with_hook(
        io: B,
        tables: TableReader,
        shared: Arc<SharedCounters>,
        options: WorkerOptions,
        hook: H,
    ) -> Self {
        let ports = io.port_count().max(1);
        let frame_size = u64::from(io.frame_size());
        let frame_count = io.frame_count() as usize;
        let batch = options.batch_size.max(1);
        let free: Vec<u64> = (0..frame_count as u64)
            .rev()
            .map(|i| i * frame_size)
            .collect();
        let fill_target = (0..ports)
            .map(|p| initial_fill(frame_count, ports).min(io.fill_capacity(p as PortId)))
            .collect();
        Worker {
            io,
            pipeline: Pipeline::with_hook(hook),
            tables,
            shared,
            options,
            free,
            rx: vec![Desc::default(); batch],
            verdicts: vec![Verdict::Pass; batch],
            staged: (0..ports)
                .map(|_| Vec::with_capacity(stage_capacity(batch, ports)))
                .collect(),
            // Room for a copy per packet of a batch (one mirror stage per
            // chain) without allocating in the loop.
            mirror_frames: Vec::with_capacity(if H::ENABLED { batch } else { 0 }),
            addrs: vec![0; batch.max(64)],
            fill_target,
            start_ports: ports,
            in_fill: vec![0; ports],
            in_tx: vec![0; ports],
            stranded: 0,
            trace: None,
            drop_tapped: false,
            commands: None,
        }
    }

    /// The backend (tests drive its "kernel" side through this).
    pub fn io_mut(&mut self) -> &mut B {
        &mut self.io
    }

    /// The backend.
    pub fn io(&self) -> &B {
        &self.io
    }

    /// The pipeline (its counters).
    pub fn pipeline(&self) -> &Pipeline<H> {
        &self.pipeline
    }

    /// The pipeline, to change (e.g. its chain hook).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline<H> {
        &mut self.pipeline
    }

    /// One pass: reap completions, top up fill rings, receive a batch on
    /// every port, run the pipeline, transmit. Returns frames received.
    pub fn poll_once(&mut self) -> usize {
        // The chain hook and the ICMP error rate limit read the batch's time.
        let now_ns = monotonic_ns();
        self.poll_once_at(now_ns)
    }

    /// Stock every port's fill ring with its starting share, before the
    /// first loop. The runtime calls this before a socket goes in its XDP
    /// program's XSKMAP: a frame redirected to a socket whose fill ring is
    /// empty is dropped by the kernel (`fill_ring_empty`), and the first
    /// loop may come well after the socket is listed (the chain state is
    /// built in between, and a loaded machine may not run the thread at
    /// once). Priming twice does nothing more.
    pub fn prime(&mut self) {
        let ports = self.io.port_count();
        self.refill(ports);
    }

    /// [`Worker::poll_once`] with the chain hook's clock at `now_ns`.
    pub fn poll_once_at(&mut self, now_ns: u64) -> usize {
        let ports = self.io.port_count();
        self.reap_completions(ports);
        self.refill(ports);
        let reserve = self.reserve(ports);

        let mut received = 0;
        // A trace costs one relaxed load per loop while none is armed.
        let trace = self.trace.as_deref().and_then(TraceHub::armed);
        let trace_ns = if trace.is_some() { wall_clock_ns() } else { 0 };
        let worker = u16::try_from(self.options.index).unwrap_or(u16::MAX);
        if trace.is_some() || self.drop_tapped {
            // Frames answered with an ICMP error reach a drop trace from
            // inside the pipeline (see `DropTap`).
            let tap = trace
                .as_ref()
                .filter(|t| t.point() == TracePoint::Drop)
                .map(|session| DropTap {
                    session: Arc::clone(session),
                    worker,
                    timestamp_ns: trace_ns,
                });
            self.drop_tapped = tap.is_some();
            self.pipeline.set_drop_tap(tap);
        }
        let tables = Arc::clone(self.tables.load());
        let frame_size = self.io.frame_size();
        for port in 0..ports as PortId {
            let n = self.io.receive(port, &mut self.rx);
            if n == 0 {
                continue;
            }
            received += n;
            let p = usize::from(port);
            self.in_fill[p] -= n.min(self.in_fill[p]);
            // Demand: a port that took half its share in one loop, or a
            // whole batch (more may be waiting: with a batch of 64 the
            // half-share rule alone stops growing at 256), gets twice the
            // share (up to its ring).
            if n * 2 >= self.fill_target[p] || n == self.rx.len() {
                self.fill_target[p] = (self.fill_target[p] * 2).min(self.fill_cap(port));
            }
            // Frames go back where they were consumed, before the batch is
            // processed: a port that took a whole batch would otherwise
            // have an empty ring while the pipeline runs, and the kernel
            // drops what arrives then (`fill_ring_empty`).
            self.refill_port(p, reserve);
            if let Some(t) = trace.as_deref().filter(|t| t.point() == TracePoint::Rx) {
                t.offer_batch(worker, port, trace_ns, self.io.umem(), &self.rx[..n], None);
            }
            // Free frames for the mirror copies the chains may ask for; with
            // no mirror stage, none (and no further work below).
            let lent = if H::ENABLED {
                self.lend_mirror_frames(n)
            } else {
                0
            };
            let umem = self.io.umem();
            let mut mirrors = MirrorFrames::new(&mut self.mirror_frames[..lent], &self.staged);
            self.pipeline.process_batch_at(
                now_ns,
                &tables,
                port,
                umem,
                frame_size,
                &mut self.rx[..n],
                &mut self.verdicts[..n],
                Some(&mut mirrors),
            );
            let copies = mirrors.used();
            if lent > 0 {
                self.send_mirror_copies(copies, frame_size);
            }
            if let Some(t) = trace.as_deref().filter(|t| t.point() != TracePoint::Rx) {
                let verdicts = Some(&self.verdicts[..n]);
                t.offer_batch(
                    worker,
                    port,
                    trace_ns,
                    self.io.umem(),
                    &self.rx[..n],
                    verdicts,
                );
            }
            for (desc, verdict) in self.rx[..n].iter().zip(self.verdicts[..n].iter()) {
                match *verdict {
                    Verdict::Tx(out) => match self.staged.get_mut(usize::from(out)) {
                        Some(stage) if stage.len() < stage.capacity() => stage.push(*desc),
                        Some(_) => {
                            self.pipeline.counters.drop(DropReason::TxRingFull);
                            self.free.push(chunk_of(desc.addr, frame_size));
                        }
                        None => {
                            self.pipeline.counters.drop(DropReason::PortDown);
                            self.free.push(chunk_of(desc.addr, frame_size));
                        }
                    },
                    Verdict::Drop(_) => self.free.push(chunk_of(desc.addr, frame_size)),
                    Verdict::Pass => {
                        // AF_XDP cannot re-inject into the kernel stack; the
                        // XDP program passes what the kernel should see
                        // before it reaches a socket.
                        self.pipeline.counters.drop(DropReason::PassUnsupported);
                        self.free.push(chunk_of(desc.addr, frame_size));
                    }
                }
            }
        }
        self.flush_tx(ports);
        received
    }

    /// Lend the batch of `n` frames about to be processed as many free
    /// frames as its mirror copies may take (up to what the free list
    /// holds), into `mirror_frames`, the free list's last first (as it pops
    /// them). Returns how many.
    fn lend_mirror_frames(&mut self, n: usize) -> usize {
        let per_packet = self.pipeline.hook_mut().mirror_copies();
        if per_packet == 0 {
            return 0;
        }
        let lent = n.saturating_mul(per_packet).min(self.free.len());
        let from = self.free.len() - lent;
        self.mirror_frames.clear();
        self.mirror_frames
            .extend(self.free.drain(from..).rev().map(MirrorCopy::lent));
        lent
    }

    /// After the batch: the first `copies` lent frames hold mirror copies,
    /// which go on their ports' transmit batches ahead of the batch's own
    /// frames; the other lent frames go back to the free list, in the
    /// order they were taken from it.
    fn send_mirror_copies(&mut self, copies: usize, frame_size: u32) {
        let (made, unused) = self
            .mirror_frames
            .split_at(copies.min(self.mirror_frames.len()));
        for copy in made {
            match self.staged.get_mut(usize::from(copy.port)) {
                Some(batch) if batch.len() < batch.capacity() => batch.push(copy.desc),
                // Refused when the copy was asked for (the batches do not
                // change during the pipeline): cannot happen, but a frame
                // is never lost and a drop never uncounted.
                Some(_) => {
                    self.pipeline.counters.drop(DropReason::TxRingFull);
                    self.free.push(chunk_of(copy.desc.addr, frame_size));
                }
                None => {
                    self.pipeline.counters.drop(DropReason::PortDown);
                    self.free.push(chunk_of(copy.desc.addr, frame_size));
                }
            }
        }
        self.free.extend(
            unused
                .iter()
                .rev()
                .map(|copy| chunk_of(copy.desc.addr, frame_size)),
        );
        self.mirror_frames.clear();
    }

    fn reap_completions(&mut self, ports: usize) {
        let frame_size = self.io.frame_size();
        for port in 0..ports {
            // Only ports with frames on their tx rings can complete any:
            // an idle port costs one comparison per loop.
            if self.in_tx[port] == 0 {
                continue;
            }
            loop {
                let n = self.io.complete(port as PortId, &mut self.addrs);
                if n == 0 {
                    break;
                }
                self.in_tx[port] -= n.min(self.in_tx[port]);
                self.free
                    .extend(self.addrs[..n].iter().map(|a| chunk_of(*a, frame_size)));
                if n < self.addrs.len() {
                    break;
                }
            }
        }
    }

    /// Frames the free list keeps for ports below their base share: a base
    /// share per port, at most a quarter of the UMEM.
    fn reserve(&self, ports: usize) -> usize {
        (ports * FILL_BASE).min(self.io.frame_count() as usize / 4)
    }

    fn refill(&mut self, ports: usize) {
        // Frames beyond a port's base share come out of the free list only
        // above a reserve, so a busy port never takes what an idle port's
        // next burst needs; when the free list runs below the reserve the
        // grown shares fall back (the frames already in a ring stay there
        // until traffic uses them).
        let reserve = self.reserve(ports);
        if self.free.len() < reserve {
            for target in &mut self.fill_target {
                *target = (*target).min(FILL_BASE);
            }
        }
        for port in 0..ports {
            self.refill_port(port, reserve);
        }
    }

    /// Top `port`'s fill ring up to its share, from the free list above
    /// `reserve` once the port holds its base.
    fn refill_port(&mut self, port: usize, reserve: usize) {
        let want = self.fill_target[port].saturating_sub(self.in_fill[port]);
        if want == 0 {
            // A port holding its share (an idle one does) costs no ring read.
            return;
        }
        let spare = if self.in_fill[port] < FILL_BASE {
            self.free.len()
        } else {
            self.free.len().saturating_sub(reserve)
        };
        let want = want.min(spare).min(self.io.fill_capacity(port as PortId));
        if want == 0 {
            return;
        }
        let from = self.free.len() - want;
        let given = self.io.fill(port as PortId, &self.free[from..]);
        // fill() takes from the front of the slice: keep the rest.
        self.free.drain(from..from + given);
        self.in_fill[port] += given;
    }

    fn flush_tx(&mut self, ports: usize) {
        let frame_size = self.io.frame_size();
        for port in 0..ports {
            if self.staged[port].is_empty() {
                continue;
            }
            let stage = &self.staged[port];
            let mut sent = self.io.transmit(port as PortId, stage);
            // A full tx ring: let the kernel drain it (a copy-mode kick sends
            // up to 32 frames) a few times before dropping the rest.
            for _ in 0..TX_FULL_RETRIES {
                if sent == stage.len() {
                    break;
                }
                if self.io.kick(port as PortId).is_err() {
                    break;
                }
                sent += self.io.transmit(port as PortId, &stage[sent..]);
            }
            self.in_tx[port] += sent;
            let counters = &mut self.pipeline.counters;
            counters.tx_packets += sent as u64;
            counters.tx_bytes += stage[..sent].iter().map(|d| u64::from(d.len)).sum::<u64>();
            if sent < stage.len() {
                counters.drop_n(DropReason::TxRingFull, (stage.len() - sent) as u64);
                self.free
                    .extend(stage[sent..].iter().map(|d| chunk_of(d.addr, frame_size)));
            }
            self.staged[port].clear();
        }
        // Kick every port with frames on its tx ring, not only those that got
        // new ones: a copy-mode socket sends at most 32 frames per kick, and
        // a kick can fail transiently (EAGAIN, ENOBUFS), so frames may be
        // left on the ring; without traffic on that port they would wait
        // there for the next frame (a stalled TCP flow). `kick` makes no
        // syscall when the kernel has taken everything.
        for port in 0..ports {
            if self.in_tx[port] > 0 {
                let _ = self.io.kick(port as PortId);
            }
        }
    }

    /// Publish counters for readers.
    pub fn publish(&self) {
        self.shared.publish(&self.pipeline.counters);
    }

    /// Take commands from `commands` (checked every
    /// [`COMMAND_POLL_INTERVAL`] loop iterations and before sleeping).
    pub fn set_commands(&mut self, commands: mpsc::Receiver<WorkerCommand<B, H>>) {
        self.commands = Some(commands);
    }

    /// Offer frames to the trace armed on `hub` (`kxdp trace`): while none
    /// is, one relaxed atomic load per loop.
    pub fn set_trace(&mut self, hub: Arc<TraceHub>) {
        self.trace = Some(hub);
    }

    fn run_commands(&mut self) {
        let Some(commands) = self.commands.take() else {
            return;
        };
        while let Ok(command) = commands.try_recv() {
            command(self);
        }
        self.commands = Some(commands);
    }

    /// Account for `port`'s socket having been replaced: `fill` and `rx`
    /// are the chunks its old fill and rx rings gave back, `tx` and
    /// `completion` those of its tx and completion rings. They return to
    /// the free list (received frames are dropped as `port_down`); what the
    /// old socket held beyond them is counted as stranded.
    pub fn port_rebound(
        &mut self,
        port: PortId,
        fill: &[u64],
        rx: &[u64],
        tx: &[u64],
        completion: &[u64],
    ) {
        let p = usize::from(port);
        let frame_size = self.io.frame_size();
        let (Some(in_fill), Some(in_tx)) = (self.in_fill.get_mut(p), self.in_tx.get_mut(p)) else {
            return;
        };
        let from_fill = fill.len() + rx.len();
        let from_tx = tx.len() + completion.len();
        self.stranded += in_fill.saturating_sub(from_fill) as u64;
        self.stranded += in_tx.saturating_sub(from_tx) as u64;
        *in_fill = 0;
        *in_tx = 0;
        for addr in fill.iter().chain(rx).chain(tx).chain(completion) {
            self.free.push(chunk_of(*addr, frame_size));
        }
        let counters = &mut self.pipeline.counters;
        counters.drop_n(DropReason::PortDown, rx.len() as u64);
        counters.port_rebinds += 1;
        // The new socket's fill ring is stocked before it goes in the new
        // program's XSKMAP (as for a port added at run time).
        let reserve = self.reserve(self.io.port_count());
        self.refill_port(p, reserve);
        self.publish();
    }

    /// Port `port` was added to the backend at run time: it gets its
    /// bookkeeping and its fill ring share at once (an adaptive worker may
    /// go to sleep right after this command, and a frame reaching a socket
    /// with an empty fill ring is dropped by the kernel), and every port's
    /// share is set again for the new port count.
    pub fn port_added(&mut self, port: PortId) {
        let ports = self.io.port_count().max(usize::from(port) + 1);
        let batch = self.options.batch_size.max(1);
        if self.staged.len() < ports {
            self.staged
                .resize_with(ports, || Vec::with_capacity(stage_capacity(batch, ports)));
            self.in_fill.resize(ports, 0);
            self.in_tx.resize(ports, 0);
            self.fill_target.resize(ports, 0);
        }
        // A stage holds a batch from every port, up to MAX_STAGE.
        for stage in &mut self.staged {
            stage.reserve(stage_capacity(batch, ports).saturating_sub(stage.len()));
        }
        self.set_fill_targets();
        self.refill(ports);
    }

    /// Port `port` was removed from the backend at run time; `back` is
    /// what its socket's rings still held. Those frames are free again
    /// (received ones dropped as `port_down`), the rest of what the port
    /// held is counted as stranded, and frames staged for it are dropped
    /// as `port_down`.
    pub fn port_removed(
        &mut self,
        port: PortId,
        fill: &[u64],
        rx: &[u64],
        tx: &[u64],
        completion: &[u64],
    ) {
        let p = usize::from(port);
        let frame_size = self.io.frame_size();
        if let Some(stage) = self.staged.get_mut(p) {
            let n = stage.len() as u64;
            self.free
                .extend(stage.drain(..).map(|d| chunk_of(d.addr, frame_size)));
            self.pipeline.counters.drop_n(DropReason::PortDown, n);
        }
        let (Some(in_fill), Some(in_tx)) = (self.in_fill.get_mut(p), self.in_tx.get_mut(p)) else {
            return;
        };
        let from_fill = fill.len() + rx.len();
        let from_tx = tx.len() + completion.len();
        self.stranded += in_fill.saturating_sub(from_fill) as u64;
        self.stranded += in_tx.saturating_sub(from_tx) as u64;
        *in_fill = 0;
        *in_tx = 0;
        if let Some(target) = self.fill_target.get_mut(p) {
            *target = 0;
        }
        for addr in fill.iter().chain(rx).chain(tx).chain(completion) {
            self.free.push(chunk_of(*addr, frame_size));
        }
        self.pipeline
            .counters
            .drop_n(DropReason::PortDown, rx.len() as u64);
        self.set_fill_targets();
        self.publish();
    }

    /// Each live port's fill ring share after ports came or went. The
    /// ports the worker started with (the underlay carries every remote
    /// pod's traffic) keep their starting share; ports added at run time
    /// start at [`FILL_BASE`] and start again from there (a busy one grows
    /// back within a few loops by doubling): frames in a fill ring cannot
    /// be taken back, so a larger starting share for the first pods would
    /// be held by them, idle, while the last of 110 found the free list
    /// empty. A starting port's share that grew with demand keeps its size
    /// (the reserve in [`Worker::refill`] bounds what grown shares take).
    fn set_fill_targets(&mut self) {
        let live: Vec<usize> = (0..self.fill_target.len())
            .filter(|&p| self.io.fill_capacity(p as PortId) > 0 || self.in_fill[p] > 0)
            .collect();
        let at_start = initial_fill(self.io.frame_count() as usize, self.start_ports);
        for p in 0..self.fill_target.len() {
            self.fill_target[p] = if live.contains(&p) {
                let share = if p < self.start_ports {
                    at_start.max(self.fill_target[p])
                } else {
                    FILL_BASE
                };
                share.min(self.fill_cap(p as PortId))
            } else {
                0
            };
        }
    }

    /// The most frames `port`'s fill ring holds.
    fn fill_cap(&self, port: PortId) -> usize {
        let p = usize::from(port);
        self.io.fill_capacity(port) + self.in_fill.get(p).copied().unwrap_or(0)
    }

    /// Count one loop iteration's wall time (max gauge, slow loops).
    fn time_loop(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let counters = &mut self.pipeline.counters;
        counters.max_loop_ns = counters.max_loop_ns.max(ns);
        if took > SLOW_LOOP {
            counters.slow_loops += 1;
        }
    }

    /// Take the frame accounting and put it in the counters (gauges, and a
    /// failure count when it does not balance).
    pub fn check_accounting(&mut self) -> FrameAccounting {
        let acc = self.accounting();
        let counters = &mut self.pipeline.counters;
        counters.frames_total = acc.total;
        counters.frames_free = acc.free;
        counters.frames_in_fill = acc.in_fill;
        counters.frames_in_tx = acc.in_tx;
        counters.frames_stranded = acc.stranded;
        counters.accounting_checks += 1;
        if !acc.balanced() {
            counters.accounting_failures += 1;
            tracing::error!(worker = self.options.index, accounting = ?acc, "UMEM frame accounting does not balance");
        }
        acc
    }

    /// Where every frame is, by the worker's bookkeeping.
    pub fn accounting(&self) -> FrameAccounting {
        let frame_size = u64::from(self.io.frame_size());
        let mut sorted = self.free.clone();
        sorted.sort_unstable();
        let unique = sorted.windows(2).all(|w| w[0] != w[1]);
        let aligned = sorted.iter().all(|a| a % frame_size == 0);
        FrameAccounting {
            total: u64::from(self.io.frame_count()),
            free: self.free.len() as u64,
            in_fill: self.in_fill.iter().sum::<usize>() as u64,
            in_tx: self.in_tx.iter().sum::<usize>() as u64,
            stranded: self.stranded,
            free_list_consistent: unique && aligned,
        }
    }

    /// The free list (for accounting tests).
    pub fn free_frames(&self) -> &[u64] {
        &self.free
    }

    /// Run until `stop` is set.
    ///
    /// One clock read per loop: `now`, read after each poll, is the next
    /// poll's batch time and serves the loop-time counters, the idle
    /// accounting and the adaptive spin; it is read again after whatever
    /// can take long (a command, the accounting, a yield, a sleep). A
    /// clock read costs tens of nanoseconds on a VM (the vDSO's
    /// `clock_gettime`), and four per loop were a quarter of a spinning
    /// worker's time in a cpu-clock profile.
    pub fn run(&mut self, stop: &AtomicBool) {
        let mut since_publish = 0u32;
        let mut idle_polls = 0u32;
        let mut last_accounting: Option<u64> = None;
        let mut iterations = 0u32;
        self.prime();
        let mut now = monotonic_ns();
        let mut last_work = now;
        // Adaptive: when the last sleep ended, while the sockets are still
        // watched since (see `PacketIo::stop_watching`).
        let mut woke_at: Option<u64> = None;
        while !stop.load(Ordering::Relaxed) {
            let start = cycles::now();
            let began = now;
            let n = self.poll_once_at(began);
            now = monotonic_ns();
            self.time_loop(Duration::from_nanos(now.saturating_sub(began)));
            iterations = iterations.wrapping_add(1);
            if iterations.is_multiple_of(COMMAND_POLL_INTERVAL) {
                self.run_commands();
                now = monotonic_ns();
            }
            if n == 0
                && last_accounting.is_none_or(|t| {
                    Duration::from_nanos(now.saturating_sub(t)) >= ACCOUNTING_INTERVAL
                })
            {
                // Idle: check where every frame is (a clone and a sort of
                // the free list, tens of microseconds) and publish it.
                self.check_accounting();
                if H::ENABLED {
                    self.pipeline.hook_mut().on_idle(now);
                }
                now = monotonic_ns();
                last_accounting = Some(now);
            }
            if n > 0 {
                self.pipeline.counters.busy_loops += 1;
                self.pipeline.counters.busy_cycles += cycles::now().wrapping_sub(start);
                idle_polls = 0;
            } else {
                idle_polls = idle_polls.wrapping_add(1);
                if idle_polls.is_multiple_of(IDLE_POLLS_PER_YIELD) {
                    // Idle: let whatever else is runnable on this core run.
                    // The kernel defers softirq work (the veth and AF_XDP
                    // paths that feed this worker) to ksoftirqd on this core
                    // once it is busy; a spinner that never yields holds it
                    // off for a whole scheduler slice (milliseconds of tail
                    // latency). Costs one syscall per ~256 empty polls,
                    // never one while frames arrive.
                    std::thread::yield_now();
                    now = monotonic_ns();
                }
            }
            since_publish += 1;
            if n > 0 || since_publish >= 1024 {
                self.publish();
                since_publish = 0;
            }
            if self.options.poll_mode == PollMode::Busy {
                continue;
            }
            if n > 0 || self.in_tx.iter().any(|t| *t > 0) {
                last_work = now;
                if woke_at
                    .is_some_and(|t| Duration::from_nanos(now.saturating_sub(t)) >= UNWATCH_AFTER)
                {
                    // Awake with work for a while: while the sockets stay
                    // watched, the kernel runs a wake-up for every batch
                    // it hands this worker, on the core that received it.
                    // It fails only for a socket gone from the set
                    // already; one still watched costs time, not frames.
                    woke_at = None;
                    let _ = self.io.stop_watching();
                }
                continue;
            }
            if Duration::from_nanos(now.saturating_sub(last_work)) >= self.options.spin_time {
                self.run_commands();
                self.pipeline.counters.sleeps += 1;
                self.publish();
                // A failed poll() (EINTR on a signal) just ends the sleep early.
                let _ = self.io.wait(self.options.max_sleep);
                // Woken by frames or by a command (see `xsk::Waker`): a
                // command runs now, not 64 loops later.
                self.run_commands();
                now = monotonic_ns();
                last_work = now;
                woke_at = Some(now);
            }
        }
        if H::ENABLED {
            self.pipeline.hook_mut().on_idle(monotonic_ns());
        }
        self.publish();
    }
}

/// An adaptive worker awake with work this long after its last sleep
/// takes its sockets out of the sleep's epoll set until the next sleep (a
/// syscall per socket each way, at most once per this interval).
const UNWATCH_AFTER: Duration = Duration::from_millis(10);

/// Loop iterations between two looks at the command channel.
const COMMAND_POLL_INTERVAL: u32 = 64;

/// How often an idle worker checks its frame accounting, at most.
const ACCOUNTING_INTERVAL: Duration = Duration::from_secs(1);

/// A loop iteration longer than this is counted in `slow_loops`.
const SLOW_LOOP: Duration = Duration::from_millis(1);

/// Consecutive empty polls between two `sched_yield`s of a spinning worker.
const IDLE_POLLS_PER_YIELD: u32 = 256;

/// Kicks of a full tx ring before the frames that do not fit are dropped.
const TX_FULL_RETRIES: usize = 4;

/// Pin the calling thread to `core`, if given. Returns whether it worked.
pub fn pin_to_core(core: Option<usize>) -> bool {
    let Some(core) = core else { return false };
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::memory::MemoryIo;
    use crate::tables::{TableHandle, Tables};

    fn worker(frames: u32, ring: usize) -> Worker<MemoryIo> {
        let config = kxdp_config::NodeConfig::from_yaml_str(TEST_CONFIG).expect("test config");
        let tables = Tables::compile(&config, 1).expect("compiles");
        let handle = TableHandle::new(tables);
        let io = MemoryIo::new(3, 2048, frames, ring);
        Worker::new(
            io,
            handle.reader(),
            Arc::new(SharedCounters::default()),
            WorkerOptions {
                batch_size: 16,
                ..WorkerOptions::default()
            },
        )
    }

    pub(crate) const TEST_CONFIG: &str = include_str!("../tests/fixtures/node1.yaml");

    /// A chain hook that asks for a copy of every packet out of `port`
    /// and passes it.
    #[derive(Debug)]
    struct MirrorEverything {
        port: PortId,
    }

    impl ChainHook for MirrorEverything {
        fn begin_batch(&mut self, _in_port: PortId) -> bool {
            false
        }

        fn mirror_copies(&mut self) -> usize {
            1
        }

        fn process(
            &mut self,
            _now_ns: u64,
            packets: &mut [crate::chain_hook::ChainPacket],
            frames: &mut crate::chain_hook::ChainFrames<'_, '_>,
        ) {
            for (i, packet) in packets.iter_mut().enumerate() {
                frames.mirror(i, self.port);
                packet.verdict = crate::chain_hook::ChainVerdict::Pass;
            }
        }
    }

    /// The node of [`TEST_CONFIG`] (port 0 the underlay, 1 and 2 pods),
    /// every packet mirrored out of `tap`.
    fn mirror_worker(frames: u32, ring: usize, tap: PortId) -> Worker<MemoryIo, MirrorEverything> {
        let config = kxdp_config::NodeConfig::from_yaml_str(TEST_CONFIG).expect("test config");
        let tables = Tables::compile(&config, 1).expect("compiles");
        let handle = TableHandle::new(tables);
        let io = MemoryIo::new(3, 2048, frames, ring);
        Worker::with_hook(
            io,
            handle.reader(),
            Arc::new(SharedCounters::default()),
            WorkerOptions {
                batch_size: 16,
                ..WorkerOptions::default()
            },
            MirrorEverything { port: tap },
        )
    }

    /// UDP from pod-a (port 1) to pod-b (port 2), as pod-a sends it.
    fn pod_a_to_pod_b() -> Vec<u8> {
        udp_a_to_b([2, 0, 0, 1, 1, 0x0a], [2, 0, 0, 0, 1, 0x0a], 64)
    }

    /// The same frame as routed to pod-b: MACs rewritten, TTL one less.
    fn routed_to_pod_b() -> Vec<u8> {
        udp_a_to_b([2, 0, 0, 0, 1, 0x0b], [2, 0, 0, 1, 1, 0x0b], 63)
    }

    fn udp_a_to_b(src_mac: [u8; 6], dst_mac: [u8; 6], ttl: u8) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4([10, 244, 1, 2], [10, 244, 1, 3], ttl)
            .udp(40_000, 7_000);
        let mut out = Vec::new();
        builder.write(&mut out, b"mirror me").expect("builds");
        out
    }

    /// Every UMEM frame is in the worker's free list or held by the
    /// backend's rings, exactly once (nothing lent is kept, nothing lost).
    fn assert_every_frame_once<H: ChainHook>(w: &Worker<MemoryIo, H>) {
        let mut all: Vec<u64> = w.free_frames().to_vec();
        all.extend(w.io().frames_held());
        all.sort_unstable();
        let frames = u64::from(w.io().frame_count());
        let expected: Vec<u64> = (0..frames).map(|i| i * 2048).collect();
        assert_eq!(all, expected);
        assert!(w.accounting().balanced(), "{:?}", w.accounting());
    }

    #[test]
    fn a_drop_trace_sees_the_frames_answered_with_an_icmp_error() {
        use crate::trace::{TraceFilter, TraceSession};
        let mut w = worker(256, 64);
        let hub = Arc::new(TraceHub::new());
        w.set_trace(Arc::clone(&hub));
        let session = TraceSession::new(TracePoint::Drop, TraceFilter::default(), 8);
        hub.arm(Arc::clone(&session)).expect("arms");
        w.poll_once();
        // TTL 1 from pod-a to pod-b: dropped, answered with time exceeded.
        let expiring = udp_a_to_b([2, 0, 0, 1, 1, 0x0a], [2, 0, 0, 0, 1, 0x0a], 1);
        assert!(w.io_mut().inject(1, &expiring));
        w.poll_once();
        let back = w.io_mut().drain_tx(1);
        assert_eq!(back.len(), 1, "the error goes back to pod-a");
        assert_eq!((back[0][23], back[0][34]), (1, 11), "ICMP time exceeded");
        let record = session.take().expect("the dropped frame is traced");
        assert_eq!(record.reason, Some(DropReason::TtlExpired));
        assert_eq!(record.port, 1);
        assert_eq!(&record.data[..record.len as usize], &expiring[..]);
        assert!(session.take().is_none(), "traced once");
        // Disarmed: the pipeline lets the session go.
        hub.disarm(&session);
        assert!(w.io_mut().inject(1, &expiring));
        w.poll_once();
        assert_eq!(Arc::strong_count(&session), 1, "the pipeline let it go");
    }

    #[test]
    fn all_frames_start_free() {
        let w = worker(256, 64);
        let acc = w.accounting();
        assert_eq!(acc.total, 256);
        assert!(acc.balanced(), "{acc:?}");
    }

    #[test]
    fn a_rebound_port_returns_what_came_back_and_counts_the_rest_stranded() {
        let mut w = worker(256, 64);
        w.poll_once();
        let in_fill = w.in_fill[1] as u64;
        assert!(in_fill > 3);
        // The old socket gave back two fill entries and one received frame
        // (chunks taken from the free list here to stand for them).
        let back: Vec<u64> = (0..3).map(|_| w.free.pop().expect("free frames")).collect();
        let acc = w.accounting();
        assert_eq!(acc.free + acc.in_fill + 3, acc.total);
        w.in_fill[1] += 3;
        w.port_rebound(1, &back[..2], &back[2..], &[], &[]);
        let acc = w.check_accounting();
        assert!(acc.balanced(), "{acc:?}");
        assert_eq!(acc.stranded, in_fill);
        let c = &w.pipeline().counters;
        assert_eq!(c.port_rebinds, 1);
        assert_eq!(c.frames_stranded, in_fill);
        assert_eq!(c.drops_for(DropReason::PortDown), 1);
    }

    #[test]
    fn a_primed_worker_takes_frames_before_its_first_loop() {
        let mut w = worker(256, 64);
        // Unprimed, the "kernel" has no chunk to receive into.
        assert!(!w.io_mut().inject(0, &[0u8; 60]));
        assert_eq!(w.io().port_stats(0).rx_fill_empty, 1);
        w.prime();
        for port in 0..3 {
            assert!(w.io_mut().inject(port, &[0u8; 60]), "port {port}");
        }
        assert_eq!(w.poll_once(), 3);
        assert_every_frame_once(&w);
        // Priming again takes nothing more than the shares.
        let in_fill = w.in_fill.clone();
        w.prime();
        assert_eq!(w.in_fill, in_fill);
        assert_every_frame_once(&w);
    }

    #[test]
    fn a_socket_bound_again_has_frames_before_the_next_loop() {
        let mut w = worker(256, 64);
        w.poll_once();
        assert!(w.io_mut().inject(1, &[0u8; 60]));
        let [fill, rx, tx, completion] = w.io_mut().reopen(1);
        assert_eq!(rx.len(), 1);
        assert!(!w.io_mut().inject(1, &[0u8; 60]));
        w.port_rebound(1, &fill, &rx, &tx, &completion);
        // The new socket's ring is stocked before it is listed in the new
        // program's XSKMAP, not at the worker's next loop.
        assert!(w.io_mut().inject(1, &[0u8; 60]));
        assert_eq!(w.poll_once(), 1);
        assert_every_frame_once(&w);
        assert_eq!(w.pipeline().counters.drops_for(DropReason::PortDown), 1);
    }

    #[test]
    fn ports_added_at_run_time_leave_the_starting_ports_their_share() {
        // A UMEM sized as kxdp sizes it: twice the base over the ports.
        let frames = 2 * FILL_BASE * 32;
        let mut w = worker(frames as u32, 1024);
        w.poll_once();
        // Three ports at start: a quarter of the frames over three.
        let at_start = frames / (4 * 3);
        assert_eq!(&w.in_fill[..3], &[at_start; 3]);
        for _ in 0..20 {
            let port = w.io_mut().add_port();
            w.port_added(port);
            // Its fill ring is stocked before the worker loops again (an
            // adaptive worker may sleep right after the command).
            assert!(
                w.io().fill_capacity(port) < 1024,
                "port {port} has no frames"
            );
            assert!(
                w.io_mut().inject(port, &[0u8; 60]),
                "port {port}: a frame at once"
            );
        }
        // One loop takes the 20 frames, the next tops the rings up again.
        w.poll_once();
        w.poll_once();
        // The underlay and the file's pods keep theirs; the 20 new ports
        // have the base each, the first as much as the last (frames in a
        // fill ring cannot be taken back from an idle port).
        assert_eq!(&w.in_fill[..3], &[at_start; 3]);
        assert_eq!(&w.fill_target[..3], &[at_start; 3]);
        assert_eq!(&w.fill_target[3..], &[FILL_BASE; 20]);
        assert_eq!(&w.in_fill[3..], &[FILL_BASE; 20]);
        let acc = w.check_accounting();
        assert!(acc.balanced(), "{acc:?}");
        assert_eq!(acc.free as usize, frames - w.in_fill.iter().sum::<usize>());
        assert_eq!(w.pipeline().counters.rx_packets, 20);
    }

    #[test]
    fn frames_go_back_to_the_port_that_consumed_them_within_the_loop() {
        let mut w = worker(4096, 1024);
        w.poll_once();
        let port = w.io_mut().add_port();
        w.port_added(port);
        let p = usize::from(port);
        assert_eq!(w.in_fill[p], FILL_BASE);
        // A whole batch (16 here) arrives; the loop that takes it refills the
        // ring before the pipeline runs, not a loop later.
        for _ in 0..16 {
            assert!(w.io_mut().inject(port, &[0u8; 60]));
        }
        assert_eq!(w.poll_once(), 16);
        // A whole batch: demand may be more than a loop takes, the share
        // doubles, and the ring holds it before the pipeline runs.
        assert_eq!(w.fill_target[p], 2 * FILL_BASE);
        assert_eq!(w.in_fill[p], 2 * FILL_BASE);
        assert_eq!(w.io().fill_capacity(port), 1024 - 2 * FILL_BASE);
        assert!(w.check_accounting().balanced());
        // Full batches loop after loop: the share grows to the ring.
        for _ in 0..8 {
            for _ in 0..16 {
                assert!(w.io_mut().inject(port, &[0u8; 60]));
            }
            w.poll_once();
        }
        assert_eq!(w.fill_target[p], 1024);
        assert!(w.check_accounting().balanced());
    }

    #[test]
    fn mirror_copies_without_a_free_frame_are_counted_and_leak_nothing() {
        let mut w = mirror_worker(256, 64, 0);
        w.poll_once();
        // Every free frame is elsewhere (standing for frames in flight):
        // none to lend for copies.
        let held: Vec<u64> = w.free.drain(..).collect();
        let frame = pod_a_to_pod_b();
        for _ in 0..5 {
            assert!(w.io_mut().inject(1, &frame));
        }
        assert_eq!(w.poll_once(), 5);
        let c = &w.pipeline().counters;
        assert_eq!(c.drops_for(DropReason::MirrorNoFrame), 5);
        assert_eq!(w.io_mut().drain_tx(0).len(), 0, "no copy");
        assert_eq!(w.io_mut().drain_tx(2).len(), 5, "the originals go on");
        w.free.extend(held);
        w.poll_once();
        assert_every_frame_once(&w);

        // With free frames again the copies are made, and the frames they
        // took come back once sent.
        for _ in 0..3 {
            assert!(w.io_mut().inject(1, &frame));
        }
        w.poll_once();
        assert_eq!(w.io_mut().drain_tx(0), vec![frame.clone(); 3]);
        assert_eq!(w.io_mut().drain_tx(2).len(), 3);
        w.poll_once();
        assert_eq!(
            w.pipeline().counters.drops_for(DropReason::MirrorNoFrame),
            5
        );
        assert_every_frame_once(&w);
    }

    #[test]
    fn a_mirror_copy_to_a_full_transmit_batch_is_counted_and_its_frame_comes_back() {
        let mut w = mirror_worker(256, 64, 0);
        w.poll_once();
        // The tap's transmit batch is full (frames staged earlier in the
        // loop, taken from the free list).
        let room = w.staged[0].capacity();
        assert!(w.free.len() > room, "{} free", w.free.len());
        for _ in 0..room {
            let chunk = w.free.pop().expect("a free frame");
            w.staged[0].push(Desc {
                addr: chunk + 256,
                len: 60,
            });
        }
        let frame = pod_a_to_pod_b();
        assert!(w.io_mut().inject(1, &frame));
        let free_before = w.free.len();
        w.poll_once();
        let c = &w.pipeline().counters;
        assert_eq!(c.drops_for(DropReason::TxRingFull), 1);
        assert_eq!(c.drops_for(DropReason::MirrorNoFrame), 0);
        assert_eq!(
            w.io_mut().drain_tx(0).len(),
            room,
            "the staged frames, no copy"
        );
        assert_eq!(w.io_mut().drain_tx(2), vec![routed_to_pod_b()]);
        // The frame lent for the copy is back (the port's ring took one
        // to replace the received frame).
        assert_eq!(w.free.len(), free_before - 1);
        w.poll_once();
        assert_every_frame_once(&w);
    }

    #[test]
    fn mirror_copies_go_out_ahead_of_the_batch_as_the_chain_saw_them() {
        // The copies go out of the port the originals are routed to: first
        // the copy (as it was at the chain: before routing rewrote MACs and
        // TTL), then the original.
        let mut w = mirror_worker(256, 64, 2);
        w.poll_once();
        let frame = pod_a_to_pod_b();
        assert!(w.io_mut().inject(1, &frame));
        w.poll_once();
        assert_eq!(
            w.io_mut().drain_tx(2),
            vec![frame.clone(), routed_to_pod_b()]
        );
        w.poll_once();
        assert_every_frame_once(&w);
    }

    #[test]
    fn accounting_is_published_as_gauges_and_a_leak_is_counted() {
        let mut w = worker(256, 64);
        w.poll_once();
        let acc = w.check_accounting();
        let c = &w.pipeline().counters;
        assert_eq!(
            (
                c.frames_total,
                c.frames_free,
                c.frames_in_fill,
                c.frames_in_tx
            ),
            (256, acc.free, acc.in_fill, 0)
        );
        assert!(acc.in_fill > 0, "{acc:?}");
        assert_eq!((c.accounting_checks, c.accounting_failures), (1, 0));
        // A frame that vanishes from the free list is a failure.
        w.free.pop();
        assert!(!w.check_accounting().balanced());
        assert_eq!(w.pipeline().counters.accounting_failures, 1);
    }
}
