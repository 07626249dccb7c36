//! The batch pipeline: frames in, one [`Verdict`] per frame out.
//!
//! Sans-IO: it reads and rewrites frames inside UMEM chunks handed in by the
//! caller, consults an immutable [`Tables`] snapshot, and counts. No socket,
//! no clock, no allocation, no lock.
//!
//! From a pod port: answer ARP / neighbour solicitations for the gateway;
//! check the source (anti-spoofing); route the destination in the pod's
//! tenant: to a local pod (rewrite MACs, decrement TTL) or to a remote node
//! (decrement TTL, rewrite inner MACs, VXLAN-encapsulate into the chunk's
//! headroom). From the underlay: validate and decapsulate VXLAN, map the VNI
//! to its tenant, and deliver only to a local pod of that tenant.
//!
//! With a [`ChainHook`] (see [`crate::chain_hook`]) a batch goes in three
//! steps: every frame is parsed and checked (ARP/ND answered, sources
//! checked, VXLAN decapsulated), the routable IP frames go through the
//! hook together, and then each is routed, dropped or redirected as the
//! hook decided. Without one ([`NoChains`], the default) each frame is
//! checked and routed at once, as it always was.
//!
//! Two parts of the pipeline live here as modules of their own:
//! [`chain_hook`], the interface a chain stage plugs in through (the
//! packets, frames and mirror copies it sees and the fate it gives back),
//! and [`counters`], what the pipeline counts (every drop by reason).

use self::chain_hook::{
    ChainFrames, ChainHook, ChainPacket, ChainVerdict, FrameSpan, MirrorFrames, NoChains,
    CHAIN_BATCH,
};
use self::counters::Counters;
use std::sync::Arc;

use crate::forward;
use crate::io::{chunk_of, Desc};
use crate::packet::{self, arp, icmp, nd, FrameMeta, L3};
use crate::tables::{HostPort, NextHop, PodPort, PortKind, Tables, TenantId};
use crate::trace::{TraceMeta, TraceSession};
use crate::verdict::{DropReason, PortId, Verdict};
use crate::vxlan;
use crate::wire;

/// Where a processed frame now sits in its chunk, and what to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Offset of the (possibly moved) frame in its chunk.
    pub offset: usize,
    /// Its length.
    pub len: usize,
}

impl Outcome {
    #[inline]
    fn drop(reason: DropReason, offset: usize, len: usize) -> Self {
        Outcome {
            verdict: Verdict::Drop(reason),
            offset,
            len,
        }
    }
}

/// A frame that passed its checks and waits for routing: an IP frame from
/// a pod (or a VNF's return interface), or the inner frame of a VXLAN
/// packet from the underlay.
#[derive(Clone, Copy, Debug)]
struct Routable {
    /// The port it arrived on (where an ICMP error about it goes back).
    in_port: PortId,
    /// The tenant it is routed in.
    tenant: TenantId,
    /// The parsed (inner) frame.
    meta: FrameMeta,
    /// Offset of the (inner) frame in its chunk.
    offset: usize,
    /// Its length.
    len: usize,
    /// From the underlay: the outer frame's offset and length (what a drop
    /// reports), and the rule that only local pods are delivered to.
    underlay: Option<(usize, usize)>,
    /// From the host port (the node's own stack): its TTL is the node's.
    from_host: bool,
}

/// What the checks make of a frame.
enum Step {
    /// Its fate is decided (dropped, answered, passed to the kernel).
    Done(Outcome),
    /// Route it (after the chain step, if any).
    Route(Routable),
}

/// A routable frame of the current chain batch: where its descriptor is.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Index in the receive batch.
    desc: usize,
    /// Offset of its chunk in the UMEM.
    chunk: u64,
    /// Its routing state before the hook ran.
    routable: Routable,
}

/// The UMEM chunk that holds `desc`'s frame: its start address, its bytes,
/// and the frame's offset and length in it; `None` if the chunk lies
/// outside `umem`.
#[inline]
fn frame_chunk<'u>(
    umem: &'u mut [u8],
    desc: &Desc,
    frame_size: u32,
) -> Option<(u64, &'u mut [u8], usize, usize)> {
    let start = chunk_of(desc.addr, frame_size);
    let chunk = usize::try_from(start)
        .ok()
        .and_then(|s| umem.get_mut(s..s + frame_size as usize))?;
    Some((
        start,
        chunk,
        (desc.addr - start) as usize,
        desc.len as usize,
    ))
}

/// Whether a frame at `offset` of `len` bytes runs past its chunk of
/// `chunk_len` bytes.
#[inline(always)]
fn exceeds(offset: usize, len: usize, chunk_len: usize) -> bool {
    offset.checked_add(len).is_none_or(|end| end > chunk_len)
}

/// A batch of descriptors with their verdicts, from index `from`, and the
/// UMEM they point into.
struct Batch<'b> {
    umem: &'b mut [u8],
    frame_size: u32,
    descs: &'b mut [Desc],
    verdicts: &'b mut [Verdict],
    from: usize,
}

/// One worker's pipeline: its counters, its chain hook and per-worker state.
#[derive(Debug, Default)]
pub struct Pipeline<H: ChainHook = NoChains> {
    /// The worker's counters (published by the worker).
    pub counters: Counters,
    hook: H,
    packets: Vec<ChainPacket>,
    spans: Vec<FrameSpan>,
    pending: Vec<Pending>,
    /// The batch's time (for the ICMP rate limit).
    now_ns: u64,
    icmp_limiter: IcmpLimiter,
    drop_tap: Option<DropTap>,
}

/// A drop trace armed on the worker (`kxdp trace --at drop`), for the
/// frames the pipeline drops and answers with an ICMP error in the same
/// chunk: their verdict is the error's transmit, so the batch's drop
/// trace, which reads verdicts, would never see them.
#[derive(Debug)]
pub struct DropTap {
    /// The armed session (its point is [`crate::trace::TracePoint::Drop`]).
    pub session: Arc<TraceSession>,
    /// The worker's index.
    pub worker: u16,
    /// The batch's wall-clock time, ns since the Unix epoch.
    pub timestamp_ns: u64,
}

/// The ICMP error rate limit of one worker: a GCRA bucket per source
/// address (256 slots by hash; sources that share a slot share its rate,
/// which only ever sends fewer) and one for all errors.
#[derive(Debug)]
struct IcmpLimiter {
    /// Per slot: the theoretical arrival time of the next error, in ns.
    slots: Box<[u64]>,
    total: u64,
}

const ICMP_LIMITER_SLOTS: usize = 256;

impl Default for IcmpLimiter {
    fn default() -> Self {
        IcmpLimiter {
            slots: vec![0; ICMP_LIMITER_SLOTS].into_boxed_slice(),
            total: 0,
        }
    }
}

