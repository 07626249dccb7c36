//! The pure index: Kubernetes objects in, the model of this node out.
//!
//! The agent's watchers feed it objects ([`Index::upsert`],
//! [`Index::remove`], [`Index::replace`] after a relist); [`Index::model`]
//! turns what it holds into the objects of the desired state
//! ([`ObjectSet`]) for this node, with the objects it had to leave out and
//! why. No I/O, no clock, no client: unit-tested with plain objects.
//!
//! How Kubernetes maps to the model (the conventions the node's CNI plugin
//! and kxdp share):
//!
//! | Kubernetes | model |
//! |---|---|
//! | Namespace, label `kxdp.io/tenant` | the tenant of everything in it (the agent's default tenant without the label); its labels for policy namespace selectors |
//! | Node other than this one | a remote node: the first IPv4 InternalIP of `status.addresses` is its VTEP, and every InternalIP (both families, in order, once each; not ExternalIP) its node addresses; annotation `kxdp.io/vtep-mac` (written by kxdp on its own Node; for a Flannel node, the `VtepMAC` of `flannel.alpha.coreos.com/backend-data`) its VTEP MAC; `spec.podCIDRs` its pod CIDRs in the default tenant, or annotation `kxdp.io/pod-cidrs` (`blue=10.1.0.0/24,red=10.2.0.0/24`) per tenant; optional `kxdp.io/underlay-mac` |
//! | Pod on this node (`spec.nodeName`) | a pod named `namespace/name`: `status.podIPs` (one per family), labels, its interface, MAC and tenant from its `kxdp-cni` registration (the pod of the same key with a container id; the plugin took the tenant from the namespace's label, and the pod's labels are added here), or else from the annotations `kxdp.io/interface` (the host side of its veth, one of the node's configured pod interfaces) and `kxdp.io/mac` (its eth0 MAC). Host-network, finished (Succeeded/Failed) and not yet addressed pods are left out |
//! | Service (ClusterIP, NodePort, LoadBalancer) + its EndpointSlices (label `kubernetes.io/service-name`) | a service `namespace/name` at its (first) ClusterIP with its ports (a named target port is resolved through the slices' ports; `nodePort` for type NodePort and LoadBalancer only) and the endpoints of the slices of the ClusterIP's family, pods' or nodes' own addresses alike (hostNetwork endpoints, as `default/kubernetes` has), with the ready/serving/terminating conditions (unset ready means ready, unset serving means ready), `nodeName` as their node and a `Pod` targetRef as their pod; `sessionAffinity: ClientIP` is client IP affinity, `internalTrafficPolicy: Local` node-local endpoints only. Headless (`clusterIP: None`) and ExternalName services are left out (nothing to balance) |
//! | NetworkPolicy | a policy, field by field; a rule with a named port (kxdp has no port names) is left out, which only ever allows less |
//! | ServiceChain (kxdp.io/v1alpha1) | a chain named `namespace/name` |

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort as K8sPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kxdp_config::crd::ServiceChain;
use kxdp_config::{
    EndpointSpec, IpBlock, LabelSelector, LabelSelectorRequirement, MacAddr, NamespaceSpec,
    NetworkPolicySpec, PodCidrSpec, PodSpec, PolicyPeer, PolicyPort, PolicyRule, PolicyType,
    Protocol, RemoteNodeSpec, SelectorOperator, ServicePortSpec, ServiceSpec,
};

use crate::api::{ObjectKind, ObjectSet};

