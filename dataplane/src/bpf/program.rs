//! kxdp's XDP programs, written with the [`asm`](super::asm) builder.
//!
//! - [`XdpFilter::All`] (pod interfaces): every frame goes to the XSK of its
//!   rx queue: `bpf_redirect_map(xskmap, ctx->rx_queue_index, XDP_DROP)`.
//!   A queue without a socket drops: a pod's frame must never reach the
//!   host stack, where it would be routed (or answered) outside kxdp's
//!   policy and tenant isolation.
//! - [`XdpFilter::Vxlan`] (underlay): only Ethernet/IPv4/UDP to the VTEP
//!   address and the VXLAN port, not a non-first fragment (those carry no
//!   port; the first fragment of a fragmented VXLAN packet goes to kxdp,
//!   which counts it as `vxlan_fragmented`), any IHL, goes to the XSK;
//!   everything else is `XDP_PASS`, and so is a matching frame on a queue
//!   without a socket: the node's own traffic (SSH, kubelet, a kernel vxlan
//!   device) must keep working whatever kxdp's sockets do.
//!
//! The verifier needs every packet read preceded by a bounds check against
//! `data_end`; the comments show each one.

use super::asm::{Asm, AsmError, Cond, Insn, Reg, Size};
use super::types::XdpFilter;

/// `XDP_DROP`.
pub(crate) const XDP_DROP: i32 = 1;
/// `XDP_PASS`.
pub(crate) const XDP_PASS: i32 = 2;
/// `BPF_FUNC_redirect_map`.
pub(crate) const HELPER_REDIRECT_MAP: i32 = 51;

// struct xdp_md offsets.
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_END: i16 = 4;
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

// Frame layout.
const ETH_HLEN: i32 = 14;
const ETH_TYPE: i16 = 12;
const IPV4_MIN_HLEN: i32 = 20;
const IPV4_VER_IHL: i16 = 14;
const IPV4_FRAG: i16 = 14 + 6;
const IPV4_PROTO: i16 = 14 + 9;
const IPV4_DADDR: i16 = 14 + 16;
const UDP_HLEN: i32 = 8;
const UDP_DPORT: i16 = 14 + 2;
const IPPROTO_UDP: i32 = 17;

/// A 16-bit network-order constant as a little-endian load of its bytes
/// sees it (the programs compare raw loads, without byte swaps).
fn be16(v: u16) -> i32 {
    i32::from(u16::from_le_bytes(v.to_be_bytes()))
}

/// The instructions for `filter`, redirecting to the XSKMAP `xskmap_fd`.
pub(crate) fn xdp_program(filter: &XdpFilter, xskmap_fd: i32) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    match *filter {
        XdpFilter::All => redirect_to_queue_socket(&mut a, xskmap_fd, XDP_DROP),
        XdpFilter::Vxlan { vtep, udp_port } => {
            let pass = a.label();
            // r1 = ctx, kept for the redirect; r2 = data, r3 = data_end.
            a.load(Size::U32, Reg::R2, Reg::R1, XDP_MD_DATA)
                .load(Size::U32, Reg::R3, Reg::R1, XDP_MD_DATA_END)
                // Bounds: Ethernet + a minimal IPv4 header.
                .mov_reg(Reg::R4, Reg::R2)
                .add_imm(Reg::R4, ETH_HLEN + IPV4_MIN_HLEN)
                .jump_reg(Cond::Gt, Reg::R4, Reg::R3, pass)
                // EtherType IPv4 (no VLAN tag on the underlay).
                .load(Size::U16, Reg::R5, Reg::R2, ETH_TYPE)
                .jump_imm(Cond::Ne, Reg::R5, be16(0x0800), pass)
                // Version 4, IHL ≥ 5 (kept in r5).
                .load(Size::U8, Reg::R5, Reg::R2, IPV4_VER_IHL)
                .mov_reg(Reg::R6, Reg::R5)
                .and_imm(Reg::R6, 0xf0)
                .jump_imm(Cond::Ne, Reg::R6, 0x40, pass)
                .and_imm(Reg::R5, 0x0f)
                .jump_imm(Cond::Lt, Reg::R5, 5, pass)
                // UDP.
                .load(Size::U8, Reg::R6, Reg::R2, IPV4_PROTO)
                .jump_imm(Cond::Ne, Reg::R6, IPPROTO_UDP, pass)
                // Offset 0 (a whole packet, or a first fragment, which
                // kxdp counts; later fragments carry no port).
                .load(Size::U16, Reg::R6, Reg::R2, IPV4_FRAG)
                .and_imm(Reg::R6, be16(0x1fff))
                .jump_imm(Cond::Ne, Reg::R6, 0, pass)
                // To our VTEP (32-bit compare of the raw address bytes).
                .load(Size::U32, Reg::R6, Reg::R2, IPV4_DADDR)
                .jump32_imm(Cond::Ne, Reg::R6, i32::from_le_bytes(vtep.octets()), pass)
                // r2 = data + IHL·4: the UDP header is at r2 + 14.
                .lsh_imm(Reg::R5, 2)
                .add_reg(Reg::R2, Reg::R5)
                // Bounds: the UDP header.
                .mov_reg(Reg::R4, Reg::R2)
                .add_imm(Reg::R4, ETH_HLEN + UDP_HLEN)
                .jump_reg(Cond::Gt, Reg::R4, Reg::R3, pass)
                .load(Size::U16, Reg::R6, Reg::R2, UDP_DPORT)
                .jump_imm(Cond::Ne, Reg::R6, be16(udp_port), pass);
            redirect_to_queue_socket(&mut a, xskmap_fd, XDP_PASS);
            a.bind(pass);
            a.mov_imm(Reg::R0, XDP_PASS).exit();
        }
    }
    a.finish()
}

