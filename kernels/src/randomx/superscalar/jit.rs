//! SuperscalarHash programs compiled to x86-64 machine code, five dataset items at a time: four
//! in the 64-bit lanes of AVX2 registers and a fifth in general-purpose registers.
//!
//! Each program becomes [`SLICES`] functions (its halves) that take each of a run of [`Group`]s
//! of five items one step of the item computation further, looping over the groups: for each
//! group it loads the four lanes' registers into eight ymm registers (one item per 64-bit lane)
//! and the fifth item's into r8-r15, executes its part of the program with every RandomX
//! instruction lowered to a few AVX2 instructions for the lanes followed by its one or three
//! scalar instructions for the fifth item, and stores the registers back; the last slice first
//! XORs in the five cache blocks the previous step chose (the lanes' loaded by halves and
//! transposed into lanes), stores the offsets of the blocks the next step will mix in, and
//! prefetches them two groups at a time. There is no dispatch and no load or store per
//! instruction; within a slice the registers stay in registers, and a call serves a whole run
//! of groups (the saving of registers, `vzeroupper` and the return once per run).
//!
//! The fifth item is nearly free on a quiet core: the AVX2 code keeps the four vector pipes
//! busy while the integer pipes idle (interleaved scalar instructions amounting to a quarter more
//! instructions cost nothing in the quickest rounds, measured), and a multiplication, which
//! takes seven AVX2 instructions for four lanes, is one `imul` for the fifth (an unsigned high
//! product two instructions, `mov rdx` and `mulx`, where the CPU has BMI2; else three).
//!
//! ```text
//!   ymm3-10  r0-r7 of the four lanes (lane = item), placed per program
//!   ymm0-2, ymm11-12   temporaries
//!   ymm13    0xffffffff00000000 in every lane
//!   ymm14    zero              ymm15  0x00000000ffffffff in every lane
//!   r8-r15   r0-r7 of the fifth item      rax, rdx   its high products (mulx or mul / imul)
//!   rdi      the group + 128   rsi  into the constant pool (32-byte entries)   rcx  the cache
//!   rax, rdx, rbx, rbp   the offsets of the lanes' blocks while they are mixed in
//!   rax      then the fifth item's block offset, its next one, and the offsets prefetched
//!   [rsp]    groups until the next prefetches    [rsp + 8]  the end of the groups + 128
//! ```
//!
//! The code is kept short. Measured on this project's VM, interleaved A/B: 12 % more bytes
//! cost 11 % more time on average, though not in the quickest (quiet) rounds, which suggests the
//! decoders, shared by the core with whatever runs on its other hardware thread, are the limit
//! when the core is busy. An r/m operand in ymm8-15 needs the three-byte VEX prefix, so the
//! temporaries most often read as r/m live in ymm0-2, commutative operations put their low
//! operand in r/m, and each program puts in high registers the three of its registers that cost
//! fewest bytes there (every choice is encoded and measured); pool operands take one-byte
//! displacements from an `rsi` that moves along the pool as the constants are used.
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
//! A rotation by whole bytes (a count that is a multiple of 8) is one `vpshufb` by a pool mask
//! instead of two shifts and an OR.
//!
//! Constants (`IADD_C`, `IXOR_C`, the `IMUL_RCP` reciprocal and its halves swapped) are memory
//! operands into the pool, each broadcast to four lanes; the fifth item's instruction reads the
//! first lane of the same entry. The code is written into an anonymous mapping that is made
//! executable only once it is complete (never writable and executable at once), and unmapped
//! when the [`Compiled`] programs are dropped.

use super::CacheMemory;
use super::program::{Op, OpKind, Program};

/// One group of five items: four in the vector lanes (their registers `rows[q][lane]`) and one
/// in general-purpose registers (`scalar[q]`), with the byte offsets in the cache of the blocks
/// the next program mixes in (`blocks[lane]`, `scalar_block`).
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Group {
    pub scalar: [u64; 8],
    pub rows: [[u64; 4]; 8],
    pub blocks: [u64; 4],
    pub scalar_block: u64,
}

/// Functions each program is cut into. A whole program's code (about 2,300 instructions,
/// 10.5 KB) is at the edge of what the micro-op cache holds on this project's Zen 3 machine (a
/// loop of about 2,500 simple instructions still runs from it, 2,800 no longer does); halves
/// fit, even beside another hardware thread's code. Cutting costs a load and a store of the
/// group's registers per extra slice. Measured, interleaved A/B over 1,500 pairs of 2,080-item
/// chunks (one process, thread CPU time): two slices 0.958 of one slice's time on average
/// (quickest tenth 0.972), three 0.968; with both cores computing, two 0.985.
pub(super) const SLICES: usize = 2;
/// Groups whose next blocks the last slice prefetches together, after the last of them: a
/// prefetch into a page the TLB does not hold walks the page tables first, and the walks of two
/// groups overlapping cost less than two rounds (interleaved A/B with four-item groups:
/// 0.97-0.98 of the time).
pub(super) const PREFETCH_GROUPS: usize = 2;
/// Items in a group's vector lanes.
pub(super) const VECTOR_LANES: usize = 4;
/// Items in a group: the four vector lanes and the scalar item.
pub(super) const GROUP_ITEMS: usize = VECTOR_LANES + 1;
/// The compiled code addresses a group from 128 bytes into it, so that a one-byte displacement
/// (-128 to 127) reaches the scalar item's registers and the lanes' r0-r5: 14 of the 16 fields
/// every slice loads and stores (the byte offsets below are from the group's start).
const GROUP_BIAS: i32 = 128;
/// A group's size in memory: its fields, padded to its alignment.
const GROUP_BYTES: i32 = std::mem::size_of::<Group>() as i32;
/// Where `Group::scalar` starts.
const SCALAR_OFFSET: i32 = 0;
/// Where `Group::rows` starts.
const ROWS_OFFSET: i32 = 64;
/// Where `Group::blocks` starts.
const BLOCKS_OFFSET: i32 = 320;
/// Where `Group::scalar_block` is.
const SCALAR_BLOCK_OFFSET: i32 = 352;
const _: () = {
    assert!(std::mem::offset_of!(Group, scalar) == SCALAR_OFFSET as usize);
    assert!(std::mem::offset_of!(Group, rows) == ROWS_OFFSET as usize);
    assert!(std::mem::offset_of!(Group, blocks) == BLOCKS_OFFSET as usize);
    assert!(std::mem::offset_of!(Group, scalar_block) == SCALAR_BLOCK_OFFSET as usize);
};

/// A constant broadcast to four lanes: one 32-byte pool entry.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy)]
struct Entry([u64; 4]);

/// The compiled programs of one key (one per cache access).
#[derive(Debug)]
pub(super) struct Compiled {
    code: Mapping,
    /// Each program's slices' entry points.
    entries: Vec<Vec<usize>>,
    pool: Vec<Entry>,
}

// SAFETY: the code is immutable once mapped executable and the pool is never written after
// compilation, so sharing or moving them between threads is sound.
unsafe impl Send for Compiled {}
// SAFETY: as for Send: nothing reachable through a shared reference is ever written.
unsafe impl Sync for Compiled {}

