//! The compute interface every unit kind implements.
//!
//! A [`Searcher`] hashes a contiguous nonce range against a target and returns the hits. It is
//! synchronous and knows nothing of epochs or stores: the miner calls it in time-bounded rounds
//! and passes a `stop` check so a pause, a stop or a new epoch takes effect within one hash.

use crate::Result;

/// A nonce whose hash met the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The nonce.
    pub nonce: u64,
    /// Its 32-byte hash, big-endian as compared against the target.
    pub hash: [u8; 32],
}

/// What one call to [`Searcher::search`] covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Searched {
    /// Nonces `[start, start + hashed)` were all hashed.
    pub hashed: u64,
    /// The hits among them, in increasing nonce order.
    pub hits: Vec<Hit>,
}

/// Hashes nonce ranges against a target.
pub trait Searcher {
    /// Hashes nonces `start, start + 1, …` until `count` are done or `stop()` returns true
    /// (checked between hashes, never before the first), and reports the hits.
    fn search(
        &mut self,
        start: u64,
        count: u64,
        target: &[u8; 32],
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Searched>;

    /// Hashes one nonce, for re-checks and known-answer tests.
    fn hash_one(&mut self, nonce: u64) -> Result<[u8; 32]>;
}
