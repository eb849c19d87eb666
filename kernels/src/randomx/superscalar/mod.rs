//! RandomX dataset initialisation in Rust: SuperscalarHash (specification sections 3.4, 6 and
//! 7.3), bit-exact with the library's `randomx_init_dataset`.
//!
//! A dataset item `i` (64 bytes) is computed from the Argon2d cache (256 MiB, filled by the
//! library) and `RANDOMX_CACHE_ACCESSES` SuperscalarHash programs generated from the key (eight
//! in stock RandomX, sixteen in Fluence's fork; nothing else about an item differs):
//!
//! 1. eight registers start as `r0 = (i + 1) * 6364136223846793005` and `rk = r0 ^ ADDk`;
//! 2. for each program `p` in order: the 64-byte cache block at index `address % 2^22` is
//!    fetched (`address` starts as `i`), `p` runs on the registers, the block's eight words are
//!    XORed into them, and `address` becomes the register `p` designates;
//! 3. the registers, little-endian, are the item.
//!
//! Items are independent. One item alone is slow because each of its 8 (or 16) cache reads is a random
//! DRAM access that depends on the previous program, and an interpreter pays a dispatch per
//! instruction. The SIMD path ([`avx2`]) therefore compiles the programs to x86-64 machine
//! code with AVX2 ([`jit`]) that runs one program on five items at once (four in the 64-bit
//! lanes of `ymm` registers, the blocks gathered into lanes, and a fifth in general-purpose
//! registers on the integer pipes that the vector code leaves idle), and keeps 160 items in
//! flight so that the cache blocks of some are fetched while the programs of others run. The
//! scalar path ([`scalar`]) computes one item at a time, for verification and as the reference
//! of the tests.
//!
//! * [`blake2`]: Blake2b and the generator's byte stream;
//! * [`generator`]: program generation from the key (the decoder/port scheduling model);
//! * [`program`]: lowered instructions, the reciprocal, high multiplications;
//! * [`scalar`], [`avx2`] (with [`jit`]): item computation.

mod avx2;
mod blake2;
mod generator;
mod jit;
mod program;
mod scalar;

use std::fmt;

use program::Program;

use crate::{KernelError, Result};

/// Bytes of one cache block and one dataset item.
const BLOCK_BYTES: usize = 64;
/// Cache blocks (256 MiB / 64 B).
const CACHE_BLOCKS: u64 = super::ffi::CACHE_BYTES / BLOCK_BYTES as u64;

const MUL0: u64 = 6364136223846793005;
const ADD: [u64; 8] = [
    0,
    9298411001130361340,
    12065312585734608966,
    9306329213124626780,
    5281919268842080866,
    10536153434571861004,
    3398623926847679864,
    9549104520008361294,
];

/// The registers item `item` starts with.
#[inline(always)]
fn item_registers(item: u64) -> [u64; 8] {
    let r0 = item.wrapping_add(1).wrapping_mul(MUL0);
    ADD.map(|add| r0 ^ add)
}

/// The SuperscalarHash programs of one key (one per cache access), and their AVX2 code once
/// compiled.
#[derive(Debug)]
pub(crate) struct SuperscalarHash {
    programs: Vec<Program>,
    compiled: std::sync::OnceLock<Option<jit::Compiled>>,
}