impl IcmpLimiter {
    /// Whether one more error to `source` fits both rates at `now`.
    fn allow(&mut self, source: u128, now: u64, spec: &kxdp_config::IcmpSpec) -> bool {
        let gcra = |tat: &mut u64, rate: u32, burst: u32| -> bool {
            if rate == 0 {
                return false;
            }
            let interval = 1_000_000_000 / u64::from(rate);
            let tolerance = interval.saturating_mul(u64::from(burst.max(1)) - 1);
            let start = (*tat).max(now);
            if start > now.saturating_add(tolerance) {
                return false;
            }
            *tat = start + interval;
            true
        };
        let hash = (source as u64 ^ (source >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = (hash >> 56) as usize % ICMP_LIMITER_SLOTS;
        let mut tat = self.slots[slot];
        if !gcra(&mut tat, spec.per_source_per_second, spec.per_source_burst) {
            return false;
        }
        let mut total = self.total;
        if !gcra(
            &mut total,
            spec.total_per_second,
            spec.total_per_second.max(1) / 20 + 1,
        ) {
            return false;
        }
        self.slots[slot] = tat;
        self.total = total;
        true
    }
}

impl Pipeline {
    /// A pipeline without service chains, with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<H: ChainHook> Pipeline<H> {
    /// A pipeline whose routable frames go through `hook` (scratch space
    /// for [`CHAIN_BATCH`] frames is allocated here, once).
    pub fn with_hook(hook: H) -> Self {
        let scratch = if H::ENABLED { CHAIN_BATCH } else { 0 };
        Pipeline {
            counters: Counters::default(),
            hook,
            packets: Vec::with_capacity(scratch),
            spans: Vec::with_capacity(scratch),
            pending: Vec::with_capacity(scratch),
            now_ns: 0,
            icmp_limiter: IcmpLimiter::default(),
            drop_tap: None,
        }
    }

    /// Offer the frames answered with an ICMP error to `tap` (or, with
    /// `None`, to nothing) from the next batch on.
    pub fn set_drop_tap(&mut self, tap: Option<DropTap>) {
        self.drop_tap = tap;
    }

    /// The chain hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The chain hook, to change.
    pub fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }

    /// Process a batch received on `in_port`. Each descriptor is resolved to
    /// its chunk of `frame_size` bytes in `umem`; on return it describes the
    /// frame as rewritten (moved for encap/decap), and `verdicts[i]` says
    /// what to do with it. Counts rx and every drop. A chain hook runs at
    /// time 0 and gets no frames for mirror copies here: the worker uses
    /// [`Pipeline::process_batch_at`].
    pub fn process_batch(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        umem: &mut [u8],
        frame_size: u32,
        descs: &mut [Desc],
        verdicts: &mut [Verdict],
    ) {
        self.process_batch_at(0, tables, in_port, umem, frame_size, descs, verdicts, None);
    }

    /// [`Pipeline::process_batch`] at `now_ns` (for the chain hook, from
    /// [`crate::chain_hook::monotonic_ns`]), with mirror copies made in the
    /// frames the caller lent in `mirrors` (the caller sends them after; see
    /// [`crate::chain_hook`]). Copies that cannot be made are counted here.
    #[allow(clippy::too_many_arguments)]
    pub fn process_batch_at(
        &mut self,
        now_ns: u64,
        tables: &Tables,
        in_port: PortId,
        umem: &mut [u8],
        frame_size: u32,
        descs: &mut [Desc],
        verdicts: &mut [Verdict],
        mut mirrors: Option<&mut MirrorFrames<'_>>,
    ) {
        self.now_ns = now_ns;
        if !H::ENABLED {
            self.process_batch_unchained(tables, in_port, umem, frame_size, descs, verdicts);
            return;
        }
        let resume = self.hook.begin_batch(in_port);
        let n = descs.len().min(verdicts.len());
        let mut start = 0;
        while start < n {
            let end = (start + CHAIN_BATCH).min(n);
            self.admit_batch(
                tables,
                in_port,
                resume,
                umem,
                frame_size,
                &mut descs[..end],
                &mut verdicts[..end],
                start,
            );
            if !self.pending.is_empty() {
                let mut frames =
                    ChainFrames::new(umem, frame_size, &self.spans, mirrors.as_deref_mut());
                self.hook.process(now_ns, &mut self.packets, &mut frames);
                let failed = frames.mirror_failures();
                self.counters
                    .drop_n(DropReason::MirrorNoFrame, failed.no_frame);
                self.counters.drop_n(DropReason::TxRingFull, failed.tx_full);
                self.counters.drop_n(DropReason::PortDown, failed.port_down);
                self.route_batch(tables, umem, frame_size, descs, verdicts);
            }
            start = end;
        }
    }

    /// Check frames `from..` of the batch: decide those whose fate the
    /// checks decide, and gather the routable ones for the hook.
    #[allow(clippy::too_many_arguments)]
    fn admit_batch(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        resume: bool,
        umem: &mut [u8],
        frame_size: u32,
        descs: &mut [Desc],
        verdicts: &mut [Verdict],
        from: usize,
    ) {
        self.packets.clear();
        self.spans.clear();
        self.pending.clear();
        let batch = Batch {
            umem,
            frame_size,
            descs,
            verdicts,
            from,
        };
        self.admit_each(
            tables,
            in_port,
            resume,
            batch,
            #[inline(always)]
            |this, i, start, _chunk, desc, verdict, step| match step {
                Step::Done(out) => {
                    this.count(out.verdict);
                    desc.addr = start + out.offset as u64;
                    desc.len = out.len as u32;
                    *verdict = out.verdict;
                }
                Step::Route(routable) => {
                    this.packets.push(ChainPacket {
                        meta: routable.meta,
                        in_port,
                        tenant: routable.tenant,
                        len: routable.len as u32,
                        verdict: ChainVerdict::NoChain,
                    });
                    this.spans.push(FrameSpan {
                        chunk: start,
                        offset: routable.offset,
                        len: routable.len,
                    });
                    this.pending.push(Pending {
                        desc: i,
                        chunk: start,
                        routable,
                    });
                }
            },
        );
    }

    /// Check frames `from..` of `batch` (each frame's chunk found and its
    /// size checked, then its port's checks) and hand each one's
    /// [`Step`] to `each` with its index, chunk start, chunk, descriptor
    /// and verdict. Every frame of a batch comes from `in_port`, so its
    /// kind is looked up and dispatched on once per batch, each kind with a
    /// loop of its own: per frame one direct call of that kind's checks,
    /// not a table lookup and a jump table. The checks are those
    /// [`Pipeline::admit`] makes of one frame (a test holds the two to the
    /// same verdicts), and frames back from a VNF (`resume`) are resumed.
    #[inline(always)]
    fn admit_each(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        resume: bool,
        batch: Batch<'_>,
        each: impl FnMut(&mut Self, usize, u64, &mut [u8], &mut Desc, &mut Verdict, Step),
    ) {
        let kind = tables.port(in_port).map(|p| &p.kind);
        // Each arm calls its kind's checks directly (as `admit` does for
        // one frame), and the callers' `each` closures are
        // `#[inline(always)]`: left to the compiler, `each` stayed a
        // function of its own, every frame's `Step` went through memory,
        // and the in-memory pipeline bench ran 8 % more instructions
        // (callgrind: 125.3 M against 116.0 M for its 18 measurements).
        let returned = |chunk: &mut [u8], offset, len| {
            if resume {
                vnf_return_frame(in_port, kind, chunk, offset, len)
            } else {
                None
            }
        };
        match kind {
            Some(PortKind::Underlay) => self.admit_loop(
                batch,
                |this, chunk, offset, len| this.underlay_frame(tables, chunk, offset, len),
                each,
            ),
            Some(PortKind::Pod(pod)) => self.admit_loop(
                batch,
                |this, chunk, offset, len| match returned(chunk, offset, len) {
                    Some(step) => step,
                    None => this.pod_frame(tables, in_port, pod, chunk, offset, len),
                },
                each,
            ),
            Some(PortKind::Host(host)) => self.admit_loop(
                batch,
                |_, chunk, offset, len| match returned(chunk, offset, len) {
                    Some(step) => step,
                    None => host_frame(tables, in_port, host, chunk, offset, len),
                },
                each,
            ),
            Some(PortKind::Idle) | None => self.admit_loop(
                batch,
                |_, chunk, offset, len| match returned(chunk, offset, len) {
                    Some(step) => step,
                    None => Step::Done(Outcome::drop(DropReason::UnknownPort, offset, len)),
                },
                each,
            ),
        }
    }

    /// One kind's loop of [`Pipeline::admit_each`].
    #[inline(always)]
    fn admit_loop(
        &mut self,
        batch: Batch<'_>,
        mut check: impl FnMut(&mut Self, &mut [u8], usize, usize) -> Step,
        mut each: impl FnMut(&mut Self, usize, u64, &mut [u8], &mut Desc, &mut Verdict, Step),
    ) {
        let Batch {
            umem,
            frame_size,
            descs,
            verdicts,
            from,
        } = batch;
        for (i, (desc, verdict)) in descs
            .iter_mut()
            .zip(verdicts.iter_mut())
            .enumerate()
            .skip(from)
        {
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += u64::from(desc.len);
            let Some((start, chunk, offset, len)) = frame_chunk(umem, desc, frame_size) else {
                self.counters.drop(DropReason::Oversized);
                *verdict = Verdict::Drop(DropReason::Oversized);
                continue;
            };
            let step = if exceeds(offset, len, chunk.len()) {
                Step::Done(Outcome::drop(DropReason::Oversized, offset, len))
            } else {
                check(self, chunk, offset, len)
            };
            each(self, i, start, chunk, desc, verdict, step);
        }
    }

    /// Route, drop or redirect the gathered frames as the hook decided.
    fn route_batch(
        &mut self,
        tables: &Tables,
        umem: &mut [u8],
        frame_size: u32,
        descs: &mut [Desc],
        verdicts: &mut [Verdict],
    ) {
        for k in 0..self.pending.len() {
            let pending = self.pending[k];
            let packet = self.packets[k];
            let mut routable = pending.routable;
            let Some(chunk) = usize::try_from(pending.chunk)
                .ok()
                .and_then(|s| umem.get_mut(s..s + frame_size as usize))
            else {
                // Resolved when it was admitted: cannot happen.
                self.counters.drop(DropReason::Oversized);
                if let Some(verdict) = verdicts.get_mut(pending.desc) {
                    *verdict = Verdict::Drop(DropReason::Oversized);
                }
                continue;
            };
            let out = match packet.verdict {
                ChainVerdict::NoChain | ChainVerdict::Pass => {
                    routable.meta = packet.meta;
                    routable.tenant = packet.tenant;
                    self.route(tables, &routable, chunk)
                }
                // A Service without endpoints refuses at once, as
                // kube-proxy's REJECT does: port unreachable from the
                // Service's address, back out of the port it came in on
                // (the drop is counted as well).
                ChainVerdict::Drop(DropReason::NoServiceEndpoint)
                    if routable.underlay.is_none() =>
                {
                    let our_mac = tables.port(packet.in_port).map_or([0; 6], |p| p.mac);
                    match icmp::answer_in_place(
                        chunk,
                        routable.offset,
                        routable.len,
                        &packet.meta,
                        icmp::IcmpError::PortUnreachable,
                        None,
                        our_mac,
                    ) {
                        Some((offset, len)) => {
                            // The request is dropped (and counted); its
                            // bytes leave as the error's quote.
                            self.counters.drop(DropReason::NoServiceEndpoint);
                            Outcome {
                                verdict: Verdict::Tx(packet.in_port),
                                offset,
                                len,
                            }
                        }
                        None => Outcome::drop(
                            DropReason::NoServiceEndpoint,
                            routable.offset,
                            routable.len,
                        ),
                    }
                }
                ChainVerdict::Drop(reason) => Outcome::drop(reason, routable.offset, routable.len),
                ChainVerdict::Redirect(port) => redirect(
                    tables,
                    port,
                    &packet.meta,
                    chunk,
                    routable.offset,
                    routable.len,
                ),
            };
            self.count(out.verdict);
            if let (Some(desc), Some(verdict)) =
                (descs.get_mut(pending.desc), verdicts.get_mut(pending.desc))
            {
                desc.addr = pending.chunk + out.offset as u64;
                desc.len = out.len as u32;
                *verdict = out.verdict;
            }
        }
    }

    #[inline]
    fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Drop(reason) => self.counters.drop(reason),
            Verdict::Pass => self.counters.passed += 1,
            Verdict::Tx(_) => {}
        }
    }

    /// The batch loop without a chain step: each frame checked and routed.
    fn process_batch_unchained(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        umem: &mut [u8],
        frame_size: u32,
        descs: &mut [Desc],
        verdicts: &mut [Verdict],
    ) {
        let batch = Batch {
            umem,
            frame_size,
            descs,
            verdicts,
            from: 0,
        };
        self.admit_each(
            tables,
            in_port,
            false,
            batch,
            #[inline(always)]
            |this, _i, start, chunk, desc, verdict, step| {
                let out = match step {
                    Step::Done(out) => out,
                    Step::Route(routable) => this.route(tables, &routable, chunk),
                };
                this.count(out.verdict);
                desc.addr = start + out.offset as u64;
                desc.len = out.len as u32;
                *verdict = out.verdict;
            },
        );
    }

    /// Process one frame at `chunk[offset..offset + len]`. Counts drops (not
    /// rx). The chain hook is not consulted: chains work on batches.
    pub fn process_frame(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Outcome {
        let out = match self.admit(tables, in_port, chunk, offset, len) {
            Step::Done(out) => out,
            Step::Route(routable) => self.route(tables, &routable, chunk),
        };
        self.count(out.verdict);
        out
    }

    /// The checks of one frame: parse, answer ARP/ND, check the source,
    /// decapsulate VXLAN. The batch paths make the same checks through
    /// [`Pipeline::admit_each`], which also resumes frames from a VNF.
    fn admit(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Step {
        if exceeds(offset, len, chunk.len()) {
            return Step::Done(Outcome::drop(DropReason::Oversized, offset, len));
        }
        match tables.port(in_port).map(|p| &p.kind) {
            Some(PortKind::Pod(pod)) => self.pod_frame(tables, in_port, pod, chunk, offset, len),
            Some(PortKind::Underlay) => self.underlay_frame(tables, chunk, offset, len),
            Some(PortKind::Host(host)) => host_frame(tables, in_port, host, chunk, offset, len),
            Some(PortKind::Idle) | None => {
                Step::Done(Outcome::drop(DropReason::UnknownPort, offset, len))
            }
        }
    }

    /// Route a checked frame to its next hop; where that fails as a
    /// router's forwarding fails (TTL, MTU, no route), answer the sender
    /// with the ICMP error a router sends.
    fn route(&mut self, tables: &Tables, r: &Routable, chunk: &mut [u8]) -> Outcome {
        let hop = match r.meta.l3 {
            L3::Ipv4 { dst, .. } => tables.lookup_v4(r.tenant, dst),
            L3::Ipv6 { dst, .. } => tables.lookup_v6(r.tenant, dst),
            L3::Arp => None,
        };
        let out = self.route_to(tables, r, hop, chunk);
        let Verdict::Drop(reason) = out.verdict else {
            return out;
        };
        let error = match reason {
            DropReason::TtlExpired => icmp::IcmpError::TimeExceeded,
            DropReason::ExceedsMtu => {
                // IPv4 without DF may be fragmented by its sender's path,
                // not by a VXLAN tunnel: dropped, counted, no error.
                if let L3::Ipv4 { .. } = r.meta.l3 {
                    let dont_fragment = chunk
                        .get(r.offset + r.meta.l3_offset..)
                        .and_then(|ip| wire::ipv4::Packet::new_checked(ip).ok())
                        .is_some_and(|ip| ip.dont_frag());
                    if !dont_fragment {
                        return out;
                    }
                }
                let mtu = match hop {
                    Some(NextHop::Local { port, .. }) => tables.port(*port).map_or(0, |p| p.mtu),
                    // Outer IPv4 + UDP + VXLAN + inner Ethernet: 50 bytes.
                    _ => tables
                        .vtep()
                        .mtu
                        .saturating_sub(vxlan::ENCAP_OVERHEAD as u16),
                };
                icmp::IcmpError::TooBig { mtu }
            }
            DropReason::NoRoute if matches!(hop, Some(NextHop::Unreachable)) => {
                icmp::IcmpError::HostUnreachable
            }
            DropReason::NoRoute => icmp::IcmpError::NetUnreachable,
            _ => return out,
        };
        match self.send_icmp_error(tables, r, chunk, error, reason) {
            // An error that cannot leave (no room to encapsulate it back):
            // the packet is dropped for its own reason alone.
            Some(sent) if matches!(sent.verdict, Verdict::Drop(_)) => out,
            Some(sent) => {
                // The packet itself is dropped: counted by its reason.
                self.counters.drop(reason);
                sent
            }
            None => out,
        }
    }

    fn route_to(
        &mut self,
        tables: &Tables,
        r: &Routable,
        hop: Option<&NextHop>,
        chunk: &mut [u8],
    ) -> Outcome {
        let Some((outer_offset, outer_len)) = r.underlay else {
            return self.forward(tables, r.tenant, hop, &r.meta, chunk, r.offset, r.from_host);
        };
        match hop {
            Some(NextHop::Local { .. }) => {
                self.counters.decapsulated += 1;
                self.forward(tables, r.tenant, hop, &r.meta, chunk, r.offset, false)
            }
            Some(NextHop::Remote { .. }) => {
                Outcome::drop(DropReason::UnderlayHairpin, outer_offset, outer_len)
            }
            Some(NextHop::Blackhole) => {
                Outcome::drop(DropReason::Blackhole, outer_offset, outer_len)
            }
            Some(NextHop::Unreachable) | None => {
                Outcome::drop(DropReason::VxlanNoLocalPod, outer_offset, outer_len)
            }
        }
    }

    /// Turn `r`'s frame into `error` from this node's gateway address in
    /// its tenant, rate-limited, and send it back to the sender: out of
    /// the port it came in on, or, from another node, over VXLAN to that
    /// node. `None`: no error is sent (not answerable, over the rate, no
    /// gateway address, no room) and the frame stays as it was.
    fn send_icmp_error(
        &mut self,
        tables: &Tables,
        r: &Routable,
        chunk: &mut [u8],
        error: icmp::IcmpError,
        reason: DropReason,
    ) -> Option<Outcome> {
        if !tables.icmp().errors {
            return None;
        }
        let (source, from) = match r.meta.l3 {
            L3::Ipv4 { src, .. } => (
                u128::from(u32::from(src)),
                std::net::IpAddr::V4(tables.gateway_v4(r.tenant)?),
            ),
            L3::Ipv6 { src, .. } => (
                u128::from(src),
                std::net::IpAddr::V6(tables.gateway_v6(r.tenant)?),
            ),
            L3::Arp => return None,
        };
        if !icmp::may_answer(chunk.get(r.offset..r.offset + r.len)?, &r.meta) {
            return None;
        }
        if !self.icmp_limiter.allow(source, self.now_ns, tables.icmp()) {
            self.counters.icmp_rate_limited += 1;
            return None;
        }
        // From another node, the error goes back over VXLAN: only to a
        // source a remote node has (checked before the frame is rewritten).
        if r.underlay.is_some() {
            let back = match r.meta.l3 {
                L3::Ipv4 { src, .. } => tables.lookup_v4(r.tenant, src),
                L3::Ipv6 { src, .. } => tables.lookup_v6(r.tenant, src),
                L3::Arp => None,
            };
            if !matches!(back, Some(NextHop::Remote { .. })) {
                return None;
            }
        }
        if let Some(tap) = &self.drop_tap {
            // The dropped frame as it arrived (the outer frame when it came
            // over VXLAN), before the error overwrites it.
            let (at, n) = r.underlay.unwrap_or((r.offset, r.len));
            if let Some(frame) = chunk.get(at..at + n) {
                let meta = TraceMeta {
                    timestamp_ns: tap.timestamp_ns,
                    worker: tap.worker,
                    port: r.in_port,
                    reason: Some(reason),
                };
                tap.session.offer(meta, frame);
            }
        }
        let our_mac = tables.port(r.in_port).map_or([0; 6], |p| p.mac);
        let (offset, len) =
            icmp::answer_in_place(chunk, r.offset, r.len, &r.meta, error, Some(from), our_mac)?;
        match error {
            icmp::IcmpError::TimeExceeded => self.counters.icmp_time_exceeded += 1,
            icmp::IcmpError::TooBig { .. } => self.counters.icmp_too_big += 1,
            _ => self.counters.icmp_unreachable += 1,
        }
        if r.underlay.is_none() {
            return Some(Outcome {
                verdict: Verdict::Tx(r.in_port),
                offset,
                len,
            });
        }
        // From another node: back to the sender's node over VXLAN.
        let meta = packet::parse(&chunk[offset..offset + len]).ok()?;
        let hop = match meta.l3 {
            L3::Ipv4 { dst, .. } => tables.lookup_v4(r.tenant, dst),
            L3::Ipv6 { dst, .. } => tables.lookup_v6(r.tenant, dst),
            L3::Arp => None,
        };
        match hop {
            Some(NextHop::Remote { .. }) => {
                Some(self.forward(tables, r.tenant, hop, &meta, chunk, offset, false))
            }
            _ => None,
        }
    }

    fn pod_frame(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        pod: &PodPort,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Step {
        let frame = &mut chunk[offset..offset + len];
        let meta = match packet::parse(frame) {
            Ok(meta) => meta,
            Err(reason) => return Step::Done(Outcome::drop(reason, offset, len)),
        };
        if meta.src_mac != pod.mac {
            return Step::Done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
        }
        if meta.vlan.is_some() {
            return Step::Done(Outcome::drop(DropReason::VlanNotAllowed, offset, len));
        }
        let port_mac = tables.port(in_port).map(|p| p.mac).unwrap_or([0; 6]);
        let done = |out: Outcome| Step::Done(out);
        match meta.l3 {
            L3::Arp => {
                let Some(gateway) = pod.gateway4 else {
                    return done(Outcome::drop(DropReason::ArpNotForGateway, offset, len));
                };
                // The sender fields must be the pod's own (or the
                // unspecified address of an address probe): a request
                // naming another pod is spoofing, and is not answered.
                let sender = frame
                    .get(meta.l3_offset..)
                    .and_then(|arp| wire::arp::Packet::new_checked(arp).ok())
                    .map(|arp| (arp.source_hardware_addr(), arp.source_protocol_addr()));
                let own = sender.is_some_and(|(mac, ip)| {
                    mac == pod.mac && (ip.is_unspecified() || pod.ipv4 == Some(ip))
                });
                if !own {
                    return done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
                }
                match arp::answer_gateway(frame, &meta, gateway, port_mac) {
                    Ok(reply_len) => {
                        self.counters.neighbour_replies += 1;
                        done(Outcome {
                            verdict: Verdict::Tx(in_port),
                            offset,
                            len: reply_len,
                        })
                    }
                    Err(reason) => done(Outcome::drop(reason, offset, len)),
                }
            }
            L3::Ipv6 { .. } if meta.is_neighbour_solicitation() => {
                let Some(gateway) = pod.gateway6 else {
                    return done(Outcome::drop(DropReason::NdNotForGateway, offset, len));
                };
                // The whole rest of the chunk: a DAD solicitation is shorter than the
                // advertisement with its link-layer address option.
                match nd::answer_gateway(&mut chunk[offset..], &meta, gateway, port_mac) {
                    Ok(reply_len) => {
                        self.counters.neighbour_replies += 1;
                        done(Outcome {
                            verdict: Verdict::Tx(in_port),
                            offset,
                            len: reply_len,
                        })
                    }
                    Err(reason) => done(Outcome::drop(reason, offset, len)),
                }
            }
            L3::Ipv4 { src, dst } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return done(Outcome::drop(reason, offset, len));
                }
                if pod.ipv4 != Some(src) {
                    return done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
                }
                if martian_v4(dst) {
                    return done(Outcome::drop(DropReason::MartianDestination, offset, len));
                }
                Step::Route(Routable {
                    in_port,
                    tenant: pod.tenant,
                    meta,
                    offset,
                    len,
                    underlay: None,
                    from_host: false,
                })
            }
            L3::Ipv6 { src, dst } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return done(Outcome::drop(reason, offset, len));
                }
                if pod.ipv6 != Some(src) {
                    return done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
                }
                if dst.is_unspecified() || dst.is_loopback() || dst.is_multicast() {
                    return done(Outcome::drop(DropReason::MartianDestination, offset, len));
                }
                Step::Route(Routable {
                    in_port,
                    tenant: pod.tenant,
                    meta,
                    offset,
                    len,
                    underlay: None,
                    from_host: false,
                })
            }
        }
    }

    /// Send a routed frame to `hop`. A frame from or to the host port
    /// keeps its TTL: the node's own stack, on the port's other side, is
    /// the sender or the receiver (a packet to the gateway or the node is
    /// delivered, not forwarded) or the router (egress), as it is for a
    /// kernel node's bridge; so `ping -t 1` reaches the gateway and the
    /// node is one hop in a traceroute, not two.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        tables: &Tables,
        _tenant: TenantId,
        hop: Option<&NextHop>,
        meta: &FrameMeta,
        chunk: &mut [u8],
        offset: usize,
        from_host: bool,
    ) -> Outcome {
        // The IP packet's own length, without Ethernet padding.
        let len = meta.l3_offset + meta.l3_len;
        let Some(hop) = hop else {
            return Outcome::drop(DropReason::NoRoute, offset, len);
        };
        match hop {
            NextHop::Local { port, mac } => {
                let out = tables.port(*port);
                let mtu = out.map_or(0, |p| p.mtu);
                if mtu != 0 && meta.l3_len > usize::from(mtu) {
                    return Outcome::drop(DropReason::ExceedsMtu, offset, len);
                }
                let to_host = out.is_some_and(|p| matches!(p.kind, PortKind::Host(_)));
                let frame = &mut chunk[offset..offset + len];
                if !(from_host || to_host) {
                    if let Err(reason) = forward::decrement_ttl(frame, meta) {
                        return Outcome::drop(reason, offset, len);
                    }
                }
                let src_mac = out.map(|p| p.mac).unwrap_or([0; 6]);
                forward::set_macs(frame, *mac, src_mac);
                Outcome {
                    verdict: Verdict::Tx(*port),
                    offset,
                    len,
                }
            }
            NextHop::Remote {
                inner_dst_mac,
                template,
                ..
            } => {
                let vtep = tables.vtep();
                // Outer IPv4 total length = 20 + 8 + 8 + inner frame.
                if len + vxlan::ENCAP_OVERHEAD - packet::ETH_HEADER_LEN > usize::from(vtep.mtu) {
                    return Outcome::drop(DropReason::ExceedsMtu, offset, len);
                }
                if offset < vxlan::ENCAP_OVERHEAD {
                    return Outcome::drop(DropReason::NoHeadroom, offset, len);
                }
                let frame = &mut chunk[offset..offset + len];
                if !from_host {
                    if let Err(reason) = forward::decrement_ttl(frame, meta) {
                        return Outcome::drop(reason, offset, len);
                    }
                }
                forward::set_macs(frame, *inner_dst_mac, vtep.mac);
                let src_port = vxlan::source_port(meta.flow_hash());
                let new_offset = vxlan::encap(chunk, offset, len, template, src_port);
                self.counters.encapsulated += 1;
                Outcome {
                    verdict: Verdict::Tx(vtep.port),
                    offset: new_offset,
                    len: len + vxlan::ENCAP_OVERHEAD,
                }
            }
            NextHop::Blackhole => Outcome::drop(DropReason::Blackhole, offset, len),
            NextHop::Unreachable => Outcome::drop(DropReason::NoRoute, offset, len),
        }
    }

    fn underlay_frame(
        &mut self,
        tables: &Tables,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Step {
        let drop = |reason| Step::Done(Outcome::drop(reason, offset, len));
        let vtep = tables.vtep();
        let frame = &mut chunk[offset..offset + len];
        let decap = match vxlan::decap(frame, vtep.ip, vtep.udp_port) {
            Ok(d) => d,
            // Not VXLAN for this VTEP: the node's own traffic, for the kernel.
            Err(DropReason::UnderlayNotVxlan | DropReason::VxlanNotForUs) => {
                return Step::Done(Outcome {
                    verdict: Verdict::Pass,
                    offset,
                    len,
                })
            }
            Err(reason) => return drop(reason),
        };
        let Some(tenant) = tables.tenant_by_vni(decap.vni) else {
            return drop(DropReason::UnknownVni);
        };
        if !tables.is_vtep_source(decap.src, tenant) {
            return drop(DropReason::VxlanUnknownSource);
        }
        // The outer frame must be addressed to the underlay's own MAC, as
        // a kernel node's stack would insist.
        let underlay_mac = tables.port(vtep.port).map_or([0; 6], |p| p.mac);
        let outer_dst =
            wire::ethernet::Frame::new_unchecked(&chunk[offset..offset + len]).dst_addr();
        if let Some(reason) = check_mac(outer_dst, underlay_mac) {
            return drop(reason);
        }
        let inner_offset = offset + decap.inner_offset;
        let inner = &mut chunk[inner_offset..inner_offset + decap.inner_len];
        let meta = match packet::parse(inner) {
            Ok(meta) => meta,
            Err(reason) => return drop(reason),
        };
        if meta.l3 == L3::Arp {
            return drop(DropReason::ArpNotForGateway);
        }
        // Pods take no VLAN tags, from a pod or from the underlay.
        if meta.vlan.is_some() {
            return drop(DropReason::VlanNotAllowed);
        }
        // The inner frame is for a MAC of this node (our VTEP's, as a
        // kernel vxlan device would insist, or a port's), not broadcast,
        // not someone else's.
        if !tables.is_local_mac(&meta.dst_mac) {
            return drop(if wire::ethernet::is_multicast(&meta.dst_mac) {
                DropReason::L2Multicast
            } else {
                DropReason::NotOurMac
            });
        }
        // Only the sending node's own addresses (its pods, its node
        // addresses) may be the inner source: what routes back to it.
        let source_hop = match meta.l3 {
            L3::Ipv4 { src, .. } => tables.lookup_v4(tenant, src),
            L3::Ipv6 { src, .. } => tables.lookup_v6(tenant, src),
            L3::Arp => None,
        };
        match source_hop {
            Some(NextHop::Remote { template, .. }) if template.remote_vtep() == decap.src => {}
            _ => return drop(DropReason::SourceSpoofed),
        }
        Step::Route(Routable {
            in_port: vtep.port,
            tenant,
            meta,
            offset: inner_offset,
            len: decap.inner_len,
            underlay: Some((offset, len)),
            from_host: false,
        })
    }
}

