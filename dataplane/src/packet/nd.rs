//! IPv6 neighbour advertisement for the pods' gateway address.

use std::net::Ipv6Addr;

use super::FrameMeta;
use crate::verdict::DropReason;

/// Turn an ICMPv6 neighbour solicitation whose target is `gateway` into a
/// solicited neighbour advertisement (router flag, solicited flag, override
/// flag, target link-layer address option = `our_mac`), in place: Ethernet
/// dst = the soliciter's MAC, src = `our_mac`; IPv6 src = `gateway`, dst =
/// the soliciter's address (or ff02::1 if it was unspecified, i.e. DAD), hop
/// limit 255, ICMPv6 checksum correct. Returns the new frame length.
/// Anything else (other ICMPv6 types, other targets, hop limit != 255,
/// malformed) → [`DropReason::NdNotForGateway`] or
/// [`DropReason::MalformedL4`].
pub fn answer_gateway(
    frame: &mut [u8],
    meta: &FrameMeta,
    gateway: Ipv6Addr,
    our_mac: [u8; 6],
) -> Result<usize, DropReason> {
    let _ = (frame, meta, gateway, our_mac);
    todo!("packet work item")
}
