//! The policy function: Kubernetes NetworkPolicy, compiled into rules over
//! identities, enforced statefully.
//!
//! Semantics (networking.k8s.io/v1), for a packet from S to D:
//! - it is allowed when S's egress allows it **and** D's ingress allows it;
//! - a pod's direction is isolated once any policy of its namespace selects
//!   it (`pod_selector`) with that policy type ([`kxdp_config::NetworkPolicySpec::effective_types`]);
//!   an isolated direction allows only what some rule of some selecting
//!   policy allows (policies add up, never subtract); a direction no policy
//!   selects allows everything; addresses of no known pod (identity WORLD)
//!   are never isolated;
//! - a rule allows a peer and a destination port: empty `peers` allow every
//!   peer, empty `ports` every port and protocol;
//! - a peer with `ip_block` matches by address (in `cidr`, in none of
//!   `except`), whether or not the address is a pod's, and its selectors are
//!   ignored (Kubernetes refuses such mixed peers); a peer with only
//!   `pod_selector` matches pods of the policy's namespace; with only
//!   `namespace_selector`, every pod of the namespaces it selects (by the
//!   namespace's labels; a namespace without a [`kxdp_config::NamespaceSpec`]
//!   has no labels); with both, pods matching the pod selector in those
//!   namespaces; a peer with none of the three matches nothing;
//! - a port matches its protocol and the destination port: `port` alone, the
//!   range `port..=end_port`, or every port without `port`. Packets of
//!   protocols without ports (ICMP) match only rules without ports; a
//!   non-first fragment has port 0.
//!
//! Statefulness: each worker remembers the connections it allowed, in the
//! connection entries of both directions (see [`crate::conntrack`]); later
//! packets of the connection in either direction pass without evaluation —
//! so replies of an allowed connection pass even when the reverse direction
//! would be denied as a new connection. After a policy or address change (a
//! new policy epoch) a remembered connection is evaluated again, as its
//! initiator opened it, at its next packet: allowed, it stays; denied, it is
//! forgotten and dropped. A packet whose connection is not remembered (its
//! entry expired or was evicted, or it started before the chain) is
//! evaluated as a new connection in its own direction.
//!
//! Addresses (classifiers' `src`/`dst`, ipBlocks) are matched as compiled
//! prefixes ([`Prefix`]): a CIDR as a masked `u128`, matched with one AND
//! and one compare.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use kxdp_config::{NamespaceSpec, NetworkPolicySpec, PolicyPeer, PolicyRule, PolicyType};

use crate::conntrack::{
    Conntrack, Direction, FlowKey, Identities, IdentityId, IdentityMap, IdentitySet, PacketContext,
    StageAction,
};
use kxdp_dataplane::DropReason;

/// A compiled CIDR (IPv4 in the low 32 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    addr: u128,
    mask: u128,
    ipv6: bool,
}

impl Prefix {
    /// Compile a network (host bits are ignored, as Kubernetes does).
    pub fn new(network: &IpNetwork) -> Prefix {
        match network {
            IpNetwork::V4(v4) => {
                let len = u32::from(v4.prefix().min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Prefix {
                    addr: u128::from(v4.ip().to_bits() & mask),
                    mask: u128::from(mask),
                    ipv6: false,
                }
            }
            IpNetwork::V6(v6) => {
                let len = u32::from(v6.prefix().min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Prefix {
                    addr: v6.ip().to_bits() & mask,
                    mask,
                    ipv6: true,
                }
            }
        }
    }

    /// Whether the address (of the given family) is inside.
    #[inline(always)]
    pub fn contains(&self, addr: u128, ipv6: bool) -> bool {
        self.ipv6 == ipv6 && addr & self.mask == self.addr
    }
}

/// Marks a direction no policy isolates.
const NOT_ISOLATED: u32 = u32::MAX;

/// An IP block: the CIDR minus its exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CompiledIpBlock {
    cidr: Prefix,
    except: Box<[Prefix]>,
}

impl CompiledIpBlock {
    #[inline]
    fn contains(&self, addr: u128, ipv6: bool) -> bool {
        self.cidr.contains(addr, ipv6) && !self.except.iter().any(|e| e.contains(addr, ipv6))
    }
}

/// A protocol and an inclusive range of destination ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortMatch {
    proto: u8,
    first: u16,
    last: u16,
}

