//! `capminer provider …` and `capminer party …`: the tasks of a provider's key and of a
//! verifier party's key, run from wherever that key is kept (never on every host).
//!
//! A provider registers units, authorizes one operator key per host (`capminer run` signs
//! with it, and it can submit proofs and nothing else), claims rewards, tops up, retires and
//! withdraws. A verifier party authorizes one delegate key per shard (`capminer verifier
//! --shard I/N` signs with it). Keys come from `chain.key_file` / `CAPMINER_PRIVATE_KEY`
//! (provider) and `verifier.key_file` / `CAPMINER_VERIFIER_KEY` (party), never logged.

use std::process::ExitCode;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use capminer_chain::bindings::Capacity;
use capminer_chain::handle::ChainHandle;
use capminer_chain::key::{KeySource, load_signer};
use capminer_config::Config;
use capminer_proofs::{UnitId, UnitKind};
use capminer_protocol::UnitIndex;

use crate::{ConfigArg, load_config};

/// `capminer provider`.
#[derive(Debug, clap::Args)]
pub struct ProviderArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    task: ProviderTask,
}

#[derive(Debug, clap::Subcommand)]
enum ProviderTask {
    /// Registers units, paying each kind's collateral: the ids given, or else those the
    /// configuration plans on this machine (with its `miner.host`).
    Register {
        /// A unit id (32 bytes, hex, starting with the provider's address) and its kind:
        /// `0x…:cpu` or `0x…:gpu`; repeatable.
        #[arg(long = "id", value_name = "ID:KIND")]
        ids: Vec<String>,
    },
    /// Lets an operator key (one host's) submit proofs for the provider's units.
    Authorize {
        /// The operator's address.
        operator: Address,
    },
    /// Withdraws an operator key's right to submit.
    Revoke {
        /// The operator's address.
        operator: Address,
    },
    /// Claims every unit's rewards up to the current epoch.
    Claim,
    /// Retires units from the next epoch on (`--all`: every unit of the provider).
    Retire(Indices),
    /// Withdraws the collateral of retired, settled units.
    Withdraw(Indices),
    /// Restores the collateral of slashed units.
    TopUp(Indices),
    /// Lists the provider's units: index, id, kind, epochs, collateral, claimable.
    Units,
}

/// Unit indices, or all of the provider's.
#[derive(Debug, clap::Args)]
struct Indices {
    /// On-chain unit indices.
    indices: Vec<u32>,
    /// Every unit of the provider.
    #[arg(long, conflicts_with = "indices")]
    all: bool,
}

/// `capminer party`.
#[derive(Debug, clap::Args)]
pub struct PartyArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    task: PartyTask,
}

#[derive(Debug, clap::Subcommand)]
enum PartyTask {
    /// Lets a delegate key (one shard's) attest, report and abstain for this party.
    Authorize {
        /// The delegate's address.
        delegate: Address,
    },
    /// Withdraws a delegate key's right to act for this party.
    Revoke {
        /// The delegate's address.
        delegate: Address,
    },
}

/// The chain handle and a contract instance that signs with `signer`.
struct Signed {
    chain: ChainHandle,
    contract: Capacity::CapacityInstance<DynProvider>,
    signer: PrivateKeySigner,
    me: Address,
}

/// Whose key a task signs with.
#[derive(Debug, Clone, Copy)]
enum Whose {
    /// The provider's: `chain.key_file`, else `CAPMINER_PRIVATE_KEY`.
    Provider,
    /// A verifier party's: `verifier.key_file`, else `CAPMINER_VERIFIER_KEY`.
    Party,
}

