//! Pod interfaces attached and detached at run time through the API, the
//! way a CNI plugin's ADD and DEL reach kxdp (issue #14, items 2 and 4):
//! each new pod is wired as `kxdp-cni` wires one (a veth with one queue
//! per worker, its peer in the pod's namespace as `eth0` with a /32 and the
//! gateway on-link), then registered with one `Apply` (an `interfaces` and
//! a `pods` upsert) and removed with one (their deletes).
//!
//! - one pod added, reached across nodes, deleted while a flood to it is in
//!   flight: the flood's frames after the delete are counted, the XDP
//!   program and sockets are gone, the frame accounting balances;
//! - churn: 200 pods created and deleted in a loop, 50 alive at a time, on
//!   one node while two long-lived pods exchange UDP across the nodes: no
//!   loss for them, nothing left behind (veth, namespace, XDP program,
//!   socket, frame), kxdp's memory flat; the time from the `Apply` to the
//!   first frame forwarded for the new pod (its first echo answered from
//!   the other node) p50/p99.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test pods_at_run_time -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kxdp_control::api::{api_socket_path, ApiTarget, BlockingClient};
use kxdp_testbed::{
    pod_ip, privileged_test, tcp_transfer, udp_echo_server, udp_rtt, EchoServer, Netns, NodeKind,
    NodeSpec, RttResult, RuntimePod, TopologySpec, Underlay,
};
use kxdp_tests::{assert_frames_accounted, eventually, ip_of, kxdp_binary, xdp_links, Cluster};

/// One test at a time: each loads both cores (the churn's zero-loss
/// stream and the full node's TCP figures would measure each other).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pods created in the churn.
const CHURN_PODS: u32 = 200;

/// Pods alive at a time in the churn.
const ALIVE: u32 = 50;
/// Addresses the run-time pods take on n1 (10.244.1.100 and up).
const FIRST_HOST: u32 = 100;

fn topology() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("a1", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)))
}

fn api(c: &Cluster) -> BlockingClient {
    let socket = api_socket_path(c.tb().node_config("n1").unwrap());
    BlockingClient::connect(&ApiTarget::Unix(socket)).unwrap()
}

/// Wire pod `i` on n1 as the CNI plugin does, without telling kxdp.
fn wire(c: &Cluster, i: u32) -> RuntimePod {
    wire_at(c, i, Ipv4Addr::new(10, 244, 1, (FIRST_HOST + i % 60) as u8))
}

/// [`wire`] with address `ip`.
fn wire_at(c: &Cluster, i: u32, ip: Ipv4Addr) -> RuntimePod {
    RuntimePod::wire(c.tb(), "n1", i, ip).unwrap_or_else(|e| panic!("wiring pod {i}: {e}"))
}

/// The `Apply` a CNI ADD makes.
fn add(api: &mut BlockingClient, c: &Cluster, pod: &RuntimePod) {
    pod.register(api, "blue")
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
}

/// The `Apply` a CNI DEL makes, then the veth and namespace go.
fn delete(api: &mut BlockingClient, pod: RuntimePod) {
    pod.remove(api).unwrap_or_else(|e| panic!("{e}"));
}

/// Echo requests from `pod` to `to` every millisecond until one is
/// answered: the time since `since`.
fn first_answer(pod: &Netns, to: SocketAddr, since: Instant) -> Option<Duration> {
    let socket = pod
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let _ = socket.send_to(b"first", to);
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            if from == to && &buf[..n] == b"first" {
                return Some(since.elapsed());
            }
        }
    }
    None
}

/// kxdp's resident memory on n1, in kB.
fn rss_kb(c: &mut Cluster) -> u64 {
    kxdp_testbed::rss_kb(c.process("n1").pid().unwrap()).unwrap()
}

/// UDP from a1 to b1 in rounds until stopped: every round's result.
fn stream(c: &Cluster, server: &EchoServer) -> (Arc<AtomicBool>, JoinHandle<Vec<RttResult>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let from = c.pod("a1").netns.clone();
    let to = ip_of(c.pod("b1"));
    let port = server.port();
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut rounds = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            rounds.push(
                udp_rtt(
                    &from,
                    to,
                    port,
                    100,
                    Duration::from_millis(2),
                    Duration::from_secs(1),
                )
                .unwrap(),
            );
        }
        rounds
    });
    (stop, handle)
}