/// One rule: (any peer | identities | IP blocks) × (any port | ports).
#[derive(Clone, Debug, PartialEq, Eq)]
struct CompiledRule {
    any_peer: bool,
    peers: IdentitySet,
    blocks: Box<[CompiledIpBlock]>,
    ports: Box<[PortMatch]>,
}

impl CompiledRule {
    #[inline]
    fn matches(&self, peer: IdentityId, peer_addr: u128, key: &FlowKey) -> bool {
        let peer_ok = self.any_peer
            || self.peers.contains(peer)
            || self.blocks.iter().any(|b| b.contains(peer_addr, key.ipv6));
        peer_ok
            && (self.ports.is_empty()
                || self.ports.iter().any(|p| {
                    p.proto == key.proto && p.first <= key.dst_port && key.dst_port <= p.last
                }))
    }
}

/// The node's NetworkPolicies compiled against an identity universe: per
/// identity and direction, whether it is isolated and the rules that allow
/// traffic. Shared (read-only) by every worker; compiled again only when
/// policies, namespaces or the identity universe change — never because a
/// pod changed its address.
#[derive(Debug)]
pub struct PolicySet {
    /// Per identity id: index into `rule_sets`, or [`NOT_ISOLATED`].
    ingress: Box<[u32]>,
    egress: Box<[u32]>,
    rule_sets: Vec<Box<[CompiledRule]>>,
    /// What it was compiled from, to tell whether a new model needs a new set.
    identities: Identities,
    namespaces: Vec<NamespaceSpec>,
    policies: Vec<NetworkPolicySpec>,
}

impl PolicySet {
    /// Compile `policies` for the identities of `identities`.
    pub fn compile(
        identities: &Identities,
        namespaces: &[NamespaceSpec],
        policies: &[NetworkPolicySpec],
    ) -> PolicySet {
        let empty = BTreeMap::new();
        let ns_labels: BTreeMap<&str, &BTreeMap<String, String>> = namespaces
            .iter()
            .map(|n| (n.name.as_str(), &n.labels))
            .collect();
        let labels_of = |ns: &str| ns_labels.get(ns).copied().unwrap_or(&empty);

        // Per policy: its compiled ingress and egress rules, and which
        // directions of which identities it isolates.
        let mut ingress_of: Vec<Vec<usize>> = vec![Vec::new(); identities.id_bound()];
        let mut egress_of: Vec<Vec<usize>> = vec![Vec::new(); identities.id_bound()];
        let mut compiled: Vec<(Vec<CompiledRule>, Vec<CompiledRule>)> = Vec::new();
        for (index, policy) in policies.iter().enumerate() {
            let types = policy.effective_types();
            let compile_rules = |rules: &[PolicyRule]| -> Vec<CompiledRule> {
                rules
                    .iter()
                    .map(|r| compile_rule(r, &policy.namespace, identities, &labels_of))
                    .collect()
            };
            compiled.push((
                compile_rules(&policy.ingress),
                compile_rules(&policy.egress),
            ));
            for (id, key) in identities.iter() {
                if key.namespace != policy.namespace || !policy.pod_selector.matches(&key.labels) {
                    continue;
                }
                if types.contains(&PolicyType::Ingress) {
                    ingress_of[id.index()].push(index);
                }
                if types.contains(&PolicyType::Egress) {
                    egress_of[id.index()].push(index);
                }
            }
        }

        // Identities selected by the same policies share one rule set.
        let mut rule_sets: Vec<Box<[CompiledRule]>> = Vec::new();
        let mut by_selection: BTreeMap<(bool, Vec<usize>), u32> = BTreeMap::new();
        let mut table = |selections: Vec<Vec<usize>>, egress: bool| -> Box<[u32]> {
            selections
                .into_iter()
                .map(|selecting| {
                    if selecting.is_empty() {
                        return NOT_ISOLATED;
                    }
                    *by_selection
                        .entry((egress, selecting.clone()))
                        .or_insert_with(|| {
                            let rules: Vec<CompiledRule> = selecting
                                .iter()
                                .flat_map(|&p| {
                                    let (ingress, egress_rules) = &compiled[p];
                                    if egress { egress_rules } else { ingress }.iter().cloned()
                                })
                                .collect();
                            rule_sets.push(rules.into_boxed_slice());
                            (rule_sets.len() - 1) as u32
                        })
                })
                .collect()
        };
        let ingress = table(ingress_of, false);
        let egress = table(egress_of, true);
        PolicySet {
            ingress,
            egress,
            rule_sets,
            identities: identities.clone(),
            namespaces: namespaces.to_vec(),
            policies: policies.to_vec(),
        }
    }

