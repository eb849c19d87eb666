//! RandomX for CPU units, through the library `randomx-rs` builds.
//!
//! A CPU unit keeps one [`Dataset`] for its life and rebuilds it in place for every new key:
//! the unit's threads drop their [`Vm`]s, the dataset is rebuilt from a freshly keyed
//! [`Cache`] in parallel slices, and each thread creates a new VM over it. Light mode
//! (verification, tests) hashes from the cache alone: about 1 s to key, tens of ms a hash;
//! [`LightCaches`] keys each cache once and shares it.

mod ffi;
mod flags;
mod light;
mod memory;
mod superscalar;
mod vm;

pub use flags::{Argon2Impl, RandomXFlags, RandomXOptions};
pub use light::LightCaches;
pub use memory::{
    Cache, Dataset, KeyedBeside, PageSize, cache_bytes, dataset_bytes, dataset_items,
    huge_pages_per_unit,
};
pub use superscalar::DatasetInit;
pub use vm::{RandomXSearcher, Vm, VmMemory};

#[cfg(test)]
mod tests;
