//! Zero-copy views of the headers kxdp reads and writes: Ethernet, 802.1Q,
//! ARP, IPv4, IPv6 (and its extension headers), UDP, TCP, SCTP's common
//! header, ICMPv4, ICMPv6 (with what neighbour discovery needs) and VXLAN.
//!
//! The headers are grouped by layer, so that a frame crosses few files on
//! its way up: `ethernet.rs` (Ethernet II, with [`vlan`] and [`arp`]),
//! `ip.rs` ([`ipv4`], [`ipv6`], [`ipv6ext`], the [`ip_protocol`] numbers and
//! the internet [`checksum`]) and `transport.rs` ([`udp`], [`tcp`],
//! [`sctp`], [`icmpv4`], [`icmpv6`], [`vxlan`]); each header keeps its own
//! module, re-exported here (`wire::udp`). What every view is made of (the
//! `view!` macro, [`Error`], the field reads and writes) is in `view.rs`,
//! which this file only uses: the layers use it too, and a module they use
//! may not use them back.
//!
//! Each header is a wrapper around a buffer, `Packet<T: AsRef<[u8]>>` (or
//! `Frame`, `Tag`), in the manner of smoltcp's `wire` module: header fields
//! are named byte ranges in a private `field` module, getters read through
//! `T: AsRef<[u8]>`, setters write through `T: AsMut<[u8]>`. A view costs
//! nothing: it holds the buffer and nothing else.
//!
//! The promise, written once: **no view ever panics, whatever the buffer.**
//! `new_checked` refuses a buffer too short for the fixed header (or for
//! the length a header field gives) with an [`Error`]; after it succeeds,
//! every getter reads the buffer's own bytes. `new_unchecked` is for a
//! buffer whose length the caller has already proved (the parser hands
//! such offsets on in `FrameMeta`); should it be short after all, getters
//! read the missing bytes as zero and setters leave them unwritten. Payload
//! accessors return the bytes the header's length fields describe, cut to
//! the buffer.
//!
//! Pure byte arithmetic: no allocation, no I/O, and no `unsafe`.

#![forbid(unsafe_code)]

pub mod ethernet;
mod ip;
mod transport;
mod view;

pub use ethernet::{arp, vlan};
pub use ip::{checksum, ip_protocol, ipv4, ipv6, ipv6ext};
pub use transport::{icmpv4, icmpv6, sctp, tcp, udp, vxlan};
pub use view::Error;

use view::{read_u16, Field};

/// The source and destination ports at the start of a TCP, UDP or SCTP
/// header (the three share that layout), when `header` holds them.
#[inline(always)]
pub fn transport_ports(header: &[u8]) -> Option<(u16, u16)> {
    const SRC_PORT: Field = 0..2;
    const DST_PORT: Field = 2..4;
    (header.len() >= DST_PORT.end).then(|| (read_u16(header, SRC_PORT), read_u16(header, DST_PORT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_ports_need_both_ports() {
        assert_eq!(transport_ports(&[0, 1, 0, 2]), Some((1, 2)));
        assert_eq!(transport_ports(&[0, 1, 0]), None);
    }
}
