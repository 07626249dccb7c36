//! The bottom module of the crate: what a packet is on its way through a
//! chain, the flow key it is looked up by, the identities policies and
//! classifiers select it by, and the worker's connection table that
//! remembers its flow. The executor, the chain set and every network
//! function use it; of the crate's modules it uses only the token bucket
//! (kept in a connection entry) and the error type, so it never closes a
//! module cycle.
//!
//! # Flow keys and the flow table
//!
//! A [`FlowKey`] is the 5-tuple of a packet in its tenant. A [`FlowTable`],
//! the bounded table every stateful stage keeps per worker, is a
//! set-associative hash table of fixed capacity, allocated once when the
//! worker's state is created: lookups and inserts never allocate; a full
//! bucket evicts its least recently used entry; entries idle longer than the
//! table's timeout count as absent.
//!
//! # Identities
//!
//! Identities are what policy and classifiers select pods by, instead of
//! their addresses. An identity is one (namespace, labels) pair that some
//! pod has. Pods with the same namespace and labels share it.
//! [`Identities`] is the universe of identities with their ids, allocated
//! stably: an identity keeps its id for as long as any pod has it, so rules
//! compiled against ids (policy, classifier selectors) stay valid while pods
//! come and go and change addresses. [`IdentityMap`] is the fast part that
//! changes with addresses: (tenant, pod IP) → identity id.
//!
//! # The packet context
//!
//! What a network function sees of a packet ([`PacketContext`]), which way
//! it goes ([`Direction`]), what it decides ([`StageAction`]), where the
//! frame bytes are ([`Frames`]) and what a whole chain decides
//! ([`ChainVerdict`]); drops carry the dataplane's [`DropReason`] (one of
//! [`DropReason::CHAIN`]).
//!
//! # The connection table
//!
//! The worker's connection table ([`Conntrack`]): per flow direction, the
//! chain it belongs to, which way it goes, and the per-flow state of the
//! chain's functions (policy verdict, policer bucket, load-balancer
//! translation) — all in one entry ([`Connection`]), so a packet costs one
//! lookup whatever its chain holds.
//!
//! Each direction of a connection has its own entry (keyed by its 5-tuple
//! as it arrives): the initiator's, the reversed tuple, and, after a load
//! balancer translated the connection, the translated reply tuple. Entries
//! live in a bounded [`FlowTable`] (allocated once, least recently used
//! evicted, idle entries expire); a packet holds a [`FlowHandle`] to its
//! entry, checked before every use, so an entry evicted mid-batch is
//! noticed, never confused with another flow's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kxdp_config::PodSpec;
use kxdp_dataplane::chain_hook::ChainVerdict;
use kxdp_dataplane::packet::{ip_proto, FrameMeta, L3, L4};
use kxdp_dataplane::tables::TenantId;
use kxdp_dataplane::wire::{self, icmpv4, icmpv6};
use kxdp_dataplane::{DropReason, PortId};
use kxdp_sys::hugepage;
use kxdp_sys::prefetch::{prefetch, prefetch_at};
use rustc_hash::FxHashMap;

use crate::bucket::TokenBucket;
use crate::error::ChainError;

/// IP protocol number of SCTP (its ports are read here: the parser does not).
pub const IPPROTO_SCTP: u8 = ip_proto::SCTP;

/// The 5-tuple of a packet within its tenant. IPv4 addresses are stored as
/// the low 32 bits of the `u128`s.
///
/// ICMP and ICMPv6 echo requests and replies carry their identifier as both
/// ports, so a reply's key is the request's [`FlowKey::reversed`]; other ICMP
/// messages and non-first fragments have ports 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (TCP, UDP, SCTP), or the echo identifier.
    pub src_port: u16,
    /// Destination port (TCP, UDP, SCTP), or the echo identifier.
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// The addresses are IPv6.
    pub ipv6: bool,
    /// The tenant whose address space the addresses belong to.
    pub tenant: TenantId,
}

impl FlowKey {
    /// The key of a parsed IP frame (`None` for ARP). `frame` is the frame
    /// `meta` was parsed from; it is read only for SCTP ports.
    #[inline]
    pub fn from_meta(tenant: TenantId, meta: &FrameMeta, frame: &[u8]) -> Option<FlowKey> {
        let (src, dst, ipv6) = match meta.l3 {
            L3::Ipv4 { src, dst } => (u128::from(src.to_bits()), u128::from(dst.to_bits()), false),
            L3::Ipv6 { src, dst } => (src.to_bits(), dst.to_bits(), true),
            L3::Arp => return None,
        };
        // Echo request/reply: the identifier as both ports; other ICMP
        // types: none.
        let (src_port, dst_port) = match meta.l4 {
            L4::Udp { src_port, dst_port } | L4::Tcp { src_port, dst_port } => (src_port, dst_port),
            L4::Icmp {
                msg_type: icmpv4::msg_type::ECHO_REPLY | icmpv4::msg_type::ECHO_REQUEST,
                ident,
                ..
            }
            | L4::Icmpv6 {
                msg_type: icmpv6::msg_type::ECHO_REQUEST | icmpv6::msg_type::ECHO_REPLY,
                ident,
                ..
            } => (ident, ident),
            L4::Other if meta.ip_proto == IPPROTO_SCTP => frame
                .get(meta.l4_offset..)
                .and_then(wire::transport_ports)
                .unwrap_or((0, 0)),
            _ => (0, 0),
        };
        Some(FlowKey {
            src,
            dst,
            src_port,
            dst_port,
            proto: meta.ip_proto,
            ipv6,
            tenant,
        })
    }

