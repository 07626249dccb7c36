//! Ethernet II frames, and what rides on them: 802.1Q VLAN tags
//! ([`vlan`]) and ARP ([`arp`]).

use crate::wire::view::{
    read_array, read_u16, slice, slice_mut, view, write_array, write_u16, Error,
};

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
    use crate::wire::view::Field;

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

pub mod vlan {
    //! 802.1Q VLAN tags (the four bytes after the outer EtherType 0x8100).

    use crate::wire::ethernet::EtherType;
    use crate::wire::view::{read_u16, slice, view, write_u16, Error};

    /// Length of one tag.
    pub const HEADER_LEN: usize = 4;

    mod field {
        use crate::wire::view::Field;

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
}

pub mod arp {
    //! ARP packets (RFC 826) for Ethernet and IPv4, the only kind kxdp answers.

    use std::net::Ipv4Addr;

    use crate::wire::ethernet::{Address, EtherType};
    use crate::wire::view::{
        read_array, read_u16, read_u8, view, write_array, write_u16, write_u8, Error,
    };

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
        use crate::wire::view::Field;

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
