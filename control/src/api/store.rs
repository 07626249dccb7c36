//! The desired state of a node, and the one path every change takes to the
//! workers.
//!
//! The desired state is a whole [`NodeConfig`]: its fixed part (node,
//! interfaces, workers, control) as `kxdp run` started with it, and its
//! dynamic part, the objects of every [`ObjectKind`], which changes apply
//! to. [`DesiredStateStore::apply`] takes a [`ChangeSet`] (keyed upserts and
//! deletes, or a resync that replaces whole kinds), builds the new desired
//! state off the hot path, validates it whole, compiles it into tables and
//! publishes them with one swap. A refused change leaves both the desired
//! state and the running tables exactly as they were, and its error names
//! the field of the request at fault.
//!
//! The service chains are compiled in the same step ([`ChainSet`], from the
//! same candidate state, once it validated: validation refuses every
//! inconsistent chain, service or pod, so the compiler's only refusals are
//! capacity limits, which refuse the change whole too), before anything is
//! published. The chain set is published right
//! after the tables (a second swap: a worker may run one batch with the new
//! tables and the previous chains, never a torn set of either).
//!
//! The gRPC service applies through here; so does any in-process source
//! (the Kubernetes agent), so that every source gets the same semantics.
//! Nothing here knows about gRPC.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use ipnetwork::IpNetwork;
use kxdp_config::{
    ChainSpec, ConfigError, FieldPath, InterfaceRole, InterfaceSpec, MacAddr, NamespaceSpec,
    NetworkPolicySpec, NodeConfig, PathItem, PodSpec, RemoteNodeSpec, RouteSpec, ServiceSpec,
    TenantSpec,
};
use kxdp_dataplane::tables::{TableError, TableHandle, Tables};
use kxdp_dataplane::verdict::PortId;
use kxdp_node::lifecycle::PortLifecycle;
use kxdp_vnf_chains::{ChainError, ChainInput, ChainSet, ChainSetHandle, CompileOptions};
use serde::{Deserialize, Serialize};

/// A refused request: `field` is the path of the offending field, in the
/// request (`upserts.pods[2].ip`) or, when the fault is in an object that
/// was already applied, in the desired state (`pods["pod-a"].tenant`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error for the field at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The kinds of object the desired state holds, one per table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Tenants (key: name).
    Tenant,
    /// Remote nodes (key: name).
    RemoteNode,
    /// Pods on this node (key: name).
    Pod,
    /// Extra routes (key: `tenant/prefix`).
    Route,
    /// Services (key: `namespace/name`).
    Service,
    /// NetworkPolicies (key: `namespace/name`).
    Policy,
    /// Service chains (key: name).
    Chain,
    /// Namespaces (key: name).
    Namespace,
    /// Interfaces (key: name). Those of the node's file are listed and
    /// cannot be changed or deleted; pod interfaces upserted at run time
    /// are attached to the workers, and detached when deleted.
    Interface,
}

impl ObjectKind {
    /// Every kind, in the order a configuration lists them.
    pub const ALL: [ObjectKind; 9] = [
        ObjectKind::Tenant,
        ObjectKind::RemoteNode,
        ObjectKind::Pod,
        ObjectKind::Route,
        ObjectKind::Service,
        ObjectKind::Policy,
        ObjectKind::Chain,
        ObjectKind::Namespace,
        ObjectKind::Interface,
    ];

    /// The field that holds this kind in a configuration (and in
    /// [`ObjectSet`] and [`KeySet`]): `tenants`, `remote_nodes`, ….
    pub fn field(self) -> &'static str {
        match self {
            ObjectKind::Tenant => "tenants",
            ObjectKind::RemoteNode => "remote_nodes",
            ObjectKind::Pod => "pods",
            ObjectKind::Route => "routes",
            ObjectKind::Service => "services",
            ObjectKind::Policy => "policies",
            ObjectKind::Chain => "chains",
            ObjectKind::Namespace => "namespaces",
            ObjectKind::Interface => "interfaces",
        }
    }

    /// The kind a command-line name means: the field name, singular or
    /// plural, or a short form (`nodes`, `svc`, `netpol`, `ns`).
    pub fn parse(name: &str) -> Option<ObjectKind> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "tenant" | "tenants" => ObjectKind::Tenant,
            "node" | "nodes" | "remote_node" | "remote_nodes" | "remote-node" | "remote-nodes" => {
                ObjectKind::RemoteNode
            }
            "pod" | "pods" => ObjectKind::Pod,
            "route" | "routes" => ObjectKind::Route,
            "service" | "services" | "svc" => ObjectKind::Service,
            "policy" | "policies" | "networkpolicy" | "networkpolicies" | "netpol" => {
                ObjectKind::Policy
            }
            "chain" | "chains" | "servicechain" | "servicechains" => ObjectKind::Chain,
            "namespace" | "namespaces" | "ns" => ObjectKind::Namespace,
            "interface" | "interfaces" | "itf" => ObjectKind::Interface,
            _ => return None,
        };
        Some(kind)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field())
    }
}

/// Objects of every kind: the dynamic part of a configuration, in its YAML
/// form (so `kxdp get -o yaml` output applies back with `kxdp apply`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSet {
    /// Tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantSpec>,
    /// Remote nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_nodes: Vec<RemoteNodeSpec>,
    /// Pods on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodSpec>,
    /// Extra routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// NetworkPolicies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<NetworkPolicySpec>,
    /// Service chains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainSpec>,
    /// Namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceSpec>,
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceSpec>,
}

impl ObjectSet {
    /// The objects of `kinds` in `config`.
    pub fn from_config(config: &NodeConfig, kinds: &[ObjectKind]) -> ObjectSet {
        let mut set = ObjectSet::default();
        for kind in kinds {
            match kind {
                ObjectKind::Tenant => set.tenants = config.tenants.clone(),
                ObjectKind::RemoteNode => set.remote_nodes = config.remote_nodes.clone(),
                ObjectKind::Pod => set.pods = config.pods.clone(),
                ObjectKind::Route => set.routes = config.routes.clone(),
                ObjectKind::Service => set.services = config.services.clone(),
                ObjectKind::Policy => set.policies = config.policies.clone(),
                ObjectKind::Chain => set.chains = config.chains.clone(),
                ObjectKind::Namespace => set.namespaces = config.namespaces.clone(),
                ObjectKind::Interface => set.interfaces = config.interfaces.clone(),
            }
        }
        set
    }

