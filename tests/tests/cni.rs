//! `kxdp-cni` as a container runtime drives it (issue #14, items 1 and 3),
//! on two kxdp nodes of a testbed (each node a network namespace; the
//! plugin's `node_netns` puts a pod's host end there, where a real node's
//! plugin runs in the node's own namespace):
//!
//! - the plugin called by the CNI conventions (`CNI_COMMAND`, `CNI_NETNS`,
//!   `CNI_IFNAME`, `CNI_CONTAINERID`, `CNI_PATH`, the configuration on
//!   stdin), with Debian's `host-local` as IPAM: VERSION, STATUS, ADD (the
//!   result, the pod's interface, kxdp's port, traffic across nodes),
//!   CHECK, DEL (everything undone, the address released), DEL again, DEL
//!   of a container kxdp never saw, CHECK after DEL, a bad configuration,
//!   STATUS with kxdp stopped — each answer the specification's JSON and
//!   exit code;
//! - Podman from Debian (CNI network backend, runc, containers run from a
//!   busybox root filesystem, nothing downloaded) creating containers on
//!   both nodes through the plugin: they ping and exchange TCP (HTTP)
//!   across the nodes and with the file's pods; `podman rm` leaves no veth,
//!   port, XDP program or address behind.
//!
//! Needs podman, runc, containernetworking-plugins and busybox-static
//! (`scripts/setup`). Run: `CI=true cargo test -p kxdp-tests --test cni -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kxdp_config::NamespaceSpec;
use kxdp_control::api::{
    api_socket_path, ApiTarget, BlockingClient, ChangeSet, ObjectKind, ObjectSet,
};
use kxdp_testbed::{
    find_program, pod_ip, privileged_test, udp_echo_server, udp_rtt, NetnsGuard, NodeKind,
    NodeSpec, TopologySpec, Underlay,
};
use kxdp_tests::{eventually, ip_of, kxdp_binary, xdp_links, Cluster};
use serde_json::{json, Value};

/// The plugin under test.
fn plugin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kxdp-cni-under-test"))
}

/// Where Debian's `containernetworking-plugins` puts `host-local`.
const SYSTEM_CNI_DIR: &str = "/usr/lib/cni";

fn topology() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100), ("red", 200)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("a1", "blue", pod_ip(1, 10)))
        .with_node(
            NodeSpec::new("n2", NodeKind::Kxdp)
                .with_pod("b1", "blue", pod_ip(2, 10))
                .with_pod("r1", "red", pod_ip(2, 11)),
        )
}

