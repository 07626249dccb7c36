//! In-place rewrites for forwarding without NAT: MACs and TTL / hop limit.

use super::FrameMeta;
use crate::verdict::DropReason;

/// Write destination and source MACs.
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    let _ = (frame, dst, src);
    todo!("packet work item")
}

/// Decrement the IPv4 TTL (with an incremental header checksum update) or the
/// IPv6 hop limit. A TTL/hop limit of 0 or 1 gives [`DropReason::TtlExpired`]
/// and leaves the frame untouched. ARP frames are left alone (Ok).
pub fn decrement_ttl(frame: &mut [u8], meta: &FrameMeta) -> Result<(), DropReason> {
    let _ = (frame, meta);
    todo!("packet work item")
}
