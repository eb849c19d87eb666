//! `capminer devnet`: the whole system on one machine. Starts anvil, deploys the capacity
//! contract, registers this machine's units, funds the reward pool, starts verifiers, and runs
//! the miner and its chain client against it: proofs found, submitted, accepted, verified,
//! attested, and rewards claimed, on the terminal and at the metrics endpoint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::devnet::{self, ContractSpec, KindSpec};
use capminer_chain::verifier::VerifierService;
use capminer_miner::verify::Verifier;
use capminer_miner::{Miner, gpu_params, randomx_options};
use capminer_proofs::Target;
use prometheus::Registry;

use crate::node::{ChainJob, run_node, runtime};
use crate::{ConfigArg, load_config, logging};

/// Arguments of `capminer devnet`.
#[derive(Debug, clap::Args)]
pub struct DevnetArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The anvil binary (default: tools/node_modules/.bin/anvil from the repository, else
    /// `anvil` on PATH).
    #[arg(long, value_name = "PATH")]
    anvil: Option<PathBuf>,
    /// Port of anvil's JSON-RPC endpoint.
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Seconds per epoch.
    #[arg(long, default_value_t = 120)]
    epoch_seconds: u64,
    /// Seconds after an epoch during which its proofs are still accepted.
    #[arg(long, default_value_t = 30)]
    grace_seconds: u64,
    /// Seconds after the grace window for attestations and reports; then an epoch settles.
    #[arg(long, default_value_t = 90)]
    verify_seconds: u64,
    /// Seconds between scheduling a governance call and executing it.
    #[arg(long, default_value_t = 0)]
    timelock_seconds: u64,
    /// Proofs per unit per epoch needed for the reward.
    #[arg(long, default_value_t = 2)]
    min_proofs: u32,
    /// Proofs per unit per epoch counted at most.
    #[arg(long, default_value_t = 256)]
    max_proofs: u32,
    /// Verifiers to run (the quorum is a majority of them).
    #[arg(long, default_value_t = 1)]
    verifiers: u32,
}

const ETHER: u128 = 1_000_000_000_000_000_000;

fn find_anvil(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    let here = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    here.iter()
        .chain(exe.iter())
        .flat_map(|p| p.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .map(|dir| dir.join("tools/node_modules/.bin/anvil"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("anvil"))
}

/// Runs the devnet until SIGINT or SIGTERM.
pub fn devnet(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    logging::init(&config)?;
    let runtime = runtime(&config)?;
    let anvil_path = find_anvil(args.anvil);
    let anvil = devnet::spawn_anvil(&anvil_path, Some(args.port), &["--block-time", "1"])?;
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let (owner, provider) = (key(0), key(1));
    // Unit ids start with their provider's address: derive them from the devnet's provider.
    config.miner.provider = provider.address().0.0;
    let plan = Miner::plan(&config)?;
    let verifiers: Vec<PrivateKeySigner> = (0..args.verifiers.max(1) as usize)
        .map(|i| key(2 + i))
        .collect();
    let kind = |target: [u8; 32], challenge: [u8; 32]| KindSpec {
        target: Target(target),
        min_proofs: args.min_proofs,
        max_proofs: args.max_proofs,
        reward_wei: ETHER,
        collateral_wei: ETHER / 10,
        challenge,
    };
    let spec = ContractSpec {
        epoch_seconds: args.epoch_seconds,
        grace_seconds: args.grace_seconds,
        verify_seconds: args.verify_seconds,
        timelock_seconds: args.timelock_seconds,
        quorum: devnet::majority(verifiers.len() as u32),
        slash_bps: 1000,
        verifiers: verifiers.iter().map(PrivateKeySigner::address).collect(),
        guardian: owner.address(),
        kinds: [
            kind(config.epoch.cpu_target, [0; 32]),
            kind(
                config.epoch.gpu_target,
                capminer_chain::network_challenge(&config.network),
            ),
        ],
    };
    let units: Vec<_> = plan
        .units()
        .into_iter()
        .map(|(id, kind, _)| (id, kind))
        .collect();
    let deployment = runtime.block_on(async {
        let deployment = devnet::deploy(&url, owner.clone(), &spec).await?;
        devnet::register_units(&url, provider.clone(), deployment.address, &units).await?;
        devnet::fund_pool(
            &url,
            owner.clone(),
            deployment.address,
            U256::from(1000 * ETHER),
        )
        .await?;
        // Units prove from the epoch after their registration: on a devnet, go there now.
        let chain = devnet::signing_provider(&url, owner.clone())?;
        chain.anvil_increase_time(args.epoch_seconds).await?;
        chain.anvil_mine(Some(1), None).await?;
        anyhow::Ok(deployment)
    })?;
    tracing::info!(
        rpc = %url,
        contract = %deployment.address,
        provider = %provider.address(),
        units = units.len(),
        verifiers = verifiers.len(),
        epoch_seconds = args.epoch_seconds,
        "devnet up: anvil, contract deployed, units registered, reward pool funded"
    );
    config.chain.enabled = true;
    config.chain.rpc_url = url.clone();
    config.chain.contract = Some(deployment.address.0.0);
    config.chain.start_block = deployment.block;
    config.chain.chain_id = Some(anvil.chain_id());

    let stop = Arc::new(AtomicBool::new(false));
    let registry = Registry::new();
    let mut critical = Vec::new();
    for (i, signer) in verifiers.into_iter().enumerate() {
        let mut vconfig = config.clone();
        vconfig.verifier.state_dir = config.verifier.state_dir.join(format!("verifier-{i}"));
        let checker = Arc::new(Verifier::new(
            randomx_options(&config),
            gpu_params(&config)?,
        )?);
        let service = runtime.block_on(VerifierService::connect(
            &vconfig, signer, checker, &registry,
        ))?;
        let s = stop.clone();
        let task = runtime.spawn(service.run(move || s.load(Ordering::Acquire)));
        critical.push((format!("verifier {i}"), task));
    }
    let result = run_node(
        &config,
        Some(ChainJob { signer: provider }),
        &runtime,
        &registry,
        stop.clone(),
        critical,
    );
    stop.store(true, Ordering::Release);
    drop(anvil);
    result
}
