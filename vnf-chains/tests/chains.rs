//! The executor: whole chains in memory — policy → policer → external VNF →
//! load balancer, symmetric return traffic, the VNF failure policies,
//! mirroring, counters that add up, and live swaps.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kxdp_config::{
    EndpointSpec, LabelSelector, NetworkPolicySpec, PolicyPeer, PolicyRule, Protocol,
};
use kxdp_dataplane::chain_hook::{
    ChainFrames, FrameSpan, MirrorCopy, MirrorFailures, MirrorFrames,
};
use kxdp_dataplane::io::{Desc, MIN_HEADROOM};
use kxdp_dataplane::packet::{self, L3};
use kxdp_dataplane::DropReason;
use kxdp_vnf_chains::external::VnfStatus;
use kxdp_vnf_chains::{
    ChainSet, ChainStats, ChainVerdict, ChainWorker, Direction, PacketContext, ResumePoint,
    StageState, WorkerLimits,
};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const VIP: &str = "10.96.0.10";
const CLIENT: &str = "10.0.0.1";
// Ports: p0 client pod, p1 into the VNF, p2 back from the VNF, p3 backend
// pods, p5 the mirror tap.
const TO_VNF: u16 = 1;
const FROM_VNF: u16 = 2;
const BACKENDS: u16 = 3;

/// The issue's chain: policy → policer → external VNF → load balancer to a
/// service with three backends. Clients (app=client) may reach backends
/// (app=web) on 8080; the VNF pod has no policy role.
fn issue_model(symmetric: bool, failure: &str) -> Model {
    let mut model = Model::new();
    model.pods = vec![
        pod("client", "default", CLIENT, &[("app", "client")]),
        pod("intruder", "default", "10.0.0.66", &[("app", "intruder")]),
        pod("web1", "default", "10.1.0.1", &[("app", "web")]),
        pod("web2", "default", "10.1.0.2", &[("app", "web")]),
        pod("web3", "default", "10.1.0.3", &[("app", "web")]),
    ];
    model.services = vec![service(
        "web",
        VIP,
        80,
        8080,
        &["10.1.0.1", "10.1.0.2", "10.1.0.3"],
    )];
    model.policies = vec![
        NetworkPolicySpec {
            name: "web".into(),
            namespace: "default".into(),
            pod_selector: LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![],
            },
            policy_types: vec![],
            ingress: vec![PolicyRule {
                peers: vec![PolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: labels(&[("app", "client")]),
                        match_expressions: vec![],
                    }),
                    ..PolicyPeer::default()
                }],
                ports: vec![],
            }],
            egress: vec![],
        },
        NetworkPolicySpec {
            // Before the load balancer the policy sees the ClusterIP (no pod):
            // the intruder is stopped by its own egress policy (DNS only).
            name: "intruder".into(),
            namespace: "default".into(),
            pod_selector: LabelSelector {
                match_labels: labels(&[("app", "intruder")]),
                match_expressions: vec![],
            },
            policy_types: vec![kxdp_config::PolicyType::Egress],
            ingress: vec![],
            egress: vec![PolicyRule {
                peers: vec![],
                ports: vec![kxdp_config::PolicyPort {
                    protocol: Protocol::Udp,
                    port: Some(53),
                    end_port: None,
                }],
            }],
        },
    ];
    model.chains = vec![chain(&format!(
        "name: web\ntenant: blue\nsymmetric: {symmetric}\n\
         classifier: {{dst: 10.96.0.0/16, protocol: tcp}}\n\
         functions:\n\
         - {{type: policy}}\n\
         - {{type: policer, rate_pps: 1000000, burst: 1000}}\n\
         - {{type: external, to_interface: p1, from_interface: p2, failure: {failure}, timeout_ms: 200}}\n\
         - {{type: load_balancer}}\n"
    ))];
    model
}

struct Harness {
    set: ChainSet,
    worker: ChainWorker,
}

impl Harness {
    fn new(model: &Model) -> Self {
        let set = model.compile(1, None);
        let worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
        Harness { set, worker }
    }

    /// One frame arriving on `port` (tenant as that port's pod would have).
    fn send(&mut self, now: u64, port: u16, frame: Vec<u8>) -> (PacketContext, Vec<u8>) {
        let mut ctx = [context(&frame, port, if port == FROM_VNF { 1 } else { 0 })];
        let mut frames = vec![frame];
        self.worker.process(&self.set, now, &mut ctx, &mut frames);
        (ctx[0], frames.pop().unwrap())
    }

    fn stats(&self) -> ChainStats {
        self.worker.stats().remove(0)
    }
}

fn dst_of(frame: &[u8]) -> String {
    match packet::parse(frame).unwrap().l3 {
        L3::Ipv4 { dst, .. } => dst.to_string(),
        _ => panic!(),
    }
}