    /// Whether this set was compiled from exactly these inputs.
    pub fn compiled_from(
        &self,
        identities: &Identities,
        namespaces: &[NamespaceSpec],
        policies: &[NetworkPolicySpec],
    ) -> bool {
        self.identities == *identities && self.namespaces == namespaces && self.policies == policies
    }

    /// Whether a new connection `key` from identity `src` to identity `dst`
    /// is allowed (see the module docs for the semantics).
    #[inline]
    pub fn allows(&self, key: &FlowKey, src: IdentityId, dst: IdentityId) -> bool {
        self.direction_allows(&self.egress, src, dst, key.dst, key)
            && self.direction_allows(&self.ingress, dst, src, key.src, key)
    }

    /// Whether any policy isolates `id`'s ingress.
    pub fn ingress_isolated(&self, id: IdentityId) -> bool {
        self.ingress
            .get(id.index())
            .is_some_and(|&r| r != NOT_ISOLATED)
    }

    /// Whether any policy isolates `id`'s egress.
    pub fn egress_isolated(&self, id: IdentityId) -> bool {
        self.egress
            .get(id.index())
            .is_some_and(|&r| r != NOT_ISOLATED)
    }

    #[inline]
    fn direction_allows(
        &self,
        table: &[u32],
        subject: IdentityId,
        peer: IdentityId,
        peer_addr: u128,
        key: &FlowKey,
    ) -> bool {
        let set = table.get(subject.index()).copied().unwrap_or(NOT_ISOLATED);
        match self.rule_sets.get(set as usize) {
            None => true,
            Some(rules) => rules.iter().any(|r| r.matches(peer, peer_addr, key)),
        }
    }
}

fn compile_rule<'a>(
    rule: &PolicyRule,
    policy_namespace: &str,
    identities: &Identities,
    labels_of: &impl Fn(&str) -> &'a BTreeMap<String, String>,
) -> CompiledRule {
    let mut peers = IdentitySet::default();
    let mut blocks = Vec::new();
    for peer in &rule.peers {
        match peer {
            PolicyPeer {
                ip_block: Some(block),
                ..
            } => blocks.push(CompiledIpBlock {
                cidr: Prefix::new(&block.cidr),
                except: block.except.iter().map(Prefix::new).collect(),
            }),
            PolicyPeer {
                pod_selector: None,
                namespace_selector: None,
                ip_block: None,
            } => {}
            PolicyPeer {
                pod_selector,
                namespace_selector,
                ..
            } => {
                let selected = IdentitySet::select(identities, |key| {
                    let namespace_ok = match namespace_selector {
                        Some(selector) => selector.matches(labels_of(&key.namespace)),
                        None => key.namespace == policy_namespace,
                    };
                    namespace_ok && pod_selector.as_ref().is_none_or(|s| s.matches(&key.labels))
                });
                peers.union_with(&selected);
            }
        }
    }
    let ports = rule
        .ports
        .iter()
        .map(|p| {
            let (first, last) = match (p.port, p.end_port) {
                (None, _) => (0, u16::MAX),
                (Some(port), None) => (port, port),
                (Some(port), Some(end)) => (port, end),
            };
            PortMatch {
                proto: p.protocol.number(),
                first,
                last,
            }
        })
        .collect();
    CompiledRule {
        any_peer: rule.peers.is_empty(),
        peers,
        blocks: blocks.into_boxed_slice(),
        ports,
    }
}

/// What the policy stage reads: the compiled policies, the address →
/// identity map, and the epoch that changes whenever either does.
#[derive(Clone, Copy, Debug)]
pub struct PolicyEnv<'a> {
    /// The compiled policies.
    pub policy: &'a PolicySet,
    /// Addresses to identities.
    pub identities: &'a IdentityMap,
    /// Changes whenever `policy` or `identities` change.
    pub epoch: u64,
    /// This node's own addresses: traffic between a pod and its node is
    /// always allowed (kubelet probes must pass a default deny), as
    /// Kubernetes defines NetworkPolicy.
    pub node_addresses: &'a [(u128, bool)],
}

