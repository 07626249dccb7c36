//! The `kxdp` command line: run, check, stats, demo, bench.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::runtime::NodeRuntime;
use crate::stats;
use anyhow::Context;
use clap::{Parser, Subcommand};
use kxdp_config::NodeConfig;

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
    },
    /// Check a configuration file and print it back.
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
    /// Print per-worker counters and drops by reason of a running instance.
    Stats {
        /// Node name (socket /run/kxdp/<node>.sock).
        #[arg(long, conflicts_with = "socket")]
        node: Option<String>,
        /// Control socket path.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, default_value = "table")]
        output: String,
    },
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
        Command::Run { config } => run(config),
        Command::Demo { count } => {
            let exe = std::env::current_exe().context("finding the kxdp binary")?;
            let rows = crate::demo::run(
                &exe,
                crate::demo::DemoOptions {
                    count,
                    ..Default::default()
                },
            )?;
            let lost: u64 = rows.iter().map(|r| r.sent - r.received).sum();
            if lost > 0 {
                eprintln!("note: {lost} exchanges got no reply");
            }
            Ok(())
        }
        Command::Bench { args } => {
            let exe = std::env::current_exe().context("finding the kxdp binary")?;
            let bench = exe.with_file_name("kxdp-bench");
            let status = std::process::Command::new(&bench)
                .args(&args)
                .status()
                .with_context(|| {
                    format!(
                        "running {} (build it with `cargo build --release --bins`)",
                        bench.display()
                    )
                })?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Command::Check { config } => {
            let config = NodeConfig::from_file(&config)?;
            print!("{}", config.to_yaml());
            Ok(())
        }
        Command::Stats {
            node,
            socket,
            output,
        } => {
            let path = match (socket, node) {
                (Some(p), _) => p,
                (None, Some(n)) => PathBuf::from(format!("/run/kxdp/{n}.sock")),
                (None, None) => only_socket()?,
            };
            let s = stats::fetch(&path)?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&s)?),
                "yaml" => print!("{}", serde_yaml::to_string(&s)?),
                _ => print!("{}", stats::print(&s)),
            }
            Ok(())
        }
    }
}

/// The one socket in /run/kxdp, when there is exactly one.
fn only_socket() -> anyhow::Result<PathBuf> {
    let sockets: Vec<PathBuf> = std::fs::read_dir("/run/kxdp")
        .context("no /run/kxdp: is `kxdp run` running? (or pass --node/--socket)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    match sockets.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no kxdp instance found in /run/kxdp"),
        _ => anyhow::bail!("several kxdp instances run ({sockets:?}): pass --node NAME"),
    }
}

fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let config = NodeConfig::from_file(&config_path)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let socket = PathBuf::from(config.control_socket());
    let server = stats::StatsServer::bind(&socket)?;
    let node = config.node.name.clone();
    let runtime = NodeRuntime::start(config, Arc::clone(&stop))?;
    tracing::info!(node = %node, socket = %socket.display(), "kxdp ready");
    server.serve(&runtime, &stop);
    tracing::info!(node = %node, "stopping: detaching XDP programs");
    runtime.shutdown();
    drop(server);
    tracing::info!(node = %node, "stopped");
    Ok(())
}
