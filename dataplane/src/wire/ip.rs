//! The network layer: IPv4 ([`ipv4`]), IPv6 ([`ipv6`]) and its extension
//! headers ([`ipv6ext`]), the protocol numbers that name what they carry
//! ([`ip_protocol`]), and the internet checksum ([`checksum`]) that IPv4
//! headers and the transports above carry.

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

pub mod checksum {
    //! Internet checksums (RFC 1071) and incremental updates (RFC 1624).
    //!
    //! Hand-written rather than taken from etherparse's `checksum` module: the
    //! pipeline needs an unfolded running sum it can carry across pieces (a
    //! template sum plus a length, a pseudo-header plus a message) and RFC 1624's
    //! incremental update, which etherparse does not offer. Pure arithmetic, no
    //! allocation, never panics.

    /// One's-complement sum of `data` added to `initial` (not folded, not inverted).
    ///
    /// `data` is read as big-endian 16-bit words; an odd last byte is padded with
    /// a zero byte, as RFC 1071 says. To sum a message in pieces, chain the calls
    /// (`sum(b, sum(a, 0))`) with every piece but the last of even length.
    #[inline]
    pub fn sum(data: &[u8], initial: u32) -> u32 {
        // Summing big-endian 32-bit words and folding later gives the same
        // one's-complement sum as 16-bit words (2^16 ≡ 1 mod 0xffff), with half
        // the additions. A u64 accumulator cannot overflow for any slice that fits
        // in memory (2^32 words of at most 2^32 - 1).
        let mut acc = u64::from(initial);
        let mut words = data.chunks_exact(4);
        for word in &mut words {
            acc += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
        }
        let rest = words.remainder();
        match *rest {
            [a] => acc += u64::from(u16::from_be_bytes([a, 0])),
            [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
            [a, b, c] => {
                acc += u64::from(u16::from_be_bytes([a, b]));
                acc += u64::from(u16::from_be_bytes([c, 0]));
            }
            _ => {}
        }
        fold64(acc)
    }

    /// [`sum`] of an IPv4 header, checksum field included: unrolled for the
    /// usual 20 bytes (no options), the general loop otherwise.
    #[inline(always)]
    pub fn ipv4_header_sum(header: &[u8]) -> u32 {
        match header.first_chunk::<20>() {
            Some(h) if header.len() == 20 => {
                let word =
                    |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
                fold64(word(0) + word(4) + word(8) + word(12) + word(16))
            }
            _ => sum(header, 0),
        }
    }

    /// Fold a 64-bit one's-complement accumulator to 32 bits (end-around carry).
    #[inline]
    fn fold64(mut acc: u64) -> u32 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
        acc = (acc & 0xffff_ffff) + (acc >> 32);
        // Two folds leave at most 32 bits: the first gives < 2^33, the second
        // < 2^32 + 2, whose carry the second fold already absorbed.
        acc as u32
    }

    /// Fold a 32-bit sum to 16 bits and invert it: the checksum to write.
    #[inline]
    pub fn finish(sum: u32) -> u16 {
        let mut s = (sum & 0xffff) + (sum >> 16);
        s = (s & 0xffff) + (s >> 16);
        !(s as u16)
    }

    /// The IPv4 header checksum of `header` (whose checksum field is taken as zero).
    ///
    /// `header` is the whole header, options included (IHL × 4 bytes). A slice
    /// shorter than 12 bytes has no checksum field and is summed as it is.
    #[inline]
    pub fn ipv4_header(header: &[u8]) -> u16 {
        match (header.get(..10), header.get(12..)) {
            (Some(before), Some(after)) => finish(sum(after, sum(before, 0))),
            _ => finish(sum(header, 0)),
        }
    }