/// A slice's code: `(first group, pool, cache, end of the groups)`.
type ProgramFn = unsafe extern "sysv64" fn(*mut Group, *const Entry, *const u8, *const Group);

impl Compiled {
    /// Compiles `programs`, each cut into [`SLICES`] functions; `None` if the system refuses
    /// executable memory.
    pub(super) fn new(programs: &[Program]) -> Option<Self> {
        Self::with(programs, SLICES, cpu_has_bmi2())
    }

    /// Compiles `programs`, each cut into `slices` (at least one) functions that run its
    /// instructions in order, the last one mixing in the blocks; the scalar item's unsigned
    /// high products with `mulx` when `mulx` (BMI2), else with `mul`.
    pub(super) fn with(programs: &[Program], slices: usize, mulx: bool) -> Option<Self> {
        assert!(slices >= 1, "a program is at least one function");
        let mut asm = Assembler {
            mulx,
            ..Assembler::default()
        };
        let mut pool = vec![Entry([0xffff_ffff; 4]), Entry([0xffff_ffff_0000_0000; 4])];
        let entries = programs
            .iter()
            .map(|program| asm.program(program, slices, &mut pool))
            .collect();
        let code = Mapping::executable(&asm.code)?;
        Some(Self {
            code,
            entries,
            pool,
        })
    }

    /// Programs (cache accesses an item).
    pub(super) fn programs(&self) -> usize {
        self.entries.len()
    }

    /// Slices per program.
    pub(super) fn slices(&self) -> usize {
        self.entries[0].len()
    }

    /// Runs slice `slice` of program `index` on each of `groups` in turn, in one call (the loop
    /// is in the compiled code). The last slice also mixes in the blocks at `blocks` and
    /// `scalar_block` and leaves there the offsets of the next program's blocks; after every
    /// second group (the second, fourth, ... of `groups`) it prefetches the next blocks of that
    /// group and the one before, together. A program's slices run in order on a group, each
    /// after the one before has returned.
    ///
    /// # Safety
    /// The CPU must have AVX2, `cache` must be the 256 MiB keyed cache and the groups' `blocks`
    /// and `scalar_block` offsets of blocks inside it (every offset the compiled code leaves
    /// there is).
    #[inline]
    pub(super) unsafe fn run(
        &self,
        index: usize,
        slice: usize,
        groups: &mut [Group],
        cache: &CacheMemory<'_>,
    ) {
        // The compiled loop runs its body before it compares.
        assert!(!groups.is_empty(), "a slice runs on one group at least");
        let range = groups.as_mut_ptr_range();
        // SAFETY: `entries[index][slice]` is the start of a complete function within the
        // executable mapping, compiled for the System V ABI with this signature; it reads and
        // writes only the groups from `range.start` up to `range.end` (a non-empty run of
        // whole groups), reads the pool, which both outlive the call, and (the last slice)
        // reads 64-byte blocks of the cache at the offsets in the groups' `blocks` and
        // `scalar_block`, which the caller guarantees lie inside it, as it guarantees AVX2;
        // its prefetches cannot fault. It saves and restores the callee-saved registers it
        // uses (rbx and rbp in the last slice, r12-r15 in all) and leaves the stack as it
        // found it.
        unsafe {
            let f: ProgramFn = std::mem::transmute(self.code.ptr.add(self.entries[index][slice]));
            f(range.start, self.pool.as_ptr(), cache.base(), range.end);
        }
    }
}

/// Whether this CPU has BMI2 (`mulx`).
fn cpu_has_bmi2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// Register numbers. Only the r/m operand of a VEX instruction needs the longer three-byte
// prefix when it is ymm8-15, so the temporaries that are most often r/m operands (T0, T2, T3)
// live in low registers, beside five of the program's registers (those the program uses least
// as an r/m operand; chosen per program by `Assembler::placement`).
const T0: u8 = 0;
const T1: u8 = 11;
const T2: u8 = 1;
const T3: u8 = 2;
const T4: u8 = 12;
/// 0xffffffff00000000 in every lane.
const HIGH: u8 = 13;
const ZERO: u8 = 14;
const MASK: u8 = 15;
/// Where the program's registers may live: five low, three high.
const PROGRAM_LOW: [u8; 5] = [3, 4, 5, 6, 7];
const PROGRAM_HIGH: [u8; 3] = [8, 9, 10];
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RBP: u8 = 5;
const RSP: u8 = 4;
const RSI: u8 = 6;
const RDI: u8 = 7;
/// The scalar item's `r0`-`r7` live in r8-r15.
const SCALAR_BASE: u8 = 8;
/// Registers the System V ABI asks a function to preserve, which every slice uses (the
/// scalar item's r4-r7).
const SAVED: [u8; 4] = [12, 13, 14, 15];
/// And those the last slice also uses, to mix in the blocks.
const SAVED_LAST: [u8; 6] = [RBX, RBP, 12, 13, 14, 15];
/// Pool entries.
const MASK32_ENTRY: usize = 0;
const HIGH32_ENTRY: usize = 1;

// Opcodes (VEX.256.66.0F unless noted).
const VPADDQ: u8 = 0xD4;
const VPSUBQ: u8 = 0xFB;
const VPXOR: u8 = 0xEF;
const VPAND: u8 = 0xDB;
const VPOR: u8 = 0xEB;
const VPUNPCKLQDQ: u8 = 0x6C;
const VPUNPCKHQDQ: u8 = 0x6D;
/// `vmovdqu xmm, m128` (VEX.128.F3.0F 6F).
const VMOVDQU_LOAD: u8 = 0x6F;
/// `vinserti128 ymm, ymm, m128, imm8` (VEX.256.66.0F3A.W0 38).
const VINSERTI128: u8 = 0x38;
const VPMULUDQ: u8 = 0xF4;
const VMOVDQA_LOAD: u8 = 0x6F;
const VMOVDQA_STORE: u8 = 0x7F;
/// `vpsrlq`/`vpsllq ymm, ymm, imm8`: opcode 73 with the operation in ModRM.reg.
const SHIFT_IMM: u8 = 0x73;
const SRL: u8 = 2;
const SLL: u8 = 6;
/// `vpshufd ymm, ymm, imm8` (no vvvv operand).
const VPSHUFD: u8 = 0x70;
/// VEX.256.66.0F3A.W0 4B /is4: `vblendvpd`.
const VBLENDVPD: u8 = 0x4B;
/// VEX.256.66.0F38 00: `vpshufb` (bytes picked within each 128-bit half).
const VPSHUFB: u8 = 0x00;
/// VEX.256.66.0F38 40: `vpmulld` (32 x 32, low 32 bits).
const VPMULLD: u8 = 0x40;
/// Scalar `op r64, r/m64` opcodes (`dst = dst <op> r/m`).
const IMUL_RM: &[u8] = &[0x0F, 0xAF];
const ADD_RM: &[u8] = &[0x03];
const XOR_RM: &[u8] = &[0x33];
const MAP_0F: u8 = 1;
const MAP_0F38: u8 = 2;
const MAP_0F3A: u8 = 3;
const PP_66: u8 = 0b01;
const PP_F3: u8 = 0b10;

