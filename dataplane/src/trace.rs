//! Packet traces: copies of the frames that pass a point of the workers
//! (received, sent, dropped) and match a filter, for `kxdp trace`.
//!
//! A [`TraceHub`] is shared by every worker of a node. While no trace is
//! armed, a worker pays one relaxed atomic load per loop
//! ([`TraceHub::armed`]). While one is, the worker offers each frame of its
//! batches at the session's point to [`TraceSession::offer`]: a frame that
//! matches the [`TraceFilter`] is copied into a [`TraceRecord`] taken from
//! the session's pool (allocated whole when the trace is armed) and pushed
//! on a lock-free queue (crossbeam's `ArrayQueue`); the control side drains
//! the queue and gives the records back to the pool. Nothing allocates,
//! locks or makes a syscall on the worker's side; a frame that finds the
//! pool empty is counted as missed, never waited for.
//!
//! The filter is a small language, a conjunction of terms:
//! `udp and src net 10.244.1.0/24 and dst port 53 and reason no_route`
//! (see [`TraceFilter::parse`]). It reads the outermost headers: a VXLAN
//! frame on the underlay matches on its outer addresses and ports.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use crossbeam::queue::ArrayQueue;
use ipnetwork::IpNetwork;

use crate::io::Desc;
use crate::verdict::{DropReason, PortId, Verdict};
use crate::vxlan::VXLAN_PORT;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{self, arp, ip_protocol, ipv4, ipv6, vlan};

/// Bytes of each traced frame kept (a UMEM chunk's worth: every frame
/// kxdp handles fits).
pub const TRACE_SNAP_LEN: usize = 2048;

/// The most records a session may hold.
pub const MAX_TRACE_RECORDS: usize = 65_536;

/// Where frames are captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TracePoint {
    /// As received from a socket, before the pipeline.
    Rx,
    /// As the pipeline sends them to a port (rewritten, encapsulated),
    /// before the tx ring.
    Tx,
    /// Dropped, with the reason.
    Drop,
}

impl TracePoint {
    /// `rx`, `tx` or `drop`.
    pub fn label(self) -> &'static str {
        match self {
            TracePoint::Rx => "rx",
            TracePoint::Tx => "tx",
            TracePoint::Drop => "drop",
        }
    }

    /// The point named `label`.
    pub fn from_label(label: &str) -> Option<TracePoint> {
        match label {
            "rx" => Some(TracePoint::Rx),
            "tx" => Some(TracePoint::Tx),
            "drop" => Some(TracePoint::Drop),
            _ => None,
        }
    }
}

/// A protocol a filter can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceProtocol {
    /// Any IPv4.
    Ipv4,
    /// Any IPv6.
    Ipv6,
    /// ARP.
    Arp,
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmp6,
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// UDP over IPv4 or IPv6.
    Udp,
    /// UDP to port 4789.
    Vxlan,
}

/// Which end of a packet an address or port term looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The source.
    Src,
    /// The destination.
    Dst,
    /// Either.
    Any,
}

/// A parsed filter: every term set must hold (`and`). The empty filter
/// matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Protocols, all of which must hold (`tcp and ip6`).
    pub protocols: Vec<TraceProtocol>,
    /// Address terms: a prefix and the end it must be at.
    pub addresses: Vec<(Direction, IpNetwork)>,
    /// Port terms (TCP or UDP).
    pub ports: Vec<(Direction, u16)>,
    /// The drop reason (only dropped frames have one).
    pub reason: Option<DropReason>,
}

/// A filter that does not parse: which word, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("word {position} ({word:?}): {message}")]
pub struct TraceFilterError {
    /// 1-based position of the word.
    pub position: usize,
    /// The word.
    pub word: String,
    /// What is wrong.
    pub message: String,
}

/// The terms a filter knows, for error messages.
const TERMS: &str = "tcp, udp, icmp, icmp6, arp, ip, ip6, vxlan, [src|dst] host ADDR, [src|dst] net PREFIX, [src|dst] port N, reason LABEL, joined by `and`";

/// Largest term count (a filter is matched against every frame).
const MAX_TERMS: usize = 16;

