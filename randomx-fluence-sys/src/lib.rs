//! The C API of Fluence's RandomX fork (as `ccp-randomx` 0.17.0 vendors it: stock RandomX with
//! `RANDOMX_CACHE_ACCESSES` 16 and `RANDOMX_DATASET_BASE_SIZE` 4 GiB), under renamed symbols.
//!
//! The build script compiles the fork and prefixes every symbol it defines with
//! `capminer_fluence_`, so this library links beside stock RandomX (`randomx-rs`) in one binary
//! without either shadowing the other. The functions keep RandomX's C signatures and semantics
//! (`randomx.h`); only their link names differ. Pointers from one library must never be passed
//! to the other: their structures have the same layout but different parameters.

#![no_std]

use core::ffi::{c_ulong, c_void};

/// Opaque `randomx_cache` of the fork.
#[repr(C)]
#[derive(Debug)]
pub struct randomx_cache {
    _private: [u8; 0],
}

/// Opaque `randomx_dataset` of the fork.
#[repr(C)]
#[derive(Debug)]
pub struct randomx_dataset {
    _private: [u8; 0],
}

/// Opaque `randomx_vm` of the fork.
#[repr(C)]
#[derive(Debug)]
pub struct randomx_vm {
    _private: [u8; 0],
}

unsafe extern "C" {
    #[link_name = "capminer_fluence_randomx_get_flags"]
    pub fn randomx_get_flags() -> u32;
    #[link_name = "capminer_fluence_randomx_alloc_cache"]
    pub fn randomx_alloc_cache(flags: u32) -> *mut randomx_cache;
    #[link_name = "capminer_fluence_randomx_init_cache"]
    pub fn randomx_init_cache(cache: *mut randomx_cache, key: *const c_void, key_size: usize);
    #[link_name = "capminer_fluence_randomx_release_cache"]
    pub fn randomx_release_cache(cache: *mut randomx_cache);
    #[link_name = "capminer_fluence_randomx_alloc_dataset"]
    pub fn randomx_alloc_dataset(flags: u32) -> *mut randomx_dataset;
    #[link_name = "capminer_fluence_randomx_dataset_item_count"]
    pub fn randomx_dataset_item_count() -> c_ulong;
    #[link_name = "capminer_fluence_randomx_init_dataset"]
    pub fn randomx_init_dataset(
        dataset: *mut randomx_dataset,
        cache: *mut randomx_cache,
        start_item: c_ulong,
        item_count: c_ulong,
    );
    #[link_name = "capminer_fluence_randomx_get_dataset_memory"]
    pub fn randomx_get_dataset_memory(dataset: *mut randomx_dataset) -> *mut c_void;
    #[link_name = "capminer_fluence_randomx_release_dataset"]
    pub fn randomx_release_dataset(dataset: *mut randomx_dataset);
    #[link_name = "capminer_fluence_randomx_create_vm"]
    pub fn randomx_create_vm(
        flags: u32,
        cache: *mut randomx_cache,
        dataset: *mut randomx_dataset,
    ) -> *mut randomx_vm;
    #[link_name = "capminer_fluence_randomx_destroy_vm"]
    pub fn randomx_destroy_vm(vm: *mut randomx_vm);
    #[link_name = "capminer_fluence_randomx_calculate_hash"]
    pub fn randomx_calculate_hash(
        vm: *mut randomx_vm,
        input: *const c_void,
        input_size: usize,
        output: *mut c_void,
    );
    #[link_name = "capminer_fluence_randomx_calculate_hash_first"]
    pub fn randomx_calculate_hash_first(
        vm: *mut randomx_vm,
        input: *const c_void,
        input_size: usize,
    );
    #[link_name = "capminer_fluence_randomx_calculate_hash_next"]
    pub fn randomx_calculate_hash_next(
        vm: *mut randomx_vm,
        next_input: *const c_void,
        next_input_size: usize,
        output: *mut c_void,
    );
    #[link_name = "capminer_fluence_randomx_calculate_hash_last"]
    pub fn randomx_calculate_hash_last(vm: *mut randomx_vm, output: *mut c_void);
}
