//! Dataset items in batches with AVX2: compiled programs ([`super::jit`]) over groups of five
//! items, many groups in flight.
//!
//! A batch is `GROUPS` groups of five items. Programs run in order over the whole batch:
//! program `p` runs on group 0, 1, 2, ... before program `p + 1` starts, so one program's code
//! stays in the instruction cache while it serves every group. Each group's cache blocks for
//! `p` (one per item, chosen by the previous program) are prefetched `AHEAD` groups before the
//! group runs; the programs of the groups in between (a few hundred nanoseconds each) hide the
//! DRAM latency, and the blocks are XORed in right after the group's program.

use super::jit::{Compiled, Group};
use super::{BLOCK_BYTES, CacheMemory, SuperscalarHash, item_registers};

/// Groups per batch.
const GROUPS: usize = 32;
/// Items per group.
const ITEMS: usize = Group::ITEMS;
/// Items per batch.
const LANES: usize = ITEMS * GROUPS;
/// How many groups ahead the cache blocks are prefetched.
const AHEAD: usize = 2;

/// Whether this CPU can run the AVX2 path and the system lets us map generated code.
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        cpu_has_avx2() && Compiled::new(SuperscalarHash::new(b"probe").programs()).is_some()
    })
}

fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Computes items `first..first + out.len() / 64` into `out`. Panics if [`available`] is not.
pub(super) fn init_items(
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    assert!(cpu_has_avx2(), "the AVX2 dataset path needs AVX2");
    let compiled = Compiled::new(hash.programs()).expect("executable memory for the programs");
    let items = out.len() / BLOCK_BYTES;
    let mut done = 0;
    while done < items {
        let count = (items - done).min(LANES);
        let chunk = &mut out[done * BLOCK_BYTES..(done + count) * BLOCK_BYTES];
        batch(&compiled, hash, cache, first + done as u64, chunk);
        done += count;
    }
}

/// Computes the (at most `LANES`) items of `out`, starting at `first`. Lanes past the end of
/// `out` compute the following items and are dropped.
fn batch(
    compiled: &Compiled,
    hash: &SuperscalarHash,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    let mut groups = [Group::default(); GROUPS];
    let mut address = [[0u64; ITEMS]; GROUPS];
    for (g, (group, address)) in groups.iter_mut().zip(&mut address).enumerate() {
        for (lane, slot) in address.iter_mut().enumerate() {
            let item = first + (ITEMS * g + lane) as u64;
            *slot = item;
            for (q, value) in item_registers(item).into_iter().enumerate() {
                *group.register(q, lane) = value;
            }
        }
    }
    let prefetch = |address: &[u64; ITEMS]| {
        for &a in address {
            prefetch(cache.block_ptr(a));
        }
    };
    for (index, program) in hash.programs().iter().enumerate() {
        address.iter().take(AHEAD).for_each(prefetch);
        for g in 0..GROUPS {
            if let Some(ahead) = address.get(g + AHEAD) {
                prefetch(ahead);
            }
            let group = &mut groups[g];
            // SAFETY: `init_items` checked that the CPU has AVX2.
            unsafe { compiled.run(index, group) };
            for (lane, a) in address[g].iter_mut().enumerate() {
                for (q, word) in cache.block(*a).into_iter().enumerate() {
                    *group.register(q, lane) ^= word;
                }
                *a = *group.register(program.address_register, lane);
            }
        }
    }
    for (i, item) in out.chunks_exact_mut(BLOCK_BYTES).enumerate() {
        let (group, lane) = (&mut groups[i / ITEMS], i % ITEMS);
        for (q, bytes) in item.chunks_exact_mut(8).enumerate() {
            bytes.copy_from_slice(&group.register(q, lane).to_le_bytes());
        }
    }
}

/// A hint to load the cache line at `ptr`; never faults.
#[inline(always)]
fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
