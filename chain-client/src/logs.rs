//! Reading the contract's `ProofsAccepted` logs of one epoch, the one place both the provider's
//! client and the verifier learn what the chain accepted. Queries span at most
//! `chain.log_range` blocks each (nodes cap log queries), from the block that fixed the
//! epoch's seed (no proof of the epoch can come earlier: `submitProofs` needs the seed).

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use capminer_proofs::Hash;
use capminer_protocol::UnitIndex;

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
    /// The epoch.
    pub epoch: u64,
    /// The unit's index.
    pub unit: UnitIndex,
    /// The accepted group as the log carries it (`crate::groups`): a report's evidence.
    pub group: alloy::primitives::Bytes,
    /// Its nonces, decoded.
    pub nonces: Vec<u64>,
}

impl AcceptedLog {
    /// Decodes one log of the `ProofsAccepted` query. Anything that is not exactly what the
    /// contract emits (a removed log is skipped by the caller) is an error naming the block
    /// and transaction: a log never read in part, nor dropped in silence.
    pub fn decode(log: &Log) -> Result<AcceptedLog> {
        let bad = |reason: String| ChainError::BadLog {
            event: "ProofsAccepted",
            block: log.block_number,
            tx: log.transaction_hash,
            reason,
        };
        let decoded = log
            .log_decode_validate::<Capacity::ProofsAccepted>()
            .map_err(|e| bad(e.to_string()))?;
        let data = decoded.inner.data;
        let nonces = crate::groups::decode_run(&data.group)
            .map_err(|e| bad(format!("the accepted group: {e}")))?;
        if nonces.len() > data.count as usize {
            return Err(bad(format!(
                "{} nonces but a running count of {}",
                nonces.len(),
                data.count
            )));
        }
        let last = *nonces.last().expect("a run holds a nonce");
        if last != data.lastNonce {
            return Err(bad(format!(
                "last nonce {last} but the log says {}",
                data.lastNonce
            )));
        }
        Ok(AcceptedLog {
            block: log
                .block_number
                .ok_or_else(|| bad("no block number".into()))?,
            block_hash: Hash(log.block_hash.ok_or_else(|| bad("no block hash".into()))?.0),
            tx: Hash(
                log.transaction_hash
                    .ok_or_else(|| bad("no transaction hash".into()))?
                    .0,
            ),
            epoch: data.epoch,
            unit: UnitIndex(data.unit),
            group: data.group,
            nonces,
        })
    }

