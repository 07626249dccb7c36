//! Longest-prefix match, per tenant, for IPv4 and IPv6.
//!
//! Written here rather than taken from a crate (prefix-trie, ip_network_table)
//! because the workers need an immutable, allocation-free lookup that is as
//! fast as a hash probe when, as in a pod network, only a handful of prefix
//! lengths are in use (pods are /32 or /128, node CIDRs /24 or /64): one hash
//! table keyed by (tenant, length, masked address), probed from the longest
//! length present to the shortest. A lookup costs one probe per distinct
//! length, independent of the number of routes.

use rustc_hash::FxHashMap;

/// A tenant's index in the tables.
pub type TenantId = u16;

/// An immutable LPM table for one address family (`A` is `u32` for IPv4,
/// `u128` for IPv6), mapping prefixes to values of type `V`.
#[derive(Clone, Debug)]
pub struct Lpm<A: Address, V> {
    /// Prefix lengths present, longest first.
    lengths: Vec<u8>,
    entries: FxHashMap<(TenantId, u8, A), V>,
}

/// An address family's integer form.
pub trait Address: Copy + Eq + std::hash::Hash + std::fmt::Debug {
    /// Bits in an address.
    const BITS: u8;
    /// The address with all bits after the first `len` cleared.
    fn masked(self, len: u8) -> Self;
}

impl Address for u32 {
    const BITS: u8 = 32;
    #[inline]
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len.min(32))))
        }
    }
}

impl Address for u128 {
    const BITS: u8 = 128;
    #[inline]
    fn masked(self, len: u8) -> Self {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - u32::from(len.min(128))))
        }
    }
}

impl<A: Address, V> Default for Lpm<A, V> {
    fn default() -> Self {
        Lpm {
            lengths: Vec::new(),
            entries: FxHashMap::default(),
        }
    }
}

impl<A: Address, V> Lpm<A, V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert or replace a prefix; `len` is clamped to the family's width.
    /// Returns the previous value for exactly this prefix.
    pub fn insert(&mut self, tenant: TenantId, addr: A, len: u8, value: V) -> Option<V> {
        let len = len.min(A::BITS);
        if let Err(pos) = self.lengths.binary_search_by(|l| len.cmp(l)) {
            self.lengths.insert(pos, len);
        }
        self.entries.insert((tenant, len, addr.masked(len)), value)
    }

    /// Remove exactly this prefix.
    pub fn remove(&mut self, tenant: TenantId, addr: A, len: u8) -> Option<V> {
        let len = len.min(A::BITS);
        let removed = self.entries.remove(&(tenant, len, addr.masked(len)));
        if removed.is_some() && !self.entries.keys().any(|(_, l, _)| *l == len) {
            self.lengths.retain(|l| *l != len);
        }
        removed
    }

    /// The value of the longest prefix of `tenant` that contains `addr`.
    #[inline]
    pub fn lookup(&self, tenant: TenantId, addr: A) -> Option<&V> {
        for &len in &self.lengths {
            if let Some(v) = self.entries.get(&(tenant, len, addr.masked(len))) {
                return Some(v);
            }
        }
        None
    }

    /// The value stored for exactly this prefix.
    pub fn get_exact(&self, tenant: TenantId, addr: A, len: u8) -> Option<&V> {
        let len = len.min(A::BITS);
        self.entries.get(&(tenant, len, addr.masked(len)))
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry: (tenant, prefix length, masked address, value).
    pub fn iter(&self) -> impl Iterator<Item = (TenantId, u8, A, &V)> {
        self.entries.iter().map(|((t, l, a), v)| (*t, *l, *a, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious reference: scan every prefix, keep the longest match.
    fn naive<V: Clone>(
        routes: &[(TenantId, u32, u8, V)],
        tenant: TenantId,
        addr: u32,
    ) -> Option<V> {
        let mut best: Option<(u8, V)> = None;
        for (t, a, l, v) in routes {
            let l = (*l).min(32);
            if *t == tenant
                && a.masked(l) == addr.masked(l)
                && best.as_ref().is_none_or(|(bl, _)| l >= *bl)
            {
                best = Some((l, v.clone()));
            }
        }
        best.map(|(_, v)| v)
    }

    #[test]
    fn longest_prefix_wins_and_tenants_are_separate() {
        let mut lpm = Lpm::<u32, &str>::new();
        lpm.insert(0, 0x0af4_0000, 16, "cluster");
        lpm.insert(0, 0x0af4_0100, 24, "node1");
        lpm.insert(0, 0x0af4_0102, 32, "pod");
        lpm.insert(1, 0x0af4_0100, 24, "other-tenant");
        assert_eq!(lpm.lookup(0, 0x0af4_0102), Some(&"pod"));
        assert_eq!(lpm.lookup(0, 0x0af4_0103), Some(&"node1"));
        assert_eq!(lpm.lookup(0, 0x0af4_0203), Some(&"cluster"));
        assert_eq!(lpm.lookup(0, 0x0a00_0001), None);
        assert_eq!(lpm.lookup(1, 0x0af4_0102), Some(&"other-tenant"));
        assert_eq!(lpm.lookup(2, 0x0af4_0102), None);
        assert_eq!(lpm.remove(0, 0x0af4_0102, 32), Some("pod"));
        assert_eq!(lpm.lookup(0, 0x0af4_0102), Some(&"node1"));
        assert_eq!(lpm.remove(0, 0x0af4_0102, 32), None);
    }

    #[test]
    fn default_route_and_ipv6() {
        let mut lpm = Lpm::<u128, u8>::new();
        lpm.insert(0, 0, 0, 1);
        lpm.insert(0, 0xfd00_0000_0000_0000_0000_0000_0000_0000, 8, 2);
        assert_eq!(
            lpm.lookup(0, 0xfd12_0000_0000_0000_0000_0000_0000_0001),
            Some(&2)
        );
        assert_eq!(
            lpm.lookup(0, 0x2001_0000_0000_0000_0000_0000_0000_0001),
            Some(&1)
        );
    }

    proptest! {
        #[test]
        fn agrees_with_naive_reference(
            routes in proptest::collection::vec((0u16..3, any::<u32>(), 0u8..=32, any::<u16>()), 0..200),
            probes in proptest::collection::vec((0u16..3, any::<u32>()), 1..200),
        ) {
            let mut lpm = Lpm::<u32, u16>::new();
            let mut reference: Vec<(TenantId, u32, u8, u16)> = Vec::new();
            for (t, a, l, v) in &routes {
                lpm.insert(*t, *a, *l, *v);
                // Later inserts of the same prefix replace earlier ones.
                reference.retain(|(rt, ra, rl, _)| !(*rt == *t && *rl == *l && ra.masked(*l) == a.masked(*l)));
                reference.push((*t, *a, *l, *v));
            }
            // Probe both random addresses and addresses inside the routes.
            for (i, (t, a)) in probes.iter().enumerate() {
                let addr = if i % 2 == 0 || routes.is_empty() { *a } else {
                    let (_, ra, rl, _) = routes[i % routes.len()];
                    ra.masked(rl) | (a & !u32::MAX.checked_shl(32 - u32::from(rl)).unwrap_or(0))
                };
                prop_assert_eq!(lpm.lookup(*t, addr).copied(), naive(&reference, *t, addr));
            }
        }
    }
}
