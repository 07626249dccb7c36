//! Conversions between the `kxdp.v1` messages and the configuration model,
//! both ways.
//!
//! Model to message never fails ([`ToProto`]). Message to model
//! ([`FromProto`]) parses addresses, prefixes, MACs, ports and enums, and a
//! value that does not parse is refused with the path of its field in the
//! request, e.g. `upserts.pods[2].ip: "10.1.2" is not an IP address`. What
//! parses but does not make sense (an unknown tenant, a pod address outside
//! the node's CIDR) is for validation of the whole desired state to refuse.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use kxdp_config::{
    ChainSpec, ClassifierSpec, EndpointSpec, FailurePolicy, FunctionSpec, InterfaceRole,
    InterfaceSpec, IpBlock, LabelSelector, LabelSelectorRequirement, MacAddr, NamespaceSpec,
    NetworkPolicySpec, PodCidrSpec, PodSpec, PolicerScope, PolicyPeer, PolicyPort, PolicyRule,
    PolicyType, PortRange, Protocol, RemoteNodeSpec, RouteSpec, RouteTarget, SelectorOperator,
    ServicePortSpec, ServiceSpec, TenantSpec,
};
use kxdp_dataplane::counters::{CounterSnapshot, Counters};
use kxdp_dataplane::tables::{NextHop, PortKind, Tables};
use kxdp_dataplane::DropReason;
use kxdp_node::stats::{KernelDrops, NodeStats, PortRow};

use super::proto;
use super::store::{ApplyMode, ChangeSet, FieldError, KeySet, ObjectKind, ObjectSet};

/// A model value built from a message; a value that does not parse is
/// refused with `path` (the message's place in the request) and the field.
pub trait FromProto<P>: Sized {
    /// Convert `value`, found at `path` in the request.
    fn from_proto(value: &P, path: &str) -> Result<Self, FieldError>;
}

/// A message built from a model value.
pub trait ToProto<P> {
    /// Convert.
    fn to_proto(&self) -> P;
}

/// The namespace that an empty namespace field means, as in Kubernetes.
const DEFAULT_NAMESPACE: &str = "default";

/// The external VNF timeout the model defaults to (`timeout_ms` absent).
const DEFAULT_VNF_TIMEOUT_MS: u64 = 200;

fn list<P, T: FromProto<P>>(items: &[P], path: &str) -> Result<Vec<T>, FieldError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| T::from_proto(item, &format!("{path}[{i}]")))
        .collect()
}

/// The path of field `name` of the message at `path` (the request itself
/// when `path` is empty).
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn to_list<M: ToProto<P>, P>(items: &[M]) -> Vec<P> {
    items.iter().map(ToProto::to_proto).collect()
}

fn ip(value: &str, path: &str) -> Result<IpAddr, FieldError> {
    value
        .parse()
        .map_err(|_| FieldError::new(path, format!("{value:?} is not an IP address")))
}

fn ipv4(value: &str, path: &str) -> Result<Ipv4Addr, FieldError> {
    value
        .parse()
        .map_err(|_| FieldError::new(path, format!("{value:?} is not an IPv4 address")))
}

fn prefix(value: &str, path: &str) -> Result<IpNetwork, FieldError> {
    value.parse().map_err(|_| {
        FieldError::new(
            path,
            format!("{value:?} is not a prefix (address/length, e.g. 10.1.0.0/16)"),
        )
    })
}

fn mac(value: &str, path: &str) -> Result<MacAddr, FieldError> {
    value.parse().map_err(|_| {
        FieldError::new(
            path,
            format!("{value:?} is not a MAC address (six hex octets, e.g. 02:00:00:00:01:01)"),
        )
    })
}

fn port(value: u32, path: &str) -> Result<u16, FieldError> {
    u16::try_from(value)
        .map_err(|_| FieldError::new(path, format!("{value} is not a port (0-65535)")))
}

fn namespace(value: &str) -> String {
    if value.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        value.to_string()
    }
}

fn enum_value<E: TryFrom<i32>>(value: i32, path: &str) -> Result<E, FieldError> {
    E::try_from(value).map_err(|_| FieldError::new(path, format!("{value} is not a known value")))
}

/// A protocol; `unspecified` is what PROTOCOL_UNSPECIFIED means there.
fn protocol(
    value: i32,
    path: &str,
    unspecified: Option<Protocol>,
) -> Result<Option<Protocol>, FieldError> {
    Ok(match enum_value(value, path)? {
        proto::Protocol::Unspecified => unspecified,
        proto::Protocol::Tcp => Some(Protocol::Tcp),
        proto::Protocol::Udp => Some(Protocol::Udp),
        proto::Protocol::Sctp => Some(Protocol::Sctp),
    })
}

fn protocol_to_proto(value: Option<Protocol>) -> i32 {
    let p = match value {
        None => proto::Protocol::Unspecified,
        Some(Protocol::Tcp) => proto::Protocol::Tcp,
        Some(Protocol::Udp) => proto::Protocol::Udp,
        Some(Protocol::Sctp) => proto::Protocol::Sctp,
    };
    p as i32
}

fn required_protocol(value: i32, path: &str) -> Result<Protocol, FieldError> {
    Ok(protocol(value, path, Some(Protocol::Tcp))?.unwrap_or(Protocol::Tcp))
}

impl FromProto<proto::Tenant> for TenantSpec {
    fn from_proto(value: &proto::Tenant, _path: &str) -> Result<Self, FieldError> {
        Ok(TenantSpec {
            name: value.name.clone(),
            vni: value.vni,
        })
    }
}

impl ToProto<proto::Tenant> for TenantSpec {
    fn to_proto(&self) -> proto::Tenant {
        proto::Tenant {
            name: self.name.clone(),
            vni: self.vni,
        }
    }
}

impl FromProto<proto::PodCidr> for PodCidrSpec {
    fn from_proto(value: &proto::PodCidr, path: &str) -> Result<Self, FieldError> {
        Ok(PodCidrSpec {
            tenant: value.tenant.clone(),
            cidr: prefix(&value.cidr, &format!("{path}.cidr"))?,
            gateway: value
                .gateway
                .as_deref()
                .map(|g| ip(g, &format!("{path}.gateway")))
                .transpose()?,
        })
    }
}

impl ToProto<proto::PodCidr> for PodCidrSpec {
    fn to_proto(&self) -> proto::PodCidr {
        proto::PodCidr {
            tenant: self.tenant.clone(),
            cidr: self.cidr.to_string(),
            gateway: self.gateway.map(|g| g.to_string()),
        }
    }
}

impl FromProto<proto::Pod> for PodSpec {
    fn from_proto(value: &proto::Pod, path: &str) -> Result<Self, FieldError> {
        Ok(PodSpec {
            name: value.name.clone(),
            tenant: value.tenant.clone(),
            ip: ip(&value.ip, &format!("{path}.ip"))?,
            ipv6: value
                .ipv6
                .as_deref()
                .map(|a| ip(a, &format!("{path}.ipv6")))
                .transpose()?,
            mac: mac(&value.mac, &format!("{path}.mac"))?,
            interface: value.interface.clone(),
            labels: value.labels.clone(),
            namespace: namespace(&value.namespace),
            container_id: value.container_id.clone().filter(|c| !c.is_empty()),
        })
    }
}

