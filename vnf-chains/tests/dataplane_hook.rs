//! Service chains inside the dataplane's worker, in memory: the worker's
//! pipeline with the [`DataplaneChains`] hook over the in-memory AF_XDP
//! backend, a chain policy → policer → load balancer (drops counted by the
//! new drop reasons, the destination rewritten and routed to a backend), an
//! external VNF hop (redirect without TTL decrement, resumed from the
//! VNF's return interface without the pod source check), mirror copies in
//! free UMEM frames, and the per-worker chain counters.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use etherparse::PacketBuilder;
use kxdp_config::NodeConfig;
use kxdp_dataplane::chain_hook::{ChainHook, MirrorFrames};
use kxdp_dataplane::counters::SharedCounters;
use kxdp_dataplane::io::memory::MemoryIo;
use kxdp_dataplane::io::{Desc, MIN_HEADROOM};
use kxdp_dataplane::packet::{self, L3};
use kxdp_dataplane::pipeline::Pipeline;
use kxdp_dataplane::tables::{TableHandle, Tables};
use kxdp_dataplane::worker::{Worker, WorkerOptions};
use kxdp_dataplane::{DropReason, Verdict};
use kxdp_vnf_chains::{
    ChainInput, ChainSetHandle, CompileOptions, DataplaneChains, SharedChainStats, WorkerLimits,
};

const MS: u64 = 1_000_000;
const VIP: [u8; 4] = [10, 96, 0, 10];
const CLIENT: [u8; 4] = [10, 244, 1, 2];
const INTRUDER: [u8; 4] = [10, 244, 1, 5];
const WEB1: [u8; 4] = [10, 244, 1, 3];
const WEB2: [u8; 4] = [10, 244, 1, 4];
// Ports, in the order of `interfaces`.
const CLIENT_PORT: u16 = 1;
const WEB1_PORT: u16 = 2;
const WEB2_PORT: u16 = 3;
const INTRUDER_PORT: u16 = 4;
const TO_VNF: u16 = 5;
const FROM_VNF: u16 = 6;
const TAP: u16 = 7;
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 1, 1, 0x0a];
const INTRUDER_MAC: [u8; 6] = [2, 0, 0, 1, 1, 0x0d];
const VNF_MAC: [u8; 6] = [2, 0, 0, 1, 1, 0x0e];
const CLIENT_GW_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x0a];
const INTRUDER_GW_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x0d];
const TO_VNF_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x0e];

/// A node with a client, two web backends, an intruder, a VNF pod (its
/// interface into the VNF is `vnf-in`, it sends back on `vnf-out`) and a
/// mirror tap; `functions` is the chain for TCP to the service range.
fn config(functions: &str) -> NodeConfig {
    let yaml = format!(
        r#"
node:
  name: node1
  vtep: {{ip: 192.168.100.1, interface: ul0}}
  pod_cidrs: [{{tenant: blue, cidr: 10.244.1.0/24}}]
interfaces:
  - {{name: ul0, role: underlay, mac: '02:00:00:00:00:01'}}
  - {{name: vpa, role: pod, mac: '02:00:00:00:01:0a'}}
  - {{name: vpb, role: pod, mac: '02:00:00:00:01:0b'}}
  - {{name: vpc, role: pod, mac: '02:00:00:00:01:0c'}}
  - {{name: vpd, role: pod, mac: '02:00:00:00:01:0d'}}
  - {{name: vnf-in, role: pod, mac: '02:00:00:00:01:0e'}}
  - {{name: vnf-out, role: pod, mac: '02:00:00:00:01:0f'}}
  - {{name: tap0, role: pod, mac: '02:00:00:00:01:10'}}
workers: {{count: 1, batch_size: 64, poll_mode: adaptive}}
tenants: [{{name: blue, vni: 100}}]
pods:
  - {{name: client, tenant: blue, ip: 10.244.1.2, mac: '02:00:00:01:01:0a', interface: vpa, labels: {{app: client}}}}
  - {{name: web1, tenant: blue, ip: 10.244.1.3, mac: '02:00:00:01:01:0b', interface: vpb, labels: {{app: web}}}}
  - {{name: web2, tenant: blue, ip: 10.244.1.4, mac: '02:00:00:01:01:0c', interface: vpc, labels: {{app: web}}}}
  - {{name: intruder, tenant: blue, ip: 10.244.1.5, mac: '02:00:00:01:01:0d', interface: vpd, labels: {{app: intruder}}}}
  - {{name: vnf, tenant: blue, ip: 10.244.1.6, mac: '02:00:00:01:01:0e', interface: vnf-in, labels: {{app: vnf}}}}
services:
  - name: web
    tenant: blue
    cluster_ip: 10.96.0.10
    ports: [{{port: 80, target_port: 8080}}]
    endpoints: [{{ip: 10.244.1.3}}, {{ip: 10.244.1.4}}]
policies:
  - name: web
    pod_selector: {{match_labels: {{app: web}}}}
    ingress: [{{from: [{{pod_selector: {{match_labels: {{app: client}}}}}}]}}]
  - name: intruder
    pod_selector: {{match_labels: {{app: intruder}}}}
    policy_types: [Egress]
    egress: [{{ports: [{{protocol: udp, port: 53}}]}}]
chains:
  - name: web
    tenant: blue
    classifier: {{dst: 10.96.0.0/16, protocol: tcp}}
    functions:
{functions}
"#
    );
    NodeConfig::from_yaml_str(&yaml).unwrap()
}

