//! Identities: what policy and classifiers select pods by, instead of their
//! addresses.
//!
//! An identity is one (namespace, labels) pair that some pod has. Pods with
//! the same namespace and labels share it. [`Identities`] is the universe of
//! identities with their ids, allocated stably: an identity keeps its id for
//! as long as any pod has it, so rules compiled against ids (policy,
//! classifier selectors) stay valid while pods come and go and change
//! addresses. [`IdentityMap`] is the fast part that changes with addresses:
//! (tenant, pod IP) → identity id.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kxdp_config::PodSpec;
use kxdp_dataplane::tables::TenantId;
use rustc_hash::FxHashMap;

use crate::error::ChainError;
use crate::flow::ip_bits;

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

    /// The identity of an address (as a [`crate::FlowKey`] stores it) in a
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

#[cfg(test)]
pub(crate) mod tests {
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
