//! The service-chain step of the pipeline: a [`ChainHook`] sees every
//! routable IP frame of a batch after parsing, ARP/ND and the source checks
//! and before routing, and decides its fate ([`ChainVerdict`]).
//!
//! This crate knows nothing about chains: the network functions live above
//! it (`kxdp-vnf-chains` implements the hook), so the dependency points
//! down. The default, [`NoChains`], is a hook that is compiled out
//! ([`ChainHook::ENABLED`] is false): a pipeline or worker without chains
//! runs exactly the code it ran before the hook existed.
//!
//! What the pipeline does around the hook:
//!
//! - It calls [`ChainHook::begin_batch`] once per received batch with the
//!   ingress port. When the hook says the port is a VNF's return interface,
//!   IP frames from it skip the pod checks (source MAC and IP, the gateway
//!   MAC): they carry the original sender's addresses. The hook resumes
//!   them in their chain and sets their tenant.
//! - It gives the hook up to [`CHAIN_BATCH`] [`ChainPacket`]s at a time,
//!   with the frame bytes in a [`ChainFrames`] (indexed like the packets).
//! - [`ChainVerdict::NoChain`] and [`ChainVerdict::Pass`]: routed as
//!   without chains, by the packet's `meta` and `tenant` as the hook left
//!   them (a load balancer may have rewritten the destination).
//!   [`ChainVerdict::Drop`]: counted under its reason.
//!   [`ChainVerdict::Redirect`]: sent out of that port (into a VNF) with
//!   its MACs set for the port's pod and no TTL decrement.
//!
//! Mirror copies are asked for by the chain and carried out by the worker.
//! Before the pipeline runs on a batch, and only when
//! [`ChainHook::mirror_copies`] says the chains can ask for any, the worker
//! takes free UMEM frames from its own free list and lends them to the
//! batch ([`MirrorFrames`]): as many as the batch's packets may ask for, or
//! as its free list holds. A mirror stage's [`ChainFrames::mirror`] copies
//! the frame as it is at that stage (a later stage may rewrite it) into the
//! next lent frame and records the request (port, descriptor). After the
//! pipeline the worker puts the copies on their ports' transmit batches and
//! takes the unused frames back: neither the chain nor the pipeline touches
//! the worker's free list or transmit batches. A copy that cannot be made
//! is refused when asked for (the chain counts it as failed) and the
//! pipeline counts it as a drop: [`DropReason::MirrorNoFrame`] when no lent frame is left
//! (the free list ran out), `tx_ring_full` or `port_down` for its port; the
//! original goes on untouched. A chain set with no mirror stage costs the
//! worker one test per batch.
//!
//! No allocation, lock or syscall here: the scratch space is allocated when
//! the pipeline is made.

use std::sync::OnceLock;
use std::time::Instant;

use crate::io::{Desc, MIN_HEADROOM};
use crate::packet::FrameMeta;
use crate::tables::TenantId;
use crate::verdict::{DropReason, PortId};

/// The most packets the pipeline hands to [`ChainHook::process`] at once
/// (a larger receive batch is cut into pieces of this size).
pub const CHAIN_BATCH: usize = 64;

/// What the chain decided for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChainVerdict {
    /// No chain applies: route as usual.
    #[default]
    NoChain,
    /// The chain passed it: route by its (possibly rewritten) `meta`, in
    /// its `tenant`.
    Pass,
    /// Drop it, counted under this reason.
    Drop(DropReason),
    /// Send it out of this port (into an external VNF) as it is: MACs set
    /// for the port's pod, no TTL decrement.
    Redirect(PortId),
}

/// One routable IP frame of a batch, as the chain sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPacket {
    /// The parsed frame; the hook updates it when it rewrites addresses.
    pub meta: FrameMeta,
    /// The port the frame arrived on.
    pub in_port: PortId,
    /// The tenant it is routed in (the pod's, the VNI's; the hook sets the
    /// chain's for frames coming back from a VNF).
    pub tenant: TenantId,
    /// The frame's length in bytes.
    pub len: u32,
    /// The hook's decision (`NoChain` until it decides).
    pub verdict: ChainVerdict,
}

/// The chain step of a pipeline. See the module documentation.
pub trait ChainHook {
    /// False only for [`NoChains`]: the pipeline then never calls the hook
    /// (the test is on a constant, so the chain code is compiled out).
    const ENABLED: bool = true;

