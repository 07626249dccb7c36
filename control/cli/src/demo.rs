//! `kxdp demo`: build a two-node cluster on the testbed (network
//! namespaces, pods attached point to point, the nodes on a switched
//! underlay), run one kxdp per node in adaptive mode, and show what a
//! cluster's pod network does, one table row per exchange:
//!
//! - pod to pod, ICMP, UDP and TCP, on the same node and across nodes;
//! - cluster DNS: a pod on node1 resolves `web.default.svc.cluster.local`
//!   at the `kube-dns` Service 10.96.0.10, whose endpoint is `dnsmasq` in a
//!   pod on node2;
//! - a Service: HTTP GETs from a pod to the `web` ClusterIP 10.96.0.20:80,
//!   balanced by kxdp over backends on both nodes;
//! - the node as a destination: a pod pings its node's address, the node
//!   GETs a pod's HTTP port as the kubelet probes it (both through the
//!   node's host port);
//! - egress: a pod GETs a server "on the internet" (203.0.113.10, a host
//!   on the fabric beyond node1), which answers with the source address it
//!   saw: node1's, not the pod's.
//!
//! The Services are in the nodes' configurations before kxdp starts (no
//! Kubernetes agent). Everything is removed at the end, also on failure.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use kxdp_config::{Protocol, ServicePortSpec};

use kxdp_control::stats;
use kxdp_testbed::{
    self, format_table, http_get, http_rtt, http_server, ping, tcp_echo_server, tcp_rtt,
    udp_echo_server, udp_rtt, HttpReply, Netns, NodeKind, NodeSpec, PairResult, RttResult, Testbed,
    TopologySpec, Underlay,
};

/// How much traffic each pair gets.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Exchanges per pair and protocol.
    pub count: u64,
    /// Time between exchanges.
    pub interval: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            count: 200,
            interval: Duration::from_millis(5),
        }
    }
}

/// The cluster DNS Service's ClusterIP.
const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The name the demo resolves, and what it resolves to.
const WEB_NAME: &str = "web.default.svc.cluster.local";
/// The `web` Service's ClusterIP (port 80).
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// The port the `web` backends serve HTTP on (the Service's target port).
const WEB_TARGET_PORT: u16 = 8080;
/// The internet host on the fabric, and the server address it holds.
const INTERNET_HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 200);
const INTERNET_SERVER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const INTERNET_PORT: u16 = 8000;
/// Backends of the `web` Service, one per node.
const WEB_BACKENDS: [&str; 2] = ["web-1", "web-2"];

/// The demo topology: node1 (pods a, b, web-1) and node2 (pods c, d,
/// web-2, kube-dns), one tenant, both nodes with a host port, on a
/// switched underlay that also holds the internet host.
pub fn topology() -> TopologySpec {
    TopologySpec::new(Underlay::Switch, &[("blue", 100)])
        .with_node(
            NodeSpec::new("node1", NodeKind::Kxdp)
                .with_host_port()
                .with_pod("pod-a", "blue", kxdp_testbed::pod_ip(1, 2))
                .with_pod("pod-b", "blue", kxdp_testbed::pod_ip(1, 3))
                .with_pod("web-1", "blue", kxdp_testbed::pod_ip(1, 20)),
        )
        .with_node(
            NodeSpec::new("node2", NodeKind::Kxdp)
                .with_host_port()
                .with_pod("pod-c", "blue", kxdp_testbed::pod_ip(2, 2))
                .with_pod("pod-d", "blue", kxdp_testbed::pod_ip(2, 3))
                .with_pod("web-2", "blue", kxdp_testbed::pod_ip(2, 20))
                .with_pod("kube-dns", "blue", kxdp_testbed::pod_ip(2, 53)),
        )
}

/// Put the `kube-dns` (UDP and TCP 53 on the kube-dns pod) and `web`
/// (TCP 80 → 8080 on the web pods) Services into every node's
/// configuration.
fn add_services(bed: &mut Testbed) -> anyhow::Result<()> {
    let mut dns = bed.service_spec("kube-dns", DNS_IP, Protocol::Udp, 53, 53, &["kube-dns"])?;
    dns.ports[0].name = Some("dns".into());
    dns.ports.push(ServicePortSpec {
        name: Some("dns-tcp".into()),
        protocol: Protocol::Tcp,
        port: 53,
        target_port: Some(53),
        node_port: None,
    });
    bed.add_service(dns);
    let web = bed.service_spec(
        "web",
        WEB_IP,
        Protocol::Tcp,
        80,
        WEB_TARGET_PORT,
        &WEB_BACKENDS,
    )?;
    bed.add_service(web);
    Ok(())
}

