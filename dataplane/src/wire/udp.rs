//! UDP headers (RFC 768).

use super::{read_u16, slice, slice_mut, view, write_u16, Error};

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

view! {
    /// A UDP header and its payload.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] when the header is not in the buffer. The
    /// length field is the caller's to judge (a first fragment carries
    /// only part of the datagram it describes).
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

    /// The length: header and payload.
    #[inline(always)]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field says 0.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checksum (0: none, over IPv4).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload: after the header, up to the length (cut to the buffer).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
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

    /// Set the length.
    #[inline(always)]
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Set the checksum.
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// The payload (as [`Packet::payload`]), mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let to = usize::from(self.len());
        slice_mut(self.buffer.as_mut(), HEADER_LEN, to)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{UdpHeader, UdpHeaderSlice};

    #[test]
    fn reads_like_etherparse() {
        let header = UdpHeader::with_ipv4_checksum(
            1000,
            53,
            &etherparse::Ipv4Header::new(
                11,
                64,
                etherparse::IpNumber::UDP,
                [10, 0, 0, 1],
                [10, 0, 0, 2],
            )
            .unwrap(),
            b"dns",
        )
        .unwrap();
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(b"dns..");
        let udp = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = UdpHeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!(udp.src_port(), theirs.source_port());
        assert_eq!(udp.dst_port(), theirs.destination_port());
        assert_eq!(udp.len(), theirs.length());
        assert_eq!(udp.checksum(), theirs.checksum());
        assert_eq!(udp.payload(), b"dns");
        assert!(!udp.is_empty());
    }

    #[test]
    fn setters_round_trip() {
        let mut udp = Packet::new_checked([0u8; 10]).unwrap();
        udp.set_src_port(49152);
        udp.set_dst_port(4789);
        udp.set_len(10);
        udp.set_checksum(0xabcd);
        udp.payload_mut().copy_from_slice(b"hi");
        assert_eq!(
            (udp.src_port(), udp.dst_port(), udp.len(), udp.checksum()),
            (49152, 4789, 10, 0xabcd)
        );
        assert_eq!(udp.payload(), b"hi");
        let bytes = udp.into_inner();
        let theirs = UdpHeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!(
            (theirs.source_port(), theirs.destination_port()),
            (49152, 4789)
        );
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            let mut bytes = vec![0xffu8; len];
            assert_eq!(
                Packet::new_checked(&bytes[..]).err(),
                Some(Error::Truncated)
            );
            let mut udp = Packet::new_unchecked(&mut bytes[..]);
            udp.set_checksum(1);
            let _ = (udp.dst_port(), udp.len(), udp.payload().len());
            let _ = udp.payload_mut();
        }
    }
}
