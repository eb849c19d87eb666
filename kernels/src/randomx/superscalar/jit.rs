//! SuperscalarHash programs compiled to x86-64 machine code, five dataset items at a time:
//! four in AVX2 lanes and one in general-purpose registers.
//!
//! Each program becomes one function that runs it on a [`Group`] of five items: it loads the
//! registers of four items into `ymm0`-`ymm7` (one item per 64-bit lane) and those of the fifth
//! into `r8`-`r15`, executes the program with every RandomX instruction lowered twice (to a few
//! AVX2 instructions and to the one to three scalar instructions the library's JIT would use),
//! and stores them back. There is no dispatch and no load or store per instruction; the
//! registers stay in registers. The scalar copy costs little: it runs on the integer units,
//! which the vector code leaves idle, and its multiplications take one instruction where AVX2
//! needs several.
//!
//! ```text
//!   ymm0-7   r0-r7 of items 0-3 (lane = item)     r8-r15  r0-r7 of item 4
//!   ymm8-12  temporaries                          rax, rdx  high products of item 4
//!   ymm14    zero              ymm15  0x00000000ffffffff in every lane
//!   rdi      the group         rsi    the constant pool (32-byte entries, entry 0 = the mask)
//! ```
//!
//! AVX2 has no 64-bit multiply, so products are built from `vpmuludq` (32 x 32 -> 64):
//!
//! * low 64 bits: `lo(a)lo(b) + ((hi(a)lo(b) + lo(a)hi(b)) << 32)`; the two cross products
//!   only matter modulo 2^32, so one `vpmulld` of `a` by `b` with its halves swapped computes
//!   both (two multiplies in all, not three);
//! * high 64 bits, unsigned: with `t = hi(a)lo(b) + (lo(a)lo(b) >> 32)` and
//!   `u = lo(a)hi(b) + (t & mask)`, it is `hi(a)hi(b) + (t >> 32) + (u >> 32)`; neither sum can
//!   overflow because `(2^32 - 1)^2 + 2 (2^32 - 1) < 2^64`;
//! * high 64 bits, signed: the unsigned one minus `b` where `a < 0` and minus `a` where `b < 0`.
//!
//! Constants (`IADD_C`, `IXOR_C`, the `IMUL_RCP` reciprocal and its halves swapped) are memory
//! operands into the pool, each broadcast to four lanes; the scalar `IMUL_RCP` reads the
//! reciprocal's entry too. The code is written into an anonymous
//! mapping that is made executable only once it is complete (never writable and executable at
//! once), and unmapped when the [`Compiled`] programs are dropped.

use super::PROGRAMS;
use super::program::{Op, OpKind, Program};

/// One group's registers: four items in the vector lanes (`rows[q][lane]`) and a fifth in the
/// general-purpose registers (`scalar[q]`).
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Group {
    rows: [[u64; 4]; 8],
    scalar: [u64; 8],
}

impl Group {
    /// Items per group.
    pub(super) const ITEMS: usize = 5;

    /// Register `q` of the group's item `item` (0..5).
    #[inline(always)]
    pub(super) fn register(&mut self, q: usize, item: usize) -> &mut u64 {
        match item {
            0..4 => &mut self.rows[q][item],
            _ => &mut self.scalar[q],
        }
    }
}

/// Where `Group::scalar` starts.
const SCALAR_OFFSET: i32 = 256;

/// A constant broadcast to four lanes: one 32-byte pool entry.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy)]
struct Entry([u64; 4]);

/// The eight compiled programs of one key.
#[derive(Debug)]
pub(super) struct Compiled {
    code: Mapping,
    entries: [usize; PROGRAMS],
    pool: Vec<Entry>,
}

// SAFETY: the code is immutable once mapped executable and the pool is never written after
// compilation, so sharing or moving them between threads is sound.
unsafe impl Send for Compiled {}
unsafe impl Sync for Compiled {}

type ProgramFn = unsafe extern "sysv64" fn(*mut Group, *const Entry);

impl Compiled {
    /// Compiles `programs`; `None` if the system refuses executable memory.
    pub(super) fn new(programs: &[Program; PROGRAMS]) -> Option<Self> {
        let mut asm = Assembler::default();
        let mut pool = vec![Entry([0xffff_ffff; 4])];
        let mut entries = [0; PROGRAMS];
        for (entry, program) in entries.iter_mut().zip(programs) {
            *entry = asm.code.len();
            asm.program(&program.ops, &mut pool);
        }
        let code = Mapping::executable(&asm.code)?;
        Some(Self {
            code,
            entries,
            pool,
        })
    }

