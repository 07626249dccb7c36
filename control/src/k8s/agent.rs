//! The Kubernetes agent: kube-runtime watchers feed the [`Index`], whose
//! model is applied through the node's [`DesiredStateStore`] (the same
//! path the gRPC API takes: validated whole, compiled off the hot path,
//! published with one swap).
//!
//! - One `watcher()` per [`WatchedKind`] (pods with the field selector
//!   `spec.nodeName=<this node>`), with kube-runtime's default backoff:
//!   list once, then watch; never polling. A watcher that loses its stream
//!   resumes from its resourceVersion; on 410 Gone (history expired) it
//!   lists again.
//! - Until every watcher has finished its first list, nothing is applied.
//!   Then the agent applies one resync of its kinds ([`MODEL_KINDS`]), and
//!   again after any relist; in between, events are coalesced for
//!   [`AgentOptions::coalesce`] and applied as one delta (the changed
//!   objects only).
//! - When the API server goes away the watchers retry with backoff and
//!   nothing is applied: the dataplane keeps forwarding on its last tables.
//!   When they reconnect and relist, a resync brings the tables up to date.
//! - An object the store refuses (an address outside this node's pod
//!   CIDRs, say) is left out and logged with the field, and the rest is
//!   applied: one bad object never holds back the others. It is retried
//!   when it changes.
//! - On start the agent writes this node's VTEP MAC on its own Node
//!   (annotation `kxdp.io/vtep-mac`, merge patch), so the other nodes'
//!   agents can reach it.
//!
//! [`AgentStats`] counts what it did and keeps the time from the first
//! event of a batch to the publication of its tables.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use kxdp_config::crd::ServiceChain;
use kxdp_config::{MacAddr, NodeConfig};
use kxdp_node::report::Report;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::index::{Index, IndexSettings, Resource, WatchedKind, MODEL_KINDS, VTEP_MAC_ANNOTATION};
use crate::api::store::Keyed;
use crate::api::{ApplyMode, ChangeSet, DesiredStateStore, KeySet, ObjectKind, ObjectSet};

/// The verbs the agent uses on each kind it watches: a watcher lists and
/// watches. `config/deploy/rbac.yaml` grants exactly these (a test checks).
pub const WATCH_VERBS: [&str; 2] = ["list", "watch"];

/// The verbs the agent uses on Nodes beyond watching them: it reads its own
/// Node and merge-patches its VTEP annotation on it.
pub const OWN_NODE_VERBS: [&str; 2] = ["get", "patch"];

/// How the agent reaches the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterAccess {
    /// The pod's ServiceAccount (in a DaemonSet).
    InCluster,
    /// A kubeconfig file.
    Kubeconfig(PathBuf),
}

/// The agent's settings.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Where the API server is.
    pub access: ClusterAccess,
    /// This node's name as Kubernetes knows it.
    pub node_name: String,
    /// The tenant of namespaces without the `kxdp.io/tenant` label.
    pub default_tenant: String,
    /// How long events are gathered into one delta after the first.
    pub coalesce: Duration,
    /// The VTEP MAC to write on this node's Node (none: not written).
    pub vtep_mac: Option<MacAddr>,
}

impl AgentOptions {
    /// Options for the node `config` describes: its name (or `node_name`),
    /// its first tenant as the default, its VTEP MAC (or the underlay
    /// interface's).
    pub fn for_node(config: &NodeConfig, access: ClusterAccess, node_name: Option<String>) -> Self {
        let underlay_mac = config
            .interfaces
            .iter()
            .find(|i| i.name == config.node.vtep.interface)
            .map(|i| i.mac);
        AgentOptions {
            access,
            node_name: node_name.unwrap_or_else(|| config.node.name.clone()),
            default_tenant: config
                .tenants
                .first()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            coalesce: Duration::from_millis(2),
            vtep_mac: config.node.vtep.mac.or(underlay_mac),
        }
    }
}