#[test]
fn policy_policer_vnf_and_load_balancer() {
    let mut h = Harness::new(&issue_model(false, "fail_closed"));
    let request = frame(Protocol::Tcp, CLIENT, 40000, VIP, 80, b"GET /");
    // Into the VNF, untouched.
    let (ctx, out) = h.send(1, 0, request.clone());
    assert_eq!(ctx.outcome, ChainVerdict::Redirect(TO_VNF));
    assert_eq!(out, request);
    // Back from the VNF: resumes after the hop, balanced.
    let (ctx, out) = h.send(2, FROM_VNF, out);
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    assert_eq!(ctx.tenant, 0, "the chain's tenant, not the VNF port's");
    let backend = dst_of(&out);
    assert!(["10.1.0.1", "10.1.0.2", "10.1.0.3"].contains(&backend.as_str()));
    assert_checksums_valid(&out);
    // The backend's reply: not a symmetric chain, so only the load balancer
    // sees it (no VNF, no policy).
    let reply = frame(Protocol::Tcp, &backend, 8080, CLIENT, 40000, b"200 OK");
    let (ctx, out) = h.send(3, BACKENDS, reply);
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    assert_eq!(ctx.direction, Direction::Reply);
    assert_eq!(out, frame(Protocol::Tcp, VIP, 80, CLIENT, 40000, b"200 OK"));
    // A pod the policy does not allow is dropped before the VNF.
    let intruder = frame(Protocol::Tcp, "10.0.0.66", 40000, VIP, 80, b"GET /");
    let (ctx, _) = h.send(4, 0, intruder);
    assert_eq!(ctx.outcome, ChainVerdict::Drop(DropReason::PolicyDenied));

    let stats = h.stats();
    let c = stats.counters;
    assert_eq!((c.packets, c.resumed, c.reply_packets), (3, 1, 1));
    assert_eq!((c.passed, c.dropped, c.redirected), (2, 1, 1));
    assert_eq!(c.drops_for(DropReason::PolicyDenied), 1);
    let kinds: Vec<&str> = stats.stages.iter().map(|s| s.0).collect();
    assert_eq!(kinds, ["policy", "policer", "external", "load_balancer"]);
    let s: Vec<_> = stats.stages.iter().map(|s| s.1).collect();
    assert_eq!((s[0].packets, s[0].passed, s[0].dropped), (2, 1, 1));
    assert_eq!((s[1].packets, s[1].passed), (1, 1));
    assert_eq!((s[2].packets, s[2].redirected), (1, 1));
    // The resumed request and the reply.
    assert_eq!((s[3].packets, s[3].passed), (2, 2));
}

#[test]
fn symmetric_chain_runs_return_traffic_in_reverse() {
    let mut h = Harness::new(&issue_model(true, "fail_closed"));
    let request = frame(Protocol::Tcp, CLIENT, 40000, VIP, 80, b"GET /");
    let (_, out) = h.send(1, 0, request);
    let (ctx, out) = h.send(2, FROM_VNF, out);
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    let backend = dst_of(&out);
    // Reply: load balancer first (translated back), then into the VNF the
    // other way round (out of its from-interface)...
    let reply = frame(Protocol::Tcp, &backend, 8080, CLIENT, 40000, b"200 OK");
    let (ctx, out) = h.send(3, BACKENDS, reply);
    assert_eq!(ctx.outcome, ChainVerdict::Redirect(FROM_VNF));
    assert_eq!(ctx.direction, Direction::Reply);
    let translated = frame(Protocol::Tcp, VIP, 80, CLIENT, 40000, b"200 OK");
    assert_eq!(out, translated);
    // ...back on its to-interface, then the policer and the policy (which
    // knows the connection) in reverse.
    let mut ctx = [context(&out, TO_VNF, 1)];
    let mut frames = vec![out];
    h.worker.process(&h.set, 4, &mut ctx, &mut frames);
    assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
    assert_eq!(ctx[0].direction, Direction::Reply);
    assert_eq!(frames[0], translated);
    let s: Vec<_> = h.stats().stages.iter().map(|s| s.1).collect();
    // Each stage saw the request and the reply once.
    assert!(s.iter().all(|s| s.packets == 2), "{s:?}");
    assert_eq!(h.stats().counters.resumed, 2);
}

