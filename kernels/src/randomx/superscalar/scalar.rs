//! The portable dataset item computation (specification section 7.3), one item at a time.
//!
//! This is the reference the SIMD path is checked against, and the fallback on CPUs without
//! AVX2. It is as simple as the specification: each instruction is interpreted for one item.

use super::program::{Op, OpKind, Program, mulh, smulh};
use super::{CacheMemory, SuperscalarHash, item_registers};

/// Executes `program` on the eight registers `r`.
#[inline]
pub(crate) fn execute(program: &Program, r: &mut [u64; 8]) {
    for &Op {
        kind,
        dst,
        src,
        imm,
    } in &program.ops
    {
        let (d, s) = (usize::from(dst & 7), usize::from(src & 7));
        let b = r[s];
        let a = &mut r[d];
        *a = match kind {
            OpKind::Sub => a.wrapping_sub(b),
            OpKind::Xor => *a ^ b,
            OpKind::AddShift => a.wrapping_add(b << imm),
            OpKind::Mul => a.wrapping_mul(b),
            OpKind::Ror => a.rotate_right(imm as u32),
            OpKind::AddConst => a.wrapping_add(imm),
            OpKind::XorConst => *a ^ imm,
            OpKind::MulHigh => mulh(*a, b),
            OpKind::SignedMulHigh => smulh(*a, b),
            OpKind::MulConst => a.wrapping_mul(imm),
        };
    }
}

/// Computes dataset item `item` (its eight 64-bit words).
pub(crate) fn item(hash: &SuperscalarHash, cache: &CacheMemory<'_>, item: u64) -> [u64; 8] {
    let mut r = item_registers(item);
    let mut address = item;
    for program in hash.programs() {
        let block = cache.block(address);
        execute(program, &mut r);
        for (reg, word) in r.iter_mut().zip(block) {
            *reg ^= word;
        }
        address = r[program.address_register];
    }
    r
}

/// Computes items `first..first + out.len() / 64` into `out` (64 bytes each, little-endian).
pub(crate) fn init_items(
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    for (i, chunk) in (first..).zip(out.chunks_exact_mut(64)) {
        for (bytes, word) in chunk.chunks_exact_mut(8).zip(item(hash, cache, i)) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
    }
}