    /// The key of the other direction of the same flow.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..*self
        }
    }

    /// A well-mixed 64-bit hash of the key (wyhash-style folded multiplies).
    #[inline]
    pub fn hash(&self) -> u64 {
        let a = fold_mul((self.src as u64) ^ K0, ((self.src >> 64) as u64) ^ K1);
        let b = fold_mul((self.dst as u64) ^ K2, ((self.dst >> 64) as u64) ^ K3);
        // The ports are packed apart on purpose: read as one 32-bit word
        // right after a rewrite stored them as two 16-bit words, they would
        // cost a store-forwarding stall.
        let tail = (u64::from(self.src_port) << 48)
            | (u64::from(self.proto) << 40)
            | (u64::from(self.ipv6) << 32)
            | (u64::from(self.tenant) << 16)
            | u64::from(self.dst_port);
        let h = fold_mul(a ^ tail ^ K1, b ^ K0);
        fold_mul(h ^ K2, K3)
    }

    /// A hash of the client alone (tenant and source address): a Service
    /// with `sessionAffinity: ClientIP` picks its endpoint by it, so every
    /// connection of a client lands on the same endpoint while the
    /// endpoints stay (Maglev moves few clients when they change).
    #[inline]
    pub fn client_hash(&self) -> u64 {
        let a = fold_mul((self.src as u64) ^ K0, ((self.src >> 64) as u64) ^ K1);
        fold_mul(a ^ (u64::from(self.tenant) << 16) ^ K2, K3)
    }

    /// The source address.
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.src, self.ipv6)
    }

    /// The destination address.
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.dst, self.ipv6)
    }

    /// Whether the protocol has ports (TCP, UDP, SCTP).
    #[inline]
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, ip_proto::TCP | ip_proto::UDP | IPPROTO_SCTP)
    }
}

/// An address as the `u128` a [`FlowKey`] stores, and its family.
#[inline]
pub fn ip_bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), false),
        IpAddr::V6(v6) => (v6.to_bits(), true),
    }
}

/// The inverse of [`ip_bits`].
pub fn to_ip(bits: u128, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::from_bits(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
    }
}

// wyhash's secret constants: odd, with balanced bits.
const K0: u64 = 0xa076_1d64_78bd_642f;
const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;

/// Multiply to 128 bits and fold the halves.
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Entries per bucket.
const WAYS: usize = 4;

/// A [`FlowKey`] as a table slot stores it: five words, 40 bytes aligned
/// to 8 (the `u128`s' 16-byte alignment would pad it to 48), so a slot with
/// a small value fills one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PackedKey([u64; 5]);

impl PackedKey {
    #[inline(always)]
    fn pack(key: &FlowKey) -> Self {
        // The small fields are packed in an order unlike their layout in
        // `FlowKey`, so they are loaded one by one: a wide load of fields
        // just stored one by one would stall on store forwarding.
        let last = u64::from(key.src_port)
            | (u64::from(key.proto) << 16)
            | (u64::from(key.tenant) << 24)
            | (u64::from(key.ipv6) << 40)
            | (u64::from(key.dst_port) << 48);
        PackedKey([
            key.src as u64,
            (key.src >> 64) as u64,
            key.dst as u64,
            (key.dst >> 64) as u64,
            last,
        ])
    }

    /// Word by word, so the freshly packed side stays in registers.
    #[inline(always)]
    fn same(&self, other: &PackedKey) -> bool {
        let (a, b) = (&self.0, &other.0);
        a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4]
    }

    fn unpack(&self) -> FlowKey {
        let w = &self.0;
        FlowKey {
            src: u128::from(w[0]) | (u128::from(w[1]) << 64),
            dst: u128::from(w[2]) | (u128::from(w[3]) << 64),
            src_port: w[4] as u16,
            dst_port: (w[4] >> 48) as u16,
            proto: (w[4] >> 16) as u8,
            ipv6: (w[4] >> 40) & 1 == 1,
            tenant: (w[4] >> 24) as u16,
        }
    }
}

/// One entry, aligned to a cache line (a small value fits in one).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Slot<V> {
    key: PackedKey,
    last_seen: u64,
    /// Changes whenever the slot gets a new occupant (see [`FlowHandle`]).
    generation: u32,
    value: V,
}

/// Where an entry is: valid (see [`FlowTable::at_mut`]) until the entry is
/// removed, expires or is evicted, whatever takes its slot afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHandle {
    index: u32,
    generation: u32,
}

impl FlowHandle {
    /// A handle to no entry.
    pub const NONE: FlowHandle = FlowHandle {
        index: u32::MAX,
        generation: 0,
    };
}

/// A bounded, set-associative flow table: `capacity` entries in buckets of
/// four, allocated once. Never allocates after [`FlowTable::new`].
///
/// Every operation takes the key's [`FlowKey::hash`] (computed once per
/// packet by the caller) and the current time in nanoseconds. An entry not
/// seen for longer than the idle timeout is treated as absent and its slot
/// reused. Inserting into a full bucket evicts the bucket's least recently
/// seen entry (counted in [`FlowTable::evictions`]).
#[derive(Clone, Debug)]
pub struct FlowTable<V> {
    /// Per slot: 0 when empty, otherwise the hash's high half with the low
    /// bit set. Apart from the slots, so a bucket's tags share a cache line.
    tags: Box<[u32]>,
    slots: Box<[Slot<V>]>,
    bucket_mask: usize,
    idle_timeout_ns: u64,
    evictions: u64,
}

