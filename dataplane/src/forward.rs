//! What forwarding does to a routed frame, in place and without NAT: the
//! MAC and TTL / hop-limit rewrites for a local pod, and ([`vxlan`]) the
//! VXLAN encapsulation for a remote node and the decapsulation of what
//! arrives from one.

use crate::packet::{FrameMeta, L3};
use crate::verdict::DropReason;
use crate::wire::{ethernet, ipv4, ipv6};

/// Write destination and source MACs.
///
/// A frame shorter than an Ethernet header (which [`crate::packet::parse`] never
/// accepts) is left as it is.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    let mut eth = ethernet::Frame::new_unchecked(frame);
    if eth.check_len().is_ok() {
        eth.set_dst_addr(dst);
        eth.set_src_addr(src);
    }
}

/// Decrement the IPv4 TTL (with an incremental header checksum update) or the
/// IPv6 hop limit. A TTL/hop limit of 0 or 1 gives [`DropReason::TtlExpired`]
/// and leaves the frame untouched. ARP frames are left alone (Ok).
///
/// `meta` must come from [`crate::packet::parse`] of this frame; a frame too short
/// for the header it names gives [`DropReason::MalformedIpv4`] or
/// [`DropReason::MalformedIpv6`] instead of a panic.
#[inline]
pub fn decrement_ttl(frame: &mut [u8], meta: &FrameMeta) -> Result<(), DropReason> {
    match meta.l3 {
        L3::Arp => Ok(()),
        L3::Ipv4 { .. } => {
            let Some(header) = frame.get_mut(meta.l3_offset..meta.l3_offset + ipv4::HEADER_LEN)
            else {
                return Err(DropReason::MalformedIpv4);
            };
            let mut ip = ipv4::Packet::new_unchecked(header);
            if ip.ttl() <= 1 {
                return Err(DropReason::TtlExpired);
            }
            ip.decrement_ttl();
            Ok(())
        }
        L3::Ipv6 { .. } => {
            let Some(header) = frame.get_mut(meta.l3_offset..meta.l3_offset + ipv6::HEADER_LEN)
            else {
                return Err(DropReason::MalformedIpv6);
            };
            let mut ip = ipv6::Packet::new_unchecked(header);
            let hop_limit = ip.hop_limit();
            if hop_limit <= 1 {
                return Err(DropReason::TtlExpired);
            }
            ip.set_hop_limit(hop_limit - 1);
            Ok(())
        }
    }
}

pub mod vxlan {
    //! VXLAN (RFC 7348) over an IPv4 underlay: encapsulation from a precomputed
    //! per-destination header template, and validated decapsulation.
    //!
    //! Encapsulation is a 50-byte copy and four 16-bit stores: the outer IPv4
    //! header checksum comes from the template's precomputed sum plus the one
    //! field that varies (the total length). Decapsulation validates the outer
    //! headers through the wire views and returns where the inner
    //! frame is; it never copies. No allocation, no panics on any input.

    use std::net::Ipv4Addr;

    use crate::verdict::DropReason;
    use crate::wire::checksum;
    use crate::wire::ethernet::{self, EtherType};
    use crate::wire::{ip_protocol, ipv4, udp, vxlan as header};

    /// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
    pub const ENCAP_OVERHEAD: usize =
        ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + header::HEADER_LEN;
    /// IANA's VXLAN port.
    pub const VXLAN_PORT: u16 = 4789;
    /// Length of the VXLAN header.
    pub const VXLAN_HEADER_LEN: usize = header::HEADER_LEN;
    /// The VXLAN "I" flag: the VNI is valid.
    pub const VXLAN_FLAG_VNI: u8 = header::FLAG_VNI;
    /// First UDP source port [`source_port`] uses (the IANA dynamic range).
    pub const SOURCE_PORT_MIN: u16 = 49152;

    // Where the outer headers start in the template (IPv4 without options).
    const IP: usize = ethernet::HEADER_LEN;
    const UDP: usize = IP + ipv4::HEADER_LEN;
    const VXLAN: usize = UDP + udp::HEADER_LEN;
    /// Outer IPv4 + UDP + VXLAN: what the outer total length adds to the inner frame.
    const IP_OVERHEAD: usize = ENCAP_OVERHEAD - ethernet::HEADER_LEN;
    /// UDP + VXLAN: what the UDP length adds to the inner frame.
    const UDP_OVERHEAD: usize = udp::HEADER_LEN + VXLAN_HEADER_LEN;

