//! The OpenMetrics endpoint of a running `kxdp run`: `/metrics` (the
//! OpenMetrics text format, `application/openmetrics-text`), `/healthz`
//! (the process answers) and `/readyz` (workers running, XDP attached to
//! every interface, tables published).
//!
//! Nothing is pushed from the hot path: a scrape reads the workers'
//! [`SharedCounters`] (relaxed atomic loads), the sockets' `XDP_STATISTICS`
//! (one getsockopt per socket), the current table snapshot and the desired
//! state, and encodes them on the spot (prometheus-client's collector
//! pattern). The server runs on its own thread with a single-threaded tokio
//! runtime, kept off the workers' cores like the API thread.
//!
//! Off unless `control.metrics_address` (or `kxdp run --metrics ADDR`) is
//! set. The endpoint is plain HTTP and read-only.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use kxdp_dataplane::counters::{Counters, SharedCounters};
use kxdp_dataplane::tables::TableHandle;
use kxdp_dataplane::DropReason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use crate::api::DesiredStateStore;
use kxdp_node::readiness::Readiness;
use kxdp_node::runtime::SharedPorts;
use kxdp_node::stats::{worker_counters, KernelDrops, PortRow};

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a stopping server waits for scrapes in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Where a scrape reads from.
#[derive(Clone, Debug)]
pub struct MetricsSource {
    /// The node's name (a label of `kxdp_node_info`).
    pub node: String,
    /// Per-worker counters, by worker index.
    pub counters: Vec<Arc<SharedCounters>>,
    /// The bound ports (their sockets' `XDP_STATISTICS`).
    pub ports: SharedPorts,
    /// The tables the workers use.
    pub tables: TableHandle,
    /// The desired state (object counts by kind), when the API runs.
    pub store: Option<Arc<DesiredStateStore>>,
    /// What `/readyz` checks; always ready when absent.
    pub readiness: Option<Readiness>,
}

/// The collector: encodes a [`MetricsSource`] at each scrape.
#[derive(Debug)]
struct NodeCollector {
    source: Arc<MetricsSource>,
}

/// One `(label, value)` pair per label of a sample.
type Labels<'a> = Vec<(&'static str, std::borrow::Cow<'a, str>)>;

/// A family being encoded: its samples are added one label set at a time.
struct Family<'e> {
    encoder: prometheus_client::encoding::MetricEncoder<'e>,
}

impl Family<'_> {
    fn counter(&mut self, labels: &Labels<'_>, value: u64) -> Result<(), std::fmt::Error> {
        ConstCounter::new(value).encode(self.encoder.encode_family(labels)?)
    }

    fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        labels: &Labels<'_>,
        value: V,
    ) -> Result<(), std::fmt::Error> {
        ConstGauge::new(value).encode(self.encoder.encode_family(labels)?)
    }
}

fn family<'e>(
    encoder: &'e mut DescriptorEncoder<'_>,
    name: &'e str,
    help: &str,
    kind: MetricType,
) -> Result<Family<'e>, std::fmt::Error> {
    Ok(Family {
        encoder: encoder.encode_descriptor(name, help, None, kind)?,
    })
}

/// A per-worker counter: name, help, and how to read it.
type WorkerCounter = (&'static str, &'static str, fn(&Counters) -> u64);