/// A scratch directory for the plugins, the network configurations and
/// host-local's allocations; removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(c: &Cluster) -> Scratch {
        let dir = std::env::temp_dir().join(format!("{}-cni", c.tb().prefix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        // The runtime finds plugins by their `type` in CNI_PATH.
        std::os::unix::fs::symlink(plugin(), dir.join("bin/kxdp-cni")).unwrap();
        let host_local = Path::new(SYSTEM_CNI_DIR).join("host-local");
        assert!(
            host_local.is_file(),
            "{} is missing (Debian's containernetworking-plugins; scripts/setup installs it)",
            host_local.display()
        );
        std::os::unix::fs::symlink(&host_local, dir.join("bin/host-local")).unwrap();
        for node in ["n1", "n2"] {
            let list = conflist(c, &dir, node);
            std::fs::write(
                dir.join(format!("net.d/10-kxdp-{node}.conflist")),
                serde_json::to_vec_pretty(&list).unwrap(),
            )
            .unwrap();
        }
        Scratch { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// host-local's record of `ip` on `node`'s network.
    fn allocated(&self, node: &str, ip: IpAddr) -> bool {
        self.dir.join(format!("ipam/kxdp-{node}/{ip}")).exists()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The node's number in the testbed's addressing (n1 → 1).
fn number(node: &str) -> u8 {
    node.trim_start_matches('n').parse().unwrap()
}

/// The conflist of `node`'s network, `kxdp-<node>`: the plugin pointed at
/// the node's kxdp and namespace, host-local from .100–.150 of the node's
/// pod subnet (the file's pods have lower addresses).
fn conflist(c: &Cluster, dir: &Path, node: &str) -> Value {
    let n = number(node);
    json!({
        "cniVersion": "1.0.0",
        "name": format!("kxdp-{node}"),
        "plugins": [plugin_entry(c, dir, node, n)],
    })
}

fn plugin_entry(c: &Cluster, dir: &Path, node: &str, n: u8) -> Value {
    json!({
        "type": "kxdp-cni",
        "tenant": "blue",
        "mtu": 1450,
        "api_socket": api_socket_path(c.tb().node_config(node).unwrap()),
        "node_netns": c.node(node).netns.path(),
        "ipam": {
            "type": "host-local",
            "dataDir": dir.join("ipam"),
            "ranges": [[{
                "subnet": format!("10.244.{n}.0/24"),
                "rangeStart": format!("10.244.{n}.100"),
                "rangeEnd": format!("10.244.{n}.150"),
                "gateway": format!("10.244.{n}.1"),
            }]],
        },
    })
}

/// The configuration a runtime puts on stdin for `node`'s network: the
/// plugin's entry with the list's name and version.
fn stdin_conf(c: &Cluster, scratch: &Scratch, node: &str, version: &str) -> Value {
    let mut conf = plugin_entry(c, &scratch.dir, node, number(node));
    conf["cniVersion"] = json!(version);
    conf["name"] = json!(format!("kxdp-{node}"));
    conf
}

/// One plugin call: exit status and the JSON it printed (Null when none).
struct Answer {
    ok: bool,
    json: Value,
    stderr: String,
}

impl Answer {
    fn code(&self) -> Option<u64> {
        self.json.get("code").and_then(Value::as_u64)
    }
}

fn cni(
    scratch: &Scratch,
    command: &str,
    container: &str,
    netns: Option<&Path>,
    conf: &Value,
) -> Answer {
    cni_in(scratch, command, container, netns, conf, "default")
}

/// [`cni`] for a pod of Kubernetes namespace `namespace`.
fn cni_in(
    scratch: &Scratch,
    command: &str,
    container: &str,
    netns: Option<&Path>,
    conf: &Value,
    namespace: &str,
) -> Answer {
    let mut cmd = Command::new(scratch.bin().join("kxdp-cni"));
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", scratch.bin())
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={container}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = netns {
        cmd.env("CNI_NETNS", path);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(conf).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{command}: not JSON on stdout ({e}): {stdout}"))
    };
    Answer {
        ok: out.status.success(),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn api(c: &Cluster, node: &str) -> BlockingClient {
    let socket = api_socket_path(c.tb().node_config(node).unwrap());
    BlockingClient::connect(&ApiTarget::Unix(socket)).unwrap()
}

/// The interfaces kxdp has sockets on.
fn bound(c: &Cluster, node: &str) -> Vec<String> {
    let mut names: Vec<String> = api(c, node)
        .status()
        .unwrap()
        .ports
        .into_iter()
        .map(|p| p.interface)
        .collect();
    names.dedup();
    names
}

fn links(c: &Cluster, node: &str) -> String {
    c.node(node).netns.ip(&["-o", "link", "show"]).unwrap()
}

/// The names of `node`'s links.
fn link_names(c: &Cluster, node: &str) -> Vec<String> {
    links(c, node)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The IPv4 address of the result's interface in the sandbox.
fn result_ip(result: &Value) -> Ipv4Addr {
    let address = result["ips"][0]["address"].as_str().unwrap();
    address.split('/').next().unwrap().parse().unwrap()
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn the_plugin_answers_a_runtime_as_the_cni_specification_says() {
    privileged_test("the_plugin_answers_a_runtime_as_the_cni_specification_says");
    let mut c = Cluster::start("cni", topology(), kxdp_binary!());
    c.wait_forwarding("n1");
    c.wait_forwarding("n2");
    let scratch = Scratch::new(&c);
    let conf = stdin_conf(&c, &scratch, "n1", "1.0.0");
    let before = bound(&c, "n1");
    let links_before = link_names(&c, "n1");

    // VERSION: the versions this plugin speaks.
    let version = cni(
        &scratch,
        "VERSION",
        "",
        None,
        &json!({"cniVersion": "1.0.0"}),
    );
    assert!(version.ok, "VERSION: {}", version.stderr);
    let supported: Vec<&str> = version.json["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for v in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(supported.contains(&v), "VERSION: {}", version.json);
    }
    // STATUS (1.1): kxdp answers.
    let status = cni(
        &scratch,
        "STATUS",
        "",
        None,
        &stdin_conf(&c, &scratch, "n1", "1.1.0"),
    );
    assert!(status.ok, "STATUS: {} {}", status.json, status.stderr);

    // ADD.
    let pod = NetnsGuard::create(&format!("{}-cp1", c.tb().prefix())).unwrap();
    let container = format!("{:0>64}", format!("{}c1", std::process::id()));
    let add = cni(&scratch, "ADD", &container, Some(&pod.path()), &conf);
    assert!(add.ok, "ADD: {} {}\n{}", add.json, add.stderr, c.logs());
    let result = add.json.clone();
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");
    let ip = result_ip(&result);
    assert!(
        ip.octets()[..3] == [10, 244, 1] && (100..=150).contains(&ip.octets()[3]),
        "host-local's range: {result}"
    );
    assert!(scratch.allocated("n1", IpAddr::V4(ip)));
    let interfaces = result["interfaces"].as_array().unwrap();
    let host_if = interfaces[0]["name"].as_str().unwrap().to_string();
    assert!(
        interfaces
            .iter()
            .any(|i| i["name"] == "eth0" && i["sandbox"] == json!(pod.path())),
        "the pod's interface in its sandbox: {result}"
    );
    assert_eq!(
        result["ips"][0]["interface"].as_u64(),
        interfaces
            .iter()
            .position(|i| i["name"] == "eth0")
            .map(|p| p as u64),
        "{result}"
    );
    let addr = pod
        .ip(&["-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(addr.contains(&format!("{ip}/32")), "{addr}");
    let mtu = pod.ip(&["-o", "link", "show", "dev", "eth0"]).unwrap();
    assert!(mtu.contains("mtu 1450"), "{mtu}");
    // A qdisc on the pod end (a veth has none): the kernel's default, or
    // pfifo_fast where the default's module is not loaded.
    let qdisc = pod
        .exec_output("tc", &["qdisc", "show", "dev", "eth0"])
        .unwrap();
    let qdisc = String::from_utf8_lossy(&qdisc.stdout).to_string();
    let default = kxdp_cni::link::default_pod_qdisc();
    assert!(
        qdisc.contains(&format!("qdisc {default} "))
            || qdisc.contains(&format!("qdisc {} ", kxdp_cni::link::FALLBACK_QDISC)),
        "the pod's eth0 has no queueing discipline: {qdisc}"
    );
    assert!(!qdisc.contains("noqueue"), "{qdisc}");
    assert!(links(&c, "n1").contains(&host_if), "host end in n1");
    assert!(
        bound(&c, "n1").contains(&host_if),
        "kxdp has sockets on {host_if}"
    );
    assert!(
        xdp_links(&c.node("n1").netns)
            .iter()
            .any(|l| l.interface == host_if),
        "kxdp's XDP program on {host_if}"
    );
    // Traffic: to b1 on the other node, and to a1 on this one.
    let b1 = udp_echo_server(&c.pod("b1").netns, 0).unwrap();
    let across = udp_rtt(
        &pod,
        ip_of(c.pod("b1")),
        b1.port(),
        50,
        Duration::from_millis(2),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(across.lost, 0, "ADDed pod -> b1: {across:?}\n{}", c.logs());
    let a1 = udp_echo_server(&c.pod("a1").netns, 0).unwrap();
    let local = udp_rtt(
        &pod,
        ip_of(c.pod("a1")),
        a1.port(),
        50,
        Duration::from_millis(2),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(local.lost, 0, "ADDed pod -> a1: {local:?}");
    let ping = pod.exec_output(
        "ping",
        &["-c", "2", "-W", "2", &ip_of(c.pod("b1")).to_string()],
    );
    assert!(ping.is_ok_and(|o| o.status.success()), "ping b1");

    // CHECK, with ADD's result as prevResult.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    let check = cni(
        &scratch,
        "CHECK",
        &container,
        Some(&pod.path()),
        &check_conf,
    );
    assert!(check.ok, "CHECK: {} {}", check.json, check.stderr);
    // CHECK notices an interface taken down behind the plugin's back.
    pod.ip(&["addr", "flush", "dev", "eth0"]).unwrap();
    let broken = cni(
        &scratch,
        "CHECK",
        &container,
        Some(&pod.path()),
        &check_conf,
    );
    assert!(!broken.ok, "CHECK of a pod without its address passed");
    assert!(broken.code().is_some(), "CHECK error JSON: {}", broken.json);

    // DEL: everything undone, twice.
    let del = cni(&scratch, "DEL", &container, Some(&pod.path()), &check_conf);
    assert!(del.ok, "DEL: {} {}", del.json, del.stderr);
    assert!(!links(&c, "n1").contains(&host_if), "veth left behind");
    assert_eq!(bound(&c, "n1"), before, "kxdp's ports after DEL");
    assert!(
        eventually(Duration::from_secs(3), || !xdp_links(&c.node("n1").netns)
            .iter()
            .any(|l| l.interface == host_if)),
        "XDP program left on {host_if}"
    );
    assert!(
        !scratch.allocated("n1", IpAddr::V4(ip)),
        "address not released"
    );
    let again = cni(&scratch, "DEL", &container, Some(&pod.path()), &check_conf);
    assert!(again.ok, "second DEL: {} {}", again.json, again.stderr);
    // DEL of a container kxdp never saw, its namespace already gone.
    let never = cni(
        &scratch,
        "DEL",
        &format!("{:0>64}", "feed"),
        Some(Path::new("/run/netns/kxdp-no-such-netns")),
        &conf,
    );
    assert!(
        never.ok,
        "DEL of an unknown container: {} {}",
        never.json, never.stderr
    );
    // CHECK after DEL: an error naming the container.
    let gone = cni(
        &scratch,
        "CHECK",
        &container,
        Some(&pod.path()),
        &check_conf,
    );
    assert!(
        !gone.ok && gone.code().is_some(),
        "CHECK after DEL: {}",
        gone.json
    );

    // A pod of a namespace the agent labelled into tenant red (here the
    // namespace is applied as the agent applies it): wired in red, it
    // reaches red's pod on n2 and not blue's.
    let mut red_ns = api(&c, "n1");
    red_ns
        .apply(&ChangeSet::upsert(ObjectSet {
            namespaces: vec![NamespaceSpec {
                name: "shop".into(),
                labels: [("kxdp.io/tenant".to_string(), "red".to_string())].into(),
            }],
            ..ObjectSet::default()
        }))
        .unwrap();
    let red_pod = NetnsGuard::create(&format!("{}-cp2", c.tb().prefix())).unwrap();
    let red_container = format!("{:0>64}", format!("{}c2", std::process::id()));
    let add = cni_in(
        &scratch,
        "ADD",
        &red_container,
        Some(&red_pod.path()),
        &conf,
        "shop",
    );
    assert!(add.ok, "ADD in shop: {} {}", add.json, add.stderr);
    let (_, registered) = red_ns
        .get(ObjectKind::Pod, &format!("shop/{red_container}"))
        .unwrap();
    assert_eq!(registered.pods[0].tenant, "red", "{registered:?}");
    let r1 = udp_echo_server(&c.pod("r1").netns, 0).unwrap();
    let to_red = udp_rtt(
        &red_pod,
        ip_of(c.pod("r1")),
        r1.port(),
        20,
        Duration::from_millis(2),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(to_red.lost, 0, "red pod -> r1: {to_red:?}");
    let to_blue = udp_rtt(
        &red_pod,
        ip_of(c.pod("b1")),
        b1.port(),
        5,
        Duration::from_millis(2),
        Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!(to_blue.received, 0, "a red pod reached blue's b1");
    let del = cni_in(
        &scratch,
        "DEL",
        &red_container,
        Some(&red_pod.path()),
        &conf,
        "shop",
    );
    assert!(del.ok, "DEL in shop: {} {}", del.json, del.stderr);
    drop(red_pod);

    // A bad configuration: the specification's error, naming the field.
    let mut bad = conf.clone();
    bad["mtu"] = json!(100);
    let refused = cni(&scratch, "ADD", &container, Some(&pod.path()), &bad);
    assert!(!refused.ok);
    assert_eq!(
        refused.code(),
        Some(7),
        "invalid network config: {}",
        refused.json
    );
    assert!(
        refused.json["msg"].as_str().unwrap_or("").contains("mtu"),
        "{}",
        refused.json
    );
    assert_eq!(bound(&c, "n1"), before, "a refused ADD bound nothing");
    // An unknown version: incompatible (1).
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    let incompatible = cni(&scratch, "ADD", &container, Some(&pod.path()), &old);
    assert_eq!(incompatible.code(), Some(1), "{}", incompatible.json);

    // STATUS with kxdp stopped: not ready (50), and ADD fails whole.
    c.process("n1").terminate().unwrap();
    let down = cni(
        &scratch,
        "STATUS",
        "",
        None,
        &stdin_conf(&c, &scratch, "n1", "1.1.0"),
    );
    assert_eq!(down.code(), Some(50), "STATUS without kxdp: {}", down.json);
    let refused = cni(&scratch, "ADD", &container, Some(&pod.path()), &conf);
    assert!(!refused.ok && refused.code().is_some(), "{}", refused.json);
    assert_eq!(
        link_names(&c, "n1"),
        links_before,
        "a failed ADD left a veth"
    );
    drop(pod);
    c.finish();
}

/// Podman with the CNI backend, configured for this machine (see
/// MACHINE-NOTES): runc with cgroupfs, vfs storage in the scratch
/// directory, the plugins and networks of the scratch directory.
struct Podman {
    dir: PathBuf,
    bin: PathBuf,
    conf: PathBuf,
    containers: Vec<String>,
}

impl Podman {
    fn new(scratch: &Scratch) -> Podman {
        let bin = find_program("podman").expect("podman is missing (scripts/setup installs it)");
        assert!(
            find_program("runc").is_some(),
            "runc is missing (scripts/setup installs it)"
        );
        let dir = scratch.dir.join("podman");
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                scratch.bin().display(),
                scratch.dir.join("net.d").display()
            ),
        )
        .unwrap();
        Podman {
            dir,
            bin,
            conf,
            containers: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let storage = self.dir.join("storage");
        let runroot = self.dir.join("run");
        Command::new(&self.bin)
            .env("CONTAINERS_CONF", &self.conf)
            .args([
                "--root",
                storage.to_str().unwrap(),
                "--runroot",
                runroot.to_str().unwrap(),
                "--storage-driver",
                "vfs",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A busybox root filesystem for container `name`, serving `marker` at
    /// `/www/index.html`.
    fn rootfs(&self, name: &str, marker: &str) -> PathBuf {
        let root = self.dir.join(format!("rootfs-{name}"));
        for d in ["bin", "etc", "www", "tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for tool in [
            "sh", "sleep", "ping", "ip", "wget", "httpd", "cat", "nc", "netstat", "timeout",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(root.join("www/index.html"), marker).unwrap();
        root
    }

    /// Start container `name` on `network`, serving HTTP on 8080.
    fn start(&mut self, name: &str, network: &str) -> Ipv4Addr {
        let root = self.rootfs(name, &format!("hello from {name}"));
        self.containers.push(name.to_string());
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--cap-add",
            "NET_RAW",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "--rootfs",
            root.to_str().unwrap(),
            "/bin/httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/www",
        ]);
        let addr = self.ok(&[
            "exec", name, "ip", "-o", "-4", "addr", "show", "dev", "eth0",
        ]);
        addr.split_whitespace()
            .find_map(|w| {
                w.split('/')
                    .next()?
                    .parse()
                    .ok()
                    .filter(|_| w.contains('/'))
            })
            .unwrap_or_else(|| panic!("{name} has no IPv4 address: {addr}"))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.run(&["rm", "-f", "-t", "0", name]);
        }
        // vfs layers and runc state live under the scratch directory.
        let _ = self.run(&["system", "reset", "-f"]);
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn podman_runs_containers_on_two_kxdp_nodes_through_the_plugin() {
    privileged_test("podman_runs_containers_on_two_kxdp_nodes_through_the_plugin");
    let c = Cluster::start("cni_podman", topology(), kxdp_binary!());
    c.wait_forwarding("n1");
    c.wait_forwarding("n2");
    let scratch = Scratch::new(&c);
    let before = (bound(&c, "n1"), bound(&c, "n2"));
    let links_before = (link_names(&c, "n1"), link_names(&c, "n2"));
    let mut podman = Podman::new(&scratch);
    let tag = c.tb().prefix().to_string();
    let (c1, c2) = (format!("{tag}-c1"), format!("{tag}-c2"));
    let ip1 = podman.start(&c1, "kxdp-n1");
    let ip2 = podman.start(&c2, "kxdp-n2");
    eprintln!("podman: {c1} on n1 at {ip1}, {c2} on n2 at {ip2}");
    assert_eq!(ip1.octets()[..3], [10, 244, 1]);
    assert_eq!(ip2.octets()[..3], [10, 244, 2]);
    assert_eq!(
        bound(&c, "n1").len(),
        before.0.len() + 1,
        "kxdp on n1 bound the container"
    );
    assert_eq!(
        bound(&c, "n2").len(),
        before.1.len() + 1,
        "kxdp on n2 bound the container"
    );

    // Ping and TCP across the nodes, both ways, and to the file's pods.
    for (from, to) in [(&c1, ip2), (&c2, ip1)] {
        let out = podman.run(&["exec", from, "ping", "-c", "3", "-W", "2", &to.to_string()]);
        assert!(
            out.status.success(),
            "{from} ping {to}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
    }
    for (from, to, name) in [(&c1, ip2, &c2), (&c2, ip1, &c1)] {
        let url = format!("http://{to}:8080/");
        // (busybox's own `-T` crashes the static wget; its `timeout` applet does not.)
        let out = podman.run(&["exec", from, "timeout", "10", "wget", "-q", "-O", "-", &url]);
        let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if body != format!("hello from {name}") {
            let listening = podman.run(&["exec", name, "netstat", "-ltn"]);
            panic!(
                "{from} -> {url} over TCP: {body:?} {}\n{name} listens: {}\nn1 {:?}\nn2 {:?}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&listening.stdout),
                c.totals("n1"),
                c.totals("n2"),
                c.logs()
            );
        }
    }
    // A file pod on the other node reaches a container (TCP into it).
    let b1 = c.pod("b1").netns.clone();
    let fetched = b1
        .exec("curl", &["-s", "-m", "5", &format!("http://{ip1}:8080/")])
        .unwrap();
    assert_eq!(fetched, format!("hello from {c1}"), "b1 -> {c1}");
    let out = podman.run(&[
        "exec",
        &c2,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        &ip_of(c.pod("a1")).to_string(),
    ]);
    assert!(out.status.success(), "{c2} ping a1");

    // podman rm runs CNI DEL: nothing left behind.
    podman.ok(&["rm", "-f", "-t", "0", &c1, &c2]);
    podman.containers.clear();
    assert_eq!(
        (bound(&c, "n1"), bound(&c, "n2")),
        before,
        "kxdp's ports after rm"
    );
    assert_eq!(
        (link_names(&c, "n1"), link_names(&c, "n2")),
        links_before,
        "veths left behind"
    );
    for node in ["n1", "n2"] {
        let n = number(node);
        for host in 100..=150 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 244, n, host));
            assert!(!scratch.allocated(node, ip), "{node}: {ip} not released");
        }
    }
    drop(podman);
    drop(scratch);
    c.finish();
}
