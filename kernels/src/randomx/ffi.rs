//! The C API of RandomX, as built and linked by the `randomx-rs` crate.
//!
//! `randomx-rs` compiles the upstream RandomX sources with cmake and links `librandomx`
//! statically. Its safe wrapper cannot split a dataset build across threads, re-initialise a
//! dataset in place, or hash without allocating, so we declare the few C functions we need and
//! wrap them in [`super::memory`] and [`super::vm`]. These symbols resolve against the same
//! library `randomx-rs` links: one RandomX in the binary.

use std::ffi::{c_ulong, c_void};

// Keep randomx-rs (and so librandomx and libstdc++) linked into every binary that uses us.
use randomx_rs as _;

/// Opaque `randomx_cache`.
#[repr(C)]
pub(crate) struct RandomxCache {
    _private: [u8; 0],
}

/// Opaque `randomx_dataset`.
#[repr(C)]
pub(crate) struct RandomxDataset {
    _private: [u8; 0],
}

/// Opaque `randomx_vm`.
#[repr(C)]
pub(super) struct RandomxVm {
    _private: [u8; 0],
}

pub(super) const FLAG_LARGE_PAGES: u32 = 1;
pub(super) const FLAG_HARD_AES: u32 = 2;
pub(super) const FLAG_FULL_MEM: u32 = 4;
pub(super) const FLAG_JIT: u32 = 8;
pub(super) const FLAG_SECURE: u32 = 16;
pub(super) const FLAG_ARGON2_SSSE3: u32 = 32;
pub(super) const FLAG_ARGON2_AVX2: u32 = 64;

/// Bytes of one dataset item.
pub(super) const DATASET_ITEM_BYTES: u64 = 64;
/// Bytes of the Argon2 cache (RANDOMX_ARGON_MEMORY KiB).
pub(super) const CACHE_BYTES: u64 = 256 << 20;
/// Bytes of one VM scratchpad.
pub(super) const SCRATCHPAD_BYTES: u64 = 2 << 20;

unsafe extern "C" {
    pub(super) fn randomx_get_flags() -> u32;
    pub(super) fn randomx_alloc_cache(flags: u32) -> *mut RandomxCache;
    pub(super) fn randomx_init_cache(cache: *mut RandomxCache, key: *const c_void, key_size: usize);
    pub(super) fn randomx_release_cache(cache: *mut RandomxCache);
    pub(super) fn randomx_alloc_dataset(flags: u32) -> *mut RandomxDataset;
    pub(super) fn randomx_dataset_item_count() -> c_ulong;
    pub(super) fn randomx_init_dataset(
        dataset: *mut RandomxDataset,
        cache: *mut RandomxCache,
        start_item: c_ulong,
        item_count: c_ulong,
    );
    pub(super) fn randomx_get_dataset_memory(dataset: *mut RandomxDataset) -> *mut c_void;
    pub(super) fn randomx_release_dataset(dataset: *mut RandomxDataset);
    pub(super) fn randomx_create_vm(
        flags: u32,
        cache: *mut RandomxCache,
        dataset: *mut RandomxDataset,
    ) -> *mut RandomxVm;
    pub(super) fn randomx_destroy_vm(vm: *mut RandomxVm);
    pub(super) fn randomx_calculate_hash(
        vm: *mut RandomxVm,
        input: *const c_void,
        input_size: usize,
        output: *mut c_void,
    );
    pub(super) fn randomx_calculate_hash_first(
        vm: *mut RandomxVm,
        input: *const c_void,
        input_size: usize,
    );
    pub(super) fn randomx_calculate_hash_next(
        vm: *mut RandomxVm,
        next_input: *const c_void,
        next_input_size: usize,
        output: *mut c_void,
    );
    pub(super) fn randomx_calculate_hash_last(vm: *mut RandomxVm, output: *mut c_void);
}
