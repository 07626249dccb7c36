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

use crate::counters::Counters;
use crate::io::{chunk_of, Desc};
use crate::packet::{self, arp, forward, nd, FrameMeta, L3};
use crate::tables::{NextHop, PodPort, PortKind, Tables, TenantId};
use crate::verdict::{DropReason, PortId, Verdict};
use crate::vxlan;

/// ICMPv6 neighbour solicitation.
const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
/// IP protocol number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;

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

/// One worker's pipeline: its counters and per-worker state.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// The worker's counters (published by the worker).
    pub counters: Counters,
}

impl Pipeline {
    /// A pipeline with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Process a batch received on `in_port`. Each descriptor is resolved to
    /// its chunk of `frame_size` bytes in `umem`; on return it describes the
    /// frame as rewritten (moved for encap/decap), and `verdicts[i]` says
    /// what to do with it. Counts rx and every drop.
    pub fn process_batch(
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
            let start = chunk_of(desc.addr, frame_size);
            let offset = (desc.addr - start) as usize;
            let len = desc.len as usize;
            let Some(chunk) = usize::try_from(start)
                .ok()
                .and_then(|s| umem.get_mut(s..s + frame_size as usize))
            else {
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

    /// Process one frame at `chunk[offset..offset + len]`. Counts drops (not rx).
    pub fn process_frame(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Outcome {
        let out = if offset.checked_add(len).is_none_or(|end| end > chunk.len()) {
            Outcome::drop(DropReason::Oversized, offset, len)
        } else {
            match tables.port(in_port).map(|p| &p.kind) {
                Some(PortKind::Pod(pod)) => {
                    self.pod_frame(tables, in_port, pod, chunk, offset, len)
                }
                Some(PortKind::Underlay) => self.underlay_frame(tables, chunk, offset, len),
                Some(PortKind::Idle) | None => Outcome::drop(DropReason::UnknownPort, offset, len),
            }
        };
        match out.verdict {
            Verdict::Drop(reason) => self.counters.drop(reason),
            Verdict::Pass => self.counters.passed += 1,
            Verdict::Tx(_) => {}
        }
        out
    }

    fn pod_frame(
        &mut self,
        tables: &Tables,
        in_port: PortId,
        pod: &PodPort,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Outcome {
        let frame = &mut chunk[offset..offset + len];
        let meta = match packet::parse(frame) {
            Ok(meta) => meta,
            Err(reason) => return Outcome::drop(reason, offset, len),
        };
        if meta.src_mac != pod.mac {
            return Outcome::drop(DropReason::SourceSpoofed, offset, len);
        }
        if meta.vlan.is_some() {
            return Outcome::drop(DropReason::VlanNotAllowed, offset, len);
        }
        let port_mac = tables.port(in_port).map(|p| p.mac).unwrap_or([0; 6]);
        match meta.l3 {
            L3::Arp => {
                let Some(gateway) = pod.gateway4 else {
                    return Outcome::drop(DropReason::ArpNotForGateway, offset, len);
                };
                match arp::answer_gateway(frame, &meta, gateway, port_mac) {
                    Ok(reply_len) => {
                        self.counters.neighbour_replies += 1;
                        Outcome {
                            verdict: Verdict::Tx(in_port),
                            offset,
                            len: reply_len,
                        }
                    }
                    Err(reason) => Outcome::drop(reason, offset, len),
                }
            }
            L3::Ipv6 { src, .. }
                if meta.ip_proto == IPPROTO_ICMPV6
                    && (meta.dst_port >> 8) as u8 == ICMPV6_NEIGHBOR_SOLICIT =>
            {
                let _ = src;
                let Some(gateway) = pod.gateway6 else {
                    return Outcome::drop(DropReason::NdNotForGateway, offset, len);
                };
                // The whole rest of the chunk: a DAD solicitation is shorter than the
                // advertisement with its link-layer address option.
                match nd::answer_gateway(&mut chunk[offset..], &meta, gateway, port_mac) {
                    Ok(reply_len) => {
                        self.counters.neighbour_replies += 1;
                        Outcome {
                            verdict: Verdict::Tx(in_port),
                            offset,
                            len: reply_len,
                        }
                    }
                    Err(reason) => Outcome::drop(reason, offset, len),
                }
            }
            L3::Ipv4 { src, dst } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return Outcome::drop(reason, offset, len);
                }
                if pod.ipv4 != Some(src) {
                    return Outcome::drop(DropReason::SourceSpoofed, offset, len);
                }
                let hop = tables.lookup_v4(pod.tenant, dst);
                self.forward(tables, pod.tenant, hop, &meta, chunk, offset)
            }
            L3::Ipv6 { src, dst } => {
                if let Some(reason) = check_l2_dst(&meta, port_mac) {
                    return Outcome::drop(reason, offset, len);
                }
                if pod.ipv6 != Some(src) {
                    return Outcome::drop(DropReason::SourceSpoofed, offset, len);
                }
                let hop = tables.lookup_v6(pod.tenant, dst);
                self.forward(tables, pod.tenant, hop, &meta, chunk, offset)
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
        }
    }

    fn underlay_frame(
        &mut self,
        tables: &Tables,
        chunk: &mut [u8],
        offset: usize,
        len: usize,
    ) -> Outcome {
        let vtep = tables.vtep();
        let frame = &mut chunk[offset..offset + len];
        let decap = match vxlan::decap(frame, vtep.ip, vtep.udp_port) {
            Ok(d) => d,
            // Not VXLAN for this VTEP: the node's own traffic, for the kernel.
            Err(DropReason::UnderlayNotVxlan | DropReason::VxlanNotForUs) => {
                return Outcome {
                    verdict: Verdict::Pass,
                    offset,
                    len,
                }
            }
            Err(reason) => return Outcome::drop(reason, offset, len),
        };
        let Some(tenant) = tables.tenant_by_vni(decap.vni) else {
            return Outcome::drop(DropReason::UnknownVni, offset, len);
        };
        if !tables.is_vtep_source(decap.src, tenant) {
            return Outcome::drop(DropReason::VxlanUnknownSource, offset, len);
        }
        let inner_offset = offset + decap.inner_offset;
        let inner = &mut chunk[inner_offset..inner_offset + decap.inner_len];
        let meta = match packet::parse(inner) {
            Ok(meta) => meta,
            Err(reason) => return Outcome::drop(reason, offset, len),
        };
        let hop = match meta.l3 {
            L3::Ipv4 { dst, .. } => tables.lookup_v4(tenant, dst),
            L3::Ipv6 { dst, .. } => tables.lookup_v6(tenant, dst),
            L3::Arp => return Outcome::drop(DropReason::ArpNotForGateway, offset, len),
        };
        match hop {
            Some(NextHop::Local { .. }) => {
                self.counters.decapsulated += 1;
                self.forward(tables, tenant, hop, &meta, chunk, inner_offset)
            }
            Some(NextHop::Remote { .. }) => Outcome::drop(DropReason::UnderlayHairpin, offset, len),
            Some(NextHop::Blackhole) => Outcome::drop(DropReason::Blackhole, offset, len),
            None => Outcome::drop(DropReason::VxlanNoLocalPod, offset, len),
        }
    }
}

/// A routed frame must be unicast to the port's own MAC.
#[inline]
fn check_l2_dst(meta: &FrameMeta, port_mac: [u8; 6]) -> Option<DropReason> {
    if meta.dst_mac == port_mac {
        None
    } else if meta.dst_mac[0] & 1 == 1 {
        Some(DropReason::L2Multicast)
    } else {
        Some(DropReason::NotOurMac)
    }
}