impl SuperscalarHash {
    /// Generates the `accesses` programs of `key` (only its first 60 bytes matter, as in
    /// RandomX), one after the other from one generator, as `randomx_init_cache` does.
    pub(crate) fn new(key: &[u8], accesses: usize) -> Self {
        assert!(accesses >= 1, "an item mixes in one cache block at least");
        let mut rng = blake2::Blake2Generator::new(key, 0);
        Self {
            programs: (0..accesses)
                .map(|_| generator::generate(&mut rng))
                .collect(),
            compiled: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The programs as AVX2 code, compiled by the first caller (once per key, shared by the
    /// build threads); `None` if the system refuses executable memory.
    fn compiled(&self) -> Option<&jit::Compiled> {
        self.compiled
            .get_or_init(|| jit::Compiled::new(&self.programs))
            .as_ref()
    }
}

/// The keyed Argon2 cache's memory, read-only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheMemory<'a> {
    bytes: &'a [u8],
}

impl<'a> CacheMemory<'a> {
    /// Wraps the 256 MiB of a keyed cache.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        assert_eq!(bytes.len() as u64, CACHE_BLOCKS * BLOCK_BYTES as u64);
        Self { bytes }
    }

    /// The first byte of the cache.
    #[inline(always)]
    fn base(&self) -> *const u8 {
        self.bytes.as_ptr()
    }

    /// Byte offset of the block that `address` selects.
    #[inline(always)]
    fn block_offset(&self, address: u64) -> u64 {
        (address % CACHE_BLOCKS) * BLOCK_BYTES as u64
    }

    /// Start of the block that `address` selects.
    #[inline(always)]
    fn block_ptr(&self, address: u64) -> *const u8 {
        // SAFETY: the offset is below CACHE_BLOCKS * 64, so the block lies inside `bytes`.
        unsafe { self.base().add(self.block_offset(address) as usize) }
    }

    /// The eight words of the block that `address` selects.
    #[inline(always)]
    fn block(&self, address: u64) -> [u64; 8] {
        let ptr = self.block_ptr(address);
        // SAFETY: `block_ptr` points at 64 readable bytes; unaligned reads are allowed.
        std::array::from_fn(|q| unsafe { ptr.cast::<u64>().add(q).read_unaligned() }.to_le())
    }
}

/// Which code builds dataset items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatasetInit {
    /// The SIMD path when this CPU has it, else the library.
    #[default]
    Auto,
    /// capminer's AVX2 path: SuperscalarHash compiled to AVX2 code (refused on CPUs without
    /// AVX2 and where the system refuses executable memory).
    Simd,
    /// capminer's portable Rust path, one item at a time (slow: for verification).
    Scalar,
    /// The library's `randomx_init_dataset` (JIT-compiled SuperscalarHash when JIT is on).
    Library,
}

impl DatasetInit {
    /// What actually runs on this CPU: never [`DatasetInit::Auto`].
    pub fn resolve(self) -> Result<Self> {
        match self {
            DatasetInit::Auto if avx2::available() => Ok(DatasetInit::Simd),
            DatasetInit::Auto => Ok(DatasetInit::Library),
            DatasetInit::Simd if !avx2::available() => Err(KernelError::UnsupportedFlag {
                flag: "dataset_init = \"simd\"",
                reason: "this CPU has no AVX2 or the system refuses executable memory",
            }),
            other => Ok(other),
        }
    }
}

impl fmt::Display for DatasetInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetInit::Auto => "auto",
            DatasetInit::Simd => "simd (avx2 jit)",
            DatasetInit::Scalar => "scalar (rust)",
            DatasetInit::Library => "library",
        })
    }
}

/// Computes items `first..first + out.len() / 64` into `out` on the SIMD path with the
/// programs cut into `slices` functions, the scalar item's unsigned high products by `mulx` or
/// `mul` (tests of both; `init_items` uses [`jit::SLICES`] and `mulx` where the CPU has BMI2).
#[cfg(test)]
pub(crate) fn simd_items_sliced(
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    slices: usize,
    mulx: bool,
    first: u64,
    out: &mut [u8],
) {
    let compiled = jit::Compiled::with(&hash.programs, slices, mulx).expect("executable memory");
    avx2::init_items_compiled(&compiled, cache, first, out);
}

/// Computes items `first..first + out.len() / 64` into `out` with `method`, which must be
/// [`DatasetInit::Simd`] (on a CPU with AVX2) or [`DatasetInit::Scalar`].
pub(crate) fn init_items(
    method: DatasetInit,
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    assert_eq!(out.len() % BLOCK_BYTES, 0, "whole items only");
    match method {
        DatasetInit::Simd => avx2::init_items(hash, cache, first, out),
        DatasetInit::Scalar => scalar::init_items(hash, cache, first, out),
        other => panic!("init_items cannot run {other}"),
    }
}
