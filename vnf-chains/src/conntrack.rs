//! The worker's connection table: per flow direction, the chain it belongs
//! to, which way it goes, and the per-flow state of the chain's functions
//! (policy verdict, policer bucket, load-balancer translation) — all in one
//! entry, so a packet costs one lookup whatever its chain holds.
//!
//! Each direction of a connection has its own entry (keyed by its 5-tuple
//! as it arrives): the initiator's, the reversed tuple, and, after a load
//! balancer translated the connection, the translated reply tuple. Entries
//! live in a bounded [`FlowTable`] (allocated once, least recently used
//! evicted, idle entries expire); a packet holds a [`crate::flow::FlowHandle`] to its
//! entry, checked before every use, so an entry evicted mid-batch is
//! noticed, never confused with another flow's.

use crate::bucket::TokenBucket;
use crate::context::{Direction, PacketContext, NO_CHAIN};
use crate::flow::{FlowKey, FlowTable};

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
    /// [`CONFIRMED`] and [`POLICY_ALLOWED`].
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
mod tests {
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
