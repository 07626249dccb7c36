//! The ARP responder for the pods' gateway address.

use std::net::Ipv4Addr;

use super::FrameMeta;
use crate::verdict::DropReason;

/// Turn an ARP request for `gateway` (an Ethernet/IPv4 ARP request, target
/// protocol address == gateway) into the reply, in place: Ethernet dst = the
/// requester, src = `our_mac`; opcode 2; sender = (our_mac, gateway); target =
/// the requester. Returns the reply's length (the request's ARP part, 42
/// bytes plus any VLAN tag, which is kept). Anything else is refused:
/// malformed ARP → [`DropReason::MalformedArp`], a request for another
/// address, a reply, or a gratuitous ARP → [`DropReason::ArpNotForGateway`].
pub fn answer_gateway(
    frame: &mut [u8],
    meta: &FrameMeta,
    gateway: Ipv4Addr,
    our_mac: [u8; 6],
) -> Result<usize, DropReason> {
    let _ = (frame, meta, gateway, our_mac);
    todo!("packet work item")
}
