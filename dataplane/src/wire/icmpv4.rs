//! ICMP messages for IPv4 (RFC 792): type, code, checksum and the four
//! bytes after them (an echo's identifier and sequence number, a "too
//! big"'s next-hop MTU), then the body.

use super::{
    read_array, read_u16, read_u8, slice, slice_mut, view, write_array, write_u16, write_u8, Error,
};
use crate::packet::checksum;

/// Length of the header: type, code, checksum, rest of header.
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request (obsolete).
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply (obsolete).
    pub const INFO_REPLY: u8 = 16;
    /// Address mask request.
    pub const ADDRESS_MASK_REQUEST: u8 = 17;
    /// Address mask reply.
    pub const ADDRESS_MASK_REPLY: u8 = 18;
}

/// Length of a timestamp or timestamp reply message.
pub const TIMESTAMP_LEN: usize = 20;

mod field {
    use crate::wire::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const BODY: usize = 8;
}

view! {
    /// An ICMP message.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] when the 8-byte header is not in the buffer.
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

    /// Whether the checksum over the whole buffer is right.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref(), 0)) == 0
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

    /// Compute the checksum over the whole buffer (the message) and write it.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
        self.set_checksum(sum);
    }

    /// The body after the header, mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::BODY, usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Slice, Icmpv4Type};

    #[test]
    fn reads_like_etherparse() {
        let header = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 0x1234, seq: 7 }),
            b"ping",
        );
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(b"ping");
        let icmp = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = Icmpv4Slice::from_slice(&bytes).unwrap();
        assert_eq!(icmp.msg_type(), theirs.type_u8());
        assert_eq!(icmp.msg_code(), theirs.code_u8());
        assert_eq!(icmp.checksum(), theirs.checksum());
        assert_eq!(icmp.rest_of_header(), theirs.bytes5to8());
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1234, 7));
        assert_eq!(icmp.payload(), b"ping");
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn setters_round_trip() {
        let mut icmp = Packet::new_checked([0xffu8; 12]).unwrap();
        icmp.set_msg_type(msg_type::DST_UNREACHABLE);
        icmp.set_msg_code(4);
        icmp.set_rest_of_header([0, 0, 0x05, 0xdc]);
        icmp.payload_mut().copy_from_slice(b"quot");
        icmp.fill_checksum();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (3, 4));
        assert_eq!(icmp.echo_seq_no(), 1500);
        assert!(icmp.verify_checksum());
        let theirs = Icmpv4Slice::from_slice(icmp.as_ref()).unwrap();
        assert_eq!(
            theirs.checksum(),
            theirs.header().icmp_type.calc_checksum(theirs.payload())
        );
        icmp.set_echo_ident(1);
        icmp.set_echo_seq_no(2);
        assert_eq!(icmp.rest_of_header(), [0, 1, 0, 2]);
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            let mut bytes = vec![8u8; len];
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::Truncated)
            );
            let mut icmp = Packet::new_unchecked(&mut bytes[..]);
            icmp.fill_checksum();
            let _ = (icmp.echo_ident(), icmp.payload().len());
            let _ = icmp.payload_mut();
        }
    }
}