/// Namespace label naming the tenant of everything in the namespace.
pub const TENANT_LABEL: &str = "kxdp.io/tenant";
/// Node annotation with the node's VTEP MAC (kxdp writes it on its own Node).
pub const VTEP_MAC_ANNOTATION: &str = "kxdp.io/vtep-mac";
/// Node annotation with the underlay next hop's MAC, when it is not the VTEP's.
pub const UNDERLAY_MAC_ANNOTATION: &str = "kxdp.io/underlay-mac";
/// Node annotation assigning pod CIDRs to tenants: `blue=10.1.0.0/24,red=10.2.0.0/24`.
pub const POD_CIDRS_ANNOTATION: &str = "kxdp.io/pod-cidrs";
/// Flannel's node annotation (JSON with `VtepMAC`): kxdp reads a Flannel
/// node's VTEP MAC from it, so kxdp nodes and Flannel nodes interoperate.
pub const FLANNEL_BACKEND_ANNOTATION: &str = "flannel.alpha.coreos.com/backend-data";
/// Pod annotation (set by the CNI plugin): the host side of the pod's veth.
pub const INTERFACE_ANNOTATION: &str = "kxdp.io/interface";
/// Pod annotation (set by the CNI plugin): the MAC of the pod's eth0.
pub const MAC_ANNOTATION: &str = "kxdp.io/mac";
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The kinds of model object the agent owns (the node's configuration file
/// keeps tenants and extra routes).
pub const MODEL_KINDS: [ObjectKind; 6] = [
    ObjectKind::RemoteNode,
    ObjectKind::Pod,
    ObjectKind::Service,
    ObjectKind::Policy,
    ObjectKind::Chain,
    ObjectKind::Namespace,
];

/// A kind of Kubernetes object the agent watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchedKind {
    /// core/v1 Node.
    Node,
    /// core/v1 Pod (on this node only: field selector `spec.nodeName`).
    Pod,
    /// core/v1 Namespace.
    Namespace,
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// kxdp.io/v1alpha1 ServiceChain.
    ServiceChain,
}

impl WatchedKind {
    /// Every kind the agent watches; the agent starts one watcher per entry.
    pub const ALL: [WatchedKind; 7] = [
        WatchedKind::Node,
        WatchedKind::Pod,
        WatchedKind::Namespace,
        WatchedKind::Service,
        WatchedKind::EndpointSlice,
        WatchedKind::NetworkPolicy,
        WatchedKind::ServiceChain,
    ];

    /// Its API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            WatchedKind::Node
            | WatchedKind::Pod
            | WatchedKind::Namespace
            | WatchedKind::Service => "",
            WatchedKind::EndpointSlice => "discovery.k8s.io",
            WatchedKind::NetworkPolicy => "networking.k8s.io",
            WatchedKind::ServiceChain => kxdp_config::crd::GROUP,
        }
    }

    /// Its resource name (plural), as RBAC rules name it.
    pub fn plural(self) -> &'static str {
        match self {
            WatchedKind::Node => "nodes",
            WatchedKind::Pod => "pods",
            WatchedKind::Namespace => "namespaces",
            WatchedKind::Service => "services",
            WatchedKind::EndpointSlice => "endpointslices",
            WatchedKind::NetworkPolicy => "networkpolicies",
            WatchedKind::ServiceChain => "servicechains",
        }
    }
}

impl std::fmt::Display for WatchedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.plural())
    }
}

/// One Kubernetes object of a watched kind.
#[derive(Clone, Debug)]
pub enum Resource {
    /// A Node.
    Node(Box<Node>),
    /// A Pod.
    Pod(Box<Pod>),
    /// A Namespace.
    Namespace(Box<Namespace>),
    /// A Service.
    Service(Box<Service>),
    /// An EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// A NetworkPolicy.
    NetworkPolicy(Box<NetworkPolicy>),
    /// A ServiceChain.
    ServiceChain(Box<ServiceChain>),
}

impl Resource {
    /// Its kind.
    pub fn kind(&self) -> WatchedKind {
        match self {
            Resource::Node(_) => WatchedKind::Node,
            Resource::Pod(_) => WatchedKind::Pod,
            Resource::Namespace(_) => WatchedKind::Namespace,
            Resource::Service(_) => WatchedKind::Service,
            Resource::EndpointSlice(_) => WatchedKind::EndpointSlice,
            Resource::NetworkPolicy(_) => WatchedKind::NetworkPolicy,
            Resource::ServiceChain(_) => WatchedKind::ServiceChain,
        }
    }

    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub fn key(&self) -> String {
        fn key_of<K: ResourceExt>(k: &K) -> String {
            match k.namespace() {
                Some(ns) => format!("{ns}/{}", k.name_any()),
                None => k.name_any(),
            }
        }
        match self {
            Resource::Node(k) => key_of(k.as_ref()),
            Resource::Pod(k) => key_of(k.as_ref()),
            Resource::Namespace(k) => key_of(k.as_ref()),
            Resource::Service(k) => key_of(k.as_ref()),
            Resource::EndpointSlice(k) => key_of(k.as_ref()),
            Resource::NetworkPolicy(k) => key_of(k.as_ref()),
            Resource::ServiceChain(k) => key_of(k.as_ref()),
        }
    }
}