    /// The one object of `kind` with `key` in `config` (the key as
    /// [`normalize_key`] writes it), alone in its list.
    pub fn find(config: &NodeConfig, kind: ObjectKind, key: &str) -> Option<ObjectSet> {
        fn one<T: Keyed + Clone>(items: &[T], key: &str) -> Option<Vec<T>> {
            items
                .iter()
                .find(|i| i.key() == key)
                .map(|i| vec![i.clone()])
        }
        let mut set = ObjectSet::default();
        match kind {
            ObjectKind::Tenant => set.tenants = one(&config.tenants, key)?,
            ObjectKind::RemoteNode => set.remote_nodes = one(&config.remote_nodes, key)?,
            ObjectKind::Pod => set.pods = one(&config.pods, key)?,
            ObjectKind::Route => set.routes = one(&config.routes, key)?,
            ObjectKind::Service => set.services = one(&config.services, key)?,
            ObjectKind::Policy => set.policies = one(&config.policies, key)?,
            ObjectKind::Chain => set.chains = one(&config.chains, key)?,
            ObjectKind::Namespace => set.namespaces = one(&config.namespaces, key)?,
            ObjectKind::Interface => set.interfaces = one(&config.interfaces, key)?,
        }
        Some(set)
    }

    /// How many objects of `kind` it holds.
    pub fn count(&self, kind: ObjectKind) -> usize {
        match kind {
            ObjectKind::Tenant => self.tenants.len(),
            ObjectKind::RemoteNode => self.remote_nodes.len(),
            ObjectKind::Pod => self.pods.len(),
            ObjectKind::Route => self.routes.len(),
            ObjectKind::Service => self.services.len(),
            ObjectKind::Policy => self.policies.len(),
            ObjectKind::Chain => self.chains.len(),
            ObjectKind::Namespace => self.namespaces.len(),
            ObjectKind::Interface => self.interfaces.len(),
        }
    }

    /// True when it holds no object.
    pub fn is_empty(&self) -> bool {
        ObjectKind::ALL.iter().all(|k| self.count(*k) == 0)
    }
}

/// Keys of objects of every kind, as [`ObjectKind`] documents them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    /// Tenant names.
    pub tenants: Vec<String>,
    /// Remote node names.
    pub remote_nodes: Vec<String>,
    /// Pod names.
    pub pods: Vec<String>,
    /// Routes, `tenant/prefix`.
    pub routes: Vec<String>,
    /// Services, `namespace/name` (a bare name is in `default`).
    pub services: Vec<String>,
    /// NetworkPolicies, `namespace/name` (a bare name is in `default`).
    pub policies: Vec<String>,
    /// Chain names.
    pub chains: Vec<String>,
    /// Namespace names.
    pub namespaces: Vec<String>,
    /// Interface names.
    pub interfaces: Vec<String>,
}

impl KeySet {
    /// The keys of `kind`.
    pub fn of(&self, kind: ObjectKind) -> &[String] {
        match kind {
            ObjectKind::Tenant => &self.tenants,
            ObjectKind::RemoteNode => &self.remote_nodes,
            ObjectKind::Pod => &self.pods,
            ObjectKind::Route => &self.routes,
            ObjectKind::Service => &self.services,
            ObjectKind::Policy => &self.policies,
            ObjectKind::Chain => &self.chains,
            ObjectKind::Namespace => &self.namespaces,
            ObjectKind::Interface => &self.interfaces,
        }
    }

    /// The keys of `kind`, to fill in.
    pub fn of_mut(&mut self, kind: ObjectKind) -> &mut Vec<String> {
        match kind {
            ObjectKind::Tenant => &mut self.tenants,
            ObjectKind::RemoteNode => &mut self.remote_nodes,
            ObjectKind::Pod => &mut self.pods,
            ObjectKind::Route => &mut self.routes,
            ObjectKind::Service => &mut self.services,
            ObjectKind::Policy => &mut self.policies,
            ObjectKind::Chain => &mut self.chains,
            ObjectKind::Namespace => &mut self.namespaces,
            ObjectKind::Interface => &mut self.interfaces,
        }
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        ObjectKind::ALL.iter().all(|k| self.of(*k).is_empty())
    }
}

/// An object with a key that identifies it within its kind.
pub trait Keyed {
    /// Its key, in the form [`ObjectKind`] documents.
    fn key(&self) -> String;
}

impl Keyed for TenantSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}
impl Keyed for RemoteNodeSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}
impl Keyed for PodSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}
impl Keyed for RouteSpec {
    fn key(&self) -> String {
        route_key(&self.tenant, &self.prefix)
    }
}
impl Keyed for ServiceSpec {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
impl Keyed for NetworkPolicySpec {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
impl Keyed for ChainSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}
impl Keyed for NamespaceSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}
impl Keyed for InterfaceSpec {
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// The key of a route.
pub fn route_key(tenant: &str, prefix: &IpNetwork) -> String {
    format!("{tenant}/{prefix}")
}

/// A key as a user writes it, in the form the store compares: a service or
/// policy without a namespace is in `default`; a route's prefix is
/// reparsed, so `blue/2001:0db8::/32` and `blue/2001:db8::/32` are one key.
pub fn normalize_key(kind: ObjectKind, key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    match kind {
        ObjectKind::Service | ObjectKind::Policy => Ok(if key.contains('/') {
            key.to_string()
        } else {
            format!("default/{key}")
        }),
        ObjectKind::Route => {
            let (tenant, prefix) = key
                .split_once('/')
                .ok_or_else(|| format!("{key:?} is not tenant/prefix (e.g. blue/10.9.0.0/16)"))?;
            let prefix: IpNetwork = prefix
                .parse()
                .map_err(|_| format!("{key:?} is not tenant/prefix: {prefix:?} is not a prefix"))?;
            Ok(route_key(tenant, &prefix))
        }
        _ => Ok(key.to_string()),
    }
}

/// How a change treats the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// Upsert by key and delete keys; other objects stay.
    Delta,
    /// Replace every object of these kinds by the upserts (all kinds when
    /// empty).
    Resync(Vec<ObjectKind>),
}

/// A change to the desired state.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeSet {
    /// Delta or resync.
    pub mode: ApplyMode,
    /// Objects to create or replace by key (each key once).
    pub upserts: ObjectSet,
    /// Keys to delete (delta only; absent keys are no error).
    pub deletes: KeySet,
}