const POLICY_POLICER_LB: &str = "      - {type: policy}\n      - {type: policer, rate_pps: 1000, burst: 4, per: flow}\n      - {type: load_balancer}\n";
const WITH_VNF: &str = "      - {type: policy}\n      - {type: external, to_interface: vnf-in, from_interface: vnf-out, failure: fail_closed, timeout_ms: 200}\n      - {type: load_balancer}\n";
const WITH_MIRROR: &str =
    "      - {type: mirror, interface: tap0}\n      - {type: load_balancer}\n";

struct Node {
    worker: Worker<MemoryIo, DataplaneChains>,
    stats: Arc<SharedChainStats>,
    chains: ChainSetHandle,
}

fn node(functions: &str) -> Node {
    let config = config(functions);
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    let chains = ChainSetHandle::compile_initial(
        &ChainInput::from_config(&config),
        CompileOptions::default(),
    )
    .unwrap();
    let stats = Arc::new(SharedChainStats::default());
    let hook = DataplaneChains::new(&chains, WorkerLimits::default(), 1, Arc::clone(&stats));
    let io = MemoryIo::new(config.interfaces.len(), 2048, 1024, 64);
    let worker = Worker::with_hook(
        io,
        tables.reader(),
        Arc::new(SharedCounters::default()),
        WorkerOptions {
            batch_size: 64,
            ..WorkerOptions::default()
        },
        hook,
    );
    Node {
        worker,
        stats,
        chains,
    }
}

fn tcp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], sport: u16, dst: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .tcp(sport, 80, 1, 65_000)
        .syn()
        .write(&mut out, b"hello")
        .unwrap();
    out
}

fn ipv4(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, u16) {
    let meta = packet::parse(frame).unwrap();
    let L3::Ipv4 { src, dst } = meta.l3 else {
        panic!("not IPv4");
    };
    (src, dst, frame[meta.l3_offset + 8], meta.l4.ports().1)
}

impl Node {
    /// Inject frames on `port` and run the worker once at `now`.
    fn send(&mut self, now: u64, port: u16, frames: &[Vec<u8>]) {
        // Fill rings are topped up by the worker: make sure they are.
        self.worker.poll_once_at(now);
        for f in frames {
            assert!(self.worker.io_mut().inject(port, f), "injected");
        }
        self.worker.poll_once_at(now);
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.worker.pipeline().counters.drops_for(reason)
    }

    fn tx(&mut self, port: u16) -> Vec<Vec<u8>> {
        self.worker.io_mut().drain_tx(port)
    }
}