/// Run the demo with the `kxdp` binary at `kxdp`; returns the table rows.
pub fn run(kxdp: &Path, options: DemoOptions) -> anyhow::Result<Vec<PairResult>> {
    if let Err(why) = kxdp_testbed::check_privileges() {
        anyhow::bail!("kxdp demo needs root (network namespaces, XDP, AF_XDP): {why}");
    }
    if kxdp_testbed::find_program("dnsmasq").is_none() {
        anyhow::bail!(
            "kxdp demo runs cluster DNS with dnsmasq: install it (Debian package dnsmasq-base)"
        );
    }
    eprintln!("building the testbed: 2 cluster nodes with host ports, 7 pods, a switched underlay, an internet host…");
    // Declared first, dropped last: every server and process below leaves
    // its namespace before the namespaces go.
    let mut bed = Testbed::build(topology()).context("building the testbed")?;
    add_services(&mut bed)?;
    bed.add_fabric_host("internet", INTERNET_HOST_IP, &[INTERNET_SERVER_IP])
        .context("adding the internet host")?;
    bed.route_via_fabric_host("node1", "203.0.113.0/24", "internet")
        .context("routing node1 to the internet host")?;
    eprintln!("starting kxdp on node1 and node2 (adaptive polling, host ports, Services)…");
    let mut procs = Vec::new();
    for node in ["node1", "node2"] {
        procs.push(
            bed.start_kxdp(node, kxdp, &[])
                .with_context(|| format!("starting kxdp on {node}"))?,
        );
    }

    let pairs = [
        ("pod-a", "pod-b"),
        ("pod-b", "pod-a"),
        ("pod-a", "pod-c"),
        ("pod-c", "pod-a"),
        ("pod-b", "pod-d"),
        ("pod-d", "pod-b"),
    ];
    let mut servers = Vec::new();
    for pod in ["pod-a", "pod-b", "pod-c", "pod-d"] {
        let p = bed.pod(pod)?;
        servers.push(udp_echo_server(&p.netns, 7000)?);
        servers.push(tcp_echo_server(&p.netns, 7001)?);
    }
    let mut web_servers = BTreeMap::new();
    for backend in WEB_BACKENDS {
        let p = bed.pod(backend)?;
        web_servers.insert(
            backend,
            http_server(
                &p.netns,
                WEB_TARGET_PORT,
                HttpReply::Identity(backend.to_string()),
            )?,
        );
    }
    let internet = http_server(
        &bed.fabric_host("internet")?.netns,
        INTERNET_PORT,
        HttpReply::ClientAddress,
    )?;
    let kube_dns = bed.pod("kube-dns")?;
    let mut dnsmasq = bed.spawn_process(
        &kube_dns.netns,
        "kube-dns.dnsmasq",
        "dnsmasq",
        &[
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            &format!("--address=/{WEB_NAME}/{WEB_IP}"),
            &format!("--listen-address={}", kube_dns.ip),
            "--bind-interfaces",
            "--port=53",
            "--log-facility=-",
            "--pid-file",
            "--user=root",
        ],
    )?;
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        dnsmasq
            .wait_listening(protocol, 53, Duration::from_secs(10))
            .context("waiting for dnsmasq in the kube-dns pod")?;
    }

    let mut rows = Vec::new();
    let timeout = Duration::from_millis(500);
    for (from, to) in pairs {
        let src = bed.pod(from)?;
        let dst = bed.pod(to)?;
        let path = bed.path_kind(from, to)?.label().to_string();
        let name = format!("{from} -> {to}");
        let ip = IpAddr::V4(dst.ip);
        eprintln!("  {name} ({path}): icmp, udp, tcp");
        let icmp = ping(
            &src.netns,
            ip,
            options.count as u32,
            options.interval.max(Duration::from_millis(2)),
        )?;
        rows.push(PairResult::new(&name, &path, "icmp", &icmp));
        let udp = udp_rtt(
            &src.netns,
            ip,
            7000,
            options.count,
            options.interval,
            timeout,
        )?;
        rows.push(PairResult::new(&name, &path, "udp", &udp));
        let tcp = tcp_rtt(
            &src.netns,
            ip,
            7001,
            options.count,
            options.interval,
            timeout,
        )?;
        rows.push(PairResult::new(&name, &path, "tcp", &tcp));
    }

    // The cluster rows: all from pod-a on node1 (or to it).
    let pod_a = bed.pod("pod-a")?;
    let node1 = bed.node("node1")?;
    let http_timeout = Duration::from_secs(1);

    let name = format!("pod-a -> kube-dns {DNS_IP}");
    eprintln!("  {name}: {WEB_NAME} A, over UDP");
    let dns = dns_rtt(
        &pod_a.netns,
        SocketAddr::from((DNS_IP, 53)),
        WEB_NAME,
        WEB_IP,
        options.count,
        options.interval,
        http_timeout,
    )?;
    rows.push(PairResult::new(&name, "service", "dns/udp", &dns));

    let web_addr = SocketAddr::from((WEB_IP, 80));
    let name = format!("pod-a -> web {WEB_IP}:80");
    eprintln!("  {name}: HTTP GET");
    let web = http_rtt(
        &pod_a.netns,
        web_addr,
        options.count,
        options.interval,
        http_timeout,
    )?;
    rows.push(PairResult::new(&name, "service", "http", &web));
    let served: Vec<String> = web_servers
        .iter()
        .map(|(backend, server)| format!("{backend} {}", server.served()))
        .collect();

    let name = format!("pod-a -> node1 {}", node1.vtep_ip);
    eprintln!("  {name}: icmp");
    let to_node = ping(
        &pod_a.netns,
        IpAddr::V4(node1.vtep_ip),
        options.count as u32,
        options.interval.max(Duration::from_millis(2)),
    )?;
    rows.push(PairResult::new(&name, "pod-to-node", "icmp", &to_node));

    let web_1 = bed.pod("web-1")?;
    let name = format!("node1 -> web-1:{WEB_TARGET_PORT}");
    eprintln!("  {name}: HTTP GET (a kubelet probe)");
    let probe = http_rtt(
        &node1.netns,
        SocketAddr::from((web_1.ip, WEB_TARGET_PORT)),
        options.count,
        options.interval,
        http_timeout,
    )?;
    rows.push(PairResult::new(&name, "node-to-pod", "http", &probe));

    let internet_addr = SocketAddr::from((INTERNET_SERVER_IP, INTERNET_PORT));
    let name = format!("pod-a -> internet {INTERNET_SERVER_IP}");
    eprintln!("  {name}: HTTP GET");
    let egress = http_rtt(
        &pod_a.netns,
        internet_addr,
        options.count,
        options.interval,
        http_timeout,
    )?;
    rows.push(PairResult::new(&name, "egress", "http", &egress));
    let seen_as = http_get(&pod_a.netns, internet_addr, http_timeout)
        .map(|r| r.body.trim().to_string())
        .unwrap_or_else(|e| format!("no answer ({e})"));
    let internet_clients = internet.clients();

    drop(dnsmasq);
    drop(internet);
    drop(web_servers);
    drop(servers);

    println!();
    println!(
        "a two-node cluster through kxdp (AF_XDP, adaptive polling, host ports; RTT in microseconds)"
    );
    print!("{}", format_table(&rows));
    println!();
    println!("dns:     {WEB_NAME} -> {WEB_IP}, answered by dnsmasq in kube-dns on node2 through {DNS_IP}");
    println!("web:     requests served by {}", served.join(", "));
    let whose = if seen_as == node1.vtep_ip.to_string() {
        "node1's address"
    } else {
        "NOT node1's address"
    };
    println!(
        "egress:  the internet server {INTERNET_SERVER_IP} saw pod-a ({}) come from {seen_as}, {whose}; all clients it saw: {}",
        pod_a.ip,
        internet_clients
            .iter()
            .map(|(ip, n)| format!("{ip} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    for p in &procs {
        let socket = kxdp_config::NodeConfig::from_file(p.config_path())
            .map(|c| kxdp_control::api::api_socket_path(&c))
            .unwrap_or_else(|_| PathBuf::from(format!("/run/kxdp/{}.api.sock", p.node())));
        match stats::fetch(&socket) {
            Ok(s) => {
                println!("kxdp stats, {}:", p.node());
                print!("{}", stats::print(&s));
                println!();
            }
            Err(e) => eprintln!("could not read {}'s stats: {e}", p.node()),
        }
    }
    eprintln!("removing the testbed…");
    drop(procs);
    drop(bed);
    Ok(rows)
}

/// `count` DNS queries for `name`'s A record from `from` to `server`
/// over UDP, one every `interval`, each timed from its send to the reply
/// that answers it with `expect`; a query without such a reply within
/// `timeout` counts as lost.
fn dns_rtt(
    from: &Netns,
    server: SocketAddr,
    name: &str,
    expect: Ipv4Addr,
    count: u64,
    interval: Duration,
    timeout: Duration,
) -> anyhow::Result<RttResult> {
    let socket = from
        .run_in(move || -> std::io::Result<UdpSocket> {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            socket.connect(server)?;
            Ok(socket)
        })?
        .with_context(|| format!("a UDP socket to {server} in {}", from.name()))?;
    let mut result = RttResult::new()?;
    let mut reply = [0u8; 512];
    let start = Instant::now();
    for seq in 0..count {
        // The query id tells this query's reply from late ones.
        let query = dns_query(seq as u16, name);
        result.sent += 1;
        let sent_at = Instant::now();
        let deadline = sent_at + timeout;
        match socket.send(&query) {
            Ok(_) => {
                while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                    socket.set_read_timeout(Some(left.max(Duration::from_micros(1))))?;
                    match socket.recv(&mut reply) {
                        Ok(n) => {
                            if dns_answers(&query, &reply[..n]).is_some_and(|a| a.contains(&expect))
                            {
                                result.record(sent_at.elapsed());
                                break;
                            }
                        }
                        // A timeout, or ICMP port unreachable: lost.
                        Err(_) => break,
                    }
                }
            }
            // An ICMP error for an earlier query, reported now: lost.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e).with_context(|| format!("DNS query to {server}")),
        }
        let next = start + interval.saturating_mul(u32::try_from(seq + 1).unwrap_or(u32::MAX));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(result.finish())
}

/// A standard query with id `id` for the A record of `name`, recursion
/// desired (RFC 1035 §4.1).
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut query = Vec::with_capacity(18 + name.len());
    query.extend_from_slice(&id.to_be_bytes());
    // Flags RD; one question, no answer, authority or additional records.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // Labels are at most 63 bytes: the names here are constants.
        query.push(label.len().min(63) as u8);
        query.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    query.push(0);
    // QTYPE A, QCLASS IN.
    query.extend_from_slice(&[0, 1, 0, 1]);
    query
}

