//! A watch on the blocks where proofs became final.
//!
//! A proof is final once its `ProofsAccepted` log is `chain.confirmations` deep; the threat
//! model assumes no reorg is deeper (docs/THREATS.md). When one is, the store would call
//! proofs final that no canonical log holds any more. The service remembers, for each block
//! whose log made proofs final, its hash and those proofs, and each tick checks the newest such
//! block against the chain (one request: a block still canonical vouches for every older one).
//! Replaced, the blocks undone are found, counted
//! (`capminer_chain_final_proofs_reorged_total`), logged as an error naming the depth to
//! configure, and their proofs go back to found while their epoch's window is open, so the
//! next batch delivers them again; the others are lost and the log says how many.
//!
//! The marks live in memory: a reorg that happens while the process is down, or deeper than
//! [`WATCHED_BLOCKS`] below the head, is not seen.

use std::collections::BTreeMap;

use alloy::eips::BlockNumberOrTag;
use alloy::providers::Provider;
use capminer_proofs::store::ProofState;
use capminer_proofs::{Hash, ProofRef};

use super::ChainService;
use crate::Result;

/// How far below the head a block of final proofs stays watched.
pub(super) const WATCHED_BLOCKS: u64 = 256;

/// Blocks whose logs made proofs final: number to (hash, proofs).
pub(super) type FinalMarks = BTreeMap<u64, (Hash, Vec<ProofRef>)>;

impl ChainService {
    /// Remembers that `proof`, accepted in block `block` (`hash`), is now final.
    pub(super) fn mark_final(&mut self, block: u64, hash: Hash, proof: ProofRef) {
        self.final_marks
            .entry(block)
            .or_insert_with(|| (hash, Vec::new()))
            .1
            .push(proof);
    }

    /// Whether block `number` still has hash `hash`; `None` while the chain has no such block.
    async fn still_canonical(&self, number: u64, hash: Hash) -> Result<Option<bool>> {
        let block = self
            .chain
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(self.chain.rpc_error("eth_getBlockByNumber"))?;
        Ok(block.map(|b| b.header.hash.0 == hash.0))
    }

    /// Checks the blocks of final proofs against the chain; reopens the proofs of those a
    /// reorg replaced (see the module doc).
    pub(super) async fn watch_finality(&mut self, head: u64, now: u64, current: u64) -> Result<()> {
        self.final_marks = self
            .final_marks
            .split_off(&head.saturating_sub(WATCHED_BLOCKS));
        let Some((&newest, &(hash, _))) = self.final_marks.last_key_value() else {
            return Ok(());
        };
        if self.still_canonical(newest, hash).await? != Some(false) {
            return Ok(());
        }
        let mut undone = Vec::new();
        for (&block, (hash, _)) in self.final_marks.iter().rev() {
            if self.still_canonical(block, *hash).await? != Some(false) {
                break;
            }
            undone.push(block);
        }
        // What was read as final is not: every epoch's logs are read again from its seed.
        self.deep_logs.clear();
        let mut reopened = Vec::new();
        let mut lost = 0;
        for block in &undone {
            let (_, refs) = self.final_marks.remove(block).expect("a mark just read");
            for r in refs {
                if self.open(r.epoch, now, current) {
                    reopened.push(r);
                } else {
                    lost += 1;
                }
            }
        }
        let lowest = undone.last().copied().unwrap_or(newest);
        tracing::error!(
            lowest_block = lowest,
            confirmations = self.config.confirmations,
            reopened = reopened.len(),
            lost,
            "a reorg deeper than chain.confirmations replaced blocks where proofs were final: \
             raise chain.confirmations; proofs of open epochs go back to found and are delivered \
             again, the others are lost"
        );
        self.metrics
            .final_proofs_reorged
            .inc_by((reopened.len() + lost) as u64);
        self.set_state(reopened, ProofState::Found).await
    }
}
