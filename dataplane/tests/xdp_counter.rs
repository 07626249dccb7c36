//! Privileged tests of the counting sink ([`XdpCounter`]) on a real veth
//! pair between two fresh network namespaces (removed on drop, also when
//! the test fails).
//!
//! They need root (CAP_NET_ADMIN, CAP_BPF) and `ip`. With CI=true they run
//! and fail loudly if they cannot; elsewhere they skip with a printed reason
//! when not root.
//!
//! Run: `cargo test -p kxdp-dataplane --test xdp_counter -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kxdp_dataplane::bpf::{AttachedMode, XdpAction, XdpAttachMode, XdpCount, XdpCounter};
use kxdp_harness::{privileged_test, NetnsGuard};

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair `cnta` (10.99.0.1, in the first)
/// and `cntb` (10.99.0.2, in the second); deleted on drop.
struct Pair {
    /// The namespaces, deleted on drop (which destroys the veth too).
    _guards: [NetnsGuard; 2],
    names: [String; 2],
}

static SEQ: AtomicU32 = AtomicU32::new(0);
const MAC_B: &str = "02:00:00:99:00:02";

impl Pair {
    fn new() -> Pair {
        let base = format!(
            "kxdp-cnt{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let names = [format!("{base}-a"), format!("{base}-b")];
        let guards = names
            .clone()
            .map(|n| NetnsGuard::create(&n).expect("a network namespace"));
        let pair = Pair {
            _guards: guards,
            names,
        };
        for ns in &pair.names {
            // No IPv6: its router solicitations and MLD reports would be counted.
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .args([
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ])
                .output()
                .expect("run sysctl");
            assert!(out.status.success(), "sysctl in {ns}: {out:?}");
        }
        let [a, b] = &pair.names;
        ip(&[
            "link", "add", "cnta", "netns", a, "type", "veth", "peer", "name", "cntb", "netns", b,
            "address", MAC_B,
        ]);
        ip(&["-n", a, "addr", "add", "10.99.0.1/24", "dev", "cnta"]);
        ip(&["-n", b, "addr", "add", "10.99.0.2/24", "dev", "cntb"]);
        ip(&["-n", a, "link", "set", "cnta", "up"]);
        ip(&["-n", b, "link", "set", "cntb", "up"]);
        // The sink drops ARP too: resolve the peer statically.
        ip(&[
            "-n",
            a,
            "neigh",
            "replace",
            "10.99.0.2",
            "lladdr",
            MAC_B,
            "dev",
            "cnta",
            "nud",
            "permanent",
        ]);
        pair
    }
}

fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            enter_netns(ns);
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn enter_netns(ns: &str) {
    kxdp_harness::enter_netns(ns).expect("enter the test's network namespace");
}

fn socket(ns: &str, addr: Ipv4Addr, port: u16) -> UdpSocket {
    in_netns(ns, || {
        let s = UdpSocket::bind(SocketAddrV4::new(addr, port)).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        s
    })
}

/// Send `n` datagrams of `payload` bytes from cnta to 10.99.0.2:9.
fn send(sender: &UdpSocket, n: usize, payload: usize) {
    let data = vec![0x5a; payload];
    for _ in 0..n {
        sender
            .send_to(&data, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 9))
            .expect("send");
    }
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn counts_and_drops_every_frame_then_detaches() {
    privileged_test("counts_and_drops_every_frame_then_detaches");
    let pair = Pair::new();
    let [a, b] = &pair.names;
    let sender = socket(a, Ipv4Addr::new(10, 99, 0, 1), 0);
    let receiver = socket(b, Ipv4Addr::new(10, 99, 0, 2), 9);

    let counter = in_netns(b, || XdpCounter::attach("cntb", XdpAttachMode::Native))
        .expect("attach the counter in native mode");
    assert_eq!(counter.mode(), AttachedMode::Native);
    assert_eq!(counter.ifname(), "cntb");
    assert!(counter.program_id() > 0);
    assert_eq!(counter.read().unwrap(), XdpCount::default());

    // 18-byte payload: 14 + 20 + 8 + 18 = 60-byte frames.
    send(&sender, 100, 18);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter.read().unwrap(),
        XdpCount {
            packets: 100,
            bytes: 6000
        }
    );
    let mut buf = [0u8; 64];
    assert!(
        receiver.recv_from(&mut buf).is_err(),
        "the sink must drop what it counts"
    );

    // BPF_PROG_TEST_RUN goes through the same program.
    let frame = [0u8; 42];
    assert_eq!(counter.test_run(&frame).unwrap(), XdpAction::Drop);
    assert_eq!(
        counter.read().unwrap(),
        XdpCount {
            packets: 101,
            bytes: 6042
        }
    );

    // Detached on drop: datagrams reach the socket again.
    drop(counter);
    let shown = ip(&["-n", b, "-j", "link", "show", "cntb"]);
    assert!(!shown.contains("\"xdp\""), "still attached: {shown}");
    send(&sender, 1, 18);
    let (n, _) = receiver
        .recv_from(&mut buf)
        .expect("delivered once detached");
    assert_eq!(n, 18);
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn generic_mode_counts_too() {
    privileged_test("generic_mode_counts_too");
    let pair = Pair::new();
    let [a, b] = &pair.names;
    let sender = socket(a, Ipv4Addr::new(10, 99, 0, 1), 0);
    let counter = in_netns(b, || XdpCounter::attach("cntb", XdpAttachMode::Generic))
        .expect("attach the counter in generic mode");
    assert_eq!(counter.mode(), AttachedMode::Generic);
    send(&sender, 10, 100);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        counter.read().unwrap(),
        XdpCount {
            packets: 10,
            bytes: 10 * 142
        }
    );
}

#[test]
#[cfg_attr(
    not(kxdp_privileged),
    ignore = "needs root (network namespaces, XDP, AF_XDP)"
)]
fn attach_reports_a_missing_interface() {
    privileged_test("attach_reports_a_missing_interface");
    let err = XdpCounter::attach("kxdp-nonexist", XdpAttachMode::Auto).unwrap_err();
    assert!(err.to_string().contains("kxdp-nonexist"), "{err}");
}
