//! End-to-end tests for kxdp on real network namespaces (see `tests/tests/`).
//!
//! This library holds what the test files share: [`Cluster`], a testbed with
//! a kxdp process per kxdp node that checks, when it goes away (also while a
//! failed test unwinds), that no namespace, link, scratch file or XDP program
//! of the test is left; readers of kxdp's counters ([`Totals`]); XDP
//! inspection of a namespace ([`xdp_links`], [`bpftool_xdp`]); a `tcpdump`
//! capture ([`Capture`]) that counts what reaches a pod; and assertions on
//! traffic results.
//!
//! Parallel tests: the testbed names every namespace `kx<pid>-<seq>-…` with a
//! process-wide atomic sequence number, creates nothing in the root
//! namespace, and keeps configurations, logs and control sockets in a
//! per-testbed scratch directory, so tests on different threads never share a
//! name. No lock is needed.

pub mod apiserver;
pub mod architecture;
pub mod forwarder;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kxdp_control::stats;
use kxdp_dataplane::counters::FrameGauges;
use kxdp_node::report::Report;
use kxdp_node::stats::NodeStats;
use kxdp_testbed::TopologySpec;
use kxdp_testbed::{KxdpProcess, Netns, Node, NodeKind, Pod, RttResult, Testbed, READY_TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The kxdp binary under test: `kxdp-under-test`, built in this package.
/// A macro because Cargo sets `CARGO_BIN_EXE_*` only while it compiles
/// integration tests.
#[macro_export]
macro_rules! kxdp_binary {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_kxdp-under-test"))
    };
}

/// How long an XDP program may take to go away after its link is closed
/// (the kernel frees programs after an RCU grace period).
const DETACH_GRACE: Duration = Duration::from_secs(3);

/// A testbed with kxdp running on its kxdp nodes. Dropping it stops kxdp,
/// removes the testbed and checks that nothing of it is left: no namespace,
/// root link or scratch directory with its prefix, and none of the XDP
/// programs kxdp attached during the test still loaded. A leftover is a
/// panic, or a printed error while the test is already failing.
#[derive(Debug)]
pub struct Cluster {
    test: String,
    prefix: String,
    binary: PathBuf,
    processes: BTreeMap<String, KxdpProcess>,
    /// Ids of every XDP program seen attached on a node of this testbed.
    programs: BTreeSet<u32>,
    testbed: Option<Testbed>,
}

impl Cluster {
    /// Build `spec` for test `test`, without starting kxdp.
    pub fn build(test: &str, spec: TopologySpec, binary: &Path) -> Cluster {
        let testbed = Testbed::build(spec)
            .unwrap_or_else(|e| panic!("{test}: cannot build the testbed: {e}"));
        eprintln!("{test}: testbed {}", testbed.prefix());
        Cluster {
            test: test.to_string(),
            prefix: testbed.prefix().to_string(),
            binary: binary.to_path_buf(),
            processes: BTreeMap::new(),
            programs: BTreeSet::new(),
            testbed: Some(testbed),
        }
    }

    /// Build `spec` and start kxdp on every kxdp node.
    pub fn start(test: &str, spec: TopologySpec, binary: &Path) -> Cluster {
        let mut cluster = Cluster::build(test, spec, binary);
        let nodes: Vec<String> = cluster
            .tb()
            .nodes()
            .iter()
            .filter(|n| n.kind == NodeKind::Kxdp)
            .map(|n| n.name.clone())
            .collect();
        for node in nodes {
            cluster.start_kxdp(&node);
        }
        cluster
    }

    /// The testbed.
    pub fn tb(&self) -> &Testbed {
        match &self.testbed {
            Some(tb) => tb,
            None => panic!("{}: the testbed is gone", self.test),
        }
    }

    /// The testbed, to change before kxdp starts on a node (VNF pods,
    /// Services, chains in its configuration).
    pub fn tb_mut(&mut self) -> &mut Testbed {
        match &mut self.testbed {
            Some(tb) => tb,
            None => panic!("{}: the testbed is gone", self.test),
        }
    }

