//! The one connection to the capacity contract under every chain-facing service (the provider's
//! client and the verifier): the node, the contract, its schedule, and errors decoded into the
//! contract's own types.

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::transports::{RpcError, TransportErrorKind};
use capminer_config::ChainConfig;
use capminer_protocol::{UnitIndex, UnitKind};

use crate::bindings::Capacity;
use crate::error::redact_url;
use crate::{ChainError, Result};

/// Most units read in one call of the contract's many-unit views (`unitInfos`,
/// `unitEpochCounts`): about 11,000 gas a unit record, so a call stays near 6 M gas, well within
/// a node's gas cap for calls (a block's gas limit by default).
pub const UNITS_PER_CALL: usize = 500;

/// Most units in one `claimables` call: each unit walks every epoch since its last claim
/// (a few thousand gas an epoch), so fewer a call than [`UNITS_PER_CALL`].
pub const CLAIMABLES_PER_CALL: usize = 50;

/// Runs `call` on `items` in chunks of at most `per_call`, joining the answers in order. A call
/// the node refuses (its gas cap for calls, or a response size limit) is asked again with half
/// as many, down to one item, whose refusal is the error; other errors end it at once.
async fn chunked<I: Clone, T, F, Fut>(items: &[I], per_call: usize, call: F) -> Result<Vec<T>>
where
    F: Fn(Vec<I>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut out = Vec::with_capacity(items.len());
    let mut size = per_call.max(1);
    let mut at = 0;
    while at < items.len() {
        let chunk = &items[at..items.len().min(at + size)];
        match call(chunk.to_vec()).await {
            Ok(answers) => {
                out.extend(answers);
                at += chunk.len();
            }
            Err(ChainError::Rejected { .. }) if chunk.len() > 1 => size = chunk.len() / 2,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The contract's times, in seconds (unix time and durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When epoch 0 started.
    pub genesis: u64,
    /// Seconds per epoch.
    pub duration: u64,
    /// After an epoch ends, its proofs are still accepted this long.
    pub grace: u64,
    /// After the grace window: attestations and reports, then the epoch settles.
    pub verify_window: u64,
}

impl Schedule {
    /// The epoch at unix time `now`.
    pub fn epoch_at(&self, now: u64) -> u64 {
        now.saturating_sub(self.genesis) / self.duration
    }

    /// When epoch `e` starts.
    pub fn epoch_start(&self, e: u64) -> u64 {
        self.genesis + e * self.duration
    }

    /// When proofs of epoch `e` can no longer be submitted.
    pub fn close_time(&self, e: u64) -> u64 {
        self.epoch_start(e + 1) + self.grace
    }

    /// When epoch `e` settles: no attestation or report after it.
    pub fn settle_time(&self, e: u64) -> u64 {
        self.close_time(e) + self.verify_window
    }
}

/// A connection to one capacity contract.
#[derive(Debug, Clone)]
pub struct ChainHandle {
    /// The node (no fillers: transactions go through the `TxManager`).
    pub provider: DynProvider,
    /// The contract.
    pub address: Address,
    /// The node's URL without credentials, for messages.
    pub endpoint: String,
    /// The chain id the node reports.
    pub chain_id: u64,
    /// The contract's schedule.
    pub schedule: Schedule,
}

impl ChainHandle {
    /// Connects to `config.rpc_url`: checks the chain id (when `chain.chain_id` is set) and that
    /// `chain.contract` holds code; reads the schedule.
    pub async fn connect(config: &ChainConfig) -> Result<Self> {
        let endpoint = redact_url(&config.rpc_url);
        let url = config.rpc_url.parse().map_err(|_| ChainError::Config {
            key: "chain.rpc_url",
            message: format!("{endpoint}: not a valid URL"),
        })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        let address = Address::from(config.contract.ok_or_else(|| ChainError::Config {
            key: "chain.contract",
            message: "is not set".into(),
        })?);
        let mut handle = Self {
            provider,
            address,
            endpoint,
            chain_id: 0,
            schedule: Schedule {
                genesis: 0,
                duration: 1,
                grace: 0,
                verify_window: 0,
            },
        };
        let chain_id = handle
            .provider
            .get_chain_id()
            .await
            .map_err(handle.rpc_error("eth_chainId"))?;
        if let Some(want) = config.chain_id
            && want != chain_id
        {
            return Err(ChainError::ChainMismatch {
                configured: want,
                served: chain_id,
                endpoint: handle.endpoint,
            });
        }
        handle.chain_id = chain_id;
        let code = handle
            .provider
            .get_code_at(address)
            .await
            .map_err(handle.rpc_error("eth_getCode"))?;
        if code.is_empty() {
            return Err(ChainError::NoContract { address, chain_id });
        }
        let c = handle.contract();
        let read = |v: U256| v.to::<u64>();
        handle.schedule = Schedule {
            genesis: read(
                c.genesisTime()
                    .call()
                    .await
                    .map_err(handle.call_error("genesisTime"))?,
            ),
            duration: read(
                c.epochDuration()
                    .call()
                    .await
                    .map_err(handle.call_error("epochDuration"))?,
            ),
            grace: read(
                c.graceWindow()
                    .call()
                    .await
                    .map_err(handle.call_error("graceWindow"))?,
            ),
            verify_window: read(
                c.verifyWindow()
                    .call()
                    .await
                    .map_err(handle.call_error("verifyWindow"))?,
            ),
        };
        Ok(handle)
    }

    /// The contract's bindings on this node.
    pub fn contract(&self) -> Capacity::CapacityInstance<DynProvider> {
        Capacity::new(self.address, self.provider.clone())
    }

    /// The contract's record of unit `index`.
    pub async fn unit_info(&self, index: UnitIndex) -> Result<Capacity::Unit> {
        self.contract()
            .unitInfo(index.0)
            .call()
            .await
            .map_err(self.call_error("unitInfo"))
    }

    /// The contract's records of units `indices`, in order, [`UNITS_PER_CALL`] a call.
    pub async fn unit_infos(&self, indices: &[UnitIndex]) -> Result<Vec<Capacity::Unit>> {
        chunked(indices, UNITS_PER_CALL, |chunk| async move {
            let contract = self.contract();
            let call = contract.unitInfos(abi_indices(&chunk));
            call.call().await.map_err(self.call_error("unitInfos"))
        })
        .await
    }

    /// The on-chain index of each of `ids`, in order (`None`: not registered),
    /// [`UNITS_PER_CALL`] a call.
    pub async fn unit_indices(
        &self,
        ids: &[capminer_proofs::UnitId],
    ) -> Result<Vec<Option<UnitIndex>>> {
        let plus_one = chunked(ids, UNITS_PER_CALL, |chunk| async move {
            let contract = self.contract();
            let call = contract.unitIndicesOf(chunk.iter().map(|id| id.0.into()).collect());
            call.call().await.map_err(self.call_error("unitIndicesOf"))
        })
        .await?;
        Ok(plus_one
            .into_iter()
            .map(|i| i.checked_sub(1).map(UnitIndex))
            .collect())
    }

    /// The proofs the contract counts for units `indices` in epoch `epoch`, in order,
    /// [`UNITS_PER_CALL`] a call.
    pub async fn unit_epoch_counts(&self, indices: &[UnitIndex], epoch: u64) -> Result<Vec<u32>> {
        chunked(indices, UNITS_PER_CALL, |chunk| async move {
            let contract = self.contract();
            let call = contract.unitEpochCounts(abi_indices(&chunk), epoch);
            call.call()
                .await
                .map_err(self.call_error("unitEpochCounts"))
        })
        .await
    }

    /// What claiming units `indices` up to `to_epoch` would earn now, per unit, in order,
    /// [`CLAIMABLES_PER_CALL`] a call.
    pub async fn claimables(&self, indices: &[UnitIndex], to_epoch: u64) -> Result<Vec<U256>> {
        chunked(indices, CLAIMABLES_PER_CALL, |chunk| async move {
            let contract = self.contract();
            let call = contract.claimables(abi_indices(&chunk), to_epoch);
            call.call().await.map_err(self.call_error("claimables"))
        })
        .await
    }

    /// The verifier party `key` votes for: itself if it is a verifier, the party that made it
    /// a delegate (while that party is a verifier), else `None`.
    pub async fn verifier_party(&self, key: Address) -> Result<Option<Address>> {
        let contract = self.contract();
        let is = |a: Address| {
            let contract = &contract;
            async move {
                contract
                    .isVerifier(a)
                    .call()
                    .await
                    .map_err(self.call_error("isVerifier"))
            }
        };
        if is(key).await? {
            return Ok(Some(key));
        }
        let party = contract
            .delegateParty(key)
            .call()
            .await
            .map_err(self.call_error("delegateParty"))?;
        Ok((party != Address::ZERO && is(party).await?).then_some(party))
    }

    /// Maps a node error of `call`.
    pub fn rpc_error(
        &self,
        call: &'static str,
    ) -> impl Fn(RpcError<TransportErrorKind>) -> ChainError + '_ {
        move |e| ChainError::from_rpc(&self.endpoint, call, e)
    }

    /// Maps a contract call error of `call`: reverts decoded into the contract's errors.
    pub fn call_error(
        &self,
        call: &'static str,
    ) -> impl Fn(alloy::contract::Error) -> ChainError + '_ {
        move |e| contract_error(&self.endpoint, call, e)
    }

    /// Refuses to go on when the contract's GPU challenge (for the next epochs) is not
    /// `local`, naming both.
    pub async fn check_gpu_challenge(&self, local: &[u8; 32]) -> Result<()> {
        let onchain = self
            .contract()
            .kindParams(UnitKind::Gpu as u8)
            .call()
            .await
            .map_err(self.call_error("kindParams"))?
            .challenge
            .0;
        if onchain != *local {
            return Err(ChainError::ChallengeMismatch {
                contract: self.address,
                local: *local,
                onchain,
            });
        }
        Ok(())
    }
}

