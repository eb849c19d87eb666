//! Chain tests: a real anvil, the real contract compiled from source (the committed artifact,
//! which CI checks against the source), the real chain client.

mod attacks;
mod campaign;
mod delivery;
mod doctor;
mod duplicate;
mod fleet;
mod flow;
mod gas;
mod restart;
mod scheduling;
mod stop;
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
pub(crate) fn anvil_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil")
}

/// anvil's first accounts (its default mnemonic); `Net::start` checks them.
pub(crate) const ACCOUNTS: [Address; 7] = [
    alloy::primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
    alloy::primitives::address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
    alloy::primitives::address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
    alloy::primitives::address!("90F79bf6EB2c4f870365E785982E1f101E93b906"),
    alloy::primitives::address!("15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
    alloy::primitives::address!("9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
    alloy::primitives::address!("976EA74026E726554dB657fA54763abd0C3a0aa9"),
];

/// A unit id of account `account`'s (ids start with the provider's address), then `tag`.
pub(crate) const fn unit_id(account: usize, tag: u8) -> UnitId {
    let mut id = [tag; 32];
    let address = ACCOUNTS[account].0.0;
    let mut i = 0;
    while i < 20 {
        id[i] = address[i];
        i += 1;
    }
    UnitId(id)
}

pub(crate) const EPOCH: u64 = 60;
pub(crate) const GRACE: u64 = 20;
pub(crate) const VERIFY: u64 = 30;

/// A contract spec for tests: CPU target `cpu_target`, min/max proofs, 1 ether reward,
/// 0.1 ether collateral, no timelock delay; `Net::start` makes account 2 the verifier (quorum
/// 1) and account 0 the guardian unless the spec names others.
pub(crate) fn spec(cpu_target: Target, min: u32, max: u32) -> ContractSpec {
    let kind = KindSpec {
        target: cpu_target,
        min_proofs: min,
        max_proofs: max,
        reward_wei: 10u128.pow(18),
        collateral_wei: 10u128.pow(17),
        challenge: [0; 32],
    };
    ContractSpec {
        epoch_seconds: EPOCH,
        grace_seconds: GRACE,
        verify_seconds: VERIFY,
        timelock_seconds: 0,
        quorum: 1,
        slash_bps: 1000,
        verifiers: Vec::new(),
        guardian: Address::ZERO,
        kinds: [kind, kind],
    }
}

/// A running anvil with the contract deployed; accounts 0 owner, 1 provider, 2 verifier,
/// 3 another provider.
pub(crate) struct Net {
    pub anvil: AnvilInstance,
    pub url: String,
    pub deployment: Deployment,
    pub provider: DynProvider,
}

impl Net {
    pub(crate) async fn start(spec: &ContractSpec, anvil_args: &[&str]) -> Net {
        let anvil = devnet::spawn_anvil(&anvil_path(), None, anvil_args)
            .expect("anvil starts (deploy/setup.sh installs it)");
        let url = anvil.endpoint();
        for (i, a) in ACCOUNTS.iter().enumerate() {
            assert_eq!(Net::key_of(&anvil, i).address(), *a, "anvil account {i}");
        }
        let mut spec = spec.clone();
        if spec.verifiers.is_empty() {
            spec.verifiers = vec![Net::key_of(&anvil, 2).address()];
        }
        if spec.guardian == Address::ZERO {
            spec.guardian = Net::key_of(&anvil, 0).address();
        }
        let deployment = devnet::deploy(&url, Net::key_of(&anvil, 0), &spec)
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

    pub(crate) fn key(&self, i: usize) -> PrivateKeySigner {
        Net::key_of(&self.anvil, i)
    }

    pub(crate) fn address(&self) -> Address {
        self.deployment.address
    }

    /// Attests a unit-epoch from account `account` by hand (no recomputation), signing the
    /// sample hash as a verifier does; returns the receipt's status.
    pub(crate) async fn attest(&self, account: usize, unit: u32, epoch: u64) -> bool {
        use alloy::signers::SignerSync;
        let digest = self
            .contract()
            .unitEpoch(unit, epoch)
            .call()
            .await
            .unwrap()
            .digest;
        let chain_id = self.provider.get_chain_id().await.unwrap();
        let hash =
            capminer_chain::verifier::sample_hash(chain_id, self.address(), unit, epoch, digest);
        let signature = self.key(account).sign_hash_sync(&hash).unwrap().as_bytes();
        let as_verifier = capminer_chain::bindings::Capacity::new(
            self.address(),
            devnet::signing_provider(&self.url, self.key(account)).unwrap(),
        );
        as_verifier
            .attest(unit, epoch, digest, 0, signature.to_vec().into())
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap()
            .status()
    }

    /// Binds account `key` as an operator of account `provider` for `host`: the provider
    /// offers, the key accepts (the contract binds no key without its consent).
    pub(crate) async fn bind_operator(&self, provider: usize, key: usize, host: u16) {
        let at = |i: usize| {
            capminer_chain::bindings::Capacity::new(
                self.address(),
                devnet::signing_provider(&self.url, self.key(i)).unwrap(),
            )
        };
        let (by_provider, by_key) = (at(provider), at(key));
        let offer = by_provider.authorizeOperator(self.key(key).address(), host);
        let accept = by_key.acceptOperator(self.key(provider).address());
        for receipt in [
            offer.send().await.unwrap().get_receipt().await.unwrap(),
            accept.send().await.unwrap().get_receipt().await.unwrap(),
        ] {
            assert!(
                receipt.status(),
                "binding operator key {key} to provider {provider}"
            );
        }
    }

    /// Registers units to account `account`; returns their indices.
    pub(crate) async fn register(&self, account: usize, units: &[(UnitId, UnitKind)]) -> Vec<u32> {
        devnet::register_units(&self.url, self.key(account), self.address(), units)
            .await
            .unwrap()
    }

    /// Moves chain time forward by `seconds` and mines a block.
    pub(crate) async fn advance(&self, seconds: u64) {
        self.provider.anvil_increase_time(seconds).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
    }

    /// Moves chain time to unix time `t` (if it is not past it) and mines a block.
    pub(crate) async fn advance_to(&self, t: u64) {
        let now = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp;
        self.advance(t.saturating_sub(now)).await;
    }

    /// The contract's current epoch.
    pub(crate) async fn epoch(&self) -> u64 {
        self.contract().currentEpoch().call().await.unwrap()
    }

    /// Moves to the start of the next epoch.
    pub(crate) async fn next_epoch(&self) -> u64 {
        let e = self.epoch().await;
        let start: U256 = self.contract().epochStart(e + 1).call().await.unwrap();
        self.advance_to(start.to()).await;
        assert_eq!(self.epoch().await, e + 1);
        e + 1
    }

    pub(crate) fn contract(
        &self,
    ) -> capminer_chain::bindings::Capacity::CapacityInstance<DynProvider> {
        capminer_chain::bindings::Capacity::new(self.address(), self.provider.clone())
    }

    /// The chain config a provider's client uses.
    pub(crate) fn chain_config(&self) -> ChainConfig {
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
    pub(crate) async fn client(
        &self,
        account: usize,
        config: ChainConfig,
        store: Arc<ProofStore>,
        units: &[(UnitId, UnitKind)],
    ) -> ChainService {
        self.client_in(account, config, store, units, &prometheus::Registry::new())
            .await
    }

    /// [`Net::client`] with its metrics registered in `registry`.
    pub(crate) async fn client_in(
        &self,
        account: usize,
        config: ChainConfig,
        store: Arc<ProofStore>,
        units: &[(UnitId, UnitKind)],
        registry: &prometheus::Registry,
    ) -> ChainService {
        let setup = ChainSetup {
            config,
            units: units
                .iter()
                .enumerate()
                .map(|(i, (id, kind))| capminer_protocol::UnitRef {
                    id: *id,
                    kind: *kind,
                    label: format!("u{i}"),
                })
                .collect(),
            signer: self.key(account),
            gpu_challenge: None,
        };
        ChainService::connect(setup, store, ChainMetrics::register(registry).unwrap())
            .await
            .unwrap()
    }

    /// Number of proofs the contract counts for a unit in an epoch.
    pub(crate) async fn count(&self, unit: u32, epoch: u64) -> u32 {
        self.contract()
            .unitEpoch(unit, epoch)
            .call()
            .await
            .unwrap()
            .count
    }
}

/// A TCP proxy that can cut every connection and refuse new ones, then come back.
pub(crate) struct Proxy {
    /// The port it listens on.
    pub port: u16,
    /// `false` cuts every connection and refuses new ones; `true` lets them through again.
    pub up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    /// A proxy to `127.0.0.1:target`.
    pub(crate) async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut watch = watch.clone();
                if !*watch.borrow() {
                    continue; // down: the connection is dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { port, up }
    }
}

/// The configuration of a light-mode `capminer run` of account 1 in these tests: its store
/// under `dir`, unit ids derived from account 1, no metrics endpoint, the chain of `net`.
pub(crate) fn light_miner_config(net: &Net, dir: &std::path::Path) -> capminer_config::Config {
    let mut config = capminer_config::Config::default();
    config.miner.state_dir = dir.join("state");
    config.miner.provider = ACCOUNTS[1].0.0;
    config.cpu.randomx.full_memory = false;
    config.cpu.randomx.large_pages = false;
    config.cpu.round_ms = 100;
    config.metrics.enabled = false;
    config.api.enabled = false;
    config.chain = net.chain_config();
    config
}

/// Registers the units `config` plans on this machine to account 1; returns them with their
/// on-chain indices.
pub(crate) async fn register_planned(
    net: &Net,
    config: &capminer_config::Config,
) -> (Vec<(UnitId, UnitKind)>, Vec<u32>) {
    let units = planned_units(config);
    let indices = net.register(1, &units).await;
    (units, indices)
}

/// The units `config` plans on this machine: id and kind.
pub(crate) fn planned_units(config: &capminer_config::Config) -> Vec<(UnitId, UnitKind)> {
    capminer_miner::Miner::plan(config)
        .unwrap()
        .units()
        .into_iter()
        .map(|u| (u.id, u.kind))
        .collect()
}

impl Net {
    /// Fixes the current epoch's seed (from account 0) and mines one more block, so the seed
    /// is final at 2 confirmations and a miner may start under it.
    pub(crate) async fn seed_epoch(&self) {
        let owner = devnet::signing_provider(&self.url, self.key(0)).unwrap();
        capminer_chain::bindings::Capacity::new(self.address(), owner)
            .advanceEpoch()
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        self.advance(0).await;
    }
}

/// Ticks until the client delivers the current epoch (it fixes the seed itself if needed and
/// waits for the seed's block to be final), mining a block after each tick.
pub(crate) async fn deliver_epoch(net: &Net, client: &mut ChainService) -> capminer_proofs::Epoch {
    for _ in 0..10 {
        if let Some(e) = client.tick().await.unwrap().new_epoch {
            return e;
        }
        net.advance(0).await;
    }
    panic!("no epoch delivered");
}