    /// Runs program `index` on `group`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    pub(super) unsafe fn run(&self, index: usize, group: &mut Group) {
        // SAFETY: `entries[index]` is the start of a complete function within the executable
        // mapping, compiled for the System V ABI with this signature (it saves and restores the
        // callee-saved r12-r15 it uses); it reads and writes only `group` and reads the pool,
        // which both outlive the call. The caller guarantees AVX2.
        unsafe {
            let f: ProgramFn = std::mem::transmute(self.code.ptr.add(self.entries[index]));
            f(group, self.pool.as_ptr());
        }
    }
}

pub(crate) static HYBRID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

// Register numbers.
const T0: u8 = 8;
const T1: u8 = 9;
const T2: u8 = 10;
const T3: u8 = 11;
const T4: u8 = 12;
const ZERO: u8 = 14;
const MASK: u8 = 15;
const RAX: u8 = 0;
const RDX: u8 = 2;
const RSI: u8 = 6;
const RDI: u8 = 7;
/// The general-purpose register holding the scalar item's `r[q]`: r8-r15.
const fn gpr(q: u8) -> u8 {
    8 + q
}

// Opcodes (VEX.256.66.0F unless noted).
const VPADDQ: u8 = 0xD4;
const VPSUBQ: u8 = 0xFB;
const VPXOR: u8 = 0xEF;
const VPAND: u8 = 0xDB;
const VPOR: u8 = 0xEB;
const VPMULUDQ: u8 = 0xF4;
const VMOVDQA_LOAD: u8 = 0x6F;
const VMOVDQA_STORE: u8 = 0x7F;
/// `vpsrlq`/`vpsllq ymm, ymm, imm8`: opcode 73 with the operation in ModRM.reg.
const SHIFT_IMM: u8 = 0x73;
const SRL: u8 = 2;
const SLL: u8 = 6;
/// `vpshufd ymm, ymm, imm8` (no vvvv operand).
const VPSHUFD: u8 = 0x70;
/// VEX.256.66.0F38 37: `vpcmpgtq`.
const VPCMPGTQ: u8 = 0x37;
/// VEX.256.66.0F38 40: `vpmulld` (32 x 32, low 32 bits).
const VPMULLD: u8 = 0x40;
const MAP_0F: u8 = 1;
const MAP_0F38: u8 = 2;

/// The r/m operand of an instruction.
#[derive(Clone, Copy)]
enum Rm {
    Reg(u8),
    /// `[base + disp32]`, base a general register below 8 other than rsp and rbp.
    Mem(u8, i32),
}

/// A minimal x86-64 encoder for the AVX2 instructions the programs need.
#[derive(Default)]
struct Assembler {
    code: Vec<u8>,
}

impl Assembler {
    /// A three-byte-VEX, 256-bit, 66-prefixed instruction: `reg`, `vvvv` and `rm` operands.
    fn vex(&mut self, map: u8, opcode: u8, reg: u8, vvvv: u8, rm: Rm) {
        let rm_high = match rm {
            Rm::Reg(r) => r >> 3,
            Rm::Mem(..) => 0,
        };
        let r_bit = u8::from(reg >> 3 == 0) << 7;
        let b_bit = u8::from(rm_high == 0) << 5;
        // X is unused (no index register): 1 inverted.
        self.code.extend_from_slice(&[
            0xC4,
            r_bit | 0x40 | b_bit | map,
            ((!vvvv & 0xF) << 3) | 0b100 | 0b01, // W0, L = 256, pp = 66
            opcode,
        ]);
        self.modrm(reg, rm);
    }

    /// A 64-bit general-purpose instruction: REX.W, `opcode`, ModRM with `reg` and `rm`.
    fn scalar(&mut self, opcode: &[u8], reg: u8, rm: Rm) {
        let rm_high = match rm {
            Rm::Reg(r) => r >> 3,
            Rm::Mem(..) => 0,
        };
        self.code.push(0x48 | ((reg >> 3) << 2) | rm_high);
        self.code.extend_from_slice(opcode);
        self.modrm(reg, rm);
    }

