//! The XDP program's settings, attach modes, actions and errors.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use kxdp_sys::bpf as sys;

/// Which frames the XDP program hands to the AF_XDP sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpFilter {
    /// Every frame goes to the socket of its rx queue
    /// (`bpf_redirect_map(xskmap, rx_queue_index, XDP_DROP)`). A queue
    /// without a socket drops: on a pod interface, a frame passed to the
    /// host stack would be routed or answered outside kxdp's policy and
    /// tenant isolation.
    All,
    /// Only Ethernet/IPv4/UDP to `vtep:udp_port` (any IHL, not a fragment)
    /// goes to the socket; everything else, and a match on a queue without
    /// a socket, is passed to the kernel: on the underlay, the node's own
    /// traffic (SSH, kubelet, the API server) must keep working whatever
    /// kxdp's sockets do.
    Vxlan {
        /// This node's VTEP address.
        vtep: Ipv4Addr,
        /// The VXLAN UDP port (4789).
        udp_port: u16,
    },
}

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpAttachMode {
    /// Native, falling back to generic with a log line.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

impl From<kxdp_config::XdpMode> for XdpAttachMode {
    fn from(mode: kxdp_config::XdpMode) -> Self {
        match mode {
            kxdp_config::XdpMode::Auto => XdpAttachMode::Auto,
            kxdp_config::XdpMode::Native => XdpAttachMode::Native,
            kxdp_config::XdpMode::Generic => XdpAttachMode::Generic,
        }
    }
}

/// The mode a program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the skb path (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl AttachedMode {
    /// The `XDP_FLAGS_*` bit that asks for this mode.
    pub(crate) fn flags(self) -> u32 {
        match self {
            AttachedMode::Native => sys::XDP_FLAGS_DRV_MODE,
            AttachedMode::Generic => sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// An XDP program's verdict (`enum xdp_action`), as returned by
/// [`XdpAttachment::test_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAction {
    /// `XDP_ABORTED`.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`.
    Pass,
    /// `XDP_TX`.
    Tx,
    /// `XDP_REDIRECT` (here: to an AF_XDP socket).
    Redirect,
    /// Anything else.
    Other(u32),
}

impl From<u32> for XdpAction {
    fn from(v: u32) -> Self {
        match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Other(other),
        }
    }
}

/// Why loading, attaching or updating failed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A bad argument (queue count, queue id, interface name).
    #[error("invalid XDP request: {0}")]
    Invalid(String),
    /// The interface does not exist in this network namespace.
    #[error("interface {ifname:?} not found")]
    NoSuchInterface {
        /// The interface name.
        ifname: String,
        /// The error of if_nametoindex.
        #[source]
        source: io::Error,
    },
    /// A bpf(2) command failed.
    #[error("bpf({op}) failed")]
    Syscall {
        /// The command.
        op: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The verifier rejected the program.
    #[error("the verifier rejected XDP program {program}; verifier log:\n{log}")]
    Verifier {
        /// The program's name.
        program: &'static str,
        /// The verifier's log (level 1).
        log: String,
        /// The error of BPF_PROG_LOAD.
        #[source]
        source: io::Error,
    },
    /// The program could not be attached to the interface.
    #[error("attaching XDP to {ifname} in {mode} mode failed")]
    Attach {
        /// The interface.
        ifname: String,
        /// The last mode tried.
        mode: AttachedMode,
        /// The error of BPF_LINK_CREATE.
        #[source]
        source: io::Error,
    },
}
