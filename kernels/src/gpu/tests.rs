//! The GPU kernels against the CPU reference, on whatever Vulkan adapter is present (lavapipe
//! in CI): datasets item for item, hashes bit for bit and search hits exactly, for every
//! search kernel (thread; lanes by subgroup shuffle and by workgroup memory) and for
//! parameters that take the power-of-two masks and those that do not.

use std::sync::Arc;

use super::*;
use capminer_protocol::GpuChallenge;

use super::reference::{Dataset, DatasetSearcher, LightCache, UnitKeys, hash_light};
use crate::search::Searcher;

/// The first adapter; CI has lavapipe (`mesa-vulkan-drivers`).
fn device() -> GpuDevice {
    let (info, adapter) = enumerate()
        .into_iter()
        .next()
        .expect("a Vulkan adapter: install mesa-vulkan-drivers (lavapipe)");
    GpuDevice::open(info, &adapter).unwrap()
}

fn params(unit_bytes: u64) -> GpuChallenge {
    GpuChallenge {
        unit_bytes,
        cache_bytes: 64 << 10,
        parents: 256,
        accesses: 64,
    }
}

#[test]
fn the_gpu_builds_every_item_exactly_as_the_cpu_reference() {
    let d = device();
    // Powers of two (masks) and not (`%`, and parents not a multiple of the unroll by 16).
    let odd = GpuChallenge {
        unit_bytes: (1 << 20) - 3 * 128,
        cache_bytes: (64 << 10) - 5 * 64,
        parents: 250,
        accesses: 64,
    };
    for p in [params(1 << 20), params(4 << 20), odd] {
        let unit_bytes = p.unit_bytes;
        let cache = LightCache::build(&[9; 32], &p);
        let keys = UnitKeys::new(&[9; 32], &[unit_bytes as u8; 32]);
        let gpu = GpuDataset::new(&d, p).unwrap();
        gpu.build(&cache, &keys);
        let cpu = Dataset::build(&cache, &keys, &p);
        let words = gpu.read_back().unwrap();
        assert_eq!(words.len(), cpu.words.len());
        if let Some(at) = words.iter().zip(&cpu.words).position(|(a, b)| a != b) {
            panic!(
                "unit of {unit_bytes} bytes: item {} differs at word {}",
                at / 32,
                at % 32
            );
        }
    }
}

