//! capminer's GPU challenge, as plain Rust: the specification's reference and the verifier.
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

mod cache;
mod hash;

pub use cache::{LightCache, UnitKeys};
pub use hash::{Dataset, DatasetSearcher, fnv, half, hash_light, hash_with, item, x64};
