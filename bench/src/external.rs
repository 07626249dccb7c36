//! The AF_XDP dataplanes a user would otherwise pick, run on the testbed
//! beside kxdp for the packet-rate comparison: DPDK's `dpdk-testpmd` with the
//! `net_af_xdp` poll-mode driver, and Open vSwitch's userspace datapath
//! (`datapath_type=netdev`) with `afxdp` ports. Both from Debian's packages
//! (`dpdk-dev`, `openvswitch-switch`; `scripts/setup-bench` installs them).
//!
//! Each one forwards, inside one node's network namespace, between the same
//! two veths kxdp binds there: the host side of a pod's veth and the underlay
//! `ul0`. [`start_testpmd`] and [`start_ovs`] spawn the process(es) in the
//! namespace (`ip netns exec`), wait until the dataplane forwards, and return
//! an [`ExternalDataplane`] that stops it when dropped or
//! [stopped](ExternalDataplane::stop).
//!
//! # What they do per packet, against kxdp
//!
//! These are plain L2 forwarders, not overlays. They do **not** do kxdp's
//! work, and the packet-rate comparison must say so:
//!
//! | per frame | testpmd (`--forward-mode=mac`) | OVS (`netdev` datapath) | kxdp |
//! |---|---|---|---|
//! | receive | AF_XDP socket, copy mode, behind libxdp's `xsk_def_prog` in native (driver) mode | same | AF_XDP, copy mode, own XDP program in native mode |
//! | look at | nothing: no parsing | miniflow extraction of L2–L4, exact-match cache / classifier lookup of the OpenFlow rule `in_port=…` | parse Ethernet/IPv4/UDP, source check, longest-prefix route in the tenant |
//! | rewrite | source MAC := egress port's MAC, destination MAC := the configured peer | the same two MACs (`mod_dl_src`, `mod_dl_dst`) | MACs, TTL and IPv4 checksum; or 50 bytes of VXLAN/UDP/IPv4/Ethernet pushed in front |
//! | transmit | the other port's AF_XDP socket | the other port's AF_XDP socket | the egress AF_XDP socket |
//!
//! So pod → `ul0` leaves **without encapsulation**: the 64-byte frame a pod
//! sent crosses the underlay as a 64-byte frame with its MACs rewritten,
//! where kxdp sends a 114-byte VXLAN frame. `ul0` → pod is the same rewrite
//! the other way (kxdp validates and strips VXLAN there). Neither peer
//! decrements TTL, checks a source, or routes.
//!
//! The frames leave each port addressed so that the next hop takes them:
//! towards `ul0`, destination = the remote node's `ul0` MAC (where that
//! node's dataplane picks them up); towards the pod, destination = the pod's
//! `eth0` MAC, so the pod's kernel accepts them. Run one instance on each of
//! two nodes and a UDP datagram from pod A on node 1 reaches a socket of pod
//! B on node 2 (the smoke tests in `bench/tests/external.rs` do exactly
//! that); or run one on the sending node and count at the receiving node's
//! `ul0`.
//!
//! Pods on a testbed kxdp node have a /32 address and an on-link gateway
//! that kxdp answers ARP for; neither peer answers ARP, so a pod that sends
//! through a socket needs a static neighbour entry for its gateway
//! ([`pin_gateway_neighbour`]). A generator that writes whole frames needs
//! none (the forwarders rewrite both MACs anyway).
//!
//! # How each one is run
//!
//! - **testpmd**: `dpdk-testpmd --lcores 0@C,1@C --no-huge -m 512 --no-pci
//!   --no-shconf --no-telemetry --file-prefix <unique> --vdev
//!   net_af_xdp0,iface=<pod>,… --vdev net_af_xdp1,iface=ul0,… --
//!   --total-num-mbufs=16384 --forward-mode=mac --nb-cores=1
//!   --record-core-cycles --eth-peer=0,<pod MAC> --eth-peer=1,<remote ul0
//!   MAC>`, under `stdbuf -oL` so that its
//!   "Press enter to exit" (printed once forwarding runs) is seen at once.
//!   Main lcore and forwarding lcore share core C; the main lcore only
//!   blocks reading stdin. Port 0 is the pod's veth, port 1 `ul0`. The
//!   af_xdp driver's defaults otherwise (one queue, 2048-entry rings, burst
//!   32, preferred busy polling with a budget of 64: its `recvfrom` may run
//!   the veth's NAPI receive on its own core). Stopped by
//!   closing its stdin (its own clean exit, which prints the forward
//!   statistics returned by [`ExternalDataplane::stop`]). If this process
//!   dies, testpmd reads end-of-file on stdin and exits by itself.
//! - **OVS**: a private `ovsdb-server` (database created with `ovsdb-tool`
//!   from Debian's `vswitch.ovsschema`) and `ovs-vswitchd`, both with
//!   their database, sockets, pid files and logs in a temporary directory
//!   (`OVS_RUNDIR`, `OVS_DBDIR`, `OVS_LOGDIR`, `OVS_SYSCONFDIR` point there)
//!   — never the system's `openvswitch-switch` service. One bridge
//!   (`kxovs`, `datapath_type=netdev`, `fail_mode=secure`), the pod's veth
//!   as OpenFlow port 1 and `ul0` as port 2, both `type=afxdp
//!   options:xdp-mode=native` (`native-with-zerocopy` is not possible on
//!   veth), one PMD thread on core C (`other_config:pmd-cpu-mask`), and
//!   two flows: `in_port=1 → mod_dl_src,mod_dl_dst,output:2` and back.
//!   Other OVS defaults (EMC on, one rx queue, need_wakeup). Stopped by
//!   deleting the bridge, `ovs-appctl exit --cleanup` and `exit` to the
//!   database server.
//!
//! After either stops (also from `Drop`, also when it had to be killed), the
//! cleanup makes sure nothing stays: XDP programs the dataplane attached are
//! detached, promiscuous mode it turned on is turned off again (testpmd
//! leaves it on), OVS's tap devices are gone, its temporary directory and
//! DPDK's runtime directory `/var/run/dpdk/<prefix>` are removed. Processes
//! are killed only by the PIDs this module spawned.
//!
//! # Rates on the two-core test machine
//!
//! Measured with the `forwarding_rate` probe in `bench/tests/external.rs`
//! (forwarder alone on node 1, core 1; AF_XDP generator in the pod and the
//! threaded NAPI of the pod's veth on core 0; XDP counting sink on node 2's
//! `ul0`; 4 rounds of 5 s, quiet machine), medians:
//!
//! | sink's receive work | testpmd | OVS | loss | limit |
//! |---|---|---|---|---|
//! | NAPI thread on core 0 | 0.53 Mpps | 0.56 Mpps | < 0.5 % | core 0 (generator side): the forwarders idle part of the time, ~1400–2200 busy cycles per packet |
//! | forwarder's core 1 | 0.95 Mpps | 0.91 Mpps | 2–14 % | the forwarder: ~2550–3100 busy cycles per packet, its rx ring overflows |
//!
//! So with the first placement these figures are the generator's ceiling,
//! not the forwarders'; a comparison with kxdp must use a placement in
//! which the forwarder is the bottleneck (loss and rx drops say which).

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kxdp_config::MacAddr;
use kxdp_testbed::{find_program, Netns, Testbed, UNDERLAY_IF};