/// A frame from the node's own stack, on the host port. It is routed in
/// the first host tenant whose table has a route for its destination (the
/// first host tenant otherwise: Service addresses and the node's own
/// routes). Its source may be the node (its addresses, a pods' gateway) or
/// anything outside the cluster (egress replies the node translated back),
/// never an address of the cluster's pods: the node does not stand in for
/// pods, and a tenant's pod cannot reach another tenant through the node.
/// A pod's IPv4 destination no router forwards (RFC 1812 5.3.7, 4.2.2.11):
/// "this network" (0/8), loopback, multicast (kxdp routes no multicast)
/// and the limited broadcast. In a unicast frame to the gateway they would
/// otherwise go to the host port, into the node's own stack.
fn martian_v4(dst: std::net::Ipv4Addr) -> bool {
    dst.octets()[0] == 0 || dst.is_loopback() || dst.is_multicast() || dst.is_broadcast()
}

fn host_frame(
    tables: &Tables,
    in_port: PortId,
    host: &HostPort,
    chunk: &mut [u8],
    offset: usize,
    len: usize,
) -> Step {
    let done = |reason| Step::Done(Outcome::drop(reason, offset, len));
    let meta = match packet::parse(&chunk[offset..offset + len]) {
        Ok(meta) => meta,
        Err(reason) => return done(reason),
    };
    if meta.src_mac != host.peer_mac {
        return done(DropReason::SourceSpoofed);
    }
    if meta.vlan.is_some() {
        return done(DropReason::VlanNotAllowed);
    }
    let port_mac = tables.port(in_port).map(|p| p.mac).unwrap_or([0; 6]);
    let lookup = |tenant: TenantId, ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(a) => tables.lookup_v4(tenant, a),
        std::net::IpAddr::V6(a) => tables.lookup_v6(tenant, a),
    };
    let (src, dst) = match meta.l3 {
        // The node reaches kxdp through a static neighbour: it has no
        // reason to ask for addresses.
        L3::Arp => return done(DropReason::ArpNotForGateway),
        L3::Ipv6 { .. } if meta.is_neighbour_solicitation() => {
            return done(DropReason::NdNotForGateway)
        }
        L3::Ipv4 { src, dst } => (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)),
        L3::Ipv6 { src, dst } => (std::net::IpAddr::V6(src), std::net::IpAddr::V6(dst)),
    };
    if let Some(reason) = check_l2_dst(&meta, port_mac) {
        return done(reason);
    }
    let Some(&first) = host.tenants.first() else {
        return done(DropReason::NoRoute);
    };
    let tenant = host
        .tenants
        .iter()
        .copied()
        .find(|&t| match lookup(t, dst) {
            Some(NextHop::Local { port, .. }) => *port != in_port,
            Some(NextHop::Remote { .. }) => true,
            _ => false,
        })
        .unwrap_or(first);
    match lookup(tenant, src) {
        None => {}
        Some(NextHop::Local { port, .. }) if *port == in_port => {}
        Some(_) => return done(DropReason::SourceSpoofed),
    }
    Step::Route(Routable {
        in_port,
        tenant,
        meta,
        offset,
        len,
        underlay: None,
        from_host: true,
    })
}