/// Every kernel's hashes of 2048 nonces (across a 32-bit carry) against the CPU reference, bit
/// for bit, and its search's hits against the reference search's.
fn every_kernel_agrees_with_the_reference(d: &GpuDevice, p: GpuChallenge) {
    let cache = LightCache::build(&[5; 32], &p);
    let keys = UnitKeys::new(&[5; 32], &[6; 32]);
    let gpu = Arc::new(GpuDataset::new(d, p).unwrap());
    gpu.build(&cache, &keys);
    let mut cpu = DatasetSearcher::new(Dataset::build(&cache, &keys, &p), keys, p);
    let start = (1u64 << 32) - 700; // the nonces cross a 32-bit carry
    let cpu_hashes: Vec<[u8; 32]> = (0..2048)
        .map(|i| cpu.hash_one(start + i).unwrap())
        .collect();
    assert_eq!(cpu_hashes[3], hash_light(&cache, &keys, &p, start + 3));
    let mut sorted = cpu_hashes.clone();
    sorted.sort();
    let target = sorted[40];
    let on_cpu = cpu.search(start, 2048, &target, &mut || false).unwrap();
    assert_eq!(on_cpu.hits.len(), 41);
    for kernel in Kernel::all(d.info.subgroups()) {
        let mut searcher = gpu.searcher(&keys, Some(1024), kernel).unwrap();
        // 2045: the last workgroup is partly outside the range (masked, not returned).
        let gpu_hashes = searcher.hash_range(start, 2045).unwrap();
        if let Some(i) = (0..2045).find(|&i| gpu_hashes[i] != cpu_hashes[i]) {
            panic!("{kernel} ({p}): nonce {} differs", start + i as u64);
        }
        // A target between the hashes: exactly the hashes at or below it.
        let on_gpu = searcher
            .search(start, 2048, &target, &mut || false)
            .unwrap();
        assert_eq!(on_gpu.hashed, 2048, "{kernel}");
        assert_eq!(on_gpu.hits, on_cpu.hits, "{kernel}");
        // The same range as two calls: the second adopts the dispatch the first queued.
        let mut halves = searcher
            .search(start, 1024, &target, &mut || false)
            .unwrap();
        let second = searcher
            .search(start + 1024, 1024, &target, &mut || false)
            .unwrap();
        assert_eq!(second.hashed, 1024, "{kernel}");
        halves.hits.extend(second.hits);
        assert_eq!(halves.hits, on_cpu.hits, "{kernel}");
        // Dispatches of 256: a call queues 2 for the range after it (what it hashed, at most
        // 2), the next call adopts them; a call with another target drops them unread, while
        // they may still run in the slots it reuses.
        let mut quarters = gpu.searcher(&keys, Some(256), kernel).unwrap();
        let mut hits = quarters
            .search(start, 1024, &target, &mut || false)
            .unwrap()
            .hits;
        assert_eq!(quarters.queued_ahead(), 2, "{kernel}");
        let second = quarters
            .search(start + 1024, 1024, &target, &mut || false)
            .unwrap();
        assert_eq!(second.hashed, 1024, "{kernel}");
        hits.extend(second.hits);
        assert_eq!(hits, on_cpu.hits, "{kernel}");
        assert_eq!(quarters.queued_ahead(), 2, "{kernel}");
        let all = quarters
            .search(start + 1024, 1024, &[0xff; 32], &mut || false)
            .unwrap();
        assert_eq!(all.hits.len(), 1024, "{kernel}");
        assert!(
            all.hits
                .iter()
                .enumerate()
                .all(|(i, h)| h.nonce == start + 1024 + i as u64 && h.hash == cpu_hashes[1024 + i]),
            "{kernel}"
        );
        // At an all-ones target every hash is a hit: dispatches are cut to 256 nonces, a
        // quarter of a result buffer, so none overflows.
        let before = searcher.overflows();
        let all = searcher
            .search(start, 300, &[0xff; 32], &mut || false)
            .unwrap();
        assert_eq!(searcher.overflows(), before, "{kernel}");
        assert_eq!(all.hits.len(), 300, "{kernel}");
        assert!(
            all.hits
                .iter()
                .enumerate()
                .all(|(i, h)| h.nonce == start + i as u64 && h.hash == cpu_hashes[i]),
            "{kernel}"
        );
        // With room for only 64 hits a dispatch, the same search overflows: the host splits it.
        searcher.limit_hits(64);
        let all = searcher
            .search(start, 300, &[0xff; 32], &mut || false)
            .unwrap();
        assert!(searcher.overflows() > before, "{kernel}");
        assert_eq!(all.hits.len(), 300, "{kernel}");
        assert!(
            all.hits
                .iter()
                .enumerate()
                .all(|(i, h)| h.nonce == start + i as u64 && h.hash == cpu_hashes[i]),
            "{kernel}"
        );
        // Dispatches of 128 that all overflow, one always queued behind the one being split:
        // the halves must not overwrite the queued dispatch's results.
        let mut small = gpu.searcher(&keys, Some(128), kernel).unwrap();
        small.limit_hits(64);
        let all = small
            .search(start, 640, &[0xff; 32], &mut || false)
            .unwrap();
        assert_eq!(all.hashed, 640, "{kernel}");
        let nonces: Vec<u64> = all.hits.iter().map(|h| h.nonce).collect();
        assert_eq!(nonces, (start..start + 640).collect::<Vec<_>>(), "{kernel}");
        assert_eq!(small.overflows(), 5, "{kernel}");
        assert!(
            all.hits.iter().zip(&cpu_hashes).all(|(h, c)| h.hash == *c),
            "{kernel}"
        );
    }
}