impl<V: Copy + Default> FlowTable<V> {
    /// A table of at least `capacity` entries (rounded up to a power of two,
    /// at least one bucket), whose entries expire after `idle_timeout_ns`.
    pub fn new(capacity: usize, idle_timeout_ns: u64) -> Self {
        let capacity = capacity.max(WAYS).next_power_of_two();
        let empty = Slot {
            last_seen: 0,
            generation: 0,
            key: PackedKey::default(),
            value: V::default(),
        };
        FlowTable {
            tags: hugepage::boxed_slice(capacity, 0),
            slots: hugepage::boxed_slice(capacity, empty),
            bucket_mask: capacity / WAYS - 1,
            idle_timeout_ns,
            evictions: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries evicted from full buckets so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Occupied slots (expired entries included until their slot is reused).
    pub fn len(&self) -> usize {
        self.tags.iter().filter(|&&t| t != 0).count()
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn bucket(&self, hash: u64) -> usize {
        (hash as usize & self.bucket_mask) * WAYS
    }

    #[inline(always)]
    fn tag(hash: u64) -> u32 {
        ((hash >> 32) as u32) | 1
    }

    #[inline(always)]
    fn expired(&self, slot: &Slot<V>, now: u64) -> bool {
        now.saturating_sub(slot.last_seen) > self.idle_timeout_ns
    }

    #[inline]
    fn find(&self, key: &FlowKey, hash: u64) -> Option<usize> {
        let base = self.bucket(hash);
        let tag = Self::tag(hash);
        let tags = self.tags.get(base..base + WAYS)?;
        let slots = self.slots.get(base..base + WAYS)?;
        let key = PackedKey::pack(key);
        (0..WAYS)
            .find(|&w| tags[w] == tag && slots[w].key.same(&key))
            .map(|w| base + w)
    }

    /// First of two prefetch steps for a batch: start loading the tags of
    /// `hash`'s bucket. A hint only: lookups are correct without it.
    #[inline(always)]
    pub fn prefetch_tags(&self, hash: u64) {
        if let Some(tag) = self.tags.get(self.bucket(hash)) {
            prefetch(tag);
        }
    }

    /// Second prefetch step, once the tags are (likely) cached: start
    /// loading both cache lines of each slot of `hash`'s bucket whose tag
    /// matches (usually one; none for a new flow).
    #[inline(always)]
    pub fn prefetch_slots(&self, hash: u64) {
        let base = self.bucket(hash);
        let tag = Self::tag(hash);
        let (Some(tags), Some(slots)) = (
            self.tags.get(base..base + WAYS),
            self.slots.get(base..base + WAYS),
        ) else {
            return;
        };
        for w in 0..WAYS {
            if tags[w] == tag {
                prefetch(&slots[w]);
                prefetch_at(&slots[w], 64);
            }
        }
    }

    /// The entry for `key`, marked as seen at `now`; `None` when absent or
    /// expired (an expired entry is removed).
    #[inline]
    pub fn get(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<&mut V> {
        let index = self.find(key, hash)?;
        if self.expired(&self.slots[index], now) {
            self.vacate(index);
            return None;
        }
        let slot = &mut self.slots[index];
        slot.last_seen = slot.last_seen.max(now);
        Some(&mut slot.value)
    }

    /// A handle to `key`'s entry, marked as seen at `now`; `None` when
    /// absent or expired.
    #[inline]
    pub fn get_handle(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<FlowHandle> {
        let index = self.find(key, hash)?;
        if self.expired(&self.slots[index], now) {
            self.vacate(index);
            return None;
        }
        let slot = &mut self.slots[index];
        slot.last_seen = slot.last_seen.max(now);
        Some(FlowHandle {
            index: index as u32,
            generation: slot.generation,
        })
    }

    /// [`FlowTable::insert`], returning a handle to the entry.
    #[inline]
    pub fn insert_handle(&mut self, key: FlowKey, hash: u64, value: V, now: u64) -> FlowHandle {
        let (index, generation) = match self.find(&key, hash) {
            // The same occupant: handles to it stay valid.
            Some(index) => (index, self.slots[index].generation),
            None => {
                // A new occupant: handles to the slot's last one die.
                let index = self.free_slot(hash, now);
                (index, self.slots[index].generation.wrapping_add(1))
            }
        };
        self.tags[index] = Self::tag(hash);
        self.slots[index] = Slot {
            key: PackedKey::pack(&key),
            last_seen: now,
            generation,
            value,
        };
        FlowHandle {
            index: index as u32,
            generation,
        }
    }

    /// The entry a handle points to, if it is still there. (A slot's
    /// generation changes whenever its entry goes, so the generation alone
    /// tells, from the entry's own cache line.)
    #[inline]
    pub fn at_mut(&mut self, handle: FlowHandle) -> Option<&mut V> {
        let slot = self.slots.get_mut(handle.index as usize)?;
        (slot.generation == handle.generation).then_some(&mut slot.value)
    }

    /// The key of the entry a handle points to, if it is still there.
    pub fn key_at(&self, handle: FlowHandle) -> Option<FlowKey> {
        let slot = self.slots.get(handle.index as usize)?;
        (slot.generation == handle.generation).then(|| slot.key.unpack())
    }

    /// Remove the entry a handle points to, if it is still there.
    pub fn remove_at(&mut self, handle: FlowHandle) -> Option<V> {
        let value = *self.at_mut(handle)?;
        self.vacate(handle.index as usize);
        Some(value)
    }

    /// Empty a slot; handles to its entry die.
    #[inline]
    fn vacate(&mut self, index: usize) {
        self.tags[index] = 0;
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
    }

    /// The entry for `key` without touching it (no expiry check, no refresh).
    pub fn peek(&self, key: &FlowKey, hash: u64) -> Option<&V> {
        self.find(key, hash).map(|i| &self.slots[i].value)
    }

    /// Insert or overwrite the entry for `key`, seen at `now`.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, value: V, now: u64) -> &mut V {
        let handle = self.insert_handle(key, hash, value, now);
        &mut self.slots[handle.index as usize].value
    }

    /// A slot of `hash`'s bucket to write a new entry into: an empty or
    /// expired one, else the least recently seen (evicted).
    fn free_slot(&mut self, hash: u64, now: u64) -> usize {
        let base = self.bucket(hash);
        let mut oldest = base;
        for i in base..base + WAYS {
            let slot = &self.slots[i];
            if self.tags[i] == 0 || self.expired(slot, now) {
                return i;
            }
            if slot.last_seen < self.slots[oldest].last_seen {
                oldest = i;
            }
        }
        self.evictions += 1;
        oldest
    }

    /// Remove the entry for `key`, returning it.
    #[inline]
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> Option<V> {
        let index = self.find(key, hash)?;
        self.vacate(index);
        Some(self.slots[index].value)
    }

    /// Keep the entries for which `keep` returns true (it may also change
    /// them). For control-plane events (a snapshot swap), not per packet.
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &mut V) -> bool) {
        for (tag, slot) in self.tags.iter_mut().zip(self.slots.iter_mut()) {
            if *tag != 0 && !keep(&slot.key.unpack(), &mut slot.value) {
                *tag = 0;
                slot.generation = slot.generation.wrapping_add(1);
            }
        }
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        for index in 0..self.tags.len() {
            if self.tags[index] != 0 {
                self.vacate(index);
            }
        }
    }
}

/// The id of an identity. [`IdentityId::WORLD`] (0) is every address that
/// is no known pod's: no pod or namespace selector selects it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityId(pub u32);

impl IdentityId {
    /// Not a known pod.
    pub const WORLD: IdentityId = IdentityId(0);

    /// As an index into per-identity tables.
    #[inline(always)]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What an identity stands for: a namespace and a set of pod labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKey {
    /// The pods' namespace.
    pub namespace: String,
    /// The pods' labels.
    pub labels: BTreeMap<String, String>,
}

impl IdentityKey {
    /// The identity key of a pod.
    pub fn of(pod: &PodSpec) -> IdentityKey {
        IdentityKey {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
        }
    }
}

/// The universe of identities, with stable ids (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identities {
    /// Index = id; `None` for WORLD and for freed ids.
    keys: Vec<Option<IdentityKey>>,
    by_key: BTreeMap<IdentityKey, IdentityId>,
}

impl Identities {
    /// The identities of `pods`. Keys that `previous` knows keep their ids;
    /// ids of keys no pod has any more are freed; new keys take the lowest
    /// free ids, in key order (so the result depends only on `pods` and
    /// `previous`).
    pub fn assign(
        pods: &[PodSpec],
        previous: Option<&Identities>,
    ) -> Result<Identities, ChainError> {
        let wanted: BTreeSet<IdentityKey> = pods.iter().map(IdentityKey::of).collect();
        let mut keys: Vec<Option<IdentityKey>> = vec![None];
        let mut by_key = BTreeMap::new();
        let mut fresh = Vec::new();
        for key in wanted {
            match previous.and_then(|p| p.id_of(&key)) {
                Some(id) => {
                    if keys.len() <= id.index() {
                        keys.resize(id.index() + 1, None);
                    }
                    keys[id.index()] = Some(key.clone());
                    by_key.insert(key, id);
                }
                None => fresh.push(key),
            }
        }
        let mut next_free = 1;
        for key in fresh {
            while keys.get(next_free).is_some_and(Option::is_some) {
                next_free += 1;
            }
            if keys.len() <= next_free {
                keys.resize(next_free + 1, None);
            }
            let id = IdentityId(
                u32::try_from(next_free).map_err(|_| ChainError::TooMany("identities"))?,
            );
            keys[next_free] = Some(key.clone());
            by_key.insert(key, id);
        }
        Ok(Identities { keys, by_key })
    }

