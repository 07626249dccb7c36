//! The Kubernetes agent, integration against the test API server
//! (`kxdp_tests::apiserver`, which speaks the real list/watch protocol):
//! the real kube-rs client, watchers and the agent of `kxdp agent`,
//! applying through a desired-state store whose tables and chain sets are
//! the ones workers read.
//!
//! - an EndpointSlice change reaches the worker-visible service table
//!   within 100 ms, and the Kubernetes event → worker-visible latency over
//!   1000 updates (p50 / p99, printed);
//! - the agent survives dropped watches, 410 Gone (relist and resync) and
//!   the API server going away (tables kept) and coming back (converges);
//! - privileged: two kxdp nodes programmed only by their agents forward
//!   pod traffic across nodes, keep forwarding while the API server is
//!   down, and converge after it restarts.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test k8s_agent -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kxdp_config::{InterfaceRole, InterfaceSpec, MacAddr, NodeConfig, PodSpec};
use kxdp_control::api::{ChangeSet, DesiredStateStore, KeySet, ObjectSet};
use kxdp_control::k8s::{Agent, AgentOptions, ClusterAccess};
use kxdp_dataplane::tables::{NextHop, TableHandle, Tables};
use kxdp_tests::apiserver::{RestartStore, TestApiServer};
use kxdp_vnf_chains::service::{EndpointState, VipKey};
use kxdp_vnf_chains::Backend;
use serde_json::{json, Value};

/// One test at a time: the latency test measures, the others would load
/// the two cores under it.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const NODE: &str = "kd-n1";
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// This node's own configuration: what the DaemonSet's node.yaml holds.
fn node_config() -> NodeConfig {
    NodeConfig::from_yaml_str(&format!(
        "node:\n  name: {NODE}\n  vtep: {{ip: 192.168.77.1, interface: ul0}}\n  pod_cidrs: [{{tenant: blue, cidr: 10.1.1.0/24}}]\n\
         interfaces:\n  - {{name: ul0, role: underlay, mac: '02:00:00:00:77:01'}}\n\
         \x20 - {{name: veth-a, role: pod, mac: '02:00:00:00:77:0a'}}\n\
         \x20 - {{name: veth-b, role: pod, mac: '02:00:00:00:77:0b'}}\n\
         tenants: [{{name: blue, vni: 100}}]\n"
    ))
    .unwrap()
}

/// A store as `kxdp run` builds it (without workers: the chain sets and
/// tables it publishes are what the workers would load).
fn store(config: NodeConfig) -> Arc<DesiredStateStore> {
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    Arc::new(DesiredStateStore::new(config, tables))
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kd-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn create(server: &TestApiServer, object: Value) {
    server
        .store()
        .create_object(object)
        .unwrap_or_else(|e| panic!("creating an object: {e:?}"));
}

fn crd() -> Value {
    serde_yaml::from_str(&kxdp_config::crd::ServiceChain::crd_yaml()).unwrap()
}

fn node(name: &str, ip: &str, cidr: &str, mac: Option<&str>) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(mac) = mac {
        annotations.insert("kxdp.io/vtep-mac".into(), json!(mac));
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
    })
}

fn pod(name: &str, node: &str, ip: &str, interface: &str, mac: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"kxdp.io/interface": interface, "kxdp.io/mac": mac}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP.to_string(), "clusterIPs": [CLUSTER_IP.to_string()],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    })
}