    /// RFC 1624 incremental update: the new checksum after a 16-bit word of the
    /// covered data changed from `old` to `new`.
    ///
    /// Uses RFC 1624's equation 3, `HC' = ~(~HC + ~m + m')`, which (unlike
    /// RFC 1141's) never produces the negative zero a full recomputation cannot.
    #[inline]
    pub fn update16(checksum: u16, old: u16, new: u16) -> u16 {
        finish(u32::from(!checksum) + u32::from(!old) + u32::from(new))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        /// The textbook algorithm, one 16-bit word at a time, for comparison.
        fn reference(data: &[u8]) -> u16 {
            let mut acc: u32 = 0;
            for pair in data.chunks(2) {
                let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
                acc += u32::from(word);
                acc = (acc & 0xffff) + (acc >> 16);
            }
            !(acc as u16)
        }

        #[test]
        fn rfc1071_example() {
            // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
            let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
            assert_eq!(finish(sum(&data, 0)), !0xddf2);
        }

        #[test]
        fn known_ipv4_header() {
            // A well-known example header (Wikipedia's "IPv4 header checksum").
            let header = [
                0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
                0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
            ];
            assert_eq!(ipv4_header(&header), 0xb861);
            // Summing the header with its checksum in place gives zero.
            assert_eq!(finish(sum(&header, 0)), 0);
        }

        #[test]
        fn odd_lengths_pad_with_zero() {
            assert_eq!(finish(sum(&[0x12], 0)), !0x1200);
            assert_eq!(finish(sum(&[0x12, 0x34, 0x56], 0)), !(0x1234u16 + 0x5600));
            assert_eq!(finish(sum(&[], 0)), 0xffff);
        }

        #[test]
        fn short_header_does_not_panic() {
            assert_eq!(ipv4_header(&[0x45, 0x00]), reference(&[0x45, 0x00]));
        }

        proptest! {
            #[test]
            fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..200)) {
                prop_assert_eq!(finish(sum(&data, 0)), reference(&data));
            }

            #[test]
            fn chained_sums_match_whole(
                a in proptest::collection::vec(any::<u8>(), 0..50),
                b in proptest::collection::vec(any::<u8>(), 0..50),
            ) {
                let mut a = a;
                if a.len() % 2 == 1 {
                    a.pop();
                }
                let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
                prop_assert_eq!(finish(sum(&b, sum(&a, 0))), finish(sum(&whole, 0)));
            }

            #[test]
            fn update16_matches_recomputation(
                mut data in proptest::collection::vec(any::<u8>(), 4..64),
                word in 0usize..32,
                new in any::<u16>(),
            ) {
                // Keep the data non-zero: an all-zero message is the one case where
                // a full computation gives 0xffff and eq. 3 gives 0x0000, and no
                // real header is all zeros.
                data[0] |= 0x40;
                let words = data.len() / 2;
                // Never the first word, so the message stays non-zero.
                let i = (1 + word % (words - 1)) * 2;
                let before = reference(&data);
                let old = u16::from_be_bytes([data[i], data[i + 1]]);
                data[i..i + 2].copy_from_slice(&new.to_be_bytes());
                prop_assert_eq!(update16(before, old, new), reference(&data));
            }
        }
    }
}

pub mod ipv4 {
    //! IPv4 headers (RFC 791).

    use std::net::Ipv4Addr;

    use crate::wire::checksum;
    use crate::wire::view::{
        read_array, read_u16, read_u8, slice, slice_mut, view, write_array, write_u16, write_u8,
        Error,
    };

    /// Length of a header without options.
    pub const HEADER_LEN: usize = 20;

    mod field {
        use crate::wire::view::Field;

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
}

pub mod ipv6 {
    //! IPv6 fixed headers (RFC 8200) and the pseudo-header upper-layer
    //! checksums cover (§8.1).

    use std::net::Ipv6Addr;

    use crate::wire::checksum;
    use crate::wire::view::{
        read_array, read_u16, read_u32, read_u8, slice, slice_mut, view, write_array, write_u16,
        write_u32, write_u8, Error,
    };

    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    mod field {
        use crate::wire::view::Field;

        /// Version (4 bits), traffic class (8), flow label (20).
        pub const VER_TC_FLOW: Field = 0..4;
        pub const LENGTH: Field = 4..6;
        pub const NXT_HDR: usize = 6;
        pub const HOP_LIMIT: usize = 7;
        pub const SRC_ADDR: Field = 8..24;
        pub const DST_ADDR: Field = 24..40;
        pub const PAYLOAD: usize = 40;
    }