    /// The id of a key, when some pod has it.
    pub fn id_of(&self, key: &IdentityKey) -> Option<IdentityId> {
        self.by_key.get(key).copied()
    }

    /// The key of an id.
    pub fn key(&self, id: IdentityId) -> Option<&IdentityKey> {
        self.keys.get(id.index()).and_then(Option::as_ref)
    }

    /// One more than the largest id (the size of per-identity tables).
    pub fn id_bound(&self) -> usize {
        self.keys.len()
    }

    /// Every identity with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (IdentityId, &IdentityKey)> {
        self.keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.as_ref().map(|k| (IdentityId(i as u32), k)))
    }

    /// Number of identities (WORLD not counted).
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there is no identity.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// A set of identities, as a bitmap indexed by id. WORLD is never in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentitySet {
    words: Box<[u64]>,
}

impl IdentitySet {
    /// The identities of `universe` whose key satisfies `select`.
    pub fn select(universe: &Identities, mut select: impl FnMut(&IdentityKey) -> bool) -> Self {
        let mut words = vec![0u64; universe.id_bound().div_ceil(64)];
        for (id, key) in universe.iter() {
            if select(key) {
                words[id.index() / 64] |= 1 << (id.index() % 64);
            }
        }
        IdentitySet {
            words: words.into_boxed_slice(),
        }
    }

    /// Add every member of `other`.
    pub fn union_with(&mut self, other: &IdentitySet) {
        if other.words.len() > self.words.len() {
            let mut words = self.words.to_vec();
            words.resize(other.words.len(), 0);
            self.words = words.into_boxed_slice();
        }
        for (word, add) in self.words.iter_mut().zip(other.words.iter()) {
            *word |= add;
        }
    }

