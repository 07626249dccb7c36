//! `kxdp trace` against a running kxdp: a drop trace armed while a pod
//! pings an address no route covers (dropped, `no_route`) and another pod
//! (forwarded) writes exactly the dropped frames into a pcapng file, which
//! tshark reads back with their comments (point, reason, worker, port); the
//! trace disarms when it has its count, so a second one (at rx, filtered)
//! arms and sees the forwarded pings; one interrupted with Ctrl-C leaves a
//! readable file and disarms too.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test trace -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kxdp_testbed::{
    find_program, ping, pod_ip, privileged_test, NodeKind, NodeSpec, TopologySpec, Underlay,
};
use kxdp_tests::{ip_of, kxdp_binary, Cluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UNROUTED: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// `kxdp trace` running as a child process; killed on drop.
struct TraceCli {
    child: Option<Child>,
    err: PathBuf,
}

impl TraceCli {
    /// Start `kxdp trace --config CONFIG ARGS -w FILE` and wait until the
    /// trace is armed (it says so on stderr once the node accepted it).
    fn start(config: &Path, args: &[&str], file: PathBuf) -> TraceCli {
        let err = file.with_extension("err");
        let child = Command::new(kxdp_binary!())
            .arg("trace")
            .arg("--config")
            .arg(config)
            .args(args)
            .arg("-w")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("starting kxdp trace");
        let mut trace = TraceCli {
            child: Some(child),
            err,
        };
        let start = Instant::now();
        loop {
            let said = trace.stderr();
            if said.contains("tracing ") {
                break;
            }
            if let Some(status) = trace.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("kxdp trace exited ({status}) before arming: {said}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "kxdp trace did not arm: {said}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        trace
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait for it to exit on its own; its stderr.
    fn wait(mut self, timeout: Duration) -> String {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let said = self.stderr();
                assert!(status.success(), "kxdp trace failed ({status}): {said}");
                return said;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kxdp trace still running after {timeout:?}: {}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, then wait for it.
    fn interrupt(self) -> String {
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGINT).unwrap();
        self.wait(Duration::from_secs(5))
    }
}

impl Drop for TraceCli {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tshark -r FILE -T fields -E separator=| -e …`: one row per frame.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec![
        "-r".to_string(),
        file.display().to_string(),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "separator=|".into(),
    ];
    for f in fields {
        args.push("-e".into());
        args.push((*f).to_string());
    }
    let out = Command::new("tshark")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("running tshark (package tshark)");
    assert!(
        out.status.success(),
        "tshark -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_drop_trace_read_by_tshark_shows_the_dropped_frames_and_their_reason() {
    privileged_test("a_drop_trace_read_by_tshark_shows_the_dropped_frames_and_their_reason");
    assert!(
        find_program("tshark").is_some(),
        "tshark is not installed (scripts/setup installs it)"
    );
    let spec = TopologySpec::new(Underlay::Switch, &[("blue", 100)]).with_node(
        NodeSpec::new("kc1", NodeKind::Kxdp)
            .with_pod("kca", "blue", pod_ip(1, 10))
            .with_pod("kcb", "blue", pod_ip(1, 11)),
    );
    let mut c = Cluster::build("trace", spec, kxdp_binary!());
    // No ICMP errors here: ping stops at the first "net unreachable", and
    // this test needs its echo requests dropped one by one.
    c.tb_mut().node_config_mut("kc1").unwrap().icmp.errors = false;
    c.start_kxdp("kc1");
    let config = c.process("kc1").config_path().to_path_buf();
    let dir = c.tb().scratch_dir().to_path_buf();
    let a = c.pod("kca").clone();
    let b = c.pod("kcb").clone();
    let unrouted = IpAddr::V4(UNROUTED);

    // 1. Dropped ICMP only: 5 of the 8 unrouted pings, none of the
    //    forwarded ones.
    let drops = dir.join("drops.pcapng");
    let trace = TraceCli::start(
        &config,
        &["--at", "drop", "--match", "icmp", "--count", "5"],
        drops.clone(),
    );
    let good = ping(&a.netns, ip_of(&b), 5, Duration::from_millis(20)).unwrap();
    assert_eq!(good.received, 5, "kca -> kcb pings\n{}", c.logs());
    let lost = ping(&a.netns, unrouted, 8, Duration::from_millis(20)).unwrap();
    assert_eq!(lost.received, 0);
    let said = trace.wait(Duration::from_secs(15));
    eprintln!("drop trace: {}", said.trim());
    assert!(said.contains("5 frames written"), "{said}");
    let rows = tshark(
        &drops,
        &[
            "frame.comment",
            "ip.src",
            "ip.dst",
            "icmp.type",
            "frame.interface_name",
        ],
    );
    eprintln!("tshark: {rows:?}");
    assert_eq!(rows.len(), 5, "{rows:?}");
    for row in &rows {
        let [comment, src, dst, icmp_type, interface] = row.as_slice() else {
            panic!("unexpected row {row:?}");
        };
        assert!(
            comment.starts_with("point=drop reason=no_route worker=0 port="),
            "{comment}"
        );
        assert!(
            comment.ends_with(&format!("interface={}", a.host_interface)),
            "{comment}"
        );
        assert_eq!(
            (src.as_str(), dst.as_str(), icmp_type.as_str()),
            (a.ip.to_string().as_str(), "10.99.0.1", "8")
        );
        assert_eq!(interface, &a.host_interface);
    }

    // 2. The first trace disarmed when it had its count: an rx trace arms,
    //    and sees only the echo requests to kcb.
    let rx = dir.join("rx.pcapng");
    let filter = format!("icmp and dst host {}", b.ip);
    let trace = TraceCli::start(
        &config,
        &["--at", "rx", "--match", &filter, "--count", "3"],
        rx.clone(),
    );
    let good = ping(&a.netns, ip_of(&b), 4, Duration::from_millis(20)).unwrap();
    assert_eq!(good.received, 4);
    trace.wait(Duration::from_secs(15));
    let rows = tshark(&rx, &["frame.comment", "ip.dst", "ip.ttl"]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert!(row[0].starts_with("point=rx worker=0 port="), "{row:?}");
        assert_eq!(row[1], b.ip.to_string());
        // As received: the TTL is the sender's, not yet decremented.
        assert_eq!(row[2], "64", "{row:?}");
    }

    // 3. Ctrl-C before the count: a readable file, and the trace disarms
    //    (a next one arms).
    let tx = dir.join("tx.pcapng");
    let trace = TraceCli::start(
        &config,
        &["--at", "tx", "--match", "icmp", "--count", "1000"],
        tx.clone(),
    );
    let good = ping(&a.netns, ip_of(&b), 3, Duration::from_millis(20)).unwrap();
    assert_eq!(good.received, 3);
    std::thread::sleep(Duration::from_millis(200));
    let said = trace.interrupt();
    assert!(said.contains("(interrupted)"), "{said}");
    let rows = tshark(&tx, &["frame.comment", "ip.ttl"]);
    // Requests and replies, as sent: TTL decremented.
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r[0].starts_with("point=tx ") && r[1] == "63"),
        "{rows:?}"
    );
    let again = TraceCli::start(
        &config,
        &["--at", "drop", "--count", "1"],
        dir.join("again.pcapng"),
    );
    drop(again);

    // A bad filter is refused naming the word, before anything is armed.
    let out = Command::new(kxdp_binary!())
        .args(["trace", "--config"])
        .arg(&config)
        .args(["--at", "drop", "--match", "udp or tcp", "-w"])
        .arg(dir.join("bad.pcapng"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--match: word 2 (\"or\")"), "{err}");
    c.finish();
}