    view! {
        /// An IPv6 fixed header and what follows it.
        Packet
    }

    impl<T: AsRef<[u8]>> Packet<T> {
        /// [`Error::Truncated`] when the fixed header is not in the buffer.
        /// The version and the payload length are the caller's to judge.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            if self.buffer.as_ref().len() < HEADER_LEN {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// The version (6 for IPv6).
        #[inline(always)]
        pub fn version(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::VER_TC_FLOW.start) >> 4
        }

        /// The traffic class.
        #[inline(always)]
        pub fn traffic_class(&self) -> u8 {
            (read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
        }

        /// The flow label (20 bits).
        #[inline(always)]
        pub fn flow_label(&self) -> u32 {
            read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
        }

        /// The payload length (extension headers included).
        #[inline(always)]
        pub fn payload_len(&self) -> u16 {
            read_u16(self.buffer.as_ref(), field::LENGTH)
        }

        /// The fixed header plus the payload length: the packet's length.
        #[inline(always)]
        pub fn total_len(&self) -> usize {
            HEADER_LEN + usize::from(self.payload_len())
        }

        /// The next header (see [`super::ip_protocol`]).
        #[inline(always)]
        pub fn next_header(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::NXT_HDR)
        }

        /// The hop limit.
        #[inline(always)]
        pub fn hop_limit(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
        }

