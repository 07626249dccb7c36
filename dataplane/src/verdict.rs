//! A packet's fate is a value: [`Verdict`], with [`DropReason`] doubling as
//! the drop counter's label.

/// Index of a port (an interface bound by the worker), in the order of the
/// configuration's `interfaces` list.
pub type PortId = u16;

/// What happens to a frame after the pipeline has seen it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this port (the frame may have been rewritten in place).
    Tx(PortId),
    /// Drop, counted under this reason.
    Drop(DropReason),
    /// Hand to the kernel stack (only where the backend can).
    Pass,
}

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $name:ident => $label:literal, )*) => {
        /// Why a frame was dropped. Each variant is a counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// The number of reasons (the size of a counter array).
            pub const COUNT: usize = DropReason::ALL.len();

            /// The counter label, snake_case, stable (used in stats and metrics).
            pub const fn label(self) -> &'static str {
                match self { $(DropReason::$name => $label,)* }
            }

            /// The counter index.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The reason for a label.
            pub fn from_label(label: &str) -> Option<DropReason> {
                DropReason::ALL.iter().copied().find(|r| r.label() == label)
            }
        }

        impl std::fmt::Display for DropReason {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    Runt => "runt",
    /// Longer than the frame size the backend allows.
    Oversized => "oversized",
    /// An EtherType the dataplane does not forward.
    UnsupportedEthertype => "unsupported_ethertype",
    /// A truncated or stacked 802.1Q tag.
    MalformedVlan => "malformed_vlan",
    /// A VLAN tag on a port that carries none.
    VlanNotAllowed => "vlan_not_allowed",
    /// Unicast to a MAC that is not the port's.
    NotOurMac => "not_our_mac",
    /// Multicast or broadcast that is neither ARP nor neighbour discovery.
    L2Multicast => "l2_multicast",
    /// ARP that does not parse.
    MalformedArp => "malformed_arp",
    /// ARP other than a request for the gateway.
    ArpNotForGateway => "arp_not_for_gateway",
    /// IPv4 header truncated, wrong version, IHL < 5.
    MalformedIpv4 => "malformed_ipv4",
    /// IPv4 total length larger than the frame or smaller than the header.
    Ipv4BadLength => "ipv4_bad_length",
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// IPv6 header truncated, wrong version, payload length past the frame.
    MalformedIpv6 => "malformed_ipv6",
    /// A UDP, TCP, ICMP or ICMPv6 header truncated or with a bad length.
    MalformedL4 => "malformed_l4",
    /// Neighbour discovery other than a solicitation for the gateway.
    NdNotForGateway => "nd_not_for_gateway",
    /// TTL or hop limit would reach zero.
    TtlExpired => "ttl_expired",
    /// Source MAC or IP is not the pod's own (anti-spoofing).
    SourceSpoofed => "source_spoofed",
    /// From a pod, in a unicast frame: an IP destination no router
    /// forwards (0/8, loopback, multicast, 255.255.255.255; ::, ::1,
    /// ff00::/8).
    MartianDestination => "martian_destination",
    /// Frame arrived on a port the tables do not know.
    UnknownPort => "unknown_port",
    /// No route for the destination in the tenant's table.
    NoRoute => "no_route",
    /// The route is a blackhole.
    Blackhole => "blackhole",
    /// After encapsulation the frame would exceed the underlay MTU.
    ExceedsMtu => "exceeds_mtu",
    /// Outer headers of a VXLAN frame malformed.
    VxlanMalformed => "vxlan_malformed",
    /// VXLAN addressed to another VTEP or port.
    VxlanNotForUs => "vxlan_not_for_us",
    /// VXLAN flags: I flag clear.
    VxlanBadFlags => "vxlan_bad_flags",
    /// VXLAN with a VNI of no tenant.
    UnknownVni => "unknown_vni",
    /// VXLAN whose outer source is not a remote VTEP of the VNI's tenant
    /// (an unknown host on the underlay, or a node injecting into a tenant
    /// it does not serve).
    VxlanUnknownSource => "vxlan_unknown_source",
    /// The inner destination is not a local pod of the VNI's tenant.
    VxlanNoLocalPod => "vxlan_no_local_pod",
    /// The underlay received something that is not VXLAN for us.
    UnderlayNotVxlan => "underlay_not_vxlan",
    /// The first fragment of a fragmented VXLAN packet (an underlay with a
    /// smaller MTU on the way): kxdp does not reassemble; the XDP program
    /// takes first fragments so that the loss is counted here (the rest of
    /// the datagram, left to the node's kernel, never completes).
    VxlanFragmented => "vxlan_fragmented",
    /// The route would send VXLAN back out to the underlay.
    UnderlayHairpin => "underlay_hairpin",
    /// The backend cannot hand frames to the kernel.
    PassUnsupported => "pass_unsupported",
    /// The egress port's transmit ring was full.
    TxRingFull => "tx_ring_full",
    /// The kernel found a socket's fill ring empty and dropped the frame
    /// (a port that receives faster than the worker refills it). Read from
    /// the socket's `XDP_STATISTICS` when counters are read.
    FillRingEmpty => "fill_ring_empty",
    /// The kernel found a socket's rx ring full and dropped the frame (the
    /// worker fell behind). From `XDP_STATISTICS`.
    RxRingFull => "rx_ring_full",
    /// The kernel dropped a frame at a socket for another reason, mostly a
    /// frame larger than a UMEM frame (2048 bytes less headroom). From
    /// `XDP_STATISTICS`.
    SocketRxDropped => "socket_rx_dropped",
    /// The egress port is down or gone.
    PortDown => "port_down",
    /// Not enough headroom in the frame's chunk to encapsulate.
    NoHeadroom => "no_headroom",
    /// A service chain's policy stage: no NetworkPolicy allows the connection.
    PolicyDenied => "policy_denied",
    /// A service chain's policer: the token bucket was empty.
    PolicerExceeded => "policer_exceeded",
    /// A service chain's load balancer: a Service port with no ready (or,
    /// for an existing connection, serving) endpoint.
    NoServiceEndpoint => "no_service_endpoint",
    /// A service chain's load balancer: a non-first fragment to a Service
    /// address or from a balanced endpoint (no ports to place it by).
    ServiceFragment => "service_fragment",
    /// A service chain's external VNF is down and its failure policy is
    /// fail-closed.
    VnfDown => "vnf_down",
    /// A service chain could not rewrite a frame shorter than its metadata.
    ChainMalformedFrame => "chain_malformed_frame",
    /// A chain's mirror found no free UMEM frame for its copy (the original
    /// goes on untouched).
    MirrorNoFrame => "mirror_no_frame",
}

impl DropReason {
    /// The reasons a service chain decides a drop for (its stages' fate):
    /// what a chain's counters list, zeros included.
    pub const CHAIN: &'static [DropReason] = &[
        DropReason::PolicyDenied,
        DropReason::PolicerExceeded,
        DropReason::NoServiceEndpoint,
        DropReason::ServiceFragment,
        DropReason::VnfDown,
        DropReason::ChainMalformedFrame,
    ];

    /// Position in [`DropReason::CHAIN`] (how a chain's counters index
    /// their drops); `None` for a reason no chain decides.
    pub fn chain_index(self) -> Option<usize> {
        DropReason::CHAIN.iter().position(|r| *r == self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(seen.insert(r.label()), "duplicate label {}", r.label());
            assert_eq!(DropReason::from_label(r.label()), Some(*r));
        }
    }
}