/// The same with wgpu's runtime checks off (`gpu.runtime_checks = false`): the trusted
/// modules' results must not differ by a bit.
#[test]
fn every_kernel_hashes_exactly_as_the_cpu_reference_without_runtime_checks() {
    let d = device().with_runtime_checks(false);
    assert!(!d.runtime_checks());
    let odd = GpuChallenge {
        unit_bytes: (1 << 20) - 3 * 128,
        cache_bytes: (64 << 10) - 5 * 64,
        parents: 250,
        accesses: 61,
    };
    for p in [params(1 << 20), odd] {
        every_kernel_agrees_with_the_reference(&d, p);
        // The dataset too, item for item.
        let cache = LightCache::build(&[2; 32], &p);
        let keys = UnitKeys::new(&[2; 32], &[3; 32]);
        let gpu = GpuDataset::new(&d, p).unwrap();
        gpu.build(&cache, &keys);
        assert_eq!(
            gpu.read_back().unwrap(),
            Dataset::build(&cache, &keys, &p).words
        );
    }
}

#[test]
fn every_kernel_hashes_exactly_as_the_cpu_reference_with_power_of_two_counts() {
    let d = device();
    if d.info.software {
        // lavapipe has subgroups of 8: the subgroup path runs in CI, not only the fallback.
        assert!(d.info.subgroups(), "{:?}", d.info);
    }
    every_kernel_agrees_with_the_reference(&d, params(2 << 20));
}

#[test]
fn every_kernel_hashes_exactly_as_the_cpu_reference_with_other_counts() {
    // Items and nodes not powers of two (`%`, not masks), accesses not a multiple of 4 and
    // parents not of 16 (the guarded steps of the unrolled loops).
    let p = GpuChallenge {
        unit_bytes: (2 << 20) - 3 * 128,
        cache_bytes: (64 << 10) - 5 * 64,
        parents: 250,
        accesses: 63,
    };
    every_kernel_agrees_with_the_reference(&device(), p);
}

#[test]
fn without_subgroups_of_8_auto_falls_back_to_workgroup_memory_and_a_subgroup_kernel_is_refused() {
    let real = device();
    assert_eq!(real.kernel(KernelChoice::Thread), Kernel::Thread);
    if real.info.subgroups() {
        assert_eq!(
            real.kernel(KernelChoice::Auto),
            Kernel::Lanes(Share::Subgroup)
        );
        assert_eq!(
            real.kernel(KernelChoice::Lanes),
            Kernel::Lanes(Share::Subgroup)
        );
    }
    // The same device as one whose subgroups are 4 wide.
    let mut d = real.clone();
    d.info.subgroup_sizes = (4, 4);
    assert_eq!(
        d.kernel(KernelChoice::Auto),
        Kernel::Lanes(Share::Workgroup)
    );
    assert_eq!(
        d.kernel(KernelChoice::Lanes),
        Kernel::Lanes(Share::Workgroup)
    );
    let gpu = Arc::new(GpuDataset::new(&d, params(1 << 20)).unwrap());
    let keys = UnitKeys::new(&[1; 32], &[2; 32]);
    let err = gpu
        .searcher(&keys, None, Kernel::Lanes(Share::Subgroup))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "GPU {} cannot run the lanes/subgroup kernel: it has no subgroups of 8 or more",
            d.info.name
        )
    );
}

#[test]
fn the_probe_measures_both_bandwidths_over_the_whole_buffer() {
    let d = device();
    let b = d.probe((4 << 20) + 100).unwrap();
    eprintln!("probe: {b:?}");
    assert_eq!(b.bytes, 4 << 20);
    assert!(b.stream.is_finite() && b.stream > 1e6, "{b:?}");
    assert!(b.gather.is_finite() && b.gather > 1e6, "{b:?}");
    let capped = d.probe(u64::MAX).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(capped.bytes, d.info.max_binding / 128 * 128);
}

#[test]
fn a_unit_larger_than_one_binding_is_refused() {
    let d = device();
    let too_big = (d.info.max_binding / 128 + 1) * 128;
    let err = GpuDataset::new(&d, params(too_big)).unwrap_err();
    assert!(matches!(err, GpuError::TooLarge { unit_bytes, .. } if unit_bytes == too_big));
    let message = err.to_string();
    assert!(
        message.contains("does not fit one storage binding")
            && message.contains(&d.info.max_binding.to_string()),
        "{message}"
    );
}