impl ChangeSet {
    /// A delta of upserts only.
    pub fn upsert(upserts: ObjectSet) -> ChangeSet {
        ChangeSet {
            mode: ApplyMode::Delta,
            upserts,
            deletes: KeySet::default(),
        }
    }

    /// A delta of deletes only.
    pub fn delete(deletes: KeySet) -> ChangeSet {
        ChangeSet {
            mode: ApplyMode::Delta,
            upserts: ObjectSet::default(),
            deletes,
        }
    }

    /// A resync of `kinds` (all kinds when empty) to exactly `objects`.
    pub fn resync(kinds: Vec<ObjectKind>, objects: ObjectSet) -> ChangeSet {
        ChangeSet {
            mode: ApplyMode::Resync(kinds),
            upserts: objects,
            deletes: KeySet::default(),
        }
    }
}

/// What an accepted change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The generation of the tables compiled from the new desired state.
    pub generation: u64,
    /// False when the change left the desired state as it was: nothing was
    /// published and `generation` is the current one.
    pub changed: bool,
}

/// One version of the desired state.
#[derive(Clone, Debug)]
pub struct DesiredState {
    /// The whole configuration.
    pub config: NodeConfig,
    /// The generation of the tables compiled from it.
    pub generation: u64,
    /// The port each interface is bound as: `ports[p]` names port `p`'s
    /// interface, `None` a port freed by a detached interface. A port
    /// keeps its number while its interface lives.
    pub ports: Vec<Option<String>>,
}

/// The desired state of a node and the publisher of its tables.
///
/// Changes are serialised (one applier at a time, so none is lost or torn);
/// readers take a snapshot without waiting for them.
#[derive(Debug)]
pub struct DesiredStateStore {
    tables: TableHandle,
    chains: ChainSetHandle,
    state: ArcSwap<DesiredState>,
    writer: Mutex<()>,
    observers: Mutex<Observers>,
    /// Interfaces of the node's file: never changed at run time.
    fixed: HashSet<String>,
    lifecycle: Mutex<Option<Arc<dyn PortLifecycle>>>,
    /// Outer destination MACs the node's kernel resolved for remote VTEPs
    /// whose `underlay_mac` the desired state leaves unset, where they
    /// differ from the node's `vtep_mac` (see [`crate::neighbours`]): the
    /// tables use them, the desired state stays as it was asked for.
    resolved: Mutex<BTreeMap<Ipv4Addr, MacAddr>>,
}

/// What is told of every applied desired state (the host port's NodePort
/// rules follow the Services this way).
#[derive(Default)]
struct Observers(Vec<Observer>);

/// One observer of applied desired states.
type Observer = Box<dyn Fn(&NodeConfig) + Send + Sync>;

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observer(s)", self.0.len())
    }
}

impl DesiredStateStore {
    /// A store whose desired state is `config`, which the current tables of
    /// `tables` were compiled from. Its chain sets are published to a
    /// handle of its own, compiled from `config` (empty when `config`'s
    /// chains do not compile); [`DesiredStateStore::with_chains`] shares
    /// the workers' handle.
    pub fn new(config: NodeConfig, tables: TableHandle) -> DesiredStateStore {
        let chains = ChainSetHandle::compile_initial(
            &ChainInput::from_config(&config),
            CompileOptions::default(),
        )
        .unwrap_or_else(|_| ChainSetHandle::new(ChainSet::empty(1)));
        DesiredStateStore::with_chains(config, tables, chains)
    }

    /// A store whose desired state is `config`, which the current tables of
    /// `tables` and the current chain set of `chains` were compiled from.
    pub fn with_chains(
        config: NodeConfig,
        tables: TableHandle,
        chains: ChainSetHandle,
    ) -> DesiredStateStore {
        let generation = tables.current().generation();
        let fixed = config.interfaces.iter().map(|i| i.name.clone()).collect();
        let ports = config
            .interfaces
            .iter()
            .map(|i| Some(i.name.clone()))
            .collect();
        DesiredStateStore {
            tables,
            chains,
            state: ArcSwap::from_pointee(DesiredState {
                config,
                generation,
                ports,
            }),
            writer: Mutex::new(()),
            observers: Mutex::default(),
            fixed,
            lifecycle: Mutex::new(None),
            resolved: Mutex::default(),
        }
    }