    /// A batch from `in_port` begins (load the current chain snapshot
    /// here). Returns whether `in_port` is a VNF's return interface, whose
    /// IP frames skip the pod source checks and are resumed by the hook.
    fn begin_batch(&mut self, in_port: PortId) -> bool;

    /// The most mirror copies one packet of the next batch can ask for (the
    /// most mirror stages in one chain; 0: none). The worker lends a batch
    /// of `n` packets up to `n` times as many free frames. Called before
    /// [`ChainHook::begin_batch`] for every batch.
    fn mirror_copies(&mut self) -> usize;

    /// Decide every packet's [`ChainPacket::verdict`] at `now_ns` (one
    /// monotonic clock for all workers, see [`monotonic_ns`]). `frames`
    /// holds packet `i`'s bytes at index `i`. Must not allocate.
    fn process(
        &mut self,
        now_ns: u64,
        packets: &mut [ChainPacket],
        frames: &mut ChainFrames<'_, '_>,
    );

    /// The worker is idle (called at most about once a second): publish
    /// statistics, follow a new snapshot. May allocate.
    fn on_idle(&mut self, now_ns: u64) {
        let _ = now_ns;
    }
}

/// The hook of a dataplane without service chains: costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoChains;

impl ChainHook for NoChains {
    const ENABLED: bool = false;

    #[inline]
    fn begin_batch(&mut self, _in_port: PortId) -> bool {
        false
    }

    #[inline]
    fn mirror_copies(&mut self) -> usize {
        0
    }

    #[inline]
    fn process(
        &mut self,
        _now_ns: u64,
        _packets: &mut [ChainPacket],
        _frames: &mut ChainFrames<'_, '_>,
    ) {
    }
}

/// Nanoseconds on the monotonic clock that every worker of the process
/// shares (chains compare timestamps across workers, e.g. VNF liveness).
pub fn monotonic_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    // Never 0, so a fresh timestamp differs from "never".
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Where a frame of a chain batch sits in the UMEM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameSpan {
    /// Offset of the frame's chunk in the UMEM.
    pub chunk: u64,
    /// Offset of the frame's first byte in its chunk.
    pub offset: usize,
    /// The frame's length.
    pub len: usize,
}

/// One UMEM frame the worker lends a batch for a mirror copy and, once a
/// chain has copied a frame into it, the copy to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorCopy {
    /// The port the copy goes out of (meaningless while the frame is unused).
    pub port: PortId,
    /// Unused: the lent chunk's start, length 0. Used: the copy.
    pub desc: Desc,
}

impl MirrorCopy {
    /// The free chunk starting at `chunk`, lent unused.
    #[inline]
    pub fn lent(chunk: u64) -> Self {
        MirrorCopy {
            port: 0,
            desc: Desc {
                addr: chunk,
                len: 0,
            },
        }
    }
}

/// The free UMEM frames the worker lends a batch for mirror copies, and the
/// copies the chains asked for in them.
///
/// The worker takes the frames from its free list before the pipeline runs
/// (as many as the batch's packets may ask for, see
/// [`ChainHook::mirror_copies`], and its free list holds); a mirror stage's
/// copy goes into the next unused one ([`ChainFrames::mirror`]). After the
/// pipeline the worker puts the copies ([`MirrorFrames::requests`]) on their
/// ports' transmit batches, ahead of the batch's own frames, and takes the
/// unused frames back. The transmit batches are only read here, for their
/// room: a copy that would not fit is refused when it is asked for, so the
/// chain counts it as failed.
#[derive(Debug)]
pub struct MirrorFrames<'a> {
    lent: &'a mut [MirrorCopy],
    used: usize,
    tx_batches: &'a [Vec<Desc>],
}

/// Why a mirror copy was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MirrorFailure {
    NoFrame,
    TxFull,
    PortDown,
}

impl<'a> MirrorFrames<'a> {
    /// The frames `lent` for copies (each [`MirrorCopy::lent`]), to be sent
    /// on the per-port `tx_batches` (a batch never grows past its capacity).
    pub fn new(lent: &'a mut [MirrorCopy], tx_batches: &'a [Vec<Desc>]) -> Self {
        MirrorFrames {
            lent,
            used: 0,
            tx_batches,
        }
    }

    /// The copies made, in the order they were asked for: the first lent
    /// frames; the rest are unused.
    #[inline]
    pub fn requests(&self) -> &[MirrorCopy] {
        &self.lent[..self.used]
    }

    /// How many lent frames hold copies.
    #[inline]
    pub fn used(&self) -> usize {
        self.used
    }

