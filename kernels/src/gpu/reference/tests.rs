//! The CPU reference on its own: its primitives, the full dataset against the light cache, the
//! known-answer vectors of `docs/PROTOCOL.md` ("GPU proofs"), and the search's hits.

use super::primitives::{b3, fnv, words_of, x64};
use super::*;
use crate::search::Searcher;
use capminer_protocol::GpuChallenge;

const SMALL: GpuChallenge = GpuChallenge {
    unit_bytes: 128 * 1024,
    cache_bytes: 64 * 1024,
    parents: 256,
    accesses: 64,
};

#[test]
fn x64_is_one_blake3_compression_and_fnv_wraps() {
    // X64 of 64 bytes is the root output block of a one-block chunk: its first half is the
    // ordinary 32-byte hash.
    let input = [7u8; 64];
    let words = x64(&input);
    assert_eq!(words_of::<8>(&b3(&input)), words[..8]);
    assert_eq!(
        fnv(0xffff_ffff, 1),
        0xffff_ffffu32.wrapping_mul(0x0100_0193) ^ 1
    );
    assert_eq!(fnv(1, 0), 0x0100_0193);
}

#[test]
fn the_full_dataset_and_the_light_cache_give_the_same_hashes() {
    let cache = LightCache::build(&[3; 32], &SMALL);
    let keys = UnitKeys::new(&[3; 32], &[4; 32]);
    let dataset = Dataset::build(&cache, &keys, &SMALL);
    assert_eq!(dataset.words.len(), SMALL.items() as usize * 32);
    let mut searcher = DatasetSearcher::new(dataset, keys, SMALL);
    for nonce in [0u64, 1, 77, u64::MAX] {
        assert_eq!(
            searcher.hash_one(nonce).unwrap(),
            hash_light(&cache, &keys, &SMALL, nonce)
        );
    }
    let other = UnitKeys::new(&[3; 32], &[5; 32]);
    assert_ne!(
        hash_light(&cache, &other, &SMALL, 1),
        hash_light(&cache, &keys, &SMALL, 1),
        "units differ"
    );
}

/// The known-answer vectors of docs/PROTOCOL.md ("GPU proofs").
#[test]
fn known_answer_vectors() {
    let p = GpuChallenge {
        unit_bytes: 128 * 1024,
        cache_bytes: 64 * 1024,
        parents: 256,
        accesses: 64,
    };
    let cache = LightCache::build(&[0x11; 32], &p);
    let keys = UnitKeys::new(&[0x11; 32], &[0x22; 32]);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        cache.nodes[0][..4],
        [0x660308e0, 0x83a9ab31, 0x62b321f5, 0x0ef99bf4]
    );
    assert_eq!(
        cache.nodes[1023][..4],
        [0x888500d2, 0x32240619, 0x1c884760, 0xac324da8]
    );
    assert_eq!(
        keys.salt[..4],
        [0x6f485da0, 0xfe908bb7, 0xf9721bc9, 0xcea3d8c5]
    );
    assert_eq!(
        hex(&keys.header),
        "d6c33d5f5933745db4e8ea024635431096ecb4a4a9fe0ef601193987962a5c3c"
    );
    assert_eq!(
        item(&cache, &keys.salt, 0, 256)[..4],
        [0xb7ebd023, 0x70907ce0, 0x2a57ebd4, 0x9d51f710]
    );
    assert_eq!(
        item(&cache, &keys.salt, 1023, 256)[..4],
        [0xe625191b, 0xeb6f14c6, 0x21070330, 0xc8a0a6fc]
    );
    for (nonce, want) in [
        (
            0,
            "f0058655dc1263a5e9244f5b500653f2f6e2cb6d21cddf43ddce02d11774140d",
        ),
        (
            1,
            "6f8907ceb0608b5dbe6a8e0cb9748215867e5a3960f1ddf9bbac75248748002d",
        ),
        (
            1 << 32,
            "c85ed678419286cfacd8686376d782bc916ac3d6bb21fee893069098c845b9c4",
        ),
    ] {
        assert_eq!(
            hex(&hash_light(&cache, &keys, &p, nonce)),
            want,
            "nonce {nonce}"
        );
    }
}

#[test]
fn the_search_finds_exactly_the_hashes_at_or_below_the_target() {
    let cache = LightCache::build(&[1; 32], &SMALL);
    let keys = UnitKeys::new(&[1; 32], &[2; 32]);
    let mut s = DatasetSearcher::new(Dataset::build(&cache, &keys, &SMALL), keys, SMALL);
    let hashes: Vec<[u8; 32]> = (0..64).map(|n| s.hash_one(n).unwrap()).collect();
    let mut sorted = hashes.clone();
    sorted.sort();
    let target = sorted[9];
    let found = s.search(0, 64, &target, &mut || false).unwrap();
    assert_eq!(found.hashed, 64);
    assert_eq!(found.hits.len(), 10);
    assert!(
        found
            .hits
            .iter()
            .all(|h| hashes[h.nonce as usize] == h.hash && h.hash <= target)
    );
}

/// Hashes side by side (`hash_light_many`, LOCKSTEP at a time, the last batch short) are the
/// hashes one by one, and those are the full dataset's: with power-of-two counts (masks) and
/// not (`%`), for every count from none to past two batches.
#[test]
fn hashes_side_by_side_are_the_hashes_one_by_one() {
    let odd = GpuChallenge {
        unit_bytes: 128 * 1000,
        cache_bytes: 64 * 999,
        parents: 250,
        accesses: 61,
    };
    for params in [SMALL, odd] {
        let cache = LightCache::build(&[8; 32], &params);
        let keys = UnitKeys::new(&[8; 32], &[9; 32]);
        let dataset = Dataset::build(&cache, &keys, &params);
        let mut searcher = DatasetSearcher::new(dataset, keys, params);
        for count in 0..=2 * LOCKSTEP + 1 {
            let nonces: Vec<u64> = (0..count as u64).map(|k| k * 7919 + u64::MAX / 3).collect();
            let mut many = vec![[0u8; 32]; count];
            hash_light_many(&cache, &keys, &params, &nonces, &mut many);
            for (nonce, hash) in nonces.iter().zip(&many) {
                assert_eq!(
                    *hash,
                    searcher.hash_one(*nonce).unwrap(),
                    "{params:?} {count}"
                );
                assert_eq!(*hash, hash_light(&cache, &keys, &params, *nonce));
            }
        }
    }
}