const WORKER_COUNTERS: &[WorkerCounter] = &[
    (
        "kxdp_worker_rx_packets",
        "Frames received from the worker's AF_XDP sockets.",
        |c| c.rx_packets,
    ),
    (
        "kxdp_worker_rx_bytes",
        "Bytes received from the worker's AF_XDP sockets.",
        |c| c.rx_bytes,
    ),
    (
        "kxdp_worker_tx_packets",
        "Frames the worker put on a tx ring.",
        |c| c.tx_packets,
    ),
    (
        "kxdp_worker_tx_bytes",
        "Bytes the worker put on a tx ring.",
        |c| c.tx_bytes,
    ),
    (
        "kxdp_worker_neighbour_replies",
        "ARP and neighbour solicitations answered for the gateway.",
        |c| c.neighbour_replies,
    ),
    (
        "kxdp_worker_icmp_time_exceeded",
        "ICMP time exceeded sent (TTL or hop limit ran out here).",
        |c| c.icmp_time_exceeded,
    ),
    (
        "kxdp_worker_icmp_unreachable",
        "ICMP destination unreachable sent.",
        |c| c.icmp_unreachable,
    ),
    (
        "kxdp_worker_icmp_too_big",
        "ICMP fragmentation needed / packet too big sent.",
        |c| c.icmp_too_big,
    ),
    (
        "kxdp_worker_icmp_rate_limited",
        "ICMP errors not sent: over the rate limit.",
        |c| c.icmp_rate_limited,
    ),
    (
        "kxdp_worker_encapsulated",
        "Frames encapsulated in VXLAN.",
        |c| c.encapsulated,
    ),
    (
        "kxdp_worker_decapsulated",
        "Frames decapsulated from VXLAN.",
        |c| c.decapsulated,
    ),
    (
        "kxdp_worker_busy_loops",
        "Loop iterations that moved at least one frame.",
        |c| c.busy_loops,
    ),
    (
        "kxdp_worker_sleeps",
        "Times the worker slept in poll().",
        |c| c.sleeps,
    ),
    (
        "kxdp_worker_slow_loops",
        "Loop iterations longer than 1 ms (a preempted worker counts too).",
        |c| c.slow_loops,
    ),
    (
        "kxdp_worker_port_rebinds",
        "Ports whose socket was bound again after their interface was re-created.",
        |c| c.port_rebinds,
    ),
    (
        "kxdp_worker_frame_accountings",
        "UMEM frame accountings done (when idle, at most once a second).",
        |c| c.accounting_checks,
    ),
    (
        "kxdp_worker_frame_accounting_failures",
        "UMEM frame accountings that did not balance.",
        |c| c.accounting_failures,
    ),
];