/// What the index needs to know about this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSettings {
    /// This node's name (its own Node is not a remote node; only its pods count).
    pub node_name: String,
    /// The tenant of namespaces without the `kxdp.io/tenant` label, and of
    /// remote pod CIDRs without a `kxdp.io/pod-cidrs` annotation.
    pub default_tenant: String,
    /// The tenants the node's configuration knows (others are left out).
    pub tenants: BTreeSet<String>,
    /// The node's pod interfaces (a pod on another interface is left out).
    pub pod_interfaces: BTreeSet<String>,
}

/// An object the model leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its kind.
    pub kind: WatchedKind,
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// The model the index produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// The objects of [`MODEL_KINDS`], each list sorted by key.
    pub objects: ObjectSet,
    /// What was left out.
    pub skipped: Vec<Skipped>,
}

/// The Kubernetes objects the agent has seen, by kind and key.
#[derive(Clone, Debug)]
pub struct Index {
    settings: IndexSettings,
    nodes: BTreeMap<String, Node>,
    pods: BTreeMap<String, Pod>,
    namespaces: BTreeMap<String, Namespace>,
    services: BTreeMap<String, Service>,
    slices: BTreeMap<String, EndpointSlice>,
    policies: BTreeMap<String, NetworkPolicy>,
    chains: BTreeMap<String, ServiceChain>,
    /// Pods the CNI plugin registered with kxdp (with their container id),
    /// by key: a Kubernetes pod without the interface annotations takes
    /// its interface and MAC from its registration here.
    cni_pods: BTreeMap<String, PodSpec>,
}

impl Index {
    /// An empty index for the node `settings` describes.
    pub fn new(settings: IndexSettings) -> Index {
        Index {
            settings,
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            policies: BTreeMap::new(),
            chains: BTreeMap::new(),
            cni_pods: BTreeMap::new(),
        }
    }

