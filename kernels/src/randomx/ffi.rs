//! The C API of RandomX in both flavors: stock (as `randomx-rs` builds and links it) and
//! Fluence's fork (as `capminer-randomx-fluence-sys` builds it, every symbol renamed).
//!
//! `randomx-rs` compiles the upstream RandomX sources with cmake and links `librandomx`
//! statically. Its safe wrapper cannot split a dataset build across threads, re-initialise a
//! dataset in place, or hash without allocating, so we declare the few C functions we need and
//! wrap them in [`super::memory`] and [`super::vm`]. The fork's library exports the same
//! functions under `capminer_fluence_`-prefixed names. [`Lib`] is one flavor's functions as a
//! table; [`Lib::of`] picks the table of a flavor, so the rest of the module never names a
//! flavor's symbol directly. Pointers a table's functions return are only ever passed back to
//! the same table (a cache, dataset or VM remembers its flags, which carry the flavor).

use std::ffi::{c_ulong, c_void};

use capminer_protocol::RandomxFlavor;
use capminer_randomx_fluence_sys as fluence;

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
/// Bytes of the Argon2 cache (RANDOMX_ARGON_MEMORY KiB, the same in both flavors).
pub(super) const CACHE_BYTES: u64 = 256 << 20;
/// Bytes of one VM scratchpad (the same in both flavors).
pub(super) const SCRATCHPAD_BYTES: u64 = 2 << 20;

mod stock {
    use super::*;

    unsafe extern "C" {
        pub(super) fn randomx_get_flags() -> u32;
        pub(super) fn randomx_alloc_cache(flags: u32) -> *mut RandomxCache;
        pub(super) fn randomx_init_cache(
            cache: *mut RandomxCache,
            key: *const c_void,
            key_size: usize,
        );
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
}

/// One flavor's RandomX functions, with `randomx.h`'s signatures and contracts: each field is
/// unsafe to call exactly as the C function of the same name is.
#[derive(Debug)]
pub(super) struct Lib {
    pub(super) alloc_cache: unsafe fn(u32) -> *mut RandomxCache,
    pub(super) init_cache: unsafe fn(*mut RandomxCache, *const c_void, usize),
    pub(super) release_cache: unsafe fn(*mut RandomxCache),
    pub(super) alloc_dataset: unsafe fn(u32) -> *mut RandomxDataset,
    pub(super) dataset_item_count: unsafe fn() -> c_ulong,
    pub(super) init_dataset: unsafe fn(*mut RandomxDataset, *mut RandomxCache, c_ulong, c_ulong),
    pub(super) get_dataset_memory: unsafe fn(*mut RandomxDataset) -> *mut c_void,
    pub(super) release_dataset: unsafe fn(*mut RandomxDataset),
    pub(super) create_vm: unsafe fn(u32, *mut RandomxCache, *mut RandomxDataset) -> *mut RandomxVm,
    pub(super) destroy_vm: unsafe fn(*mut RandomxVm),
    pub(super) calculate_hash: unsafe fn(*mut RandomxVm, *const c_void, usize, *mut c_void),
    pub(super) calculate_hash_first: unsafe fn(*mut RandomxVm, *const c_void, usize),
    pub(super) calculate_hash_next: unsafe fn(*mut RandomxVm, *const c_void, usize, *mut c_void),
    pub(super) calculate_hash_last: unsafe fn(*mut RandomxVm, *mut c_void),
}

/// The table of the library in module `$m`, its opaque pointer types cast to ours (both
/// libraries' structures are opaque here; only their own functions read them).
macro_rules! lib {
    ($m:ident) => {
        Lib {
            alloc_cache: |flags| unsafe { $m::randomx_alloc_cache(flags) }.cast(),
            init_cache: |c, key, len| unsafe { $m::randomx_init_cache(c.cast(), key, len) },
            release_cache: |c| unsafe { $m::randomx_release_cache(c.cast()) },
            alloc_dataset: |flags| unsafe { $m::randomx_alloc_dataset(flags) }.cast(),
            dataset_item_count: || unsafe { $m::randomx_dataset_item_count() },
            init_dataset: |d, c, start, count| unsafe {
                $m::randomx_init_dataset(d.cast(), c.cast(), start, count)
            },
            get_dataset_memory: |d| unsafe { $m::randomx_get_dataset_memory(d.cast()) },
            release_dataset: |d| unsafe { $m::randomx_release_dataset(d.cast()) },
            create_vm: |flags, c, d| {
                unsafe { $m::randomx_create_vm(flags, c.cast(), d.cast()) }.cast()
            },
            destroy_vm: |vm| unsafe { $m::randomx_destroy_vm(vm.cast()) },
            calculate_hash: |vm, input, len, out| unsafe {
                $m::randomx_calculate_hash(vm.cast(), input, len, out)
            },
            calculate_hash_first: |vm, input, len| unsafe {
                $m::randomx_calculate_hash_first(vm.cast(), input, len)
            },
            calculate_hash_next: |vm, input, len, out| unsafe {
                $m::randomx_calculate_hash_next(vm.cast(), input, len, out)
            },
            calculate_hash_last: |vm, out| unsafe {
                $m::randomx_calculate_hash_last(vm.cast(), out)
            },
        }
    };
}

// Each entry's unsafe block forwards one call unchanged to the C function of the same name;
// the caller of the entry upholds that function's contract (see `Lib`).
#[allow(clippy::undocumented_unsafe_blocks)]
static STOCK: Lib = lib!(stock);
#[allow(clippy::undocumented_unsafe_blocks)]
static FLUENCE: Lib = lib!(fluence);

impl Lib {
    /// The functions of `flavor`'s library.
    pub(super) fn of(flavor: RandomxFlavor) -> &'static Lib {
        match flavor {
            RandomxFlavor::Stock => &STOCK,
            RandomxFlavor::Fluence => &FLUENCE,
        }
    }
}

/// What this CPU and build support, as RandomX reports it (a CPU query: the same in both
/// flavors, which share this code).
pub(super) fn get_flags() -> u32 {
    // SAFETY: a pure query with no arguments.
    unsafe { stock::randomx_get_flags() }
}

/// Checks that each flavor's table reaches its own library: each library's item count is its
/// `configuration.h`'s, so a binary where one flavor's calls land in the other's library
/// (two same-named symbols silently merged, say) fails here, before it hashes anything.
/// Cheap (two pure calls); run once by [`super::RandomXFlags::resolve`].
pub(super) fn check_linked() {
    for flavor in [RandomxFlavor::Stock, RandomxFlavor::Fluence] {
        // SAFETY: a pure query with no arguments.
        let count = unsafe { (Lib::of(flavor).dataset_item_count)() };
        #[allow(clippy::useless_conversion)] // c_ulong is u32 on some targets
        let items = u64::from(count);
        assert_eq!(
            items * DATASET_ITEM_BYTES,
            flavor.dataset_bytes(),
            "the {flavor:?} RandomX functions reach the wrong library: this binary is linked wrongly"
        );
    }
}
