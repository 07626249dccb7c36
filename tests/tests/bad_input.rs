//! Bad input tried on purpose: frames crafted with scapy
//! (`tests/scapy/craft.py`) from inside a pod, and VXLAN crafted on the
//! underlay side of the peer node. Each kind is dropped under its reason
//! (the exact count where the outcome is deterministic) or handled as the
//! README's "Bad input" table says, while good traffic beside it (a UDP
//! request/response stream between two other pods, across the nodes) keeps
//! flowing without loss.
//!
//! Needs Debian's `python3-scapy` (`scripts/setup`).
//!
//! Run: `CI=true cargo test -p kxdp-tests --test bad_input -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use kxdp_control::testbed::{
    pod_ip, privileged_test, udp_echo_server, udp_rtt, EchoServer, Netns, NodeKind, NodeSpec,
    RttResult, TopologySpec, Underlay, UNDERLAY_IF,
};
use kxdp_tests::{assert_no_loss, ip_of, kxdp_binary, Cluster, Totals};
use serde_json::{json, Value};

/// Times each crafted frame is sent.
const REPEAT: u64 = 50;
/// The interpreter with Debian's python3-scapy.
const PYTHON: &str = "/usr/bin/python3";
/// Port of the good traffic's echo server.
const GOOD_PORT: u16 = 7100;

/// Two kxdp nodes; tenants blue (VNI 100) and red (VNI 200). `a1` sends the
/// bad frames (to `a2` and `b1`); `r1` → `r2` is the good traffic beside them.
fn topology() -> TopologySpec {
    TopologySpec::new(Underlay::Direct, &[("blue", 100), ("red", 200)])
        .with_node(
            NodeSpec::new("n1", NodeKind::Kxdp)
                .with_pod("a1", "blue", pod_ip(1, 10))
                .with_pod("a2", "blue", pod_ip(1, 11))
                .with_pod("r1", "red", pod_ip(1, 20)),
        )
        .with_node(
            NodeSpec::new("n2", NodeKind::Kxdp)
                .with_pod("b1", "blue", pod_ip(2, 10))
                .with_pod("r2", "red", pod_ip(2, 20)),
        )
}

fn craft_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scapy/craft.py")
}

/// Run craft.py with `params` in `netns`; the number of frames it sent.
fn craft(netns: &Netns, params: &Value) -> u64 {
    let script = craft_script();
    let arg = params.to_string();
    let out = netns
        .exec(PYTHON, &[script.to_str().unwrap(), &arg])
        .unwrap_or_else(|e| {
            panic!("craft.py {arg}: {e} (is python3-scapy installed? scripts/setup)")
        });
    let reply: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out}: {e}"));
    reply["frames"].as_u64().unwrap()
}

/// `a1`'s addresses, as a pod sends them: to its gateway's MAC.
fn from_a1(c: &Cluster, case: &str) -> Value {
    let a1 = c.pod("a1");
    json!({
        "case": case,
        "count": REPEAT,
        "src_mac": a1.mac.to_string(),
        "dst_mac": a1.host_mac.to_string(),
        "src_ip": a1.ip.to_string(),
        "dst_ip": c.pod("a2").ip.to_string(),
    })
}

/// VXLAN from n2's underlay to n1's VTEP around an echo request from `b1`
/// to `to`.
fn vxlan_to_n1(c: &Cluster, case: &str, vni: u32, to: &str) -> Value {
    let n1 = c.node("n1");
    let n2 = c.node("n2");
    let b1 = c.pod("b1");
    let dst = c.pod(to);
    json!({
        "case": case,
        "iface": UNDERLAY_IF,
        "count": REPEAT,
        "src_mac": n2.underlay_mac.to_string(),
        "dst_mac": n1.underlay_mac.to_string(),
        "src_ip": n2.vtep_ip.to_string(),
        "dst_ip": n1.vtep_ip.to_string(),
        "inner_src_mac": n2.vtep_mac.to_string(),
        "inner_dst_mac": n1.vtep_mac.to_string(),
        "inner_src_ip": b1.ip.to_string(),
        "inner_dst_ip": dst.ip.to_string(),
        "vni": vni,
    })
}