/// An IP frame from a VNF's return interface: parsed, but not held to the
/// pod checks (it carries the original sender's addresses); routed in the
/// port's pod's tenant unless the hook sets the chain's. `None` for what
/// is not IP (ARP, neighbour discovery), which the port's own rules handle.
fn vnf_return_frame(
    in_port: PortId,
    kind: Option<&PortKind>,
    chunk: &mut [u8],
    offset: usize,
    len: usize,
) -> Option<Step> {
    let meta = match packet::parse(&chunk[offset..offset + len]) {
        Ok(meta) => meta,
        Err(reason) => return Some(Step::Done(Outcome::drop(reason, offset, len))),
    };
    let neighbour_discovery =
        matches!(meta.l3, L3::Ipv6 { .. }) && meta.is_neighbour_solicitation();
    if meta.l3 == L3::Arp || neighbour_discovery {
        return None;
    }
    if meta.vlan.is_some() {
        return Some(Step::Done(Outcome::drop(
            DropReason::VlanNotAllowed,
            offset,
            len,
        )));
    }
    let tenant = match kind {
        Some(PortKind::Pod(pod)) => pod.tenant,
        _ => 0,
    };
    Some(Step::Route(Routable {
        in_port,
        tenant,
        meta,
        offset,
        len,
        underlay: None,
        from_host: matches!(kind, Some(PortKind::Host(_))),
    }))
}

