//! `kxdp demo` interrupted (Ctrl-C sends SIGINT, `timeout` SIGTERM) while
//! its cluster runs leaves nothing behind: its nodes' kxdp processes and
//! its servers stop, its namespaces and scratch directory go, and it exits
//! as the signal's default action would have reported it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use kxdp_testbed::on_signal::interrupt_when_running;
use kxdp_testbed::privileged_test;
use nix::sys::signal::Signal;

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn an_interrupted_demo_leaves_nothing_behind() {
    privileged_test("an_interrupted_demo_leaves_nothing_behind");
    let log =
        std::env::temp_dir().join(format!("kxdp-demo-interrupted-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kxdp"))
        .arg("demo")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let seen = interrupt_when_running(&mut child, "kxdp", Signal::SIGINT, Duration::from_secs(60))
        .unwrap_or_else(|why| panic!("kxdp demo: {why}:\n{}", log_text()));
    let text = log_text();
    eprintln!("{text}");
    let _ = std::fs::remove_file(&log);
    assert_eq!(
        seen.status.code(),
        Some(130),
        "exit status after SIGINT:\n{text}"
    );
    assert!(text.contains("kxdp demo: SIGINT:"), "{text}");
    assert!(
        seen.still_running.is_empty(),
        "kxdp nodes {:?} (of {:?}) still run after SIGINT",
        seen.still_running,
        seen.were_running
    );
    assert!(
        seen.leftovers.is_empty(),
        "left behind: {:?}",
        seen.leftovers
    );
}