impl ToProto<proto::Pod> for PodSpec {
    fn to_proto(&self) -> proto::Pod {
        proto::Pod {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            ip: self.ip.to_string(),
            ipv6: self.ipv6.map(|a| a.to_string()),
            mac: self.mac.to_string(),
            interface: self.interface.clone(),
            labels: self.labels.clone(),
            namespace: self.namespace.clone(),
            container_id: self.container_id.clone(),
        }
    }
}

impl FromProto<proto::Interface> for InterfaceSpec {
    fn from_proto(value: &proto::Interface, path: &str) -> Result<Self, FieldError> {
        let role = match value.role.as_str() {
            "" | "pod" => InterfaceRole::Pod,
            "underlay" => InterfaceRole::Underlay,
            "host" => InterfaceRole::Host,
            other => {
                return Err(FieldError::new(
                    format!("{path}.role"),
                    format!("{other:?} is not pod, underlay or host"),
                ))
            }
        };
        let queues = u16::try_from(value.queues)
            .ok()
            .filter(|q| *q >= 1)
            .ok_or_else(|| {
                FieldError::new(
                    format!("{path}.queues"),
                    format!("{} is not a queue count (1 to 65535)", value.queues),
                )
            })?;
        let mtu = value
            .mtu
            .map(|m| {
                u16::try_from(m).ok().filter(|m| *m >= 68).ok_or_else(|| {
                    FieldError::new(
                        format!("{path}.mtu"),
                        format!("{m} is not an MTU (68 to 65535)"),
                    )
                })
            })
            .transpose()?;
        Ok(InterfaceSpec {
            name: value.name.clone(),
            role,
            mac: mac(&value.mac, &format!("{path}.mac"))?,
            queues,
            mtu,
        })
    }
}

impl ToProto<proto::Interface> for InterfaceSpec {
    fn to_proto(&self) -> proto::Interface {
        proto::Interface {
            name: self.name.clone(),
            mac: self.mac.to_string(),
            queues: u32::from(self.queues),
            mtu: self.mtu.map(u32::from),
            role: match self.role {
                InterfaceRole::Pod => "pod",
                InterfaceRole::Underlay => "underlay",
                InterfaceRole::Host => "host",
            }
            .to_string(),
        }
    }
}

