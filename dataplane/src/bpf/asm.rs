//! A tiny eBPF assembler: the handful of instructions kxdp's XDP programs
//! use, each a named method, plus forward labels for jumps.
//!
//! Hand-assembled rather than compiled from C with clang because the
//! programs are a few dozen instructions and kxdp must not need a BPF
//! toolchain, an ELF loader or BTF at build or run time (no libbpf, no
//! aya-obj). Encodings follow the kernel's `Documentation/bpf/standardization/
//! instruction-set.rst`.

pub(crate) use kxdp_sys::bpf::Insn;

// Instruction classes.
pub(crate) const CLASS_LD: u8 = 0x00;
pub(crate) const CLASS_LDX: u8 = 0x01;
pub(crate) const CLASS_ST: u8 = 0x02;
pub(crate) const CLASS_STX: u8 = 0x03;
pub(crate) const CLASS_JMP: u8 = 0x05;
pub(crate) const CLASS_JMP32: u8 = 0x06;
pub(crate) const CLASS_ALU64: u8 = 0x07;
// Sizes (load/store classes).
pub(crate) const SIZE_W: u8 = 0x00;
pub(crate) const SIZE_H: u8 = 0x08;
pub(crate) const SIZE_B: u8 = 0x10;
pub(crate) const SIZE_DW: u8 = 0x18;
// Modes.
pub(crate) const MODE_IMM: u8 = 0x00;
pub(crate) const MODE_MEM: u8 = 0x60;
pub(crate) const MODE_ATOMIC: u8 = 0xc0;
/// `imm` of an atomic instruction: add, without fetching the old value.
pub(crate) const ATOMIC_ADD: i32 = 0x00;
// Operand source.
pub(crate) const SRC_K: u8 = 0x00;
pub(crate) const SRC_X: u8 = 0x08;
// ALU operations.
pub(crate) const ALU_ADD: u8 = 0x00;
pub(crate) const ALU_SUB: u8 = 0x10;
pub(crate) const ALU_AND: u8 = 0x50;
pub(crate) const ALU_LSH: u8 = 0x60;
pub(crate) const ALU_MOV: u8 = 0xb0;
// Jump operations.
pub(crate) const JMP_JGT: u8 = 0x20;
pub(crate) const JMP_JNE: u8 = 0x50;
pub(crate) const JMP_CALL: u8 = 0x80;
pub(crate) const JMP_EXIT: u8 = 0x90;
pub(crate) const JMP_JLT: u8 = 0xa0;
/// `src_reg` of a 64-bit immediate load whose `imm` is a map fd.
pub(crate) const PSEUDO_MAP_FD: u8 = 1;

/// A register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    /// The read-only frame pointer (top of the program's 512-byte stack).
    R10 = 10,
}

/// Size of a memory load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Size {
    U8,
    U16,
    U32,
    U64,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::U8 => SIZE_B,
            Size::U16 => SIZE_H,
            Size::U32 => SIZE_W,
            Size::U64 => SIZE_DW,
        }
    }
}

/// An unsigned jump condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cond {
    Ne,
    Gt,
    Lt,
}

impl Cond {
    fn op(self) -> u8 {
        match self {
            Cond::Ne => JMP_JNE,
            Cond::Gt => JMP_JGT,
            Cond::Lt => JMP_JLT,
        }
    }
}

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// A label was used but never bound, or a jump is out of range.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AsmError {
    #[error("label {0} used but never bound")]
    Unbound(usize),
    #[error("jump from instruction {0} out of range")]
    OutOfRange(usize),
}

/// The program being assembled.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    /// (jump instruction index, target label)
    fixups: Vec<(usize, Label)>,
}

fn insn(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst as u8,
        off,
        imm,
    }
}