/// What the agent did, shared with whoever watches it.
#[derive(Debug)]
pub struct AgentStats {
    /// Resyncs applied (the first after the initial lists, then one per relist).
    pub resyncs: AtomicU64,
    /// Deltas applied.
    pub deltas: AtomicU64,
    /// Events received from the watchers.
    pub events: AtomicU64,
    /// Errors the watchers reported (each retried with backoff).
    pub watch_errors: AtomicU64,
    /// Objects the store refused (left out).
    pub refused: AtomicU64,
    /// The generation of the tables last published by the agent.
    pub generation: AtomicU64,
    /// True once the first resync is applied.
    pub synced: AtomicBool,
    /// Microseconds from the first event of a batch to its tables' publication.
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for AgentStats {
    fn default() -> Self {
        AgentStats {
            resyncs: AtomicU64::new(0),
            deltas: AtomicU64::new(0),
            events: AtomicU64::new(0),
            watch_errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            latency_us: Mutex::new(new_histogram()),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits: the bounds are valid constants.
    match Histogram::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("1 µs .. 1 h with 3 digits are valid bounds"),
    }
}

/// Percentiles of the event-to-publication latency.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Batches measured.
    pub count: u64,
    /// Median, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Largest, microseconds.
    pub max_us: u64,
}

impl AgentStats {
    fn record_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut h = self
            .latency_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let high = h.high();
        let _ = h.record(us.min(high));
    }

