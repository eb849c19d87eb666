//! RandomX caches and datasets: allocation with a large-page fallback, in-place re-keying, and
//! dataset builds split across threads.

use std::ffi::c_ulong;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use capminer_protocol::RandomxFlavor;

use super::ffi::{self, Lib};
use super::superscalar::{self, CacheMemory, SuperscalarHash};
use super::{DatasetInit, RandomXFlags};
use crate::{KernelError, Result};

/// Which pages a RandomX structure actually got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PageSize {
    /// Reserved 2 MiB huge pages (hugetlbfs), what large pages ask for.
    Huge,
    /// Normal pages that the kernel was advised to back with transparent huge pages
    /// (`MADV_HUGEPAGE`); the share it actually backed is measured from `/proc/self/smaps`.
    Transparent(f64),
    /// Normal 4 KiB pages.
    Normal,
}

impl PageSize {
    /// The share of the memory on 2 MiB pages, 0 to 1.
    pub fn huge_share(&self) -> f64 {
        match self {
            PageSize::Huge => 1.0,
            PageSize::Transparent(share) => *share,
            PageSize::Normal => 0.0,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageSize::Huge => f.write_str("2MiB"),
            PageSize::Transparent(share) => write!(f, "THP {:.0}%", share * 100.0),
            PageSize::Normal => f.write_str("4KiB"),
        }
    }
}

/// Huge pages one stock CPU unit needs: its dataset, its cache and one scratchpad per thread.
pub fn huge_pages_per_unit(threads: u64) -> u64 {
    huge_pages_per_unit_for(RandomxFlavor::Stock, threads)
}

/// Huge pages one CPU unit of `flavor` needs: its dataset, its cache and one scratchpad per
/// thread.
pub fn huge_pages_per_unit_for(flavor: RandomxFlavor, threads: u64) -> u64 {
    // The dataset is not a whole number of pages; its allocation rounds up to one.
    let page = 2 << 20;
    dataset_bytes_for(flavor).div_ceil(page)
        + ffi::CACHE_BYTES / page
        + threads * (ffi::SCRATCHPAD_BYTES / page)
}

/// Bytes of one full stock dataset (2080 MiB).
pub fn dataset_bytes() -> u64 {
    dataset_bytes_for(RandomxFlavor::Stock)
}

/// Bytes of one full dataset of `flavor` (2080 MiB stock, 4128 MiB Fluence).
pub fn dataset_bytes_for(flavor: RandomxFlavor) -> u64 {
    dataset_items_for(flavor) * ffi::DATASET_ITEM_BYTES
}

/// Items in one full stock dataset.
pub fn dataset_items() -> u64 {
    dataset_items_for(RandomxFlavor::Stock)
}

/// Items in one full dataset of `flavor`, as its library counts them.
pub fn dataset_items_for(flavor: RandomxFlavor) -> u64 {
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on some targets
    // SAFETY: a pure query with no arguments.
    u64::from(unsafe { (Lib::of(flavor).dataset_item_count)() })
}

/// Bytes of one cache (256 MiB).
pub const fn cache_bytes() -> u64 {
    ffi::CACHE_BYTES
}

static HUGE_PAGE_WARNING: Once = Once::new();

/// Allocates with the asked flags; if large pages were asked for and refused, logs one warning
/// for the whole process and retries with normal pages.
pub(crate) fn alloc_with_fallback<T>(
    flags: RandomXFlags,
    what: &'static str,
    bytes: u64,
    alloc: impl Fn(u32) -> *mut T,
) -> Result<(NonNull<T>, PageSize)> {
    if flags.large_pages() {
        if let Some(ptr) = NonNull::new(alloc(flags.bits())) {
            return Ok((ptr, PageSize::Huge));
        }
        HUGE_PAGE_WARNING.call_once(|| {
            tracing::warn!(
                "huge pages refused by the OS for the RandomX {what}: falling back to normal pages, \
                 which costs hashrate. Reserve them with `sysctl -w vm.nr_hugepages={}` \
                 (2 MiB pages: {} per CPU unit with one thread), then restart capminer",
                huge_pages_per_unit_for(flags.flavor(), 1),
                huge_pages_per_unit_for(flags.flavor(), 1),
            );
        });
    }
    NonNull::new(alloc(flags.without_large_pages().bits()))
        .map(|ptr| (ptr, PageSize::Normal))
        .ok_or(KernelError::RandomXAlloc { what, bytes })
}

/// A RandomX cache (256 MiB), keyed in place. Read-only once keyed, so it can be shared.
#[derive(Debug)]
pub struct Cache {
    ptr: NonNull<ffi::RandomxCache>,
    flavor: RandomxFlavor,
    pages: PageSize,
    key: Option<[u8; 32]>,
    /// The key's SuperscalarHash programs, for capminer's own dataset initialisation.
    superscalar: Option<SuperscalarHash>,
}