    /// Pod `name`.
    pub fn pod(&self, name: &str) -> &Pod {
        self.tb()
            .pod(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.test))
    }

    /// Node `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.tb()
            .node(name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.test))
    }

    /// Start kxdp on `node`, wait until it forwards (see
    /// [`Cluster::wait_forwarding`]) and remember the XDP programs it attached.
    pub fn start_kxdp(&mut self, node: &str) -> &mut KxdpProcess {
        self.start_kxdp_with(node, &[])
    }

    /// [`Cluster::start_kxdp`] with more arguments for `kxdp run` (e.g.
    /// `--kubeconfig <file>`).
    pub fn start_kxdp_with(&mut self, node: &str, extra_args: &[&str]) -> &mut KxdpProcess {
        let process = self
            .tb()
            .start_kxdp(node, &self.binary, extra_args)
            .unwrap_or_else(|e| panic!("{}: starting kxdp on {node}: {e}", self.test));
        self.processes.insert(node.to_string(), process);
        self.remember_programs(node);
        self.wait_forwarding(node);
        self.process(node)
    }

    /// Wait until kxdp on `node` has a bound AF_XDP socket on every
    /// interface of its configuration, as its stats report.
    ///
    /// [`Testbed::start_kxdp`] returns once XDP programs are attached, but
    /// kxdp attaches them before it opens its sockets and puts them in the
    /// XSKMAPs: until then the programs drop what pods send and pass VXLAN
    /// to the kernel. The API answers only once the runtime has started
    /// (kxdp serves it last), so a first answer with every port bound means
    /// kxdp forwards.
    pub fn wait_forwarding(&self, node: &str) {
        let interfaces = self.node(node).interfaces.len();
        let socket = self.api_socket(node);
        let mut last = String::new();
        let ready = eventually(READY_TIMEOUT, || match stats::fetch(&socket) {
            Ok(s) => {
                let bound: BTreeSet<&str> = s.ports.iter().map(|p| p.interface.as_str()).collect();
                last = format!("ports bound: {bound:?}");
                bound.len() == interfaces
            }
            Err(e) => {
                last = Report(&e).to_string();
                false
            }
        });
        assert!(
            ready,
            "{}: kxdp on {node} not forwarding after {READY_TIMEOUT:?}: {last}\n{}",
            self.test,
            self.logs()
        );
    }

    /// The kxdp process of `node`.
    pub fn process(&mut self, node: &str) -> &mut KxdpProcess {
        match self.processes.get_mut(node) {
            Some(p) => p,
            None => panic!("no kxdp process on {node}"),
        }
    }

    fn remember_programs(&mut self, node: &str) {
        let netns = self.node(node).netns.clone();
        let ids: Vec<u32> = xdp_links(&netns).into_iter().map(|l| l.program).collect();
        self.programs.extend(ids);
    }

    /// The counters of the kxdp running on `node`, summed over workers.
    pub fn totals(&self, node: &str) -> Totals {
        Totals::of(&self.stats(node))
    }

    /// The stats of the kxdp running on `node`, as `kxdp stats` reads them.
    pub fn stats(&self, node: &str) -> NodeStats {
        let socket = self.api_socket(node);
        stats::fetch(&socket).unwrap_or_else(|e| {
            panic!(
                "{}: reading the stats of {node} from {}: {}",
                self.test,
                socket.display(),
                Report(&e)
            )
        })
    }

    /// The API socket of `node`'s kxdp (what `kxdp stats` reads).
    pub fn api_socket(&self, node: &str) -> PathBuf {
        let config = self
            .tb()
            .node_config(node)
            .unwrap_or_else(|e| panic!("{}: {e}", self.test));
        kxdp_control::api::api_socket_path(config)
    }

    /// The last lines of every kxdp log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (node, p) in &self.processes {
            out.push_str(&format!("--- kxdp on {node} ---\n{}\n", p.log_tail(30)));
        }
        out
    }

    /// Stop kxdp, remove the testbed, and check that nothing is left
    /// (what dropping does, as an explicit step at the end of a test).
    pub fn finish(mut self) {
        let problems = self.tear_down();
        assert!(
            problems.is_empty(),
            "{}: {}",
            self.test,
            problems.join("; ")
        );
    }

    fn tear_down(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for (node, mut process) in std::mem::take(&mut self.processes) {
            if let Err(e) = process.terminate() {
                problems.push(format!("stopping kxdp on {node}: {e}"));
            }
        }
        if self.testbed.take().is_none() {
            return problems;
        }
        match Testbed::leftovers(&self.prefix) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => problems.push(format!("testbed {} left {left:?}", self.prefix)),
            Err(e) => problems.push(format!("cannot list leftovers: {e}")),
        }
        let alive = programs_still_loaded(&self.programs, DETACH_GRACE);
        if !alive.is_empty() {
            problems.push(format!("XDP programs {alive:?} are still loaded"));
        }
        problems
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let problems = self.tear_down();
        if problems.is_empty() {
            return;
        }
        let message = format!("{}: {}", self.test, problems.join("; "));
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// The ids of `programs` that are still loaded after waiting up to `grace`.
pub fn programs_still_loaded(programs: &BTreeSet<u32>, grace: Duration) -> Vec<u32> {
    let deadline = Instant::now() + grace;
    loop {
        let alive: Vec<u32> = programs
            .iter()
            .copied()
            .filter(|id| program_loaded(*id))
            .collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether BPF program `id` is loaded (`bpftool prog show id <id>` succeeds).
pub fn program_loaded(id: u32) -> bool {
    let output = Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bpftool (package bpftool): {e}"));
    output.status.success()
}

/// An XDP program attached to an interface, as `ip -d link` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpLink {
    /// The interface.
    pub interface: String,
    /// The program id.
    pub program: u32,
}

/// Every XDP program attached to an interface of `netns`
/// (`ip -j -d link show`).
pub fn xdp_links(netns: &Netns) -> Vec<XdpLink> {
    let json = netns
        .ip(&["-j", "-d", "link", "show"])
        .unwrap_or_else(|e| panic!("{e}"));
    parse_xdp_links(&json)
}

fn parse_xdp_links(json: &str) -> Vec<XdpLink> {
    let links: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad `ip -j link` output: {e}"));
    let mut found = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        let Some(xdp) = link.get("xdp") else {
            continue;
        };
        let interface = link["ifname"].as_str().unwrap_or("?").to_string();
        // `xdp.attached[]` lists every program (one per mode); `ip -d`
        // also repeats a single one as `xdp.prog`.
        let mut ids: Vec<u64> = xdp["attached"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["prog"]["id"].as_u64())
            .collect();
        if ids.is_empty() {
            ids.extend(xdp["prog"]["id"].as_u64());
        }
        if ids.is_empty() {
            // Attached, but in a shape this parser does not know: still an
            // attachment (id 0 never names a real program).
            ids.push(0);
        }
        for id in ids {
            found.push(XdpLink {
                interface: interface.clone(),
                program: u32::try_from(id).unwrap_or(0),
            });
        }
    }
    found
}