/// The kernel's drop counters of `interface`'s sockets on `node` (summed
/// over workers): (all, fill_ring_empty).
fn kernel_drops(c: &Cluster, node: &str, interface: &str) -> (u64, u64) {
    c.stats(node).socket_drops(interface)
}

fn interfaces_with_prefix(netns: &Netns, prefix: &str) -> Vec<String> {
    netns
        .ip(&["-o", "link", "show"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn pods_come_and_go_through_the_api() {
    privileged_test("pods_come_and_go_through_the_api");
    let _serial = serial();
    let mut c = Cluster::start("pods_at_run_time", topology(), kxdp_binary!());
    c.wait_forwarding("n1");
    c.wait_forwarding("n2");
    let mut api = api(&c);
    let b1 = udp_echo_server(&c.pod("b1").netns, 0).unwrap();
    let b1_addr = SocketAddr::new(ip_of(c.pod("b1")), b1.port());
    let wanted_links: Vec<String> = c.node("n1").interfaces.clone();
    let ports_before = api.status().unwrap().ports.len();

    // One pod: added, reached, then deleted under a flood from b1.
    let pod = wire(&c, 0);
    let started = Instant::now();
    add(&mut api, &c, &pod);
    let took = first_answer(&pod.netns, b1_addr, started);
    assert!(took.is_some(), "the new pod never reached b1\n{}", c.logs());
    let status = api.status().unwrap();
    let workers = status.workers as usize;
    assert_eq!(
        status.ports.len(),
        ports_before + workers,
        "a socket per worker on {}: {:?}",
        pod.host_if,
        status.ports
    );
    let links = xdp_links(&c.node("n1").netns);
    assert!(
        links.iter().any(|l| l.interface == pod.host_if),
        "kxdp's XDP program on {}: {links:?}",
        pod.host_if
    );
    let before = c.totals("n1");
    let target = SocketAddr::new(IpAddr::V4(pod.ip), 9);
    let flood = {
        let from = c.pod("b1").netns.clone();
        std::thread::spawn(move || {
            let socket = from
                .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
                .unwrap()
                .unwrap();
            let end = Instant::now() + Duration::from_millis(400);
            let mut sent = 0u64;
            while Instant::now() < end {
                if socket.send_to(&[0u8; 200], target).is_ok() {
                    sent += 1;
                }
                if sent.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    delete(&mut api, pod);
    let flooded = flood.join().unwrap();
    let moved = c.totals("n1").since(&before);
    eprintln!(
        "flood of {flooded} datagrams to a pod deleted under it: n1 received {}, delivered {}, drops {:?}",
        moved.rx, moved.tx, moved.drops
    );
    assert!(
        moved.dropped("no_route")
            + moved.dropped("vxlan_no_local_pod")
            + moved.dropped("port_down")
            > 0,
        "the frames for the deleted pod are counted: {moved:?}"
    );
    assert_eq!(
        api.status().unwrap().ports.len(),
        ports_before,
        "the pod's sockets are closed"
    );
    assert!(
        eventually(Duration::from_secs(3), || {
            let on: Vec<String> = xdp_links(&c.node("n1").netns)
                .into_iter()
                .map(|l| l.interface)
                .collect();
            on.iter().all(|i| wanted_links.contains(i))
        }),
        "no XDP program left on a deleted pod's interface"
    );
    assert_frames_accounted(&c, "n1", "after one pod deleted under a flood");

    // Churn: 200 pods, 50 alive at a time, beside a1 <-> b1.
    let a_server = udp_echo_server(&c.pod("b1").netns, 0).unwrap();
    // A first round of ALIVE pods warms the allocator before memory is read.
    let mut alive: std::collections::VecDeque<RuntimePod> = Default::default();
    let mut add_to_first = Histogram::<u64>::new(3).unwrap();
    let mut no_answer = Vec::new();
    let (n1_before, n2_before) = (c.totals("n1"), c.totals("n2"));
    let a1_port_before = kernel_drops(&c, "n1", &c.pod("a1").host_interface);
    let (stop, streamer) = stream(&c, &a_server);
    let churn_started = Instant::now();
    let mut rss_warm = 0;
    for i in 1..=CHURN_PODS + ALIVE {
        if i == ALIVE + 1 {
            rss_warm = rss_kb(&mut c);
        }
        if alive.len() as u32 == ALIVE {
            let old = alive.pop_front().unwrap();
            delete(&mut api, old);
        }
        let pod = wire(&c, i);
        let started = Instant::now();
        add(&mut api, &c, &pod);
        let answered = first_answer(&pod.netns, b1_addr, started);
        match answered {
            Some(t) => add_to_first
                .record(u64::try_from(t.as_micros()).unwrap_or(u64::MAX))
                .unwrap(),
            None => {
                if no_answer.is_empty() {
                    eprintln!(
                        "{} (port of {}) never reached b1: n1 {:?}\nstatus {:?}\n{}",
                        pod.name,
                        pod.host_if,
                        c.totals("n1"),
                        api.status().unwrap().ports.len(),
                        c.logs()
                    );
                }
                no_answer.push(pod.name.clone())
            }
        }
        alive.push_back(pod);
    }
    while let Some(old) = alive.pop_front() {
        delete(&mut api, old);
    }
    let churn_took = churn_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rounds = streamer.join().unwrap();
    let rss_after = rss_kb(&mut c);
    let sent: u64 = rounds.iter().map(|r| r.sent).sum();
    let lost: u64 = rounds.iter().map(|r| r.lost).sum();
    let late: u64 = rounds.iter().map(|r| r.late).sum();
    let why: Vec<&String> = rounds.iter().flat_map(|r| &r.failures).collect();
    // What moved on the way (the churned pods' own drops are in it too).
    let (n1_moved, n2_moved) = (
        c.totals("n1").since(&n1_before).drops,
        c.totals("n2").since(&n2_before).drops,
    );
    let a1_port_after = kernel_drops(&c, "n1", &c.pod("a1").host_interface);
    for node in ["n1", "n2"] {
        for p in c.stats(node).ports {
            if p.kernel
                .is_some_and(|k| k.total() + k.rx_fill_ring_empty > 0)
            {
                eprintln!(
                    "{node}: {} queue {} (worker {}): kernel drops {:?}",
                    p.interface, p.queue, p.worker, p.kernel
                );
            }
        }
    }
    eprintln!(
        "during the churn: n1 drops {n1_moved:?}, n2 drops {n2_moved:?}; a1's socket (kernel) {a1_port_before:?} -> {a1_port_after:?}; a1 -> b1 late replies {late}: {why:?}"
    );
    eprintln!(
        "churn: {} pods in {churn_took:?} ({ALIVE} alive at a time); ADD to first frame p50 {} us, p99 {} us, max {} us; a1 -> b1 {sent} sent, {lost} lost; kxdp RSS {rss_warm} kB after the first {ALIVE} pods, {rss_after} kB after all",
        CHURN_PODS + ALIVE,
        add_to_first.value_at_quantile(0.5),
        add_to_first.value_at_quantile(0.99),
        add_to_first.max(),
    );
    assert!(no_answer.is_empty(), "pods never reached b1: {no_answer:?}");
    assert!(sent > 0, "the long-lived pods exchanged nothing");
    assert_eq!(
        a1_port_after, a1_port_before,
        "a1's socket lost frames in the kernel during the churn"
    );
    // A reply that came back after its 1 s timeout was delayed (a busy
    // 2-core machine), not lost; one that never came was lost.
    assert_eq!(
        lost - late,
        0,
        "a1 -> b1 lost datagrams during the churn: {why:?}"
    );
    assert!(
        late <= 2,
        "a1 -> b1: {late} replies more than 1 s late during the churn: {why:?}"
    );
    assert!(
        rss_after < rss_warm + 4096,
        "kxdp's memory grew by {} kB over {CHURN_PODS} pods",
        rss_after.saturating_sub(rss_warm)
    );
    assert!(
        interfaces_with_prefix(&c.node("n1").netns, "kr").is_empty(),
        "veths left behind"
    );
    assert_eq!(
        api.status().unwrap().ports.len(),
        ports_before,
        "sockets left"
    );
    let on: Vec<String> = xdp_links(&c.node("n1").netns)
        .into_iter()
        .map(|l| l.interface)
        .collect();
    assert!(
        on.iter().all(|i| wanted_links.contains(i)),
        "XDP programs left: {on:?}"
    );
    let frames = assert_frames_accounted(&c, "n1", "after the churn");
    eprintln!(
        "stranded frames after the churn: {:?}",
        frames.iter().map(|f| f.stranded).collect::<Vec<_>>()
    );
    drop(b1);
    drop(a_server);
    c.finish();
}

/// Pods on the node in [`a_node_full_of_pods`]: Kubernetes' default limit.
const FULL_NODE: u32 = 110;

/// A transfer's goodput in Gbit/s.
fn gbits(transfer: &kxdp_testbed::Transfer) -> f64 {
    transfer.bytes as f64 * 8.0 / transfer.duration.as_secs_f64() / 1e9
}

/// (InDatagrams, RcvbufErrors) of UDP in `netns` (InDatagrams counts what
/// applications read).
fn udp_counters(netns: &Netns) -> (u64, u64) {
    kxdp_testbed::snmp_counters(netns, "Udp:", ["InDatagrams", "RcvbufErrors"]).unwrap()
}

/// (OutSegs, RetransSegs) of TCP in `netns`.
fn tcp_segments(netns: &Netns) -> (u64, u64) {
    kxdp_testbed::snmp_counters(netns, "Tcp:", ["OutSegs", "RetransSegs"]).unwrap()
}

/// Issue #16: 110 pod interfaces on one node's worker (beside the file's
/// pod and the underlay). Every pod answers a ping from the file's pod;
/// TCP between two of them while the rest idle; a burst of 4,096 UDP
/// datagrams from a third, every one received or counted where dropped;
/// the TCP stream is also measured with two pods, in the same run; then all are removed, the frame accounting
/// balances and nothing is left. Prints the socket drops, retransmits,
/// the time to add 110 pods and kxdp's memory.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_node_full_of_pods() {
    privileged_test("a_node_full_of_pods");
    let _serial = serial();
    let mut c = Cluster::start("full_node", topology(), kxdp_binary!());
    c.wait_forwarding("n1");
    c.wait_forwarding("n2");
    let mut api = api(&c);
    let ports_before = api.status().unwrap().ports.len();
    let rss_before = rss_kb(&mut c);
    let mut pods = Vec::new();
    let started = Instant::now();
    let mut with_two = None;
    for i in 1..=FULL_NODE {
        let pod = wire_at(&c, i, Ipv4Addr::new(10, 244, 1, 20 + i as u8));
        add(&mut api, &c, &pod);
        pods.push(pod);
        if i == 2 {
            // The same TCP stream with two pods, for comparison below.
            let (p1, p2) = (&pods[0], &pods[1]);
            let before = kernel_drops(&c, "n1", &p1.host_if);
            let (out0, retrans0) = tcp_segments(&p1.netns);
            let transfer = tcp_transfer(&p1.netns, &p2.netns, IpAddr::V4(p2.ip), 100_000_000)
                .expect("100 MB from pod 1 to pod 2, two pods");
            let (out1, retrans1) = tcp_segments(&p1.netns);
            let after = kernel_drops(&c, "n1", &p1.host_if);
            with_two = Some((
                gbits(&transfer),
                out1 - out0,
                retrans1 - retrans0,
                after.1 - before.1,
            ));
        }
    }
    let took = started.elapsed();
    let workers = api.status().unwrap().workers as usize;
    assert_eq!(
        api.status().unwrap().ports.len(),
        ports_before + FULL_NODE as usize * workers
    );
    let rss_full = rss_kb(&mut c);

    // Every pod answers a ping from a1.
    let a1 = &c.pod("a1").netns;
    let silent: Vec<String> = pods
        .iter()
        .filter(|p| {
            !a1.exec_output("ping", &["-c", "1", "-W", "2", &p.ip.to_string()])
                .is_ok_and(|o| o.status.success())
        })
        .map(|p| p.name.clone())
        .collect();
    assert!(
        silent.is_empty(),
        "pods that did not answer a ping: {silent:?}\nn1 {:?}\n{:?}",
        c.totals("n1"),
        kxdp_tests::frames(&c, "n1")
    );

    // TCP from pod 1 to pod 2 while the other 108 idle.
    let (p1, p2, p3, p4) = (&pods[0], &pods[1], &pods[2], &pods[3]);
    let before = c.totals("n1");
    let socket_drops = |name: &str| kernel_drops(&c, "n1", name);
    let p1_before = socket_drops(&p1.host_if);
    let (out0, retrans0) = tcp_segments(&p1.netns);
    let transfer = tcp_transfer(&p1.netns, &p2.netns, IpAddr::V4(p2.ip), 100_000_000)
        .expect("100 MB from pod 1 to pod 2");
    let (out1, retrans1) = tcp_segments(&p1.netns);
    let moved = c.totals("n1").since(&before);
    let (two_gbits, two_segments, two_retrans, two_empty) = with_two.unwrap();
    eprintln!(
        "TCP pod 1 -> pod 2, one worker: 2 pods {two_gbits:.2} Gbit/s, {two_segments} segments, {two_retrans} retransmitted, {two_empty} fill_ring_empty; {FULL_NODE} pods {:.2} Gbit/s ({:.0} % of 2 pods), {} segments, {} retransmitted, {} fill_ring_empty; n1 drops {:?}",
        gbits(&transfer),
        gbits(&transfer) * 100.0 / two_gbits,
        out1 - out0,
        retrans1 - retrans0,
        socket_drops(&p1.host_if).1 - p1_before.1,
        moved.drops
    );
    // Issue #16's targets (no fill_ring_empty for one TCP stream, within
    // 10 % of two pods) are printed above, not asserted: a timed figure on
    // a shared 2-core machine is a benchmark's to judge.

    // A burst of 4,096 datagrams from pod 3 to a socket in pod 4 that
    // never reads: every datagram either reached pod 4's kernel (received
    // or over its socket's buffer, both counted there) or was dropped and
    // counted on the way (pod 3's socket in the kernel, a kxdp reason).
    let sink = p4
        .netns
        .run_in(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .unwrap();
    let port = sink.local_addr().unwrap().port();
    let burst = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         for i in range(4096): s.sendto(b'x'*100,('{}',{port}))\n",
        p4.ip
    );
    // What reached pod 4's kernel: datagrams over the socket's buffer
    // (RcvbufErrors) and those queued in it (read below).
    let udp_in = |netns: &Netns| udp_counters(netns).1;
    let tx_dropped = |netns: &Netns| -> u64 { netns.link_counter("eth0", "tx_dropped").unwrap() };
    let (at_pod4, at_pod3, at_eth0, before) = (
        udp_in(&p4.netns),
        socket_drops(&p3.host_if).0,
        tx_dropped(&p3.netns),
        c.totals("n1"),
    );
    p3.netns.exec("python3", &["-c", &burst]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sink.set_nonblocking(true).unwrap();
    let mut queued = 0u64;
    let mut buf = [0u8; 256];
    while sink.recv(&mut buf).is_ok() {
        queued += 1;
    }
    let overflowed = udp_in(&p4.netns) - at_pod4;
    let reached = queued + overflowed;
    let in_kernel = socket_drops(&p3.host_if).0 - at_pod3;
    let moved = c.totals("n1").since(&before);
    let in_kxdp = moved.all_drops() - in_kernel;
    // A veth whose peer runs XDP queues frames in a 256-entry ring for the
    // peer's NAPI; when it is full the kernel drops them at the sender's
    // eth0 (tx_dropped), before XDP: the one place kxdp cannot count.
    let at_veth = tx_dropped(&p3.netns) - at_eth0;
    eprintln!(
        "burst of 4096 from pod 3: {reached} reached pod 4 ({queued} queued on its socket, {overflowed} over its buffer), {in_kernel} dropped at pod 3's socket ({:?}), {in_kxdp} by kxdp ({:?}), {at_veth} at pod 3's veth before XDP",
        socket_drops(&p3.host_if),
        moved.drops
    );
    assert_eq!(
        reached + in_kernel + in_kxdp + at_veth,
        4096,
        "datagrams of the burst unaccounted for"
    );
    drop(sink);
    let loops = c.stats("n1");
    let slow: u64 = loops.workers.iter().map(|w| w.slow_loops).sum();
    eprintln!(
        "{FULL_NODE} pods added in {took:.1?}; kxdp RSS {rss_before} kB -> {rss_full} kB; worker loops over 1 ms so far: {slow}"
    );

    for pod in pods {
        delete(&mut api, pod);
    }
    assert_eq!(api.status().unwrap().ports.len(), ports_before);
    assert!(
        interfaces_with_prefix(&c.node("n1").netns, "kr").is_empty(),
        "veths left behind"
    );
    assert_frames_accounted(&c, "n1", "after a node full of pods");
    c.finish();
}
