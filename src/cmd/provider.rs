//! `capminer provider …`: the tasks of a provider's key, run from wherever that key is kept
//! (never on every host): it registers units (assigned to the configuration's `miner.host`),
//! offers one operator key per host (`capminer run` signs with it, and it can submit proofs for
//! that host's units and nothing else), claims rewards, tops up, retires and withdraws. Two
//! tasks run on a host with its operator key instead: `accept` (the key takes its provider's
//! offer: nobody binds a key without its consent) and `release` (the key leaves its provider).
//! The key comes from `chain.key_file` / `CAPMINER_PRIVATE_KEY`, never logged; connecting and
//! sending are in `signed.rs`. `address` prints the key's address (the `miner.provider` of
//! every host).

use std::process::ExitCode;

use alloy::primitives::{Address, U256};
use capminer_chain::key::{KeySource, load_signer};
use capminer_config::Config;
use capminer_proofs::{UnitId, UnitKind};
use capminer_protocol::UnitIndex;

use super::signed::{Signed, Whose, run_task};
use super::{ConfigArg, load_config};
use crate::output::outln;

/// `capminer provider`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProviderArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    task: ProviderTask,
}

#[derive(Debug, clap::Subcommand)]
enum ProviderTask {
    /// Prints the provider key's address: the `miner.provider` of every host (connects to
    /// nothing).
    Address,
    #[command(flatten)]
    Chain(ChainTask),
}