/// The group's field at byte `offset` from its start, addressed from `rdi` (the group plus
/// [`GROUP_BIAS`]).
fn field(offset: i32) -> Rm {
    Rm::Mem(RDI, offset - GROUP_BIAS)
}

/// The r/m operand of an instruction.
#[derive(Clone, Copy)]
enum Rm {
    Reg(u8),
    /// `[base + disp]` (a one-byte displacement when it fits, else four bytes), base a general
    /// register below 8 other than rsp and rbp.
    Mem(u8, i32),
    /// `[base + index + disp8]`, general registers, base not rbp or r13, index not rsp.
    Indexed(u8, u8, u8),
}

/// A minimal x86-64 encoder for the AVX2 and general-purpose instructions the programs need.
#[derive(Default)]
struct Assembler {
    code: Vec<u8>,
    /// Where each of the program's registers `r0`-`r7` lives (a ymm number).
    regs: [u8; 8],
    /// The pool offset `rsi` points at, in bytes.
    pool_base: i64,
    /// Whether unsigned high products use `mulx` (BMI2).
    mulx: bool,
}

impl Assembler {
    /// A VEX-encoded, 256-bit, 66-prefixed instruction: `reg`, `vvvv` and `rm` operands.
    fn vex(&mut self, map: u8, opcode: u8, reg: u8, vvvv: u8, rm: Rm) {
        self.vex_with(map, PP_66, true, opcode, reg, vvvv, rm);
    }

    /// A VEX instruction (W0) with prefix `pp`, 256-bit when `wide`.
    #[allow(clippy::too_many_arguments)]
    fn vex_with(&mut self, map: u8, pp: u8, wide: bool, opcode: u8, reg: u8, vvvv: u8, rm: Rm) {
        let (index_high, base_high) = match rm {
            Rm::Reg(r) => (0, r >> 3),
            Rm::Mem(base, _) => (0, base >> 3),
            Rm::Indexed(base, index, _) => (index >> 3, base >> 3),
        };
        let r_bit = u8::from(reg >> 3 == 0) << 7;
        let vvvv_l_pp = ((!vvvv & 0xF) << 3) | (u8::from(wide) << 2) | pp;
        if map == MAP_0F && index_high == 0 && base_high == 0 {
            // The two-byte form: one byte shorter, which the decoders fetch faster.
            self.code
                .extend_from_slice(&[0xC5, r_bit | vvvv_l_pp, opcode]);
        } else {
            let x_bit = u8::from(index_high == 0) << 6;
            let b_bit = u8::from(base_high == 0) << 5;
            self.code
                .extend_from_slice(&[0xC4, r_bit | x_bit | b_bit | map, vvvv_l_pp, opcode]);
        }
        self.modrm(reg, rm);
    }

    /// A 64-bit general-purpose instruction: REX.W with the R, X and B bits of `reg` and `rm`,
    /// `opcode`, ModRM (and SIB, displacement). `reg` is a register or, for the opcodes that
    /// take an operation in ModRM.reg, that operation's number.
    fn rex_op(&mut self, opcode: &[u8], reg: u8, rm: Rm) {
        let (index_high, base_high) = match rm {
            Rm::Reg(r) | Rm::Mem(r, _) => (0, r >> 3),
            Rm::Indexed(base, index, _) => (index >> 3, base >> 3),
        };
        self.code
            .push(0x48 | ((reg >> 3) << 2) | (index_high << 1) | base_high);
        self.code.extend_from_slice(opcode);
        self.modrm(reg, rm);
    }

    /// `mov reg, m64`.
    fn load_gpr(&mut self, reg: u8, src: Rm) {
        self.rex_op(&[0x8B], reg, src);
    }

    /// `mov m64, reg`.
    fn store_gpr(&mut self, reg: u8, dst: Rm) {
        self.rex_op(&[0x89], reg, dst);
    }

    /// `op rm, reg` on 64-bit registers (`sub` 29, `xor` 31, `mov` 89).
    fn alu(&mut self, opcode: u8, rm: u8, reg: u8) {
        self.rex_op(&[opcode], reg, Rm::Reg(rm));
    }

    /// `mulx high, low, src` (BMI2): `high:low = rdx * src`, flags untouched.
    fn mulx(&mut self, high: u8, low: u8, src: u8) {
        let r_x_b = (u8::from(high >> 3 == 0) << 7) | (1 << 6) | (u8::from(src >> 3 == 0) << 5);
        // VEX.LZ.F2.0F38.W1 F6 /r: W set, vvvv the low half's register (inverted), L 0, pp F2.
        let w_vvvv_l_pp = 0x80 | ((!low & 0xF) << 3) | 0b11;
        self.code
            .extend_from_slice(&[0xC4, r_x_b | MAP_0F38, w_vvvv_l_pp, 0xF6]);
        self.modrm(high, Rm::Reg(src));
    }

    /// `mov dst, src`, 64-bit.
    fn mov(&mut self, dst: u8, src: u8) {
        self.alu(0x89, dst, src);
    }

    /// `add` (`kind` 0), `and` (4), `sub` (5) or `xor` (6) of a sign-extended immediate to `dst`.
    fn alu_imm(&mut self, kind: u8, dst: u8, imm: i32) {
        if let Ok(short) = i8::try_from(imm) {
            self.rex_op(&[0x83], kind, Rm::Reg(dst));
            self.code.push(short as u8);
        } else {
            self.rex_op(&[0x81], kind, Rm::Reg(dst));
            self.code.extend_from_slice(&imm.to_le_bytes());
        }
    }

    fn and_imm(&mut self, dst: u8, imm: i32) {
        self.alu_imm(4, dst, imm);
    }

    /// A shift or rotation of `dst` by `count` (`C1 /kind`: `ror` 1, `shl` 4).
    fn group2(&mut self, kind: u8, dst: u8, count: u8) {
        self.rex_op(&[0xC1], kind, Rm::Reg(dst));
        self.code.push(count);
    }

    fn shl_imm(&mut self, dst: u8, count: u8) {
        self.group2(4, dst, count);
    }

    /// `lea dst, [dst + src << shift]`, 64-bit.
    fn lea_shifted(&mut self, dst: u8, src: u8, shift: u8) {
        self.code
            .push(0x48 | ((dst >> 3) << 2) | ((src >> 3) << 1) | (dst >> 3));
        self.code.push(0x8D);
        let sib = (shift << 6) | ((src & 7) << 3) | (dst & 7);
        if dst & 7 == 5 {
            // rbp or r13 as a base needs a displacement: mod 01 with disp8 0.
            self.code
                .extend_from_slice(&[0x44 | ((dst & 7) << 3), sib, 0]);
        } else {
            self.code.extend_from_slice(&[0x04 | ((dst & 7) << 3), sib]);
        }
    }

    fn push(&mut self, reg: u8) {
        if reg >= 8 {
            self.code.push(0x41);
        }
        self.code.push(0x50 | (reg & 7));
    }

