//! The parts of the model above plain forwarding: namespaces, Services with
//! their endpoints, NetworkPolicies and service chains.
//!
//! The shapes follow the Kubernetes objects they come from (Service and
//! EndpointSlice, NetworkPolicy in networking.k8s.io/v1) so that the agent
//! translates field by field, in the YAML style of the rest of the model
//! (snake_case). Chains are kxdp's own (`ServiceChain`, kxdp.io/v1alpha1).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

fn default_namespace() -> String {
    "default".to_string()
}

fn default_true() -> bool {
    true
}

/// A Kubernetes namespace: its labels feed policy namespace selectors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Namespace name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A transport protocol, as Services and NetworkPolicies name them.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// A Service (ClusterIP) and its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Its namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The tenant whose pods reach it.
    pub tenant: String,
    /// The virtual address.
    pub cluster_ip: IpAddr,
    /// Its ports.
    pub ports: Vec<ServicePortSpec>,
    /// Its endpoints (from EndpointSlices).
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// `sessionAffinity: ClientIP`: a client address keeps its endpoint
    /// (while the endpoint is ready) across connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_ip_affinity: bool,
    /// `internalTrafficPolicy: Local`: pods reach only endpoints on their
    /// own node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal_traffic_local: bool,
}

/// One port of a Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePortSpec {
    /// Port name (optional when there is one port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol; TCP unless set.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The port on the ClusterIP.
    pub port: u16,
    /// The port on the endpoints; the same as `port` unless set.
    #[serde(default)]
    pub target_port: Option<u16>,
    /// The NodePort (type NodePort or LoadBalancer): every node's addresses
    /// on this port reach the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

/// One endpoint of a Service, with the EndpointSlice conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Its address (a pod IP).
    pub ip: IpAddr,
    /// The pod, when known.
    #[serde(default)]
    pub pod: Option<String>,
    /// The node it runs on, when known.
    #[serde(default)]
    pub node: Option<String>,
    /// Ready: takes new connections.
    #[serde(default = "default_true")]
    pub ready: bool,
    /// Serving: answers (may be terminating).
    #[serde(default = "default_true")]
    pub serving: bool,
    /// Terminating: keeps existing connections only.
    #[serde(default)]
    pub terminating: bool,
}

/// A Kubernetes label selector (matchLabels and matchExpressions, ANDed).
/// The empty selector selects everything.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must all be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Expressions that must all hold.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One selector expression.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// How to compare.
    pub operator: SelectorOperator,
    /// Values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A selector expression's operator.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy this selector (Kubernetes semantics).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator {
                    SelectorOperator::In => value.is_some_and(|v| e.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// Which directions a NetworkPolicy governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic to the selected pods.
    Ingress,
    /// Traffic from the selected pods.
    Egress,
}

/// A NetworkPolicy (networking.k8s.io/v1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Policy name.
    pub name: String,
    /// Its namespace: it selects pods of this namespace only.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The pods it applies to (in its namespace).
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Directions; as in Kubernetes, `[Ingress]` plus `Egress` when egress
    /// rules are present, unless set.
    #[serde(default)]
    pub policy_types: Vec<PolicyType>,
    /// Allowed incoming traffic.
    #[serde(default)]
    pub ingress: Vec<PolicyRule>,
    /// Allowed outgoing traffic.
    #[serde(default)]
    pub egress: Vec<PolicyRule>,
}

impl NetworkPolicySpec {
    /// The directions it governs, with Kubernetes' defaulting.
    pub fn effective_types(&self) -> Vec<PolicyType> {
        if !self.policy_types.is_empty() {
            return self.policy_types.clone();
        }
        let mut types = vec![PolicyType::Ingress];
        if !self.egress.is_empty() {
            types.push(PolicyType::Egress);
        }
        types
    }
}

/// One ingress (`peers` are sources) or egress (`peers` are destinations)
/// rule. Empty `peers` matches every peer; empty `ports` every port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// `from` for ingress, `to` for egress.
    #[serde(default, alias = "from", alias = "to")]
    pub peers: Vec<PolicyPeer>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

/// A NetworkPolicy peer: pods by selector (in the policy's namespace, or in
/// the namespaces the namespace selector picks), or an IP block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPeer {
    /// Pods.
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Addresses.
    #[serde(default)]
    pub ip_block: Option<IpBlock>,
}

/// A CIDR with exceptions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    /// The block.
    pub cidr: IpNetwork,
    /// Parts of it that do not match.
    #[serde(default)]
    pub except: Vec<IpNetwork>,
}

/// A port or port range of a policy rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPort {
    /// Protocol; TCP unless set.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The port, or the first of a range; every port when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// The last port of a range.
    #[serde(default)]
    pub end_port: Option<u16>,
}

/// An inclusive port range.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

/// What a chain applies to. Every present field must match.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    /// Source prefix.
    #[serde(default)]
    #[cfg_attr(feature = "crd", schemars(with = "Option<String>"))]
    pub src: Option<IpNetwork>,
    /// Destination prefix.
    #[serde(default)]
    #[cfg_attr(feature = "crd", schemars(with = "Option<String>"))]
    pub dst: Option<IpNetwork>,
    /// Protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Source ports.
    #[serde(default)]
    pub src_ports: Option<PortRange>,
    /// Destination ports.
    #[serde(default)]
    pub dst_ports: Option<PortRange>,
    /// Source identity: labels of the sending pod.
    #[serde(default)]
    pub src_selector: Option<LabelSelector>,
    /// Destination identity: labels of the receiving pod.
    #[serde(default)]
    pub dst_selector: Option<LabelSelector>,
}

/// What a policer meters by.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicerScope {
    /// One bucket per flow (5-tuple).
    #[default]
    Flow,
    /// One bucket for everything the chain classifies.
    Class,
}

