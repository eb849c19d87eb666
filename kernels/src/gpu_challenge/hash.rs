//! Items and hashes of the GPU challenge: from a full dataset (the GPU's way) or from the light
//! cache (the verifier's way). Both go through [`hash_with`], so they cannot disagree.

use rayon::prelude::*;

use super::cache::{LightCache, UnitKeys, bytes_of};
use crate::key::meets_target;
use crate::search::{Hit, Searched, Searcher};
use capminer_protocol::GpuChallenge;

const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1 step: `a * 0x01000193 XOR b`, wrapping.
pub fn fnv(a: u32, b: u32) -> u32 {
    a.wrapping_mul(FNV_PRIME) ^ b
}

/// The first 64 bytes of BLAKE3's extendable output of `input`, as 16 little-endian words.
pub fn x64(input: &[u8]) -> [u32; 16] {
    let mut out = [0u8; 64];
    blake3::Hasher::new()
        .update(input)
        .finalize_xof()
        .fill(&mut out);
    words_of(&out)
}

/// BLAKE3 of `input` (32 bytes).
pub fn b3(input: &[u8]) -> [u8; 32] {
    *blake3::hash(input).as_bytes()
}

/// Little-endian words of a byte string whose length is a multiple of 4.
pub fn words_of<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut out = [0u32; N];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
    }
    out
}

/// Word-wise XOR of two nodes.
pub fn xor16(a: &[u32; 16], b: &[u32; 16]) -> [u32; 16] {
    std::array::from_fn(|k| a[k] ^ b[k])
}

/// Half `h` of the dataset (64 bytes): `m = X64(c[h mod n] XOR salt XOR h·e0)`; `parents`
/// times `p = fnv(h XOR j, m[j mod 16]) mod n; m = fnv16(m, c[p])`; then `X64(m)`.
pub fn half(cache: &LightCache, salt: &[u32; 16], h: u32, parents: u32) -> [u32; 16] {
    let n = cache.nodes.len() as u32;
    let mut seed = xor16(&cache.nodes[(h % n) as usize], salt);
    seed[0] ^= h;
    let mut m = x64(&bytes_of(&seed));
    for j in 0..parents {
        let p = fnv(h ^ j, m[(j % 16) as usize]) % n;
        let node = &cache.nodes[p as usize];
        for k in 0..16 {
            m[k] = fnv(m[k], node[k]);
        }
    }
    x64(&bytes_of(&m))
}

/// Item `i` (128 bytes): `half(2i) ‖ half(2i + 1)`.
pub fn item(cache: &LightCache, salt: &[u32; 16], i: u32, parents: u32) -> [u32; 32] {
    let (a, b) = (
        half(cache, salt, 2 * i, parents),
        half(cache, salt, 2 * i + 1, parents),
    );
    std::array::from_fn(|k| if k < 16 { a[k] } else { b[k - 16] })
}

/// The hash of `nonce`, reading items through `item_at`:
/// `s = X64(header ‖ nonce LE)`; `mix = s ‖ s`; `accesses` times
/// `p = fnv(i XOR s[0], mix[i mod 32]) mod items; mix = fnv32(mix, item[p])`; then
/// `cmix[k] = fnv(fnv(fnv(mix[4k], mix[4k+1]), mix[4k+2]), mix[4k+3])` and
/// `hash = BLAKE3(s ‖ cmix)` over 96 bytes.
pub fn hash_with(
    header: &[u8; 32],
    nonce: u64,
    params: &GpuChallenge,
    mut item_at: impl FnMut(u32) -> [u32; 32],
) -> [u8; 32] {
    let s = x64(&[header.as_slice(), &nonce.to_le_bytes()].concat());
    let mut mix: [u32; 32] = std::array::from_fn(|k| s[k % 16]);
    let items = params.items();
    for i in 0..params.accesses {
        let p = fnv(i ^ s[0], mix[(i % 32) as usize]) % items;
        let data = item_at(p);
        for k in 0..32 {
            mix[k] = fnv(mix[k], data[k]);
        }
    }
    let mut tail = [0u8; 96];
    tail[..64].copy_from_slice(&bytes_of(&s));
    for k in 0..8 {
        let c = fnv(
            fnv(fnv(mix[4 * k], mix[4 * k + 1]), mix[4 * k + 2]),
            mix[4 * k + 3],
        );
        tail[64 + 4 * k..68 + 4 * k].copy_from_slice(&c.to_le_bytes());
    }
    b3(&tail)
}

/// The hash of `nonce` from the light cache alone: what a verifier computes.
pub fn hash_light(
    cache: &LightCache,
    keys: &UnitKeys,
    params: &GpuChallenge,
    nonce: u64,
) -> [u8; 32] {
    hash_with(&keys.header, nonce, params, |p| {
        item(cache, &keys.salt, p, params.parents)
    })
}

/// A unit's whole dataset, built on the CPU: the reference the GPU's build is checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `items × 32` words.
    pub words: Vec<u32>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dataset({} items)", self.words.len() / 32)
    }
}

impl Dataset {
    /// Builds every item, in parallel.
    pub fn build(cache: &LightCache, keys: &UnitKeys, params: &GpuChallenge) -> Self {
        let words = (0..params.items())
            .into_par_iter()
            .flat_map_iter(|i| item(cache, &keys.salt, i, params.parents))
            .collect();
        Self { words }
    }

    /// Item `i`.
    pub fn item(&self, i: u32) -> [u32; 32] {
        let at = i as usize * 32;
        self.words[at..at + 32].try_into().expect("32 words")
    }
}

/// The CPU reference as a [`Searcher`]: hashes from a full dataset, for tests and benchmarks.
#[derive(Debug)]
pub struct DatasetSearcher {
    dataset: Dataset,
    keys: UnitKeys,
    params: GpuChallenge,
}

impl DatasetSearcher {
    /// A searcher over a built dataset.
    pub fn new(dataset: Dataset, keys: UnitKeys, params: GpuChallenge) -> Self {
        Self {
            dataset,
            keys,
            params,
        }
    }
}

impl Searcher for DatasetSearcher {
    fn search(
        &mut self,
        start: u64,
        count: u64,
        target: &[u8; 32],
        stop: &mut dyn FnMut() -> bool,
    ) -> crate::Result<Searched> {
        let mut searched = Searched::default();
        while searched.hashed < count {
            let nonce = start + searched.hashed;
            let hash = self.hash_one(nonce)?;
            searched.hashed += 1;
            if meets_target(&hash, target) {
                searched.hits.push(Hit { nonce, hash });
            }
            if stop() {
                break;
            }
        }
        Ok(searched)
    }

    fn hash_one(&mut self, nonce: u64) -> crate::Result<[u8; 32]> {
        Ok(hash_with(&self.keys.header, nonce, &self.params, |p| {
            self.dataset.item(p)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