    fn pop(&mut self, reg: u8) {
        if reg >= 8 {
            self.code.push(0x41);
        }
        self.code.push(0x58 | (reg & 7));
    }

    fn modrm(&mut self, reg: u8, rm: Rm) {
        match rm {
            Rm::Reg(r) => self.code.push(0xC0 | ((reg & 7) << 3) | (r & 7)),
            Rm::Mem(base, disp) => {
                debug_assert!(base < 8 && base != 4 && base != 5);
                if let Ok(short) = i8::try_from(disp) {
                    self.code.push(0x40 | ((reg & 7) << 3) | base); // mod 01: disp8
                    self.code.push(short as u8);
                } else {
                    self.code.push(0x80 | ((reg & 7) << 3) | base); // mod 10: disp32
                    self.code.extend_from_slice(&disp.to_le_bytes());
                }
            }
            Rm::Indexed(base, index, disp) => {
                debug_assert!(base & 7 != 5 && index != 4);
                self.code.push(0x44 | ((reg & 7) << 3)); // mod 01 (disp8), r/m = SIB
                self.code.push(((index & 7) << 3) | (base & 7)); // scale 1
                self.code.push(disp);
            }
        }
    }

    /// `dst = a <op> b` on registers (0F map). The operands of a commutative operation are
    /// exchanged when that makes the r/m operand a low register (a shorter encoding).
    fn op(&mut self, opcode: u8, dst: u8, a: u8, b: u8) {
        let commutative = matches!(opcode, VPADDQ | VPXOR | VPAND | VPOR | VPMULUDQ);
        let (a, b) = if commutative && b >= 8 && a < 8 {
            (b, a)
        } else {
            (a, b)
        };
        self.vex(MAP_0F, opcode, dst, a, Rm::Reg(b));
    }

    /// `dst = a <op> b` on registers, an opcode of the 0F38 map.
    fn op_38(&mut self, opcode: u8, dst: u8, a: u8, b: u8) {
        self.vex(MAP_0F38, opcode, dst, a, Rm::Reg(b));
    }

    /// The memory operand of pool entry `entry`, as a one-byte displacement from `rsi`. When
    /// the entry is out of its reach, `rsi` is first moved (`add rsi, imm`) to three entries
    /// past it (the entry at displacement -96): a program's constants are allocated in the order
    /// its instructions read them, so one move serves this entry and the next six, and the one
    /// before (`IMUL_RCP` reads its second constant first).
    fn pool(&mut self, entry: usize) -> Rm {
        let offset = i64::try_from(entry * 32).expect("constant pool within 2^63 bytes");
        if !(-128..=127).contains(&(offset - self.pool_base)) {
            let step = offset + 96 - self.pool_base;
            match i8::try_from(step) {
                Ok(short) => self
                    .code
                    .extend_from_slice(&[0x48, 0x83, 0xC6, short as u8]),
                Err(_) => {
                    let long = i32::try_from(step).expect("constant pool within 2 GiB");
                    self.code.extend_from_slice(&[0x48, 0x81, 0xC6]);
                    self.code.extend_from_slice(&long.to_le_bytes());
                }
            }
            self.pool_base += step;
        }
        let disp = (offset - self.pool_base) as i32;
        Rm::Mem(RSI, disp)
    }

    /// `dst = a <op> pool[entry]`.
    fn op_const(&mut self, opcode: u8, dst: u8, a: u8, entry: usize) {
        let rm = self.pool(entry);
        self.vex(MAP_0F, opcode, dst, a, rm);
    }

    /// `dst = src >> count` (`SRL`) or `src << count` (`SLL`), 64-bit lanes.
    fn shift(&mut self, kind: u8, dst: u8, src: u8, count: u8) {
        self.vex(MAP_0F, SHIFT_IMM, kind, dst, Rm::Reg(src));
        self.code.push(count);
    }

    /// `vmovdqu xmm(dst), m128`: 16 bytes into the low half of `dst`, the high half zeroed.
    fn load_low_half(&mut self, dst: u8, src: Rm) {
        self.vex_with(MAP_0F, PP_F3, false, VMOVDQU_LOAD, dst, 0, src);
    }

    /// `vinserti128 ymm(dst), ymm(dst), m128, 1`: 16 bytes into the high half of `dst`.
    fn insert_high_half(&mut self, dst: u8, src: Rm) {
        self.vex_with(MAP_0F3A, PP_66, true, VINSERTI128, dst, dst, src);
        self.code.push(1);
    }

    /// `dst = sign(mask) ? b : a` per 64-bit lane (`vblendvpd`).
    fn blend(&mut self, dst: u8, a: u8, b: u8, mask: u8) {
        self.vex(MAP_0F3A, VBLENDVPD, dst, a, Rm::Reg(b));
        self.code.push(mask << 4);
    }

    /// Appends `value` broadcast to four lanes to `pool`; its entry index.
    fn constant(pool: &mut Vec<Entry>, value: u64) -> usize {
        Self::entry(pool, Entry([value; 4]))
    }

    /// Appends `entry` to `pool`; its index.
    fn entry(pool: &mut Vec<Entry>, entry: Entry) -> usize {
        pool.push(entry);
        pool.len() - 1
    }

    /// One program as `slices` functions of `(first group: rdi, pool: rsi, cache: rdx, end of
    /// the groups: rcx)`, cut where its instructions are counted in halves (thirds, ...); their
    /// entry points. Each loops over the groups, loading a group's registers and storing them
    /// back.
    fn program(&mut self, program: &Program, slices: usize, pool: &mut Vec<Entry>) -> Vec<usize> {
        self.regs = Self::placement(program);
        let n = program.ops.len();
        (0..slices)
            .map(|s| {
                let entry = self.code.len();
                let ops = &program.ops[n * s / slices..n * (s + 1) / slices];
                self.slice(program, ops, s + 1 == slices, pool);
                entry
            })
            .collect()
    }

