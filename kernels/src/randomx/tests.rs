//! Known-answer tests: upstream RandomX's own vectors, and light/full/pipelined agreement.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::superscalar::{self};
use super::*;
use crate::search::Searcher;

pub(super) fn light_vm(options: RandomXOptions, key: &[u8]) -> Vm {
    let flags = RandomXFlags::resolve(&options.light()).unwrap();
    let mut cache = Cache::new(flags).unwrap();
    // Upstream vectors use short ASCII keys: key the raw FFI with exactly those bytes.
    init_cache_raw(&mut cache, key);
    Vm::new(flags, VmMemory::Cache(Arc::new(cache))).unwrap()
}

/// An unkeyed light-mode cache on ordinary pages, for the dataset-item tests.
fn light_cache() -> Cache {
    let flags = RandomXFlags::resolve(&RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    })
    .unwrap()
    .light();
    Cache::new(flags).unwrap()
}

fn init_cache_raw(cache: &mut Cache, key: &[u8]) {
    cache.init_bytes(key);
}

/// The vectors of upstream RandomX's `src/tests/tests.cpp` ("Hash test 1a-1e").
const UPSTREAM: &[(&str, &str, &str)] = &[
    (
        "test key 000",
        "This is a test",
        "639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f",
    ),
    (
        "test key 000",
        "Lorem ipsum dolor sit amet",
        "300a0adb47603dedb42228ccb2b211104f4da45af709cd7547cd049e9489c969",
    ),
    (
        "test key 000",
        "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua",
        "c36d4ed4191e617309867ed66a443be4075014e2b061bcdaf9ce7b721d2b77a8",
    ),
    (
        "test key 001",
        "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua",
        "e9ff4503201c0c2cca26d285c93ae883f9b1d30c9eb240b820756f2d5a7905fc",
    ),
];

/// Upstream "Hash test 1e": a binary input given in hex.
const UPSTREAM_HEX: (&str, &str, &str) = (
    "test key 001",
    "0b0b98bea7e805e0010a2126d287a2a0cc833d312cb786385a7c2f9de69d25537f584a9bc9977b00000000666fd8753bf61a8631f12984e3fd44f4014eca629276817b56f32e9b68bd82f416",
    "c56414121acda1713c2f2a819d8ae38aed7c80c35c2a769298d34f03833cd5f1",
);

fn check_upstream(options: RandomXOptions) {
    for key in ["test key 000", "test key 001"] {
        let mut vm = light_vm(options, key.as_bytes());
        for (k, input, want) in UPSTREAM.iter().filter(|(k, _, _)| *k == key) {
            assert_eq!(
                hex::encode(vm.hash(input.as_bytes())),
                *want,
                "{k} / {input}"
            );
        }
        if key == UPSTREAM_HEX.0 {
            let input = hex::decode(UPSTREAM_HEX.1).unwrap();
            assert_eq!(hex::encode(vm.hash(&input)), UPSTREAM_HEX.2, "hex vector");
        }
    }
}

#[test]
fn upstream_vectors_with_the_jit() {
    check_upstream(RandomXOptions {
        jit: Some(true),
        large_pages: false,
        ..RandomXOptions::default()
    });
}

#[test]
fn upstream_vectors_with_the_interpreter_and_soft_aes() {
    check_upstream(RandomXOptions {
        jit: Some(false),
        hard_aes: Some(false),
        argon2: Argon2Impl::Portable,
        large_pages: false,
        ..RandomXOptions::default()
    });
}

#[test]
fn pipelined_search_equals_single_hashes_and_finds_every_hit() {
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };
    let key = crate::key::cpu_unit_key(&[7; 32], &[9; 32]);
    let mut single = light_vm(options, &key);
    let expected: Vec<[u8; 32]> = (100..108)
        .map(|n| single.hash(&crate::key::cpu_input(n)))
        .collect();
    // A target between the hashes' values: exactly the hashes at or below it are hits.
    let mut sorted = expected.clone();
    sorted.sort();
    let target = sorted[3];
    let mut searcher = RandomXSearcher::new(light_vm(options, &key));
    let searched = searcher.search(100, 8, &target, &mut || false).unwrap();
    assert_eq!(searched.hashed, 8);
    let want: Vec<u64> = (100..108u64)
        .filter(|n| expected[(n - 100) as usize] <= target)
        .collect();
    assert_eq!(want.len(), 4);
    assert_eq!(
        searched.hits.iter().map(|h| h.nonce).collect::<Vec<_>>(),
        want
    );
    for hit in &searched.hits {
        assert_eq!(hit.hash, expected[(hit.nonce - 100) as usize]);
    }
}

