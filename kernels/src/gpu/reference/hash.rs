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
    let mut out = [[0; 16]];
    halves(cache, salt, &[h], parents, &mut out);
    out[0]
}

/// Item `i` (128 bytes): `half(2i) ‖ half(2i + 1)`.
pub fn item(cache: &LightCache, salt: &[u32; 16], i: u32, parents: u32) -> [u32; 32] {
    let mut out = [[0; 32]];
    items(cache, salt, &[i], parents, &mut out);
    out[0]
}

/// Most halves [`halves`] computes side by side: the items of [`LOCKSTEP`] hashes.
const MAX_CHAINS: usize = 2 * LOCKSTEP;

/// Items `is` into `out` (as many), their halves side by side.
fn items(cache: &LightCache, salt: &[u32; 16], is: &[u32], parents: u32, out: &mut [[u32; 32]]) {
    let mut hs = [0u32; MAX_CHAINS];
    for (k, i) in is.iter().enumerate() {
        (hs[2 * k], hs[2 * k + 1]) = (2 * i, 2 * i + 1);
    }
    let mut halves_out = [[0u32; 16]; MAX_CHAINS];
    let n = 2 * is.len();
    halves(cache, salt, &hs[..n], parents, &mut halves_out[..n]);
    for (k, item) in out.iter_mut().enumerate().take(is.len()) {
        item[..16].copy_from_slice(&halves_out[2 * k]);
        item[16..].copy_from_slice(&halves_out[2 * k + 1]);
    }
}

/// The halves `hs` (at most [`MAX_CHAINS`]) into `out`, computed in lockstep: each half is a
/// chain of `parents` dependent cache reads, so a lone chain waits on every read while chains
/// side by side overlap theirs. With AVX2 where the CPU has it (a 16-word FNV step is two
/// vector multiplies), else plain code; both are [`halves_in`].
fn halves(cache: &LightCache, salt: &[u32; 16], hs: &[u32], parents: u32, out: &mut [[u32; 16]]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { halves_avx2(cache, salt, hs, parents, out) };
    }
    halves_in(cache, salt, hs, parents, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn halves_avx2(
    cache: &LightCache,
    salt: &[u32; 16],
    hs: &[u32],
    parents: u32,
    out: &mut [[u32; 16]],
) {
    halves_in(cache, salt, hs, parents, out)
}

#[inline(always)]
fn halves_in(
    cache: &LightCache,
    salt: &[u32; 16],
    hs: &[u32],
    parents: u32,
    out: &mut [[u32; 16]],
) {
    assert!(hs.len() <= MAX_CHAINS && out.len() == hs.len());
    let nodes = &cache.nodes;
    let n = nodes.len() as u32;
    // `x mod n`: a mask where n is a power of two (as the network's is), the same value.
    let mask = n.is_power_of_two().then(|| n - 1);
    let reduce = |x: u32| mask.map_or(x % n, |m| x & m) as usize;
    let mut m = [[0u32; 16]; MAX_CHAINS];
    for (m, &h) in m.iter_mut().zip(hs) {
        let mut seed = xor16(&nodes[reduce(h)], salt);
        seed[0] ^= h;
        *m = x64(&bytes_of(&seed));
    }
    let m = &mut m[..hs.len()];
    for j in 0..parents {
        for (m, &h) in m.iter_mut().zip(hs) {
            let node = &nodes[reduce(fnv(h ^ j, m[(j % 16) as usize]))];
            for k in 0..16 {
                m[k] = fnv(m[k], node[k]);
            }
        }
    }
    for (o, m) in out.iter_mut().zip(m.iter()) {
        *o = x64(&bytes_of(m));
    }
}

/// Hashes [`hash_light_many`] computes side by side.
pub const LOCKSTEP: usize = 4;

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
    let mut out = [[0; 32]];
    hash_lockstep(header, &[nonce], params, &mut out, |p, items| {
        items[0] = item_at(p[0])
    });
    out[0]
}

/// The hashes of `nonces` into `out` (as many, at most [`LOCKSTEP`]) as [`hash_with`] defines
/// them, side by side: each access reads the items of every hash at once through `items_at`
/// (item indices in, items out), so their reads overlap.
fn hash_lockstep(
    header: &[u8; 32],
    nonces: &[u64],
    params: &GpuChallenge,
    out: &mut [[u8; 32]],
    mut items_at: impl FnMut(&[u32], &mut [[u32; 32]]),
) {
    assert!(nonces.len() <= LOCKSTEP && out.len() == nonces.len());
    let k = nonces.len();
    let mut s = [[0u32; 16]; LOCKSTEP];
    let mut mix = [[0u32; 32]; LOCKSTEP];
    for c in 0..k {
        s[c] = x64(&[header.as_slice(), &nonces[c].to_le_bytes()].concat());
        mix[c] = std::array::from_fn(|w| s[c][w % 16]);
    }
    let items = params.items();
    let mask = items.is_power_of_two().then(|| items - 1);
    let (mut at, mut data) = ([0u32; LOCKSTEP], [[0u32; 32]; LOCKSTEP]);
    for i in 0..params.accesses {
        for c in 0..k {
            let x = fnv(i ^ s[c][0], mix[c][(i % 32) as usize]);
            at[c] = mask.map_or(x % items, |m| x & m);
        }
        items_at(&at[..k], &mut data[..k]);
        for c in 0..k {
            for w in 0..32 {
                mix[c][w] = fnv(mix[c][w], data[c][w]);
            }
        }
    }
    for c in 0..k {
        let mut tail = [0u8; 96];
        tail[..64].copy_from_slice(&bytes_of(&s[c]));
        for w in 0..8 {
            let v = fnv(
                fnv(fnv(mix[c][4 * w], mix[c][4 * w + 1]), mix[c][4 * w + 2]),
                mix[c][4 * w + 3],
            );
            tail[64 + 4 * w..68 + 4 * w].copy_from_slice(&v.to_le_bytes());
        }
        out[c] = b3(&tail);
    }
}

/// The hash of `nonce` from the light cache alone: what a verifier computes.
pub fn hash_light(
    cache: &LightCache,
    keys: &UnitKeys,
    params: &GpuChallenge,
    nonce: u64,
) -> [u8; 32] {
    let mut out = [[0; 32]];
    hash_light_many(cache, keys, params, &[nonce], &mut out);
    out[0]
}

/// The hashes of `nonces` from the light cache into `out` (as many), [`LOCKSTEP`] at a time
/// side by side: the same values as [`hash_light`] one by one, in less time when there are
/// several (a re-check of a round's hits, a verifier's batch).
pub fn hash_light_many(
    cache: &LightCache,
    keys: &UnitKeys,
    params: &GpuChallenge,
    nonces: &[u64],
    out: &mut [[u8; 32]],
) {
    assert_eq!(nonces.len(), out.len(), "a hash for every nonce");
    for (nonces, out) in nonces.chunks(LOCKSTEP).zip(out.chunks_mut(LOCKSTEP)) {
        hash_lockstep(&keys.header, nonces, params, out, |at, data| {
            items(cache, &keys.salt, at, params.parents, data)
        });
    }
}
