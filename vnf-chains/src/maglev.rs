//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), with stable
//! updates.
//!
//! A table of prime size M maps a flow hash to a backend. Each backend
//! walks its own permutation of the slots (offset = h₁(backend) mod M,
//! skip = h₂(backend) mod (M−1) + 1) and the backends take turns claiming
//! the next free slot of their permutation until the table is full, so every
//! backend gets ⌊M/N⌋ or ⌈M/N⌉ slots.
//!
//! Built from a previous table, the slots of backends that remain are kept,
//! and only the slots that must move do: those of removed backends, and,
//! when backends are added, just enough slots (taken in the new backends'
//! permutation order from backends above their new share) to balance the
//! table again. Removing a backend therefore moves only the flows that
//! hashed to it; adding one moves only flows onto it. (As long as
//! N(N−1) ≤ M, so that the new shares are no smaller than the old ones.)
//! The result depends on the build history, not only on the backend set;
//! a fresh build depends only on the set.

use crate::conntrack::fold_mul;
use crate::error::ChainError;

/// The default table size: a prime (Maglev's paper uses 65 537).
pub const DEFAULT_TABLE_SIZE: TableSize = TableSize(65_537);

/// A Maglev table size: a prime above 1 and below 2^24. Checked once, when
/// it is made ([`TableSize::new`]), so that building a table cannot fail on
/// its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableSize(u32);

impl TableSize {
    /// `size` when it is a prime between 2 and 2^24; `None` otherwise.
    pub fn new(size: u32) -> Option<TableSize> {
        (is_prime(size) && size < 1 << 24).then_some(TableSize(size))
    }

    /// The number of slots.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for TableSize {
    fn default() -> Self {
        DEFAULT_TABLE_SIZE
    }
}

/// Marks a slot with no backend during a build.
const FREE: u16 = u16::MAX;

/// A backend: an endpoint address and its target port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// Address (IPv4 in the low 32 bits).
    pub ip: u128,
    /// Target port.
    pub port: u16,
}

impl Backend {
    fn permutation(&self, size: u32) -> (u64, u64) {
        let size = u64::from(size);
        let a = (self.ip as u64) ^ 0x9e37_79b9_7f4a_7c15;
        let b = ((self.ip >> 64) as u64) ^ (u64::from(self.port) << 17) ^ 0xc2b2_ae3d_27d4_eb4f;
        let h1 = fold_mul(
            fold_mul(a, b) ^ 0x1656_67b1_9e37_79f9,
            0x27d4_eb2f_1656_67c5,
        );
        let h2 = fold_mul(
            fold_mul(b, a) ^ 0x85eb_ca77_c2b2_ae63,
            0x94d0_49bb_1331_11eb,
        );
        (h1 % size, h2 % (size - 1) + 1)
    }
}

/// Whether `n` is a prime.
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// A Maglev lookup table over a set of backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    size: u32,
    /// Slot → index into `backends` (empty when there is no backend).
    entries: Box<[u16]>,
    /// Sorted, without duplicates.
    backends: Vec<Backend>,
}

impl MaglevTable {
    /// Build a table of `size` slots over `backends` (order and duplicates
    /// do not matter), keeping what it can of `previous` (see the module
    /// docs). Allocates: a control-plane operation. Refuses only more
    /// backends than a table indexes.
    pub fn build(
        size: TableSize,
        backends: &[Backend],
        previous: Option<&MaglevTable>,
    ) -> Result<MaglevTable, ChainError> {
        let size = size.get();
        let mut sorted = backends.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() >= usize::from(FREE) {
            return Err(ChainError::TooMany("backends in one Maglev table"));
        }
        if sorted.is_empty() {
            return Ok(MaglevTable {
                size,
                entries: Box::new([]),
                backends: sorted,
            });
        }
        let m = size as usize;
        let n = sorted.len();
        let mut entries = vec![FREE; m];
        let mut count = vec![0usize; n];
        if let Some(prev) = previous.filter(|p| p.size == size && !p.entries.is_empty()) {
            let remap: Vec<u16> = prev
                .backends
                .iter()
                .map(|b| sorted.binary_search(b).map_or(FREE, |i| i as u16))
                .collect();
            for (slot, &old) in entries.iter_mut().zip(prev.entries.iter()) {
                let new = remap.get(usize::from(old)).copied().unwrap_or(FREE);
                if new != FREE {
                    *slot = new;
                    count[usize::from(new)] += 1;
                }
            }
        }
        // Shares: ⌊M/N⌋ each, one more for the M mod N backends holding the
        // most slots already (fewest moves), ties by backend order.
        let mut quota = vec![m / n; n];
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
        for &i in order.iter().take(m % n) {
            quota[i] += 1;
        }
        let permutations: Vec<(u64, u64)> = sorted.iter().map(|b| b.permutation(size)).collect();
        let mut next = vec![0u64; n];
        let mut deficit: usize = (0..n).map(|i| quota[i].saturating_sub(count[i])).sum();
        while deficit > 0 {
            let before = deficit;
            for i in 0..n {
                if count[i] >= quota[i] {
                    continue;
                }
                let (offset, skip) = permutations[i];
                while next[i] < u64::from(size) {
                    let slot = ((offset + next[i] * skip) % u64::from(size)) as usize;
                    next[i] += 1;
                    let owner = entries[slot];
                    let claimable = owner == FREE
                        || (usize::from(owner) != i
                            && count[usize::from(owner)] > quota[usize::from(owner)]);
                    if claimable {
                        if owner != FREE {
                            count[usize::from(owner)] -= 1;
                        }
                        entries[slot] = i as u16;
                        count[i] += 1;
                        deficit -= 1;
                        break;
                    }
                }
            }
            if deficit == before {
                // Cannot happen (every permutation visits every slot, and
                // free slots plus excess always equal the deficit); stop
                // rather than spin, filling what is left in slot order.
                fill_free(&mut entries, &mut count, &quota);
                break;
            }
        }
        Ok(MaglevTable {
            size,
            entries: entries.into_boxed_slice(),
            backends: sorted,
        })
    }

