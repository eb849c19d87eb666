//! Epochs and proofs: what a unit mines under and what it finds.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Hash, Seed, Target, UnitId, UnitKind};

/// One epoch: its number, its seed and the target of each unit kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// Epoch number (on chain: `(timestamp - genesis) / duration`).
    pub number: u64,
    /// Seed fixed at the epoch boundary.
    pub seed: Seed,
    /// Target per unit kind, indexed by [`UnitKind::index`].
    pub targets: [Target; 2],
}

impl Epoch {
    /// The target of a unit kind.
    pub fn target(&self, kind: UnitKind) -> &Target {
        &self.targets[kind.index()]
    }
}

/// Names one proof: the unit, the epoch and the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProofRef {
    /// Epoch number.
    pub epoch: u64,
    /// Unit.
    pub unit: UnitId,
    /// Nonce.
    pub nonce: u64,
}

impl fmt::Display for ProofRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unit {} epoch {} nonce {}",
            self.unit, self.epoch, self.nonce
        )
    }
}

/// A proof found by a unit: its nonce's hash met the epoch's target for the unit's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Unit that found it.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Epoch number.
    pub epoch: u64,
    /// Nonce.
    pub nonce: u64,
    /// The hash the unit computed (not sent on chain; verifiers recompute it).
    pub hash: Hash,
}

impl Proof {
    /// The proof's name.
    pub fn id(&self) -> ProofRef {
        ProofRef {
            epoch: self.epoch,
            unit: self.unit,
            nonce: self.nonce,
        }
    }
}