    /// Whether `id` is in the set.
    #[inline(always)]
    pub fn contains(&self, id: IdentityId) -> bool {
        let i = id.index();
        self.words
            .get(i / 64)
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

/// (tenant, pod address) → identity: the only part of identity-based policy
/// that changes when a pod gets a new address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityMap {
    v4: FxHashMap<(TenantId, u32), IdentityId>,
    v6: FxHashMap<(TenantId, u128), IdentityId>,
}

impl IdentityMap {
    /// The map of `pods` (both addresses of dual-stack pods), with tenants
    /// resolved by `tenant_id`. What validation refuses (`check_pods` in
    /// `kxdp_config`) is left out: a pod of an unknown tenant has no
    /// entry, and of two pods of a tenant with one address the first one
    /// keeps it.
    pub fn build(
        pods: &[PodSpec],
        identities: &Identities,
        tenant_id: impl Fn(&str) -> Option<TenantId>,
    ) -> IdentityMap {
        let mut map = IdentityMap::default();
        for pod in pods {
            let Some(tenant) = tenant_id(&pod.tenant) else {
                continue;
            };
            let id = identities
                .id_of(&IdentityKey::of(pod))
                .unwrap_or(IdentityId::WORLD);
            for ip in std::iter::once(pod.ip).chain(pod.ipv6) {
                match ip {
                    IpAddr::V4(v4) => map.v4.entry((tenant, v4.to_bits())).or_insert(id),
                    IpAddr::V6(v6) => map.v6.entry((tenant, v6.to_bits())).or_insert(id),
                };
            }
        }
        map
    }

    /// The identity of an address (as a [`FlowKey`] stores it) in a
    /// tenant; WORLD when no pod has it.
    #[inline]
    pub fn lookup(&self, tenant: TenantId, addr: u128, ipv6: bool) -> IdentityId {
        let found = if ipv6 {
            self.v6.get(&(tenant, addr))
        } else {
            self.v4.get(&(tenant, addr as u32))
        };
        found.copied().unwrap_or(IdentityId::WORLD)
    }

    /// [`IdentityMap::lookup`] of an `IpAddr`.
    pub fn lookup_ip(&self, tenant: TenantId, ip: IpAddr) -> IdentityId {
        let (bits, ipv6) = ip_bits(ip);
        self.lookup(tenant, bits, ipv6)
    }

    /// Number of addresses mapped.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether no address is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which way a packet goes relative to its flow's initiator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the flow's initiator (the first packet the chain saw).
    #[default]
    Forward,
    /// Back to the initiator: symmetric chains run their stages in reverse.
    Reply,
}

/// What one stage decides for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StageAction {
    /// Go on to the next stage.
    #[default]
    Pass,
    /// Drop, counted under this reason.
    Drop(DropReason),
    /// Send the frame out of this port (into a VNF); the chain resumes when
    /// it comes back (see [`crate::ChainSet::resume_point`]).
    Redirect(PortId),
}

/// Sentinel chain index: no chain.
pub(crate) const NO_CHAIN: u16 = u16::MAX;

/// One packet on its way through a chain: its metadata, flow, identities and
/// position. The worker makes one with [`PacketContext::new`] for each
/// parsed frame of a batch (in a reused buffer: the type is `Copy` and
/// allocates nothing); the executor fills in the rest.
#[derive(Clone, Copy, Debug)]
pub struct PacketContext {
    /// The frame's metadata; kept up to date when a stage rewrites addresses.
    pub meta: FrameMeta,
    /// Frame length in bytes (what counters count).
    pub len: u32,
    /// The port the frame arrived on.
    pub in_port: PortId,
    /// The tenant the packet belongs to (set to the chain's tenant when the
    /// frame comes back from an external VNF).
    pub tenant: TenantId,
    /// The flow key, kept up to date when a stage rewrites addresses.
    pub flow: FlowKey,
    /// Source identity (valid when `identities_known`).
    pub src_identity: IdentityId,
    /// Destination identity (valid when `identities_known`).
    pub dst_identity: IdentityId,
    /// Whether the identities were looked up for the current `flow`.
    pub identities_known: bool,
    /// Which way the packet goes relative to its flow's initiator.
    pub direction: Direction,
    /// The current stage's decision.
    pub action: StageAction,
    /// The chain's decision, once done.
    pub outcome: ChainVerdict,
    /// Index of the chain in the set, or [`NO_CHAIN`].
    pub(crate) chain: u16,
    /// The next stage to run.
    pub(crate) stage: u16,
    /// Still inside its chain.
    pub(crate) running: bool,
    /// Is an IP packet (has a flow key).
    pub(crate) is_ip: bool,
    /// Classified at this packet (no connection entry yet): the entry stays
    /// only if the chain does not drop it.
    pub(crate) fresh: bool,
    /// Its connection entry.
    pub(crate) handle: FlowHandle,
    /// Set by a load balancer that created or changed a translation: the
    /// executor then records the translated reply direction.
    pub(crate) nat: Option<NatNote>,
}

/// A translation made for a packet, for the executor to remember the
/// reply direction by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NatNote {
    /// The address replies must come from again (the ClusterIP).
    pub(crate) ip: u128,
    /// The port replies must come from again (the service port).
    pub(crate) port: u16,
}

impl PacketContext {
    /// The context of a frame parsed into `meta`, received on `in_port` in
    /// `tenant`. Reads `frame` only for SCTP ports.
    #[inline]
    pub fn new(frame: &[u8], meta: FrameMeta, in_port: PortId, tenant: TenantId) -> Self {
        let flow = FlowKey::from_meta(tenant, &meta, frame);
        PacketContext {
            meta,
            len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            in_port,
            tenant,
            flow: flow.unwrap_or_default(),
            src_identity: IdentityId::WORLD,
            dst_identity: IdentityId::WORLD,
            identities_known: false,
            direction: Direction::Forward,
            action: StageAction::Pass,
            outcome: ChainVerdict::NoChain,
            chain: NO_CHAIN,
            stage: 0,
            running: false,
            is_ip: flow.is_some(),
            fresh: false,
            handle: FlowHandle::NONE,
            nat: None,
        }
    }