/// The XDP attachments `bpftool net show` lists in `netns`, as
/// `(device, program id)`.
pub fn bpftool_xdp(netns: &Netns) -> Vec<(String, u64)> {
    let json = netns
        .exec("bpftool", &["-j", "net", "show"])
        .unwrap_or_else(|e| panic!("{e}"));
    let value: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad bpftool output {json}: {e}"));
    let mut found = Vec::new();
    for section in value.as_array().into_iter().flatten() {
        for xdp in section["xdp"].as_array().into_iter().flatten() {
            found.push((
                xdp["devname"].as_str().unwrap_or("?").to_string(),
                xdp["id"].as_u64().unwrap_or(0),
            ));
        }
    }
    found
}

/// kxdp's counters summed over its workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames received from AF_XDP sockets.
    pub rx: u64,
    /// Frames transmitted.
    pub tx: u64,
    /// VXLAN encapsulations.
    pub encapsulated: u64,
    /// VXLAN decapsulations.
    pub decapsulated: u64,
    /// ARP/ND replies.
    pub neighbour_replies: u64,
    /// ICMP destination unreachable sent.
    pub icmp_unreachable: u64,
    /// ICMP time exceeded sent.
    pub icmp_time_exceeded: u64,
    /// Drops by reason label.
    pub drops: BTreeMap<String, u64>,
}