fn slice(endpoints: &[(Ipv4Addr, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| {
            json!({"addresses": [ip.to_string()],
                   "conditions": {"ready": ready, "serving": true, "terminating": !ready}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

/// The objects of a small cluster: this node and a remote one, a pod here,
/// a Service with one endpoint, a ServiceChain balancing it.
fn populate(server: &TestApiServer) {
    create(server, crd());
    create(server, node(NODE, "192.168.77.1", "10.1.1.0/24", None));
    create(
        server,
        node(
            "kd-n2",
            "192.168.77.2",
            "10.1.2.0/24",
            Some("02:00:00:00:78:01"),
        ),
    );
    create(
        server,
        pod("web-1", NODE, "10.1.1.10", "veth-a", "02:00:00:01:01:0a"),
    );
    create(server, service());
    create(server, slice(&[(Ipv4Addr::new(10, 1, 1, 10), true)]));
    create(
        server,
        json!({
            "apiVersion": "kxdp.io/v1alpha1", "kind": "ServiceChain",
            "metadata": {"name": "lb", "namespace": "default"},
            "spec": {"classifier": {"dst": "10.96.0.0/16"}, "functions": [{"type": "load_balancer"}]}
        }),
    );
}

/// The state of `backend` (target port 8080) of the web service, as the
/// workers' chain set has it.
fn backend_state(store: &DesiredStateStore, backend: Ipv4Addr) -> Option<EndpointState> {
    let set = store.chains().current();
    let services = set.services();
    let vip = VipKey {
        tenant: 0,
        ip: u128::from(u32::from(CLUSTER_IP)),
        ipv6: false,
        proto: 6,
        port: 80,
    };
    let port = services.port(services.find(&vip)?)?;
    port.state(&Backend {
        ip: u128::from(u32::from(backend)),
        port: 8080,
    })
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
    start.elapsed()
}

fn start_agent(
    server: &TestApiServer,
    dir: &std::path::Path,
    store: &Arc<DesiredStateStore>,
) -> Agent {
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let config = store.snapshot().config.clone();
    let options = AgentOptions::for_node(&config, ClusterAccess::Kubeconfig(kubeconfig), None);
    Agent::start(Arc::clone(store), options).unwrap()
}

/// Wait for the first resync: the cluster's objects are in the desired
/// state and the worker-visible tables.
fn wait_synced(agent: &Agent, store: &DesiredStateStore) {
    wait_for("the agent's first resync", Duration::from_secs(20), || {
        agent
            .stats()
            .synced
            .load(std::sync::atomic::Ordering::Relaxed)
            && backend_state(store, Ipv4Addr::new(10, 1, 1, 10)) == Some(EndpointState::Ready)
    });
    let state = store.snapshot();
    let pods: Vec<&str> = state.config.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pods, vec!["default/web-1"]);
    let remotes: Vec<&str> = state
        .config
        .remote_nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(remotes, vec!["kd-n2"], "not itself");
    let chains: Vec<&str> = state
        .config
        .chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(chains, vec!["default/lb"]);
    // The remote node's pod CIDR is routed (to its VTEP) in the tables.
    let tables = store.tables().current();
    assert!(
        tables.lookup_v4(0, Ipv4Addr::new(10, 1, 2, 99)).is_some(),
        "kd-n2's pod CIDR is routed"
    );
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[test]
fn endpoint_slice_changes_reach_the_worker_tables_within_100ms() {
    let _serial = serial();
    let dir = scratch("latency");
    let server = TestApiServer::start_blocking().unwrap();
    populate(&server);
    let store = store(node_config());
    let agent = start_agent(&server, &dir, &store);
    wait_synced(&agent, &store);

    // The agent wrote its VTEP MAC on its own Node.
    wait_for(
        "the own Node's vtep-mac annotation",
        Duration::from_secs(10),
        || {
            server
                .store()
                .get_object("v1", "Node", "", NODE)
                .is_some_and(|n| {
                    n["metadata"]["annotations"]["kxdp.io/vtep-mac"] == "02:00:00:00:77:01"
                })
        },
    );

    // One change: a second endpoint, ready.
    let second = Ipv4Addr::new(10, 1, 2, 20);
    let start = Instant::now();
    server
        .store()
        .update_object(slice(&[
            (Ipv4Addr::new(10, 1, 1, 10), true),
            (second, true),
        ]))
        .unwrap();
    wait_for("the new endpoint", Duration::from_secs(5), || {
        backend_state(&store, second) == Some(EndpointState::Ready)
    });
    let one = start.elapsed();
    println!("k8s agent: one EndpointSlice change -> worker-visible service table: {one:?}");
    assert!(
        one < Duration::from_millis(100),
        "EndpointSlice change visible to workers after {one:?}, over 100 ms"
    );

    // The endpoint goes terminating: serving only, no new connections.
    server
        .store()
        .update_object(slice(&[
            (Ipv4Addr::new(10, 1, 1, 10), true),
            (second, false),
        ]))
        .unwrap();
    wait_for("the terminating endpoint", Duration::from_secs(5), || {
        backend_state(&store, second) == Some(EndpointState::Serving)
    });

    // 1000 updates, one at a time: each moves the endpoint to a new
    // address; time from the write to the API server to the worker-visible
    // table having it.
    let mut latencies = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let ip = Ipv4Addr::new(10, 1, 3 + (i / 200) as u8, 10 + (i % 200) as u8);
        let start = Instant::now();
        server.store().update_object(slice(&[(ip, true)])).unwrap();
        wait_for("an endpoint update", Duration::from_secs(5), || {
            backend_state(&store, ip) == Some(EndpointState::Ready)
        });
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );
    println!(
        "k8s agent: Kubernetes event -> worker-visible table over {} updates: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    let own = agent.stats().latency();
    println!(
        "k8s agent: its own measure (first event of a batch received -> tables published) over {} batches: p50 {} us, p99 {} us, max {} us",
        own.count, own.p50_us, own.p99_us, own.max_us
    );
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
    assert!(own.count >= 1000, "every update was applied: {own:?}");
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_agent_survives_dropped_watches_410_and_the_api_server_going_away() {
    let _serial = serial();
    let dir = scratch("faults");
    let mut server = TestApiServer::start_blocking().unwrap();
    populate(&server);
    let store = store(node_config());
    let agent = start_agent(&server, &dir, &store);
    wait_synced(&agent, &store);
    let stats = Arc::clone(agent.stats());
    let resyncs = || stats.resyncs.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(resyncs(), 1);

    // Watches cut: the watchers resume from their resourceVersion.
    server.drop_watches();
    let a = Ipv4Addr::new(10, 1, 2, 30);
    server.store().update_object(slice(&[(a, true)])).unwrap();
    wait_for(
        "a change after dropped watches",
        Duration::from_secs(20),
        || backend_state(&store, a) == Some(EndpointState::Ready),
    );

    // History compacted, then watches cut: resuming gets 410 Gone, the
    // watchers list again and the agent resyncs.
    let before = resyncs();
    server.compact_history();
    let b = Ipv4Addr::new(10, 1, 2, 31);
    server.store().update_object(slice(&[(b, true)])).unwrap();
    server.compact_history();
    server.drop_watches();
    wait_for("a resync after 410", Duration::from_secs(30), || {
        resyncs() > before && backend_state(&store, b) == Some(EndpointState::Ready)
    });

    // The API server goes away: nothing changes in the tables.
    let generation = store.tables().current().generation();
    server.stop();
    let c = Ipv4Addr::new(10, 1, 2, 32);
    server.store().update_object(slice(&[(c, true)])).unwrap();
    server
        .store()
        .delete_object("v1", "Node", "", "kd-n2")
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        store.tables().current().generation(),
        generation,
        "the tables stay as they were while the API server is away"
    );
    assert_eq!(backend_state(&store, b), Some(EndpointState::Ready));
    assert!(
        stats
            .watch_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the watchers noticed"
    );

    // It comes back: the agent reconnects (with backoff) and converges,
    // the node deleted meanwhile included.
    server.restart(RestartStore::Keep).unwrap();
    let took = wait_for(
        "convergence after a restart",
        Duration::from_secs(60),
        || {
            backend_state(&store, c) == Some(EndpointState::Ready)
                && store.snapshot().config.remote_nodes.is_empty()
        },
    );
    println!("k8s agent: converged {took:?} after the API server restarted");
    assert_eq!(backend_state(&store, b), None, "the old endpoint is gone");
    let tables = store.tables().current();
    assert!(
        tables.lookup_v4(0, Ipv4Addr::new(10, 1, 2, 99)).is_none(),
        "the deleted node's pod CIDR is no longer routed"
    );
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn objects_the_store_refuses_are_left_out_and_the_rest_applies() {
    let _serial = serial();
    let dir = scratch("refused");
    let server = TestApiServer::start_blocking().unwrap();
    populate(&server);
    // A pod whose address is outside this node's pod CIDR: the store
    // refuses it; everything else must still apply.
    create(
        &server,
        pod("stray", NODE, "10.9.9.9", "veth-b", "02:00:00:01:01:0b"),
    );
    let store = store(node_config());
    let agent = start_agent(&server, &dir, &store);
    wait_synced(&agent, &store);
    assert!(
        agent
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Fixed, it comes in.
    server
        .store()
        .update_object(pod(
            "stray",
            NODE,
            "10.1.1.20",
            "veth-b",
            "02:00:00:01:01:0b",
        ))
        .unwrap();
    wait_for("the fixed pod", Duration::from_secs(10), || {
        store
            .snapshot()
            .config
            .pods
            .iter()
            .any(|p| p.name == "default/stray" && p.ip == IpAddr::from(Ipv4Addr::new(10, 1, 1, 20)))
    });
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `kxdp-cni` ADD applies for pod `name` of namespace `shop`: its
/// interface and the pod, in tenant `red` (the namespace's label, which the
/// plugin reads from kxdp), without labels.
fn cni_registration(name: &str, ip: Ipv4Addr, host_if: &str) -> ChangeSet {
    ChangeSet::upsert(ObjectSet {
        interfaces: vec![InterfaceSpec {
            name: host_if.into(),
            role: InterfaceRole::Pod,
            mac: MacAddr([0x02, 0xcc, 0, 0, 0, ip.octets()[3]]),
            queues: 1,
            mtu: Some(1450),
        }],
        pods: vec![PodSpec {
            name: format!("shop/{name}"),
            tenant: "red".into(),
            ip: IpAddr::V4(ip),
            ipv6: None,
            mac: MacAddr([0x02, 0xdd, 0, 0, 0, ip.octets()[3]]),
            interface: host_if.into(),
            labels: Default::default(),
            namespace: "shop".into(),
            container_id: Some(format!("{name}-container")),
        }],
        ..ObjectSet::default()
    })
}

/// A pod `kxdp-cni` wired: Kubernetes knows its labels, kxdp-cni its
/// interface; the agent joins them (NetworkPolicy selects pods by labels).
/// The namespace reaches kxdp through the agent, where the plugin reads
/// its tenant label.
#[test]
fn the_agent_gives_a_pod_wired_by_kxdp_cni_its_labels() {
    let _serial = serial();
    let dir = scratch("cni");
    let server = TestApiServer::start_blocking().unwrap();
    populate(&server);
    let config = NodeConfig::from_yaml_str(&format!(
        "node:\n  name: {NODE}\n  vtep: {{ip: 192.168.77.1, interface: ul0}}\n  pod_cidrs: [{{tenant: blue, cidr: 10.1.1.0/24}}, {{tenant: red, cidr: 10.2.1.0/24}}]\n\
         interfaces:\n  - {{name: ul0, role: underlay, mac: '02:00:00:00:77:01'}}\n\
         \x20 - {{name: veth-a, role: pod, mac: '02:00:00:00:77:0a'}}\n\
         \x20 - {{name: veth-b, role: pod, mac: '02:00:00:00:77:0b'}}\n\
         tenants: [{{name: blue, vni: 100}}, {{name: red, vni: 200}}]\n"
    ))
    .unwrap();
    let store = store(config);
    let agent = start_agent(&server, &dir, &store);
    wait_synced(&agent, &store);
    // The namespace, labelled into tenant red, reaches kxdp.
    create(
        &server,
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "labels": {"kxdp.io/tenant": "red"}}}),
    );
    wait_for("the namespace in kxdp", Duration::from_secs(10), || {
        store.snapshot().config.namespaces.iter().any(|n| {
            n.name == "shop" && n.labels.get("kxdp.io/tenant").map(String::as_str) == Some("red")
        })
    });
    // The sandbox: kxdp-cni's ADD, before the kubelet reports the IP.
    let ip = Ipv4Addr::new(10, 2, 1, 30);
    store
        .apply(&cni_registration("cart", ip, "kx00000000c1"))
        .unwrap();
    let pod_of = |store: &DesiredStateStore| {
        store
            .snapshot()
            .config
            .pods
            .iter()
            .find(|p| p.name == "shop/cart")
            .cloned()
    };
    assert!(pod_of(&store).unwrap().labels.is_empty());
    // Then Kubernetes: the pod with its labels and the address the plugin
    // gave it, and no kxdp annotations.
    create(
        &server,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "cart", "namespace": "shop", "labels": {"app": "cart"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}
        }),
    );
    wait_for(
        "the agent's view of the CNI pod",
        Duration::from_secs(10),
        || pod_of(&store).is_some_and(|p| !p.labels.is_empty()),
    );
    let pod = pod_of(&store).unwrap();
    assert_eq!(pod.labels.get("app").map(String::as_str), Some("cart"));
    assert_eq!(pod.tenant, "red");
    assert_eq!(pod.interface, "kx00000000c1", "kxdp-cni's interface");
    assert_eq!(pod.mac, MacAddr([0x02, 0xdd, 0, 0, 0, 30]));
    assert_eq!(pod.container_id.as_deref(), Some("cart-container"));
    // The tables route it in tenant red (VNI 200), not blue.
    let tables = store.tables().current();
    let local = |vni| {
        let tenant = tables.tenant_by_vni(vni).unwrap();
        matches!(tables.lookup_v4(tenant, ip), Some(NextHop::Local { .. }))
    };
    assert!(local(200), "a local pod of red");
    assert!(!local(100), "not of blue any more");
    // kxdp-cni's DEL (by key, its container id still on it) removes it
    // although the agent upserted it since.
    store
        .apply(&ChangeSet::delete(KeySet {
            pods: vec!["shop/cart".into()],
            interfaces: vec!["kx00000000c1".into()],
            ..KeySet::default()
        }))
        .unwrap();
    assert!(pod_of(&store).is_none());
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_the_crd_the_agent_syncs_and_takes_chains_once_it_is_installed() {
    let _serial = serial();
    let dir = scratch("nocrd");
    let server = TestApiServer::start_blocking().unwrap();
    create(&server, node(NODE, "192.168.77.1", "10.1.1.0/24", None));
    create(&server, service());
    create(&server, slice(&[(Ipv4Addr::new(10, 1, 1, 10), true)]));
    let store = store(node_config());
    let agent = start_agent(&server, &dir, &store);
    // No ServiceChain kind on the server: the agent goes on without it.
    wait_for("a resync without the CRD", Duration::from_secs(20), || {
        backend_state(&store, Ipv4Addr::new(10, 1, 1, 10)) == Some(EndpointState::Ready)
    });
    assert!(store.snapshot().config.chains.is_empty());
    // The CRD and a chain appear: the watcher's retries find them.
    create(&server, crd());
    create(
        &server,
        json!({
            "apiVersion": "kxdp.io/v1alpha1", "kind": "ServiceChain",
            "metadata": {"name": "count", "namespace": "default"},
            "spec": {"functions": [{"type": "counter"}]}
        }),
    );
    wait_for("the chain after the CRD", Duration::from_secs(60), || {
        store
            .snapshot()
            .config
            .chains
            .iter()
            .any(|c| c.name == "default/count" && c.tenant == "blue")
    });
    agent.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP forwarder from 127.0.0.1 inside a node's namespace to the test API
/// server on the root namespace's loopback: kxdp runs in the node's
/// namespace (as in a DaemonSet, on the host network), the test API server
/// listens on the root namespace's 127.0.0.1. Stopped (and its connections
/// cut) when dropped.
struct Forwarder {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(netns: &kxdp_testbed::Netns, to: std::net::SocketAddr) -> Forwarder {
        // The listening socket is created inside the namespace; the thread
        // that serves it (and connects to the server) stays in the root one.
        let listener = netns
            .run_in(|| std::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut open: Vec<std::net::TcpStream> = Vec::new();
            while !thread_stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = std::net::TcpStream::connect(to) else {
                            continue; // refused: the client sees its connection closed
                        };
                        for (mut from, mut into) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut into);
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = into.shutdown(std::net::Shutdown::Both);
                            });
                        }
                        open.push(client);
                        open.push(server);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for s in open {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
        Forwarder {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The Kubernetes objects of a testbed node: its Node (VTEP as InternalIP,
/// pod CIDR; no VTEP MAC: its kxdp writes that) and its pods (with the
/// annotations a CNI plugin would write).
fn testbed_objects(config: &NodeConfig) -> Vec<Value> {
    let cidr = config.node.pod_cidrs[0].cidr.to_string();
    let mut objects = vec![node(
        &config.node.name,
        &config.node.vtep.ip.to_string(),
        &cidr,
        None,
    )];
    for p in &config.pods {
        objects.push(pod(
            &p.name,
            &config.node.name,
            &p.ip.to_string(),
            &p.interface,
            &p.mac.to_string(),
        ));
    }
    objects
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn kxdp_nodes_programmed_by_their_agents_forward_through_an_api_server_outage() {
    use kxdp_control::api::{ApiTarget, BlockingClient, ObjectKind};
    use kxdp_testbed::{ping, pod_ip, privileged_test, NodeKind, NodeSpec, TopologySpec, Underlay};
    use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, Cluster};

    let test = "k8s_agent_traffic";
    privileged_test(test);
    let _serial = serial();
    let spec = TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(NodeSpec::new("n1", NodeKind::Kxdp).with_pod("a1", "blue", pod_ip(1, 10)))
        .with_node(NodeSpec::new("n2", NodeKind::Kxdp).with_pod("b1", "blue", pod_ip(2, 10)));
    let cluster = Cluster::build(test, spec, kxdp_binary!());
    let mut server = TestApiServer::start_blocking().unwrap();
    create(&server, crd());
    for name in ["n1", "n2"] {
        for object in testbed_objects(cluster.tb().node_config(name).unwrap()) {
            create(&server, object);
        }
    }
    let dir = cluster.tb().scratch_dir().to_path_buf();
    let mut forwarders = Vec::new();
    let mut processes = Vec::new();
    for name in ["n1", "n2"] {
        let forwarder = Forwarder::start(&cluster.node(name).netns, server.address());
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            server.kubeconfig().replace(
                &server.url(),
                &format!("http://127.0.0.1:{}", forwarder.port),
            ),
        )
        .unwrap();
        forwarders.push(forwarder);
        let process = cluster
            .tb()
            .start_kxdp(
                name,
                kxdp_binary!(),
                &["--kubeconfig", kubeconfig.to_str().unwrap()],
            )
            .unwrap_or_else(|e| panic!("{test}: starting kxdp on {name}: {e}"));
        processes.push(process);
        cluster.wait_forwarding(name);
    }
    let logs = |processes: &Vec<kxdp_testbed::KxdpProcess>| -> String {
        processes
            .iter()
            .map(|p| format!("--- {} ---\n{}\n", p.node(), p.log_tail(30)))
            .collect()
    };
    let client = |name: &str| {
        let config = cluster.tb().node_config(name).unwrap();
        BlockingClient::connect(&ApiTarget::Unix(kxdp_control::api::api_socket_path(config)))
            .unwrap()
    };

    // Converged: each node knows the other from its Node (with the VTEP MAC
    // the other's agent wrote) and its own pods from Kubernetes.
    let converged = |name: &str, other: &str, pod: &str| {
        let mut c = client(name);
        let (_, nodes) = c.list(&[ObjectKind::RemoteNode]).unwrap();
        let (_, pods) = c.list(&[ObjectKind::Pod]).unwrap();
        nodes.remote_nodes.iter().any(|n| n.name == other)
            && pods
                .pods
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                == vec![format!("default/{pod}")]
    };
    let ok = kxdp_tests::eventually(Duration::from_secs(30), || {
        converged("n1", "n2", "a1") && converged("n2", "n1", "b1")
    });
    assert!(
        ok,
        "{test}: the agents did not converge\n{}",
        logs(&processes)
    );

    let (a1, b1) = (cluster.pod("a1"), cluster.pod("b1"));
    let icmp = ping(&a1.netns, ip_of(b1), 20, Duration::from_millis(10)).unwrap();
    assert_no_loss(
        &icmp,
        &format!(
            "{test}: a1 -> b1 through the agents' tables\n{}",
            logs(&processes)
        ),
    );

    // The API server goes away: traffic keeps flowing on the last tables.
    server.stop();
    std::thread::sleep(Duration::from_secs(1));
    let icmp = ping(&a1.netns, ip_of(b1), 50, Duration::from_millis(20)).unwrap();
    assert_no_loss(
        &icmp,
        &format!(
            "{test}: a1 -> b1 with the API server down\n{}",
            logs(&processes)
        ),
    );
    // Meanwhile a Service is created, with b1 as its endpoint.
    let IpAddr::V4(b1_ip) = ip_of(b1) else {
        panic!("{test}: testbed pods are IPv4")
    };
    create(&server, service());
    create(&server, slice(&[(b1_ip, true)]));

    // It comes back: both agents reconnect and converge.
    server.restart(RestartStore::Keep).unwrap();
    let start = Instant::now();
    let ok = kxdp_tests::eventually(Duration::from_secs(60), || {
        ["n1", "n2"].iter().all(|name| {
            let (_, services) = client(name).list(&[ObjectKind::Service]).unwrap();
            services
                .services
                .iter()
                .any(|s| s.name == "web" && s.endpoints.len() == 1)
        })
    });
    assert!(
        ok,
        "{test}: no convergence after the restart\n{}",
        logs(&processes)
    );
    println!(
        "k8s agent: two kxdp nodes converged {:?} after the API server restarted",
        start.elapsed()
    );
    let icmp = ping(&a1.netns, ip_of(b1), 20, Duration::from_millis(10)).unwrap();
    assert_no_loss(&icmp, &format!("{test}: a1 -> b1 after the restart"));

    for mut p in processes {
        p.terminate().unwrap();
    }
    drop(forwarders);
    drop(server);
    cluster.finish();
}