#[test]
fn policy_policer_and_load_balancer_in_the_worker() {
    let mut node = node(POLICY_POLICER_LB);

    // The intruder's egress policy allows only DNS: the chain's policy drops.
    let denied: Vec<Vec<u8>> = (0..3)
        .map(|i| tcp(INTRUDER_MAC, INTRUDER_GW_MAC, INTRUDER, 5000 + i, VIP))
        .collect();
    node.send(MS, INTRUDER_PORT, &denied);
    assert_eq!(node.drops(DropReason::PolicyDenied), 3);

    // One client flow of 7 packets at one instant: the per-flow policer
    // (burst 4) passes 4, drops 3; those passed are balanced to a backend.
    let flow: Vec<Vec<u8>> = (0..7)
        .map(|_| tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 40_000, VIP))
        .collect();
    node.send(2 * MS, CLIENT_PORT, &flow);
    assert_eq!(node.drops(DropReason::PolicerExceeded), 3);
    let web1 = node.tx(WEB1_PORT);
    let web2 = node.tx(WEB2_PORT);
    assert_eq!(
        web1.len() + web2.len(),
        4,
        "{} + {}",
        web1.len(),
        web2.len()
    );
    assert!(web1.is_empty() || web2.is_empty(), "one flow, one backend");
    let (delivered, backend) = if web1.is_empty() {
        (web2, WEB2)
    } else {
        (web1, WEB1)
    };
    for frame in &delivered {
        let (src, dst, ttl, dport) = ipv4(frame);
        assert_eq!(src, Ipv4Addr::from(CLIENT));
        assert_eq!(dst, Ipv4Addr::from(backend), "destination rewritten");
        assert_eq!(dport, 8080, "to the target port");
        assert_eq!(ttl, 63, "routed: TTL decremented once");
    }

    // Many flows spread over both backends.
    let flows: Vec<Vec<u8>> = (0..40)
        .map(|i| tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 41_000 + i, VIP))
        .collect();
    node.send(3 * MS, CLIENT_PORT, &flows);
    let (a, b) = (node.tx(WEB1_PORT).len(), node.tx(WEB2_PORT).len());
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "{a} / {b}");

    // The chain's counters, published when the worker is idle.
    node.worker.pipeline_mut().hook_mut().publish_stats();
    let stats = SharedChainStats::merged(&[Arc::clone(&node.stats)]);
    let web = &stats[0];
    assert_eq!(web.chain, "web");
    assert_eq!(web.counters.drops_for(DropReason::PolicyDenied), 3);
    assert_eq!(web.counters.drops_for(DropReason::PolicerExceeded), 3);
    let kinds: Vec<&str> = web.stages.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["policy", "policer", "load_balancer"]);
    assert_eq!(web.stages[0].1.packets, 3 + 7 + 40);
    assert_eq!(web.stages[0].1.dropped, 3);
    assert_eq!(web.stages[1].1.dropped, 3);
    assert_eq!(web.stages[2].1.passed, 4 + 40);
    // Traffic outside the chain's classifier is routed as before.
    let direct = tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 7, WEB1);
    node.send(4 * MS, CLIENT_PORT, &[direct]);
    let out = node.tx(WEB1_PORT);
    assert_eq!(out.len(), 1);
    assert_eq!(ipv4(&out[0]).1, Ipv4Addr::from(WEB1));
    let acc = node.worker.check_accounting();
    assert!(acc.balanced(), "{acc:?}");
}

#[test]
fn an_external_vnf_gets_the_frame_unrouted_and_the_chain_resumes_from_it() {
    let mut node = node(WITH_VNF);
    let syn = tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 40_000, VIP);
    node.send(MS, CLIENT_PORT, std::slice::from_ref(&syn));
    let into_vnf = node.tx(TO_VNF);
    assert_eq!(into_vnf.len(), 1, "redirected into the VNF");
    let frame = &into_vnf[0];
    assert_eq!(&frame[0..6], &VNF_MAC, "to the VNF pod's MAC");
    assert_eq!(&frame[6..12], &TO_VNF_MAC, "from the port's MAC");
    let (src, dst, ttl, _) = ipv4(frame);
    assert_eq!((src, dst), (Ipv4Addr::from(CLIENT), Ipv4Addr::from(VIP)));
    assert_eq!(ttl, 64, "no TTL decrement on a redirect");
    assert_eq!(node.tx(WEB1_PORT).len() + node.tx(WEB2_PORT).len(), 0);

    // The VNF sends it back from its other interface, with the client's
    // addresses (not the VNF pod's): no source check, the chain resumes
    // after the hop and the load balancer sends it to a backend.
    node.send(2 * MS, FROM_VNF, std::slice::from_ref(frame));
    let delivered: Vec<Vec<u8>> = node
        .tx(WEB1_PORT)
        .into_iter()
        .chain(node.tx(WEB2_PORT))
        .collect();
    assert_eq!(delivered.len(), 1, "resumed and balanced");
    let (src, dst, ttl, dport) = ipv4(&delivered[0]);
    assert_eq!(src, Ipv4Addr::from(CLIENT));
    assert!(dst == Ipv4Addr::from(WEB1) || dst == Ipv4Addr::from(WEB2));
    assert_eq!((ttl, dport), (63, 8080));
    assert_eq!(node.drops(DropReason::SourceSpoofed), 0);

    // The same frame on a pod port that is no VNF return interface is
    // spoofed.
    node.send(3 * MS, INTRUDER_PORT, std::slice::from_ref(frame));
    assert_eq!(node.drops(DropReason::SourceSpoofed), 1);

    // The VNF stops answering: after its timeout the chain fails closed.
    let late: Vec<Vec<u8>> = (0..3)
        .map(|i| tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 42_000 + i, VIP))
        .collect();
    // Keeps sending (gaps under the timeout), nothing comes back.
    for t in (10..=460).step_by(90) {
        node.send(t * MS, CLIENT_PORT, &late);
        node.tx(TO_VNF);
    }
    assert!(node.drops(DropReason::VnfDown) > 0, "fail closed, counted");
    assert_eq!(node.tx(WEB1_PORT).len() + node.tx(WEB2_PORT).len(), 0);

    node.worker.pipeline_mut().hook_mut().publish_stats();
    let stats = node.stats.snapshot();
    assert_eq!(stats[0].counters.resumed, 1);
    assert!(stats[0].counters.redirected >= 2);
    assert_eq!(stats[0].stages[1].0, "external");
}

