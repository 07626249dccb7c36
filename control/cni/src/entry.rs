//! The entry point shared by the `kxdp-cni` binary and the tests' copy.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::config::CURRENT_VERSION;
use crate::env::Invocation;
use crate::error::{CniError, ErrorCode};
use crate::{install, plugin};

/// The plugin's `main`: what the `kxdp-cni` binary runs (and the tests'
/// copy of it).
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("install") {
        return match install::InstallArgs::parse(&args[2..]).and_then(|a| install::install(&a)) {
            Ok(()) => {
                eprintln!("kxdp-cni: installed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kxdp-cni install: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    // Errors are written in the configuration's version when it has one.
    let version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| CURRENT_VERSION.to_string());
    let outcome = read
        .map_err(|e| CniError::new(ErrorCode::Io, "cannot read stdin", e.to_string()))
        .and_then(|_| Invocation::from_vars(|name| std::env::var(name).ok()))
        .and_then(|invocation| plugin::run(&invocation, &stdin));
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(Some(json)) => {
            let _ = writeln!(stdout, "{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(stdout, "{}", e.to_json(&version));
            // Runtimes log stderr; the JSON on stdout is what they parse.
            eprintln!("kxdp-cni: {e}");
            ExitCode::FAILURE
        }
    }
}
