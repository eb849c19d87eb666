//! Where each proof stands, decided from the chain: the canonical `ProofsAccepted` logs, the
//! transactions in flight and the receipts of the rest.
//!
//! | state now | chain says | next state |
//! |---|---|---|
//! | any | a canonical log accepts it, `confirmations` deep | final |
//! | any | a canonical log accepts it, shallower | included(tx, block) |
//! | included | no log accepts it any more (reorg) | found: resubmit |
//! | submitted(tx) | tx in flight | unchanged |
//! | submitted(tx) | tx mined, no log accepts it | skipped |
//! | submitted(tx) | tx unknown (dropped, or sent before a restart and gone) | found: resubmit |

use std::collections::{HashMap, HashSet};

use capminer_proofs::store::{ProofState, StoredProof};
use capminer_proofs::{Hash, ProofRef};

/// One nonce accepted by a canonical log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    /// Block number of the log.
    pub block: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// The transaction that carried it.
    pub tx: Hash,
}

/// What the chain says, gathered for one reconciliation.
#[derive(Debug, Default)]
pub struct ChainView {
    /// Head block number.
    pub head: u64,
    /// Canonical acceptances by proof, (unit, epoch, nonce), for the epochs being reconciled.
    /// Nonces start again every epoch: the epoch is part of a proof's identity.
    pub accepted: HashMap<ProofRef, Acceptance>,
    /// Hashes of transactions in flight (every hash of every nonce in flight).
    pub inflight: HashSet<Hash>,
    /// Hashes of transactions known to be mined.
    pub mined: HashSet<Hash>,
}

/// Decides the next state of every non-terminal proof; returns only the changes.
pub fn reconcile(
    proofs: &[StoredProof],
    view: &ChainView,
    confirmations: u64,
) -> Vec<(ProofRef, ProofState)> {
    let mut changes = Vec::new();
    for p in proofs.iter().filter(|p| !p.state.is_terminal()) {
        let next = match (view.accepted.get(&p.proof.id()), p.state) {
            (Some(a), _) if view.head + 1 >= a.block + confirmations.max(1) => ProofState::Final,
            (Some(a), _) => ProofState::Included {
                tx: a.tx,
                block: a.block,
                block_hash: a.block_hash,
            },
            (None, ProofState::Included { .. }) => ProofState::Found,
            (None, ProofState::Submitted { tx }) if view.inflight.contains(&tx) => continue,
            (None, ProofState::Submitted { tx }) if view.mined.contains(&tx) => ProofState::Skipped,
            (None, ProofState::Submitted { .. }) => ProofState::Found,
            (None, state) => state,
        };
        if next != p.state {
            changes.push((p.proof.id(), next));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use capminer_proofs::{Proof, UnitId, UnitKind};

    fn stored(nonce: u64, state: ProofState) -> StoredProof {
        stored_in(4, nonce, state)
    }

    fn stored_in(epoch: u64, nonce: u64, state: ProofState) -> StoredProof {
        StoredProof {
            proof: Proof {
                unit: UnitId([1; 32]),
                kind: UnitKind::Cpu,
                epoch,
                nonce,
                hash: Hash::default(),
            },
            state,
        }
    }

    fn acceptance(block: u64) -> Acceptance {
        Acceptance {
            block,
            block_hash: Hash([block as u8; 32]),
            tx: Hash([9; 32]),
        }
    }

    #[test]
    fn logs_decide_inclusion_finality_and_reorgs() {
        let tx = Hash([9; 32]);
        let proofs = vec![
            stored(1, ProofState::Submitted { tx }),
            stored(2, ProofState::Submitted { tx }),
            stored(
                3,
                ProofState::Included {
                    tx,
                    block: 10,
                    block_hash: Hash([10; 32]),
                },
            ),
            stored(4, ProofState::Final),
        ];
        let mut view = ChainView {
            head: 12,
            ..ChainView::default()
        };
        view.accepted.insert(proofs[0].proof.id(), acceptance(12));
        view.accepted.insert(proofs[1].proof.id(), acceptance(10));
        view.inflight.insert(tx);
        let changes = reconcile(&proofs, &view, 3);
        assert_eq!(
            changes,
            vec![
                (
                    proofs[0].proof.id(),
                    ProofState::Included {
                        tx,
                        block: 12,
                        block_hash: Hash([12; 32])
                    }
                ),
                (proofs[1].proof.id(), ProofState::Final), // blocks 10, 11, 12: three deep
                (proofs[2].proof.id(), ProofState::Found), // its log left the canonical chain
            ]
        );
    }

    #[test]
    fn transactions_decide_what_logs_do_not_show() {
        let (inflight, mined, gone) = (Hash([1; 32]), Hash([2; 32]), Hash([3; 32]));
        let proofs = vec![
            stored(1, ProofState::Submitted { tx: inflight }),
            stored(2, ProofState::Submitted { tx: mined }),
            stored(3, ProofState::Submitted { tx: gone }),
            stored(4, ProofState::Found),
        ];
        let mut view = ChainView::default();
        view.inflight.insert(inflight);
        view.mined.insert(mined);
        let changes = reconcile(&proofs, &view, 3);
        assert_eq!(
            changes,
            vec![
                (proofs[1].proof.id(), ProofState::Skipped),
                (proofs[2].proof.id(), ProofState::Found)
            ]
        );
    }

    #[test]
    fn an_acceptance_in_one_epoch_says_nothing_of_the_same_nonce_in_another() {
        // A restart reconciles two epochs at once; nonces start again every epoch. Keyed by
        // (unit, nonce), the acceptance of nonce 7 in epoch 4 made epoch 5's nonce 7 final
        // though no log ever accepted it: a proof lost and reported counted.
        let tx = Hash([9; 32]);
        let proofs = vec![
            stored_in(4, 7, ProofState::Submitted { tx }),
            stored_in(5, 7, ProofState::Found),
        ];
        let mut view = ChainView {
            head: 100,
            ..ChainView::default()
        };
        view.accepted.insert(proofs[0].proof.id(), acceptance(10));
        assert_eq!(
            reconcile(&proofs, &view, 3),
            vec![(proofs[0].proof.id(), ProofState::Final)],
            "epoch 5's nonce 7 stays found, to be submitted"
        );
    }
}
