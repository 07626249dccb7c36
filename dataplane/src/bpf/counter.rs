//! A counting sink: an XDP program that counts every frame (packets and
//! bytes, into a one-slot array map) and drops it. Benchmarks attach it to
//! the receiving interface to count what arrives at the cost of a map
//! update per frame, without a socket or a core of their own.
//!
//! The program (14 instructions):
//!
//! ```text
//! r2 = ctx->data; r3 = ctx->data_end; r6 = r3 - r2   // frame length
//! *(u32 *)(r10 - 4) = 0                              // key
//! r0 = bpf_map_lookup_elem(counts, r10 - 4)
//! if r0 == NULL: return XDP_DROP
//! lock counts[0].packets += 1; lock counts[0].bytes += r6
//! return XDP_DROP
//! ```
//!
//! The value is `{ u64 packets; u64 bytes; }` in host byte order; the adds
//! are atomic, so the count is exact whichever CPUs run the program.

use std::os::fd::{AsRawFd, OwnedFd};

use super::asm::{Asm, AsmError, Cond, Insn, Reg, Size};
use super::program::XDP_DROP;
use super::types::{AttachedMode, BpfError, XdpAction, XdpAttachMode};
use kxdp_sys::bpf as sys;

/// `BPF_FUNC_map_lookup_elem`.
pub(crate) const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
/// Bytes of the map value: packets then bytes, two u64.
const VALUE_SIZE: u32 = 16;

// struct xdp_md offsets.
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_END: i16 = 4;

/// What an [`XdpCounter`] has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCount {
    /// Frames seen (and dropped).
    pub packets: u64,
    /// Their bytes (Ethernet header on, no FCS).
    pub bytes: u64,
}

/// The counting sink attached to one interface; see the module
/// documentation. Dropping it detaches the program (the link goes first),
/// then frees the program and the map.
#[derive(Debug)]
pub struct XdpCounter {
    // Field order is drop order; the link is never read: holding it keeps
    // the program attached.
    _link: OwnedFd,
    program: OwnedFd,
    counts: OwnedFd,
    ifname: String,
    mode: AttachedMode,
    program_id: u32,
}

impl XdpCounter {
    /// Load the counting program and attach it to `ifname` (looked up in
    /// the calling thread's network namespace) with a bpf_link, native mode
    /// first as in [`XdpAttachMode`]. Every frame the interface receives
    /// from then on is counted and dropped. Needs CAP_BPF and CAP_NET_ADMIN.
    pub fn attach(ifname: &str, mode: XdpAttachMode) -> Result<Self, BpfError> {
        let ifindex = crate::xsk::if_index(ifname).map_err(|source| BpfError::NoSuchInterface {
            ifname: ifname.to_owned(),
            source,
        })?;
        let counts = sys::create_array_map("kxdp_counts", VALUE_SIZE, 1).map_err(|source| {
            BpfError::Syscall {
                op: "BPF_MAP_CREATE",
                source,
            }
        })?;
        let insns = counter_program(counts.as_raw_fd())
            .map_err(|e| BpfError::Invalid(format!("assembling kxdp_count: {e}")))?;
        let program = super::attach::load_insns("kxdp_count", &insns)?;
        let program_id = sys::program_id(&program).map_err(|source| BpfError::Syscall {
            op: "BPF_OBJ_GET_INFO_BY_FD",
            source,
        })?;
        let (link, mode) = super::attach::attach_in_mode(ifname, "the counter", mode, |m| {
            sys::create_xdp_link(&program, ifindex, m.flags())
        })?;
        tracing::info!(ifname, %mode, program_id, "XDP counting sink attached");
        Ok(XdpCounter {
            _link: link,
            program,
            counts,
            ifname: ifname.to_owned(),
            mode,
            program_id,
        })
    }

    /// The counts so far (one BPF_MAP_LOOKUP_ELEM; callable from any thread
    /// and network namespace).
    pub fn read(&self) -> Result<XdpCount, BpfError> {
        let mut value = [0u8; VALUE_SIZE as usize];
        sys::map_lookup_u32(&self.counts, 0, &mut value).map_err(|source| BpfError::Syscall {
            op: "BPF_MAP_LOOKUP_ELEM",
            source,
        })?;
        let (packets, bytes) = value.split_at(8);
        let u64_of = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_ne_bytes(a)
        };
        Ok(XdpCount {
            packets: u64_of(packets),
            bytes: u64_of(bytes),
        })
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The kernel's id of the loaded program.
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Run the program once on `frame` with BPF_PROG_TEST_RUN (it counts
    /// the frame like a received one). For tests and diagnostics.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, BpfError> {
        sys::test_run(&self.program, frame)
            .map(XdpAction::from)
            .map_err(|source| BpfError::Syscall {
                op: "BPF_PROG_TEST_RUN",
                source,
            })
    }
}

/// The counting program over the array map `counts_fd`.
pub(crate) fn counter_program(counts_fd: i32) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let found = a.label();
    a.load(Size::U32, Reg::R2, Reg::R1, XDP_MD_DATA)
        .load(Size::U32, Reg::R6, Reg::R1, XDP_MD_DATA_END)
        .sub_reg(Reg::R6, Reg::R2)
        .store_imm(Size::U32, Reg::R10, -4, 0)
        .mov_reg(Reg::R2, Reg::R10)
        .add_imm(Reg::R2, -4)
        .load_map_fd(Reg::R1, counts_fd)
        .call(HELPER_MAP_LOOKUP_ELEM)
        .jump_imm(Cond::Ne, Reg::R0, 0, found)
        .mov_imm(Reg::R0, XDP_DROP)
        .exit();
    a.bind(found);
    a.mov_imm(Reg::R1, 1)
        .atomic_add(Size::U64, Reg::R0, Reg::R1, 0)
        .atomic_add(Size::U64, Reg::R0, Reg::R6, 8)
        .mov_imm(Reg::R0, XDP_DROP)
        .exit();
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_shape() {
        let p = counter_program(3).expect("assembles");
        assert!(p.len() < 24, "{} instructions", p.len());
        // Every exit returns XDP_DROP: the instruction before each exit
        // sets r0 to 1.
        for (i, insn) in p.iter().enumerate() {
            if insn.code == 0x95 {
                assert_eq!(p[i - 1].code, 0xb7, "mov64 r0, imm before exit {i}");
                assert_eq!(p[i - 1].imm, XDP_DROP);
            }
        }
        // One map lookup, two atomic adds.
        assert_eq!(p.iter().filter(|i| i.code == 0x85).count(), 1);
        assert_eq!(p.iter().filter(|i| i.code == 0xdb).count(), 2);
    }
}