        /// The source address.
        #[inline(always)]
        pub fn src_addr(&self) -> Ipv6Addr {
            Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::SRC_ADDR))
        }

        /// The destination address.
        #[inline(always)]
        pub fn dst_addr(&self) -> Ipv6Addr {
            Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::DST_ADDR))
        }

        /// The payload: the payload length's worth of bytes after the fixed
        /// header (cut to the buffer).
        #[inline(always)]
        pub fn payload(&self) -> &[u8] {
            slice(self.buffer.as_ref(), field::PAYLOAD, self.total_len())
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
        /// Set version, traffic class and flow label.
        #[inline(always)]
        pub fn set_version_class_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
            let word = (u32::from(version) << 28)
                | (u32::from(traffic_class) << 20)
                | (flow_label & 0x000f_ffff);
            write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
        }

        /// Set the payload length.
        #[inline(always)]
        pub fn set_payload_len(&mut self, value: u16) {
            write_u16(self.buffer.as_mut(), field::LENGTH, value);
        }

        /// Set the next header.
        #[inline(always)]
        pub fn set_next_header(&mut self, value: u8) {
            write_u8(self.buffer.as_mut(), field::NXT_HDR, value);
        }

        /// Set the hop limit.
        #[inline(always)]
        pub fn set_hop_limit(&mut self, value: u8) {
            write_u8(self.buffer.as_mut(), field::HOP_LIMIT, value);
        }

        /// Set the source address.
        #[inline(always)]
        pub fn set_src_addr(&mut self, value: Ipv6Addr) {
            write_array(self.buffer.as_mut(), field::SRC_ADDR, value.octets());
        }

        /// Set the destination address.
        #[inline(always)]
        pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
            write_array(self.buffer.as_mut(), field::DST_ADDR, value.octets());
        }

        /// The payload (as [`Packet::payload`]), mutable.
        #[inline(always)]
        pub fn payload_mut(&mut self) -> &mut [u8] {
            let to = self.total_len();
            slice_mut(self.buffer.as_mut(), field::PAYLOAD, to)
        }
    }

    /// The unfolded one's-complement sum of the IPv6 pseudo-header (RFC 8200
    /// §8.1): source, destination, upper-layer length, next header.
    #[inline(always)]
    pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
        // Summed as bytes like the message: no addition here can overflow
        // whatever the partial sums are.
        let mut pseudo = [0u8; 40];
        write_array(&mut pseudo, pseudo_field::SRC_ADDR, src.octets());
        write_array(&mut pseudo, pseudo_field::DST_ADDR, dst.octets());
        write_u32(&mut pseudo, pseudo_field::LENGTH, length);
        write_u8(&mut pseudo, pseudo_field::NXT_HDR, next_header);
        checksum::sum(&pseudo, 0)
    }

    mod pseudo_field {
        use crate::wire::view::Field;

        pub const SRC_ADDR: Field = 0..16;
        pub const DST_ADDR: Field = 16..32;
        pub const LENGTH: Field = 32..36;
        /// After three zero bytes.
        pub const NXT_HDR: usize = 39;
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;
        use etherparse::{IpNumber, Ipv6FlowLabel, Ipv6Header, Ipv6HeaderSlice};

        const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5);
        const DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 7);

        fn built() -> Vec<u8> {
            let header = Ipv6Header {
                traffic_class: 0xb8,
                flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                payload_length: 3,
                next_header: IpNumber::UDP,
                hop_limit: 64,
                source: SRC.octets(),
                destination: DST.octets(),
            };
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(b"xyz!!");
            bytes
        }

        #[test]
        fn reads_like_etherparse() {
            let bytes = built();
            let ip = Packet::new_checked(&bytes[..]).unwrap();
            let theirs = Ipv6HeaderSlice::from_slice(&bytes).unwrap();
            assert_eq!(ip.version(), 6);
            assert_eq!(ip.traffic_class(), theirs.traffic_class());
            assert_eq!(ip.flow_label(), theirs.flow_label().value());
            assert_eq!(ip.payload_len(), theirs.payload_length());
            assert_eq!(ip.next_header(), theirs.next_header().0);
            assert_eq!(ip.hop_limit(), theirs.hop_limit());
            assert_eq!(ip.src_addr(), theirs.source_addr());
            assert_eq!(ip.dst_addr(), theirs.destination_addr());
            assert_eq!(ip.payload(), b"xyz");
            assert_eq!(ip.total_len(), 43);
        }

        #[test]
        fn setters_round_trip() {
            let mut ip = Packet::new_checked([0xffu8; 44]).unwrap();
            ip.set_version_class_flow(6, 0, 0);
            ip.set_payload_len(4);
            ip.set_next_header(58);
            ip.set_hop_limit(255);
            ip.set_src_addr(SRC);
            ip.set_dst_addr(DST);
            ip.payload_mut().copy_from_slice(b"abcd");
            let theirs = Ipv6HeaderSlice::from_slice(ip.as_ref()).unwrap();
            assert_eq!(
                (theirs.traffic_class(), theirs.flow_label().value()),
                (0, 0)
            );
            assert_eq!((ip.version(), ip.payload_len()), (6, 4));
            assert_eq!((ip.next_header(), ip.hop_limit()), (58, 255));
            assert_eq!((ip.src_addr(), ip.dst_addr()), (SRC, DST));
            assert_eq!(ip.payload(), b"abcd");
        }

        #[test]
        fn short_buffers_are_refused_and_never_panic() {
            let bytes = built();
            for len in 0..HEADER_LEN {
                assert_eq!(
                    Packet::new_checked(&bytes[..len]).err(),
                    Some(Error::Truncated)
                );
                let mut short = bytes[..len].to_vec();
                let mut ip = Packet::new_unchecked(&mut short[..]);
                ip.set_dst_addr(SRC);
                let _ = (ip.dst_addr(), ip.payload().len());
                let _ = ip.payload_mut();
            }
        }

        #[test]
        fn pseudo_header_sum_matches_etherparse() {
            // A UDP datagram's checksum from etherparse, over the same pseudo-header.
            let udp = etherparse::UdpHeader::with_ipv6_checksum(
                1,
                2,
                &Ipv6Header {
                    payload_length: 9,
                    next_header: IpNumber::UDP,
                    source: SRC.octets(),
                    destination: DST.octets(),
                    ..Default::default()
                },
                b"x",
            )
            .unwrap();
            let mut datagram = udp.to_bytes().to_vec();
            datagram.push(b'x');
            let sum = pseudo_header_sum(SRC, DST, 17, 9);
            assert_eq!(checksum::finish(checksum::sum(&datagram, sum)), 0);
        }
    }
}

