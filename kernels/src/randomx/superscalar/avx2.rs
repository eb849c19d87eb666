//! Dataset items in batches with AVX2: one decoded instruction applied to many items at once.
//!
//! A batch of `LANES` items keeps its registers as eight rows of `LANES` 64-bit words, each row
//! `VECTORS` AVX2 vectors of four items; every instruction is dispatched once per batch and
//! runs over the rows. AVX2 has no 64-bit multiply, so the products are built from 32x32->64
//! `vpmuludq`:
//!
//! * low 64 bits: `lo(a)lo(b) + ((hi(a)lo(b) + lo(a)hi(b)) << 32)`;
//! * high 64 bits, unsigned: the schoolbook sum of the four partial products with their carries;
//! * high 64 bits, signed: the unsigned one minus `b` where `a < 0` and minus `a` where `b < 0`.
//!
//! Before each program runs, the batch's cache blocks (one per item, chosen by the previous
//! program) are prefetched; the program's run over the batch then hides their DRAM latency,
//! and the blocks are XORed in afterwards.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::program::{OpKind, Program};
use super::{BLOCK_BYTES, CacheMemory, SuperscalarHash, item_registers};

/// AVX2 vectors per register row.
const VECTORS: usize = 32;
/// Items per batch.
const LANES: usize = 4 * VECTORS;
/// Cache blocks prefetched per run of instructions at the start of a program.
const PREFETCH_PER_RUN: usize = 128;

/// Whether this CPU can run the AVX2 path.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Computes items `first..first + out.len() / 64` into `out`. Panics without AVX2.
pub(super) fn init_items(
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    assert!(available(), "the AVX2 dataset path needs AVX2");
    #[cfg(target_arch = "x86_64")]
    {
        let items = out.len() / BLOCK_BYTES;
        let mut done = 0;
        while done < items {
            let count = (items - done).min(LANES);
            let chunk = &mut out[done * BLOCK_BYTES..(done + count) * BLOCK_BYTES];
            // SAFETY: AVX2 is available (asserted above).
            unsafe { batch(hash, cache, first + done as u64, chunk) };
            done += count;
        }
    }
}

/// The registers of one batch: `rows[r][lane]`.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct Rows([[u64; LANES]; 8]);

/// Computes the (at most `LANES`) items of `out`, starting at `first`. Lanes past the end of
/// `out` compute the following items and are dropped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn batch(hash: &SuperscalarHash, cache: &CacheMemory<'_>, first: u64, out: &mut [u8]) {
    let mut rows = Rows([[0; LANES]; 8]);
    let mut address = [0u64; LANES];
    for (lane, slot) in address.iter_mut().enumerate() {
        let item = first + lane as u64;
        *slot = item;
        for (row, value) in rows.0.iter_mut().zip(item_registers(item)) {
            row[lane] = value;
        }
    }
    for program in hash.programs() {
        execute(program, &mut rows, cache, &address);
        for (lane, &a) in address.iter().enumerate() {
            let block = cache.block(a);
            for (row, word) in rows.0.iter_mut().zip(block) {
                row[lane] ^= word;
            }
        }
        address = rows.0[program.address_register];
    }
    for (lane, item) in out.chunks_exact_mut(BLOCK_BYTES).enumerate() {
        for (bytes, row) in item.chunks_exact_mut(8).zip(&rows.0) {
            bytes.copy_from_slice(&row[lane].to_le_bytes());
        }
    }
}

/// Runs every instruction of `$ops` (all of one kind) over the batch: `$setup` once per
/// instruction (with `$op` bound), then `$body` (with the destination and source vectors bound
/// to `$a`, `$b`) for every vector of the destination row.
macro_rules! run {
    ($base:ident, $ops:ident, |$op:ident| $setup:stmt, |$a:ident, $b:ident| $body:expr) => {
        for $op in $ops {
            $setup
            // SAFETY: register numbers are masked to 0..8, so both rows lie inside the batch's
            // rows; each vector is read in full before the same one is written.
            unsafe {
                let d = $base.add(usize::from($op.dst & 7) * VECTORS);
                let s = $base.add(usize::from($op.src & 7) * VECTORS);
                for v in 0..VECTORS {
                    let $a = _mm256_load_si256(d.add(v));
                    let $b = _mm256_load_si256(s.add(v));
                    _mm256_store_si256(d.add(v), $body);
                }
            }
        }
    };
}

