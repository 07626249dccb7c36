//! The node under test: `kxdp bench`'s headline table.
//!
//! Every row builds the same two-node testbed on a direct underlay veth and
//! swaps only node1's dataplane, the node under test. **Node2 is always a
//! kernel VXLAN node in Flannel's layout** (a `cni0` bridge, `flannel.1`,
//! static routes, neighbours and fdb entries; VNI 1 as Flannel's default),
//! identical in every row but `routed`, whose host-gw layout needs both
//! nodes routed. A kernel node needs no core of its own; a kxdp node, as in
//! production NFV, gets one: node1's kxdp worker has core 1 to itself.
//!
//! Rows ([`NutRow`]), interleaved round by round (A B C … A B C):
//! - `kernel-vxlan`: node1 a Flannel kernel node too, every offload at the
//!   kernel's default on both nodes: the kernel as deployed;
//! - `kernel-vxlan-tx-off`: the same with the setting the kxdp rows need,
//!   transmit offloads off on both nodes' `ul0` (node2's so that kxdp
//!   receives finished checksums, as from a NIC on a wire): what that
//!   setting costs the kernel;
//! - `kernel-vxlan-tuned`: `kernel-vxlan` (default offloads) with the knob
//!   the issue weighed for kxdp (measured on kxdp's pod veths it livelocks
//!   the worker, so kxdp does without; see the README): on node1, threaded
//!   NAPI for the host ends of the
//!   pod veths and for `ul0` (GRO switched on, as a veth has NAPI only with
//!   GRO on or an XDP program), the NAPI threads pinned to the worker core
//!   at SCHED_FIFO (as in the `rate` module). With the kernel's default
//!   offloads the threads get few frames: a veth hands its peer's NAPI
//!   only what it sends without TSO (or from a local socket, with UDP GRO
//!   forwarding on the receiver), and the pods and node2's `ul0` send with
//!   TSO on; of this table's traffic only the packet-rate generator's
//!   (encap; its pod's veth has tx off) reaches them;
//! - `routed`: both nodes host-gw, no overlay (reference only);
//! - `kxdp`: node1 runs kxdp with one busy-polling worker on core 1;
//! - `kxdp-pod-napi`: the `kxdp` row with `workers.pod_napi: worker-core`
//!   in node1's configuration: kxdp puts its pod veths in threaded NAPI
//!   mode and pins their NAPI threads to the worker's core at SCHED_OTHER,
//!   so the pods' XDP redirect and copy into the UMEM run beside the
//!   worker instead of in the pods' softirq on core 0;
//! - `kxdp-adaptive`: the same with an adaptive worker;
//! - `ovs-vxlan`: node1 is Open vSwitch's userspace datapath doing kxdp's
//!   job (the `ovs_vxlan` module): the pods' veths and `ul0` as `afxdp`
//!   ports, a VXLAN tunnel port to node2 (OVS native tunnelling, the VTEP
//!   on `br-phy`), L3 by OpenFlow, its PMD thread on core 1; listed as not
//!   measured, with the reason, where OVS is not installed.
//!
//! Per row and round, in one testbed: UDP request/response latency (the
//! `latency` module: client pod on node1, echo server pod on node2,
//! blocking and spinning client, at a low rate and under a background
//! stream from a loader pod on node1 to a sink pod on node2), TCP goodput
//! in each direction (node1 → node2 and node2 → node1, one connection, pod
//! to pod), and the 64-byte packet rate in each direction
//! ([`RateDirection`]), with the AF_XDP generator and the XDP counting sink
//! of the `generator` module on the background stream's two pods:
//! - `encap`: the generator in the loader pod (node1) sends to the sink
//!   pod's address; the counting sink sits on node2's `ul0` and counts what
//!   node1 forwarded (node2's stack is not involved);
//! - `decap`: the generator in the sink pod (node2) sends to the loader
//!   pod; the counting sink sits on the loader pod's `eth0`.
//!
//! A veth hands frames to its peer's NAPI (where native XDP and NAPI
//! threads act) only if it sends them without TSO or they come from a
//! local socket (`veth_skb_is_eligible_for_gro`). So for the rate
//! measurement both pods' veths get transmit offloads off at both ends (as
//! kxdp's CNI does for a pod; it changes nothing for the latency and TCP
//! pods, measured before), and the `encap` sink is attached in generic
//! mode where node1's `ul0` keeps the kernel's default offloads (TSO on);
//! elsewhere it is native with its NAPI in a thread on core 0. Figures per
//! direction, median [min–max] over rounds ([`RateFigures`]): generator tx
//! rate, received at the sink, loss, node1's rate per busy core-second and
//! its CPU seconds per million packets received ([`Node1Work`] says which
//! busy time is node1's: the worker core for kxdp, softirq time for a
//! kernel node, its NAPI threads' core plus the softirq elsewhere for the
//! tuned one).
//!
//! Cores (2-core machine): everything this process starts (client, echo
//! server, background stream and its sink, TCP sender and receiver, the
//! packet-rate generator, kxdp's non-worker threads, ovs-vswitchd's
//! non-PMD threads) runs on core 0; node1's kxdp worker or OVS PMD thread
//! on core 1. The kernel's veth, bridge, routing and vxlan work runs in the
//! softirq of the core that transmitted into the veth: core 0 for what the
//! pods send, core 1 for what kxdp's worker or OVS's PMD sends (its
//! copy-mode `sendto`), unless the receiving veth's NAPI is threaded (the
//! tuned row's node1, the native counting sinks) or RPS steers it. Node2
//! is the peer, not the node under test, so its `ul0` steers its receive
//! to core 0 with RPS in every row: otherwise node2's whole receive of what
//! node1's worker sends (vxlan decap, bridge, its pod's TCP) runs inside
//! the worker's `sendto` on core 1, the core "nothing else uses" (a
//! profile of kxdp's TCP showed it at three quarters of core 1, with core
//! 0 half idle). `--no-node2-rps` leaves it there, for comparison. Each
//! row lists where each piece ran (`placement`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use kxdp_config::{PodNapi, PollMode, WorkerSpec};
use kxdp_dataplane::bpf::XdpAttachMode;
use kxdp_testbed::{
    pod_ip, tcp_transfer, KxdpProcess, NodeKind, NodeSpec, Pod, Testbed, TopologySpec, Underlay,
    UnderlayOffloads, CNI_BRIDGE, POD_IF, UNDERLAY_IF,
};
use serde::Serialize;

use crate::external::ExternalKind;
use crate::figures::{self, LatencyFigures};
use crate::generator::{FlowSpec, Generator, GeneratorOptions, Sink};
use crate::hops;
use crate::latency::{self, LatencyCase, LatencyOptions, LatencyPods, LatencySample, Spread};
use crate::ovs_vxlan::{start_ovs_vxlan, OvsVxlanNode, OvsVxlanSpec};
use crate::profile::{self, Profile};
use crate::rate::{self, CoreLoad, CpuTimes};

/// The tenant and its VNI (Flannel's default VNI: device `flannel.1`).
const TENANT: &str = "blue";
const VNI: u32 = 1;
/// Packet rate: frame length handed to the interface (no FCS), flows
/// (distinct UDP source ports), UDP ports (discard), as in `rate`.
const RATE_FRAME_BYTES: usize = 64;
const RATE_FLOWS: u16 = 8;
const RATE_SRC_PORT: u16 = 40000;
const RATE_DST_PORT: u16 = 9;

/// What node1, the node under test, runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NutRow {
    /// A Flannel kernel VXLAN node, every offload at its default on both
    /// nodes (the baseline).
    KernelVxlan,
    /// The same with transmit offloads off on both nodes' underlay, the
    /// setting the kxdp rows need.
    KernelVxlanTxOff,
    /// The baseline with threaded NAPI on node1's pod veths (host ends)
    /// and `ul0`, pinned to the worker core.
    KernelVxlanTuned,
    /// Both nodes host-gw, no overlay (reference only).
    Routed,
    /// kxdp, one busy-polling worker on the worker core.
    Kxdp,
    /// The `kxdp` row with `workers.pod_napi: worker-core`: the pod veths'
    /// NAPI threads beside the worker on its core.
    KxdpPodNapi,
    /// kxdp, one adaptive worker on the worker core.
    KxdpAdaptive,
    /// Open vSwitch's userspace datapath with afxdp ports and a VXLAN
    /// tunnel port, its PMD thread on the worker core.
    OvsVxlan,
}

impl NutRow {
    /// Every row, in round and table order.
    pub const ALL: [NutRow; 8] = [
        NutRow::KernelVxlan,
        NutRow::KernelVxlanTxOff,
        NutRow::KernelVxlanTuned,
        NutRow::Routed,
        NutRow::Kxdp,
        NutRow::KxdpPodNapi,
        NutRow::KxdpAdaptive,
        NutRow::OvsVxlan,
    ];