pub mod ipv6ext {
    //! IPv6 extension headers (RFC 8200 §4): the generic layout most share
    //! (next header, length in 8-byte units beyond the first 8), the
    //! authentication header's (RFC 4302: length in 4-byte units, minus 2) and
    //! the fragment header.

    use crate::wire::view::{
        read_u16, read_u32, read_u8, view, write_u16, write_u32, write_u8, Error,
    };

    /// Length of a fragment header, and the least an extension header takes.
    pub const MIN_LEN: usize = 8;
    /// The least an authentication header takes (with an empty ICV).
    pub const AUTH_MIN_LEN: usize = 12;

    mod field {
        use crate::wire::view::Field;

        pub const NXT_HDR: usize = 0;
        pub const LENGTH: usize = 1;
        /// Fragment header: offset (13 bits, 8-byte units), 2 reserved bits, M flag.
        pub const FRAG_OFF_M: Field = 2..4;
        /// Fragment header: identification.
        pub const FRAG_IDENT: Field = 4..8;
    }

    view! {
        /// An extension header of the generic layout: hop-by-hop options,
        /// routing, destination options, mobility, HIP, shim6.
        ExtHeader
    }

    impl<T: AsRef<[u8]>> ExtHeader<T> {
        /// [`Error::Truncated`] when the first 8 bytes, or the length the
        /// header gives, are not in the buffer.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            let len = self.buffer.as_ref().len();
            if len < MIN_LEN || len < self.header_len() {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// The next header.
        #[inline(always)]
        pub fn next_header(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::NXT_HDR)
        }

        /// The header's length in bytes.
        #[inline(always)]
        pub fn header_len(&self) -> usize {
            (usize::from(read_u8(self.buffer.as_ref(), field::LENGTH)) + 1) * 8
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
        /// Set the next header.
        #[inline(always)]
        pub fn set_next_header(&mut self, value: u8) {
            write_u8(self.buffer.as_mut(), field::NXT_HDR, value);
        }

        /// Set the length, in bytes (a multiple of 8, at least 8).
        #[inline(always)]
        pub fn set_header_len(&mut self, bytes: usize) {
            let units = (bytes / 8).saturating_sub(1).min(255) as u8;
            write_u8(self.buffer.as_mut(), field::LENGTH, units);
        }
    }

    view! {
        /// An IP authentication header.
        AuthHeader
    }

    impl<T: AsRef<[u8]>> AuthHeader<T> {
        /// [`Error::Truncated`] when 12 bytes, or the length the header gives,
        /// are not in the buffer; [`Error::BadHeaderLength`] for a payload
        /// length of 0.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            let len = self.buffer.as_ref().len();
            if len < AUTH_MIN_LEN {
                return Err(Error::Truncated);
            }
            if read_u8(self.buffer.as_ref(), field::LENGTH) == 0 {
                return Err(Error::BadHeaderLength);
            }
            if len < self.header_len() {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// The next header.
        #[inline(always)]
        pub fn next_header(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::NXT_HDR)
        }

        /// The header's length in bytes.
        #[inline(always)]
        pub fn header_len(&self) -> usize {
            (usize::from(read_u8(self.buffer.as_ref(), field::LENGTH)) + 2) * 4
        }
    }

    view! {
        /// An IPv6 fragment header.
        FragmentHeader
    }

    impl<T: AsRef<[u8]>> FragmentHeader<T> {
        /// [`Error::Truncated`] when the 8 bytes are not in the buffer.
        #[inline(always)]
        pub fn check_len(&self) -> Result<(), Error> {
            if self.buffer.as_ref().len() < MIN_LEN {
                return Err(Error::Truncated);
            }
            Ok(())
        }

        /// The next header (the fragmented packet's).
        #[inline(always)]
        pub fn next_header(&self) -> u8 {
            read_u8(self.buffer.as_ref(), field::NXT_HDR)
        }

        /// The fragment offset, in 8-byte units.
        #[inline(always)]
        pub fn frag_offset(&self) -> u16 {
            read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) >> 3
        }