#[test]
fn batched_hashes_equal_single_hashes_for_any_inputs() {
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };
    let mut vm = light_vm(options, b"batch");
    let inputs: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![0; 76], b"This is a test".to_vec()];
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let batched = vm.hash_batch(&refs);
    let single: Vec<[u8; 32]> = inputs.iter().map(|i| vm.hash(i)).collect();
    assert_eq!(batched, single);
    assert!(vm.hash_batch(&[]).is_empty());
}

#[test]
fn search_stops_when_asked_after_the_current_hash() {
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };
    let mut searcher = RandomXSearcher::new(light_vm(options, b"stop"));
    let mut calls = 0;
    let searched = searcher
        .search(0, 1000, &[0xff; 32], &mut || {
            calls += 1;
            calls >= 3
        })
        .unwrap();
    assert_eq!(searched.hashed, 3, "stop is checked between hashes");
    assert_eq!(
        searched.hits.len(),
        3,
        "an all-ones target accepts every hash"
    );
}

#[test]
fn flags_resolve_modes_and_refuse_secure_without_jit() {
    let flags = RandomXFlags::resolve(&RandomXOptions::default()).unwrap();
    assert!(flags.full_memory() && flags.large_pages());
    assert!(!flags.light().full_memory());
    assert!(flags.to_string().contains("full_mem"));
    let err = RandomXFlags::resolve(&RandomXOptions {
        jit: Some(false),
        secure: true,
        ..RandomXOptions::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("secure"), "{err}");
}

/// `Cache::keyed_beside` keys the cache as `init` does, runs the other work on another thread
/// meanwhile and hands back its result.
#[test]
fn keyed_beside_keys_the_cache_while_the_other_work_runs_on_another_thread() {
    let flags = RandomXFlags::resolve(&RandomXOptions::default().light()).unwrap();
    let key = [7; 32];
    let caller = std::thread::current().id();
    let keyed = Cache::keyed_beside(flags, &key, || std::thread::current().id()).unwrap();
    assert_ne!(keyed.beside, caller, "the other work ran on another thread");
    assert!(keyed.key_seconds > 0.0);
    assert_eq!(keyed.cache.key(), Some(&key));
    let mut plain = Cache::new(flags).unwrap();
    plain.init(&key);
    let mut beside = Vm::new(flags, VmMemory::Cache(Arc::new(keyed.cache))).unwrap();
    let mut alone = Vm::new(flags, VmMemory::Cache(Arc::new(plain))).unwrap();
    for nonce in [0u64, 42] {
        let input = crate::key::cpu_input(nonce);
        assert_eq!(beside.hash(&input), alone.hash(&input), "nonce {nonce}");
    }
}

/// The one full-dataset test: a dataset built on two threads in slices, by capminer's SIMD code
/// where the CPU has AVX2 (the default), hashes exactly as light mode does (2080 MiB).
#[test]
fn full_dataset_built_in_slices_hashes_like_light_mode() {
    let options = RandomXOptions {
        large_pages: true, // exercises the fallback where the OS has no huge pages
        ..RandomXOptions::default()
    };
    let flags = RandomXFlags::resolve(&options).unwrap();
    let key = crate::key::cpu_unit_key(&[1; 32], &[2; 32]);
    // As the miner keys a unit: the dataset allocated beside the cache's keying.
    let keyed = Cache::keyed_beside(flags, &key, || Dataset::new(flags)).unwrap();
    let cache = keyed.cache;
    let mut dataset = keyed.beside.unwrap();
    if DatasetInit::Simd.resolve().is_ok() {
        assert_eq!(dataset.init_method(), DatasetInit::Simd, "auto picks SIMD");
    }
    let progress = AtomicU64::new(0);
    assert!(dataset.build(&cache, 2, &|_| {}, &progress, &|| false));
    assert_eq!(progress.into_inner(), dataset_items());
    let mut full =
        RandomXSearcher::new(Vm::new(flags, VmMemory::Dataset(Arc::new(dataset))).unwrap());
    let mut light = Vm::new(flags.light(), VmMemory::Cache(Arc::new(cache))).unwrap();
    for nonce in [0u64, 1, 0xdead_beef, u64::MAX] {
        assert_eq!(
            full.hash_one(nonce).unwrap(),
            light.hash(&crate::key::cpu_input(nonce)),
            "nonce {nonce}"
        );
    }
}

/// capminer's own CPU proof vectors, as `docs/PROTOCOL.md` lists them: seed and unit id give
/// `K = keccak256(seed ‖ unit_id)`; the RandomX input is the nonce as 8 little-endian bytes.
pub(super) const PROTOCOL: &[(&str, &str, &str, u64, &str)] = &[
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5",
        0,
        "a2dd3f45a01e6eeeb6b51ba8084215befeeeffcf5e17ceb83156cd9cf6f80a8b",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5",
        1,
        "45d459d449c97906e78e027fd7df7f51ac61156a3b7ef568b10c0810d19d76c8",
    ),
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3e92e0db88d6afea9edc4eedf62fffa4d92bcdfc310dccbe943747fe8302e871",
        0,
        "e4be1eb6530f14ca883c62eeaa1e48012553f9e753505e10a2a09ec951e34e41",
    ),
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3e92e0db88d6afea9edc4eedf62fffa4d92bcdfc310dccbe943747fe8302e871",
        42,
        "d9c76ab8ab796efd370045b95299426f1d30f32a3407941be2d6d192c541d6f4",
    ),
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3e92e0db88d6afea9edc4eedf62fffa4d92bcdfc310dccbe943747fe8302e871",
        u64::MAX,
        "7af0cea2474daefdd8796fe59df64a1962c3b2d382f8195ad081e512f437f066",
    ),
];

