//! IPv6 fixed headers (RFC 8200) and the pseudo-header upper-layer
//! checksums cover (§8.1).

use std::net::Ipv6Addr;

use super::{
    read_array, read_u16, read_u32, read_u8, slice, slice_mut, view, write_array, write_u16,
    write_u32, write_u8, Error,
};
use crate::packet::checksum;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    use crate::wire::Field;

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
    use crate::wire::Field;

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