/// What an external VNF hop does when the VNF stops answering.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Drop, counted.
    #[default]
    FailClosed,
    /// Skip the hop.
    FailOpen,
}

/// One network function of a chain.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FunctionSpec {
    /// The node's NetworkPolicies.
    Policy,
    /// A token bucket.
    Policer {
        /// Sustained rate, packets per second.
        rate_pps: u64,
        /// Bucket depth, packets.
        burst: u64,
        /// Per flow or per class.
        #[serde(default)]
        per: PolicerScope,
    },
    /// Service load balancing (ClusterIP → endpoint) with Maglev.
    LoadBalancer {
        /// Services balanced, as `namespace/name`; all when empty.
        #[serde(default)]
        services: Vec<String>,
    },
    /// Packets, bytes and drops.
    Counter,
    /// A copy to a tap interface.
    Mirror {
        /// The interface copies go out of (one of `interfaces`).
        interface: String,
    },
    /// A VNF pod with two interfaces.
    External {
        /// The pod-facing interface traffic is sent into the VNF on.
        to_interface: String,
        /// The interface traffic comes back from.
        from_interface: String,
        /// What happens when the VNF does not answer.
        #[serde(default)]
        failure: FailurePolicy,
        /// How long without a returned frame before the VNF is declared
        /// down while traffic is sent to it, in milliseconds.
        #[serde(default = "default_vnf_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_vnf_timeout_ms() -> u64 {
    200
}

impl FunctionSpec {
    /// The kind of per-flow state the function keeps in a flow's
    /// connection entry (`load_balancer`, `per-flow policer`), if any: that
    /// state has one place in the entry, so a chain may hold one function
    /// of each kind (validation refuses a second).
    pub fn flow_state_kind(&self) -> Option<&'static str> {
        match self {
            FunctionSpec::LoadBalancer { .. } => Some("load_balancer"),
            FunctionSpec::Policer {
                per: PolicerScope::Flow,
                ..
            } => Some("per-flow policer"),
            _ => None,
        }
    }
}

/// The name prefix of the chains kxdp makes itself (the implicit Service
/// chains, `kxdp:services:<tenant>:…`): validation refuses a chain of the
/// configuration named so.
pub const IMPLICIT_SERVICES_CHAIN: &str = "kxdp:services:";

/// A service chain: a classifier and an ordered list of functions.
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Chain name.
    pub name: String,
    /// The tenant whose traffic it applies to.
    pub tenant: String,
    /// Higher wins when several chains match.
    #[serde(default)]
    pub priority: u32,
    /// What it applies to.
    #[serde(default)]
    pub classifier: ClassifierSpec,
    /// The functions, in order.
    pub functions: Vec<FunctionSpec>,
    /// Return traffic crosses the same functions in reverse.
    #[serde(default)]
    pub symmetric: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: key.to_string(),
                operator,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let bare = labels(&[]);
        assert!(LabelSelector::default().matches(&bare), "empty selects all");
        let by_label = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: Vec::new(),
        };
        assert!(by_label.matches(&web));
        assert!(!by_label.matches(&bare));
        assert!(requirement("app", SelectorOperator::In, &["web", "db"]).matches(&web));
        assert!(!requirement("app", SelectorOperator::In, &["db"]).matches(&web));
        assert!(!requirement("app", SelectorOperator::In, &["web"]).matches(&bare));
        assert!(requirement("app", SelectorOperator::NotIn, &["db"]).matches(&web));
        assert!(requirement("app", SelectorOperator::NotIn, &["db"]).matches(&bare));
        assert!(!requirement("app", SelectorOperator::NotIn, &["web"]).matches(&web));
        assert!(requirement("tier", SelectorOperator::Exists, &[]).matches(&web));
        assert!(!requirement("tier", SelectorOperator::Exists, &[]).matches(&bare));
        assert!(requirement("tier", SelectorOperator::DoesNotExist, &[]).matches(&bare));
        assert!(!requirement("tier", SelectorOperator::DoesNotExist, &[]).matches(&web));
    }

    #[test]
    fn policy_types_default_like_kubernetes() {
        let mut policy: NetworkPolicySpec =
            serde_yaml::from_str("name: deny\npod_selector: {}\n").unwrap();
        assert_eq!(policy.effective_types(), vec![PolicyType::Ingress]);
        policy.egress.push(PolicyRule::default());
        assert_eq!(
            policy.effective_types(),
            vec![PolicyType::Ingress, PolicyType::Egress]
        );
        policy.policy_types = vec![PolicyType::Egress];
        assert_eq!(policy.effective_types(), vec![PolicyType::Egress]);
    }

    #[test]
    fn a_chain_parses_from_yaml() {
        let chain: ChainSpec = serde_yaml::from_str(concat!(
            "name: web\ntenant: blue\npriority: 10\nsymmetric: true\n",
            "classifier: {dst: 10.96.0.0/16, protocol: tcp, dst_ports: {first: 80, last: 80}}\n",
            "functions:\n",
            "  - type: policy\n",
            "  - {type: policer, rate_pps: 1000, burst: 64}\n",
            "  - {type: external, to_interface: vnf-in, from_interface: vnf-out, failure: fail_open}\n",
            "  - {type: load_balancer}\n",
        ))
        .unwrap();
        assert_eq!(chain.functions.len(), 4);
        assert_eq!(
            chain.functions[2],
            FunctionSpec::External {
                to_interface: "vnf-in".into(),
                from_interface: "vnf-out".into(),
                failure: FailurePolicy::FailOpen,
                timeout_ms: 200,
            }
        );
        assert!(serde_yaml::from_str::<ChainSpec>(
            "name: x\ntenant: t\nfunctions: [{type: teleport}]\n"
        )
        .is_err());
    }
}
