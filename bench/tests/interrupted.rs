//! `kxdp-bench` (run alone or by `kxdp bench`) stopped by a signal in the
//! middle of a run (Ctrl-C, `timeout`'s SIGTERM) leaves nothing behind: the kxdp node it started is
//! gone, so is every namespace and scratch directory of its testbed, and
//! the guest halt-polling window it set for the run is back as it was. It
//! exits as the signal's default action would have reported it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kxdp_bench::halt_poll;
use kxdp_testbed::on_signal::interrupt_when_running;
use kxdp_testbed::privileged_test;
use nix::sys::signal::Signal;

/// `target/<profile>/kxdp`, built by `cargo test --workspace`.
fn kxdp_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("kxdp")
}

fn read_window() -> Option<u64> {
    std::fs::read_to_string(halt_poll::WINDOW)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Run the bench's kxdp row until its testbed stands and its kxdp node
/// runs, send `signal`, and check what is left. `through_kxdp`: started as
/// `kxdp bench …`, which runs kxdp-bench and gets the signal itself.
fn interrupted_by(signal: Signal, through_kxdp: bool) {
    let kxdp = kxdp_binary();
    assert!(kxdp.exists(), "no kxdp binary at {}", kxdp.display());
    let out = std::env::temp_dir().join(format!(
        "kxdp-bench-interrupted-{}-{signal}-{through_kxdp}",
        std::process::id()
    ));
    // The window for the run: one the machine does not hold now, so that
    // putting it back can be seen. A machine without the haltpoll cpuidle
    // driver has no window to set (this machine and CI's have one).
    let window_before = read_window();
    let mut args: Vec<String> = ["nut", "--rows", "kxdp", "--rounds", "1", "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let program = if through_kxdp {
        args.insert(0, "bench".to_string());
        kxdp.clone()
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_kxdp-bench"))
    };
    args.push(out.display().to_string());
    args.push("--kxdp".into());
    args.push(kxdp.display().to_string());
    let run_window = window_before.map(|w| if w == 150_000 { 160_000 } else { 150_000 });
    if let Some(w) = run_window {
        args.push("--halt-poll-ns".into());
        args.push(w.to_string());
    } else {
        eprintln!(
            "no {}: the halt-polling window is not checked",
            halt_poll::WINDOW
        );
    }
    let log = out.with_extension("log");
    let mut child = Command::new(&program)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    // The testbed stands and its kxdp node runs: the window is the run's.
    let seen = interrupt_when_running(&mut child, "kxdp", signal, Duration::from_secs(60))
        .unwrap_or_else(|why| panic!("kxdp-bench: {why}:\n{}", log_text()));
    let log = log_text();
    eprintln!("{log}");
    assert_eq!(
        seen.status.code(),
        Some(128 + signal as i32),
        "kxdp-bench's exit status after {signal}:\n{log}"
    );
    assert!(log.contains(&format!("kxdp-bench: {signal}:")), "{log}");
    assert!(
        seen.still_running.is_empty(),
        "kxdp nodes {:?} (of {:?}) still run after {signal}",
        seen.still_running,
        seen.were_running
    );
    assert!(
        seen.leftovers.is_empty(),
        "left behind after {signal}: {:?}",
        seen.leftovers
    );
    if let (Some(before), Some(w)) = (window_before, run_window) {
        assert!(
            log.contains(&format!("guest halt polling: window {w} ns for this run")),
            "the run's window was not set:\n{log}"
        );
        assert_eq!(
            read_window(),
            Some(before),
            "the halt-polling window after {signal}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(out.with_extension("log"));
}

/// One test for both signals (and for `kxdp bench`, which only starts
/// kxdp-bench), one after the other: each run sets the
/// machine-wide halt-polling window, so two at once would put back each
/// other's.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn sigterm_or_sigint_mid_run_leaves_nothing_behind() {
    privileged_test("sigterm_or_sigint_mid_run_leaves_nothing_behind");
    interrupted_by(Signal::SIGTERM, false);
    interrupted_by(Signal::SIGINT, false);
    // `timeout kxdp bench`: the signal reaches `kxdp`, which passes it on.
    interrupted_by(Signal::SIGTERM, true);
}