    /// The chunk for the next copy out of `port`, or why there is none.
    #[inline]
    fn next_frame(&self, port: PortId) -> Result<u64, MirrorFailure> {
        let batch = self
            .tx_batches
            .get(usize::from(port))
            .ok_or(MirrorFailure::PortDown)?;
        let room = batch.capacity().saturating_sub(batch.len());
        // Copies asked for already take room on their port too; they are
        // counted only when they could fill it (at most `used` of them).
        if room <= self.used && self.requests().iter().filter(|c| c.port == port).count() >= room {
            return Err(MirrorFailure::TxFull);
        }
        let copy = self.lent.get(self.used).ok_or(MirrorFailure::NoFrame)?;
        Ok(copy.desc.addr)
    }

    /// The next lent frame now holds `desc`, a copy for `port`.
    #[inline]
    fn record(&mut self, port: PortId, desc: Desc) {
        if let Some(copy) = self.lent.get_mut(self.used) {
            *copy = MirrorCopy { port, desc };
            self.used += 1;
        }
    }
}

/// Copies that [`ChainFrames::mirror`] could not make, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorFailures {
    /// No free UMEM frame lent for it (or no mirror frames at all).
    pub no_frame: u64,
    /// The port's transmit batch was full.
    pub tx_full: u64,
    /// No such port.
    pub port_down: u64,
}

impl MirrorFailures {
    #[inline]
    fn count(&mut self, failure: MirrorFailure) {
        match failure {
            MirrorFailure::NoFrame => self.no_frame += 1,
            MirrorFailure::TxFull => self.tx_full += 1,
            MirrorFailure::PortDown => self.port_down += 1,
        }
    }
}

/// A chain batch's frame bytes: packet `i` is `spans[i]` in `umem`; mirror
/// copies go into frames lent by the worker ([`MirrorFrames`], borrowed for
/// the whole receive batch: `'m`).
#[derive(Debug)]
pub struct ChainFrames<'a, 'm> {
    umem: &'a mut [u8],
    frame_size: u32,
    spans: &'a [FrameSpan],
    mirrors: Option<&'a mut MirrorFrames<'m>>,
    failures: MirrorFailures,
}