    fn modrm(&mut self, reg: u8, rm: Rm) {
        match rm {
            Rm::Reg(r) => self.code.push(0xC0 | ((reg & 7) << 3) | (r & 7)),
            Rm::Mem(base, disp) => {
                debug_assert!(base < 8 && base != 4 && base != 5);
                self.code.push(0x80 | ((reg & 7) << 3) | base);
                self.code.extend_from_slice(&disp.to_le_bytes());
            }
        }
    }

    /// `lea dst, [dst + src << shift]`.
    fn lea_shifted(&mut self, dst: u8, src: u8, shift: u8) {
        self.code
            .push(0x48 | ((dst >> 3) << 2) | ((src >> 3) << 1) | (dst >> 3));
        self.code.push(0x8D);
        // r13 (like rbp) as a base needs a displacement: a zero byte.
        let needs_displacement = dst & 7 == 5;
        let mode = if needs_displacement { 0x44 } else { 0x04 };
        self.code.push(mode | ((dst & 7) << 3));
        self.code.push((shift << 6) | ((src & 7) << 3) | (dst & 7));
        if needs_displacement {
            self.code.push(0);
        }
    }

    /// `dst = a <op> b` on registers (0F map).
    fn op(&mut self, opcode: u8, dst: u8, a: u8, b: u8) {
        self.vex(MAP_0F, opcode, dst, a, Rm::Reg(b));
    }

    /// `dst = a <op> b` on registers, an opcode of the 0F38 map.
    fn op_38(&mut self, opcode: u8, dst: u8, a: u8, b: u8) {
        self.vex(MAP_0F38, opcode, dst, a, Rm::Reg(b));
    }

    /// The memory operand of pool entry `entry`.
    fn pool(entry: usize) -> Rm {
        Rm::Mem(
            RSI,
            i32::try_from(entry * 32).expect("constant pool within 2 GiB"),
        )
    }

    /// `dst = a <op> pool[entry]`.
    fn op_const(&mut self, opcode: u8, dst: u8, a: u8, entry: usize) {
        self.vex(MAP_0F, opcode, dst, a, Self::pool(entry));
    }

    /// `dst = src >> count` (`SRL`) or `src << count` (`SLL`), 64-bit lanes.
    fn shift(&mut self, kind: u8, dst: u8, src: u8, count: u8) {
        self.vex(MAP_0F, SHIFT_IMM, kind, dst, Rm::Reg(src));
        self.code.push(count);
    }

    /// `dst = (a > b) ? all ones : 0`, signed 64-bit lanes.
    fn cmpgt(&mut self, dst: u8, a: u8, b: u8) {
        self.vex(MAP_0F38, VPCMPGTQ, dst, a, Rm::Reg(b));
    }

    /// Appends `value` broadcast to four lanes to `pool`; its entry index.
    fn constant(pool: &mut Vec<Entry>, value: u64) -> usize {
        pool.push(Entry([value; 4]));
        pool.len() - 1
    }