impl Totals {
    /// Sum the workers of `stats`.
    pub fn of(stats: &NodeStats) -> Totals {
        let mut t = Totals::default();
        for w in &stats.workers {
            t.rx += w.rx_packets;
            t.tx += w.tx_packets;
            t.encapsulated += w.encapsulated;
            t.decapsulated += w.decapsulated;
            t.neighbour_replies += w.neighbour_replies;
            t.icmp_unreachable += w.icmp.unreachable;
            t.icmp_time_exceeded += w.icmp.time_exceeded;
            for (reason, n) in &w.drops {
                *t.drops.entry(reason.clone()).or_default() += n;
            }
        }
        t
    }

    /// Drops counted under `reason` (a `DropReason` label).
    pub fn dropped(&self, reason: &str) -> u64 {
        assert!(
            kxdp_dataplane::DropReason::from_label(reason).is_some(),
            "{reason:?} is not a drop reason of kxdp"
        );
        self.drops.get(reason).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn all_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// What changed since `before` (counters only grow).
    pub fn since(&self, before: &Totals) -> Totals {
        let mut drops = BTreeMap::new();
        for (reason, n) in &self.drops {
            let d = n.saturating_sub(before.drops.get(reason).copied().unwrap_or(0));
            if d > 0 {
                drops.insert(reason.clone(), d);
            }
        }
        Totals {
            rx: self.rx.saturating_sub(before.rx),
            tx: self.tx.saturating_sub(before.tx),
            encapsulated: self.encapsulated.saturating_sub(before.encapsulated),
            decapsulated: self.decapsulated.saturating_sub(before.decapsulated),
            neighbour_replies: self
                .neighbour_replies
                .saturating_sub(before.neighbour_replies),
            icmp_unreachable: self
                .icmp_unreachable
                .saturating_sub(before.icmp_unreachable),
            icmp_time_exceeded: self
                .icmp_time_exceeded
                .saturating_sub(before.icmp_time_exceeded),
            drops,
        }
    }
}

/// Assert that every exchange of `result` got its reply.
pub fn assert_no_loss(result: &RttResult, what: &str) {
    assert!(result.sent > 0, "{what}: nothing was sent");
    assert_eq!(
        result.lost,
        0,
        "{what}: {} of {} lost ({:.1}%): {:?}",
        result.lost,
        result.sent,
        result.loss_percent(),
        result.failures
    );
}

/// Assert that no exchange of `result` got a reply.
pub fn assert_all_lost(result: &RttResult, what: &str) {
    assert!(result.sent > 0, "{what}: nothing was sent");
    assert_eq!(
        result.received, 0,
        "{what}: {} of {} got replies, expected none",
        result.received, result.sent
    );
}

/// A `tcpdump` running in a namespace, printing one line per packet it sees
/// on an interface. Stopped (SIGINT, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Capture {
    what: String,
    child: Option<Child>,
    out_path: PathBuf,
    err_path: PathBuf,
}

/// How long a capture may take to start listening.
const CAPTURE_START: Duration = Duration::from_secs(10);

