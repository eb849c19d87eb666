//! Errors of the proof store.

use std::path::PathBuf;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong with the proof store, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a store file.
    #[error("proof store {path}: {op}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the store.
    #[error("proof store {0} is in use by another capminer process (lock held on its LOCK file)")]
    Locked(PathBuf),
    /// A state change names a proof the store does not hold.
    #[error("proof store has no proof {0}")]
    UnknownProof(crate::ProofRef),
    /// A proof was stored for an epoch whose seed and targets were never recorded.
    #[error("proof store has no record of epoch {0}: record the epoch before its proofs")]
    UnknownEpoch(u64),
    /// Proofs mined under a seed that is no longer the store's record of their epoch.
    #[error(
        "proofs of epoch {0} were mined under a seed the epoch no longer has (re-seeded by a reorg): not stored"
    )]
    StaleEpoch(u64),
    /// An epoch recorded with one seed given again under the same number with another: the
    /// store keeps one seed an epoch number (a new seed needs a new number), or every proof
    /// stored for the epoch would verify as invalid. The chain's re-seeding after a reorg
    /// retires the old seed first ([`crate::store::ProofStore::retire_epoch_seed`]).
    #[error(
        "proof store {}: epoch {number} is recorded with seed {recorded}; refusing seed {given} under the same number (the proofs stored for the epoch would no longer verify): an epoch's seed never changes, give the new seed a new epoch number",
        dir.display()
    )]
    SeedChanged {
        /// The store's directory.
        dir: PathBuf,
        /// The epoch number.
        number: u64,
        /// The seed the store holds for it.
        recorded: crate::Seed,
        /// The seed refused.
        given: crate::Seed,
    },
    /// Proofs for an epoch already settled and moved to the archive.
    #[error("proofs of epoch {0} arrived after the epoch was settled and archived: not stored")]
    Archived(u64),
}

impl StoreError {
    /// True for proofs the store refuses for good (their epoch's seed is gone, or the epoch is
    /// settled): retrying cannot store them, and the chain would not count them.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::StaleEpoch(_) | StoreError::Archived(_))
    }
}