/// The IPv4 addresses of the A records in `reply`, if it is a successful
/// reply to `query` (same id and question, rcode 0); `None` otherwise.
fn dns_answers(query: &[u8], reply: &[u8]) -> Option<Vec<Ipv4Addr>> {
    const HEADER: usize = 12;
    let is_reply = reply.len() >= query.len()
        && reply[..2] == query[..2]
        && reply[2] & 0x80 != 0
        && reply[3] & 0x0f == 0
        && reply[HEADER..query.len()] == query[HEADER..];
    if !is_reply {
        return None;
    }
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    let mut at = query.len();
    let mut found = Vec::new();
    for _ in 0..answers {
        at = skip_dns_name(reply, at)?;
        let fixed = reply.get(at..at + 10)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = reply.get(at + 10..at + 10 + len)?;
        if let (1, [a, b, c, d]) = (record_type, data) {
            found.push(Ipv4Addr::new(*a, *b, *c, *d));
        }
        at += 10 + len;
    }
    Some(found)
}

/// The offset after the (possibly compressed) name at `at` in `message`.
fn skip_dns_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            // A pointer ends the name.
            return (at + 2 <= message.len()).then_some(at + 2);
        }
        at += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builds_a_query_and_reads_its_answer() {
        let query = dns_query(0x1234, "web.default.svc.cluster.local");
        assert_eq!(&query[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&query[12..16], b"\x03web");
        assert_eq!(query.len(), 12 + 31 + 4);
        // A reply: the header with QR set and one answer, the question,
        // then an A record whose name points at the question's.
        let mut reply = query.clone();
        reply[2] = 0x81;
        reply[3] = 0x80;
        reply[7] = 1;
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 96, 0, 20]);
        assert_eq!(
            dns_answers(&query, &reply),
            Some(vec![Ipv4Addr::new(10, 96, 0, 20)])
        );
        // Another id, an error code, a truncated record: not an answer.
        let other = dns_query(0x1235, "web.default.svc.cluster.local");
        assert_eq!(dns_answers(&other, &reply), None);
        let mut refused = reply.clone();
        refused[3] = 0x85;
        assert_eq!(dns_answers(&query, &refused), None);
        assert_eq!(dns_answers(&query, &reply[..reply.len() - 2]), None);
    }
}