impl Capture {
    /// Start `tcpdump -i <interface> <filter>` in `netns`, writing into
    /// `dir`, and wait until it listens.
    pub fn start(netns: &Netns, interface: &str, filter: &str, dir: &Path) -> Capture {
        let tag = format!("{}-{interface}", netns.name());
        let out_path = dir.join(format!("{tag}.tcpdump"));
        let err_path = dir.join(format!("{tag}.tcpdump.err"));
        let out = File::create(&out_path).unwrap_or_else(|e| panic!("{e}"));
        let err = File::create(&err_path).unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec![
            "netns",
            "exec",
            netns.name(),
            "tcpdump",
            "-i",
            interface,
            "-n",
            "-l",
            "--immediate-mode",
            "-e",
        ];
        args.extend(filter.split_whitespace());
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tcpdump (package tcpdump): {e}"));
        let mut capture = Capture {
            what: format!("tcpdump on {interface} in {}", netns.name()),
            child: Some(child),
            out_path,
            err_path,
        };
        let start = Instant::now();
        loop {
            let said = std::fs::read_to_string(&capture.err_path).unwrap_or_default();
            if said.contains("listening on") {
                break;
            }
            if let Some(child) = capture.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{} exited ({status}): {said}", capture.what);
                }
            }
            assert!(
                start.elapsed() < CAPTURE_START,
                "{} did not start listening: {said}",
                capture.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        capture
    }

