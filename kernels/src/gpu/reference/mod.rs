//! The CPU reference of capminer's GPU challenge, as plain Rust: the specification's reference,
//! what the GPU kernels in `wgsl/` are checked against, and the verifier.
//!
//! A bandwidth-bound, memory-hard hash of the Ethash family, u32-only so it runs in WGSL:
//!
//! ```text
//!  seed ─▶ light cache (cache_bytes; sequential BLAKE3 + 3 mixing rounds)     per epoch
//!  (seed, unit) ─▶ unit key ─▶ salt, header                                   per unit
//!  item i = half(2i) ‖ half(2i+1); half(h) = X64(parents FNV-folds of cache nodes, salted)
//!  nonce ─▶ s = X64(header ‖ nonce) ─▶ `accesses` dependent 128-byte item reads, FNV-mixed
//!        ─▶ hash = BLAKE3(s ‖ compressed mix) ─▶ ≤ target (big-endian)?
//! ```
//!
//! `docs/PROTOCOL.md` ("GPU proofs") states every byte. A GPU holds the unit's whole dataset
//! and reads `accesses × 128` bytes a hash; a verifier rebuilds the few items one hash reads
//! from the light cache ([`hash_light`]), `2 × parents` cache nodes an item.
//!
//! Its modules, each importing only those above it:
//!
//! ```text
//!  primitives   fnv, X64, B3, word/byte conversions     (imports nothing of the rest)
//!  keys         UnitKeys: salt, header                   ◀─ primitives
//!  cache        LightCache                               ◀─ primitives
//!  hash         half, item, hash_with, hash_light        ◀─ primitives, keys, cache
//!  dataset      Dataset, DatasetSearcher (full, on CPU)  ◀─ keys, cache, hash
//! ```

mod cache;
mod dataset;
mod hash;
mod keys;
mod primitives;

pub use cache::LightCache;
pub use dataset::{Dataset, DatasetSearcher};
pub use hash::{LOCKSTEP, half, hash_light, hash_light_many, hash_with, item};
pub use keys::UnitKeys;
pub use primitives::{fnv, x64};

#[cfg(test)]
mod tests;