/// Loads the configuration (it must name the contract), connects with `whose` key and runs
/// `task` to its end on a small runtime.
fn run_task(
    arg: &ConfigArg,
    whose: Whose,
    task: impl AsyncFnOnce(&Config, &Signed) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(arg)?;
    if config.chain.contract.is_none() {
        return Err(config
            .key_error("chain.contract", "this task needs the contract address")
            .into());
    }
    let key = match whose {
        Whose::Provider => KeySource::provider(config.chain.key_file.as_deref()),
        Whose::Party => KeySource::verifier(config.verifier.key_file.as_deref()),
    };
    let signer = load_signer(key, |k| std::env::var(k).ok())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let chain = ChainHandle::connect(&config.chain).await?;
        let provider =
            capminer_chain::devnet::signing_provider(&config.chain.rpc_url, signer.clone())?;
        let signed = Signed {
            contract: Capacity::new(chain.address, provider),
            chain,
            me: signer.address(),
            signer,
        };
        task(&config, &signed).await
    })?;
    Ok(ExitCode::SUCCESS)
}

impl Signed {
    async fn current_epoch(&self) -> anyhow::Result<u64> {
        Ok(self
            .contract
            .currentEpoch()
            .call()
            .await
            .map_err(self.chain.call_error("currentEpoch"))?)
    }

    /// What unit `index` can claim up to epoch `epoch`, in wei.
    async fn claimable(&self, index: u32, epoch: u64) -> anyhow::Result<U256> {
        Ok(self
            .contract
            .claimable(index, epoch)
            .call()
            .await
            .map_err(self.chain.call_error("claimable"))?
            .amount)
    }

    /// Sends a call, waits for its receipt; the contract's errors decoded.
    async fn send<C: alloy::sol_types::SolCall>(
        &self,
        call: alloy::contract::CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
        what: &'static str,
    ) -> anyhow::Result<()> {
        let pending = call.send().await.map_err(self.chain.call_error(what))?;
        let receipt = pending
            .get_receipt()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: waiting for the receipt: {e}"))?;
        if !receipt.status() {
            anyhow::bail!("{what}: transaction {} reverted", receipt.transaction_hash);
        }
        println!("{what}: ok (transaction {})", receipt.transaction_hash);
        Ok(())
    }

    /// Indices of every unit registered to this key, read from `UnitRegistered` logs in
    /// `chain.log_range` slices from `chain.start_block`.
    async fn my_units(&self, config: &Config) -> anyhow::Result<Vec<u32>> {
        let head = self
            .chain
            .provider
            .get_block_number()
            .await
            .map_err(self.chain.rpc_error("eth_blockNumber"))?;
        let mut out = Vec::new();
        let mut from = config.chain.start_block;
        while from <= head {
            let to = head.min(from + config.chain.log_range.max(1) - 1);
            let filter = Filter::new()
                .address(self.chain.address)
                .event_signature(Capacity::UnitRegistered::SIGNATURE_HASH)
                .topic3(self.me.into_word())
                .from_block(from)
                .to_block(to);
            for log in self
                .chain
                .provider
                .get_logs(&filter)
                .await
                .map_err(self.chain.rpc_error("eth_getLogs"))?
            {
                let e = log
                    .log_decode::<Capacity::UnitRegistered>()
                    .map_err(|e| anyhow::anyhow!("a UnitRegistered log does not decode: {e}"))?;
                out.push(e.inner.data.index);
            }
            from = to + 1;
        }
        Ok(out)
    }

    async fn indices(&self, config: &Config, which: &Indices) -> anyhow::Result<Vec<u32>> {
        let indices = if which.all {
            self.my_units(config).await?
        } else {
            which.indices.clone()
        };
        if indices.is_empty() {
            anyhow::bail!("no units named (give indices or --all)");
        }
        Ok(indices)
    }
}