/// Unit indices as the contract's calls take them (`uint32[]`).
pub fn abi_indices(indices: &[UnitIndex]) -> Vec<u32> {
    indices.iter().map(|i| i.0).collect()
}

/// Maps a contract call error: reverts decoded into the contract's errors.
pub(crate) fn contract_error(
    endpoint: &str,
    call: &'static str,
    e: alloy::contract::Error,
) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(t) => ChainError::from_rpc(endpoint, call, t),
        other => ChainError::Rejected {
            call,
            message: crate::error::redact_urls(&other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_places_windows_and_settlement() {
        let s = Schedule {
            genesis: 1000,
            duration: 60,
            grace: 20,
            verify_window: 30,
        };
        assert_eq!(s.epoch_at(999), 0);
        assert_eq!(s.epoch_at(1059), 0);
        assert_eq!(s.epoch_at(1060), 1);
        assert_eq!(s.epoch_start(2), 1120);
        assert_eq!(s.close_time(2), 1200);
        assert_eq!(s.settle_time(2), 1230);
    }

    #[tokio::test]
    async fn chunked_calls_halve_when_the_node_refuses_and_keep_the_order() {
        let asked = std::sync::Mutex::new(Vec::new());
        let items: Vec<u32> = (0..23).collect();
        // A node that refuses calls of more than 5 items (a gas cap), answering each item x 10.
        let out = chunked(&items, 16, |chunk: Vec<u32>| {
            asked.lock().unwrap().push(chunk.len());
            async move {
                if chunk.len() > 5 {
                    return Err(ChainError::Rejected {
                        call: "test",
                        message: "out of gas".into(),
                    });
                }
                Ok(chunk.iter().map(|i| i * 10).collect())
            }
        })
        .await
        .unwrap();
        assert_eq!(out, (0..23).map(|i| i * 10).collect::<Vec<u32>>());
        assert_eq!(*asked.lock().unwrap(), vec![16, 8, 4, 4, 4, 4, 4, 3]);

        // A refusal of a single item, and any other error, are the caller's.
        let one = chunked(&items, 16, |_: Vec<u32>| async {
            Err::<Vec<u32>, _>(ChainError::Rejected {
                call: "test",
                message: "out of gas".into(),
            })
        })
        .await;
        assert!(matches!(one, Err(ChainError::Rejected { .. })));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let down = chunked(&items, 16, |_: Vec<u32>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async {
                Err::<Vec<u32>, _>(ChainError::Transport {
                    endpoint: "http://node:8545".into(),
                    message: "connection refused".into(),
                })
            }
        })
        .await;
        assert!(matches!(down, Err(ChainError::Transport { .. })));
        assert_eq!(
            calls.into_inner(),
            1,
            "a node that is down is not asked again"
        );
    }
}