    /// `config` as the tables compile it: each remote node without an
    /// `underlay_mac` gets the one resolved for its VTEP, if any.
    fn with_resolved<'a>(&self, config: &'a NodeConfig) -> Cow<'a, NodeConfig> {
        let resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        let missing =
            |n: &RemoteNodeSpec| n.underlay_mac.is_none() && resolved.contains_key(&n.vtep_ip);
        if !config.remote_nodes.iter().any(missing) {
            return Cow::Borrowed(config);
        }
        let mut filled = config.clone();
        for node in &mut filled.remote_nodes {
            if node.underlay_mac.is_none() {
                node.underlay_mac = resolved.get(&node.vtep_ip).copied();
            }
        }
        Cow::Owned(filled)
    }

    /// Use `resolved` (VTEP address → the underlay next hop's MAC, as the
    /// node's kernel resolved it) for the remote nodes without an
    /// `underlay_mac`. When that changes what the tables hold, they are
    /// compiled again from the current desired state and published (a
    /// new generation); otherwise nothing happens. Returns the new
    /// generation, if any.
    pub fn set_resolved_underlay(
        &self,
        resolved: BTreeMap<Ipv4Addr, MacAddr>,
    ) -> Result<Option<u64>, TableError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.state.load_full();
        let before = self.with_resolved(&current.config).into_owned();
        *self.resolved.lock().unwrap_or_else(PoisonError::into_inner) = resolved;
        let after = self.with_resolved(&current.config);
        if *after == before {
            return Ok(None);
        }
        let slots: Vec<Option<&str>> = current.ports.iter().map(Option::as_deref).collect();
        let tables = Tables::compile_with_ports(&after, 0, &slots)?;
        let generation = self.tables.publish(tables);
        self.state.store(Arc::new(DesiredState {
            config: current.config.clone(),
            generation,
            ports: current.ports.clone(),
        }));
        Ok(Some(generation))
    }

    /// Attach and detach run-time pod interfaces through `lifecycle`.
    pub fn set_port_lifecycle(&self, lifecycle: Arc<dyn PortLifecycle>) {
        *self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(lifecycle);
    }

    /// Call `observer` with every desired state applied from now on (on
    /// the applier's thread, after the tables are published).
    pub fn observe(&self, observer: impl Fn(&NodeConfig) + Send + Sync + 'static) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(Box::new(observer));
    }

    /// The chain sets it publishes to.
    pub fn chains(&self) -> &ChainSetHandle {
        &self.chains
    }

    /// The current desired state.
    pub fn snapshot(&self) -> Arc<DesiredState> {
        self.state.load_full()
    }

    /// The tables it publishes to.
    pub fn tables(&self) -> &TableHandle {
        &self.tables
    }

    /// Apply `change`: build the new desired state, validate it whole,
    /// compile it and publish the tables with one swap. When the change
    /// leaves the desired state as it was, nothing is published. A refusal
    /// names the field and leaves everything as it was.
    pub fn apply(&self, change: &ChangeSet) -> Result<ApplyOutcome, FieldError> {
        // The guard protects no data (the state is swapped whole after
        // success), so a panic in another applier leaves nothing torn.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.state.load_full();
        let (candidate, origins) = build(&current.config, change, &self.fixed)?;
        if candidate == current.config {
            return Ok(ApplyOutcome {
                generation: current.generation,
                changed: false,
            });
        }
        candidate
            .validate()
            .map_err(|e| config_error(e, &candidate, &origins))?;
        let (ports, added, removed) = assign_ports(&current.ports, &current.config, &candidate);
        // Chains read only some kinds: a change of routes or remote nodes
        // alone keeps the running set (no compile, no swap for the
        // workers to adopt). Chains name interfaces by their ports, which
        // an interface keeps while others come and go: the input holds
        // them. The candidate validated: the chain compiler refuses only
        // capacity limits.
        let before = ChainInput {
            ports: Some(&current.ports),
            ..ChainInput::from_config(&current.config)
        };
        let after = ChainInput {
            ports: Some(&ports),
            ..ChainInput::from_config(&candidate)
        };
        let chains = if before != after {
            let set = self
                .chains
                .compile(&after)
                .map_err(|e| chain_error(&e, &candidate, &origins))?;
            Some(set)
        } else {
            None
        };
        let slots: Vec<Option<&str>> = ports.iter().map(Option::as_deref).collect();
        // Validated above: the table compiler does not validate again, and
        // refuses only capacity (`Config` comes from the validating entry
        // points alone; mapped like validation's all the same).
        let tables = Tables::compile_with_ports(&self.with_resolved(&candidate), 0, &slots)
            .map_err(|e| match e {
                TableError::Config(e) => config_error(e, &candidate, &origins),
                TableError::TooMany { what, count, max } => FieldError::new(
                    what,
                    format!("{count} is more than the tables hold ({max})"),
                ),
            })?;
        let lifecycle = self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // New interfaces are bound before any table routes to them; one
        // that cannot be refuses the change, and those bound before it are
        // unbound again.
        if let Some(lifecycle) = &lifecycle {
            for (n, &(port, index)) in added.iter().enumerate() {
                let itf = &candidate.interfaces[index];
                if let Err(message) = lifecycle.attach(port, itf) {
                    for &(port, index) in &added[..n] {
                        lifecycle.detach(port, &candidate.interfaces[index]);
                    }
                    let field = request_field(
                        &FieldPath::item(ObjectKind::Interface.field(), PathItem::Index(index), ""),
                        &candidate,
                        &origins,
                    );
                    return Err(FieldError::new(field, message));
                }
            }
        }
        let generation = self.tables.publish(tables);
        if let Some(chains) = chains {
            self.chains.publish(chains);
        }
        // Interfaces gone are unbound once the tables no longer name them.
        if let Some(lifecycle) = &lifecycle {
            for (port, itf) in &removed {
                lifecycle.detach(*port, itf);
            }
        }
        let state = Arc::new(DesiredState {
            config: candidate,
            generation,
            ports,
        });
        self.state.store(Arc::clone(&state));
        for observer in &self
            .observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
        {
            observer(&state.config);
        }
        Ok(ApplyOutcome {
            generation,
            changed: true,
        })
    }
}

/// The ports of `next`'s interfaces: each interface still there keeps its
/// port; a new one takes the lowest port free before this change (a port
/// freed by this change is taken only by a later one: its old socket is
/// unbound after the tables publish), or a new port at the end. Returns
/// the ports, the new interfaces (port, index in `next.interfaces`) and
/// the interfaces gone (port, old spec).
#[allow(clippy::type_complexity)]
fn assign_ports(
    current: &[Option<String>],
    before: &NodeConfig,
    next: &NodeConfig,
) -> (
    Vec<Option<String>>,
    Vec<(PortId, usize)>,
    Vec<(PortId, InterfaceSpec)>,
) {
    let mut ports: Vec<Option<String>> = current.to_vec();
    let mut removed = Vec::new();
    for (p, slot) in ports.iter_mut().enumerate() {
        let Some(name) = slot.as_deref() else {
            continue;
        };
        if !next.interfaces.iter().any(|i| i.name == name) {
            if let Some(old) = before.interfaces.iter().find(|i| i.name == name) {
                removed.push((p as PortId, old.clone()));
            }
            *slot = None;
        }
    }
    let mut added = Vec::new();
    for (index, itf) in next.interfaces.iter().enumerate() {
        if current.iter().flatten().any(|n| *n == itf.name) {
            continue;
        }
        let free = (0..ports.len()).find(|&p| ports[p].is_none() && current[p].is_none());
        let p = match free {
            Some(p) => p,
            None => {
                ports.push(None);
                ports.len() - 1
            }
        };
        ports[p] = Some(itf.name.clone());
        added.push((p as PortId, index));
    }
    (ports, added, removed)
}

/// Where each object of the merged desired state came from, per kind:
/// `Some(i)` for `upserts.<kind>[i]`, `None` for an object already applied.
#[derive(Debug, Default)]
struct Origins {
    by_kind: [Vec<Option<usize>>; 9],
}