// SAFETY: RandomX caches have no thread affinity; `init` takes `&mut self`, and every other use
// reads the cache, which RandomX allows from many threads at once.
unsafe impl Send for Cache {}
// SAFETY: see above: shared access is read-only.
unsafe impl Sync for Cache {}

impl Cache {
    /// Allocates a cache for these flags (JIT, Argon2 variant, large pages).
    pub fn new(flags: RandomXFlags) -> Result<Self> {
        let (ptr, pages) = alloc_with_fallback(flags, "cache", ffi::CACHE_BYTES, |bits| {
            // SAFETY: allocation with valid flag bits; a null result is handled.
            unsafe { (flags.lib().alloc_cache)(bits) }
        })?;
        let mut cache = Self {
            ptr,
            flavor: flags.flavor(),
            pages,
            key: None,
            superscalar: None,
        };
        if pages == PageSize::Normal
            && flags.transparent_huge_pages()
            && advise_huge_pages(cache.memory(), ffi::CACHE_BYTES)
        {
            cache.pages = PageSize::Transparent(0.0);
        }
        Ok(cache)
    }

    /// A new cache keyed with `key` while `beside` runs on a second thread, and how long the
    /// keying took (allocation, Argon2 fill, program generation). What runs beside is a new
    /// dataset's allocation: it writes every page of its 2080 MiB (the kernel zeroes them, on
    /// one thread; 0.2-1.2 s on this project's VM, where the host backs the pages again), and
    /// the single-threaded Argon2 fill would otherwise leave the second CPU idle for as long.
    pub fn keyed_beside<T: Send>(
        flags: RandomXFlags,
        key: &[u8; 32],
        beside: impl FnOnce() -> T + Send,
    ) -> Result<KeyedBeside<T>> {
        std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .name("randomx-beside-key".into())
                .spawn_scoped(scope, beside)
                .expect("spawning a thread beside the cache keying");
            let started = Instant::now();
            let cache = Self::new(flags).map(|mut cache| {
                cache.init(key);
                cache
            });
            let key_seconds = started.elapsed().as_secs_f64();
            let beside = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok(KeyedBeside {
                cache: cache?,
                key_seconds,
                beside,
            })
        })
    }

    /// The cache's Argon2 memory (allocated, not necessarily keyed).
    fn memory(&self) -> *mut u8 {
        // SAFETY: `ptr` is a live `randomx_cache`, whose first member is its memory pointer
        // (see `superscalar`); we only read that pointer.
        unsafe { self.ptr.as_ptr().cast::<*mut u8>().read() }
    }

    /// Keys the cache (Argon2 fill plus program generation, about a second).
    pub fn init(&mut self, key: &[u8; 32]) {
        self.init_bytes(key);
        self.key = Some(*key);
    }

    /// Keys the cache with a key of any length (upstream test vectors use short ASCII keys,
    /// the reference `randomx-benchmark` a 4-byte seed).
    pub fn init_bytes(&mut self, key: &[u8]) {
        // SAFETY: `ptr` is a live cache of this flavor's library and we hold it exclusively;
        // the key is readable.
        unsafe { (self.lib().init_cache)(self.ptr.as_ptr(), key.as_ptr().cast(), key.len()) };
        self.key = None;
        let accesses = self.flavor.cache_accesses() as usize;
        self.superscalar = Some(SuperscalarHash::new(key, accesses));
    }

    /// The keyed cache's Argon2 memory and SuperscalarHash programs; `None` before keying.
    ///
    /// The C API gives no access to the cache memory, so this reads it through the layout of
    /// `struct randomx_cache` in the RandomX that `randomx-rs` =1.6.0 vendors and in the fork
    /// that `ccp-randomx` =0.17.0 vendors (the same `src/dataset.hpp`): a standard-layout struct (asserted there) whose first member is
    /// `uint8_t* memory`, pointing at the 256 MiB Argon2 output. The version is pinned in the
    /// workspace `Cargo.toml`; the test `simd_and_scalar_items_equal_the_librarys` guards the
    /// dependence (a changed layout gives different items or a crash there).
    pub(crate) fn superscalar(&self) -> Option<(CacheMemory<'_>, &SuperscalarHash)> {
        let hash = self.superscalar.as_ref()?;
        // SAFETY: `ptr` is a live `randomx_cache`, whose first member is its memory pointer
        // (see above); we only read that pointer.
        let memory = unsafe { self.ptr.as_ptr().cast::<*const u8>().read() };
        assert!(!memory.is_null(), "a RandomX cache without memory");
        // SAFETY: a keyed cache's memory is CACHE_BYTES bytes owned by the cache, written only
        // by `init` (which needs `&mut self`), so it stays valid and unchanged for `&self`.
        let bytes = unsafe { std::slice::from_raw_parts(memory, ffi::CACHE_BYTES as usize) };
        Some((CacheMemory::new(bytes), hash))
    }

    /// The key the cache was last initialised with.
    pub fn key(&self) -> Option<&[u8; 32]> {
        self.key.as_ref()
    }

    /// Which pages it got (for transparent huge pages: the share the kernel backed so far).
    pub fn pages(&self) -> PageSize {
        match self.pages {
            PageSize::Transparent(_) => {
                PageSize::Transparent(thp_share(self.memory(), ffi::CACHE_BYTES))
            }
            other => other,
        }
    }

    /// The RandomX flavor it was allocated for.
    pub fn flavor(&self) -> RandomxFlavor {
        self.flavor
    }

    fn lib(&self) -> &'static Lib {
        Lib::of(self.flavor)
    }

    pub(crate) fn raw(&self) -> *mut ffi::RandomxCache {
        self.ptr.as_ptr()
    }
}

