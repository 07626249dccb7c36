//! The load balancer: DNAT and reverse NAT with correct checksums (checked
//! against frames etherparse builds with the translated addresses, and by
//! full recomputation), connection affinity across endpoint changes, only
//! the removed backend's flows moving, terminating endpoints, no endpoints,
//! fragments.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::*;
use kxdp_config::{EndpointSpec, Protocol};
use kxdp_dataplane::packet::{self, L3};
use kxdp_dataplane::DropReason;
use kxdp_vnf_chains::{ChainSet, ChainVerdict, ChainWorker, StageState, WorkerLimits};
use proptest::prelude::*;

const VIP4: &str = "10.96.0.10";
const VIP6: &str = "fd96::10";

fn lb_model(vip: &str, endpoints: &[&str], proto: Protocol) -> Model {
    let mut model = Model::new();
    let mut svc = service("web", vip, 80, 8080, endpoints);
    svc.ports[0].protocol = proto;
    model.services = vec![svc];
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nfunctions: [{type: load_balancer}]\n",
    )];
    model
}

/// Run one frame; return its outcome and the frame as it left.
fn run(
    worker: &mut ChainWorker,
    set: &ChainSet,
    now: u64,
    frame: Vec<u8>,
) -> (ChainVerdict, Vec<u8>) {
    let mut ctx = [context(&frame, 0, 0)];
    let mut frames = vec![frame];
    worker.process(set, now, &mut ctx, &mut frames);
    let out = frames.pop().unwrap();
    // The context's metadata follows the rewrite.
    if ctx[0].outcome == ChainVerdict::Pass {
        assert_eq!(ctx[0].meta, packet::parse(&out).unwrap());
    }
    (ctx[0].outcome, out)
}

/// The source and destination (address, port) of a frame.
fn ends(frame: &[u8]) -> [(IpAddr, u16); 2] {
    let meta = packet::parse(frame).unwrap();
    let (src, dst) = match meta.l3 {
        L3::Ipv4 { src, dst, .. } => (IpAddr::V4(src), IpAddr::V4(dst)),
        L3::Ipv6 { src, dst, .. } => (IpAddr::V6(src), IpAddr::V6(dst)),
        L3::Arp => panic!("arp"),
    };
    let (sport, dport) = meta.l4.ports();
    [(src, sport), (dst, dport)]
}

fn destination(frame: &[u8]) -> (IpAddr, u16) {
    ends(frame)[1]
}

fn source(frame: &[u8]) -> (IpAddr, u16) {
    ends(frame)[0]
}