    /// Label in tables and file names.
    pub fn label(self) -> &'static str {
        match self {
            NutRow::KernelVxlan => "kernel-vxlan",
            NutRow::KernelVxlanTxOff => "kernel-vxlan-tx-off",
            NutRow::KernelVxlanTuned => "kernel-vxlan-tuned",
            NutRow::Routed => "routed",
            NutRow::Kxdp => "kxdp",
            NutRow::KxdpPodNapi => "kxdp-pod-napi",
            NutRow::KxdpAdaptive => "kxdp-adaptive",
            NutRow::OvsVxlan => "ovs-vxlan",
        }
    }

    /// Why this row cannot be measured on this machine, if it cannot
    /// (`ovs-vxlan` where Open vSwitch is not installed).
    pub fn not_measured(self) -> Option<String> {
        match self {
            NutRow::OvsVxlan => ExternalKind::Ovs
                .check_installed()
                .err()
                .map(|why| format!("ovs-vswitchd not installed: {why}")),
            _ => None,
        }
    }

    fn node1_kind(self) -> NodeKind {
        match self {
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff | NutRow::KernelVxlanTuned => {
                NodeKind::KernelVxlan
            }
            NutRow::Routed => NodeKind::Routed,
            NutRow::Kxdp | NutRow::KxdpPodNapi | NutRow::KxdpAdaptive | NutRow::OvsVxlan => {
                NodeKind::Kxdp
            }
        }
    }

    fn node2_kind(self) -> NodeKind {
        match self {
            NutRow::Routed => NodeKind::Routed,
            _ => NodeKind::KernelVxlan,
        }
    }

    /// Offloads of node1's and node2's `ul0`.
    fn offloads(self) -> (UnderlayOffloads, UnderlayOffloads) {
        match self {
            NutRow::KernelVxlan | NutRow::KernelVxlanTuned | NutRow::Routed => (
                UnderlayOffloads::KernelDefault,
                UnderlayOffloads::KernelDefault,
            ),
            NutRow::KernelVxlanTxOff
            | NutRow::Kxdp
            | NutRow::KxdpPodNapi
            | NutRow::KxdpAdaptive
            | NutRow::OvsVxlan => (UnderlayOffloads::TxOff, UnderlayOffloads::TxOff),
        }
    }

    /// Whether the bench gives node1's pod veths (host ends) and `ul0`
    /// threaded NAPI on the worker core (`kxdp-pod-napi` has kxdp do it
    /// for its pod veths: [`NutRow::pod_napi`]).
    fn threaded_napi(self) -> bool {
        self == NutRow::KernelVxlanTuned
    }

    /// Whose busy time is node1's in the packet-rate figures.
    fn node1_work(self, worker_core: usize) -> Node1Work {
        match self {
            NutRow::Kxdp | NutRow::KxdpPodNapi | NutRow::KxdpAdaptive | NutRow::OvsVxlan => {
                Node1Work::Worker(worker_core)
            }
            NutRow::KernelVxlanTuned => Node1Work::NapiThreads(worker_core),
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff | NutRow::Routed => Node1Work::Softirq,
        }
    }

    /// The XDP mode of the packet-rate sink in `direction`: generic on
    /// node2's `ul0` when node1's `ul0` sends with TSO on (native XDP would
    /// not see the frames; see [`Sink::attach_in_mode`]), native elsewhere.
    fn sink_mode(self, direction: RateDirection) -> XdpAttachMode {
        match direction {
            RateDirection::Encap if self.offloads().0 == UnderlayOffloads::KernelDefault => {
                XdpAttachMode::Generic
            }
            _ => XdpAttachMode::Native,
        }
    }

    /// Where the packet-rate sink in `direction` sits and runs, in words.
    fn sink_description(self, direction: RateDirection, other_core: usize) -> String {
        let place = match direction {
            RateDirection::Encap => "node2/ul0",
            RateDirection::Decap => "loader pod's eth0",
        };
        match self.sink_mode(direction) {
            XdpAttachMode::Generic => format!(
                "{place} (generic XDP, in the backlog of core {other_core}: RPS on node2's ul0)"
            ),
            _ => format!("{place} (native XDP, NAPI thread on core {other_core})"),
        }
    }

    fn poll_mode(self) -> Option<PollMode> {
        match self {
            NutRow::Kxdp | NutRow::KxdpPodNapi => Some(PollMode::Busy),
            NutRow::KxdpAdaptive => Some(PollMode::Adaptive),
            _ => None,
        }
    }

    /// `workers.pod_napi` of node1's kxdp.
    fn pod_napi(self) -> PodNapi {
        match self {
            NutRow::KxdpPodNapi => PodNapi::WorkerCore,
            _ => PodNapi::Kernel,
        }
    }

    /// What node1 and node2 are in this row, in words.
    fn nodes(self, worker_core: usize) -> (String, String) {
        let (o1, o2) = self.offloads();
        let node1 = match self {
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff => {
                format!("kernel vxlan (Flannel), ul0 offloads {}", o1.label())
            }
            NutRow::KernelVxlanTuned => format!(
                "kernel vxlan (Flannel), ul0 offloads {}, threaded NAPI (GRO on) for the pod \
                 veths' host ends and ul0, pinned to core {worker_core}",
                o1.label()
            ),
            NutRow::Routed => format!("kernel host-gw, ul0 offloads {}", o1.label()),
            NutRow::Kxdp | NutRow::KxdpPodNapi | NutRow::KxdpAdaptive => {
                let pod_napi = match self.pod_napi() {
                    PodNapi::WorkerCore => format!(
                        ", pod_napi worker-core (the pod veths' NAPI threads on core \
                         {worker_core}, SCHED_OTHER)"
                    ),
                    PodNapi::Kernel => String::new(),
                };
                format!(
                    "kxdp, 1 {} worker on core {worker_core}{pod_napi}, ul0 offloads {}",
                    mode_label(self.poll_mode()),
                    o1.label()
                )
            }
            NutRow::OvsVxlan => format!(
                "Open vSwitch userspace datapath (netdev), afxdp ports (native, copy mode), \
                 VXLAN tunnel port, 1 PMD thread on core {worker_core}, ul0 offloads {}",
                o1.label()
            ),
        };
        let node2 = match self.node2_kind() {
            NodeKind::Routed => format!("kernel host-gw (reference), ul0 offloads {}", o2.label()),
            _ => format!("kernel vxlan (Flannel), ul0 offloads {}", o2.label()),
        };
        (node1, node2)
    }

    /// The topology of this row: client and loader pods on node1, server
    /// and sink pods on node2.
    fn topology(self, worker_core: usize) -> TopologySpec {
        let (o1, o2) = self.offloads();
        let mut node1 = NodeSpec::new("node1", self.node1_kind())
            .with_pod("client", TENANT, pod_ip(1, 10))
            .with_pod("loader", TENANT, pod_ip(1, 11))
            .with_underlay_offloads(o1);
        if let Some(mode) = self.poll_mode() {
            node1.workers = WorkerSpec {
                count: 1,
                cores: vec![worker_core],
                poll_mode: mode,
                pod_napi: self.pod_napi(),
                ..WorkerSpec::default()
            };
        }
        let node2 = NodeSpec::new("node2", self.node2_kind())
            .with_pod("server", TENANT, pod_ip(2, 10))
            .with_pod("sink", TENANT, pod_ip(2, 11))
            .with_underlay_offloads(o2);
        TopologySpec::new(Underlay::Direct, &[(TENANT, VNI)])
            .with_node(node1)
            .with_node(node2)
    }

    /// Where each piece runs in this row.
    fn placement(self, worker_core: usize, other_core: usize) -> Vec<String> {
        let mut placement = vec![format!(
            "core {other_core}: client, echo server, background stream and its sink, \
             TCP sender and receiver, packet-rate generator (this process; the spinning \
             client at nice 19)"
        )];
        match self {
            NutRow::Kxdp | NutRow::KxdpPodNapi | NutRow::KxdpAdaptive => {
                let pod_napi = self.pod_napi() == PodNapi::WorkerCore;
                placement.push(if pod_napi {
                    format!(
                        "core {worker_core}: node1 kxdp worker ({} poll) and, beside it at \
                         SCHED_OTHER, the NAPI threads of node1's pod veths (host ends; set by \
                         kxdp's pod_napi worker-core): the pods' XDP redirect and copy into \
                         the worker's UMEM",
                        mode_label(self.poll_mode())
                    )
                } else {
                    format!(
                        "core {worker_core}: node1 kxdp worker ({} poll), nothing else scheduled",
                        mode_label(self.poll_mode())
                    )
                });
                placement.push(format!(
                    "core {worker_core}: in the worker's copy-mode transmits, the skb copy and \
                     the veth hand-over; on a pod veth, the node1 pod's receive (softirq)"
                ));
                let pod_redirect = if pod_napi {
                    ""
                } else {
                    " node1's pod-veth XDP redirect into the worker's socket,"
                };
                placement.push(format!(
                    "core {other_core}: kxdp's other threads (control, API); node2's receive \
                     of the worker's frames on ul0 (RPS: vxlan decap, bridge, the pod's \
                     stack); softirq of the pods' transmits:{pod_redirect} node2's bridge, \
                     routing and vxlan encap, node1's ul0 XDP redirect"
                ));
            }
            NutRow::KernelVxlanTuned => {
                placement.push(format!(
                    "core {worker_core}: NAPI threads (SCHED_FIFO) of node1's pod veths (host \
                     ends) and ul0: node1's bridge, routing, vxlan for the frames their peers \
                     hand to NAPI, those sent without TSO: here only the packet-rate \
                     generator's in encap (its pod's veth has tx off)"
                ));
                placement.push(format!(
                    "core {other_core}: softirq of the pods' transmits: node2's bridge, routing, \
                     vxlan (node2's receive on ul0 by RPS); node1's work on the frames that \
                     bypass its NAPI threads: the pods' sockets and node2's ul0 send with TSO \
                     on (latency, TCP, packet-rate decap)"
                ));
            }
            NutRow::KernelVxlan | NutRow::KernelVxlanTxOff | NutRow::Routed => {
                placement.push(format!(
                    "core {other_core}: softirq of the pods' transmits: both nodes' bridge, \
                     routing{} (veth receive runs on the transmitting core)",
                    if self == NutRow::Routed {
                        ""
                    } else {
                        ", vxlan encap and decap"
                    }
                ));
                placement.push(format!(
                    "core {worker_core}: nothing of the bench (a kernel node needs no core of its own)"
                ));
            }
            NutRow::OvsVxlan => {
                placement.push(format!(
                    "core {worker_core}: node1 ovs-vswitchd's PMD thread (busy poll of every \
                     afxdp port: the pods' veths and ul0; OpenFlow, VXLAN push and pop)"
                ));
                placement.push(format!(
                    "core {worker_core}: in the PMD's copy-mode transmits, the skb copy and \
                     the veth hand-over; on a pod veth, the node1 pod's receive (softirq)"
                ));
                placement.push(format!(
                    "core {other_core}: node2's receive of the PMD's frames on ul0 (RPS: vxlan \
                     decap, bridge, the pod's stack); ovs-vswitchd's other threads (main, handlers for \
                     datapath misses, revalidators) and ovsdb-server; softirq of the pods' \
                     transmits: node1's pod-veth and ul0 XDP redirect into OVS's afxdp \
                     sockets (NAPI of the transmitting core), node2's bridge, routing and \
                     vxlan encap"
                ));
            }
        }
        if self.not_measured().is_none() {
            let sinks: Vec<String> = RateDirection::ALL
                .into_iter()
                .map(|d| format!("{} {}", d.label(), self.sink_description(d, other_core)))
                .collect();
            placement.push(format!("packet-rate sinks: {}", sinks.join("; ")));
            placement.push(format!(
                "packet rate, node1's busy time: {}",
                self.node1_work(worker_core).describe()
            ));
        }
        placement
    }
}

