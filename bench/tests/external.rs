//! Privileged smoke tests of the external AF_XDP dataplanes (DPDK testpmd
//! with net_af_xdp, Open vSwitch's userspace datapath with afxdp ports): on a
//! two-node testbed, one instance per node forwards pod A → node 1's `ul0` →
//! node 2's `ul0` → pod B; UDP datagrams from a socket in pod A must reach a
//! socket in pod B (and back), the dataplanes' own counters must have seen
//! them, and afterwards no process, XDP program, promiscuous flag, tap
//! device, namespace or directory may remain.
//!
//! CI does not run `scripts/setup-bench`, so these tests skip with a printed
//! reason when dpdk-testpmd or the OVS tools are not installed — even with
//! `CI=true` (unlike the other privileged tests, which must run in CI): the
//! benchmark is what needs them, not the build.
//!
//! `forwarding_rate` (ignored: a measurement of about a minute, not a CI
//! test) measures each one's packet rate alone on node 1 with the AF_XDP
//! generator and the XDP counting sink of `kxdp_bench::generator`:
//!
//! ```sh
//! cargo test -p kxdp-bench --release --test external -- --ignored --nocapture forwarding_rate
//! # KXDP_EXTERNAL_SINK=threaded|forwarder  KXDP_EXTERNAL_ROUNDS=4  KXDP_EXTERNAL_SECONDS=5
//! ```

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use kxdp_bench::external::{
    pin_gateway_neighbour, process_alive, start_ovs, start_testpmd, xdp_programs,
    ExternalDataplane, ExternalKind, ForwardSpec,
};
use kxdp_bench::generator::{FlowSpec, Generator, GeneratorOptions, Sink};
use kxdp_testbed::{
    pod_ip, privileged_test, Netns, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay, POD_IF,
    UNDERLAY_IF,
};

const PORT: u16 = 9000;
const FORWARD: u32 = 200;
const BACK: u32 = 50;

/// True when `kind`'s tools are installed; otherwise prints why the test is
/// skipped. Deliberately not an error in CI (see the file's doc comment).
/// Fails `test` when `kind` is not installed (its test is ignored unless
/// the build found it: see build.rs).
fn installed(test: &str, kind: ExternalKind) {
    if let Err(why) = kind.check_installed() {
        panic!("{test}: {why}");
    }
}

fn start(kind: ExternalKind, spec: &ForwardSpec) -> anyhow::Result<ExternalDataplane> {
    match kind {
        ExternalKind::Testpmd => start_testpmd(spec),
        ExternalKind::Ovs => start_ovs(spec),
    }
}

/// A UDP socket bound in pod `pod`'s namespace.
fn socket_in(testbed: &Testbed, pod: &str, port: u16) -> UdpSocket {
    let socket = testbed
        .pod(pod)
        .unwrap()
        .netns
        .run_in(move || UdpSocket::bind(("0.0.0.0", port)))
        .unwrap()
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket
}