/// Good traffic beside the bad: UDP request/response from `r1` to `r2`
/// (tenant red, across the nodes, through both kxdps and the same worker as
/// the bad frames) for `duration`.
struct Beside {
    _server: EchoServer,
    thread: Option<JoinHandle<RttResult>>,
}

impl Beside {
    fn start(c: &Cluster, duration: Duration) -> Beside {
        let r2 = c.pod("r2");
        let server = udp_echo_server(&r2.netns, GOOD_PORT).unwrap();
        let from = c.pod("r1").netns.clone();
        let to = ip_of(r2);
        let interval = Duration::from_millis(2);
        let count = (duration.as_millis() / interval.as_millis()).max(1) as u64;
        let thread = std::thread::spawn(move || {
            udp_rtt(
                &from,
                to,
                GOOD_PORT,
                count,
                interval,
                Duration::from_secs(1),
            )
            .unwrap()
        });
        Beside {
            _server: server,
            thread: Some(thread),
        }
    }

    fn finish(mut self, what: &str) -> RttResult {
        let result = self.thread.take().unwrap().join().unwrap();
        eprintln!(
            "{what}: good traffic r1 -> r2: {} sent, {} lost, p99 {:?}",
            result.sent,
            result.lost,
            result.p99()
        );
        result
    }
}

/// Drops that moved between `before` and `after` (by reason).
fn moved(before: &Totals, after: &Totals) -> BTreeMap<String, u64> {
    after.since(before).drops
}

fn wait_quiet() {
    // Frames sent are through the worker well within this.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn malformed_spoofed_and_arp_frames_from_a_pod_are_dropped_by_reason() {
    if !privileged_test("malformed_spoofed_and_arp_frames_from_a_pod_are_dropped_by_reason") {
        return;
    }
    let c = Cluster::start("kf-bad-pod", topology(), kxdp_binary!());
    let a1 = c.pod("a1");
    let a2 = c.pod("a2");
    let spoof_ip = {
        let mut p = from_a1(&c, "echo");
        p["src_ip"] = json!(a2.ip.to_string());
        p
    };
    let spoof_mac = {
        let mut p = from_a1(&c, "echo");
        p["src_mac"] = json!(a2.mac.to_string());
        p
    };
    let arp_other = {
        let mut p = from_a1(&c, "arp");
        p["target_ip"] = json!(a2.ip.to_string());
        p
    };
    let arp_remote = {
        let mut p = from_a1(&c, "arp");
        p["target_ip"] = json!(c.pod("b1").ip.to_string());
        p
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "IPv4 header cut at 12 bytes",
            from_a1(&c, "ipv4_truncated"),
            "malformed_ipv4",
        ),
        (
            "IPv4 total length past the frame",
            from_a1(&c, "ipv4_bad_length"),
            "ipv4_bad_length",
        ),
        (
            "IPv4 header checksum wrong",
            from_a1(&c, "ipv4_bad_checksum"),
            "ipv4_bad_checksum",
        ),
        (
            "IHL 15 over a total length of 40",
            from_a1(&c, "ihl_past_total_length"),
            "ipv4_bad_length",
        ),
        (
            "UDP header cut at 4 bytes",
            from_a1(&c, "udp_truncated"),
            "malformed_l4",
        ),
        (
            "UDP length 4",
            from_a1(&c, "udp_length_short"),
            "malformed_l4",
        ),
        (
            "TCP data offset past the segment",
            from_a1(&c, "tcp_offset_past_payload"),
            "malformed_l4",
        ),
        (
            "first fragment without its UDP header",
            from_a1(&c, "tiny_fragment"),
            "malformed_l4",
        ),
        ("source IP of another pod", spoof_ip, "source_spoofed"),
        ("source MAC of another pod", spoof_mac, "source_spoofed"),
        ("ARP for another pod", arp_other, "arp_not_for_gateway"),
        ("ARP for a remote pod", arp_remote, "arp_not_for_gateway"),
    ];
    let beside = Beside::start(&c, Duration::from_secs(2 + cases.len() as u64));
    let mut report = Vec::new();
    for (what, params, reason) in &cases {
        let before = c.totals("n1");
        let sent = craft(&a1.netns, params);
        assert_eq!(sent, REPEAT, "{what}");
        wait_quiet();
        let after = c.totals("n1");
        let drops = moved(&before, &after);
        report.push(format!("{what}: {drops:?}"));
        let expected = BTreeMap::from([(reason.to_string(), REPEAT)]);
        assert_eq!(
            drops,
            expected,
            "{what}: expected exactly {REPEAT} {reason} drops\n{}",
            c.logs()
        );
    }
    // ARP for the gateway is answered, one reply per request.
    let mut arp_gateway = from_a1(&c, "arp");
    arp_gateway["target_ip"] = json!(a1.gateway.to_string());
    let before = c.totals("n1");
    craft(&a1.netns, &arp_gateway);
    wait_quiet();
    let after = c.totals("n1").since(&before);
    assert!(after.drops.is_empty(), "ARP for the gateway: {after:?}");
    assert!(
        after.neighbour_replies >= REPEAT,
        "ARP for the gateway answered {} times of {REPEAT}",
        after.neighbour_replies
    );
    report.push(format!(
        "ARP for the gateway: {} replies",
        after.neighbour_replies
    ));

    let good = beside.finish("malformed");
    assert_no_loss(&good, "good traffic beside malformed frames");
    for line in report {
        eprintln!("  {line}");
    }
    c.finish();
}