    /// The event-to-publication latency so far.
    pub fn latency(&self) -> LatencySummary {
        let h = self
            .latency_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// Why the agent could not start, or (logged while it retries) connect.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// spawning the agent thread
    #[error("spawning the agent thread")]
    Spawn(#[source] std::io::Error),
    /// reading the in-cluster configuration
    #[error("reading the in-cluster configuration")]
    InCluster(#[source] kube::config::InClusterError),
    /// reading {path} (the kubeconfig)
    #[error("reading {}", path.display())]
    ReadKubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// loading {path} (the kubeconfig)
    #[error("loading {}", path.display())]
    LoadKubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it could not be loaded.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// building the Kubernetes client
    #[error("building the Kubernetes client")]
    Client(#[source] Box<kube::Error>),
}

/// A running agent on its own thread (`kxdp-agent`). Dropping it stops it.
#[derive(Debug)]
pub struct Agent {
    stats: Arc<AgentStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    /// Start the agent: it connects (retrying with backoff while the API
    /// server is unreachable), watches, and applies through `store`.
    pub fn start(
        store: Arc<DesiredStateStore>,
        options: AgentOptions,
    ) -> Result<Agent, AgentError> {
        let stats = Arc::new(AgentStats::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread_stats = Arc::clone(&stats);
        let avoid = store.snapshot().config.workers.cores.clone();
        let thread = std::thread::Builder::new()
            .name("kxdp-agent".into())
            .spawn(move || {
                kxdp_node::threads::avoid_cores(&avoid, "Kubernetes agent");
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "the agent cannot build its tokio runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        _ = stop_rx => {}
                        () = run(store, options, thread_stats) => {}
                    }
                });
            })
            .map_err(AgentError::Spawn)?;
        Ok(Agent {
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> &Arc<AgentStats> {
        &self.stats
    }

    /// Stop it and wait for its thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// A kube client for `access`, retried with backoff (1 s doubling to 30 s)
/// while the configuration cannot be loaded.
async fn connect(access: &ClusterAccess) -> Client {
    let mut delay = Duration::from_secs(1);
    loop {
        let result = async {
            let config = match access {
                ClusterAccess::InCluster => {
                    kube::Config::incluster().map_err(AgentError::InCluster)?
                }
                ClusterAccess::Kubeconfig(path) => {
                    let kubeconfig =
                        kube::config::Kubeconfig::read_from(path).map_err(|source| {
                            AgentError::ReadKubeconfig {
                                path: path.clone(),
                                source,
                            }
                        })?;
                    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                        .await
                        .map_err(|source| AgentError::LoadKubeconfig {
                            path: path.clone(),
                            source,
                        })?
                }
            };
            Client::try_from(config).map_err(|e| AgentError::Client(Box::new(e)))
        }
        .await;
        match result {
            Ok(client) => return client,
            Err(e) => {
                tracing::warn!(error = %Report(&e), retry_in = ?delay, "Kubernetes agent cannot connect");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// What a watcher tells the agent.
#[derive(Debug)]
enum Update {
    /// A relist began.
    Init(WatchedKind),
    /// An object of the relist.
    InitApply(Resource),
    /// The relist is complete.
    InitDone(WatchedKind),
    /// Added or modified.
    Apply(Resource),
    /// Deleted.
    Delete(Resource),
    /// The kind does not exist on the API server (no CRD installed).
    Missing(WatchedKind),
}

/// Run one watcher, forwarding its events until the agent goes away.
fn spawn_watcher<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: WatchedKind,
    wrap: fn(K) -> Resource,
    tx: mpsc::UnboundedSender<(Instant, Update)>,
    stats: Arc<AgentStats>,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
        let mut listed = false;
        let mut missing_reported = false;
        while let Some(item) = stream.next().await {
            let update = match item {
                Ok(Event::Init) => Update::Init(kind),
                Ok(Event::InitApply(k)) => Update::InitApply(wrap(k)),
                Ok(Event::InitDone) => {
                    listed = true;
                    Update::InitDone(kind)
                }
                Ok(Event::Apply(k)) => Update::Apply(wrap(k)),
                Ok(Event::Delete(k)) => Update::Delete(wrap(k)),
                Err(e) => {
                    stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                    let not_found = matches!(
                        &e,
                        watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.is_not_found()
                    );
                    tracing::warn!(kind = %kind, error = %e, "watch failed; retrying with backoff");
                    if not_found && !listed && !missing_reported {
                        missing_reported = true;
                        Update::Missing(kind)
                    } else {
                        continue;
                    }
                }
            };
            if tx.send((Instant::now(), update)).is_err() {
                return;
            }
        }
    });
}

fn start_watchers(
    client: &Client,
    node_name: &str,
    tx: &mpsc::UnboundedSender<(Instant, Update)>,
    stats: &Arc<AgentStats>,
) {
    let config = watcher::Config::default;
    for kind in WatchedKind::ALL {
        let tx = tx.clone();
        let stats = Arc::clone(stats);
        match kind {
            WatchedKind::Node => spawn_watcher(
                Api::<Node>::all(client.clone()),
                config(),
                kind,
                |k| Resource::Node(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::Pod => spawn_watcher(
                Api::<Pod>::all(client.clone()),
                config().fields(&format!("spec.nodeName={node_name}")),
                kind,
                |k| Resource::Pod(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::Namespace => spawn_watcher(
                Api::<Namespace>::all(client.clone()),
                config(),
                kind,
                |k| Resource::Namespace(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::Service => spawn_watcher(
                Api::<Service>::all(client.clone()),
                config(),
                kind,
                |k| Resource::Service(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::EndpointSlice => spawn_watcher(
                Api::<EndpointSlice>::all(client.clone()),
                config(),
                kind,
                |k| Resource::EndpointSlice(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::NetworkPolicy => spawn_watcher(
                Api::<NetworkPolicy>::all(client.clone()),
                config(),
                kind,
                |k| Resource::NetworkPolicy(Box::new(k)),
                tx,
                stats,
            ),
            WatchedKind::ServiceChain => spawn_watcher(
                Api::<ServiceChain>::all(client.clone()),
                config(),
                kind,
                |k| Resource::ServiceChain(Box::new(k)),
                tx,
                stats,
            ),
        }
    }
}

/// Write this node's VTEP MAC on its Node (merge patch), retrying with
/// backoff until it is there.
async fn annotate_own_node(client: Client, node_name: String, mac: MacAddr) {
    let nodes = Api::<Node>::all(client);
    let value = mac.to_string();
    let mut delay = Duration::from_millis(500);
    loop {
        let result = async {
            let node = nodes.get(&node_name).await?;
            let current = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(VTEP_MAC_ANNOTATION));
            if current == Some(&value) {
                return Ok::<bool, kube::Error>(false);
            }
            let patch = serde_json::json!({
                "metadata": {"annotations": {VTEP_MAC_ANNOTATION: value}}
            });
            nodes
                .patch(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(patched) => {
                tracing::info!(node = %node_name, mac = %value, patched, "own Node carries the VTEP MAC annotation");
                return;
            }
            Err(e) => {
                tracing::warn!(node = %node_name, error = %e, retry_in = ?delay, "cannot annotate own Node");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The agent: connect, watch, apply. Runs until its task is dropped.
pub async fn run(store: Arc<DesiredStateStore>, options: AgentOptions, stats: Arc<AgentStats>) {
    let client = connect(&options.access).await;
    if let Some(mac) = options.vtep_mac {
        tokio::spawn(annotate_own_node(
            client.clone(),
            options.node_name.clone(),
            mac,
        ));
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    start_watchers(&client, &options.node_name, &tx, &stats);
    drop(tx);
    let mut state = AgentState::new(&store, &options);
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    report.tick().await;
    loop {
        let deadline = state.deadline();
        tokio::select! {
            update = rx.recv() => {
                let Some((at, update)) = update else {
                    return;
                };
                stats.events.fetch_add(1, Ordering::Relaxed);
                state.handle(at, update);
            }
            () = sleep_until(deadline) => state.flush(&store, &stats),
            _ = report.tick() => {
                let latency = stats.latency();
                tracing::info!(
                    events = stats.events.load(Ordering::Relaxed),
                    resyncs = stats.resyncs.load(Ordering::Relaxed),
                    deltas = stats.deltas.load(Ordering::Relaxed),
                    refused = stats.refused.load(Ordering::Relaxed),
                    watch_errors = stats.watch_errors.load(Ordering::Relaxed),
                    generation = stats.generation.load(Ordering::Relaxed),
                    latency_p50_us = latency.p50_us,
                    latency_p99_us = latency.p99_us,
                    "Kubernetes agent: event to published tables"
                );
            }
        }
    }
}

/// How often the agent logs what it did and its event-to-tables latency.
const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Sleep until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The agent's state between events: the index, the relists in progress,
/// and what it last applied.
struct AgentState {
    index: Index,
    coalesce: Duration,
    /// Objects of a relist in progress, per kind.
    relisting: HashMap<WatchedKind, Vec<Resource>>,
    /// Kinds whose first list is complete.
    listed: Vec<WatchedKind>,
    /// A resync is due (first sync, or after a relist).
    resync_due: bool,
    /// The first event not yet applied.
    pending_since: Option<Instant>,
    /// The model objects last applied.
    applied: ObjectSet,
    /// Objects the store refused, by kind and key: the refused object and why.
    refused: BTreeMap<(ObjectKind, String), (serde_json::Value, String)>,
}

impl AgentState {
    fn new(store: &DesiredStateStore, options: &AgentOptions) -> AgentState {
        let config = store.snapshot().config.clone();
        let settings = IndexSettings {
            node_name: options.node_name.clone(),
            default_tenant: options.default_tenant.clone(),
            tenants: config.tenants.iter().map(|t| t.name.clone()).collect(),
            pod_interfaces: config
                .interfaces
                .iter()
                .filter(|i| i.role == kxdp_config::InterfaceRole::Pod)
                .map(|i| i.name.clone())
                .collect(),
        };
        AgentState {
            index: Index::new(settings),
            coalesce: options.coalesce,
            relisting: HashMap::new(),
            listed: Vec::new(),
            resync_due: true,
            pending_since: None,
            applied: ObjectSet::default(),
            refused: BTreeMap::new(),
        }
    }

    fn all_listed(&self) -> bool {
        WatchedKind::ALL.iter().all(|k| self.listed.contains(k))
    }

    /// When the pending events are due to be applied.
    fn deadline(&self) -> Option<Instant> {
        if !self.all_listed() {
            return None;
        }
        self.pending_since.map(|t| t + self.coalesce)
    }

    fn mark(&mut self, at: Instant) {
        self.pending_since = Some(self.pending_since.map_or(at, |t| t.min(at)));
    }

    fn handle(&mut self, at: Instant, update: Update) {
        match update {
            Update::Init(kind) => {
                self.relisting.insert(kind, Vec::new());
            }
            Update::InitApply(object) => {
                let kind = object.kind();
                self.relisting.entry(kind).or_default().push(object);
            }
            Update::InitDone(kind) => {
                let objects = self.relisting.remove(&kind).unwrap_or_default();
                tracing::info!(kind = %kind, objects = objects.len(), "listed");
                self.index.replace(kind, objects);
                if !self.listed.contains(&kind) {
                    self.listed.push(kind);
                }
                self.resync_due = true;
                self.mark(at);
            }
            Update::Missing(kind) => {
                tracing::warn!(kind = %kind, "the API server does not serve this kind (is the CRD installed?): going on without it until it appears");
                if !self.listed.contains(&kind) {
                    self.listed.push(kind);
                }
                self.mark(at);
            }
            Update::Apply(object) => {
                self.index.upsert(object);
                self.mark(at);
            }
            Update::Delete(object) => {
                self.index.remove(&object);
                self.mark(at);
            }
        }
    }

    /// Apply what is pending: a resync when one is due, else a delta of the
    /// objects that changed.
    fn flush(&mut self, store: &DesiredStateStore, stats: &AgentStats) {
        let Some(since) = self.pending_since.take() else {
            return;
        };
        // kxdp-cni's registrations, for the pods it wired.
        self.index.set_cni_pods(&store.snapshot().config.pods);
        let model = self.index.model();
        for s in &model.skipped {
            tracing::debug!(kind = %s.kind, key = %s.key, reason = %s.reason, "left out");
        }
        let resync = std::mem::take(&mut self.resync_due);
        let model_skipped = model.skipped.len();
        // Objects refused before and unchanged since stay out.
        let wanted = model.objects;
        self.refused.retain(|(kind, key), (object, _)| {
            find_value(&wanted, *kind, key).as_ref() == Some(object)
        });
        // Retry with each refused object left out, a bounded number of times.
        for _ in 0..64 {
            let candidate = without(&wanted, &self.refused);
            let change = if resync {
                ChangeSet::resync(MODEL_KINDS.to_vec(), candidate.clone())
            } else {
                diff(&self.applied, &candidate)
            };
            if !resync && change.upserts.is_empty() && change.deletes.is_empty() {
                return;
            }
            match store.apply(&change) {
                Ok(outcome) => {
                    self.applied = candidate;
                    stats
                        .generation
                        .store(outcome.generation, Ordering::Relaxed);
                    if resync {
                        tracing::info!(
                            generation = outcome.generation,
                            remote_nodes = self.applied.remote_nodes.len(),
                            pods = self.applied.pods.len(),
                            services = self.applied.services.len(),
                            policies = self.applied.policies.len(),
                            chains = self.applied.chains.len(),
                            namespaces = self.applied.namespaces.len(),
                            left_out = model_skipped + self.refused.len(),
                            "Kubernetes agent: resync applied"
                        );
                        stats.resyncs.fetch_add(1, Ordering::Relaxed);
                        stats.synced.store(true, Ordering::Relaxed);
                    } else {
                        stats.deltas.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.record_latency(since.elapsed());
                    tracing::debug!(
                        generation = outcome.generation,
                        changed = outcome.changed,
                        resync,
                        "applied"
                    );
                    return;
                }
                Err(e) => {
                    let Some((kind, key)) = culprit(&change, &e.field) else {
                        tracing::error!(error = %e, "the store refused the agent's change and no object is at fault; will retry on the next event");
                        self.resync_due = resync;
                        return;
                    };
                    let Some(object) = find_value(&wanted, kind, &key) else {
                        // An applied object that is no longer wanted: drop it.
                        tracing::error!(error = %e, "the store refused the agent's change");
                        self.resync_due = true;
                        return;
                    };
                    tracing::warn!(kind = %kind, key = %key, error = %e, "left out: refused by the store");
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    // The next try leaves it out (`without`).
                    self.refused.insert((kind, key), (object, e.to_string()));
                }
            }
        }
        tracing::error!("the store refused 64 objects in a row; will retry on the next event");
        self.resync_due = true;
    }
}

/// The objects of every model kind of `set`, keyed.
fn keyed<T: Keyed + serde::Serialize>(items: &[T]) -> BTreeMap<String, &T> {
    items.iter().map(|i| (i.key(), i)).collect()
}

/// The serialized form of the object of `kind` with `key` in `set`.
fn find_value(set: &ObjectSet, kind: ObjectKind, key: &str) -> Option<serde_json::Value> {
    fn find<T: Keyed + serde::Serialize>(items: &[T], key: &str) -> Option<serde_json::Value> {
        items
            .iter()
            .find(|i| i.key() == key)
            .and_then(|i| serde_json::to_value(i).ok())
    }
    match kind {
        ObjectKind::Tenant => find(&set.tenants, key),
        ObjectKind::RemoteNode => find(&set.remote_nodes, key),
        ObjectKind::Pod => find(&set.pods, key),
        ObjectKind::Route => find(&set.routes, key),
        ObjectKind::Service => find(&set.services, key),
        ObjectKind::Policy => find(&set.policies, key),
        ObjectKind::Chain => find(&set.chains, key),
        ObjectKind::Namespace => find(&set.namespaces, key),
        ObjectKind::Interface => find(&set.interfaces, key),
    }
}

/// `set` without the refused objects.
fn without(
    set: &ObjectSet,
    refused: &BTreeMap<(ObjectKind, String), (serde_json::Value, String)>,
) -> ObjectSet {
    let mut out = set.clone();
    let keep = |kind: ObjectKind, key: String| !refused.contains_key(&(kind, key));
    out.remote_nodes
        .retain(|o| keep(ObjectKind::RemoteNode, o.key()));
    out.pods.retain(|o| keep(ObjectKind::Pod, o.key()));
    out.services.retain(|o| keep(ObjectKind::Service, o.key()));
    out.policies.retain(|o| keep(ObjectKind::Policy, o.key()));
    out.chains.retain(|o| keep(ObjectKind::Chain, o.key()));
    out.namespaces
        .retain(|o| keep(ObjectKind::Namespace, o.key()));
    out
}

/// The delta from `old` to `new`: upserts of what is new or changed,
/// deletes of what is gone.
pub fn diff(old: &ObjectSet, new: &ObjectSet) -> ChangeSet {
    fn kind_diff<T: Keyed + Clone + PartialEq + serde::Serialize>(
        old: &[T],
        new: &[T],
        upserts: &mut Vec<T>,
        deletes: &mut Vec<String>,
    ) {
        let before = keyed(old);
        let after = keyed(new);
        for (key, item) in &after {
            if before.get(key) != Some(item) {
                upserts.push((*item).clone());
            }
        }
        for key in before.keys() {
            if !after.contains_key(key) {
                deletes.push(key.clone());
            }
        }
    }
    let mut upserts = ObjectSet::default();
    let mut deletes = KeySet::default();
    kind_diff(
        &old.remote_nodes,
        &new.remote_nodes,
        &mut upserts.remote_nodes,
        &mut deletes.remote_nodes,
    );
    kind_diff(&old.pods, &new.pods, &mut upserts.pods, &mut deletes.pods);
    kind_diff(
        &old.services,
        &new.services,
        &mut upserts.services,
        &mut deletes.services,
    );
    kind_diff(
        &old.policies,
        &new.policies,
        &mut upserts.policies,
        &mut deletes.policies,
    );
    kind_diff(
        &old.chains,
        &new.chains,
        &mut upserts.chains,
        &mut deletes.chains,
    );
    kind_diff(
        &old.namespaces,
        &new.namespaces,
        &mut upserts.namespaces,
        &mut deletes.namespaces,
    );
    ChangeSet {
        mode: ApplyMode::Delta,
        upserts,
        deletes,
    }
}

/// The object a refusal's field names: `upserts.pods[3]…` (the fourth pod
/// upserted by `change`) or `pods["ns/name"]…` (an object already applied).
fn culprit(change: &ChangeSet, field: &str) -> Option<(ObjectKind, String)> {
    let rest = field.strip_prefix("upserts.").unwrap_or(field);
    let (head, tail) = rest.split_once('[')?;
    let kind = ObjectKind::ALL.into_iter().find(|k| k.field() == head)?;
    if let Some(quoted) = tail.strip_prefix('"') {
        let (key, _) = quoted.split_once("\"]")?;
        return Some((kind, key.replace("\\\"", "\"")));
    }
    let (index, _) = tail.split_once(']')?;
    let index: usize = index.parse().ok()?;
    if !field.starts_with("upserts.") {
        return None;
    }
    let u = &change.upserts;
    let key = match kind {
        ObjectKind::Tenant => u.tenants.get(index).map(Keyed::key),
        ObjectKind::RemoteNode => u.remote_nodes.get(index).map(Keyed::key),
        ObjectKind::Pod => u.pods.get(index).map(Keyed::key),
        ObjectKind::Route => u.routes.get(index).map(Keyed::key),
        ObjectKind::Service => u.services.get(index).map(Keyed::key),
        ObjectKind::Policy => u.policies.get(index).map(Keyed::key),
        ObjectKind::Chain => u.chains.get(index).map(Keyed::key),
        ObjectKind::Namespace => u.namespaces.get(index).map(Keyed::key),
        ObjectKind::Interface => u.interfaces.get(index).map(Keyed::key),
    }?;
    Some((kind, key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kxdp_config::TenantSpec;

    fn ns(name: &str, team: &str) -> kxdp_config::NamespaceSpec {
        kxdp_config::NamespaceSpec {
            name: name.into(),
            labels: [("team".to_string(), team.to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn diff_upserts_changes_and_deletes_what_is_gone() {
        let old = ObjectSet {
            namespaces: vec![ns("a", "x"), ns("b", "x"), ns("c", "x")],
            ..ObjectSet::default()
        };
        let new = ObjectSet {
            namespaces: vec![ns("a", "x"), ns("b", "y"), ns("d", "x")],
            ..ObjectSet::default()
        };
        let change = diff(&old, &new);
        let names: Vec<&str> = change
            .upserts
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(names, vec!["b", "d"]);
        assert_eq!(change.deletes.namespaces, vec!["c".to_string()]);
        let none = diff(&new, &new);
        assert!(none.upserts.is_empty() && none.deletes.is_empty());
    }

    #[test]
    fn culprits_are_found_by_index_or_key() {
        let change = ChangeSet::upsert(ObjectSet {
            tenants: vec![TenantSpec {
                name: "t".into(),
                vni: 1,
            }],
            namespaces: vec![ns("a", "x"), ns("b", "x")],
            ..ObjectSet::default()
        });
        assert_eq!(
            culprit(&change, "upserts.namespaces[1].labels"),
            Some((ObjectKind::Namespace, "b".to_string()))
        );
        assert_eq!(
            culprit(&change, "pods[\"shop/web\"].ip"),
            Some((ObjectKind::Pod, "shop/web".to_string()))
        );
        assert_eq!(culprit(&change, "node.pod_cidrs[0]"), None);
        assert_eq!(culprit(&change, "upserts.namespaces[7]"), None);
    }
}