    /// Replace the flow key (after a rewrite).
    #[inline]
    pub fn set_flow(&mut self, flow: FlowKey) {
        self.flow = flow;
        self.identities_known = false;
    }

    /// The index of the chain it was classified into, if any.
    pub fn chain_index(&self) -> Option<usize> {
        (self.chain != NO_CHAIN).then_some(usize::from(self.chain))
    }
}

/// Where a batch's frame bytes live, indexed like the batch's contexts. The
/// worker implements it over its UMEM and descriptors; tests over `Vec`s.
pub trait Frames {
    /// The bytes of frame `index` (from its Ethernet header), writable.
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]>;

    /// Ask for a copy of frame `index`, as it is now, to be sent out of
    /// `port`; false when no copy could be made (no buffer left for it, the
    /// port's transmit batch full, no such port). Called by the mirror stage
    /// at its place in the chain, so later rewrites do not show in the copy.
    /// The worker's implementation copies into a frame it lent the batch and
    /// sends the copy after the batch (see `kxdp_dataplane::chain_hook`).
    /// The default makes no copies.
    fn mirror(&mut self, index: usize, port: PortId) -> bool {
        let _ = (index, port);
        false
    }
}

impl Frames for [Vec<u8>] {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(Vec::as_mut_slice)
    }
}

impl Frames for Vec<Vec<u8>> {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(Vec::as_mut_slice)
    }
}

impl Frames for [&mut [u8]] {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(|f| &mut **f)
    }
}

/// A load-balancer translation remembered for a flow direction. Addresses
/// are stored as four words (IPv4 in the last).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Translation {
    /// None.
    #[default]
    None,
    /// Client → service: the destination becomes this backend. `epoch` is
    /// the service table's when the backend was last checked.
    Forward {
        /// The load-balancer stage.
        owner: u32,
        /// Backend address.
        ip: [u32; 4],
        /// Backend (target) port.
        port: u16,
        /// Service-table epoch of the last check.
        epoch: u64,
    },
    /// Backend → client: the source becomes the service again.
    Reply {
        /// ClusterIP.
        ip: [u32; 4],
        /// Service port.
        port: u16,
    },
}

/// A `u128` address as four words.
#[inline(always)]
pub(crate) fn split(ip: u128) -> [u32; 4] {
    [
        (ip >> 96) as u32,
        (ip >> 64) as u32,
        (ip >> 32) as u32,
        ip as u32,
    ]
}

/// Four words as a `u128` address.
#[inline(always)]
pub(crate) fn join(words: [u32; 4]) -> u128 {
    (u128::from(words[0]) << 96)
        | (u128::from(words[1]) << 64)
        | (u128::from(words[2]) << 32)
        | u128::from(words[3])
}

/// One flow direction's entry: 64 bytes, so that with its key it takes
/// two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Connection {
    /// The chain ([`NO_CHAIN`]: the flow matched none).
    pub(crate) chain: u16,
    /// Which way this direction goes relative to the initiator.
    pub(crate) direction: Direction,
    /// [`CONFIRMED`], [`POLICY_ALLOWED`] and [`SENT_FIN_OR_RST`].
    flags: u8,
    /// The stage whose bucket `bucket` is (0: none).
    pub(crate) bucket_owner: u32,
    /// The policy epoch under which the connection was last allowed.
    pub(crate) policy_epoch: u64,
    /// The per-flow policer bucket, owned by stage `bucket_owner`.
    pub(crate) bucket: TokenBucket,
    /// The load-balancer translation.
    pub(crate) translation: Translation,
}

/// A packet of the flow made it through the chain (a first packet's entry
/// is removed again when the chain drops it).
const CONFIRMED: u8 = 1;
/// The policy allowed the connection (under `policy_epoch`).
const POLICY_ALLOWED: u8 = 2;
/// This direction of a load-balanced TCP connection carried a FIN or an
/// RST: the connection is closing (see `load_balancer`).
const SENT_FIN_OR_RST: u8 = 4;

impl Default for Connection {
    fn default() -> Self {
        Connection::new(NO_CHAIN, Direction::Forward, true)
    }
}

impl Connection {
    /// A fresh entry.
    pub(crate) fn new(chain: u16, direction: Direction, confirmed: bool) -> Self {
        Connection {
            chain,
            direction,
            flags: if confirmed { CONFIRMED } else { 0 },
            bucket_owner: 0,
            policy_epoch: 0,
            bucket: TokenBucket::default(),
            translation: Translation::None,
        }
    }

    /// Whether a packet of the flow made it through the chain.
    #[inline]
    pub(crate) fn confirmed(&self) -> bool {
        self.flags & CONFIRMED != 0
    }

    /// Mark that a packet of the flow made it through the chain.
    #[inline]
    pub(crate) fn confirm(&mut self) {
        self.flags |= CONFIRMED;
    }

    /// Whether this direction carried a TCP FIN or RST.
    #[inline]
    pub(crate) fn sent_fin_or_rst(&self) -> bool {
        self.flags & SENT_FIN_OR_RST != 0
    }

    /// Mark that this direction carried a TCP FIN or RST.
    #[inline]
    pub(crate) fn mark_fin_or_rst(&mut self) {
        self.flags |= SENT_FIN_OR_RST;
    }

    /// Whether the policy allowed the connection (under `policy_epoch`).
    #[inline]
    pub(crate) fn policy_allowed(&self) -> bool {
        self.flags & POLICY_ALLOWED != 0
    }

    /// Record the policy's verdict on the connection.
    #[inline]
    pub(crate) fn set_policy(&mut self, allowed: bool, epoch: u64) {
        if allowed {
            self.flags |= POLICY_ALLOWED;
        } else {
            self.flags &= !POLICY_ALLOWED;
        }
        self.policy_epoch = epoch;
    }
}

