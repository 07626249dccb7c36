//! ARP packets (RFC 826) for Ethernet and IPv4, the only kind kxdp answers.

use std::net::Ipv4Addr;

use super::ethernet::{Address, EtherType};
use super::{read_array, read_u16, read_u8, view, write_array, write_u16, write_u8, Error};

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;

/// The hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// ARP operations.
pub mod operation {
    /// A request.
    pub const REQUEST: u16 = 1;
    /// A reply.
    pub const REPLY: u16 = 2;
}

mod field {
    use crate::wire::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

view! {
    /// An ARP packet whose addresses are laid out for Ethernet and IPv4
    /// (6 and 4 bytes): the fields after the address lengths are read at
    /// those places whatever the lengths say; [`Packet::is_ethernet_ipv4`]
    /// tells whether they do.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] when the buffer is shorter than an
    /// Ethernet/IPv4 ARP packet (28 bytes).
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Whether the buffer reaches the protocol type: what a lenient
    /// reader needs before [`Packet::protocol_type`] means anything.
    #[inline(always)]
    pub fn has_protocol_type(&self) -> bool {
        self.buffer.as_ref().len() >= field::PTYPE.end
    }

    /// Whether the buffer reaches the address lengths (hardware and
    /// protocol type, their lengths): what a lenient reader needs to tell
    /// the kind of ARP packet before the addresses.
    #[inline(always)]
    pub fn has_address_lengths(&self) -> bool {
        self.buffer.as_ref().len() > field::PLEN
    }

    /// Hardware type, protocol type, hardware and protocol address lengths
    /// are Ethernet's and IPv4's (1, 0x0800, 6, 4).
    #[inline(always)]
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HARDWARE_ETHERNET
            && self.protocol_type() == EtherType::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// The hardware type.
    #[inline(always)]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// The protocol type (an EtherType).
    #[inline(always)]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// The hardware address length.
    #[inline(always)]
    pub fn hardware_len(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::HLEN)
    }

    /// The protocol address length.
    #[inline(always)]
    pub fn protocol_len(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::PLEN)
    }

    /// The operation (see [`operation`]).
    #[inline(always)]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    /// The sender hardware address.
    #[inline(always)]
    pub fn source_hardware_addr(&self) -> Address {
        read_array(self.buffer.as_ref(), field::SHA)
    }

    /// The sender protocol address.
    #[inline(always)]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::SPA))
    }

    /// The target hardware address.
    #[inline(always)]
    pub fn target_hardware_addr(&self) -> Address {
        read_array(self.buffer.as_ref(), field::THA)
    }

    /// The target protocol address.
    #[inline(always)]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set hardware type, protocol type and the address lengths to
    /// Ethernet's and IPv4's.
    #[inline(always)]
    pub fn set_ethernet_ipv4(&mut self) {
        let data = self.buffer.as_mut();
        write_u16(data, field::HTYPE, HARDWARE_ETHERNET);
        write_u16(data, field::PTYPE, EtherType::IPV4.0);
        write_u8(data, field::HLEN, 6);
        write_u8(data, field::PLEN, 4);
    }

    /// Set the operation.
    #[inline(always)]
    pub fn set_operation(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::OPER, value);
    }

    /// Set the sender hardware address.
    #[inline(always)]
    pub fn set_source_hardware_addr(&mut self, value: Address) {
        write_array(self.buffer.as_mut(), field::SHA, value);
    }

    /// Set the sender protocol address.
    #[inline(always)]
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        write_array(self.buffer.as_mut(), field::SPA, value.octets());
    }

    /// Set the target hardware address.
    #[inline(always)]
    pub fn set_target_hardware_addr(&mut self, value: Address) {
        write_array(self.buffer.as_mut(), field::THA, value);
    }

    /// Set the target protocol address.
    #[inline(always)]
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        write_array(self.buffer.as_mut(), field::TPA, value.octets());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, ArpPacketSlice};

    const MAC: Address = [2, 0, 0, 0, 0, 1];

    fn built() -> Vec<u8> {
        let arp = ArpPacket::new(
            ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            ArpOperation::REQUEST,
            &MAC,
            &[10, 1, 0, 5],
            &[0; 6],
            &[10, 1, 0, 1],
        )
        .unwrap();
        arp.to_bytes().to_vec()
    }

    #[test]
    fn reads_like_etherparse() {
        let bytes = built();
        let arp = Packet::new_checked(&bytes[..]).unwrap();
        let theirs = ArpPacketSlice::from_slice(&bytes).unwrap();
        assert!(arp.is_ethernet_ipv4() && arp.has_address_lengths());
        assert_eq!(arp.operation(), theirs.operation().0);
        assert_eq!(arp.source_hardware_addr(), theirs.sender_hw_addr());
        assert_eq!(
            arp.source_protocol_addr().octets(),
            theirs.sender_protocol_addr()
        );
        assert_eq!(arp.target_hardware_addr(), theirs.target_hw_addr());
        assert_eq!(
            arp.target_protocol_addr().octets(),
            theirs.target_protocol_addr()
        );
    }

    #[test]
    fn setters_round_trip() {
        let mut arp = Packet::new_checked([0u8; LEN]).unwrap();
        assert!(!arp.is_ethernet_ipv4());
        arp.set_ethernet_ipv4();
        arp.set_operation(operation::REPLY);
        arp.set_source_hardware_addr(MAC);
        arp.set_source_protocol_addr(Ipv4Addr::new(10, 1, 0, 1));
        arp.set_target_hardware_addr([9; 6]);
        arp.set_target_protocol_addr(Ipv4Addr::new(10, 1, 0, 5));
        assert!(arp.is_ethernet_ipv4());
        assert_eq!(arp.operation(), operation::REPLY);
        assert_eq!(arp.source_hardware_addr(), MAC);
        assert_eq!(arp.source_protocol_addr(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(arp.target_hardware_addr(), [9; 6]);
        assert_eq!(arp.target_protocol_addr(), Ipv4Addr::new(10, 1, 0, 5));
        let theirs = ArpPacketSlice::from_slice(arp.as_ref()).unwrap();
        assert_eq!(theirs.operation(), ArpOperation::REPLY);
    }

    #[test]
    fn short_buffers_are_refused_and_never_panic() {
        let bytes = built();
        for len in 0..LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..len]).err(),
                Some(Error::Truncated)
            );
            let mut short = bytes[..len].to_vec();
            let mut arp = Packet::new_unchecked(&mut short[..]);
            arp.set_target_protocol_addr(Ipv4Addr::BROADCAST);
            let _ = (arp.is_ethernet_ipv4(), arp.target_protocol_addr());
            assert_eq!(arp.has_address_lengths(), len >= 6);
            assert_eq!(arp.has_protocol_type(), len >= 4);
        }
    }
}
