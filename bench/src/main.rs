//! `kxdp-bench`: the benchmarks (`kxdp bench` runs this binary).

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "kxdp-bench", about = "kxdp benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The in-memory pipeline: Mpps per core for local forward, VXLAN encap and decap.
    Pipeline {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Pin to this core.
        #[arg(long)]
        core: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Pipeline {
            seconds,
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
            let results = kxdp_bench::pipeline::run_all(Duration::from_secs_f64(seconds), |r| {
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