#[test]
fn mirror_copies_take_free_frames_and_without_one_the_original_goes_on() {
    let mut node = node(WITH_MIRROR);
    let flows: Vec<Vec<u8>> = (0..5)
        .map(|i| tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 40_000 + i, VIP))
        .collect();
    node.send(MS, CLIENT_PORT, &flows);
    let copies = node.tx(TAP);
    assert_eq!(copies.len(), 5, "one copy each");
    for copy in &copies {
        // Copied before the load balancer: the service address.
        assert_eq!(ipv4(copy).1, Ipv4Addr::from(VIP));
    }
    assert_eq!(node.tx(WEB1_PORT).len() + node.tx(WEB2_PORT).len(), 5);
    assert_eq!(node.drops(DropReason::MirrorNoFrame), 0);
    node.send(2 * MS, CLIENT_PORT, &[]);
    let acc = node.worker.check_accounting();
    assert!(acc.balanced(), "{acc:?}");

    // A pipeline lent no frame (the worker's free list was empty): the copy
    // is counted, the original is forwarded untouched by the mirror.
    let config = config(WITH_MIRROR);
    let tables = Tables::compile(&config, 1).unwrap();
    let chains = ChainSetHandle::compile_initial(
        &ChainInput::from_config(&config),
        CompileOptions::default(),
    )
    .unwrap();
    let hook = DataplaneChains::new(
        &chains,
        WorkerLimits::default(),
        1,
        Arc::new(SharedChainStats::default()),
    );
    let mut pipeline = Pipeline::with_hook(hook);
    let mut umem = vec![0u8; 4 * 2048];
    let frame = &flows[0];
    umem[MIN_HEADROOM..MIN_HEADROOM + frame.len()].copy_from_slice(frame);
    let mut descs = [Desc {
        addr: MIN_HEADROOM as u64,
        len: frame.len() as u32,
    }];
    let mut verdicts = [Verdict::Pass];
    let staged: Vec<Vec<Desc>> = (0..8).map(|_| Vec::with_capacity(8)).collect();
    let mut mirrors = MirrorFrames::new(&mut [], &staged);
    pipeline.process_batch_at(
        3 * MS,
        &tables,
        CLIENT_PORT,
        &mut umem,
        2048,
        &mut descs,
        &mut verdicts,
        Some(&mut mirrors),
    );
    assert_eq!(pipeline.counters.drops_for(DropReason::MirrorNoFrame), 1);
    assert!(mirrors.requests().is_empty(), "no copy asked for");
    assert!(staged.iter().all(Vec::is_empty), "no copy queued");
    assert!(
        matches!(verdicts[0], Verdict::Tx(p) if p == WEB1_PORT || p == WEB2_PORT),
        "{:?}",
        verdicts[0]
    );
    let _ = chains;
}

