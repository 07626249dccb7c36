//! Privileged integration tests of the testbed itself: real namespaces,
//! veths, bridges and kernel vxlan devices. They need root; outside CI they
//! are skipped with a printed reason when it is missing, in CI they fail.
//!
//! Run: `cargo test -p kxdp-testbed --test testbed -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kxdp_config::NodeConfig;
use kxdp_testbed::{
    format_table, ping, pod_ip, privileged_test, tcp_echo_server, tcp_rtt, tcp_transfer,
    udp_echo_server, udp_rtt, udp_rtt_with, Netns, NetnsGuard, NodeKind, NodeSpec, PairResult,
    PathKind, RttOptions, Testbed, TestbedError, TopologySpec, Underlay, WaitMode,
};

fn blue() -> [(&'static str, u32); 1] {
    [("blue", 100)]
}

/// The MAC of `dev` in `netns`, as the kernel reports it.
fn link_mac(netns: &Netns, dev: &str) -> String {
    let json = netns.ip(&["-j", "link", "show", "dev", dev]).unwrap();
    let links: serde_json::Value = serde_json::from_str(&json).unwrap();
    links[0]["address"].as_str().unwrap().to_string()
}

fn link_mtu(netns: &Netns, dev: &str) -> u64 {
    let json = netns.ip(&["-j", "link", "show", "dev", dev]).unwrap();
    let links: serde_json::Value = serde_json::from_str(&json).unwrap();
    links[0]["mtu"].as_u64().unwrap()
}

fn assert_nothing_left(prefix: &str) {
    let left = Testbed::leftovers(prefix).unwrap();
    assert!(left.is_empty(), "testbed {prefix} left {left:?}");
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn kernel_vxlan_nodes_carry_pod_traffic() {
    privileged_test("kernel_vxlan_nodes_carry_pod_traffic");
    let spec = TopologySpec::new(Underlay::Switch, &blue())
        .with_node(
            NodeSpec::new("n1", NodeKind::KernelVxlan)
                .with_pod("a1", "blue", pod_ip(1, 10))
                .with_pod("a2", "blue", pod_ip(1, 11)),
        )
        .with_node(
            NodeSpec::new("n2", NodeKind::KernelVxlan)
                .with_pod("b1", "blue", pod_ip(2, 10))
                .with_pod("b2", "blue", pod_ip(2, 11)),
        );
    let tb = Testbed::build(spec).expect("build the kernel vxlan topology");
    let prefix = tb.prefix().to_string();
    assert_eq!(
        tb.names().len(),
        7,
        "fabric + 2 nodes + 4 pods: {:?}",
        tb.names()
    );

    // Flannel's layout: flannel.100 with the node's VTEP MAC, an fdb entry
    // and a permanent neighbour for the other node.
    let n1 = tb.node("n1").unwrap();
    let n2 = tb.node("n2").unwrap();
    assert_eq!(link_mac(&n1.netns, "flannel.100"), n1.vtep_mac.to_string());
    let fdb = std::process::Command::new("bridge")
        .args([
            "-netns",
            n1.netns.name(),
            "fdb",
            "show",
            "dev",
            "flannel.100",
        ])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.contains(&format!("{} dst {}", n2.vtep_mac, n2.vtep_ip)),
        "fdb of n1: {fdb}"
    );
    let neigh = n1
        .netns
        .ip(&["neigh", "show", "dev", "flannel.100"])
        .unwrap();
    assert!(
        neigh.contains("10.244.2.0") && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    assert_eq!(n1.netns.sysctl("net.ipv4.ip_forward").unwrap(), "1");

    let pod = |name: &str| tb.pod(name).unwrap();
    let ip = |name: &str| IpAddr::V4(pod(name).ip);
    let pairs = [("a1", "a2"), ("a1", "b1"), ("b2", "a2")];
    let mut rows = Vec::new();
    for (from, to) in pairs {
        let label = format!("{from} -> {to}");
        let path = tb.path_kind(from, to).unwrap();
        assert_eq!(path == PathKind::SameNode, pod(from).node == pod(to).node);

        let icmp = ping(&pod(from).netns, ip(to), 5, Duration::from_millis(20)).expect("ping");
        assert_eq!(icmp.received, 5, "ping {label}: {icmp:?}");
        rows.push(PairResult::new(&label, path.label(), "icmp", &icmp));

        let udp_server = udp_echo_server(&pod(to).netns, 0).unwrap();
        let udp = udp_rtt(
            &pod(from).netns,
            ip(to),
            udp_server.port(),
            200,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((udp.sent, udp.lost), (200, 0), "udp {label}");
        assert_eq!(udp_server.echoed(), 200);
        rows.push(PairResult::new(&label, path.label(), "udp", &udp));

        // Spinning client and server: the wake-up latency out of the picture.
        let spin_server =
            kxdp_testbed::udp_echo_server_with(&pod(to).netns, 0, WaitMode::Spin).unwrap();
        let options = RttOptions {
            count: 200,
            interval: Duration::from_micros(500),
            wait: WaitMode::Spin,
            ..RttOptions::default()
        };
        let spin = udp_rtt_with(
            &pod(from).netns,
            std::net::SocketAddr::new(ip(to), spin_server.port()),
            &options,
        )
        .unwrap();
        drop(spin_server);
        assert_eq!(spin.lost, 0, "udp spin {label}");
        rows.push(PairResult::new(&label, path.label(), "udp-spin", &spin));

        let tcp_server = tcp_echo_server(&pod(to).netns, 0).unwrap();
        let tcp = tcp_rtt(
            &pod(from).netns,
            ip(to),
            tcp_server.port(),
            200,
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((tcp.sent, tcp.received), (200, 200), "tcp {label}");
        rows.push(PairResult::new(&label, path.label(), "tcp", &tcp));
    }

    // Full-size datagrams (pod MTU 1450 - 28 bytes of IPv4 and UDP) cross the
    // vxlan without fragmentation trouble.
    let server = udp_echo_server(&pod("b1").netns, 0).unwrap();
    let big = RttOptions {
        count: 20,
        payload_len: 1422,
        interval: Duration::from_millis(1),
        ..RttOptions::default()
    };
    let big = udp_rtt_with(
        &pod("a1").netns,
        std::net::SocketAddr::new(ip("b1"), server.port()),
        &big,
    )
    .unwrap();
    assert_eq!(big.lost, 0, "1422-byte datagrams across nodes");
    drop(server);

    let transfer = tcp_transfer(&pod("a2").netns, &pod("b2").netns, ip("b2"), 20_000_000)
        .expect("bulk transfer");
    assert_eq!(transfer.bytes, 20_000_000);
    println!("{}", format_table(&rows));
    println!(
        "tcp transfer a2 -> b2 (kernel vxlan): {} bytes in {:?} = {:.2} Gbit/s",
        transfer.bytes,
        transfer.duration,
        transfer.bits_per_second() / 1e9
    );

    drop(tb);
    assert_nothing_left(&prefix);
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn direct_underlay_kxdp_nodes_and_their_configs() {
    privileged_test("direct_underlay_kxdp_nodes_and_their_configs");
    // Two tenants with overlapping addresses on n1.
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100), ("red", 200)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("blue-a", "blue", pod_ip(1, 10))
                .with_pod("red-a", "red", pod_ip(1, 10)),
        )
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("blue-b", "blue", pod_ip(2, 10)));
    let tb = Testbed::build(spec).expect("build the direct topology");
    let prefix = tb.prefix().to_string();
    assert!(tb.fabric().is_none());

    for node in tb.nodes() {
        let path = tb.write_config(&node.name).unwrap();
        assert!(path.starts_with(tb.scratch_dir()));
        let config = NodeConfig::from_file(&path).expect("the generated configuration loads");
        assert_eq!(&config, tb.node_config(&node.name).unwrap());
        assert_eq!(config.node.vtep.ip, node.vtep_ip);

        // Every MAC in the configuration is the one the kernel shows.
        for interface in &config.interfaces {
            assert_eq!(
                link_mac(&node.netns, &interface.name),
                interface.mac.to_string(),
                "{}",
                interface.name
            );
        }
        assert_eq!(link_mtu(&node.netns, "ul0"), 1500);
        for pod in &config.pods {
            let built = tb.pod(&pod.name).unwrap();
            assert_eq!(link_mac(&built.netns, "eth0"), pod.mac.to_string());
            assert_eq!(link_mtu(&built.netns, "eth0"), 1450);
            assert_eq!(pod.interface, built.host_interface);
        }
        for remote in &config.remote_nodes {
            let remote_node = tb.node(&remote.name).unwrap();
            let ul0 = link_mac(&remote_node.netns, "ul0");
            assert_eq!(
                remote.underlay_mac.map(|m| m.to_string()),
                Some(ul0.clone())
            );
            assert_eq!(
                remote.vtep_mac.to_string(),
                ul0,
                "a kxdp node's VTEP MAC is its ul0 MAC"
            );
            assert_eq!(remote.pod_cidrs.len(), 2);
        }
    }

    // Pods: /32, on-link gateway, default route, tx checksum offload off.
    let red = tb.pod("red-a").unwrap();
    let addr = red
        .netns
        .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(addr.contains("10.244.1.10/32"), "{addr}");
    let routes = red.netns.ip(&["route", "show"]).unwrap();
    assert!(
        routes.contains("default via 10.244.1.1 dev eth0 onlink"),
        "{routes}"
    );
    assert!(
        routes.contains("10.244.1.1 dev eth0 scope link"),
        "{routes}"
    );
    let features = red.netns.exec("ethtool", &["-k", "eth0"]).unwrap();
    assert!(features.contains("tx-checksumming: off"), "{features}");
    // A qdisc, as kxdp-cni gives a pod: the veth holds a burst back while
    // the NAPI of kxdp's XDP program on the host end drains its ring.
    let qdisc = red
        .netns
        .exec("tc", &["qdisc", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        !qdisc.contains("noqueue") && qdisc.contains(" root "),
        "{qdisc}"
    );
    assert_eq!(
        red.netns.sysctl("net.ipv6.conf.all.disable_ipv6").unwrap(),
        "1"
    );

    // The kernel keeps the VTEP address: node-to-node traffic over the
    // underlay works without kxdp.
    let n1 = tb.node("n1").unwrap();
    let n2 = tb.node("n2").unwrap();
    // Each node's underlay port queues what it sends, as a NIC does,
    // instead of dropping what a kxdp peer's XDP ring cannot take yet.
    for node in [n1, n2] {
        let qdisc = node
            .netns
            .exec("tc", &["qdisc", "show", "dev", "ul0"])
            .unwrap();
        assert!(
            !qdisc.contains("noqueue") && qdisc.contains(" root "),
            "{}: {qdisc}",
            node.name
        );
    }
    let underlay = ping(
        &n1.netns,
        IpAddr::V4(n2.vtep_ip),
        3,
        Duration::from_millis(20),
    )
    .unwrap();
    assert_eq!(underlay.received, 3);

    // Without a dataplane, pod traffic goes nowhere: nothing leaks through
    // the node's kernel.
    let lost = ping(
        &tb.pod("blue-a").unwrap().netns,
        IpAddr::V4(tb.pod("blue-b").unwrap().ip),
        2,
        Duration::from_millis(20),
    )
    .unwrap();
    assert_eq!(lost.received, 0);

    drop(tb);
    assert_nothing_left(&prefix);
}

/// An XDP program that passes everything, as LLVM IR for `llc -march=bpf`
/// (no clang on these machines).
const XDP_PASS_IR: &str = r#"target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"
define i32 @xdp_pass(i8* %ctx) section "xdp" {
  ret i32 2
}
@_license = global [4 x i8] c"GPL\00", section "license"
"#;

fn xdp_pass_object(dir: &Path) -> PathBuf {
    // A privileged test runs only where it can (see kxdp_harness): a
    // missing tool fails it (scripts/setup installs llvm).
    assert!(
        kxdp_testbed::find_program("llc").is_some(),
        "llc (package llvm) is needed to build the fake dataplane's XDP program"
    );
    let ir = dir.join("xdp_pass.ll");
    let obj = dir.join("xdp_pass.o");
    std::fs::write(&ir, XDP_PASS_IR).unwrap();
    let status = std::process::Command::new("llc")
        .args(["-march=bpf", "-filetype=obj", "-o"])
        .arg(&obj)
        .arg(&ir)
        .status()
        .unwrap();
    assert!(status.success(), "llc failed");
    obj
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn start_kxdp_waits_for_xdp_and_stops_the_process() {
    privileged_test("start_kxdp_waits_for_xdp_and_stops_the_process");
    let spec = TopologySpec::new(Underlay::Switch, &blue()).with_node(
        NodeSpec::new("n1", NodeKind::Kxdp)
            .with_pod("a", "blue", pod_ip(1, 10))
            .with_pod("b", "blue", pod_ip(1, 11)),
    );
    let tb = Testbed::build(spec).unwrap();
    let prefix = tb.prefix().to_string();
    let obj = xdp_pass_object(tb.scratch_dir());
    // A stand-in for `kxdp run`: attach XDP to every interface of the node
    // (what the real one does to those of its configuration), detach on SIGTERM.
    let fake = tb.scratch_dir().join("fake-kxdp");
    write_script(
        &fake,
        &format!(
            r#"echo "args: $*"
devs=$(ip -o link show | awk -F': ' '{{print $2}}' | cut -d@ -f1 | grep -v '^lo$')
for dev in $devs; do ip link set dev "$dev" xdpgeneric obj {obj} sec xdp || exit 1; done
trap 'for dev in $devs; do ip link set dev "$dev" xdpgeneric off; done; echo stopped; exit 0' TERM
echo ready
while :; do sleep 0.05; done
"#,
            obj = obj.display()
        ),
    );
    // Ready also means a bound AF_XDP socket on every interface, as the
    // API reports: without it the fake is never ready.
    let err = tb
        .start_kxdp_with_timeout("n1", &fake, &[], Duration::from_millis(700))
        .expect_err("no API, not ready");
    assert!(
        err.to_string().contains("API socket"),
        "the error names what is missing: {err}"
    );
    for dev in ["ul0", "va", "vb"] {
        let _ = tb
            .node("n1")
            .unwrap()
            .netns
            .ip(&["link", "set", "dev", dev, "xdpgeneric", "off"]);
    }
    let stats = FakeApi::serve(tb.node_config("n1").unwrap(), &["ul0", "va", "vb"]);
    let mut process = tb
        .start_kxdp("n1", &fake, &["--extra-flag"])
        .expect("fake kxdp gets ready");
    assert!(process.is_running());
    let log = std::fs::read_to_string(process.log_path()).unwrap();
    assert!(
        log.contains("args: run --config") && log.contains("n1.yaml --extra-flag"),
        "{log}"
    );
    let status = process.terminate().unwrap().expect("it was running");
    assert!(status.success(), "SIGTERM handled: {status}");
    assert!(process.log_tail(5).contains("stopped"));
    assert_eq!(process.terminate().unwrap(), None, "already stopped");

    // kill9: no chance to clean up.
    let mut process = tb.start_kxdp("n1", &fake, &[]).unwrap();
    let pid = process.pid().unwrap();
    let status = process.kill9().unwrap().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    for dev in ["ul0", "va", "vb"] {
        tb.node("n1")
            .unwrap()
            .netns
            .ip(&["link", "set", "dev", dev, "xdpgeneric", "off"])
            .unwrap();
    }

    // Never ready: the error says what is missing and quotes the log.
    let lazy = tb.scratch_dir().join("lazy-kxdp");
    write_script(
        &lazy,
        "echo 'lazy dataplane here'\nwhile :; do sleep 0.05; done\n",
    );
    let err = tb
        .start_kxdp_with_timeout("n1", &lazy, &[], Duration::from_millis(500))
        .expect_err("never ready");
    let text = err.to_string();
    assert!(matches!(err, TestbedError::NotReady { .. }), "{text}");
    assert!(
        text.contains("ul0") && text.contains("lazy dataplane here"),
        "{text}"
    );

    // Exits at once: reported with its status and log.
    let broken = tb.scratch_dir().join("broken-kxdp");
    write_script(&broken, "echo 'cannot bind AF_XDP' >&2\nexit 3\n");
    let err = tb.start_kxdp("n1", &broken, &[]).expect_err("exits");
    let text = err.to_string();
    assert!(matches!(err, TestbedError::KxdpExited { .. }), "{text}");
    assert!(
        text.contains("cannot bind AF_XDP") && text.contains('3'),
        "{text}"
    );

    // Not a kxdp node / unknown node.
    assert!(matches!(
        tb.start_kxdp("nope", &fake, &[]),
        Err(TestbedError::NotFound { .. })
    ));

    drop(stats);
    drop(tb);
    assert_nothing_left(&prefix);
}

/// A stand-in for kxdp's API (the real service over the node's tables):
/// reports a bound socket on `ports`. Stopped on drop.
struct FakeApi {
    server: Option<kxdp_control::api::ApiServer>,
}

impl FakeApi {
    fn serve(config: &kxdp_config::NodeConfig, ports: &[&str]) -> FakeApi {
        use kxdp_control::api::{ApiServer, ApiServerOptions, DataplaneApi, DesiredStateStore};
        use kxdp_dataplane::tables::{TableHandle, Tables};
        let tables = TableHandle::new(Tables::compile(config, 1).unwrap());
        let store = std::sync::Arc::new(DesiredStateStore::new(config.clone(), tables));
        let ports: Vec<kxdp_node::runtime::PortInfo> = ports
            .iter()
            .map(|p| kxdp_node::runtime::PortInfo {
                worker: 0,
                interface: p.to_string(),
                queue: 0,
                bind_mode: "copy".into(),
                xdp_mode: "generic".into(),
                fd: std::sync::Arc::new(std::sync::atomic::AtomicI32::new(-1)),
                napi: Default::default(),
            })
            .collect();
        let api = DataplaneApi::new(store, Vec::new(), ports);
        let server = ApiServer::start(api, &ApiServerOptions::from_config(config)).unwrap();
        FakeApi {
            server: Some(server),
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn cleanup_stale_removes_only_dead_runs() {
    privileged_test("cleanup_stale_removes_only_dead_runs");
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = (2..pid_max)
        .rev()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .unwrap();
    let dead_name = format!("kx{dead}-0-n-stale");
    let live_name = format!("kx{}-999999-n-live", std::process::id());
    let unrelated = format!("kxdp-unrelated-{}", std::process::id());
    // The stale one is deliberately not guarded: cleanup_stale must remove it.
    std::process::Command::new("ip")
        .args(["netns", "add", &dead_name])
        .status()
        .unwrap();
    let live = NetnsGuard::create(&live_name).unwrap();
    let other = NetnsGuard::create(&unrelated).unwrap();

    // Tests build testbeds in parallel, and every build cleans up too: the
    // stale namespace may be gone before this call returns it.
    let removed = Testbed::cleanup_stale().unwrap();
    assert!(
        !removed.contains(&live_name) && !removed.contains(&unrelated),
        "{removed:?}"
    );
    let names = kxdp_testbed::list_netns().unwrap();
    assert!(!names.contains(&dead_name));
    assert!(
        names.contains(&live_name),
        "a live run's namespace was removed"
    );
    assert!(
        names.contains(&unrelated),
        "a name outside the family was removed"
    );
    drop(live);
    drop(other);
    let names = kxdp_testbed::list_netns().unwrap();
    assert!(!names.contains(&live_name) && !names.contains(&unrelated));
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn netns_threads_create_sockets_inside_the_namespace() {
    privileged_test("netns_threads_create_sockets_inside_the_namespace");
    let name = format!("kx{}-999998-sock", std::process::id());
    let ns = NetnsGuard::create(&name).unwrap();
    // 127.0.0.1:port bound inside the namespace is not reachable from the
    // root namespace's loopback, and vice versa.
    let inside = ns
        .run_in(|| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .unwrap();
    let port = inside.local_addr().unwrap().port();
    let sender = ns
        .run_in(|| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .unwrap();
    sender
        .send_to(b"hello", (Ipv4Addr::LOCALHOST, port))
        .unwrap();
    let mut buf = [0u8; 16];
    inside
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (n, _) = inside.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    let outside = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    outside
        .send_to(b"leak", (Ipv4Addr::LOCALHOST, port))
        .unwrap();
    assert!(
        inside.recv_from(&mut buf).is_err(),
        "a root-namespace datagram reached the namespace"
    );
    // Only `lo` in a fresh namespace.
    let links = ns.ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    let err = ns
        .exec("sh", &["-c", "echo broken >&2; exit 4"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sh -c") && err.contains("broken"), "{err}");
    drop(ns);
    assert!(!kxdp_testbed::list_netns().unwrap().contains(&name));
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_panicking_test_leaves_nothing_behind() {
    privileged_test("a_panicking_test_leaves_nothing_behind");
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let spec = TopologySpec::new(Underlay::Switch, &blue())
            .with_node(NodeSpec::new("n1", NodeKind::KernelVxlan).with_pod(
                "a",
                "blue",
                pod_ip(1, 10),
            ))
            .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b", "blue", pod_ip(2, 10)));
        let tb = Testbed::build(spec).unwrap();
        tx.send((tb.prefix().to_string(), tb.scratch_dir().to_path_buf()))
            .unwrap();
        assert!(!Testbed::leftovers(tb.prefix()).unwrap().is_empty());
        panic!("deliberate failure with a testbed alive");
    });
    assert!(outcome.is_err());
    let (prefix, scratch) = rx.recv().unwrap();
    assert_nothing_left(&prefix);
    assert!(!scratch.exists());
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn routed_nodes_carry_pod_traffic_without_an_overlay() {
    privileged_test("routed_nodes_carry_pod_traffic_without_an_overlay");
    let spec = TopologySpec::new(Underlay::Direct, &blue())
        .with_node(NodeSpec::new("r1", NodeKind::Routed).with_pod("ra", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("r2", NodeKind::Routed).with_pod("rb", "blue", pod_ip(2, 10)));
    let tb = Testbed::build(spec).expect("build the routed topology");
    let prefix = tb.prefix().to_string();
    let r1 = tb.node("r1").unwrap();
    let r2 = tb.node("r2").unwrap();
    // host-gw: the other node's pod CIDR via its underlay address, no vxlan device.
    let routes = r1.netns.ip(&["route", "show", "10.244.2.0/24"]).unwrap();
    assert!(
        routes.contains(&format!("via {}", r2.vtep_ip)),
        "routes of r1: {routes}"
    );
    let links = r1.netns.ip(&["-d", "link", "show"]).unwrap();
    assert!(
        !links.contains("vxlan"),
        "a routed node has no vxlan: {links}"
    );

    let pod = |name: &str| tb.pod(name).unwrap();
    assert_eq!(tb.path_kind("ra", "rb").unwrap(), PathKind::KernelNode);
    let icmp = ping(
        &pod("ra").netns,
        IpAddr::V4(pod("rb").ip),
        5,
        Duration::from_millis(20),
    )
    .expect("ping");
    assert_eq!(icmp.received, 5, "{icmp:?}");
    let server = tcp_echo_server(&pod("rb").netns, 0).unwrap();
    let tcp = tcp_rtt(
        &pod("ra").netns,
        IpAddr::V4(pod("rb").ip),
        server.port(),
        50,
        Duration::from_millis(1),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!((tcp.sent, tcp.lost), (50, 0), "tcp: {tcp:?}");
    // Pod traffic crossed the underlay as plain IPv4 between pod addresses:
    // the underlay counters of r2 saw at least the pings and the TCP segments.
    let stats = r2.netns.ip(&["-s", "-j", "link", "show", "ul0"]).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let rx = stats[0]["stats64"]["rx"]["packets"].as_u64().unwrap();
    assert!(rx >= 55, "ul0 of r2 received {rx} packets");
    drop(server);
    drop(tb);
    assert_nothing_left(&prefix);
}
