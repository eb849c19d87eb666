//! The current epoch: delivered to the miner once its seed is fixed and final, and watched for a
//! seed that a deep reorg changed.

use alloy::sol_types::SolCall;
use capminer_proofs::store::ProofState;
use capminer_proofs::{Epoch, ProofRef, Seed, Target};

use super::{ChainService, EpochParams};
use crate::bindings::Capacity;
use crate::txmanager::{Head, TxKind};
use crate::{ChainError, Result};

impl ChainService {
    /// Delivers the current epoch once its seed is fixed and final (its block
    /// `chain.confirmations` deep), fixing it ourselves if needed. A delivered epoch's seed is
    /// read again every tick while its window is open: if a reorg deeper than the
    /// confirmations changed it, the proofs mined under the old seed are skipped (the contract
    /// would refuse them) and the epoch is delivered again, so the miner re-keys.
    pub(super) async fn watch_epoch(&mut self, current: u64, head: Head) -> Result<Option<Epoch>> {
        if let Some(delivered) = self.delivered
            && let Some(known) = self.params.get(&delivered).map(|p| p.seed)
            && delivered + 1 >= current
        {
            let (now, _, _) = self.read_epoch(delivered).await?;
            if now.seed != known {
                self.seed_changed(delivered, known)?;
            }
        }
        if self.delivered == Some(current) {
            return Ok(None);
        }
        let (epoch, seed_block, params) = self.read_epoch(current).await?;
        if epoch.seed == Seed::default() {
            if self.advancing != Some(current) {
                let data = Capacity::advanceEpochCall {}.abi_encode();
                self.txm
                    .send(
                        TxKind::Advance(current),
                        self.chain.address,
                        data.into(),
                        head,
                    )
                    .await?;
                self.advancing = Some(current);
            }
            return Ok(None);
        }
        if head.number + 1 < seed_block + self.config.confirmations.max(1) {
            return Ok(None); // fixed, not final yet
        }
        self.remember(&epoch, params)?;
        self.delivered = Some(current);
        tracing::info!(epoch = current, seed = %epoch.seed, "chain epoch");
        Ok(Some(epoch))
    }

    /// Proofs of epoch `e` mined under `old`, a seed the chain no longer has: skipped, and
    /// the epoch delivered again.
    pub(super) fn seed_changed(&mut self, e: u64, old: Seed) -> Result<()> {
        let refs: Vec<ProofRef> = self
            .store
            .proofs(|p| p.proof.epoch == e && !p.state.is_terminal())
            .iter()
            .map(|p| p.proof.id())
            .collect();
        tracing::warn!(epoch = e, %old, proofs = refs.len(), "the epoch's seed changed (a reorg deeper than chain.confirmations): proofs mined under the old seed skipped, re-keying");
        self.metrics
            .proofs_skipped
            .with_label_values(&["seed_changed"])
            .inc_by(refs.len() as u64);
        self.store.set_state(&refs, ProofState::Skipped)?;
        self.params.remove(&e);
        self.delivered = None;
        Ok(())
    }

    /// An epoch's seed, targets and parameters as the chain has them now (seed zero if not
    /// fixed yet), and the block that fixed the seed.
    pub(super) async fn read_epoch(&self, e: u64) -> Result<(Epoch, u64, EpochParams)> {
        let info = self
            .chain
            .contract()
            .epochInfo(e)
            .call()
            .await
            .map_err(self.chain.call_error("epochInfo"))?;
        let seed = Seed(info.seed.0);
        let epoch = Epoch {
            number: e,
            seed,
            targets: [Target(info.targets[0].0), Target(info.targets[1].0)],
        };
        let params = EpochParams {
            seed,
            seed_block: info.seedBlock,
            min: info.minProofs,
            max: info.maxProofs,
        };
        Ok((epoch, info.seedBlock, params))
    }

    /// Keeps a seeded epoch's parameters and records it in the store.
    pub(super) fn remember(&mut self, epoch: &Epoch, params: EpochParams) -> Result<()> {
        self.params.insert(epoch.number, params);
        self.store.record_epoch(epoch)?;
        Ok(())
    }

    pub(super) async fn params(&mut self, e: u64) -> Result<EpochParams> {
        if let Some(p) = self.params.get(&e) {
            return Ok(*p);
        }
        let (epoch, _, params) = self.read_epoch(e).await?;
        if epoch.seed == Seed::default() {
            return Err(ChainError::Rejected {
                call: "epochInfo",
                message: format!("epoch {e} has no seed"),
            });
        }
        self.remember(&epoch, params)?;
        Ok(params)
    }
}