    /// The accepted nonces.
    pub fn nonces(&self) -> impl Iterator<Item = u64> + '_ {
        self.nonces.iter().copied()
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
    logs.iter()
        .filter(|l| !l.removed)
        .map(|l| {
            let decoded = AcceptedLog::decode(l)?;
            // A node that ignored the filter must not make us count another epoch's proofs.
            if l.address() != contract || decoded.epoch != epoch || !(from..=to).contains(&decoded.block) {
                return Err(ChainError::BadLog {
                    event: "ProofsAccepted",
                    block: l.block_number,
                    tx: l.transaction_hash,
                    reason: format!(
                        "the node answered a query for epoch {epoch} of {contract} from block {from} with a log of epoch {} of {} in block {}",
                        decoded.epoch,
                        l.address(),
                        decoded.block
                    ),
                });
            }
            Ok(decoded)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Property tests of the log decoder: random logs never make it panic, and exactly the
    //! logs the contract emits decode, to exactly what they carry. Cases: `PROPTEST_CASES`
    //! (default 2,000 in CI).
    use alloy::primitives::{B256, Bytes, LogData};
    use proptest::prelude::*;

    use super::*;

    fn rpc_log(data: LogData) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: Address::repeat_byte(0xca),
                data,
            },
            block_hash: Some(B256::repeat_byte(0xbb)),
            block_number: Some(77),
            block_timestamp: None,
            transaction_hash: Some(B256::repeat_byte(0x77)),
            transaction_index: Some(0),
            log_index: Some(3),
            removed: false,
        }
    }

    fn event(epoch: u64, unit: u32, count: u32, nonces: &[u64]) -> Capacity::ProofsAccepted {
        Capacity::ProofsAccepted {
            epoch,
            unit,
            count,
            lastNonce: nonces.last().copied().unwrap_or(0),
            group: if nonces.is_empty() {
                Bytes::new()
            } else {
                let mut out = Vec::new();
                crate::groups::encode_run(nonces, &mut out);
                out.into()
            },
        }
    }

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000);
        ProptestConfig::with_cases(cases)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn random_logs_never_panic_the_decoder(
            topics in proptest::collection::vec(any::<[u8; 32]>(), 0..5),
            signature_first in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut topics: Vec<B256> = topics.into_iter().map(B256::from).collect();
            if signature_first && !topics.is_empty() {
                topics[0] = Capacity::ProofsAccepted::SIGNATURE_HASH;
            }
            let _ = AcceptedLog::decode(&rpc_log(LogData::new_unchecked(topics, data.into())));
        }

        #[test]
        fn what_the_contract_emits_decodes_to_exactly_what_it_carries(
            epoch in any::<u64>(),
            unit in any::<u32>(),
            nonces in proptest::collection::btree_set(any::<u64>(), 1..40),
            extra in 0u32..1000,
        ) {
            let nonces: Vec<u64> = nonces.into_iter().collect();
            let count = nonces.len() as u32 + extra;
            let log = AcceptedLog::decode(&rpc_log(event(epoch, unit, count, &nonces).encode_log_data())).unwrap();
            prop_assert_eq!(log.epoch, epoch);
            prop_assert_eq!(log.unit, UnitIndex(unit));
            prop_assert_eq!(log.block, 77);
            prop_assert_eq!(log.tx, Hash([0x77; 32]));
            prop_assert_eq!(log.nonces().collect::<Vec<_>>(), nonces);
        }

        #[test]
        fn logs_unlike_the_contracts_are_errors_naming_the_block(
            nonces in proptest::collection::btree_set(any::<u64>(), 1..20),
            cut in 1usize..200,
            wrong_last in any::<u64>(),
        ) {
            let nonces: Vec<u64> = nonces.into_iter().collect();
            // A group cut short anywhere: into its header, a delta cut in part, or whole deltas
            // gone (then the last nonce disagrees).
            let mut e = event(5, 1, nonces.len() as u32, &nonces);
            let mut bytes = e.group.to_vec();
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            e.group = Bytes::from(bytes);
            let err = AcceptedLog::decode(&rpc_log(e.encode_log_data())).unwrap_err();
            prop_assert!(err.to_string().contains("the accepted group") || err.to_string().contains("last nonce"), "{}", err);
            prop_assert!(err.to_string().contains("block Some(77)"), "{}", err);
            // A last nonce that is not the last of the nonces.
            let mut e = event(5, 1, nonces.len() as u32, &nonces);
            prop_assume!(wrong_last != *nonces.last().unwrap());
            e.lastNonce = wrong_last;
            let err = AcceptedLog::decode(&rpc_log(e.encode_log_data())).unwrap_err();
            prop_assert!(err.to_string().contains("last nonce"), "{}", err);
            // More nonces than the running count.
            let e = event(5, 1, nonces.len() as u32 - 1, &nonces);
            prop_assert!(AcceptedLog::decode(&rpc_log(e.encode_log_data())).is_err());
        }
    }

    #[test]
    fn an_empty_nonce_list_and_a_missing_block_are_refused() {
        let e = event(1, 1, 0, &[]);
        let err = AcceptedLog::decode(&rpc_log(e.encode_log_data())).unwrap_err();
        assert!(err.to_string().contains("0 bytes, shorter than"), "{err}");
        let mut log = rpc_log(event(1, 1, 1, &[9]).encode_log_data());
        log.block_number = None;
        let err = AcceptedLog::decode(&log).unwrap_err();
        assert!(err.to_string().contains("no block number"), "{err}");
    }
}
