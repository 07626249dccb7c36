//! The classifier: which chain (at most one) a packet belongs to.
//!
//! Per tenant, the chains' compiled classifiers sit in one list sorted by
//! priority (highest first), then by chain name; the first that matches
//! wins. A symmetric chain also matches a packet whose *reversed* tuple
//! (addresses, ports and identities swapped) its classifier matches: that
//! packet is the chain's return traffic ([`Direction::Reply`]). When one
//! chain matches both ways, forward wins. Every check is a compare on
//! integers or a bit test: fine for tens of chains per tenant.
//!
//! Matching: every field present must match. `src`/`dst` prefixes match the
//! address family they are written in; `protocol` the IP protocol; port
//! ranges match only TCP, UDP and SCTP packets; `src_selector`/`dst_selector`
//! match the labels of the sending/receiving pod in any namespace, and never
//! an address of no known pod.

use kxdp_config::ClassifierSpec;
use kxdp_dataplane::tables::TenantId;

use crate::conntrack::{Direction, FlowKey, Identities, IdentityId, IdentitySet};
use crate::policy::Prefix;

/// One chain's compiled classifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledMatch {
    src: Option<Prefix>,
    dst: Option<Prefix>,
    proto: Option<u8>,
    src_ports: Option<(u16, u16)>,
    dst_ports: Option<(u16, u16)>,
    src_selector: Option<IdentitySet>,
    dst_selector: Option<IdentitySet>,
}

impl CompiledMatch {
    /// Compile a classifier against the identity universe.
    pub fn new(spec: &ClassifierSpec, identities: &Identities) -> Self {
        let selector = |s: &Option<kxdp_config::LabelSelector>| {
            s.as_ref()
                .map(|s| IdentitySet::select(identities, |key| s.matches(&key.labels)))
        };
        CompiledMatch {
            src: spec.src.as_ref().map(Prefix::new),
            dst: spec.dst.as_ref().map(Prefix::new),
            proto: spec.protocol.map(|p| p.number()),
            src_ports: spec.src_ports.map(|r| (r.first, r.last)),
            dst_ports: spec.dst_ports.map(|r| (r.first, r.last)),
            src_selector: selector(&spec.src_selector),
            dst_selector: selector(&spec.dst_selector),
        }
    }

    /// Whether it uses identities (so the caller must look them up).
    pub fn uses_identities(&self) -> bool {
        self.src_selector.is_some() || self.dst_selector.is_some()
    }

    /// Whether a packet with this key and identities matches.
    #[inline]
    pub fn matches(&self, key: &FlowKey, src: IdentityId, dst: IdentityId) -> bool {
        let ports = |range: Option<(u16, u16)>, port: u16| {
            range.is_none_or(|(first, last)| key.has_ports() && first <= port && port <= last)
        };
        self.proto.is_none_or(|p| p == key.proto)
            && self.src.is_none_or(|p| p.contains(key.src, key.ipv6))
            && self.dst.is_none_or(|p| p.contains(key.dst, key.ipv6))
            && ports(self.src_ports, key.src_port)
            && ports(self.dst_ports, key.dst_port)
            && self.src_selector.as_ref().is_none_or(|s| s.contains(src))
            && self.dst_selector.as_ref().is_none_or(|s| s.contains(dst))
    }
}

/// A chain as the classifier knows it.
#[derive(Clone, Debug)]
pub struct ClassifierEntry {
    /// The chain's index in its set.
    pub chain: u16,
    /// The chain's tenant.
    pub tenant: TenantId,
    /// Implicit (kxdp's own Service chains): ranked below every explicit
    /// chain, whatever their priorities.
    pub implicit: bool,
    /// Higher wins.
    pub priority: u32,
    /// Ties are broken by name order.
    pub name: String,
    /// Return traffic belongs to the chain too.
    pub symmetric: bool,
    /// What it matches.
    pub matcher: CompiledMatch,
}

#[derive(Clone, Debug, Default)]
struct TenantChains {
    entries: Vec<ClassifierEntry>,
    uses_identities: bool,
}

/// The compiled classifier of a chain set.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    tenants: Vec<TenantChains>,
}

impl Classifier {
    /// Sort the chains per tenant by rank.
    pub fn new(entries: Vec<ClassifierEntry>) -> Self {
        let mut tenants: Vec<TenantChains> = Vec::new();
        for entry in entries {
            let t = usize::from(entry.tenant);
            if tenants.len() <= t {
                tenants.resize(t + 1, TenantChains::default());
            }
            tenants[t].uses_identities |= entry.matcher.uses_identities();
            tenants[t].entries.push(entry);
        }
        for t in &mut tenants {
            t.entries.sort_by(|a, b| {
                a.implicit
                    .cmp(&b.implicit)
                    .then_with(|| b.priority.cmp(&a.priority))
                    .then_with(|| a.name.cmp(&b.name))
            });
        }
        Classifier { tenants }
    }

    /// Whether the tenant has any chain.
    #[inline]
    pub fn has_chains(&self, tenant: TenantId) -> bool {
        self.tenants
            .get(usize::from(tenant))
            .is_some_and(|t| !t.entries.is_empty())
    }

    /// Whether classifying in this tenant needs the packet's identities.
    #[inline]
    pub fn uses_identities(&self, tenant: TenantId) -> bool {
        self.tenants
            .get(usize::from(tenant))
            .is_some_and(|t| t.uses_identities)
    }

    /// The chain a packet belongs to, and its direction. `src`/`dst` are the
    /// packet's identities (only read when [`Classifier::uses_identities`]).
    #[inline]
    pub fn classify(
        &self,
        key: &FlowKey,
        src: IdentityId,
        dst: IdentityId,
    ) -> Option<(u16, Direction)> {
        let tenant = self.tenants.get(usize::from(key.tenant))?;
        let mut reversed = None;
        for entry in &tenant.entries {
            if entry.matcher.matches(key, src, dst) {
                return Some((entry.chain, Direction::Forward));
            }
            if entry.symmetric {
                let r = reversed.get_or_insert_with(|| key.reversed());
                if entry.matcher.matches(r, dst, src) {
                    return Some((entry.chain, Direction::Reply));
                }
            }
        }
        None
    }
}
