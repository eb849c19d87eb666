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
    /// Verifier parties to run (the quorum is a majority of them).
    #[arg(long, default_value_t = 1)]
    verifiers: u32,
    /// Shards per verifier party: above 1, each party authorizes one delegate key per shard
    /// and runs `--shard I/N` services.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Hosts of the provider: above 1, each host signs with its own operator key and derives
    /// its units with its own `miner.host`; host 0 runs in this process, the others as
    /// `capminer run` child processes (metrics on the next ports, API off). Every host plans
    /// this machine's cores, so N hosts share them (and need N times the memory).
    #[arg(long, default_value_t = 1)]
    hosts: u32,
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
    let (parties, shards, hosts) = (
        args.verifiers.max(1) as usize,
        args.shards.max(1) as usize,
        args.hosts.max(1) as usize,
    );
    // Accounts: owner, provider, the parties, their delegates, the hosts' operators.
    let delegates = if shards > 1 { parties * shards } else { 0 };
    let operators = if hosts > 1 { hosts } else { 0 };
    let accounts = (2 + parties + delegates + operators).max(10).to_string();
    let anvil = devnet::spawn_anvil(
        &anvil_path,
        Some(args.port),
        &["--block-time", "1", "--accounts", &accounts],
    )?;
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let (owner, provider) = (key(0), key(1));
    // Unit ids start with their provider's address: derive them from the devnet's provider.
    config.miner.provider = provider.address().0.0;
    let verifiers: Vec<PrivateKeySigner> = (0..parties).map(|i| key(2 + i)).collect();
    // Per party, the keys its shards sign with: the party's own, or one delegate each.
    let shard_keys: Vec<Vec<PrivateKeySigner>> = (0..parties)
        .map(|p| match shards {
            1 => vec![verifiers[p].clone()],
            n => (0..n).map(|s| key(2 + parties + p * n + s)).collect(),
        })
        .collect();
    let operator_keys: Vec<PrivateKeySigner> = (0..operators)
        .map(|h| key(2 + parties + delegates + h))
        .collect();
    let host_configs: Vec<capminer_config::Config> = (0..hosts)
        .map(|h| {
            let mut c = config.clone();
            c.miner.host = h as u32;
            if h > 0 {
                c.miner.state_dir = config.miner.state_dir.join(format!("host-{h}"));
                c.metrics
                    .listen
                    .set_port(config.metrics.listen.port() + h as u16);
                c.api.enabled = false;
            }
            c
        })
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
    let mut units = Vec::new();
    for c in &host_configs {
        units.extend(
            Miner::plan(c)?
                .units()
                .into_iter()
                .map(|(id, kind, _)| (id, kind)),
        );
    }
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
        let contract = |k: &PrivateKeySigner| {
            devnet::signing_provider(&url, k.clone())
                .map(|p| capminer_chain::bindings::Capacity::new(deployment.address, p))
        };
        for op in &operator_keys {
            contract(&provider)?
                .authorizeOperator(op.address())
                .send()
                .await?
                .get_receipt()
                .await?;
        }
        if shards > 1 {
            for (party, keys) in verifiers.iter().zip(&shard_keys) {
                for d in keys {
                    contract(party)?
                        .authorizeDelegate(d.address())
                        .send()
                        .await?
                        .get_receipt()
                        .await?;
                }
            }
        }
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
        hosts,
        verifiers = verifiers.len(),
        shards,
        epoch_seconds = args.epoch_seconds,
        "devnet up: anvil, contract deployed, units registered, reward pool funded"
    );
    config.chain.enabled = true;
    config.chain.rpc_url = url.clone();
    config.chain.contract = Some(deployment.address.0.0);
    config.chain.start_block = deployment.block;
    config.chain.chain_id = Some(anvil.chain_id());
    let mut host_configs = host_configs;
    for c in &mut host_configs {
        c.chain = config.chain.clone();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let registry = Registry::new();
    let mut critical = Vec::new();
    // One checker for every shard of this process: a key's cache is built once.
    let checker = Arc::new(Verifier::new(
        randomx_options(&config),
        gpu_params(&config)?,
    )?);
    for (i, keys) in shard_keys.into_iter().enumerate() {
        for (s, signer) in keys.into_iter().enumerate() {
            let mut vconfig = config.clone();
            vconfig.verifier.state_dir = config.verifier.state_dir.join(format!("verifier-{i}"));
            vconfig.verifier.shard = capminer_config::Shard {
                index: s as u32,
                count: shards as u32,
            };
            let service = runtime.block_on(VerifierService::connect(
                &vconfig,
                signer,
                checker.clone(),
                &registry,
            ))?;
            let stopped = stop.clone();
            let task = runtime.spawn(service.run(move || stopped.load(Ordering::Acquire)));
            critical.push((format!("verifier {i} shard {s}/{shards}"), task));
        }
    }
    // Hosts 1.. as child processes, each with its operator key; killed when the devnet ends.
    let mut children = Vec::new();
    for (h, c) in host_configs.iter().enumerate().skip(1) {
        let path = config.miner.state_dir.join(format!("host-{h}.toml"));
        std::fs::create_dir_all(&config.miner.state_dir)?;
        std::fs::write(&path, c.to_toml())?;
        let key = alloy::hex::encode(operator_keys[h].to_bytes());
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .args(["run", "-c"])
            .arg(&path)
            .env(capminer_chain::key::KEY_ENV, key);
        // SAFETY: prctl(2) between fork and exec, async-signal-safe: the host gets SIGTERM if
        // the devnet dies without stopping it.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn()?;
        tracing::info!(host = h, pid = child.id(), config = %path.display(), "host started");
        children.push(KillOnDrop(child));
    }
    let signer = if hosts > 1 {
        operator_keys[0].clone()
    } else {
        provider
    };
    let result = run_node(
        &host_configs[0],
        Some(ChainJob { signer }),
        &runtime,
        &registry,
        stop.clone(),
        critical,
    );
    stop.store(true, Ordering::Release);
    drop(children);
    drop(anvil);
    result
}

/// A child process stopped (SIGTERM, then waited for) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}
