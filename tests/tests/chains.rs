//! Service chains end to end, with real kxdp processes on the two-node
//! testbed: traffic to a Service goes policy → policer → an external VNF
//! pod (a namespace with two interfaces that forwards between them) → the
//! load balancer, to three backend pods (two on n1, one on n2, so replies
//! come back over VXLAN and are translated back on n1). Checked by what
//! answers (each backend says who it is) and by counters: kxdp's drops by
//! reason, the chains' per-stage counters from the API (what `kxdp get
//! chains` shows), and the VNF pod's own interface counters.
//!
//! - policy: one pod pair denied (intruder → web, by web's ingress policy;
//!   intruder → Service, by intruder's egress policy) while others pass;
//! - a backend removed through the API while traffic flows: only its flows
//!   move, every other flow keeps its backend and loses nothing;
//! - the VNF pod killed: the fail-closed chain drops (counted as
//!   `vnf_down`) and recovers when the VNF comes back; the fail-open chain
//!   bypasses the dead VNF and keeps answering.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test chains -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use kxdp_config::{ChainSpec, FailurePolicy, NetworkPolicySpec, Protocol};
use kxdp_control::api::proto::{ChainCounters, ChainStageCounters, GetChainStatsResponse};
use kxdp_control::api::{api_socket_path, ApiTarget, BlockingClient, ChangeSet, ObjectSet};
use kxdp_testbed::{
    identity_server, pod_ip, privileged_test, IdentityServer, NodeKind, NodeSpec, PodSpec,
    ServiceFlows, TopologySpec, Underlay, VnfPod, VnfTraffic,
};
use kxdp_tests::{eventually, kxdp_binary, Cluster, Totals};
use serde_json::json;

/// The Service behind the fail-closed chain.
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The Service behind the fail-open chain.
const VIP_OPEN: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const SERVICE_PORT: u16 = 80;
/// Where the backends listen.
const BACKEND_PORT: u16 = 7000;
/// Where the client pod listens (for pod-to-pod probes to it).
const CLIENT_PORT: u16 = 7001;
const BACKENDS: [&str; 3] = ["kb-web1", "kb-web2", "kb-web3"];
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The VNF hops' liveness timeout.
const VNF_TIMEOUT_MS: u64 = 200;
/// How long counters take to show (workers publish chain counters about
/// once a second).
const COUNTERS: Duration = Duration::from_secs(5);

/// The tests of this file run one at a time (they time VNF failures on a
/// 2-core machine).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pod(name: &str, ip: Ipv4Addr, app: &str) -> PodSpec {
    let mut pod = PodSpec::new(name, "blue", ip);
    pod.labels.insert("app".to_string(), app.to_string());
    pod
}

/// n1: the client, an intruder, two backends (and, added later, two VNF
/// pods); n2: the third backend.
fn topology() -> TopologySpec {
    let mut n1 = NodeSpec::new("n1", NodeKind::Kxdp);
    n1.pods = vec![
        pod("kb-client", pod_ip(1, 10), "client"),
        pod("kb-intruder", pod_ip(1, 11), "intruder"),
        pod("kb-web1", pod_ip(1, 20), "web"),
        pod("kb-web2", pod_ip(1, 21), "web"),
    ];
    let mut n2 = NodeSpec::new("n2", NodeKind::Kxdp);
    n2.pods = vec![pod("kb-web3", pod_ip(2, 20), "web")];
    TopologySpec::new(Underlay::Direct, &[("blue", 100)])
        .with_node(n1)
        .with_node(n2)
}

/// web pods take traffic from clients only; the intruder may send to pods
/// only (not to Services).
fn policies() -> Vec<NetworkPolicySpec> {
    serde_json::from_value(json!([
        {
            "name": "web",
            "pod_selector": {"match_labels": {"app": "web"}},
            "ingress": [{"from": [{"pod_selector": {"match_labels": {"app": "client"}}}]}]
        },
        {
            "name": "intruder",
            "pod_selector": {"match_labels": {"app": "intruder"}},
            "policy_types": ["Egress"],
            "egress": [{"to": [{"ip_block": {"cidr": "10.244.0.0/16"}}]}]
        }
    ]))
    .unwrap()
}