    /// The pods `kxdp-cni` registered (those of `pods` with a container
    /// id). The model completes each with what only Kubernetes knows: its
    /// labels (NetworkPolicy selects pods by them).
    pub fn set_cni_pods<'a>(&mut self, pods: impl IntoIterator<Item = &'a PodSpec>) {
        self.cni_pods = pods
            .into_iter()
            .filter(|p| p.container_id.is_some())
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
    }

    /// Its settings.
    pub fn settings(&self) -> &IndexSettings {
        &self.settings
    }

    /// Add or replace `object`.
    pub fn upsert(&mut self, object: Resource) {
        let key = object.key();
        match object {
            Resource::Node(k) => _ = self.nodes.insert(key, *k),
            Resource::Pod(k) => _ = self.pods.insert(key, *k),
            Resource::Namespace(k) => _ = self.namespaces.insert(key, *k),
            Resource::Service(k) => _ = self.services.insert(key, *k),
            Resource::EndpointSlice(k) => _ = self.slices.insert(key, *k),
            Resource::NetworkPolicy(k) => _ = self.policies.insert(key, *k),
            Resource::ServiceChain(k) => _ = self.chains.insert(key, *k),
        }
    }

    /// Forget `object` (by kind and key).
    pub fn remove(&mut self, object: &Resource) {
        let key = object.key();
        match object.kind() {
            WatchedKind::Node => _ = self.nodes.remove(&key),
            WatchedKind::Pod => _ = self.pods.remove(&key),
            WatchedKind::Namespace => _ = self.namespaces.remove(&key),
            WatchedKind::Service => _ = self.services.remove(&key),
            WatchedKind::EndpointSlice => _ = self.slices.remove(&key),
            WatchedKind::NetworkPolicy => _ = self.policies.remove(&key),
            WatchedKind::ServiceChain => _ = self.chains.remove(&key),
        }
    }

    /// Replace every object of `kind` by `objects` (a watcher's relist);
    /// objects of another kind in `objects` are ignored.
    pub fn replace(&mut self, kind: WatchedKind, objects: Vec<Resource>) {
        match kind {
            WatchedKind::Node => self.nodes.clear(),
            WatchedKind::Pod => self.pods.clear(),
            WatchedKind::Namespace => self.namespaces.clear(),
            WatchedKind::Service => self.services.clear(),
            WatchedKind::EndpointSlice => self.slices.clear(),
            WatchedKind::NetworkPolicy => self.policies.clear(),
            WatchedKind::ServiceChain => self.chains.clear(),
        }
        for object in objects.into_iter().filter(|o| o.kind() == kind) {
            self.upsert(object);
        }
    }

    /// How many objects of `kind` it holds.
    pub fn len(&self, kind: WatchedKind) -> usize {
        match kind {
            WatchedKind::Node => self.nodes.len(),
            WatchedKind::Pod => self.pods.len(),
            WatchedKind::Namespace => self.namespaces.len(),
            WatchedKind::Service => self.services.len(),
            WatchedKind::EndpointSlice => self.slices.len(),
            WatchedKind::NetworkPolicy => self.policies.len(),
            WatchedKind::ServiceChain => self.chains.len(),
        }
    }

    /// The tenant of namespace `ns`: its label, or the default tenant.
    fn tenant_of(&self, ns: &str) -> String {
        self.namespaces
            .get(ns)
            .and_then(|n| n.labels().get(TENANT_LABEL).cloned())
            .unwrap_or_else(|| self.settings.default_tenant.clone())
    }

    /// The model of this node: every object the index can represent, and
    /// the ones it leaves out with the reason.
    pub fn model(&self) -> Model {
        let mut model = Model::default();
        let mut skip = |kind: WatchedKind, key: &str, reason: String| {
            model.skipped.push(Skipped {
                kind,
                key: key.to_string(),
                reason,
            })
        };
        let mut objects = ObjectSet::default();

        for (key, ns) in &self.namespaces {
            objects.namespaces.push(NamespaceSpec {
                name: key.clone(),
                labels: ns.labels().clone(),
            });
        }

        for (key, node) in &self.nodes {
            if *key == self.settings.node_name {
                continue;
            }
            match self.remote_node(node) {
                Ok(spec) => objects.remote_nodes.push(spec),
                Err(reason) => skip(WatchedKind::Node, key, reason),
            }
        }

        for (key, pod) in &self.pods {
            match self.pod(key, pod) {
                Ok(Some(spec)) => objects.pods.push(spec),
                Ok(None) => {}
                Err(reason) => skip(WatchedKind::Pod, key, reason),
            }
        }

        // EndpointSlices by the Service they belong to.
        let mut slices_of: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in self.slices.values() {
            let (Some(ns), Some(service)) = (
                slice.metadata.namespace.as_deref(),
                slice.labels().get(SERVICE_NAME_LABEL),
            ) else {
                continue;
            };
            slices_of
                .entry(format!("{ns}/{service}"))
                .or_default()
                .push(slice);
        }
        for (key, service) in &self.services {
            let slices = slices_of.get(key).map(Vec::as_slice).unwrap_or_default();
            match self.service(service, slices) {
                Ok(spec) => objects.services.push(spec),
                Err(reason) => skip(WatchedKind::Service, key, reason),
            }
        }

        for (key, policy) in &self.policies {
            match network_policy(policy) {
                Ok((spec, dropped)) => {
                    if dropped > 0 {
                        skip(
                            WatchedKind::NetworkPolicy,
                            key,
                            format!("{dropped} rule(s) with a named port left out (kxdp has no port names): they allow nothing"),
                        );
                    }
                    objects.policies.push(spec);
                }
                Err(reason) => skip(WatchedKind::NetworkPolicy, key, reason),
            }
        }

        for (key, chain) in &self.chains {
            let ns = chain.metadata.namespace.as_deref().unwrap_or_default();
            let tenant = self.tenant_of(ns);
            match chain.to_chain_spec(Some(&tenant)) {
                Ok(spec) if !self.settings.tenants.contains(&spec.tenant) => skip(
                    WatchedKind::ServiceChain,
                    key,
                    format!("tenant {} is not one of this node's tenants", spec.tenant),
                ),
                Ok(spec) => objects.chains.push(spec),
                Err(e) => skip(WatchedKind::ServiceChain, key, e.to_string()),
            }
        }
        model.objects = objects;
        model
    }

    fn remote_node(&self, node: &Node) -> Result<RemoteNodeSpec, String> {
        let name = node.name_any();
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_deref())
            .unwrap_or_default();
        let vtep_ip = addresses
            .iter()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
            .ok_or("status.addresses: no IPv4 InternalIP (the VTEP)")?;
        // Every InternalIP, both families, in the order the kubelet lists
        // them: what pods reach the node at (kubelet, hostNetwork pods, the
        // API server). ExternalIPs and host names are not addresses on the
        // underlay kxdp tunnels over. An InternalIP that is no address is
        // passed over, as for the VTEP: the node stays reachable at the
        // others.
        let mut node_ips: Vec<IpAddr> = Vec::new();
        for ip in addresses
            .iter()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse::<IpAddr>().ok())
        {
            if !node_ips.contains(&ip) {
                node_ips.push(ip);
            }
        }
        let annotations = node.annotations();
        let vtep_mac = match annotations.get(VTEP_MAC_ANNOTATION) {
            Some(text) => text
                .parse::<MacAddr>()
                .map_err(|e| format!("annotation {VTEP_MAC_ANNOTATION}: {e}"))?,
            None => match annotations.get(FLANNEL_BACKEND_ANNOTATION) {
                Some(json) => flannel_vtep_mac(json)
                    .map_err(|e| format!("annotation {FLANNEL_BACKEND_ANNOTATION}: {e}"))?,
                None => {
                    return Err(format!(
                        "no annotation {VTEP_MAC_ANNOTATION} yet (kxdp on {name} writes it when it starts)"
                    ))
                }
            },
        };
        let underlay_mac = annotations
            .get(UNDERLAY_MAC_ANNOTATION)
            .map(|t| {
                t.parse::<MacAddr>()
                    .map_err(|e| format!("annotation {UNDERLAY_MAC_ANNOTATION}: {e}"))
            })
            .transpose()?;
        let pod_cidrs = match annotations.get(POD_CIDRS_ANNOTATION) {
            Some(list) => parse_tenant_cidrs(list)
                .map_err(|e| format!("annotation {POD_CIDRS_ANNOTATION}: {e}"))?,
            None => {
                let spec = node.spec.as_ref();
                let mut cidrs: Vec<String> =
                    spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
                if cidrs.is_empty() {
                    cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
                }
                let mut out = Vec::new();
                for (i, text) in cidrs.iter().enumerate() {
                    let cidr = text
                        .parse::<IpNetwork>()
                        .map_err(|e| format!("spec.podCIDRs[{i}]: {text:?}: {e}"))?;
                    out.push(PodCidrSpec {
                        tenant: self.settings.default_tenant.clone(),
                        cidr,
                        gateway: None,
                    });
                }
                out
            }
        };
        if pod_cidrs.is_empty() {
            return Err("spec.podCIDRs: no pod CIDR assigned yet".to_string());
        }
        if let Some(unknown) = pod_cidrs
            .iter()
            .find(|c| !self.settings.tenants.contains(&c.tenant))
        {
            return Err(format!(
                "pod CIDR {} is of tenant {}, which is not one of this node's tenants",
                unknown.cidr, unknown.tenant
            ));
        }
        Ok(RemoteNodeSpec {
            name,
            vtep_ip,
            vtep_mac,
            underlay_mac,
            pod_cidrs,
            node_ips,
        })
    }

    /// A pod of this node; `Ok(None)` for one that is not ours to forward
    /// (another node's, host network, finished, no address yet).
    fn pod(&self, key: &str, pod: &Pod) -> Result<Option<PodSpec>, String> {
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.node_name.as_deref()) != Some(self.settings.node_name.as_str()) {
            return Ok(None);
        }
        if spec.and_then(|s| s.host_network) == Some(true) {
            return Ok(None);
        }
        let status = pod.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return Ok(None);
        }
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|list| list.iter().map(|p| p.ip.clone()).collect())
            .unwrap_or_default();
        if ips.is_empty() {
            ips.extend(status.and_then(|s| s.pod_ip.clone()));
        }
        if ips.is_empty() {
            return Ok(None);
        }
        let mut parsed = Vec::with_capacity(ips.len());
        for (i, text) in ips.iter().enumerate() {
            parsed.push(
                text.parse::<IpAddr>()
                    .map_err(|e| format!("status.podIPs[{i}]: {text:?}: {e}"))?,
            );
        }
        let ip = parsed[0];
        let ipv6 = parsed[1..]
            .iter()
            .copied()
            .find(|a| a.is_ipv4() != ip.is_ipv4());
        let annotations = pod.annotations();
        let registered = self.cni_pods.get(key);
        let (interface, mac, container_id) = match (
            annotations.get(INTERFACE_ANNOTATION),
            registered,
        ) {
            // Wired by kxdp-cni: its registration has the interface.
            (None, Some(cni)) => {
                if cni.ip != ip {
                    return Err(format!(
                        "status.podIPs[0] {ip} is not the address kxdp-cni registered ({})",
                        cni.ip
                    ));
                }
                (cni.interface.clone(), cni.mac, cni.container_id.clone())
            }
            (annotated, _) => {
                let interface = annotated
                    .ok_or(format!(
                        "no annotation {INTERFACE_ANNOTATION} and no kxdp-cni registration (the CNI plugin names the pod's host-side interface)"
                    ))?
                    .clone();
                if !self.settings.pod_interfaces.contains(&interface) {
                    return Err(format!(
                        "annotation {INTERFACE_ANNOTATION}: {interface} is not one of this node's pod interfaces"
                    ));
                }
                let mac = annotations
                    .get(MAC_ANNOTATION)
                    .ok_or(format!(
                        "no annotation {MAC_ANNOTATION} (the CNI plugin writes the pod's MAC there)"
                    ))?
                    .parse::<MacAddr>()
                    .map_err(|e| format!("annotation {MAC_ANNOTATION}: {e}"))?;
                (interface, mac, None)
            }
        };
        let namespace = pod.namespace().unwrap_or_else(|| "default".to_string());
        // A wired pod stays in the tenant it was wired in (kxdp-cni took it
        // from this same namespace label, through kxdp's copy of the
        // namespace; its address came from that tenant's range).
        let tenant = match registered.filter(|_| container_id.is_some()) {
            Some(cni) => cni.tenant.clone(),
            None => self.tenant_of(&namespace),
        };
        if !self.settings.tenants.contains(&tenant) {
            return Err(format!(
                "tenant {tenant} (of namespace {namespace}) is not one of this node's tenants"
            ));
        }
        Ok(Some(PodSpec {
            name: key.to_string(),
            tenant,
            ip,
            ipv6,
            mac,
            interface,
            labels: pod.labels().clone(),
            namespace,
            container_id,
        }))
    }

    /// A service with a ClusterIP (type ClusterIP, NodePort or
    /// LoadBalancer) and the endpoints of its `slices` of the ClusterIP's
    /// family; the reason it is left out otherwise (headless, ExternalName:
    /// nothing to balance).
    fn service(&self, service: &Service, slices: &[&EndpointSlice]) -> Result<ServiceSpec, String> {
        let Some(spec) = service.spec.as_ref() else {
            return Err("no spec".to_string());
        };
        let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
        if type_ == "ExternalName" {
            return Err(
                "type ExternalName: a DNS name, nothing to balance (clients resolve it)"
                    .to_string(),
            );
        }
        let cluster_ip = match spec.cluster_ip.as_deref() {
            Some("None") => {
                return Err(
                    "headless (spec.clusterIP: None): nothing to balance (clients resolve its endpoints by DNS)"
                        .to_string(),
                )
            }
            None | Some("") => {
                return Err("spec.clusterIP: not allocated yet".to_string());
            }
            Some(text) => text
                .parse::<IpAddr>()
                .map_err(|e| format!("spec.clusterIP: {text:?}: {e}"))?,
        };
        // A dual-stack service has slices of both families; the model's
        // service is its first ClusterIP's family, so are its endpoints.
        let family = if cluster_ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let slices: Vec<&EndpointSlice> = slices
            .iter()
            .copied()
            .filter(|s| s.address_type == family)
            .collect();
        // Only NodePort and LoadBalancer services are reached on the nodes'
        // addresses: a nodePort on another type (which the API server
        // refuses anyway) opens nothing.
        let has_node_ports = matches!(type_, "NodePort" | "LoadBalancer");
        let namespace = service.namespace().unwrap_or_else(|| "default".to_string());
        let tenant = self.tenant_of(&namespace);
        if !self.settings.tenants.contains(&tenant) {
            return Err(format!(
                "tenant {tenant} (of namespace {namespace}) is not one of this node's tenants"
            ));
        }
        let mut ports = Vec::new();
        for (i, port) in spec.ports.as_deref().unwrap_or_default().iter().enumerate() {
            let field = format!("spec.ports[{i}]");
            let protocol =
                protocol(port.protocol.as_deref()).map_err(|e| format!("{field}.protocol: {e}"))?;
            let number = u16::try_from(port.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or(format!("{field}.port: {} is not a port", port.port))?;
            let target_port = match &port.target_port {
                None => None,
                Some(IntOrString::Int(n)) => Some(
                    u16::try_from(*n)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or(format!("{field}.targetPort: {n} is not a port"))?,
                ),
                Some(IntOrString::String(name)) => {
                    // A named target port: the slices carry the number
                    // under the service port's name.
                    let resolved = slices
                        .iter()
                        .flat_map(|s| s.ports.as_deref().unwrap_or_default())
                        .find(|p| p.name == port.name)
                        .and_then(|p| p.port)
                        .and_then(|p| u16::try_from(p).ok());
                    match resolved {
                        Some(p) => Some(p),
                        None if slices.is_empty() => None,
                        None => {
                            return Err(format!(
                                "{field}.targetPort: named port {name:?} is in none of its EndpointSlices"
                            ))
                        }
                    }
                }
            };
            let node_port = match port.node_port {
                Some(n) if has_node_ports && n != 0 => Some(
                    u16::try_from(n).map_err(|_| format!("{field}.nodePort: {n} is not a port"))?,
                ),
                _ => None,
            };
            ports.push(ServicePortSpec {
                name: port.name.clone(),
                protocol,
                port: number,
                target_port,
                node_port,
            });
        }
        let mut endpoints: Vec<EndpointSpec> = Vec::new();
        let mut seen: BTreeSet<IpAddr> = BTreeSet::new();
        for slice in &slices {
            for endpoint in slice.endpoints.as_deref().unwrap_or_default() {
                let conditions = endpoint.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                let pod = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| {
                        let name = r.name.as_deref()?;
                        Some(match r.namespace.as_deref() {
                            Some(ns) => format!("{ns}/{name}"),
                            None => format!("{namespace}/{name}"),
                        })
                    });
                // Any address of the family is an endpoint: a pod's, or a
                // node's own (hostNetwork endpoints such as the API
                // servers behind `default/kubernetes`, without a pod).
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<IpAddr>() else {
                        continue;
                    };
                    if !seen.insert(ip) {
                        continue;
                    }
                    endpoints.push(EndpointSpec {
                        ip,
                        pod: pod.clone(),
                        node: endpoint.node_name.clone(),
                        ready,
                        serving,
                        terminating,
                    });
                }
            }
        }
        endpoints.sort_by_key(|e| e.ip);
        Ok(ServiceSpec {
            name: service.name_any(),
            namespace,
            tenant,
            cluster_ip,
            ports,
            endpoints,
            client_ip_affinity: spec.session_affinity.as_deref() == Some("ClientIP"),
            internal_traffic_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        })
    }
}

