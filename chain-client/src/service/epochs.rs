//! The current epoch: delivered to the miner once its seed is fixed and final, and watched for a
//! seed that a deep reorg changed.

use alloy::sol_types::SolCall;
use capminer_proofs::store::ProofState;
use capminer_proofs::{Epoch, ProofRef, Seed, Target, UnitKind};

use super::{ChainService, EpochParams};
use crate::bindings::Capacity;
use crate::txmanager::{Head, TxKind};
use crate::{ChainError, Result};

impl ChainService {
    /// Delivers the current epoch once its seed is fixed and final (its block
    /// `chain.confirmations` deep), fixing it ourselves if needed, and records it in the store:
    /// the seed the miner mines under. A delivered epoch's seed is read again every tick while
    /// its window is open. Gone (the seeding block left the chain): wait, it may come back the
    /// same. Another seed (a reorg deeper than the confirmations): the proofs mined under the
    /// old one are skipped and the old seed retired in the store (the contract would refuse
    /// them, verifiers would report them), and the epoch is delivered again, so the miner
    /// re-keys.
    pub(super) async fn watch_epoch(&mut self, current: u64, head: Head) -> Result<Option<Epoch>> {
        if let Some(delivered) = self.delivered
            && delivered + 1 >= current
            && let Some(mined) = self.mined_seed(delivered).await
        {
            let (now, _, _) = self.read_epoch(delivered).await?;
            if now.seed == Seed::default() {
                tracing::warn!(
                    epoch = delivered,
                    "the epoch's seed left the chain (a reorg): waiting for it to be fixed again"
                );
                self.params.remove(&delivered);
                if delivered == current {
                    self.delivered = None;
                }
            } else if now.seed != mined {
                self.seed_changed(delivered, mined).await?;
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
        if let Some(old) = self.mined_seed(current).await
            && old != epoch.seed
        {
            self.seed_changed(current, old).await?;
        }
        self.params.insert(current, params);
        for (i, kind) in [UnitKind::Cpu, UnitKind::Gpu].into_iter().enumerate() {
            let kind = [kind.as_str()];
            self.metrics
                .epoch_min_proofs
                .with_label_values(&kind)
                .set(params.min[i].into());
            self.metrics
                .epoch_max_proofs
                .with_label_values(&kind)
                .set(params.max[i].into());
        }
        self.record_epoch(epoch).await?;
        self.delivered = Some(current);
        tracing::info!(epoch = current, seed = %epoch.seed, "chain epoch");
        Ok(Some(epoch))
    }

    /// The seed the miner mines epoch `e` under: the store's record, unless retired.
    pub(super) async fn mined_seed(&self, e: u64) -> Option<Seed> {
        self.stored_epoch(e)
            .await
            .map(|r| r.seed)
            .filter(|s| *s != Seed::default())
    }

    /// Proofs of epoch `e` mined under `old`, a seed the chain no longer has: skipped, the old
    /// seed retired in the store (so the miner's late proofs under it are refused), and the
    /// epoch delivered again.
    pub(super) async fn seed_changed(&mut self, e: u64, old: Seed) -> Result<()> {
        let refs: Vec<ProofRef> = self
            .unsettled(move |p| p.proof.epoch == e)
            .await
            .iter()
            .map(|p| p.proof.id())
            .collect();
        tracing::warn!(epoch = e, %old, proofs = refs.len(), "the epoch's seed changed (a reorg deeper than chain.confirmations): proofs mined under the old seed skipped, re-keying");
        self.metrics
            .proofs_skipped
            .with_label_values(&["seed_changed"])
            .inc_by(refs.len() as u64);
        self.set_state(refs, ProofState::Skipped).await?;
        self.retire_epoch_seed(e).await?;
        self.params.remove(&e);
        self.deep_logs.remove(&e);
        if self.delivered == Some(e) {
            self.delivered = None;
        }
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

    /// Epoch `e`'s parameters as the chain has them (cached; never recorded in the store: only
    /// a delivered, final seed is).
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
        self.params.insert(e, params);
        Ok(params)
    }
}
