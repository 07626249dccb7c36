//! TCP headers (RFC 9293).

use super::{read_u16, read_u32, read_u8, slice, view, write_u16, write_u32, write_u8, Error};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in 32-bit words (high nibble), reserved bits.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The SYN flag.
pub const FLAG_SYN: u8 = 0x02;
/// The ACK flag.
pub const FLAG_ACK: u8 = 0x10;

view! {
    /// A TCP header and its payload.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The fixed header is in the buffer, the data offset says at least 20
    /// bytes ([`Error::BadHeaderLength`]) and the options it announces are
    /// in the buffer too ([`Error::Truncated`]).
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

    /// The source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The sequence number.
    #[inline(always)]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// The acknowledgment number.
    #[inline(always)]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// The header length in bytes (data offset × 4), options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(read_u8(self.buffer.as_ref(), field::DATA_OFFSET) >> 4) * 4
    }

    /// The flags byte (CWR … FIN).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::FLAGS)
    }

    /// The window size.
    #[inline(always)]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// The checksum.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The urgent pointer.
    #[inline(always)]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The payload: after the header and its options.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), self.header_len(), usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    #[inline(always)]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Set the destination port.
    #[inline(always)]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Set the sequence number.
    #[inline(always)]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Set the acknowledgment number.
    #[inline(always)]
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Set the header length in bytes (a multiple of 4; reserved bits cleared).
    #[inline(always)]
    pub fn set_header_len(&mut self, bytes: usize) {
        write_u8(
            self.buffer.as_mut(),
            field::DATA_OFFSET,
            (((bytes / 4) & 0x0f) as u8) << 4,
        );
    }

    /// Set the flags byte.
    #[inline(always)]
    pub fn set_flags(&mut self, value: u8) {
        write_u8(self.buffer.as_mut(), field::FLAGS, value);
    }

    /// Set the window size.
    #[inline(always)]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    /// Set the checksum.
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{TcpHeader, TcpHeaderSlice, TcpOptionElement};

    fn built() -> Vec<u8> {
        let mut header = TcpHeader::new(40000, 80, 0x1234_5678, 64240);
        header.syn = true;
        header.acknowledgment_number = 9;
        header.checksum = 0xbeef;
        header
            .set_options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(b"data");
        bytes
    }

    #[test]
    fn reads_like_etherparse() {
        let bytes = built();
        let tcp = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = TcpHeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!(tcp.src_port(), theirs.source_port());
        assert_eq!(tcp.dst_port(), theirs.destination_port());
        assert_eq!(tcp.seq_number(), theirs.sequence_number());
        assert_eq!(tcp.ack_number(), theirs.acknowledgment_number());
        assert_eq!(tcp.header_len(), theirs.slice().len());
        assert_eq!(tcp.flags() & FLAG_SYN != 0, theirs.syn());
        assert_eq!(tcp.window_len(), theirs.window_size());
        assert_eq!(tcp.checksum(), theirs.checksum());
        assert_eq!(tcp.urgent_at(), theirs.urgent_pointer());
        assert_eq!(tcp.payload(), b"data");
    }

    #[test]
    fn setters_round_trip() {
        let mut tcp = Packet::new_unchecked([0u8; 20]);
        tcp.set_src_port(1);
        tcp.set_dst_port(2);
        tcp.set_seq_number(3);
        tcp.set_ack_number(4);
        tcp.set_header_len(20);
        tcp.set_flags(FLAG_SYN | FLAG_ACK);
        tcp.set_window_len(5);
        tcp.set_checksum(6);
        assert!(tcp.check_len().is_ok());
        let theirs = TcpHeaderSlice::from_slice(tcp.as_ref()).unwrap();
        assert_eq!((theirs.source_port(), theirs.destination_port()), (1, 2));
        assert_eq!(
            (theirs.sequence_number(), theirs.acknowledgment_number()),
            (3, 4)
        );
        assert!(theirs.syn() && theirs.ack());
        assert_eq!((tcp.window_len(), tcp.checksum()), (5, 6));
    }

    #[test]
    fn short_buffers_and_bad_offsets_are_refused() {
        let bytes = built();
        for len in 0..24 {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).err(),
                Some(Error::Truncated)
            );
            let mut short = bytes[..len].to_vec();
            let mut tcp = Packet::new_unchecked(&mut short[..]);
            tcp.set_checksum(0);
            let _ = (tcp.dst_port(), tcp.payload(), tcp.urgent_at());
        }
        for offset in 0..5u8 {
            let mut bad = bytes.clone();
            bad[12] = offset << 4;
            assert_eq!(
                Packet::new_checked(&bad[..]).err(),
                Some(Error::BadHeaderLength)
            );
        }
    }
}