/// The desired state `change` makes of `current`.
fn build(
    current: &NodeConfig,
    change: &ChangeSet,
    fixed: &HashSet<String>,
) -> Result<(NodeConfig, Origins), FieldError> {
    let resync: HashSet<ObjectKind> = match &change.mode {
        ApplyMode::Delta => HashSet::new(),
        ApplyMode::Resync(kinds) if kinds.is_empty() => ObjectKind::ALL.into_iter().collect(),
        ApplyMode::Resync(kinds) => kinds.iter().copied().collect(),
    };
    if let ApplyMode::Resync(_) = change.mode {
        if !change.deletes.is_empty() {
            return Err(FieldError::new(
                "deletes",
                "must be empty in a resync (it replaces whole kinds)",
            ));
        }
        for kind in ObjectKind::ALL {
            if change.upserts.count(kind) > 0 && !resync.contains(&kind) {
                return Err(FieldError::new(
                    format!("upserts.{kind}"),
                    format!("{kind} are not among the kinds this resync replaces"),
                ));
            }
        }
    }
    let mut next = current.clone();
    let mut origins = Origins::default();
    let u = &change.upserts;
    let d = &change.deletes;
    let r = |k: ObjectKind| resync.contains(&k);
    macro_rules! merge_kind {
        ($kind:expr, $field:ident) => {{
            let (items, from) = merge($kind, &current.$field, &u.$field, d.of($kind), r($kind))?;
            next.$field = items;
            origins.by_kind[$kind.index()] = from;
        }};
    }
    merge_kind!(ObjectKind::Tenant, tenants);
    merge_kind!(ObjectKind::RemoteNode, remote_nodes);
    merge_kind!(ObjectKind::Pod, pods);
    // A pod a CNI plugin registered (with its container id) goes only when
    // deleted by key (the plugin's DEL): a resync of pods from another
    // source (the Kubernetes agent) that does not name it keeps it.
    if r(ObjectKind::Pod) {
        for pod in current.pods.iter().filter(|p| p.container_id.is_some()) {
            if !next.pods.iter().any(|p| p.name == pod.name) {
                next.pods.push(pod.clone());
                origins.by_kind[ObjectKind::Pod.index()].push(None);
            }
        }
    }
    merge_kind!(ObjectKind::Route, routes);
    merge_kind!(ObjectKind::Service, services);
    merge_kind!(ObjectKind::Policy, policies);
    merge_kind!(ObjectKind::Chain, chains);
    merge_kind!(ObjectKind::Namespace, namespaces);
    let (interfaces, from) = merge_interfaces(current, change, fixed, r(ObjectKind::Interface))?;
    next.interfaces = interfaces;
    origins.by_kind[ObjectKind::Interface.index()] = from;
    Ok((next, origins))
}

/// The interfaces after a change: those of the node's file (`fixed`, and
/// every interface that is not a pod's) first, as they are; the others
/// merge like any kind. Upserting a fixed interface unchanged is allowed
/// (so a listed state applies back); changing or deleting one is refused.
fn merge_interfaces(
    current: &NodeConfig,
    change: &ChangeSet,
    fixed: &HashSet<String>,
    replace: bool,
) -> Result<(Vec<InterfaceSpec>, Vec<Option<usize>>), FieldError> {
    let kind = ObjectKind::Interface;
    let field = kind.field();
    let is_fixed =
        |itf: &InterfaceSpec| fixed.contains(&itf.name) || itf.role != InterfaceRole::Pod;
    let (kept, dynamic): (Vec<&InterfaceSpec>, Vec<&InterfaceSpec>) =
        current.interfaces.iter().partition(|i| is_fixed(i));
    let mut upserts = Vec::new();
    let mut upsert_index = Vec::new();
    for (i, itf) in change.upserts.interfaces.iter().enumerate() {
        if let Some(same) = kept.iter().find(|k| k.name == itf.name) {
            if *same != itf {
                return Err(FieldError::new(
                    format!("upserts.{field}[{i}]"),
                    format!(
                        "{:?} is part of the node's configuration file: it cannot change at run time",
                        itf.name
                    ),
                ));
            }
            continue;
        }
        if itf.role != InterfaceRole::Pod {
            return Err(FieldError::new(
                format!("upserts.{field}[{i}].role"),
                "only pod interfaces are attached at run time",
            ));
        }
        if let Some(old) = dynamic.iter().find(|d| d.name == itf.name) {
            if old.queues != itf.queues {
                return Err(FieldError::new(
                    format!("upserts.{field}[{i}].queues"),
                    format!(
                        "{:?} is attached with {} queue(s): delete it and add it again to change them",
                        itf.name, old.queues
                    ),
                ));
            }
        }
        upserts.push(itf.clone());
        upsert_index.push(i);
    }
    for (i, key) in change.deletes.of(kind).iter().enumerate() {
        if kept.iter().any(|k| &k.name == key) {
            return Err(FieldError::new(
                format!("deletes.{field}[{i}]"),
                format!("{key:?} is part of the node's configuration file: it cannot be deleted at run time"),
            ));
        }
    }
    let dynamic: Vec<InterfaceSpec> = dynamic.into_iter().cloned().collect();
    let (merged, from) = merge(kind, &dynamic, &upserts, change.deletes.of(kind), replace)
        .map_err(|mut e| {
            // Indexes into the filtered upserts back to the request's.
            for (j, &i) in upsert_index.iter().enumerate() {
                let filtered = format!("upserts.{field}[{j}]");
                if e.field == filtered {
                    e.field = format!("upserts.{field}[{i}]");
                    break;
                }
            }
            e
        })?;
    let mut interfaces: Vec<InterfaceSpec> = kept.into_iter().cloned().collect();
    let mut origins = vec![None; interfaces.len()];
    interfaces.extend(merged);
    origins.extend(from.into_iter().map(|f| f.map(|j| upsert_index[j])));
    Ok((interfaces, origins))
}

/// One kind's objects after a change: existing objects keep their place
/// (replaced in place when upserted), deleted ones go, new ones are appended
/// in request order. With `replace`, exactly the upserts.
fn merge<T: Keyed + Clone>(
    kind: ObjectKind,
    existing: &[T],
    upserts: &[T],
    deletes: &[String],
    replace: bool,
) -> Result<(Vec<T>, Vec<Option<usize>>), FieldError> {
    let field = kind.field();
    let mut upsert_at: HashMap<String, usize> = HashMap::with_capacity(upserts.len());
    for (i, item) in upserts.iter().enumerate() {
        let key = item.key();
        if let Some(first) = upsert_at.insert(key.clone(), i) {
            return Err(FieldError::new(
                format!("upserts.{field}[{i}]"),
                format!("{key:?} is upserted twice (also upserts.{field}[{first}])"),
            ));
        }
    }
    let mut deleted: HashSet<String> = HashSet::with_capacity(deletes.len());
    for (i, key) in deletes.iter().enumerate() {
        let key = normalize_key(kind, key)
            .map_err(|message| FieldError::new(format!("deletes.{field}[{i}]"), message))?;
        if let Some(j) = upsert_at.get(&key) {
            return Err(FieldError::new(
                format!("deletes.{field}[{i}]"),
                format!("{key:?} is both deleted and upserted (upserts.{field}[{j}])"),
            ));
        }
        deleted.insert(key);
    }
    if replace {
        return Ok((upserts.to_vec(), (0..upserts.len()).map(Some).collect()));
    }
    let mut items = Vec::with_capacity(existing.len() + upserts.len());
    let mut from = Vec::with_capacity(existing.len() + upserts.len());
    let mut replaced: HashSet<usize> = HashSet::new();
    for item in existing {
        let key = item.key();
        if deleted.contains(&key) {
            continue;
        }
        match upsert_at.get(&key) {
            Some(&i) => {
                items.push(upserts[i].clone());
                from.push(Some(i));
                replaced.insert(i);
            }
            None => {
                items.push(item.clone());
                from.push(None);
            }
        }
    }
    for (i, item) in upserts.iter().enumerate() {
        if !replaced.contains(&i) {
            items.push(item.clone());
            from.push(Some(i));
        }
    }
    Ok((items, from))
}

