//! The GPU kernels against the CPU reference, on whatever Vulkan adapter is present (lavapipe
//! in CI): datasets item for item, hashes bit for bit, search hits exactly.

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
    for unit_bytes in [1 << 20, 4 << 20] {
        let p = params(unit_bytes);
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

#[test]
fn gpu_hashes_equal_the_cpu_reference_bit_for_bit_and_the_search_finds_the_same_hits() {
    let d = device();
    let p = params(2 << 20);
    let cache = LightCache::build(&[5; 32], &p);
    let keys = UnitKeys::new(&[5; 32], &[6; 32]);
    let gpu = Arc::new(GpuDataset::new(&d, p).unwrap());
    gpu.build(&cache, &keys);
    let mut searcher = gpu.searcher(&keys, Some(1024));
    let start = (1u64 << 32) - 700; // the nonces cross a 32-bit carry
    let gpu_hashes = searcher.hash_range(start, 2048).unwrap();
    let mut cpu = DatasetSearcher::new(Dataset::build(&cache, &keys, &p), keys, p);
    for (i, h) in gpu_hashes.iter().enumerate() {
        assert_eq!(
            *h,
            cpu.hash_one(start + i as u64).unwrap(),
            "nonce {}",
            start + i as u64
        );
    }
    assert_eq!(gpu_hashes[3], hash_light(&cache, &keys, &p, start + 3));

    // A target between the hashes: exactly the hashes at or below it, in both searchers.
    let mut sorted = gpu_hashes.clone();
    sorted.sort();
    let target = sorted[40];
    let on_gpu = searcher
        .search(start, 2048, &target, &mut || false)
        .unwrap();
    let on_cpu = cpu.search(start, 2048, &target, &mut || false).unwrap();
    assert_eq!(on_gpu.hashed, 2048);
    assert_eq!(on_gpu.hits.len(), 41);
    assert_eq!(on_gpu.hits, on_cpu.hits);
    // An all-ones target overflows the result buffer of one dispatch: the host splits it.
    let all = searcher
        .search(start, 300, &[0xff; 32], &mut || false)
        .unwrap();
    assert_eq!(all.hits.len(), 300);
    assert!(
        all.hits
            .iter()
            .enumerate()
            .all(|(i, h)| h.nonce == start + i as u64 && h.hash == gpu_hashes[i])
    );
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
