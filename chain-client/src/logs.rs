//! Reading the contract's `ProofsAccepted` logs of one epoch, the one place both the provider's
//! client and the verifier learn what the chain accepted. Queries span at most
//! `chain.log_range` blocks each (nodes cap log queries), from the block that fixed the
//! epoch's seed (no proof of the epoch can come earlier: `submitProofs` needs the seed).

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use capminer_proofs::Hash;

use crate::bindings::Capacity;
use crate::{ChainError, Result};

/// One canonical `ProofsAccepted` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedLog {
    /// Block number of the log.
    pub block: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// The transaction that carried it.
    pub tx: Hash,
    /// The unit's index.
    pub unit: u32,
    /// The accepted nonces, 8 bytes big-endian each, as the log carries them.
    pub nonces: alloy::primitives::Bytes,
}

impl AcceptedLog {
    /// The accepted nonces.
    pub fn nonces(&self) -> impl Iterator<Item = u64> + '_ {
        self.nonces
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
    }
}

/// Every canonical `ProofsAccepted` log of epoch `epoch` in blocks `from..=to`, in chain order,
/// read in slices of `range` blocks.
pub async fn proofs_accepted(
    provider: &DynProvider,
    endpoint: &str,
    contract: Address,
    epoch: u64,
    from: u64,
    to: u64,
    range: u64,
) -> Result<Vec<AcceptedLog>> {
    let mut logs = Vec::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(range.max(1) - 1));
        let filter = Filter::new()
            .address(contract)
            .event_signature(Capacity::ProofsAccepted::SIGNATURE_HASH)
            .topic1(U256::from(epoch))
            .from_block(start)
            .to_block(end);
        logs.extend(
            provider
                .get_logs(&filter)
                .await
                .map_err(|e| ChainError::from_rpc(endpoint, "eth_getLogs", e))?,
        );
        start = end + 1;
    }
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(logs
        .into_iter()
        .filter(|l| !l.removed)
        .filter_map(|log| {
            let decoded = log.log_decode::<Capacity::ProofsAccepted>().ok()?;
            Some(AcceptedLog {
                block: log.block_number?,
                block_hash: Hash(log.block_hash?.0),
                tx: Hash(log.transaction_hash?.0),
                unit: decoded.inner.data.unit,
                nonces: decoded.inner.data.nonces,
            })
        })
        .collect())
}
