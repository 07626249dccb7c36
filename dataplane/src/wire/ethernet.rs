//! Ethernet II frames.

use super::{read_array, read_u16, slice, slice_mut, view, write_array, write_u16, Error};

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// A MAC address.
pub type Address = [u8; 6];

/// Whether `address` is a group (multicast or broadcast) address: the
/// least significant bit of its first byte set.
#[inline(always)]
pub fn is_multicast(address: &Address) -> bool {
    address[0] & 1 == 1
}

/// An EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An 802.1Q VLAN tag follows.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// An 802.1ad (provider bridging, QinQ) service tag follows.
    pub const PROVIDER_BRIDGING: EtherType = EtherType(0x88a8);
    /// The pre-standard double tag (0x9100).
    pub const VLAN_DOUBLE_TAGGED: EtherType = EtherType(0x9100);
}

mod field {
    use crate::wire::Field;

    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

view! {
    /// An Ethernet II frame: destination, source, EtherType, payload.
    Frame
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// [`Error::Truncated`] when the buffer is shorter than the header.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The destination address.
    #[inline(always)]
    pub fn dst_addr(&self) -> Address {
        read_array(self.buffer.as_ref(), field::DST)
    }

    /// The source address.
    #[inline(always)]
    pub fn src_addr(&self) -> Address {
        read_array(self.buffer.as_ref(), field::SRC)
    }

    /// The EtherType.
    #[inline(always)]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// What follows the header (a VLAN tag or the network packet).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), field::PAYLOAD, usize::MAX)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination address.
    #[inline(always)]
    pub fn set_dst_addr(&mut self, value: Address) {
        write_array(self.buffer.as_mut(), field::DST, value);
    }

    /// Set the source address.
    #[inline(always)]
    pub fn set_src_addr(&mut self, value: Address) {
        write_array(self.buffer.as_mut(), field::SRC, value);
    }

    /// Set the EtherType.
    #[inline(always)]
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value.0);
    }

    /// What follows the header, mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        slice_mut(self.buffer.as_mut(), field::PAYLOAD, usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::Ethernet2HeaderSlice;

    const FRAME: [u8; 16] = [
        0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, 0xab, 0xcd,
    ];

    #[test]
    fn reads_like_etherparse() {
        let frame = Frame::new_checked(&FRAME[..]).unwrap();
        let theirs = Ethernet2HeaderSlice::from_slice(&FRAME).unwrap();
        assert_eq!(frame.dst_addr(), theirs.destination());
        assert_eq!(frame.src_addr(), theirs.source());
        assert_eq!(frame.ethertype().0, theirs.ether_type().0);
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload(), &[0xab, 0xcd]);
    }

    #[test]
    fn setters_round_trip() {
        let mut frame = Frame::new_checked([0u8; 20]).unwrap();
        frame.set_dst_addr([1, 2, 3, 4, 5, 6]);
        frame.set_src_addr([7, 8, 9, 10, 11, 12]);
        frame.set_ethertype(EtherType::IPV6);
        frame.payload_mut()[0] = 0x60;
        assert_eq!(frame.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(frame.src_addr(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(frame.ethertype(), EtherType::IPV6);
        let bytes = frame.into_inner();
        assert_eq!(bytes[12..15], [0x86, 0xdd, 0x60]);
        assert!(is_multicast(&[0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_multicast(&[0x02, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME[..len]).err(),
                Some(Error::Truncated)
            );
            let mut short = FRAME[..len].to_vec();
            let mut frame = Frame::new_unchecked(&mut short[..]);
            frame.set_ethertype(EtherType::ARP);
            let _ = (frame.dst_addr(), frame.ethertype(), frame.payload_mut());
        }
        assert_eq!(
            Frame::new_checked(&FRAME[..14]).unwrap().payload(),
            &[] as &[u8]
        );
    }
}