/// What [`Cache::keyed_beside`] gives: the keyed cache, the seconds its keying took and what
/// ran beside it.
#[derive(Debug)]
pub struct KeyedBeside<T> {
    /// The keyed cache.
    pub cache: Cache,
    /// Seconds the keying took.
    pub key_seconds: f64,
    /// What the work run beside the keying returned.
    pub beside: T,
}

impl Drop for Cache {
    fn drop(&mut self) {
        // SAFETY: we own the cache (of this library) and nothing borrows it any more.
        unsafe { (self.lib().release_cache)(self.ptr.as_ptr()) }
    }
}

/// A RandomX dataset (2080 MiB stock, 4128 MiB Fluence), allocated once and rebuilt in place
/// for every new key.
#[derive(Debug)]
pub struct Dataset {
    ptr: NonNull<ffi::RandomxDataset>,
    flavor: RandomxFlavor,
    pages: PageSize,
    init: DatasetInit,
}

// SAFETY: datasets have no thread affinity; building needs `&mut self`, and hashing only reads.
unsafe impl Send for Dataset {}
// SAFETY: see above.
unsafe impl Sync for Dataset {}

/// Items a build thread claims at a time, built between two progress reports and stop checks
/// (about 1/500 of a dataset).
const BUILD_CHUNK_ITEMS: u64 = 1 << 16;

impl Dataset {
    /// Allocates a dataset (only the large-pages flag matters here). Without reserved huge
    /// pages, the dataset is advised to the kernel for transparent huge pages before it is
    /// first written, as the random reads of hashing thrash the TLB on 4 KiB pages.
    pub fn new(flags: RandomXFlags) -> Result<Self> {
        let bytes = dataset_bytes_for(flags.flavor());
        let (ptr, pages) = alloc_with_fallback(flags, "dataset", bytes, |bits| {
            // SAFETY: allocation with valid flag bits; a null result is handled.
            unsafe { (flags.lib().alloc_dataset)(bits) }
        })?;
        let mut dataset = Self {
            ptr,
            flavor: flags.flavor(),
            pages,
            init: flags.dataset_init(),
        };
        if pages == PageSize::Normal
            && flags.transparent_huge_pages()
            && advise_huge_pages(dataset.memory(), bytes)
        {
            dataset.pages = PageSize::Transparent(0.0);
        }
        Ok(dataset)
    }

    /// Which pages it got (for transparent huge pages: the share the kernel backed so far).
    pub fn pages(&self) -> PageSize {
        match self.pages {
            PageSize::Transparent(_) => {
                PageSize::Transparent(thp_share(self.memory(), self.items() * 64))
            }
            other => other,
        }
    }

    /// Which code builds its items (from the flags it was allocated with).
    pub fn init_method(&self) -> DatasetInit {
        self.init
    }

    /// The RandomX flavor it was allocated for.
    pub fn flavor(&self) -> RandomxFlavor {
        self.flavor
    }

    /// Items it holds (its flavor's dataset size).
    pub fn items(&self) -> u64 {
        dataset_items_for(self.flavor)
    }