#[test]
fn dead_vnf_fail_closed_drops_and_recovers() {
    let mut h = Harness::new(&issue_model(false, "fail_closed"));
    let mut outcomes = Vec::new();
    // One new connection per ms for 300 ms; the VNF returns nothing.
    for t in 1..=300u64 {
        let request = frame(Protocol::Tcp, CLIENT, 10_000 + t as u16, VIP, 80, b"x");
        outcomes.push(h.send(t * MS, 0, request).0.outcome);
    }
    let redirected = outcomes
        .iter()
        .filter(|o| **o == ChainVerdict::Redirect(TO_VNF))
        .count();
    let dropped = outcomes
        .iter()
        .filter(|o| **o == ChainVerdict::Drop(DropReason::VnfDown))
        .count();
    // Up for the first 200 ms (+1: the timeout must be exceeded), then down.
    assert_eq!((redirected, dropped), (201, 99));
    assert_eq!(h.stats().counters.drops_for(DropReason::VnfDown), 99);
    match h.worker.stage_state("web", 2) {
        Some(StageState::External { state: e, .. }) => assert_eq!(e.status(), VnfStatus::Down),
        other => panic!("{other:?}"),
    }
    // The VNF answers again (a probe comes back): traffic flows through it.
    let request = frame(Protocol::Tcp, CLIENT, 50_000, VIP, 80, b"x");
    // Down at 202 ms: the first probe goes a timeout later.
    let (ctx, _) = h.send(401 * MS, 0, request.clone());
    assert_eq!(ctx.outcome, ChainVerdict::Drop(DropReason::VnfDown));
    let (ctx, out) = h.send(402 * MS, 0, request);
    assert_eq!(ctx.outcome, ChainVerdict::Redirect(TO_VNF), "a probe");
    assert_eq!(
        h.send(403 * MS, FROM_VNF, out).0.outcome,
        ChainVerdict::Pass
    );
    let request = frame(Protocol::Tcp, CLIENT, 50_001, VIP, 80, b"x");
    assert_eq!(
        h.send(404 * MS, 0, request).0.outcome,
        ChainVerdict::Redirect(TO_VNF)
    );
}

#[test]
fn dead_vnf_fail_open_bypasses_the_hop() {
    let mut h = Harness::new(&issue_model(false, "fail_open"));
    for t in 1..=201u64 {
        let request = frame(Protocol::Tcp, CLIENT, 10_000 + t as u16, VIP, 80, b"x");
        assert_eq!(
            h.send(t * MS, 0, request).0.outcome,
            ChainVerdict::Redirect(TO_VNF)
        );
    }
    // Down: the chain continues past the hop, to the load balancer.
    let request = frame(Protocol::Tcp, CLIENT, 20_000, VIP, 80, b"x");
    let (ctx, out) = h.send(202 * MS, 0, request);
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    assert!(dst_of(&out).starts_with("10.1.0."));
    let stats = h.stats();
    assert_eq!(stats.stages[2].1.passed, 1, "bypassed");
    assert_eq!(stats.counters.dropped, 0);
}

#[test]
fn mirror_copies_the_frame_as_it_is_at_its_place() {
    let mut model = Model::new();
    model.services = vec![service("web", VIP, 80, 8080, &["10.1.0.1"])];
    model.chains = vec![chain(
        "name: tap\ntenant: blue\nfunctions: [{type: mirror, interface: p5}, {type: load_balancer}, {type: mirror, interface: p6}]\n",
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, CLIENT, 40000, VIP, 80, b"x");
    let mut frames = TestFrames {
        frames: vec![request.clone()],
        mirrored: vec![],
    };
    let mut ctx = [context(&request, 0, 0)];
    worker.process(&set, 1, &mut ctx, &mut frames);
    assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
    let translated = frame(Protocol::Tcp, CLIENT, 40000, "10.1.0.1", 8080, b"x");
    assert_eq!(frames.frames[0], translated);
    assert_eq!(frames.mirrored, vec![(5, request), (6, translated)]);
    let stats = worker.stats();
    assert_eq!(stats[0].stages[0].1.mirrored, 1);
    // Frames that cannot be copied are counted, the original goes on.
    let mut plain = vec![frame(Protocol::Tcp, CLIENT, 40001, VIP, 80, b"x")];
    let mut ctx = [context(&plain[0], 0, 0)];
    worker.process(&set, 2, &mut ctx, &mut plain);
    assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
    assert_eq!(worker.stats()[0].stages[0].1.mirror_failed, 1);
}

/// In the dataplane's frames: a mirror stage before the load balancer
/// copies the frame into the frame the worker lent, as it is there (to the
/// service address), while the frame that goes on is translated to the
/// backend; the worker sends the copy.
#[test]
fn a_mirror_before_the_load_balancer_sends_the_frame_untranslated() {
    let mut model = Model::new();
    model.services = vec![service("web", VIP, 80, 8080, &["10.1.0.1"])];
    model.chains = vec![chain(
        "name: tap\ntenant: blue\nfunctions: [{type: mirror, interface: p5}, {type: load_balancer}]\n",
    )];
    let set = model.compile(1, None);
    assert_eq!(set.mirror_copies(), 1);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, CLIENT, 40000, VIP, 80, b"x");
    // The received frame in chunk 0 after its headroom; chunk 1 is free,
    // lent for the copy.
    let mut umem = vec![0u8; 2 * 2048];
    umem[MIN_HEADROOM..MIN_HEADROOM + request.len()].copy_from_slice(&request);
    let spans = [FrameSpan {
        chunk: 0,
        offset: MIN_HEADROOM,
        len: request.len(),
    }];
    let mut lent = [MirrorCopy::lent(2048)];
    let tx_batches: Vec<Vec<Desc>> = (0..8).map(|_| Vec::with_capacity(4)).collect();
    let mut mirrors = MirrorFrames::new(&mut lent, &tx_batches);
    let mut ctx = [context(&request, 0, 0)];
    {
        let mut frames = ChainFrames::new(&mut umem, 2048, &spans, Some(&mut mirrors));
        worker.process(&set, 1, &mut ctx, &mut frames);
        assert_eq!(frames.mirror_failures(), MirrorFailures::default());
    }
    assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
    let translated = frame(Protocol::Tcp, CLIENT, 40000, "10.1.0.1", 8080, b"x");
    assert_eq!(
        &umem[MIN_HEADROOM..MIN_HEADROOM + translated.len()],
        &translated[..],
        "the frame that goes on is translated"
    );
    let copies = mirrors.requests();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].port, 5);
    let desc = copies[0].desc;
    assert_eq!(desc.addr, 2048 + MIN_HEADROOM as u64, "in the lent frame");
    let at = desc.addr as usize;
    assert_eq!(
        &umem[at..at + desc.len as usize],
        &request[..],
        "the copy is the frame as the mirror saw it"
    );
    assert!(tx_batches.iter().all(Vec::is_empty), "sent by the worker");
    assert_eq!(worker.stats()[0].stages[0].1.mirrored, 1);
}