/// The VTEP MAC in Flannel's backend-data annotation (`{"VNI":1,"VtepMAC":"…"}`).
fn flannel_vtep_mac(json: &str) -> Result<MacAddr, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    value
        .get("VtepMAC")
        .and_then(|v| v.as_str())
        .ok_or("no VtepMAC")?
        .parse::<MacAddr>()
        .map_err(|e| format!("VtepMAC: {e}"))
}

/// `blue=10.1.0.0/24,red=10.2.0.0/24`.
fn parse_tenant_cidrs(list: &str) -> Result<Vec<PodCidrSpec>, String> {
    let mut out = Vec::new();
    for (i, entry) in list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (tenant, cidr) = entry
            .split_once('=')
            .ok_or(format!("entry {i} {entry:?} is not tenant=CIDR"))?;
        let cidr = cidr
            .trim()
            .parse::<IpNetwork>()
            .map_err(|e| format!("entry {i} {entry:?}: {e}"))?;
        out.push(PodCidrSpec {
            tenant: tenant.trim().to_string(),
            cidr,
            gateway: None,
        });
    }
    Ok(out)
}

fn protocol(name: Option<&str>) -> Result<Protocol, String> {
    match name.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(format!("{other:?} is not TCP, UDP or SCTP")),
    }
}

