//! Rewards: claimed once an epoch, when at least `chain.claim.threshold_gwei` is claimable.

use alloy::primitives::U256;
use alloy::sol_types::SolCall;
use capminer_protocol::UnitIndex;

use super::ChainService;
use crate::Result;
use crate::bindings::Capacity;
use crate::txmanager::{Head, TxKind};

impl ChainService {
    /// Claims rewards once an epoch, when enough is claimable. An operator never claims: the
    /// rewards are its provider's (`capminer provider claim`).
    pub(super) async fn claim(&mut self, head: Head, current: u64) -> Result<()> {
        if !self.config.claim.enabled
            || self.provider.is_some()
            || self.claimed_at == Some(current)
            || self.txm.inflight().iter().any(|f| f.kind == TxKind::Claim)
        {
            return Ok(());
        }
        let all: Vec<UnitIndex> = self.units.values().map(|row| row.index).collect();
        let amounts = self.chain.claimables(&all, current).await?;
        let mut total = U256::ZERO;
        let mut indices = Vec::new();
        for (index, amount) in all.into_iter().zip(amounts) {
            if amount > U256::ZERO {
                total += amount;
                indices.push(index);
            }
        }
        self.claimed_at = Some(current);
        let threshold = U256::from(self.config.claim.threshold_gwei) * U256::from(1_000_000_000u64);
        if total == U256::ZERO || total < threshold {
            return Ok(());
        }
        indices.sort_unstable();
        let data = Capacity::claimCall {
            unitIndices: crate::handle::abi_indices(&indices),
            toEpoch: current,
        }
        .abi_encode();
        self.txm
            .send(TxKind::Claim, self.chain.address, data.into(), head)
            .await?;
        tracing::info!(wei = %total, "claiming rewards");
        Ok(())
    }
}
