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
//! - Mirror copies ([`ChainFrames::mirror`]) take a free UMEM frame from
//!   the worker's free list and go on the port's transmit batch; with no
//!   free frame the copy is counted as [`DropReason::MirrorNoFrame`] and
//!   the original goes on untouched.
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

    /// Decide every packet's [`ChainPacket::verdict`] at `now_ns` (one
    /// monotonic clock for all workers, see [`monotonic_ns`]). `frames`
    /// holds packet `i`'s bytes at index `i`. Must not allocate.
    fn process(&mut self, now_ns: u64, packets: &mut [ChainPacket], frames: &mut ChainFrames<'_>);

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
    fn process(
        &mut self,
        _now_ns: u64,
        _packets: &mut [ChainPacket],
        _frames: &mut ChainFrames<'_>,
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

/// Where mirror copies come from and go: the worker's free list and its
/// per-port transmit batches (a batch never grows past its capacity).
#[derive(Debug)]
pub struct MirrorSink<'a> {
    /// Free UMEM chunks (chunk-start offsets).
    pub free: &'a mut Vec<u64>,
    /// Per port, the frames to transmit at the end of the loop.
    pub staged: &'a mut [Vec<Desc>],
}

impl MirrorSink<'_> {
    /// A shorter-lived sink over the same lists.
    pub fn reborrow(&mut self) -> MirrorSink<'_> {
        MirrorSink {
            free: self.free,
            staged: self.staged,
        }
    }
}

/// Copies that [`ChainFrames::mirror`] could not make, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorFailures {
    /// No free UMEM frame (or no mirror sink at all).
    pub no_frame: u64,
    /// The port's transmit batch was full.
    pub tx_full: u64,
    /// No such port.
    pub port_down: u64,
}

/// A chain batch's frame bytes: packet `i` is `spans[i]` in `umem`.
#[derive(Debug)]
pub struct ChainFrames<'a> {
    umem: &'a mut [u8],
    frame_size: u32,
    spans: &'a [FrameSpan],
    sink: Option<MirrorSink<'a>>,
    failures: MirrorFailures,
}

impl<'a> ChainFrames<'a> {
    /// The frames at `spans` in `umem` (chunks of `frame_size` bytes);
    /// mirror copies go to `sink` (none are made without one).
    pub fn new(
        umem: &'a mut [u8],
        frame_size: u32,
        spans: &'a [FrameSpan],
        sink: Option<MirrorSink<'a>>,
    ) -> Self {
        ChainFrames {
            umem,
            frame_size,
            spans,
            sink,
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

    /// Queue a copy of frame `index`, as it is now, for transmission out of
    /// `port`, in a free UMEM frame. False (and counted in
    /// [`ChainFrames::mirror_failures`]) when no copy was made: no free
    /// frame, the port's transmit batch full, no such port.
    pub fn mirror(&mut self, index: usize, port: PortId) -> bool {
        let Some(range) = self.range(index) else {
            self.failures.no_frame += 1;
            return false;
        };
        let Some(sink) = self.sink.as_mut() else {
            self.failures.no_frame += 1;
            return false;
        };
        let Some(stage) = sink.staged.get_mut(usize::from(port)) else {
            self.failures.port_down += 1;
            return false;
        };
        if stage.len() >= stage.capacity() {
            self.failures.tx_full += 1;
            return false;
        }
        let Some(chunk) = sink.free.pop() else {
            self.failures.no_frame += 1;
            return false;
        };
        let len = range.len();
        let fits = len + MIN_HEADROOM <= self.frame_size as usize;
        let Some(to) = usize::try_from(chunk)
            .ok()
            .map(|c| c + MIN_HEADROOM)
            .filter(|to| fits && to + len <= self.umem.len())
        else {
            sink.free.push(chunk);
            self.failures.no_frame += 1;
            return false;
        };
        self.umem.copy_within(range, to);
        stage.push(Desc {
            addr: chunk + MIN_HEADROOM as u64,
            len: len as u32,
        });
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
    fn a_mirror_copy_takes_a_free_frame_and_leaves_the_original() {
        let frame_size = 2048u32;
        let mut umem = vec![0u8; 4 * frame_size as usize];
        let original: Vec<u8> = (0..60u8).collect();
        umem[256..316].copy_from_slice(&original);
        let spans = [FrameSpan {
            chunk: 0,
            offset: 256,
            len: 60,
        }];
        let mut free = vec![3 * u64::from(frame_size)];
        let mut staged = vec![Vec::with_capacity(1), Vec::with_capacity(4)];
        {
            let sink = MirrorSink {
                free: &mut free,
                staged: &mut staged,
            };
            let mut frames = ChainFrames::new(&mut umem, frame_size, &spans, Some(sink));
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
        assert!(free.is_empty());
        let desc = staged[1][0];
        assert_eq!(desc.addr, 3 * 2048 + 256);
        assert_eq!(desc.len, 60);
        let at = desc.addr as usize;
        assert_eq!(&umem[at..at + 60], &original[..]);
        assert_eq!(&umem[256..316], &original[..], "original untouched");
    }

    #[test]
    fn a_full_transmit_batch_refuses_the_copy_and_keeps_the_frame_free() {
        let mut umem = vec![0u8; 2 * 2048];
        let spans = [FrameSpan {
            chunk: 0,
            offset: 256,
            len: 60,
        }];
        let mut free = vec![2048];
        let mut staged: Vec<Vec<Desc>> = vec![Vec::new()];
        {
            let sink = MirrorSink {
                free: &mut free,
                staged: &mut staged,
            };
            let mut frames = ChainFrames::new(&mut umem, 2048, &spans, Some(sink));
            assert!(!frames.mirror(0, 0));
            assert_eq!(frames.mirror_failures().tx_full, 1);
        }
        assert_eq!(free, vec![2048]);
    }

    #[test]
    fn the_clock_moves_forward_and_is_never_zero() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