/// Direction of a packet-rate measurement; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateDirection {
    /// Generator in a node1 pod, sink on node2's `ul0`: node1 takes frames
    /// from a pod and sends them to node2 (encapsulated, but in `routed`).
    Encap,
    /// Generator in a node2 pod, sink on the node1 pod's `eth0`: node1
    /// takes frames from node2 and delivers them to the pod.
    Decap,
}

impl RateDirection {
    /// Both, in table order.
    pub const ALL: [RateDirection; 2] = [RateDirection::Encap, RateDirection::Decap];

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            RateDirection::Encap => "encap",
            RateDirection::Decap => "decap",
        }
    }
}

/// Which busy time counts as node1's in the packet-rate figures (shares
/// from /proc/stat, less the time of processes at a positive nice value:
/// on this shared machine, other people's builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node1Work {
    /// kxdp (or OVS): its worker's (PMD thread's) core. The XDP redirect
    /// into the worker's socket runs in the softirq of the core that
    /// transmitted into node1's veth and is not counted (as in the `rate`
    /// module).
    Worker(usize),
    /// A kernel node: softirq time of every core, where the kernel ran
    /// node1's bridge, routing and vxlan (in the softirq of the core that
    /// transmitted); it includes the sink's receive and, in `decap`,
    /// node2's encapsulation, which runs in the same softirq.
    Softirq,
    /// A kernel node with threaded NAPI: the NAPI threads' core, plus
    /// softirq time of the other cores (frames the threads do not get).
    NapiThreads(usize),
}

impl Node1Work {
    /// Busy core-seconds per second of node1's work, given each core's load.
    pub fn busy_share(self, loads: &[CoreLoad]) -> f64 {
        let own = |core: usize| {
            loads
                .iter()
                .find(|l| l.core == core)
                .map_or(0.0, |l| (l.busy - l.nice).max(0.0))
        };
        let softirq_but = |skip: Option<usize>| -> f64 {
            loads
                .iter()
                .filter(|l| Some(l.core) != skip)
                .map(|l| l.softirq)
                .sum()
        };
        match self {
            Node1Work::Worker(core) => own(core),
            Node1Work::Softirq => softirq_but(None),
            Node1Work::NapiThreads(core) => own(core) + softirq_but(Some(core)),
        }
    }

    /// In words, for the placement.
    fn describe(self) -> String {
        match self {
            Node1Work::Worker(core) => format!(
                "busy time of core {core} (the kxdp worker or OVS PMD thread) less nice time; \
                 the XDP redirect into its socket, in the transmitting core's softirq, is not \
                 counted"
            ),
            Node1Work::Softirq => "softirq time of every core (node1's bridge, routing, vxlan; \
                 with the sink's receive and, in decap, node2's encapsulation in the same softirq)"
                .to_string(),
            Node1Work::NapiThreads(core) => format!(
                "busy time of core {core} (node1's NAPI threads) less nice time, plus softirq \
                 time of the other cores (frames that bypass the threads)"
            ),
        }
    }
}

fn mode_label(mode: Option<PollMode>) -> &'static str {
    match mode {
        Some(PollMode::Busy) => "busy",
        Some(PollMode::Adaptive) => "adaptive",
        _ => "-",
    }
}

impl std::str::FromStr for NutRow {
    type Err = String;

    /// A row by its [label](NutRow::label).
    fn from_str(s: &str) -> Result<NutRow, String> {
        crate::by_label(&NutRow::ALL, NutRow::label, "row", s)
    }
}

/// Parameters of a node-under-test run.
#[derive(Clone, Debug)]
pub struct NutOptions {
    /// Rounds (each measured row once per round), at least 1.
    pub rounds: usize,
    /// Latency probes, pacing and background stream.
    pub latency: LatencyOptions,
    /// Bytes of each TCP transfer (one per direction).
    pub tcp_bytes: u64,
    /// Where the HdrHistogram logs and plots go.
    pub out_dir: PathBuf,
    /// The kxdp binary.
    pub kxdp: PathBuf,
    /// Core of node1's kxdp worker, which nothing else uses.
    pub worker_core: usize,
    /// Core of everything else.
    pub other_core: usize,
    /// Rows, in round order (default [`NutRow::ALL`]).
    pub rows: Vec<NutRow>,
    /// Seconds of each packet-rate window (one per direction and round).
    pub rate_seconds: f64,
    /// Seconds the generator runs before the window opens.
    pub rate_warmup: f64,
    /// Where set, a system-wide `perf record` (the `profile` module) of
    /// each row's TCP transfers and packet-rate windows goes here, as
    /// `<row>-r<round>-<phase>.data` with a per-core report beside it,
    /// and the `hops` trace of one extra blocking/low case per row and
    /// round (`<row>-r<round>-latency-hops.data`, report beside it).
    pub profile: Option<PathBuf>,
    /// Steer node2's receive to `other_core` with RPS on its `ul0` (the
    /// default): node2 is the peer, not the node under test, and must not
    /// run on the worker core. `false` leaves it on whichever core sent
    /// the frame (the worker core for what kxdp or OVS sends), for A/B.
    pub node2_rps: bool,
    /// Where set, the TCP congestion control every pod's namespace uses
    /// (its `net.ipv4.tcp_congestion_control`, written before the
    /// transfers); unset, each namespace keeps what it inherited from the
    /// machine's own setting. The table names the one used either way.
    pub tcp_congestion: Option<String>,
}

/// One row's figures over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct NutRowFigures {
    /// The row.
    pub row: NutRow,
    /// Node1, the node under test, in words.
    pub node1: String,
    /// Node2, the peer, in words.
    pub node2: String,
    /// Why the row was not measured (then every figure list is empty).
    pub not_measured: Option<String>,
    /// Latency per case ([`LatencyCase::ALL`] order).
    pub latency: Vec<LatencyFigures>,
    /// TCP goodput pod to pod, node1 → node2, Gbit/s.
    pub tcp_node1_to_node2_gbps: Spread,
    /// TCP goodput pod to pod, node2 → node1, Gbit/s.
    pub tcp_node2_to_node1_gbps: Spread,
    /// Segments the node1 → node2 sender retransmitted, % of those it sent
    /// (its namespace's `Tcp: RetransSegs / OutSegs`).
    pub tcp_node1_to_node2_retrans_percent: Spread,
    /// The same for node2 → node1.
    pub tcp_node2_to_node1_retrans_percent: Spread,
    /// 64-byte packet rate per direction ([`RateDirection::ALL`] order).
    pub rate: Vec<RateFigures>,
    /// What ran where.
    pub placement: Vec<String>,
}

/// One direction's packet rate over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct RateFigures {
    /// The direction.
    pub direction: RateDirection,
    /// Where the counting sink sat, and how it ran.
    pub sink: String,
    /// Frames the generator's socket completed, kpps.
    pub generator_tx_kpps: Spread,
    /// Frames at the sink, kpps.
    pub received_kpps: Spread,
    /// 1 − received / generated, percent.
    pub loss_percent: Spread,
    /// Received per busy core-second of node1's work ([`Node1Work`]), kpps.
    pub node1_per_core_kpps: Spread,
    /// Busy core-seconds of node1's work per million packets received.
    pub node1_cpu_s_per_mpkt: Spread,
}

/// kxdp over another row, per direction (medians).
#[derive(Clone, Debug, Serialize)]
pub struct RateRatio {
    /// The direction.
    pub direction: RateDirection,
    /// The row kxdp is compared with.
    pub against: NutRow,
    /// Received kpps, kxdp / `against`.
    pub received: f64,
    /// Node1 per-core rate, kxdp / `against`.
    pub per_core: f64,
}

/// The whole node-under-test run.
#[derive(Clone, Debug, Serialize)]
pub struct NutReport {
    /// Rounds made.
    pub rounds: usize,
    /// Probes per latency case and round.
    pub probes: u64,
    /// Background stream in the loaded cases, datagrams/s.
    pub load_pps: u64,
    /// Bytes per TCP transfer.
    pub tcp_bytes: u64,
    /// The TCP congestion control the senders used, as their namespaces
    /// reported it (distinct values joined by ", ", should rows differ).
    pub tcp_congestion_control: String,
    /// Whether it was asked for (`--tcp-cc`) rather than inherited from
    /// the machine's `net.ipv4.tcp_congestion_control`.
    pub tcp_congestion_chosen: bool,
    /// Packet rate: frame length (no FCS), flows, seconds per window.
    pub rate_frame_bytes: usize,
    /// Distinct UDP source ports of the generator.
    pub rate_flows: u16,
    /// Seconds of each packet-rate window.
    pub rate_seconds: f64,
    /// Packet rate, kxdp over the kernel rows.
    pub rate_ratios: Vec<RateRatio>,
    /// Which core ran what.
    pub cores: BTreeMap<String, String>,
    /// Per row, in table order.
    pub rows: Vec<NutRowFigures>,
    /// What is not measured yet in any row, and why.
    pub not_measured: Vec<String>,
    /// Files written (HdrHistogram logs and plots).
    pub files: Vec<String>,
}