impl TraceFilter {
    /// Parse a filter: terms joined by `and` (or `&&`, or nothing):
    ///
    /// - a protocol: `tcp`, `udp`, `icmp`, `icmp6`, `arp`, `ip`, `ip6`,
    ///   `vxlan`;
    /// - `[src|dst] host ADDR`, `[src|dst] net PREFIX/LEN`, or the address
    ///   or prefix alone;
    /// - `[src|dst] port N`;
    /// - `reason LABEL` (a drop reason such as `source_spoofed`).
    ///
    /// `or` and `not` are refused.
    pub fn parse(text: &str) -> Result<TraceFilter, TraceFilterError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut filter = TraceFilter::default();
        let mut i = 0;
        let err = |i: usize, message: String| TraceFilterError {
            position: i + 1,
            word: words.get(i).copied().unwrap_or("").to_string(),
            message,
        };
        let mut terms = 0;
        while i < words.len() {
            let word = words[i];
            if word == "and" || word == "&&" {
                if i == 0 || i + 1 == words.len() {
                    return Err(err(i, "`and` must join two terms".into()));
                }
                i += 1;
                continue;
            }
            terms += 1;
            if terms > MAX_TERMS {
                return Err(err(i, format!("more than {MAX_TERMS} terms")));
            }
            let protocol = match word {
                "ip" | "ipv4" => Some(TraceProtocol::Ipv4),
                "ip6" | "ipv6" => Some(TraceProtocol::Ipv6),
                "arp" => Some(TraceProtocol::Arp),
                "icmp" => Some(TraceProtocol::Icmp),
                "icmp6" | "icmpv6" => Some(TraceProtocol::Icmp6),
                "tcp" => Some(TraceProtocol::Tcp),
                "udp" => Some(TraceProtocol::Udp),
                "vxlan" => Some(TraceProtocol::Vxlan),
                _ => None,
            };
            if let Some(protocol) = protocol {
                filter.protocols.push(protocol);
                i += 1;
                continue;
            }
            match word {
                "or" | "||" | "not" | "!" => {
                    return Err(err(i, format!("only `and` is supported; terms: {TERMS}")));
                }
                "reason" => {
                    let label = words
                        .get(i + 1)
                        .ok_or_else(|| err(i, "needs a drop reason".into()))?;
                    let reason = DropReason::from_label(label).ok_or_else(|| {
                        err(
                            i + 1,
                            "not a drop reason (see `kxdp stats` for the labels)".into(),
                        )
                    })?;
                    filter.reason = Some(reason);
                    i += 2;
                    continue;
                }
                _ => {}
            }
            let (direction, mut j) = match word {
                "src" => (Direction::Src, i + 1),
                "dst" => (Direction::Dst, i + 1),
                _ => (Direction::Any, i),
            };
            let Some(kind) = words.get(j).copied() else {
                return Err(err(
                    i,
                    "needs host, net, port or an address after it".into(),
                ));
            };
            match kind {
                "port" => {
                    let value = words
                        .get(j + 1)
                        .ok_or_else(|| err(j, "needs a port number".into()))?;
                    let port = value
                        .parse::<u16>()
                        .map_err(|_| err(j + 1, "not a port number (0-65535)".into()))?;
                    filter.ports.push((direction, port));
                    i = j + 2;
                }
                "host" | "net" => {
                    let value = words
                        .get(j + 1)
                        .ok_or_else(|| err(j, format!("needs an address after {kind}")))?;
                    let network = parse_network(value, kind == "host")
                        .ok_or_else(|| err(j + 1, format!("not an IP {kind}")))?;
                    filter.addresses.push((direction, network));
                    i = j + 2;
                }
                value => match parse_network(value, false) {
                    Some(network) => {
                        filter.addresses.push((direction, network));
                        j += 1;
                        i = j;
                    }
                    None => {
                        return Err(err(j, format!("unknown term; terms: {TERMS}")));
                    }
                },
            }
        }
        Ok(filter)
    }

    /// Whether `frame` (an Ethernet frame), dropped for `reason` when it
    /// was, matches. Reads only what the filter needs; never panics, never
    /// allocates.
    pub fn matches(&self, frame: &[u8], reason: Option<DropReason>) -> bool {
        if let Some(want) = self.reason {
            if reason != Some(want) {
                return false;
            }
        }
        if self.protocols.is_empty() && self.addresses.is_empty() && self.ports.is_empty() {
            return true;
        }
        let Some(headers) = Headers::parse(frame) else {
            return false;
        };
        for protocol in &self.protocols {
            let ok = match protocol {
                TraceProtocol::Ipv4 => headers.ethertype == ETHERTYPE_IPV4,
                TraceProtocol::Ipv6 => headers.ethertype == ETHERTYPE_IPV6,
                TraceProtocol::Arp => headers.ethertype == ETHERTYPE_ARP,
                TraceProtocol::Icmp => {
                    headers.ethertype == ETHERTYPE_IPV4
                        && headers.ip_protocol == Some(ip_protocol::ICMP)
                }
                TraceProtocol::Icmp6 => {
                    headers.ethertype == ETHERTYPE_IPV6
                        && headers.ip_protocol == Some(ip_protocol::ICMPV6)
                }
                TraceProtocol::Tcp => headers.ip_protocol == Some(ip_protocol::TCP),
                TraceProtocol::Udp => headers.ip_protocol == Some(ip_protocol::UDP),
                TraceProtocol::Vxlan => {
                    headers.ip_protocol == Some(ip_protocol::UDP)
                        && headers.ports.is_some_and(|(_, dst)| dst == VXLAN_PORT)
                }
            };
            if !ok {
                return false;
            }
        }
        for (direction, network) in &self.addresses {
            let Some((src, dst)) = headers.addresses else {
                return false;
            };
            let ok = match direction {
                Direction::Src => network.contains(src),
                Direction::Dst => network.contains(dst),
                Direction::Any => network.contains(src) || network.contains(dst),
            };
            if !ok {
                return false;
            }
        }
        for (direction, port) in &self.ports {
            let Some((src, dst)) = headers.ports else {
                return false;
            };
            let ok = match direction {
                Direction::Src => src == *port,
                Direction::Dst => dst == *port,
                Direction::Any => src == *port || dst == *port,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

fn parse_network(text: &str, host_only: bool) -> Option<IpNetwork> {
    if host_only || !text.contains('/') {
        let ip: IpAddr = text.parse().ok()?;
        return IpNetwork::new(ip, if ip.is_ipv4() { 32 } else { 128 }).ok();
    }
    text.parse().ok()
}

const ETHERTYPE_IPV4: u16 = EtherType::IPV4.0;
const ETHERTYPE_IPV6: u16 = EtherType::IPV6.0;
const ETHERTYPE_ARP: u16 = EtherType::ARP.0;

/// The outermost headers of a frame, as far as a filter needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Headers {
    ethertype: u16,
    ip_protocol: Option<u8>,
    /// Source and destination (for ARP: sender and target protocol address).
    addresses: Option<(IpAddr, IpAddr)>,
    /// TCP or UDP source and destination ports (none in a non-first fragment).
    ports: Option<(u16, u16)>,
}

impl Headers {
    /// Lenient: a frame the pipeline dropped as malformed is still traced
    /// by what can be read of it (no checksum, length or version checks).
    /// `None` when a header the filter reads is cut short.
    fn parse(frame: &[u8]) -> Option<Headers> {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        let mut ethertype = eth.ethertype();
        let mut rest = eth.payload();
        if ethertype == EtherType::VLAN {
            let tag = vlan::Tag::new_checked(rest).ok()?;
            ethertype = tag.ethertype();
            rest = rest.get(vlan::HEADER_LEN..).unwrap_or_default();
        }
        let mut headers = Headers {
            ethertype: ethertype.0,
            ip_protocol: None,
            addresses: None,
            ports: None,
        };
        let l4 = match ethertype {
            EtherType::IPV4 => {
                // The fixed header, whatever its length field says.
                if rest.len() < ipv4::HEADER_LEN {
                    return None;
                }
                let ip = ipv4::Packet::new_unchecked(rest);
                let protocol = ip.protocol();
                headers.ip_protocol = Some(protocol);
                headers.addresses = Some((ip.src_addr().into(), ip.dst_addr().into()));
                let header_len = ip.header_len();
                (header_len >= ipv4::HEADER_LEN && ip.frag_offset() == 0)
                    .then(|| (protocol, rest.get(header_len..).unwrap_or_default()))
            }
            EtherType::IPV6 => {
                let ip = ipv6::Packet::new_checked(rest).ok()?;
                let protocol = ip.next_header();
                headers.ip_protocol = Some(protocol);
                headers.addresses = Some((ip.src_addr().into(), ip.dst_addr().into()));
                Some((protocol, rest.get(ipv6::HEADER_LEN..).unwrap_or_default()))
            }
            EtherType::ARP => {
                // Ethernet/IPv4 ARP: sender and target protocol addresses.
                let arp = arp::Packet::new_unchecked(rest);
                if !arp.has_protocol_type() {
                    return None;
                }
                if arp.protocol_type() == EtherType::IPV4 {
                    if !arp.has_address_lengths() {
                        return None;
                    }
                    if arp.protocol_len() == 4 {
                        let arp = arp::Packet::new_checked(rest).ok()?;
                        headers.addresses = Some((
                            arp.source_protocol_addr().into(),
                            arp.target_protocol_addr().into(),
                        ));
                    }
                }
                None
            }
            _ => None,
        };
        if let Some((ip_protocol::TCP | ip_protocol::UDP, l4)) = l4 {
            headers.ports = wire::transport_ports(l4);
        }
        Some(headers)
    }
}

/// One captured frame: fixed size, allocated when the trace is armed and
/// reused.
#[derive(Clone)]
pub struct TraceRecord {
    /// Wall-clock time of the worker's batch, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The worker.
    pub worker: u16,
    /// The port: where it was received (rx, drop) or sent to (tx).
    pub port: PortId,
    /// The point.
    pub point: TracePoint,
    /// Why it was dropped (drop point).
    pub reason: Option<DropReason>,
    /// The frame's length.
    pub original_len: u32,
    /// Bytes kept in `data` (at most [`TRACE_SNAP_LEN`]).
    pub len: u32,
    /// The frame's first bytes.
    pub data: [u8; TRACE_SNAP_LEN],
}

impl std::fmt::Debug for TraceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceRecord")
            .field("timestamp_ns", &self.timestamp_ns)
            .field("worker", &self.worker)
            .field("port", &self.port)
            .field("point", &self.point)
            .field("reason", &self.reason)
            .field("original_len", &self.original_len)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl TraceRecord {
    fn empty() -> Box<TraceRecord> {
        Box::new(TraceRecord {
            timestamp_ns: 0,
            worker: 0,
            port: 0,
            point: TracePoint::Rx,
            reason: None,
            original_len: 0,
            len: 0,
            data: [0; TRACE_SNAP_LEN],
        })
    }

    /// The bytes kept.
    pub fn frame(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(TRACE_SNAP_LEN)]
    }
}

/// Where a frame was seen, for [`TraceSession::offer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceMeta {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The worker.
    pub worker: u16,
    /// The port.
    pub port: PortId,
    /// The drop reason.
    pub reason: Option<DropReason>,
}

