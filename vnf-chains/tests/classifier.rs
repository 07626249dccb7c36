//! The classifier: highest priority wins, ties by name, symmetric chains
//! claim return traffic, tenants are separate; and agreement with a naive
//! evaluation on random chains and packets.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;

use common::*;
use kxdp_config::{
    ChainSpec, ClassifierSpec, FunctionSpec, LabelSelector, PodSpec, PortRange, Protocol,
};
use kxdp_vnf_chains::{ChainSet, ChainVerdict, ChainWorker, Direction, WorkerLimits};
use proptest::prelude::*;

fn counter_chain(
    name: &str,
    priority: u32,
    symmetric: bool,
    classifier: ClassifierSpec,
) -> ChainSpec {
    ChainSpec {
        name: name.into(),
        tenant: "blue".into(),
        priority,
        classifier,
        functions: vec![FunctionSpec::Counter],
        symmetric,
    }
}

/// (chain name, direction) the executor puts a frame in, if any.
fn classify(
    set: &ChainSet,
    worker: &mut ChainWorker,
    frame: Vec<u8>,
    tenant: u16,
) -> Option<(String, Direction)> {
    let mut ctx = [context(&frame, 0, tenant)];
    let mut frames = vec![frame];
    worker.process(set, 0, &mut ctx, &mut frames);
    match ctx[0].outcome {
        ChainVerdict::NoChain => None,
        ChainVerdict::Pass => {
            let index = ctx[0].chain_index().unwrap();
            Some((set.chain(index).unwrap().name.clone(), ctx[0].direction))
        }
        other => panic!("counter chains only pass: {other:?}"),
    }
}

fn web_to(dst: &str, dport: u16) -> Vec<u8> {
    frame(Protocol::Tcp, "10.0.0.1", 40000, dst, dport, b"x")
}

#[test]
fn highest_priority_wins_and_ties_go_by_name() {
    let mut model = Model::new();
    let to_services = ClassifierSpec {
        dst: Some("10.96.0.0/16".parse().unwrap()),
        ..ClassifierSpec::default()
    };
    let web = ClassifierSpec {
        dst: Some("10.96.0.0/16".parse().unwrap()),
        protocol: Some(Protocol::Tcp),
        dst_ports: Some(PortRange {
            first: 80,
            last: 80,
        }),
        ..ClassifierSpec::default()
    };
    model.chains = vec![
        counter_chain("b-low", 1, false, to_services.clone()),
        counter_chain("z-high", 10, false, web.clone()),
        counter_chain("a-high", 10, false, web),
        counter_chain("everything", 0, false, ClassifierSpec::default()),
    ];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let name = |r: Option<(String, Direction)>| r.map(|(n, _)| n);
    assert_eq!(
        name(classify(&set, &mut worker, web_to("10.96.0.10", 80), 0)).as_deref(),
        Some("a-high")
    );
    assert_eq!(
        name(classify(&set, &mut worker, web_to("10.96.0.10", 443), 0)).as_deref(),
        Some("b-low")
    );
    assert_eq!(
        name(classify(&set, &mut worker, web_to("10.1.0.10", 80), 0)).as_deref(),
        Some("everything")
    );
    // Another tenant has no chain.
    assert_eq!(
        classify(&set, &mut worker, web_to("10.96.0.10", 80), 1),
        None
    );
}