/// The chains of n1: `web` (fail closed) and `web-open` (fail open) in
/// front of the two Services, each through its own VNF pod, and `pods`
/// (the policy alone) for pod-to-pod traffic.
fn chains(closed: &VnfPod, open: &VnfPod) -> Vec<ChainSpec> {
    let external = |vnf: &VnfPod, failure| {
        serde_json::to_value(vnf.external(failure, VNF_TIMEOUT_MS)).unwrap()
    };
    serde_json::from_value(json!([
        {
            "name": "web",
            "tenant": "blue",
            "priority": 10,
            "classifier": {"dst": format!("{VIP}/32"), "protocol": "udp"},
            "functions": [
                {"type": "policy"},
                {"type": "policer", "rate_pps": 100000, "burst": 1000},
                external(closed, FailurePolicy::FailClosed),
                {"type": "load_balancer", "services": ["default/web"]}
            ]
        },
        {
            "name": "web-open",
            "tenant": "blue",
            "priority": 10,
            "classifier": {"dst": format!("{VIP_OPEN}/32"), "protocol": "udp"},
            "functions": [
                {"type": "counter"},
                external(open, FailurePolicy::FailOpen),
                {"type": "load_balancer", "services": ["default/web-open"]}
            ]
        },
        {
            "name": "pods",
            "tenant": "blue",
            "classifier": {"dst": "10.244.0.0/16"},
            "functions": [{"type": "policy"}]
        }
    ]))
    .unwrap()
}

/// The testbed with everything in place and kxdp running on both nodes,
/// identity servers on the backends and on the client.
struct Bed {
    c: Cluster,
    closed: VnfPod,
    open: VnfPod,
    _servers: Vec<IdentityServer>,
}

impl Bed {
    fn start(test: &str) -> Bed {
        let mut c = Cluster::build(test, topology(), kxdp_binary!());
        let closed = c.tb_mut().add_vnf("n1", "kb-fwc").unwrap();
        let open = c.tb_mut().add_vnf("n1", "kb-fwo").unwrap();
        for (name, vip) in [("web", VIP), ("web-open", VIP_OPEN)] {
            let service = c
                .tb()
                .service_spec(
                    name,
                    vip,
                    Protocol::Udp,
                    SERVICE_PORT,
                    BACKEND_PORT,
                    &BACKENDS,
                )
                .unwrap();
            c.tb_mut().add_service(service);
        }
        let config = c.tb_mut().node_config_mut("n1").unwrap();
        config.policies = policies();
        config.chains = chains(&closed, &open);
        c.start_kxdp("n1");
        c.start_kxdp("n2");
        let mut servers: Vec<IdentityServer> = BACKENDS
            .iter()
            .map(|b| identity_server(&c.pod(b).netns, BACKEND_PORT, b).unwrap())
            .collect();
        servers.push(identity_server(&c.pod("kb-client").netns, CLIENT_PORT, "kb-client").unwrap());
        Bed {
            c,
            closed,
            open,
            _servers: servers,
        }
    }

    /// Stop the servers and kxdp, remove the testbed, check nothing is left.
    fn finish(self) {
        let Bed { c, _servers, .. } = self;
        drop(_servers);
        c.finish();
    }

    fn api(&self) -> BlockingClient {
        let socket = api_socket_path(self.c.tb().node_config("n1").unwrap());
        BlockingClient::connect(&ApiTarget::Unix(socket)).unwrap()
    }

    fn chain_stats(&self) -> GetChainStatsResponse {
        self.api().chain_stats().unwrap()
    }

    fn chain(&self, name: &str) -> ChainCounters {
        self.chain_stats()
            .chains
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no counters of chain {name}"))
    }

    /// Flows from `from` to a Service address.
    fn flows(&self, from: &str, to: Ipv4Addr, port: u16, count: usize) -> ServiceFlows {
        ServiceFlows::open(
            &self.c.pod(from).netns,
            SocketAddr::new(IpAddr::V4(to), port),
            count,
        )
        .unwrap()
    }

    fn totals(&self) -> Totals {
        self.c.totals("n1")
    }
}

/// Wait until chain `name`'s counters satisfy `ok`; the last seen on failure.
fn wait_chain(
    bed: &Bed,
    name: &str,
    what: &str,
    ok: impl Fn(&ChainCounters) -> bool,
) -> ChainCounters {
    let mut last = None;
    let held = eventually(COUNTERS, || {
        let c = bed.chain(name);
        let done = ok(&c);
        last = Some(c);
        done
    });
    let last = last.unwrap();
    assert!(
        held,
        "{what}: chain {name} counters {last:#?}\n{}",
        bed.c.logs()
    );
    last
}