/// The connection table.
#[derive(Debug)]
pub struct Conntrack {
    pub(crate) table: FlowTable<Connection>,
}

impl Conntrack {
    /// Room for `capacity` flow directions, each forgotten `idle_timeout_ns`
    /// after its last packet.
    pub fn new(capacity: usize, idle_timeout_ns: u64) -> Self {
        Conntrack {
            table: FlowTable::new(capacity, idle_timeout_ns),
        }
    }

    /// The entry of a packet in a chain, if it still has one.
    #[inline]
    pub fn entry(&mut self, ctx: &PacketContext) -> Option<&mut Connection> {
        self.table.at_mut(ctx.handle)
    }

    /// The entry of a flow direction by its key (a lookup: for a
    /// connection's other direction, not per packet).
    #[inline]
    pub fn entry_of(&mut self, key: &FlowKey, now: u64) -> Option<&mut Connection> {
        self.table.get(key, key.hash(), now)
    }

    /// Entries evicted from full buckets so far.
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }
}

#[cfg(test)]
mod flow_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            src: u128::from(n),
            dst: 7,
            src_port: 1000,
            dst_port: 80,
            proto: 6,
            ipv6: false,
            tenant: 0,
        }
    }

    #[test]
    fn packed_keys_round_trip() {
        let k = FlowKey {
            src: u128::MAX - 5,
            dst: 1 << 100,
            src_port: 65_535,
            dst_port: 1,
            proto: 132,
            ipv6: true,
            tenant: 65_534,
        };
        assert_eq!(PackedKey::pack(&k).unpack(), k);
        assert_eq!(PackedKey::pack(&key(3)).unpack(), key(3));
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 64);
    }

    #[test]
    fn reversed_twice_is_identity_and_hash_differs_by_direction() {
        let k = key(5);
        assert_eq!(k.reversed().reversed(), k);
        assert_ne!(k.hash(), k.reversed().hash());
    }

    #[test]
    fn insert_get_remove() {
        let mut table: FlowTable<u32> = FlowTable::new(64, 1_000);
        for n in 0..20 {
            table.insert(key(n), key(n).hash(), n, 0);
        }
        for n in 0..20 {
            assert_eq!(table.get(&key(n), key(n).hash(), 10).copied(), Some(n));
        }
        assert_eq!(table.remove(&key(3), key(3).hash()), Some(3));
        assert_eq!(table.get(&key(3), key(3).hash(), 10), None);
        assert_eq!(table.len(), 19);
        // Handles: valid while the entry is there.
        let h = table.get_handle(&key(4), key(4).hash(), 11).unwrap();
        assert_eq!(table.at_mut(h).copied(), Some(4));
        // Overwriting the same key keeps the handle valid.
        let h2 = table.insert_handle(key(4), key(4).hash(), 40, 11);
        assert_eq!((h2, table.at_mut(h).copied()), (h, Some(40)));
        assert_eq!(table.remove_at(h), Some(40));
        assert_eq!(table.at_mut(h), None);
        assert_eq!(table.remove_at(h), None);
        // A new occupant of the slot does not answer to the old handle.
        let j = table.insert_handle(key(4), key(4).hash(), 44, 12);
        assert_ne!(j, h);
        assert_eq!(table.at_mut(h), None);
        assert_eq!(table.at_mut(j).copied(), Some(44));
        assert_eq!(table.at_mut(FlowHandle::NONE), None);
    }

    #[test]
    fn entries_expire_after_idle_timeout() {
        let mut table: FlowTable<u32> = FlowTable::new(16, 100);
        table.insert(key(1), key(1).hash(), 1, 0);
        assert!(table.get(&key(1), key(1).hash(), 100).is_some());
        // Seen at 100: alive until 200.
        assert!(table.get(&key(1), key(1).hash(), 200).is_some());
        assert!(table.get(&key(1), key(1).hash(), 301).is_none());
        assert!(table.is_empty());
    }

    #[test]
    fn full_bucket_evicts_least_recently_seen() {
        // One bucket: every key collides.
        let mut table: FlowTable<u32> = FlowTable::new(4, u64::MAX);
        let first = table.insert_handle(key(0), key(0).hash(), 0, 0);
        for n in 1..4 {
            table.insert(key(n), key(n).hash(), n, u64::from(n));
        }
        // Touch key 0 so key 1 becomes the oldest.
        table.get(&key(0), key(0).hash(), 10);
        // (A handle taken without touching: seen at 1, as inserted.)
        let second = table.get_handle(&key(1), key(1).hash(), 1).unwrap();
        table.insert(key(9), key(9).hash(), 9, 11);
        assert_eq!(table.evictions(), 1);
        assert_eq!(table.at_mut(first).copied(), Some(0));
        assert_eq!(
            table.at_mut(second),
            None,
            "the evicted entry's handle is dead"
        );
        assert!(table.peek(&key(1), key(1).hash()).is_none());
        for n in [0, 2, 3, 9] {
            assert!(table.peek(&key(n), key(n).hash()).is_some(), "{n}");
        }
    }

    #[test]
    fn echo_reply_key_is_request_reversed() {
        let meta = |src: [u8; 4], dst: [u8; 4], icmp_type: u8| FrameMeta {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            vlan: None,
            l3_offset: 14,
            l3: L3::Ipv4 {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
            },
            l3_len: 28,
            ip_proto: ip_proto::ICMP,
            l4_offset: 34,
            l4: L4::Icmp {
                msg_type: icmp_type,
                code: 0,
                ident: 0x1234,
            },
            is_fragment: false,
        };
        let request = FlowKey::from_meta(0, &meta([10, 0, 0, 1], [10, 0, 0, 2], 8), &[]).unwrap();
        let reply = FlowKey::from_meta(0, &meta([10, 0, 0, 2], [10, 0, 0, 1], 0), &[]).unwrap();
        assert_eq!(request.reversed(), reply);
    }
}

