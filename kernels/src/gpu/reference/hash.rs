//! Items and hashes of the GPU challenge: an item from the light cache, and a nonce's hash
//! reading items either from a full dataset (the GPU's way, see [`super::Dataset`]) or from
//! the light cache (the verifier's way, [`hash_light`]). Both go through [`hash_with`], so they
//! cannot disagree.

use super::cache::LightCache;
use super::keys::UnitKeys;
use super::primitives::{b3, bytes_of, fnv, x64, xor16};
use capminer_protocol::GpuChallenge;

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
