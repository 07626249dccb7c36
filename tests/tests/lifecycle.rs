//! kxdp's process lifecycle on a node: a `kill -9` leaves no XDP program
//! attached (bpf_links die with the process) and a new kxdp starts cleanly
//! on the same configuration; SIGTERM and SIGINT stop it within a second
//! with exit status 0 and every link detached.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test lifecycle -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use kxdp_testbed::{
    ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, udp_echo_server, udp_rtt, NodeKind,
    NodeSpec, TopologySpec, Underlay,
};
use kxdp_tests::{
    assert_all_lost, assert_no_loss, bpftool_xdp, eventually, ip_of, kxdp_binary,
    programs_still_loaded, xdp_links, Cluster,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long the kernel may take to detach links of a dead process.
const DETACH_TIMEOUT: Duration = Duration::from_secs(3);
/// How fast a signalled kxdp must be gone.
const STOP_WITHIN: Duration = Duration::from_secs(1);

fn two_nodes() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("a1", "blue", pod_ip(1, 10))
                .with_pod("a2", "blue", pod_ip(1, 11)),
        )
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)))
}

/// ICMP, UDP and TCP from a1 to b1 and from a1 to a2, without loss.
fn traffic_flows(c: &Cluster, what: &str) {
    for to in ["b1", "a2"] {
        let dst = c.pod(to);
        let src = &c.pod("a1").netns;
        let icmp = ping(src, ip_of(dst), 10, Duration::from_millis(5)).unwrap();
        assert_no_loss(&icmp, &format!("{what}: a1 -> {to} icmp\n{}", c.logs()));
        let udp_server = udp_echo_server(&dst.netns, 0).unwrap();
        let udp = udp_rtt(
            src,
            ip_of(dst),
            udp_server.port(),
            20,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&udp, &format!("{what}: a1 -> {to} udp"));
        let tcp_server = tcp_echo_server(&dst.netns, 0).unwrap();
        let tcp = tcp_rtt(
            src,
            ip_of(dst),
            tcp_server.port(),
            20,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_no_loss(&tcp, &format!("{what}: a1 -> {to} tcp"));
    }
}

/// kxdp's XDP programs on `node`: one per interface of its configuration.
fn attached(c: &Cluster, node: &str) -> BTreeSet<u32> {
    let n = c.node(node);
    let links = xdp_links(&n.netns);
    let on: BTreeSet<&str> = links.iter().map(|l| l.interface.as_str()).collect();
    let wanted: BTreeSet<&str> = n.interfaces.iter().map(String::as_str).collect();
    assert_eq!(on, wanted, "XDP on {node}: {links:?}");
    assert_eq!(
        links.len(),
        wanted.len(),
        "one program per interface: {links:?}"
    );
    links.into_iter().map(|l| l.program).collect()
}

/// Nothing attached to any interface of `node`, as `ip -d link` and
/// `bpftool net` see it (waiting up to `timeout` for that), and none of
/// `programs` still loaded (the kernel frees them after a grace period).
fn assert_nothing_attached(c: &Cluster, node: &str, programs: &BTreeSet<u32>, timeout: Duration) {
    let netns = c.node(node).netns.clone();
    let detached = eventually(timeout, || xdp_links(&netns).is_empty());
    assert!(
        detached,
        "XDP still attached on {node}: {:?}",
        xdp_links(&netns)
    );
    let bpftool = bpftool_xdp(&netns);
    assert!(bpftool.is_empty(), "bpftool net on {node}: {bpftool:?}");
    let alive = programs_still_loaded(programs, DETACH_TIMEOUT);
    assert!(
        alive.is_empty(),
        "programs {alive:?} of {node}'s kxdp still loaded"
    );
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn kill_9_leaves_no_xdp_program_and_kxdp_restarts_cleanly() {
    privileged_test("kill_9_leaves_no_xdp_program_and_kxdp_restarts_cleanly");
    let mut c = Cluster::start("kill9", two_nodes(), kxdp_binary!());
    traffic_flows(&c, "before kill -9");
    let old = attached(&c, "n1");
    let socket = c.api_socket("n1");

    let process = c.process("n1");
    let pid = process.pid().unwrap();
    let status = process.kill9().unwrap().expect("kxdp was running");
    assert_eq!(status.signal(), Some(9), "{status}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert_nothing_attached(&c, "n1", &old, DETACH_TIMEOUT);
    // kxdp had no chance to clean up its API socket: the file stays, but
    // nobody answers it.
    assert!(kxdp_control::stats::fetch(&socket).is_err());

    // Without a dataplane, n1's pods are cut off (nothing leaks through
    // the node's kernel).
    let cut_off = ping(
        &c.pod("a1").netns,
        ip_of(c.pod("b1")),
        3,
        Duration::from_millis(20),
    )
    .unwrap();
    assert_all_lost(&cut_off, "a1 -> b1 with kxdp killed");

    // A new kxdp on the same configuration starts cleanly and forwards.
    let started = Instant::now();
    let log = c.start_kxdp("n1").log_path().to_path_buf();
    eprintln!("kxdp restarted on n1 in {:?}", started.elapsed());
    let new = attached(&c, "n1");
    assert!(new.is_disjoint(&old), "new programs {new:?} vs old {old:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for bad in ["ERROR", "WARN", "panicked"] {
        assert!(!text.contains(bad), "restart log has {bad}:\n{text}");
    }
    let before = c.totals("n1");
    traffic_flows(&c, "after restart");
    let t = c.totals("n1").since(&before);
    assert!(t.encapsulated >= 50 && t.decapsulated >= 50, "{t:?}");
    c.finish();
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn sigterm_and_sigint_stop_kxdp_within_a_second_and_detach() {
    privileged_test("sigterm_and_sigint_stop_kxdp_within_a_second_and_detach");
    let mut c = Cluster::start("sigterm", two_nodes(), kxdp_binary!());
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        traffic_flows(&c, &format!("before {signal}"));
        let programs = attached(&c, "n1");
        let socket = c.api_socket("n1");
        assert!(socket.exists());

        let process = c.process("n1");
        let pid = process.pid().unwrap();
        let sent = Instant::now();
        kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
        let stopped = eventually(STOP_WITHIN, || !process.is_running());
        let took = sent.elapsed();
        let status = process.terminate().unwrap().expect("kxdp had a status");
        let log = process.log_tail(5);
        eprintln!("{signal}: kxdp exited after {took:?} with {status}");
        assert!(
            stopped,
            "kxdp still ran {STOP_WITHIN:?} after {signal} (then {status}); log:\n{log}"
        );
        assert!(
            status.success(),
            "{signal}: kxdp exited with {status}; log:\n{log}"
        );
        assert!(log.contains("stopped"), "{signal}: log:\n{log}");
        // The links are gone when the process is: no grace period.
        assert_nothing_attached(&c, "n1", &programs, Duration::ZERO);
        assert!(!socket.exists(), "{signal}: API socket left behind");

        c.start_kxdp("n1");
    }
    traffic_flows(&c, "after the last restart");
    c.finish();
}