fn label_selector(selector: &K8sLabelSelector, field: &str) -> Result<LabelSelector, String> {
    let mut out = LabelSelector {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: Vec::new(),
    };
    for (i, e) in selector
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let operator = match e.operator.as_str() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                return Err(format!(
                    "{field}.matchExpressions[{i}].operator: {other:?} is not In, NotIn, Exists or DoesNotExist"
                ))
            }
        };
        out.match_expressions.push(LabelSelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

fn peer(peer: &NetworkPolicyPeer, field: &str) -> Result<PolicyPeer, String> {
    let ip_block = match &peer.ip_block {
        None => None,
        Some(block) => {
            let cidr = block
                .cidr
                .parse::<IpNetwork>()
                .map_err(|e| format!("{field}.ipBlock.cidr: {:?}: {e}", block.cidr))?;
            let mut except = Vec::new();
            for (i, text) in block
                .except
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                except.push(
                    text.parse::<IpNetwork>()
                        .map_err(|e| format!("{field}.ipBlock.except[{i}]: {text:?}: {e}"))?,
                );
            }
            Some(IpBlock { cidr, except })
        }
    };
    Ok(PolicyPeer {
        pod_selector: peer
            .pod_selector
            .as_ref()
            .map(|s| label_selector(s, &format!("{field}.podSelector")))
            .transpose()?,
        namespace_selector: peer
            .namespace_selector
            .as_ref()
            .map(|s| label_selector(s, &format!("{field}.namespaceSelector")))
            .transpose()?,
        ip_block,
    })
}