#[test]
fn a_rebuild_for_a_new_epoch_keeps_the_buffer_and_changes_the_data() {
    let d = device();
    let p = params(1 << 20);
    let gpu = GpuDataset::new(&d, p).unwrap();
    let keys = UnitKeys::new(&[1; 32], &[2; 32]);
    gpu.build(&LightCache::build(&[1; 32], &p), &keys);
    let first = gpu.read_back().unwrap();
    let cache2 = LightCache::build(&[7; 32], &p);
    let keys2 = UnitKeys::new(&[7; 32], &[2; 32]);
    gpu.build(&cache2, &keys2);
    let second = gpu.read_back().unwrap();
    assert_ne!(first, second);
    assert_eq!(second, Dataset::build(&cache2, &keys2, &p).words);
}

#[test]
fn the_adapter_reports_its_device_memory() {
    let d = device();
    eprintln!("{} reports {} bytes", d.info.name, d.info.memory);
    // Every Vulkan device has a device-local heap, at least as large as its largest binding.
    assert!(d.info.memory >= d.info.max_binding, "{:?}", d.info);
}

#[test]
fn a_device_builds_the_epoch_cache_once_and_its_units_build_from_it() {
    let d = device();
    let p = params(1 << 20);
    let (first, built) = d.epoch_cache(&[3; 32], &p);
    assert!(built);
    let (again, built) = d.clone().epoch_cache(&[3; 32], &p);
    assert!(!built, "a second unit of the device gets the same cache");
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(*first.cpu, LightCache::build(&[3; 32], &p));
    // Two units of the device build from it, each its own dataset, with progress in parts.
    for unit in [[4u8; 32], [5; 32]] {
        let keys = UnitKeys::new(&[3; 32], &unit);
        let gpu = GpuDataset::new(&d, p).unwrap();
        let mut seen = Vec::new();
        gpu.build_from(&again, &keys, &mut |done, total| seen.push((done, total)));
        let total = 2 * p.items() as u64;
        let part = total / 16;
        assert_eq!(
            seen,
            (1..=16).map(|i| (i * part, total)).collect::<Vec<_>>()
        );
        assert_eq!(
            gpu.read_back().unwrap(),
            Dataset::build(&first.cpu, &keys, &p).words
        );
    }
    // The next epoch replaces it.
    let (next, built) = d.epoch_cache(&[8; 32], &p);
    assert!(built && !Arc::ptr_eq(&next, &first));
    assert_eq!(*next.cpu, LightCache::build(&[8; 32], &p));
}

/// A batch above one dispatch row (65 535 workgroups, 4 194 240 nonces at 64 a workgroup) runs
/// as a 2-D grid: its hits, on both sides of the row boundary, are exactly those of the same
/// range searched in one-row dispatches, and each is the CPU reference's hash under the target.
#[test]
fn a_batch_above_one_dispatch_row_finds_exactly_the_hits_across_the_boundary() {
    let d = device();
    let p = GpuChallenge {
        accesses: 8,
        ..params(1 << 20)
    };
    let cache = LightCache::build(&[6; 32], &p);
    let keys = UnitKeys::new(&[6; 32], &[7; 32]);
    let gpu = Arc::new(GpuDataset::new(&d, p).unwrap());
    gpu.build(&cache, &keys);
    let row = 65_535 * 64;
    let count = row + (1 << 20);
    // About 30 hits in the range: fewer than a result buffer's 64, so no dispatch is split.
    let mut target = [0xff; 32];
    target[..3].copy_from_slice(&[0, 0, 0x60]);
    let start = 1u64 << 33;
    // The reference: one-row dispatches (their hits are checked against the CPU elsewhere).
    let many = gpu
        .searcher(&keys, Some(1 << 20), Kernel::Thread)
        .unwrap()
        .search(start, u64::from(count), &target, &mut || false)
        .unwrap();
    for kernel in [Kernel::Thread, d.kernel(KernelChoice::Lanes)] {
        let mut big = gpu.searcher(&keys, Some(count), kernel).unwrap();
        assert_eq!(big.batch(), count);
        let one = big
            .search(start, u64::from(count), &target, &mut || false)
            .unwrap();
        assert_eq!(one.hashed, u64::from(count), "{kernel}");
        assert_eq!(one.hits, many.hits, "{kernel}");
        let beyond = one
            .hits
            .iter()
            .filter(|h| h.nonce >= start + u64::from(row))
            .count();
        assert!(
            beyond > 0 && beyond < one.hits.len() && one.hits.len() < MAX_HITS as usize,
            "{kernel}: {} hits, {beyond} in the second row",
            one.hits.len()
        );
        for hit in &one.hits {
            assert_eq!(
                hit.hash,
                hash_light(&cache, &keys, &p, hit.nonce),
                "{kernel}"
            );
            assert!(crate::key::meets_target(&hit.hash, &target), "{kernel}");
        }
    }
}