/// Frames `eth0` of `netns` has received (its kernel counter).
fn rx_packets(netns: &Netns) -> u64 {
    let out = netns
        .exec("cat", &["/sys/class/net/eth0/statistics/rx_packets"])
        .unwrap();
    out.trim().parse().unwrap()
}

/// Frames a pod received between two readings, beyond `expected`: at most
/// the odd ARP reply of the pod's own neighbour refresh.
const STRAY_FRAMES: u64 = 2;

#[test]
fn ip_options_and_fragments_are_forwarded_unchanged() {
    if !privileged_test("ip_options_and_fragments_are_forwarded_unchanged") {
        return;
    }
    let c = Cluster::start("kf-bad-frag", topology(), kxdp_binary!());
    let a1 = c.pod("a1");
    let beside = Beside::start(&c, Duration::from_secs(8));
    let before1 = c.totals("n1");
    let before2 = c.totals("n2");
    // (what, case, destination pod, frames per request, answer frames per
    // request: a 3000-byte echo reply leaves a 1450-MTU pod in 3 fragments;
    // overlapping fragments are discarded by the destination's kernel).
    let cases = [
        (
            "IP options (record route), same node",
            "ip_options",
            "a2",
            1,
            1,
        ),
        (
            "IP options (record route), across nodes",
            "ip_options",
            "b1",
            1,
            1,
        ),
        (
            "a 3000-byte echo in 4 fragments, same node",
            "fragments",
            "a2",
            4,
            3,
        ),
        (
            "a 3000-byte echo in 4 fragments, across nodes",
            "fragments",
            "b1",
            4,
            3,
        ),
        (
            "two overlapping fragments, same node",
            "overlapping_fragments",
            "a2",
            2,
            0,
        ),
        (
            "two overlapping fragments, across nodes",
            "overlapping_fragments",
            "b1",
            2,
            0,
        ),
    ];
    for (what, case, to, per_request, answer_frames) in cases {
        let dst = c.pod(to);
        let mut params = from_a1(&c, case);
        params["dst_ip"] = json!(dst.ip.to_string());
        let (dst_before, src_before) = (rx_packets(&dst.netns), rx_packets(&a1.netns));
        let sent = craft(&a1.netns, &params);
        assert_eq!(sent, REPEAT * per_request, "{what}");
        wait_quiet();
        let delivered = rx_packets(&dst.netns) - dst_before;
        let answers = rx_packets(&a1.netns) - src_before;
        eprintln!(
            "{what}: {sent} frames sent, {delivered} delivered, {answers} answer frames back"
        );
        assert!(
            (sent..=sent + STRAY_FRAMES).contains(&delivered),
            "{what}: {delivered} frames delivered of {sent}\n{}",
            c.logs()
        );
        let expected = REPEAT * answer_frames;
        assert!(
            (expected..=expected + STRAY_FRAMES).contains(&answers),
            "{what}: {answers} answer frames, expected {expected}\n{}",
            c.logs()
        );
    }
    let good = beside.finish("options and fragments");
    assert_no_loss(&good, "good traffic beside IP options and fragments");
    let t1 = c.totals("n1").since(&before1);
    let t2 = c.totals("n2").since(&before2);
    assert!(t1.drops.is_empty(), "n1 dropped {:?}", t1.drops);
    assert!(t2.drops.is_empty(), "n2 dropped {:?}", t2.drops);
    c.finish();
}

