//! The testbed: real multi-node topologies built from Linux network
//! namespaces and veth pairs, with nodes that run kxdp or the kernel's vxlan
//! device (the way Flannel does), and the traffic tools that measure
//! pod-to-pod delivery and latency between them. Used by `kxdp demo`, the
//! end-to-end tests and the benchmarks.
//!
//! Layout of a built [`Testbed`] (names carry a per-run prefix
//! `kx<pid>-<seq>-`, so parallel runs and parallel tests never clash):
//!
//! ```text
//!  pod netns <prefix>p-<pod>      node netns <prefix>n-<node>            fabric netns (Switch)
//!  ┌──────────────────┐ veth ┌──────────────────────────────┐ veth ┌─────────────────┐
//!  │ eth0 10.244.N.x  ├──────┤ v<pod>         ul0 192.168.100.N├──────┤ n<N> ── br0 ── … │
//!  └──────────────────┘      └──────────────────────────────┘      └─────────────────┘
//! ```
//!
//! Nothing is created in the root namespace: every veth is created with both
//! ends directly inside the namespaces it joins. Dropping the [`Testbed`]
//! deletes every namespace it made (and with them every veth, bridge and
//! vxlan device), also while a panic unwinds; [`Testbed::cleanup_stale`]
//! removes what runs that died without unwinding left behind. A program
//! stopped by a signal (Ctrl-C, `timeout`) removes its own first: it calls
//! [`remove_on_signal`] at start ([`on_signal`]).
//!
//! A kxdp node may also hold VNF pods with two interfaces for service
//! chains ([`Testbed::add_vnf`], namespaces `<prefix>f-<name>`), and
//! Services over its pods ([`Testbed::service_spec`]).
//!
//! For a cluster: a kxdp node may have a host port into its own stack
//! ([`NodeSpec::with_host_port`]); a `Switch` underlay may hold hosts
//! outside the cluster on its bridge, an external client or an "internet"
//! server ([`Testbed::add_fabric_host`], namespaces `<prefix>x-<name>`);
//! programs run in any namespace for as long as a test needs them, a
//! hostNetwork server in a node's ([`Testbed::spawn_on_node`]); and
//! [`http_server`] / [`http_rtt`] speak HTTP as workloads and probes do.
//!
//! This module runs `ip`, `bridge` and `ethtool` (iproute2 and ethtool
//! packages) and, for [`ping`], iputils' `ping`. It needs root
//! (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns).

mod bed;
mod error;
mod fabric;
mod http;
mod kernel_node;
mod kxdp_process;
mod netns;
mod netns_process;
pub mod on_signal;
mod report;
mod runtime_pod;
mod service;
mod topology;
mod traffic;
mod vnf;

pub use bed::{check_privileges, Testbed, NAME_FAMILY};
pub use error::{Result, TestbedError};
pub use fabric::{FabricHost, FABRIC_HOST_IF, MAX_FABRIC_HOST_NAME};
pub use http::{http_get, http_rtt, http_server, HttpReply, HttpResponse, HttpServer};
pub use kxdp_harness::privileged_test;
pub use kxdp_process::{KxdpProcess, READY_TIMEOUT};
pub use netns::{find_program, list_netns, Netns, NetnsGuard, NETNS_RUN_DIR};
pub use netns_process::NetnsProcess;
pub use on_signal::{hold_if_stopping, remove_on_signal};
pub use report::{format_table, PairResult, PathKind};
pub use runtime_pod::RuntimePod;
pub use service::{identity_server, IdentityServer, ServiceFlows};
pub use topology::{
    flannel_device, gateway_ip, host_port_mac, pod_cidr, pod_ip, vtep_ip, Node, NodeKind, NodeSpec,
    Pod, PodSpec, TopologySpec, Underlay, UnderlayOffloads, CLUSTER_POD_CIDR, CNI_BRIDGE,
    FABRIC_BRIDGE, HOST_IF, HOST_PEER, MAX_NODES, MAX_POD_NAME, POD_CIDR_LEN, POD_IF, POD_MTU,
    SERVICE_CIDR, UNDERLAY_IF, UNDERLAY_MTU, VXLAN_OVERHEAD, VXLAN_PORT,
};
pub use traffic::{
    ping, rss_kb, snmp_counters, tcp_echo_server, tcp_echo_server_with, tcp_rtt, tcp_rtt_with,
    tcp_transfer, udp_echo_server, udp_echo_server_with, udp_rtt, udp_rtt_with, EchoServer,
    RttOptions, RttResult, Transfer, WaitMode,
};
pub use vnf::{VnfPod, VnfTraffic, MAX_VNF_NAME, VNF_IN_IF, VNF_OUT_IF};