#[cfg(test)]
pub(crate) mod identity_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn pod(name: &str, ns: &str, ip: &str, labels: &[(&str, &str)]) -> PodSpec {
        PodSpec {
            name: name.into(),
            tenant: "blue".into(),
            ip: ip.parse().unwrap(),
            ipv6: None,
            mac: kxdp_config::MacAddr([2, 0, 0, 0, 0, 1]),
            interface: format!("veth-{name}"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            namespace: ns.into(),
            container_id: None,
        }
    }

    #[test]
    fn same_namespace_and_labels_share_an_identity() {
        let pods = [
            pod("a", "prod", "10.0.0.1", &[("app", "web")]),
            pod("b", "prod", "10.0.0.2", &[("app", "web")]),
            pod("c", "dev", "10.0.0.3", &[("app", "web")]),
            pod("d", "prod", "10.0.0.4", &[("app", "db")]),
        ];
        let ids = Identities::assign(&pods, None).unwrap();
        assert_eq!(ids.len(), 3);
        let map = IdentityMap::build(&pods, &ids, |_| Some(0));
        let id = |ip: &str| map.lookup_ip(0, ip.parse().unwrap());
        assert_eq!(id("10.0.0.1"), id("10.0.0.2"));
        assert_ne!(id("10.0.0.1"), id("10.0.0.3"));
        assert_ne!(id("10.0.0.1"), id("10.0.0.4"));
        assert_eq!(id("10.0.0.9"), IdentityId::WORLD);
        assert_eq!(
            map.lookup_ip(1, "10.0.0.1".parse().unwrap()),
            IdentityId::WORLD
        );
    }

    #[test]
    fn ids_are_stable_across_churn() {
        let first = [
            pod("a", "prod", "10.0.0.1", &[("app", "web")]),
            pod("d", "prod", "10.0.0.4", &[("app", "db")]),
        ];
        let ids = Identities::assign(&first, None).unwrap();
        let db = ids.id_of(&IdentityKey::of(&first[1])).unwrap();
        let web = ids.id_of(&IdentityKey::of(&first[0])).unwrap();
        // web goes away, a new label set arrives, db moves to a new address.
        let second = [
            pod("d", "prod", "10.0.0.99", &[("app", "db")]),
            pod("e", "prod", "10.0.0.5", &[("app", "cache")]),
        ];
        let ids2 = Identities::assign(&second, Some(&ids)).unwrap();
        assert_eq!(ids2.id_of(&IdentityKey::of(&second[0])), Some(db));
        // The freed id is reused by the new key.
        assert_eq!(ids2.id_of(&IdentityKey::of(&second[1])), Some(web));
        assert_eq!(ids2.len(), 2);
    }

    /// Validation refuses two pods of a tenant with one address
    /// (`refuses_duplicate_pod_ips_within_a_tenant` in kxdp-config's
    /// tests); given them anyway, the map keeps the first pod's identity.
    #[test]
    fn duplicate_address_first_pod_wins() {
        let pods = [
            pod("a", "prod", "10.0.0.1", &[("app", "a")]),
            pod("b", "prod", "10.0.0.1", &[("app", "b")]),
        ];
        let ids = Identities::assign(&pods, None).unwrap();
        let map = IdentityMap::build(&pods, &ids, |_| Some(0));
        assert_eq!(map.len(), 1);
        assert_eq!(
            map.lookup_ip(0, "10.0.0.1".parse().unwrap()),
            ids.id_of(&IdentityKey::of(&pods[0])).unwrap()
        );
    }

    /// A pod of a tenant `tenant_id` does not know has no entry.
    #[test]
    fn a_pod_of_an_unknown_tenant_has_no_address() {
        let pods = [pod("a", "prod", "10.0.0.1", &[])];
        let ids = Identities::assign(&pods, None).unwrap();
        assert!(IdentityMap::build(&pods, &ids, |_| None).is_empty());
    }

    #[test]
    fn identity_sets() {
        let pods = [
            pod("a", "prod", "10.0.0.1", &[("app", "web")]),
            pod("d", "prod", "10.0.0.4", &[("app", "db")]),
        ];
        let ids = Identities::assign(&pods, None).unwrap();
        let web = IdentitySet::select(&ids, |k| k.labels.get("app").is_some_and(|v| v == "web"));
        assert!(web.contains(ids.id_of(&IdentityKey::of(&pods[0])).unwrap()));
        assert!(!web.contains(ids.id_of(&IdentityKey::of(&pods[1])).unwrap()));
        assert!(!web.contains(IdentityId::WORLD));
        assert!(!web.contains(IdentityId(10_000)));
    }
}

#[cfg(test)]
mod conntrack_tests {
    use super::*;

    #[test]
    fn addresses_split_and_join() {
        for ip in [0u128, 1, 0x0a00_0001, u128::MAX, 0xfd00 << 112 | 0x1234] {
            assert_eq!(join(split(ip)), ip);
        }
    }

    #[test]
    fn an_entry_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Translation>(), 32);
        assert_eq!(std::mem::size_of::<Connection>(), 64);
    }

    #[test]
    fn flags() {
        let mut c = Connection::new(1, Direction::Reply, false);
        assert!(!c.confirmed() && !c.policy_allowed());
        c.confirm();
        c.set_policy(true, 7);
        assert!(c.confirmed() && c.policy_allowed() && c.policy_epoch == 7);
        c.set_policy(false, 8);
        assert!(c.confirmed() && !c.policy_allowed() && c.policy_epoch == 8);
    }
}