/// A validation error of the merged desired state, with its field path
/// turned back into the request's (`pods[3].ip` → `upserts.pods[1].ip`) or,
/// for an object already applied, named by key (`pods["pod-a"].ip`).
fn config_error(error: ConfigError, merged: &NodeConfig, origins: &Origins) -> FieldError {
    match (error.path(), error) {
        (Some(path), ConfigError::Invalid { message, .. }) => FieldError {
            field: request_field(&path, merged, origins),
            message,
        },
        (_, other) => FieldError::new("request", other.to_string()),
    }
}

/// A chain set over a capacity limit, with the field at fault named like
/// a validation error's (`upserts.services[0].endpoints`, or by key for an
/// object already applied; `chains` for a limit of the whole set).
fn chain_error(error: &ChainError, merged: &NodeConfig, origins: &Origins) -> FieldError {
    let mut path = error.path();
    let kind = ObjectKind::ALL
        .into_iter()
        .find(|k| k.field() == path.section);
    if let (Some(kind), Some(PathItem::Key(key))) = (kind, &path.item) {
        // The last object with the key (a duplicate is the second one).
        let index = (0..merged_count(merged, kind))
            .rev()
            .find(|&i| key_at(merged, kind, i).as_deref() == Some(key.as_str()));
        if let Some(i) = index {
            path.item = Some(PathItem::Index(i));
        }
    }
    FieldError::new(request_field(&path, merged, origins), error.reason())
}

fn merged_count(config: &NodeConfig, kind: ObjectKind) -> usize {
    ObjectSet::from_config(config, &[kind]).count(kind)
}

/// `path` (an index into the merged state's lists) as the request sees
/// it: `upserts.<section>[n]…` for an object of the request, by key for
/// one already applied.
fn request_field(path: &FieldPath, merged: &NodeConfig, origins: &Origins) -> String {
    let kind = ObjectKind::ALL
        .into_iter()
        .find(|k| k.field() == path.section);
    let (Some(kind), Some(PathItem::Index(index))) = (kind, &path.item) else {
        return path.to_string();
    };
    match origins.by_kind[kind.index()].get(*index) {
        Some(Some(i)) => format!(
            "upserts.{}",
            FieldPath::item(kind.field(), PathItem::Index(*i), path.rest.as_str())
        ),
        Some(None) => match key_at(merged, kind, *index) {
            Some(key) => {
                FieldPath::item(kind.field(), PathItem::Key(key), path.rest.as_str()).to_string()
            }
            None => path.to_string(),
        },
        None => path.to_string(),
    }
}

