//! NetworkPolicy: the compiled, identity-based policy against a naive
//! reference evaluation written straight from the Kubernetes semantics, on
//! random pods, labels, namespaces and rules; and the stateful policy stage
//! in a chain.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use common::*;
use kxdp_config::{
    IpBlock, LabelSelector, LabelSelectorRequirement, NamespaceSpec, NetworkPolicySpec, PodSpec,
    PolicyPeer, PolicyPort, PolicyRule, PolicyType, Protocol, SelectorOperator,
};
use kxdp_dataplane::DropReason;
use kxdp_vnf_chains::{
    ChainVerdict, ChainWorker, FlowKey, Identities, IdentityMap, PolicySet, WorkerLimits,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The reference: Kubernetes NetworkPolicy evaluated directly on the specs, by
// pod address, with no identities and no compilation.

struct Packet {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    dport: u16,
}

fn namespace_labels(namespaces: &[NamespaceSpec], name: &str) -> BTreeMap<String, String> {
    namespaces
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.labels.clone())
        .unwrap_or_default()
}

fn reference_peer_matches(
    peer: &PolicyPeer,
    policy_namespace: &str,
    namespaces: &[NamespaceSpec],
    peer_pod: Option<&PodSpec>,
    peer_ip: IpAddr,
) -> bool {
    if let Some(block) = &peer.ip_block {
        return block.cidr.contains(peer_ip) && !block.except.iter().any(|e| e.contains(peer_ip));
    }
    if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
        return false;
    }
    let Some(pod) = peer_pod else {
        return false;
    };
    let namespace_ok = match &peer.namespace_selector {
        Some(selector) => selector.matches(&namespace_labels(namespaces, &pod.namespace)),
        None => pod.namespace == policy_namespace,
    };
    let pod_ok = match &peer.pod_selector {
        Some(selector) => selector.matches(&pod.labels),
        None => true,
    };
    namespace_ok && pod_ok
}

fn reference_port_matches(port: &PolicyPort, packet: &Packet) -> bool {
    if port.protocol.number() != packet.proto {
        return false;
    }
    match (port.port, port.end_port) {
        (None, _) => true,
        (Some(p), None) => p == packet.dport,
        (Some(p), Some(end)) => p <= packet.dport && packet.dport <= end,
    }
}

/// Whether `subject`'s direction (`kind`) allows the packet, `peer` being
/// the other end.
fn reference_direction(
    policies: &[NetworkPolicySpec],
    namespaces: &[NamespaceSpec],
    kind: PolicyType,
    subject: Option<&PodSpec>,
    peer: Option<&PodSpec>,
    peer_ip: IpAddr,
    packet: &Packet,
) -> bool {
    let Some(subject) = subject else {
        return true; // not a pod: no policy selects it
    };
    let selecting: Vec<&NetworkPolicySpec> = policies
        .iter()
        .filter(|p| {
            p.namespace == subject.namespace
                && p.pod_selector.matches(&subject.labels)
                && p.effective_types().contains(&kind)
        })
        .collect();
    if selecting.is_empty() {
        return true;
    }
    selecting.iter().any(|policy| {
        let rules = match kind {
            PolicyType::Ingress => &policy.ingress,
            PolicyType::Egress => &policy.egress,
        };
        rules.iter().any(|rule| {
            let peer_ok = rule.peers.is_empty()
                || rule.peers.iter().any(|p| {
                    reference_peer_matches(p, &policy.namespace, namespaces, peer, peer_ip)
                });
            let port_ok = rule.ports.is_empty()
                || rule.ports.iter().any(|p| reference_port_matches(p, packet));
            peer_ok && port_ok
        })
    })
}

fn reference_allows(
    pods: &[PodSpec],
    namespaces: &[NamespaceSpec],
    policies: &[NetworkPolicySpec],
    packet: &Packet,
) -> bool {
    let src = pods.iter().find(|p| p.ip == packet.src);
    let dst = pods.iter().find(|p| p.ip == packet.dst);
    reference_direction(
        policies,
        namespaces,
        PolicyType::Egress,
        src,
        dst,
        packet.dst,
        packet,
    ) && reference_direction(
        policies,
        namespaces,
        PolicyType::Ingress,
        dst,
        src,
        packet.src,
        packet,
    )
}

