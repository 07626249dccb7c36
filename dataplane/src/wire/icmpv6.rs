//! ICMPv6 messages (RFC 4443), with the neighbour discovery fields kxdp
//! reads and writes (RFC 4861 §4.3, §4.4, §4.6): the target address, the
//! advertisement flags and the options after them.

use std::net::Ipv6Addr;

use super::{
    ip_protocol, ipv6, read_array, read_u16, read_u8, slice, slice_mut, view, write_array,
    write_u16, write_u8, Error,
};
use crate::packet::checksum;

/// Length of the header: type, code, checksum, rest of header.
pub const HEADER_LEN: usize = 8;
/// Length of a neighbour solicitation or advertisement before its options.
pub const NEIGHBOR_MESSAGE_LEN: usize = 24;
/// Length of a link-layer address option for Ethernet.
pub const LINK_LAYER_OPTION_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PKT_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Types below this one are errors (RFC 4443 §2.1).
    pub const FIRST_INFORMATIONAL: u8 = 128;
}

/// Neighbour advertisement flags (the byte after the checksum).
pub mod nd_flag {
    /// The sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// Sent in answer to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Override an existing cache entry.
    pub const OVERRIDE: u8 = 0x20;
}

/// Neighbour discovery option types.
pub mod nd_option {
    /// Source link-layer address.
    pub const SOURCE_LINK_LAYER_ADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LINK_LAYER_ADDR: u8 = 2;
}

mod field {
    use crate::wire::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const BODY: usize = 8;
    /// Neighbour solicitation / advertisement.
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: Field = 8..24;
    pub const ND_OPTIONS: usize = 24;
}

view! {
    /// An ICMPv6 message.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] when the 8-byte header is not in the buffer
    /// (a neighbour discovery message is longer: check
    /// [`NEIGHBOR_MESSAGE_LEN`] before reading its target).
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The message type (see [`msg_type`]).
    #[inline(always)]
    pub fn msg_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::TYPE)
    }

    /// The code.
    #[inline(always)]
    pub fn msg_code(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::CODE)
    }

    /// The checksum.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The four bytes after the checksum.
    #[inline(always)]
    pub fn rest_of_header(&self) -> [u8; 4] {
        read_array(self.buffer.as_ref(), field::REST_OF_HEADER)
    }

    /// An echo's identifier (bytes 4..6, whatever the type).
    #[inline(always)]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// An echo's sequence number.
    #[inline(always)]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The body after the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::BODY, usize::MAX)
    }

    /// A neighbour advertisement's flags (see [`nd_flag`]).
    #[inline(always)]
    pub fn nd_flags(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::ND_FLAGS)
    }

    /// A neighbour solicitation's or advertisement's target address.
    #[inline(always)]
    pub fn target_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::ND_TARGET))
    }

    /// A neighbour solicitation's or advertisement's options.
    #[inline(always)]
    pub fn nd_options(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::ND_OPTIONS, usize::MAX)
    }

    /// The checksum (RFC 4443 §2.3) of the whole buffer between `src` and
    /// `dst`, the checksum field as it is: 0 for a message whose checksum
    /// is right, the checksum to write when the field is zero.
    #[inline(always)]
    pub fn compute_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let message = self.buffer.as_ref();
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let pseudo = ipv6::pseudo_header_sum(src, dst, ip_protocol::ICMPV6, length);
        checksum::finish(checksum::sum(message, pseudo))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the message type.
    #[inline(always)]
    pub fn set_msg_type(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::TYPE, value);
    }

    /// Set the code.
    #[inline(always)]
    pub fn set_msg_code(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::CODE, value);
    }

    /// Set the checksum.
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Set the four bytes after the checksum.
    #[inline(always)]
    pub fn set_rest_of_header(&mut self, value: [u8; 4]) {
        write_array(self.buffer.as_mut(), field::REST_OF_HEADER, value);
    }

    /// Set an echo's identifier.
    #[inline(always)]
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Set an echo's sequence number.
    #[inline(always)]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Set a neighbour advertisement's flags, the reserved bits after them zero.
    #[inline(always)]
    pub fn set_nd_flags(&mut self, flags: u8) {
        self.set_rest_of_header([flags, 0, 0, 0]);
    }

    /// Set the target address.
    #[inline(always)]
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        write_array(self.buffer.as_mut(), field::ND_TARGET, value.octets());
    }

    /// Compute the checksum between `src` and `dst` and write it.
    #[inline(always)]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum = self.compute_checksum(src, dst);
        self.set_checksum(sum);
    }

    /// The body after the header, mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::BODY, usize::MAX)
    }

    /// A neighbour solicitation's or advertisement's options, mutable.
    #[inline(always)]
    pub fn nd_options_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::ND_OPTIONS, usize::MAX)
    }
}

mod option_field {
    use crate::wire::Field;

    pub const TYPE: usize = 0;
    /// In units of 8 bytes, type and length included.
    pub const LENGTH: usize = 1;
    pub const LINK_LAYER_ADDR: Field = 2..8;
}

