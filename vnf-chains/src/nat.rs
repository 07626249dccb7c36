//! Address and port rewriting with incremental checksum updates (RFC 1624):
//! the load balancer's DNAT and its reverse, the only place kxdp rewrites
//! addresses.
//!
//! IPv4: the header checksum and the TCP/UDP checksum (its pseudo-header
//! covers the addresses) are updated incrementally; a UDP checksum of 0 (none)
//! stays 0, and an updated one that comes out 0 is written 0xffff. IPv6: the
//! TCP, UDP and ICMPv6 checksums are updated. SCTP's CRC32c does not cover
//! the addresses; it is recomputed when a port changes. A non-first
//! fragment has only its addresses rewritten (its checksum is in the first).

use kxdp_dataplane::packet::{ip_proto, FrameMeta, L3};
use kxdp_dataplane::wire::{self, checksum, icmpv6, ipv4, ipv6, sctp, tcp, udp};

use crate::conntrack::IPPROTO_SCTP;
use kxdp_dataplane::DropReason;

/// Which end of the packet to rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Source address and port.
    Source,
    /// Destination address and port.
    Destination,
}

/// Rewrite one end's address and port of an IP frame parsed into `meta`,
/// updating checksums and `meta`. `addr` is IPv4 in the low 32 bits for an
/// IPv4 frame. Ports are rewritten only for TCP, UDP and SCTP.
#[inline]
pub fn rewrite(
    frame: &mut [u8],
    meta: &mut FrameMeta,
    side: Side,
    addr: u128,
    port: u16,
) -> Result<(), DropReason> {
    match (meta.l3, meta.ip_proto) {
        (L3::Ipv4 { .. }, ip_proto::TCP | ip_proto::UDP) if meta.l4_offset != 0 => {
            rewrite_ipv4_ports(frame, meta, side, addr as u32, port)
        }
        _ => rewrite_any(frame, meta, side, addr, port),
    }
}

/// [`rewrite`] of an IPv4 TCP or UDP packet with its L4 header (every
/// packet of a balanced IPv4 connection but non-first fragments): the same
/// result as [`rewrite_any`], with the bounds checked once and the fields
/// at fixed offsets.
#[inline]
fn rewrite_ipv4_ports(
    frame: &mut [u8],
    meta: &mut FrameMeta,
    side: Side,
    addr: u32,
    port: u16,
) -> Result<(), DropReason> {
    let (l3, l4) = (meta.l3_offset, meta.l4_offset);
    let end = l3 + meta.l3_len;
    let tcp = meta.ip_proto == ip_proto::TCP;
    let l4_header = if tcp {
        tcp::HEADER_LEN
    } else {
        udp::HEADER_LEN
    };
    if frame.len() < end || l4 < l3 + ipv4::HEADER_LEN || l4 + l4_header > end {
        return Err(DropReason::ChainMalformedFrame);
    }
    let (front, back) = frame.split_at_mut(l4);
    let Some(ip) = front.get_mut(l3..l3 + ipv4::HEADER_LEN) else {
        return Err(DropReason::ChainMalformedFrame);
    };
    let mut ip = ipv4::Packet::new_unchecked(ip);
    let old = match side {
        Side::Source => ip.src_addr(),
        Side::Destination => ip.dst_addr(),
    };
    let mut delta = word_delta(old.to_bits(), addr);
    match side {
        Side::Source => ip.set_src_addr(addr.into()),
        Side::Destination => ip.set_dst_addr(addr.into()),
    }
    let header_sum = ip.checksum();
    ip.set_checksum(checksum::finish(u32::from(!header_sum) + delta));
    // TCP and UDP both start with the two ports.
    let mut ports = udp::Packet::new_unchecked(&mut back[..l4_header]);
    let old_port = match side {
        Side::Source => ports.src_port(),
        Side::Destination => ports.dst_port(),
    };
    delta += u32::from(!old_port) + u32::from(port);
    match side {
        Side::Source => ports.set_src_port(port),
        Side::Destination => ports.set_dst_port(port),
    }
    let sum = if tcp {
        tcp::Packet::new_unchecked(&back[..l4_header]).checksum()
    } else {
        ports.checksum()
    };
    // A UDP checksum of 0 means none, and stays so; an updated one that
    // comes out 0 is sent as 0xffff.
    if tcp || sum != 0 {
        let mut new_sum = checksum::finish(u32::from(!sum) + delta);
        if !tcp && new_sum == 0 {
            new_sum = 0xffff;
        }
        if tcp {
            tcp::Packet::new_unchecked(&mut back[..l4_header]).set_checksum(new_sum);
        } else {
            udp::Packet::new_unchecked(&mut back[..l4_header]).set_checksum(new_sum);
        }
    }
    match (&mut meta.l3, side) {
        (L3::Ipv4 { src, .. }, Side::Source) => *src = addr.into(),
        (L3::Ipv4 { dst, .. }, Side::Destination) => *dst = addr.into(),
        _ => {}
    }
    match side {
        Side::Source => meta.l4.set_src_port(port),
        Side::Destination => meta.l4.set_dst_port(port),
    }
    Ok(())
}

