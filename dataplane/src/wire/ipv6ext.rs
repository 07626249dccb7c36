//! IPv6 extension headers (RFC 8200 §4): the generic layout most share
//! (next header, length in 8-byte units beyond the first 8), the
//! authentication header's (RFC 4302: length in 4-byte units, minus 2) and
//! the fragment header.

use super::{read_u16, read_u32, read_u8, view, write_u16, write_u32, write_u8, Error};

/// Length of a fragment header, and the least an extension header takes.
pub const MIN_LEN: usize = 8;
/// The least an authentication header takes (with an empty ICV).
pub const AUTH_MIN_LEN: usize = 12;

mod field {
    use crate::wire::Field;

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
