//! Zero-copy views of the headers kxdp reads and writes: Ethernet, 802.1Q,
//! ARP, IPv4, IPv6 (and its extension headers), UDP, TCP, SCTP's common
//! header, ICMPv4, ICMPv6 (with what neighbour discovery needs) and VXLAN.
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

pub mod arp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6ext;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

/// A header field: the byte range it takes, from the header's first byte.
type Field = core::ops::Range<usize>;

/// The part every view shares: the struct, `new_unchecked`, `new_checked`
/// (which calls the view's own `check_len`), `into_inner` and `AsRef`.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap `buffer` without checking it: for a buffer whose length
            /// the caller has proved. Never panics either way: a short
            /// buffer reads as zeros.
            #[inline(always)]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wrap `buffer` after [`Self::check_len`]: every field of the
            /// header is then in the buffer.
            #[inline(always)]
            pub fn new_checked(buffer: T) -> Result<Self, $crate::wire::Error> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// The buffer back.
            #[inline(always)]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }

        impl<T: AsRef<[u8]>> AsRef<[u8]> for $name<T> {
            #[inline(always)]
            fn as_ref(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }
    };
}
use view;

/// Why `new_checked` refused a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header, or than the header length
    /// one of its fields gives.
    #[error("buffer shorter than the header")]
    Truncated,
    /// A header length field is smaller than the fixed header it belongs to.
    #[error("header length field smaller than the fixed header")]
    BadHeaderLength,
}

/// IP protocol numbers (IPv4 protocol, IPv6 next header) kxdp knows.
pub mod ip_protocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP (IPv4).
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAGMENT: u8 = 44;
    /// IP authentication header.
    pub const AUTHENTICATION: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 destination options.
    pub const IPV6_DESTINATION_OPTIONS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;
}

/// The source and destination ports at the start of a TCP, UDP or SCTP
/// header (the three share that layout), when `header` holds them.
#[inline(always)]
pub fn transport_ports(header: &[u8]) -> Option<(u16, u16)> {
    const SRC_PORT: Field = 0..2;
    const DST_PORT: Field = 2..4;
    (header.len() >= DST_PORT.end).then(|| (read_u16(header, SRC_PORT), read_u16(header, DST_PORT)))
}

/// The byte at `at`, or 0 past the buffer.
#[inline(always)]
fn read_u8(data: &[u8], at: usize) -> u8 {
    match data.get(at) {
        Some(byte) => *byte,
        None => 0,
    }
}

/// The bytes of `field`, or zeros when it is not (wholly) in the buffer.
#[inline(always)]
fn read_array<const N: usize>(data: &[u8], field: Field) -> [u8; N] {
    match data.get(field).and_then(|b| <[u8; N]>::try_from(b).ok()) {
        Some(bytes) => bytes,
        None => [0; N],
    }
}

/// `field` as a big-endian u16 (0 when it is not in the buffer).
#[inline(always)]
fn read_u16(data: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(read_array(data, field))
}

/// `field` as a big-endian u32 (0 when it is not in the buffer).
#[inline(always)]
fn read_u32(data: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(read_array(data, field))
}

/// Write the byte at `at`, when it is in the buffer.
#[inline(always)]
fn write_u8(data: &mut [u8], at: usize, value: u8) {
    if let Some(byte) = data.get_mut(at) {
        *byte = value;
    }
}

/// Write `field`, when it is (wholly) in the buffer.
#[inline(always)]
fn write_array<const N: usize>(data: &mut [u8], field: Field, value: [u8; N]) {
    if let Some(bytes) = data
        .get_mut(field)
        .and_then(|b| <&mut [u8; N]>::try_from(b).ok())
    {
        *bytes = value;
    }
}

/// Write `field` as a big-endian u16.
#[inline(always)]
fn write_u16(data: &mut [u8], field: Field, value: u16) {
    write_array(data, field, value.to_be_bytes());
}

/// Write `field` as a big-endian u32.
#[inline(always)]
fn write_u32(data: &mut [u8], field: Field, value: u32) {
    write_array(data, field, value.to_be_bytes());
}

/// `data[from..to]`, cut to the buffer (empty when `from` is past it or
/// past `to`).
#[inline(always)]
fn slice(data: &[u8], from: usize, to: usize) -> &[u8] {
    let to = to.min(data.len());
    data.get(from..to).unwrap_or_default()
}

/// `data[from..to]`, cut to the buffer, mutable.
#[inline(always)]
fn slice_mut(data: &mut [u8], from: usize, to: usize) -> &mut [u8] {
    let to = to.min(data.len());
    data.get_mut(from..to).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_never_panic_past_the_buffer() {
        let mut short = [0x12u8, 0x34, 0x56];
        assert_eq!(read_u16(&short, 0..2), 0x1234);
        assert_eq!(read_u16(&short, 2..4), 0);
        assert_eq!(read_u32(&short, 0..4), 0);
        assert_eq!(read_u8(&short, 9), 0);
        write_u16(&mut short, 2..4, 0xffff);
        write_u8(&mut short, 3, 1);
        assert_eq!(short, [0x12, 0x34, 0x56]);
        assert_eq!(slice(&short, 1, 9), &[0x34, 0x56]);
        assert_eq!(slice(&short, 4, 9), &[] as &[u8]);
        assert_eq!(slice(&short, 2, 1), &[] as &[u8]);
        assert_eq!(transport_ports(&[0, 1, 0, 2]), Some((1, 2)));
        assert_eq!(transport_ports(&[0, 1, 0]), None);
    }
}