/// Stage `index` of `chain`.
fn stage(chain: &ChainCounters, index: usize) -> &ChainStageCounters {
    chain
        .stages
        .iter()
        .find(|s| s.index as usize == index)
        .unwrap_or_else(|| panic!("chain {} has no stage {index}: {chain:#?}", chain.name))
}

fn vnf_traffic(vnf: &VnfPod) -> VnfTraffic {
    vnf.traffic().unwrap()
}

/// Every flow answered, by one of the backends.
fn assert_all_answered(answers: &[Option<String>], what: &str) {
    let missing = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(
        missing,
        0,
        "{what}: {missing} of {} flows unanswered: {answers:?}",
        answers.len()
    );
    for a in answers.iter().flatten() {
        assert!(BACKENDS.contains(&a.as_str()), "{what}: answered by {a}");
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_service_chain_carries_traffic_through_policy_policer_vnf_and_load_balancer() {
    privileged_test("a_service_chain_carries_traffic_through_policy_policer_vnf_and_load_balancer");
    let _serial = one_at_a_time();
    let bed = Bed::start("kb-chain");
    const FLOWS: usize = 30;
    const ROUNDS: usize = 3;
    let vnf_before = vnf_traffic(&bed.closed);
    let mut flows = bed.flows("kb-client", VIP, SERVICE_PORT, FLOWS);
    let first = flows.probe(PROBE_TIMEOUT).unwrap();
    assert_all_answered(&first, &format!("client -> {VIP}\n{}", bed.c.logs()));
    for round in 1..ROUNDS {
        let again = flows.probe(PROBE_TIMEOUT).unwrap();
        assert_eq!(again, first, "round {round}: every flow keeps its backend");
    }
    // Maglev spread 30 flows over all three backends, the one on n2 too
    // (its replies cross the underlay and are translated back on n1).
    let mut per_backend: BTreeMap<&str, usize> = BTreeMap::new();
    for a in first.iter().flatten() {
        *per_backend.entry(a.as_str()).or_default() += 1;
    }
    assert_eq!(per_backend.len(), 3, "backends used: {per_backend:?}");
    eprintln!("flows per backend: {per_backend:?}");

    // Every request went into the VNF pod and came back out of it, exactly
    // once; the replies did not (the chain is not symmetric).
    let sent = (FLOWS * ROUNDS) as u64;
    let vnf = vnf_traffic(&bed.closed);
    assert_eq!(vnf.entered - vnf_before.entered, sent, "{vnf:?}");
    assert_eq!(vnf.returned - vnf_before.returned, sent, "{vnf:?}");
    assert_eq!(vnf.entered_reverse, vnf_before.entered_reverse);
    assert_eq!(
        vnf_traffic(&bed.open).entered,
        0,
        "the other chain's VNF saw nothing"
    );

    // Per stage: policy, policer and the VNF hop saw every request once;
    // the load balancer every request (resumed after the VNF) and every
    // reply (translated back).
    let web = wait_chain(&bed, "web", "after the probes", |c| {
        c.stages.len() == 4 && stage(c, 3).packets >= 2 * sent
    });
    for (i, kind) in ["policy", "policer", "external", "load_balancer"]
        .iter()
        .enumerate()
    {
        assert!(
            stage(&web, i).kind.contains(kind) || kind.contains(&stage(&web, i).kind),
            "stage {i}: {web:#?}"
        );
    }
    assert_eq!(
        (stage(&web, 0).packets, stage(&web, 0).passed),
        (sent, sent),
        "{web:#?}"
    );
    assert_eq!(
        (stage(&web, 1).packets, stage(&web, 1).passed),
        (sent, sent),
        "{web:#?}"
    );
    assert_eq!(
        (stage(&web, 2).packets, stage(&web, 2).redirected),
        (sent, sent),
        "{web:#?}"
    );
    assert_eq!(
        stage(&web, 3).packets,
        2 * sent,
        "requests and replies: {web:#?}"
    );
    assert_eq!(stage(&web, 3).dropped, 0, "{web:#?}");
    assert_eq!(web.resumed, sent, "{web:#?}");
    assert_eq!(web.dropped, 0, "{web:#?}");
    assert_eq!(web.reply_packets, sent, "{web:#?}");
    let totals = bed.totals();
    for reason in [
        "policy_denied",
        "policer_exceeded",
        "vnf_down",
        "no_service_endpoint",
    ] {
        assert_eq!(totals.dropped(reason), 0, "{reason}: {totals:?}");
    }
    bed.finish();
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_network_policy_denies_one_pair_while_others_pass() {
    privileged_test("a_network_policy_denies_one_pair_while_others_pass");
    let _serial = one_at_a_time();
    let bed = Bed::start("kb-policy");
    let before = bed.totals();
    // Allowed: client -> web1 (web's ingress lets clients in), intruder ->
    // client (no policy selects the client; the intruder may reach pods).
    let mut client_web = bed.flows("kb-client", bed.c.pod("kb-web1").ip, BACKEND_PORT, 5);
    assert_eq!(
        client_web.probe(PROBE_TIMEOUT).unwrap(),
        vec![Some("kb-web1".to_string()); 5]
    );
    let mut intruder_client = bed.flows("kb-intruder", bed.c.pod("kb-client").ip, CLIENT_PORT, 5);
    assert_eq!(
        intruder_client.probe(PROBE_TIMEOUT).unwrap(),
        vec![Some("kb-client".to_string()); 5]
    );
    // Denied: intruder -> web1 (web's ingress) and intruder -> the Service
    // (the intruder's egress allows pods only).
    let mut intruder_web = bed.flows("kb-intruder", bed.c.pod("kb-web1").ip, BACKEND_PORT, 5);
    assert_eq!(intruder_web.probe(PROBE_TIMEOUT).unwrap(), vec![None; 5]);
    let mut intruder_service = bed.flows("kb-intruder", VIP, SERVICE_PORT, 5);
    assert_eq!(
        intruder_service.probe(PROBE_TIMEOUT).unwrap(),
        vec![None; 5]
    );
    // Allowed still, after the denials.
    assert_eq!(
        client_web.probe(PROBE_TIMEOUT).unwrap(),
        vec![Some("kb-web1".to_string()); 5]
    );

    let denied = bed.totals().since(&before).dropped("policy_denied");
    assert_eq!(denied, 10, "{:?}", bed.totals().since(&before));
    // Counters are published about once a second: wait for all of them.
    // client -> web1 twice and intruder -> client passed (their replies
    // cross no stage of a chain without a load balancer), intruder -> web1
    // dropped.
    // Both workers publish on their own clock: wait for the replies too.
    let pods = wait_chain(&bed, "pods", "policy drops", |c| {
        c.stages.len() == 1 && stage(c, 0).packets >= 20 && c.reply_packets >= 15
    });
    assert_eq!(stage(&pods, 0).packets, 20, "{pods:#?}");
    assert_eq!(stage(&pods, 0).dropped, 5, "intruder -> web1: {pods:#?}");
    assert_eq!(stage(&pods, 0).passed, 15, "{pods:#?}");
    assert_eq!(pods.drops.get("policy_denied"), Some(&5), "{pods:#?}");
    assert_eq!(pods.reply_packets, 15, "{pods:#?}");
    let web = wait_chain(&bed, "web", "policy drops", |c| c.dropped >= 5);
    assert_eq!(stage(&web, 0).dropped, 5, "intruder -> Service: {web:#?}");
    assert_eq!(
        stage(&web, 1).packets,
        0,
        "nothing denied reaches the policer: {web:#?}"
    );
    assert_eq!(vnf_traffic(&bed.closed).entered, 0, "nor the VNF");
    bed.finish();
}

/// Probe `flows` every `interval` until `stop` says so; every round's
/// answers, with when it started (relative to `start`).
fn probe_rounds(
    flows: &mut ServiceFlows,
    start: Instant,
    interval: Duration,
    mut stop: impl FnMut(usize) -> bool,
) -> Vec<(Duration, Vec<Option<String>>)> {
    let mut rounds = Vec::new();
    while !stop(rounds.len()) {
        let at = start.elapsed();
        rounds.push((at, flows.probe(PROBE_TIMEOUT).unwrap()));
        std::thread::sleep(interval);
    }
    rounds
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_removed_backend_moves_only_its_flows() {
    privileged_test("a_removed_backend_moves_only_its_flows");
    let _serial = one_at_a_time();
    let bed = Bed::start("kb-backend");
    const FLOWS: usize = 40;
    const REMOVED: &str = "kb-web2";
    let mut flows = bed.flows("kb-client", VIP, SERVICE_PORT, FLOWS);
    let first = flows.probe(PROBE_TIMEOUT).unwrap();
    assert_all_answered(&first, "before the change");
    let on_removed = first
        .iter()
        .filter(|a| a.as_deref() == Some(REMOVED))
        .count();
    assert!(on_removed > 0, "no flow on {REMOVED}: {first:?}");

    // Traffic flows (a probe round every 20 ms) while the Service loses
    // kb-web2 through the API, half a second in.
    let start = Instant::now();
    let applier = {
        let socket = api_socket_path(bed.c.tb().node_config("n1").unwrap());
        let service = bed
            .c
            .tb()
            .service_spec(
                "web",
                VIP,
                Protocol::Udp,
                SERVICE_PORT,
                BACKEND_PORT,
                &["kb-web1", "kb-web3"],
            )
            .unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            let mut client = BlockingClient::connect(&ApiTarget::Unix(socket)).unwrap();
            let asked = start.elapsed();
            let outcome = client.apply(&ChangeSet::upsert(ObjectSet {
                services: vec![service],
                ..ObjectSet::default()
            }));
            (asked, start.elapsed(), outcome.map(|o| format!("{o:?}")))
        })
    };
    let rounds = probe_rounds(&mut flows, start, Duration::from_millis(20), |n| {
        n >= 10 && start.elapsed() > Duration::from_millis(1500)
    });
    // The change takes effect between the request and its answer.
    let (asked_at, applied_at, outcome) = applier.join().unwrap();
    let outcome = outcome
        .unwrap_or_else(|e| panic!("the apply was refused: {}", kxdp_node::report::Report(&e)));
    eprintln!(
        "apply asked at {asked_at:?}, answered at {applied_at:?}: {outcome}; {} probe rounds",
        rounds.len()
    );
    assert!(
        rounds.iter().any(|(at, _)| *at < asked_at)
            && rounds.iter().any(|(at, _)| *at > applied_at),
        "probes before and after the apply"
    );

    let mut moved_to: BTreeMap<usize, String> = BTreeMap::new();
    for (flow, initial) in first.iter().enumerate() {
        let initial = initial.as_deref().unwrap();
        let seen: Vec<(Duration, Option<&str>)> = rounds
            .iter()
            .map(|(at, answers)| (*at, answers[flow].as_deref()))
            .collect();
        if initial != REMOVED {
            // Kept its backend, and lost nothing, through the change.
            for (at, answer) in &seen {
                assert_eq!(
                    *answer,
                    Some(initial),
                    "flow {flow} (on {initial}) at {at:?}, apply at {applied_at:?}: {seen:?}"
                );
            }
            continue;
        }
        // On the removed backend until the apply; after it, on one of the
        // others, for good (while the apply is under way, either).
        let after: Vec<Option<&str>> = seen
            .iter()
            .filter(|(at, _)| *at > applied_at + Duration::from_millis(100))
            .map(|(_, a)| *a)
            .collect();
        assert!(!after.is_empty());
        let new =
            after[0].unwrap_or_else(|| panic!("flow {flow} unanswered after the move: {seen:?}"));
        assert_ne!(new, REMOVED, "flow {flow} still on {REMOVED}: {seen:?}");
        assert!(
            after.iter().all(|a| *a == Some(new)),
            "flow {flow} moved to {new}, then elsewhere: {seen:?}"
        );
        let before = asked_at.saturating_sub(Duration::from_millis(50));
        for (at, answer) in seen.iter().filter(|(at, _)| *at < before) {
            assert_eq!(*answer, Some(REMOVED), "flow {flow} at {at:?}: {seen:?}");
        }
        moved_to.insert(flow, new.to_string());
    }
    assert_eq!(moved_to.len(), on_removed);
    eprintln!("{on_removed} of {FLOWS} flows moved off {REMOVED}: {moved_to:?}");
    // The load balancer counted the moves (per worker state, summed in the
    // chain's stage counters: every packet went through it).
    let web = wait_chain(&bed, "web", "after the change", |c| c.stages.len() == 4);
    assert_eq!(stage(&web, 3).dropped, 0, "{web:#?}");
    bed.finish();
}

/// Probe rounds until `done` holds of one (at most `within`); all rounds.
fn probe_until(
    flows: &mut ServiceFlows,
    within: Duration,
    done: impl Fn(&[Option<String>]) -> bool,
) -> (bool, Vec<Vec<Option<String>>>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < within {
        let answers = flows.probe(Duration::from_millis(100)).unwrap();
        let ok = done(&answers);
        seen.push(answers);
        if ok {
            return (true, seen);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (false, seen)
}

fn answered(answers: &[Option<String>]) -> usize {
    answers.iter().filter(|a| a.is_some()).count()
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn a_dead_vnf_fails_closed_or_open_as_its_chain_says() {
    privileged_test("a_dead_vnf_fails_closed_or_open_as_its_chain_says");
    let _serial = one_at_a_time();
    let bed = Bed::start("kb-vnfdown");
    const FLOWS: usize = 8;
    let mut closed = bed.flows("kb-client", VIP, SERVICE_PORT, FLOWS);
    let mut open = bed.flows("kb-client", VIP_OPEN, SERVICE_PORT, FLOWS);
    assert_all_answered(
        &closed.probe(PROBE_TIMEOUT).unwrap(),
        "fail-closed chain, VNF up",
    );
    assert_all_answered(
        &open.probe(PROBE_TIMEOUT).unwrap(),
        "fail-open chain, VNF up",
    );
    assert!(bed.closed.is_forwarding().unwrap() && bed.open.is_forwarding().unwrap());

    // Fail closed: the VNF dies under traffic; within its timeout (200 ms)
    // and a few rounds, nothing answers, and the drops are counted.
    let before = bed.totals();
    bed.closed.kill().unwrap();
    assert!(!bed.closed.is_forwarding().unwrap());
    let (dark, seen) = probe_until(&mut closed, Duration::from_secs(3), |a| answered(a) == 0);
    assert!(
        dark,
        "the fail-closed chain still answers with its VNF dead: {seen:?}"
    );
    // It stays dark (probes into the dead VNF come back with nothing).
    for _ in 0..5 {
        assert_eq!(
            answered(&closed.probe(Duration::from_millis(100)).unwrap()),
            0
        );
    }
    let vnf_down = bed.totals().since(&before).dropped("vnf_down");
    assert!(vnf_down > 0, "{:?}", bed.totals().since(&before));
    let web = wait_chain(&bed, "web", "vnf_down drops", |c| {
        c.drops.get("vnf_down").copied().unwrap_or(0) >= vnf_down
    });
    assert_eq!(stage(&web, 2).dropped, web.drops["vnf_down"], "{web:#?}");
    // The other chain's VNF is alive: it keeps answering through it.
    let open_vnf = vnf_traffic(&bed.open);
    assert_all_answered(
        &open.probe(PROBE_TIMEOUT).unwrap(),
        "fail-open chain, its VNF up",
    );
    assert_eq!(
        vnf_traffic(&bed.open).returned - open_vnf.returned,
        FLOWS as u64
    );

    // Back: the next probe the hop lets through comes back, and the chain
    // answers again (probes back off to at most 64 timeouts; the first are
    // a timeout, then 2, 4, 8 timeouts after it went down).
    bed.closed.restore().unwrap();
    let (back, seen) = probe_until(&mut closed, Duration::from_secs(8), |a| {
        answered(a) == FLOWS
    });
    assert!(back, "the fail-closed chain did not recover: {seen:?}");

    // Fail open: its VNF dies; the chain skips the hop and keeps
    // answering (a probe sent into the dead VNF now and then is lost).
    let open_vnf = vnf_traffic(&bed.open);
    let web_open = bed.chain("web-open");
    bed.open.kill().unwrap();
    let start = Instant::now();
    let mut rounds = Vec::new();
    while start.elapsed() < Duration::from_millis(1500) {
        rounds.push(open.probe(Duration::from_millis(100)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // After the timeout, every round answered but for at most a probe.
    let late: Vec<usize> = rounds[rounds.len() / 2..]
        .iter()
        .map(|a| answered(a))
        .collect();
    assert!(
        late.iter().all(|n| *n >= FLOWS - 1),
        "the fail-open chain does not bypass its dead VNF: {late:?}"
    );
    let dead = vnf_traffic(&bed.open);
    assert_eq!(
        dead.returned, open_vnf.returned,
        "a dead VNF returns nothing"
    );
    let bypassed = wait_chain(&bed, "web-open", "bypass", |c| {
        c.passed > web_open.passed + 5 * FLOWS as u64
    });
    assert_eq!(
        bypassed.dropped, web_open.dropped,
        "fail open drops nothing: {bypassed:#?}"
    );
    assert!(
        stage(&bypassed, 1).passed > stage(&web_open, 1).passed,
        "the hop passes (skips) while down: {bypassed:#?}"
    );
    bed.open.restore().unwrap();
    bed.finish();
}