    /// Stop the capture and return the packet lines it printed.
    pub fn stop(mut self) -> Vec<String> {
        // Packets already sent may still be on their way through a worker.
        std::thread::sleep(Duration::from_millis(200));
        self.halt();
        let text = std::fs::read_to_string(&self.out_path).unwrap_or_default();
        // tcpdump ends its output with an empty line when interrupted.
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    fn halt(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What `ping` reported: echo requests sent and replies received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingCount {
    /// Requests transmitted.
    pub transmitted: u64,
    /// Replies received.
    pub received: u64,
}

/// `ping -M do -s <payload> -c <count>` from `netns` to `to`: ICMP echo
/// requests of `payload` + 28 bytes of IP packet, with Don't Fragment set
/// (the sender's kernel refuses what exceeds its own interface MTU).
pub fn ping_df(netns: &Netns, to: IpAddr, payload: u16, count: u32) -> PingCount {
    let args = [
        "-n".to_string(),
        "-q".to_string(),
        "-M".to_string(),
        "do".to_string(),
        "-s".to_string(),
        payload.to_string(),
        "-c".to_string(),
        count.to_string(),
        "-i".to_string(),
        "0.01".to_string(),
        "-W".to_string(),
        "1".to_string(),
        to.to_string(),
    ];
    let output = netns
        .exec_output("ping", &args)
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_ping_summary(&stdout).unwrap_or_else(|| {
        panic!(
            "ping {} in {}: no summary ({}): {stdout} {}",
            args.join(" "),
            netns.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The `N packets transmitted, M received` line of iputils' `ping`.
fn parse_ping_summary(stdout: &str) -> Option<PingCount> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    Some(PingCount {
        transmitted: numbers.next()?,
        received: numbers.next()?,
    })
}

/// Packets received and transmitted by `dev` in `netns` (`ip -s link`).
pub fn link_packets(netns: &Netns, dev: &str) -> (u64, u64) {
    let json = netns
        .ip(&["-j", "-s", "link", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("{e}"));
    let value: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad `ip -j -s link`: {e}"));
    let stats = &value[0]["stats64"];
    (
        stats["rx"]["packets"].as_u64().unwrap_or(0),
        stats["tx"]["packets"].as_u64().unwrap_or(0),
    )
}

/// `IpAddr::V4` of a pod.
pub fn ip_of(pod: &Pod) -> IpAddr {
    IpAddr::V4(pod.ip)
}

/// Wait until `done` holds or `timeout` passes; whether it held.
pub fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The frame accounting of every worker of `node`'s kxdp.
pub fn frames(c: &Cluster, node: &str) -> Vec<FrameGauges> {
    c.stats(node)
        .workers
        .into_iter()
        .map(|w| w.frames)
        .collect()
}

/// Wait for a new idle accounting on every worker of `node` (taken at most
/// once a second while the worker is idle) and assert it balances with
/// nothing left on a tx ring.
pub fn assert_frames_accounted(c: &Cluster, node: &str, what: &str) -> Vec<FrameGauges> {
    let before: Vec<u64> = frames(c, node).iter().map(|f| f.checks).collect();
    let mut last = Vec::new();
    let fresh = eventually(Duration::from_secs(5), || {
        last = frames(c, node);
        last.iter().zip(&before).all(|(f, b)| f.checks > *b + 1)
    });
    assert!(fresh, "{what}: no new frame accounting on {node}: {last:?}");
    for f in &last {
        assert!(f.total > 0, "{what}: {node}: {f:?}");
        assert!(
            f.balanced(),
            "{what}: {node}: frames lost: {f:?}\n{}",
            c.logs()
        );
        assert_eq!(
            f.in_tx, 0,
            "{what}: {node}: frames stuck on a tx ring: {f:?}"
        );
    }
    eprintln!("{what}: {node} frames {last:?}");
    last
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_xdp_attachments_of_ip_link() {
        // iproute2 6.1 shapes: one program (`-d` repeats it under
        // `attached`), several modes, none.
        let json = r#"[{"ifindex":1,"ifname":"lo"},
            {"ifindex":2,"ifname":"ul0","xdp":{"mode":1,"prog":{"id":41,"name":"kxdp"},
                "attached":[{"mode":1,"prog":{"id":41,"name":"kxdp"}}]}},
            {"ifindex":3,"ifname":"va","xdp":{"mode":4,"attached":[
                {"mode":1,"prog":{"id":7}},{"mode":2,"prog":{"id":8}}]}}]"#;
        assert_eq!(
            parse_xdp_links(json),
            [
                XdpLink {
                    interface: "ul0".into(),
                    program: 41
                },
                XdpLink {
                    interface: "va".into(),
                    program: 7
                },
                XdpLink {
                    interface: "va".into(),
                    program: 8
                },
            ]
        );
        assert!(parse_xdp_links(r#"[{"ifname":"lo"}]"#).is_empty());
    }

    #[test]
    fn parses_ping_summaries() {
        let out = "PING 10.244.2.10 (10.244.2.10) 1472(1500) bytes of data.\n\n\
                   --- 10.244.2.10 ping statistics ---\n\
                   10 packets transmitted, 0 received, 100% packet loss, time 93ms\n";
        assert_eq!(
            parse_ping_summary(out),
            Some(PingCount {
                transmitted: 10,
                received: 0
            })
        );
        let out = "5 packets transmitted, 5 received, 0% packet loss, time 41ms";
        assert_eq!(parse_ping_summary(out).unwrap().received, 5);
        let out = "3 packets transmitted, 1 received, +2 errors, 66% packet loss";
        assert_eq!(parse_ping_summary(out).unwrap().received, 1);
        assert_eq!(
            parse_ping_summary("ping: connect: Network is unreachable"),
            None
        );
    }

    #[test]
    fn totals_subtract_per_reason() {
        let before = Totals {
            rx: 10,
            drops: [("no_route".to_string(), 2)].into_iter().collect(),
            ..Totals::default()
        };
        let after = Totals {
            rx: 15,
            tx: 3,
            drops: [("no_route".to_string(), 2), ("exceeds_mtu".to_string(), 4)]
                .into_iter()
                .collect(),
            ..Totals::default()
        };
        let d = after.since(&before);
        assert_eq!((d.rx, d.tx), (5, 3));
        assert_eq!(d.dropped("exceeds_mtu"), 4);
        assert_eq!(d.dropped("no_route"), 0);
        assert_eq!(d.all_drops(), 4);
    }
}
