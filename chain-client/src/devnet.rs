//! Setting up a capacity contract: deployment, unit registration, pool funding, verifiers.
//! `capminer devnet` and the chain tests both use these, against a real anvil.

use std::path::Path;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use capminer_proofs::{Target, UnitId, UnitKind};

use crate::bindings::Capacity;
use crate::{ChainError, Result};

/// Parameters of one unit kind at deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// Hash threshold.
    pub target: Target,
    /// Proofs per unit per epoch to earn the reward.
    pub min_proofs: u32,
    /// Proofs per unit per epoch counted at most.
    pub max_proofs: u32,
    /// Reward per rewardable unit-epoch, in wei.
    pub reward_wei: u128,
    /// Collateral per unit, in wei.
    pub collateral_wei: u128,
    /// The kind's challenge parameters (`GpuChallenge::to_word` for GPU units, zero for CPU).
    pub challenge: [u8; 32],
}

/// Constructor arguments of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractSpec {
    /// Seconds per epoch.
    pub epoch_seconds: u64,
    /// Seconds after an epoch during which its proofs are still accepted.
    pub grace_seconds: u64,
    /// Seconds after the grace window for attestations and reports; then the epoch settles.
    pub verify_seconds: u64,
    /// Seconds between scheduling a governance call and executing it.
    pub timelock_seconds: u64,
    /// Attestations (and reports) per unit-epoch: at most `verifiers.len()`.
    pub quorum: u32,
    /// Share of a unit's collateral slashed per failed unit-epoch, in basis points.
    pub slash_bps: u64,
    /// The initial verifier set.
    pub verifiers: Vec<Address>,
    /// May pause submissions and claims (zero: nobody).
    pub guardian: Address,
    /// CPU and GPU parameters.
    pub kinds: [KindSpec; 2],
}

/// A majority of `n` verifiers: the devnet's default quorum.
pub fn majority(n: u32) -> u32 {
    n / 2 + 1
}

/// A deployed contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// Its address.
    pub address: Address,
    /// The block it was deployed in.
    pub block: u64,
}

