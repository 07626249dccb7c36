//! `workers.pod_napi: worker-core` on a real kxdp node (issue #18): while
//! kxdp runs, each pod veth is in threaded NAPI mode and its NAPI thread
//! is pinned to exactly the worker's core, at SCHED_OTHER, for the file's
//! pods and for a pod attached at run time through the API; a pod deleted
//! through the API and every pod at kxdp's exit get their threaded setting
//! back as it was. Where it cannot apply (an XDP program in generic mode
//! gives a veth no NAPI), the node forwards all the same and `kxdp stats`
//! says why per port.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test pod_napi -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kxdp_config::{PodNapi, PollMode, WorkerSpec};
use kxdp_control::api::{api_socket_path, ApiTarget, BlockingClient, ChangeSet, KeySet};
use kxdp_node::netdev::{Napi, NetdevSocket};
use kxdp_testbed::Underlay;
use kxdp_testbed::{pod_ip, privileged_test, Netns, NodeKind, NodeSpec, RuntimePod, TopologySpec};
use kxdp_tests::{eventually, kxdp_binary, Cluster};
use nix::unistd::Pid;

/// The worker's core: the machine's second (CI's machines have two).
const WORKER_CORE: usize = 1;

fn topology() -> TopologySpec {
    let workers = WorkerSpec {
        count: 1,
        cores: vec![WORKER_CORE],
        poll_mode: PollMode::Adaptive,
        pod_napi: PodNapi::WorkerCore,
        ..WorkerSpec::default()
    };
    let mut n1 = NodeSpec::new("n1", NodeKind::Kxdp)
        .with_pod("a1", "blue", pod_ip(1, 10))
        // `napi/va2long-<id>` is longer than 15 characters: Linux 6.13 on
        // shows such a kernel thread's whole name in /proc/PID/comm,
        // older kernels the first 15.
        .with_pod("a2long", "blue", pod_ip(1, 11));
    n1.workers = workers;
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(n1)
        .with_node(NodeSpec::new("n2", NodeKind::KernelVxlan).with_pod("b1", "blue", pod_ip(2, 10)))
}

/// `/sys/class/net/<interface>/threaded` in `netns`.
fn threaded(netns: &Netns, interface: &str) -> String {
    netns
        .exec("cat", &[format!("/sys/class/net/{interface}/threaded")])
        .unwrap_or_else(|e| panic!("{interface}: {e}"))
        .trim()
        .to_string()
}