#[test]
fn capminer_cpu_proof_vectors() {
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };
    let b32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
    for (seed, unit, key, nonce, hash) in PROTOCOL {
        let k = crate::key::cpu_unit_key(&b32(seed), &b32(unit));
        assert_eq!(hex::encode(k), *key, "K for seed {seed} unit {unit}");
        let mut searcher = RandomXSearcher::new(light_vm(options, &k));
        assert_eq!(
            hex::encode(searcher.hash_one(*nonce).unwrap()),
            *hash,
            "nonce {nonce}"
        );
    }
}

/// The library's items `first..first + count`, built by `randomx_init_dataset` into a scratch
/// buffer rather than a 2 GiB dataset.
pub(super) fn library_items(cache: &Cache, first: u64, count: u64) -> Vec<u8> {
    let mut out = vec![0u8; (count * 64) as usize];
    library_items_into(cache, first, &mut out);
    out
}

/// The library's items from `first` on into `out` (a whole number of 64-byte items).
fn library_items_into(cache: &Cache, first: u64, out: &mut [u8]) {
    /// `struct randomx_dataset` of the vendored `dataset.hpp`: the library only reads `memory`.
    #[repr(C)]
    struct ScratchDataset {
        memory: *mut u8,
        dealloc: *const u8,
    }
    assert_eq!(out.len() % 64, 0, "whole items");
    let count = (out.len() / 64) as u64;
    // The library writes item `i` at `memory + 64 i`: aim `memory` so item `first` lands at
    // the buffer's start (the pointer is only used after adding back `64 first`).
    let mut scratch = ScratchDataset {
        memory: out.as_mut_ptr().wrapping_sub((first * 64) as usize),
        dealloc: std::ptr::null(),
    };
    // SAFETY: the library writes exactly items `first..first + count`, i.e. the whole buffer
    // and nothing else; the cache is live and keyed.
    unsafe {
        (ffi::Lib::of(cache.flavor()).init_dataset)(
            (&raw mut scratch).cast(),
            cache.raw(),
            first as std::ffi::c_ulong,
            count as std::ffi::c_ulong,
        )
    };
}