/// The checksum of a transport header that covers the addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TransportSum {
    Tcp,
    Udp,
    Icmpv6,
}

/// [`rewrite`] of any IP packet.
fn rewrite_any(
    frame: &mut [u8],
    meta: &mut FrameMeta,
    side: Side,
    addr: u128,
    port: u16,
) -> Result<(), DropReason> {
    let l3 = meta.l3_offset;
    let l4 = meta.l4_offset;
    let has_l4 = l4 != 0;
    let end = l3 + meta.l3_len;
    let header = match meta.l3 {
        L3::Ipv4 { .. } => ipv4::HEADER_LEN,
        _ => ipv6::HEADER_LEN,
    };
    // What `parse` guarantees, checked again: metadata from elsewhere must
    // not make the rewrite index out of the frame.
    if frame.len() < end
        || l3 + header > end
        || (has_l4 && (l4 < l3 + header || l4 + udp::HEADER_LEN > end))
    {
        return Err(DropReason::ChainMalformedFrame);
    }
    let proto = meta.ip_proto;
    let (has_ports, transport_sum) = match proto {
        ip_proto::TCP if l4 + tcp::HEADER_LEN <= end => (true, Some(TransportSum::Tcp)),
        ip_proto::UDP => (true, Some(TransportSum::Udp)),
        IPPROTO_SCTP if l4 + sctp::HEADER_LEN <= end => (true, None),
        ip_proto::ICMPV6 if matches!(meta.l3, L3::Ipv6 { .. }) => {
            (false, Some(TransportSum::Icmpv6))
        }
        ip_proto::TCP | IPPROTO_SCTP => return Err(DropReason::ChainMalformedFrame),
        _ => (false, None),
    };
    let has_ports = has_ports && has_l4;
    let transport_sum = transport_sum.filter(|_| has_l4);

    // Σ~old + Σnew over the address's 16-bit words: what RFC 1624's
    // equation 3 adds to every checksum covering the address.
    let mut delta = 0u32;
    let ip = &mut frame[l3..end];
    match meta.l3 {
        L3::Ipv4 { .. } => {
            let mut ip = ipv4::Packet::new_unchecked(ip);
            let new = addr as u32;
            let old = match side {
                Side::Source => ip.src_addr(),
                Side::Destination => ip.dst_addr(),
            };
            delta += word_delta(old.to_bits(), new);
            match side {
                Side::Source => ip.set_src_addr(new.into()),
                Side::Destination => ip.set_dst_addr(new.into()),
            }
            // The IPv4 header checksum.
            let sum = ip.checksum();
            ip.set_checksum(checksum::finish(u32::from(!sum) + delta));
        }
        L3::Ipv6 { .. } => {
            let mut ip = ipv6::Packet::new_unchecked(ip);
            let old = match side {
                Side::Source => ip.src_addr(),
                Side::Destination => ip.dst_addr(),
            }
            .to_bits();
            for w in 0..4 {
                let shift = 96 - 32 * w;
                delta += word_delta((old >> shift) as u32, (addr >> shift) as u32);
            }
            match side {
                Side::Source => ip.set_src_addr(addr.into()),
                Side::Destination => ip.set_dst_addr(addr.into()),
            }
        }
        L3::Arp => return Err(DropReason::ChainMalformedFrame),
    }
    let transport = &mut frame[l4..end];
    let old_port = has_ports.then(|| {
        let (src, dst) = wire::transport_ports(transport).unwrap_or_default();
        match side {
            Side::Source => src,
            Side::Destination => dst,
        }
    });
    if let Some(old) = old_port {
        delta += u32::from(!old) + u32::from(port);
    }
    if let Some(kind) = transport_sum {
        let sum = match kind {
            TransportSum::Tcp => tcp::Packet::new_unchecked(&*transport).checksum(),
            TransportSum::Udp => udp::Packet::new_unchecked(&*transport).checksum(),
            TransportSum::Icmpv6 => icmpv6::Packet::new_unchecked(&*transport).checksum(),
        };
        let udp = kind == TransportSum::Udp;
        // A UDP checksum of 0 means none, and stays so; an updated one
        // that comes out 0 is sent as 0xffff.
        if !(udp && sum == 0) {
            let mut new_sum = checksum::finish(u32::from(!sum) + delta);
            if udp && new_sum == 0 {
                new_sum = 0xffff;
            }
            match kind {
                TransportSum::Tcp => {
                    tcp::Packet::new_unchecked(&mut *transport).set_checksum(new_sum)
                }
                TransportSum::Udp => {
                    udp::Packet::new_unchecked(&mut *transport).set_checksum(new_sum)
                }
                TransportSum::Icmpv6 => {
                    icmpv6::Packet::new_unchecked(&mut *transport).set_checksum(new_sum)
                }
            }
        }
    }
    if has_ports {
        if proto == IPPROTO_SCTP {
            let mut sctp = sctp::Packet::new_unchecked(&mut *transport);
            match side {
                Side::Source => sctp.set_src_port(port),
                Side::Destination => sctp.set_dst_port(port),
            }
            if old_port != Some(port) {
                // CRC32c over the SCTP packet with the checksum field
                // zeroed, stored little-endian (RFC 9260 appendix A).
                sctp.set_checksum(0);
                let crc = crc32c(sctp.as_ref());
                sctp.set_checksum(crc);
            }
        } else {
            // TCP and UDP both start with the two ports.
            let mut ports = udp::Packet::new_unchecked(&mut *transport);
            match side {
                Side::Source => ports.set_src_port(port),
                Side::Destination => ports.set_dst_port(port),
            }
        }
    }

    // Keep the metadata in step.
    match (&mut meta.l3, side) {
        (L3::Ipv4 { src, .. }, Side::Source) => *src = (addr as u32).into(),
        (L3::Ipv4 { dst, .. }, Side::Destination) => *dst = (addr as u32).into(),
        (L3::Ipv6 { src, .. }, Side::Source) => *src = addr.into(),
        (L3::Ipv6 { dst, .. }, Side::Destination) => *dst = addr.into(),
        (L3::Arp, _) => {}
    }
    if has_ports && proto != IPPROTO_SCTP {
        match side {
            Side::Source => meta.l4.set_src_port(port),
            Side::Destination => meta.l4.set_dst_port(port),
        }
    }
    Ok(())
}