    fn lib(&self) -> &'static Lib {
        Lib::of(self.flavor)
    }

    pub(crate) fn memory(&self) -> *mut u8 {
        // SAFETY: a live dataset of this library; the call only reads a field.
        unsafe { (self.lib().get_dataset_memory)(self.ptr.as_ptr()).cast() }
    }

    /// Builds every item from `cache` (of the same flavor) on `threads` threads. They claim chunks of items in turn
    /// until none is left, so a thread slowed by other work costs the build only its share of
    /// the chunks, not the whole build a fixed slice would wait for.
    ///
    /// `on_thread_start(i)` runs first on build thread `i` (the miner pins it there).
    /// `progress` grows by the number of items built, in chunks; `stop()` is checked between
    /// chunks. Returns `false` if stopped before the end (the dataset is then unusable).
    pub fn build(
        &mut self,
        cache: &Cache,
        threads: usize,
        on_thread_start: &(dyn Fn(usize) + Sync),
        progress: &AtomicU64,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> bool {
        assert_eq!(
            cache.flavor(),
            self.flavor,
            "a dataset is built from a cache of its own flavor"
        );
        let items = self.items();
        let lib = self.lib();
        let threads = threads.max(1) as u64;
        let dataset = SendPtr(self.ptr.as_ptr());
        let memory = SendPtr(self.memory());
        let cache_ptr = SendPtr(cache.raw());
        let method = self.init;
        let rust = match method {
            DatasetInit::Simd | DatasetInit::Scalar => Some(
                cache
                    .superscalar()
                    .expect("building a dataset from a cache that was never keyed"),
            ),
            _ => None,
        };
        let next = AtomicU64::new(0);
        let next = &next;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|i| {
                    std::thread::Builder::new()
                        .name(format!("randomx-build-{i}"))
                        .spawn_scoped(scope, move || {
                            on_thread_start(i as usize);
                            loop {
                                if stop() {
                                    return false;
                                }
                                let at = next.fetch_add(BUILD_CHUNK_ITEMS, Ordering::Relaxed);
                                if at >= items {
                                    return true;
                                }
                                let n = BUILD_CHUNK_ITEMS.min(items - at);
                                if let Some((cache_memory, hash)) = rust {
                                    let bytes = ffi::DATASET_ITEM_BYTES;
                                    // SAFETY: items `at..at + n` lie inside the dataset's
                                    // memory, which lives for the whole scope; we hold the
                                    // dataset exclusively (`&mut self`) and every chunk is
                                    // claimed by one thread only (the counter hands each out
                                    // once), so this slice is aliased by nothing.
                                    let out = unsafe {
                                        std::slice::from_raw_parts_mut(
                                            memory.get().add((at * bytes) as usize),
                                            (n * bytes) as usize,
                                        )
                                    };
                                    superscalar::init_items(method, hash, &cache_memory, at, out);
                                } else {
                                    let (ds, cs) = (dataset.get(), cache_ptr.get());
                                    // SAFETY: the dataset and cache are live for the whole
                                    // scope; we hold the dataset exclusively (`&mut self`) and
                                    // each chunk is claimed by one thread, so the threads write
                                    // disjoint item ranges, which RandomX allows concurrently;
                                    // the cache is only read.
                                    unsafe {
                                        (lib.init_dataset)(ds, cs, at as c_ulong, n as c_ulong)
                                    };
                                }
                                progress.fetch_add(n, Ordering::Relaxed);
                            }
                        })
                        .expect("spawning a dataset build thread")
                })
                .collect();
            // Join every worker before judging, so none is left running.
            let finished: Vec<bool> = workers
                .into_iter()
                .map(|w| w.join().expect("dataset build thread panicked"))
                .collect();
            finished.into_iter().all(|done| done)
        })
    }

    pub(crate) fn raw(&self) -> *mut ffi::RandomxDataset {
        self.ptr.as_ptr()
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: we own the dataset (of this library) and nothing borrows it any more.
        unsafe { (self.lib().release_dataset)(self.ptr.as_ptr()) }
    }
}

/// Advises the kernel to back `[ptr, ptr + len)` with transparent huge pages; false if refused
/// (THP disabled, or not a Linux kernel with THP).
fn advise_huge_pages(ptr: *mut u8, len: u64) -> bool {
    let page = 4096usize;
    let start = (ptr as usize).div_ceil(page) * page;
    let end = (ptr as usize + len as usize) / page * page;
    if end <= start {
        return false;
    }
    // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE only changes how the
    // kernel backs it, never its contents.
    unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) == 0 }
}

/// The share of `[ptr, ptr + len)` the kernel backs with transparent huge pages, from the
/// `AnonHugePages` of the mappings in `/proc/self/smaps` that overlap it.
fn thp_share(ptr: *mut u8, len: u64) -> f64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0.0;
    };
    let (lo, hi) = (ptr as u64, ptr as u64 + len);
    let mut huge = 0u64;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            inside = a < hi && b > lo;
        } else if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
            huge += kb
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                * 1024;
        }
    }
    (huge as f64 / len as f64).min(1.0)
}

/// A raw pointer we promise to use only as the SAFETY comments at its uses say.
struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: only used inside `Dataset::build`, whose comments justify the sharing.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}
