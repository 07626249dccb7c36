//! The load balancer: ClusterIP:port → endpoint:targetPort (DNAT) for new
//! and existing connections, and endpoint → ClusterIP (reverse NAT) for
//! their replies.
//!
//! A new connection (a packet to a balanced service port whose connection
//! entry holds no translation) gets a backend from the port's Maglev table
//! (ready endpoints only) by its flow hash; the worker remembers it in the
//! client direction's connection entry, and the executor remembers the
//! reply direction (endpoint:targetPort → client) in another, so:
//! - later packets of the connection keep their backend, across endpoint
//!   changes, as long as the backend is still ready or serving (a
//!   terminating endpoint keeps its connections); when it is neither, the
//!   connection moves to a backend Maglev picks (and the new reply
//!   direction is remembered);
//! - replies from the backend get the ClusterIP and service port back as
//!   their source.
//!
//! A client may reuse a closed ClusterIP connection's port for a
//! connection straight to the backend that served it (an ephemeral port
//! coming round again, as a node's kubelet probes do beside its ClusterIP
//! traffic). The backend's replies then carry the reply direction's tuple,
//! and must not get the ClusterIP. So each direction of a balanced TCP
//! connection notes a FIN or RST it carries, and a SYN from the backend
//! once either side has sent one answers a new connection: the reply
//! direction's translation is forgotten ([`LbState::reopened`]) and the
//! SYN passes as the backend sent it. (A SYN-ACK retransmitted or
//! reordered while the connection is open keeps its translation.)
//!
//! A port with no ready endpoint drops new connections
//! ([`DropReason::NoServiceEndpoint`]); a non-first fragment to a
//! ClusterIP is dropped ([`DropReason::ServiceFragment`]): it has no
//! ports to find its connection by. Packets to anything else pass untouched.

use crate::conntrack::{join, split, Conntrack, NatNote, PacketContext, StageAction, Translation};
use crate::maglev::Backend;
use crate::nat::{self, Side};
use crate::service::{EndpointState, ServiceTable, VipKey};
use kxdp_dataplane::packet::L4;
use kxdp_dataplane::wire::tcp;
use kxdp_dataplane::DropReason;

/// What a load-balancer stage balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbConfig {
    /// Per service port index of the chain set's [`ServiceTable`]: balanced
    /// by this stage. Ports of other tenants are never balanced.
    balanced: Box<[bool]>,
}

impl LbConfig {
    /// A stage balancing the service ports for which `balanced` is true.
    pub fn new(balanced: Vec<bool>) -> Self {
        LbConfig {
            balanced: balanced.into_boxed_slice(),
        }
    }

    #[inline]
    fn balances(&self, index: u32) -> bool {
        self.balanced.get(index as usize).copied().unwrap_or(false)
    }
}

/// One worker's state of a load-balancer stage: its counters (the
/// translations live in the connection entries).
#[derive(Clone, Debug, Default)]
pub struct LbState {
    /// New connections given a backend.
    pub connections: u64,
    /// Connections moved because their backend stopped serving.
    pub moved: u64,
    /// Packets whose destination was translated.
    pub translated: u64,
    /// Packets whose source was translated back.
    pub reverse_translated: u64,
    /// Reply directions whose translation was forgotten because their
    /// tuple began a new, untranslated connection.
    pub reopened: u64,
}

/// What a load-balancer stage reads.
#[derive(Clone, Copy, Debug)]
pub struct LbEnv<'a> {
    /// The stage's settings.
    pub config: &'a LbConfig,
    /// The chain set's services.
    pub services: &'a ServiceTable,
    /// Identifies the stage's translations in connection entries.
    pub owner: u32,
}

impl LbState {
    /// A fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the load balancer decides for one packet, rewriting `frame`
    /// (and `ctx`) when it translates.
    #[inline(always)]
    pub fn decide(
        &mut self,
        env: &LbEnv<'_>,
        now: u64,
        ctx: &mut PacketContext,
        frame: &mut [u8],
        conntrack: &mut Conntrack,
    ) -> StageAction {
        let services = env.services;
        if ctx.meta.is_fragment && ctx.meta.l4_offset == 0 {
            let key = &ctx.flow;
            return if services.is_cluster_ip(key.tenant, key.dst, key.ipv6) {
                StageAction::Drop(DropReason::ServiceFragment)
            } else {
                StageAction::Pass
            };
        }
        // A chain has one load balancer: what its entries hold is this
        // stage's, or its predecessor's under another config (then checked
        // again, like after an endpoint change).
        let remembered = conntrack
            .entry(ctx)
            .map_or(Translation::None, |e| e.translation);
        match remembered {
            Translation::Forward {
                owner,
                ip,
                port,
                epoch,
            } => {
                note_fin_or_rst(ctx, frame, conntrack);
                let backend = Backend { ip: join(ip), port };
                let backend = if epoch == services.epoch() && owner == env.owner {
                    backend
                } else {
                    match self.recheck(env, ctx, backend, conntrack) {
                        Ok(Some(backend)) => backend,
                        Ok(None) => return StageAction::Pass,
                        Err(reason) => return StageAction::Drop(reason),
                    }
                };
                self.translate(ctx, frame, Side::Destination, backend.ip, backend.port)
            }
            Translation::Reply { ip, port, .. } => {
                if note_fin_or_rst(ctx, frame, conntrack) == Some(true)
                    && closing(ctx, ip, port, now, conntrack)
                {
                    // A SYN from the backend after the connection began
                    // to close answers a new one on the same ports, made
                    // without the ClusterIP.
                    if let Some(entry) = conntrack.entry(ctx) {
                        entry.translation = Translation::None;
                    }
                    self.reopened += 1;
                    return StageAction::Pass;
                }
                self.translate(ctx, frame, Side::Source, join(ip), port)
            }
            Translation::None => {
                let vip = VipKey::of_destination(&ctx.flow);
                let Some(index) = services.find(&vip).filter(|&i| env.config.balances(i)) else {
                    return StageAction::Pass;
                };
                let Some(backend) = services.port(index).and_then(|p| p.pick_for(&ctx.flow)) else {
                    return StageAction::Drop(DropReason::NoServiceEndpoint);
                };
                self.connections += 1;
                remember(env, ctx, backend, conntrack);
                self.translate(ctx, frame, Side::Destination, backend.ip, backend.port)
            }
        }
    }