/// One armed trace: its point, filter, record pool and captured queue.
#[derive(Debug)]
pub struct TraceSession {
    point: TracePoint,
    filter: TraceFilter,
    pool: ArrayQueue<Box<TraceRecord>>,
    captured: ArrayQueue<Box<TraceRecord>>,
    matched: AtomicU64,
    missed: AtomicU64,
    closed: AtomicBool,
}

impl TraceSession {
    /// A session capturing at `point` what matches `filter`, with `records`
    /// records (1..=[`MAX_TRACE_RECORDS`]) allocated now.
    pub fn new(point: TracePoint, filter: TraceFilter, records: usize) -> Arc<TraceSession> {
        let records = records.clamp(1, MAX_TRACE_RECORDS);
        let pool = ArrayQueue::new(records);
        for _ in 0..records {
            // Capacity is `records`: every push fits.
            let _ = pool.push(TraceRecord::empty());
        }
        Arc::new(TraceSession {
            point,
            filter,
            pool,
            captured: ArrayQueue::new(records),
            matched: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The point it captures at.
    #[inline]
    pub fn point(&self) -> TracePoint {
        self.point
    }

    /// The filter.
    pub fn filter(&self) -> &TraceFilter {
        &self.filter
    }

    /// Offer a frame seen at this session's point (worker side): copied
    /// when it matches and a record is free, counted as missed when none
    /// is.
    #[inline]
    pub fn offer(&self, meta: TraceMeta, frame: &[u8]) {
        if self.closed.load(Ordering::Relaxed) || !self.filter.matches(frame, meta.reason) {
            return;
        }
        self.matched.fetch_add(1, Ordering::Relaxed);
        let Some(mut record) = self.pool.pop() else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let kept = frame.len().min(TRACE_SNAP_LEN);
        record.data[..kept].copy_from_slice(&frame[..kept]);
        record.len = kept as u32;
        record.original_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        record.timestamp_ns = meta.timestamp_ns;
        record.worker = meta.worker;
        record.port = meta.port;
        record.point = self.point;
        record.reason = meta.reason;
        if let Err(record) = self.captured.push(record) {
            // Cannot happen (as many queue slots as records); keep the record.
            let _ = self.pool.push(record);
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Offer a batch of port `port`'s frames (worker side). For the rx
    /// point pass `verdicts: None` before the pipeline runs; for tx and
    /// drop pass the verdicts after it: tx offers the frames sent to a
    /// port (with that port), drop those dropped (with the reason; a frame
    /// for the kernel stack counts as `pass_unsupported`).
    pub fn offer_batch(
        &self,
        worker: u16,
        port: PortId,
        timestamp_ns: u64,
        umem: &[u8],
        descs: &[Desc],
        verdicts: Option<&[Verdict]>,
    ) {
        let frame = |d: &Desc| -> &[u8] {
            usize::try_from(d.addr)
                .ok()
                .and_then(|a| umem.get(a..a.checked_add(d.len as usize)?))
                .unwrap_or(&[])
        };
        let meta = |port, reason| TraceMeta {
            timestamp_ns,
            worker,
            port,
            reason,
        };
        match (self.point, verdicts) {
            (TracePoint::Rx, None) => {
                for d in descs {
                    self.offer(meta(port, None), frame(d));
                }
            }
            (TracePoint::Tx, Some(verdicts)) => {
                for (d, v) in descs.iter().zip(verdicts) {
                    if let Verdict::Tx(out) = v {
                        self.offer(meta(*out, None), frame(d));
                    }
                }
            }
            (TracePoint::Drop, Some(verdicts)) => {
                for (d, v) in descs.iter().zip(verdicts) {
                    let reason = match v {
                        Verdict::Drop(reason) => *reason,
                        Verdict::Pass => DropReason::PassUnsupported,
                        Verdict::Tx(_) => continue,
                    };
                    self.offer(meta(port, Some(reason)), frame(d));
                }
            }
            _ => {}
        }
    }

    /// Take a captured record (control side); give it back with
    /// [`TraceSession::recycle`].
    pub fn take(&self) -> Option<Box<TraceRecord>> {
        self.captured.pop()
    }

    /// Return a record to the pool.
    pub fn recycle(&self, record: Box<TraceRecord>) {
        let _ = self.pool.push(record);
    }

    /// Frames that matched.
    pub fn matched(&self) -> u64 {
        self.matched.load(Ordering::Relaxed)
    }

    /// Frames that matched but found no free record.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Stop taking frames (workers may still hold the session for a batch).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// A trace is already armed on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a trace is already running on this node (one at a time)")]
pub struct TraceBusy;

/// The node's trace point, shared by its workers: at most one session armed.
#[derive(Debug, Default)]
pub struct TraceHub {
    armed: AtomicBool,
    session: ArcSwapOption<TraceSession>,
    /// Serialises arm and disarm (control side only; workers never take it).
    control: Mutex<()>,
}

impl TraceHub {
    /// A hub with nothing armed.
    pub fn new() -> TraceHub {
        TraceHub::default()
    }

    /// The armed session, if any (worker side: one relaxed load while
    /// disarmed).
    #[inline]
    pub fn armed(&self) -> Option<Arc<TraceSession>> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        self.session.load_full()
    }

    /// Arm `session`; refused while another one is armed.
    pub fn arm(&self, session: Arc<TraceSession>) -> Result<(), TraceBusy> {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if self.session.load().is_some() {
            return Err(TraceBusy);
        }
        self.session.store(Some(session));
        self.armed.store(true, Ordering::Release);
        Ok(())
    }

    /// Disarm `session` (nothing happens when another one is armed).
    pub fn disarm(&self, session: &Arc<TraceSession>) {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        session.close();
        let current = self.session.load();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, session)) {
            self.armed.store(false, Ordering::Release);
            self.session.store(None);
        }
    }

    /// Whether a session is armed.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }
}

/// Nanoseconds since the Unix epoch (one clock read per traced batch).
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Ethernet + IPv4 + UDP, 10.244.1.10:4000 → 10.244.2.10:53.
    fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    fn tcp_v6_frame(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 20];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[14 + 6] = 6;
        let src: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
        f[22..38].copy_from_slice(&src.octets());
        f[38..54].copy_from_slice(&dst.octets());
        f[54..56].copy_from_slice(&sport.to_be_bytes());
        f[56..58].copy_from_slice(&dport.to_be_bytes());
        f
    }

    fn arp_frame(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes());
        f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f[18] = 6;
        f[19] = 4;
        f[28..32].copy_from_slice(&sender);
        f[38..42].copy_from_slice(&target);
        f
    }