// ---------------------------------------------------------------------------
// The compiled side.

fn compiled(
    pods: &[PodSpec],
    namespaces: &[NamespaceSpec],
    policies: &[NetworkPolicySpec],
) -> (PolicySet, IdentityMap) {
    let identities = Identities::assign(pods, None).unwrap();
    let map = IdentityMap::build(pods, &identities, |_| Some(0));
    (PolicySet::compile(&identities, namespaces, policies), map)
}

fn compiled_allows(policy: &PolicySet, map: &IdentityMap, packet: &Packet) -> bool {
    let (src, _) = bits(packet.src);
    let (dst, _) = bits(packet.dst);
    let key = FlowKey {
        src,
        dst,
        src_port: 40_000,
        dst_port: packet.dport,
        proto: packet.proto,
        ipv6: false,
        tenant: 0,
    };
    policy.allows(
        &key,
        map.lookup_ip(0, packet.src),
        map.lookup_ip(0, packet.dst),
    )
}

fn bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), false),
        IpAddr::V6(v6) => (v6.to_bits(), true),
    }
}

// ---------------------------------------------------------------------------
// Random models.

fn arb_labels(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(
        proptest::sample::select(keys).prop_map(String::from),
        proptest::sample::select(values).prop_map(String::from),
        0..=keys.len(),
    )
}