/// A rule's ports; `None` when one is a named port (the rule is left out).
fn policy_ports(ports: &[K8sPolicyPort], field: &str) -> Result<Option<Vec<PolicyPort>>, String> {
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let protocol =
            protocol(p.protocol.as_deref()).map_err(|e| format!("{field}[{i}].protocol: {e}"))?;
        let port = match &p.port {
            None => None,
            Some(IntOrString::Int(n)) => Some(
                u16::try_from(*n).map_err(|_| format!("{field}[{i}].port: {n} is not a port"))?,
            ),
            Some(IntOrString::String(_)) => return Ok(None),
        };
        let end_port = p
            .end_port
            .map(|n| {
                u16::try_from(n).map_err(|_| format!("{field}[{i}].endPort: {n} is not a port"))
            })
            .transpose()?;
        out.push(PolicyPort {
            protocol,
            port,
            end_port,
        });
    }
    Ok(Some(out))
}

/// The model's policy, and how many rules were left out (named ports).
fn network_policy(policy: &NetworkPolicy) -> Result<(NetworkPolicySpec, usize), String> {
    let spec = policy.spec.clone().unwrap_or_default();
    let mut dropped = 0;
    let pod_selector = match &spec.pod_selector {
        Some(s) => label_selector(s, "spec.podSelector")?,
        None => LabelSelector::default(),
    };
    let mut policy_types = Vec::new();
    for (i, t) in spec
        .policy_types
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        policy_types.push(match t.as_str() {
            "Ingress" => PolicyType::Ingress,
            "Egress" => PolicyType::Egress,
            other => {
                return Err(format!(
                    "spec.policyTypes[{i}]: {other:?} is not Ingress or Egress"
                ))
            }
        });
    }
    let mut ingress = Vec::new();
    for (r, rule) in spec
        .ingress
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("spec.ingress[{r}]");
        let mut peers = Vec::new();
        for (i, p) in rule.from.as_deref().unwrap_or_default().iter().enumerate() {
            peers.push(peer(p, &format!("{field}.from[{i}]"))?);
        }
        match policy_ports(
            rule.ports.as_deref().unwrap_or_default(),
            &format!("{field}.ports"),
        )? {
            Some(ports) => ingress.push(PolicyRule { peers, ports }),
            None => dropped += 1,
        }
    }
    let mut egress = Vec::new();
    for (r, rule) in spec
        .egress
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("spec.egress[{r}]");
        let mut peers = Vec::new();
        for (i, p) in rule.to.as_deref().unwrap_or_default().iter().enumerate() {
            peers.push(peer(p, &format!("{field}.to[{i}]"))?);
        }
        match policy_ports(
            rule.ports.as_deref().unwrap_or_default(),
            &format!("{field}.ports"),
        )? {
            Some(ports) => egress.push(PolicyRule { peers, ports }),
            None => dropped += 1,
        }
    }
    // Kubernetes' defaulting counts the egress rules as written: a policy
    // whose only egress rule was left out still governs egress.
    if policy_types.is_empty() && spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
        policy_types = vec![PolicyType::Ingress, PolicyType::Egress];
    }
    Ok((
        NetworkPolicySpec {
            name: policy.name_any(),
            namespace: policy.namespace().unwrap_or_else(|| "default".to_string()),
            pod_selector,
            policy_types,
            ingress,
            egress,
        },
        dropped,
    ))
}

#[cfg(test)]
mod tests;