pub(super) fn rust_items(cache: &Cache, method: DatasetInit, first: u64, count: u64) -> Vec<u8> {
    let mut out = vec![0u8; (count * 64) as usize];
    rust_items_into(cache, method, first, &mut out);
    out
}

/// Items from `first` on into `out` by capminer's `method`.
fn rust_items_into(cache: &Cache, method: DatasetInit, first: u64, out: &mut [u8]) {
    let (memory, hash) = cache.superscalar().expect("keyed");
    superscalar::init_items(method, hash, &memory, first, out);
}

/// Item ranges that cover the first and last items, single items, and counts that are not
/// multiples of the SIMD batch.
fn sample_ranges() -> Vec<(u64, u64)> {
    let items = dataset_items();
    vec![
        (0, 1),
        (0, 37),
        (1, 3),
        (4095, 70),
        (1_000_003, 101),
        (items / 2 - 17, 33),
        (0xdead_beef % items, 64),
        (items - 45, 45),
        (items - 1, 1),
    ]
}

#[test]
fn simd_and_scalar_items_equal_the_librarys() {
    let long_key = [0x5a_u8; 77]; // longer than the 60 bytes the program generator reads
    let unit_key = crate::key::cpu_unit_key(&[3; 32], &[4; 32]);
    let keys: [&[u8]; 3] = [b"test key 000", &unit_key, &long_key];
    let simd = DatasetInit::Simd.resolve().is_ok();
    if !simd {
        eprintln!("this CPU has no AVX2: only the scalar path is checked");
    }
    let mut cache = light_cache();
    for key in keys {
        init_cache_raw(&mut cache, key);
        for (first, count) in sample_ranges() {
            let want = library_items(&cache, first, count);
            let scalar = rust_items(&cache, DatasetInit::Scalar, first, count);
            assert!(scalar == want, "scalar items {first}+{count}, key {key:x?}");
            if simd {
                let got = rust_items(&cache, DatasetInit::Simd, first, count);
                assert!(got == want, "SIMD items {first}+{count}, key {key:x?}");
            }
        }
    }
}

/// However the programs are cut into functions (one, the default two, three, seven), the SIMD
/// items are the library's: the registers cross every cut intact and only the last slice mixes
/// in the blocks.
#[test]
fn every_cut_of_the_programs_gives_the_librarys_items() {
    if DatasetInit::Simd.resolve().is_err() {
        eprintln!("this CPU has no AVX2: nothing to check");
        return;
    }
    let mut cache = light_cache();
    init_cache_raw(&mut cache, b"cut key");
    for (first, count) in [(0, 160), (1_000_003, 37)] {
        let want = library_items(&cache, first, count);
        // With `mulx` only where the CPU has BMI2 (the path `init_items` takes there).
        let bmi2 = std::arch::is_x86_feature_detected!("bmi2");
        for (slices, mulx) in [(1, false), (2, false), (2, bmi2), (3, bmi2), (7, false)] {
            let (memory, hash) = cache.superscalar().expect("keyed");
            let mut got = vec![0u8; want.len()];
            superscalar::simd_items_sliced(hash, &memory, slices, mulx, first, &mut got);
            assert!(
                got == want,
                "{slices} slices, mulx {mulx}, items {first}+{count}"
            );
        }
    }
}

#[test]
fn dataset_init_choice_resolves_and_shows_in_the_flags() {
    let scalar = RandomXFlags::resolve(&RandomXOptions {
        dataset_init: DatasetInit::Scalar,
        ..RandomXOptions::default()
    })
    .unwrap();
    assert_eq!(scalar.dataset_init(), DatasetInit::Scalar);
    assert!(
        scalar.to_string().contains("dataset_init=scalar"),
        "{scalar}"
    );
    assert_eq!(
        scalar.bits() >> 29,
        0,
        "capminer's bits never reach RandomX"
    );
    let auto = RandomXFlags::resolve(&RandomXOptions::default()).unwrap();
    let want = if DatasetInit::Simd.resolve().is_ok() {
        DatasetInit::Simd
    } else {
        DatasetInit::Library
    };
    assert_eq!(auto.dataset_init(), want);
    assert_eq!(
        auto.with_dataset_init(DatasetInit::Library)
            .unwrap()
            .dataset_init(),
        DatasetInit::Library
    );
}

