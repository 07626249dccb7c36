//! The `kxdp.v1.DataplaneService` implementation over a
//! [`DesiredStateStore`], the workers' counters and the bound ports.
//!
//! Applies run on tokio's blocking pool (validating and compiling a large
//! desired state is CPU work); everything else reads snapshots and never
//! waits for an applier or a worker.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kxdp_dataplane::counters::SharedCounters;
use kxdp_node::runtime::SharedPorts;
use kxdp_node::stats::{worker_counters, PortRow};
use kxdp_vnf_chains::SharedChainStats;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{self, FromProto, ToProto};
use super::proto;
use super::proto::dataplane_service_server::DataplaneService;
use super::store::{normalize_key, ChangeSet, DesiredStateStore, FieldError, ObjectSet};

/// The shortest counter interval a client may ask for.
pub const MIN_COUNTER_INTERVAL: Duration = Duration::from_millis(10);
/// The longest counter interval a client may ask for.
pub const MAX_COUNTER_INTERVAL: Duration = Duration::from_secs(3600);
/// The interval when a client asks for none.
pub const DEFAULT_COUNTER_INTERVAL: Duration = Duration::from_secs(1);

/// The gRPC service of one node. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct DataplaneApi {
    store: Arc<DesiredStateStore>,
    counters: Arc<Vec<Arc<SharedCounters>>>,
    chain_stats: Arc<Vec<Arc<SharedChainStats>>>,
    ports: SharedPorts,
    streams_stop: Arc<watch::Sender<bool>>,
    trace: Option<Arc<kxdp_dataplane::trace::TraceHub>>,
}

impl DataplaneApi {
    /// A service over `store`, reading the workers' `counters` and
    /// reporting how `ports` are bound.
    pub fn new(
        store: Arc<DesiredStateStore>,
        counters: Vec<Arc<SharedCounters>>,
        ports: impl Into<SharedPorts>,
    ) -> DataplaneApi {
        DataplaneApi {
            store,
            counters: Arc::new(counters),
            chain_stats: Arc::default(),
            ports: ports.into(),
            streams_stop: Arc::new(watch::Sender::new(false)),
            trace: None,
        }
    }

    /// Read the workers' chain counters from `chain_stats` (one per worker).
    pub fn with_chain_stats(mut self, chain_stats: Vec<Arc<SharedChainStats>>) -> DataplaneApi {
        self.chain_stats = Arc::new(chain_stats);
        self
    }

    /// Serve `Trace` over the workers' trace point `hub`.
    pub fn with_trace(mut self, hub: Arc<kxdp_dataplane::trace::TraceHub>) -> DataplaneApi {
        self.trace = Some(hub);
        self
    }

    /// The desired-state store it applies through.
    pub fn store(&self) -> &Arc<DesiredStateStore> {
        &self.store
    }

    /// End every open counter stream (on shutdown: a graceful server stop
    /// waits for open calls).
    pub fn end_streams(&self) {
        self.streams_stop.send_replace(true);
    }

    fn sample(&self) -> proto::CounterSample {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        proto::CounterSample {
            time: Some(prost_types::Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
            }),
            generation: self.store.tables().current().generation(),
            workers: worker_counters(&self.counters, &self.ports.snapshot())
                .iter()
                .enumerate()
                .map(|(i, c)| convert::worker_counters(i, c))
                .collect(),
        }
    }
}

