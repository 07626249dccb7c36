//! The `kxdp` command line: run, check, stats, demo, bench, and the API
//! client commands get, apply, delete and dump.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnetwork::IpNetwork;
use kxdp_config::{NodeConfig, PortRange};
use kxdp_control::api::{
    self, render, ApiServer, ApiServerOptions, ApiTarget, BlockingClient, ChangeSet, DataplaneApi,
    DesiredStateStore, KeySet, ObjectKind, ObjectSet,
};
use kxdp_control::stats;
use kxdp_node::runtime::NodeRuntime;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "kxdp",
    version,
    about = "A userspace AF_XDP dataplane for Kubernetes nodes"
)]
pub struct Cli {
    #[command(subcommand)]
    /// The command.
    command: Command,
}

/// A command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node's dataplane.
    Run {
        /// The node configuration (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Serve OpenMetrics on ADDRESS:PORT (`/metrics`, `/healthz`,
        /// `/readyz`); overrides `control.metrics_address`.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// The cluster's address plan; overrides the configuration's `cluster`.
        #[command(flatten)]
        plan: AddressPlanArgs,
        /// With --kubeconfig or --in-cluster, the Kubernetes agent programs
        /// it too (as `kxdp agent`).
        #[command(flatten)]
        cluster: kxdp_control::k8s::ClusterArgs,
    },
    /// Check a configuration file and print it back, followed by advice
    /// on the host settings kxdp depends on (as YAML comments).
    Check {
        /// The node configuration (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Build a two-node testbed, run kxdp on both nodes, send traffic
    /// between their pods, print a latency table, and remove everything.
    Demo {
        /// Exchanges per pair and protocol.
        #[arg(long, default_value_t = 200)]
        count: u64,
    },
    /// Run the benchmarks (the `kxdp-bench` binary next to this one).
    Bench {
        /// Arguments for kxdp-bench.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print per-worker counters and drops by reason of a running instance
    /// (read over its gRPC API).
    Stats {
        /// Node name (its API socket /run/kxdp/NODE.api.sock).
        #[arg(long, conflicts_with_all = ["socket", "config"])]
        node: Option<String>,
        /// The node's `control.socket` path: its API socket is the one
        /// beside it (`.api.sock` for `.sock`).
        #[arg(long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// The node's configuration (its API socket).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The node's API socket (the counters are read over the gRPC API).
        #[arg(long)]
        api_socket: Option<PathBuf>,
        /// Keep printing, from the API's counter stream, with rates.
        #[arg(long, short)]
        watch: bool,
        /// Milliseconds between samples with --watch.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many samples with --watch.
        #[arg(long)]
        count: Option<u64>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// List the desired state of one kind (pods, nodes, routes, services,
    /// policies, chains, tenants, namespaces), or some objects by key.
    Get {
        /// The kind.
        kind: String,
        /// Keys (names; namespace/name for services and policies;
        /// tenant/prefix for routes); all objects when none.
        keys: Vec<String>,
        /// Where the API is.
        #[command(flatten)]
        api: ApiArgs,
        /// Output format (json and yaml apply back with `kxdp apply -f`).
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Apply the objects of a YAML file (the configuration's format):
    /// replace each kind it lists, or upsert its objects with --delta.
    Apply {
        /// The file.
        #[arg(long = "filename", short = 'f')]
        file: PathBuf,
        /// Upsert the file's objects by key instead of replacing their kinds.
        #[arg(long)]
        delta: bool,
        /// Where the API is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete objects of one kind by key (absent keys are no error).
    Delete {
        /// The kind.
        kind: String,
        /// Keys.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Where the API is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Capture the frames that pass a point of the running workers into a
    /// pcapng file (each with a comment: point, drop reason, worker, port).
    Trace {
        /// Where: rx (as received), tx (as sent to a port), drop (dropped,
        /// with the reason).
        #[arg(long, value_enum)]
        at: TraceAt,
        /// A filter: terms joined by `and` (tcp, udp, icmp, icmp6, arp, ip,
        /// ip6, vxlan, [src|dst] host ADDR, [src|dst] net PREFIX,
        /// [src|dst] port N, reason LABEL); every frame when absent.
        #[arg(long = "match", value_name = "EXPR", default_value = "")]
        filter: String,
        /// Stop after this many frames (or on Ctrl-C).
        #[arg(long, default_value_t = 100)]
        count: u64,
        /// The pcapng file to write.
        #[arg(short = 'w', value_name = "FILE.pcapng")]
        file: PathBuf,
        /// Where the API is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run one node's dataplane programmed by the Kubernetes agent: `run`
    /// plus watchers on the API server (as the DaemonSet does).
    Agent {
        /// The node's own configuration (YAML): interfaces, VTEP, workers,
        /// tenants; the agent fills in the rest from Kubernetes.
        #[arg(long, short)]
        config: PathBuf,
        /// Serve OpenMetrics on ADDRESS:PORT (`/metrics`, `/healthz`, `/readyz`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// The cluster's address plan; overrides the configuration's `cluster`.
        #[command(flatten)]
        plan: AddressPlanArgs,
        /// Where the API server is.
        #[command(flatten)]
        cluster: kxdp_control::k8s::ClusterArgs,
    },
    /// Print the ServiceChain CustomResourceDefinition (config/deploy/crd.yaml).
    Crd,
    /// Print the tables the workers use (for drift checks against `get`).
    Dump {
        /// Where the API is.
        #[command(flatten)]
        api: ApiArgs,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// The cluster's address plan on the command line, the way kube-proxy and
/// the CNI plugin take it: each flag given replaces the configuration's
/// `cluster` value (the file's stays where a flag is absent), before the
/// configuration is validated.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPlanArgs {
    /// A pod CIDR of the whole cluster (kube-proxy's --cluster-cidr);
    /// repeat it, or separate with commas, for several (one per family).
    /// Replaces `cluster.pod_cidrs`.
    #[arg(
        long = "cluster-cidr",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub pod_cidrs: Vec<IpNetwork>,
    /// A Service CIDR (the API server's --service-cluster-ip-range); repeat
    /// it, or separate with commas, for several. Replaces
    /// `cluster.service_cidrs`.
    #[arg(
        long = "service-cidr",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub service_cidrs: Vec<IpNetwork>,
    /// The NodePort range, inclusive (the API server's
    /// --service-node-port-range), e.g. 30000-32767. Replaces
    /// `cluster.node_port_range`.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_port_range)]
    pub node_port_range: Option<PortRange>,
}

impl AddressPlanArgs {
    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        *self == AddressPlanArgs::default()
    }

    /// Replace the values of `config.cluster` that a flag gives.
    pub fn apply_to(&self, config: &mut NodeConfig) {
        if !self.pod_cidrs.is_empty() {
            config.cluster.pod_cidrs = self.pod_cidrs.clone();
        }
        if !self.service_cidrs.is_empty() {
            config.cluster.service_cidrs = self.service_cidrs.clone();
        }
        if let Some(range) = self.node_port_range {
            config.cluster.node_port_range = range;
        }
    }
}

/// A prefix without host bits (`10.244.0.0/16`, `fd00:10:244::/56`).
fn parse_cidr(text: &str) -> Result<IpNetwork, String> {
    let cidr = text
        .trim()
        .parse::<IpNetwork>()
        .map_err(|e| format!("not a CIDR: {e}"))?;
    if cidr.network() != cidr.ip() {
        return Err(format!(
            "{cidr} has host bits set; the prefix is {}/{}",
            cidr.network(),
            cidr.prefix()
        ));
    }
    Ok(cidr)
}

/// `FIRST-LAST`, inclusive, `1 <= FIRST <= LAST <= 65535`.
fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let (first, last) = text
        .trim()
        .split_once('-')
        .ok_or_else(|| "not FIRST-LAST (e.g. 30000-32767)".to_string())?;
    let port = |what: &str, text: &str| {
        text.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{what} {text:?} is not a port (1-65535)"))
    };
    let range = PortRange {
        first: port("FIRST", first)?,
        last: port("LAST", last)?,
    };
    if range.first > range.last {
        return Err(format!(
            "FIRST {} is above LAST {}",
            range.first, range.last
        ));
    }
    Ok(range)
}

/// Where `kxdp trace` captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceAt {
    /// As received, before the pipeline.
    Rx,
    /// As sent to a port, before the tx ring.
    Tx,
    /// Dropped, with the reason.
    Drop,
}

fn trace(
    at: TraceAt,
    filter: String,
    count: u64,
    file: PathBuf,
    api: &ApiArgs,
) -> anyhow::Result<()> {
    let point = match at {
        TraceAt::Rx => kxdp_dataplane::trace::TracePoint::Rx,
        TraceAt::Tx => kxdp_dataplane::trace::TracePoint::Tx,
        TraceAt::Drop => kxdp_dataplane::trace::TracePoint::Drop,
    };
    let options = kxdp_control::trace_capture::TraceOptions {
        point,
        filter,
        count,
        file,
    };
    let summary = kxdp_control::trace_capture::run(&api.target()?, &options)?;
    eprintln!(
        "{} frames written to {}{}{}",
        summary.frames,
        options.file.display(),
        if summary.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        if summary.missed > 0 {
            format!(
                "; {} matching frames missed (read too slowly)",
                summary.missed
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// How a command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Where a node's API is: its socket, its configuration, its name, or a TCP
/// address with mutual TLS. The only API socket in /run/kxdp when none is
/// given.
#[derive(Args, Clone, Debug, Default)]
pub struct ApiArgs {
    /// The API's Unix socket.
    #[arg(long, conflicts_with_all = ["config", "node", "server"])]
    pub socket: Option<PathBuf>,
    /// The node's configuration (its API socket).
    #[arg(long, short, conflicts_with_all = ["node", "server"])]
    pub config: Option<PathBuf>,
    /// The node's name (/run/kxdp/NODE.api.sock).
    #[arg(long, conflicts_with = "server")]
    pub node: Option<String>,
    /// The API over TCP with mutual TLS: https://HOST:PORT.
    #[arg(long, requires_all = ["tls_ca", "tls_cert", "tls_key"])]
    pub server: Option<String>,
    /// The CA that signed the server's certificate (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// This client's certificate (PEM).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// This client's key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The name to check the server's certificate for (the URL's host unless set).
    #[arg(long)]
    pub tls_domain: Option<String>,
}

impl ApiArgs {
    /// The API these arguments name.
    pub fn target(&self) -> anyhow::Result<ApiTarget> {
        if let Some(socket) = &self.socket {
            return Ok(ApiTarget::Unix(socket.clone()));
        }
        if let Some(url) = &self.server {
            let need = |p: &Option<PathBuf>, flag: &str| {
                p.clone().with_context(|| format!("--server needs {flag}"))
            };
            return Ok(ApiTarget::Tls {
                url: url.clone(),
                ca: need(&self.tls_ca, "--tls-ca")?,
                cert: need(&self.tls_cert, "--tls-cert")?,
                key: need(&self.tls_key, "--tls-key")?,
                domain: self.tls_domain.clone(),
            });
        }
        if let Some(config) = &self.config {
            let config = NodeConfig::from_file(config)?;
            return Ok(ApiTarget::Unix(api::api_socket_path(&config)));
        }
        if let Some(node) = &self.node {
            return Ok(ApiTarget::Unix(PathBuf::from(format!(
                "/run/kxdp/{node}.api.sock"
            ))));
        }
        Ok(ApiTarget::Unix(only_api_socket()?))
    }

    fn connect(&self) -> anyhow::Result<BlockingClient> {
        Ok(BlockingClient::connect(&self.target()?)?)
    }
}

fn parse_kind(name: &str) -> anyhow::Result<ObjectKind> {
    ObjectKind::parse(name).with_context(|| {
        format!(
            "unknown kind {name:?}: use pods, nodes, routes, services, policies, chains, tenants or namespaces"
        )
    })
}

/// Print `objects` of `kind` in `output`.
fn print_objects(kind: ObjectKind, objects: &ObjectSet, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Table => print!("{}", render::objects(kind, objects)),
        Output::Json => println!("{}", serde_json::to_string_pretty(objects)?),
        Output::Yaml => print!("{}", serde_yaml::to_string(objects)?),
    }
    Ok(())
}

fn get(kind: &str, keys: &[String], api: &ApiArgs, output: Output) -> anyhow::Result<()> {
    let kind = parse_kind(kind)?;
    let mut client = api.connect()?;
    let objects = if keys.is_empty() {
        client.list(&[kind])?.1
    } else {
        let mut all = ObjectSet::default();
        for key in keys {
            let (_, one) = client.get(kind, key)?;
            merge_into(&mut all, one);
        }
        all
    };
    if kind == ObjectKind::Chain && output == Output::Table {
        // The table shows each chain's per-stage counters too (json and
        // yaml stay the desired state, to apply back).
        let stats = client.chain_stats()?;
        print!("{}", render::chains_with_counters(&objects, &stats));
        return Ok(());
    }
    print_objects(kind, &objects, output)
}

fn merge_into(all: &mut ObjectSet, one: ObjectSet) {
    all.tenants.extend(one.tenants);
    all.remote_nodes.extend(one.remote_nodes);
    all.pods.extend(one.pods);
    all.routes.extend(one.routes);
    all.services.extend(one.services);
    all.policies.extend(one.policies);
    all.chains.extend(one.chains);
    all.namespaces.extend(one.namespaces);
}

fn apply(file: &Path, delta: bool, api: &ApiArgs) -> anyhow::Result<()> {
    let yaml =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let read = api::file::change_from_yaml(&yaml, delta)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if !read.skipped.is_empty() {
        eprintln!(
            "note: {} fixed when kxdp starts; not applied: {}",
            if read.skipped.len() == 1 { "is" } else { "are" },
            read.skipped.join(", ")
        );
    }
    let outcome = api.connect()?.apply(&read.change)?;
    let kinds: Vec<String> = read
        .kinds
        .iter()
        .map(|k| format!("{} {k}", read.change.upserts.count(*k)))
        .collect();
    println!(
        "{} {}: generation {}{}",
        if delta { "upserted" } else { "replaced" },
        kinds.join(", "),
        outcome.generation,
        if outcome.changed { "" } else { " (unchanged)" }
    );
    Ok(())
}

fn delete(kind: &str, keys: &[String], api: &ApiArgs) -> anyhow::Result<()> {
    let kind = parse_kind(kind)?;
    let mut deletes = KeySet::default();
    deletes.of_mut(kind).extend(keys.iter().cloned());
    let outcome = api.connect()?.apply(&ChangeSet::delete(deletes))?;
    println!(
        "{} {} {kind}: generation {}{}",
        if outcome.changed {
            "deleted"
        } else {
            "asked to delete"
        },
        keys.len(),
        outcome.generation,
        if outcome.changed {
            ""
        } else {
            " (none was there)"
        }
    );
    Ok(())
}

fn dump(api: &ApiArgs, output: Output) -> anyhow::Result<()> {
    let tables = api.connect()?.dump_tables()?;
    match output {
        Output::Table => print!("{}", render::dump(&tables)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::dump_json(&tables))?
        ),
        Output::Yaml => print!("{}", serde_yaml::to_string(&render::dump_json(&tables))?),
    }
    Ok(())
}

/// `kxdp stats --watch`: the API's counter stream, printed as it comes.
fn watch_stats(
    target: &ApiTarget,
    interval: Duration,
    count: Option<u64>,
    output: Output,
) -> anyhow::Result<()> {
    let mut client = BlockingClient::connect(target)?;
    let mut previous: Option<api::proto::CounterSample> = None;
    client.watch_counters(interval, count.unwrap_or(0), |sample| {
        match output {
            Output::Table => {
                // The sample's wall-clock time, UTC (RFC 3339, milliseconds).
                let time = sample
                    .time
                    .as_ref()
                    .and_then(|t| {
                        let seconds = u64::try_from(t.seconds).ok()?;
                        let nanos = u32::try_from(t.nanos).ok()?;
                        std::time::UNIX_EPOCH
                            .checked_add(Duration::new(seconds, nanos))
                            .map(|at| humantime::format_rfc3339_millis(at).to_string())
                    })
                    .unwrap_or_default();
                println!("-- {time}");
                print!("{}", render::counter_sample(sample, previous.as_ref()));
            }
            Output::Json | Output::Yaml => {
                let workers: Vec<serde_json::Value> = sample
                    .workers
                    .iter()
                    .map(|w| {
                        serde_json::json!({
                            "worker": w.worker,
                            "rx_packets": w.rx_packets,
                            "rx_bytes": w.rx_bytes,
                            "tx_packets": w.tx_packets,
                            "tx_bytes": w.tx_bytes,
                            "passed": w.passed,
                            "neighbour_replies": w.neighbour_replies,
                            "encapsulated": w.encapsulated,
                            "decapsulated": w.decapsulated,
                            "busy_loops": w.busy_loops,
                            "sleeps": w.sleeps,
                            "busy_cycles": w.busy_cycles,
                            "drops": w.drops,
                        })
                    })
                    .collect();
                let value = serde_json::json!({
                    "time": sample.time.as_ref().map(|t| serde_json::json!({"seconds": t.seconds, "nanos": t.nanos})),
                    "generation": sample.generation,
                    "workers": workers,
                });
                if output == Output::Json {
                    println!("{value}");
                } else {
                    print!("---\n{}", serde_yaml::to_string(&value).unwrap_or_default());
                }
            }
        }
        previous = Some(sample.clone());
        true
    })?;
    Ok(())
}

/// Parse the command line and run the command.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            metrics,
            plan,
            cluster,
        } => {
            if cluster.kubeconfig.is_some() || cluster.in_cluster {
                kxdp_control::k8s::request_agent(cluster)?;
            }
            run(config, metrics, &plan)
        }
        Command::Demo { count } => {
            let exe = std::env::current_exe().context("finding the kxdp binary")?;
            // Interrupted (Ctrl-C, SIGTERM), the demo leaves nothing
            // behind: its nodes' kxdp processes and servers stop and its
            // namespaces go.
            kxdp_testbed::remove_on_signal("kxdp demo", || {})?;
            let rows = crate::demo::run(
                &exe,
                crate::demo::DemoOptions {
                    count,
                    ..Default::default()
                },
            );
            kxdp_testbed::hold_if_stopping();
            let rows = rows?;
            let lost: u64 = rows.iter().map(|r| r.sent - r.received).sum();
            if lost > 0 {
                eprintln!("note: {lost} exchanges got no reply");
            }
            Ok(())
        }
        Command::Bench { args } => {
            use std::os::unix::process::{CommandExt, ExitStatusExt};
            let exe = std::env::current_exe().context("finding the kxdp binary")?;
            let bench = exe.with_file_name("kxdp-bench");
            // In a process group of its own, so that a signal reaches it
            // once, from here: kxdp-bench removes its testbed on the first
            // and exits at once on a second (a terminal's Ctrl-C would
            // otherwise reach both processes, and this one forwards it).
            let mut child = std::process::Command::new(&bench)
                .args(&args)
                .process_group(0)
                .spawn()
                .with_context(|| {
                    format!(
                        "running {} (build it with `cargo build --release --bins`)",
                        bench.display()
                    )
                })?;
            forward_signals(child.id())?;
            let status = child.wait().context("waiting for kxdp-bench")?;
            std::process::exit(
                status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(1),
            );
        }
        Command::Check { config } => {
            let config = NodeConfig::from_file(&config)?;
            print!("{}", config.to_yaml());
            // The host settings kxdp depends on but does not own, as YAML
            // comments so that the output stays a valid configuration.
            let advice = kxdp_node::host::Host::running().node_advice(&config.node.vtep.interface);
            if advice.is_empty() {
                println!("# host: every setting kxdp checks is as it recommends");
            }
            for a in advice {
                println!("# host: recommendation: {a}");
            }
            Ok(())
        }
        Command::Stats {
            node,
            socket,
            config,
            api_socket,
            watch,
            interval_ms,
            count,
            output,
        } => {
            let config = config.map(NodeConfig::from_file).transpose()?;
            let api_socket = match (api_socket, &socket, &node, &config) {
                (Some(p), _, _, _) => p,
                (None, Some(p), _, _) => api::server::api_socket_beside(p),
                (None, None, Some(n), _) => PathBuf::from(format!("/run/kxdp/{n}.api.sock")),
                (None, None, None, Some(c)) => api::api_socket_path(c),
                (None, None, None, None) => only_api_socket()?,
            };
            if watch {
                return watch_stats(
                    &ApiTarget::Unix(api_socket),
                    Duration::from_millis(interval_ms),
                    count,
                    output,
                );
            }
            let s = stats::fetch(&api_socket)?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&s)?),
                Output::Yaml => print!("{}", serde_yaml::to_string(&s)?),
                Output::Table => print!("{}", stats::print(&s)),
            }
            Ok(())
        }
        Command::Get {
            kind,
            keys,
            api,
            output,
        } => get(&kind, &keys, &api, output),
        Command::Apply { file, delta, api } => apply(&file, delta, &api),
        Command::Delete { kind, keys, api } => delete(&kind, &keys, &api),
        Command::Dump { api, output } => dump(&api, output),
        Command::Agent {
            config,
            metrics,
            plan,
            cluster,
        } => {
            kxdp_control::k8s::request_agent(cluster)?;
            run(config, metrics, &plan)
        }
        Command::Crd => {
            print!("{}", kxdp_config::crd::ServiceChain::crd_yaml());
            Ok(())
        }
        Command::Trace {
            at,
            filter,
            count,
            file,
            api,
        } => trace(at, filter, count, file, &api),
    }
}

/// The one API socket (`<node>.api.sock`) in /run/kxdp, when there is
/// exactly one.
fn only_api_socket() -> anyhow::Result<PathBuf> {
    let sockets: Vec<PathBuf> = std::fs::read_dir("/run/kxdp")
        .context("no /run/kxdp: is `kxdp run` running? (or pass --node/--socket)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".api.sock"))
        })
        .collect();
    match sockets.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no kxdp instance found in /run/kxdp"),
        _ => anyhow::bail!("several kxdp instances run ({sockets:?}): pass --node NAME"),
    }
}