/// What one round of one row measured.
struct RoundSample {
    latency: Vec<LatencySample>,
    /// The congestion control of the TCP senders' namespaces.
    tcp_congestion: String,
    tcp_1_to_2_gbps: f64,
    tcp_2_to_1_gbps: f64,
    tcp_1_to_2_retrans_percent: f64,
    tcp_2_to_1_retrans_percent: f64,
    /// Per direction, [`RateDirection::ALL`] order.
    rate: Vec<RateSample>,
}

/// What one packet-rate window measured.
#[derive(Clone, Debug, PartialEq)]
struct RateSample {
    generator_tx_kpps: f64,
    received_kpps: f64,
    loss_percent: f64,
    node1_per_core_kpps: f64,
    node1_cpu_s_per_mpkt: f64,
}

impl RateSample {
    /// From the counts over a window of `seconds` and node1's busy
    /// core-seconds per second.
    fn of(generated: u64, received: u64, seconds: f64, node1_busy_share: f64) -> RateSample {
        let seconds = seconds.max(1e-9);
        let (generated, received) = (generated as f64, received as f64);
        let busy = node1_busy_share * seconds;
        RateSample {
            generator_tx_kpps: generated / seconds / 1e3,
            received_kpps: received / seconds / 1e3,
            loss_percent: if generated > 0.0 {
                (1.0 - received / generated) * 100.0
            } else {
                f64::NAN
            },
            node1_per_core_kpps: if busy > 0.0 {
                received / busy / 1e3
            } else {
                f64::NAN
            },
            node1_cpu_s_per_mpkt: if received > 0.0 {
                busy / (received / 1e6)
            } else {
                f64::NAN
            },
        }
    }
}

/// A built testbed with node1's kxdp (kxdp rows) or OVS (`ovs-vxlan`)
/// running; both stop before the testbed goes.
struct Bed {
    kxdp: Option<KxdpProcess>,
    ovs: Option<OvsVxlanNode>,
    testbed: Testbed,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(p) = &mut self.kxdp {
            let _ = p.terminate();
        }
    }
}