#[test]
fn vxlan_from_the_underlay_is_checked_and_delivered_once() {
    if !privileged_test("vxlan_from_the_underlay_is_checked_and_delivered_once") {
        return;
    }
    let c = Cluster::start("kf-bad-vxlan", topology(), kxdp_binary!());
    let n2 = c.node("n2").netns.clone();
    let a1 = c.pod("a1");
    let beside = Beside::start(&c, Duration::from_secs(6));

    // Dropped, by reason.
    let mut no_i_flag = vxlan_to_n1(&c, "vxlan", 100, "a1");
    no_i_flag["flags"] = json!(0x00);
    let mut stranger = vxlan_to_n1(&c, "vxlan", 100, "a1");
    stranger["src_ip"] = json!("192.168.100.99");
    let dropped: Vec<(&str, Value, &str)> = vec![
        ("VXLAN with the I flag clear", no_i_flag, "vxlan_bad_flags"),
        (
            "VNI of no tenant (999)",
            vxlan_to_n1(&c, "vxlan", 999, "a1"),
            "unknown_vni",
        ),
        (
            "VNI of another tenant (red 200) to a blue pod's address",
            vxlan_to_n1(&c, "vxlan", 200, "a1"),
            "vxlan_no_local_pod",
        ),
        ("outer source not a VTEP", stranger, "vxlan_unknown_source"),
    ];
    for (what, params, reason) in &dropped {
        let before = c.totals("n1");
        let a1_before = rx_packets(&a1.netns);
        let sent = craft(&n2, params);
        assert_eq!(sent, REPEAT, "{what}");
        wait_quiet();
        let seen = rx_packets(&a1.netns) - a1_before;
        let drops = moved(&before, &c.totals("n1"));
        eprintln!("{what}: {drops:?}, a1 received {seen} frames");
        assert_eq!(
            drops,
            BTreeMap::from([(reason.to_string(), REPEAT)]),
            "{what}\n{}",
            c.logs()
        );
        assert!(seen <= STRAY_FRAMES, "{what}: {seen} frames reached a1");
    }

    // Handled: reserved bits are ignored (RFC 7348 §5: set to zero on
    // transmit, ignored on receipt), and nested VXLAN is decapsulated once:
    // the pod gets the inner VXLAN as a plain UDP datagram to port 4789.
    let mut reserved = vxlan_to_n1(&c, "vxlan", 100, "a1");
    reserved["flags"] = json!(0x08 | 0x80 | 0x01);
    reserved["reserved1"] = json!(0xab_cdef);
    reserved["reserved2"] = json!(0x5a);
    let handled: Vec<(&str, Value)> = vec![
        ("VXLAN with reserved bits set", reserved),
        ("VXLAN in VXLAN", vxlan_to_n1(&c, "nested_vxlan", 100, "a1")),
    ];
    for (what, params) in &handled {
        let before = c.totals("n1");
        let a1_before = rx_packets(&a1.netns);
        let sent = craft(&n2, params);
        wait_quiet();
        let seen = rx_packets(&a1.netns) - a1_before;
        let t = c.totals("n1").since(&before);
        eprintln!(
            "{what}: decapsulated {}, drops {:?}, a1 received {seen}",
            t.decapsulated, t.drops
        );
        assert!(
            (sent..=sent + STRAY_FRAMES).contains(&seen),
            "{what}: a1 received {seen} frames for {sent}\n{}",
            c.logs()
        );
        assert!(t.drops.is_empty(), "{what}: {:?}", t.drops);
        assert!(t.decapsulated >= sent, "{what}: {t:?}");
    }
    let good = beside.finish("vxlan");
    assert_no_loss(&good, "good traffic beside bad VXLAN");
    c.finish();
}