/// The configuration of `yaml` with the `cluster` values of `plan`,
/// validated.
fn config_with_plan(yaml: &str, plan: &AddressPlanArgs) -> anyhow::Result<NodeConfig> {
    let mut config = NodeConfig::parse_yaml(yaml)?;
    plan.apply_to(&mut config);
    if plan.is_empty() {
        config.validate()?;
    } else {
        config.validate().context(
            "the configuration with the cluster's address plan of the command line (--cluster-cidr, --service-cidr, --node-port-range)",
        )?;
    }
    Ok(config)
}

/// Pass SIGINT, SIGTERM and SIGHUP on to process `pid` (`kxdp bench`'s
/// kxdp-bench, which stops its run and removes its testbed on them) instead
/// of dying of them: `timeout kxdp bench` or a closed terminal must not
/// leave kxdp-bench running on its own.
fn forward_signals(pid: u32) -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(i32::try_from(pid).context("kxdp-bench's pid")?);
    let mut signals = signal_hook::iterator::Signals::new(kxdp_testbed::on_signal::HANDLED)
        .context("registering the signal handlers")?;
    std::thread::Builder::new()
        .name("forward-signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                if let Ok(signal) = Signal::try_from(signal) {
                    // ESRCH: it has just exited; `wait` reports how.
                    let _ = kill(pid, signal);
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// How often `kxdp run` looks whether it was asked to stop.
const STOP_POLL: Duration = Duration::from_millis(50);

fn run(
    config_path: PathBuf,
    metrics: Option<std::net::SocketAddr>,
    plan: &AddressPlanArgs,
) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config = config_with_plan(&yaml, plan)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let node = config.node.name.clone();
    // Advice, not a fault: logged at info so that a healthy start logs no
    // warning (the lifecycle tests check that a restart logs none).
    for advice in kxdp_node::host::Host::running().node_advice(&config.node.vtep.interface) {
        tracing::info!(%advice, "host setting advice (`kxdp check` lists them all)");
    }
    let api_options = ApiServerOptions::from_config(&config);
    // Refuse before touching the interfaces when another kxdp serves this
    // node's API (ApiServer::start checks again when it binds).
    api::server::refuse_if_served(&api_options.unix_socket)?;
    let runtime = NodeRuntime::start(config, Arc::clone(&stop))?;
    // The API applies through a desired-state store over the runtime's
    // tables, from its own thread: workers only see new snapshots.
    let store = Arc::new(DesiredStateStore::with_chains(
        runtime.config.clone(),
        runtime.tables.clone(),
        runtime.chains.clone(),
    ));
    if let Some(sync) = runtime.host_port_sync() {
        store.observe(sync);
    }
    store.set_port_lifecycle(runtime.port_lifecycle());
    let api = DataplaneApi::new(store, runtime.counters.clone(), runtime.ports.clone())
        .with_chain_stats(runtime.chain_stats.clone());
    let api = api.with_trace(Arc::clone(&runtime.trace));
    let store = Arc::clone(api.store());
    // The outer destination MAC of remote nodes without an underlay_mac,
    // from the kernel's neighbour table (a Flannel peer's NIC, a router).
    let resolver = kxdp_control::neighbours::UnderlayResolver::start(
        Arc::clone(&store),
        runtime.config.node.vtep.interface.clone(),
    )
    .context("starting the underlay neighbour resolver")?;
    let agent = kxdp_control::k8s::start_requested_agent(&store)?;
    let metrics_server = match metrics.or(runtime.config.control.metrics_address) {
        Some(addr) => {
            let source = kxdp_control::metrics::MetricsSource {
                node: node.clone(),
                counters: runtime.counters.clone(),
                ports: runtime.ports.clone(),
                tables: runtime.tables.clone(),
                store: Some(store),
                readiness: Some(runtime.readiness()),
            };
            let server = kxdp_control::metrics::MetricsServer::start(
                addr,
                source,
                &runtime.config.workers.cores,
            )
            .context("starting the metrics endpoint")?;
            tracing::info!(address = %server.local_addr(), "metrics endpoint: /metrics /healthz /readyz");
            Some(server)
        }
        None => None,
    };
    // The API last: a node that answers on it runs everything (the
    // testbed and the tests wait for that answer).
    let api_server = ApiServer::start(api, &api_options).context("starting the API")?;
    tracing::info!(
        node = %node,
        api = %api_options.unix_socket.display(),
        api_tcp = ?api_server.tcp_addr(),
        "kxdp ready"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(STOP_POLL);
    }
    tracing::info!(node = %node, "stopping: closing the API, detaching XDP programs");
    drop(metrics_server);
    drop(agent);
    drop(resolver);
    api_server.shutdown();
    runtime.shutdown();
    tracing::info!(node = %node, "stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NODE_YAML: &str = r#"
node:
  name: n1
  vtep: {ip: 192.168.100.1, interface: ul0}
  pod_cidrs: [{tenant: blue, cidr: 10.244.1.0/24}]
interfaces:
  - {name: ul0, role: underlay, mac: "02:00:00:01:01:00"}
tenants:
  - {name: blue, vni: 100}
cluster:
  pod_cidrs: [10.244.0.0/16]
  node_port_range: {first: 31000, last: 31999}
"#;

    fn plan_of(args: &[&str]) -> Result<AddressPlanArgs, clap::Error> {
        let line = ["kxdp", "run", "--config", "node.yaml"]
            .iter()
            .chain(args)
            .copied();
        match Cli::try_parse_from(line)?.command {
            Command::Run { plan, .. } => Ok(plan),
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn node_port_ranges_parse_as_first_dash_last() {
        assert_eq!(
            parse_port_range("30000-32767"),
            Ok(PortRange {
                first: 30000,
                last: 32767
            })
        );
        assert_eq!(
            parse_port_range("8080-8080"),
            Ok(PortRange {
                first: 8080,
                last: 8080
            }),
            "one port is a range"
        );
        for (text, wanted) in [
            ("30000", "not FIRST-LAST"),
            ("30000:32767", "not FIRST-LAST"),
            ("0-100", "FIRST \"0\" is not a port"),
            ("30000-70000", "LAST \"70000\" is not a port"),
            ("a-100", "FIRST \"a\" is not a port"),
            ("-100", "FIRST \"\" is not a port"),
            ("32767-30000", "FIRST 32767 is above LAST 30000"),
        ] {
            let error = parse_port_range(text).unwrap_err();
            assert!(error.contains(wanted), "{text}: {error}");
        }
    }

    #[test]
    fn cidr_flags_take_prefixes_without_host_bits() {
        assert_eq!(
            parse_cidr("fd00:10:244::/56"),
            Ok("fd00:10:244::/56".parse().unwrap())
        );
        assert!(parse_cidr("10.244.0.1/16")
            .unwrap_err()
            .contains("the prefix is 10.244.0.0/16"));
        assert!(parse_cidr("10.244.0.0").is_ok(), "an address is a /32");
        assert!(parse_cidr("10.244.0.0/33").is_err());
    }

    #[test]
    fn the_address_plan_flags_replace_the_files_cluster_values() {
        let plan = plan_of(&[
            "--cluster-cidr",
            "10.200.0.0/16",
            "--cluster-cidr",
            "fd00:10:200::/56",
            "--service-cidr",
            "10.96.0.0/12,fd00:10:96::/112",
            "--node-port-range",
            "30000-30100",
        ])
        .unwrap();
        let config = config_with_plan(NODE_YAML, &plan).unwrap();
        let cidrs = |list: &[IpNetwork]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cidrs(&config.cluster.pod_cidrs),
            ["10.200.0.0/16", "fd00:10:200::/56"]
        );
        assert_eq!(
            cidrs(&config.cluster.service_cidrs),
            ["10.96.0.0/12", "fd00:10:96::/112"]
        );
        assert_eq!(
            config.cluster.node_port_range,
            PortRange {
                first: 30000,
                last: 30100
            }
        );

        // Without flags the file's values stay; one flag replaces one value.
        let config = config_with_plan(NODE_YAML, &plan_of(&[]).unwrap()).unwrap();
        assert_eq!(cidrs(&config.cluster.pod_cidrs), ["10.244.0.0/16"]);
        let plan = plan_of(&["--service-cidr", "10.96.0.0/12"]).unwrap();
        let config = config_with_plan(NODE_YAML, &plan).unwrap();
        assert_eq!(cidrs(&config.cluster.pod_cidrs), ["10.244.0.0/16"]);
        assert_eq!(cidrs(&config.cluster.service_cidrs), ["10.96.0.0/12"]);
        assert_eq!(config.cluster.node_port_range.first, 31000);
    }

    #[test]
    fn a_malformed_address_plan_flag_is_refused_naming_the_flag() {
        for (args, flag) in [
            (["--cluster-cidr", "10.244.0.0/40"], "--cluster-cidr"),
            (["--service-cidr", "10.96.0.1/12"], "--service-cidr"),
            (["--node-port-range", "32767-30000"], "--node-port-range"),
        ] {
            let error = plan_of(&args).unwrap_err().to_string();
            assert!(error.contains(flag), "{args:?}: {error}");
        }
        // Well-formed flags that contradict each other: validation says why.
        let plan = plan_of(&["--service-cidr", "10.244.128.0/20"]).unwrap();
        let error = format!("{:#}", config_with_plan(NODE_YAML, &plan).unwrap_err());
        assert!(error.contains("--service-cidr"), "{error}");
        assert!(error.contains("overlaps"), "{error}");
    }
}

#[cfg(test)]
mod trace_command_line {
    use super::*;

    #[test]
    fn the_command_line_takes_a_trace() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kxdp",
            "trace",
            "--at",
            "drop",
            "--match",
            "icmp and dst port 53",
            "--count",
            "5",
            "-w",
            "/tmp/x.pcapng",
            "--config",
            "node.yaml",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let bad = Cli::try_parse_from(["kxdp", "trace", "--at", "pass", "-w", "f"]);
        assert!(bad.is_err());
    }
}