fn measure_round(
    row: NutRow,
    round: usize,
    options: &NutOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RoundSample> {
    let testbed = Testbed::build(row.topology(options.worker_core))
        .with_context(|| format!("building the {} testbed", row.label()))?;
    if options.node2_rps {
        rate::steer_receive(
            &testbed.node("node2")?.netns,
            UNDERLAY_IF,
            options.other_core,
        )
        .with_context(|| format!("{}: steering node2's receive", row.label()))?;
    }
    let mut bed = Bed {
        kxdp: None,
        ovs: None,
        testbed,
    };
    match row {
        NutRow::OvsVxlan => {
            let tb = &bed.testbed;
            let spec = OvsVxlanSpec::for_node(tb, "node1", options.worker_core)?;
            bed.ovs = Some(
                start_ovs_vxlan(&tb.node("node1")?.netns, &spec)
                    .context("starting Open vSwitch as node1")?,
            );
        }
        _ if row.node1_kind() == NodeKind::Kxdp => {
            bed.kxdp = Some(
                bed.testbed
                    .start_kxdp("node1", &options.kxdp, &[])
                    .context("starting kxdp on node1")?,
            );
            if row.pod_napi() == PodNapi::WorkerCore {
                check_pod_napi_placed(&bed.testbed, row)?;
            }
        }
        _ => {}
    }
    if row.threaded_napi() {
        thread_node1_napi(&bed.testbed, options.worker_core)
            .with_context(|| format!("{}: threaded NAPI on node1", row.label()))?;
    }
    let tb = &bed.testbed;
    let pod = |name: &str| tb.pod(name).with_context(|| format!("pod {name}"));
    let (client, server, loader, sink) =
        (pod("client")?, pod("server")?, pod("loader")?, pod("sink")?);
    let pods = LatencyPods {
        client: &client.netns,
        server: &server.netns,
        server_ip: server.ip,
        load_from: &loader.netns,
        load_to: &sink.netns,
        load_to_ip: sink.ip,
    };
    // Warm up: neighbours resolved, caches filled; and the path works.
    let warm = kxdp_testbed::ping(
        &client.netns,
        IpAddr::V4(server.ip),
        3,
        Duration::from_millis(10),
    )
    .with_context(|| format!("{}: ping client -> server", row.label()))?;
    if warm.received == 0 {
        bail!(
            "{}: the client cannot reach the server {}: 0 of {} pings answered",
            row.label(),
            server.ip,
            warm.sent
        );
    }
    let samples = latency::measure_all(&pods, &options.latency, row.label(), progress)?;
    if let Some(dir) = options.profile.as_deref() {
        trace_hand_offs(dir, row, round, &pods, options, progress)?;
    }
    let profile = |phase: &str| {
        profile::start_in(
            options.profile.as_deref(),
            &format!("{}-r{round}", row.label()),
            phase,
        )
    };
    let tcp_congestion = congestion_control(client, server, options.tcp_congestion.as_deref())
        .with_context(|| format!("{}: TCP congestion control", row.label()))?;
    let mut tcp = |from: &kxdp_testbed::Pod, to: &kxdp_testbed::Pod, way: &str, phase: &str| {
        let step = format!("{} tcp {way}", row.label());
        progress(&step);
        let profiling = profile(phase)?;
        let segments = || kxdp_testbed::snmp_counters(&from.netns, "Tcp:", TCP_SEGMENT_COUNTERS);
        let before = segments()?;
        let transfer = tcp_transfer(&from.netns, &to.netns, IpAddr::V4(to.ip), options.tcp_bytes)
            .context(step)?;
        let after = segments()?;
        if let Some(p) = profiling {
            progress(&format!("profile: {}", p.finish()?.display()));
        }
        Ok::<_, anyhow::Error>((transfer, retrans_percent(before, after)))
    };
    let there = tcp(client, server, "node1 -> node2", "tcp-1to2")?;
    let back = tcp(server, client, "node2 -> node1", "tcp-2to1")?;
    if bed.kxdp.is_some() {
        progress(&format!(
            "{}: node1's kxdp after latency and TCP: {}",
            row.label(),
            kxdp_drops(tb)?
        ));
    }
    prepare_rate(tb, row, loader, sink)
        .with_context(|| format!("{}: preparing the packet rate", row.label()))?;
    let mut rate = Vec::new();
    for direction in RateDirection::ALL {
        let step = format!("{} packet rate {}", row.label(), direction.label());
        progress(&step);
        let (from, to) = match direction {
            RateDirection::Encap => (loader, sink),
            RateDirection::Decap => (sink, loader),
        };
        let profiling = |phase: &str| profile(phase);
        let (sample, report) =
            measure_rate(tb, row, direction, from, to, options, &profiling).context(step)?;
        if let Some(report) = report {
            progress(&format!("profile: {}", report.display()));
        }
        rate.push(sample);
    }
    if bed.kxdp.is_some() {
        // Where the packet rate's lost frames went: the counters are
        // cumulative, and the line before the rate windows shows what
        // latency and TCP left in them.
        progress(&format!(
            "{}: node1's kxdp after the packet rate: {}",
            row.label(),
            kxdp_drops(tb)?
        ));
    }
    if let Some(p) = &mut bed.kxdp {
        if !p.is_running() {
            bail!(
                "kxdp on node1 died during the {} measurement:\n{}",
                row.label(),
                p.log_tail(20)
            );
        }
    }
    if let Some(ovs) = &mut bed.ovs {
        if !ovs.is_running() {
            bail!(
                "ovs-vswitchd on node1 died during the {} measurement:\n{}",
                row.label(),
                ovs.log_tail(20)
            );
        }
    }
    Ok(RoundSample {
        latency: samples,
        tcp_congestion,
        tcp_1_to_2_gbps: there.0.bits_per_second() / 1e9,
        tcp_2_to_1_gbps: back.0.bits_per_second() / 1e9,
        tcp_1_to_2_retrans_percent: there.1,
        tcp_2_to_1_retrans_percent: back.1,
        rate,
    })
}

/// The host ends of node1's pod veths.
fn node1_pod_interfaces(tb: &Testbed) -> Result<Vec<&str>> {
    let node1 = tb.node("node1")?;
    Ok(tb
        .pods()
        .iter()
        .filter(|p| p.node == node1.name)
        .map(|p| p.host_interface.as_str())
        .collect())
}

/// The sysctl that names a namespace's TCP congestion control.
pub(crate) const TCP_CONGESTION_SYSCTL: &str = "net.ipv4.tcp_congestion_control";

/// Give both pods' namespaces the congestion control `chosen` (where set)
/// and return the one they use: each TCP transfer's sender decides, and
/// each pod sends one of the two, so both must agree.
fn congestion_control(
    client: &kxdp_testbed::Pod,
    server: &kxdp_testbed::Pod,
    chosen: Option<&str>,
) -> Result<String> {
    let mut used = Vec::new();
    for pod in [client, server] {
        if let Some(name) = chosen {
            pod.netns
                .set_sysctl(TCP_CONGESTION_SYSCTL, name)
                .with_context(|| format!("setting {TCP_CONGESTION_SYSCTL} to {name}"))?;
        }
        used.push(pod.netns.sysctl(TCP_CONGESTION_SYSCTL)?);
    }
    if used[0] != used[1] {
        bail!(
            "the client's namespace uses {} and the server's {}: the two TCP directions \
             would not be comparable",
            used[0],
            used[1]
        );
    }
    if let Some(name) = chosen {
        if used[0] != name {
            bail!("asked for {name}, the pods' namespaces report {}", used[0]);
        }
    }
    Ok(used.swap_remove(0))
}

/// Check a `--tcp-cc` name against the kernel's list of available
/// algorithms (`net.ipv4.tcp_available_congestion_control`), so a typo is
/// refused before any testbed is built.
pub fn check_congestion_control(name: &str, available: &str) -> Result<()> {
    let known: Vec<&str> = available.split_whitespace().collect();
    if known.contains(&name) {
        Ok(())
    } else {
        bail!(
            "--tcp-cc: {name:?} is not a TCP congestion control this kernel has (available: {})",
            known.join(", ")
        )
    }
}

/// A row that asks for `pod_napi: worker-core` measures it only where kxdp
/// placed every pod interface's NAPI: a placement that failed (kxdp keeps
/// forwarding, with the kernel's placement) fails the row instead of
/// measuring the `kxdp` row under another label.
fn check_pod_napi_placed(tb: &Testbed, row: NutRow) -> Result<()> {
    let pods = node1_pod_interfaces(tb)?;
    let socket = kxdp_control::api::api_socket_path(tb.node_config("node1")?);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = kxdp_control::stats::fetch(&socket)
            .with_context(|| format!("{}: kxdp stats of node1", row.label()))?;
        let unplaced: Vec<String> = stats
            .ports
            .iter()
            .filter(|p| pods.contains(&p.interface.as_str()) && !p.napi.starts_with("core "))
            .map(|p| format!("{}: {}", p.interface, p.napi))
            .collect();
        let bound = stats
            .ports
            .iter()
            .filter(|p| pods.contains(&p.interface.as_str()))
            .count();
        if unplaced.is_empty() && bound == pods.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{}: pod_napi worker-core did not place every pod interface's NAPI ({} of {} \
                 bound): {}",
                row.label(),
                bound,
                pods.len(),
                unplaced.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Node1's kxdp drops so far, in one line: each reason with a count, each
/// socket the kernel dropped frames for, and each worker's longest loop
/// (`kxdp stats` has the rest).
fn kxdp_drops(tb: &Testbed) -> Result<String> {
    let socket = kxdp_control::api::api_socket_path(tb.node_config("node1")?);
    let stats = kxdp_control::stats::fetch(&socket).context("kxdp stats of node1")?;
    let mut parts: Vec<String> = kxdp_dataplane::DropReason::ALL
        .iter()
        .filter_map(|reason| {
            let n: u64 = stats
                .workers
                .iter()
                .filter_map(|w| w.drops.get(reason.label()))
                .sum();
            (n > 0).then(|| format!("{} {n}", reason.label()))
        })
        .collect();
    for p in &stats.ports {
        if let Some(k) = p
            .kernel
            .filter(|k| k.total() > 0 || k.rx_fill_ring_empty > 0)
        {
            parts.push(format!(
                "{} socket: rx_dropped {} rx_ring_full {} fill_ring_empty {}",
                p.interface, k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty
            ));
        }
    }
    parts.extend(veth_drops(tb)?);
    let drops = if parts.is_empty() {
        "no drops".to_string()
    } else {
        parts.join("; ")
    };
    let loops: Vec<String> = stats
        .workers
        .iter()
        .map(|w| {
            format!(
                "worker {}: longest loop {} µs, loops over 1 ms {}",
                w.worker,
                w.max_loop_ns / 1000,
                w.slow_loops
            )
        })
        .collect();
    Ok(format!("{drops} ({})", loops.join("; ")))
}

/// The frames a veth on node1's path refused to send (its `tx_dropped`):
/// each node1 pod's `eth0` and host end, and both nodes' `ul0`. A veth
/// whose peer has NAPI (an XDP program, or GRO on) drops what does not fit
/// the peer's ring of 256 while its NAPI waits to run; kxdp never sees
/// those frames, so its own counters cannot explain them.
fn veth_drops(tb: &Testbed) -> Result<Vec<String>> {
    let node1 = tb.node("node1")?;
    let mut links: Vec<(String, &kxdp_testbed::Netns, &str)> = Vec::new();
    for pod in tb.pods().iter().filter(|p| p.node == node1.name) {
        links.push((format!("{}/{POD_IF}", pod.name), &pod.netns, POD_IF));
        links.push((
            format!("node1/{}", pod.host_interface),
            &node1.netns,
            &pod.host_interface,
        ));
    }
    for node in ["node1", "node2"] {
        links.push((
            format!("{node}/{UNDERLAY_IF}"),
            &tb.node(node)?.netns,
            UNDERLAY_IF,
        ));
    }
    let mut parts = Vec::new();
    for (label, netns, ifname) in links {
        let stats = rate::link_stats(netns, ifname)?;
        if stats.tx_dropped > 0 {
            parts.push(format!(
                "{label} tx_dropped {} of {}",
                stats.tx_dropped,
                stats.tx_packets + stats.tx_dropped
            ));
        }
    }
    Ok(parts)
}

/// Round trips of the traced extra blocking/low case of `--profile`: enough
/// for stable quantiles, few enough for a small trace.
const TRACED_ROUND_TRIPS: u64 = 2_000;

/// `--profile`: one more blocking/low case, under a tracepoint recording
/// (the `hops` module), its report written beside the profiles and its
/// lines passed to `progress`.
fn trace_hand_offs(
    dir: &std::path::Path,
    row: NutRow,
    round: usize,
    pods: &LatencyPods<'_>,
    options: &NutOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let name = format!("{}-r{round}", row.label());
    progress(&format!("{} latency blocking/low, traced", row.label()));
    let Some(trace) = hops::start_in(Some(dir), &name)? else {
        return Ok(());
    };
    let case = LatencyCase::ALL[0];
    let latency_options = LatencyOptions {
        count: TRACED_ROUND_TRIPS,
        ..options.latency.clone()
    };
    let sample = latency::measure(pods, case, &latency_options)
        .with_context(|| format!("{}: traced {}", row.label(), case.label()))?;
    let (path, report) = trace.finish(sample.received)?;
    for line in report.lines() {
        progress(&format!("{}: {line}", row.label()));
    }
    progress(&format!("hand-offs: {}", path.display()));
    Ok(())
}

/// The tuned row's knob: GRO on (a veth has NAPI only with GRO on or an
/// XDP program) and threaded NAPI pinned to `core` at SCHED_FIFO for the
/// host end of every node1 pod veth and for node1's `ul0`.
fn thread_node1_napi(tb: &Testbed, core: usize) -> Result<Vec<String>> {
    let node1 = tb.node("node1")?;
    let mut interfaces = node1_pod_interfaces(tb)?;
    interfaces.push(UNDERLAY_IF);
    let mut threads = Vec::new();
    for ifname in interfaces {
        node1.netns.exec("ethtool", &["-K", ifname, "gro", "on"])?;
        threads.push(rate::threaded_napi(&node1.netns, ifname, core, true)?);
    }
    Ok(threads)
}

/// Ready the background stream's pods for the packet rate (after latency
/// and TCP): transmit offloads off at both ends of both veths (so native
/// XDP and NAPI threads see the frames), the path checked, and permanent
/// neighbours wherever a sink will drop the ARP that would refresh them.
fn prepare_rate(tb: &Testbed, row: NutRow, loader: &Pod, sink: &Pod) -> Result<()> {
    for pod in [loader, sink] {
        let node = tb.node(&pod.node)?;
        pod.netns.exec("ethtool", &["-K", POD_IF, "tx", "off"])?;
        node.netns
            .exec("ethtool", &["-K", &pod.host_interface, "tx", "off"])?;
    }
    let rtt = kxdp_testbed::ping(
        &loader.netns,
        IpAddr::V4(sink.ip),
        3,
        Duration::from_millis(200),
    )?;
    if rtt.received == 0 {
        bail!(
            "the loader pod cannot reach the sink pod {}: 0 of {} pings answered",
            sink.ip,
            rtt.sent
        );
    }
    let (node1, node2) = (tb.node("node1")?, tb.node("node2")?);
    for (here, there) in [(node1, node2), (node2, node1)] {
        crate::external::pin_neighbour(
            &here.netns,
            &there.vtep_ip,
            &there.underlay_mac,
            UNDERLAY_IF,
        )?;
    }
    if row.node1_kind().is_kernel() {
        crate::external::pin_neighbour(&node1.netns, &loader.ip, &loader.mac, CNI_BRIDGE)?;
    }
    Ok(())
}

/// The sender's counters a TCP transfer reads before and after.
const TCP_SEGMENT_COUNTERS: [&str; 2] = ["OutSegs", "RetransSegs"];

/// Retransmitted segments as % of those sent between two readings of
/// [`TCP_SEGMENT_COUNTERS`] (0 when nothing was sent).
fn retrans_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let sent = after.0.saturating_sub(before.0);
    let again = after.1.saturating_sub(before.1);
    if sent == 0 {
        0.0
    } else {
        again as f64 * 100.0 / sent as f64
    }
}

/// Counter readings at one instant.
struct RateSnapshot {
    at: Instant,
    generated: u64,
    received: u64,
    cpu: Vec<CpuTimes>,
}

/// One packet-rate window: the generator in `from` sends to `to`, the sink
/// counts where `direction` puts it.
fn measure_rate(
    tb: &Testbed,
    row: NutRow,
    direction: RateDirection,
    from: &Pod,
    to: &Pod,
    options: &NutOptions,
    profile: &dyn Fn(&str) -> Result<Option<Profile>>,
) -> Result<(RateSample, Option<PathBuf>)> {
    let gateway = from.gateway.to_string();
    let _ = from
        .netns
        .exec_output("ping", &["-c", "1", "-W", "1", &gateway]);
    let gateway_mac = rate::neighbour_mac(&from.netns, from.gateway)
        .with_context(|| format!("{} did not resolve its gateway {gateway}", from.name))?;
    let node2 = tb.node("node2")?;
    let (sink_ns, sink_if) = match direction {
        RateDirection::Encap => (&node2.netns, UNDERLAY_IF),
        RateDirection::Decap => (&to.netns, POD_IF),
    };
    let mode = row.sink_mode(direction);
    let counter = Sink::attach_in_mode(sink_ns, sink_if, mode)?;
    if mode == XdpAttachMode::Native {
        rate::threaded_napi(sink_ns, sink_if, options.other_core, true)?;
    }
    let flows = FlowSpec {
        src_mac: from.mac,
        dst_mac: gateway_mac,
        src_ip: from.ip,
        dst_ip: to.ip,
        src_port: RATE_SRC_PORT,
        dst_port: RATE_DST_PORT,
        flows: RATE_FLOWS,
        frame_bytes: RATE_FRAME_BYTES,
    };
    // The profile starts before the flood and so covers the warm-up too:
    // started during it, perf (on core 0 with the generator and the sink's
    // SCHED_FIFO NAPI thread) opened its events only after the window, and
    // recorded a few samples of the teardown.
    let profiling = profile(&format!("rate-{}", direction.label()))?;
    let mut generator = Generator::start(
        &from.netns,
        &flows,
        &GeneratorOptions {
            ifname: POD_IF.to_string(),
            core: Some(options.other_core),
            nice: None,
        },
    )?;
    let snapshot = |generator: &Generator| -> Result<RateSnapshot> {
        Ok(RateSnapshot {
            at: Instant::now(),
            generated: generator.completed(),
            received: counter.read()?.packets,
            cpu: rate::read_proc_stat()?,
        })
    };
    std::thread::sleep(Duration::from_secs_f64(options.rate_warmup.max(0.0)));
    let before = snapshot(&generator)?;
    std::thread::sleep(Duration::from_secs_f64(options.rate_seconds.max(0.01)));
    let after = snapshot(&generator)?;
    let totals = generator.stop()?;
    let report = profiling.map(Profile::finish).transpose()?;
    if totals.completed == 0 {
        bail!("the generator sent nothing");
    }
    let loads = rate::core_loads(&before.cpu, &after.cpu);
    let sample = RateSample::of(
        after.generated.saturating_sub(before.generated),
        after.received.saturating_sub(before.received),
        after.at.duration_since(before.at).as_secs_f64(),
        row.node1_work(options.worker_core).busy_share(&loads),
    );
    Ok((sample, report))
}

/// Run every row `rounds` times, interleaved; `progress` gets a short line
/// per step.
pub fn run(options: &NutOptions, progress: &mut dyn FnMut(&str)) -> Result<NutReport> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    // Everything this process starts from here on (echo servers, the
    // background stream, TCP threads, kxdp's non-worker threads) inherits
    // this core: node1's kxdp worker keeps its core to itself.
    kxdp_dataplane::worker::pin_to_core(Some(options.other_core));
    let mut rows: Vec<NutRow> = Vec::new();
    for &row in &options.rows {
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let rounds = options.rounds.max(1);
    let skipped: BTreeMap<NutRow, String> = rows
        .iter()
        .filter_map(|&r| r.not_measured().map(|why| (r, why)))
        .collect();
    let mut per_row: BTreeMap<NutRow, Vec<RoundSample>> = BTreeMap::new();
    for round in 0..rounds {
        for &row in rows.iter().filter(|r| !skipped.contains_key(r)) {
            let mut step = |s: &str| {
                progress(&format!(
                    "node under test, round {}/{rounds}: {s}",
                    round + 1
                ))
            };
            let sample = measure_round(row, round + 1, options, &mut step)?;
            per_row.entry(row).or_default().push(sample);
        }
    }

    let congestion_used: std::collections::BTreeSet<&str> = per_row
        .values()
        .flatten()
        .map(|sample| sample.tcp_congestion.as_str())
        .collect();
    let mut files = Vec::new();
    let mut figures = Vec::new();
    let mut curves_by_case: BTreeMap<String, Vec<(String, Histogram<u64>)>> = BTreeMap::new();
    for &row in &rows {
        let (node1, node2) = row.nodes(options.worker_core);
        let mut placement = row.placement(options.worker_core, options.other_core);
        if !options.node2_rps {
            placement.push(format!(
                "--no-node2-rps: node2's receive runs on the core that sent each frame, \
                 for what node1's dataplane sends the worker core {}",
                options.worker_core
            ));
        }
        let Some(samples) = per_row.get(&row) else {
            figures.push(NutRowFigures {
                row,
                node1,
                node2,
                not_measured: Some(
                    skipped
                        .get(&row)
                        .map_or("not in the rows asked for", String::as_str)
                        .to_string(),
                ),
                latency: Vec::new(),
                tcp_node1_to_node2_gbps: Spread::default(),
                tcp_node2_to_node1_gbps: Spread::default(),
                tcp_node1_to_node2_retrans_percent: Spread::default(),
                tcp_node2_to_node1_retrans_percent: Spread::default(),
                rate: Vec::new(),
                placement,
            });
            continue;
        };
        let latency_rounds: Vec<&[LatencySample]> =
            samples.iter().map(|s| s.latency.as_slice()).collect();
        let mut latency = Vec::new();
        for (f, merged) in figures::summarise_latency(
            &format!("nut-{}", row.label()),
            &latency_rounds,
            &options.out_dir,
            &mut files,
        )? {
            curves_by_case
                .entry(f.case.clone())
                .or_default()
                .push((row.label().to_string(), merged));
            latency.push(f);
        }
        let spread =
            |f: fn(&RoundSample) -> f64| Spread::of(&samples.iter().map(f).collect::<Vec<_>>());
        let rate = RateDirection::ALL
            .into_iter()
            .enumerate()
            .map(|(i, direction)| {
                let rounds: Vec<&RateSample> =
                    samples.iter().filter_map(|s| s.rate.get(i)).collect();
                rate_figures(row, direction, options.other_core, &rounds)
            })
            .collect();
        figures.push(NutRowFigures {
            row,
            node1,
            node2,
            not_measured: None,
            latency,
            tcp_node1_to_node2_gbps: spread(|s| s.tcp_1_to_2_gbps),
            tcp_node2_to_node1_gbps: spread(|s| s.tcp_2_to_1_gbps),
            tcp_node1_to_node2_retrans_percent: spread(|s| s.tcp_1_to_2_retrans_percent),
            tcp_node2_to_node1_retrans_percent: spread(|s| s.tcp_2_to_1_retrans_percent),
            rate,
            placement,
        });
    }
    figures::write_latency_plots(
        "nut-latency",
        ", node under test (node2: kernel vxlan)",
        &curves_by_case,
        &options.out_dir,
        &mut files,
    )?;
    Ok(NutReport {
        rounds,
        probes: options.latency.count,
        load_pps: options.latency.load_pps,
        tcp_bytes: options.tcp_bytes,
        tcp_congestion_control: congestion_used.into_iter().collect::<Vec<_>>().join(", "),
        tcp_congestion_chosen: options.tcp_congestion.is_some(),
        rate_frame_bytes: RATE_FRAME_BYTES,
        rate_flows: RATE_FLOWS,
        rate_seconds: options.rate_seconds,
        rate_ratios: rate_ratios(&figures),
        cores: cores(options),
        rows: figures,
        not_measured: Vec::new(),
        files,
    })
}

/// One direction's figures over rounds.
fn rate_figures(
    row: NutRow,
    direction: RateDirection,
    other_core: usize,
    rounds: &[&RateSample],
) -> RateFigures {
    let spread =
        |f: fn(&RateSample) -> f64| Spread::of(&rounds.iter().map(|s| f(s)).collect::<Vec<_>>());
    RateFigures {
        direction,
        sink: row.sink_description(direction, other_core),
        generator_tx_kpps: spread(|s| s.generator_tx_kpps),
        received_kpps: spread(|s| s.received_kpps),
        loss_percent: spread(|s| s.loss_percent),
        node1_per_core_kpps: spread(|s| s.node1_per_core_kpps),
        node1_cpu_s_per_mpkt: spread(|s| s.node1_cpu_s_per_mpkt),
    }
}

/// kxdp over `kernel-vxlan`, `kernel-vxlan-tuned` and `ovs-vxlan`, per
/// direction, where both were measured.
fn rate_ratios(rows: &[NutRowFigures]) -> Vec<RateRatio> {
    let find = |row: NutRow, direction: RateDirection| {
        rows.iter()
            .find(|r| r.row == row)?
            .rate
            .iter()
            .find(|f| f.direction == direction)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut ratios = Vec::new();
    for direction in RateDirection::ALL {
        for against in [
            NutRow::KernelVxlan,
            NutRow::KernelVxlanTuned,
            NutRow::OvsVxlan,
        ] {
            if let (Some(k), Some(v)) = (find(NutRow::Kxdp, direction), find(against, direction)) {
                ratios.push(RateRatio {
                    direction,
                    against,
                    received: ratio(k.received_kpps.median, v.received_kpps.median),
                    per_core: ratio(k.node1_per_core_kpps.median, v.node1_per_core_kpps.median),
                });
            }
        }
    }
    ratios
}

/// Which core runs what, for every row.
fn cores(options: &NutOptions) -> BTreeMap<String, String> {
    let (w, o) = (options.worker_core, options.other_core);
    let mut cores = BTreeMap::new();
    cores.insert(
        "node1 kxdp worker (kxdp rows)".to_string(),
        format!("core {w}, alone: busy poll (kxdp) or adaptive (kxdp-adaptive)"),
    );
    cores.insert(
        "kxdp's other threads (control, API)".to_string(),
        format!("core {o}"),
    );
    cores.insert(
        "node1 OVS PMD thread (ovs-vxlan)".to_string(),
        format!("core {w}, alone: busy poll of every afxdp port"),
    );
    cores.insert(
        "ovs-vswitchd's other threads and ovsdb-server (ovs-vxlan)".to_string(),
        format!("core {o}"),
    );
    cores.insert(
        "client, echo server, background stream and sink, TCP sender and receiver, \
         packet-rate generator"
            .to_string(),
        format!("core {o} (the spinning client at nice 19)"),
    );
    cores.insert(
        "node1 NAPI threads (kernel-vxlan-tuned: pod veths' host ends, ul0)".to_string(),
        format!("core {w}, SCHED_FIFO"),
    );
    cores.insert(
        "packet-rate counting sink".to_string(),
        format!(
            "native XDP: its NAPI thread on core {o} (SCHED_FIFO); generic XDP (encap sink of \
             the rows whose node1 ul0 keeps TSO on): the backlog of core {o} (RPS on node2's ul0)"
        ),
    );
    cores.insert(
        "kernel softirq (veth receive, bridge, routing, vxlan)".to_string(),
        format!(
            "the core that transmitted into the veth: core {o} for the pods' frames, \
             core {w} for what node1's kxdp worker or OVS PMD thread sends to a node1 pod \
             (unless the receiving veth's NAPI is threaded); node2's receive on ul0 on core \
             {o} in every row (RPS; --no-node2-rps leaves it on the transmitting core)"
        ),
    );
    cores
}

/// The terminal table (markdown).
pub fn table(report: &NutReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Node under test: node1 is the node under test, node2 is always a kernel VXLAN node \
         (Flannel layout)"
    );
    let _ = writeln!(
        s,
        "\nmedian over {} round(s) [min–max]; {} probes per case and round; background stream {} \
         datagrams/s; TCP {} MiB per transfer\n",
        report.rounds,
        report.probes,
        report.load_pps,
        report.tcp_bytes >> 20
    );
    let _ = writeln!(s, "| row | node1 (under test) | node2 |");
    let _ = writeln!(s, "|---|---|---|");
    for r in &report.rows {
        let _ = writeln!(s, "| {} | {} | {} |", r.row.label(), r.node1, r.node2);
    }
    let cell = |sp: &Spread| format!("{:.1} [{:.0}–{:.0}]", sp.median, sp.min, sp.max);
    let _ = writeln!(s, "\nUDP request/response latency, µs\n");
    let _ = writeln!(
        s,
        "| row | client/load | p50 | p90 | p99 | p99.9 | max | loss % | stream delivered % |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for case in LatencyCase::ALL {
        for r in &report.rows {
            if let Some(reason) = &r.not_measured {
                if case == LatencyCase::ALL[0] {
                    let _ = writeln!(
                        s,
                        "| {} | all | not measured: {reason} | | | | | | |",
                        r.row.label()
                    );
                }
                continue;
            }
            if let Some(l) = r.latency.iter().find(|l| l.case == case.label()) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
                    r.row.label(),
                    l.case,
                    cell(&l.p50_us),
                    cell(&l.p90_us),
                    cell(&l.p99_us),
                    cell(&l.p999_us),
                    cell(&l.max_us),
                    l.loss_percent.median,
                    l.load_delivered_percent.median
                );
            }
        }
    }
    let gbps = |sp: &Spread| format!("{:.2} [{:.2}–{:.2}]", sp.median, sp.min, sp.max);
    let pct = |sp: &Spread| format!("{:.2} [{:.2}–{:.2}]", sp.median, sp.min, sp.max);
    let _ = writeln!(
        s,
        "\nTCP goodput pod to pod, one connection, Gbit/s; and the segments the sender \
         retransmitted, %; congestion control {} ({})\n",
        report.tcp_congestion_control,
        if report.tcp_congestion_chosen {
            "--tcp-cc, in every pod's namespace"
        } else {
            "the machine's net.ipv4.tcp_congestion_control, which every pod's namespace inherits"
        }
    );
    let _ = writeln!(
        s,
        "| row | node1 → node2 | node2 → node1 | retransmitted 1 → 2 % | retransmitted 2 → 1 % |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for r in &report.rows {
        match &r.not_measured {
            Some(reason) => {
                let _ = writeln!(s, "| {} | not measured: {reason} | | | |", r.row.label());
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    r.row.label(),
                    gbps(&r.tcp_node1_to_node2_gbps),
                    gbps(&r.tcp_node2_to_node1_gbps),
                    pct(&r.tcp_node1_to_node2_retrans_percent),
                    pct(&r.tcp_node2_to_node1_retrans_percent)
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n{}-byte UDP packet rate, AF_XDP generator, {} flows, {:.1} s per window; \
         kpps and node1's CPU, median [min–max]\n",
        report.rate_frame_bytes, report.rate_flows, report.rate_seconds
    );
    let _ = writeln!(
        s,
        "| row | direction | generator tx kpps | received kpps | loss % | node1 kpps/core | \
         node1 cpu-s/Mpkt |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let kpps = |sp: &Spread| format!("{:.0} [{:.0}–{:.0}]", sp.median, sp.min, sp.max);
    for r in &report.rows {
        if let Some(reason) = &r.not_measured {
            let _ = writeln!(
                s,
                "| {} | both | not measured: {reason} | | | | |",
                r.row.label()
            );
            continue;
        }
        for f in &r.rate {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.1} [{:.1}–{:.1}] | {} | {:.2} [{:.2}–{:.2}] |",
                r.row.label(),
                f.direction.label(),
                kpps(&f.generator_tx_kpps),
                kpps(&f.received_kpps),
                f.loss_percent.median,
                f.loss_percent.min,
                f.loss_percent.max,
                kpps(&f.node1_per_core_kpps),
                f.node1_cpu_s_per_mpkt.median,
                f.node1_cpu_s_per_mpkt.min,
                f.node1_cpu_s_per_mpkt.max
            );
        }
    }
    let _ = writeln!(
        s,
        "\nloss near 0: node1 kept up with what it was offered (in decap the generator shares \
         core 0 with node2's encapsulation); received is then the offered load, and a \
         busy-polling worker's per-core rate only a lower bound.\n"
    );
    for ratio in &report.rate_ratios {
        let _ = writeln!(
            s,
            "kxdp / {}, {}: received {:.2}×, node1 per core {:.2}×",
            ratio.against.label(),
            ratio.direction.label(),
            ratio.received,
            ratio.per_core
        );
    }
    for r in &report.rows {
        if let Some(reason) = &r.not_measured {
            let _ = writeln!(s, "\n{}: not measured: {reason}", r.row.label());
        }
    }
    for what in &report.not_measured {
        let _ = writeln!(s, "\nnot measured: {what}");
    }
    let _ = writeln!(s, "\ncores (node under test):");
    for (what, core) in &report.cores {
        let _ = writeln!(s, "  {what}: {core}");
    }
    for r in report.rows.iter().filter(|r| r.not_measured.is_none()) {
        let _ = writeln!(s, "  {}:", r.row.label());
        for p in &r.placement {
            let _ = writeln!(s, "    {p}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_congestion_control_the_kernel_lacks_is_refused_naming_the_ones_it_has() {
        let available = "reno bbr cubic\n";
        assert!(check_congestion_control("cubic", available).is_ok());
        assert!(check_congestion_control("bbr", available).is_ok());
        let err = check_congestion_control("bbr2", available)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"bbr2\""), "{err}");
        assert!(err.contains("available: reno, bbr, cubic"), "{err}");
        assert!(check_congestion_control("", available).is_err());
    }

    #[test]
    fn rows_parse_from_their_labels() {
        for row in NutRow::ALL {
            assert_eq!(row.label().parse::<NutRow>().unwrap(), row);
        }
        assert!("ovs".parse::<NutRow>().is_err());
    }

    #[test]
    fn node2_is_a_kernel_vxlan_node_in_every_row_but_routed() {
        for row in NutRow::ALL {
            let spec = row.topology(1);
            assert_eq!(spec.nodes.len(), 2);
            let expected = if row == NutRow::Routed {
                NodeKind::Routed
            } else {
                NodeKind::KernelVxlan
            };
            assert_eq!(spec.nodes[1].kind, expected, "{}", row.label());
            assert_eq!(spec.tenants[0].vni, 1, "flannel.1");
        }
    }

    #[test]
    fn kxdp_rows_get_one_worker_on_the_worker_core_and_a_tx_off_peer() {
        for (row, mode) in [
            (NutRow::Kxdp, PollMode::Busy),
            (NutRow::KxdpAdaptive, PollMode::Adaptive),
        ] {
            let spec = row.topology(1);
            let n1 = &spec.nodes[0];
            assert_eq!(n1.kind, NodeKind::Kxdp);
            assert_eq!(n1.workers.count, 1);
            assert_eq!(n1.workers.cores, [1]);
            assert_eq!(n1.workers.poll_mode, mode);
            assert_eq!(spec.nodes[1].underlay_offloads, UnderlayOffloads::TxOff);
        }
        let spec = NutRow::KernelVxlan.topology(1);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::KernelDefault));
        let spec = NutRow::KernelVxlanTxOff.topology(1);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::TxOff));
    }

    #[test]
    fn the_tuned_row_is_kernel_vxlan_with_threaded_napi_on_the_worker_core() {
        let row = NutRow::KernelVxlanTuned;
        let at = |r: NutRow| NutRow::ALL.iter().position(|x| *x == r).unwrap();
        assert_eq!(at(row), at(NutRow::KernelVxlanTxOff) + 1);
        assert_eq!(row.label().parse::<NutRow>().unwrap(), row);
        let spec = row.topology(1);
        assert_eq!(spec.nodes[0].kind, NodeKind::KernelVxlan);
        assert_eq!(spec.nodes[1].kind, NodeKind::KernelVxlan);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::KernelDefault));
        assert_eq!(row.poll_mode(), None);
        let threaded: Vec<NutRow> = NutRow::ALL
            .into_iter()
            .filter(|r| r.threaded_napi())
            .collect();
        assert_eq!(threaded, [row]);
        assert_eq!(row.node1_work(1), Node1Work::NapiThreads(1));
        let (node1, node2) = row.nodes(1);
        assert!(
            node1.contains("threaded NAPI") && node1.contains("core 1"),
            "{node1}"
        );
        assert!(node2.starts_with("kernel vxlan"), "{node2}");
        let placement = row.placement(1, 0).join("\n");
        assert!(placement.contains("core 1: NAPI threads"), "{placement}");
    }

    #[test]
    fn the_pod_napi_row_is_the_kxdp_row_with_worker_core_pod_napi() {
        let row = NutRow::KxdpPodNapi;
        assert_eq!(row.label(), "kxdp-pod-napi");
        assert_eq!("kxdp-pod-napi".parse::<NutRow>().unwrap(), row);
        let at = |r: NutRow| NutRow::ALL.iter().position(|x| *x == r).unwrap();
        assert_eq!(at(row), at(NutRow::Kxdp) + 1, "beside the kxdp row");
        let (kxdp, pod_napi) = (NutRow::Kxdp.topology(1), row.topology(1));
        // Node1's workers differ in pod_napi alone; all else is the kxdp row's.
        let mut workers = pod_napi.nodes[0].workers.clone();
        assert_eq!(workers.pod_napi, PodNapi::WorkerCore);
        assert_eq!(workers.poll_mode, PollMode::Busy);
        workers.pod_napi = PodNapi::Kernel;
        assert_eq!(workers, kxdp.nodes[0].workers);
        assert_eq!(kxdp.nodes[0].workers.pod_napi, PodNapi::Kernel);
        assert_eq!(pod_napi.nodes[0].kind, NodeKind::Kxdp);
        assert_eq!(
            (
                pod_napi.nodes[0].underlay_offloads,
                pod_napi.nodes[1].underlay_offloads
            ),
            (UnderlayOffloads::TxOff, UnderlayOffloads::TxOff)
        );
        assert_eq!(pod_napi.nodes[1].kind, NodeKind::KernelVxlan);
        // kxdp threads its pod veths itself: the bench's threading is the
        // tuned kernel row's alone.
        assert!(!row.threaded_napi());
        assert_eq!(row.node1_work(1), Node1Work::Worker(1));
        assert_eq!(
            row.sink_mode(RateDirection::Encap),
            NutRow::Kxdp.sink_mode(RateDirection::Encap)
        );
        let (node1, _) = row.nodes(1);
        assert!(node1.contains("pod_napi worker-core"), "{node1}");
        let placement = row.placement(1, 0).join("\n");
        assert!(
            placement.contains("core 1: node1 kxdp worker (busy poll) and, beside it"),
            "{placement}"
        );
        // Every other row keeps the kernel's placement.
        for other in NutRow::ALL.into_iter().filter(|r| *r != row) {
            assert_eq!(other.pod_napi(), PodNapi::Kernel, "{}", other.label());
        }
    }

    #[test]
    fn the_encap_sink_is_generic_where_node1_ul0_keeps_tso() {
        for row in NutRow::ALL {
            let expected = match row {
                NutRow::KernelVxlan | NutRow::KernelVxlanTuned | NutRow::Routed => {
                    XdpAttachMode::Generic
                }
                _ => XdpAttachMode::Native,
            };
            assert_eq!(row.sink_mode(RateDirection::Encap), expected, "{row:?}");
            assert_eq!(row.sink_mode(RateDirection::Decap), XdpAttachMode::Native);
        }
        assert!(NutRow::Kxdp
            .sink_description(RateDirection::Encap, 0)
            .contains("NAPI thread on core 0"));
    }

    fn load(core: usize, busy: f64, softirq: f64, nice: f64) -> CoreLoad {
        CoreLoad {
            core,
            busy,
            softirq,
            nice,
        }
    }

    #[test]
    fn node1_busy_time_per_kind_of_node() {
        let loads = [load(0, 1.0, 0.4, 0.0), load(1, 0.9, 0.1, 0.2)];
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // The worker's core less the nice time of others' builds.
        assert!(near(Node1Work::Worker(1).busy_share(&loads), 0.7));
        // A kernel node: softirq of every core.
        assert!(near(Node1Work::Softirq.busy_share(&loads), 0.5));
        // Threads on core 1, plus the softirq that bypassed them on core 0.
        assert!(near(Node1Work::NapiThreads(1).busy_share(&loads), 1.1));
        assert!(near(Node1Work::Worker(3).busy_share(&loads), 0.0));
    }

    #[test]
    fn rate_samples_from_counts() {
        // 2 s, 2 M generated, 1.5 M received, node1 busy half a core.
        let s = RateSample::of(2_000_000, 1_500_000, 2.0, 0.5);
        assert!((s.generator_tx_kpps - 1000.0).abs() < 1e-6);
        assert!((s.received_kpps - 750.0).abs() < 1e-6);
        assert!((s.loss_percent - 25.0).abs() < 1e-9);
        assert!((s.node1_per_core_kpps - 1500.0).abs() < 1e-6);
        assert!((s.node1_cpu_s_per_mpkt - 1.0 / 1.5).abs() < 1e-9);
        let none = RateSample::of(0, 0, 1.0, 0.0);
        assert!(none.loss_percent.is_nan() && none.node1_per_core_kpps.is_nan());
        assert!(none.node1_cpu_s_per_mpkt.is_nan());
    }

    fn measured(row: NutRow, received: [f64; 2], per_core: [f64; 2]) -> NutRowFigures {
        let (node1, node2) = row.nodes(1);
        NutRowFigures {
            row,
            node1,
            node2,
            not_measured: None,
            latency: Vec::new(),
            tcp_node1_to_node2_gbps: Spread::of(&[1.0]),
            tcp_node2_to_node1_gbps: Spread::of(&[1.0]),
            tcp_node1_to_node2_retrans_percent: Spread::of(&[0.5]),
            tcp_node2_to_node1_retrans_percent: Spread::of(&[0.0]),
            rate: RateDirection::ALL
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    let sample = RateSample::of(
                        (received[i] * 1e3) as u64 * 2,
                        (received[i] * 1e3) as u64,
                        1.0,
                        received[i] / per_core[i],
                    );
                    rate_figures(row, d, 0, &[&sample])
                })
                .collect(),
            placement: row.placement(1, 0),
        }
    }

    #[test]
    fn the_rate_table_has_every_row_and_direction_and_kxdp_over_the_kernel() {
        let rows = vec![
            measured(NutRow::KernelVxlan, [100.0, 200.0], [100.0, 250.0]),
            measured(NutRow::KernelVxlanTuned, [200.0, 200.0], [200.0, 250.0]),
            measured(NutRow::Kxdp, [400.0, 500.0], [400.0, 500.0]),
        ];
        let ratios = rate_ratios(&rows);
        assert_eq!(ratios.len(), 4);
        let r = &ratios[0];
        assert_eq!(
            (r.direction, r.against),
            (RateDirection::Encap, NutRow::KernelVxlan)
        );
        assert!((r.received - 4.0).abs() < 1e-6 && (r.per_core - 4.0).abs() < 1e-6);
        assert!((ratios[3].per_core - 2.0).abs() < 1e-6);
        let report = NutReport {
            rounds: 1,
            probes: 10,
            load_pps: 1,
            tcp_bytes: 1 << 20,
            tcp_congestion_control: "cubic".to_string(),
            tcp_congestion_chosen: true,
            rate_frame_bytes: RATE_FRAME_BYTES,
            rate_flows: RATE_FLOWS,
            rate_seconds: 2.0,
            rate_ratios: ratios,
            cores: BTreeMap::new(),
            rows,
            not_measured: Vec::new(),
            files: Vec::new(),
        };
        let t = table(&report);
        assert!(t.contains("64-byte UDP packet rate"), "{t}");
        assert!(
            t.contains("congestion control cubic (--tcp-cc, in every pod's namespace)"),
            "{t}"
        );
        for row in ["kernel-vxlan", "kernel-vxlan-tuned", "kxdp"] {
            for d in ["encap", "decap"] {
                assert!(t.contains(&format!("| {row} | {d} | ")), "{row} {d}:\n{t}");
            }
        }
        assert!(
            t.contains("| kxdp | encap | 800 [800–800] | 400 [400–400] | 50.0"),
            "{t}"
        );
        assert!(
            t.contains("kxdp / kernel-vxlan, encap: received 4.00×, node1 per core 4.00×"),
            "{t}"
        );
        assert!(t.contains("kxdp / kernel-vxlan-tuned, decap"), "{t}");
        assert!(!t.contains("not measured: 64-byte"), "{t}");
        // TCP: goodput and the senders' retransmissions, per direction.
        assert!(t.contains("retransmitted 1 → 2 %"), "{t}");
        assert!(
            t.contains("| kxdp | 1.00 [1.00–1.00] | 1.00 [1.00–1.00] | 0.50 [0.50–0.50] | 0.00 [0.00–0.00] |"),
            "{t}"
        );
    }

    #[test]
    fn retransmissions_are_a_share_of_the_segments_sent_between_readings() {
        assert!((retrans_percent((1000, 10), (3000, 30)) - 1.0).abs() < 1e-9);
        assert_eq!(retrans_percent((5, 1), (5, 1)), 0.0);
        // A counter that went backwards (another namespace's reading) is 0.
        assert_eq!(retrans_percent((5, 9), (4, 2)), 0.0);
    }

    #[test]
    fn every_row_is_measured_ovs_where_installed() {
        for row in NutRow::ALL {
            let why = row.not_measured();
            if row == NutRow::OvsVxlan {
                assert_eq!(
                    why.is_some(),
                    ExternalKind::Ovs.check_installed().is_err(),
                    "{why:?}"
                );
                if let Some(why) = why {
                    assert!(why.starts_with("ovs-vswitchd not installed"), "{why}");
                }
            } else {
                assert_eq!(why, None, "{}", row.label());
            }
        }
    }

    #[test]
    fn ovs_replaces_kxdp_on_a_kxdp_kind_node1_with_a_tx_off_peer() {
        let spec = NutRow::OvsVxlan.topology(1);
        assert_eq!(spec.nodes[0].kind, NodeKind::Kxdp);
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.underlay_offloads == UnderlayOffloads::TxOff));
        let (node1, _) = NutRow::OvsVxlan.nodes(1);
        assert!(node1.contains("PMD thread on core 1"), "{node1}");
        assert_eq!(NutRow::OvsVxlan.node1_work(1), Node1Work::Worker(1));
        let placement = NutRow::OvsVxlan.placement(1, 0).join("\n");
        assert!(
            placement.contains("core 1: node1 ovs-vswitchd's PMD"),
            "{placement}"
        );
    }
}