/// Kernel drop counters of a socket (`XDP_STATISTICS`), by `kind` label.
/// A kernel drop counter: its `kind` label and how to read it.
type KernelDropKind = (&'static str, fn(&KernelDrops) -> u64);

const KERNEL_DROP_KINDS: &[KernelDropKind] = &[
    ("rx_dropped", |k| k.rx_dropped),
    ("rx_ring_full", |k| k.rx_ring_full),
    ("rx_fill_ring_empty", |k| k.rx_fill_ring_empty),
    ("rx_invalid_descs", |k| k.rx_invalid_descs),
    ("tx_invalid_descs", |k| k.tx_invalid_descs),
];

fn worker_label(worker: usize) -> (&'static str, std::borrow::Cow<'static, str>) {
    ("worker", worker.to_string().into())
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let source = &self.source;
        let ports = source.ports.snapshot();
        let workers: Vec<Counters> = worker_counters(&source.counters, &ports);

        let mut info = family(
            &mut encoder,
            "kxdp_node_info",
            "The node this kxdp runs (value 1).",
            MetricType::Gauge,
        )?;
        info.gauge(
            &vec![
                ("node", source.node.as_str().into()),
                ("version", env!("CARGO_PKG_VERSION").into()),
            ],
            1i64,
        )?;

        let ready = source
            .readiness
            .as_ref()
            .is_none_or(|r| r.problems().is_empty());
        family(
            &mut encoder,
            "kxdp_ready",
            "1 when workers run, XDP is attached to every interface and tables are published (what /readyz answers).",
            MetricType::Gauge,
        )?
        .gauge(&Vec::new(), i64::from(ready))?;

        for (name, help, read) in WORKER_COUNTERS {
            let mut f = family(&mut encoder, name, help, MetricType::Counter)?;
            for (w, c) in workers.iter().enumerate() {
                f.counter(&vec![worker_label(w)], read(c))?;
            }
        }

        let mut drops = family(
            &mut encoder,
            "kxdp_worker_drops",
            "Frames the worker dropped, by reason (kxdp stats' drop labels).",
            MetricType::Counter,
        )?;
        for (w, c) in workers.iter().enumerate() {
            for reason in DropReason::ALL {
                drops.counter(
                    &vec![worker_label(w), ("reason", reason.label().into())],
                    c.drops_for(*reason),
                )?;
            }
        }

        let mut longest = family(
            &mut encoder,
            "kxdp_worker_longest_loop_seconds",
            "The longest worker loop iteration since start (wall time, without the sleep in poll()).",
            MetricType::Gauge,
        )?;
        for (w, c) in workers.iter().enumerate() {
            longest.gauge(&vec![worker_label(w)], c.max_loop_ns as f64 / 1e9)?;
        }

        let mut frames = family(
            &mut encoder,
            "kxdp_worker_umem_frames",
            "Where the worker's UMEM frames were at its last accounting: free list, fill rings (and the kernel's rx path), tx rings (until completed), stranded by a replaced socket; state=all is the UMEM's size.",
            MetricType::Gauge,
        )?;
        for (w, c) in workers.iter().enumerate() {
            for (state, value) in [
                ("all", c.frames_total),
                ("free", c.frames_free),
                ("fill", c.frames_in_fill),
                ("tx", c.frames_in_tx),
                ("stranded", c.frames_stranded),
            ] {
                frames.gauge(&vec![worker_label(w), ("state", state.into())], value)?;
            }
        }

        let rows: Vec<PortRow> = source.ports.snapshot().iter().map(PortRow::from).collect();
        let mut kernel = family(
            &mut encoder,
            "kxdp_socket_kernel_drops",
            "The kernel's drop counters of each AF_XDP socket (XDP_STATISTICS): frames kxdp's own counters cannot see.",
            MetricType::Counter,
        )?;
        for row in &rows {
            let Some(k) = row.kernel else { continue };
            for (kind, read) in KERNEL_DROP_KINDS {
                kernel.counter(
                    &vec![
                        worker_label(row.worker),
                        ("interface", row.interface.as_str().into()),
                        ("queue", row.queue.to_string().into()),
                        ("kind", (*kind).into()),
                    ],
                    read(&k),
                )?;
            }
        }

        let tables = source.tables.current();
        family(
            &mut encoder,
            "kxdp_tables_generation",
            "The generation of the tables the workers use.",
            MetricType::Gauge,
        )?
        .gauge(&Vec::new(), tables.generation())?;
        let mut entries = family(
            &mut encoder,
            "kxdp_table_entries",
            "Entries of the tables the workers use.",
            MetricType::Gauge,
        )?;
        for (table, value) in [
            ("ports", tables.ports().len()),
            ("tenants", tables.tenants().len()),
            ("routes", tables.route_count()),
        ] {
            entries.gauge(&vec![("table", table.into())], value as u64)?;
        }

        if let Some(store) = &source.store {
            let state = store.snapshot();
            family(
                &mut encoder,
                "kxdp_desired_generation",
                "The generation of the desired state (the last apply).",
                MetricType::Gauge,
            )?
            .gauge(&Vec::new(), state.generation)?;
            let config = &state.config;
            let endpoints: usize = config.services.iter().map(|s| s.endpoints.len()).sum();
            let mut objects = family(
                &mut encoder,
                "kxdp_desired_objects",
                "Objects of the desired state, by kind.",
                MetricType::Gauge,
            )?;
            for (kind, value) in [
                ("tenants", config.tenants.len()),
                ("pods", config.pods.len()),
                ("remote_nodes", config.remote_nodes.len()),
                ("routes", config.routes.len()),
                ("services", config.services.len()),
                ("endpoints", endpoints),
                ("policies", config.policies.len()),
                ("chains", config.chains.len()),
                ("namespaces", config.namespaces.len()),
            ] {
                objects.gauge(&vec![("kind", kind.into())], value as u64)?;
            }
        }
        Ok(())
    }
}

/// The registry of one node: a single collector over `source`.
pub fn registry(source: MetricsSource) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector {
        source: Arc::new(source),
    }));
    registry
}

/// The OpenMetrics text of `registry`, ending with `# EOF`.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

struct ServerState {
    registry: Registry,
    readiness: Option<Readiness>,
}