/// Benchmark mode (two datasets of 2080 MiB, a minute or more on two cores): every item of a
/// SIMD-built dataset equals the library's. Run with
/// `cargo test --release -p capminer-kernels --lib -- --ignored every_item_of_a_simd_dataset`.
#[test]
#[ignore = "benchmark mode: two full datasets (2 x 2080 MiB); CI compares sampled ranges"]
fn every_item_of_a_simd_dataset_equals_the_librarys() {
    let flags = RandomXFlags::resolve(&RandomXOptions {
        large_pages: false,
        dataset_init: DatasetInit::Simd,
        ..RandomXOptions::default()
    })
    .unwrap();
    let mut cache = Cache::new(flags).unwrap();
    cache.init(&crate::key::cpu_unit_key(&[5; 32], &[6; 32]));
    let mut dataset = Dataset::new(flags).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(dataset.build(&cache, threads, &|_| {}, &AtomicU64::new(0), &|| false));
    let items = dataset_items();
    let built = dataset.memory() as usize;
    let chunk = 1u64 << 16;
    let mismatches = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let first = next.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
                    if first >= items {
                        break;
                    }
                    let count = chunk.min(items - first);
                    let want = library_items(&cache, first, count);
                    // SAFETY: the range lies inside the built dataset, which is only read here.
                    let got = unsafe {
                        std::slice::from_raw_parts(
                            (built as *const u8).add((first * 64) as usize),
                            want.len(),
                        )
                    };
                    if got != want.as_slice() {
                        mismatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        eprintln!("mismatch in items {first}+{count}");
                    }
                }
            });
        }
    });
    assert_eq!(mismatches.into_inner(), 0);
}

