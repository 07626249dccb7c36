//! Internet checksums (RFC 1071) and incremental updates (RFC 1624).

/// One's-complement sum of `data` added to `initial` (not folded, not inverted).
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let _ = (data, initial);
    todo!("packet work item")
}

/// Fold a 32-bit sum to 16 bits and invert it: the checksum to write.
pub fn finish(sum: u32) -> u16 {
    let _ = sum;
    todo!("packet work item")
}

/// The IPv4 header checksum of `header` (whose checksum field is taken as zero).
pub fn ipv4_header(header: &[u8]) -> u16 {
    let _ = header;
    todo!("packet work item")
}

/// RFC 1624 incremental update: the new checksum after a 16-bit word of the
/// covered data changed from `old` to `new`.
pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    let _ = (checksum, old, new);
    todo!("packet work item")
}