impl Asm {
    pub(crate) fn new() -> Self {
        Asm::default()
    }

    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Make `label` point at the next instruction emitted.
    pub(crate) fn bind(&mut self, label: Label) {
        if let Some(slot) = self.labels.get_mut(label.0) {
            *slot = Some(self.insns.len());
        }
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub(crate) fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_MOV | SRC_K, dst, 0, 0, imm))
    }

    /// `dst = src`.
    pub(crate) fn mov_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src as u8, 0, 0))
    }

    /// `dst += imm`.
    pub(crate) fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_ADD | SRC_K, dst, 0, 0, imm))
    }

    /// `dst += src`.
    pub(crate) fn add_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_ADD | SRC_X, dst, src as u8, 0, 0))
    }

    /// `dst -= src`.
    pub(crate) fn sub_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_SUB | SRC_X, dst, src as u8, 0, 0))
    }

    /// `dst &= imm`.
    pub(crate) fn and_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_AND | SRC_K, dst, 0, 0, imm))
    }

    /// `dst <<= imm`.
    pub(crate) fn lsh_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(insn(CLASS_ALU64 | ALU_LSH | SRC_K, dst, 0, 0, imm))
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub(crate) fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(insn(
            CLASS_LDX | MODE_MEM | size.bits(),
            dst,
            src as u8,
            off,
            0,
        ))
    }

    /// `*(size *)(dst + off) = imm`.
    pub(crate) fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(insn(CLASS_ST | MODE_MEM | size.bits(), dst, 0, off, imm))
    }

    /// `lock *(size *)(dst + off) += src` (atomic; `size` U32 or U64).
    pub(crate) fn atomic_add(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(insn(
            CLASS_STX | MODE_ATOMIC | size.bits(),
            dst,
            src as u8,
            off,
            ATOMIC_ADD,
        ))
    }

    /// `dst = map` (the two-slot 64-bit immediate load the kernel rewrites
    /// into the map's address).
    pub(crate) fn load_map_fd(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        self.push(insn(
            CLASS_LD | MODE_IMM | SIZE_DW,
            dst,
            PSEUDO_MAP_FD,
            0,
            map_fd,
        ));
        self.push(Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0,
        })
    }

    /// `if dst <cond> imm goto label`, 64-bit compare (imm sign-extended).
    pub(crate) fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.jump(CLASS_JMP | cond.op() | SRC_K, dst, 0, imm, label)
    }

    /// `if (u32)dst <cond> (u32)imm goto label`.
    pub(crate) fn jump32_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.jump(CLASS_JMP32 | cond.op() | SRC_K, dst, 0, imm, label)
    }

    /// `if dst <cond> src goto label`.
    pub(crate) fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, label: Label) -> &mut Self {
        self.jump(CLASS_JMP | cond.op() | SRC_X, dst, src as u8, 0, label)
    }

    /// `r0 = helper(r1, …, r5)`.
    pub(crate) fn call(&mut self, helper: i32) -> &mut Self {
        self.push(insn(CLASS_JMP | JMP_CALL, Reg::R0, 0, 0, helper))
    }

    /// `return r0`.
    pub(crate) fn exit(&mut self) -> &mut Self {
        self.push(insn(CLASS_JMP | JMP_EXIT, Reg::R0, 0, 0, 0))
    }

    fn jump(&mut self, code: u8, dst: Reg, src: u8, imm: i32, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(insn(code, dst, src, 0, imm))
    }

    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// Resolve the jumps and return the instructions.
    pub(crate) fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, label) in &self.fixups {
            let target = self
                .labels
                .get(label.0)
                .copied()
                .flatten()
                .ok_or(AsmError::Unbound(label.0))?;
            let off = target as i64 - (at as i64 + 1);
            let off = i16::try_from(off).map_err(|_| AsmError::OutOfRange(at))?;
            if let Some(i) = self.insns.get_mut(at) {
                i.off = off;
            }
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_instruction_set() {
        let mut a = Asm::new();
        a.load(Size::U32, Reg::R2, Reg::R1, 16)
            .mov_imm(Reg::R3, 1)
            .add_reg(Reg::R2, Reg::R5)
            .call(51)
            .exit();
        let insns = a.finish().expect("no labels");
        // ldxw r2, [r1+16] = 0x61, dst 2, src 1
        assert_eq!(
            insns[0],
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 16,
                imm: 0
            }
        );
        // mov64 r3, 1 = 0xb7
        assert_eq!(
            insns[1],
            Insn {
                code: 0xb7,
                regs: 0x03,
                off: 0,
                imm: 1
            }
        );
        // add64 r2, r5 = 0x0f
        assert_eq!(
            insns[2],
            Insn {
                code: 0x0f,
                regs: 0x52,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(insns[3].code, 0x85);
        assert_eq!(insns[3].imm, 51);
        assert_eq!(insns[4].code, 0x95);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn stores_and_atomic_add_encodings() {
        let mut a = Asm::new();
        a.store_imm(Size::U32, Reg::R10, -4, 0)
            .atomic_add(Size::U64, Reg::R0, Reg::R1, 8)
            .load(Size::U64, Reg::R2, Reg::R0, 0);
        let insns = a.finish().expect("no labels");
        // stw [r10-4], 0 = 0x62
        assert_eq!(
            insns[0],
            Insn {
                code: 0x62,
                regs: 0x0a,
                off: -4,
                imm: 0
            }
        );
        // lock xadd64 [r0+8], r1 = 0xdb, imm BPF_ADD
        assert_eq!(
            insns[1],
            Insn {
                code: 0xdb,
                regs: 0x10,
                off: 8,
                imm: 0
            }
        );
        // ldxdw r2, [r0+0] = 0x79
        assert_eq!(insns[2].code, 0x79);
        let mut a = Asm::new();
        a.sub_reg(Reg::R6, Reg::R2);
        // sub64 r6, r2 = 0x1f
        assert_eq!(a.finish().expect("no labels")[0].code, 0x1f);
    }

    #[test]
    fn map_fd_load_takes_two_slots() {
        let mut a = Asm::new();
        a.load_map_fd(Reg::R1, 7);
        let insns = a.finish().expect("no labels");
        assert_eq!(insns.len(), 2);
        assert_eq!(insns[0].code, 0x18);
        assert_eq!(insns[0].src(), PSEUDO_MAP_FD);
        assert_eq!(insns[0].dst(), 1);
        assert_eq!(insns[0].imm, 7);
        assert_eq!(insns[1].code, 0);
    }

    #[test]
    fn jumps_are_relative_to_the_next_instruction() {
        let mut a = Asm::new();
        let out = a.label();
        let back = a.label();
        a.bind(back);
        a.jump_imm(Cond::Ne, Reg::R5, 8, out) // 0 → 3: off 2
            .jump32_imm(Cond::Lt, Reg::R6, -1, back) // 1 → 0: off -2
            .mov_imm(Reg::R0, 2);
        a.bind(out);
        a.exit();
        let insns = a.finish().expect("bound");
        assert_eq!(insns[0].code, 0x55);
        assert_eq!(insns[0].off, 2);
        assert_eq!(insns[1].code, 0xa6);
        assert_eq!(insns[1].off, -2);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::new();
        let nowhere = a.label();
        a.jump_reg(Cond::Gt, Reg::R4, Reg::R3, nowhere).exit();
        assert_eq!(a.finish(), Err(AsmError::Unbound(0)));
    }
}
