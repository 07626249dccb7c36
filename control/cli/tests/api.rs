//! The gRPC API end to end: a real server on a Unix socket (or TCP with
//! mutual TLS) over a real table handle, and a real tonic client (or the
//! `kxdp` binary). No privileges needed, except for the last test, which
//! runs `kxdp run` on a netns testbed and programs it with the CLI.
//!
//! Run: `cargo test -p kxdp-cli --test api`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kxdp_config::{ApiTcpSpec, NodeConfig, PodSpec};
use kxdp_control::api::convert::{FromProto, ToProto};
use kxdp_control::api::{
    client, proto, ApiClient, ApiServer, ApiServerOptions, ApiTarget, ChangeSet, DataplaneApi,
    DesiredStateStore, KeySet, ObjectKind, ObjectSet,
};
use kxdp_dataplane::counters::{CounterSnapshot, Counters, SharedCounters};
use kxdp_dataplane::tables::{NextHop, TableHandle, Tables};
use kxdp_dataplane::DropReason;
use tonic::Code;

const CONFIG: &str = r#"
node:
  name: apinode
  vtep: {ip: 192.168.100.1, interface: ul0}
  pod_cidrs: [{tenant: blue, cidr: 10.244.1.0/24}]
interfaces:
  - {name: ul0, role: underlay, mac: "02:00:00:01:01:00"}
  - {name: vp0, role: pod, mac: "02:00:00:11:01:00"}
  - {name: vp1, role: pod, mac: "02:00:00:11:01:01"}
  - {name: vp2, role: pod, mac: "02:00:00:11:01:02"}
  - {name: vp3, role: pod, mac: "02:00:00:11:01:03"}
tenants: [{name: blue, vni: 100}]
pods:
  - {name: pod-a, tenant: blue, ip: 10.244.1.10, mac: "02:00:00:10:01:00", interface: vp0, labels: {app: web}}
remote_nodes:
  - name: node2
    vtep_ip: 192.168.100.2
    vtep_mac: "02:00:00:01:02:00"
    pod_cidrs: [{tenant: blue, cidr: 10.244.2.0/24}]
"#;

const POD_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 11);

fn pod(name: &str, ip: &str, mac: &str, interface: &str) -> PodSpec {
    serde_yaml::from_str(&format!(
        "{{name: {name}, tenant: blue, ip: {ip}, mac: '{mac}', interface: {interface}}}"
    ))
    .unwrap()
}