/// `interface`'s NAPI instances in `netns`, as the kernel's netdev family
/// lists them.
fn napis(netns: &Netns, interface: &str) -> Vec<Napi> {
    let name = interface.to_string();
    netns
        .run_in(move || {
            let index = kxdp_dataplane::xsk::interface_index(&name)?;
            NetdevSocket::open()
                .and_then(|mut s| s.napis(index))
                .map_err(std::io::Error::other)
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{interface}'s NAPI dump: {e}"))
}

/// The cores `pid` may run on.
fn affinity(pid: u32) -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(i32::try_from(pid).unwrap())).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

/// The scheduling policy of `pid` (`/proc/PID/stat` field 41; 0 is
/// SCHED_OTHER).
fn policy(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
    // Fields from 3 (state) on; policy is field 41.
    after_comm
        .split_whitespace()
        .nth(41 - 3)
        .unwrap()
        .parse()
        .unwrap()
}

/// `interface` is threaded and its one NAPI thread is on the worker's core
/// alone, at SCHED_OTHER; its pid.
fn assert_on_worker_core(netns: &Netns, interface: &str) -> u32 {
    assert_eq!(
        threaded(netns, interface),
        "1",
        "{interface} threaded while kxdp owns it"
    );
    let napis = napis(netns, interface);
    assert_eq!(
        napis.len(),
        1,
        "{interface}: one queue, one NAPI: {napis:?}"
    );
    let pid = napis[0]
        .pid
        .unwrap_or_else(|| panic!("{interface}: no NAPI thread: {napis:?}"));
    assert_eq!(
        affinity(pid),
        [WORKER_CORE],
        "{interface}'s NAPI thread {pid} is on exactly the worker's core"
    );
    assert_eq!(
        policy(pid),
        0,
        "{interface}'s NAPI thread {pid} at SCHED_OTHER"
    );
    eprintln!(
        "{interface}: threaded 1, NAPI {} thread {pid} on cores {:?}, policy SCHED_OTHER",
        napis[0].id,
        affinity(pid)
    );
    pid
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn pod_napi_threads_run_on_the_worker_core_and_are_put_back() {
    let test = "pod_napi_threads_run_on_the_worker_core_and_are_put_back";
    privileged_test(test);
    let mut c = Cluster::build(test, topology(), kxdp_binary!());
    let node = c.node("n1").netns.clone();
    let pods = ["a1", "a2long"].map(|p| c.pod(p).host_interface.clone());
    let before = pods.clone().map(|itf| threaded(&node, &itf));
    eprintln!("before kxdp: threaded {pods:?} = {before:?}");

    c.start_kxdp("n1");
    for itf in &pods {
        assert_on_worker_core(&node, itf);
    }
    let stats = c.stats("n1");
    for port in &stats.ports {
        if pods.contains(&port.interface) {
            assert!(
                port.napi.starts_with(&format!("core {WORKER_CORE} (NAPI ")),
                "kxdp stats shows where {}'s NAPI runs: {:?}",
                port.interface,
                port.napi
            );
        } else {
            assert_eq!(port.napi, "kernel", "{}", port.interface);
        }
    }

    // A pod attached at run time gets the same; its delete puts it back.
    let mut api = BlockingClient::connect(&ApiTarget::Unix(api_socket_path(
        c.tb().node_config("n1").unwrap(),
    )))
    .unwrap();
    let pod = RuntimePod::wire(c.tb(), "n1", 1, pod_ip(1, 100)).unwrap();
    let runtime_before = threaded(&node, &pod.host_if);
    pod.register(&mut api, "blue")
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_on_worker_core(&node, &pod.host_if);
    api.apply(&ChangeSet::delete(KeySet {
        pods: vec![pod.name.clone()],
        interfaces: vec![pod.host_if.clone()],
        ..KeySet::default()
    }))
    .unwrap();
    assert_eq!(
        threaded(&node, &pod.host_if),
        runtime_before,
        "{}'s threaded setting put back when its pod was deleted",
        pod.host_if
    );
    drop(pod);
    // An open API connection would hold kxdp's graceful stop.
    drop(api);

    // kxdp's exit puts back the file's pods.
    let status = c.process("n1").terminate().unwrap();
    eprintln!("kxdp on n1 stopped: {status:?}");
    let back = eventually(Duration::from_secs(3), || {
        pods.iter()
            .zip(&before)
            .all(|(itf, was)| threaded(&node, itf) == *was)
    });
    let after = pods.clone().map(|itf| threaded(&node, &itf));
    eprintln!("after kxdp: threaded {pods:?} = {after:?}");
    assert!(
        back,
        "threaded back to {before:?} after kxdp stopped: {after:?}"
    );
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_pod_napi_that_cannot_apply_leaves_the_node_forwarding() {
    let test = "a_pod_napi_that_cannot_apply_leaves_the_node_forwarding";
    privileged_test(test);
    // In generic (skb) mode an XDP program gives a veth no NAPI, so the
    // kernel refuses threaded mode.
    let mut spec = topology();
    spec.nodes[0].workers.xdp_mode = kxdp_config::XdpMode::Generic;
    let c = Cluster::start(test, spec, kxdp_binary!());
    let node = c.node("n1").netns.clone();
    let stats = c.stats("n1");
    for pod in ["a1", "a2long"] {
        let itf = &c.pod(pod).host_interface;
        assert_eq!(threaded(&node, itf), "0", "{itf} left as it was");
        let port = stats
            .ports
            .iter()
            .find(|p| &p.interface == itf)
            .unwrap_or_else(|| panic!("{itf} not bound: {:?}", stats.ports));
        assert!(
            port.napi
                .starts_with("kernel (worker-core failed: setting "),
            "kxdp stats says why {itf}'s NAPI was not placed: {:?}",
            port.napi
        );
        eprintln!("{itf}: NAPI {}", port.napi);
    }
    let ping = kxdp_testbed::ping(
        &c.pod("a1").netns,
        std::net::IpAddr::V4(c.pod("b1").ip),
        3,
        Duration::from_millis(20),
    )
    .unwrap();
    assert_eq!(ping.received, 3, "a1 -> b1 through kxdp\n{}", c.logs());
}
