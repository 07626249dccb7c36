//! The OpenMetrics endpoint of a running kxdp (`kxdp run --metrics ADDR`),
//! scraped over HTTP from inside the node's namespace while traffic flows:
//! the rx/tx counters move between two scrapes, a drop reason's counter
//! moves by exactly the frames dropped for it (pings to an address no route
//! covers: `no_route`), and agrees with `kxdp stats`; `/healthz` and
//! `/readyz` answer 200.
//!
//! Run: `CI=true cargo test -p kxdp-tests --test metrics -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use kxdp_testbed::{
    ping, pod_ip, privileged_test, udp_echo_server, udp_rtt, Netns, NodeKind, NodeSpec,
    TopologySpec, Underlay,
};
use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, Cluster};

const METRICS: &str = "127.0.0.1:9464";
const UDP_PORT: u16 = 7100;
const DROPPED: u32 = 10;

/// A GET over HTTP/1.1 from a thread inside `netns`: (status, head, body).
fn http_get(netns: &Netns, path: &str) -> (u16, String, String) {
    let shown = path.to_string();
    let path = path.to_string();
    netns
        .run_in(move || -> std::io::Result<(u16, String, String)> {
            let mut stream = TcpStream::connect(METRICS)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {METRICS}\r\nConnection: close\r\n\r\n"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response
                .split_once("\r\n\r\n")
                .unwrap_or((response.as_str(), ""));
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Ok((status, head.to_string(), body.to_string()))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("GET http://{METRICS}{shown}: {e}"))
}

/// Samples of an OpenMetrics text body, by series (`name{labels}`), after
/// checking that it ends with `# EOF`.
fn samples(body: &str) -> BTreeMap<String, f64> {
    assert!(body.ends_with("# EOF\n"), "no # EOF at the end:\n{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples named `name` whose labels include `label`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, label: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && (label.is_empty() || series.contains(label))
        })
        .map(|(_, v)| *v)
        .sum()
}

fn scrape(netns: &Netns) -> BTreeMap<String, f64> {
    let (status, head, body) = http_get(netns, "/metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    samples(&body)
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn scraped_metrics_move_with_traffic_and_drops() {
    privileged_test("scraped_metrics_move_with_traffic_and_drops");
    let spec = TopologySpec::new(Underlay::Switch, &[("blue", 100)]).with_node(
        NodeSpec::new("kc1", NodeKind::Kxdp)
            .with_pod("kca", "blue", pod_ip(1, 10))
            .with_pod("kcb", "blue", pod_ip(1, 11)),
    );
    let c = Cluster::build("metrics", spec, kxdp_binary!());
    // kxdp with the endpoint on the node namespace's loopback; stopped
    // (dropped) before the testbed.
    let mut kxdp = c
        .tb()
        .start_kxdp("kc1", kxdp_binary!(), &["--metrics", METRICS])
        .unwrap_or_else(|e| panic!("starting kxdp: {e}"));
    c.wait_forwarding("kc1");
    let node = c.node("kc1").netns.clone();
    let a = c.pod("kca").clone();
    let b = c.pod("kcb").clone();

    let (status, _, body) = http_get(&node, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http_get(&node, "/readyz");
    assert_eq!(status, 200, "/readyz: {body}");

    // Traffic flows in the background for about a second and a half;
    // two scrapes half a second apart while it does.
    let _echo = udp_echo_server(&b.netns, UDP_PORT).unwrap();
    let to = ip_of(&b);
    let from = a.netns.clone();
    let traffic = std::thread::spawn(move || {
        udp_rtt(
            &from,
            to,
            UDP_PORT,
            300,
            Duration::from_millis(5),
            Duration::from_secs(1),
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    let first = scrape(&node);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let second = scrape(&node);
    let apart = started.elapsed();
    let result = traffic.join().unwrap().unwrap();
    assert_no_loss(&result, "kca -> kcb udp");
    let rx = |s: &BTreeMap<String, f64>| sum(s, "kxdp_worker_rx_packets_total", "");
    let tx = |s: &BTreeMap<String, f64>| sum(s, "kxdp_worker_tx_packets_total", "");
    let rx_moved = rx(&second) - rx(&first);
    let tx_moved = tx(&second) - tx(&first);
    eprintln!(
        "between two scrapes {apart:?} apart: rx +{rx_moved}, tx +{tx_moved} ({} exchanges in all)",
        result.sent
    );
    // 5 ms apart, both directions: about 200 frames in 500 ms.
    assert!(rx_moved >= 50.0, "rx moved by {rx_moved} only");
    assert!(tx_moved >= 50.0, "tx moved by {tx_moved} only");

    // Deliberately dropped: pings to an address no route covers.
    let before = scrape(&node);
    let stats_before = c.totals("kc1");
    let unrouted = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
    let lost = ping(&a.netns, unrouted, DROPPED, Duration::from_millis(20)).unwrap();
    assert_eq!(lost.received, 0, "pings to {unrouted} got replies");
    // The worker publishes its counters at least every ~100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let after = scrape(&node);
    let stats = c.totals("kc1").since(&stats_before);
    let no_route =
        |s: &BTreeMap<String, f64>| sum(s, "kxdp_worker_drops_total", "reason=\"no_route\"");
    let dropped = no_route(&after) - no_route(&before);
    eprintln!(
        "no_route: +{dropped} in the metrics, +{} in kxdp stats",
        stats.dropped("no_route")
    );
    // kxdp answers each with ICMP net unreachable from the gateway (a
    // router's answer), which may end ping early: every echo request it
    // sent is one drop, and one error sent back.
    assert!(lost.sent >= 1, "{lost:?}");
    assert_eq!(
        stats.icmp_unreachable, lost.sent,
        "net unreachable sent for each echo request"
    );
    assert_eq!(dropped, lost.sent as f64, "no_route drops in the metrics");
    assert_eq!(
        dropped as u64,
        stats.dropped("no_route"),
        "metrics and kxdp stats disagree"
    );
    assert_eq!(
        sum(
            &after,
            "kxdp_worker_drops_total",
            "reason=\"source_spoofed\""
        ),
        0.0
    );

    // Gauges and table sizes are there too.
    assert_eq!(sum(&after, "kxdp_ready", ""), 1.0);
    assert!(sum(&after, "kxdp_tables_generation", "") >= 1.0);
    assert_eq!(sum(&after, "kxdp_desired_objects", "kind=\"pods\""), 2.0);
    assert!(sum(&after, "kxdp_worker_umem_frames", "state=\"all\"") > 0.0);
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("kxdp_socket_kernel_drops_total{")),
        "no XDP_STATISTICS series"
    );

    kxdp.terminate().unwrap();
    drop(kxdp);
    c.finish();
}