/// Send a frame into a VNF out of `port`: destination MAC of the port's
/// pod (unchanged when the port has none), source MAC of the port; the TTL
/// is left alone (the chain is one hop).
fn redirect(
    tables: &Tables,
    port: PortId,
    meta: &FrameMeta,
    chunk: &mut [u8],
    offset: usize,
    len: usize,
) -> Outcome {
    let Some(out) = tables.port(port) else {
        return Outcome::drop(DropReason::PortDown, offset, len);
    };
    let dst = match &out.kind {
        PortKind::Pod(pod) => pod.mac,
        PortKind::Host(host) => host.peer_mac,
        PortKind::Idle | PortKind::Underlay => meta.dst_mac,
    };
    if let Some(frame) = chunk.get_mut(offset..offset + len) {
        forward::set_macs(frame, dst, out.mac);
    }
    Outcome {
        verdict: Verdict::Tx(port),
        offset,
        len,
    }
}

/// The destination MAC `dst` must be `ours`.
#[inline]
fn check_mac(dst: [u8; 6], ours: [u8; 6]) -> Option<DropReason> {
    if dst == ours {
        None
    } else if wire::ethernet::is_multicast(&dst) {
        Some(DropReason::L2Multicast)
    } else {
        Some(DropReason::NotOurMac)
    }
}

