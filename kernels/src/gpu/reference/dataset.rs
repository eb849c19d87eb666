//! A unit's whole dataset built on the CPU, and a [`Searcher`] over it: the reference the GPU's
//! build and search are checked against, for tests and benchmarks.

use rayon::prelude::*;

use super::cache::LightCache;
use super::hash::{hash_with, item};
use super::keys::UnitKeys;
use crate::key::meets_target;
use crate::search::{Hit, Searched, Searcher};
use capminer_protocol::GpuChallenge;

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
