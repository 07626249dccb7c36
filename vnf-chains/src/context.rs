//! What a network function sees of a packet ([`PacketContext`]), what it
//! decides ([`StageAction`]), where the frame bytes are ([`Frames`]) and
//! what a whole chain decides ([`ChainVerdict`]); drops carry the dataplane's
//! [`DropReason`] (one of [`DropReason::CHAIN`]).

use kxdp_dataplane::chain_hook::ChainVerdict;
use kxdp_dataplane::packet::FrameMeta;
use kxdp_dataplane::tables::TenantId;
use kxdp_dataplane::{DropReason, PortId};

use crate::flow::{FlowHandle, FlowKey};
use crate::identity::IdentityId;

/// Which way a packet goes relative to its flow's initiator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the flow's initiator (the first packet the chain saw).
    #[default]
    Forward,
    /// Back to the initiator: symmetric chains run their stages in reverse.
    Reply,
}

/// What one stage decides for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StageAction {
    /// Go on to the next stage.
    #[default]
    Pass,
    /// Drop, counted under this reason.
    Drop(DropReason),
    /// Send the frame out of this port (into a VNF); the chain resumes when
    /// it comes back (see [`crate::ChainSet::resume_point`]).
    Redirect(PortId),
}

/// Sentinel chain index: no chain.
pub(crate) const NO_CHAIN: u16 = u16::MAX;

/// One packet on its way through a chain: its metadata, flow, identities and
/// position. The worker makes one with [`PacketContext::new`] for each
/// parsed frame of a batch (in a reused buffer: the type is `Copy` and
/// allocates nothing); the executor fills in the rest.
#[derive(Clone, Copy, Debug)]
pub struct PacketContext {
    /// The frame's metadata; kept up to date when a stage rewrites addresses.
    pub meta: FrameMeta,
    /// Frame length in bytes (what counters count).
    pub len: u32,
    /// The port the frame arrived on.
    pub in_port: PortId,
    /// The tenant the packet belongs to (set to the chain's tenant when the
    /// frame comes back from an external VNF).
    pub tenant: TenantId,
    /// The flow key, kept up to date when a stage rewrites addresses.
    pub flow: FlowKey,
    /// Source identity (valid when `identities_known`).
    pub src_identity: IdentityId,
    /// Destination identity (valid when `identities_known`).
    pub dst_identity: IdentityId,
    /// Whether the identities were looked up for the current `flow`.
    pub identities_known: bool,
    /// Which way the packet goes relative to its flow's initiator.
    pub direction: Direction,
    /// The current stage's decision.
    pub action: StageAction,
    /// The chain's decision, once done.
    pub outcome: ChainVerdict,
    /// Index of the chain in the set, or [`NO_CHAIN`].
    pub(crate) chain: u16,
    /// The next stage to run.
    pub(crate) stage: u16,
    /// Still inside its chain.
    pub(crate) running: bool,
    /// Is an IP packet (has a flow key).
    pub(crate) is_ip: bool,
    /// Classified at this packet (no connection entry yet): the entry stays
    /// only if the chain does not drop it.
    pub(crate) fresh: bool,
    /// Its connection entry.
    pub(crate) handle: FlowHandle,
    /// Set by a load balancer that created or changed a translation: the
    /// executor then records the translated reply direction.
    pub(crate) nat: Option<NatNote>,
}

/// A translation made for a packet, for the executor to remember the
/// reply direction by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NatNote {
    /// The address replies must come from again (the ClusterIP).
    pub(crate) ip: u128,
    /// The port replies must come from again (the service port).
    pub(crate) port: u16,
}

impl PacketContext {
    /// The context of a frame parsed into `meta`, received on `in_port` in
    /// `tenant`. Reads `frame` only for SCTP ports.
    #[inline]
    pub fn new(frame: &[u8], meta: FrameMeta, in_port: PortId, tenant: TenantId) -> Self {
        let flow = FlowKey::from_meta(tenant, &meta, frame);
        PacketContext {
            meta,
            len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            in_port,
            tenant,
            flow: flow.unwrap_or_default(),
            src_identity: IdentityId::WORLD,
            dst_identity: IdentityId::WORLD,
            identities_known: false,
            direction: Direction::Forward,
            action: StageAction::Pass,
            outcome: ChainVerdict::NoChain,
            chain: NO_CHAIN,
            stage: 0,
            running: false,
            is_ip: flow.is_some(),
            fresh: false,
            handle: FlowHandle::NONE,
            nat: None,
        }
    }

    /// Replace the flow key (after a rewrite).
    #[inline]
    pub fn set_flow(&mut self, flow: FlowKey) {
        self.flow = flow;
        self.identities_known = false;
    }

    /// The index of the chain it was classified into, if any.
    pub fn chain_index(&self) -> Option<usize> {
        (self.chain != NO_CHAIN).then_some(usize::from(self.chain))
    }
}

/// Where a batch's frame bytes live, indexed like the batch's contexts. The
/// worker implements it over its UMEM and descriptors; tests over `Vec`s.
pub trait Frames {
    /// The bytes of frame `index` (from its Ethernet header), writable.
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]>;

    /// Ask for a copy of frame `index`, as it is now, to be sent out of
    /// `port`; false when no copy could be made (no buffer left for it, the
    /// port's transmit batch full, no such port). Called by the mirror stage
    /// at its place in the chain, so later rewrites do not show in the copy.
    /// The worker's implementation copies into a frame it lent the batch and
    /// sends the copy after the batch (see `kxdp_dataplane::chain_hook`).
    /// The default makes no copies.
    fn mirror(&mut self, index: usize, port: PortId) -> bool {
        let _ = (index, port);
        false
    }
}

impl Frames for [Vec<u8>] {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(Vec::as_mut_slice)
    }
}

impl Frames for Vec<Vec<u8>> {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(Vec::as_mut_slice)
    }
}

impl Frames for [&mut [u8]] {
    fn frame_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        self.get_mut(index).map(|f| &mut **f)
    }
}