#[test]
fn arp_and_other_tenants_are_no_chains_business() {
    let mut h = Harness::new(&issue_model(false, "fail_closed"));
    let mut arp = vec![0u8; 42];
    arp[..6].fill(0xff);
    arp[6..12].copy_from_slice(&CLIENT_MAC);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    let (ctx, _) = h.send(1, 0, arp);
    assert_eq!(ctx.outcome, ChainVerdict::NoChain);
    let red = frame(Protocol::Tcp, CLIENT, 1, VIP, 80, b"x");
    let mut ctx = [context(&red, 0, 1)];
    h.worker.process(&h.set, 2, &mut ctx, &mut vec![red]);
    assert_eq!(ctx[0].outcome, ChainVerdict::NoChain);
    assert_eq!(h.stats().counters.packets, 0);
}

/// A batch mixing chains, directions, drops and no-chain packets, larger
/// than the worker's batch size.
#[test]
fn mixed_batches() {
    let mut model = issue_model(false, "fail_closed");
    model.chains.push(chain(
        "name: dns\ntenant: blue\nclassifier: {protocol: udp, dst_ports: {first: 53, last: 53}}\nfunctions: [{type: counter}]\n",
    ));
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(
        &set,
        WorkerLimits {
            batch_size: 4,
            ..WorkerLimits::default()
        },
        0,
    );
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for i in 0..40u16 {
        frames.push(match i % 4 {
            0 => frame(Protocol::Tcp, CLIENT, 1000 + i, VIP, 80, b"x"),
            1 => frame(Protocol::Udp, CLIENT, 1000 + i, "10.0.0.53", 53, b"x"),
            2 => frame(Protocol::Tcp, "10.0.0.66", 1000 + i, VIP, 80, b"x"),
            _ => frame(Protocol::Udp, CLIENT, 1000 + i, "10.0.0.9", 9, b"x"),
        });
    }
    let mut contexts: Vec<_> = frames.iter().map(|f| context(f, 0, 0)).collect();
    worker.process(&set, 1, &mut contexts, &mut frames);
    for (i, c) in contexts.iter().enumerate() {
        let expected = match i % 4 {
            0 => ChainVerdict::Redirect(TO_VNF),
            1 => ChainVerdict::Pass,
            2 => ChainVerdict::Drop(DropReason::PolicyDenied),
            _ => ChainVerdict::NoChain,
        };
        assert_eq!(c.outcome, expected, "packet {i}");
    }
    let stats = worker.stats();
    assert_eq!(stats[0].counters.packets, 20);
    assert_eq!(stats[1].counters.packets, 10);
}