fn arb_selector(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = LabelSelector> {
    let requirement = (
        proptest::sample::select(keys),
        prop_oneof![
            Just(SelectorOperator::In),
            Just(SelectorOperator::NotIn),
            Just(SelectorOperator::Exists),
            Just(SelectorOperator::DoesNotExist),
        ],
        proptest::collection::vec(proptest::sample::select(values), 0..3),
    )
        .prop_map(|(key, operator, values)| LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.into_iter().map(String::from).collect(),
        });
    (
        proptest::collection::btree_map(
            proptest::sample::select(keys).prop_map(String::from),
            proptest::sample::select(values).prop_map(String::from),
            0..2,
        ),
        proptest::collection::vec(requirement, 0..2),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

const NAMESPACES: &[&str] = &["default", "prod", "dev"];
const POD_KEYS: &[&str] = &["app", "tier"];
const POD_VALUES: &[&str] = &["web", "db", "cache"];
const NS_KEYS: &[&str] = &["team", "env"];
const NS_VALUES: &[&str] = &["x", "y"];
const CIDRS: &[&str] = &[
    "10.0.0.0/24",
    "10.0.0.0/29",
    "10.0.0.4/30",
    "10.0.0.2/32",
    "0.0.0.0/0",
    "192.168.0.0/16",
    "fd00::/8",
];
const PORTS: &[u16] = &[80, 443, 8000, 8080];

fn arb_peer() -> impl Strategy<Value = PolicyPeer> {
    let selector_peer = (
        proptest::option::of(arb_selector(POD_KEYS, POD_VALUES)),
        proptest::option::of(arb_selector(NS_KEYS, NS_VALUES)),
    )
        .prop_map(|(pod_selector, namespace_selector)| PolicyPeer {
            pod_selector,
            namespace_selector,
            ip_block: None,
        });
    let block_peer = (
        proptest::sample::select(CIDRS),
        proptest::collection::vec(proptest::sample::select(CIDRS), 0..2),
    )
        .prop_map(|(cidr, except)| PolicyPeer {
            pod_selector: None,
            namespace_selector: None,
            ip_block: Some(IpBlock {
                cidr: cidr.parse().unwrap(),
                except: except.into_iter().map(|e| e.parse().unwrap()).collect(),
            }),
        });
    prop_oneof![3 => selector_peer, 2 => block_peer]
}

fn arb_port() -> impl Strategy<Value = PolicyPort> {
    (
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        proptest::option::of(proptest::sample::select(PORTS)),
        proptest::option::of(proptest::sample::select(PORTS)),
    )
        .prop_map(|(protocol, port, end_port)| PolicyPort {
            protocol,
            port,
            end_port,
        })
}

fn arb_rule() -> impl Strategy<Value = PolicyRule> {
    (
        proptest::collection::vec(arb_peer(), 0..3),
        proptest::collection::vec(arb_port(), 0..3),
    )
        .prop_map(|(peers, ports)| PolicyRule { peers, ports })
}

fn arb_policy() -> impl Strategy<Value = NetworkPolicySpec> {
    (
        proptest::sample::select(NAMESPACES),
        arb_selector(POD_KEYS, POD_VALUES),
        proptest::sample::subsequence(vec![PolicyType::Ingress, PolicyType::Egress], 0..=2),
        proptest::collection::vec(arb_rule(), 0..3),
        proptest::collection::vec(arb_rule(), 0..3),
    )
        .prop_map(
            |(ns, pod_selector, policy_types, ingress, egress)| NetworkPolicySpec {
                name: "p".into(),
                namespace: ns.into(),
                pod_selector,
                policy_types,
                ingress,
                egress,
            },
        )
}

fn arb_model() -> impl Strategy<Value = (Vec<PodSpec>, Vec<NamespaceSpec>, Vec<NetworkPolicySpec>)>
{
    let pods = proptest::collection::vec(
        (
            proptest::sample::select(NAMESPACES),
            arb_labels(POD_KEYS, POD_VALUES),
        ),
        1..8,
    )
    .prop_map(|pods| {
        pods.into_iter()
            .enumerate()
            .map(|(i, (ns, labels))| {
                let mut p = pod(&format!("pod{i}"), ns, &format!("10.0.0.{}", i + 1), &[]);
                p.labels = labels;
                p
            })
            .collect::<Vec<_>>()
    });
    let namespaces =
        proptest::collection::vec(arb_labels(NS_KEYS, NS_VALUES), 3).prop_map(|labels| {
            // "dev" sometimes has no NamespaceSpec at all.
            NAMESPACES
                .iter()
                .zip(labels)
                .filter(|(name, labels)| **name != "dev" || !labels.is_empty())
                .map(|(name, labels)| NamespaceSpec {
                    name: (*name).into(),
                    labels,
                })
                .collect::<Vec<_>>()
        });
    (
        pods,
        namespaces,
        proptest::collection::vec(arb_policy(), 0..5),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The compiled policy agrees with the reference on every pair of
    /// addresses (pods and non-pods), protocol and port.
    #[test]
    fn compiled_policy_agrees_with_reference((pods, namespaces, policies) in arb_model()) {
        let (policy, map) = compiled(&pods, &namespaces, &policies);
        let mut addresses: Vec<IpAddr> = pods.iter().map(|p| p.ip).collect();
        addresses.push("10.0.0.200".parse().unwrap());
        addresses.push("192.168.7.7".parse().unwrap());
        for &src in &addresses {
            for &dst in &addresses {
                for proto in [6u8, 17, 1] {
                    for dport in [80u16, 443, 1000, 8000, 8050, 8080] {
                        let packet = Packet { src, dst, proto, dport };
                        let expected = reference_allows(&pods, &namespaces, &policies, &packet);
                        prop_assert_eq!(
                            compiled_allows(&policy, &map, &packet), expected,
                            "{} -> {} proto {} port {}", src, dst, proto, dport
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Named scenarios, each with its expected outcome worked out by hand.

fn rule(peers: Vec<PolicyPeer>, ports: Vec<PolicyPort>) -> PolicyRule {
    PolicyRule { peers, ports }
}

fn pods_by_labels(pairs: &[(&str, &str)]) -> PolicyPeer {
    PolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: labels(pairs),
            match_expressions: vec![],
        }),
        ..PolicyPeer::default()
    }
}

fn tcp(port: u16, end_port: Option<u16>) -> PolicyPort {
    PolicyPort {
        protocol: Protocol::Tcp,
        port: Some(port),
        end_port,
    }
}

fn policy(
    ns: &str,
    select: &[(&str, &str)],
    types: &[PolicyType],
    ingress: Vec<PolicyRule>,
    egress: Vec<PolicyRule>,
) -> NetworkPolicySpec {
    NetworkPolicySpec {
        name: "p".into(),
        namespace: ns.into(),
        pod_selector: LabelSelector {
            match_labels: labels(select),
            match_expressions: vec![],
        },
        policy_types: types.to_vec(),
        ingress,
        egress,
    }
}

fn allowed(policy: &PolicySet, map: &IdentityMap, src: &str, dst: &str, dport: u16) -> bool {
    compiled_allows(
        policy,
        map,
        &Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            dport,
        },
    )
}

fn scenario_pods() -> Vec<PodSpec> {
    vec![
        pod("web", "prod", "10.0.0.1", &[("app", "web")]),
        pod("db", "prod", "10.0.0.2", &[("app", "db")]),
        pod("other", "dev", "10.0.0.3", &[("app", "web")]),
    ]
}

#[test]
fn selected_pod_is_default_deny_for_its_direction() {
    let pods = scenario_pods();
    let deny_db = policy("prod", &[("app", "db")], &[], vec![], vec![]);
    let (p, m) = compiled(&pods, &[], &[deny_db]);
    assert!(
        !allowed(&p, &m, "10.0.0.1", "10.0.0.2", 5432),
        "ingress to db denied"
    );
    assert!(
        allowed(&p, &m, "10.0.0.2", "10.0.0.1", 80),
        "db's egress is not isolated"
    );
    assert!(
        allowed(&p, &m, "10.0.0.1", "10.0.0.3", 80),
        "unselected pods are open"
    );
}

#[test]
fn pod_selector_and_port_allow() {
    let pods = scenario_pods();
    let allow = policy(
        "prod",
        &[("app", "db")],
        &[],
        vec![rule(
            vec![pods_by_labels(&[("app", "web")])],
            vec![tcp(5432, None)],
        )],
        vec![],
    );
    let (p, m) = compiled(&pods, &[], &[allow]);
    assert!(allowed(&p, &m, "10.0.0.1", "10.0.0.2", 5432));
    assert!(!allowed(&p, &m, "10.0.0.1", "10.0.0.2", 80), "other port");
    // Same labels, other namespace: a bare pod selector stays in the policy's.
    assert!(!allowed(&p, &m, "10.0.0.3", "10.0.0.2", 5432));
}

#[test]
fn namespace_selector_ip_block_and_port_range() {
    let pods = scenario_pods();
    let namespaces = vec![NamespaceSpec {
        name: "dev".into(),
        labels: labels(&[("team", "x")]),
    }];
    let from_team_x = PolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: labels(&[("team", "x")]),
            match_expressions: vec![],
        }),
        ..PolicyPeer::default()
    };
    let block = PolicyPeer {
        ip_block: Some(IpBlock {
            cidr: "192.168.0.0/16".parse().unwrap(),
            except: vec!["192.168.1.0/24".parse().unwrap()],
        }),
        ..PolicyPeer::default()
    };
    let allow = policy(
        "prod",
        &[("app", "db")],
        &[PolicyType::Ingress],
        vec![
            rule(vec![from_team_x], vec![tcp(8000, Some(8080))]),
            rule(vec![block], vec![]),
        ],
        vec![],
    );
    let (p, m) = compiled(&pods, &namespaces, &[allow]);
    assert!(allowed(&p, &m, "10.0.0.3", "10.0.0.2", 8000));
    assert!(allowed(&p, &m, "10.0.0.3", "10.0.0.2", 8080));
    assert!(!allowed(&p, &m, "10.0.0.3", "10.0.0.2", 8081));
    assert!(
        !allowed(&p, &m, "10.0.0.1", "10.0.0.2", 8000),
        "prod is not team x"
    );
    assert!(allowed(&p, &m, "192.168.2.9", "10.0.0.2", 22));
    assert!(!allowed(&p, &m, "192.168.1.9", "10.0.0.2", 22), "except");
}

#[test]
fn egress_isolation() {
    let pods = scenario_pods();
    let egress = policy(
        "prod",
        &[("app", "web")],
        &[PolicyType::Egress],
        vec![],
        vec![rule(vec![pods_by_labels(&[("app", "db")])], vec![])],
    );
    let (p, m) = compiled(&pods, &[], &[egress]);
    assert!(allowed(&p, &m, "10.0.0.1", "10.0.0.2", 5432));
    assert!(!allowed(&p, &m, "10.0.0.1", "10.0.0.3", 80));
    assert!(!allowed(&p, &m, "10.0.0.1", "8.8.8.8", 53));
    assert!(
        allowed(&p, &m, "10.0.0.3", "8.8.8.8", 53),
        "dev/web is not selected"
    );
}

// ---------------------------------------------------------------------------
// The policy stage in a chain: statefulness and identity.

fn policy_model() -> Model {
    let mut model = Model::new();
    model.pods = scenario_pods();
    // db takes connections from web on 5432 only; web takes nothing.
    model.policies = vec![
        policy(
            "prod",
            &[("app", "db")],
            &[],
            vec![rule(
                vec![pods_by_labels(&[("app", "web")])],
                vec![tcp(5432, None)],
            )],
            vec![],
        ),
        policy(
            "prod",
            &[("app", "web")],
            &[PolicyType::Ingress],
            vec![],
            vec![],
        ),
    ];
    model.chains = vec![chain(
        "name: fw\ntenant: blue\nsymmetric: true\nfunctions: [{type: policy}]\n",
    )];
    model
}

fn run_one(
    worker: &mut ChainWorker,
    set: &kxdp_vnf_chains::ChainSet,
    now: u64,
    frame: Vec<u8>,
) -> ChainVerdict {
    let mut ctx = [context(&frame, 0, 0)];
    let mut frames = vec![frame];
    worker.process(set, now, &mut ctx, &mut frames);
    ctx[0].outcome
}

#[test]
fn replies_of_allowed_connections_pass() {
    let model = policy_model();
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let denied = ChainVerdict::Drop(DropReason::PolicyDenied);
    // web → db:5432 opens a connection; db's replies pass although web's
    // ingress is closed to everything.
    let request = frame(Protocol::Tcp, "10.0.0.1", 40000, "10.0.0.2", 5432, b"q");
    let reply = frame(Protocol::Tcp, "10.0.0.2", 5432, "10.0.0.1", 40000, b"r");
    assert_eq!(
        run_one(&mut worker, &set, 1, reply.clone()),
        denied,
        "no connection yet"
    );
    assert_eq!(
        run_one(&mut worker, &set, 2, request.clone()),
        ChainVerdict::Pass
    );
    assert_eq!(
        run_one(&mut worker, &set, 3, reply.clone()),
        ChainVerdict::Pass
    );
    assert_eq!(run_one(&mut worker, &set, 4, request), ChainVerdict::Pass);
    // db opening a connection to web is still denied.
    let new_from_db = frame(Protocol::Tcp, "10.0.0.2", 5000, "10.0.0.1", 80, b"n");
    assert_eq!(run_one(&mut worker, &set, 5, new_from_db), denied);
    // A connection from dev/web (same labels, other namespace) is denied.
    let other = frame(Protocol::Tcp, "10.0.0.3", 40000, "10.0.0.2", 5432, b"q");
    assert_eq!(run_one(&mut worker, &set, 6, other), denied);
}

#[test]
fn pod_with_new_address_keeps_its_policy_without_recompiling_rules() {
    let mut model = policy_model();
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    // web comes back as 10.0.0.50.
    model.pods[0].ip = "10.0.0.50".parse().unwrap();
    let set2 = model.compile(2, Some(&set));
    assert!(
        Arc::ptr_eq(set.policy(), set2.policy()),
        "rules are not recompiled"
    );
    assert!(
        !Arc::ptr_eq(set.identity_map(), set2.identity_map()),
        "only the address map changes"
    );
    let from_new = frame(Protocol::Tcp, "10.0.0.50", 40000, "10.0.0.2", 5432, b"q");
    let from_old = frame(Protocol::Tcp, "10.0.0.1", 40001, "10.0.0.2", 5432, b"q");
    assert_eq!(
        run_one(&mut worker, &set2, 10, from_new),
        ChainVerdict::Pass
    );
    assert_eq!(
        run_one(&mut worker, &set2, 11, from_old),
        ChainVerdict::Drop(DropReason::PolicyDenied),
        "the old address is nobody's now"
    );
}

#[test]
fn connections_are_checked_again_after_a_policy_change() {
    let mut model = policy_model();
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, "10.0.0.1", 40000, "10.0.0.2", 5432, b"q");
    let reply = frame(Protocol::Tcp, "10.0.0.2", 5432, "10.0.0.1", 40000, b"r");
    assert_eq!(
        run_one(&mut worker, &set, 1, request.clone()),
        ChainVerdict::Pass
    );
    // Now db takes nothing at all: the open connection is cut, both ways.
    model.policies[0].ingress.clear();
    let set2 = model.compile(2, Some(&set));
    let denied = ChainVerdict::Drop(DropReason::PolicyDenied);
    assert_eq!(run_one(&mut worker, &set2, 2, reply), denied);
    assert_eq!(run_one(&mut worker, &set2, 3, request.clone()), denied);
    // Back to allowing it: a new connection passes again.
    model.policies[0] = policy_model().policies[0].clone();
    let set3 = model.compile(3, Some(&set2));
    assert_eq!(run_one(&mut worker, &set3, 4, request), ChainVerdict::Pass);
}

/// In a cluster (Service CIDR known) NetworkPolicy applies to every pod
/// without a chain: a default-deny ingress on a Service's backend refuses
/// another pod, directly and through the ClusterIP (the policy sees the
/// endpoint the connection was balanced to) — but never its own node.
#[test]
fn in_a_cluster_policies_apply_without_a_chain_and_the_node_is_always_allowed() {
    let mut model = Model::new();
    model.pods = vec![
        pod("web", "default", "10.244.1.10", &[("app", "web")]),
        pod("client", "default", "10.244.1.11", &[("app", "client")]),
    ];
    model.services = vec![service("web", "10.96.0.20", 80, 8080, &["10.244.1.10"])];
    model.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
    model.node_addresses = vec!["192.168.100.1".parse().unwrap()];
    model.policies = vec![NetworkPolicySpec {
        name: "deny".into(),
        namespace: "default".into(),
        pod_selector: LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![],
        },
        policy_types: vec![PolicyType::Ingress],
        ingress: vec![],
        egress: vec![],
    }];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let mut run = |frame: Vec<u8>| {
        let mut ctx = [context(&frame, 0, 0)];
        let mut frames = vec![frame];
        worker.process(&set, 1, &mut ctx, &mut frames);
        ctx[0].outcome
    };
    let denied = ChainVerdict::Drop(DropReason::PolicyDenied);
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "10.244.1.11",
            40_000,
            "10.244.1.10",
            8080,
            b"x"
        )),
        denied,
        "pod → pod"
    );
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "10.244.1.11",
            40_001,
            "10.96.0.20",
            80,
            b"x"
        )),
        denied,
        "pod → ClusterIP → the denied backend"
    );
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "10.244.1.1",
            40_002,
            "10.96.0.20",
            80,
            b"x"
        )),
        denied,
        "a NodePort's traffic (sourced from the gateway address)"
    );
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "192.168.100.1",
            40_003,
            "10.244.1.10",
            8080,
            b"x"
        )),
        ChainVerdict::Pass,
        "the node's probe"
    );
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "192.168.100.1",
            40_004,
            "10.96.0.20",
            80,
            b"x"
        )),
        ChainVerdict::Pass,
        "the node through the ClusterIP"
    );
    assert_eq!(
        run(frame(
            Protocol::Tcp,
            "10.244.1.10",
            40_005,
            "10.244.1.11",
            9000,
            b"x"
        )),
        ChainVerdict::Pass,
        "the web pod's own egress is not isolated"
    );
}