#[test]
fn dnat_and_reverse_nat_round_trip_with_correct_checksums() {
    let cases = [
        (
            Protocol::Tcp,
            VIP4,
            "10.0.0.1",
            ["10.1.0.1", "10.1.0.2", "10.1.0.3"],
        ),
        (
            Protocol::Udp,
            VIP4,
            "10.0.0.1",
            ["10.1.0.1", "10.1.0.2", "10.1.0.3"],
        ),
        (
            Protocol::Tcp,
            VIP6,
            "fd00::1",
            ["fd01::1", "fd01::2", "fd01::3"],
        ),
        (
            Protocol::Udp,
            VIP6,
            "fd00::1",
            ["fd01::1", "fd01::2", "fd01::3"],
        ),
    ];
    for (proto, vip, client, endpoints) in cases {
        let model = lb_model(vip, &endpoints, proto);
        let set = model.compile(1, None);
        let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
        for (n, payload) in [&b""[..], b"x", b"hello, world", &[0xff; 301]]
            .into_iter()
            .enumerate()
        {
            let cport = 40_000 + n as u16;
            let request = frame(proto, client, cport, vip, 80, payload);
            let (outcome, translated) = run(&mut worker, &set, 1, request);
            assert_eq!(outcome, ChainVerdict::Pass);
            let (backend, port) = destination(&translated);
            assert_eq!(port, 8080);
            assert!(
                endpoints.contains(&backend.to_string().as_str()),
                "{backend}"
            );
            // Exactly the frame etherparse builds for client → backend:8080.
            let expected = frame(proto, client, cport, &backend.to_string(), 8080, payload);
            assert_eq!(
                translated,
                expected,
                "{proto:?} {vip} payload {}",
                payload.len()
            );
            assert_checksums_valid(&translated);
            // The backend's reply gets the service's address back.
            let reply = frame(proto, &backend.to_string(), 8080, client, cport, payload);
            let (outcome, back) = run(&mut worker, &set, 2, reply);
            assert_eq!(outcome, ChainVerdict::Pass);
            assert_eq!(back, frame(proto, vip, 80, client, cport, payload));
            assert_checksums_valid(&back);
        }
        match worker.stage_state("lb", 0) {
            Some(StageState::LoadBalancer { state: lb, .. }) => {
                assert_eq!(
                    (lb.connections, lb.translated, lb.reverse_translated),
                    (4, 4, 4)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A TCP segment with the flags named in `flags` (S, A, F, R, P).
fn segment(src: &str, sport: u16, dst: &str, dport: u16, flags: &str) -> Vec<u8> {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, 1000, 65_000);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            other => panic!("flag {other}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, if flags.contains('P') { b"data" } else { b"" })
        .unwrap();
    out
}

/// A client closes a ClusterIP connection and connects from the same port
/// straight to the backend that served it (as a node's kubelet probes
/// reuse ephemeral ports beside its ClusterIP traffic): the backend's
/// handshake answer must reach the client from the backend's own address,
/// not the ClusterIP. Closed by the backend's FIN, or by the client's RST
/// alone. While the connection is open, a retransmitted or reordered
/// SYN-ACK keeps the ClusterIP.
#[test]
fn a_new_connection_on_a_closed_connections_reply_tuple_is_not_translated() {
    let backend = "10.1.0.1";
    let mut model = lb_model(VIP4, &[backend], Protocol::Tcp);
    // As kxdp balances a cluster's Services: a chain for what goes to the
    // service CIDR; replies find it through their connection entries.
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nclassifier: {dst: 10.96.0.0/16}\nfunctions: [{type: load_balancer}]\n",
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let client = "10.0.0.1";
    let vip: IpAddr = VIP4.parse().unwrap();
    let be: IpAddr = backend.parse().unwrap();
    let mut now = 1;
    let mut step = |frame: Vec<u8>| {
        now += 1;
        let (outcome, out) = run(&mut worker, &set, now, frame);
        // NoChain: a packet of no Service connection passes untouched.
        assert!(
            matches!(outcome, ChainVerdict::Pass | ChainVerdict::NoChain),
            "{outcome:?}"
        );
        out
    };
    for (port, close) in [(40_001, "backend FIN"), (40_002, "client RST")] {
        // The ClusterIP connection: handshake (the SYN-ACK sent twice),
        // data, a SYN-ACK reordered behind it, then the close.
        let out = step(segment(client, port, VIP4, 80, "S"));
        assert_eq!(destination(&out), (be, 8080));
        for _ in 0..2 {
            let out = step(segment(backend, 8080, client, port, "SA"));
            assert_eq!(source(&out), (vip, 80), "{close}: SYN-ACK of the handshake");
        }
        step(segment(client, port, VIP4, 80, "A"));
        let out = step(segment(backend, 8080, client, port, "PA"));
        assert_eq!(source(&out), (vip, 80));
        let out = step(segment(backend, 8080, client, port, "SA"));
        assert_eq!(
            source(&out),
            (vip, 80),
            "{close}: a late SYN-ACK, connection open"
        );
        if close == "backend FIN" {
            let out = step(segment(backend, 8080, client, port, "FA"));
            assert_eq!(source(&out), (vip, 80));
            step(segment(client, port, VIP4, 80, "FA"));
        } else {
            let out = step(segment(client, port, VIP4, 80, "R"));
            assert_eq!(destination(&out), (be, 8080));
        }
        // The same client port, straight to the backend: the client's SYN
        // is not the load balancer's, and neither is the answer.
        let out = step(segment(client, port, backend, 8080, "S"));
        assert_eq!(destination(&out), (be, 8080));
        let out = step(segment(backend, 8080, client, port, "SA"));
        assert_eq!(
            source(&out),
            (be, 8080),
            "{close}: the direct connection's SYN-ACK"
        );
        let out = step(segment(backend, 8080, client, port, "PA"));
        assert_eq!(
            source(&out),
            (be, 8080),
            "{close}: the direct connection's data"
        );
    }
    match worker.stage_state("lb", 0) {
        Some(StageState::LoadBalancer { state: lb, .. }) => {
            assert_eq!((lb.connections, lb.reopened), (2, 2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_without_checksum_stays_without() {
    let model = lb_model(VIP4, &["10.1.0.1"], Protocol::Udp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let mut request = frame(Protocol::Udp, "10.0.0.1", 5353, VIP4, 80, b"abc");
    request[14 + 20 + 6..14 + 20 + 8].fill(0);
    let (outcome, translated) = run(&mut worker, &set, 1, request);
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(&translated[40..42], &[0, 0]);
    let mut expected = frame(Protocol::Udp, "10.0.0.1", 5353, "10.1.0.1", 8080, b"abc");
    expected[40..42].fill(0);
    assert_eq!(translated, expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random addresses, ports and payloads: checksums stay right both ways.
    #[test]
    fn translated_checksums_are_valid(
        client in any::<u32>(),
        cport in 1u16..,
        tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        endpoint in any::<u32>(),
        target in 1u16..,
    ) {
        let proto = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let client = std::net::Ipv4Addr::from(client).to_string();
        let endpoint = std::net::Ipv4Addr::from(endpoint).to_string();
        prop_assume!(client != VIP4 && endpoint != VIP4 && client != endpoint);
        let mut model = lb_model(VIP4, &[&endpoint], proto);
        model.services[0].ports[0].target_port = Some(target);
        let set = model.compile(1, None);
        let mut worker = ChainWorker::new(&set, WorkerLimits { flow_capacity: 64, ..WorkerLimits::default() }, 0);
        let (_, translated) = run(&mut worker, &set, 1, frame(proto, &client, cport, VIP4, 80, &payload));
        prop_assert_eq!(&translated, &frame(proto, &client, cport, &endpoint, target, &payload));
        assert_checksums_valid(&translated);
        let (_, back) = run(&mut worker, &set, 2, frame(proto, &endpoint, target, &client, cport, &payload));
        prop_assert_eq!(&back, &frame(proto, VIP4, 80, &client, cport, &payload));
        assert_checksums_valid(&back);
    }
}

/// Backend (as a string) of each flow's next packet.
fn backends_of(worker: &mut ChainWorker, set: &ChainSet, now: u64, flows: &[u16]) -> Vec<String> {
    flows
        .iter()
        .map(|&cport| {
            let (outcome, out) = run(
                worker,
                set,
                now,
                frame(Protocol::Tcp, "10.0.0.1", cport, VIP4, 80, b"x"),
            );
            assert_eq!(outcome, ChainVerdict::Pass);
            destination(&out).0.to_string()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Removing a backend moves only its flows: with the worker's
    /// connections (existing flows), and also for a worker that never saw
    /// the flows (the Maglev table itself changes only the removed
    /// backend's slots). And the removed backend gets nothing new.
    #[test]
    fn removing_a_backend_moves_only_its_flows(
        endpoints in proptest::collection::btree_set(1u8..=250, 2..24),
        pick in any::<prop::sample::Index>(),
    ) {
        let endpoints: Vec<String> = endpoints.iter().map(|e| format!("10.1.0.{e}")).collect();
        let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        let mut model = lb_model(VIP4, &refs, Protocol::Tcp);
        let set = model.compile(1, None);
        let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
        let flows: Vec<u16> = (0..600).map(|i| 20_000 + i).collect();
        let before = backends_of(&mut worker, &set, 1, &flows);
        // Every backend gets some flows.
        let used: BTreeSet<&String> = before.iter().collect();
        prop_assert_eq!(used.len(), endpoints.len().min(flows.len()));

        let removed = endpoints[pick.index(endpoints.len())].clone();
        model.services[0].endpoints.retain(|e| e.ip.to_string() != removed);
        let set2 = model.compile(2, Some(&set));
        let after = backends_of(&mut worker, &set2, 2, &flows);
        let mut fresh_worker = ChainWorker::new(&set2, WorkerLimits::default(), 0);
        let fresh = backends_of(&mut fresh_worker, &set2, 2, &flows);
        for ((b, a), f) in before.iter().zip(&after).zip(&fresh) {
            prop_assert_ne!(a, &removed);
            prop_assert_ne!(f, &removed);
            if *b != removed {
                prop_assert_eq!(a, b, "an existing flow of a remaining backend moved");
                prop_assert_eq!(f, b, "the table moved a remaining backend's slot");
            }
        }
        prop_assert!(before.contains(&removed));
    }
}

fn endpoint(ip: &str, ready: bool, serving: bool) -> EndpointSpec {
    EndpointSpec {
        ip: ip.parse().unwrap(),
        pod: None,
        node: None,
        ready,
        serving,
        terminating: !ready,
    }
}

#[test]
fn terminating_endpoints_keep_their_connections_only() {
    let mut model = lb_model(VIP4, &["10.1.0.1", "10.1.0.2"], Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let flows: Vec<u16> = (30_000..30_200).collect();
    let before = backends_of(&mut worker, &set, 1, &flows);
    assert!(before.iter().any(|b| b == "10.1.0.1") && before.iter().any(|b| b == "10.1.0.2"));
    // 10.1.0.1 terminates: still serving, no longer ready.
    model.services[0].endpoints = vec![
        endpoint("10.1.0.1", false, true),
        endpoint("10.1.0.2", true, true),
    ];
    let set2 = model.compile(2, Some(&set));
    assert_eq!(
        backends_of(&mut worker, &set2, 2, &flows),
        before,
        "existing connections stay"
    );
    let new_flows: Vec<u16> = (40_000..40_200).collect();
    assert!(backends_of(&mut worker, &set2, 3, &new_flows)
        .iter()
        .all(|b| b == "10.1.0.2"));
    // Then it stops serving: its connections move.
    model.services[0].endpoints = vec![
        endpoint("10.1.0.1", false, false),
        endpoint("10.1.0.2", true, true),
    ];
    let set3 = model.compile(3, Some(&set2));
    assert!(backends_of(&mut worker, &set3, 4, &flows)
        .iter()
        .all(|b| b == "10.1.0.2"));
    match worker.stage_state("lb", 0) {
        Some(StageState::LoadBalancer { state: lb, .. }) => {
            let moved = before.iter().filter(|b| *b == "10.1.0.1").count() as u64;
            assert_eq!(lb.moved, moved);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn replies_follow_a_moved_connection() {
    let mut model = lb_model(VIP4, &["10.1.0.1"], Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, "10.0.0.1", 1234, VIP4, 80, b"q");
    assert_eq!(
        destination(&run(&mut worker, &set, 1, request.clone()).1)
            .0
            .to_string(),
        "10.1.0.1"
    );
    model.services[0].endpoints = vec![endpoint("10.1.0.2", true, true)];
    let set2 = model.compile(2, Some(&set));
    assert_eq!(
        destination(&run(&mut worker, &set2, 2, request).1)
            .0
            .to_string(),
        "10.1.0.2"
    );
    let reply = frame(Protocol::Tcp, "10.1.0.2", 8080, "10.0.0.1", 1234, b"r");
    let (outcome, back) = run(&mut worker, &set2, 3, reply);
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(back, frame(Protocol::Tcp, VIP4, 80, "10.0.0.1", 1234, b"r"));
}

#[test]
fn no_ready_endpoint_drops_new_connections() {
    let model = lb_model(VIP4, &[], Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let (outcome, _) = run(
        &mut worker,
        &set,
        1,
        frame(Protocol::Tcp, "10.0.0.1", 1, VIP4, 80, b""),
    );
    assert_eq!(outcome, ChainVerdict::Drop(DropReason::NoServiceEndpoint));
    // Other ports of the address and other addresses pass untouched.
    let other = frame(Protocol::Tcp, "10.0.0.1", 1, VIP4, 81, b"");
    assert_eq!(
        run(&mut worker, &set, 1, other.clone()),
        (ChainVerdict::Pass, other)
    );
    let stats = worker.stats();
    assert_eq!(
        stats[0].counters.drops_for(DropReason::NoServiceEndpoint),
        1
    );
}

#[test]
fn non_first_fragments_to_a_service_are_dropped() {
    let model = lb_model(VIP4, &["10.1.0.1"], Protocol::Udp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let mut fragment = frame(Protocol::Udp, "10.0.0.1", 1, VIP4, 80, b"12345678");
    // Fragment offset 1 (8 bytes), then a fresh header checksum.
    fragment[14 + 6..14 + 8].copy_from_slice(&1u16.to_be_bytes());
    fragment[14 + 10..14 + 12].fill(0);
    let sum = kxdp_dataplane::wire::checksum::ipv4_header(&fragment[14..34]);
    fragment[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    let (outcome, _) = run(&mut worker, &set, 1, fragment);
    assert_eq!(outcome, ChainVerdict::Drop(DropReason::ServiceFragment));
}

#[test]
fn a_load_balancer_balances_only_the_services_it_names() {
    let mut model = lb_model(VIP4, &["10.1.0.1"], Protocol::Tcp);
    model
        .services
        .push(service("other", "10.96.0.11", 80, 8080, &["10.1.0.9"]));
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nfunctions: [{type: load_balancer, services: [default/web]}]\n",
    )];
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let web = run(
        &mut worker,
        &set,
        1,
        frame(Protocol::Tcp, "10.0.0.1", 1, VIP4, 80, b""),
    )
    .1;
    assert_eq!(destination(&web).0.to_string(), "10.1.0.1");
    let other = frame(Protocol::Tcp, "10.0.0.1", 1, "10.96.0.11", 80, b"");
    assert_eq!(run(&mut worker, &set, 1, other.clone()).1, other);
    // Unknown names are refused by validation
    // (`a_load_balancer_names_services_of_its_tenant` in kxdp-config's
    // tests); given one anyway, the compiler balances nothing for it.
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nfunctions: [{type: load_balancer, services: [default/nope]}]\n",
    )];
    let set = ChainSet::compile(&model.input(), 2, small_tables(), None).unwrap();
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let to_web = frame(Protocol::Tcp, "10.0.0.1", 1, VIP4, 80, b"");
    assert_eq!(run(&mut worker, &set, 1, to_web.clone()).1, to_web);
}

/// Validation refuses a service port twice in a tenant and an endpoint of
/// the other family (`refuses_a_service_port_twice_in_a_tenant`,
/// `refuses_an_endpoint_of_another_family_than_the_cluster_ip` in
/// kxdp-config's tests); given them anyway, the compiler keeps the first
/// service's port and leaves the endpoint out.
#[test]
fn inconsistent_services_are_left_out() {
    let mut model = lb_model(VIP4, &["10.1.0.1"], Protocol::Tcp);
    model
        .services
        .push(service("twin", VIP4, 80, 8080, &["10.1.0.9"]));
    model.services[0]
        .endpoints
        .push(endpoint("fd00::1", true, true));
    let set = model.compile(1, None);
    assert_eq!(set.services().ports().len(), 1);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    for port in 1..=20 {
        let out = run(
            &mut worker,
            &set,
            1,
            frame(Protocol::Tcp, "10.0.0.1", port, VIP4, 80, b""),
        )
        .1;
        assert_eq!(destination(&out).0.to_string(), "10.1.0.1");
    }
}

#[test]
fn load_spreads_evenly_over_backends() {
    let endpoints: Vec<String> = (1..=5).map(|i| format!("10.1.0.{i}")).collect();
    let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let model = lb_model(VIP4, &refs, Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let flows: Vec<u16> = (1..=50_000).collect();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for b in backends_of(&mut worker, &set, 1, &flows) {
        *count.entry(b).or_default() += 1;
    }
    assert_eq!(count.len(), 5);
    for (b, n) in count {
        // 10 000 expected each; a binomial's 5 sigma is about 450.
        assert!((9_500..=10_500).contains(&n), "{b}: {n}");
    }
}

#[test]
fn connections_survive_a_changed_load_balancer_config() {
    let endpoints: Vec<String> = (1..=4).map(|i| format!("10.1.0.{i}")).collect();
    let refs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let mut model = lb_model(VIP4, &refs, Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let flows: Vec<u16> = (50_000..50_050).collect();
    let before = backends_of(&mut worker, &set, 1, &flows);
    // The stage's spec changes (it now names the service): a new stage
    // state, but the connections' translations still hold.
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nfunctions: [{type: load_balancer, services: [default/web]}]\n",
    )];
    let set2 = model.compile(2, Some(&set));
    // Replies first: translated back although no request passed since.
    for (cport, backend) in flows.iter().zip(&before) {
        let reply = frame(Protocol::Tcp, backend, 8080, "10.0.0.1", *cport, b"r");
        let (outcome, back) = run(&mut worker, &set2, 2, reply);
        assert_eq!(outcome, ChainVerdict::Pass);
        assert_eq!(
            back,
            frame(Protocol::Tcp, VIP4, 80, "10.0.0.1", *cport, b"r")
        );
    }
    assert_eq!(backends_of(&mut worker, &set2, 3, &flows), before);
    // A config that no longer balances the service: requests go untouched.
    model
        .services
        .push(service("other", "10.96.0.11", 80, 8080, &["10.1.0.9"]));
    model.chains = vec![chain(
        "name: lb\ntenant: blue\nfunctions: [{type: load_balancer, services: [default/other]}]\n",
    )];
    let set3 = model.compile(3, Some(&set2));
    let request = frame(Protocol::Tcp, "10.0.0.1", flows[0], VIP4, 80, b"x");
    assert_eq!(
        run(&mut worker, &set3, 4, request.clone()),
        (ChainVerdict::Pass, request)
    );
}

/// An IPv4/SCTP frame with one DATA chunk and a correct CRC32c (stored
/// little-endian, as Linux does).
fn sctp_frame(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut sctp = Vec::new();
    sctp.extend_from_slice(&sport.to_be_bytes());
    sctp.extend_from_slice(&dport.to_be_bytes());
    sctp.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // verification tag
    sctp.extend_from_slice(&[0; 4]); // checksum
                                     // DATA chunk: type 0, flags 3, length 20, TSN, stream, seq, PPID, "abcd".
    sctp.extend_from_slice(&[0, 3, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    sctp.extend_from_slice(b"abcd");
    let crc = kxdp_vnf_chains::nat::crc32c(&sctp);
    sctp[8..12].copy_from_slice(&crc.to_le_bytes());
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, GATEWAY_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .write(&mut out, etherparse::IpNumber(132), &sctp)
        .unwrap();
    out
}

#[test]
fn sctp_ports_are_translated_with_a_new_crc() {
    let mut model = lb_model(VIP4, &["10.1.0.1"], Protocol::Tcp);
    model.services[0].ports[0].protocol = Protocol::Sctp;
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let (outcome, out) = run(&mut worker, &set, 1, sctp_frame("10.0.0.1", 5000, VIP4, 80));
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(out, sctp_frame("10.0.0.1", 5000, "10.1.0.1", 8080));
    let (outcome, back) = run(
        &mut worker,
        &set,
        2,
        sctp_frame("10.1.0.1", 8080, "10.0.0.1", 5000),
    );
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(back, sctp_frame(VIP4, 80, "10.0.0.1", 5000));
}

/// Services without any chain: with the cluster's Service CIDR known, every
/// Service is balanced by an implicit chain (kube-proxy replacement), the
/// reply mapped back; an explicit chain matching the same traffic still
/// takes it, whatever its priority.
#[test]
fn services_are_balanced_without_a_chain_and_explicit_chains_come_first() {
    let mut model = Model::new();
    model.services = vec![service("web", VIP4, 80, 8080, &["10.1.0.1", "10.1.0.2"])];
    model.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
    let set = model.compile(1, None);
    assert_eq!(
        set.len(),
        1,
        "one implicit chain for the one tenant with Services"
    );
    assert!(set.chain(0).unwrap().name.starts_with("kxdp:services:blue"));
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, "10.0.0.1", 40_000, VIP4, 80, b"hi");
    let (outcome, translated) = run(&mut worker, &set, 1, request);
    assert_eq!(outcome, ChainVerdict::Pass);
    let (backend, port) = destination(&translated);
    assert_eq!(port, 8080);
    assert!(["10.1.0.1", "10.1.0.2"].contains(&backend.to_string().as_str()));
    let reply = frame(
        Protocol::Tcp,
        &backend.to_string(),
        8080,
        "10.0.0.1",
        40_000,
        b"ok",
    );
    let (outcome, back) = run(&mut worker, &set, 2, reply);
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(destination(&back), ("10.0.0.1".parse().unwrap(), 40_000));
    let meta = packet::parse(&back).unwrap();
    assert_eq!(
        meta.l3,
        L3::Ipv4 {
            src: VIP4.parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap()
        }
    );

    // Without the Service CIDR (or with balancing off) nothing is implicit.
    let mut plain = Model::new();
    plain.services = model.services.clone();
    assert_eq!(plain.compile(1, None).len(), 0);

    // An explicit chain of priority 0 matching the ClusterIP wins: it has a
    // counter and no load balancer, so the packet passes untranslated.
    model.chains = vec![chain(
        "name: zzz\ntenant: blue\nclassifier: {dst: 10.96.0.10/32}\nfunctions: [{type: counter}]\n",
    )];
    let set = model.compile(2, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, "10.0.0.1", 40_001, VIP4, 80, b"hi");
    let (outcome, untouched) = run(&mut worker, &set, 1, request.clone());
    assert_eq!(outcome, ChainVerdict::Pass);
    assert_eq!(untouched, request, "the explicit chain took it");
}

/// `sessionAffinity: ClientIP`: every connection of a client reaches the
/// same endpoint; without it, connections spread.
#[test]
fn client_ip_affinity_keeps_a_client_on_one_endpoint() {
    let endpoints = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"];
    for affinity in [true, false] {
        let mut model = lb_model(VIP4, &endpoints, Protocol::Tcp);
        model.services[0].client_ip_affinity = affinity;
        let set = model.compile(1, None);
        let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
        let mut used = BTreeSet::new();
        for port in 0..64u16 {
            let request = frame(Protocol::Tcp, "10.0.0.7", 30_000 + port, VIP4, 80, b"x");
            let (outcome, translated) = run(&mut worker, &set, 1, request);
            assert_eq!(outcome, ChainVerdict::Pass);
            used.insert(destination(&translated).0);
        }
        if affinity {
            assert_eq!(used.len(), 1, "one endpoint for one client: {used:?}");
        } else {
            assert!(used.len() >= 3, "connections spread: {used:?}");
        }
    }
}

/// `internalTrafficPolicy: Local`: only the endpoints on this node.
#[test]
fn internal_traffic_policy_local_keeps_to_this_node() {
    let mut model = lb_model(VIP4, &["10.1.0.1", "10.2.0.1", "10.2.0.2"], Protocol::Tcp);
    model.services[0].internal_traffic_local = true;
    model.services[0].endpoints[0].node = Some("node1".into());
    model.services[0].endpoints[1].node = Some("node2".into());
    model.services[0].endpoints[2].node = Some("node2".into());
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    for port in 0..32u16 {
        let request = frame(Protocol::Tcp, "10.0.0.7", 30_000 + port, VIP4, 80, b"x");
        let (outcome, translated) = run(&mut worker, &set, 1, request);
        assert_eq!(outcome, ChainVerdict::Pass);
        assert_eq!(
            destination(&translated).0,
            "10.1.0.1".parse::<IpAddr>().unwrap()
        );
    }
    // No local endpoint: no endpoint at all (not another node's).
    model.services[0].endpoints[0].node = Some("node3".into());
    let set = model.compile(2, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let request = frame(Protocol::Tcp, "10.0.0.7", 31_000, VIP4, 80, b"x");
    let (outcome, _) = run(&mut worker, &set, 1, request);
    assert_eq!(outcome, ChainVerdict::Drop(DropReason::NoServiceEndpoint));
}

#[test]
fn a_kept_load_balancer_stage_takes_the_new_sets_service_ports() {
    let mut model = lb_model(VIP4, &["10.1.0.1"], Protocol::Tcp);
    let set = model.compile(1, None);
    let mut worker = ChainWorker::new(&set, WorkerLimits::default(), 0);
    let web = run(
        &mut worker,
        &set,
        1,
        frame(Protocol::Tcp, "10.0.0.1", 1, VIP4, 80, b""),
    );
    assert_eq!(destination(&web.1).0.to_string(), "10.1.0.1");
    // A service added ahead of it moves every service port's index; the
    // stage (same spec) keeps its state but must read the new set's ports.
    model
        .services
        .insert(0, service("other", "10.96.0.11", 80, 8080, &["10.1.0.9"]));
    let set2 = model.compile(2, Some(&set));
    let other = run(
        &mut worker,
        &set2,
        2,
        frame(Protocol::Tcp, "10.0.0.1", 2, "10.96.0.11", 80, b""),
    );
    assert_eq!(destination(&other.1).0.to_string(), "10.1.0.9");
    let web = run(
        &mut worker,
        &set2,
        3,
        frame(Protocol::Tcp, "10.0.0.1", 3, VIP4, 80, b""),
    );
    assert_eq!(destination(&web.1).0.to_string(), "10.1.0.1");
    match worker.stage_state("lb", 0) {
        Some(StageState::LoadBalancer { state, .. }) => assert_eq!(state.connections, 3),
        other => panic!("expected the kept load balancer, got {other:?}"),
    }
}