    /// One program as a function of `(rows: rdi, pool: rsi)`.
    fn program(&mut self, ops: &[Op], pool: &mut Vec<Entry>) {
        for q in 4..8u8 {
            self.code.extend_from_slice(&[0x41, 0x50 | gpr(q) & 7]); // push r12-r15
        }
        for q in 0..8u8 {
            self.vex(MAP_0F, VMOVDQA_LOAD, q, 0, Rm::Mem(RDI, i32::from(q) * 32));
            let slot = Rm::Mem(RDI, SCALAR_OFFSET + i32::from(q) * 8);
            self.scalar(&[0x8B], gpr(q), slot);
        }
        self.op(VPXOR, ZERO, ZERO, ZERO);
        self.vex(MAP_0F, VMOVDQA_LOAD, MASK, 0, Rm::Mem(RSI, 0));
        for op in ops {
            if HYBRID.load(std::sync::atomic::Ordering::Relaxed) {
                self.scalar_instruction(op, pool.len());
            }
            self.instruction(op, pool);
        }
        for q in 0..8u8 {
            self.vex(MAP_0F, VMOVDQA_STORE, q, 0, Rm::Mem(RDI, i32::from(q) * 32));
            let slot = Rm::Mem(RDI, SCALAR_OFFSET + i32::from(q) * 8);
            self.scalar(&[0x89], gpr(q), slot);
        }
        for q in (4..8u8).rev() {
            self.code.extend_from_slice(&[0x41, 0x58 | gpr(q) & 7]); // pop r15-r12
        }
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x77]); // vzeroupper
        self.code.push(0xC3); // ret
    }

    /// `op` on the scalar item; `next_entry` is where `instruction` will put `op`'s first
    /// constant.
    fn scalar_instruction(&mut self, op: &Op, next_entry: usize) {
        let (a, b) = (gpr(op.dst & 7), gpr(op.src & 7));
        let imm32 = (op.imm as u32).to_le_bytes();
        match op.kind {
            OpKind::Sub => self.scalar(&[0x2B], a, Rm::Reg(b)),
            OpKind::Xor => self.scalar(&[0x33], a, Rm::Reg(b)),
            OpKind::AddShift => self.lea_shifted(a, b, (op.imm & 3) as u8),
            OpKind::Mul => self.scalar(&[0x0F, 0xAF], a, Rm::Reg(b)),
            OpKind::Ror => {
                self.scalar(&[0xC1], 1, Rm::Reg(a));
                self.code.push((op.imm & 63) as u8);
            }
            OpKind::AddConst | OpKind::XorConst => {
                let extension = if op.kind == OpKind::AddConst { 0 } else { 6 };
                debug_assert_eq!(
                    op.imm,
                    i64::from(op.imm as i32) as u64,
                    "a sign-extended imm32"
                );
                self.scalar(&[0x81], extension, Rm::Reg(a));
                self.code.extend_from_slice(&imm32);
            }
            OpKind::MulConst => self.scalar(&[0x0F, 0xAF], a, Self::pool(next_entry)),
            OpKind::MulHigh | OpKind::SignedMulHigh => {
                let extension = if op.kind == OpKind::MulHigh { 4 } else { 5 };
                self.scalar(&[0x8B], RAX, Rm::Reg(a));
                self.scalar(&[0xF7], extension, Rm::Reg(b)); // rdx:rax = rax * b
                self.scalar(&[0x8B], a, Rm::Reg(RDX));
            }
        }
    }

    fn instruction(&mut self, op: &Op, pool: &mut Vec<Entry>) {
        let (a, b) = (op.dst & 7, op.src & 7);
        match op.kind {
            OpKind::Sub => self.op(VPSUBQ, a, a, b),
            OpKind::Xor => self.op(VPXOR, a, a, b),
            OpKind::AddShift => {
                let shift = (op.imm & 63) as u8;
                if shift == 0 {
                    self.op(VPADDQ, a, a, b);
                } else {
                    self.shift(SLL, T0, b, shift);
                    self.op(VPADDQ, a, a, T0);
                }
            }
            OpKind::Mul => {
                self.shuffle_halves(T0, b);
                self.op_38(VPMULLD, T0, T0, a); // lo(a) hi(b) | hi(a) lo(b), mod 2^32
                self.cross_sum(T0);
                self.op(VPMULUDQ, a, a, b); // lo(a) lo(b)
                self.op(VPADDQ, a, a, T0);
            }
            OpKind::Ror => {
                let count = (op.imm & 63) as u8;
                if count != 0 {
                    self.shift(SRL, T0, a, count);
                    self.shift(SLL, a, a, 64 - count);
                    self.op(VPOR, a, a, T0);
                }
            }
            OpKind::AddConst => {
                let c = Self::constant(pool, op.imm);
                self.op_const(VPADDQ, a, a, c);
            }
            OpKind::XorConst => {
                let c = Self::constant(pool, op.imm);
                self.op_const(VPXOR, a, a, c);
            }
            OpKind::MulConst => {
                let c = Self::constant(pool, op.imm);
                let swapped = Self::constant(pool, op.imm.rotate_right(32));
                self.vex(MAP_0F38, VPMULLD, T0, a, Self::pool(swapped));
                self.cross_sum(T0);
                self.op_const(VPMULUDQ, a, a, c); // lo(a) lo(c)
                self.op(VPADDQ, a, a, T0);
            }
            OpKind::MulHigh => self.mul_high(a, b),
            OpKind::SignedMulHigh => {
                self.cmpgt(T4, ZERO, a); // a < 0
                self.op(VPAND, T4, T4, b);
                self.cmpgt(T0, ZERO, b); // b < 0
                self.op(VPAND, T0, T0, a);
                self.op(VPADDQ, T4, T4, T0);
                self.mul_high(a, b);
                self.op(VPSUBQ, a, a, T4);
            }
        }
    }

    /// `t = (lo(t) + hi(t)) << 32` per lane (mod 2^64): the two 32-bit cross products of a low
    /// 64-bit product, summed and moved to the high half.
    fn cross_sum(&mut self, t: u8) {
        self.shift(SRL, T1, t, 32);
        self.op(VPADDQ, t, t, T1);
        self.shift(SLL, t, t, 32);
    }

    /// `dst` = `src` with the two 32-bit halves of every 64-bit lane swapped.
    fn shuffle_halves(&mut self, dst: u8, src: u8) {
        self.vex(MAP_0F, VPSHUFD, dst, 0, Rm::Reg(src));
        self.code.push(0xB1);
    }

    /// `a = (a * b) >> 64`, unsigned; `b` is only read (it may be `a`).
    fn mul_high(&mut self, a: u8, b: u8) {
        self.shift(SRL, T0, a, 32); // hi(a)
        self.shift(SRL, T1, b, 32); // hi(b)
        self.op(VPMULUDQ, T2, a, b); // lo(a) lo(b)
        self.shift(SRL, T2, T2, 32);
        self.op(VPMULUDQ, T3, T0, b); // hi(a) lo(b)
        self.op(VPADDQ, T3, T3, T2); // t
        self.op(VPMULUDQ, T2, a, T1); // lo(a) hi(b)
        self.op(VPMULUDQ, a, T0, T1); // hi(a) hi(b)
        self.op(VPAND, T0, T3, MASK);
        self.op(VPADDQ, T2, T2, T0); // u
        self.shift(SRL, T3, T3, 32);
        self.op(VPADDQ, a, a, T3);
        self.shift(SRL, T2, T2, 32);
        self.op(VPADDQ, a, a, T2);
    }
}