/// Send `count` 18-byte datagrams (64-byte frames on the wire, FCS
/// included) numbered 0.., and collect the numbers `to` receives within a
/// few seconds, checking they come from `from_ip`.
fn exchange(
    from: &UdpSocket,
    to: &UdpSocket,
    to_addr: SocketAddr,
    from_ip: std::net::Ipv4Addr,
    count: u32,
) -> BTreeSet<u32> {
    for seq in 0..count {
        let mut payload = [0u8; 18];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        from.send_to(&payload, to_addr).unwrap();
        if seq % 32 == 31 {
            // A socket sender is not a generator: keep well below any ring size.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    while got.len() < count as usize && Instant::now() < deadline {
        match to.recv_from(&mut buf) {
            Ok((18, SocketAddr::V4(src))) if *src.ip() == from_ip => {
                got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
            Ok((n, src)) => panic!("unexpected datagram of {n} bytes from {src}"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn smoke(test: &str, kind: ExternalKind) {
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("ea", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("eb", "blue", pod_ip(2, 10)));
    let testbed = Testbed::build(spec).unwrap();
    let prefix = testbed.prefix().to_string();
    // kxdp is not started: nothing answers ARP for the pods' gateways.
    pin_gateway_neighbour(&testbed, "ea").unwrap();
    pin_gateway_neighbour(&testbed, "eb").unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spec_a = ForwardSpec::between(&testbed, "ea", "eb", 1 % cores).unwrap();
    let spec_b = ForwardSpec::between(&testbed, "eb", "ea", 0).unwrap();
    let interfaces_a = [
        spec_a.pod_interface.as_str(),
        spec_a.underlay_interface.as_str(),
    ];
    let interfaces_b = [
        spec_b.pod_interface.as_str(),
        spec_b.underlay_interface.as_str(),
    ];

    let dp_a = start(kind, &spec_a).unwrap();
    let dp_b = start(kind, &spec_b).unwrap();
    eprintln!(
        "{test}: started in {:?} and {:?}, pids {:?} {:?}",
        dp_a.startup_time(),
        dp_b.startup_time(),
        dp_a.pids(),
        dp_b.pids()
    );
    let pids: Vec<u32> = dp_a.pids().into_iter().chain(dp_b.pids()).collect();
    let paths: Vec<_> = dp_a.paths().into_iter().chain(dp_b.paths()).collect();
    for path in &paths {
        assert!(path.exists(), "{} is missing while it runs", path.display());
    }
    assert_eq!(pids.len(), if kind == ExternalKind::Ovs { 4 } else { 2 });
    assert!(pids.iter().all(|p| process_alive(*p)));
    assert_eq!(xdp_programs(&spec_a.netns, &interfaces_a).unwrap().len(), 2);

    // A second instance on the same veths is refused, and the first survives.
    let refused = start(kind, &spec_a).expect_err("the veths are taken");
    assert!(
        refused.to_string().contains("already has XDP"),
        "{refused:#}"
    );

    let pod_a = testbed.pod("ea").unwrap().clone();
    let pod_b = testbed.pod("eb").unwrap().clone();
    let sock_a = socket_in(&testbed, "ea", PORT);
    let sock_b = socket_in(&testbed, "eb", PORT);
    let forward = exchange(&sock_a, &sock_b, (pod_b.ip, PORT).into(), pod_a.ip, FORWARD);
    assert_eq!(
        forward.len(),
        FORWARD as usize,
        "pod A → pod B through {kind}: got {forward:?}"
    );
    let back = exchange(&sock_b, &sock_a, (pod_a.ip, PORT).into(), pod_b.ip, BACK);
    assert_eq!(
        back.len(),
        BACK as usize,
        "pod B → pod A through {kind}: got {back:?}"
    );

    // Node 1 stops explicitly and reports its counters; node 2 by drop.
    let counters = dp_a.stop().unwrap();
    eprintln!("{test}: node 1 counters {counters:?}");
    assert!(
        counters.pod.rx_packets >= u64::from(FORWARD),
        "{counters:?}"
    );
    assert!(
        counters.underlay.tx_packets >= u64::from(FORWARD),
        "{counters:?}"
    );
    assert!(
        counters.underlay.rx_packets >= u64::from(BACK),
        "{counters:?}"
    );
    assert!(counters.pod.tx_packets >= u64::from(BACK), "{counters:?}");
    assert!(
        counters.busy_cycles_per_packet.is_some_and(|c| c > 0.0),
        "{counters:?}"
    );
    drop(dp_b);

    for pid in &pids {
        assert!(!process_alive(*pid), "pid {pid} still runs");
    }
    for path in &paths {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    for (spec, interfaces) in [(&spec_a, &interfaces_a), (&spec_b, &interfaces_b)] {
        assert_eq!(
            xdp_programs(&spec.netns, interfaces).unwrap(),
            vec![],
            "XDP left on {interfaces:?}"
        );
        let links = spec.netns.ip(&["-o", "link", "show"]).unwrap();
        assert!(
            !links.contains("PROMISC"),
            "promiscuous mode left on: {links}"
        );
        assert!(
            !links.contains("kxovs") && !links.contains("ovs-netdev"),
            "OVS devices left: {links}"
        );
    }
    drop(testbed);
    assert_eq!(Testbed::leftovers(&prefix).unwrap(), Vec::<String>::new());
}

/// Kill the dataplane's processes with SIGKILL (as a crash would), then
/// stop it: the stop reports the crash and still removes what they left
/// (XDP programs, promiscuous mode, OVS's taps, directories).
fn killed(test: &str, kind: ExternalKind) {
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("ka", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("kb", "blue", pod_ip(2, 10)));
    let testbed = Testbed::build(spec).unwrap();
    let prefix = testbed.prefix().to_string();
    let spec_a = ForwardSpec::between(&testbed, "ka", "kb", 0).unwrap();
    let interfaces = [
        spec_a.pod_interface.as_str(),
        spec_a.underlay_interface.as_str(),
    ];
    let dp = start(kind, &spec_a).unwrap();
    let pids = dp.pids();
    let paths = dp.paths();
    for pid in &pids {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    while xdp_programs(&spec_a.netns, &interfaces).unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // libxdp attached through netlink: the programs outlive the process.
    assert_eq!(xdp_programs(&spec_a.netns, &interfaces).unwrap().len(), 2);
    let error = dp
        .stop()
        .expect_err("a killed dataplane cannot stop cleanly");
    eprintln!("{test}: stop after SIGKILL: {error:#}");
    for pid in &pids {
        assert!(!process_alive(*pid), "pid {pid} still runs");
    }
    assert_eq!(xdp_programs(&spec_a.netns, &interfaces).unwrap(), vec![]);
    let links = spec_a.netns.ip(&["-o", "link", "show"]).unwrap();
    assert!(
        !links.contains("PROMISC"),
        "promiscuous mode left on: {links}"
    );
    assert!(
        !links.contains("kxovs") && !links.contains("ovs-netdev"),
        "OVS devices left: {links}"
    );
    for path in &paths {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    drop(testbed);
    assert_eq!(Testbed::leftovers(&prefix).unwrap(), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_testpmd)),
    ignore = "needs root and dpdk-testpmd (scripts/setup-bench)"
)]
fn testpmd_killed_leaves_nothing_behind() {
    let test = "testpmd_killed_leaves_nothing_behind";
    privileged_test(test);
    installed(test, ExternalKind::Testpmd);
    killed(test, ExternalKind::Testpmd);
}

#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_ovs)),
    ignore = "needs root and Open vSwitch (scripts/setup-bench)"
)]
fn ovs_killed_leaves_nothing_behind() {
    let test = "ovs_killed_leaves_nothing_behind";
    privileged_test(test);
    installed(test, ExternalKind::Ovs);
    killed(test, ExternalKind::Ovs);
}

#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_testpmd)),
    ignore = "needs root and dpdk-testpmd (scripts/setup-bench)"
)]
fn testpmd_forwards_between_pod_veth_and_underlay_and_cleans_up() {
    let test = "testpmd_forwards_between_pod_veth_and_underlay_and_cleans_up";
    privileged_test(test);
    installed(test, ExternalKind::Testpmd);
    smoke(test, ExternalKind::Testpmd);
}

#[test]
#[cfg_attr(
    not(all(kxdp_privileged, kxdp_ovs)),
    ignore = "needs root and Open vSwitch (scripts/setup-bench)"
)]
fn ovs_forwards_between_pod_veth_and_underlay_and_cleans_up() {
    let test = "ovs_forwards_between_pod_veth_and_underlay_and_cleans_up";
    privileged_test(test);
    installed(test, ExternalKind::Ovs);
    smoke(test, ExternalKind::Ovs);
}

/// Kernel threads `napi/<ifname>-<id>`.
fn napi_threads(ifname: &str) -> Vec<u32> {
    let prefix = format!("napi/{ifname}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.trim().starts_with(&prefix).then_some(pid)
        })
        .collect()
}