    /// The outer headers for one (remote VTEP, VNI), built once when tables are
    /// compiled; encapsulation copies it and patches the lengths, the source
    /// port and the checksum.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct EncapTemplate {
        /// The 50 bytes of outer headers, with zero lengths, source port and checksum.
        pub bytes: [u8; ENCAP_OVERHEAD],
        /// One's-complement sum of the outer IPv4 header as in `bytes` (total
        /// length and checksum zero), unfolded: [`encap`] adds the total length
        /// and folds.
        ip_sum: u32,
    }

    impl EncapTemplate {
        /// The remote VTEP the template sends to (the outer IPv4 destination).
        #[inline]
        pub fn remote_vtep(&self) -> Ipv4Addr {
            ipv4::Packet::new_unchecked(&self.bytes[IP..UDP]).dst_addr()
        }

        /// Outer Ethernet src/dst, outer IPv4 src/dst (TTL 64, DF set, TOS 0,
        /// ID 0), UDP destination port, VXLAN I flag and VNI.
        ///
        /// The VNI is 24 bits: higher bits of `vni` are ignored.
        pub fn new(
            outer_src_mac: [u8; 6],
            outer_dst_mac: [u8; 6],
            src_ip: Ipv4Addr,
            dst_ip: Ipv4Addr,
            vni: u32,
            udp_dst_port: u16,
        ) -> Self {
            let mut bytes = [0u8; ENCAP_OVERHEAD];
            let mut eth = ethernet::Frame::new_unchecked(&mut bytes[..IP]);
            eth.set_dst_addr(outer_dst_mac);
            eth.set_src_addr(outer_src_mac);
            eth.set_ethertype(EtherType::IPV4);
            // Version 4, IHL 5, TOS 0, total length 0 (patched), ID 0, DF,
            // fragment offset 0, TTL 64, UDP, checksum 0 (patched).
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[IP..UDP]);
            ip.set_version_and_header_len(4, ipv4::HEADER_LEN);
            ip.set_fragmentation(true, false, 0);
            ip.set_ttl(64);
            ip.set_protocol(ip_protocol::UDP);
            ip.set_src_addr(src_ip);
            ip.set_dst_addr(dst_ip);
            // Source port (patched), destination port, length (patched), checksum 0.
            udp::Packet::new_unchecked(&mut bytes[UDP..VXLAN]).set_dst_port(udp_dst_port);
            // Flags (I), 24 reserved bits, VNI, 8 reserved bits.
            let mut vxlan = header::Packet::new_unchecked(&mut bytes[VXLAN..]);
            vxlan.set_flags(VXLAN_FLAG_VNI);
            vxlan.set_vni(vni);
            let ip_sum = checksum::sum(&bytes[IP..UDP], 0);
            EncapTemplate { bytes, ip_sum }
        }

        /// The VNI this template carries.
        pub fn vni(&self) -> u32 {
            header::Packet::new_unchecked(&self.bytes[VXLAN..]).vni()
        }
    }

    /// The UDP source port for a flow hash, in 49152..=65535 like the kernel's
    /// default range, so flows spread over ECMP and RSS.
    ///
    /// (Linux's vxlan device actually defaults to the local port range,
    /// 32768..=60999, unless given `srcport`; 49152..=65535 is RFC 7348 §5's
    /// recommendation, the IANA dynamic range.) Uses the hash's top 14 bits, as
    /// the kernel's `udp_flow_src_port` scales by multiplication.
    #[inline]
    pub fn source_port(flow_hash: u32) -> u16 {
        SOURCE_PORT_MIN + (flow_hash >> 18) as u16
    }

    /// Write the outer headers into the `ENCAP_OVERHEAD` bytes before `data_off`
    /// in `chunk`, for an inner frame of `inner_len` bytes at `data_off`. Returns
    /// the new data offset (`data_off - ENCAP_OVERHEAD`); the new length is
    /// `inner_len + ENCAP_OVERHEAD`. Outer IPv4 total length, UDP length, UDP
    /// source port and IPv4 header checksum are filled in; the UDP checksum is 0
    /// (allowed over IPv4, and what RFC 7348 §5 says to send; the kernel's vxlan
    /// device sends zero only when configured `noudpcsum`, and accepts it always).
    ///
    /// Panics only if the caller breaks the contract: `data_off >= ENCAP_OVERHEAD`
    /// and `data_off + inner_len <= chunk.len()` (the pipeline guarantees both).
    /// `inner_len` must also fit the outer total length field (at most 65499
    /// bytes); the pipeline's MTU check ensures it.
    #[inline]
    pub fn encap(
        chunk: &mut [u8],
        data_off: usize,
        inner_len: usize,
        template: &EncapTemplate,
        src_port: u16,
    ) -> usize {
        assert!(
            data_off + inner_len <= chunk.len(),
            "inner frame outside its chunk"
        );
        debug_assert!(inner_len + IP_OVERHEAD <= usize::from(u16::MAX));
        let start = data_off - ENCAP_OVERHEAD;
        let outer = &mut chunk[start..data_off];
        outer.copy_from_slice(&template.bytes);
        let total_len = (inner_len + IP_OVERHEAD) as u16;
        let udp_len = (inner_len + UDP_OVERHEAD) as u16;
        let ip_checksum = checksum::finish(template.ip_sum + u32::from(total_len));
        let (ip, rest) = outer[IP..].split_at_mut(ipv4::HEADER_LEN);
        let mut ip = ipv4::Packet::new_unchecked(ip);
        ip.set_total_len(total_len);
        ip.set_checksum(ip_checksum);
        let mut udp = udp::Packet::new_unchecked(rest);
        udp.set_src_port(src_port);
        udp.set_len(udp_len);
        start
    }

    /// A validated VXLAN frame.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Decap {
        /// The VNI.
        pub vni: u32,
        /// The outer IPv4 source: the sending VTEP.
        pub src: Ipv4Addr,
        /// Offset of the inner Ethernet frame from the start of the outer frame.
        pub inner_offset: usize,
        /// Length of the inner frame (outer UDP length - 16).
        pub inner_len: usize,
    }

    /// Validate an outer frame: Ethernet (no VLAN) / IPv4 (version, IHL, total
    /// length, checksum, not a fragment) / UDP to `udp_port` (length consistent)
    /// / VXLAN with the I flag; IPv4 destination must be `vtep`. Errors:
    /// [`DropReason::VxlanMalformed`], [`DropReason::VxlanNotForUs`],
    /// [`DropReason::VxlanBadFlags`], [`DropReason::UnderlayNotVxlan`] (not
    /// IPv4/UDP at all). The VNI is returned, not checked (the tables know it).
    ///
    /// In detail, in the order checked:
    /// - under 14 bytes: [`DropReason::Runt`];
    /// - not IPv4 (ARP, IPv6, a VLAN tag…): [`DropReason::UnderlayNotVxlan`];
    /// - IPv4 header truncated, version ≠ 4, IHL < 5: `VxlanMalformed`;
    /// - not UDP, or a non-first fragment (whose port cannot be read; the kernel
    ///   may reassemble it): `UnderlayNotVxlan`;
    /// - total length past the frame or under the header, bad checksum, UDP
    ///   header truncated: `VxlanMalformed`;
    /// - UDP destination port ≠ `udp_port` or IPv4 destination ≠ `vtep`:
    ///   `VxlanNotForUs`;
    /// - a first fragment (kxdp does not reassemble): `VxlanFragmented`;
    /// - UDP length < 16 (UDP + VXLAN) or past the IPv4 payload:
    ///   `VxlanMalformed` (a UDP length shorter than the payload is accepted
    ///   and trims it, as Linux does);
    /// - I flag clear: `VxlanBadFlags` (reserved bits are ignored, RFC 7348 §5).
    ///
    /// A non-zero outer UDP checksum is not verified: RFC 7348 makes checking it
    /// optional for the decapsulating end, Ethernet's FCS covers the wire, and
    /// frames from a kernel peer over a veth with checksum offload carry only a
    /// partial sum there (the receiving kernel trusts the offload flag that an
    /// AF_XDP socket never sees).
    pub fn decap(frame: &[u8], vtep: Ipv4Addr, udp_port: u16) -> Result<Decap, DropReason> {
        let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::Runt)?;
        if eth.ethertype() != EtherType::IPV4 {
            return Err(DropReason::UnderlayNotVxlan);
        }
        let packet = eth.payload();
        let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::VxlanMalformed)?;
        if ip.version() != 4 {
            return Err(DropReason::VxlanMalformed);
        }
        if ip.protocol() != ip_protocol::UDP || ip.frag_offset() != 0 {
            return Err(DropReason::UnderlayNotVxlan);
        }
        let header_len = ip.header_len();
        let total_len = usize::from(ip.total_len());
        if total_len < header_len || total_len > packet.len() {
            return Err(DropReason::VxlanMalformed);
        }
        if checksum::finish(checksum::sum(ip.header(), 0)) != 0 {
            return Err(DropReason::VxlanMalformed);
        }
        let payload = ip.payload();
        let udp = udp::Packet::new_checked(payload).map_err(|_| DropReason::VxlanMalformed)?;
        // `|`, not `||`: both are read anyway, one branch instead of two.
        if (udp.dst_port() != udp_port) | (ip.dst_addr() != vtep) {
            return Err(DropReason::VxlanNotForUs);
        }
        let udp_len = usize::from(udp.len());
        if ip.more_frags() {
            return Err(DropReason::VxlanFragmented);
        }
        if udp_len < UDP_OVERHEAD || udp_len > payload.len() {
            return Err(DropReason::VxlanMalformed);
        }
        // udp_len >= 16 is within the payload, so the VXLAN header is too.
        let vxlan =
            header::Packet::new_checked(udp.payload()).map_err(|_| DropReason::VxlanMalformed)?;
        if vxlan.flags() & VXLAN_FLAG_VNI == 0 {
            return Err(DropReason::VxlanBadFlags);
        }
        Ok(Decap {
            vni: vxlan.vni(),
            src: ip.src_addr(),
            inner_offset: ethernet::HEADER_LEN + header_len + UDP_OVERHEAD,
            inner_len: udp_len - UDP_OVERHEAD,
        })
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::*;
        use crate::packet::{parse, testframes};
        use hex_literal::hex;
        use proptest::prelude::*;

        const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
        const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
        const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
        const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
        const HEADROOM: usize = 256;

        fn template(vni: u32) -> EncapTemplate {
            EncapTemplate::new(SRC_MAC, DST_MAC, LOCAL, REMOTE, vni, VXLAN_PORT)
        }

        /// Put `inner` in a chunk after the headroom, encapsulate, return the
        /// outer frame.
        fn encapsulate(inner: &[u8], template: &EncapTemplate, src_port: u16) -> Vec<u8> {
            let mut chunk = vec![0xcc; HEADROOM + inner.len() + 64];
            chunk[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
            let start = encap(&mut chunk, HEADROOM, inner.len(), template, src_port);
            assert_eq!(start, HEADROOM - ENCAP_OVERHEAD);
            chunk[start..HEADROOM + inner.len()].to_vec()
        }

        #[test]
        fn template_bytes() {
            let t = template(0x12_3456);
            assert_eq!(
                t.bytes,
                hex!(
                    "020000000b01 020000000a01 0800"
                    "4500 0000 0000 4000 40 11 0000 c0000201 c0000202"
                    "0000 12b5 0000 0000"
                    "08000000 12345600"
                )
            );
            assert_eq!(t.vni(), 0x12_3456);
            // Bits above 24 are dropped.
            assert_eq!(template(0xff12_3456).bytes, t.bytes);
        }

        #[test]
        fn encap_fixture() {
            let inner = testframes::ipv4_udp(1000, 2000, b"hello");
            let outer = encapsulate(&inner, &template(42), 0xc123);
            let total = (inner.len() + 36) as u16;
            let udp = (inner.len() + 16) as u16;
            let mut expected = template(42).bytes.to_vec();
            expected[16..18].copy_from_slice(&total.to_be_bytes());
            expected[34..36].copy_from_slice(&0xc123u16.to_be_bytes());
            expected[38..40].copy_from_slice(&udp.to_be_bytes());
            let sum = checksum::ipv4_header(&expected[14..34]);
            expected[24..26].copy_from_slice(&sum.to_be_bytes());
            expected.extend_from_slice(&inner);
            assert_eq!(outer, expected);
            // etherparse reads it back as Ethernet/IPv4/UDP with the inner frame as payload.
            let sliced = etherparse::SlicedPacket::from_ethernet(&outer).unwrap();
            match sliced.net {
                Some(etherparse::NetSlice::Ipv4(ipv4)) => {
                    assert!(ipv4.header().dont_fragment());
                    assert_eq!(ipv4.header().ttl(), 64);
                    assert_eq!(ipv4.header().identification(), 0);
                    assert_eq!(
                        ipv4.header().to_header().calc_header_checksum(),
                        ipv4.header().header_checksum()
                    );
                }
                other => panic!("not IPv4: {other:?}"),
            }
            match sliced.transport {
                Some(etherparse::TransportSlice::Udp(udp)) => {
                    assert_eq!(udp.destination_port(), VXLAN_PORT);
                    assert_eq!(udp.checksum(), 0);
                    assert_eq!(&udp.payload()[8..], &inner[..]);
                }
                other => panic!("not UDP: {other:?}"),
            }
        }

        #[test]
        fn source_port_range() {
            assert_eq!(source_port(0), 49152);
            assert_eq!(source_port(u32::MAX), 65535);
            for hash in [1u32, 0x3ffff, 0x40000, 0x8000_0000, 0xdead_beef] {
                assert!((49152..=65535).contains(&source_port(hash)));
            }
            // Spread: 4096 flows land on many distinct ports.
            let mut ports = std::collections::HashSet::new();
            for sport in 0..4096u16 {
                let meta = parse(&testframes::ipv4_udp(sport, 53, b"q")).unwrap();
                ports.insert(source_port(meta.flow_hash()));
            }
            assert!(ports.len() > 3000, "only {} distinct ports", ports.len());
        }

        #[test]
        fn decap_fixture() {
            let inner = testframes::ipv6_udp(1, 2, b"payload");
            let outer = encapsulate(&inner, &template(0xabcdef), 50000);
            let d = decap(&outer, REMOTE, VXLAN_PORT).unwrap();
            assert_eq!(
                d,
                Decap {
                    vni: 0xabcdef,
                    src: LOCAL,
                    inner_offset: 50,
                    inner_len: inner.len()
                }
            );
        }

        #[test]
        fn decap_accepts_options_padding_and_reserved_bits() {
            let inner = testframes::ipv4_icmp_echo(7, 1, b"ping");
            let mut outer = encapsulate(&inner, &template(5), 50000);
            // Reserved VXLAN bits set: ignored on receipt.
            outer[42] = 0xff;
            outer[43..46].copy_from_slice(&[1, 2, 3]);
            outer[49] = 9;
            // Ethernet padding after the IP packet.
            outer.extend_from_slice(&[0; 20]);
            let d = decap(&outer, REMOTE, VXLAN_PORT).unwrap();
            assert_eq!((d.vni, d.inner_offset, d.inner_len), (5, 50, inner.len()));

            // Outer IPv4 options (IHL 6): the inner frame moves by 4.
            let mut with_options = outer[..14].to_vec();
            with_options.extend_from_slice(&outer[14..34]);
            with_options.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
            with_options.extend_from_slice(&outer[34..50 + inner.len()]);
            with_options[14] = 0x46;
            let total = u16::from_be_bytes([with_options[16], with_options[17]]) + 4;
            with_options[16..18].copy_from_slice(&total.to_be_bytes());
            let sum = checksum::ipv4_header(&with_options[14..38]);
            with_options[24..26].copy_from_slice(&sum.to_be_bytes());
            let d = decap(&with_options, REMOTE, VXLAN_PORT).unwrap();
            assert_eq!((d.inner_offset, d.inner_len), (54, inner.len()));
            assert_eq!(&with_options[54..54 + d.inner_len], &inner[..]);
        }

        /// Rewrite the outer IPv4 checksum after a test corrupted a field.
        fn fix_ip_checksum(outer: &mut [u8]) {
            let ihl = usize::from(outer[14] & 0xf) * 4;
            let end = (14 + ihl).min(outer.len());
            let sum = checksum::ipv4_header(&outer[14..end]);
            outer[24..26].copy_from_slice(&sum.to_be_bytes());
        }

        #[test]
        fn decap_malformed_corpus() {
            let inner = testframes::ipv4_tcp_syn(40000, 80);
            let good = encapsulate(&inner, &template(42), 50000);
            let case = |f: &dyn Fn(&mut Vec<u8>), fix: bool| {
                let mut outer = good.clone();
                f(&mut outer);
                if fix {
                    fix_ip_checksum(&mut outer);
                }
                decap(&outer, REMOTE, VXLAN_PORT)
            };
            use DropReason::*;
            // Wrong VXLAN flags.
            assert_eq!(case(&|o| o[42] = 0x00, false), Err(VxlanBadFlags));
            assert_eq!(case(&|o| o[42] = 0xf7, false), Err(VxlanBadFlags));
            // Wrong destination port, wrong destination IP (checksum fixed, so
            // the address is what fails).
            assert_eq!(
                case(
                    &|o| o[36..38].copy_from_slice(&4790u16.to_be_bytes()),
                    false
                ),
                Err(VxlanNotForUs)
            );
            assert_eq!(case(&|o| o[33] = 3, true), Err(VxlanNotForUs));
            assert_eq!(decap(&good, LOCAL, VXLAN_PORT), Err(VxlanNotForUs));
            assert_eq!(decap(&good, REMOTE, 8472), Err(VxlanNotForUs));
            // Not VXLAN at all.
            assert_eq!(case(&|o| o[23] = 6, true), Err(UnderlayNotVxlan));
            assert_eq!(
                case(&|o| o[12..14].copy_from_slice(&[0x86, 0xdd]), false),
                Err(UnderlayNotVxlan)
            );
            assert_eq!(
                case(&|o| o[12..14].copy_from_slice(&[0x08, 0x06]), false),
                Err(UnderlayNotVxlan)
            );
            assert_eq!(
                case(&|o| o[12..14].copy_from_slice(&[0x81, 0x00]), false),
                Err(UnderlayNotVxlan)
            );
            // Fragments: first → counted as such, later ones → not readable
            // as VXLAN.
            assert_eq!(case(&|o| o[20] = 0x20, true), Err(VxlanFragmented));
            assert_eq!(case(&|o| o[21] = 0x10, true), Err(UnderlayNotVxlan));
            // IPv4 header: checksum, version, IHL, total length.
            assert_eq!(case(&|o| o[25] ^= 0x01, false), Err(VxlanMalformed));
            assert_eq!(case(&|o| o[14] = 0x65, true), Err(VxlanMalformed));
            assert_eq!(case(&|o| o[14] = 0x44, false), Err(VxlanMalformed));
            assert_eq!(case(&|o| o[14] = 0x4f, false), Err(VxlanMalformed));
            assert_eq!(
                case(&|o| o[16..18].copy_from_slice(&19u16.to_be_bytes()), true),
                Err(VxlanMalformed)
            );
            assert_eq!(
                case(
                    &|o| o[16..18].copy_from_slice(&0xffffu16.to_be_bytes()),
                    true
                ),
                Err(VxlanMalformed)
            );
            // UDP length too small, past the payload; IP length too short for the UDP header.
            assert_eq!(
                case(&|o| o[38..40].copy_from_slice(&15u16.to_be_bytes()), false),
                Err(VxlanMalformed)
            );
            assert_eq!(
                case(&|o| o[38..40].copy_from_slice(&7u16.to_be_bytes()), false),
                Err(VxlanMalformed)
            );
            assert_eq!(
                case(
                    &|o| {
                        let len = u16::from_be_bytes([o[38], o[39]]) + 1;
                        o[38..40].copy_from_slice(&len.to_be_bytes());
                    },
                    false
                ),
                Err(VxlanMalformed)
            );
            assert_eq!(
                case(&|o| o[16..18].copy_from_slice(&27u16.to_be_bytes()), true),
                Err(VxlanMalformed)
            );
            // A shorter UDP length trims the inner frame.
            let trimmed = case(
                &|o| {
                    let len = u16::from_be_bytes([o[38], o[39]]) - 4;
                    o[38..40].copy_from_slice(&len.to_be_bytes());
                },
                false,
            )
            .unwrap();
            assert_eq!(trimmed.inner_len, inner.len() - 4);
            // Runts.
            for len in 0..14 {
                assert_eq!(decap(&good[..len], REMOTE, VXLAN_PORT), Err(Runt));
            }
        }

        #[test]
        fn decap_truncated_at_every_offset() {
            let inner = testframes::ipv6_tcp_syn(1, 2);
            let good = encapsulate(&inner, &template(42), 50000);
            for cut in 0..good.len() {
                let expected = match cut {
                    0..=13 => DropReason::Runt,
                    // IPv4 header cut, or total length past the frame.
                    _ => DropReason::VxlanMalformed,
                };
                assert_eq!(
                    decap(&good[..cut], REMOTE, VXLAN_PORT),
                    Err(expected),
                    "cut at {cut}"
                );
            }
            assert!(decap(&good, REMOTE, VXLAN_PORT).is_ok());
        }

        /// Rough cost of encapsulating a 64-byte frame (the real benchmark is
        /// bench/). `cargo test --release -p kxdp-dataplane --lib -- --ignored
        /// --nocapture timing`.
        #[test]
        #[ignore = "timing, run in release"]
        fn timing_encap() {
            let inner = testframes::ipv4_udp(1000, 2000, &[0u8; 64 - 42]);
            assert_eq!(inner.len(), 64);
            let t = template(42);
            let mut chunk = vec![0u8; 2048];
            chunk[HEADROOM..HEADROOM + 64].copy_from_slice(&inner);
            let rounds = 20_000_000u32;
            let start = std::time::Instant::now();
            for i in 0..rounds {
                let off = encap(
                    std::hint::black_box(&mut chunk),
                    HEADROOM,
                    64,
                    &t,
                    source_port(i),
                );
                std::hint::black_box(off);
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
            println!("encap (64-byte inner frame): {ns:.2} ns/packet");
            let meta = parse(&inner).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let frame = &chunk[HEADROOM..HEADROOM + 64];
                let meta = parse(std::hint::black_box(frame)).unwrap_or(meta);
                let off = encap(
                    std::hint::black_box(&mut chunk),
                    HEADROOM,
                    64,
                    &t,
                    source_port(meta.flow_hash()),
                );
                std::hint::black_box(off);
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
            println!("parse + flow_hash + encap (64-byte inner frame): {ns:.2} ns/packet");
            let outer = encapsulate(&inner, &t, 50000);
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(decap(std::hint::black_box(&outer), REMOTE, VXLAN_PORT)).ok();
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
            println!("decap (114-byte outer frame): {ns:.2} ns/packet");
        }

        proptest! {
            /// encap then decap is the identity on the inner frame, for any
            /// valid IPv4 or IPv6 inner frame, and the outer checksum validates.
            #[test]
            fn encap_decap_identity(
                inner in testframes::arb_ip_frame(),
                vni in 0u32..(1 << 24),
                hash in any::<u32>(),
            ) {
                let t = template(vni);
                let outer = encapsulate(&inner, &t, source_port(hash));
                prop_assert_eq!(outer.len(), inner.len() + ENCAP_OVERHEAD);
                prop_assert_eq!(checksum::finish(checksum::sum(&outer[14..34], 0)), 0);
                let ip = etherparse::Ipv4HeaderSlice::from_slice(&outer[14..]).unwrap();
                prop_assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
                let d = decap(&outer, REMOTE, VXLAN_PORT).unwrap();
                prop_assert_eq!(d.vni, vni);
                prop_assert_eq!(&outer[d.inner_offset..d.inner_offset + d.inner_len], &inner[..]);
                // And the inner frame parses exactly as before.
                prop_assert_eq!(parse(&outer[d.inner_offset..d.inner_offset + d.inner_len]), parse(&inner));
            }

            /// decap never panics, whatever the bytes.
            #[test]
            fn decap_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = decap(&bytes, REMOTE, VXLAN_PORT);
            }

            /// Nor on a valid frame with one byte changed.
            #[test]
            fn decap_never_panics_on_corrupted_frames(
                inner in testframes::arb_ip_frame(),
                index in any::<prop::sample::Index>(),
                value in any::<u8>(),
            ) {
                let mut outer = encapsulate(&inner, &template(1), 50000);
                let i = index.index(outer.len());
                outer[i] = value;
                if let Ok(d) = decap(&outer, REMOTE, VXLAN_PORT) {
                    prop_assert!(d.inner_offset + d.inner_len <= outer.len());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::packet::{parse, testframes};
    use crate::wire::checksum;
    use hex_literal::hex;
    use proptest::prelude::*;

    #[test]
    fn set_macs_writes_both_addresses() {
        let mut frame = testframes::ipv4_udp(1, 2, b"x");
        let rest = frame[12..].to_vec();
        set_macs(&mut frame, [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        assert_eq!(frame[..12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(frame[12..], rest[..]);
        let mut short = [0u8; 11];
        set_macs(&mut short, [1; 6], [2; 6]);
        assert_eq!(short, [0; 11]);
    }

    #[test]
    fn ipv4_ttl_fixture() {
        // The RFC 1071-style example header from the checksum tests, TTL 64.
        let mut frame = hex!(
            "020000000001 0200000000fe 0800"
            "4500 0073 0000 4000 4011 b861 c0a80001 c0a800c7"
        )
        .to_vec();
        frame.extend_from_slice(&[0u8; 0x73 - 20]);
        // The UDP header of the fixture is zeros: fill a valid one.
        frame[34..42].copy_from_slice(&hex!("1234 5678 005f 0000"));
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[22], 63);
        // 0xb861 + 0x0100 (one less in the TTL's high byte of the word).
        assert_eq!(frame[24..26], hex!("b961"));
        assert!(parse(&frame).is_ok(), "checksum still valid");
    }

    #[test]
    fn ttl_one_and_zero_expire_untouched() {
        for ttl in [0u8, 1] {
            let mut frame = testframes::ipv4_udp(1, 2, b"x");
            frame[22] = ttl;
            let sum = checksum::ipv4_header(&frame[14..34]);
            frame[24..26].copy_from_slice(&sum.to_be_bytes());
            let before = frame.clone();
            let meta = parse(&frame).unwrap();
            assert_eq!(
                decrement_ttl(&mut frame, &meta),
                Err(DropReason::TtlExpired)
            );
            assert_eq!(frame, before);
        }
        for hop in [0u8, 1] {
            let mut frame = testframes::ipv6_udp(1, 2, b"x");
            frame[21] = hop;
            let before = frame.clone();
            let meta = parse(&frame).unwrap();
            assert_eq!(
                decrement_ttl(&mut frame, &meta),
                Err(DropReason::TtlExpired)
            );
            assert_eq!(frame, before);
        }
    }

    #[test]
    fn ipv6_hop_limit_decrements() {
        let mut frame = testframes::ipv6_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[21], 63);
    }

    #[test]
    fn vlan_frame_uses_l3_offset() {
        let mut frame = testframes::vlan_ipv4_udp(7, b"abc");
        let meta = parse(&frame).unwrap();
        decrement_ttl(&mut frame, &meta).unwrap();
        assert_eq!(frame[18 + 8], 63);
        assert!(parse(&frame).is_ok());
    }

    #[test]
    fn arp_is_left_alone() {
        let mut frame = testframes::arp(
            1,
            testframes::POD_MAC,
            testframes::POD_V4,
            testframes::PEER_V4,
        );
        let before = frame.clone();
        let meta = parse(&frame).unwrap();
        assert_eq!(decrement_ttl(&mut frame, &meta), Ok(()));
        assert_eq!(frame, before);
    }

    #[test]
    fn short_frame_is_an_error_not_a_panic() {
        let frame = testframes::ipv4_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        let mut short = frame[..30].to_vec();
        assert_eq!(
            decrement_ttl(&mut short, &meta),
            Err(DropReason::MalformedIpv4)
        );
        let frame = testframes::ipv6_udp(1, 2, b"x");
        let meta = parse(&frame).unwrap();
        let mut short = frame[..20].to_vec();
        assert_eq!(
            decrement_ttl(&mut short, &meta),
            Err(DropReason::MalformedIpv6)
        );
    }

    proptest! {
        /// RFC 1624 incremental update == full recomputation, for random
        /// IPv4 headers (random options too).
        #[test]
        fn incremental_ttl_checksum_equals_recomputation(
            mut header in proptest::collection::vec(any::<u8>(), 60),
            ihl in 5u8..=15,
            ttl in 2u8..=255,
        ) {
            let header_len = usize::from(ihl) * 4;
            header.truncate(header_len);
            header[0] = 0x40 | ihl;
            header[2..4].copy_from_slice(&(header_len as u16).to_be_bytes());
            header[6] &= 0x40; // DF or nothing; never a fragment
            header[7] = 0;
            header[8] = ttl;
            let sum = checksum::ipv4_header(&header);
            header[10..12].copy_from_slice(&sum.to_be_bytes());
            let mut frame = hex!("020000000001 0200000000fe 0800").to_vec();
            frame.extend_from_slice(&header);
            let meta = parse(&frame);
            // Random protocol bytes may name a transport whose header is
            // missing (IHL-only packets): only the IPv4 layer matters here.
            let meta = match meta {
                Ok(meta) => meta,
                Err(DropReason::MalformedL4) => {
                    frame[14 + 9] = 253; // experimental protocol: no header read
                    let sum = checksum::ipv4_header(&frame[14..14 + header_len]);
                    frame[24..26].copy_from_slice(&sum.to_be_bytes());
                    parse(&frame).unwrap()
                }
                Err(other) => panic!("unexpected {other:?}"),
            };
            decrement_ttl(&mut frame, &meta).unwrap();
            let written = u16::from_be_bytes([frame[24], frame[25]]);
            prop_assert_eq!(frame[22], ttl - 1);
            prop_assert_eq!(written, checksum::ipv4_header(&frame[14..14 + header_len]));
        }
    }
}