    /// The backend for a flow hash; `None` when there is no backend.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<Backend> {
        let slot = ((u128::from(hash) * u128::from(self.size)) >> 64) as usize;
        let index = *self.entries.get(slot)?;
        self.backends.get(usize::from(index)).copied()
    }

    /// The table size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The backends, sorted.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The backend of each slot (for tests and diagnostics).
    pub fn slots(&self) -> impl Iterator<Item = Backend> + '_ {
        self.entries
            .iter()
            .filter_map(|&i| self.backends.get(usize::from(i)).copied())
    }

    /// Slots per backend, in [`MaglevTable::backends`] order.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.backends.len()];
        for &i in self.entries.iter() {
            if let Some(c) = counts.get_mut(usize::from(i)) {
                *c += 1;
            }
        }
        counts
    }
}

fn fill_free(entries: &mut [u16], count: &mut [usize], quota: &[usize]) {
    let mut i = 0;
    for slot in entries.iter_mut().filter(|s| **s == FREE) {
        while i + 1 < count.len() && count[i] >= quota[i] {
            i += 1;
        }
        *slot = i as u16;
        count[i] += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn backend(n: u32) -> Backend {
        Backend {
            ip: u128::from(0x0a00_0000 + n),
            port: 8080,
        }
    }

    /// (max − min) / mean of the slots per backend.
    fn imbalance(table: &MaglevTable) -> f64 {
        let counts = table.slot_counts();
        let mean = f64::from(table.size()) / counts.len() as f64;
        let max = *counts.iter().max().unwrap() as f64;
        let min = *counts.iter().min().unwrap() as f64;
        (max - min) / mean
    }

    #[test]
    fn sizes_must_be_prime() {
        assert!(is_prime(65_537) && is_prime(251) && is_prime(2));
        assert!(!is_prime(65_536) && !is_prime(1) && !is_prime(0) && !is_prime(255));
        assert_eq!(TableSize::new(65_536), None);
        // The primes around 2^24: the one above is too big.
        assert_eq!(TableSize::new(16_777_259), None);
        assert_eq!(
            TableSize::new(16_777_213).map(TableSize::get),
            Some(16_777_213)
        );
        assert_eq!(TableSize::new(251).map(TableSize::get), Some(251));
    }

    #[test]
    fn no_backend_no_lookup() {
        let table = MaglevTable::build(TableSize::new(251).unwrap(), &[], None).unwrap();
        assert_eq!(table.lookup(12345), None);
    }

    #[test]
    fn fresh_build_is_a_function_of_the_set() {
        let a = MaglevTable::build(
            DEFAULT_TABLE_SIZE,
            &[backend(3), backend(1), backend(2)],
            None,
        )
        .unwrap();
        let b = MaglevTable::build(
            DEFAULT_TABLE_SIZE,
            &[backend(1), backend(2), backend(3), backend(1)],
            None,
        )
        .unwrap();
        assert_eq!(a, b);
        // Every slot holds a backend.
        assert_eq!(a.slots().count(), 65_537);
    }

    #[test]
    fn lookups_follow_the_slot_spread() {
        // Hashes spread evenly over the slots land on backends in proportion.
        let table = MaglevTable::build(
            DEFAULT_TABLE_SIZE,
            &(0..7).map(backend).collect::<Vec<_>>(),
            None,
        )
        .unwrap();
        let mut hits = std::collections::HashMap::new();
        let samples = 700_000u64;
        for k in 0..samples {
            let h = crate::conntrack::fold_mul(k ^ 0x1234_5678_9abc_def1, 0x9e37_79b9_7f4a_7c15);
            *hits.entry(table.lookup(h).unwrap()).or_insert(0u64) += 1;
        }
        for (_, n) in hits {
            let share = n as f64 / samples as f64;
            assert!((share - 1.0 / 7.0).abs() < 0.01, "share {share}");
        }
    }

    fn backend_set() -> impl Strategy<Value = Vec<Backend>> {
        proptest::collection::btree_set((any::<u32>(), 1u16..), 2..60).prop_map(|s| {
            s.into_iter()
                .map(|(ip, port)| Backend {
                    ip: u128::from(ip),
                    port,
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Maglev spreads the table within 1% of even: (max − min) / mean.
        #[test]
        fn spread_is_within_one_percent(backends in backend_set()) {
            let table = MaglevTable::build(DEFAULT_TABLE_SIZE, &backends, None).unwrap();
            let counts = table.slot_counts();
            prop_assert_eq!(counts.len(), backends.len());
            prop_assert!(imbalance(&table) <= 0.01, "imbalance {}", imbalance(&table));
        }

        /// Removing a backend moves only its slots, and the table stays
        /// within 1% of even.
        #[test]
        fn removal_moves_only_the_removed_backends_slots(
            backends in backend_set(),
            pick in any::<prop::sample::Index>(),
        ) {
            let before = MaglevTable::build(DEFAULT_TABLE_SIZE, &backends, None).unwrap();
            let removed = backends[pick.index(backends.len())];
            let rest: Vec<Backend> = backends.iter().copied().filter(|b| *b != removed).collect();
            let after = MaglevTable::build(DEFAULT_TABLE_SIZE, &rest, Some(&before)).unwrap();
            let mut moved = 0;
            for (old, new) in before.slots().zip(after.slots()) {
                prop_assert_ne!(new, removed);
                if old != removed {
                    prop_assert_eq!(old, new, "a slot of a remaining backend moved");
                } else {
                    moved += 1;
                }
            }
            prop_assert!(moved > 0);
            prop_assert!(imbalance(&after) <= 0.01, "imbalance {}", imbalance(&after));
        }

        /// Adding a backend moves slots only onto it, about its share.
        #[test]
        fn addition_moves_slots_only_to_the_new_backend(
            backends in backend_set(),
            extra in any::<u32>(),
        ) {
            let added = Backend { ip: u128::from(extra) | (1 << 40), port: 1 };
            let before = MaglevTable::build(DEFAULT_TABLE_SIZE, &backends, None).unwrap();
            let mut more = backends.clone();
            more.push(added);
            let after = MaglevTable::build(DEFAULT_TABLE_SIZE, &more, Some(&before)).unwrap();
            let mut moved = 0usize;
            for (old, new) in before.slots().zip(after.slots()) {
                if old != new {
                    prop_assert_eq!(new, added);
                    moved += 1;
                }
            }
            let share = DEFAULT_TABLE_SIZE.get() as usize / more.len();
            prop_assert!(moved >= share && moved <= share + 1, "moved {moved}, share {share}");
            prop_assert!(imbalance(&after) <= 0.01);
        }

        /// A chain of random changes keeps the table balanced and never
        /// moves a slot between two backends that both stay.
        #[test]
        fn churn_keeps_balance(
            steps in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..12),
        ) {
            let mut set: BTreeSet<u32> = (0..10).collect();
            let mut table = MaglevTable::build(
                DEFAULT_TABLE_SIZE, &set.iter().map(|&n| backend(n)).collect::<Vec<_>>(), None,
            ).unwrap();
            for (add, n) in steps {
                let n = u32::from(n % 40);
                if add { set.insert(n); } else if set.len() > 1 { set.remove(&n); }
                let list: Vec<Backend> = set.iter().map(|&n| backend(n)).collect();
                let next = MaglevTable::build(DEFAULT_TABLE_SIZE, &list, Some(&table)).unwrap();
                for (old, new) in table.slots().zip(next.slots()) {
                    if old != new {
                        // Either the old backend left or the new one arrived.
                        prop_assert!(
                            !list.contains(&old) || !table.backends().contains(&new),
                            "slot moved between two staying backends"
                        );
                    }
                }
                prop_assert!(imbalance(&next) <= 0.01);
                table = next;
            }
        }
    }
}