        /// The more-fragments flag.
        #[inline(always)]
        pub fn more_frags(&self) -> bool {
            read_u16(self.buffer.as_ref(), field::FRAG_OFF_M) & 1 == 1
        }

        /// The identification.
        #[inline(always)]
        pub fn ident(&self) -> u32 {
            read_u32(self.buffer.as_ref(), field::FRAG_IDENT)
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
        /// Set the next header.
        #[inline(always)]
        pub fn set_next_header(&mut self, value: u8) {
            write_u8(self.buffer.as_mut(), field::NXT_HDR, value);
        }

        /// Set the fragment offset (8-byte units) and the more-fragments flag.
        #[inline(always)]
        pub fn set_fragmentation(&mut self, offset: u16, more_frags: bool) {
            write_u16(
                self.buffer.as_mut(),
                field::FRAG_OFF_M,
                (offset << 3) | u16::from(more_frags),
            );
        }

        /// Set the identification.
        #[inline(always)]
        pub fn set_ident(&mut self, value: u32) {
            write_u32(self.buffer.as_mut(), field::FRAG_IDENT, value);
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;
        use etherparse::{IpAuthHeaderSlice, Ipv6FragmentHeaderSlice, Ipv6RawExtHeaderSlice};

        #[test]
        fn read_like_etherparse() {
            let raw = [17u8, 1, 1, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xee];
            let ext = ExtHeader::new_checked(&raw[..]).unwrap();
            let theirs = Ipv6RawExtHeaderSlice::from_slice(&raw).unwrap();
            assert_eq!(ext.next_header(), theirs.next_header().0);
            assert_eq!(ext.header_len(), theirs.slice().len());

            let auth = [6u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
            let ah = AuthHeader::new_checked(&auth[..]).unwrap();
            let theirs = IpAuthHeaderSlice::from_slice(&auth).unwrap();
            assert_eq!(ah.next_header(), theirs.next_header().0);
            assert_eq!(ah.header_len(), theirs.slice().len());

            let fragment = [17u8, 0, 0x05, 0xc9, 0x12, 0x34, 0x56, 0x78];
            let frag = FragmentHeader::new_checked(&fragment[..]).unwrap();
            let theirs = Ipv6FragmentHeaderSlice::from_slice(&fragment).unwrap();
            assert_eq!(frag.next_header(), theirs.next_header().0);
            assert_eq!(frag.frag_offset(), theirs.fragment_offset().value());
            assert_eq!(frag.more_frags(), theirs.more_fragments());
            assert_eq!(frag.ident(), theirs.identification());
        }

        #[test]
        fn setters_round_trip() {
            let mut ext = ExtHeader::new_unchecked([0u8; 16]);
            ext.set_next_header(6);
            ext.set_header_len(16);
            assert_eq!((ext.next_header(), ext.header_len()), (6, 16));
            let mut frag = FragmentHeader::new_unchecked([0u8; 8]);
            frag.set_next_header(17);
            frag.set_fragmentation(185, true);
            frag.set_ident(0xdead_beef);
            assert_eq!(
                (frag.next_header(), frag.frag_offset(), frag.more_frags()),
                (17, 185, true)
            );
            assert_eq!(frag.ident(), 0xdead_beef);
        }

        #[test]
        fn short_buffers_and_bad_lengths_are_refused() {
            let raw = [17u8, 1, 1, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
            for len in 0..16 {
                assert_eq!(
                    ExtHeader::new_checked(&raw[..len]).err(),
                    Some(Error::Truncated)
                );
                assert_eq!(FragmentHeader::new_checked(&raw[..len]).is_ok(), len >= 8);
                let _ = ExtHeader::new_unchecked(&raw[..len]).header_len();
            }
            let auth = [6u8, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];
            for len in 0..16 {
                assert_eq!(
                    AuthHeader::new_checked(&auth[..len]).err(),
                    Some(Error::Truncated)
                );
            }
            let zero = [6u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
            assert_eq!(
                AuthHeader::new_checked(&zero[..]).err(),
                Some(Error::BadHeaderLength)
            );
        }
    }
}