#[test]
fn a_new_chain_set_reaches_the_worker_at_its_next_batch() {
    let mut node = node(POLICY_POLICER_LB);
    let syn = tcp(INTRUDER_MAC, INTRUDER_GW_MAC, INTRUDER, 5000, VIP);
    node.send(MS, INTRUDER_PORT, std::slice::from_ref(&syn));
    assert_eq!(node.drops(DropReason::PolicyDenied), 1);
    // Without the policy stage the intruder reaches a backend.
    let config = config("      - {type: load_balancer}\n");
    let set = node
        .chains
        .compile(&ChainInput::from_config(&config))
        .unwrap();
    let generation = node.chains.publish(set);
    let other = tcp(INTRUDER_MAC, INTRUDER_GW_MAC, INTRUDER, 5001, VIP);
    node.send(2 * MS, INTRUDER_PORT, &[other]);
    assert_eq!(node.drops(DropReason::PolicyDenied), 1);
    assert_eq!(node.tx(WEB1_PORT).len() + node.tx(WEB2_PORT).len(), 1);
    node.worker.pipeline_mut().hook_mut().on_idle(3 * MS);
    assert_eq!(node.stats.generation(), generation);
    let kinds: Vec<&str> = node.stats.snapshot()[0]
        .stages
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(kinds, ["load_balancer"]);
}

/// Services for every pod (cluster.service_cidrs, no chain): a ClusterIP
/// is balanced by the implicit chain; a Service whose endpoints are all
/// gone refuses with an ICMP port unreachable from its address, back to
/// the client's port (kube-proxy's REJECT), counted as
/// `no_service_endpoint`.
#[test]
fn services_without_a_chain_balance_and_refuse_when_empty() {
    let mut config = config(POLICY_POLICER_LB);
    config.chains.clear();
    config.policies.clear();
    config.cluster.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
    config.services.push(kxdp_config::ServiceSpec {
        name: "empty".into(),
        namespace: "default".into(),
        tenant: "blue".into(),
        cluster_ip: "10.96.0.11".parse().unwrap(),
        ports: vec![kxdp_config::ServicePortSpec {
            name: None,
            protocol: kxdp_config::Protocol::Tcp,
            port: 80,
            target_port: None,
            node_port: None,
        }],
        endpoints: Vec::new(),
        client_ip_affinity: false,
        internal_traffic_local: false,
    });
    let tables = TableHandle::new(Tables::compile(&config, 1).unwrap());
    let chains = ChainSetHandle::compile_initial(
        &ChainInput::from_config(&config),
        CompileOptions::default(),
    )
    .unwrap();
    let stats = Arc::new(SharedChainStats::default());
    let hook = DataplaneChains::new(&chains, WorkerLimits::default(), 1, Arc::clone(&stats));
    let io = MemoryIo::new(config.interfaces.len(), 2048, 1024, 64);
    let worker = Worker::with_hook(
        io,
        tables.reader(),
        Arc::new(SharedCounters::default()),
        WorkerOptions {
            batch_size: 64,
            ..WorkerOptions::default()
        },
        hook,
    );
    let mut node = Node {
        worker,
        stats,
        chains,
    };
    let flows: Vec<Vec<u8>> = (0..20)
        .map(|i| tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 42_000 + i, VIP))
        .collect();
    node.send(MS, CLIENT_PORT, &flows);
    let (a, b) = (node.tx(WEB1_PORT).len(), node.tx(WEB2_PORT).len());
    assert_eq!(a + b, 20, "balanced without a chain");
    assert!(a > 0 && b > 0, "{a} / {b}");

    let refused = tcp(CLIENT_MAC, CLIENT_GW_MAC, CLIENT, 43_000, [10, 96, 0, 11]);
    node.send(2 * MS, CLIENT_PORT, std::slice::from_ref(&refused));
    assert_eq!(node.drops(DropReason::NoServiceEndpoint), 1);
    let back = node.tx(CLIENT_PORT);
    assert_eq!(back.len(), 1, "an ICMP error back to the client");
    let meta = packet::parse(&back[0]).unwrap();
    assert_eq!(
        meta.l3,
        L3::Ipv4 {
            src: Ipv4Addr::new(10, 96, 0, 11),
            dst: Ipv4Addr::from(CLIENT)
        }
    );
    assert_eq!(meta.ip_proto, 1);
    assert_eq!(meta.l4.ports().1, 3 << 8 | 3, "port unreachable");
    assert_eq!(&back[0][..6], &CLIENT_MAC);
    // The quote is the refused packet's IP header and beyond.
    assert_eq!(&back[0][42..62], &refused[14..34]);
}
