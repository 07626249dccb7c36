//! What IP carries: UDP ([`udp`]), TCP ([`tcp`]), SCTP's common header
//! ([`sctp`]), ICMPv4 ([`icmpv4`]), ICMPv6 ([`icmpv6`]), and VXLAN
//! ([`vxlan`]), the header UDP carries to port 4789.

pub mod udp {
    //! UDP headers (RFC 768).

    use crate::wire::view::{read_u16, slice, slice_mut, view, write_u16, Error};

    /// Length of a UDP header.
    pub const HEADER_LEN: usize = 8;

    mod field {
        use crate::wire::view::Field;

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
}

pub mod tcp {
    //! TCP headers (RFC 9293).

    use crate::wire::view::{
        read_u16, read_u32, read_u8, slice, view, write_u16, write_u32, write_u8, Error,
    };

    /// Length of a header without options.
    pub const HEADER_LEN: usize = 20;

    mod field {
        use crate::wire::view::Field;

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

    /// The FIN flag.
    pub const FLAG_FIN: u8 = 0x01;
    /// The SYN flag.
    pub const FLAG_SYN: u8 = 0x02;
    /// The RST flag.
    pub const FLAG_RST: u8 = 0x04;
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
}

pub mod sctp {
    //! SCTP's common header (RFC 9260 §3.1): ports, verification tag and the
    //! CRC32c checksum, which (unlike TCP's and UDP's) is stored little-endian.

    use crate::wire::view::{
        read_array, read_u16, read_u32, slice, view, write_array, write_u16, Error,
    };

    /// Length of the common header.
    pub const HEADER_LEN: usize = 12;

    mod field {
        use crate::wire::view::Field;

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
}

/// The accessors of the 8-byte header that ICMPv4 and ICMPv6 share (type,
/// code, checksum, the four bytes after it, read as an echo's identifier and
/// sequence number) and of the body after it, written once for the `Packet`
/// view of [`icmpv4`] and of [`icmpv6`]. Expanded in those modules, the
/// methods read through their `field` module (which names the same byte
/// ranges in both) and the view helpers they import, as their other methods do.
macro_rules! icmp_header {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
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
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
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

            /// The body after the header, mutable.
            #[inline(always)]
            pub fn payload_mut(&mut self) -> &mut [u8] {
                slice_mut(self.buffer.as_mut(), field::BODY, usize::MAX)
            }
        }
    };
}

pub mod icmpv4 {
    //! ICMP messages for IPv4 (RFC 792): type, code, checksum and the four
    //! bytes after them (an echo's identifier and sequence number, a "too
    //! big"'s next-hop MTU), then the body.

    use crate::wire::checksum;
    use crate::wire::view::{
        read_array, read_u16, read_u8, slice, slice_mut, view, write_array, write_u16, write_u8,
        Error,
    };

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
        use crate::wire::view::Field;

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

    icmp_header!(Packet);

    impl<T: AsRef<[u8]>> Packet<T> {
        /// [`Error::Truncated`] when the 8-byte header is not in the buffer.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            if self.buffer.as_ref().len() < HEADER_LEN {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// Whether the checksum over the whole buffer is right.
        #[inline(always)]
        pub fn verify_checksum(&self) -> bool {
            checksum::finish(checksum::sum(self.buffer.as_ref(), 0)) == 0
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
        /// Compute the checksum over the whole buffer (the message) and write it.
        #[inline(always)]
        pub fn fill_checksum(&mut self) {
            self.set_checksum(0);
            let sum = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
            self.set_checksum(sum);
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
}

pub mod icmpv6 {
    //! ICMPv6 messages (RFC 4443), with the neighbour discovery fields kxdp
    //! reads and writes (RFC 4861 §4.3, §4.4, §4.6): the target address, the
    //! advertisement flags and the options after them.

    use std::net::Ipv6Addr;

    use crate::wire::checksum;
    use crate::wire::ip_protocol;
    use crate::wire::ipv6;
    use crate::wire::view::{
        read_array, read_u16, read_u8, slice, slice_mut, view, write_array, write_u16, write_u8,
        Error,
    };

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
        use crate::wire::view::Field;

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

    icmp_header!(Packet);

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

        /// A neighbour solicitation's or advertisement's options, mutable.
        #[inline(always)]
        pub fn nd_options_mut(&mut self) -> &mut [u8] {
            slice_mut(self.buffer.as_mut(), field::ND_OPTIONS, usize::MAX)
        }
    }

    mod option_field {
        use crate::wire::view::Field;

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
}

pub mod vxlan {
    //! VXLAN headers (RFC 7348 §5): flags, 24 reserved bits, the 24-bit VNI,
    //! 8 reserved bits, then the inner Ethernet frame.

    use crate::wire::view::{read_array, read_u8, slice, view, write_array, write_u8, Error};

    /// Length of a VXLAN header.
    pub const HEADER_LEN: usize = 8;
    /// The "I" flag: the VNI is valid.
    pub const FLAG_VNI: u8 = 0x08;

    mod field {
        use crate::wire::view::Field;

        pub const FLAGS: usize = 0;
        pub const VNI: Field = 4..7;
        pub const PAYLOAD: usize = 8;
    }

    view! {
        /// A VXLAN header and the inner frame after it.
        Packet
    }

    impl<T: AsRef<[u8]>> Packet<T> {
        /// [`Error::Truncated`] when the header is not in the buffer.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            if self.buffer.as_ref().len() < HEADER_LEN {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// The flags byte.
        #[inline(always)]
        pub fn flags(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::FLAGS)
        }

        /// The VNI (24 bits).
        #[inline(always)]
        pub fn vni(&self) -> u32 {
            let [hi, mid, lo] = read_array(self.buffer.as_ref(), field::VNI);
            u32::from_be_bytes([0, hi, mid, lo])
        }

        /// The inner frame.
        #[inline(always)]
        pub fn payload(&self) -> &[u8] {
            slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
        /// Set the flags byte.
        #[inline(always)]
        pub fn set_flags(&mut self, value: u8) {
            write_u8(self.buffer.as_mut(), field::FLAGS, value);
        }

        /// Set the VNI (its low 24 bits; higher bits are ignored).
        #[inline(always)]
        pub fn set_vni(&mut self, value: u32) {
            let [_, hi, mid, lo] = value.to_be_bytes();
            write_array(self.buffer.as_mut(), field::VNI, [hi, mid, lo]);
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;
        use hex_literal::hex;

        #[test]
        fn reads_rfc_7348_layout() {
            let bytes = hex!("08 000000 00002a 00 ffff");
            let vxlan = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!((vxlan.flags(), vxlan.vni()), (FLAG_VNI, 42));
            assert_eq!(vxlan.payload(), &[0xff, 0xff]);
        }

        #[test]
        fn setters_round_trip() {
            let mut vxlan = Packet::new_checked([0u8; 8]).unwrap();
            vxlan.set_flags(FLAG_VNI);
            vxlan.set_vni(0xff12_3456);
            assert_eq!(vxlan.vni(), 0x12_3456);
            assert_eq!(vxlan.into_inner(), hex!("08 000000 123456 00"));
        }

        #[test]
        fn short_buffers_are_refused_and_never_panic() {
            for len in 0..HEADER_LEN {
                let mut bytes = vec![8u8; len];
                assert_eq!(
                    Packet::new_checked(&bytes[..]).err(),
                    Some(Error::Truncated)
                );
                let mut vxlan = Packet::new_unchecked(&mut bytes[..]);
                vxlan.set_vni(1);
                let _ = (vxlan.vni(), vxlan.payload());
            }
        }
    }
}
