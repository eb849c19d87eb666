//! What verifying a proof takes and gives: the claims a verifier recomputes and its verdicts,
//! shared by `capminer verify`, the verifier service and the tests. The one implementation is
//! the miner's `Verifier` (RandomX light mode, the GPU challenge from its light cache); the
//! chain's verifier service takes any [`Checker`], so it never depends on the miner.

use crate::{Epoch, Hash, UnitId, UnitKind};

/// A proof to check, with the epoch it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Unit.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// The epoch's seed and targets.
    pub epoch: Epoch,
    /// Nonce.
    pub nonce: u64,
    /// The hash the prover reported, if any.
    pub hash: Option<Hash>,
}

/// The outcome for one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The recomputed hash meets the target (and equals the reported one, if reported).
    Valid {
        /// The recomputed hash.
        hash: Hash,
    },
    /// The recomputed hash is above the target.
    AboveTarget {
        /// The recomputed hash.
        hash: Hash,
    },
    /// The hash meets the target but differs from the one the prover reported.
    WrongHash {
        /// The recomputed hash.
        hash: Hash,
        /// The reported one.
        claimed: Hash,
    },
}

impl Verdict {
    /// True for [`Verdict::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid { .. })
    }
}

/// Recomputes claims: one verdict per claim, in order. Synchronous and CPU-bound: call it
/// from a blocking thread, never from an async task.
pub trait Checker: Send + Sync {
    /// Verifies `claims`.
    fn check(&self, claims: &[Claim]) -> Result<Vec<Verdict>, String>;
}