    /// After an endpoint or config change: keep the backend while it serves
    /// a port this stage balances, else move
    /// the connection. `Ok(None)`: the destination is no longer a balanced
    /// service port (forget the translation, pass the packet untouched).
    fn recheck(
        &mut self,
        env: &LbEnv<'_>,
        ctx: &mut PacketContext,
        backend: Backend,
        conntrack: &mut Conntrack,
    ) -> Result<Option<Backend>, DropReason> {
        let services = env.services;
        let vip = VipKey::of_destination(&ctx.flow);
        let Some(port) = services
            .find(&vip)
            .filter(|&i| env.config.balances(i))
            .and_then(|i| services.port(i))
        else {
            if let Some(entry) = conntrack.entry(ctx) {
                entry.translation = Translation::None;
            }
            return Ok(None);
        };
        if matches!(
            port.state(&backend),
            Some(EndpointState::Ready | EndpointState::Serving)
        ) {
            if let Some(Translation::Forward { epoch, owner, .. }) =
                conntrack.entry(ctx).map(|e| &mut e.translation)
            {
                *epoch = services.epoch();
                *owner = env.owner;
            }
            return Ok(Some(backend));
        }
        let Some(moved_to) = port.pick_for(&ctx.flow) else {
            if let Some(entry) = conntrack.entry(ctx) {
                entry.translation = Translation::None;
            }
            return Err(DropReason::NoServiceEndpoint);
        };
        self.moved += 1;
        remember(env, ctx, moved_to, conntrack);
        Ok(Some(moved_to))
    }

    #[inline(always)]
    fn translate(
        &mut self,
        ctx: &mut PacketContext,
        frame: &mut [u8],
        side: Side,
        ip: u128,
        port: u16,
    ) -> StageAction {
        if let Err(reason) = nat::rewrite(frame, &mut ctx.meta, side, ip, port) {
            return StageAction::Drop(reason);
        }
        // The flow key follows the rewrite, in place (the identities were
        // looked up for the old addresses).
        match side {
            Side::Source => {
                ctx.flow.src = ip;
                ctx.flow.src_port = port;
                self.reverse_translated += 1;
            }
            Side::Destination => {
                ctx.flow.dst = ip;
                ctx.flow.dst_port = port;
                self.translated += 1;
            }
        }
        ctx.identities_known = false;
        StageAction::Pass
    }
}

/// The flags byte of a TCP segment (`None` for anything else). The
/// parser put the whole TCP header inside the frame when it said TCP.
#[inline]
fn tcp_flags(ctx: &PacketContext, frame: &[u8]) -> Option<u8> {
    if !matches!(ctx.meta.l4, L4::Tcp { .. }) {
        return None;
    }
    frame.get(ctx.meta.l4_offset + TCP_FLAGS_OFFSET).copied()
}

/// Where a TCP header keeps its flags byte (RFC 9293 §3.1).
const TCP_FLAGS_OFFSET: usize = 13;

/// For a TCP segment of a translated connection: note a FIN or RST in its
/// direction's entry, and say whether it is a SYN (`None`: not TCP).
#[inline]
fn note_fin_or_rst(ctx: &PacketContext, frame: &[u8], conntrack: &mut Conntrack) -> Option<bool> {
    let flags = tcp_flags(ctx, frame)?;
    if flags & (tcp::FLAG_FIN | tcp::FLAG_RST) != 0 {
        if let Some(entry) = conntrack.entry(ctx) {
            entry.mark_fin_or_rst();
        }
    }
    Some(flags & tcp::FLAG_SYN != 0)
}

/// Whether either direction of the connection whose reply direction `ctx`
/// is (its ClusterIP `ip`:`port`) has carried a FIN or RST. The client's
/// direction is looked up by its key: only for a backend's SYN, not per
/// packet.
#[cold]
fn closing(
    ctx: &PacketContext,
    ip: [u32; 4],
    port: u16,
    now: u64,
    conntrack: &mut Conntrack,
) -> bool {
    if conntrack.entry(ctx).is_some_and(|e| e.sent_fin_or_rst()) {
        return true;
    }
    let mut client = ctx.flow.reversed();
    client.dst = join(ip);
    client.dst_port = port;
    conntrack
        .entry_of(&client, now)
        .is_some_and(|e| e.sent_fin_or_rst())
}

/// Remember a connection's backend in its entry, and note the translation
/// so that the executor remembers the reply direction. Called before the
/// packet is rewritten: its destination is still the service's.
fn remember(env: &LbEnv<'_>, ctx: &mut PacketContext, backend: Backend, conntrack: &mut Conntrack) {
    if let Some(entry) = conntrack.entry(ctx) {
        entry.translation = Translation::Forward {
            owner: env.owner,
            ip: split(backend.ip),
            port: backend.port,
            epoch: env.services.epoch(),
        };
    }
    ctx.nat = Some(NatNote {
        ip: ctx.flow.dst,
        port: ctx.flow.dst_port,
    });
}