/// DPDK's testpmd binary (Debian package `dpdk-dev`).
pub const TESTPMD: &str = "dpdk-testpmd";
/// Name of the OVS bridge (also a tap device in the node's namespace while
/// OVS runs).
pub const OVS_BRIDGE: &str = "kxovs";
/// The tap device OVS's netdev datapath creates for itself.
const OVS_DATAPATH_TAP: &str = "ovs-netdev";
/// Debian's OVS database schema.
pub const OVS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// Where DPDK keeps per-process runtime directories when run as root.
const DPDK_RUNTIME_DIR: &str = "/var/run/dpdk";
/// testpmd prints this once its ports are started and forwarding runs
/// (non-interactive mode without `--stats-period`).
const TESTPMD_READY: &str = "Press enter to exit";
/// Memory for testpmd without hugepages, MB.
const TESTPMD_MEMORY_MB: u32 = 512;
/// The mbuf pool that fits [`TESTPMD_MEMORY_MB`] (the default does not).
const TESTPMD_MBUFS: u32 = 16384;
/// OpenFlow port numbers on the OVS bridge.
const OVS_POD_PORT: u16 = 1;
const OVS_UNDERLAY_PORT: u16 = 2;

/// How long a dataplane may take to start forwarding (testpmd needs several
/// seconds on a busy two-core machine).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean stop may take before the processes are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Temporary directories are `<temp dir>/kxdp-external-<pid>-<seq>`; DPDK
/// file prefixes `kxdp-external-<pid>-<seq>` too.
const RUN_PREFIX: &str = "kxdp-external-";

static NEXT_SEQ: AtomicU32 = AtomicU32::new(0);

/// Which external dataplane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExternalKind {
    /// `dpdk-testpmd` with two `net_af_xdp` ports, `--forward-mode=mac`.
    Testpmd,
    /// Open vSwitch, userspace datapath, two `afxdp` ports.
    Ovs,
}

impl ExternalKind {
    /// Both, in table order.
    pub const ALL: [ExternalKind; 2] = [ExternalKind::Testpmd, ExternalKind::Ovs];

