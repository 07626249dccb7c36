//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::{
    read_array, read_u16, read_u8, slice, slice_mut, view, write_array, write_u16, write_u8, Error,
};
use crate::packet::checksum;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use crate::wire::Field;

    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// The 16-bit word the TTL shares with the protocol.
    pub const TTL_PROTOCOL: Field = 8..10;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET: u16 = 0x1fff;

view! {
    /// An IPv4 header and what follows it.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The fixed header is in the buffer, the header length field says at
    /// least 20 bytes ([`Error::BadHeaderLength`]) and the options it
    /// announces are in the buffer too ([`Error::Truncated`]). The version
    /// and the total length are the caller's to judge.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.header_len() < HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The version (4 for IPv4).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// DSCP and ECN (the former type of service byte).
    #[inline(always)]
    pub fn dscp_ecn(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::DSCP_ECN)
    }

    /// The total length: header and payload.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The don't-fragment flag.
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DONT_FRAGMENT != 0
    }

    /// The more-fragments flag.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MORE_FRAGMENTS != 0
    }

    /// The fragment offset, in 8-byte units.
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAGMENT_OFFSET
    }

    /// The time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TTL)
    }

    /// The protocol of the payload (see [`super::ip_protocol`]).
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// The header checksum.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    #[inline(always)]
    pub fn src_addr(&self) -> Ipv4Addr {
        // As one word: byte by byte, the four bytes were kept apart in
        // registers and spilled.
        Ipv4Addr::from_bits(u32::from_be_bytes(read_array(
            self.buffer.as_ref(),
            field::SRC_ADDR,
        )))
    }

    /// The destination address.
    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(u32::from_be_bytes(read_array(
            self.buffer.as_ref(),
            field::DST_ADDR,
        )))
    }

    /// The header, options included (cut to the buffer).
    #[inline(always)]
    pub fn header(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0, self.header_len())
    }

    /// The payload: from the end of the header to the total length (cut to
    /// the buffer; Ethernet padding after the total length is left out).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }

    /// Whether the header checksum is right (the header summed with its
    /// checksum folds to 0xffff).
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::ipv4_header_sum(self.header())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version and the header length (in bytes, a multiple of 4).
    #[inline(always)]
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        write_u8(self.buffer.as_mut(), field::VER_IHL, (version << 4) | ihl);
    }

    /// Set DSCP and ECN.
    #[inline(always)]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::DSCP_ECN, value);
    }

    /// Set the total length.
    #[inline(always)]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Set the identification.
    #[inline(always)]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Set the flags and fragment offset: don't fragment, more fragments,
    /// offset in 8-byte units.
    #[inline(always)]
    pub fn set_fragmentation(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut word = offset & FRAGMENT_OFFSET;
        if dont_frag {
            word |= FLAG_DONT_FRAGMENT;
        }
        if more_frags {
            word |= FLAG_MORE_FRAGMENTS;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF, word);
    }

    /// Set the time to live.
    #[inline(always)]
    pub fn set_ttl(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::TTL, value);
    }

    /// Set the protocol.
    #[inline(always)]
    pub fn set_protocol(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::PROTOCOL, value);
    }

    /// Set the header checksum.
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Set the source address.
    #[inline(always)]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        write_array(self.buffer.as_mut(), field::SRC_ADDR, value.octets());
    }

    /// Set the destination address.
    #[inline(always)]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        write_array(self.buffer.as_mut(), field::DST_ADDR, value.octets());
    }

    /// Compute and write the header checksum.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        let sum = checksum::ipv4_header(self.header());
        self.set_checksum(sum);
    }

    /// Decrement the TTL by one and update the header checksum
    /// incrementally (RFC 1624), the TTL sharing its 16-bit word with the
    /// protocol. The caller checks that the TTL is above 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let data = self.buffer.as_mut();
        let old_word = read_u16(data, field::TTL_PROTOCOL);
        let new_word = old_word.wrapping_sub(0x0100);
        let sum = checksum::update16(read_u16(data, field::CHECKSUM), old_word, new_word);
        write_u16(data, field::TTL_PROTOCOL, new_word);
        write_u16(data, field::CHECKSUM, sum);
    }

    /// The payload (as [`Packet::payload`]), mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (from, to) = (self.header_len(), usize::from(self.total_len()));
        slice_mut(self.buffer.as_mut(), from, to)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice};

    fn built() -> Vec<u8> {
        let mut header =
            Ipv4Header::new(5, 63, IpNumber::UDP, [10, 1, 0, 5], [10, 2, 0, 7]).unwrap();
        header.identification = 0x1234;
        header.dont_fragment = true;
        header.dscp = etherparse::IpDscp::try_new(46).unwrap();
        header.header_checksum = header.calc_header_checksum();
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0; 3]); // Ethernet padding
        bytes
    }

    #[test]
    fn reads_like_etherparse() {
        let bytes = built();
        let ip = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = Ipv4HeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), theirs.slice().len());
        assert_eq!(ip.total_len(), theirs.total_len());
        assert_eq!(ip.ident(), theirs.identification());
        assert_eq!(ip.dont_frag(), theirs.dont_fragment());
        assert_eq!(ip.more_frags(), theirs.more_fragments());
        assert_eq!(ip.frag_offset(), theirs.fragments_offset().value());
        assert_eq!(ip.ttl(), theirs.ttl());
        assert_eq!(ip.protocol(), theirs.protocol().0);
        assert_eq!(ip.checksum(), theirs.header_checksum());
        assert_eq!(ip.src_addr(), theirs.source_addr());
        assert_eq!(ip.dst_addr(), theirs.destination_addr());
        assert_eq!(ip.dscp_ecn() >> 2, theirs.to_header().dscp.value());
        assert_eq!(ip.header(), theirs.slice());
        assert_eq!(ip.payload(), b"hello");
        assert!(ip.verify_checksum());
    }

    #[test]
    fn setters_round_trip() {
        let mut ip = Packet::new_unchecked([0u8; 30]);
        ip.set_version_and_header_len(4, HEADER_LEN);
        ip.set_dscp_ecn(0xc0);
        ip.set_total_len(25);
        ip.set_ident(7);
        ip.set_fragmentation(false, true, 185);
        ip.set_ttl(2);
        ip.set_protocol(17);
        ip.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        ip.set_dst_addr(Ipv4Addr::new(192, 0, 2, 2));
        ip.fill_checksum();
        ip.payload_mut().copy_from_slice(b"abcde");
        assert!(ip.check_len().is_ok());
        assert_eq!(
            (ip.version(), ip.header_len(), ip.dscp_ecn()),
            (4, 20, 0xc0)
        );
        assert_eq!((ip.total_len(), ip.ident()), (25, 7));
        assert_eq!(
            (ip.dont_frag(), ip.more_frags(), ip.frag_offset()),
            (false, true, 185)
        );
        assert_eq!((ip.ttl(), ip.protocol()), (2, 17));
        assert_eq!(ip.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert!(ip.verify_checksum());
        ip.decrement_ttl();
        assert_eq!(ip.ttl(), 1);
        assert!(ip.verify_checksum(), "incremental update");
        let theirs = Ipv4HeaderSlice::from_slice(ip.as_ref()).unwrap();
        assert_eq!(
            theirs.header_checksum(),
            theirs.to_header().calc_header_checksum()
        );
        assert_eq!(ip.payload(), b"abcde");
    }

    #[test]
    fn short_buffers_and_bad_lengths_are_refused() {
        let bytes = built();
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).err(),
                Some(Error::Truncated)
            );
            let mut short = bytes[..len].to_vec();
            let mut ip = Packet::new_unchecked(&mut short[..]);
            ip.decrement_ttl();
            ip.fill_checksum();
            let _ = (ip.src_addr(), ip.payload().len(), ip.verify_checksum());
            let _ = ip.payload_mut();
        }
        for ihl in 0..5u8 {
            let mut bad = bytes.clone();
            bad[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_checked(&bad[..]).err(),
                Some(Error::BadHeaderLength)
            );
        }
        let mut long = bytes.clone();
        long[0] = 0x48; // 32 bytes of header in a 28-byte buffer
        assert_eq!(Packet::new_checked(&long[..]).err(), Some(Error::Truncated));
        // A total length past the buffer cuts the payload, never panics.
        let mut past = bytes;
        past[2..4].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&past[..]).unwrap().payload().len(), 8);
    }
}