/// An auto-tuned batch follows each dispatch's GPU time where the adapter has timestamp
/// queries (lavapipe has), the wall clock elsewhere; a fixed one stays.
#[test]
fn the_batch_is_tuned_from_gpu_timestamps_where_the_adapter_has_them() {
    let d = device();
    eprintln!("{}: timestamps {}", d.info.name, d.info.timestamps);
    let p = GpuChallenge {
        accesses: 8,
        ..params(1 << 20)
    };
    let cache = LightCache::build(&[4; 32], &p);
    let keys = UnitKeys::new(&[4; 32], &[5; 32]);
    let gpu = Arc::new(GpuDataset::new(&d, p).unwrap());
    gpu.build(&cache, &keys);
    let mut fixed = gpu.searcher(&keys, Some(4096), Kernel::Thread).unwrap();
    assert_eq!(fixed.tuning(), Tuning::Fixed);
    let mut tuned = gpu.searcher(&keys, None, Kernel::Thread).unwrap();
    let expected = if d.info.timestamps {
        Tuning::Timestamps
    } else {
        Tuning::WallClock
    };
    assert_eq!(tuned.tuning(), expected);
    assert_eq!(tuned.batch(), FIRST_BATCH);
    let target = [0u8; 32];
    let started = std::time::Instant::now();
    let searched = tuned.search(0, 8 << 16, &target, &mut || false).unwrap();
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(searched.hashed, 8 << 16);
    if d.info.timestamps {
        // The dispatches' own GPU times: some, and no more than the search took.
        let gpu = tuned.gpu_seconds();
        assert!(gpu > 0.0 && gpu <= wall, "GPU {gpu} s in {wall} s");
    }
    // 4096 hashes of 8 accesses take far less than 100 ms (or, on a loaded machine, more):
    // the batch moved, to a whole number of workgroups.
    assert_ne!(tuned.batch(), FIRST_BATCH);
    assert_eq!(tuned.batch() % 64, 0);
    fixed.search(0, 3 * 4096, &target, &mut || false).unwrap();
    assert_eq!(fixed.batch(), 4096);
    tuned.set_batch(Some(512));
    assert_eq!((tuned.tuning(), tuned.batch()), (Tuning::Fixed, 512));
    tuned.set_batch(None);
    assert_eq!(tuned.tuning(), expected);
}

/// A dispatch's nonces at a target: the most that expect the given hits, from the target's
/// first 8 bytes, between 1 and `MAX_BATCH`.
#[test]
fn an_easy_target_cuts_a_dispatch_to_the_nonces_that_expect_a_quarter_of_its_hits() {
    let target = |top: u64| {
        let mut t = [0xff; 32];
        t[..8].copy_from_slice(&top.to_be_bytes());
        t
    };
    // Every hash a hit: 256 nonces.
    assert_eq!(nonces_for_hits(&[0xff; 32], MAX_HITS / 4), 256);
    // One in 2^20 (the top 20 bits zero): 256 · 2^20.
    assert_eq!(nonces_for_hits(&target((1 << 44) - 1), 256), 1 << 28);
    // About 3 in 2^12: 7 · 2^64 / (3 · 2^52 + 1) = 9557.33, rounded down.
    assert_eq!(nonces_for_hits(&target(3 << 52), 7), 9557);
    // Hard targets: the batch's own limit.
    assert_eq!(
        nonces_for_hits(&target(u64::MAX >> 32), 256),
        u64::from(MAX_BATCH)
    );
    assert_eq!(nonces_for_hits(&[0; 32], 256), u64::from(MAX_BATCH));
    // Never below one nonce.
    assert_eq!(nonces_for_hits(&[0xff; 32], 0), 1);
}