fn key_at(config: &NodeConfig, kind: ObjectKind, index: usize) -> Option<String> {
    match kind {
        ObjectKind::Tenant => config.tenants.get(index).map(Keyed::key),
        ObjectKind::RemoteNode => config.remote_nodes.get(index).map(Keyed::key),
        ObjectKind::Pod => config.pods.get(index).map(Keyed::key),
        ObjectKind::Route => config.routes.get(index).map(Keyed::key),
        ObjectKind::Service => config.services.get(index).map(Keyed::key),
        ObjectKind::Policy => config.policies.get(index).map(Keyed::key),
        ObjectKind::Chain => config.chains.get(index).map(Keyed::key),
        ObjectKind::Namespace => config.namespaces.get(index).map(Keyed::key),
        ObjectKind::Interface => config.interfaces.get(index).map(Keyed::key),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tenant(name: &str, vni: u32) -> TenantSpec {
        TenantSpec {
            name: name.to_string(),
            vni,
        }
    }

    fn base() -> NodeConfig {
        let mut config: NodeConfig = serde_yaml::from_str(
            "node: {name: n1, vtep: {ip: 192.168.0.1, interface: ul0}, pod_cidrs: [{tenant: blue, cidr: 10.1.1.0/24}]}\n\
             interfaces: [{name: ul0, role: underlay, mac: '02:00:00:00:00:01'}]\n\
             tenants: [{name: blue, vni: 100}]\n",
        )
        .unwrap();
        config.tenants.push(tenant("red", 200));
        config
    }

    #[test]
    fn delta_replaces_in_place_appends_and_deletes() {
        let current = base();
        let change = ChangeSet {
            mode: ApplyMode::Delta,
            upserts: ObjectSet {
                tenants: vec![tenant("green", 300), tenant("blue", 101)],
                ..ObjectSet::default()
            },
            deletes: KeySet {
                tenants: vec!["red".into(), "absent".into()],
                ..KeySet::default()
            },
        };
        let (next, origins) = build(&current, &change, &HashSet::new()).unwrap();
        assert_eq!(
            next.tenants,
            vec![tenant("blue", 101), tenant("green", 300)]
        );
        assert_eq!(
            origins.by_kind[ObjectKind::Tenant.index()],
            vec![Some(1), Some(0)]
        );
    }

    #[test]
    fn resync_replaces_only_its_kinds() {
        let mut current = base();
        current.namespaces.push(NamespaceSpec {
            name: "prod".into(),
            labels: Default::default(),
        });
        let change = ChangeSet::resync(
            vec![ObjectKind::Tenant],
            ObjectSet {
                tenants: vec![tenant("green", 300)],
                ..ObjectSet::default()
            },
        );
        let (next, _) = build(&current, &change, &HashSet::new()).unwrap();
        assert_eq!(next.tenants, vec![tenant("green", 300)]);
        assert_eq!(next.namespaces, current.namespaces, "other kinds stay");
        let all = ChangeSet::resync(Vec::new(), ObjectSet::default());
        let (next, _) = build(&current, &all, &HashSet::new()).unwrap();
        assert!(next.tenants.is_empty() && next.namespaces.is_empty());
    }

    #[test]
    fn ambiguous_changes_are_refused_with_the_field() {
        let current = base();
        let twice = ChangeSet::upsert(ObjectSet {
            tenants: vec![tenant("a", 1), tenant("a", 2)],
            ..ObjectSet::default()
        });
        assert_eq!(
            build(&current, &twice, &HashSet::new()).unwrap_err().field,
            "upserts.tenants[1]"
        );
        let both = ChangeSet {
            mode: ApplyMode::Delta,
            upserts: ObjectSet {
                tenants: vec![tenant("a", 1)],
                ..ObjectSet::default()
            },
            deletes: KeySet {
                tenants: vec!["x".into(), "a".into()],
                ..KeySet::default()
            },
        };
        assert_eq!(
            build(&current, &both, &HashSet::new()).unwrap_err().field,
            "deletes.tenants[1]"
        );
        let outside = ChangeSet::resync(
            vec![ObjectKind::Pod],
            ObjectSet {
                tenants: vec![tenant("a", 1)],
                ..ObjectSet::default()
            },
        );
        assert_eq!(
            build(&current, &outside, &HashSet::new())
                .unwrap_err()
                .field,
            "upserts.tenants"
        );
        let bad_route = ChangeSet::delete(KeySet {
            routes: vec!["blue/10.0.0.0/8".into(), "blue".into()],
            ..KeySet::default()
        });
        assert_eq!(
            build(&current, &bad_route, &HashSet::new())
                .unwrap_err()
                .field,
            "deletes.routes[1]"
        );
    }

    #[test]
    fn validation_paths_map_back_to_the_request() {
        let current = base();
        let change = ChangeSet::upsert(ObjectSet {
            tenants: vec![tenant("green", 300), tenant("blue", 101)],
            ..ObjectSet::default()
        });
        let (next, origins) = build(&current, &change, &HashSet::new()).unwrap();
        // merged: blue (upserts[1]), red (kept), green (upserts[0])
        assert_eq!(
            request_field(&FieldPath::parse("tenants[0].vni"), &next, &origins),
            "upserts.tenants[1].vni"
        );
        assert_eq!(
            request_field(&FieldPath::parse("tenants[1].name"), &next, &origins),
            "tenants[\"red\"].name"
        );
        assert_eq!(
            request_field(&FieldPath::parse("tenants[2]"), &next, &origins),
            "upserts.tenants[0]"
        );
        assert_eq!(
            request_field(
                &FieldPath::parse("node.pod_cidrs[0].tenant"),
                &next,
                &origins
            ),
            "node.pod_cidrs[0].tenant"
        );
        assert_eq!(
            request_field(&FieldPath::parse("tenants[9]"), &next, &origins),
            "tenants[9]"
        );
    }

    #[test]
    fn resolved_underlay_macs_reach_the_tables_not_the_desired_state() {
        let mut config = base();
        config.remote_nodes.push(
            serde_yaml::from_str(
                "{name: k2, vtep_ip: 192.168.0.2, vtep_mac: '02:00:00:00:0f:0f', \
                  pod_cidrs: [{tenant: blue, cidr: 10.1.2.0/24}]}",
            )
            .unwrap(),
        );
        let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
        let store = DesiredStateStore::new(config.clone(), tables.clone());
        let outer_dst = |tables: &TableHandle| {
            let current = tables.current();
            match current.lookup_v4(0, Ipv4Addr::new(10, 1, 2, 9)) {
                Some(kxdp_dataplane::tables::NextHop::Remote { template, .. }) => {
                    template.bytes[..6].to_vec()
                }
                other => panic!("not a remote hop: {other:?}"),
            }
        };
        assert_eq!(outer_dst(&tables), [2, 0, 0, 0, 0x0f, 0x0f]);
        let nic: MacAddr = "02:00:00:02:02:00".parse().unwrap();
        let resolved = BTreeMap::from([(Ipv4Addr::new(192, 168, 0, 2), nic)]);
        let generation = store.set_resolved_underlay(resolved.clone()).unwrap();
        assert_eq!(generation, Some(tables.current().generation()));
        assert_eq!(outer_dst(&tables), nic.0);
        assert_eq!(store.snapshot().config, config, "desired state unchanged");
        assert_eq!(store.snapshot().generation, tables.current().generation());
        // The same again: nothing to publish.
        assert_eq!(store.set_resolved_underlay(resolved).unwrap(), None);
        // An apply keeps it; an underlay_mac asked for wins over it.
        let mut asked = config.remote_nodes[0].clone();
        asked.underlay_mac = Some("02:00:00:0a:0a:0a".parse().unwrap());
        store
            .apply(&ChangeSet::upsert(ObjectSet {
                tenants: vec![tenant("green", 300)],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert_eq!(outer_dst(&tables), nic.0);
        store
            .apply(&ChangeSet::upsert(ObjectSet {
                remote_nodes: vec![asked],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert_eq!(outer_dst(&tables), [2, 0, 0, 0x0a, 0x0a, 0x0a]);
        // Forgotten: back to vtep_mac.
        let mut plain = config.remote_nodes[0].clone();
        plain.underlay_mac = None;
        store
            .apply(&ChangeSet::upsert(ObjectSet {
                remote_nodes: vec![plain],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert!(store
            .set_resolved_underlay(BTreeMap::new())
            .unwrap()
            .is_some());
        assert_eq!(outer_dst(&tables), [2, 0, 0, 0, 0x0f, 0x0f]);
    }

    #[test]
    fn a_bad_chain_refuses_the_apply_and_changes_nothing() {
        let config = base();
        let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
        let store = DesiredStateStore::new(config.clone(), tables.clone());
        let tables_before = tables.current();
        let chains_before = store.chains().current();
        let counted: ChainSpec =
            serde_yaml::from_str("name: counted\ntenant: blue\nfunctions: [{type: counter}]\n")
                .unwrap();
        let broken: ChainSpec = serde_yaml::from_str(
            "name: web\ntenant: blue\n\
             functions: [{type: counter}, {type: load_balancer, services: [default/nope]}]\n",
        )
        .unwrap();
        let change = ChangeSet::upsert(ObjectSet {
            chains: vec![counted.clone(), broken],
            ..ObjectSet::default()
        });
        let error = store.apply(&change).unwrap_err();
        assert_eq!(error.field, "upserts.chains[1].functions[1]");
        assert!(error.message.contains("default/nope"), "{error}");
        assert!(
            Arc::ptr_eq(&tables.current(), &tables_before),
            "tables unchanged"
        );
        assert!(Arc::ptr_eq(&store.chains().current(), &chains_before));
        assert_eq!(store.snapshot().config, config, "desired state unchanged");

        // A chain that compiles is published with the tables.
        let outcome = store
            .apply(&ChangeSet::upsert(ObjectSet {
                chains: vec![counted],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert!(outcome.changed);
        assert_eq!(tables.current().generation(), outcome.generation);
        let chains = store.chains().current();
        assert_eq!(chains.chain_index("counted"), Some(0));
        assert!(chains.generation() > chains_before.generation());

        // A change chains do not read (a route) keeps the running set.
        let route: kxdp_config::RouteSpec =
            serde_yaml::from_str("{tenant: blue, prefix: 10.9.0.0/16, via: blackhole}").unwrap();
        let outcome = store
            .apply(&ChangeSet::upsert(ObjectSet {
                routes: vec![route],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert!(outcome.changed);
        assert!(Arc::ptr_eq(&store.chains().current(), &chains));

        // A broken chain already applied is named by its key (the refusal
        // is validation's, as the store makes it).
        let mut merged = store.snapshot().config.clone();
        merged.chains[0]
            .functions
            .push(kxdp_config::FunctionSpec::LoadBalancer {
                services: vec!["default/gone".into()],
            });
        let mut origins = Origins::default();
        origins.by_kind[ObjectKind::Chain.index()] = vec![None];
        let error = config_error(merged.validate().unwrap_err(), &merged, &origins);
        assert_eq!(error.field, "chains[\"counted\"].functions[1]");
        assert!(error.message.contains("default/gone"), "{error}");
    }

    #[test]
    fn chains_name_an_interface_by_the_port_it_keeps() {
        let config = base();
        let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
        let store = DesiredStateStore::new(config, tables);
        let interface = |name: &str, n: u8| -> InterfaceSpec {
            serde_yaml::from_str(&format!(
                "{{name: {name}, role: pod, mac: '02:00:00:00:01:{n:02x}'}}"
            ))
            .unwrap()
        };
        let chain: ChainSpec = serde_yaml::from_str(
            "name: through-vnf\ntenant: blue\n\
             functions: [{type: external, to_interface: vnf-in, from_interface: vnf-out}]\n",
        )
        .unwrap();
        store
            .apply(&ChangeSet::upsert(ObjectSet {
                interfaces: vec![
                    interface("pod-a", 1),
                    interface("vnf-in", 2),
                    interface("vnf-out", 3),
                ],
                chains: vec![chain],
                ..ObjectSet::default()
            }))
            .unwrap();
        let port_of = |name: &str| {
            let state = store.snapshot();
            state
                .ports
                .iter()
                .position(|p| p.as_deref() == Some(name))
                .map(|p| p as PortId)
        };
        assert_eq!(port_of("vnf-out"), Some(3));
        assert!(store.chains().current().is_vnf_return_port(3));

        // pod-a goes: vnf-out keeps port 3 though it is now the third
        // interface; the chain follows the port, not the position.
        store
            .apply(&ChangeSet::delete(KeySet {
                interfaces: vec!["pod-a".into()],
                ..KeySet::default()
            }))
            .unwrap();
        assert_eq!(store.snapshot().config.interfaces[2].name, "vnf-out");
        assert_eq!(port_of("vnf-out"), Some(3));
        let chains = store.chains().current();
        assert!(chains.is_vnf_return_port(3), "vnf-out is still port 3");
        assert!(!chains.is_vnf_return_port(2), "port 2 is vnf-in");

        // A new interface takes the freed port 1; the chain keeps its ports.
        store
            .apply(&ChangeSet::upsert(ObjectSet {
                interfaces: vec![interface("pod-b", 4)],
                ..ObjectSet::default()
            }))
            .unwrap();
        assert_eq!(port_of("pod-b"), Some(1));
        let chains = store.chains().current();
        assert!(chains.is_vnf_return_port(3));
        assert!(!chains.is_vnf_return_port(1));
    }

    #[test]
    fn a_chain_capacity_limit_names_the_request_field() {
        let mut merged = base();
        let service: ServiceSpec = serde_yaml::from_str(
            "{name: web, tenant: blue, cluster_ip: 10.96.0.10, ports: [{port: 80}]}",
        )
        .unwrap();
        merged.services = vec![
            service.clone(),
            ServiceSpec {
                name: "db".into(),
                cluster_ip: "10.96.0.11".parse().unwrap(),
                ..service
            },
        ];
        let mut origins = Origins::default();
        origins.by_kind[ObjectKind::Service.index()] = vec![None, Some(3)];
        let error = chain_error(
            &ChainError::TooManyEndpoints("default/db".into()),
            &merged,
            &origins,
        );
        assert_eq!(error.field, "upserts.services[3].endpoints");
        assert_eq!(error.message, "too many endpoints");
        let error = chain_error(
            &ChainError::TooManyEndpoints("default/web".into()),
            &merged,
            &origins,
        );
        assert_eq!(error.field, "services[\"default/web\"].endpoints");
        let error = chain_error(&ChainError::TooMany("chains"), &merged, &origins);
        assert_eq!(error.field, "chains");
    }

    #[test]
    fn keys_normalize() {
        assert_eq!(
            normalize_key(ObjectKind::Service, "web").unwrap(),
            "default/web"
        );
        assert_eq!(
            normalize_key(ObjectKind::Policy, "prod/deny").unwrap(),
            "prod/deny"
        );
        assert_eq!(
            normalize_key(ObjectKind::Route, "blue/2001:0db8::/32").unwrap(),
            "blue/2001:db8::/32"
        );
        assert!(normalize_key(ObjectKind::Route, "blue/10.0.0.300/8").is_err());
        assert!(normalize_key(ObjectKind::Pod, "").is_err());
        assert_eq!(ObjectKind::parse("svc"), Some(ObjectKind::Service));
        assert_eq!(ObjectKind::parse("nodes"), Some(ObjectKind::RemoteNode));
        assert_eq!(ObjectKind::parse("gizmos"), None);
        for kind in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(kind.field()), Some(kind));
        }
    }
}
