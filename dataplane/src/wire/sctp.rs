//! SCTP's common header (RFC 9260 §3.1): ports, verification tag and the
//! CRC32c checksum, which (unlike TCP's and UDP's) is stored little-endian.

use super::{read_array, read_u16, read_u32, slice, view, write_array, write_u16, Error};

/// Length of the common header.
pub const HEADER_LEN: usize = 12;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const VERIFICATION_TAG: Field = 4..8;
    pub const CHECKSUM: Field = 8..12;
}

view! {
    /// An SCTP packet: the common header and its chunks.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] when the common header is not in the buffer.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    /// The verification tag.
    #[inline(always)]
    pub fn verification_tag(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VERIFICATION_TAG)
    }

    /// The CRC32c checksum (read little-endian, as it is stored).
    #[inline(always)]
    pub fn checksum(&self) -> u32 {
        u32::from_le_bytes(read_array(self.buffer.as_ref(), field::CHECKSUM))
    }

    /// The chunks after the common header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN, usize::MAX)
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

    /// Set the CRC32c checksum (stored little-endian).
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u32) {
        write_array(self.buffer.as_mut(), field::CHECKSUM, value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trip() {
        let mut sctp = Packet::new_checked([0u8; 16]).unwrap();
        sctp.set_src_port(5000);
        sctp.set_dst_port(36412);
        sctp.set_checksum(0x1234_5678);
        assert_eq!((sctp.src_port(), sctp.dst_port()), (5000, 36412));
        assert_eq!((sctp.checksum(), sctp.verification_tag()), (0x1234_5678, 0));
        assert_eq!(sctp.payload().len(), 4);
        let bytes = sctp.into_inner();
        assert_eq!(bytes[..4], [0x13, 0x88, 0x8e, 0x3c]);
        assert_eq!(bytes[8..12], [0x78, 0x56, 0x34, 0x12], "little-endian");
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            let mut bytes = vec![1u8; len];
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::Truncated)
            );
            let mut sctp = Packet::new_unchecked(&mut bytes[..]);
            sctp.set_checksum(0);
            let _ = (sctp.checksum(), sctp.payload());
        }
    }
}