#[test]
fn swaps_keep_the_state_of_unchanged_stages() {
    let mut model = issue_model(false, "fail_closed");
    // No VNF in this one: policy → policer → load balancer.
    model.chains = vec![chain(
        "name: web\ntenant: blue\nclassifier: {dst: 10.96.0.0/16}\n\
         functions: [{type: policy}, {type: policer, rate_pps: 1000, burst: 100, per: class}, {type: load_balancer}]\n",
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let flows: Vec<u16> = (0..60).map(|i| 30_000 + i).collect();
    let mut backends = Vec::new();
    for &cport in &flows {
        let mut f = vec![frame(Protocol::Tcp, CLIENT, cport, VIP, 80, b"x")];
        let mut ctx = [context(&f[0], 0, 0)];
        worker.process(&set, 1, &mut ctx, &mut f);
        assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
        backends.push(dst_of(&f[0]));
    }
    // A new snapshot: a counter in front, another chain, new endpoints. The
    // policy, policer and load balancer specs are unchanged.
    model.chains[0]
        .functions
        .insert(0, kxdp_config::FunctionSpec::Counter);
    model.chains.push(chain(
        "name: other\ntenant: blue\nclassifier: {protocol: udp}\nfunctions: [{type: counter}]\n",
    ));
    model.services[0].endpoints.push(EndpointSpec {
        ip: "10.1.0.4".parse().unwrap(),
        pod: None,
        node: None,
        ready: true,
        serving: true,
        terminating: false,
    });
    let set2 = model.compile(2, Some(&set));
    // The policer's bucket carried over: 100 burst − 60 used = 40 left at the
    // same instant; the load balancer's connections too.
    let mut outcomes = Vec::new();
    for (i, &cport) in flows.iter().enumerate() {
        let mut f = vec![frame(Protocol::Tcp, CLIENT, cport, VIP, 80, b"x")];
        let mut ctx = [context(&f[0], 0, 0)];
        worker.process(&set2, 1, &mut ctx, &mut f);
        outcomes.push(ctx[0].outcome);
        if ctx[0].outcome == ChainVerdict::Pass {
            assert_eq!(dst_of(&f[0]), backends[i], "flow {i} kept its backend");
        }
    }
    let passed = outcomes
        .iter()
        .filter(|o| **o == ChainVerdict::Pass)
        .count();
    assert_eq!(passed, 40);
    let stats = worker.stats();
    let web = stats.iter().find(|s| s.chain == "web").unwrap();
    // Counters of kept stages continue; the new counter starts at zero.
    assert_eq!(web.stages[0].1.packets, 60);
    assert_eq!(web.stages[1].1.packets, 120, "policy kept its counters");
    assert_eq!(web.counters.packets, 120);
    // A changed policer starts afresh (full bucket).
    model.chains[0].functions[2] = kxdp_config::FunctionSpec::Policer {
        rate_pps: 1000,
        burst: 200,
        per: kxdp_config::PolicerScope::Class,
    };
    let set3 = model.compile(3, Some(&set2));
    let mut passed = 0;
    for &cport in &flows {
        let mut f = vec![frame(Protocol::Tcp, CLIENT, cport, VIP, 80, b"x")];
        let mut ctx = [context(&f[0], 0, 0)];
        worker.process(&set3, 1, &mut ctx, &mut f);
        passed += usize::from(ctx[0].outcome == ChainVerdict::Pass);
    }
    assert_eq!(passed, 60);
}

#[test]
fn removed_chains_release_their_flows() {
    let mut model = Model::new();
    model.chains = vec![chain(
        "name: a\ntenant: blue\nfunctions: [{type: counter}]\n",
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let f = frame(Protocol::Udp, CLIENT, 1, "10.0.0.2", 2, b"x");
    let run = |worker: &mut ChainWorker, set: &ChainSet| {
        let mut ctx = [context(&f, 0, 0)];
        worker.process(set, 1, &mut ctx, &mut vec![f.clone()]);
        ctx[0]
            .chain_index()
            .map(|i| set.chain(i).unwrap().name.clone())
    };
    assert_eq!(run(&mut worker, &set).as_deref(), Some("a"));
    // A higher-priority chain does not take over a pinned flow...
    model.chains.push(chain(
        "name: b\ntenant: blue\npriority: 9\nfunctions: [{type: counter}]\n",
    ));
    let set2 = model.compile(2, Some(&set));
    assert_eq!(run(&mut worker, &set2).as_deref(), Some("a"));
    // ...but when its chain goes, the flow is classified again.
    model.chains.remove(0);
    let set3 = model.compile(3, Some(&set2));
    assert_eq!(run(&mut worker, &set3).as_deref(), Some("b"));
    // Flows that matched nothing are classified again after a swap.
    model.chains[0].classifier.protocol = Some(Protocol::Tcp);
    let set4 = model.compile(4, Some(&set3));
    let g = frame(Protocol::Udp, CLIENT, 7, "10.0.0.2", 2, b"x");
    let mut ctx = [context(&g, 0, 0)];
    worker.process(&set4, 1, &mut ctx, &mut vec![g.clone()]);
    assert_eq!(ctx[0].outcome, ChainVerdict::NoChain);
    model.chains[0].classifier.protocol = None;
    let set5 = model.compile(5, Some(&set4));
    let mut ctx = [context(&g, 0, 0)];
    worker.process(&set5, 1, &mut ctx, &mut vec![g.clone()]);
    assert_eq!(ctx[0].outcome, ChainVerdict::Pass);
}

/// Validation refuses these (`bad_chains_are_refused` in kxdp-config's
/// tests, where this test's refusals moved); given them anyway, the
/// compiler leaves the inconsistent chain out and compiles the rest.
#[test]
fn bad_chains_are_left_out() {
    let mut model = issue_model(false, "fail_closed");
    model.chains.push(model.chains[0].clone());
    model.chains[1].priority = 9;
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert_eq!(set.len(), 1, "duplicate name: the first wins");
    assert_eq!(set.chain(0), Some(&model.chains[0]));
    let mut model = issue_model(false, "fail_closed");
    model.chains.push(chain(
        "name: x\ntenant: blue\nfunctions: [{type: external, to_interface: p4, from_interface: p2}]\n",
    ));
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert_eq!(
        set.chain_index("x"),
        None,
        "p2 returns twice: the first wins"
    );
    assert_eq!(
        set.resume_point(FROM_VNF),
        Some(ResumePoint {
            chain: 0,
            stage: 2,
            direction: Direction::Forward
        })
    );
    assert!(!set.is_vnf_return_port(4));
    let mut model = Model::new();
    model.chains = vec![chain("name: x\ntenant: green\nfunctions: []\n")];
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert!(set.is_empty(), "unknown tenant");
    model.chains = vec![chain(
        "name: x\ntenant: blue\nfunctions: [{type: mirror, interface: nope}]\n",
    )];
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert!(set.is_empty(), "unknown interface");
    // A chain after a left-out one takes its place in the indexes.
    model.chains.push(chain(
        "name: y\ntenant: blue\nfunctions: [{type: external, to_interface: p1, from_interface: p1}]\n",
    ));
    model.chains.push(chain(
        "name: z\ntenant: blue\nfunctions: [{type: counter}]\n",
    ));
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert_eq!(set.len(), 1, "y returns on the interface it sends on");
    assert_eq!(set.chain_index("z"), Some(0));
    assert!(set.applies_to(0));
}

// ---------------------------------------------------------------------------
// Counters add up, whatever the traffic.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn counters_add_up(
        packets in proptest::collection::vec((0usize..4, 0u16..50, 1u64..2_000_000), 1..300),
        batch in 1usize..40,
        workers in 1usize..3,
    ) {
        let mut model = issue_model(true, "fail_closed");
        model.chains = vec![chain(
            "name: web\ntenant: blue\nsymmetric: true\n\
             classifier: {dst: 10.96.0.0/16}\n\
             functions: [{type: counter}, {type: policy}, {type: policer, rate_pps: 2000, burst: 5, per: flow}, \
             {type: counter}, {type: load_balancer}, {type: counter}]\n",
        )];
        let set = model.compile(1, None);
        let mut all: Vec<ChainWorker> = (0..workers).map(|_| ChainWorker::new(&set, WorkerLimits::default(), 0)).collect();
        let sources = [CLIENT, "10.0.0.66", CLIENT, "10.0.0.77"];
        let mut now = 0;
        let mut outcomes = Vec::new();
        for (n, chunk) in packets.chunks(batch).enumerate() {
            let mut frames: Vec<Vec<u8>> = chunk
                .iter()
                .map(|(s, port, _)| frame(Protocol::Tcp, sources[*s], 1000 + port, VIP, 80, b"payload"))
                .collect();
            let mut contexts: Vec<_> = frames.iter().map(|f| context(f, 0, 0)).collect();
            now += chunk[0].2;
            all[n % workers].process(&set, now, &mut contexts, &mut frames);
            outcomes.extend(contexts.iter().map(|c| c.outcome));
        }
        let per_worker: Vec<Vec<ChainStats>> = all.iter().map(|w| w.stats()).collect();
        let merged = ChainStats::merge(per_worker.iter().map(Vec::as_slice));
        let web = &merged[0];
        let c = web.counters;
        let count = |f: &dyn Fn(&ChainVerdict) -> bool| outcomes.iter().filter(|o| f(o)).count() as u64;
        prop_assert_eq!(c.packets, packets.len() as u64);
        prop_assert_eq!(c.passed, count(&|o| *o == ChainVerdict::Pass));
        prop_assert_eq!(c.dropped, count(&|o| matches!(o, ChainVerdict::Drop(_))));
        prop_assert_eq!(c.packets + c.resumed, c.passed + c.dropped + c.redirected);
        prop_assert_eq!(c.drops.iter().sum::<u64>(), c.dropped);
        prop_assert_eq!(
            c.drops_for(DropReason::PolicyDenied),
            count(&|o| *o == ChainVerdict::Drop(DropReason::PolicyDenied))
        );
        for (_, s) in &web.stages {
            prop_assert_eq!(s.packets, s.passed + s.dropped + s.redirected);
        }
        // Forward only here: each stage sees what the one before passed.
        for pair in web.stages.windows(2) {
            prop_assert_eq!(pair[1].1.packets, pair[0].1.passed);
        }
        prop_assert_eq!(web.stages[0].1.packets, c.packets);
        prop_assert_eq!(web.stages[5].1.passed, c.passed);
        prop_assert_eq!(web.stages[0].1.bytes, c.bytes);
        prop_assert_eq!(
            web.stages.iter().map(|s| s.1.dropped).sum::<u64>(),
            c.dropped
        );
    }
}

/// After the load balancer the policy sees the backend pod: its ingress
/// policy holds for service traffic, as Kubernetes applies policy to
/// translated connections; replies of a symmetric chain pass statefully.
#[test]
fn policy_after_the_load_balancer_sees_backends() {
    let mut model = issue_model(true, "fail_closed");
    model.chains = vec![chain(
        "name: web\ntenant: blue\nsymmetric: true\nclassifier: {dst: 10.96.0.0/16}\n\
         functions: [{type: load_balancer}, {type: policy}]\n",
    )];
    let mut h = Harness::new(&model);
    // 10.0.0.77 is no pod: web's ingress admits only app=client.
    let stranger = frame(Protocol::Tcp, "10.0.0.77", 40000, VIP, 80, b"x");
    assert_eq!(
        h.send(1, 0, stranger).0.outcome,
        ChainVerdict::Drop(DropReason::PolicyDenied)
    );
    let (ctx, out) = h.send(2, 0, frame(Protocol::Tcp, CLIENT, 40000, VIP, 80, b"x"));
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    let backend = dst_of(&out);
    let reply = frame(Protocol::Tcp, &backend, 8080, CLIENT, 40000, b"y");
    let (ctx, out) = h.send(3, BACKENDS, reply);
    assert_eq!(ctx.outcome, ChainVerdict::Pass);
    assert_eq!(out, frame(Protocol::Tcp, VIP, 80, CLIENT, 40000, b"y"));
    let stats = h.stats();
    assert_eq!(stats.stages[1].1.packets, 3, "the policy saw the reply too");
}

/// Validation refuses a second function keeping per-flow state
/// (`one_load_balancer_and_one_per_flow_policer_per_chain` in
/// kxdp-config's tests, where this test's refusals moved); given one
/// anyway, the compiler leaves the chain out.
#[test]
fn a_chain_with_two_per_flow_functions_is_left_out() {
    let mut model = issue_model(false, "fail_closed");
    model.chains = vec![chain(
        "name: x\ntenant: blue\nfunctions: [{type: load_balancer}, {type: counter}, {type: load_balancer}]\n",
    )];
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert!(set.is_empty());
    model.chains = vec![chain(
        "name: x\ntenant: blue\nfunctions: [{type: policer, rate_pps: 1, burst: 1}, {type: policer, rate_pps: 2, burst: 1}]\n",
    )];
    let set = ChainSet::compile(&model.input(), 1, small_tables(), None).unwrap();
    assert!(set.is_empty());
    // Class policers are not per flow: as many as wanted.
    model.chains = vec![chain(
        "name: x\ntenant: blue\nfunctions: [{type: policer, rate_pps: 1, burst: 1, per: class}, {type: policer, rate_pps: 2, burst: 1}]\n",
    )];
    assert!(ChainSet::compile(&model.input(), 1, small_tables(), None).is_ok());
    assert_eq!(model.compile(1, None).len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A connection table far too small for the traffic: entries are
    /// evicted all the time, even within a batch. Nothing panics, counters
    /// still add up, every request that passes is translated to a backend
    /// with valid checksums, and no frame is given another flow's
    /// translation (a reply is translated back to the service or not at
    /// all).
    #[test]
    fn tiny_connection_table(
        traffic in proptest::collection::vec((0u16..64, any::<bool>()), 1..400),
        capacity in 4usize..32,
        batch in 1usize..24,
    ) {
        let mut model = issue_model(true, "fail_closed");
        model.chains = vec![chain(
            "name: web\ntenant: blue\nsymmetric: true\nclassifier: {dst: 10.96.0.0/16}\n\
             functions: [{type: policy}, {type: policer, rate_pps: 1000000, burst: 1000}, {type: load_balancer}]\n",
        )];
        // Replies come from the backends' addresses: their reply tuples
        // must be claimed by the chain, so classify them too.
        model.chains[0].classifier.dst = None;
        let set = model.compile(1, None);
        let limits = WorkerLimits { flow_capacity: capacity, ..WorkerLimits::default() };
        let mut worker = ChainWorker::new(&set, limits, 0);
        let mut backend_of: std::collections::HashMap<u16, String> = std::collections::HashMap::new();
        for (n, chunk) in traffic.chunks(batch).enumerate() {
            let mut frames: Vec<Vec<u8>> = chunk
                .iter()
                .map(|&(flow, reply)| {
                    let cport = 20_000 + flow;
                    match (reply, backend_of.get(&flow).map(String::as_str)) {
                        (true, Some(b)) => frame(Protocol::Tcp, b, 8080, CLIENT, cport, b"r"),
                        _ => frame(Protocol::Tcp, CLIENT, cport, VIP, 80, b"q"),
                    }
                })
                .collect();
            let sent = frames.clone();
            let mut contexts: Vec<_> = frames.iter().map(|f| context(f, 0, 0)).collect();
            worker.process(&set, n as u64 * MS, &mut contexts, &mut frames);
            for ((c, out), input) in contexts.iter().zip(&frames).zip(&sent) {
                if c.outcome != ChainVerdict::Pass {
                    continue;
                }
                assert_checksums_valid(out);
                let meta = packet::parse(input).unwrap();
                let flow = if meta.l4.ports().1 == 80 { meta.l4.ports().0 - 20_000 } else { meta.l4.ports().1 - 20_000 };
                if dst_of(input) == VIP {
                    let backend = dst_of(out);
                    prop_assert!(backend.starts_with("10.1.0."), "request left as {}", backend);
                    backend_of.insert(flow, backend);
                } else {
                    // A reply: back to the service, or untouched.
                    let translated = frame(Protocol::Tcp, VIP, 80, CLIENT, 20_000 + flow, b"r");
                    prop_assert!(out == &translated || out == input, "reply given a foreign translation");
                }
            }
        }
        let stats = worker.stats();
        let c = stats[0].counters;
        prop_assert_eq!(c.packets + c.resumed, c.passed + c.dropped + c.redirected);
    }
}

static PARSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Frames whose transport bytes are arbitrary (the IP header stays
    /// valid, so the parser lets them through) never make a chain panic,
    /// whatever they hit: classifier, policy, policer, load balancer, mirror.
    #[test]
    fn arbitrary_transport_bytes_never_panic(
        tcp in any::<bool>(),
        to_service in any::<bool>(),
        sport in any::<u16>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..80),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut model = issue_model(false, "fail_open");
        model.chains = vec![chain(
            "name: all\ntenant: blue\nsymmetric: true\n\
             functions: [{type: mirror, interface: p5}, {type: policy}, {type: policer, rate_pps: 10, burst: 2}, {type: load_balancer}]\n",
        )];
        let set = model.compile(1, None);
        let mut worker = ChainWorker::new(&set, WorkerLimits { flow_capacity: 16, ..WorkerLimits::default() }, 0);
        let proto = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let dst = if to_service { VIP } else { "10.1.0.2" };
        let mut f = frame(proto, CLIENT, sport, dst, 80, &garbage);
        // Overwrite the transport header and payload with garbage (or,
        // half the time, the payload only, so that more frames parse).
        let from = if sport % 2 == 0 { 34 } else if tcp { 54 } else { 42 };
        for (i, b) in garbage.iter().enumerate() {
            if let Some(byte) = f.get_mut(from + i) {
                *byte = *b;
            }
        }
        // Perhaps cut the frame short of its IP length (the parser refuses).
        let len = if garbage.len() % 3 == 0 { cut.index(f.len() + 1) } else { f.len() };
        f.truncate(len);
        if let Ok(meta) = packet::parse(&f) {
            PARSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut frames = TestFrames { frames: vec![f.clone(), f.clone()], mirrored: vec![] };
            let mut ctx = [PacketContext::new(&f, meta, 0, 0), PacketContext::new(&f, meta, 0, 0)];
            worker.process(&set, 1, &mut ctx, &mut frames);
            for c in &ctx {
                prop_assert!(c.outcome != ChainVerdict::NoChain);
            }
        }
    }
}

#[test]
fn arbitrary_transport_bytes_mostly_parse() {
    // The property above means something only if many of its frames reach
    // the chain.
    arbitrary_transport_bytes_never_panic();
    let parsed = PARSED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(parsed >= 64, "only {parsed} of 256 frames parsed");
}