/// A routed frame must be unicast to the port's own MAC.
#[inline]
fn check_l2_dst(meta: &FrameMeta, port_mac: [u8; 6]) -> Option<DropReason> {
    if meta.dst_mac == port_mac {
        None
    } else if wire::ethernet::is_multicast(&meta.dst_mac) {
        Some(DropReason::L2Multicast)
    } else {
        Some(DropReason::NotOurMac)
    }
}

pub mod chain_hook {
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
            if room <= self.used
                && self.requests().iter().filter(|c| c.port == port).count() >= room
            {
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
                let mut frames =
                    ChainFrames::new(&mut umem, frame_size, &spans, Some(&mut mirrors));
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
}

pub mod counters {
    //! Per-worker counters: packets and bytes in and out, and drops by reason.
    //!
    //! A worker counts into plain integers it owns ([`Counters`]) and publishes
    //! them once per loop into [`SharedCounters`] (relaxed atomic stores: one
    //! writer, many readers, no lock, no read-modify-write on the hot path).
    //! Readers take a [`CounterSnapshot`] and sum across workers.

    use std::sync::atomic::{AtomicU64, Ordering};

    use serde::Serialize;

    use crate::verdict::DropReason;

    /// The worker-owned counters.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Counters {
        /// Frames received.
        pub rx_packets: u64,
        /// Bytes received.
        pub rx_bytes: u64,
        /// Frames handed to a tx ring.
        pub tx_packets: u64,
        /// Bytes handed to a tx ring.
        pub tx_bytes: u64,
        /// Frames handed to the kernel stack.
        pub passed: u64,
        /// ARP and neighbour solicitations answered.
        pub neighbour_replies: u64,
        /// Frames encapsulated in VXLAN.
        pub encapsulated: u64,
        /// Frames decapsulated from VXLAN.
        pub decapsulated: u64,
        /// ICMP time exceeded sent (TTL or hop limit ran out here).
        pub icmp_time_exceeded: u64,
        /// ICMP destination unreachable sent (no route, nobody's address, a
        /// Service without endpoints).
        pub icmp_unreachable: u64,
        /// ICMP fragmentation needed / packet too big sent.
        pub icmp_too_big: u64,
        /// ICMP errors not sent: over the per-source or total rate.
        pub icmp_rate_limited: u64,
        /// Loop iterations that moved at least one frame.
        pub busy_loops: u64,
        /// Times the worker slept in poll().
        pub sleeps: u64,
        /// CPU cycles (TSC) spent in loops that moved frames (for cycles/packet).
        pub busy_cycles: u64,
        /// Gauge: the longest loop iteration (one pass over every port, without
        /// the sleep in poll()) since start, in nanoseconds of wall time.
        pub max_loop_ns: u64,
        /// Loop iterations that took longer than 1 ms (wall time: a preempted
        /// worker counts too).
        pub slow_loops: u64,
        /// Gauge: UMEM frames of the worker, from its last frame accounting.
        pub frames_total: u64,
        /// Gauge: frames in the worker's free list at the last accounting.
        pub frames_free: u64,
        /// Gauge: frames given to fill rings and not received back.
        pub frames_in_fill: u64,
        /// Gauge: frames given to tx rings and not completed.
        pub frames_in_tx: u64,
        /// Gauge: frames held by replaced sockets that the kernel never gave
        /// back.
        pub frames_stranded: u64,
        /// Ports whose socket was replaced because their interface was
        /// re-created.
        pub port_rebinds: u64,
        /// Frame accountings done (the worker checks when idle, at most once
        /// a second).
        pub accounting_checks: u64,
        /// Accountings that did not balance (a frame lost or counted twice).
        pub accounting_failures: u64,
        /// Drops, indexed by [`DropReason::index`].
        pub drops: [u64; DropReason::COUNT],
    }

