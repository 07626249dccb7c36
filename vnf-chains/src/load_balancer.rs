//! The load balancer: ClusterIP:port → endpoint:targetPort (DNAT) for new
//! and existing connections, and endpoint → ClusterIP (reverse NAT) for
//! their replies.
//!
//! A new connection (a packet to a balanced service port that the worker's
//! connection table does not know) gets a backend from the port's Maglev
//! table (ready endpoints only) by its flow hash; the worker remembers it
//! (keyed by the client's tuple) along with the reply tuple
//! (endpoint:targetPort → client), so:
//! - later packets of the connection keep their backend, across endpoint
//!   changes, as long as the backend is still ready or serving (a
//!   terminating endpoint keeps its connections); when it is neither, the
//!   connection moves to a backend Maglev picks and [`PacketContext::nat_changed`]
//!   is set;
//! - replies from the backend get the ClusterIP and service port back as
//!   their source.
//!
//! A port with no ready endpoint drops new connections
//! ([`ChainDropReason::NoServiceEndpoint`]); a non-first fragment to a
//! ClusterIP is dropped ([`ChainDropReason::ServiceFragment`]): it has no
//! ports to find its connection by. Packets to anything else pass untouched.

use crate::context::{ChainDropReason, Frames, PacketContext, StageAction};
use crate::flow::{FlowKey, FlowTable};
use crate::maglev::Backend;
use crate::nat::{self, Side};
use crate::service::{EndpointState, ServiceTable, VipKey};

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

/// A remembered translation.
#[derive(Clone, Copy, Debug, Default)]
enum Translation {
    /// Unused slot value.
    #[default]
    Vacant,
    /// Client → service: rewrite the destination to this backend. `epoch`
    /// is the service table's when the backend was last checked.
    Forward { backend: Backend, epoch: u64 },
    /// Backend → client: rewrite the source to the service.
    Reply { ip: u128, port: u16 },
}

/// One worker's state of a load-balancer stage: its connections.
#[derive(Debug)]
pub struct LbState {
    table: FlowTable<Translation>,
    /// New connections given a backend.
    pub connections: u64,
    /// Connections moved because their backend stopped serving.
    pub moved: u64,
    /// Packets whose destination was translated.
    pub translated: u64,
    /// Packets whose source was translated back.
    pub reverse_translated: u64,
}

impl LbState {
    /// Room for `capacity` remembered tuples (two per connection), each
    /// forgotten `idle_timeout_ns` after its last packet.
    pub fn new(capacity: usize, idle_timeout_ns: u64) -> Self {
        LbState {
            table: FlowTable::new(capacity, idle_timeout_ns),
            connections: 0,
            moved: 0,
            translated: 0,
            reverse_translated: 0,
        }
    }

    /// Decide `batch[i].action` for every `i` in `selected`, rewriting
    /// frames (from `frames`, indexed like `batch`) and their contexts.
    pub fn process<F: Frames + ?Sized>(
        &mut self,
        config: &LbConfig,
        services: &ServiceTable,
        now: u64,
        batch: &mut [PacketContext],
        selected: &[u16],
        frames: &mut F,
    ) {
        for &i in selected {
            let i = usize::from(i);
            let Some(ctx) = batch.get_mut(i) else {
                continue;
            };
            ctx.action = match frames.frame_mut(i) {
                Some(frame) => self.decide(config, services, now, ctx, frame),
                None => StageAction::Drop(ChainDropReason::ChainMalformedFrame),
            };
        }
    }