/// Put `ifname`'s veth receive work in a NAPI thread pinned to `core`.
fn threaded_napi(netns: &Netns, ifname: &str, core: usize) -> Vec<u32> {
    let before = napi_threads(ifname);
    netns
        .exec(
            "sh",
            &["-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")],
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let new: Vec<u32> = napi_threads(ifname)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if !new.is_empty() || Instant::now() > deadline {
            for pid in &new {
                let status = std::process::Command::new("taskset")
                    .args(["-pc", &core.to_string(), &pid.to_string()])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            return new;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One sample: generator rate, sink rate, the forwarder's counters.
struct RateSample {
    generated_pps: f64,
    received_pps: f64,
    cycles_per_packet: Option<f64>,
    forwarder_rx_dropped: u64,
}

/// Pod `src` on node 1 → the forwarder on node 1 (core 1) → node 2's `ul0`,
/// where the counting sink drops and counts. The generator (nice 19) and the
/// threaded NAPI of node 1's pod veth (the XDP redirect into the forwarder's
/// socket, the copy into its UMEM) run on core 0. The sink's receive work
/// runs in a NAPI thread on core 0 (`threaded`), or in the forwarder's own
/// transmit on core 1 (`forwarder`: without threaded NAPI the veth peer's
/// receive runs on the transmitting CPU).
fn rate_sample(kind: ExternalKind, seconds: f64, sink_threaded: bool) -> RateSample {
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("src", "blue", pod_ip(1, 2)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("dst", "blue", pod_ip(2, 2)));
    let testbed = Testbed::build(spec).unwrap();
    let src = testbed.pod("src").unwrap().clone();
    let dst = testbed.pod("dst").unwrap().clone();
    let node1 = testbed.node("n1").unwrap().clone();
    let node2 = testbed.node("n2").unwrap().clone();
    let forward = ForwardSpec::between(&testbed, "src", "dst", 1).unwrap();
    let dataplane = start(kind, &forward).unwrap();
    let sink = Sink::attach(&node2.netns, UNDERLAY_IF).unwrap();
    if sink_threaded {
        threaded_napi(&node2.netns, UNDERLAY_IF, 0);
    }
    // Needs the forwarder's XDP program on it first (veth NAPI).
    assert!(!threaded_napi(&node1.netns, &src.host_interface, 0).is_empty());
    let flows = FlowSpec {
        src_mac: src.mac,
        dst_mac: src.host_mac,
        src_ip: src.ip,
        dst_ip: dst.ip,
        src_port: 40000,
        dst_port: 9,
        flows: 16,
        frame_bytes: 60,
    };
    let mut generator = Generator::start(
        &src.netns,
        &flows,
        &GeneratorOptions {
            ifname: POD_IF.into(),
            core: Some(0),
            nice: Some(19),
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let (sent0, received0, t0) = (
        generator.completed(),
        sink.read().unwrap().packets,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (sent1, received1) = (generator.completed(), sink.read().unwrap().packets);
    let elapsed = t0.elapsed().as_secs_f64();
    generator.stop().unwrap();
    let counters = dataplane.stop().unwrap();
    assert!(received1 > received0, "nothing arrived through {kind}");
    RateSample {
        generated_pps: (sent1 - sent0) as f64 / elapsed,
        received_pps: (received1 - received0) as f64 / elapsed,
        cycles_per_packet: counters.busy_cycles_per_packet,
        forwarder_rx_dropped: counters.pod.rx_dropped,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
#[ignore = "a measurement, not a CI test: see the file's documentation"]
fn forwarding_rate() {
    let test = "forwarding_rate";
    privileged_test(test);
    for kind in ExternalKind::ALL {
        installed(test, kind);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cores >= 2,
        "needs two cores (generator on 0, forwarder on 1)"
    );
    let env = |key: &str| std::env::var(key).ok();
    let rounds: usize = env("KXDP_EXTERNAL_ROUNDS").map_or(4, |v| v.parse().unwrap());
    let seconds: f64 = env("KXDP_EXTERNAL_SECONDS").map_or(5.0, |v| v.parse().unwrap());
    let sink_threaded = env("KXDP_EXTERNAL_SINK").is_none_or(|v| v != "forwarder");
    let mut received: Vec<(ExternalKind, f64)> = Vec::new();
    for round in 0..rounds {
        for kind in ExternalKind::ALL {
            let s = rate_sample(kind, seconds, sink_threaded);
            println!(
                "round {round} {kind:8} generator {:.3} Mpps  sink {:.3} Mpps  loss {:5.1}%  forwarder rx_dropped (whole run) {}  busy cycles/packet {:.0?}",
                s.generated_pps / 1e6,
                s.received_pps / 1e6,
                100.0 * (1.0 - s.received_pps / s.generated_pps),
                s.forwarder_rx_dropped,
                s.cycles_per_packet
            );
            received.push((kind, s.received_pps));
        }
    }
    for kind in ExternalKind::ALL {
        let values: Vec<f64> = received
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, v)| *v)
            .collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        println!(
            "{kind:8} median {:.3} Mpps (min {:.3}, max {:.3}) over {rounds} rounds, sink receive work on {}",
            median(values) / 1e6,
            min / 1e6,
            max / 1e6,
            if sink_threaded { "core 0 (threaded NAPI)" } else { "the forwarder's core 1" }
        );
    }
}