    // By hand: `Default` is derived only for arrays of up to 32 elements, and
    // there are more drop reasons than that.
    impl Default for Counters {
        fn default() -> Self {
            Counters {
                rx_packets: 0,
                rx_bytes: 0,
                tx_packets: 0,
                tx_bytes: 0,
                passed: 0,
                neighbour_replies: 0,
                encapsulated: 0,
                decapsulated: 0,
                icmp_time_exceeded: 0,
                icmp_unreachable: 0,
                icmp_too_big: 0,
                icmp_rate_limited: 0,
                busy_loops: 0,
                sleeps: 0,
                busy_cycles: 0,
                max_loop_ns: 0,
                slow_loops: 0,
                frames_total: 0,
                frames_free: 0,
                frames_in_fill: 0,
                frames_in_tx: 0,
                frames_stranded: 0,
                port_rebinds: 0,
                accounting_checks: 0,
                accounting_failures: 0,
                drops: [0; DropReason::COUNT],
            }
        }
    }

    impl Counters {
        /// Count one drop.
        #[inline]
        pub fn drop(&mut self, reason: DropReason) {
            self.drops[reason.index()] += 1;
        }

        /// Count `n` drops.
        #[inline]
        pub fn drop_n(&mut self, reason: DropReason, n: u64) {
            self.drops[reason.index()] += n;
        }