/// Starts anvil from `path` on `port` (any free port if `None`) with `args`; killed when the
/// instance is dropped.
pub fn spawn_anvil(path: &Path, port: Option<u16>, args: &[&str]) -> Result<AnvilInstance> {
    let mut anvil = Anvil::at(path).args(args.iter().copied());
    if let Some(port) = port {
        anvil = anvil.port(port);
    }
    anvil.try_spawn().map_err(|e| ChainError::Anvil {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A provider signing with `key` (recommended fillers: fine for setup, not for mining).
pub fn signing_provider(url: &str, key: PrivateKeySigner) -> Result<DynProvider> {
    let url = url.parse().map_err(|_| ChainError::InvalidUrl {
        url: crate::error::redact_url(url),
    })?;
    Ok(ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(url)
        .erased())
}

fn kind_params(k: &KindSpec) -> Capacity::KindParams {
    Capacity::KindParams {
        target: FixedBytes(k.target.0),
        minProofs: k.min_proofs,
        maxProofs: k.max_proofs,
        reward: k.reward_wei,
        collateral: k.collateral_wei,
        challenge: FixedBytes(k.challenge),
    }
}

/// Maps an error of setup step `step`.
fn setup_error<E: std::fmt::Display>(step: &'static str) -> impl Fn(E) -> ChainError {
    move |e| ChainError::Devnet {
        step,
        message: e.to_string(),
    }
}

/// Deploys the contract from the committed artifact, owned by `owner`.
pub async fn deploy(url: &str, owner: PrivateKeySigner, spec: &ContractSpec) -> Result<Deployment> {
    let provider = signing_provider(url, owner)?;
    let builder = Capacity::deploy_builder(
        provider.clone(),
        Capacity::Schedule {
            epochDuration: spec.epoch_seconds,
            graceWindow: spec.grace_seconds,
            verifyWindow: spec.verify_seconds,
            timelockDelay: spec.timelock_seconds,
        },
        spec.quorum,
        U256::from(spec.slash_bps),
        spec.verifiers.clone(),
        spec.guardian,
        [kind_params(&spec.kinds[0]), kind_params(&spec.kinds[1])],
    );
    let receipt = builder
        .send()
        .await
        .map_err(setup_error("deploying the capacity contract"))?
        .get_receipt()
        .await
        .map_err(setup_error("deploying the capacity contract"))?;
    let address = receipt.contract_address.ok_or_else(|| ChainError::Devnet {
        step: "deploying the capacity contract",
        message: "the deployment receipt has no contract address".into(),
    })?;
    Ok(Deployment {
        address,
        block: receipt.block_number.unwrap_or_default(),
    })
}

async fn send_and_wait(
    call: alloy::contract::CallBuilder<
        &DynProvider,
        std::marker::PhantomData<impl alloy::sol_types::SolCall>,
    >,
    what: &'static str,
) -> Result<()> {
    let receipt = call
        .send()
        .await
        .map_err(setup_error(what))?
        .get_receipt()
        .await
        .map_err(setup_error(what))?;
    if !receipt.status() {
        return Err(ChainError::Devnet {
            step: what,
            message: "transaction reverted".into(),
        });
    }
    Ok(())
}

/// Units registered per transaction by [`register_units`].
pub const REGISTER_CHUNK: usize = 100;

/// Registers `units` to the signer of `key`, paying each kind's collateral, in transactions of
/// at most [`REGISTER_CHUNK`] units; returns their on-chain indices.
pub async fn register_units(
    url: &str,
    key: PrivateKeySigner,
    address: Address,
    units: &[(UnitId, UnitKind)],
) -> Result<Vec<u32>> {
    let provider = signing_provider(url, key)?;
    let contract = Capacity::new(address, provider.clone());
    let mut collateral = [U256::ZERO; 2];
    for kind in [UnitKind::Cpu, UnitKind::Gpu] {
        if units.iter().any(|(_, k)| *k == kind) {
            let p = contract
                .kindParams(kind as u8)
                .call()
                .await
                .map_err(setup_error("reading kind parameters"))?;
            collateral[kind as usize] = U256::from(p.collateral);
        }
    }
    let ids: Vec<FixedBytes<32>> = units.iter().map(|(id, _)| FixedBytes(id.0)).collect();
    // In transactions of at most REGISTER_CHUNK units: a unit costs about 175k gas (its
    // record, its id and its proof slots), so a chunk stays well inside a 30M block.
    for chunk in units.chunks(REGISTER_CHUNK) {
        let value: U256 = chunk.iter().map(|(_, k)| collateral[*k as usize]).sum();
        let chunk_ids: Vec<FixedBytes<32>> = chunk.iter().map(|(id, _)| FixedBytes(id.0)).collect();
        let kinds: Vec<u8> = chunk.iter().map(|(_, k)| *k as u8).collect();
        send_and_wait(
            contract.registerUnits(chunk_ids, kinds).value(value),
            "registering units",
        )
        .await?;
    }
    let mut indices = Vec::new();
    for id in ids {
        indices.push(
            contract
                .unitIndexOf(id)
                .call()
                .await
                .map_err(setup_error("reading unit index"))?,
        );
    }
    Ok(indices)
}

/// Assigns the units `indices` of the signer of `key` to its host `host`: only that host's
/// operator keys submit for them.
pub async fn assign_units(
    url: &str,
    key: PrivateKeySigner,
    address: Address,
    indices: Vec<u32>,
    host: u16,
) -> Result<()> {
    let contract = Capacity::new(address, signing_provider(url, key)?);
    send_and_wait(
        contract.assignUnits(indices, host),
        "assigning units to a host",
    )
    .await
}

/// Binds `operator` to `provider`'s host `host`: the provider offers, the operator key accepts.
pub async fn bind_operator(
    url: &str,
    provider: PrivateKeySigner,
    operator: PrivateKeySigner,
    address: Address,
    host: u16,
) -> Result<()> {
    let (from, key) = (provider.address(), operator.address());
    let by_provider = Capacity::new(address, signing_provider(url, provider)?);
    send_and_wait(
        by_provider.authorizeOperator(key, host),
        "offering an operator key",
    )
    .await?;
    let by_operator = Capacity::new(address, signing_provider(url, operator)?);
    send_and_wait(
        by_operator.acceptOperator(from),
        "accepting the provider's offer",
    )
    .await
}

/// Adds `wei` to the reward pool.
pub async fn fund_pool(
    url: &str,
    key: PrivateKeySigner,
    address: Address,
    wei: U256,
) -> Result<()> {
    let provider = signing_provider(url, key)?;
    let contract = Capacity::new(address, provider.clone());
    send_and_wait(contract.fundPool().value(wei), "funding the reward pool").await
}

/// Schedules a governance call (`Capacity::addVerifierCall` and the like) through the
/// timelock; returns when it becomes executable (unix seconds).
pub async fn schedule(
    url: &str,
    owner: PrivateKeySigner,
    address: Address,
    call: &impl alloy::sol_types::SolCall,
) -> Result<u64> {
    let provider = signing_provider(url, owner)?;
    let contract = Capacity::new(address, provider.clone());
    let data = alloy::primitives::Bytes::from(call.abi_encode());
    send_and_wait(
        contract.schedule(data.clone()),
        "scheduling a governance call",
    )
    .await?;
    let id = alloy::primitives::keccak256(&data);
    let eta: U256 = contract
        .scheduledAt(id)
        .call()
        .await
        .map_err(setup_error("reading the timelock"))?;
    Ok(eta.to())
}

/// Executes a scheduled governance call whose delay has passed.
pub async fn execute(
    url: &str,
    owner: PrivateKeySigner,
    address: Address,
    call: &impl alloy::sol_types::SolCall,
) -> Result<()> {
    let provider = signing_provider(url, owner)?;
    let contract = Capacity::new(address, provider.clone());
    send_and_wait(
        contract.execute(call.abi_encode().into()),
        "executing a governance call",
    )
    .await
}
