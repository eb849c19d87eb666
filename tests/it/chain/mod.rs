//! Chain tests: a real anvil, the real contract compiled from source (the committed artifact,
//! which CI checks against the source), the real chain client.

mod delivery;
mod flow;
mod restart;
mod verifiers;

use std::path::PathBuf;
use std::sync::Arc;

use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::devnet::{self, ContractSpec, Deployment, KindSpec};
use capminer_chain::metrics::ChainMetrics;
use capminer_chain::{ChainService, ChainSetup};
use capminer_config::ChainConfig;
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Target, UnitId, UnitKind};

/// anvil from the pinned npm package (deploy/setup.sh installs it).
pub fn anvil_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil")
}

pub const EPOCH: u64 = 60;
pub const GRACE: u64 = 20;

/// A contract spec for tests: CPU target `cpu_target`, min/max proofs, 1 ether reward,
/// 0.1 ether collateral.
pub fn spec(cpu_target: Target, min: u32, max: u32) -> ContractSpec {
    let kind = KindSpec {
        target: cpu_target,
        min_proofs: min,
        max_proofs: max,
        reward_wei: 10u128.pow(18),
        collateral_wei: 10u128.pow(17),
    };
    ContractSpec {
        epoch_seconds: EPOCH,
        grace_seconds: GRACE,
        quorum: 1,
        slash_bps: 1000,
        kinds: [kind, kind],
    }
}

/// A running anvil with the contract deployed; accounts 0 owner, 1 provider, 2 verifier,
/// 3 another provider.
pub struct Net {
    pub anvil: AnvilInstance,
    pub url: String,
    pub deployment: Deployment,
    pub provider: DynProvider,
}

impl Net {
    pub async fn start(spec: &ContractSpec, anvil_args: &[&str]) -> Net {
        let anvil = devnet::spawn_anvil(&anvil_path(), None, anvil_args)
            .expect("anvil starts (deploy/setup.sh installs it)");
        let url = anvil.endpoint();
        let deployment = devnet::deploy(&url, Net::key_of(&anvil, 0), spec)
            .await
            .unwrap();
        let provider = ProviderBuilder::new()
            .connect_http(url.parse().unwrap())
            .erased();
        Net {
            anvil,
            url,
            deployment,
            provider,
        }
    }

    fn key_of(anvil: &AnvilInstance, i: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(anvil.keys()[i].clone())
    }

    pub fn key(&self, i: usize) -> PrivateKeySigner {
        Net::key_of(&self.anvil, i)
    }

    pub fn address(&self) -> Address {
        self.deployment.address
    }

    /// Registers units to account `account`; returns their indices.
    pub async fn register(&self, account: usize, units: &[(UnitId, UnitKind)]) -> Vec<u32> {
        devnet::register_units(&self.url, self.key(account), self.address(), units)
            .await
            .unwrap()
    }

    /// Moves chain time forward by `seconds` and mines a block.
    pub async fn advance(&self, seconds: u64) {
        self.provider.anvil_increase_time(seconds).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
    }

    /// The contract's current epoch.
    pub async fn epoch(&self) -> u64 {
        self.contract().currentEpoch().call().await.unwrap()
    }

    /// Moves to the start of the next epoch.
    pub async fn next_epoch(&self) -> u64 {
        let e = self.epoch().await;
        let start: U256 = self.contract().epochStart(e + 1).call().await.unwrap();
        let now = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp;
        self.advance(start.to::<u64>().saturating_sub(now)).await;
        assert_eq!(self.epoch().await, e + 1);
        e + 1
    }

    pub fn contract(&self) -> capminer_chain::bindings::Capacity::CapacityInstance<DynProvider> {
        capminer_chain::bindings::Capacity::new(self.address(), self.provider.clone())
    }

    /// The chain config a provider's client uses.
    pub fn chain_config(&self) -> ChainConfig {
        let mut c = ChainConfig {
            enabled: true,
            rpc_url: self.url.clone(),
            contract: Some(self.address().0.0),
            start_block: self.deployment.block,
            confirmations: 2,
            poll_ms: 200,
            ..ChainConfig::default()
        };
        c.batch.max_wait_ms = 0;
        c
    }

    /// A chain client of account `account` for `units`.
    pub async fn client(
        &self,
        account: usize,
        config: ChainConfig,
        store: Arc<ProofStore>,
        units: &[(UnitId, UnitKind)],
    ) -> ChainService {
        let setup = ChainSetup {
            config,
            units: units
                .iter()
                .enumerate()
                .map(|(i, (id, kind))| (*id, *kind, format!("u{i}")))
                .collect(),
            signer: self.key(account),
        };
        ChainService::connect(
            setup,
            store,
            ChainMetrics::register(&prometheus::Registry::new()).unwrap(),
        )
        .await
        .unwrap()
    }

    /// Number of proofs the contract counts for a unit in an epoch.
    pub async fn count(&self, unit: u32, epoch: u64) -> u32 {
        self.contract()
            .unitEpoch(unit, epoch)
            .call()
            .await
            .unwrap()
            .count
    }
}

/// Ticks until the client delivers the current epoch (it fixes the seed itself if needed).
pub async fn deliver_epoch(client: &mut ChainService) -> capminer_proofs::Epoch {
    for _ in 0..5 {
        if let Some(e) = client.tick().await.unwrap().new_epoch {
            return e;
        }
    }
    panic!("no epoch delivered");
}