/// An anonymous mapping holding finished code, readable and executable.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps `code` read-write, copies it in, then makes it read-execute.
    fn executable(code: &[u8]) -> Option<Self> {
        let len = code.len().max(1);
        // SAFETY: a fresh private anonymous mapping; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let mapping = Self {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: the mapping is `len >= code.len()` writable bytes that nothing else uses.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mapping.ptr, code.len()) };
        // SAFETY: the range is exactly our mapping.
        let protected = unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) };
        (protected == 0).then_some(mapping)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping this value owns; no function of it can be
        // running, since running one borrows the `Compiled` that owns this mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte layouts checked against an assembler's output (GNU as, AT&T order reversed).
    #[test]
    fn encodes_the_instructions_it_uses() {
        let mut asm = Assembler::default();
        asm.op(VPADDQ, 0, 0, 1); // vpaddq ymm0, ymm0, ymm1
        assert_eq!(asm.code, [0xC4, 0xE1, 0x7D, 0xD4, 0xC1]);
        asm.code.clear();
        asm.op(VPMULUDQ, 8, 9, 10); // vpmuludq ymm8, ymm9, ymm10
        assert_eq!(asm.code, [0xC4, 0x41, 0x35, 0xF4, 0xC2]);
        asm.code.clear();
        asm.shift(SRL, 8, 3, 32); // vpsrlq ymm8, ymm3, 32
        assert_eq!(asm.code, [0xC4, 0xE1, 0x3D, 0x73, 0xD3, 0x20]);
        asm.code.clear();
        asm.shift(SLL, 2, 12, 5); // vpsllq ymm2, ymm12, 5
        assert_eq!(asm.code, [0xC4, 0xC1, 0x6D, 0x73, 0xF4, 0x05]);
        asm.code.clear();
        asm.cmpgt(12, 14, 3); // vpcmpgtq ymm12, ymm14, ymm3
        assert_eq!(asm.code, [0xC4, 0x62, 0x0D, 0x37, 0xE3]);
        asm.code.clear();
        asm.vex(MAP_0F, VMOVDQA_LOAD, 15, 0, Rm::Mem(RSI, 0)); // vmovdqa ymm15, [rsi+0]
        assert_eq!(asm.code, [0xC4, 0x61, 0x7D, 0x6F, 0xBE, 0, 0, 0, 0]);
        asm.code.clear();
        asm.vex(MAP_0F, VMOVDQA_STORE, 7, 0, Rm::Mem(RDI, 224)); // vmovdqa [rdi+224], ymm7
        assert_eq!(asm.code, [0xC4, 0xE1, 0x7D, 0x7F, 0xBF, 224, 0, 0, 0]);
        asm.code.clear();
        asm.op_const(VPXOR, 5, 5, 3); // vpxor ymm5, ymm5, [rsi+96]
        assert_eq!(asm.code, [0xC4, 0xE1, 0x55, 0xEF, 0xAE, 96, 0, 0, 0]);
        asm.code.clear();
        asm.shuffle_halves(8, 2); // vpshufd ymm8, ymm2, 0xb1
        assert_eq!(asm.code, [0xC4, 0x61, 0x7D, 0x70, 0xC2, 0xB1]);
        asm.code.clear();
        asm.op_38(VPMULLD, 8, 8, 3); // vpmulld ymm8, ymm8, ymm3
        assert_eq!(asm.code, [0xC4, 0x62, 0x3D, 0x40, 0xC3]);
        asm.code.clear();
        asm.scalar(&[0x2B], 9, Rm::Reg(15)); // sub r9, r15
        assert_eq!(asm.code, [0x4D, 0x2B, 0xCF]);
        asm.code.clear();
        asm.scalar(&[0x0F, 0xAF], 12, Rm::Mem(RSI, 64)); // imul r12, [rsi+64]
        assert_eq!(asm.code, [0x4C, 0x0F, 0xAF, 0xA6, 64, 0, 0, 0]);
        asm.code.clear();
        asm.scalar(&[0x8B], RAX, Rm::Reg(10)); // mov rax, r10
        assert_eq!(asm.code, [0x49, 0x8B, 0xC2]);
        asm.code.clear();
        asm.scalar(&[0xF7], 5, Rm::Reg(8)); // imul r8 (rdx:rax = rax * r8, signed)
        assert_eq!(asm.code, [0x49, 0xF7, 0xE8]);
        asm.code.clear();
        asm.scalar(&[0x89], 13, Rm::Mem(RDI, 296)); // mov [rdi+296], r13
        assert_eq!(asm.code, [0x4C, 0x89, 0xAF, 0x28, 0x01, 0, 0]);
        asm.code.clear();
        asm.lea_shifted(13, 12, 3); // lea r13, [r13 + r12*8 + 0]
        assert_eq!(asm.code, [0x4F, 0x8D, 0x6C, 0xE5, 0x00]);
        asm.code.clear();
        asm.lea_shifted(8, 11, 0); // lea r8, [r8 + r11]
        assert_eq!(asm.code, [0x4F, 0x8D, 0x04, 0x18]);
    }
}
#[cfg(test)]
mod histogram {
    #[test]
    #[ignore]
    fn op_histogram() {
        let hash = super::super::SuperscalarHash::new(b"histogram key");
        let mut counts = std::collections::BTreeMap::new();
        for p in hash.programs() {
            for op in &p.ops {
                *counts.entry(format!("{:?}", op.kind)).or_insert(0) += 1;
            }
        }
        eprintln!("{counts:?}");
    }

    #[test]
    #[ignore]
    fn compute_only() {
        let hash = super::super::SuperscalarHash::new(b"histogram key");
        let cpu = || {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
            t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
        };
        for round in 0..6 {
            let hybrid = round % 2 == 0;
            super::HYBRID.store(hybrid, std::sync::atomic::Ordering::Relaxed);
            let compiled = super::Compiled::new(hash.programs()).unwrap();
            let mut groups = [super::Group::default(); 32];
            let started = cpu();
            let n = 2000;
            for _ in 0..n {
                for p in 0..8 {
                    for g in groups.iter_mut() {
                        unsafe { compiled.run(p, g) };
                    }
                }
            }
            let per_group = (cpu() - started) / (n * 32) as f64 * 1e9;
            let items = if hybrid { 5.0 } else { 4.0 };
            eprintln!(
                "hybrid {hybrid}: {per_group:.0} ns per group (8 programs), {:.0} ns/item",
                per_group / items
            );
        }
    }
}