impl FromProto<proto::RemoteNode> for RemoteNodeSpec {
    fn from_proto(value: &proto::RemoteNode, path: &str) -> Result<Self, FieldError> {
        Ok(RemoteNodeSpec {
            name: value.name.clone(),
            vtep_ip: ipv4(&value.vtep_ip, &format!("{path}.vtep_ip"))?,
            vtep_mac: mac(&value.vtep_mac, &format!("{path}.vtep_mac"))?,
            underlay_mac: value
                .underlay_mac
                .as_deref()
                .map(|m| mac(m, &format!("{path}.underlay_mac")))
                .transpose()?,
            pod_cidrs: list(&value.pod_cidrs, &format!("{path}.pod_cidrs"))?,
            node_ips: value
                .node_ips
                .iter()
                .enumerate()
                .map(|(i, a)| ip(a, &format!("{path}.node_ips[{i}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ToProto<proto::RemoteNode> for RemoteNodeSpec {
    fn to_proto(&self) -> proto::RemoteNode {
        proto::RemoteNode {
            name: self.name.clone(),
            vtep_ip: self.vtep_ip.to_string(),
            vtep_mac: self.vtep_mac.to_string(),
            underlay_mac: self.underlay_mac.map(|m| m.to_string()),
            pod_cidrs: to_list(&self.pod_cidrs),
            node_ips: self.node_ips.iter().map(ToString::to_string).collect(),
        }
    }
}

impl FromProto<proto::Route> for RouteSpec {
    fn from_proto(value: &proto::Route, path: &str) -> Result<Self, FieldError> {
        use proto::route::Via;
        Ok(RouteSpec {
            tenant: value.tenant.clone(),
            prefix: prefix(&value.prefix, &format!("{path}.prefix"))?,
            via: match &value.via {
                Some(Via::Node(node)) => RouteTarget::Node(node.clone()),
                Some(Via::Pod(pod)) => RouteTarget::Pod(pod.clone()),
                Some(Via::Blackhole(_)) => RouteTarget::Blackhole,
                None => {
                    return Err(FieldError::new(
                        format!("{path}.via"),
                        "missing: set node, pod or blackhole",
                    ))
                }
            },
        })
    }
}

impl ToProto<proto::Route> for RouteSpec {
    fn to_proto(&self) -> proto::Route {
        use proto::route::Via;
        proto::Route {
            tenant: self.tenant.clone(),
            prefix: self.prefix.to_string(),
            via: Some(match &self.via {
                RouteTarget::Node(node) => Via::Node(node.clone()),
                RouteTarget::Pod(pod) => Via::Pod(pod.clone()),
                RouteTarget::Blackhole => Via::Blackhole(proto::Blackhole {}),
            }),
        }
    }
}

impl FromProto<proto::Namespace> for NamespaceSpec {
    fn from_proto(value: &proto::Namespace, _path: &str) -> Result<Self, FieldError> {
        Ok(NamespaceSpec {
            name: value.name.clone(),
            labels: value.labels.clone(),
        })
    }
}

impl ToProto<proto::Namespace> for NamespaceSpec {
    fn to_proto(&self) -> proto::Namespace {
        proto::Namespace {
            name: self.name.clone(),
            labels: self.labels.clone(),
        }
    }
}

impl FromProto<proto::ServicePort> for ServicePortSpec {
    fn from_proto(value: &proto::ServicePort, path: &str) -> Result<Self, FieldError> {
        Ok(ServicePortSpec {
            name: value.name.clone(),
            protocol: required_protocol(value.protocol, &format!("{path}.protocol"))?,
            port: port(value.port, &format!("{path}.port"))?,
            target_port: value
                .target_port
                .map(|p| port(p, &format!("{path}.target_port")))
                .transpose()?,
            node_port: value
                .node_port
                .map(|p| port(p, &format!("{path}.node_port")))
                .transpose()?,
        })
    }
}

impl ToProto<proto::ServicePort> for ServicePortSpec {
    fn to_proto(&self) -> proto::ServicePort {
        proto::ServicePort {
            name: self.name.clone(),
            protocol: protocol_to_proto(Some(self.protocol)),
            port: u32::from(self.port),
            target_port: self.target_port.map(u32::from),
            node_port: self.node_port.map(u32::from),
        }
    }
}

impl FromProto<proto::Endpoint> for EndpointSpec {
    fn from_proto(value: &proto::Endpoint, path: &str) -> Result<Self, FieldError> {
        Ok(EndpointSpec {
            ip: ip(&value.ip, &format!("{path}.ip"))?,
            pod: value.pod.clone(),
            node: value.node.clone(),
            ready: value.ready.unwrap_or(true),
            serving: value.serving.unwrap_or(true),
            terminating: value.terminating,
        })
    }
}

impl ToProto<proto::Endpoint> for EndpointSpec {
    fn to_proto(&self) -> proto::Endpoint {
        proto::Endpoint {
            ip: self.ip.to_string(),
            pod: self.pod.clone(),
            node: self.node.clone(),
            ready: Some(self.ready),
            serving: Some(self.serving),
            terminating: self.terminating,
        }
    }
}

impl FromProto<proto::Service> for ServiceSpec {
    fn from_proto(value: &proto::Service, path: &str) -> Result<Self, FieldError> {
        Ok(ServiceSpec {
            name: value.name.clone(),
            namespace: namespace(&value.namespace),
            tenant: value.tenant.clone(),
            cluster_ip: ip(&value.cluster_ip, &format!("{path}.cluster_ip"))?,
            ports: list(&value.ports, &format!("{path}.ports"))?,
            endpoints: list(&value.endpoints, &format!("{path}.endpoints"))?,
            client_ip_affinity: value.client_ip_affinity,
            internal_traffic_local: value.internal_traffic_local,
        })
    }
}

impl ToProto<proto::Service> for ServiceSpec {
    fn to_proto(&self) -> proto::Service {
        proto::Service {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            tenant: self.tenant.clone(),
            cluster_ip: self.cluster_ip.to_string(),
            ports: to_list(&self.ports),
            endpoints: to_list(&self.endpoints),
            client_ip_affinity: self.client_ip_affinity,
            internal_traffic_local: self.internal_traffic_local,
        }
    }
}

impl FromProto<proto::LabelSelectorRequirement> for LabelSelectorRequirement {
    fn from_proto(value: &proto::LabelSelectorRequirement, path: &str) -> Result<Self, FieldError> {
        let field = format!("{path}.operator");
        let operator = match enum_value(value.operator, &field)? {
            proto::SelectorOperator::Unspecified => {
                return Err(FieldError::new(
                    field,
                    "missing: IN, NOT_IN, EXISTS or DOES_NOT_EXIST",
                ))
            }
            proto::SelectorOperator::In => SelectorOperator::In,
            proto::SelectorOperator::NotIn => SelectorOperator::NotIn,
            proto::SelectorOperator::Exists => SelectorOperator::Exists,
            proto::SelectorOperator::DoesNotExist => SelectorOperator::DoesNotExist,
        };
        Ok(LabelSelectorRequirement {
            key: value.key.clone(),
            operator,
            values: value.values.clone(),
        })
    }
}

impl ToProto<proto::LabelSelectorRequirement> for LabelSelectorRequirement {
    fn to_proto(&self) -> proto::LabelSelectorRequirement {
        let operator = match self.operator {
            SelectorOperator::In => proto::SelectorOperator::In,
            SelectorOperator::NotIn => proto::SelectorOperator::NotIn,
            SelectorOperator::Exists => proto::SelectorOperator::Exists,
            SelectorOperator::DoesNotExist => proto::SelectorOperator::DoesNotExist,
        };
        proto::LabelSelectorRequirement {
            key: self.key.clone(),
            operator: operator as i32,
            values: self.values.clone(),
        }
    }
}

impl FromProto<proto::LabelSelector> for LabelSelector {
    fn from_proto(value: &proto::LabelSelector, path: &str) -> Result<Self, FieldError> {
        Ok(LabelSelector {
            match_labels: value.match_labels.clone(),
            match_expressions: list(
                &value.match_expressions,
                &format!("{path}.match_expressions"),
            )?,
        })
    }
}

impl ToProto<proto::LabelSelector> for LabelSelector {
    fn to_proto(&self) -> proto::LabelSelector {
        proto::LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: to_list(&self.match_expressions),
        }
    }
}

fn selector(
    value: &Option<proto::LabelSelector>,
    path: &str,
) -> Result<Option<LabelSelector>, FieldError> {
    value
        .as_ref()
        .map(|s| LabelSelector::from_proto(s, path))
        .transpose()
}

impl FromProto<proto::IpBlock> for IpBlock {
    fn from_proto(value: &proto::IpBlock, path: &str) -> Result<Self, FieldError> {
        Ok(IpBlock {
            cidr: prefix(&value.cidr, &format!("{path}.cidr"))?,
            except: value
                .except
                .iter()
                .enumerate()
                .map(|(i, e)| prefix(e, &format!("{path}.except[{i}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl ToProto<proto::IpBlock> for IpBlock {
    fn to_proto(&self) -> proto::IpBlock {
        proto::IpBlock {
            cidr: self.cidr.to_string(),
            except: self.except.iter().map(ToString::to_string).collect(),
        }
    }
}

impl FromProto<proto::PolicyPeer> for PolicyPeer {
    fn from_proto(value: &proto::PolicyPeer, path: &str) -> Result<Self, FieldError> {
        Ok(PolicyPeer {
            pod_selector: selector(&value.pod_selector, &format!("{path}.pod_selector"))?,
            namespace_selector: selector(
                &value.namespace_selector,
                &format!("{path}.namespace_selector"),
            )?,
            ip_block: value
                .ip_block
                .as_ref()
                .map(|b| IpBlock::from_proto(b, &format!("{path}.ip_block")))
                .transpose()?,
        })
    }
}

impl ToProto<proto::PolicyPeer> for PolicyPeer {
    fn to_proto(&self) -> proto::PolicyPeer {
        proto::PolicyPeer {
            pod_selector: self.pod_selector.as_ref().map(ToProto::to_proto),
            namespace_selector: self.namespace_selector.as_ref().map(ToProto::to_proto),
            ip_block: self.ip_block.as_ref().map(ToProto::to_proto),
        }
    }
}

impl FromProto<proto::PolicyPort> for PolicyPort {
    fn from_proto(value: &proto::PolicyPort, path: &str) -> Result<Self, FieldError> {
        Ok(PolicyPort {
            protocol: required_protocol(value.protocol, &format!("{path}.protocol"))?,
            port: value
                .port
                .map(|p| port(p, &format!("{path}.port")))
                .transpose()?,
            end_port: value
                .end_port
                .map(|p| port(p, &format!("{path}.end_port")))
                .transpose()?,
        })
    }
}

impl ToProto<proto::PolicyPort> for PolicyPort {
    fn to_proto(&self) -> proto::PolicyPort {
        proto::PolicyPort {
            protocol: protocol_to_proto(Some(self.protocol)),
            port: self.port.map(u32::from),
            end_port: self.end_port.map(u32::from),
        }
    }
}

impl FromProto<proto::PolicyRule> for PolicyRule {
    fn from_proto(value: &proto::PolicyRule, path: &str) -> Result<Self, FieldError> {
        Ok(PolicyRule {
            peers: list(&value.peers, &format!("{path}.peers"))?,
            ports: list(&value.ports, &format!("{path}.ports"))?,
        })
    }
}

impl ToProto<proto::PolicyRule> for PolicyRule {
    fn to_proto(&self) -> proto::PolicyRule {
        proto::PolicyRule {
            peers: to_list(&self.peers),
            ports: to_list(&self.ports),
        }
    }
}

impl FromProto<proto::NetworkPolicy> for NetworkPolicySpec {
    fn from_proto(value: &proto::NetworkPolicy, path: &str) -> Result<Self, FieldError> {
        let policy_types = value
            .policy_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let field = format!("{path}.policy_types[{i}]");
                match enum_value(*t, &field)? {
                    proto::PolicyType::Ingress => Ok(PolicyType::Ingress),
                    proto::PolicyType::Egress => Ok(PolicyType::Egress),
                    proto::PolicyType::Unspecified => {
                        Err(FieldError::new(field, "must be INGRESS or EGRESS"))
                    }
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(NetworkPolicySpec {
            name: value.name.clone(),
            namespace: namespace(&value.namespace),
            pod_selector: selector(&value.pod_selector, &format!("{path}.pod_selector"))?
                .unwrap_or_default(),
            policy_types,
            ingress: list(&value.ingress, &format!("{path}.ingress"))?,
            egress: list(&value.egress, &format!("{path}.egress"))?,
        })
    }
}

impl ToProto<proto::NetworkPolicy> for NetworkPolicySpec {
    fn to_proto(&self) -> proto::NetworkPolicy {
        proto::NetworkPolicy {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            pod_selector: Some(self.pod_selector.to_proto()),
            policy_types: self
                .policy_types
                .iter()
                .map(|t| match t {
                    PolicyType::Ingress => proto::PolicyType::Ingress as i32,
                    PolicyType::Egress => proto::PolicyType::Egress as i32,
                })
                .collect(),
            ingress: to_list(&self.ingress),
            egress: to_list(&self.egress),
        }
    }
}

fn port_range(
    value: &Option<proto::PortRange>,
    path: &str,
) -> Result<Option<PortRange>, FieldError> {
    value
        .as_ref()
        .map(|r| {
            Ok(PortRange {
                first: port(r.first, &format!("{path}.first"))?,
                last: port(r.last, &format!("{path}.last"))?,
            })
        })
        .transpose()
}

fn port_range_to_proto(value: &Option<PortRange>) -> Option<proto::PortRange> {
    value.map(|r| proto::PortRange {
        first: u32::from(r.first),
        last: u32::from(r.last),
    })
}

impl FromProto<proto::Classifier> for ClassifierSpec {
    fn from_proto(value: &proto::Classifier, path: &str) -> Result<Self, FieldError> {
        Ok(ClassifierSpec {
            src: value
                .src
                .as_deref()
                .map(|p| prefix(p, &format!("{path}.src")))
                .transpose()?,
            dst: value
                .dst
                .as_deref()
                .map(|p| prefix(p, &format!("{path}.dst")))
                .transpose()?,
            protocol: protocol(value.protocol, &format!("{path}.protocol"), None)?,
            src_ports: port_range(&value.src_ports, &format!("{path}.src_ports"))?,
            dst_ports: port_range(&value.dst_ports, &format!("{path}.dst_ports"))?,
            src_selector: selector(&value.src_selector, &format!("{path}.src_selector"))?,
            dst_selector: selector(&value.dst_selector, &format!("{path}.dst_selector"))?,
        })
    }
}

impl ToProto<proto::Classifier> for ClassifierSpec {
    fn to_proto(&self) -> proto::Classifier {
        proto::Classifier {
            src: self.src.map(|p| p.to_string()),
            dst: self.dst.map(|p| p.to_string()),
            protocol: protocol_to_proto(self.protocol),
            src_ports: port_range_to_proto(&self.src_ports),
            dst_ports: port_range_to_proto(&self.dst_ports),
            src_selector: self.src_selector.as_ref().map(ToProto::to_proto),
            dst_selector: self.dst_selector.as_ref().map(ToProto::to_proto),
        }
    }
}

impl FromProto<proto::Function> for FunctionSpec {
    fn from_proto(value: &proto::Function, path: &str) -> Result<Self, FieldError> {
        use proto::function::Function;
        Ok(match &value.function {
            None => {
                return Err(FieldError::new(
                    format!("{path}.function"),
                    "missing: set policy, policer, load_balancer, counter, mirror or external",
                ))
            }
            Some(Function::Policy(_)) => FunctionSpec::Policy,
            Some(Function::Policer(p)) => FunctionSpec::Policer {
                rate_pps: p.rate_pps,
                burst: p.burst,
                per: match enum_value(p.per, &format!("{path}.policer.per"))? {
                    proto::PolicerScope::Unspecified | proto::PolicerScope::Flow => {
                        PolicerScope::Flow
                    }
                    proto::PolicerScope::Class => PolicerScope::Class,
                },
            },
            Some(Function::LoadBalancer(lb)) => FunctionSpec::LoadBalancer {
                services: lb.services.clone(),
            },
            Some(Function::Counter(_)) => FunctionSpec::Counter,
            Some(Function::Mirror(m)) => FunctionSpec::Mirror {
                interface: m.interface.clone(),
            },
            Some(Function::External(e)) => FunctionSpec::External {
                to_interface: e.to_interface.clone(),
                from_interface: e.from_interface.clone(),
                failure: match enum_value(e.failure, &format!("{path}.external.failure"))? {
                    proto::FailurePolicy::Unspecified | proto::FailurePolicy::FailClosed => {
                        FailurePolicy::FailClosed
                    }
                    proto::FailurePolicy::FailOpen => FailurePolicy::FailOpen,
                },
                timeout_ms: e.timeout_ms.unwrap_or(DEFAULT_VNF_TIMEOUT_MS),
            },
        })
    }
}

impl ToProto<proto::Function> for FunctionSpec {
    fn to_proto(&self) -> proto::Function {
        use proto::function::Function;
        let function = match self {
            FunctionSpec::Policy => Function::Policy(proto::PolicyFunction {}),
            FunctionSpec::Policer {
                rate_pps,
                burst,
                per,
            } => Function::Policer(proto::PolicerFunction {
                rate_pps: *rate_pps,
                burst: *burst,
                per: match per {
                    PolicerScope::Flow => proto::PolicerScope::Flow as i32,
                    PolicerScope::Class => proto::PolicerScope::Class as i32,
                },
            }),
            FunctionSpec::LoadBalancer { services } => {
                Function::LoadBalancer(proto::LoadBalancerFunction {
                    services: services.clone(),
                })
            }
            FunctionSpec::Counter => Function::Counter(proto::CounterFunction {}),
            FunctionSpec::Mirror { interface } => Function::Mirror(proto::MirrorFunction {
                interface: interface.clone(),
            }),
            FunctionSpec::External {
                to_interface,
                from_interface,
                failure,
                timeout_ms,
            } => Function::External(proto::ExternalFunction {
                to_interface: to_interface.clone(),
                from_interface: from_interface.clone(),
                failure: match failure {
                    FailurePolicy::FailClosed => proto::FailurePolicy::FailClosed as i32,
                    FailurePolicy::FailOpen => proto::FailurePolicy::FailOpen as i32,
                },
                timeout_ms: Some(*timeout_ms),
            }),
        };
        proto::Function {
            function: Some(function),
        }
    }
}

impl FromProto<proto::Chain> for ChainSpec {
    fn from_proto(value: &proto::Chain, path: &str) -> Result<Self, FieldError> {
        Ok(ChainSpec {
            name: value.name.clone(),
            tenant: value.tenant.clone(),
            priority: value.priority,
            classifier: value
                .classifier
                .as_ref()
                .map(|c| ClassifierSpec::from_proto(c, &format!("{path}.classifier")))
                .transpose()?
                .unwrap_or_default(),
            functions: list(&value.functions, &format!("{path}.functions"))?,
            symmetric: value.symmetric,
        })
    }
}

impl ToProto<proto::Chain> for ChainSpec {
    fn to_proto(&self) -> proto::Chain {
        proto::Chain {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            priority: self.priority,
            classifier: (self.classifier != ClassifierSpec::default())
                .then(|| self.classifier.to_proto()),
            functions: to_list(&self.functions),
            symmetric: self.symmetric,
        }
    }
}

impl FromProto<proto::ObjectSet> for ObjectSet {
    fn from_proto(value: &proto::ObjectSet, path: &str) -> Result<Self, FieldError> {
        Ok(ObjectSet {
            tenants: list(&value.tenants, &format!("{path}.tenants"))?,
            remote_nodes: list(&value.remote_nodes, &format!("{path}.remote_nodes"))?,
            pods: list(&value.pods, &format!("{path}.pods"))?,
            routes: list(&value.routes, &format!("{path}.routes"))?,
            services: list(&value.services, &format!("{path}.services"))?,
            policies: list(&value.policies, &format!("{path}.policies"))?,
            chains: list(&value.chains, &format!("{path}.chains"))?,
            namespaces: list(&value.namespaces, &format!("{path}.namespaces"))?,
            interfaces: list(&value.interfaces, &format!("{path}.interfaces"))?,
        })
    }
}

impl ToProto<proto::ObjectSet> for ObjectSet {
    fn to_proto(&self) -> proto::ObjectSet {
        proto::ObjectSet {
            tenants: to_list(&self.tenants),
            remote_nodes: to_list(&self.remote_nodes),
            pods: to_list(&self.pods),
            routes: to_list(&self.routes),
            services: to_list(&self.services),
            policies: to_list(&self.policies),
            chains: to_list(&self.chains),
            namespaces: to_list(&self.namespaces),
            interfaces: to_list(&self.interfaces),
        }
    }
}

impl FromProto<proto::KeySet> for KeySet {
    fn from_proto(value: &proto::KeySet, _path: &str) -> Result<Self, FieldError> {
        Ok(KeySet {
            tenants: value.tenants.clone(),
            remote_nodes: value.remote_nodes.clone(),
            pods: value.pods.clone(),
            routes: value.routes.clone(),
            services: value.services.clone(),
            policies: value.policies.clone(),
            chains: value.chains.clone(),
            namespaces: value.namespaces.clone(),
            interfaces: value.interfaces.clone(),
        })
    }
}

impl ToProto<proto::KeySet> for KeySet {
    fn to_proto(&self) -> proto::KeySet {
        proto::KeySet {
            tenants: self.tenants.clone(),
            remote_nodes: self.remote_nodes.clone(),
            pods: self.pods.clone(),
            routes: self.routes.clone(),
            services: self.services.clone(),
            policies: self.policies.clone(),
            chains: self.chains.clone(),
            namespaces: self.namespaces.clone(),
            interfaces: self.interfaces.clone(),
        }
    }
}

/// The kind a `Kind` enum value names; `KIND_UNSPECIFIED` is refused.
pub fn kind_from_proto(value: i32, path: &str) -> Result<ObjectKind, FieldError> {
    Ok(match enum_value(value, path)? {
        proto::Kind::Unspecified => {
            return Err(FieldError::new(path, "KIND_UNSPECIFIED is not a kind"))
        }
        proto::Kind::Tenant => ObjectKind::Tenant,
        proto::Kind::RemoteNode => ObjectKind::RemoteNode,
        proto::Kind::Pod => ObjectKind::Pod,
        proto::Kind::Route => ObjectKind::Route,
        proto::Kind::Service => ObjectKind::Service,
        proto::Kind::Policy => ObjectKind::Policy,
        proto::Kind::Chain => ObjectKind::Chain,
        proto::Kind::Namespace => ObjectKind::Namespace,
        proto::Kind::Interface => ObjectKind::Interface,
    })
}

/// The `Kind` enum value of a kind.
pub fn kind_to_proto(kind: ObjectKind) -> proto::Kind {
    match kind {
        ObjectKind::Tenant => proto::Kind::Tenant,
        ObjectKind::RemoteNode => proto::Kind::RemoteNode,
        ObjectKind::Pod => proto::Kind::Pod,
        ObjectKind::Route => proto::Kind::Route,
        ObjectKind::Service => proto::Kind::Service,
        ObjectKind::Policy => proto::Kind::Policy,
        ObjectKind::Chain => proto::Kind::Chain,
        ObjectKind::Namespace => proto::Kind::Namespace,
        ObjectKind::Interface => proto::Kind::Interface,
    }
}

fn kinds_from_proto(values: &[i32], path: &str) -> Result<Vec<ObjectKind>, FieldError> {
    values
        .iter()
        .enumerate()
        .map(|(i, k)| kind_from_proto(*k, &format!("{path}[{i}]")))
        .collect()
}

impl FromProto<proto::ApplyRequest> for ChangeSet {
    fn from_proto(value: &proto::ApplyRequest, _path: &str) -> Result<Self, FieldError> {
        let mode = match enum_value(value.mode, "mode")? {
            proto::ApplyMode::Unspecified => {
                return Err(FieldError::new(
                    "mode",
                    "missing: APPLY_MODE_DELTA or APPLY_MODE_RESYNC",
                ))
            }
            proto::ApplyMode::Delta => {
                if !value.resync_kinds.is_empty() {
                    return Err(FieldError::new(
                        "resync_kinds",
                        "only with mode APPLY_MODE_RESYNC",
                    ));
                }
                ApplyMode::Delta
            }
            proto::ApplyMode::Resync => {
                ApplyMode::Resync(kinds_from_proto(&value.resync_kinds, "resync_kinds")?)
            }
        };
        Ok(ChangeSet {
            mode,
            upserts: value
                .upserts
                .as_ref()
                .map(|u| ObjectSet::from_proto(u, "upserts"))
                .transpose()?
                .unwrap_or_default(),
            deletes: value
                .deletes
                .as_ref()
                .map(|d| KeySet::from_proto(d, "deletes"))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

impl ToProto<proto::ApplyRequest> for ChangeSet {
    fn to_proto(&self) -> proto::ApplyRequest {
        let (mode, resync_kinds) = match &self.mode {
            ApplyMode::Delta => (proto::ApplyMode::Delta, Vec::new()),
            ApplyMode::Resync(kinds) => (
                proto::ApplyMode::Resync,
                kinds.iter().map(|k| kind_to_proto(*k) as i32).collect(),
            ),
        };
        proto::ApplyRequest {
            mode: mode as i32,
            upserts: Some(self.upserts.to_proto()),
            deletes: Some(self.deletes.to_proto()),
            resync_kinds,
        }
    }
}

/// The kinds a `ListRequest` names (all when empty).
pub fn list_kinds(value: &proto::ListRequest) -> Result<Vec<ObjectKind>, FieldError> {
    let kinds = kinds_from_proto(&value.kinds, "kinds")?;
    Ok(if kinds.is_empty() {
        ObjectKind::ALL.to_vec()
    } else {
        kinds
    })
}

fn mac_string(octets: [u8; 6]) -> String {
    MacAddr(octets).to_string()
}

/// What the workers use: the published tables as a `DumpTablesResponse`.
pub fn dump_tables(tables: &Tables) -> proto::DumpTablesResponse {
    let tenant_name = |id: u16| {
        tables
            .tenants()
            .get(usize::from(id))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let ports = tables
        .ports()
        .iter()
        .enumerate()
        .map(|(id, port)| {
            let (role, pod) = match &port.kind {
                PortKind::Pod(pod) => (
                    proto::PortRole::Pod,
                    Some(proto::TablePod {
                        name: pod.name.clone(),
                        tenant: tenant_name(pod.tenant),
                        mac: mac_string(pod.mac),
                        ipv4: pod.ipv4.map(|a| a.to_string()),
                        ipv6: pod.ipv6.map(|a| a.to_string()),
                        gateway4: pod.gateway4.map(|a| a.to_string()),
                        gateway6: pod.gateway6.map(|a| a.to_string()),
                    }),
                ),
                PortKind::Idle => (proto::PortRole::Idle, None),
                PortKind::Underlay => (proto::PortRole::Underlay, None),
                PortKind::Host(_) => (proto::PortRole::Host, None),
            };
            proto::TablePort {
                id: id as u32,
                name: port.name.clone(),
                mac: mac_string(port.mac),
                role: role as i32,
                pod,
            }
        })
        .collect();
    let tenants = tables
        .tenants()
        .iter()
        .enumerate()
        .map(|(id, t)| proto::TableTenant {
            id: id as u32,
            name: t.name.clone(),
            vni: t.vni,
        })
        .collect();
    let routes = tables
        .routes()
        .into_iter()
        .map(|(tenant, prefix, hop)| {
            use proto::table_route::NextHop as Hop;
            let next_hop = match hop {
                NextHop::Local { port, mac } => Hop::Local(proto::LocalHop {
                    port: u32::from(*port),
                    port_name: tables
                        .port(*port)
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    mac: mac_string(*mac),
                }),
                NextHop::Remote {
                    node,
                    inner_dst_mac,
                    template,
                } => {
                    // Outer headers: Ethernet (dst MAC at 0..6), IPv4 (dst at 30..34).
                    let b = &template.bytes;
                    Hop::Remote(proto::RemoteHop {
                        node: node.clone(),
                        inner_dst_mac: mac_string(*inner_dst_mac),
                        outer_dst_mac: mac_string([b[0], b[1], b[2], b[3], b[4], b[5]]),
                        vtep_ip: Ipv4Addr::new(b[30], b[31], b[32], b[33]).to_string(),
                        vni: template.vni(),
                    })
                }
                NextHop::Blackhole => Hop::Blackhole(proto::Blackhole {}),
                NextHop::Unreachable => Hop::Unreachable(proto::Blackhole {}),
            };
            proto::TableRoute {
                tenant: tenant_name(tenant),
                prefix: prefix.to_string(),
                next_hop: Some(next_hop),
            }
        })
        .collect();
    let vtep = tables.vtep();
    proto::DumpTablesResponse {
        generation: tables.generation(),
        ports,
        tenants,
        routes,
        vtep: Some(proto::TableVtep {
            ip: vtep.ip.to_string(),
            udp_port: u32::from(vtep.udp_port),
            mac: mac_string(vtep.mac),
            port: u32::from(vtep.port),
            mtu: u32::from(vtep.mtu),
        }),
    }
}

/// One worker's counters as a message, with every drop reason.
pub fn worker_counters(worker: usize, c: &Counters) -> proto::WorkerCounters {
    proto::WorkerCounters {
        worker: worker as u32,
        rx_packets: c.rx_packets,
        rx_bytes: c.rx_bytes,
        tx_packets: c.tx_packets,
        tx_bytes: c.tx_bytes,
        passed: c.passed,
        neighbour_replies: c.neighbour_replies,
        encapsulated: c.encapsulated,
        decapsulated: c.decapsulated,
        busy_loops: c.busy_loops,
        sleeps: c.sleeps,
        busy_cycles: c.busy_cycles,
        icmp_time_exceeded: c.icmp_time_exceeded,
        icmp_unreachable: c.icmp_unreachable,
        icmp_too_big: c.icmp_too_big,
        icmp_rate_limited: c.icmp_rate_limited,
        drops: DropReason::ALL
            .iter()
            .map(|r| (r.label().to_string(), c.drops_for(*r)))
            .collect(),
        max_loop_ns: c.max_loop_ns,
        slow_loops: c.slow_loops,
        port_rebinds: c.port_rebinds,
        frames: Some(proto::FrameAccounting {
            total: c.frames_total,
            free: c.frames_free,
            in_fill: c.frames_in_fill,
            in_tx: c.frames_in_tx,
            stranded: c.frames_stranded,
            checks: c.accounting_checks,
            failures: c.accounting_failures,
        }),
    }
}

/// A worker's counters read back from their message: what the worker
/// published, so that [`CounterSnapshot::from_counters`] reads them as it
/// reads them on the node. Drop labels this build does not know are kept
/// in the snapshot's `drops` (a newer node's reasons), as they arrived.
fn counter_snapshot(w: &proto::WorkerCounters) -> CounterSnapshot {
    let frames = w.frames.unwrap_or_default();
    let mut c = Counters {
        rx_packets: w.rx_packets,
        rx_bytes: w.rx_bytes,
        tx_packets: w.tx_packets,
        tx_bytes: w.tx_bytes,
        passed: w.passed,
        neighbour_replies: w.neighbour_replies,
        encapsulated: w.encapsulated,
        decapsulated: w.decapsulated,
        icmp_time_exceeded: w.icmp_time_exceeded,
        icmp_unreachable: w.icmp_unreachable,
        icmp_too_big: w.icmp_too_big,
        icmp_rate_limited: w.icmp_rate_limited,
        busy_loops: w.busy_loops,
        sleeps: w.sleeps,
        busy_cycles: w.busy_cycles,
        max_loop_ns: w.max_loop_ns,
        slow_loops: w.slow_loops,
        frames_total: frames.total,
        frames_free: frames.free,
        frames_in_fill: frames.in_fill,
        frames_in_tx: frames.in_tx,
        frames_stranded: frames.stranded,
        port_rebinds: w.port_rebinds,
        accounting_checks: frames.checks,
        accounting_failures: frames.failures,
        ..Counters::default()
    };
    for (label, count) in &w.drops {
        if let Some(reason) = DropReason::from_label(label) {
            c.drops[reason.index()] = *count;
        }
    }
    let mut snapshot = CounterSnapshot::from_counters(w.worker as usize, &c);
    snapshot.drops = w
        .drops
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(label, count)| (label.clone(), *count))
        .collect();
    snapshot
}

/// How a port is bound, with its socket's kernel drops.
pub fn bound_port(row: &PortRow) -> proto::BoundPort {
    proto::BoundPort {
        worker: u32::try_from(row.worker).unwrap_or(u32::MAX),
        interface: row.interface.clone(),
        queue: row.queue,
        bind_mode: row.bind_mode.clone(),
        xdp_mode: row.xdp_mode.clone(),
        napi: row.napi.clone(),
        kernel: row.kernel.map(|k| proto::KernelDrops {
            rx_dropped: k.rx_dropped,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty: k.rx_fill_ring_empty,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
        }),
    }
}

impl FromProto<proto::BoundPort> for PortRow {
    fn from_proto(p: &proto::BoundPort, path: &str) -> Result<Self, FieldError> {
        Ok(PortRow {
            worker: usize::try_from(p.worker)
                .map_err(|_| FieldError::new(join(path, "worker"), "does not fit this machine"))?,
            interface: p.interface.clone(),
            queue: p.queue,
            bind_mode: p.bind_mode.clone(),
            xdp_mode: p.xdp_mode.clone(),
            napi: p.napi.clone(),
            kernel: p.kernel.map(|k| KernelDrops {
                rx_dropped: k.rx_dropped,
                rx_ring_full: k.rx_ring_full,
                rx_fill_ring_empty: k.rx_fill_ring_empty,
                rx_invalid_descs: k.rx_invalid_descs,
                tx_invalid_descs: k.tx_invalid_descs,
            }),
        })
    }
}

impl FromProto<proto::GetCountersResponse> for NodeStats {
    fn from_proto(r: &proto::GetCountersResponse, path: &str) -> Result<Self, FieldError> {
        Ok(NodeStats {
            node: r.node.clone(),
            generation: r.generation,
            routes: usize::try_from(r.routes).map_err(|_| {
                FieldError::new(
                    join(path, "routes"),
                    format!("{} does not fit this machine", r.routes),
                )
            })?,
            workers: r.workers.iter().map(counter_snapshot).collect(),
            ports: list(&r.ports, &join(path, "ports"))?,
        })
    }
}

/// Chains' counters (summed over workers) as messages, every chain drop
/// reason included; chains in the order of `order` (the desired state's),
/// then any others.
pub fn chain_counters(
    stats: &[kxdp_vnf_chains::ChainStats],
    order: &[String],
) -> Vec<proto::ChainCounters> {
    let mut sorted: Vec<&kxdp_vnf_chains::ChainStats> = stats.iter().collect();
    sorted.sort_by_key(|s| {
        order
            .iter()
            .position(|name| *name == s.chain)
            .unwrap_or(usize::MAX)
    });
    sorted
        .into_iter()
        .map(|s| {
            let c = &s.counters;
            proto::ChainCounters {
                name: s.chain.clone(),
                packets: c.packets,
                bytes: c.bytes,
                resumed: c.resumed,
                passed: c.passed,
                dropped: c.dropped,
                redirected: c.redirected,
                reply_packets: c.reply_packets,
                drops: kxdp_dataplane::DropReason::CHAIN
                    .iter()
                    .map(|r| (r.label().to_string(), c.drops_for(*r)))
                    .collect(),
                stages: s
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(i, (kind, st))| proto::ChainStageCounters {
                        index: i as u32,
                        kind: (*kind).to_string(),
                        packets: st.packets,
                        bytes: st.bytes,
                        passed: st.passed,
                        dropped: st.dropped,
                        redirected: st.redirected,
                        mirrored: st.mirrored,
                        mirror_failed: st.mirror_failed,
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What `GetCounters` answers reads back as the node's own stats:
    /// every worker counter, the kernel's drops per port (or none), and
    /// drop labels this build does not know.
    #[test]
    fn get_counters_reads_back_as_the_nodes_stats() {
        let mut c = Counters {
            rx_packets: 10,
            busy_cycles: 2_500,
            max_loop_ns: 7,
            slow_loops: 1,
            port_rebinds: 2,
            frames_total: 4,
            frames_free: 1,
            frames_in_fill: 1,
            frames_in_tx: 1,
            frames_stranded: 1,
            accounting_checks: 3,
            accounting_failures: 1,
            ..Counters::default()
        };
        c.drop_n(DropReason::RxRingFull, 5);
        let mut worker = worker_counters(1, &c);
        worker.drops.insert("a_reason_from_a_newer_node".into(), 1);
        let kernel = KernelDrops {
            rx_dropped: 1,
            rx_ring_full: 2,
            rx_fill_ring_empty: 3,
            rx_invalid_descs: 4,
            tx_invalid_descs: 5,
        };
        let rows = [
            PortRow {
                worker: 1,
                interface: "ul0".into(),
                queue: 1,
                bind_mode: "copy".into(),
                xdp_mode: "native".into(),
                napi: "kernel".into(),
                kernel: Some(kernel),
            },
            PortRow {
                worker: 0,
                interface: "vp0".into(),
                queue: 0,
                bind_mode: "zero-copy".into(),
                xdp_mode: "generic".into(),
                napi: "core 1 (NAPI 8195, thread 4242)".into(),
                kernel: None,
            },
        ];
        let response = proto::GetCountersResponse {
            node: "n1".into(),
            generation: 3,
            routes: 12,
            workers: vec![worker],
            ports: rows.iter().map(bound_port).collect(),
        };
        let stats = NodeStats::from_proto(&response, "").unwrap();
        assert_eq!(
            (stats.node.as_str(), stats.generation, stats.routes),
            ("n1", 3, 12)
        );
        let mut expected = CounterSnapshot::from_counters(1, &c);
        expected
            .drops
            .insert("a_reason_from_a_newer_node".into(), 1);
        assert_eq!(stats.workers, [expected]);
        assert_eq!(stats.workers[0].cycles_per_packet, 250.0);
        assert_eq!(stats.ports.len(), 2);
        for (back, row) in stats.ports.iter().zip(&rows) {
            assert_eq!(
                (back.worker, &back.interface, back.queue, back.kernel),
                (row.worker, &row.interface, row.queue, row.kernel)
            );
            assert_eq!(
                (&back.bind_mode, &back.xdp_mode, &back.napi),
                (&row.bind_mode, &row.xdp_mode, &row.napi)
            );
        }
        assert_eq!(stats.socket_drops("ul0"), (kernel.total(), 3));
    }

    /// Every kind, with every optional field both set and unset somewhere.
    const OBJECTS: &str = r#"
tenants: [{name: blue, vni: 100}, {name: red, vni: 200}]
remote_nodes:
  - name: node2
    vtep_ip: 192.168.0.2
    vtep_mac: "02:00:00:00:02:00"
    pod_cidrs: [{tenant: blue, cidr: 10.1.2.0/24}]
  - name: node3
    vtep_ip: 192.168.0.3
    vtep_mac: "02:00:00:00:03:00"
    underlay_mac: "02:00:00:00:03:01"
    pod_cidrs: [{tenant: red, cidr: "fd00:3::/64", gateway: "fd00:3::fe"}]
pods:
  - {name: a, tenant: blue, ip: 10.1.1.2, mac: "02:00:00:00:01:02", interface: p0}
  - name: b
    tenant: red
    ip: 10.2.1.2
    ipv6: "fd00:1::2"
    mac: "02:00:00:00:01:03"
    interface: p1
    labels: {app: web, tier: front}
    namespace: prod
routes:
  - {tenant: blue, prefix: 10.9.0.0/16, via: {node: node2}}
  - {tenant: blue, prefix: 10.8.0.0/16, via: {pod: a}}
  - {tenant: red, prefix: "fd00:9::/32", via: blackhole}
services:
  - name: web
    namespace: prod
    tenant: blue
    cluster_ip: 10.96.0.10
    ports: [{port: 80, target_port: 8080}, {name: dns, protocol: udp, port: 53}]
    endpoints:
      - {ip: 10.1.1.2, pod: a, node: node1}
      - {ip: 10.1.2.7, ready: false, serving: true, terminating: true}
  - {name: dns, tenant: red, cluster_ip: "fd00:96::a", ports: [{protocol: sctp, port: 9}]}
policies:
  - name: deny-all
    pod_selector: {}
  - name: web
    namespace: prod
    pod_selector:
      match_labels: {app: web}
      match_expressions: [{key: tier, operator: In, values: [front]}, {key: legacy, operator: DoesNotExist}]
    policy_types: [Ingress, Egress]
    ingress:
      - from: [{pod_selector: {match_labels: {app: client}}}, {namespace_selector: {match_labels: {team: a}}}]
        ports: [{port: 80}, {protocol: udp, port: 1000, end_port: 2000}]
    egress:
      - to: [{ip_block: {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}}]
chains:
  - name: web
    tenant: blue
    priority: 10
    symmetric: true
    classifier:
      src: 10.1.0.0/16
      dst: 10.96.0.0/16
      protocol: tcp
      src_ports: {first: 1024, last: 65535}
      dst_ports: {first: 80, last: 80}
      src_selector: {match_labels: {app: client}}
      dst_selector: {match_expressions: [{key: app, operator: NotIn, values: [db]}]}
    functions:
      - type: policy
      - {type: policer, rate_pps: 1000, burst: 64, per: class}
      - {type: load_balancer, services: [prod/web]}
      - type: counter
      - {type: mirror, interface: tap0}
      - {type: external, to_interface: vnf-in, from_interface: vnf-out, failure: fail_open, timeout_ms: 50}
      - {type: external, to_interface: vnf-in, from_interface: vnf-out}
  - name: plain
    tenant: red
    functions: [{type: counter}]
namespaces:
  - {name: prod, labels: {team: a}}
  - {name: default}
interfaces:
  - {name: kx0123456789a, role: pod, mac: '02:aa:00:00:00:01', queues: 2, mtu: 1450}
  - {name: eth1, role: underlay, mac: '02:aa:00:00:00:02'}
"#;

    fn objects() -> ObjectSet {
        serde_yaml::from_str(OBJECTS).unwrap()
    }

    #[test]
    fn every_kind_round_trips_through_the_messages() {
        let model = objects();
        for kind in ObjectKind::ALL {
            assert!(model.count(kind) >= 2, "the fixture covers {kind}");
        }
        let message = model.to_proto();
        let back = ObjectSet::from_proto(&message, "upserts").unwrap();
        assert_eq!(back, model);
        // And through the wire encoding.
        let bytes = prost::Message::encode_to_vec(&message);
        let decoded: proto::ObjectSet = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(ObjectSet::from_proto(&decoded, "upserts").unwrap(), model);
    }

    #[test]
    fn message_defaults_mean_the_model_defaults() {
        // A message with only the required fields set means what the YAML
        // with only the required fields means.
        let yaml: ObjectSet = serde_yaml::from_str(
            "services: [{name: s, tenant: blue, cluster_ip: 10.96.0.1, ports: [{port: 80}], endpoints: [{ip: 10.1.1.2}]}]\n\
             chains: [{name: c, tenant: blue, functions: [{type: external, to_interface: x, from_interface: y}, {type: policer, rate_pps: 1, burst: 1}]}]\n\
             pods: [{name: p, tenant: blue, ip: 10.1.1.2, mac: '02:00:00:00:00:02', interface: p0}]\n",
        )
        .unwrap();
        let message = proto::ObjectSet {
            services: vec![proto::Service {
                name: "s".into(),
                tenant: "blue".into(),
                cluster_ip: "10.96.0.1".into(),
                ports: vec![proto::ServicePort {
                    port: 80,
                    ..Default::default()
                }],
                endpoints: vec![proto::Endpoint {
                    ip: "10.1.1.2".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            chains: vec![proto::Chain {
                name: "c".into(),
                tenant: "blue".into(),
                functions: vec![
                    proto::Function {
                        function: Some(proto::function::Function::External(
                            proto::ExternalFunction {
                                to_interface: "x".into(),
                                from_interface: "y".into(),
                                ..Default::default()
                            },
                        )),
                    },
                    proto::Function {
                        function: Some(proto::function::Function::Policer(
                            proto::PolicerFunction {
                                rate_pps: 1,
                                burst: 1,
                                ..Default::default()
                            },
                        )),
                    },
                ],
                ..Default::default()
            }],
            pods: vec![proto::Pod {
                name: "p".into(),
                tenant: "blue".into(),
                ip: "10.1.1.2".into(),
                mac: "02:00:00:00:00:02".into(),
                interface: "p0".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(ObjectSet::from_proto(&message, "upserts").unwrap(), yaml);
    }

    #[test]
    fn unparsable_values_name_their_field() {
        let mut message = objects().to_proto();
        message.pods[1].ip = "10.1.2".into();
        let e = ObjectSet::from_proto(&message, "upserts").unwrap_err();
        assert_eq!(e.field, "upserts.pods[1].ip");
        assert_eq!(
            e.to_string(),
            "upserts.pods[1].ip: \"10.1.2\" is not an IP address"
        );

        type Mutation = Box<dyn Fn(&mut proto::ObjectSet)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|m| m.remote_nodes[1].pod_cidrs[0].cidr = "fd00::/129".into()),
                "upserts.remote_nodes[1].pod_cidrs[0].cidr",
            ),
            (
                Box::new(|m| m.remote_nodes[0].vtep_ip = "fd00::1".into()),
                "upserts.remote_nodes[0].vtep_ip",
            ),
            (
                Box::new(|m| m.pods[0].mac = "02:00:00:00:01".into()),
                "upserts.pods[0].mac",
            ),
            (
                Box::new(|m| m.services[0].ports[1].port = 70000),
                "upserts.services[0].ports[1].port",
            ),
            (
                Box::new(|m| m.services[0].ports[0].protocol = 42),
                "upserts.services[0].ports[0].protocol",
            ),
            (
                Box::new(|m| m.routes[2].via = None),
                "upserts.routes[2].via",
            ),
            (
                Box::new(|m| {
                    m.policies[1].egress[0].peers[0]
                        .ip_block
                        .as_mut()
                        .unwrap()
                        .except[0] = "x".into()
                }),
                "upserts.policies[1].egress[0].peers[0].ip_block.except[0]",
            ),
            (
                Box::new(|m| {
                    m.policies[1]
                        .pod_selector
                        .as_mut()
                        .unwrap()
                        .match_expressions[1]
                        .operator = 0
                }),
                "upserts.policies[1].pod_selector.match_expressions[1].operator",
            ),
            (
                Box::new(|m| m.policies[1].policy_types[1] = 0),
                "upserts.policies[1].policy_types[1]",
            ),
            (
                Box::new(|m| m.chains[0].functions[3].function = None),
                "upserts.chains[0].functions[3].function",
            ),
            (
                Box::new(|m| {
                    m.chains[0].classifier.as_mut().unwrap().dst_ports = Some(proto::PortRange {
                        first: 1,
                        last: 1 << 20,
                    })
                }),
                "upserts.chains[0].classifier.dst_ports.last",
            ),
        ];
        for (mutate, field) in cases {
            let mut message = objects().to_proto();
            mutate(&mut message);
            let e = ObjectSet::from_proto(&message, "upserts").unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn apply_requests_round_trip_and_refuse_bad_modes() {
        let change = ChangeSet {
            mode: ApplyMode::Resync(vec![ObjectKind::Pod, ObjectKind::Service]),
            upserts: ObjectSet {
                pods: objects().pods,
                ..Default::default()
            },
            deletes: KeySet::default(),
        };
        assert_eq!(
            ChangeSet::from_proto(&change.to_proto(), "").unwrap(),
            change
        );
        let delta = ChangeSet::delete(KeySet {
            routes: vec!["blue/10.9.0.0/16".into()],
            ..Default::default()
        });
        assert_eq!(ChangeSet::from_proto(&delta.to_proto(), "").unwrap(), delta);

        let mut unspecified = delta.to_proto();
        unspecified.mode = 0;
        assert_eq!(
            ChangeSet::from_proto(&unspecified, "").unwrap_err().field,
            "mode"
        );
        let mut kinds_in_delta = delta.to_proto();
        kinds_in_delta.resync_kinds = vec![proto::Kind::Pod as i32];
        assert_eq!(
            ChangeSet::from_proto(&kinds_in_delta, "")
                .unwrap_err()
                .field,
            "resync_kinds"
        );
        let mut bad_kind = change.to_proto();
        bad_kind.resync_kinds.push(0);
        assert_eq!(
            ChangeSet::from_proto(&bad_kind, "").unwrap_err().field,
            "resync_kinds[2]"
        );
    }

    #[test]
    fn kinds_map_both_ways() {
        for kind in ObjectKind::ALL {
            assert_eq!(
                kind_from_proto(kind_to_proto(kind) as i32, "kind").unwrap(),
                kind
            );
        }
        assert!(kind_from_proto(0, "kind").is_err());
        assert!(kind_from_proto(99, "kind").is_err());
    }
}