    /// Short name for tables and JSON: `testpmd`, `ovs`.
    pub fn name(self) -> &'static str {
        match self {
            ExternalKind::Testpmd => "testpmd",
            ExternalKind::Ovs => "ovs",
        }
    }

    /// The programs it needs and the Debian package of each.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            ExternalKind::Testpmd => &[(TESTPMD, "dpdk-dev"), ("stdbuf", "coreutils")],
            ExternalKind::Ovs => &[
                ("ovsdb-tool", "openvswitch-common"),
                ("ovsdb-server", "openvswitch-switch"),
                ("ovs-vswitchd", "openvswitch-switch"),
                ("ovs-vsctl", "openvswitch-switch"),
                ("ovs-ofctl", "openvswitch-common"),
                ("ovs-appctl", "openvswitch-common"),
            ],
        }
    }

    /// `Err` names what is missing to run it (install with
    /// `scripts/setup-bench`).
    pub fn check_installed(self) -> std::result::Result<(), String> {
        for (program, package) in self.programs() {
            if find_program(program).is_none() {
                return Err(format!(
                    "`{program}` is not installed (Debian package {package}; run scripts/setup-bench)"
                ));
            }
        }
        if self == ExternalKind::Ovs && !Path::new(OVS_SCHEMA).is_file() {
            return Err(format!(
                "{OVS_SCHEMA} is missing (Debian package openvswitch-common; run scripts/setup-bench)"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ExternalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to forward between, on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardSpec {
    /// The node's network namespace.
    pub netns: Netns,
    /// The host side of the pod's veth (`v<pod>`).
    pub pod_interface: String,
    /// Its MAC: the source MAC of frames sent to the pod.
    pub pod_interface_mac: MacAddr,
    /// The pod's `eth0` MAC: the destination MAC of frames sent to the pod.
    pub pod_mac: MacAddr,
    /// The underlay interface (`ul0`).
    pub underlay_interface: String,
    /// Its MAC: the source MAC of frames sent on the underlay.
    pub underlay_mac: MacAddr,
    /// The remote node's underlay MAC: the destination MAC of frames sent on
    /// the underlay.
    pub underlay_peer_mac: MacAddr,
    /// The core that forwards (testpmd's forwarding lcore, OVS's PMD thread).
    pub core: usize,
}

impl ForwardSpec {
    /// On the node of testbed pod `local_pod`: forward between that pod's
    /// veth and `ul0`, sending underlay frames to the `ul0` of the node of
    /// `remote_pod`, on `core`.
    pub fn between(
        testbed: &Testbed,
        local_pod: &str,
        remote_pod: &str,
        core: usize,
    ) -> Result<ForwardSpec> {
        let pod = testbed.pod(local_pod)?;
        let node = testbed.node(&pod.node)?;
        let remote = testbed.node(&testbed.pod(remote_pod)?.node)?;
        if remote.name == node.name {
            bail!(
                "pods {local_pod} and {remote_pod} are both on node {}: the external dataplanes forward between a pod and the underlay",
                node.name
            );
        }
        Ok(ForwardSpec {
            netns: node.netns.clone(),
            pod_interface: pod.host_interface.clone(),
            pod_interface_mac: pod.host_mac,
            pod_mac: pod.mac,
            underlay_interface: UNDERLAY_IF.to_string(),
            underlay_mac: node.underlay_mac,
            underlay_peer_mac: remote.underlay_mac,
            core,
        })
    }

    fn interfaces(&self) -> [&str; 2] {
        [&self.pod_interface, &self.underlay_interface]
    }
}

/// Give the testbed pod's gateway a permanent neighbour entry with the MAC
/// of the pod veth's host side, so the pod's kernel can send through a
/// forwarder that answers no ARP (the pod namespace is deleted with the
/// testbed, and the entry with it).
pub fn pin_gateway_neighbour(testbed: &Testbed, pod: &str) -> Result<()> {
    let pod = testbed.pod(pod)?;
    pin_neighbour(
        &pod.netns,
        &pod.gateway,
        &pod.host_mac,
        kxdp_testbed::POD_IF,
    )
}

/// A permanent neighbour entry `ip` → `mac` on `dev` in `netns`, for paths
/// whose counting sinks or forwarders answer no ARP.
pub fn pin_neighbour(
    netns: &kxdp_testbed::Netns,
    ip: &dyn std::fmt::Display,
    mac: &dyn std::fmt::Display,
    dev: &str,
) -> Result<()> {
    netns.ip(&[
        "neigh",
        "replace",
        &ip.to_string(),
        "lladdr",
        &mac.to_string(),
        "dev",
        dev,
        "nud",
        "permanent",
    ])?;
    Ok(())
}

/// Packet counters of one port, as the dataplane itself counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames the port dropped on receive (testpmd's `RX-dropped`, OVS's `drop`).
    pub rx_dropped: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Frames dropped on transmit.
    pub tx_dropped: u64,
}

/// Both ports' counters, read when the dataplane stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ForwardCounters {
    /// The pod's veth.
    pub pod: PortCounters,
    /// The underlay.
    pub underlay: PortCounters,
    /// TSC cycles the forwarding thread spent per packet in polls that
    /// found packets (idle polls excluded), over its whole run: testpmd's
    /// `--record-core-cycles` "CPU cycles/packet", OVS's PMD "avg processing
    /// cycles per packet". `None` when it did not say (no packets).
    /// Comparable with kxdp's worker cycles per packet; note that with
    /// half-empty bursts (a forwarder faster than its input) it is higher
    /// than at saturation.
    pub busy_cycles_per_packet: Option<f64>,
}

/// What one interface looked like before the dataplane started, to restore.
#[derive(Clone, Debug)]
pub(crate) struct InterfaceState {
    name: String,
    promiscuous: bool,
}

/// An XDP program attached to an interface, as `ip -j link` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedXdp {
    /// The interface.
    pub interface: String,
    /// Program id (0 if `ip` did not say).
    pub program_id: u64,
    /// Program name (empty if `ip` did not say).
    pub program_name: String,
    /// `ip`'s attach mode: 1 driver, 2 generic (skb), 3 offload, 4 several.
    pub mode: u64,
}

/// A process this module spawned, with its log.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawn `ip netns exec <ns> <program> <args…>` (ip execs the program,
    /// so the child's PID is the program's), stdout and stderr to `log`.
    fn spawn(
        name: &'static str,
        netns: &Netns,
        program: &str,
        args: &[String],
        envs: &[(&str, &Path)],
        log: PathBuf,
        stdin: Stdio,
    ) -> Result<Daemon> {
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log.display()))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns.name(), program])
            .args(args)
            .stdin(stdin)
            .stdout(out)
            .stderr(err);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {program} in netns {}", netns.name()))?;
        Ok(Daemon { name, child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (false once it exited; it is reaped then).
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait up to `timeout` for it to exit; true if it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    }

    /// SIGKILL by PID (the child handle's), and reap.
    fn kill(&mut self) {
        if self.running() {
            eprintln!(
                "external: {} (pid {}) did not stop in time, killing it",
                self.name,
                self.pid()
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The last `lines` lines of its log.
    fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text
        .lines()
        // libbpf's notes about sections it skips are noise in every start.
        .filter(|l| !l.contains("skipping unrecognized data section"))
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A directory removed (with its contents) on drop.
#[derive(Debug)]
pub(crate) struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create(name: &str) -> Result<RunDir> {
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("external: cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// The parts that differ between the two.
#[derive(Debug)]
enum Engine {
    Testpmd {
        daemon: Daemon,
        /// Held open: closing it is testpmd's "Press enter to exit".
        stdin: Option<ChildStdin>,
        /// `/var/run/dpdk/<file prefix>`.
        runtime_dir: PathBuf,
    },
    Ovs(OvsDaemons),
}

/// A running external dataplane; see the module documentation. Dropping it
/// stops it and cleans up (errors are printed); [`ExternalDataplane::stop`]
/// does the same and returns the counters and errors.
#[derive(Debug)]
pub struct ExternalDataplane {
    kind: ExternalKind,
    spec: ForwardSpec,
    engine: Option<Engine>,
    before: Vec<InterfaceState>,
    started_at: Instant,
    startup: Duration,
    /// Declared last: removed after the processes stopped.
    run_dir: RunDir,
}

/// Start testpmd forwarding between `spec`'s pod veth and underlay, and
/// wait until it forwards (at most [`READY_TIMEOUT`]).
pub fn start_testpmd(spec: &ForwardSpec) -> Result<ExternalDataplane> {
    ExternalKind::Testpmd
        .check_installed()
        .map_err(anyhow::Error::msg)?;
    let (name, run_dir, before) = prepare(spec)?;
    let runtime_dir = Path::new(DPDK_RUNTIME_DIR).join(&name);
    let log = run_dir.path.join("testpmd.log");
    let core = spec.core;
    let mut args: Vec<String> = vec!["-oL".into(), "-eL".into(), TESTPMD.into()];
    args.extend([
        format!("--lcores=0@{core},1@{core}"),
        "--no-huge".into(),
        "-m".into(),
        TESTPMD_MEMORY_MB.to_string(),
        "--no-pci".into(),
        "--no-shconf".into(),
        "--no-telemetry".into(),
        format!("--file-prefix={name}"),
        format!(
            "--vdev=net_af_xdp0,iface={},start_queue=0,queue_count=1",
            spec.pod_interface
        ),
        format!(
            "--vdev=net_af_xdp1,iface={},start_queue=0,queue_count=1",
            spec.underlay_interface
        ),
        "--".into(),
        format!("--total-num-mbufs={TESTPMD_MBUFS}"),
        "--forward-mode=mac".into(),
        "--nb-cores=1".into(),
        "--record-core-cycles".into(),
        format!("--eth-peer=0,{}", spec.pod_mac),
        format!("--eth-peer=1,{}", spec.underlay_peer_mac),
    ]);
    let started_at = Instant::now();
    let mut daemon = Daemon::spawn(
        "dpdk-testpmd",
        &spec.netns,
        "stdbuf",
        &args,
        &[],
        log.clone(),
        Stdio::piped(),
    )?;
    let stdin = daemon.child.stdin.take();
    let mut dataplane = ExternalDataplane {
        kind: ExternalKind::Testpmd,
        spec: spec.clone(),
        engine: Some(Engine::Testpmd {
            daemon,
            stdin,
            runtime_dir,
        }),
        before,
        started_at,
        startup: Duration::ZERO,
        run_dir,
    };
    dataplane.wait_ready(|dp| {
        let Some(Engine::Testpmd { daemon, .. }) = dp.engine.as_mut() else {
            bail!("testpmd is not running");
        };
        if !daemon.running() {
            bail!(
                "dpdk-testpmd exited before forwarding; its log ends:\n{}",
                daemon.log_tail(25)
            );
        }
        let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        Ok(text.contains(TESTPMD_READY))
    })?;
    Ok(dataplane)
}

/// Start a private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace
/// datapath) forwarding between `spec`'s pod veth and underlay with two
/// OpenFlow rules, and wait until its PMD thread polls both ports (at most
/// [`READY_TIMEOUT`]).
pub fn start_ovs(spec: &ForwardSpec) -> Result<ExternalDataplane> {
    ExternalKind::Ovs
        .check_installed()
        .map_err(anyhow::Error::msg)?;
    let (_name, run_dir, before) = prepare(spec)?;
    let dir = run_dir.path.clone();
    let started_at = Instant::now();
    let daemons = OvsDaemons::start(&spec.netns, &dir, spec.core)?;
    let mut dataplane = ExternalDataplane {
        kind: ExternalKind::Ovs,
        spec: spec.clone(),
        engine: Some(Engine::Ovs(daemons)),
        before,
        started_at,
        startup: Duration::ZERO,
        run_dir,
    };
    dataplane.configure_ovs().with_context(|| {
        format!(
            "configuring OVS failed; ovs-vswitchd's log ends:\n{}",
            log_tail(&dir.join("ovs-vswitchd.log"), 25)
        )
    })?;
    dataplane.wait_ready(|dp| {
        if let Some(Engine::Ovs(daemons)) = dp.engine.as_mut() {
            if !daemons.running() {
                bail!(
                    "ovs-vswitchd exited; its log ends:\n{}",
                    daemons.log_tail(25)
                );
            }
        }
        // The PMD thread polls both ports once they appear in its rx queue
        // assignment.
        let rxqs = ovs_appctl(&dir, &["dpif-netdev/pmd-rxq-show".into()])?;
        Ok(dp
            .spec
            .interfaces()
            .iter()
            .all(|i| rxqs.contains(&format!("port: {i} "))))
    })?;
    Ok(dataplane)
}

/// The environment that points every OVS tool at the private directory.
fn ovs_env(dir: &Path) -> Vec<(&'static str, &Path)> {
    vec![
        ("OVS_RUNDIR", dir),
        ("OVS_DBDIR", dir),
        ("OVS_LOGDIR", dir),
        ("OVS_SYSCONFDIR", dir),
    ]
}

/// The ovsdb-server and ovs-vswitchd of one private Open vSwitch (userspace
/// datapath), spawned in a node's namespace with their database, sockets,
/// pid files and logs in a directory of their own; also used by the
/// `ovs_vxlan` module, which builds an OVS VXLAN node on them.
#[derive(Debug)]
pub(crate) struct OvsDaemons {
    /// ovs-vswitchd first: it stops before its database.
    vswitchd: Daemon,
    ovsdb: Daemon,
    dir: PathBuf,
}

impl OvsDaemons {
    /// Create a database in `dir`, start ovsdb-server, set the PMD threads'
    /// core mask to `pmd_core` alone, and start ovs-vswitchd (which inherits
    /// this process's CPU affinity for its other threads). No bridges yet.
    pub(crate) fn start(netns: &Netns, dir: &Path, pmd_core: usize) -> Result<OvsDaemons> {
        let db = dir.join("conf.db");
        run_tool(
            "ovsdb-tool",
            &["create".into(), path_arg(&db), OVS_SCHEMA.into()],
            &[],
        )?;
        let envs = ovs_env(dir);
        let mut ovsdb = Daemon::spawn(
            "ovsdb-server",
            netns,
            "ovsdb-server",
            &[
                path_arg(&db),
                format!("--remote=punix:{}", dir.join("db.sock").display()),
                format!("--unixctl={}", dir.join("ovsdb-server.ctl").display()),
                format!("--pidfile={}", dir.join("ovsdb-server.pid").display()),
                format!("--log-file={}", dir.join("ovsdb-server.log").display()),
                "--no-chdir".into(),
            ],
            &envs,
            dir.join("ovsdb-server.out"),
            Stdio::null(),
        )?;
        // Wait for the database socket before anyone connects to it.
        let db_sock = dir.join("db.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !db_sock.exists() {
            if Instant::now() > deadline {
                ovsdb.kill();
                bail!(
                    "ovsdb-server did not create {} in 10 s; its output ends:\n{}",
                    db_sock.display(),
                    ovsdb.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pmd_mask = format!("other_config:pmd-cpu-mask=0x{:x}", core_mask(pmd_core)?);
        let init = ovs_vsctl(
            dir,
            &[
                "--no-wait".into(),
                "init".into(),
                "--".into(),
                "set".into(),
                "Open_vSwitch".into(),
                ".".into(),
                pmd_mask,
            ],
        );
        if let Err(e) = init {
            ovsdb.kill();
            return Err(e);
        }
        let vswitchd = match Daemon::spawn(
            "ovs-vswitchd",
            netns,
            "ovs-vswitchd",
            &[
                format!("unix:{}", db_sock.display()),
                format!("--unixctl={}", dir.join("ovs-vswitchd.ctl").display()),
                format!("--pidfile={}", dir.join("ovs-vswitchd.pid").display()),
                format!("--log-file={}", dir.join("ovs-vswitchd.log").display()),
                "--no-chdir".into(),
            ],
            &envs,
            dir.join("ovs-vswitchd.out"),
            Stdio::null(),
        ) {
            Ok(d) => d,
            Err(e) => {
                ovsdb.kill();
                return Err(e);
            }
        };
        Ok(OvsDaemons {
            vswitchd,
            ovsdb,
            dir: dir.to_path_buf(),
        })
    }

    /// Whether ovs-vswitchd still runs.
    pub(crate) fn running(&mut self) -> bool {
        self.vswitchd.running()
    }

    /// ovs-vswitchd's PID, then ovsdb-server's.
    pub(crate) fn pids(&self) -> Vec<u32> {
        vec![self.vswitchd.pid(), self.ovsdb.pid()]
    }

    /// The last `lines` lines of ovs-vswitchd's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir.join("ovs-vswitchd.log"), lines)
    }

    /// Delete `bridges` (closing their afxdp ports detaches their XDP
    /// programs), let ovs-vswitchd exit with `--cleanup` and then
    /// ovsdb-server, killing whichever does not stop in time; delete the
    /// bridges' and the datapath's taps if they stayed in `netns`. Returns
    /// what went wrong; runs to the end regardless.
    pub(crate) fn stop(mut self, netns: &Netns, bridges: &[&str]) -> Vec<String> {
        let mut errors = Vec::new();
        if self.vswitchd.running() {
            for bridge in bridges {
                if let Err(e) = ovs_vsctl(
                    &self.dir,
                    &["--if-exists".into(), "del-br".into(), (*bridge).into()],
                ) {
                    errors.push(format!("{e:#}"));
                }
            }
            if let Err(e) = ovs_appctl(&self.dir, &["exit".into(), "--cleanup".into()]) {
                errors.push(format!("{e:#}"));
            }
        } else {
            errors.push(format!(
                "ovs-vswitchd (pid {}) had exited before the stop; its log ends:\n{}",
                self.vswitchd.pid(),
                self.log_tail(15)
            ));
        }
        if !self.vswitchd.wait_exit(STOP_TIMEOUT) {
            errors.push(format!(
                "ovs-vswitchd (pid {}) did not exit within {STOP_TIMEOUT:?}",
                self.vswitchd.pid()
            ));
            self.vswitchd.kill();
        }
        if self.ovsdb.running() {
            let ctl = self.dir.join("ovsdb-server.ctl");
            if let Err(e) = run_tool(
                "ovs-appctl",
                &["-t".into(), path_arg(&ctl), "exit".into()],
                &ovs_env(&self.dir),
            ) {
                errors.push(format!("{e:#}"));
            }
        }
        if !self.ovsdb.wait_exit(STOP_TIMEOUT) {
            errors.push(format!(
                "ovsdb-server (pid {}) did not exit within {STOP_TIMEOUT:?}",
                self.ovsdb.pid()
            ));
            self.ovsdb.kill();
        }
        // OVS's taps go with a clean exit; not after a kill.
        for tap in bridges.iter().copied().chain([OVS_DATAPATH_TAP]) {
            if link_json(netns, tap).is_ok() {
                errors.push(format!("OVS left device {tap} behind; deleting it"));
                if let Err(e) = netns.ip(&["link", "del", tap]) {
                    errors.push(format!("cannot delete {tap}: {e}"));
                }
            }
        }
        errors
    }
}

/// `ovs-vsctl` against the private database in `dir`.
pub(crate) fn ovs_vsctl(dir: &Path, args: &[String]) -> Result<String> {
    let mut full = vec![
        format!("--db=unix:{}", dir.join("db.sock").display()),
        "--timeout=20".into(),
    ];
    full.extend(args.iter().cloned());
    run_tool("ovs-vsctl", &full, &ovs_env(dir))
}

/// `ovs-ofctl` against the private ovs-vswitchd of `dir` (its bridges'
/// OpenFlow sockets are in `dir`).
pub(crate) fn ovs_ofctl(dir: &Path, args: &[String]) -> Result<String> {
    run_tool("ovs-ofctl", args, &ovs_env(dir))
}

/// `ovs-appctl` to the private ovs-vswitchd of `dir`.
pub(crate) fn ovs_appctl(dir: &Path, args: &[String]) -> Result<String> {
    let mut full = vec!["-t".into(), path_arg(&dir.join("ovs-vswitchd.ctl"))];
    full.extend(args.iter().cloned());
    run_tool("ovs-appctl", &full, &ovs_env(dir))
}

fn core_mask(core: usize) -> Result<u128> {
    if core >= 128 {
        bail!("core {core}: OVS's PMD mask here takes cores 0 to 127");
    }
    Ok(1u128 << core)
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Run a tool in this (the root) namespace with `envs`; stdout, or an error
/// quoting the command and its stderr.
fn run_tool(program: &str, args: &[String], envs: &[(&str, &Path)]) -> Result<String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Check tools, clean up dead runs, make the run directory, note the
/// interfaces' state, and refuse interfaces that already carry XDP.
fn prepare(spec: &ForwardSpec) -> Result<(String, RunDir, Vec<InterfaceState>)> {
    prepare_run(&spec.netns, &spec.interfaces())
}

/// [`prepare`] for any set of interfaces in `netns`: also used by the
/// `ovs_vxlan` module.
pub(crate) fn prepare_run(
    netns: &Netns,
    interfaces: &[&str],
) -> Result<(String, RunDir, Vec<InterfaceState>)> {
    if let Err(e) = cleanup_stale() {
        eprintln!("external: cleaning up leftovers of dead runs failed: {e:#}");
    }
    let name = format!(
        "{RUN_PREFIX}{}-{}",
        std::process::id(),
        NEXT_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut before = Vec::new();
    for &interface in interfaces {
        let link = link_json(netns, interface)?;
        if let Some(xdp) = attached_xdp(interface, &link) {
            bail!(
                "{interface} in netns {} already has XDP program {} (id {}): stop whatever attached it first",
                netns.name(),
                xdp.program_name,
                xdp.program_id
            );
        }
        before.push(InterfaceState {
            name: interface.to_string(),
            promiscuous: has_flag(&link, "PROMISC"),
        });
    }
    let run_dir = RunDir::create(&name)?;
    Ok((name, run_dir, before))
}

/// `ip -j -n <ns> link show dev <interface>`: the one object.
fn link_json(netns: &Netns, interface: &str) -> Result<serde_json::Value> {
    let out = netns.ip(&["-j", "-d", "link", "show", "dev", interface])?;
    let value: serde_json::Value = serde_json::from_str(&out)
        .with_context(|| format!("cannot parse `ip -j link show dev {interface}`"))?;
    value
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .with_context(|| format!("`ip -j link show dev {interface}` printed no link"))
}

fn has_flag(link: &serde_json::Value, flag: &str) -> bool {
    link.get("flags")
        .and_then(|f| f.as_array())
        .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some(flag)))
}

fn attached_xdp(interface: &str, link: &serde_json::Value) -> Option<AttachedXdp> {
    let xdp = link.get("xdp")?;
    let prog = xdp.get("prog");
    Some(AttachedXdp {
        interface: interface.to_string(),
        program_id: prog
            .and_then(|p| p.get("id"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        program_name: prog
            .and_then(|p| p.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        mode: xdp.get("mode").and_then(|v| v.as_u64()).unwrap_or(0),
    })
}

/// The XDP programs attached to `interfaces` in `netns` (for tests and
/// checks: after a dataplane stopped this must be empty).
pub fn xdp_programs(netns: &Netns, interfaces: &[&str]) -> Result<Vec<AttachedXdp>> {
    let mut found = Vec::new();
    for interface in interfaces {
        let link = link_json(netns, interface)?;
        found.extend(attached_xdp(interface, &link));
    }
    Ok(found)
}

/// Whether process `pid` is alive: some thread of it is not a zombie. (A
/// killed multi-threaded process can show a zombie leader while its other
/// threads still exit.)
pub fn process_alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    })
}

impl ExternalDataplane {
    /// Which dataplane this is.
    pub fn kind(&self) -> ExternalKind {
        self.kind
    }

    /// What it forwards between.
    pub fn spec(&self) -> &ForwardSpec {
        &self.spec
    }

    /// The PIDs of the processes it runs.
    pub fn pids(&self) -> Vec<u32> {
        match &self.engine {
            Some(Engine::Testpmd { daemon, .. }) => vec![daemon.pid()],
            Some(Engine::Ovs(daemons)) => daemons.pids(),
            None => Vec::new(),
        }
    }

    /// The PID of the process whose thread forwards (testpmd, ovs-vswitchd),
    /// e.g. to read its CPU time from `/proc/<pid>/stat`.
    pub fn forwarder_pid(&self) -> Option<u32> {
        self.pids().first().copied()
    }

    /// The temporary directory with its logs (removed when it stops).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir.path
    }

    /// Every file system path it owns (its temporary directory; for
    /// testpmd also DPDK's runtime directory): none exists after it stopped.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.run_dir.path.clone()];
        if let Some(Engine::Testpmd { runtime_dir, .. }) = &self.engine {
            paths.push(runtime_dir.clone());
        }
        paths
    }

    /// How long it took from spawning to forwarding.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Poll `ready` every 100 ms until it says true, an error, or
    /// [`READY_TIMEOUT`]; then check that both interfaces carry an XDP
    /// program. On failure the dataplane is stopped (by the caller's drop).
    fn wait_ready(
        &mut self,
        mut ready: impl FnMut(&mut ExternalDataplane) -> Result<bool>,
    ) -> Result<()> {
        let deadline = self.started_at + READY_TIMEOUT;
        loop {
            if ready(self)? {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start forwarding within {READY_TIMEOUT:?}; logs in {} end:\n{}",
                    self.kind,
                    self.run_dir.path.display(),
                    self.log_tails(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let attached = xdp_programs(&self.spec.netns, &self.spec.interfaces())?;
        if attached.len() != 2 {
            bail!(
                "{} says it forwards, but XDP programs are attached only to {:?}",
                self.kind,
                attached.iter().map(|a| &a.interface).collect::<Vec<_>>()
            );
        }
        self.startup = self.started_at.elapsed();
        Ok(())
    }

    fn log_tails(&self, lines: usize) -> String {
        match &self.engine {
            Some(Engine::Testpmd { daemon, .. }) => daemon.log_tail(lines),
            Some(Engine::Ovs(daemons)) => daemons.log_tail(lines),
            None => String::new(),
        }
    }

    fn vsctl(&self, args: &[String]) -> Result<String> {
        ovs_vsctl(&self.run_dir.path, args)
    }

    fn ofctl(&self, args: &[String]) -> Result<String> {
        ovs_ofctl(&self.run_dir.path, args)
    }

    fn configure_ovs(&mut self) -> Result<()> {
        let s = &self.spec;
        let mut args: Vec<String> = vec![
            "add-br".into(),
            OVS_BRIDGE.into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            OVS_BRIDGE.into(),
            "datapath_type=netdev".into(),
            "fail_mode=secure".into(),
        ];
        for (interface, ofport) in [
            (&s.pod_interface, OVS_POD_PORT),
            (&s.underlay_interface, OVS_UNDERLAY_PORT),
        ] {
            args.extend([
                "--".into(),
                "add-port".into(),
                OVS_BRIDGE.into(),
                interface.clone(),
                "--".into(),
                "set".into(),
                "interface".into(),
                interface.clone(),
                "type=afxdp".into(),
                "options:xdp-mode=native".into(),
                format!("ofport_request={ofport}"),
            ]);
        }
        self.vsctl(&args)?;
        for interface in s.interfaces() {
            let error = self.vsctl(&[
                "get".into(),
                "interface".into(),
                interface.to_string(),
                "error".into(),
            ])?;
            let error = error.trim();
            if !error.is_empty() && error != "[]" {
                bail!("OVS cannot open {interface}: {error}");
            }
        }
        self.ofctl(&["del-flows".into(), OVS_BRIDGE.into()])?;
        let flows = [
            format!(
                "in_port={OVS_POD_PORT},actions=mod_dl_src:{},mod_dl_dst:{},output:{OVS_UNDERLAY_PORT}",
                s.underlay_mac, s.underlay_peer_mac
            ),
            format!(
                "in_port={OVS_UNDERLAY_PORT},actions=mod_dl_src:{},mod_dl_dst:{},output:{OVS_POD_PORT}",
                s.pod_interface_mac, s.pod_mac
            ),
        ];
        for flow in flows {
            self.ofctl(&["add-flow".into(), OVS_BRIDGE.into(), flow])?;
        }
        Ok(())
    }

    fn ovs_counters(&self) -> Result<ForwardCounters> {
        let out = self.ofctl(&["dump-ports".into(), OVS_BRIDGE.into()])?;
        let pmd = ovs_appctl(&self.run_dir.path, &["dpif-netdev/pmd-stats-show".into()])?;
        Ok(ForwardCounters {
            busy_cycles_per_packet: number_after(&pmd, "avg processing cycles per packet:"),
            pod: parse_ovs_port(&out, OVS_POD_PORT).with_context(|| {
                format!("no port {OVS_POD_PORT} in ovs-ofctl dump-ports: {out}")
            })?,
            underlay: parse_ovs_port(&out, OVS_UNDERLAY_PORT).with_context(|| {
                format!("no port {OVS_UNDERLAY_PORT} in ovs-ofctl dump-ports: {out}")
            })?,
        })
    }

    /// Stop it, clean up, and return the counters it kept (testpmd's exit
    /// statistics; OVS's port counters read before its bridge is deleted).
    /// Cleanup runs to the end even when a step fails; the first failure is
    /// returned after it.
    pub fn stop(mut self) -> Result<ForwardCounters> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<ForwardCounters> {
        let Some(engine) = self.engine.take() else {
            return Ok(ForwardCounters::default());
        };
        let mut errors: Vec<String> = Vec::new();
        let mut counters = None;
        match engine {
            Engine::Testpmd {
                mut daemon,
                stdin,
                runtime_dir,
            } => {
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    errors.push(format!(
                        "dpdk-testpmd (pid {}) had exited before the stop ({status})",
                        daemon.pid()
                    ));
                }
                // "Press enter to exit": a newline, then end-of-file.
                if let Some(mut stdin) = stdin {
                    let _ = stdin.write_all(b"\n");
                }
                if !daemon.wait_exit(STOP_TIMEOUT) {
                    errors.push(format!(
                        "dpdk-testpmd (pid {}) did not exit within {STOP_TIMEOUT:?} of its stdin closing",
                        daemon.pid()
                    ));
                    daemon.kill();
                }
                let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
                match parse_testpmd_stats(&log) {
                    Some(c) => counters = Some(c),
                    None if !errors.is_empty() => {}
                    None => errors.push(format!(
                        "no forward statistics in testpmd's output; it ends:\n{}",
                        daemon.log_tail(15)
                    )),
                }
                if runtime_dir.exists() {
                    if let Err(e) = std::fs::remove_dir_all(&runtime_dir) {
                        errors.push(format!("cannot remove {}: {e}", runtime_dir.display()));
                    }
                }
            }
            Engine::Ovs(mut daemons) => {
                if daemons.running() {
                    match self.ovs_counters() {
                        Ok(c) => counters = Some(c),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                errors.extend(daemons.stop(&self.spec.netns, &[OVS_BRIDGE]));
            }
        }
        errors.extend(self.restore_interfaces());
        match errors.first() {
            None => Ok(counters.unwrap_or_default()),
            Some(_) => bail!("stopping {}: {}", self.kind, errors.join("; ")),
        }
    }

    /// Detach XDP programs the dataplane left on its interfaces and turn
    /// promiscuous mode off where it was off before. Returns what went wrong.
    fn restore_interfaces(&self) -> Vec<String> {
        restore_interfaces(
            &self.spec.netns,
            &self.before,
            self.kind == ExternalKind::Ovs,
        )
    }
}

/// Detach XDP programs left on the interfaces of `before` and turn
/// promiscuous mode off where it was off before; `xdp_is_an_error` when
/// the dataplane should have removed its programs itself (OVS does when
/// its ports close). Returns what went wrong.
pub(crate) fn restore_interfaces(
    netns: &Netns,
    before: &[InterfaceState],
    xdp_is_an_error: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    for state in before {
        let link = match link_json(netns, &state.name) {
            Ok(link) => link,
            // The namespace (and the veth) may be gone already.
            Err(_) => continue,
        };
        if let Some(xdp) = attached_xdp(&state.name, &link) {
            // Only the dataplane's leftovers are here: `prepare_run`
            // refused interfaces that had XDP before it started.
            let off: &[&str] = match xdp.mode {
                2 => &["xdpgeneric", "off"],
                4 => &["xdpgeneric", "off", "xdpdrv", "off"],
                _ => &["xdpdrv", "off"],
            };
            let mut args = vec!["link", "set", "dev", &state.name];
            args.extend_from_slice(off);
            if xdp_is_an_error {
                errors.push(format!(
                    "XDP program {} (id {}) stayed on {}; detaching it",
                    xdp.program_name, xdp.program_id, state.name
                ));
            }
            if let Err(e) = netns.ip(&args) {
                errors.push(format!("cannot detach XDP from {}: {e}", state.name));
            }
        }
        if has_flag(&link, "PROMISC") && !state.promiscuous {
            if let Err(e) = netns.ip(&["link", "set", "dev", &state.name, "promisc", "off"]) {
                errors.push(format!("cannot turn promisc off on {}: {e}", state.name));
            }
        }
    }
    errors
}

impl Drop for ExternalDataplane {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("external: {e:#}");
        }
    }
}

/// Parse testpmd's "Forward statistics for port N" blocks (printed when it
/// stops): port 0 is the pod's veth, port 1 the underlay.
fn parse_testpmd_stats(log: &str) -> Option<ForwardCounters> {
    let mut ports = [None, None];
    let mut current: Option<usize> = None;
    for line in log.lines() {
        if let Some(rest) = line.split("Forward statistics for port").nth(1) {
            current = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < 2);
            if let Some(n) = current {
                ports[n] = Some(PortCounters::default());
            }
            continue;
        }
        let Some(n) = current else { continue };
        let Some(Some(port)) = ports.get_mut(n) else {
            continue;
        };
        let fields = key_values(line, ':');
        for (key, value) in fields {
            match key.as_str() {
                "RX-packets" => port.rx_packets = value,
                "RX-dropped" => port.rx_dropped = value,
                "TX-packets" => port.tx_packets = value,
                "TX-dropped" => port.tx_dropped = value,
                _ => {}
            }
        }
        if line.contains("-----------------------------------") && !line.contains("Forward") {
            current = None;
        }
    }
    Some(ForwardCounters {
        pod: ports[0]?,
        underlay: ports[1]?,
        busy_cycles_per_packet: number_after(log, "CPU cycles/packet="),
    })
}

/// The number right after the first `label` in `text`, if it parses and is
/// finite (`nan`, printed for zero packets, is not).
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = text.split(label).nth(1)?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `KEY: 12  KEY2: 34` (or `key=12, key2=34`) → pairs with numeric values.
fn key_values(line: &str, separator: char) -> Vec<(String, u64)> {
    let tokens: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if let Some((key, value)) = token.split_once(separator) {
            if value.is_empty() {
                // `KEY: value` with the value in the next token.
                if let Some(v) = tokens.get(i + 1).and_then(|v| v.parse().ok()) {
                    pairs.push((key.to_string(), v));
                    i += 1;
                }
            } else if let Ok(v) = value.parse() {
                pairs.push((key.to_string(), v));
            }
        }
        i += 1;
    }
    pairs
}

/// Parse one port of `ovs-ofctl dump-ports`:
///
/// ```text
///   port  1: rx pkts=101, bytes=6070, drop=0, errs=0, frame=0, over=0, crc=0
///            tx pkts=3, bytes=250, drop=0, errs=0, coll=0
/// ```
fn parse_ovs_port(dump: &str, port: u16) -> Option<PortCounters> {
    let mut lines = dump.lines();
    let header = format!("port {port}:");
    while let Some(line) = lines.next() {
        let squeezed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(rx) = squeezed.strip_prefix(&header) else {
            continue;
        };
        let tx = lines.next()?;
        let rx = key_values(rx, '=');
        let tx = key_values(tx, '=');
        let get = |pairs: &[(String, u64)], key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .unwrap_or(0)
        };
        return Some(PortCounters {
            rx_packets: get(&rx, "pkts"),
            rx_dropped: get(&rx, "drop"),
            tx_packets: get(&tx, "pkts"),
            tx_dropped: get(&tx, "drop"),
        });
    }
    None
}

/// Remove what runs of dead processes left: their temporary directories
/// (after killing, by the PIDs in their pid files, OVS daemons still running
/// from them) and DPDK runtime directories `/var/run/dpdk/kxdp-external-…`.
/// Never touches runs of live processes. Returns what was removed.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for base in [std::env::temp_dir(), PathBuf::from(DPDK_RUNTIME_DIR)] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = run_owner(&file_name) else {
                continue;
            };
            if Path::new("/proc").join(owner.to_string()).exists() {
                continue;
            }
            let dir = entry.path();
            for pidfile in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
                kill_stale_daemon(&dir, pidfile);
            }
            if std::fs::remove_dir_all(&dir).is_ok() {
                removed.push(dir.display().to_string());
            }
        }
    }
    Ok(removed)
}