/// Benchmark mode (`--ignored`, release): the CPU time per item of capminer's SIMD
/// initialisation against the library's `randomx_init_dataset` (the code the reference
/// `randomx-benchmark` runs, from the same sources), interleaved in one process so that both
/// meet the host's same minutes: chunks of `CAPMINER_INIT_CHUNK` items (default 20,800, 10-25
/// ms) alternate between the two, the library first in every other pair, each timed in its
/// thread's CPU time, on `CAPMINER_INIT_THREADS` threads at once (default 1; each its own
/// items), `CAPMINER_INIT_PAIRS` pairs each (default 100), each side into its own buffer larger
/// than the caches, as a build writes its dataset, and each its own items. The SIMD side's last
/// chunk is compared with the library's items. The cache is on 4 KiB pages, or on reserved 2 MiB pages
/// with `CAPMINER_INIT_LARGE_PAGES=1`. With `CAPMINER_INIT_SCALAR=1` the scalar path is timed
/// after, on one thread.
#[test]
#[ignore = "a measurement, not a check: run with --release --ignored --nocapture"]
fn init_throughput() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (threads, pairs) = (
        env("CAPMINER_INIT_THREADS", 1),
        env("CAPMINER_INIT_PAIRS", 100),
    );
    let chunk = env("CAPMINER_INIT_CHUNK", 20_800) as u64;
    // With CAPMINER_INIT_LARGE_PAGES=1 the cache is on reserved 2 MiB pages, as in the
    // dataset_init bench's runs with them (else on 4 KiB pages).
    let mut cache = Cache::new(
        RandomXFlags::resolve(&RandomXOptions {
            large_pages: std::env::var("CAPMINER_INIT_LARGE_PAGES").is_ok_and(|v| v == "1"),
            ..RandomXOptions::default()
        })
        .unwrap()
        .light(),
    )
    .unwrap();
    eprintln!("cache on {} pages", cache.pages());
    let started = std::time::Instant::now();
    cache.init(&crate::key::cpu_unit_key(&[8; 32], &[9; 32]));
    eprintln!("cache init {:.3} s", started.elapsed().as_secs_f64());
    let (_, hash) = cache.superscalar().unwrap();
    let sizes: Vec<usize> = hash.programs().iter().map(|p| p.ops.len()).collect();
    let muls: Vec<usize> = hash
        .programs()
        .iter()
        .map(|p| p.multiplications())
        .collect();
    eprintln!("program sizes {sizes:?}, multiplications {muls:?}");
    // This thread's CPU time, which other processes' load disturbs less than wall time.
    let cpu = || {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let ns = |seconds: f64| seconds * 1e9 / chunk as f64;
    let cache = &cache;
    std::thread::scope(|scope| {
        for thread in 0..threads as u64 {
            scope.spawn(move || {
                // Each side writes its chunks one after the other into its own buffer, written
                // once before (so no page is first touched while timed) and larger than the
                // caches, as a build writes its dataset: the items go out to DRAM.
                let bytes = chunk as usize * 64;
                let mut wants = vec![1u8; pairs * bytes];
                let mut gots = vec![1u8; pairs * bytes];
                // (library, SIMD) seconds per pair.
                let mut times: Vec<(f64, f64)> = Vec::with_capacity(pairs);
                for (pair, (want, got)) in (0u64..).zip(
                    wants
                        .chunks_exact_mut(bytes)
                        .zip(gots.chunks_exact_mut(bytes)),
                ) {
                    // The two sides build different items (the second half of the dataset
                    // for the SIMD side), as no build computes an item twice: the same items
                    // would find the blocks the other side just read in the cache.
                    let first = (thread * pairs as u64 + pair) * chunk;
                    let simd_first = dataset_items() / 2 + first;
                    let mut library = || {
                        let started = cpu();
                        library_items_into(cache, first, want);
                        cpu() - started
                    };
                    let mut simd = || {
                        let started = cpu();
                        rust_items_into(cache, DatasetInit::Simd, simd_first, got);
                        cpu() - started
                    };
                    let (lib, simd) = if pair % 2 == 0 {
                        let lib = library();
                        (lib, simd())
                    } else {
                        let simd = simd();
                        (library(), simd)
                    };
                    times.push((lib, simd));
                    if pair + 1 == pairs as u64 {
                        let want = library_items(cache, simd_first, chunk);
                        assert!(got == want.as_slice(), "items {simd_first}+{chunk}");
                    }
                }
                let lib: f64 = times.iter().map(|t| t.0).sum();
                let simd: f64 = times.iter().map(|t| t.1).sum();
                let mut ratios: Vec<f64> = times.iter().map(|t| t.1 / t.0).collect();
                ratios.sort_by(f64::total_cmp);
                let quickest = |side: fn(&(f64, f64)) -> f64| {
                    let mut v: Vec<f64> = times.iter().map(side).collect();
                    v.sort_by(f64::total_cmp);
                    let tenth = (v.len() / 10).max(1);
                    ns(v[..tenth].iter().sum::<f64>() / tenth as f64)
                };
                eprintln!(
                    "thread {thread}: library {:.1} ns/item, simd {:.1} ns/item over {pairs} \
                     pairs of {chunk}-item chunks: ratio {:.3} (median of the pairs {:.3}); \
                     quickest tenth {:.1} against {:.1} ({:.3})",
                    ns(lib / pairs as f64),
                    ns(simd / pairs as f64),
                    simd / lib,
                    ratios[ratios.len() / 2],
                    quickest(|t| t.0),
                    quickest(|t| t.1),
                    quickest(|t| t.1) / quickest(|t| t.0),
                );
            });
        }
    });
    if std::env::var_os("CAPMINER_INIT_SCALAR").is_some() {
        let started = cpu();
        let got = rust_items(cache, DatasetInit::Scalar, 1_000_000, chunk * 20);
        eprintln!("scalar {:.1} ns/item", ns((cpu() - started) / 20.0));
        assert!(got == library_items(cache, 1_000_000, chunk * 20), "scalar");
    }
}