fn pod_b() -> PodSpec {
    pod("pod-b", "10.244.1.11", "02:00:00:10:01:01", "vp1")
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kxdp-api-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server over tables compiled from [`CONFIG`], on a socket in a scratch
/// directory, with one worker's counters.
struct Harness {
    server: Option<ApiServer>,
    tables: TableHandle,
    counters: Arc<SharedCounters>,
    socket: PathBuf,
    config: NodeConfig,
    _scratch: Scratch,
}

impl Harness {
    fn start(test: &str) -> Harness {
        Self::start_with(test, |_| {})
    }

    fn start_with(test: &str, edit: impl FnOnce(&mut ApiServerOptions)) -> Harness {
        let scratch = Scratch::new(test);
        let config = NodeConfig::from_yaml_str(CONFIG).unwrap();
        let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
        let store = Arc::new(DesiredStateStore::new(config.clone(), tables.clone()));
        let counters = Arc::new(SharedCounters::default());
        let api = DataplaneApi::new(store, vec![Arc::clone(&counters)], Vec::new());
        let mut options = ApiServerOptions {
            unix_socket: scratch.0.join("run").join("apinode.api.sock"),
            unix_group: None,
            tcp: None,
            avoid_cores: Vec::new(),
        };
        edit(&mut options);
        let server = ApiServer::start(api, &options).unwrap();
        Harness {
            server: Some(server),
            tables,
            counters,
            socket: options.unix_socket,
            config,
            _scratch: scratch,
        }
    }

    async fn client(&self) -> ApiClient {
        client::client(client::connect_unix(&self.socket).await.unwrap())
    }

    /// Where 10.244.1.x goes in the published tables: the port of a local pod.
    fn local_port(&self, ip: Ipv4Addr) -> Option<u16> {
        match self.tables.current().lookup_v4(0, ip) {
            Some(NextHop::Local { port, .. }) => Some(*port),
            _ => None,
        }
    }
}

fn upsert(objects: ObjectSet) -> proto::ApplyRequest {
    ChangeSet::upsert(objects).to_proto()
}

fn pods(pods: Vec<PodSpec>) -> ObjectSet {
    ObjectSet {
        pods,
        ..ObjectSet::default()
    }
}

async fn list(client: &mut ApiClient, kind: ObjectKind) -> (u64, ObjectSet) {
    let response = client
        .list(proto::ListRequest {
            kinds: vec![kind_value(kind)],
        })
        .await
        .unwrap()
        .into_inner();
    (
        response.generation,
        ObjectSet::from_proto(&response.objects.unwrap(), "objects").unwrap(),
    )
}

fn kind_value(kind: ObjectKind) -> i32 {
    kxdp_control::api::convert::kind_to_proto(kind) as i32
}

async fn dump(client: &mut ApiClient) -> proto::DumpTablesResponse {
    client
        .dump_tables(proto::DumpTablesRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_delta_upsert_is_published_and_listed() {
    let h = Harness::start("upsert");
    let mut c = h.client().await;
    assert_eq!(h.local_port(POD_B), None);

    let reply = c
        .apply(upsert(pods(vec![pod_b()])))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.changed);
    assert_eq!(reply.generation, 2, "the first change after generation 1");
    assert_eq!(h.tables.current().generation(), 2);
    assert_eq!(h.local_port(POD_B), Some(2), "pod-b sits on vp1, port 2");
    assert_eq!(h.local_port(POD_A), Some(1), "pod-a stays");

    let got = c
        .get(proto::GetRequest {
            kind: kind_value(ObjectKind::Pod),
            key: "pod-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.generation, 2);
    let got = ObjectSet::from_proto(&got.object.unwrap(), "object").unwrap();
    assert_eq!(got.pods, vec![pod_b()]);

    let (generation, listed) = list(&mut c, ObjectKind::Pod).await;
    assert_eq!(generation, 2);
    let names: Vec<&str> = listed.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["pod-a", "pod-b"]);
    assert!(listed.remote_nodes.is_empty(), "only the kind asked for");

    let missing = c
        .get(proto::GetRequest {
            kind: kind_value(ObjectKind::Pod),
            key: "pod-z".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

/// Re-applying what is already there publishes nothing: the reply says
/// `changed: false` and carries the current generation.
#[tokio::test]
async fn an_idempotent_upsert_keeps_the_generation() {
    let h = Harness::start("idempotent");
    let mut c = h.client().await;
    let first = c
        .apply(upsert(pods(vec![pod_b()])))
        .await
        .unwrap()
        .into_inner();
    let before = h.tables.current();
    let again = c
        .apply(upsert(pods(vec![pod_b()])))
        .await
        .unwrap()
        .into_inner();
    assert!(first.changed);
    assert!(!again.changed);
    assert_eq!(again.generation, first.generation);
    assert!(
        Arc::ptr_eq(&before, &h.tables.current()),
        "no new snapshot was published"
    );
    // The initial config's own pod, re-upserted unchanged: also a no-op.
    let initial = h.config.pods.clone();
    let same = c.apply(upsert(pods(initial))).await.unwrap().into_inner();
    assert!(!same.changed);
    // A real change to the same key is a new generation.
    let mut moved = pod_b();
    moved.interface = "vp2".into();
    let changed = c
        .apply(upsert(pods(vec![moved])))
        .await
        .unwrap()
        .into_inner();
    assert!(changed.changed);
    assert_eq!(changed.generation, first.generation + 1);
    assert_eq!(h.local_port(POD_B), Some(3));
}

#[tokio::test]
async fn deleting_an_absent_key_succeeds() {
    let h = Harness::start("delete");
    let mut c = h.client().await;
    let delete = |kind: ObjectKind, key: &str| {
        let mut keys = KeySet::default();
        keys.of_mut(kind).push(key.to_string());
        ChangeSet::delete(keys).to_proto()
    };
    let absent = c
        .apply(delete(ObjectKind::Pod, "nope"))
        .await
        .unwrap()
        .into_inner();
    assert!(!absent.changed);
    assert_eq!(absent.generation, 1);

    let gone = c
        .apply(delete(ObjectKind::Pod, "pod-a"))
        .await
        .unwrap()
        .into_inner();
    assert!(gone.changed);
    assert_eq!(gone.generation, 2);
    assert_eq!(h.local_port(POD_A), None, "pod-a's route is gone");

    let again = c
        .apply(delete(ObjectKind::Pod, "pod-a"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.changed);
    assert_eq!(again.generation, 2);

    // Routes are keyed tenant/prefix; the prefix is compared as a prefix.
    let route = proto::Route {
        tenant: "blue".into(),
        prefix: "10.99.0.0/16".into(),
        via: Some(proto::route::Via::Blackhole(proto::Blackhole {})),
    };
    c.apply(upsert(
        ObjectSet::from_proto(
            &proto::ObjectSet {
                routes: vec![route],
                ..Default::default()
            },
            "upserts",
        )
        .unwrap(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        h.tables.current().lookup_v4(0, Ipv4Addr::new(10, 99, 1, 1)),
        Some(NextHop::Blackhole)
    ));
    let removed = c
        .apply(delete(ObjectKind::Route, "blue/10.99.0.0/16"))
        .await
        .unwrap()
        .into_inner();
    assert!(removed.changed);
    assert!(h
        .tables
        .current()
        .lookup_v4(0, Ipv4Addr::new(10, 99, 1, 1))
        .is_none());
}

/// Bad requests are refused whole, with InvalidArgument naming the field,
/// and leave the desired state and the published tables exactly as they
/// were (compared through the API: dump and list before and after).
#[tokio::test]
async fn bad_requests_are_refused_whole_and_change_nothing() {
    let h = Harness::start("refused");
    let mut c = h.client().await;
    let mut state = pods(vec![pod_b()]);
    state.routes =
        serde_yaml::from_str("[{tenant: blue, prefix: 10.50.0.0/16, via: {node: node2}}]").unwrap();
    c.apply(upsert(state)).await.unwrap();
    let dump_before = dump(&mut c).await;
    let list_before = c
        .list(proto::ListRequest { kinds: Vec::new() })
        .await
        .unwrap()
        .into_inner();
    let snapshot_before = h.tables.current();

    let good = pod("pod-c", "10.244.1.12", "02:00:00:10:01:02", "vp2").to_proto();
    let mut outside = good.clone();
    outside.name = "pod-d".into();
    outside.ip = "10.244.7.12".into();
    outside.mac = "02:00:00:10:01:03".into();
    outside.interface = "vp3".into();
    let mut unknown_tenant = good.clone();
    unknown_tenant.tenant = "purple".into();
    let mut malformed = outside.clone();
    malformed.ip = "10.1.2".into();
    let request = |pods: Vec<proto::Pod>| proto::ApplyRequest {
        mode: proto::ApplyMode::Delta as i32,
        upserts: Some(proto::ObjectSet {
            pods,
            ..Default::default()
        }),
        deletes: None,
        resync_kinds: Vec::new(),
    };
    let mut delete_node = request(Vec::new());
    delete_node.deletes = Some(proto::KeySet {
        remote_nodes: vec!["node2".into()],
        ..Default::default()
    });
    let mut route_to_nowhere = request(Vec::new());
    route_to_nowhere.upserts = Some(proto::ObjectSet {
        routes: vec![proto::Route {
            tenant: "blue".into(),
            prefix: "10.60.0.0/16".into(),
            via: Some(proto::route::Via::Node("node9".into())),
        }],
        ..Default::default()
    });
    let mut no_mode = request(vec![good.clone()]);
    no_mode.mode = 0;

    let cases = [
        // The good pod first: a refusal of the second must take the first down with it.
        (request(vec![good.clone(), outside]), "upserts.pods[1].ip"),
        (request(vec![unknown_tenant]), "upserts.pods[0].tenant"),
        (request(vec![good.clone(), malformed]), "upserts.pods[1].ip"),
        // Deleting a node that an applied route still uses: named by key.
        (delete_node, "routes[\"blue/10.50.0.0/16\"].via"),
        (route_to_nowhere, "upserts.routes[0].via"),
        (no_mode, "mode"),
    ];
    for (request, field) in cases {
        let status = c.apply(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(field),
            "{:?} should name {field}",
            status.message()
        );
        assert_eq!(dump(&mut c).await, dump_before, "tables unchanged");
        assert!(Arc::ptr_eq(&snapshot_before, &h.tables.current()));
        assert_eq!(h.tables.current().generation(), 2);
        assert_eq!(h.local_port(Ipv4Addr::new(10, 244, 1, 12)), None);
        assert_eq!(h.local_port(POD_B), Some(2));
        let list_after = c
            .list(proto::ListRequest { kinds: Vec::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list_after, list_before, "desired state unchanged");
    }
    let malformed_message = c
        .apply(request(vec![{
            let mut p = good.clone();
            p.ip = "10.1.2".into();
            p
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        malformed_message.message(),
        "upserts.pods[0].ip: \"10.1.2\" is not an IP address"
    );
    // And the good pod alone goes through.
    let ok = c.apply(request(vec![good])).await.unwrap().into_inner();
    assert_eq!(ok.generation, 3);
}

#[tokio::test]
async fn a_resync_replaces_the_kinds_it_names() {
    let h = Harness::start("resync");
    let mut c = h.client().await;
    let pod_c = pod("pod-c", "10.244.1.12", "02:00:00:10:01:02", "vp2");
    let reply = c
        .apply(ChangeSet::resync(vec![ObjectKind::Pod], pods(vec![pod_c.clone()])).to_proto())
        .await
        .unwrap()
        .into_inner();
    assert!(reply.changed);
    let (_, listed) = list(&mut c, ObjectKind::Pod).await;
    assert_eq!(listed.pods, vec![pod_c]);
    assert_eq!(h.local_port(POD_A), None, "pod-a was replaced away");
    assert_eq!(h.local_port(Ipv4Addr::new(10, 244, 1, 12)), Some(3));
    let (_, nodes) = list(&mut c, ObjectKind::RemoteNode).await;
    assert_eq!(nodes.remote_nodes.len(), 1, "other kinds stay");

    // Deletes make no sense in a resync.
    let mut with_deletes = ChangeSet::resync(vec![ObjectKind::Pod], ObjectSet::default());
    with_deletes.deletes.pods.push("pod-c".into());
    let status = c.apply(with_deletes.to_proto()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("deletes"));

    // A resync of every kind to the initial objects restores generation 1's tables.
    let initial = ObjectSet::from_config(&h.config, &ObjectKind::ALL);
    c.apply(ChangeSet::resync(Vec::new(), initial).to_proto())
        .await
        .unwrap();
    assert_eq!(h.local_port(POD_A), Some(1));
    assert_eq!(h.local_port(Ipv4Addr::new(10, 244, 1, 12)), None);
}

#[tokio::test]
async fn dump_tables_shows_what_the_workers_use() {
    let h = Harness::start("dump");
    let mut c = h.client().await;
    c.apply(upsert(pods(vec![pod_b()]))).await.unwrap();
    let d = dump(&mut c).await;
    let tables = h.tables.current();
    assert_eq!(d.generation, tables.generation());
    assert_eq!(d.routes.len(), tables.route_count());
    assert_eq!(d.ports.len(), tables.ports().len());
    assert_eq!(d.tenants.len(), 1);
    assert_eq!(d.tenants[0].vni, 100);
    let remote = d
        .routes
        .iter()
        .find(|r| r.prefix == "10.244.2.0/24")
        .expect("node2's CIDR");
    match &remote.next_hop {
        Some(proto::table_route::NextHop::Remote(hop)) => {
            assert_eq!(hop.node, "node2");
            assert_eq!(hop.vtep_ip, "192.168.100.2");
            assert_eq!(hop.vni, 100);
            assert_eq!(hop.inner_dst_mac, "02:00:00:01:02:00");
            assert_eq!(hop.outer_dst_mac, "02:00:00:01:02:00");
        }
        other => panic!("node2's CIDR leads to {other:?}"),
    }
    let local = d
        .routes
        .iter()
        .find(|r| r.prefix == "10.244.1.11/32")
        .expect("pod-b's route");
    match &local.next_hop {
        Some(proto::table_route::NextHop::Local(hop)) => {
            assert_eq!(hop.port_name, "vp1");
            assert_eq!(hop.mac, "02:00:00:10:01:01");
        }
        other => panic!("pod-b's route leads to {other:?}"),
    }
    let vp1 = &d.ports[2];
    assert_eq!(vp1.role, proto::PortRole::Pod as i32);
    assert_eq!(vp1.pod.as_ref().unwrap().name, "pod-b");
    assert_eq!(d.ports[3].role, proto::PortRole::Idle as i32);
    assert_eq!(d.vtep.as_ref().unwrap().ip, "192.168.100.1");

    // Drift check: something publishing behind the store's back shows.
    h.tables.apply(&h.config).unwrap();
    let status = c
        .get_status(proto::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.node, "apinode");
    assert_eq!(status.desired_generation, 2);
    assert!(status.generation > status.desired_generation);
    assert_eq!(dump(&mut c).await.generation, status.generation);
}

#[tokio::test]
async fn the_counter_stream_is_cumulative_and_timestamped() {
    let h = Harness::start("counters");
    let mut c = h.client().await;
    let mut counters = Counters {
        rx_packets: 5,
        ..Counters::default()
    };
    counters.drop_n(DropReason::NotOurMac, 3);
    h.counters.publish(&counters);

    let mut stream = c
        .watch_counters(proto::WatchCountersRequest {
            interval_ms: 20,
            max_samples: 3,
        })
        .await
        .unwrap()
        .into_inner();
    let mut samples = Vec::new();
    while let Some(sample) = stream.message().await.unwrap() {
        if samples.is_empty() {
            // The worker keeps counting between samples.
            counters.rx_packets = 9;
            counters.drop(DropReason::NotOurMac);
            h.counters.publish(&counters);
        }
        samples.push(sample);
    }
    assert_eq!(samples.len(), 3, "max_samples ends the stream");
    let time = |s: &proto::CounterSample| {
        let t = s.time.as_ref().unwrap();
        Duration::new(t.seconds as u64, t.nanos as u32)
    };
    assert!(time(&samples[0]) > Duration::from_secs(1_600_000_000));
    assert!(time(&samples[1]) > time(&samples[0]));
    assert!(time(&samples[2]) > time(&samples[1]));
    assert!(time(&samples[2]) - time(&samples[0]) >= Duration::from_millis(30));
    for s in &samples {
        assert_eq!(s.generation, 1);
        assert_eq!(s.workers.len(), 1);
        assert_eq!(s.workers[0].drops.len(), DropReason::COUNT, "every reason");
    }
    assert_eq!(samples[0].workers[0].rx_packets, 5);
    assert_eq!(samples[0].workers[0].drops["not_our_mac"], 3);
    assert_eq!(samples[2].workers[0].rx_packets, 9);
    assert_eq!(samples[2].workers[0].drops["not_our_mac"], 4);

    let too_fast = c
        .watch_counters(proto::WatchCountersRequest {
            interval_ms: 1,
            max_samples: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(too_fast.code(), Code::InvalidArgument);
    assert!(too_fast.message().starts_with("interval_ms"));
}

/// `GetCounters` carries everything `kxdp stats` shows: read back, the
/// worker's counters are the node's own snapshot, and the CLI prints them
/// as before, in every output format.
#[test]
fn kxdp_stats_reads_the_nodes_counters_over_get_counters() {
    let h = Harness::start("stats");
    let socket = h.socket.display().to_string();
    let mut counters = Counters {
        rx_packets: 7,
        rx_bytes: 700,
        tx_packets: 6,
        encapsulated: 2,
        icmp_time_exceeded: 1,
        busy_cycles: 7_000,
        sleeps: 3,
        max_loop_ns: 1_500_000,
        slow_loops: 2,
        port_rebinds: 1,
        frames_total: 8,
        frames_free: 5,
        frames_in_fill: 3,
        accounting_checks: 4,
        ..Counters::default()
    };
    counters.drop_n(DropReason::NotOurMac, 3);
    counters.drop_n(DropReason::FillRingEmpty, 2);
    h.counters.publish(&counters);

    let stats = kxdp_control::stats::fetch(&h.socket).unwrap();
    let tables = h.tables.current();
    assert_eq!(stats.node, "apinode");
    assert_eq!(stats.generation, tables.generation());
    assert_eq!(stats.routes, tables.route_count());
    assert_eq!(
        stats.workers,
        [CounterSnapshot::from_counters(0, &h.counters.snapshot())]
    );
    assert_eq!(stats.workers[0].cycles_per_packet, 1000.0);
    assert_eq!(stats.workers[0].frames.in_fill, 3);
    assert_eq!(stats.workers[0].drops.len(), 2, "non-zero reasons only");
    assert!(stats.ports.is_empty());

    let (ok, out, err) = kxdp(&["stats", "--api-socket", &socket]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("node apinode  tables generation 1"),
        "{out}"
    );
    assert!(
        out.contains("not_our_mac") && out.contains("fill_ring_empty"),
        "{out}"
    );
    assert!(
        out.contains("time_exceeded 1  unreachable 0  too_big 0  rate_limited 0"),
        "the ICMP errors sent: {out}"
    );
    let (ok, out, err) = kxdp(&["stats", "--api-socket", &socket, "-o", "json"]);
    assert!(ok, "{err}");
    let json: kxdp_node::stats::NodeStats = serde_json::from_str(&out).unwrap();
    assert_eq!(json.workers, stats.workers);
    // `--socket` names `control.socket`: the API socket is beside it.
    let control = socket.replace(".api.sock", ".sock");
    let (ok, out, err) = kxdp(&["stats", "--socket", &control, "-o", "yaml"]);
    assert!(ok, "{err}");
    assert!(out.contains("node: apinode"), "{out}");

    drop(h);
    let err = kxdp_control::stats::fetch(Path::new(&socket)).unwrap_err();
    let err = kxdp_node::report::Report(&err).to_string();
    assert!(err.contains("is `kxdp run` running?"), "{err}");
}

/// A server stopping ends open streams instead of waiting for them.
#[tokio::test]
async fn shutdown_ends_open_streams_and_removes_the_socket() {
    let mut h = Harness::start("shutdown");
    let mut c = h.client().await;
    let mut stream = c
        .watch_counters(proto::WatchCountersRequest {
            interval_ms: 10,
            max_samples: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let server = h.server.take().unwrap();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "no grace wait");
    assert!(!h.socket.exists(), "socket removed");
    // The stream ends (cleanly or with an error), it does not hang.
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
    assert!(end.is_ok());
}

#[test]
fn the_socket_is_private_and_replaces_a_stale_one() {
    let scratch = Scratch::new("socket");
    let path = scratch.0.join("deep").join("dir").join("n.api.sock");
    // A stale socket file: bound, then its listener gone.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let h = Harness::start_with("socket-owner", |o| o.unix_socket = path.clone());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A second server on a live socket is refused, and leaves it alone.
    let config = NodeConfig::from_yaml_str(CONFIG).unwrap();
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    let api = DataplaneApi::new(
        Arc::new(DesiredStateStore::new(config, tables)),
        Vec::new(),
        Vec::new(),
    );
    let second = ApiServer::start(
        api,
        &ApiServerOptions {
            unix_socket: path.clone(),
            unix_group: None,
            tcp: None,
            avoid_cores: Vec::new(),
        },
    );
    assert!(second.unwrap_err().to_string().contains("in use"));
    assert!(path.exists());

    drop(h);
    assert!(!path.exists(), "removed on shutdown");
}

#[tokio::test]
async fn reflection_lists_the_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let h = Harness::start("reflection");
    let channel = client::connect_unix(&h.socket).await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "kxdp.v1.DataplaneService".into(),
            )),
        },
    ];
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut services = Vec::new();
    let mut files = 0;
    while let Some(response) = responses.message().await.unwrap() {
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                services.extend(list.service.into_iter().map(|s| s.name));
            }
            Some(MessageResponse::FileDescriptorResponse(f)) => {
                files += f.file_descriptor_proto.len();
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    assert!(
        services.contains(&proto::SERVICE_NAME.to_string()),
        "{services:?}"
    );
    assert!(files >= 1, "the service's file descriptor is served");
}

/// Appliers racing each other: every apply upserts two routes together;
/// a reader checking every snapshot never sees one without the other, and
/// no change is lost.
#[test]
fn concurrent_appliers_never_tear_the_tables() {
    let config = NodeConfig::from_yaml_str(CONFIG).unwrap();
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    let store = Arc::new(DesiredStateStore::new(config, tables.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Snapshots the reader has checked: the appliers start only once it
    // runs, and it stops only after checking one made after all of them
    // (on a loaded machine it could otherwise not run at all in between).
    let checks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let tables = tables.clone();
        let stop = Arc::clone(&stop);
        let checks = Arc::clone(&checks);
        std::thread::spawn(move || {
            let mut reader = tables.reader();
            while !stop.load(Ordering::Relaxed) {
                let snapshot = reader.load();
                for i in 0..40u8 {
                    let a = snapshot
                        .lookup_v4(0, Ipv4Addr::new(10, 100, i, 1))
                        .is_some();
                    let b = snapshot
                        .lookup_v4(0, Ipv4Addr::new(10, 101, i, 1))
                        .is_some();
                    assert_eq!(a, b, "torn: pair {i} half applied");
                }
                checks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let wait_for_a_check_after = |seen: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while checks.load(Ordering::SeqCst) <= seen {
            assert!(std::time::Instant::now() < deadline, "the reader never ran");
            std::thread::yield_now();
        }
    };
    wait_for_a_check_after(0);
    let appliers: Vec<_> = (0..4u8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for j in 0..10u8 {
                    let i = t * 10 + j;
                    let routes = serde_yaml::from_str(&format!(
                        "[{{tenant: blue, prefix: 10.100.{i}.0/24, via: {{node: node2}}}}, \
                          {{tenant: blue, prefix: 10.101.{i}.0/24, via: blackhole}}]"
                    ))
                    .unwrap();
                    let outcome = store
                        .apply(&ChangeSet::upsert(ObjectSet {
                            routes,
                            ..ObjectSet::default()
                        }))
                        .unwrap();
                    assert!(outcome.changed);
                }
            })
        })
        .collect();
    for a in appliers {
        a.join().unwrap();
    }
    // A snapshot checked after every apply: the last generation, whole.
    wait_for_a_check_after(checks.load(Ordering::SeqCst) + 1);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let state = store.snapshot();
    assert_eq!(state.config.routes.len(), 80, "no change lost");
    assert_eq!(state.generation, 41, "one generation per change");
    assert_eq!(tables.current().generation(), 41);
}

/// Mutual TLS on TCP: a client with a certificate from the configured CA
/// gets in; one without a certificate, one with another CA's, and a
/// plaintext client do not.
#[tokio::test]
async fn tcp_takes_only_mutual_tls() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let scratch = Scratch::new("tls");
    let dir = scratch.0.clone();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let leaf = |issuer: &Issuer<'_, KeyPair>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (ca_pem, ca_issuer) = ca("kxdp test CA");
    let (_, other_issuer) = ca("someone else's CA");
    let (server_cert, server_key) = leaf(&ca_issuer, ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf(&ca_issuer, ExtendedKeyUsagePurpose::ClientAuth);
    let (rogue_cert, rogue_key) = leaf(&other_issuer, ExtendedKeyUsagePurpose::ClientAuth);
    let ca_path = write("ca.pem", ca_pem);
    let spec = ApiTcpSpec {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: write("server.pem", server_cert).display().to_string(),
        key: write("server.key", server_key).display().to_string(),
        client_ca: ca_path.display().to_string(),
    };
    let h = Harness::start_with("tls-server", |o| o.tcp = Some(spec));
    let addr = h.server.as_ref().unwrap().tcp_addr().unwrap();
    let url = format!("https://localhost:{}", addr.port());
    let target = |cert: PathBuf, key: PathBuf| ApiTarget::Tls {
        url: url.clone(),
        ca: ca_path.clone(),
        cert,
        key,
        domain: None,
    };

    let good = target(
        write("client.pem", client_cert),
        write("client.key", client_key),
    );
    let mut c = client::client(client::connect(&good).await.unwrap());
    let status = c
        .get_status(proto::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.node, "apinode");

    let rogue = target(
        write("rogue.pem", rogue_cert),
        write("rogue.key", rogue_key),
    );
    let refused = match client::connect(&rogue).await {
        Err(_) => true,
        Ok(channel) => client::client(channel)
            .get_status(proto::GetStatusRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a client certificate from another CA is refused");

    // No client certificate at all.
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(&ca_path).unwrap()),
    );
    let anonymous = async {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await?;
        client::client(channel)
            .get_status(proto::GetStatusRequest {})
            .await
            .map_err(|e| -> Box<dyn std::error::Error> { Box::new(e) })?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(
        anonymous.await.is_err(),
        "a client without a certificate is refused"
    );

    // Plaintext HTTP/2 on the TCP port.
    let plain = async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", addr.port()))
                .unwrap()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(2))
                .connect()
                .await?;
        client::client(channel)
            .get_status(proto::GetStatusRequest {})
            .await
            .map_err(|e| -> Box<dyn std::error::Error> { Box::new(e) })?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(plain.await.is_err(), "plaintext is refused");
}

fn kxdp(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kxdp"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The CLI against an in-process server: get, apply (resync and delta),
/// delete, dump, stats --watch.
#[test]
fn the_cli_is_a_client_of_the_api() {
    let h = Harness::start("cli");
    let socket = h.socket.display().to_string();
    let dir = h.socket.parent().unwrap().to_path_buf();

    let (ok, out, err) = kxdp(&["get", "pods", "--socket", &socket]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(lines[1].starts_with("pod-a") && lines[1].contains("10.244.1.10"));
    assert!(lines[1].contains("app=web"));

    // get -o yaml applies back.
    let (ok, yaml, err) = kxdp(&["get", "pods", "pod-a", "--socket", &socket, "-o", "yaml"]);
    assert!(ok, "{err}");
    let file = dir.join("pods.yaml");
    std::fs::write(
        &file,
        yaml.replace("pod-a", "pod-b")
            .replace("10.244.1.10", "10.244.1.11")
            .replace("02:00:00:10:01:00", "02:00:00:10:01:01")
            .replace("vp0", "vp1"),
    )
    .unwrap();
    let f = file.display().to_string();
    let (ok, out, err) = kxdp(&["apply", "--delta", "-f", &f, "--socket", &socket]);
    assert!(ok, "{err}");
    assert!(out.contains("generation 2"), "{out}");
    assert_eq!(h.local_port(POD_B), Some(2));
    assert_eq!(h.local_port(POD_A), Some(1), "delta keeps pod-a");

    // The same file as a resync: pods become exactly pod-b.
    let (ok, out, err) = kxdp(&["apply", "-f", &f, "--socket", &socket]);
    assert!(ok, "{err}");
    assert!(out.contains("replaced 1 pods: generation 3"), "{out}");
    assert_eq!(h.local_port(POD_A), None);

    // A refused apply exits non-zero and names the field.
    std::fs::write(&file, "pods: [{name: x, tenant: purple, ip: 10.244.1.40, mac: '02:00:00:10:01:09', interface: vp2}]\n").unwrap();
    let (ok, _, err) = kxdp(&["apply", "--delta", "-f", &f, "--socket", &socket]);
    assert!(!ok);
    assert!(err.contains("upserts.pods[0].tenant"), "{err}");

    let (ok, out, err) = kxdp(&["delete", "pods", "pod-b", "ghost", "--socket", &socket]);
    assert!(ok, "{err}");
    assert!(out.contains("generation 4"), "{out}");
    assert_eq!(h.local_port(POD_B), None);

    let (ok, out, err) = kxdp(&["get", "nodes", "--socket", &socket, "-o", "json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["remote_nodes"][0]["name"], "node2");

    let (ok, out, err) = kxdp(&["dump", "--socket", &socket]);
    assert!(ok, "{err}");
    assert!(out.starts_with("tables generation 4"), "{out}");
    assert!(out.contains("10.244.2.0/24") && out.contains("vxlan 192.168.100.2 vni 100"));

    let (ok, _, err) = kxdp(&["get", "gizmos", "--socket", &socket]);
    assert!(!ok);
    assert!(err.contains("unknown kind"), "{err}");

    let (ok, out, err) = kxdp(&[
        "stats",
        "--watch",
        "--api-socket",
        &socket,
        "--interval-ms",
        "20",
        "--count",
        "2",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("generation 4").count(), 2, "{out}");
    assert!(out.contains("WORKER"));
    // Each sample starts with its time, UTC: `-- 2026-12-08T01:33:12.345Z`.
    let stamp = out
        .lines()
        .find_map(|l| l.strip_prefix("-- "))
        .unwrap_or_else(|| panic!("no sample line: {out}"));
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
}

/// On a real node: `kxdp run` on a netns testbed serves the API beside its
/// `control.socket` path; the CLI reads its pods, deletes one (traffic to it stops),
/// applies it back from `get -o yaml` (traffic flows again), and SIGTERM
/// removes the socket.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn the_cli_programs_a_running_kxdp() {
    use kxdp_testbed::{
        ping, pod_ip, privileged_test, NodeKind, NodeSpec, Testbed, TopologySpec, Underlay,
    };
    privileged_test("the_cli_programs_a_running_kxdp");
    let spec = TopologySpec::new(Underlay::Switch, &[("blue", 100)]).with_node(
        NodeSpec::new("n1", NodeKind::Kxdp)
            .with_pod("api-a", "blue", pod_ip(1, 2))
            .with_pod("api-b", "blue", pod_ip(1, 3)),
    );
    let bed = Testbed::build(spec).expect("build the testbed");
    let mut process = bed
        .start_kxdp("n1", Path::new(env!("CARGO_BIN_EXE_kxdp")), &[])
        .expect("start kxdp");
    let config_path = process.config_path().display().to_string();
    let config = NodeConfig::from_file(&config_path).unwrap();
    let api_socket = kxdp_control::api::api_socket_path(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !api_socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(api_socket.exists(), "{}", process.log_tail(20));
    let mode = std::fs::metadata(&api_socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (ok, out, err) = kxdp(&["get", "pods", "--config", &config_path]);
    assert!(ok, "{err}");
    assert!(out.contains("api-a") && out.contains("api-b"), "{out}");
    let (ok, yaml_b, err) = kxdp(&[
        "get",
        "pods",
        "api-b",
        "--config",
        &config_path,
        "-o",
        "yaml",
    ]);
    assert!(ok, "{err}");

    let a = bed.pod("api-a").unwrap();
    let b_ip = IpAddr::V4(bed.pod("api-b").unwrap().ip);
    let before = ping(&a.netns, b_ip, 5, Duration::from_millis(20)).unwrap();
    assert_eq!(before.received, 5, "api-a reaches api-b through kxdp");

    let (ok, out, err) = kxdp(&["delete", "pods", "api-b", "--config", &config_path]);
    assert!(ok, "{err}");
    assert!(out.contains("generation 2"), "{out}");
    let cut = ping(&a.netns, b_ip, 3, Duration::from_millis(20)).unwrap();
    assert_eq!(cut.received, 0, "no route to a deleted pod");

    let file = bed.scratch_dir().join("api-b.yaml");
    std::fs::write(&file, yaml_b).unwrap();
    let (ok, out, err) = kxdp(&[
        "apply",
        "--delta",
        "-f",
        &file.display().to_string(),
        "--config",
        &config_path,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("generation 3"), "{out}");
    let back = ping(&a.netns, b_ip, 5, Duration::from_millis(20)).unwrap();
    assert!(back.received >= 4, "traffic flows again: {back:?}");

    // `kxdp stats` (GetCounters) sees the API's generation.
    let (ok, out, err) = kxdp(&["stats", "--config", &config_path]);
    assert!(ok, "{err}");
    assert!(out.contains("tables generation 3"), "{out}");

    process.terminate().unwrap();
    assert!(!api_socket.exists(), "SIGTERM removes the API socket");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// How long an apply takes to reach a worker: a thread spinning on a
/// `TableReader` (as a worker does once per batch) notes when each
/// generation appears; the client notes when it sent the request. Over
/// 1,000 delta applies through the Unix socket. Then the time to resync
/// 100k service endpoints (1,000 services of 100) through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_latency_to_a_worker_and_a_100k_endpoint_resync() {
    let h = Harness::start("latency");
    let mut c = h.client().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let watcher = {
        let tables = h.tables.clone();
        let stop = Arc::clone(&stop);
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut reader = tables.reader();
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let generation = reader.load().generation();
                if generation != last {
                    let now = std::time::Instant::now();
                    seen.lock().unwrap().insert(generation, now);
                    last = generation;
                }
                // Share the two cores; a worker checks once per batch.
                std::thread::yield_now();
            }
        })
    };
    const UPDATES: usize = 1000;
    let mut latencies = Vec::with_capacity(UPDATES);
    for i in 0..UPDATES {
        let via = if i % 2 == 0 {
            "blackhole"
        } else {
            "{node: node2}"
        };
        let routes = serde_yaml::from_str(&format!(
            "[{{tenant: blue, prefix: 10.77.0.0/16, via: {via}}}]"
        ))
        .unwrap();
        let start = std::time::Instant::now();
        let reply = c
            .apply(upsert(ObjectSet {
                routes,
                ..ObjectSet::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.changed);
        // Closed loop: the next update once the watcher saw this one.
        let deadline = start + Duration::from_secs(5);
        let visible = loop {
            if let Some(t) = seen.lock().unwrap().get(&reply.generation) {
                break *t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "generation {} never seen",
                reply.generation
            );
            tokio::task::yield_now().await;
        };
        latencies.push(visible.duration_since(start));
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    println!(
        "API apply -> visible to a worker over {} updates: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p50,
        p99,
        latencies[latencies.len() - 1]
    );
    assert!(p99 < Duration::from_millis(200), "p99 {p99:?}");

    let mut services = Vec::new();
    for s in 0..1000u32 {
        let endpoints: Vec<proto::Endpoint> = (0..100u32)
            .map(|e| {
                let n = s * 100 + e;
                proto::Endpoint {
                    ip: Ipv4Addr::new(10, 200 + (n >> 16) as u8, (n >> 8) as u8, n as u8)
                        .to_string(),
                    ..Default::default()
                }
            })
            .collect();
        services.push(proto::Service {
            name: format!("svc-{s}"),
            namespace: "load".into(),
            tenant: "blue".into(),
            cluster_ip: Ipv4Addr::new(10, 96, (s >> 8) as u8, s as u8).to_string(),
            ports: vec![proto::ServicePort {
                port: 80,
                ..Default::default()
            }],
            endpoints,
            ..Default::default()
        });
    }
    let request = proto::ApplyRequest {
        mode: proto::ApplyMode::Resync as i32,
        upserts: Some(proto::ObjectSet {
            services,
            ..Default::default()
        }),
        deletes: None,
        resync_kinds: vec![kind_value(ObjectKind::Service)],
    };
    let start = std::time::Instant::now();
    let reply = c.apply(request).await.unwrap().into_inner();
    let elapsed = start.elapsed();
    assert!(reply.changed);
    assert_eq!(h.tables.current().generation(), reply.generation);
    println!("resync of 100k endpoints (1000 services x 100) through the API: {elapsed:?}");
    let (_, listed) = list(&mut c, ObjectKind::Service).await;
    assert_eq!(
        listed
            .services
            .iter()
            .map(|s| s.endpoints.len())
            .sum::<usize>(),
        100_000
    );
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}

/// Who may program the dataplane on the node: connecting to a Unix socket
/// needs write permission on it, so with mode 0600 only root gets in and a
/// client running as another user is refused by the kernel; with
/// `control.api_socket_group` the socket is root:GROUP 0660 and members of
/// that group get in too. The client is the real `kxdp` CLI, run as
/// `nobody`.
#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn only_root_or_the_configured_group_may_use_the_unix_socket() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    kxdp_testbed::privileged_test("only_root_or_the_configured_group_may_use_the_unix_socket");
    let scratch = Scratch::new("socket-authz");
    // Directories everyone may traverse, so that the socket's own mode is
    // what decides.
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kxdp = scratch.0.join("kxdp");
    std::fs::copy(env!("CARGO_BIN_EXE_kxdp"), &kxdp).unwrap();
    std::fs::set_permissions(&kxdp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("the nogroup group exists");
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("the nobody user exists");
    let as_nobody = |socket: &Path| {
        Command::new(&kxdp)
            .args(["get", "pods", "--socket"])
            .arg(socket)
            .uid(nobody.uid.as_raw())
            .gid(nogroup.gid.as_raw())
            .output()
            .unwrap()
    };
    let as_root = |socket: &Path| {
        Command::new(&kxdp)
            .args(["get", "pods", "--socket"])
            .arg(socket)
            .output()
            .unwrap()
    };

    // Root only.
    let private = scratch.0.join("private.api.sock");
    let h = Harness::start_with("socket-root", |o| o.unix_socket = private.clone());
    let meta = std::fs::metadata(&private).unwrap();
    assert_eq!(meta.uid(), 0, "owned by root");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let out = as_root(&private);
    assert!(out.status.success(), "root gets in: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.244.1.10"));
    let out = as_nobody(&private);
    assert!(!out.status.success(), "nobody is refused: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ermission denied"),
        "refused by the kernel: {err}"
    );
    drop(h);

    // Root and a group.
    let shared = scratch.0.join("shared.api.sock");
    let h = Harness::start_with("socket-group", |o| {
        o.unix_socket = shared.clone();
        o.unix_group = Some("nogroup".to_string());
    });
    let meta = std::fs::metadata(&shared).unwrap();
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let out = as_nobody(&shared);
    assert!(
        out.status.success(),
        "a member of the group gets in: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.244.1.10"));
    drop(h);

    // A group that does not exist: the server refuses to start, naming the
    // field, rather than falling back to another mode.
    let config = NodeConfig::from_yaml_str(CONFIG).unwrap();
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    let api = DataplaneApi::new(
        Arc::new(DesiredStateStore::new(config, tables)),
        Vec::new(),
        Vec::new(),
    );
    let err = ApiServer::start(
        api,
        &ApiServerOptions {
            unix_socket: scratch.0.join("nogroup.api.sock"),
            unix_group: Some("kxdp-no-such-group".to_string()),
            tcp: None,
            avoid_cores: Vec::new(),
        },
    )
    .unwrap_err();
    let err = kxdp_node::report::Report(&err).to_string();
    assert!(err.contains("control.api_socket_group"), "{err}");
    assert!(err.contains("kxdp-no-such-group"), "{err}");
}