#[test]
fn a_broadcast_storm_is_dropped_and_other_pods_keep_talking() {
    if !privileged_test("a_broadcast_storm_is_dropped_and_other_pods_keep_talking") {
        return;
    }
    const STORM: u64 = 50_000;
    let c = Cluster::start("kf-bad-storm", topology(), kxdp_binary!());
    let a1 = c.pod("a1");
    let beside = Beside::start(&c, Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(300));
    let before = c.totals("n1");
    let kernel_before = kernel_drops(&c, &a1.host_interface);
    let mut storm = from_a1(&c, "broadcast");
    storm["count"] = json!(STORM);
    let started = std::time::Instant::now();
    let sent = craft(&a1.netns, &storm);
    let took = started.elapsed();
    wait_quiet();
    let after = c.totals("n1").since(&before);
    let kernel = kernel_drops(&c, &a1.host_interface) - kernel_before;
    let good = beside.finish("broadcast storm");
    let dropped = after.dropped("l2_multicast");
    eprintln!(
        "broadcast storm: {sent} frames in {took:?} ({:.0}/s), l2_multicast {dropped}, kernel drops on {} {kernel}, all drops {:?}",
        sent as f64 / took.as_secs_f64(),
        a1.host_interface,
        after.drops
    );
    assert_eq!(sent, STORM);
    // Every broadcast is either counted by kxdp or by the kernel's
    // AF_XDP socket (no fill entry while the worker is behind).
    assert_eq!(
        dropped + kernel,
        sent,
        "l2_multicast {dropped} + kernel {kernel} != {sent}\n{}",
        c.logs()
    );
    // The kernel's share shows among kxdp's own drop reasons too (read
    // from the sockets' XDP_STATISTICS), so an operator sees it there.
    let socket = after.dropped("fill_ring_empty")
        + after.dropped("rx_ring_full")
        + after.dropped("socket_rx_dropped");
    assert_eq!(
        socket, kernel,
        "socket drops among the reasons: {:?}",
        after.drops
    );
    assert_eq!(after.all_drops(), dropped + kernel, "{:?}", after.drops);
    assert!(
        good.lost * 100 <= good.sent,
        "good traffic lost {} of {} during the storm",
        good.lost,
        good.sent
    );
    // And after the storm, nothing is lost.
    let again = Beside::start(&c, Duration::from_secs(1)).finish("after the storm");
    assert_no_loss(&again, "good traffic after the storm");
    c.finish();
}

/// The kernel's drops on kxdp's AF_XDP sockets of `interface` on n1.
fn kernel_drops(c: &Cluster, interface: &str) -> u64 {
    c.stats("n1")
        .ports
        .iter()
        .filter(|p| p.interface == interface)
        .filter_map(|p| p.kernel)
        .map(|k| k.total())
        .sum()
}