#[test]
fn symmetric_chains_claim_return_traffic() {
    let mut model = Model::new();
    let web = ClassifierSpec {
        dst: Some("10.2.0.0/16".parse().unwrap()),
        dst_ports: Some(PortRange {
            first: 80,
            last: 80,
        }),
        ..ClassifierSpec::default()
    };
    model.chains = vec![counter_chain("web", 5, true, web.clone())];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    // A reply seen first (no pin) is recognised by its reversed tuple.
    let reply = frame(Protocol::Tcp, "10.2.0.7", 80, "10.0.0.1", 40000, b"r");
    assert_eq!(
        classify(&set, &mut worker, reply, 0),
        Some(("web".into(), Direction::Reply))
    );
    // Not symmetric: the reply is no chain's.
    model.chains = vec![counter_chain("web", 5, false, web)];
    let set = model.compile(2, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let reply = frame(Protocol::Tcp, "10.2.0.7", 80, "10.0.0.1", 40001, b"r");
    assert_eq!(classify(&set, &mut worker, reply, 0), None);
    // But once the flow started forward, its replies are pinned to it.
    let request = frame(Protocol::Tcp, "10.0.0.1", 40002, "10.2.0.7", 80, b"q");
    let reply = frame(Protocol::Tcp, "10.2.0.7", 80, "10.0.0.1", 40002, b"r");
    assert_eq!(
        classify(&set, &mut worker, request, 0),
        Some(("web".into(), Direction::Forward))
    );
    assert_eq!(
        classify(&set, &mut worker, reply, 0),
        Some(("web".into(), Direction::Reply))
    );
}

#[test]
fn identity_selectors() {
    let mut model = Model::new();
    model.pods = vec![
        pod("web", "prod", "10.0.0.1", &[("app", "web")]),
        pod("db", "prod", "10.0.0.2", &[("app", "db")]),
    ];
    let selector = |app: &str| LabelSelector {
        match_labels: labels(&[("app", app)]),
        match_expressions: vec![],
    };
    model.chains = vec![counter_chain(
        "web-to-db",
        1,
        false,
        ClassifierSpec {
            src_selector: Some(selector("web")),
            dst_selector: Some(selector("db")),
            ..ClassifierSpec::default()
        },
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let db = frame(Protocol::Udp, "10.0.0.1", 5000, "10.0.0.2", 53, b"x");
    let db_back = frame(Protocol::Udp, "10.0.0.2", 6000, "10.0.0.1", 53, b"x");
    let outside = frame(Protocol::Udp, "10.0.0.1", 5000, "10.0.0.9", 53, b"x");
    assert_eq!(
        classify(&set, &mut worker, db, 0).map(|c| c.0).as_deref(),
        Some("web-to-db")
    );
    assert_eq!(classify(&set, &mut worker, db_back, 0), None);
    assert_eq!(
        classify(&set, &mut worker, outside, 0),
        None,
        "an address of no pod is no identity"
    );
}

// ---------------------------------------------------------------------------
// Random chains against a naive evaluation.

fn naive_matches(
    c: &ClassifierSpec,
    pods: &[PodSpec],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
) -> bool {
    let pod_labels = |ip: IpAddr| pods.iter().find(|p| p.ip == ip).map(|p| p.labels.clone());
    let has_ports = proto == 6 || proto == 17;
    c.src.is_none_or(|n| n.contains(src))
        && c.dst.is_none_or(|n| n.contains(dst))
        && c.protocol.is_none_or(|p| p.number() == proto)
        && c.src_ports
            .is_none_or(|r| has_ports && r.first <= sport && sport <= r.last)
        && c.dst_ports
            .is_none_or(|r| has_ports && r.first <= dport && dport <= r.last)
        && c.src_selector
            .as_ref()
            .is_none_or(|s| pod_labels(src).is_some_and(|l| s.matches(&l)))
        && c.dst_selector
            .as_ref()
            .is_none_or(|s| pod_labels(dst).is_some_and(|l| s.matches(&l)))
}

fn arb_classifier() -> impl Strategy<Value = ClassifierSpec> {
    let prefix = proptest::option::of(proptest::sample::select(vec![
        "10.0.0.0/8",
        "10.0.0.0/24",
        "10.0.1.0/24",
        "10.0.0.2/32",
        "0.0.0.0/0",
    ]));
    let range = proptest::option::of((0u16..3, 0u16..3).prop_map(|(a, b)| {
        let ports = [53u16, 80, 443];
        PortRange {
            first: ports[usize::from(a.min(b))],
            last: ports[usize::from(a.max(b))],
        }
    }));
    let selector =
        proptest::option::of(proptest::sample::select(vec!["web", "db"]).prop_map(|app| {
            LabelSelector {
                match_labels: labels(&[("app", app)]),
                match_expressions: vec![],
            }
        }));
    (
        prefix.clone(),
        prefix,
        proptest::option::of(prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]),
        range.clone(),
        range,
        selector.clone(),
        selector,
    )
        .prop_map(
            |(src, dst, protocol, src_ports, dst_ports, src_selector, dst_selector)| {
                ClassifierSpec {
                    src: src.map(|s| s.parse().unwrap()),
                    dst: dst.map(|s| s.parse().unwrap()),
                    protocol,
                    src_ports,
                    dst_ports,
                    src_selector,
                    dst_selector,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn classifier_agrees_with_naive_ranking(
        specs in proptest::collection::vec((0u32..4, any::<bool>(), arb_classifier()), 1..8),
        packets in proptest::collection::vec(
            (0usize..4, 0usize..4, prop_oneof![Just(6u8), Just(17u8)], 0usize..3, 0usize..3),
            1..20,
        ),
    ) {
        let mut model = Model::new();
        model.pods = vec![
            pod("web", "prod", "10.0.0.1", &[("app", "web")]),
            pod("db", "prod", "10.0.0.2", &[("app", "db")]),
            pod("web2", "prod", "10.0.1.1", &[("app", "web")]),
        ];
        model.chains = specs
            .iter()
            .enumerate()
            .map(|(i, (priority, symmetric, c))| counter_chain(&format!("c{}", 7 - i), *priority, *symmetric, c.clone()))
            .collect();
        let set = model.compile(1, None);
        let addresses = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "192.168.0.1"];
        let ports = [53u16, 80, 443];
        for (s, d, proto, sp, dp) in packets {
            // A fresh worker each time: no connection entries from earlier packets.
            let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
            let (src, dst) = (addresses[s], addresses[d]);
            let (sport, dport) = (ports[sp], ports[dp]);
            let proto_spec = if proto == 6 { Protocol::Tcp } else { Protocol::Udp };
            let got = classify(&set, &mut worker, frame(proto_spec, src, sport, dst, dport, b"x"), 0);
            let (src_ip, dst_ip): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut candidates: Vec<(u32, String, u8, Direction)> = Vec::new();
            for c in &model.chains {
                if naive_matches(&c.classifier, &model.pods, src_ip, dst_ip, proto, sport, dport) {
                    candidates.push((c.priority, c.name.clone(), 0, Direction::Forward));
                }
                if c.symmetric && naive_matches(&c.classifier, &model.pods, dst_ip, src_ip, proto, dport, sport) {
                    candidates.push((c.priority, c.name.clone(), 1, Direction::Reply));
                }
            }
            candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let expected = candidates.first().map(|(_, name, _, dir)| (name.clone(), *dir));
            prop_assert_eq!(got, expected, "{}:{} -> {}:{} proto {}", src, sport, dst, dport, proto);
        }
    }
}
