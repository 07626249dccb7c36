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

use crate::chain_hook::{
    ChainFrames, ChainHook, ChainPacket, ChainVerdict, FrameSpan, MirrorFrames, NoChains,
    CHAIN_BATCH,
};
use crate::counters::Counters;
use crate::io::{chunk_of, Desc};
use crate::packet::{self, arp, forward, icmp, nd, FrameMeta, L3};
use crate::tables::{HostPort, NextHop, PodPort, PortKind, Tables, TenantId};
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
        }
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
        for i in from..descs.len().min(verdicts.len()) {
            let desc = &mut descs[i];
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += u64::from(desc.len);
            let Some((start, chunk, offset, len)) = frame_chunk(umem, desc, frame_size) else {
                self.counters.drop(DropReason::Oversized);
                verdicts[i] = Verdict::Drop(DropReason::Oversized);
                continue;
            };
            match self.admit(tables, in_port, resume, chunk, offset, len) {
                Step::Done(out) => {
                    self.count(out.verdict);
                    desc.addr = start + out.offset as u64;
                    desc.len = out.len as u32;
                    verdicts[i] = out.verdict;
                }
                Step::Route(routable) => {
                    self.packets.push(ChainPacket {
                        meta: routable.meta,
                        in_port,
                        tenant: routable.tenant,
                        len: routable.len as u32,
                        verdict: ChainVerdict::NoChain,
                    });
                    self.spans.push(FrameSpan {
                        chunk: start,
                        offset: routable.offset,
                        len: routable.len,
                    });
                    self.pending.push(Pending {
                        desc: i,
                        chunk: start,
                        routable,
                    });
                }
            }
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
        for (desc, verdict) in descs.iter_mut().zip(verdicts.iter_mut()) {
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += u64::from(desc.len);
            let Some((start, chunk, offset, len)) = frame_chunk(umem, desc, frame_size) else {
                self.counters.drop(DropReason::Oversized);
                *verdict = Verdict::Drop(DropReason::Oversized);
                continue;
            };
            let out = self.process_frame(tables, in_port, chunk, offset, len);
            desc.addr = start + out.offset as u64;
            desc.len = out.len as u32;
            *verdict = out.verdict;
        }
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
        let out = match self.admit(tables, in_port, false, chunk, offset, len) {
            Step::Done(out) => out,
            Step::Route(routable) => self.route(tables, &routable, chunk),
        };
        self.count(out.verdict);
        out
    }

    /// The checks of one frame: parse, answer ARP/ND, check the source,
    /// decapsulate VXLAN. `resume`: `in_port` is a VNF's return interface
    /// (its IP frames skip the pod checks).
    fn admit(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        resume: bool,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Step {
        if offset.checked_add(len).is_none_or(|end| end > chunk.len()) {
            return Step::Done(Outcome::drop(DropReason::Oversized, offset, len));
        }
        let kind = tables.port(in_port).map(|p| &p.kind);
        if resume && !matches!(kind, Some(PortKind::Underlay)) {
            if let Some(step) = vnf_return_frame(in_port, kind, chunk, offset, len) {
                return step;
            }
        }
        match kind {
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
        match self.send_icmp_error(tables, r, chunk, error) {
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
            return self.forward(tables, r.tenant, hop, &r.meta, chunk, r.offset);
        };
        match hop {
            Some(NextHop::Local { .. }) => {
                self.counters.decapsulated += 1;
                self.forward(tables, r.tenant, hop, &r.meta, chunk, r.offset)
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
                Some(self.forward(tables, r.tenant, hop, &meta, chunk, offset))
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
            L3::Ipv4 { src, .. } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return done(Outcome::drop(reason, offset, len));
                }
                if pod.ipv4 != Some(src) {
                    return done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
                }
                Step::Route(Routable {
                    in_port,
                    tenant: pod.tenant,
                    meta,
                    offset,
                    len,
                    underlay: None,
                })
            }
            L3::Ipv6 { src, .. } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return done(Outcome::drop(reason, offset, len));
                }
                if pod.ipv6 != Some(src) {
                    return done(Outcome::drop(DropReason::SourceSpoofed, offset, len));
                }
                Step::Route(Routable {
                    in_port,
                    tenant: pod.tenant,
                    meta,
                    offset,
                    len,
                    underlay: None,
                })
            }
        }
    }

    /// Forward a routed IP frame from a pod to its next hop.
    fn forward(
        &mut self,
        tables: &Tables,
        _tenant: TenantId,
        hop: Option<&NextHop>,
        meta: &FrameMeta,
        chunk: &mut [u8],
        offset: usize,
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
                let frame = &mut chunk[offset..offset + len];
                if let Err(reason) = forward::decrement_ttl(frame, meta) {
                    return Outcome::drop(reason, offset, len);
                }
                let src_mac = tables.port(*port).map(|p| p.mac).unwrap_or([0; 6]);
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
                if let Err(reason) = forward::decrement_ttl(frame, meta) {
                    return Outcome::drop(reason, offset, len);
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