        /// All drops.
        pub fn total_drops(&self) -> u64 {
            self.drops.iter().sum()
        }

        /// Drops for one reason.
        pub fn drops_for(&self, reason: DropReason) -> u64 {
            self.drops[reason.index()]
        }
    }

    macro_rules! shared_fields {
        ($($field:ident),*) => {
            /// Counters readable from other threads, written by one worker.
            #[derive(Debug)]
            pub struct SharedCounters {
                $(
                    #[doc = concat!("Published `", stringify!($field), "`.")]
                    pub $field: AtomicU64,
                )*
                /// Published drops by reason.
                pub drops: [AtomicU64; DropReason::COUNT],
            }

            // By hand: arrays of more than 32 elements have no derived `Default`.
            impl Default for SharedCounters {
                fn default() -> Self {
                    SharedCounters {
                        $( $field: AtomicU64::new(0), )*
                        drops: std::array::from_fn(|_| AtomicU64::new(0)),
                    }
                }
            }

            impl SharedCounters {
                /// Publish the worker's counters (single writer: plain relaxed stores).
                pub fn publish(&self, c: &Counters) {
                    $( self.$field.store(c.$field, Ordering::Relaxed); )*
                    for (slot, value) in self.drops.iter().zip(c.drops.iter()) {
                        slot.store(*value, Ordering::Relaxed);
                    }
                }

                /// Read a snapshot.
                pub fn snapshot(&self) -> Counters {
                    let mut c = Counters {
                        $( $field: self.$field.load(Ordering::Relaxed), )*
                        ..Counters::default()
                    };
                    for (value, slot) in c.drops.iter_mut().zip(self.drops.iter()) {
                        *value = slot.load(Ordering::Relaxed);
                    }
                    c
                }
            }
        };
    }

    shared_fields!(
        rx_packets,
        rx_bytes,
        tx_packets,
        tx_bytes,
        passed,
        neighbour_replies,
        encapsulated,
        decapsulated,
        icmp_time_exceeded,
        icmp_unreachable,
        icmp_too_big,
        icmp_rate_limited,
        busy_loops,
        sleeps,
        busy_cycles,
        max_loop_ns,
        slow_loops,
        frames_total,
        frames_free,
        frames_in_fill,
        frames_in_tx,
        frames_stranded,
        port_rebinds,
        accounting_checks,
        accounting_failures
    );

    /// A serializable view of one worker's counters, with drops by label.
    #[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
    pub struct CounterSnapshot {
        /// Worker index.
        pub worker: usize,
        /// Frames received.
        pub rx_packets: u64,
        /// Bytes received.
        pub rx_bytes: u64,
        /// Frames transmitted.
        pub tx_packets: u64,
        /// Bytes transmitted.
        pub tx_bytes: u64,
        /// Frames handed to the kernel.
        pub passed: u64,
        /// ARP/ND replies sent.
        pub neighbour_replies: u64,
        /// VXLAN encapsulations.
        pub encapsulated: u64,
        /// VXLAN decapsulations.
        pub decapsulated: u64,
        /// ICMP errors sent, by kind, and those the rate limit held back.
        #[serde(default)]
        pub icmp: IcmpCounts,
        /// Sleeps in poll().
        pub sleeps: u64,
        /// Cycles per packet over busy loops (0 when nothing moved).
        pub cycles_per_packet: f64,
        /// The longest loop iteration since start, in nanoseconds.
        #[serde(default)]
        pub max_loop_ns: u64,
        /// Loop iterations over 1 ms.
        #[serde(default)]
        pub slow_loops: u64,
        /// Where the worker's UMEM frames were at its last accounting.
        #[serde(default)]
        pub frames: FrameGauges,
        /// Ports rebound after their interface was re-created.
        #[serde(default)]
        pub port_rebinds: u64,
        /// Non-zero drops, by reason label.
        pub drops: std::collections::BTreeMap<String, u64>,
    }

    /// ICMP errors a worker sent, by kind.
    #[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
    pub struct IcmpCounts {
        /// Time exceeded.
        pub time_exceeded: u64,
        /// Destination unreachable.
        pub unreachable: u64,
        /// Fragmentation needed / packet too big.
        pub too_big: u64,
        /// Not sent: over the rate limit.
        pub rate_limited: u64,
    }

    /// A worker's frame accounting as published (see
    /// `worker::FrameAccounting`): every UMEM frame free, in a fill ring or in
    /// a tx ring, exactly once.
    #[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
    pub struct FrameGauges {
        /// UMEM frames in all (0 before the first accounting).
        pub total: u64,
        /// In the worker's free list.
        pub free: u64,
        /// Given to fill rings, not received back.
        pub in_fill: u64,
        /// Given to tx rings, not completed.
        pub in_tx: u64,
        /// Held by replaced sockets, never given back by the kernel.
        #[serde(default)]
        pub stranded: u64,
        /// Accountings done.
        pub checks: u64,
        /// Accountings that did not balance.
        pub failures: u64,
    }

    impl FrameGauges {
        /// The last accounting balanced and none ever failed.
        pub fn balanced(&self) -> bool {
            self.failures == 0
                && self.free + self.in_fill + self.in_tx + self.stranded == self.total
        }
    }

    impl CounterSnapshot {
        /// Build from a worker's counters.
        pub fn from_counters(worker: usize, c: &Counters) -> Self {
            let drops = DropReason::ALL
                .iter()
                .filter(|r| c.drops[r.index()] > 0)
                .map(|r| (r.label().to_string(), c.drops[r.index()]))
                .collect();
            let moved = c.rx_packets.max(1);
            CounterSnapshot {
                worker,
                rx_packets: c.rx_packets,
                rx_bytes: c.rx_bytes,
                tx_packets: c.tx_packets,
                tx_bytes: c.tx_bytes,
                passed: c.passed,
                neighbour_replies: c.neighbour_replies,
                encapsulated: c.encapsulated,
                decapsulated: c.decapsulated,
                icmp: IcmpCounts {
                    time_exceeded: c.icmp_time_exceeded,
                    unreachable: c.icmp_unreachable,
                    too_big: c.icmp_too_big,
                    rate_limited: c.icmp_rate_limited,
                },
                sleeps: c.sleeps,
                max_loop_ns: c.max_loop_ns,
                slow_loops: c.slow_loops,
                port_rebinds: c.port_rebinds,
                frames: FrameGauges {
                    total: c.frames_total,
                    free: c.frames_free,
                    in_fill: c.frames_in_fill,
                    in_tx: c.frames_in_tx,
                    stranded: c.frames_stranded,
                    checks: c.accounting_checks,
                    failures: c.accounting_failures,
                },
                cycles_per_packet: if c.rx_packets == 0 {
                    0.0
                } else {
                    c.busy_cycles as f64 / moved as f64
                },
                drops,
            }
        }

        /// Sum of all drops.
        pub fn total_drops(&self) -> u64 {
            self.drops.values().sum()
        }
    }
}
