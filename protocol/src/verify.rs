//! What verifying a proof takes and gives: the claims a verifier recomputes and its verdicts,
//! shared by `capminer verify`, the verifier service and the tests. The one implementation is
//! the miner's `Verifier` (RandomX light mode, the GPU challenge from its light cache); the
//! chain's verifier service takes any [`Checker`], so it never depends on the miner. A checker
//! that cannot judge a claim says why with a [`VerifyError`], whose kind tells the verifier
//! whether to retry later or abstain.

use crate::{Epoch, Hash, ProofRef, UnitId, UnitKind};

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

impl Claim {
    /// The proof it claims.
    pub fn id(&self) -> ProofRef {
        ProofRef {
            epoch: self.epoch.number,
            unit: self.unit,
            nonce: self.nonce,
        }
    }
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
    fn check(&self, claims: &[Claim]) -> Result<Vec<Verdict>, VerifyError>;
}

/// Why a checker could not judge a claim (not a verdict: the claim may still be valid or not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot check {claim}: {kind}")]
pub struct VerifyError {
    /// The first claim it could not judge (others of the same key or epoch may share the cause).
    pub claim: ProofRef,
    /// What went wrong.
    pub kind: VerifyErrorKind,
}

/// The kinds of [`VerifyError`]: whether trying again can help decides between retrying later
/// and abstaining.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyErrorKind {
    /// The machine could not provide what recomputation needs (memory for a cache or a VM):
    /// may succeed later.
    #[error("out of resources: {0}")]
    Resources(String),
    /// This checker cannot recompute such a claim (a kind or parameters it does not run): trying
    /// again cannot help.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The recomputation itself failed (it panicked): trying again is not expected to help.
    #[error("recomputation failed: {0}")]
    Failed(String),
}

impl VerifyError {
    /// True when the same claim may be checkable later ([`VerifyErrorKind::Resources`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, VerifyErrorKind::Resources(_))
    }
}