fn invalid(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The stream `WatchCounters` answers with.
pub type CounterStream = Pin<Box<dyn Stream<Item = Result<proto::CounterSample, Status>> + Send>>;

#[tonic::async_trait]
impl DataplaneService for DataplaneApi {
    async fn apply(
        &self,
        request: Request<proto::ApplyRequest>,
    ) -> Result<Response<proto::ApplyResponse>, Status> {
        let change = ChangeSet::from_proto(request.get_ref(), "").map_err(invalid)?;
        let store = Arc::clone(&self.store);
        let outcome = tokio::task::spawn_blocking(move || store.apply(&change))
            .await
            .map_err(|e| Status::internal(format!("the apply task failed: {e}")))?;
        match outcome {
            Ok(outcome) => {
                tracing::info!(
                    generation = outcome.generation,
                    changed = outcome.changed,
                    "API apply"
                );
                Ok(Response::new(proto::ApplyResponse {
                    generation: outcome.generation,
                    changed: outcome.changed,
                }))
            }
            Err(e) => {
                tracing::info!(error = %e, "API apply refused");
                Err(invalid(e))
            }
        }
    }

    async fn get(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::GetResponse>, Status> {
        let request = request.get_ref();
        let kind = convert::kind_from_proto(request.kind, "kind").map_err(invalid)?;
        let key = normalize_key(kind, &request.key)
            .map_err(|message| invalid(FieldError::new("key", message)))?;
        let state = self.store.snapshot();
        let object = ObjectSet::find(&state.config, kind, &key)
            .ok_or_else(|| Status::not_found(format!("no {kind} {key:?}")))?;
        Ok(Response::new(proto::GetResponse {
            generation: state.generation,
            object: Some(object.to_proto()),
        }))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let kinds = convert::list_kinds(request.get_ref()).map_err(invalid)?;
        let state = self.store.snapshot();
        Ok(Response::new(proto::ListResponse {
            generation: state.generation,
            objects: Some(ObjectSet::from_config(&state.config, &kinds).to_proto()),
        }))
    }

    async fn dump_tables(
        &self,
        _request: Request<proto::DumpTablesRequest>,
    ) -> Result<Response<proto::DumpTablesResponse>, Status> {
        let tables = self.store.tables().current();
        Ok(Response::new(convert::dump_tables(&tables)))
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::GetStatusResponse>, Status> {
        let state = self.store.snapshot();
        Ok(Response::new(proto::GetStatusResponse {
            node: state.config.node.name.clone(),
            generation: self.store.tables().current().generation(),
            desired_generation: state.generation,
            workers: self.counters.len() as u32,
            ports: self
                .ports
                .snapshot()
                .iter()
                .map(|p| convert::bound_port(&PortRow::from(p)))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn get_counters(
        &self,
        _request: Request<proto::GetCountersRequest>,
    ) -> Result<Response<proto::GetCountersResponse>, Status> {
        let tables = self.store.tables().current();
        let ports = self.ports.snapshot();
        Ok(Response::new(proto::GetCountersResponse {
            node: self.store.snapshot().config.node.name.clone(),
            generation: tables.generation(),
            routes: tables.route_count() as u64,
            workers: worker_counters(&self.counters, &ports)
                .iter()
                .enumerate()
                .map(|(i, c)| convert::worker_counters(i, c))
                .collect(),
            ports: ports
                .iter()
                .map(|p| convert::bound_port(&PortRow::from(p)))
                .collect(),
        }))
    }

    async fn get_chain_stats(
        &self,
        _request: Request<proto::GetChainStatsRequest>,
    ) -> Result<Response<proto::GetChainStatsResponse>, Status> {
        let merged = SharedChainStats::merged(&self.chain_stats);
        let state = self.store.snapshot();
        let order: Vec<String> = state.config.chains.iter().map(|c| c.name.clone()).collect();
        // Chains of the current desired state only (a worker that has not
        // been idle since a chain was removed may still report it), each
        // one listed even before any worker has counted for it.
        let mut chains = convert::chain_counters(&merged, &order);
        chains.retain(|c| order.contains(&c.name));
        for (i, chain) in state.config.chains.iter().enumerate() {
            if !chains.iter().any(|c| c.name == chain.name) {
                chains.insert(
                    i.min(chains.len()),
                    convert::chain_counters(
                        &[kxdp_vnf_chains::ChainStats {
                            chain: chain.name.clone(),
                            counters: Default::default(),
                            stages: chain
                                .functions
                                .iter()
                                .map(|f| {
                                    (kxdp_vnf_chains::chain::function_kind(f), Default::default())
                                })
                                .collect(),
                        }],
                        &order,
                    )
                    .remove(0),
                );
            }
        }
        Ok(Response::new(proto::GetChainStatsResponse {
            generation: self.store.chains().current().generation(),
            chains,
        }))
    }

    type TraceStream = crate::trace::TraceStream;

    async fn trace(
        &self,
        request: Request<proto::TraceRequest>,
    ) -> Result<Response<Self::TraceStream>, Status> {
        crate::trace::serve(
            self.trace.as_ref(),
            &self.ports.snapshot(),
            request.get_ref(),
            self.streams_stop.subscribe(),
        )
        .map(Response::new)
    }

    type WatchCountersStream = CounterStream;

    async fn watch_counters(
        &self,
        request: Request<proto::WatchCountersRequest>,
    ) -> Result<Response<Self::WatchCountersStream>, Status> {
        let request = request.get_ref();
        let interval = match request.interval_ms {
            0 => DEFAULT_COUNTER_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if !(MIN_COUNTER_INTERVAL..=MAX_COUNTER_INTERVAL).contains(&interval) {
            return Err(invalid(FieldError::new(
                "interval_ms",
                format!(
                    "{} is outside {}..={}",
                    request.interval_ms,
                    MIN_COUNTER_INTERVAL.as_millis(),
                    MAX_COUNTER_INTERVAL.as_millis()
                ),
            )));
        }
        let max_samples = request.max_samples;
        let (tx, rx) = mpsc::channel(4);
        let api = self.clone();
        let mut stop = self.streams_stop.subscribe();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sent = 0u64;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = tx.closed() => break,
                }
                if tx.send(Ok(api.sample())).await.is_err() {
                    break;
                }
                sent += 1;
                if max_samples != 0 && sent >= max_samples {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kxdp_config::NodeConfig;
    use kxdp_dataplane::tables::{TableHandle, Tables};
    use kxdp_dataplane::DropReason;
    use kxdp_vnf_chains::{ChainCounters, ChainStats, StageCounters};

    const CONFIG: &str = "node: {name: n1, vtep: {ip: 192.168.0.1, interface: ul0}, pod_cidrs: [{tenant: blue, cidr: 10.1.1.0/24}]}\n\
        interfaces: [{name: ul0, role: underlay, mac: '02:00:00:00:00:01'}]\n\
        tenants: [{name: blue, vni: 100}]\n\
        chains:\n\
        - {name: web, tenant: blue, functions: [{type: policy}, {type: counter}]}\n\
        - {name: quiet, tenant: blue, functions: [{type: counter}]}\n";

    fn worker_stats(packets: u64, denied: u64) -> Vec<ChainStats> {
        let mut counters = ChainCounters {
            packets,
            bytes: packets * 100,
            passed: packets - denied,
            dropped: denied,
            ..ChainCounters::default()
        };
        counters.drops[DropReason::PolicyDenied
            .chain_index()
            .expect("a chain reason")] = denied;
        let policy = StageCounters {
            packets,
            bytes: packets * 100,
            passed: packets - denied,
            dropped: denied,
            ..StageCounters::default()
        };
        let counter = StageCounters {
            packets: packets - denied,
            passed: packets - denied,
            ..StageCounters::default()
        };
        vec![ChainStats {
            chain: "web".into(),
            counters,
            stages: vec![("policy", policy), ("counter", counter)],
        }]
    }

    #[tokio::test]
    async fn chain_stats_sum_the_workers_and_a_chain_that_does_not_compile_is_refused() {
        let config = NodeConfig::from_yaml_str(CONFIG).unwrap();
        let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
        let store = Arc::new(DesiredStateStore::new(config, tables.clone()));
        let workers = [
            Arc::new(SharedChainStats::default()),
            Arc::new(SharedChainStats::default()),
        ];
        workers[0].publish(worker_stats(10, 2), 1);
        workers[1].publish(worker_stats(5, 1), 1);
        let api =
            DataplaneApi::new(store, Vec::new(), Vec::new()).with_chain_stats(workers.to_vec());
        let stats = api
            .get_chain_stats(Request::new(proto::GetChainStatsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = stats.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web", "quiet"], "every chain, in the desired order");
        let web = &stats.chains[0];
        assert_eq!((web.packets, web.dropped, web.passed), (15, 3, 12));
        assert_eq!(web.drops["policy_denied"], 3);
        assert_eq!(web.drops.len(), DropReason::CHAIN.len());
        assert_eq!(web.stages[0].kind, "policy");
        assert_eq!((web.stages[0].dropped, web.stages[1].packets), (3, 12));
        let quiet = &stats.chains[1];
        assert_eq!(quiet.packets, 0);
        assert_eq!(quiet.stages.len(), 1);
        assert_eq!(quiet.stages[0].kind, "counter");

        // A load balancer of a service that does not exist: refused whole,
        // the field named, nothing published.
        let generation = tables.current().generation();
        let chains_generation = stats.generation;
        let broken: kxdp_config::ChainSpec = serde_yaml::from_str(
            "{name: lb, tenant: blue, functions: [{type: load_balancer, services: [default/nope]}]}",
        )
        .unwrap();
        let change = ChangeSet::upsert(ObjectSet {
            chains: vec![broken],
            ..ObjectSet::default()
        });
        let status = api
            .apply(Request::new(change.to_proto()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("upserts.chains[0].functions[0]"),
            "{}",
            status.message()
        );
        assert_eq!(tables.current().generation(), generation);
        let after = api
            .get_chain_stats(Request::new(proto::GetChainStatsRequest {}))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(after.generation, chains_generation);
        assert_eq!(after.chains.len(), 2);
    }
}
