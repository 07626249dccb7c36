//! 802.1Q VLAN tags (the four bytes after the outer EtherType 0x8100).

use super::ethernet::EtherType;
use super::{read_u16, slice, view, write_u16, Error};

/// Length of one tag.
pub const HEADER_LEN: usize = 4;

mod field {
    use crate::wire::Field;

    /// Tag control information: priority (3 bits), drop eligible (1), VLAN ID (12).
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// The VLAN ID bits of the tag control information.
const VID_MASK: u16 = 0x0fff;

view! {
    /// An 802.1Q tag: tag control information and the inner EtherType.
    Tag
}

impl<T: AsRef<[u8]>> Tag<T> {
    /// [`Error::Truncated`] when the buffer is shorter than a tag.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The VLAN ID (12 bits).
    #[inline(always)]
    pub fn vlan_id(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI) & VID_MASK
    }

    /// The priority code point (3 bits).
    #[inline(always)]
    pub fn priority(&self) -> u8 {
        (read_u16(self.buffer.as_ref(), field::TCI) >> 13) as u8
    }

    /// The EtherType of what follows the tag.
    #[inline(always)]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// What follows the tag.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    /// Set the VLAN ID (12 bits; the priority and DEI bits are kept).
    #[inline(always)]
    pub fn set_vlan_id(&mut self, value: u16) {
        let tci = read_u16(self.buffer.as_ref(), field::TCI);
        write_u16(
            self.buffer.as_mut(),
            field::TCI,
            (tci & !VID_MASK) | (value & VID_MASK),
        );
    }

    /// Set the EtherType of what follows.
    #[inline(always)]
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value.0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::SingleVlanHeaderSlice;

    #[test]
    fn reads_like_etherparse() {
        let bytes = [0xa0, 0x64, 0x08, 0x06, 0xff];
        let tag = Tag::new_checked(&bytes[..]).unwrap();
        let theirs = SingleVlanHeaderSlice::from_slice(&bytes).unwrap();
        assert_eq!(tag.vlan_id(), theirs.vlan_identifier().value());
        assert_eq!(tag.priority(), theirs.priority_code_point().value());
        assert_eq!(tag.ethertype().0, theirs.ether_type().0);
        assert_eq!(tag.payload(), &[0xff]);
    }

    #[test]
    fn setters_round_trip() {
        let mut tag = Tag::new_checked([0xe0u8, 0, 0, 0]).unwrap();
        tag.set_vlan_id(4094);
        tag.set_ethertype(EtherType::IPV4);
        assert_eq!((tag.vlan_id(), tag.priority()), (4094, 7));
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.into_inner(), [0xef, 0xfe, 0x08, 0x00]);
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            let mut bytes = vec![0xffu8; len];
            assert_eq!(Tag::new_checked(&bytes[..]).err(), Some(Error::Truncated));
            let mut tag = Tag::new_unchecked(&mut bytes[..]);
            tag.set_vlan_id(1);
            let _ = (tag.vlan_id(), tag.ethertype(), tag.payload());
        }
    }
}
