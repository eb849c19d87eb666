//! Dataset items in batches with AVX2: compiled programs ([`super::jit`]) over groups of five
//! items, many groups in flight.
//!
//! A batch is `GROUPS` groups of five items (four AVX2 lanes and one in general-purpose
//! registers, see [`super::jit`]). Programs run in order over the whole batch:
//! program `p` runs on group 0, 1, 2, ... before program `p + 1` starts, and each of its slices
//! (halves, see [`super::jit::SLICES`]) runs on every group before the next slice (one call,
//! the loop over the groups inside the compiled code), so the code that runs stays in the
//! instruction and micro-op caches while it serves every group. When the steps of two groups
//! end, the compiled code prefetches the blocks their next steps mix in; they are
//! needed only after the other groups' steps have run (microseconds later), so their DRAM
//! latency is hidden and the compiled code finds them in the cache. After the last program a
//! group's items are written out at once, between two groups' steps, rather than all at the end
//! of the batch.

use super::jit::{Compiled, GROUP_ITEMS, Group, PREFETCH_GROUPS, VECTOR_LANES};
use super::{BLOCK_BYTES, CacheMemory, SuperscalarHash, item_registers};

/// Groups per batch.
const GROUPS: usize = 32;
/// Items per batch.
const LANES: usize = GROUP_ITEMS * GROUPS;
const _: () = assert!(
    GROUPS.is_multiple_of(PREFETCH_GROUPS),
    "the compiled code prefetches every group's blocks only in whole runs"
);

/// Whether this CPU can run the AVX2 path and the system lets us map generated code.
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        cpu_has_avx2() && Compiled::new(SuperscalarHash::new(b"probe", 8).programs()).is_some()
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
    let compiled = hash
        .compiled()
        .expect("executable memory for the programs (checked by `available`)");
    init_items_compiled(compiled, cache, first, out);
}

/// [`init_items`] with `compiled`.
pub(super) fn init_items_compiled(
    compiled: &Compiled,
    cache: &CacheMemory<'_>,
    first: u64,
    out: &mut [u8],
) {
    let items = out.len() / BLOCK_BYTES;
    let mut done = 0;
    while done < items {
        let count = (items - done).min(LANES);
        let chunk = &mut out[done * BLOCK_BYTES..(done + count) * BLOCK_BYTES];
        batch(compiled, cache, first + done as u64, chunk);
        done += count;
    }
}

/// Computes the (at most `LANES`) items of `out`, starting at `first`. Lanes past the end of
/// `out` compute the following items and are dropped.
fn batch(compiled: &Compiled, cache: &CacheMemory<'_>, first: u64, out: &mut [u8]) {
    let mut groups = [Group::default(); GROUPS];
    for (g, group) in groups.iter_mut().enumerate() {
        let group_first = first + (GROUP_ITEMS * g) as u64;
        for lane in 0..VECTOR_LANES {
            let item = group_first + lane as u64;
            for (row, value) in group.rows.iter_mut().zip(item_registers(item)) {
                row[lane] = value;
            }
            // The first program mixes in the block the item's number selects.
            group.blocks[lane] = cache.block_offset(item);
        }
        let item = group_first + VECTOR_LANES as u64;
        group.scalar = item_registers(item);
        group.scalar_block = cache.block_offset(item);
        prefetch(cache, group);
    }
    let programs = compiled.programs();
    let last = programs - 1;
    let final_slice = compiled.slices() - 1;
    for index in 0..programs {
        // Each slice over every group before the next slice starts, so that its code stays in
        // the micro-op cache.
        for slice in 0..final_slice {
            // SAFETY: `init_items` checked AVX2; the leading slices read no blocks.
            unsafe { compiled.run(index, slice, &mut groups, cache) };
        }
        if index < last {
            // SAFETY: `init_items` checked AVX2; the offsets are `block_offset`s, or what the
            // compiled code left, which is one too. The code prefetches the next blocks of the
            // groups two at a time (`PREFETCH_GROUPS`).
            unsafe { compiled.run(index, final_slice, &mut groups, cache) };
            continue;
        }
        // The last program: each group's items are written out as soon as they are final, so
        // the stores drain while the next group computes (one group a call, so nothing is
        // prefetched: no program follows).
        let mut items = out.chunks_exact_mut(BLOCK_BYTES);
        for group in &mut groups {
            // SAFETY: as above.
            unsafe { compiled.run(last, final_slice, std::slice::from_mut(group), cache) };
            for (lane, item) in (&mut items).take(GROUP_ITEMS).enumerate() {
                for (q, bytes) in item.chunks_exact_mut(8).enumerate() {
                    let value = if lane < VECTOR_LANES {
                        group.rows[q][lane]
                    } else {
                        group.scalar[q]
                    };
                    bytes.copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
}

/// Asks for the group's next blocks to be loaded into the cache; never faults.
#[inline(always)]
fn prefetch(cache: &CacheMemory<'_>, group: &Group) {
    for &offset in group.blocks.iter().chain([&group.scalar_block]) {
        let ptr = cache.base().wrapping_add(offset as usize);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that cannot fault, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ptr;
    }
}