/// `~old_hi + ~old_lo + new_hi + new_lo`: the change of a 32-bit field, in
/// one's-complement words.
#[inline(always)]
fn word_delta(old: u32, new: u32) -> u32 {
    u32::from(!(old >> 16) as u16) + u32::from(!(old as u16)) + (new >> 16) + (new & 0xffff)
}

/// CRC32c (Castagnoli) lookup table, reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32c of `data` (as SCTP and iSCSI use it).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use kxdp_dataplane::packet::L4;

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 appendix B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn inconsistent_metadata_is_refused_not_a_panic() {
        use std::net::Ipv4Addr;
        let mut meta = FrameMeta {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            vlan: None,
            l3_offset: 14,
            l3: L3::Ipv4 {
                src: Ipv4Addr::LOCALHOST,
                dst: Ipv4Addr::LOCALHOST,
            },
            l3_len: 8,
            ip_proto: ip_proto::TCP,
            l4_offset: 0,
            l4: L4::Tcp {
                src_port: 0,
                dst_port: 0,
            },
            is_fragment: false,
        };
        let mut frame = [0u8; 30];
        for (l3_len, l4_offset) in [(8, 0), (16, 0), (40, 34), (200, 0), (16, 30)] {
            meta.l3_len = l3_len;
            meta.l4_offset = l4_offset;
            assert_eq!(
                rewrite(&mut frame, &mut meta, Side::Destination, 1, 2),
                Err(DropReason::ChainMalformedFrame)
            );
        }
    }

    /// The IPv4 TCP/UDP fast path writes exactly what the general path
    /// writes, bytes and metadata, for both sides, random addresses, ports
    /// and checksums (UDP's 0 included), and refuses what it refuses.
    #[test]
    fn the_ipv4_fast_path_agrees_with_the_general_one() {
        use std::net::Ipv4Addr;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..4000 {
            let tcp = round % 2 == 0;
            let l4_len = if tcp { 20 } else { 8 };
            let payload = (next() % 12) as usize;
            let mut frame: Vec<u8> = (0..14 + 20 + l4_len + payload)
                .map(|_| next() as u8)
                .collect();
            if !tcp && round % 6 == 1 {
                frame[14 + 20 + 6] = 0;
                frame[14 + 20 + 7] = 0;
            }
            // Sometimes metadata that does not fit the frame.
            let l3_len = match round % 50 {
                0 => 20 + l4_len - 1,
                1 => frame.len(),
                _ => 20 + l4_len + payload,
            };
            let l3 = L3::Ipv4 {
                src: Ipv4Addr::from_bits(next() as u32),
                dst: Ipv4Addr::from_bits(next() as u32),
            };
            let (src_port, dst_port) = (next() as u16, next() as u16);
            let meta = FrameMeta {
                dst_mac: [0; 6],
                src_mac: [0; 6],
                vlan: None,
                l3_offset: 14,
                l3,
                l3_len,
                ip_proto: if tcp { ip_proto::TCP } else { ip_proto::UDP },
                l4_offset: 34,
                l4: if tcp {
                    L4::Tcp { src_port, dst_port }
                } else {
                    L4::Udp { src_port, dst_port }
                },
                is_fragment: false,
            };
            let side = if next() % 2 == 0 {
                Side::Source
            } else {
                Side::Destination
            };
            let (addr, port) = (u128::from(next() as u32), next() as u16);
            let (mut fast, mut general) = (frame.clone(), frame);
            let (mut fast_meta, mut general_meta) = (meta, meta);
            let a = rewrite_ipv4_ports(&mut fast, &mut fast_meta, side, addr as u32, port);
            let b = rewrite_any(&mut general, &mut general_meta, side, addr, port);
            assert_eq!(a, b, "round {round}");
            if a.is_ok() {
                assert_eq!(fast, general, "round {round}");
                assert_eq!(
                    format!("{fast_meta:?}"),
                    format!("{general_meta:?}"),
                    "round {round}"
                );
            }
        }
    }

    fn read32(frame: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
    }

    fn write32(frame: &mut [u8], at: usize, value: u32) {
        frame[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    #[test]
    fn word_delta_matches_recomputation() {
        let mut data = [0x45u8, 0x00, 0x12, 0x34, 0x0a, 0x00, 0x00, 0x01, 0xab, 0xcd];
        let before = checksum::finish(checksum::sum(&data, 0));
        let old = read32(&data, 4);
        write32(&mut data, 4, 0xc0a8_0102);
        assert_eq!(
            checksum::finish(u32::from(!before) + word_delta(old, 0xc0a8_0102)),
            checksum::finish(checksum::sum(&data, 0))
        );
    }
}