    fn decide(
        &mut self,
        config: &LbConfig,
        services: &ServiceTable,
        now: u64,
        ctx: &mut PacketContext,
        frame: &mut [u8],
    ) -> StageAction {
        if ctx.meta.is_fragment && ctx.meta.l4_offset == 0 {
            let key = &ctx.flow;
            return if services.is_cluster_ip(key.tenant, key.dst, key.ipv6) {
                StageAction::Drop(ChainDropReason::ServiceFragment)
            } else {
                StageAction::Pass
            };
        }
        match self.table.get(&ctx.flow, ctx.flow_hash, now).copied() {
            Some(Translation::Forward { backend, epoch }) => {
                let backend = if epoch == services.epoch() {
                    backend
                } else {
                    match self.recheck(config, services, now, ctx, backend) {
                        Ok(Some(backend)) => backend,
                        Ok(None) => return StageAction::Pass,
                        Err(reason) => return StageAction::Drop(reason),
                    }
                };
                self.translate(ctx, frame, Side::Destination, backend.ip, backend.port)
            }
            Some(Translation::Reply { ip, port }) => {
                self.translate(ctx, frame, Side::Source, ip, port)
            }
            Some(Translation::Vacant) | None => {
                let vip = VipKey::of_destination(&ctx.flow);
                let Some(index) = services.find(&vip).filter(|&i| config.balances(i)) else {
                    return StageAction::Pass;
                };
                let Some(backend) = services.port(index).and_then(|p| p.pick(ctx.flow_hash)) else {
                    return StageAction::Drop(ChainDropReason::NoServiceEndpoint);
                };
                self.connections += 1;
                self.remember(ctx, backend, services.epoch(), now);
                self.translate(ctx, frame, Side::Destination, backend.ip, backend.port)
            }
        }
    }

    /// After an endpoint change: keep the backend while it serves, else move
    /// the connection. `Ok(None)`: the destination is no longer a balanced
    /// service port (forget the connection, pass the packet untouched).
    fn recheck(
        &mut self,
        config: &LbConfig,
        services: &ServiceTable,
        now: u64,
        ctx: &mut PacketContext,
        backend: Backend,
    ) -> Result<Option<Backend>, ChainDropReason> {
        let vip = VipKey::of_destination(&ctx.flow);
        let Some(port) = services
            .find(&vip)
            .filter(|&i| config.balances(i))
            .and_then(|i| services.port(i))
        else {
            self.table.remove(&ctx.flow, ctx.flow_hash);
            return Ok(None);
        };
        if matches!(
            port.state(&backend),
            Some(EndpointState::Ready | EndpointState::Serving)
        ) {
            if let Some(Translation::Forward { epoch, .. }) =
                self.table.get(&ctx.flow, ctx.flow_hash, now)
            {
                *epoch = services.epoch();
            }
            return Ok(Some(backend));
        }
        let Some(moved_to) = port.pick(ctx.flow_hash) else {
            self.table.remove(&ctx.flow, ctx.flow_hash);
            return Err(ChainDropReason::NoServiceEndpoint);
        };
        self.moved += 1;
        self.remember(ctx, moved_to, services.epoch(), now);
        Ok(Some(moved_to))
    }

    /// Remember a connection's backend and its reply tuple.
    fn remember(&mut self, ctx: &mut PacketContext, backend: Backend, epoch: u64, now: u64) {
        self.table.insert(
            ctx.flow,
            ctx.flow_hash,
            Translation::Forward { backend, epoch },
            now,
        );
        let reply = FlowKey {
            src: backend.ip,
            dst: ctx.flow.src,
            src_port: backend.port,
            dst_port: ctx.flow.src_port,
            ..ctx.flow
        };
        self.table.insert(
            reply,
            reply.hash(),
            Translation::Reply {
                ip: ctx.flow.dst,
                port: ctx.flow.dst_port,
            },
            now,
        );
        ctx.nat_changed = true;
    }

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
        let mut flow = ctx.flow;
        match side {
            Side::Source => {
                flow.src = ip;
                flow.src_port = port;
            }
            Side::Destination => {
                flow.dst = ip;
                flow.dst_port = port;
            }
        }
        ctx.set_flow(flow);
        match side {
            Side::Source => self.reverse_translated += 1,
            Side::Destination => self.translated += 1,
        }
        StageAction::Pass
    }
}