    /// One slice of a program, `ops` a run of its instructions, as a loop over the groups; the
    /// last slice mixes in the blocks and prefetches the next ones of every second group and
    /// the ones before it. Its stack, below the saved registers: `[rsp]` the groups until the
    /// next prefetches (last slice), `[rsp + 8]` the end of the groups plus [`GROUP_BIAS`].
    fn slice(&mut self, program: &Program, ops: &[Op], last: bool, pool: &mut Vec<Entry>) {
        self.pool_base = 0;
        let regs = self.regs;
        let saved: &[u8] = if last { &SAVED_LAST } else { &SAVED };
        for &reg in saved {
            self.push(reg);
        }
        self.alu_imm(5, RCX, -GROUP_BIAS); // sub rcx, -128: the end as rdi will count it
        self.push(RCX);
        self.push(RCX); // the slot of the count (used by the last slice only)
        if last {
            self.reset_count();
            self.mov(RCX, RDX); // the cache; rdx is the high half of `mul`
        }
        self.alu_imm(5, RDI, -GROUP_BIAS); // sub rdi, -128: rdi = the group + 128
        self.op(VPXOR, ZERO, ZERO, ZERO);
        let (mask, high) = (self.pool(MASK32_ENTRY), self.pool(HIGH32_ENTRY));
        self.vex(MAP_0F, VMOVDQA_LOAD, MASK, 0, mask);
        self.vex(MAP_0F, VMOVDQA_LOAD, HIGH, 0, high);
        let top = self.code.len();
        for (q, &reg) in (0..).zip(&regs) {
            self.vex(MAP_0F, VMOVDQA_LOAD, reg, 0, field(ROWS_OFFSET + q * 32));
        }
        for q in 0..8u8 {
            self.load_gpr(SCALAR_BASE + q, field(SCALAR_OFFSET + 8 * i32::from(q)));
        }
        for op in ops {
            self.instruction(op, pool);
        }
        if last {
            self.mix_in(program, pool);
        }
        for (q, &reg) in (0..).zip(&regs) {
            self.vex(MAP_0F, VMOVDQA_STORE, reg, 0, field(ROWS_OFFSET + q * 32));
        }
        for q in 0..8u8 {
            self.store_gpr(SCALAR_BASE + q, field(SCALAR_OFFSET + 8 * i32::from(q)));
        }
        if last {
            self.prefetch_together();
        }
        // The next group, with rsi back at the pool's start.
        if self.pool_base != 0 {
            let back = i32::try_from(-self.pool_base).expect("constant pool within 2 GiB");
            self.alu_imm(0, RSI, back);
            self.pool_base = 0;
        }
        self.alu_imm(0, RDI, GROUP_BYTES);
        self.code.extend_from_slice(&[0x48, 0x3B, 0x7C, 0x24, 0x08]); // cmp rdi, [rsp + 8]
        self.jump_back(0x82, top); // jb top
        self.alu_imm(0, RSP, 16); // add rsp, 16: the count and the end
        for &reg in saved.iter().rev() {
            self.pop(reg);
        }
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x77]); // vzeroupper
        self.code.push(0xC3); // ret
    }

    /// After every [`PREFETCH_GROUPS`]th group (counted down in `[rsp]`), the next blocks of
    /// that group and the ones before it are prefetched together.
    fn prefetch_together(&mut self) {
        self.code.extend_from_slice(&[0x48, 0xFF, 0x0C, 0x24]); // dec qword [rsp]
        let skip = self.jump_forward(0x85); // jnz: not the last of its run
        for back in (0..PREFETCH_GROUPS as i32).rev() {
            let offsets = (0..4).map(|lane| BLOCKS_OFFSET + 8 * lane);
            for offset in offsets.chain([SCALAR_BLOCK_OFFSET]) {
                self.load_gpr(RAX, field(offset - back * GROUP_BYTES));
                // prefetcht0 [rcx + rax]
                self.code.extend_from_slice(&[0x0F, 0x18]);
                self.modrm(1, Rm::Indexed(RCX, RAX, 0));
            }
        }
        self.reset_count();
        self.land(skip);
    }

    /// `mov qword [rsp], PREFETCH_GROUPS`: the groups until the next prefetches.
    fn reset_count(&mut self) {
        self.code.extend_from_slice(&[0x48, 0xC7, 0x04, 0x24]);
        self.code
            .extend_from_slice(&(PREFETCH_GROUPS as u32).to_le_bytes());
    }

    /// A conditional jump (`0F <condition>`, rel32) to a place not yet emitted; where to
    /// [`Self::land`] it.
    fn jump_forward(&mut self, condition: u8) -> usize {
        self.code.extend_from_slice(&[0x0F, condition, 0, 0, 0, 0]);
        self.code.len()
    }

    /// Points the jump whose end is `from` here.
    fn land(&mut self, from: usize) {
        let rel = i32::try_from(self.code.len() - from).expect("a slice within 2 GiB");
        self.code[from - 4..from].copy_from_slice(&rel.to_le_bytes());
    }

    /// A conditional jump (`0F <condition>`, rel32) back to `target`.
    fn jump_back(&mut self, condition: u8, target: usize) {
        let end = self.code.len() + 6;
        let rel = -i32::try_from(end - target).expect("a slice within 2 GiB");
        self.code.extend_from_slice(&[0x0F, condition]);
        self.code.extend_from_slice(&rel.to_le_bytes());
    }

    /// The end of a program: the blocks XORed into the registers of the five items, and the
    /// offsets of the next program's blocks stored in the group.
    fn mix_in(&mut self, program: &Program, pool: &mut Vec<Entry>) {
        let regs = self.regs;
        // Mix in the four blocks, transposed into lanes two words at a time: T0 holds words
        // 2k, 2k+1 of blocks 0 and 2, T3 those of blocks 1 and 3; unpacking their low and high
        // words gives the rows r[2k] and r[2k+1] of the four blocks.
        let blocks = [RAX, RDX, RBX, RBP];
        for (lane, &reg) in (0..).zip(&blocks) {
            self.load_gpr(reg, field(BLOCKS_OFFSET + 8 * lane));
        }
        for k in 0..4u8 {
            let half = |lane: usize| Rm::Indexed(RCX, blocks[lane], 16 * k);
            for (t, (low, high)) in [(T0, (0, 2)), (T3, (1, 3))] {
                self.load_low_half(t, half(low));
                self.insert_high_half(t, half(high));
            }
            self.op(VPUNPCKLQDQ, T2, T0, T3);
            self.op(VPUNPCKHQDQ, T1, T0, T3);
            let (even, odd) = (regs[usize::from(2 * k)], regs[usize::from(2 * k + 1)]);
            self.op(VPXOR, even, even, T2);
            self.op(VPXOR, odd, odd, T1);
        }
        // The next blocks: (r[address register] mod blocks) * 64.
        let address_index = program.address_register as u8;
        let address = regs[program.address_register];
        let block_mask = Self::constant(pool, super::CACHE_BLOCKS - 1);
        self.op_const(VPAND, T2, address, block_mask);
        self.shift(SLL, T2, T2, 6);
        self.vex(MAP_0F, VMOVDQA_STORE, T2, 0, field(BLOCKS_OFFSET));
        // The scalar item: its block, then its next block's offset.
        self.load_gpr(RAX, field(SCALAR_BLOCK_OFFSET));
        for q in 0..8u8 {
            self.rex_op(XOR_RM, SCALAR_BASE + q, Rm::Indexed(RCX, RAX, 8 * q));
        }
        self.mov(RAX, SCALAR_BASE + address_index);
        self.and_imm(
            RAX,
            i32::try_from(super::CACHE_BLOCKS - 1).expect("2^22 blocks"),
        );
        self.shl_imm(RAX, 6);
        self.store_gpr(RAX, field(SCALAR_BLOCK_OFFSET));
    }

    /// Where `program`'s registers live: the three that make its instructions shortest in the
    /// high registers (each of the 56 choices is encoded and measured, about a millisecond per
    /// program), the other five low.
    fn placement(program: &Program) -> [u8; 8] {
        let mut trial = Assembler::default();
        let mut pool = Vec::new();
        let mut best = (usize::MAX, [0; 8]);
        for high in (0u32..256).filter(|set| set.count_ones() == 3) {
            let (mut low_slots, mut high_slots) = (PROGRAM_LOW.iter(), PROGRAM_HIGH.iter());
            trial.regs = std::array::from_fn(|q| {
                let slots = if high & (1 << q) != 0 {
                    &mut high_slots
                } else {
                    &mut low_slots
                };
                *slots.next().expect("five low and three high")
            });
            trial.code.clear();
            trial.pool_base = 0;
            pool.clear();
            // The scalar code is the same for every placement: only the lanes' is measured.
            for op in &program.ops {
                trial.vector_instruction(op, &mut pool);
            }
            if trial.code.len() < best.0 {
                best = (trial.code.len(), trial.regs);
            }
        }
        best.1
    }

    /// One instruction for all five items: the four lanes, then the scalar item.
    fn instruction(&mut self, op: &Op, pool: &mut Vec<Entry>) {
        let constant = self.vector_instruction(op, pool);
        self.scalar_instruction(op, constant);
    }

    /// The instruction on the scalar item, in r8-r15. `constant` is the pool entry of the
    /// instruction's constant, if it has one; its first lane is the scalar item's operand (a
    /// 4-byte `add r, [rsi + disp8]` rather than a 7-byte `add r, imm32`).
    fn scalar_instruction(&mut self, op: &Op, constant: Option<usize>) {
        let (a, b) = (SCALAR_BASE + (op.dst & 7), SCALAR_BASE + (op.src & 7));
        match op.kind {
            OpKind::Sub => self.alu(0x29, a, b),
            OpKind::Xor => self.alu(0x31, a, b),
            // The generator's shifts are 0-3 (`IADD_RS`), as `lea` scales are.
            OpKind::AddShift => self.lea_shifted(a, b, (op.imm & 3) as u8),
            OpKind::Mul => self.rex_op(IMUL_RM, a, Rm::Reg(b)),
            OpKind::Ror => {
                let count = (op.imm & 63) as u8;
                if count != 0 {
                    self.group2(1, a, count);
                }
            }
            OpKind::AddConst | OpKind::XorConst | OpKind::MulConst => {
                let opcode = match op.kind {
                    OpKind::AddConst => ADD_RM,
                    OpKind::XorConst => XOR_RM,
                    _ => IMUL_RM,
                };
                let rm = self.pool(constant.expect("the vector code put the constant in the pool"));
                self.rex_op(opcode, a, rm);
            }
            OpKind::MulHigh if self.mulx => {
                self.mov(RDX, a);
                self.mulx(a, RAX, b); // a:rax = rdx * b
            }
            OpKind::MulHigh | OpKind::SignedMulHigh => {
                self.mov(RAX, a);
                // mul (unsigned, F7 /4) or imul (signed, F7 /5): rdx:rax = rax * b.
                let kind = if op.kind == OpKind::MulHigh { 4 } else { 5 };
                self.rex_op(&[0xF7], kind, Rm::Reg(b));
                self.mov(a, RDX);
            }
        }
    }

    /// The instruction on the four lanes; the pool entry of its constant, if it has one.
    fn vector_instruction(&mut self, op: &Op, pool: &mut Vec<Entry>) -> Option<usize> {
        let (a, b) = (
            self.regs[usize::from(op.dst & 7)],
            self.regs[usize::from(op.src & 7)],
        );
        let mut constant = None;
        match op.kind {
            OpKind::Sub => self.op(VPSUBQ, a, a, b),
            OpKind::Xor => self.op(VPXOR, a, a, b),
            OpKind::AddShift => {
                let shift = (op.imm & 3) as u8;
                if shift == 0 {
                    self.op(VPADDQ, a, a, b);
                } else {
                    self.shift(SLL, T0, b, shift);
                    self.op(VPADDQ, a, a, T0);
                }
            }
            OpKind::Mul => {
                // The product of `a` by `b` with its halves swapped has the same two cross
                // products as `b` by `a` swapped: the swap reads whichever is a low register.
                let (swapped, other) = if b < 8 { (b, a) } else { (a, b) };
                self.shuffle_halves(T0, swapped);
                self.op_38(VPMULLD, T0, T0, other); // lo(a) hi(b), hi(a) lo(b), mod 2^32
                self.op(VPMULUDQ, a, a, b); // lo(a) lo(b)
                self.add_cross(a, T0);
            }
            OpKind::Ror => {
                let count = (op.imm & 63) as u8;
                if count != 0 && count.is_multiple_of(8) {
                    // Whole bytes: one byte shuffle instead of two shifts and an OR.
                    let c = Self::entry(pool, rotate_bytes_mask(count / 8));
                    let rm = self.pool(c);
                    self.vex(MAP_0F38, VPSHUFB, a, a, rm);
                } else if count != 0 {
                    self.shift(SRL, T0, a, count);
                    self.shift(SLL, a, a, 64 - count);
                    self.op(VPOR, a, a, T0);
                }
            }
            OpKind::AddConst | OpKind::XorConst => {
                let c = Self::constant(pool, op.imm);
                let opcode = if op.kind == OpKind::AddConst {
                    VPADDQ
                } else {
                    VPXOR
                };
                self.op_const(opcode, a, a, c);
                constant = Some(c);
            }
            OpKind::MulConst => {
                let c = Self::constant(pool, op.imm);
                let swapped = Self::constant(pool, op.imm.rotate_right(32));
                let rm = self.pool(swapped);
                self.vex(MAP_0F38, VPMULLD, T0, a, rm);
                self.op_const(VPMULUDQ, a, a, c); // lo(a) lo(c)
                self.add_cross(a, T0);
                constant = Some(c);
            }
            OpKind::MulHigh => self.mul_high(a, b),
            OpKind::SignedMulHigh => {
                self.blend(T4, ZERO, b, a); // b where a < 0
                self.blend(T0, ZERO, a, b); // a where b < 0
                self.op(VPADDQ, T4, T4, T0);
                self.mul_high(a, b);
                self.op(VPSUBQ, a, a, T4);
            }
        }
        constant
    }

    /// `a += (lo(t) + hi(t)) << 32` per lane (mod 2^64), `t` holding the two 32-bit cross
    /// products of a low 64-bit product: added as `(t & HIGH) + (t << 32)`, so that the
    /// product's chain is one step shorter than with the sum formed first.
    fn add_cross(&mut self, a: u8, t: u8) {
        self.shift(SLL, T2, t, 32);
        self.op(VPAND, t, t, HIGH);
        self.op(VPADDQ, a, a, t);
        self.op(VPADDQ, a, a, T2);
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

/// The `vpshufb` indices that rotate every 64-bit lane right by `bytes` whole bytes: byte `j`
/// of a lane becomes byte `(j + bytes) mod 8` of it. Indices count within a 128-bit half, so
/// those of the upper lane of each half are 8 more.
fn rotate_bytes_mask(bytes: u8) -> Entry {
    let low = (0..8u64).fold(0, |mask, j| mask | ((j + u64::from(bytes)) % 8) << (8 * j));
    let high = low + 0x0808_0808_0808_0808;
    Entry([low, high, low, high])
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

    /// The byte shuffle rotates every lane as `rotate_right` does (`vpshufb` emulated).
    #[test]
    fn byte_rotation_masks_rotate_every_lane() {
        let Entry(mask) = rotate_bytes_mask(1);
        assert_eq!(mask[0], 0x0007_0605_0403_0201);
        assert_eq!(mask[1], 0x080f_0e0d_0c0b_0a09);
        let lanes = [
            0x0123_4567_89ab_cdef_u64,
            0xfedc_ba98_7654_3210,
            1 << 63,
            0x8000_0000_0000_00ff,
        ];
        let bytes: Vec<u8> = lanes.iter().flat_map(|l| l.to_le_bytes()).collect();
        for k in 1..8u8 {
            let Entry(mask) = rotate_bytes_mask(k);
            let indices: Vec<u8> = mask.iter().flat_map(|l| l.to_le_bytes()).collect();
            let shuffled: Vec<u8> = (0..32)
                .map(|i| bytes[(i / 16) * 16 + usize::from(indices[i] & 15)])
                .collect();
            for (lane, chunk) in lanes.iter().zip(shuffled.chunks_exact(8)) {
                let got = u64::from_le_bytes(chunk.try_into().unwrap());
                assert_eq!(
                    got,
                    lane.rotate_right(8 * u32::from(k)),
                    "rotation by {k} bytes"
                );
            }
        }
    }

    /// The bytes `emit` assembles.
    fn encoded(emit: impl FnOnce(&mut Assembler)) -> Vec<u8> {
        let mut asm = Assembler::default();
        emit(&mut asm);
        asm.code
    }

    /// Byte layouts, each checked by disassembling it (objdump) into the commented instruction.
    #[test]
    fn encodes_the_instructions_it_uses() {
        assert_eq!(
            encoded(|a| a.op(VPADDQ, 0, 0, 1)), // vpaddq ymm0, ymm0, ymm1
            [0xC5, 0xFD, 0xD4, 0xC1]
        );
        assert_eq!(
            encoded(|a| a.op(VPMULUDQ, 8, 9, 10)), // vpmuludq ymm8, ymm9, ymm10
            [0xC4, 0x41, 0x35, 0xF4, 0xC2]
        );
        assert_eq!(
            encoded(|a| a.shift(SRL, 8, 3, 32)), // vpsrlq ymm8, ymm3, 32
            [0xC5, 0xBD, 0x73, 0xD3, 0x20]
        );
        assert_eq!(
            encoded(|a| a.shift(SLL, 2, 12, 5)), // vpsllq ymm2, ymm12, 5
            [0xC4, 0xC1, 0x6D, 0x73, 0xF4, 0x05]
        );
        assert_eq!(
            encoded(|a| a.blend(12, 14, 3, 5)), // vblendvpd ymm12, ymm14, ymm3, ymm5
            [0xC4, 0x63, 0x0D, 0x4B, 0xE3, 0x50]
        );
        assert_eq!(
            encoded(|a| a.vex(MAP_0F, VMOVDQA_LOAD, 15, 0, Rm::Mem(RSI, 0))), // vmovdqa ymm15, [rsi+0x0]
            [0xC5, 0x7D, 0x6F, 0x7E, 0]
        );
        assert_eq!(
            encoded(|a| a.vex(MAP_0F, VMOVDQA_STORE, 7, 0, Rm::Mem(RDI, 224))), // vmovdqa [rdi+224], ymm7
            [0xC5, 0xFD, 0x7F, 0xBF, 224, 0, 0, 0]
        );
        assert_eq!(
            encoded(|a| a.op_const(VPXOR, 5, 5, 3)), // vpxor ymm5, ymm5, [rsi+0x60]
            [0xC5, 0xD5, 0xEF, 0x6E, 0x60]
        );
        // Out of the displacement's reach, rsi moves first: forward to three entries before
        // the next (add rsi, 0xe0; vpxor ymm5, ymm5, [rsi-0x60]), and back by a byte's reach
        // (add rsi, -0x80; vpxor ymm5, ymm5, [rsi-0x60]).
        assert_eq!(
            encoded(|a| {
                a.op_const(VPXOR, 5, 5, 4);
                a.op_const(VPXOR, 5, 5, 0);
            }),
            [
                0x48, 0x81, 0xC6, 0xE0, 0, 0, 0, 0xC5, 0xD5, 0xEF, 0x6E, 0xA0, // entry 4
                0x48, 0x83, 0xC6, 0x80, 0xC5, 0xD5, 0xEF, 0x6E, 0xA0, // entry 0
            ]
        );
        // A commutative operation reads its high operand through vvvv (two-byte VEX); a
        // subtraction cannot (three-byte VEX).
        assert_eq!(
            encoded(|a| a.op(VPADDQ, 0, 0, 11)), // vpaddq ymm0, ymm11, ymm0
            [0xC5, 0xA5, 0xD4, 0xC0]
        );
        assert_eq!(
            encoded(|a| a.op(VPSUBQ, 0, 0, 11)), // vpsubq ymm0, ymm0, ymm11
            [0xC4, 0xC1, 0x7D, 0xFB, 0xC3]
        );
        assert_eq!(
            encoded(|a| a.shuffle_halves(8, 2)), // vpshufd ymm8, ymm2, 0xb1
            [0xC5, 0x7D, 0x70, 0xC2, 0xB1]
        );
        assert_eq!(
            encoded(|a| a.op_38(VPMULLD, 8, 8, 3)), // vpmulld ymm8, ymm8, ymm3
            [0xC4, 0x62, 0x3D, 0x40, 0xC3]
        );
        assert_eq!(
            encoded(|a| a.load_gpr(9, Rm::Mem(RDI, 280))), // mov r9, [rdi+280]
            [0x4C, 0x8B, 0x8F, 0x18, 0x01, 0, 0]
        );
        assert_eq!(
            encoded(|a| a.load_gpr(RCX, Rm::Mem(RDI, 264))), // mov rcx, [rdi+264]
            [0x48, 0x8B, 0x8F, 0x08, 0x01, 0, 0]
        );
        assert_eq!(
            encoded(|a| a.load_low_half(9, Rm::Indexed(RDX, 8, 48))), // vmovdqu xmm9, [rdx+r8+48]
            [0xC4, 0x21, 0x7A, 0x6F, 0x4C, 0x02, 48]
        );
        assert_eq!(
            encoded(|a| a.insert_high_half(8, Rm::Indexed(RDX, RAX, 16))), // vinserti128 ymm8, ymm8, [rdx+rax+16], 1
            [0xC4, 0x63, 0x3D, 0x38, 0x44, 0x02, 16, 1]
        );
        assert_eq!(
            encoded(|a| a.op(VPUNPCKHQDQ, 11, 8, 9)), // vpunpckhqdq ymm11, ymm8, ymm9
            [0xC4, 0x41, 0x3D, 0x6D, 0xD9]
        );
        assert_eq!(
            encoded(|a| a.vex(MAP_0F38, VPSHUFB, 3, 3, Rm::Mem(RSI, 320))), // vpshufb ymm3, ymm3, [rsi+320]
            [0xC4, 0xE2, 0x65, 0x00, 0x9E, 0x40, 0x01, 0, 0]
        );
    }

    /// The loop's and the prefetches' byte layouts, checked with objdump as above: after every
    /// second group, the next blocks of the group before (`rdi - 384`) and of this one
    /// (`Group::blocks` at `rdi + 192`, `Group::scalar_block` at `rdi + 224`).
    #[test]
    fn encodes_the_loop_and_the_prefetches() {
        assert_eq!(GROUP_BYTES, 384);
        let code = encoded(|a| a.prefetch_together());
        let load_prefetch = |disp: i32| {
            let mut bytes = vec![0x48, 0x8B, 0x87]; // mov rax, [rdi + disp32]
            bytes.extend_from_slice(&disp.to_le_bytes());
            bytes.extend_from_slice(&[0x0F, 0x18, 0x4C, 0x01, 0x00]); // prefetcht0 [rcx+rax]
            bytes
        };
        let mut expected = vec![0x48, 0xFF, 0x0C, 0x24]; // dec qword [rsp]
        expected.extend_from_slice(&[0x0F, 0x85, 0x80, 0, 0, 0]); // jne +0x80 (past the movq)
        for disp in [
            -0xC0, -0xB8, -0xB0, -0xA8, -0xA0, 0xC0, 0xC8, 0xD0, 0xD8, 0xE0,
        ] {
            expected.extend(load_prefetch(disp));
        }
        expected.extend_from_slice(&[0x48, 0xC7, 0x04, 0x24, 2, 0, 0, 0]); // movq [rsp], 2
        assert_eq!(code, expected);
        // jb back to the start of a 16-byte body: 0F 82 with -22 (the body and the jump).
        let code = encoded(|a| {
            a.code.extend_from_slice(&[0x90; 16]);
            a.jump_back(0x82, 0);
        });
        assert_eq!(code[16..], [0x0F, 0x82, 0xEA, 0xFF, 0xFF, 0xFF]);
    }

    /// Byte layouts of the scalar item's instructions, each checked with objdump as above.
    #[test]
    fn encodes_the_scalar_instructions_it_uses() {
        let cases: [(Vec<u8>, &[u8]); 20] = [
            (encoded(|a| a.alu(0x29, 8, 9)), &[0x4D, 0x29, 0xC8]), // sub r8, r9
            (encoded(|a| a.alu(0x31, 15, 12)), &[0x4D, 0x31, 0xE7]), // xor r15, r12
            (encoded(|a| a.mov(RAX, 13)), &[0x4C, 0x89, 0xE8]),    // mov rax, r13
            (encoded(|a| a.mov(10, RDX)), &[0x49, 0x89, 0xD2]),    // mov r10, rdx
            (encoded(|a| a.alu_imm(0, 11, -5)), &[0x49, 0x83, 0xC3, 0xFB]), // add r11, -5
            (
                encoded(|a| a.alu_imm(5, RDI, -128)),
                &[0x48, 0x83, 0xEF, 0x80],
            ), // sub rdi, -0x80
            (
                encoded(|a| a.store_gpr(12, field(SCALAR_OFFSET + 32))), // mov [rdi-0x60], r12
                &[0x4C, 0x89, 0x67, 0xA0],
            ),
            (
                encoded(|a| a.alu_imm(6, 14, 0x1234_5678)), // xor r14, 0x12345678
                &[0x49, 0x81, 0xF6, 0x78, 0x56, 0x34, 0x12],
            ),
            (
                encoded(|a| a.and_imm(RAX, 0x3F_FFFF)), // and rax, 0x3fffff
                &[0x48, 0x81, 0xE0, 0xFF, 0xFF, 0x3F, 0],
            ),
            (encoded(|a| a.group2(1, 12, 13)), &[0x49, 0xC1, 0xCC, 0x0D]), // ror r12, 13
            (encoded(|a| a.shl_imm(RAX, 6)), &[0x48, 0xC1, 0xE0, 0x06]),   // shl rax, 6
            (
                encoded(|a| a.rex_op(IMUL_RM, 9, Rm::Reg(14))),
                &[0x4D, 0x0F, 0xAF, 0xCE],
            ), // imul r9, r14
            (
                encoded(|a| a.rex_op(IMUL_RM, 10, Rm::Mem(RSI, -96))), // imul r10, [rsi-0x60]
                &[0x4C, 0x0F, 0xAF, 0x56, 0xA0],
            ),
            (
                encoded(|a| a.lea_shifted(13, 12, 3)), // lea r13, [r13+r12*8+0x0]
                &[0x4F, 0x8D, 0x6C, 0xE5, 0],
            ),
            (
                encoded(|a| a.lea_shifted(8, 11, 0)),
                &[0x4F, 0x8D, 0x04, 0x18],
            ), // lea r8, [r8+r11*1]
            (
                encoded(|a| a.rex_op(XOR_RM, 9, Rm::Indexed(RCX, RBP, 56))), // xor r9, [rcx+rbp*1+0x38]
                &[0x4C, 0x33, 0x4C, 0x29, 0x38],
            ),
            (
                encoded(|a| a.store_gpr(15, Rm::Mem(RDI, 344))), // mov [rdi+0x158], r15
                &[0x4C, 0x89, 0xBF, 0x58, 0x01, 0, 0],
            ),
            (
                encoded(|a| a.rex_op(ADD_RM, 15, Rm::Mem(RSI, 64))), // add r15, [rsi+0x40]
                &[0x4C, 0x03, 0x7E, 0x40],
            ),
            (encoded(|a| a.push(12)), &[0x41, 0x54]), // push r12
            (encoded(|a| a.pop(RBP)), &[0x5D]),       // pop rbp
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
        // IMULH_R r0, r3 with BMI2: mov rdx, r8; mulx r8, rax, r11.
        let op = Op {
            kind: OpKind::MulHigh,
            dst: 0,
            src: 3,
            imm: 0,
        };
        let mut asm = Assembler {
            mulx: true,
            ..Assembler::default()
        };
        asm.scalar_instruction(&op, None);
        assert_eq!(asm.code, [0x4C, 0x89, 0xC2, 0xC4, 0x42, 0xFB, 0xF6, 0xC3]);
        // mulx rax, rbx, rdi (low registers: the inverted R and B bits set).
        assert_eq!(
            encoded(|a| a.mulx(RAX, RBX, RDI)),
            [0xC4, 0xE2, 0xE3, 0xF6, 0xC7]
        );
        // IMULH_R r0, r3 and ISMULH_R r0, r3: mov rax, r8; mul r11 / imul r11; mov r8, rdx.
        for (kind, f7) in [(OpKind::MulHigh, 0xE3), (OpKind::SignedMulHigh, 0xEB)] {
            let op = Op {
                kind,
                dst: 0,
                src: 3,
                imm: 0,
            };
            assert_eq!(
                encoded(|a| a.scalar_instruction(&op, None)),
                [0x4C, 0x89, 0xC0, 0x49, 0xF7, f7, 0x49, 0x89, 0xD0]
            );
        }
    }
}