impl<'a, 'm> ChainFrames<'a, 'm> {
    /// The frames at `spans` in `umem` (chunks of `frame_size` bytes);
    /// mirror copies go into `mirrors` (none are made without).
    pub fn new(
        umem: &'a mut [u8],
        frame_size: u32,
        spans: &'a [FrameSpan],
        mirrors: Option<&'a mut MirrorFrames<'m>>,
    ) -> Self {
        ChainFrames {
            umem,
            frame_size,
            spans,
            mirrors,
            failures: MirrorFailures::default(),
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    #[inline]
    fn range(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let span = self.spans.get(index)?;
        let start = usize::try_from(span.chunk).ok()?.checked_add(span.offset)?;
        let end = start.checked_add(span.len)?;
        (end <= self.umem.len() && span.offset + span.len <= self.frame_size as usize)
            .then_some(start..end)
    }

    /// Frame `index`'s bytes (from its Ethernet header), writable.
    #[inline]
    pub fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        let range = self.range(index)?;
        self.umem.get_mut(range)
    }

    /// Frame `index`'s bytes.
    #[inline]
    pub fn frame(&self, index: usize) -> Option<&[u8]> {
        let range = self.range(index)?;
        self.umem.get(range)
    }

    /// Ask for a copy of frame `index`, as it is now, to go out of `port`:
    /// the copy is made at once, into the next frame the worker lent, and
    /// the worker sends it after the batch. False (and counted in
    /// [`ChainFrames::mirror_failures`]) when no copy was made: no such
    /// port, its transmit batch full, no lent frame left.
    pub fn mirror(&mut self, index: usize, port: PortId) -> bool {
        let Some(range) = self.range(index) else {
            self.failures.no_frame += 1;
            return false;
        };
        let Some(mirrors) = self.mirrors.as_deref_mut() else {
            self.failures.no_frame += 1;
            return false;
        };
        let chunk = match mirrors.next_frame(port) {
            Ok(chunk) => chunk,
            Err(failure) => {
                self.failures.count(failure);
                return false;
            }
        };
        let len = range.len();
        let fits = len + MIN_HEADROOM <= self.frame_size as usize;
        let Some(to) = usize::try_from(chunk)
            .ok()
            .map(|c| c + MIN_HEADROOM)
            .filter(|to| fits && to + len <= self.umem.len())
        else {
            self.failures.no_frame += 1;
            return false;
        };
        self.umem.copy_within(range, to);
        mirrors.record(
            port,
            Desc {
                addr: chunk + MIN_HEADROOM as u64,
                len: len as u32,
            },
        );
        true
    }

    /// The copies that could not be made so far.
    pub fn mirror_failures(&self) -> MirrorFailures {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_copy_takes_a_lent_frame_and_leaves_the_original() {
        let frame_size = 2048u32;
        let mut umem = vec![0u8; 4 * frame_size as usize];
        let original: Vec<u8> = (0..60u8).collect();
        umem[256..316].copy_from_slice(&original);
        let spans = [FrameSpan {
            chunk: 0,
            offset: 256,
            len: 60,
        }];
        let mut lent = [MirrorCopy::lent(3 * u64::from(frame_size))];
        let staged = vec![Vec::with_capacity(1), Vec::with_capacity(4)];
        let mut mirrors = MirrorFrames::new(&mut lent, &staged);
        {
            let mut frames = ChainFrames::new(&mut umem, frame_size, &spans, Some(&mut mirrors));
            assert!(frames.mirror(0, 1));
            // No frame left: the second copy fails, counted.
            assert!(!frames.mirror(0, 1));
            assert!(!frames.mirror(0, 7), "no such port");
            assert_eq!(
                frames.mirror_failures(),
                MirrorFailures {
                    no_frame: 1,
                    tx_full: 0,
                    port_down: 1
                }
            );
            assert_eq!(frames.frame(0), Some(&original[..]));
        }
        assert_eq!(mirrors.used(), 1, "the lent frame is used");
        let copy = mirrors.requests()[0];
        assert_eq!(copy.port, 1);
        let desc = copy.desc;
        assert_eq!(desc.addr, 3 * 2048 + 256);
        assert_eq!(desc.len, 60);
        assert!(staged.iter().all(Vec::is_empty), "the worker sends it");
        let at = desc.addr as usize;
        assert_eq!(&umem[at..at + 60], &original[..]);
        assert_eq!(&umem[256..316], &original[..], "original untouched");
    }

    #[test]
    fn a_full_transmit_batch_refuses_the_copy_and_keeps_the_frame_unused() {
        let mut umem = vec![0u8; 2 * 2048];
        let spans = [FrameSpan {
            chunk: 0,
            offset: 256,
            len: 60,
        }];
        let mut lent = [MirrorCopy::lent(2048)];
        let staged: Vec<Vec<Desc>> = vec![Vec::new()];
        let mut mirrors = MirrorFrames::new(&mut lent, &staged);
        {
            let mut frames = ChainFrames::new(&mut umem, 2048, &spans, Some(&mut mirrors));
            assert!(!frames.mirror(0, 0));
            assert_eq!(frames.mirror_failures().tx_full, 1);
        }
        assert_eq!(mirrors.used(), 0);
        assert_eq!(lent, [MirrorCopy::lent(2048)]);
    }

    #[test]
    fn copies_asked_for_in_the_batch_take_their_port_s_room() {
        let mut umem = vec![0u8; 4 * 2048];
        let spans = [FrameSpan {
            chunk: 0,
            offset: 256,
            len: 60,
        }];
        let mut lent = [
            MirrorCopy::lent(3 * 2048),
            MirrorCopy::lent(2 * 2048),
            MirrorCopy::lent(2048),
        ];
        // Port 0 has room for one more frame, port 1 for plenty.
        let mut full_but_one = Vec::with_capacity(2);
        full_but_one.push(Desc::default());
        let staged = vec![full_but_one, Vec::with_capacity(8)];
        let mut mirrors = MirrorFrames::new(&mut lent, &staged);
        {
            let mut frames = ChainFrames::new(&mut umem, 2048, &spans, Some(&mut mirrors));
            assert!(frames.mirror(0, 0));
            assert!(!frames.mirror(0, 0), "the first copy took the last room");
            assert!(frames.mirror(0, 1));
            assert_eq!(
                frames.mirror_failures(),
                MirrorFailures {
                    no_frame: 0,
                    tx_full: 1,
                    port_down: 0
                }
            );
        }
        let ports: Vec<PortId> = mirrors.requests().iter().map(|c| c.port).collect();
        assert_eq!(ports, [0, 1]);
        assert_eq!(mirrors.requests()[1].desc.addr, 2 * 2048 + 256);
    }

    #[test]
    fn the_clock_moves_forward_and_is_never_zero() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