/// Runs `program` on every lane of `rows`, prefetching the cache blocks at `blocks`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn execute(program: &Program, rows: &mut Rows, cache: &CacheMemory<'_>, blocks: &[u64; LANES]) {
    let base = rows.0.as_mut_ptr().cast::<__m256i>();
    for (index, run) in program.runs.iter().enumerate() {
        // Prefetch the blocks the batch XORs in after this program, a few per run: issued
        // all at once they could fill the miss buffers and stall the pipeline.
        if index < LANES / PREFETCH_PER_RUN {
            for &a in &blocks[index * PREFETCH_PER_RUN..(index + 1) * PREFETCH_PER_RUN] {
                // A hint that never faults; the address is inside the cache anyway.
                _mm_prefetch::<_MM_HINT_T0>(cache.block_ptr(a).cast());
            }
        }
        let ops = &program.batched[usize::from(run.start)..usize::from(run.end)];
        match run.kind {
            OpKind::Sub => run!(base, ops, |op| (), |a, b| _mm256_sub_epi64(a, b)),
            OpKind::Xor => run!(base, ops, |op| (), |a, b| _mm256_xor_si256(a, b)),
            OpKind::AddShift => run!(
                base,
                ops,
                |op| let count = _mm_cvtsi64_si128(op.imm as i64),
                |a, b| _mm256_add_epi64(a, _mm256_sll_epi64(b, count))
            ),
            OpKind::Mul => run!(base, ops, |op| (), |a, b| mul_low(a, b)),
            OpKind::Ror => run!(
                base,
                ops,
                |op| let (right, left) = (
                    _mm_cvtsi64_si128(op.imm as i64),
                    _mm_cvtsi64_si128(64 - op.imm as i64)
                ),
                |a, _b| _mm256_or_si256(_mm256_srl_epi64(a, right), _mm256_sll_epi64(a, left))
            ),
            OpKind::AddConst => run!(
                base,
                ops,
                |op| let c = _mm256_set1_epi64x(op.imm as i64),
                |a, _b| _mm256_add_epi64(a, c)
            ),
            OpKind::XorConst => run!(
                base,
                ops,
                |op| let c = _mm256_set1_epi64x(op.imm as i64),
                |a, _b| _mm256_xor_si256(a, c)
            ),
            OpKind::MulHigh => run!(base, ops, |op| (), |a, b| mul_high(a, b)),
            OpKind::SignedMulHigh => run!(base, ops, |op| (), |a, b| signed_mul_high(a, b)),
            OpKind::MulConst => run!(
                base,
                ops,
                |op| let (c, c_high) = (
                    _mm256_set1_epi64x(op.imm as i64),
                    _mm256_set1_epi64x((op.imm >> 32) as i64)
                ),
                |a, _b| mul_low_const(a, c, c_high)
            ),
        }
    }
}

/// Low 64 bits of `a * b` per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn mul_low(a: __m256i, b: __m256i) -> __m256i {
    let low = _mm256_mul_epu32(a, b);
    let cross = _mm256_add_epi64(
        _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), b),
        _mm256_mul_epu32(a, _mm256_srli_epi64::<32>(b)),
    );
    _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross))
}

/// Low 64 bits of `a * c` per lane, with `c_high` = `c >> 32` precomputed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn mul_low_const(a: __m256i, c: __m256i, c_high: __m256i) -> __m256i {
    let low = _mm256_mul_epu32(a, c);
    let cross = _mm256_add_epi64(
        _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), c),
        _mm256_mul_epu32(a, c_high),
    );
    _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross))
}

/// High 64 bits of the unsigned 128-bit `a * b` per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn mul_high(a: __m256i, b: __m256i) -> __m256i {
    let mask = _mm256_set1_epi64x(0xffff_ffff);
    let (a_hi, b_hi) = (_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b));
    let ll = _mm256_mul_epu32(a, b);
    let lh = _mm256_mul_epu32(a, b_hi);
    let hl = _mm256_mul_epu32(a_hi, b);
    let hh = _mm256_mul_epu32(a_hi, b_hi);
    // Neither sum can overflow: (2^32 - 1)^2 + 2 (2^32 - 1) < 2^64.
    let t = _mm256_add_epi64(hl, _mm256_srli_epi64::<32>(ll));
    let u = _mm256_add_epi64(lh, _mm256_and_si256(t, mask));
    _mm256_add_epi64(
        _mm256_add_epi64(hh, _mm256_srli_epi64::<32>(t)),
        _mm256_srli_epi64::<32>(u),
    )
}

/// High 64 bits of the signed 128-bit `a * b` per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn signed_mul_high(a: __m256i, b: __m256i) -> __m256i {
    let zero = _mm256_setzero_si256();
    let a_negative = _mm256_cmpgt_epi64(zero, a);
    let b_negative = _mm256_cmpgt_epi64(zero, b);
    let unsigned = mul_high(a, b);
    let correction = _mm256_add_epi64(
        _mm256_and_si256(a_negative, b),
        _mm256_and_si256(b_negative, a),
    );
    _mm256_sub_epi64(unsigned, correction)
}
