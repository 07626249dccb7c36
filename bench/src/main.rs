//! `kxdp-bench`: the benchmarks (`kxdp bench` runs this binary).

use std::time::Duration;

use clap::{Parser, Subcommand};

mod cluster;

#[derive(Parser, Debug)]
#[command(name = "kxdp-bench", about = "kxdp benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    suite: SuiteArgs,
}

/// The whole benchmark (no subcommand): every path side by side.
#[derive(clap::Args, Debug)]
struct SuiteArgs {
    /// A short run for CI's smoke test (under a minute): one round, few probes.
    #[arg(long)]
    quick: bool,
    /// Rounds (each path once per round); 3 unless --quick.
    #[arg(long)]
    rounds: Option<usize>,
    /// Latency probes per case and round.
    #[arg(long)]
    probes: Option<u64>,
    /// Background stream rate in the loaded latency cases, datagrams/s.
    #[arg(long, default_value_t = 20_000)]
    load_pps: u64,
    /// Where the JSON, HdrHistogram logs and plots go.
    #[arg(long, default_value = "bench-out")]
    out: std::path::PathBuf,
    /// The kxdp binary; next to this one unless set.
    #[arg(long)]
    kxdp: Option<std::path::PathBuf>,
    /// Core of the kxdp workers (and of OVS's PMD thread in ovs-vxlan).
    #[arg(long, default_value_t = 1)]
    worker_core: usize,
    /// Core of the latency client.
    #[arg(long, default_value_t = 0)]
    client_core: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The node under test (the headline table of the full run): node1
    /// runs kernel-vxlan, kernel-vxlan-tx-off, kernel-vxlan-tuned (threaded
    /// NAPI on --worker-core), routed, kxdp (busy worker on --worker-core),
    /// kxdp-pod-napi (kxdp with pod_napi worker-core: the pod veths' NAPI
    /// threads beside the worker), kxdp-adaptive or ovs-vxlan (Open
    /// vSwitch's userspace datapath, PMD
    /// on --worker-core), node2 is always a Flannel kernel VXLAN node; UDP
    /// latency, TCP each way and the 64-byte packet rate each way (encap,
    /// decap), interleaved round by round (needs root).
    Nut {
        #[command(flatten)]
        suite: SuiteArgs,
        /// Rows to run, comma-separated, in round order (kernel-vxlan,
        /// kernel-vxlan-tx-off, kernel-vxlan-tuned, routed, kxdp,
        /// kxdp-pod-napi, kxdp-adaptive, ovs-vxlan); all by default.
        #[arg(long, value_delimiter = ',')]
        rows: Vec<kxdp_bench::nut::NutRow>,
        /// Record a system-wide cpu-clock profile (perf record -a -g) of
        /// each row's TCP transfers and packet-rate windows into this
        /// directory, with a per-core report beside each; and trace one
        /// extra blocking/low latency case per row (IPIs per round trip,
        /// idle cores' wake-up time, the kxdp worker's reaction).
        #[arg(long)]
        profile: Option<std::path::PathBuf>,
        /// Leave node2's receive of node1's frames on the core that sent
        /// them (the worker core for what kxdp or OVS sends) instead of
        /// steering it to the other core with RPS on node2's ul0: for A/B.
        #[arg(long)]
        no_node2_rps: bool,
        /// Set the guest halt-polling window (haltpoll.guest_halt_poll_ns,
        /// machine-wide) to this many ns for the run and put the old value
        /// back afterwards; `kxdp check` recommends 200000 on this kind of
        /// VM. Unset: the machine's own setting, printed with the table.
        #[arg(long)]
        halt_poll_ns: Option<u64>,
        /// TCP congestion control for every pod's namespace (one of
        /// net.ipv4.tcp_available_congestion_control, e.g. cubic, bbr).
        /// Unset: what the namespaces inherit from the machine's
        /// net.ipv4.tcp_congestion_control; the table names it either way.
        #[arg(long)]
        tcp_cc: Option<String>,
    },
    /// The in-memory pipeline: Mpps per core for local forward, VXLAN encap and decap.
    Pipeline {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Scenarios to run, comma-separated (local-forward, vxlan-encap,
        /// vxlan-decap); all by default.
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<kxdp_bench::pipeline::Scenario>,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Pin to this core.
        #[arg(long)]
        core: Option<usize>,
    },
    /// The in-memory service chain: Mpps per core of policy → policer →
    /// load balancer over many connections to a Service.
    Chain {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Write the result as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Pin to this core.
        #[arg(long)]
        core: Option<usize>,
    },
    /// Packet rate of 64-byte UDP from a pod across nodes: kxdp against
    /// kernel-vxlan, routed, DPDK testpmd and OVS (the last two when
    /// installed, underlay sink only), interleaved round by round (needs
    /// root).
    Rate {
        /// Seconds of each measurement window.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Seconds of generator warm-up before each window.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Rounds (each path and sink once per round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// The kxdp binary; next to this one unless set.
        #[arg(long)]
        kxdp: Option<std::path::PathBuf>,
        /// Core of node1's dataplane under test.
        #[arg(long, default_value_t = 1)]
        dut_core: usize,
        /// Core of the generator and everything else.
        #[arg(long, default_value_t = 0)]
        generator_core: usize,
        /// Distinct UDP source ports.
        #[arg(long, default_value_t = 8)]
        flows: u16,
        /// Frame length without FCS.
        #[arg(long, default_value_t = 64)]
        frame_bytes: usize,
        /// Count only on node2's underlay (node1's encapsulation alone).
        #[arg(long, conflicts_with = "pod_only")]
        encap_only: bool,
        /// Count only at the receiving pod (pod to pod).
        #[arg(long)]
        pod_only: bool,
        /// Leave veth receive work in softirq instead of pinned NAPI threads.
        #[arg(long)]
        no_threaded_napi: bool,
        /// Paths to measure, comma-separated, in round order (kxdp,
        /// kernel-vxlan, routed, testpmd, ovs); all by default.
        #[arg(long, value_delimiter = ',')]
        paths: Vec<kxdp_bench::rate::RatePath>,
    },
    /// A node full of pods: one kxdp worker with pods added at run time
    /// (2, 30, 110 by default), busy and adaptive: TCP between two pods,
    /// socket drops, request/response, the largest burst taken whole,
    /// cycles per packet, memory (needs root).
    Pods {
        /// Pod counts, ascending, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [2u32, 30, 110])]
        counts: Vec<u32>,
        /// Worker modes, comma-separated (busy, adaptive).
        #[arg(long, value_delimiter = ',', default_values_t = [String::from("busy"), String::from("adaptive")])]
        modes: Vec<String>,
        /// Bytes per TCP transfer.
        #[arg(long, default_value_t = 100_000_000)]
        tcp_bytes: u64,
        /// Request/response probes per pod count.
        #[arg(long, default_value_t = 2_000)]
        probes: u64,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// The kxdp binary; next to this one unless set.
        #[arg(long)]
        kxdp: Option<std::path::PathBuf>,
        /// Core of the kxdp worker.
        #[arg(long, default_value_t = 1)]
        worker_core: usize,
        /// Core of everything else.
        #[arg(long, default_value_t = 0)]
        client_core: usize,
    },
    /// Cluster latencies, kxdp against the kernel in the same run: node →
    /// pod HTTP GET (a kubelet probe) and pod → ClusterIP HTTP GET (kxdp's
    /// Service balancing against kube-proxy-style DNAT on Flannel vxlan
    /// nodes), interleaved round by round (needs root).
    Cluster {
        /// HTTP GETs per measure and round.
        #[arg(long, default_value_t = 1000)]
        requests: u64,
        /// Rounds (each path once per round).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Microseconds from the start of one request to the next.
        #[arg(long, default_value_t = 2000)]
        interval_us: u64,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// The kxdp binary; next to this one unless set.
        #[arg(long)]
        kxdp: Option<std::path::PathBuf>,
        /// Core of both nodes' kxdp workers.
        #[arg(long, default_value_t = 1)]
        worker_core: usize,
        /// Core of the clients, the servers and everything else.
        #[arg(long, default_value_t = 0)]
        client_core: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Stopped by a signal, the bench leaves nothing behind: its testbeds'
    // namespaces and processes go, and so does its halt-polling window.
    kxdp_testbed::remove_on_signal("kxdp-bench", kxdp_bench::halt_poll::restore_after_signal)?;
    let result = run_command(cli);
    kxdp_testbed::hold_if_stopping();
    result
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        return run_suite(&cli.suite);
    };
    match command {
        Command::Nut {
            suite,
            rows,
            profile,
            no_node2_rps,
            halt_poll_ns,
            tcp_cc,
        } => {
            use anyhow::Context;
            use kxdp_bench::nut;
            if let Err(why) = kxdp_testbed::check_privileges() {
                anyhow::bail!("kxdp-bench nut needs root (network namespaces, XDP, AF_XDP): {why}");
            }
            let kxdp = kxdp_binary(suite.kxdp.as_deref())?;
            let mut options = nut_options(&suite, &kxdp);
            if !rows.is_empty() {
                options.rows = rows;
            }
            options.profile = profile;
            options.node2_rps = !no_node2_rps;
            if let Some(name) = &tcp_cc {
                let available =
                    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                        .context("reading net.ipv4.tcp_available_congestion_control")?;
                nut::check_congestion_control(name, &available)?;
            }
            options.tcp_congestion = tcp_cc;
            let window = halt_poll_ns
                .map(kxdp_bench::halt_poll::HaltPollWindow::set)
                .transpose()?;
            if let Some(w) = &window {
                eprintln!(
                    "guest halt polling: window {} ns for this run ({} ns before; put back afterwards)",
                    w.ns(),
                    w.previous()
                );
            }
            let started = std::time::Instant::now();
            let report = nut::run(&options, &mut |line| {
                eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            })?;
            print!("{}", nut::table(&report));
            match &window {
                Some(w) => println!(
                    "\nguest halt polling: window {} ns for this run (--halt-poll-ns; {} ns before, put back)",
                    w.ns(),
                    w.previous()
                ),
                None => println!(
                    "\nguest halt polling: the machine's window, {}",
                    std::fs::read_to_string(kxdp_bench::halt_poll::WINDOW)
                        .map(|v| format!("{} ns", v.trim()))
                        .unwrap_or_else(|_| "none (no haltpoll cpuidle driver)".to_string())
                ),
            }
            drop(window);
            let json = options.out_dir.join("nut.json");
            std::fs::write(&json, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing {}", json.display()))?;
            println!("\nwrote {}", json.display());
            for f in &report.files {
                println!("wrote {f}");
            }
        }
        Command::Pods {
            counts,
            modes,
            tcp_bytes,
            probes,
            json,
            kxdp,
            worker_core,
            client_core,
        } => {
            use kxdp_bench::pods::{self, PodsOptions};
            if let Err(why) = kxdp_testbed::check_privileges() {
                anyhow::bail!(
                    "kxdp-bench pods needs root (network namespaces, XDP, AF_XDP): {why}"
                );
            }
            let mut options = PodsOptions::new(kxdp_binary(kxdp.as_deref())?);
            options.counts = counts;
            options.modes = modes
                .iter()
                .map(|m| match m.as_str() {
                    "busy" => Ok(kxdp_config::PollMode::Busy),
                    "adaptive" => Ok(kxdp_config::PollMode::Adaptive),
                    other => Err(anyhow::anyhow!(
                        "--modes: {other:?} is not a worker mode (busy, adaptive)"
                    )),
                })
                .collect::<anyhow::Result<_>>()?;
            options.tcp_bytes = tcp_bytes;
            options.probes = probes.max(1);
            options.worker_core = worker_core;
            options.client_core = client_core;
            let started = std::time::Instant::now();
            let report = pods::run(&options, &mut |line| {
                eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            })?;
            print!("{}", pods::table(&report));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Cluster {
            requests,
            rounds,
            interval_us,
            json,
            kxdp,
            worker_core,
            client_core,
        } => {
            if let Err(why) = kxdp_testbed::check_privileges() {
                anyhow::bail!(
                    "kxdp-bench cluster needs root (network namespaces, XDP, AF_XDP): {why}"
                );
            }
            let mut options = cluster::ClusterOptions::new(kxdp_binary(kxdp.as_deref())?);
            options.requests = requests.max(1);
            options.rounds = rounds.max(1);
            options.interval = Duration::from_micros(interval_us);
            options.worker_core = worker_core;
            options.client_core = client_core;
            let started = std::time::Instant::now();
            let report = cluster::run(&options, &mut |line| {
                eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            })?;
            print!("{}", cluster::table(&report));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Rate {
            seconds,
            warmup,
            rounds,
            json,
            kxdp,
            dut_core,
            generator_core,
            flows,
            frame_bytes,
            encap_only,
            pod_only,
            no_threaded_napi,
            paths,
        } => {
            use kxdp_bench::rate::{self, RateOptions, SinkPoint};
            if let Err(why) = kxdp_testbed::check_privileges() {
                anyhow::bail!(
                    "kxdp-bench rate needs root (network namespaces, XDP, AF_XDP): {why}"
                );
            }
            let mut options = RateOptions::new(kxdp_binary(kxdp.as_deref())?);
            options.seconds = seconds;
            options.warmup = warmup;
            options.rounds = rounds.max(1);
            options.dut_core = dut_core;
            options.generator_core = generator_core;
            options.flows = flows;
            options.frame_bytes = frame_bytes;
            options.threaded_napi = !no_threaded_napi;
            if !paths.is_empty() {
                options.paths = paths;
            }
            if encap_only {
                options.sinks = vec![SinkPoint::Underlay];
            } else if pod_only {
                options.sinks = vec![SinkPoint::Pod];
            }
            let started = std::time::Instant::now();
            let report = rate::run(&options, &mut |line| {
                eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            })?;
            print!("{}", rate::table(&report));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Chain {
            seconds,
            json,
            core,
        } => {
            if let Some(core) = core {
                kxdp_dataplane::worker::pin_to_core(Some(core));
            }
            eprintln!(
                "in-memory service chain, one core{}, batch {}",
                core.map(|c| format!(" (core {c})")).unwrap_or_default(),
                kxdp_bench::chain::BATCH
            );
            let results = kxdp_bench::chain::run_all(Duration::from_secs_f64(seconds));
            print!("{}", kxdp_bench::chain::table(&results));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
            }
        }
        Command::Pipeline {
            seconds,
            scenarios,
            json,
            core,
        } => {
            if let Some(core) = core {
                kxdp_dataplane::worker::pin_to_core(Some(core));
            }
            eprintln!(
                "in-memory pipeline, one core{}, batch 64",
                core.map(|c| format!(" (core {c})")).unwrap_or_default()
            );
            let scenarios = if scenarios.is_empty() {
                kxdp_bench::pipeline::Scenario::ALL.to_vec()
            } else {
                scenarios
            };
            let results =
                kxdp_bench::pipeline::run(&scenarios, Duration::from_secs_f64(seconds), |r| {
                    eprintln!(
                        "  {:?} {} B {} routes: {:.2} Mpps",
                        r.scenario, r.frame_bytes, r.routes, r.mpps
                    );
                });
            print!("{}", kxdp_bench::pipeline::table(&results));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
            }
        }
    }
    Ok(())
}

fn run_suite(args: &SuiteArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use kxdp_bench::suite::{self, SuiteOptions};
    use std::io::Write;

    if let Err(why) = kxdp_testbed::check_privileges() {
        anyhow::bail!("kxdp bench needs root (network namespaces, XDP, AF_XDP): {why}");
    }
    let kxdp = kxdp_binary(args.kxdp.as_deref())?;
    let options = SuiteOptions {
        nut: nut_options(args, &kxdp),
        rounds: rounds(args),
        latency: latency_options(args),
        tcp_bytes: tcp_bytes(args),
        pipeline_seconds: if args.quick { 0.02 } else { 0.5 },
        rate: {
            let mut rate = kxdp_bench::rate::RateOptions::new(kxdp.clone());
            rate.dut_core = args.worker_core;
            rate.generator_core = args.client_core;
            if args.quick {
                rate.seconds = 1.0;
                rate.warmup = 0.3;
                rate.rounds = 1;
            } else {
                rate.rounds = args.rounds.unwrap_or(3).max(1);
            }
            rate
        },
        pods: {
            let mut pods = if args.quick {
                kxdp_bench::pods::PodsOptions::quick(kxdp.clone())
            } else {
                kxdp_bench::pods::PodsOptions::new(kxdp.clone())
            };
            pods.worker_core = args.worker_core;
            pods.client_core = args.client_core;
            pods
        },
        out_dir: args.out.clone(),
        kxdp: kxdp.clone(),
        worker_core: args.worker_core,
        client_core: args.client_core,
    };
    let started = std::time::Instant::now();
    let mut progress = |line: &str| {
        eprint!("\r\x1b[K[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
        let _ = std::io::stderr().flush();
    };
    let result = suite::run(&options, &mut progress)?;
    eprintln!();
    print!("{}", suite::table(&result));
    let json = options.out_dir.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("writing {}", json.display()))?;
    println!("\nwrote {}", json.display());
    for f in &result.files {
        println!("wrote {f}");
    }
    Ok(())
}

/// Rounds: `--rounds`, else 3 (1 with `--quick`).
fn rounds(args: &SuiteArgs) -> usize {
    args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1)
}

/// Bytes per TCP transfer: 256 MiB (8 MiB with `--quick`).
fn tcp_bytes(args: &SuiteArgs) -> u64 {
    if args.quick {
        8 << 20
    } else {
        256 << 20
    }
}

/// Latency probes and pacing: 5,000 probes every 200 µs (200 every 500 µs
/// with `--quick`) unless `--probes`.
fn latency_options(args: &SuiteArgs) -> kxdp_bench::latency::LatencyOptions {
    kxdp_bench::latency::LatencyOptions {
        count: args.probes.unwrap_or(if args.quick { 200 } else { 5_000 }),
        interval: Duration::from_micros(if args.quick { 500 } else { 200 }),
        timeout: Duration::from_millis(200),
        load_pps: args.load_pps,
        client_core: Some(args.client_core),
    }
}

/// The node-under-test run with the suite's settings, every row; packet
/// rate windows of 2 s after 0.5 s of warm-up (0.5 s after 0.2 s with
/// `--quick`).
fn nut_options(args: &SuiteArgs, kxdp: &std::path::Path) -> kxdp_bench::nut::NutOptions {
    kxdp_bench::nut::NutOptions {
        rounds: rounds(args),
        latency: latency_options(args),
        tcp_bytes: tcp_bytes(args),
        out_dir: args.out.clone(),
        kxdp: kxdp.to_path_buf(),
        worker_core: args.worker_core,
        other_core: args.client_core,
        rows: kxdp_bench::nut::NutRow::ALL.to_vec(),
        rate_seconds: if args.quick { 0.5 } else { 2.0 },
        rate_warmup: if args.quick { 0.2 } else { 0.5 },
        profile: None,
        node2_rps: true,
        tcp_congestion: None,
    }
}

/// The kxdp binary: `explicit`, else `kxdp` next to this binary.
fn kxdp_binary(explicit: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .with_file_name("kxdp"),
    };
    anyhow::ensure!(
        path.exists(),
        "no kxdp binary at {} (build the workspace: cargo build --release, or pass --kxdp)",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;
    use kxdp_bench::nut::NutRow;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pipeline_runs_the_scenarios_named_and_refuses_others() {
        use kxdp_bench::pipeline::Scenario;
        let cli = Cli::try_parse_from([
            "kxdp-bench",
            "pipeline",
            "--scenarios",
            "vxlan-decap,local-forward",
        ])
        .unwrap();
        let Some(Command::Pipeline { scenarios, .. }) = cli.command else {
            panic!("not the pipeline command: {:?}", cli.command);
        };
        assert_eq!(scenarios, [Scenario::VxlanDecap, Scenario::LocalForward]);
        let err = Cli::try_parse_from(["kxdp-bench", "pipeline", "--scenarios", "decap"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"decap\" is not a scenario (local-forward, vxlan-encap, vxlan-decap)"),
            "{err}"
        );
    }

    #[test]
    fn nut_takes_the_suite_flags_and_its_rows() {
        let cli = Cli::try_parse_from([
            "kxdp-bench",
            "nut",
            "--quick",
            "--rows",
            "kxdp,kernel-vxlan",
            "--out",
            "somewhere",
        ])
        .unwrap();
        let Some(Command::Nut { suite, rows, .. }) = cli.command else {
            panic!("not the nut command: {:?}", cli.command);
        };
        assert!(suite.quick);
        assert_eq!(rows, [NutRow::Kxdp, NutRow::KernelVxlan]);
        let options = nut_options(&suite, std::path::Path::new("/kxdp"));
        assert_eq!(options.rounds, 1);
        assert_eq!(options.latency.count, 200);
        assert_eq!(options.tcp_bytes, 8 << 20);
        assert_eq!((options.worker_core, options.other_core), (1, 0));
        assert_eq!(options.out_dir, std::path::Path::new("somewhere"));
        assert_eq!(options.rows, NutRow::ALL);
        assert_eq!((options.rate_seconds, options.rate_warmup), (0.5, 0.2));
        // The full run: three rounds unless asked.
        let cli = Cli::try_parse_from(["kxdp-bench"]).unwrap();
        let options = nut_options(&cli.suite, std::path::Path::new("/kxdp"));
        assert_eq!((options.rounds, options.latency.count), (3, 5_000));
        assert_eq!((options.rate_seconds, options.rate_warmup), (2.0, 0.5));
    }
}