/// `return bpf_redirect_map(xskmap, ctx->rx_queue_index, fallback)`, with
/// `r1` still holding ctx.
fn redirect_to_queue_socket(a: &mut Asm, xskmap_fd: i32, fallback: i32) {
    a.load(Size::U32, Reg::R2, Reg::R1, XDP_MD_RX_QUEUE_INDEX)
        .load_map_fd(Reg::R1, xskmap_fd)
        .mov_imm(Reg::R3, fallback)
        .call(HELPER_REDIRECT_MAP)
        .exit();
}

#[cfg(test)]
mod tests {
    //! The programs run here on a small interpreter of exactly the
    //! instructions the assembler emits, so the filter logic is tested
    //! without privileges. It bounds-checks every packet load (a missing
    //! check in the program fails the test, as it would fail the
    //! verifier). The privileged tests in `tests/afxdp.rs` run the same
    //! frames through the kernel with BPF_PROG_TEST_RUN.

    use std::net::Ipv4Addr;

    use super::super::asm::*;
    use super::*;

    const DATA: u64 = 0x1000;
    const CTX: u64 = 0x10;
    const MAP: u64 = 0x20;
    const XDP_REDIRECT: u64 = 4;

    /// Run `prog` on `frame` received on `queue`; `sockets` says which
    /// queues have an XSK in the map. Returns the action, or an error if
    /// the program read outside the frame.
    fn run(prog: &[Insn], frame: &[u8], queue: u32, sockets: &[u32]) -> Result<u64, String> {
        let end = DATA + frame.len() as u64;
        let mut r = [0u64; 11];
        r[1] = CTX;
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = *prog.get(pc).ok_or(format!("pc {pc} out of program"))?;
            let (dst, src) = (usize::from(i.dst()), usize::from(i.src()));
            let imm = i64::from(i.imm) as u64;
            let class = i.code & 0x07;
            pc += 1;
            match class {
                CLASS_ALU64 => {
                    let operand = if i.code & SRC_X != 0 { r[src] } else { imm };
                    r[dst] = match i.code & 0xf0 {
                        ALU_MOV => operand,
                        ALU_ADD => r[dst].wrapping_add(operand),
                        ALU_AND => r[dst] & operand,
                        ALU_LSH => r[dst] << operand,
                        op => return Err(format!("alu op {op:#x}")),
                    };
                }
                CLASS_LDX => {
                    let size = match i.code & 0x18 {
                        SIZE_B => 1,
                        SIZE_H => 2,
                        SIZE_W => 4,
                        s => return Err(format!("load size {s:#x}")),
                    };
                    let addr = r[src].wrapping_add(i64::from(i.off) as u64);
                    r[dst] = if r[src] == CTX {
                        match i.off {
                            XDP_MD_DATA => DATA,
                            XDP_MD_DATA_END => end,
                            XDP_MD_RX_QUEUE_INDEX => u64::from(queue),
                            o => return Err(format!("ctx offset {o}")),
                        }
                    } else if addr >= DATA && addr + size <= end {
                        let at = (addr - DATA) as usize;
                        let mut v = [0u8; 8];
                        v[..size as usize].copy_from_slice(&frame[at..at + size as usize]);
                        u64::from_le_bytes(v)
                    } else {
                        return Err(format!("load of {size} at {addr:#x} outside the frame"));
                    };
                }
                CLASS_LD => {
                    assert_eq!(i.src(), PSEUDO_MAP_FD);
                    r[dst] = MAP;
                    pc += 1;
                }
                CLASS_JMP | CLASS_JMP32 => match i.code & 0xf0 {
                    JMP_EXIT => return Ok(r[0]),
                    JMP_CALL => {
                        assert_eq!(i.imm, HELPER_REDIRECT_MAP);
                        assert_eq!(r[1], MAP);
                        let present = sockets.iter().any(|&q| u64::from(q) == r[2]);
                        r[0] = if present { XDP_REDIRECT } else { r[3] & 3 };
                    }
                    op => {
                        let mut a = r[dst];
                        let mut b = if i.code & SRC_X != 0 { r[src] } else { imm };
                        if class == CLASS_JMP32 {
                            a &= 0xffff_ffff;
                            b &= 0xffff_ffff;
                        }
                        let taken = match op {
                            JMP_JNE => a != b,
                            JMP_JGT => a > b,
                            JMP_JLT => a < b,
                            _ => return Err(format!("jump op {op:#x}")),
                        };
                        if taken {
                            pc = (pc as i64 + i64::from(i.off)) as usize;
                        }
                    }
                },
                c => return Err(format!("class {c:#x}")),
            }
        }
        Err("no exit".into())
    }

    const VTEP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn vxlan_prog() -> Vec<Insn> {
        xdp_program(
            &XdpFilter::Vxlan {
                vtep: VTEP,
                udp_port: 4789,
            },
            3,
        )
        .expect("assembles")
    }

    /// Ethernet/IPv4/UDP with `options` bytes of IPv4 options.
    fn udp_frame(dst: Ipv4Addr, dport: u16, options: usize, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ihl = 5 + options / 4;
        let mut ip = vec![0u8; ihl * 4];
        ip[0] = 0x40 | ihl as u8;
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&dst.octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 16, 0, 0]);
        f.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]);
        f
    }

    #[test]
    fn vxlan_filter_redirects_only_udp_to_the_vtep_that_carries_its_port() {
        let p = vxlan_prog();
        let to_xsk = |f: &[u8]| run(&p, f, 0, &[0]).expect("no out-of-bounds load");
        assert_eq!(to_xsk(&udp_frame(VTEP, 4789, 0, 0)), XDP_REDIRECT);
        // DF set is not a fragment; IPv4 options move the UDP header.
        assert_eq!(to_xsk(&udp_frame(VTEP, 4789, 0, 0x4000)), XDP_REDIRECT);
        assert_eq!(to_xsk(&udp_frame(VTEP, 4789, 4, 0)), XDP_REDIRECT);
        assert_eq!(to_xsk(&udp_frame(VTEP, 4789, 40, 0)), XDP_REDIRECT);
        let pass = XDP_PASS as u64;
        assert_eq!(to_xsk(&udp_frame(VTEP, 4790, 0, 0)), pass, "other port");
        assert_eq!(
            to_xsk(&udp_frame(Ipv4Addr::new(10, 0, 0, 3), 4789, 0, 0)),
            pass,
            "other address"
        );
        assert_eq!(
            to_xsk(&udp_frame(VTEP, 4789, 0, 0x2000)),
            XDP_REDIRECT,
            "a first fragment, counted by kxdp"
        );
        assert_eq!(to_xsk(&udp_frame(VTEP, 4789, 0, 0x0001)), pass, "offset");
        let mut tcp = udp_frame(VTEP, 4789, 0, 0);
        tcp[14 + 9] = 6;
        assert_eq!(to_xsk(&tcp), pass, "TCP");
        let mut arp = udp_frame(VTEP, 4789, 0, 0);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(to_xsk(&arp), pass, "ARP");
        let mut v6 = udp_frame(VTEP, 4789, 0, 0);
        v6[14] = 0x65;
        assert_eq!(to_xsk(&v6), pass, "version 6");
        let mut short_ihl = udp_frame(VTEP, 4789, 0, 0);
        short_ihl[14] = 0x44;
        assert_eq!(to_xsk(&short_ihl), pass, "IHL 4");
        // A matching frame on a queue without a socket goes to the kernel.
        assert_eq!(run(&p, &udp_frame(VTEP, 4789, 0, 0), 1, &[0]), Ok(pass));
    }

    #[test]
    fn vxlan_filter_never_reads_past_the_frame() {
        let p = vxlan_prog();
        for options in [0, 8, 40] {
            let full = udp_frame(VTEP, 4789, options, 0);
            for len in 0..full.len() {
                let action = run(&p, &full[..len], 0, &[0]);
                // Shorter than the whole UDP header: passed.
                let needed = 14 + 20 + options + 8;
                let expected = if len >= needed {
                    XDP_REDIRECT
                } else {
                    XDP_PASS as u64
                };
                assert_eq!(action, Ok(expected), "options {options}, length {len}");
            }
        }
    }

    #[test]
    fn all_filter_redirects_to_the_rx_queue_socket_or_drops() {
        let p = xdp_program(&XdpFilter::All, 3).expect("assembles");
        let frame = udp_frame(VTEP, 53, 0, 0);
        assert_eq!(run(&p, &frame, 2, &[0, 2]), Ok(XDP_REDIRECT));
        assert_eq!(run(&p, &frame, 1, &[0, 2]), Ok(XDP_DROP as u64));
        assert_eq!(run(&p, &[], 0, &[0]), Ok(XDP_REDIRECT), "no packet read");
    }

    #[test]
    fn programs_stay_small() {
        assert!(vxlan_prog().len() < 64);
        assert!(xdp_program(&XdpFilter::All, 3).expect("assembles").len() < 8);
    }
}