async fn metrics(State(state): State<Arc<ServerState>>) -> axum::response::Response {
    match render(&state.registry) {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<ServerState>>) -> (StatusCode, String) {
    let problems = state
        .readiness
        .as_ref()
        .map(Readiness::problems)
        .unwrap_or_default();
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// control.metrics_address: binding {addr}
    #[error("control.metrics_address: binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why it could not be bound.
        #[source]
        source: std::io::Error,
    },
    /// control.metrics_address: setting up the listener on {addr}
    /// (non-blocking mode, the port the kernel chose)
    #[error("control.metrics_address: setting up the listener on {addr}")]
    Listener {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// building the metrics' tokio runtime
    #[error("building the metrics' tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// registering the listener (with the metrics' runtime)
    #[error("registering the listener")]
    Register(#[source] std::io::Error),
    /// spawning the metrics thread
    #[error("spawning the metrics thread")]
    Spawn(#[source] std::io::Error),
    /// the metrics endpoint did not start within 10 s
    #[error("the metrics endpoint did not start within 10 s")]
    StartTimeout,
}

/// The running HTTP endpoint; stops on drop.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listen on `addr` and serve `/metrics`, `/healthz` and `/readyz` over
    /// `source` from a thread of its own, kept off `avoid_cores`.
    pub fn start(
        addr: SocketAddr,
        source: MetricsSource,
        avoid_cores: &[usize],
    ) -> Result<MetricsServer, MetricsError> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let listener_error = |source: std::io::Error| MetricsError::Listener { addr, source };
        listener.set_nonblocking(true).map_err(listener_error)?;
        let addr = listener.local_addr().map_err(listener_error)?;
        let state = Arc::new(ServerState {
            readiness: source.readiness.clone(),
            registry: registry(source),
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(state);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), MetricsError>>();
        let avoid = avoid_cores.to_vec();
        let thread = std::thread::Builder::new()
            .name("kxdp-metrics".to_string())
            .spawn(move || {
                kxdp_node::threads::avoid_cores(&avoid, "metrics");
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(MetricsError::Runtime(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(MetricsError::Register(e)));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    });
                    if let Err(e) = served.await {
                        tracing::warn!(error = %e, "the metrics endpoint failed");
                    }
                });
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })
            .map_err(MetricsError::Spawn)?;
        let mut server = MetricsServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => {
                server.stop();
                Err(e)
            }
            Err(_) => {
                server.stop();
                Err(MetricsError::StartTimeout)
            }
        }
    }

    /// The address it listens on (the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and wait for the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use kxdp_config::NodeConfig;
    use kxdp_dataplane::tables::Tables;
    use kxdp_node::readiness::RunningWorker;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Mutex;

    const NODE: &str = include_str!("../../config/examples/two-node/node1.yaml");

    /// One sample of a parsed exposition.
    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A parsed OpenMetrics text exposition.
    #[derive(Debug, Default)]
    struct Exposition {
        help: BTreeMap<String, String>,
        kind: BTreeMap<String, String>,
        samples: Vec<Sample>,
    }

    impl Exposition {
        fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            self.samples
                .iter()
                .find(|s| {
                    s.name == name
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| s.value)
        }
    }

    /// Parse the text format strictly: HELP and TYPE before a family's
    /// samples, every sample of a declared family, `# EOF` last.
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let lines: Vec<&str> = text.lines().collect();
        match lines.last() {
            Some(&"# EOF") => {}
            other => return Err(format!("last line is {other:?}, not # EOF")),
        }
        if !text.ends_with("# EOF\n") {
            return Err("no newline after # EOF".into());
        }
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or(format!("bad HELP {line}"))?;
                out.help.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE {line}"))?;
                if !out.help.contains_key(name) {
                    return Err(format!("TYPE before HELP for {name}"));
                }
                out.kind.insert(name.to_string(), kind.to_string());
            } else if line.starts_with('#') {
                return Err(format!("unexpected comment {line}"));
            } else {
                let (series, value) = line.rsplit_once(' ').ok_or(format!("bad sample {line}"))?;
                let value: f64 = value.parse().map_err(|e| format!("{line}: {e}"))?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => {
                        let body = rest.strip_suffix('}').ok_or(format!("bad labels {line}"))?;
                        let mut labels = BTreeMap::new();
                        for pair in body.split(',') {
                            let (k, v) = pair.split_once('=').ok_or(format!("bad label {pair}"))?;
                            let v = v
                                .strip_prefix('"')
                                .and_then(|v| v.strip_suffix('"'))
                                .ok_or(format!("unquoted label value {pair}"))?;
                            labels.insert(k.to_string(), v.to_string());
                        }
                        (name.to_string(), labels)
                    }
                    None => (series.to_string(), BTreeMap::new()),
                };
                let family = name.strip_suffix("_total").unwrap_or(&name);
                let kind = out
                    .kind
                    .get(family)
                    .or_else(|| out.kind.get(&name))
                    .ok_or(format!("sample {name} of no declared family"))?;
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter sample {name} without _total"));
                }
                out.samples.push(Sample {
                    name,
                    labels,
                    value,
                });
            }
        }
        Ok(out)
    }

    fn source(workers: usize) -> (MetricsSource, Vec<Arc<SharedCounters>>) {
        let config = NodeConfig::from_yaml_str(NODE).expect("example config");
        let tables = TableHandle::new(Tables::compile(&config, 1).expect("compiles"));
        let store = Arc::new(DesiredStateStore::new(config.clone(), tables.clone()));
        let counters: Vec<Arc<SharedCounters>> = (0..workers)
            .map(|_| Arc::new(SharedCounters::default()))
            .collect();
        let source = MetricsSource {
            node: config.node.name.clone(),
            counters: counters.clone(),
            ports: Default::default(),
            tables,
            store: Some(store),
            readiness: None,
        };
        (source, counters)
    }

    #[test]
    fn the_registry_renders_openmetrics_that_parses_back_with_the_counters() {
        let (source, counters) = source(2);
        let config = NodeConfig::from_yaml_str(NODE).expect("example config");
        let registry = registry(source);

        let mut c = Counters {
            rx_packets: 1000,
            rx_bytes: 64_000,
            tx_packets: 990,
            max_loop_ns: 2_500_000,
            frames_total: 4096,
            frames_free: 2048,
            frames_in_fill: 2000,
            frames_in_tx: 48,
            port_rebinds: 3,
            ..Counters::default()
        };
        c.drop_n(DropReason::SourceSpoofed, 7);
        c.drop_n(DropReason::NoRoute, 3);
        counters[1].publish(&c);

        let text = render(&registry).expect("renders");
        let e = parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));

        for (name, kind) in [
            ("kxdp_worker_rx_packets", "counter"),
            ("kxdp_worker_drops", "counter"),
            ("kxdp_worker_umem_frames", "gauge"),
            ("kxdp_worker_longest_loop_seconds", "gauge"),
            ("kxdp_worker_port_rebinds", "counter"),
            ("kxdp_tables_generation", "gauge"),
            ("kxdp_table_entries", "gauge"),
            ("kxdp_desired_objects", "gauge"),
            ("kxdp_ready", "gauge"),
        ] {
            assert_eq!(e.kind.get(name).map(String::as_str), Some(kind), "{name}");
            assert!(!e.help[name].is_empty(), "{name} has no help");
        }
        let w1 = [("worker", "1")];
        assert_eq!(e.value("kxdp_worker_rx_packets_total", &w1), Some(1000.0));
        assert_eq!(e.value("kxdp_worker_rx_bytes_total", &w1), Some(64_000.0));
        assert_eq!(e.value("kxdp_worker_tx_packets_total", &w1), Some(990.0));
        assert_eq!(
            e.value("kxdp_worker_rx_packets_total", &[("worker", "0")]),
            Some(0.0)
        );
        assert_eq!(e.value("kxdp_worker_port_rebinds_total", &w1), Some(3.0));
        assert_eq!(
            e.value(
                "kxdp_worker_drops_total",
                &[("worker", "1"), ("reason", "source_spoofed")]
            ),
            Some(7.0)
        );
        assert_eq!(
            e.value(
                "kxdp_worker_drops_total",
                &[("worker", "1"), ("reason", "no_route")]
            ),
            Some(3.0)
        );
        // Every reason of every worker is there from the start.
        let drop_series = e
            .samples
            .iter()
            .filter(|s| s.name == "kxdp_worker_drops_total")
            .count();
        assert_eq!(drop_series, 2 * DropReason::COUNT);
        assert_eq!(
            e.value("kxdp_worker_longest_loop_seconds", &w1),
            Some(0.0025)
        );
        assert_eq!(
            e.value(
                "kxdp_worker_umem_frames",
                &[("worker", "1"), ("state", "free")]
            ),
            Some(2048.0)
        );
        assert_eq!(
            e.value(
                "kxdp_worker_umem_frames",
                &[("worker", "1"), ("state", "all")]
            ),
            Some(4096.0)
        );
        assert_eq!(e.value("kxdp_tables_generation", &[]), Some(1.0));
        assert_eq!(
            e.value("kxdp_desired_objects", &[("kind", "pods")]),
            Some(config.pods.len() as f64)
        );
        assert_eq!(
            e.value("kxdp_desired_objects", &[("kind", "remote_nodes")]),
            Some(config.remote_nodes.len() as f64)
        );
        assert!(
            e.value("kxdp_table_entries", &[("table", "routes")])
                .unwrap()
                > 0.0
        );
        assert_eq!(e.value("kxdp_ready", &[]), Some(1.0));
        assert_eq!(
            e.value("kxdp_node_info", &[("node", config.node.name.as_str())]),
            Some(1.0)
        );

        // Scrape time reads: the next render sees new values.
        c.rx_packets = 1500;
        counters[1].publish(&c);
        let again = parse(&render(&registry).unwrap()).unwrap();
        assert_eq!(
            again.value("kxdp_worker_rx_packets_total", &w1),
            Some(1500.0)
        );
    }

    #[test]
    fn the_parser_refuses_what_is_not_openmetrics() {
        assert!(parse("# HELP a b\n# TYPE a counter\na_total 1\n").is_err());
        assert!(parse("a 1\n# EOF\n").is_err());
        assert!(parse("# HELP a b\n# TYPE a counter\na 1\n# EOF\n").is_err());
        assert!(parse("# HELP a b\n# TYPE a counter\na_total 1\n# EOF\n").is_ok());
    }

    #[test]
    fn readiness_names_what_is_missing() {
        let (source, _) = source(1);
        let readiness = Readiness {
            running_workers: Arc::new(AtomicUsize::new(0)),
            workers: 1,
            attachments: Arc::new(Mutex::new(Vec::new())),
            interfaces: Vec::new(),
            tables: source.tables.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        assert_eq!(readiness.problems(), ["0 of 1 workers running"]);
        let guard = RunningWorker::enter(Arc::clone(&readiness.running_workers));
        assert!(readiness.problems().is_empty());
        drop(guard);
        assert_eq!(readiness.problems().len(), 1);
        let gone = Readiness {
            interfaces: vec!["kc-no-such-if".to_string()],
            ..readiness.clone()
        };
        let guard = RunningWorker::enter(Arc::clone(&gone.running_workers));
        assert_eq!(
            gone.problems(),
            [
                "XDP attached to 0 of 1 interfaces",
                "interface kc-no-such-if is gone"
            ]
        );
        drop(guard);
        let mut source = source;
        source.readiness = Some(readiness);
        let text = render(&registry(source)).unwrap();
        assert_eq!(parse(&text).unwrap().value("kxdp_ready", &[]), Some(0.0));
    }

    #[test]
    fn the_endpoint_serves_metrics_health_and_readiness_over_http() {
        let (mut source, counters) = source(1);
        let readiness = Readiness {
            running_workers: Arc::new(AtomicUsize::new(0)),
            workers: 1,
            attachments: Arc::new(Mutex::new(Vec::new())),
            interfaces: Vec::new(),
            tables: source.tables.clone(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        source.readiness = Some(readiness.clone());
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), source, &[]).unwrap();
        let addr = server.local_addr();
        counters[0].publish(&Counters {
            rx_packets: 42,
            ..Counters::default()
        });
        let (status, headers, body) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{headers}"
        );
        let e = parse(&body).unwrap();
        assert_eq!(
            e.value("kxdp_worker_rx_packets_total", &[("worker", "0")]),
            Some(42.0)
        );
        assert_eq!(http_get(addr, "/healthz").0, 200);
        let (status, _, body) = http_get(addr, "/readyz");
        assert_eq!(status, 503);
        assert!(body.contains("0 of 1 workers running"), "{body}");
        let _running = RunningWorker::enter(Arc::clone(&readiness.running_workers));
        assert_eq!(http_get(addr, "/readyz").0, 200);
        assert_eq!(http_get(addr, "/nothing").0, 404);
        // Stops and joins its thread (another test may bind the port next,
        // so the port itself proves nothing).
        server.shutdown();
    }

    /// A minimal HTTP/1.1 GET: (status, headers, body).
    fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        (status, head.to_string(), body.to_string())
    }

    #[test]
    fn a_bad_metrics_address_is_refused_naming_the_field() {
        let yaml = NODE.replace(
            "control:",
            "control:\n  metrics_address: \"not an address\"",
        );
        assert!(
            yaml.contains("metrics_address"),
            "the example has no control section"
        );
        let err = NodeConfig::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(err.contains("control.metrics_address"), "{err}");
        let yaml = NODE.replace("control:", "control:\n  metrics_address: 127.0.0.1:9464");
        let config = NodeConfig::from_yaml_str(&yaml).unwrap();
        assert_eq!(
            config.control.metrics_address,
            Some("127.0.0.1:9464".parse().unwrap())
        );
    }
}