/// Parses `0x…:cpu|gpu`.
fn parse_unit(s: &str) -> anyhow::Result<(UnitId, UnitKind)> {
    let bad = || anyhow::anyhow!("--id {s:?}: expected 0x<64 hex digits>:cpu or :gpu");
    let (id, kind) = s.rsplit_once(':').ok_or_else(bad)?;
    let bytes: [u8; 32] = alloy::hex::decode(id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    let kind = match kind {
        "cpu" => UnitKind::Cpu,
        "gpu" => UnitKind::Gpu,
        _ => return Err(bad()),
    };
    Ok((UnitId(bytes), kind))
}

/// Runs one provider task.
pub fn provider(args: ProviderArgs) -> anyhow::Result<ExitCode> {
    run_task(&args.config, Whose::Provider, async |config, s| {
        match &args.task {
            ProviderTask::Register { ids } => {
                let units: Vec<(UnitId, UnitKind)> = if ids.is_empty() {
                    capminer_miner::Miner::plan(config)?
                        .units()
                        .into_iter()
                        .map(|(id, kind, _)| (id, kind))
                        .collect()
                } else {
                    ids.iter()
                        .map(|s| parse_unit(s))
                        .collect::<anyhow::Result<_>>()?
                };
                let indices = capminer_chain::devnet::register_units(
                    &config.chain.rpc_url,
                    s.signer.clone(),
                    s.chain.address,
                    &units,
                )
                .await?;
                for ((id, kind), index) in units.iter().zip(indices) {
                    println!("unit {index}\t{id}\t{}", kind.as_str());
                }
            }
            ProviderTask::Authorize { operator } => {
                s.send(s.contract.authorizeOperator(*operator), "authorizeOperator")
                    .await?
            }
            ProviderTask::Revoke { operator } => {
                s.send(s.contract.revokeOperator(*operator), "revokeOperator")
                    .await?
            }
            ProviderTask::Claim => {
                let epoch = s.current_epoch().await?;
                let mut due = Vec::new();
                let mut total = U256::ZERO;
                for index in s.my_units(config).await? {
                    let amount = s.claimable(index, epoch).await?;
                    if amount > U256::ZERO {
                        total += amount;
                        due.push(index);
                    }
                }
                if due.is_empty() {
                    println!("nothing to claim up to epoch {epoch}");
                } else {
                    println!("claiming {total} wei for {} units", due.len());
                    s.send(s.contract.claim(due, epoch), "claim").await?;
                }
            }
            ProviderTask::Retire(which) => {
                let indices = s.indices(config, which).await?;
                s.send(s.contract.retireUnits(indices), "retireUnits")
                    .await?
            }
            ProviderTask::Withdraw(which) => {
                let indices = s.indices(config, which).await?;
                s.send(s.contract.withdrawCollateral(indices), "withdrawCollateral")
                    .await?
            }
            ProviderTask::TopUp(which) => {
                for index in s.indices(config, which).await? {
                    let u = s.chain.unit_info(UnitIndex(index)).await?;
                    let need = u.registeredCollateral - u.collateral;
                    if need == 0 {
                        println!("unit {index}: collateral complete");
                        continue;
                    }
                    s.send(s.contract.topUp(index).value(U256::from(need)), "topUp")
                        .await?;
                }
            }
            ProviderTask::Units => {
                let epoch = s.current_epoch().await?;
                println!("index\tid\tkind\tstart\tend\tcollateral\tclaimable");
                for index in s.my_units(config).await? {
                    let u = s.chain.unit_info(UnitIndex(index)).await?;
                    let claimable = s.claimable(index, epoch).await?;
                    let end = if u.endEpoch == u64::MAX {
                        "-".to_string()
                    } else {
                        u.endEpoch.to_string()
                    };
                    println!(
                        "{index}\t{}\t{}\t{}\t{end}\t{}/{}\t{claimable}",
                        u.id,
                        if u.kind == 0 { "cpu" } else { "gpu" },
                        u.startEpoch,
                        u.collateral,
                        u.registeredCollateral,
                    );
                }
            }
        }
        Ok(())
    })
}

/// Runs one verifier-party task.
pub fn party(args: PartyArgs) -> anyhow::Result<ExitCode> {
    run_task(&args.config, Whose::Party, async |_, s| match args.task {
        PartyTask::Authorize { delegate } => {
            s.send(s.contract.authorizeDelegate(delegate), "authorizeDelegate")
                .await
        }
        PartyTask::Revoke { delegate } => {
            s.send(s.contract.revokeDelegate(delegate), "revokeDelegate")
                .await
        }
    })
}