    fn parse(text: &str) -> TraceFilter {
        TraceFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_terms_joined_by_and() {
        let f = parse("udp and src net 10.244.1.0/24 and dst port 53 and reason no_route");
        assert_eq!(f.protocols, [TraceProtocol::Udp]);
        assert_eq!(
            f.addresses,
            [(Direction::Src, "10.244.1.0/24".parse().unwrap())]
        );
        assert_eq!(f.ports, [(Direction::Dst, 53)]);
        assert_eq!(f.reason, Some(DropReason::NoRoute));
        let f = parse("host 10.0.0.1 port 80");
        assert_eq!(
            f.addresses,
            [(Direction::Any, "10.0.0.1/32".parse().unwrap())]
        );
        assert_eq!(f.ports, [(Direction::Any, 80)]);
        let f = parse("dst fd00::/64 && icmp6");
        assert_eq!(
            f.addresses,
            [(Direction::Dst, "fd00::/64".parse().unwrap())]
        );
        assert_eq!(f.protocols, [TraceProtocol::Icmp6]);
        assert_eq!(parse(""), TraceFilter::default());
        assert_eq!(parse("  "), TraceFilter::default());
    }

    #[test]
    fn refuses_bad_filters_naming_the_word() {
        for (text, position, word) in [
            ("udp or tcp", 2, "or"),
            ("not udp", 1, "not"),
            ("port", 1, "port"),
            ("port 70000", 2, "70000"),
            ("src host 10.0.0.300", 3, "10.0.0.300"),
            ("net 10.0.0.0/33", 2, "10.0.0.0/33"),
            ("reason nope", 2, "nope"),
            ("reason", 1, "reason"),
            ("udp port x", 3, "x"),
            ("and udp", 1, "and"),
            ("udp and", 2, "and"),
            ("frobnicate", 1, "frobnicate"),
            ("src", 1, "src"),
        ] {
            let e = TraceFilter::parse(text).expect_err(text);
            assert_eq!(
                (e.position, e.word.as_str()),
                (position, word),
                "{text}: {e}"
            );
            assert!(
                e.to_string().starts_with(&format!("word {position} ")),
                "{e}"
            );
        }
        let many = vec!["udp"; MAX_TERMS + 1].join(" and ");
        assert!(TraceFilter::parse(&many).is_err());
    }

    #[test]
    fn matches_protocol_addresses_ports_and_reason() {
        let f = udp_frame([10, 244, 1, 10], [10, 244, 2, 10], 4000, 53);
        assert!(parse("").matches(&f, None));
        assert!(parse("udp").matches(&f, None));
        assert!(parse("ip").matches(&f, None));
        assert!(!parse("tcp").matches(&f, None));
        assert!(!parse("ip6").matches(&f, None));
        assert!(!parse("tcp and udp").matches(&f, None));
        assert!(!parse("vxlan").matches(&f, None));
        assert!(parse("src 10.244.1.10").matches(&f, None));
        assert!(!parse("dst 10.244.1.10").matches(&f, None));
        assert!(parse("host 10.244.2.10").matches(&f, None));
        assert!(parse("net 10.244.0.0/16 and port 4000").matches(&f, None));
        assert!(parse("dst port 53 and src port 4000").matches(&f, None));
        assert!(!parse("src port 53").matches(&f, None));
        assert!(!parse("host 10.244.3.1").matches(&f, None));
        assert!(parse("reason no_route").matches(&f, Some(DropReason::NoRoute)));
        assert!(!parse("reason no_route").matches(&f, Some(DropReason::SourceSpoofed)));
        assert!(!parse("reason no_route").matches(&f, None));
        let vx = udp_frame([192, 168, 100, 1], [192, 168, 100, 2], 5555, 4789);
        assert!(parse("vxlan and src 192.168.100.1").matches(&vx, None));

        let t = tcp_v6_frame(80, 443);
        assert!(parse("tcp and ip6 and dst port 443").matches(&t, None));
        assert!(parse("src fd00::1").matches(&t, None));
        assert!(!parse("src 10.0.0.1").matches(&t, None));
        assert!(!parse("udp").matches(&t, None));

        let a = arp_frame([10, 244, 1, 10], [10, 244, 1, 1]);
        assert!(parse("arp and src 10.244.1.10 and dst 10.244.1.1").matches(&a, None));
        assert!(!parse("arp and port 53").matches(&a, None));
        assert!(!parse("udp").matches(&a, None));
    }

    #[test]
    fn never_panics_on_short_or_odd_frames() {
        let full = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        let filters = [
            parse("udp and src 10.0.0.1 and port 2"),
            parse("ip6 and host fd00::1"),
            parse("arp and dst 10.0.0.2"),
        ];
        for len in 0..full.len() {
            for f in &filters {
                let _ = f.matches(&full[..len], None);
            }
        }
        // A non-first fragment has no ports.
        let mut frag = full.clone();
        frag[14 + 6] = 0x00;
        frag[14 + 7] = 0x10;
        assert!(parse("udp").matches(&frag, None));
        assert!(!parse("port 2").matches(&frag, None));
        // A VLAN tag is skipped.
        let mut tagged = full[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&full[12..]);
        assert!(parse("udp and dst port 2").matches(&tagged, None));
    }

    #[test]
    fn a_session_copies_matching_frames_into_pooled_records() {
        let session = TraceSession::new(TracePoint::Drop, parse("udp and dst port 53"), 2);
        let hit = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53);
        let other = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1000, 54);
        let mut umem = vec![0u8; 4096];
        umem[256..256 + hit.len()].copy_from_slice(&hit);
        umem[2048 + 256..2048 + 256 + other.len()].copy_from_slice(&other);
        let descs = [
            Desc {
                addr: 256,
                len: hit.len() as u32,
            },
            Desc {
                addr: 2048 + 256,
                len: other.len() as u32,
            },
            Desc {
                addr: 256,
                len: hit.len() as u32,
            },
            Desc {
                addr: 256,
                len: hit.len() as u32,
            },
        ];
        let verdicts = [
            Verdict::Drop(DropReason::NoRoute),
            Verdict::Drop(DropReason::NoRoute),
            Verdict::Tx(1),
            Verdict::Pass,
        ];
        // The rx form does nothing at the drop point.
        session.offer_batch(3, 2, 77, &umem, &descs, None);
        assert_eq!(session.matched(), 0);
        session.offer_batch(3, 2, 77, &umem, &descs, Some(&verdicts));
        assert_eq!(session.matched(), 2);
        let first = session.take().expect("a record");
        assert_eq!(first.frame(), &hit[..]);
        assert_eq!(
            (first.worker, first.port, first.timestamp_ns, first.reason),
            (3, 2, 77, Some(DropReason::NoRoute))
        );
        assert_eq!(first.original_len as usize, hit.len());
        let second = session.take().expect("a record");
        assert_eq!(second.reason, Some(DropReason::PassUnsupported));
        assert!(session.take().is_none());
        // Both records are out: the next match is missed, not waited for.
        session.offer_batch(3, 2, 78, &umem, &descs[..1], Some(&verdicts[..1]));
        assert_eq!(session.missed(), 1);
        session.recycle(first);
        session.offer_batch(3, 2, 79, &umem, &descs[..1], Some(&verdicts[..1]));
        assert_eq!(session.take().expect("a record").timestamp_ns, 79);
        // A descriptor outside the UMEM offers an empty frame, no panic.
        let bad = [Desc {
            addr: 1 << 40,
            len: 64,
        }];
        let any = TraceSession::new(TracePoint::Rx, TraceFilter::default(), 1);
        any.offer_batch(0, 0, 1, &umem, &bad, None);
        assert_eq!(any.take().expect("a record").len, 0);
    }

    #[test]
    fn tx_records_carry_the_egress_port() {
        let session = TraceSession::new(TracePoint::Tx, TraceFilter::default(), 4);
        let f = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        let mut umem = vec![0u8; 2048];
        umem[..f.len()].copy_from_slice(&f);
        let d = Desc {
            addr: 0,
            len: f.len() as u32,
        };
        session.offer_batch(
            0,
            1,
            5,
            &umem,
            &[d, d],
            Some(&[Verdict::Tx(2), Verdict::Drop(DropReason::NoRoute)]),
        );
        let r = session.take().expect("a record");
        assert_eq!((r.port, r.point, r.reason), (2, TracePoint::Tx, None));
        assert!(session.take().is_none());
    }

    #[test]
    fn one_session_at_a_time_and_disarm_stops_it() {
        let hub = TraceHub::new();
        assert!(hub.armed().is_none());
        let a = TraceSession::new(TracePoint::Rx, TraceFilter::default(), 1);
        let b = TraceSession::new(TracePoint::Rx, TraceFilter::default(), 1);
        hub.arm(Arc::clone(&a)).unwrap();
        assert_eq!(hub.arm(Arc::clone(&b)), Err(TraceBusy));
        assert!(Arc::ptr_eq(&hub.armed().unwrap(), &a));
        // Disarming another session leaves the armed one.
        hub.disarm(&b);
        assert!(hub.is_armed());
        hub.disarm(&a);
        assert!(hub.armed().is_none());
        // A worker still holding the closed session copies nothing.
        a.offer(
            TraceMeta {
                timestamp_ns: 0,
                worker: 0,
                port: 0,
                reason: None,
            },
            &[0u8; 60],
        );
        assert!(a.take().is_none());
        hub.arm(b).unwrap();
        assert!(hub.is_armed());
    }

    fn pod_a_udp(src_ip: [u8; 4], dst_ip: [u8; 4]) -> Vec<u8> {
        // pod-a (02:00:00:01:01:0a) to its gateway, the port's MAC, as in
        // tests/fixtures/node1.yaml.
        let builder =
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 1, 1, 0x0a], [2, 0, 0, 0, 1, 0x0a])
                .ipv4(src_ip, dst_ip, 64)
                .udp(4000, 5000);
        let mut out = Vec::new();
        builder.write(&mut out, b"trace me").expect("builds");
        out
    }

    #[test]
    fn a_worker_offers_its_dropped_frames_only_while_a_trace_is_armed() {
        use crate::counters::SharedCounters;
        use crate::io::memory::MemoryIo;
        use crate::tables::{TableHandle, Tables};
        use crate::worker::{Worker, WorkerOptions};

        let config =
            kxdp_config::NodeConfig::from_yaml_str(include_str!("../tests/fixtures/node1.yaml"))
                .expect("fixture");
        let handle = TableHandle::new(Tables::compile(&config, 1).expect("compiles"));
        let mut worker = Worker::new(
            MemoryIo::new(3, 2048, 256, 64),
            handle.reader(),
            Arc::new(SharedCounters::default()),
            WorkerOptions {
                index: 1,
                batch_size: 16,
                ..WorkerOptions::default()
            },
        );
        let hub = Arc::new(TraceHub::new());
        worker.set_trace(Arc::clone(&hub));
        worker.poll_once();
        let spoofed = pod_a_udp([10, 244, 1, 99], [10, 244, 1, 3]);
        let good = pod_a_udp([10, 244, 1, 2], [10, 244, 1, 3]);

        // Disarmed: dropped and counted, nothing captured anywhere.
        assert!(worker.io_mut().inject(1, &spoofed));
        worker.poll_once();
        assert_eq!(
            worker
                .pipeline()
                .counters
                .drops_for(DropReason::SourceSpoofed),
            1
        );

        let drops = TraceSession::new(
            TracePoint::Drop,
            TraceFilter::parse("udp and reason source_spoofed").expect("parses"),
            8,
        );
        hub.arm(Arc::clone(&drops)).expect("arms");
        assert!(worker.io_mut().inject(1, &good));
        assert!(worker.io_mut().inject(1, &spoofed));
        assert!(worker.io_mut().inject(1, &good));
        worker.poll_once();
        let record = drops.take().expect("the spoofed frame");
        assert_eq!(record.frame(), &spoofed[..]);
        assert_eq!(
            (record.worker, record.port, record.reason),
            (1, 1, Some(DropReason::SourceSpoofed))
        );
        assert!(record.timestamp_ns > 0);
        assert!(drops.take().is_none(), "only the spoofed frame matches");
        assert_eq!(worker.io_mut().drain_tx(2).len(), 2, "good frames still go");
        hub.disarm(&drops);

        // A tx trace sees the forwarded frames on their egress port,
        // rewritten (the TTL went down by one).
        let sent = TraceSession::new(TracePoint::Tx, TraceFilter::default(), 8);
        hub.arm(Arc::clone(&sent)).expect("arms");
        assert!(worker.io_mut().inject(1, &good));
        assert!(worker.io_mut().inject(1, &spoofed));
        worker.poll_once();
        let record = sent.take().expect("the forwarded frame");
        assert_eq!((record.port, record.reason), (2, None));
        assert_eq!(record.frame()[14 + 8], 63);
        assert!(sent.take().is_none());
        hub.disarm(&sent);
        assert!(worker.accounting().balanced());
    }

    #[test]
    fn point_labels_round_trip() {
        for p in [TracePoint::Rx, TracePoint::Tx, TracePoint::Drop] {
            assert_eq!(TracePoint::from_label(p.label()), Some(p));
        }
        assert_eq!(TracePoint::from_label("pass"), None);
    }
}