view! {
    /// A neighbour discovery option (RFC 4861 §4.6): type, length, data.
    NdOption
}

impl<T: AsRef<[u8]>> NdOption<T> {
    /// [`Error::Truncated`] when type and length, or the length the option
    /// gives, are not in the buffer; [`Error::BadHeaderLength`] for a
    /// length of 0.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len <= option_field::LENGTH {
            return Err(Error::Truncated);
        }
        if self.option_len() == 0 {
            return Err(Error::BadHeaderLength);
        }
        if len < self.option_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The option type (see [`nd_option`]).
    #[inline(always)]
    pub fn option_type(&self) -> u8 {
        read_u8(self.buffer.as_ref(), option_field::TYPE)
    }

    /// The option's length in bytes.
    #[inline(always)]
    pub fn option_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), option_field::LENGTH)) * 8
    }

    /// A link-layer address option's address (Ethernet).
    #[inline(always)]
    pub fn link_layer_addr(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), option_field::LINK_LAYER_ADDR)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdOption<T> {
    /// Write a link-layer address option of `option_type` for an Ethernet
    /// address: type, length 1 (8 bytes), address.
    #[inline(always)]
    pub fn set_link_layer_addr(&mut self, option_type: u8, addr: [u8; 6]) {
        let data = self.buffer.as_mut();
        write_u8(data, option_field::TYPE, option_type);
        write_u8(
            data,
            option_field::LENGTH,
            (LINK_LAYER_OPTION_LEN / 8) as u8,
        );
        write_array(data, option_field::LINK_LAYER_ADDR, addr);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv6Header, Icmpv6Slice, Icmpv6Type};

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

    #[test]
    fn reads_like_etherparse() {
        let header = Icmpv6Header::with_checksum(
            Icmpv6Type::EchoReply(IcmpEchoHeader { id: 0x0707, seq: 3 }),
            SRC.octets(),
            DST.octets(),
            b"pong",
        )
        .unwrap();
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(b"pong");
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = Icmpv6Slice::from_slice(&bytes).unwrap();
        assert_eq!(icmp.msg_type(), theirs.type_u8());
        assert_eq!(icmp.msg_code(), theirs.code_u8());
        assert_eq!(icmp.checksum(), theirs.checksum());
        assert_eq!(icmp.rest_of_header(), theirs.bytes5to8());
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x0707, 3));
        assert_eq!(icmp.payload(), b"pong");
        assert_eq!(icmp.compute_checksum(SRC, DST), 0);
    }

    #[test]
    fn neighbour_advertisement_round_trip() {
        let mut bytes = [0xeeu8; NEIGHBOR_MESSAGE_LEN + LINK_LAYER_OPTION_LEN];
        let mut icmp = Packet::new_checked(&mut bytes[..]).unwrap();
        icmp.set_msg_type(msg_type::NEIGHBOR_ADVERT);
        icmp.set_msg_code(0);
        icmp.set_nd_flags(nd_flag::ROUTER | nd_flag::SOLICITED);
        icmp.set_target_addr(DST);
        NdOption::new_unchecked(icmp.nd_options_mut())
            .set_link_layer_addr(nd_option::TARGET_LINK_LAYER_ADDR, [2, 0, 0, 0, 0, 9]);
        icmp.fill_checksum(DST, SRC);
        assert_eq!(icmp.target_addr(), DST);
        assert_eq!(icmp.nd_flags(), 0xc0);
        let option = NdOption::new_checked(icmp.nd_options()).unwrap();
        assert_eq!((option.option_type(), option.option_len()), (2, 8));
        assert_eq!(option.link_layer_addr(), [2, 0, 0, 0, 0, 9]);
        let theirs = Icmpv6Slice::from_slice(icmp.as_ref()).unwrap();
        assert!(theirs.is_checksum_valid(DST.octets(), SRC.octets()));
        match theirs.icmp_type() {
            Icmpv6Type::NeighborAdvertisement(header) => {
                assert!(header.router && header.solicited && !header.r#override);
            }
            other => panic!("{other:?}"),
        }
        icmp.set_echo_ident(5);
        icmp.set_echo_seq_no(6);
        icmp.payload_mut()[0] = 1;
        assert_eq!(icmp.rest_of_header(), [0, 5, 0, 6]);
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            let mut bytes = vec![135u8; len];
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::Truncated)
            );
            let mut icmp = Packet::new_unchecked(&mut bytes[..]);
            icmp.fill_checksum(SRC, DST);
            icmp.set_target_addr(SRC);
            let _ = (icmp.target_addr(), icmp.nd_options().len());
            let _ = icmp.nd_options_mut();
        }
        assert_eq!(
            NdOption::new_checked(&[1u8][..]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            NdOption::new_checked(&[1u8, 0][..]).err(),
            Some(Error::BadHeaderLength)
        );
        assert_eq!(
            NdOption::new_checked(&[1u8, 2, 0, 0, 0, 0, 0, 0][..]).err(),
            Some(Error::Truncated)
        );
        NdOption::new_unchecked(&mut [][..]).set_link_layer_addr(1, [0; 6]);
    }
}