/// The tasks that connect to the contract and sign.
#[derive(Debug, clap::Subcommand)]
enum ChainTask {
    /// Registers units, paying each kind's collateral: the ids given, or else those the
    /// configuration plans on this machine (with its `miner.host`; a `miner.provider` left at
    /// zero is taken to be this key's address); assigns them to `miner.host`.
    Register {
        /// A unit id (32 bytes, hex, starting with the provider's address) and its kind:
        /// `0x…:cpu` or `0x…:gpu`; repeatable.
        #[arg(long = "id", value_name = "ID:KIND")]
        ids: Vec<String>,
    },
    /// Offers an operator key (one host's) the right to submit proofs for the provider's units
    /// of that host; the key takes it with `accept`.
    Authorize {
        /// The operator's address.
        operator: Address,
        /// The host (default: the configuration's `miner.host`).
        #[arg(long)]
        host: Option<u16>,
    },
    /// Run on a host with its operator key: accepts the offer of `provider`.
    Accept {
        /// The provider's address.
        provider: Address,
    },
    /// Run on a host with its operator key: leaves its provider.
    Release,
    /// Withdraws an operator key's right (or pending offer) to submit, at once.
    Revoke {
        /// The operator's address.
        operator: Address,
    },
    /// Assigns units to a host: only that host's operator keys submit for them.
    Assign {
        /// The host.
        #[arg(long)]
        host: u16,
        #[command(flatten)]
        which: Indices,
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
pub(crate) fn provider(args: ProviderArgs) -> anyhow::Result<ExitCode> {
    let task = match args.task {
        ProviderTask::Address => {
            let config = load_config(&args.config)?;
            let key = KeySource::provider(config.chain.key_file.as_deref());
            outln!("{}", load_signer(key, |k| std::env::var(k).ok())?.address())?;
            return Ok(ExitCode::SUCCESS);
        }
        ProviderTask::Chain(task) => task,
    };
    run_task(
        &args.config,
        Whose::Provider,
        async |config, s| match &task {
            ChainTask::Register { ids } => register(config, s, ids).await,
            ChainTask::Authorize { operator, host } => {
                let host = host.unwrap_or(host_of(config)?);
                s.send(
                    s.contract.authorizeOperator(*operator, host),
                    "authorizeOperator",
                )
                .await
            }
            ChainTask::Accept { provider } => {
                s.send(s.contract.acceptOperator(*provider), "acceptOperator")
                    .await
            }
            ChainTask::Release => {
                s.send(s.contract.releaseOperator(), "releaseOperator")
                    .await
            }
            ChainTask::Assign { host, which } => {
                let indices = indices(config, s, which).await?;
                s.send(s.contract.assignUnits(indices, *host), "assignUnits")
                    .await
            }
            ChainTask::Revoke { operator } => {
                s.send(s.contract.revokeOperator(*operator), "revokeOperator")
                    .await
            }
            ChainTask::Claim => claim(config, s).await,
            ChainTask::Retire(which) => {
                let indices = indices(config, s, which).await?;
                s.send(s.contract.retireUnits(indices), "retireUnits").await
            }
            ChainTask::Withdraw(which) => {
                let indices = indices(config, s, which).await?;
                s.send(s.contract.withdrawCollateral(indices), "withdrawCollateral")
                    .await
            }
            ChainTask::TopUp(which) => top_up(config, s, which).await,
            ChainTask::Units => list_units(config, s).await,
        },
    )
}

/// The indices named, or every unit of the provider with `--all`; refused when none.
async fn indices(config: &Config, s: &Signed, which: &Indices) -> anyhow::Result<Vec<u32>> {
    let indices = if which.all {
        s.my_units(config).await?
    } else {
        which.indices.clone()
    };
    if indices.is_empty() {
        anyhow::bail!("no units named (give indices or --all)");
    }
    Ok(indices)
}

/// `register`: the ids given, or those the configuration plans on this machine.
async fn register(config: &Config, s: &Signed, ids: &[String]) -> anyhow::Result<()> {
    let units: Vec<(UnitId, UnitKind)> = if ids.is_empty() {
        capminer_miner::Miner::plan(&owned_by(config, s.signer.address())?)?
            .units()
            .into_iter()
            .map(|u| (u.id, u.kind))
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
    let host = host_of(config)?;
    if host != 0 {
        s.send(s.contract.assignUnits(indices.clone(), host), "assignUnits")
            .await?;
    }
    for ((id, kind), index) in units.iter().zip(indices) {
        outln!("unit {index}\t{id}\t{}", kind.as_str())?;
    }
    Ok(())
}

/// `config` with `miner.provider` = `key`, the address the registered ids must start with: a
/// zero one is taken to be it (provider tasks sign with the provider's own key), another one
/// is refused, since the contract would refuse every derived id (`IdNotBound`).
fn owned_by(config: &Config, key: Address) -> anyhow::Result<Config> {
    let provider = Address::from(config.miner.provider);
    if provider == key {
        return Ok(config.clone());
    }
    if !provider.is_zero() {
        return Err(config
            .key_error(
                "miner.provider",
                format!(
                    "{provider} is not the address of the key this command signs with ({key}): \
                     the contract registers only ids that start with the registering key's \
                     address (IdNotBound); run it with the provider's key, or set \
                     miner.provider = \"{key}\""
                ),
            )
            .into());
    }
    eprintln!("miner.provider is not set: deriving the unit ids from this key's address {key}");
    let mut config = config.clone();
    config.miner.provider = key.0.0;
    Ok(config)
}

/// The configuration's `miner.host` as the contract's host number.
fn host_of(config: &Config) -> anyhow::Result<u16> {
    u16::try_from(config.miner.host)
        .map_err(|_| anyhow::anyhow!("miner.host {} is above 65535", config.miner.host))
}

/// `claim`: every unit with something claimable, up to the current epoch, in one call.
async fn claim(config: &Config, s: &Signed) -> anyhow::Result<()> {
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
        outln!("nothing to claim up to epoch {epoch}")?;
    } else {
        outln!("claiming {total} wei for {} units", due.len())?;
        s.send(s.contract.claim(due, epoch), "claim").await?;
    }
    Ok(())
}

/// `top-up`: each unit's collateral back to what it registered with.
async fn top_up(config: &Config, s: &Signed, which: &Indices) -> anyhow::Result<()> {
    for index in indices(config, s, which).await? {
        let u = s.chain.unit_info(UnitIndex(index)).await?;
        let need = u.registeredCollateral - u.collateral;
        if need == 0 {
            outln!("unit {index}: collateral complete")?;
            continue;
        }
        s.send(s.contract.topUp(index).value(U256::from(need)), "topUp")
            .await?;
    }
    Ok(())
}

/// `units`: one line a unit of the provider.
async fn list_units(config: &Config, s: &Signed) -> anyhow::Result<()> {
    let epoch = s.current_epoch().await?;
    outln!("index\tid\tkind\tstart\tend\tcollateral\tclaimable")?;
    for index in s.my_units(config).await? {
        let u = s.chain.unit_info(UnitIndex(index)).await?;
        let claimable = s.claimable(index, epoch).await?;
        let end = if u.endEpoch == u64::MAX {
            "-".to_string()
        } else {
            u.endEpoch.to_string()
        };
        outln!(
            "{index}\t{}\t{}\t{}\t{end}\t{}/{}\t{claimable}",
            u.id,
            if u.kind == 0 { "cpu" } else { "gpu" },
            u.startEpoch,
            u.collateral,
            u.registeredCollateral,
        )?;
    }
    Ok(())
}
