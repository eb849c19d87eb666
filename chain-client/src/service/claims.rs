//! Rewards: claimed once an epoch, when at least `chain.claim.threshold_gwei` is claimable.

use alloy::primitives::U256;
use alloy::sol_types::SolCall;

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
        let contract = self.chain.contract();
        let mut total = U256::ZERO;
        let mut indices = Vec::new();
        for row in self.units.values() {
            let c = contract
                .claimable(row.index, current)
                .call()
                .await
                .map_err(self.chain.call_error("claimable"))?;
            if c.amount > U256::ZERO {
                total += c.amount;
                indices.push(row.index);
            }
        }
        self.claimed_at = Some(current);
        let threshold = U256::from(self.config.claim.threshold_gwei) * U256::from(1_000_000_000u64);
        if total == U256::ZERO || total < threshold {
            return Ok(());
        }
        indices.sort_unstable();
        let data = Capacity::claimCall {
            unitIndices: indices,
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