/// The pid in a run name `kxdp-external-<pid>-<seq>`.
fn run_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(RUN_PREFIX)?;
    let (pid, seq) = rest.split_once('-')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Kill the daemon whose pid file is `dir/pidfile`, if that PID still runs a
/// process whose command line names `dir` (so a reused PID is left alone).
fn kill_stale_daemon(dir: &Path, pidfile: &str) {
    let Ok(text) = std::fs::read_to_string(dir.join(pidfile)) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    if !cmdline.contains(&*dir.to_string_lossy()) {
        return;
    }
    eprintln!(
        "external: killing {pidfile} pid {pid} left by a dead run in {}",
        dir.display()
    );
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TESTPMD_EXIT: &str = "\
Telling cores to stop...
Waiting for lcores to finish...

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 100            RX-dropped: 3             RX-total: 103
  TX-packets: 1              TX-dropped: 0             TX-total: 1
  ----------------------------------------------------------------------------

  ---------------------- Forward statistics for port 1  ----------------------
  RX-packets: 1              RX-dropped: 0             RX-total: 1
  TX-packets: 98             TX-dropped: 2             TX-total: 100
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 101            RX-dropped: 3             RX-total: 104
  TX-packets: 99             TX-dropped: 2             TX-total: 101
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++

  CPU cycles/packet=86.19 (total cycles=946686 / total mac packets=109) at 2600 MHz Clock
";

    #[test]
    fn parses_testpmd_exit_statistics() {
        let c = parse_testpmd_stats(TESTPMD_EXIT).unwrap();
        assert_eq!(
            c.pod,
            PortCounters {
                rx_packets: 100,
                rx_dropped: 3,
                tx_packets: 1,
                tx_dropped: 0
            }
        );
        assert_eq!(
            c.underlay,
            PortCounters {
                rx_packets: 1,
                rx_dropped: 0,
                tx_packets: 98,
                tx_dropped: 2
            }
        );
        assert_eq!(c.busy_cycles_per_packet, Some(86.19));
        assert_eq!(parse_testpmd_stats("Press enter to exit\n"), None);
    }

    #[test]
    fn parses_ovs_dump_ports() {
        let dump = "OFPST_PORT reply (xid=0x2): 3 ports
  port LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
  port  2: rx pkts=3, bytes=250, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=101, bytes=6070, drop=7, errs=0, coll=0
  port  1: rx pkts=101, bytes=6070, drop=4, errs=0, frame=0, over=0, crc=0
           tx pkts=3, bytes=250, drop=0, errs=0, coll=0
";
        assert_eq!(
            parse_ovs_port(dump, 1),
            Some(PortCounters {
                rx_packets: 101,
                rx_dropped: 4,
                tx_packets: 3,
                tx_dropped: 0
            })
        );
        assert_eq!(parse_ovs_port(dump, 2).unwrap().tx_dropped, 7);
        assert_eq!(parse_ovs_port(dump, 3), None);
    }

    #[test]
    fn reads_xdp_and_flags_from_ip_json() {
        let link: serde_json::Value = serde_json::from_str(
            r#"{"ifname":"vpa","flags":["BROADCAST","PROMISC","UP"],
                "xdp":{"mode":1,"prog":{"id":228,"name":"xsk_def_prog","tag":"dc1b","jited":1}}}"#,
        )
        .unwrap();
        assert!(has_flag(&link, "PROMISC"));
        assert!(!has_flag(&link, "NOARP"));
        let xdp = attached_xdp("vpa", &link).unwrap();
        assert_eq!(xdp.program_id, 228);
        assert_eq!(xdp.program_name, "xsk_def_prog");
        assert_eq!(xdp.mode, 1);
        let bare: serde_json::Value = serde_json::from_str(r#"{"ifname":"vpa"}"#).unwrap();
        assert_eq!(attached_xdp("vpa", &bare), None);
        assert!(!has_flag(&bare, "PROMISC"));
    }

    #[test]
    fn run_names_carry_their_owner() {
        assert_eq!(run_owner("kxdp-external-1234-0"), Some(1234));
        assert_eq!(run_owner("kxdp-external-1234-"), None);
        assert_eq!(run_owner("kxdp-external-x-1"), None);
        assert_eq!(run_owner("kxdp-testbed-kx1-2"), None);
    }

    #[test]
    fn key_values_take_both_spellings() {
        assert_eq!(
            key_values("  RX-packets: 5   RX-dropped: 6", ':'),
            vec![("RX-packets".to_string(), 5), ("RX-dropped".to_string(), 6)]
        );
        assert_eq!(
            key_values("tx pkts=3, bytes=250, drop=x", '='),
            vec![("pkts".to_string(), 3), ("bytes".to_string(), 250)]
        );
    }

    #[test]
    fn numbers_after_labels() {
        let pmd = "  avg cycles per packet: 2642245.32 (13020984925/4928)\n  avg processing cycles per packet: 19526.61 (96227144/4928)\n";
        assert_eq!(
            number_after(pmd, "avg processing cycles per packet:"),
            Some(19526.61)
        );
        assert_eq!(
            number_after("CPU cycles/packet=nan (total", "CPU cycles/packet="),
            None
        );
        assert_eq!(number_after("nothing here", "CPU cycles/packet="), None);
    }

    #[test]
    fn core_masks() {
        assert_eq!(core_mask(0).unwrap(), 1);
        assert_eq!(core_mask(5).unwrap(), 32);
        assert!(core_mask(128).is_err());
    }

    #[test]
    fn own_process_is_alive() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(4_294_967));
    }
}