impl PolicyEnv<'_> {
    /// Whether `key` is between this node and a pod.
    #[inline]
    fn is_node_traffic(&self, key: &FlowKey) -> bool {
        !self.node_addresses.is_empty()
            && self
                .node_addresses
                .iter()
                .any(|&(a, v6)| v6 == key.ipv6 && (a == key.src || a == key.dst))
    }

    /// Whether the connection `key` opens is allowed.
    #[inline]
    fn allows(&self, key: &FlowKey, src: IdentityId, dst: IdentityId) -> bool {
        self.is_node_traffic(key) || self.policy.allows(key, src, dst)
    }
}

/// One worker's state of a policy stage: what it decided (the connections
/// it allowed are remembered in their connection entries).
#[derive(Clone, Debug, Default)]
pub struct PolicyState {
    /// New connections allowed.
    pub connections_allowed: u64,
    /// Packets denied.
    pub denied: u64,
    /// Remembered connections evaluated again after an epoch change.
    pub revalidated: u64,
}

impl PolicyState {
    /// A fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the policy decides for one packet (looking its identities up
    /// and recording the verdict in its connection entry).
    #[inline]
    pub fn decide(
        &mut self,
        env: &PolicyEnv<'_>,
        now: u64,
        ctx: &mut PacketContext,
        conntrack: &mut Conntrack,
    ) -> StageAction {
        if let Some(entry) = conntrack.entry(ctx).filter(|e| e.policy_allowed()) {
            if entry.policy_epoch == env.epoch {
                return StageAction::Pass;
            }
            // Under new policies or addresses: as its initiator opened it.
            self.revalidated += 1;
            let initiator = match ctx.direction {
                Direction::Forward => ctx.flow,
                Direction::Reply => ctx.flow.reversed(),
            };
            let src = lookup(env.identities, &initiator, true);
            let dst = lookup(env.identities, &initiator, false);
            if env.allows(&initiator, src, dst) {
                entry.policy_epoch = env.epoch;
                return StageAction::Pass;
            }
            entry.set_policy(false, env.epoch);
            self.denied += 1;
            return StageAction::Drop(DropReason::PolicyDenied);
        }
        if !ctx.identities_known {
            ctx.src_identity = lookup(env.identities, &ctx.flow, true);
            ctx.dst_identity = lookup(env.identities, &ctx.flow, false);
            ctx.identities_known = true;
        }
        if env.allows(&ctx.flow, ctx.src_identity, ctx.dst_identity) {
            self.connections_allowed += 1;
            if let Some(entry) = conntrack.entry(ctx) {
                entry.set_policy(true, env.epoch);
            }
            // The other direction of the connection, if it has an entry
            // already (a new one copies this one's).
            if let Some(entry) = conntrack.entry_of(&ctx.flow.reversed(), now) {
                entry.set_policy(true, env.epoch);
            }
            StageAction::Pass
        } else {
            self.denied += 1;
            StageAction::Drop(DropReason::PolicyDenied)
        }
    }
}

#[inline]
fn lookup(map: &IdentityMap, key: &FlowKey, source: bool) -> IdentityId {
    let addr = if source { key.src } else { key.dst };
    map.lookup(key.tenant, addr, key.ipv6)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::conntrack::ip_bits;

    fn contains(cidr: &str, ip: &str) -> bool {
        let (bits, v6) = ip_bits(ip.parse().unwrap());
        Prefix::new(&cidr.parse().unwrap()).contains(bits, v6)
    }

    #[test]
    fn prefixes_match_by_family_and_mask() {
        assert!(contains("10.0.0.0/8", "10.200.1.1"));
        assert!(!contains("10.0.0.0/8", "11.0.0.1"));
        assert!(contains("0.0.0.0/0", "192.0.2.1"));
        assert!(!contains("0.0.0.0/0", "::1"));
        assert!(contains("10.1.2.3/32", "10.1.2.3"));
        assert!(!contains("10.1.2.3/32", "10.1.2.4"));
        assert!(contains("10.1.2.3/24", "10.1.2.200"), "host bits ignored");
        assert!(contains("fd00::/8", "fd12::1"));
        assert!(!contains("fd00::/8", "fe80::1"));
        assert!(contains("::/0", "2001:db8::1"));
    }
}
