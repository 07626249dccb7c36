//! VXLAN headers (RFC 7348 §5): flags, 24 reserved bits, the 24-bit VNI,
//! 8 reserved bits, then the inner Ethernet frame.

use super::{read_array, read_u8, slice, view, write_array, write_u8, Error};

/// Length of a VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The "I" flag: the VNI is valid.
pub const FLAG_VNI: u8 = 0x08;

mod field {
    use crate::wire::Field;

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
