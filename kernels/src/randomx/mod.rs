//! RandomX for CPU units, in two flavors: stock (the library `randomx-rs` builds) and Fluence's
//! fork (16 cache accesses an item, a 4 GiB dataset base; built beside it under renamed
//! symbols by `capminer-randomx-fluence-sys`). [`RandomXOptions::flavor`] picks one; the
//! resolved [`RandomXFlags`] carry it, and every cache, dataset and VM calls its flavor's
//! library (see `ffi`).
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
    Cache, Dataset, KeyedBeside, PageSize, cache_bytes, dataset_bytes, dataset_bytes_for,
    dataset_items, dataset_items_for, huge_pages_per_unit, huge_pages_per_unit_for,
};
pub use superscalar::DatasetInit;
pub use vm::{RandomXSearcher, Vm, VmMemory};

#[cfg(test)]
mod fluence_tests;
#[cfg(test)]
mod tests;
