//! `capminer devnet`: the whole system on one machine. Starts anvil, deploys the capacity
//! contract, registers this machine's units, funds the reward pool, starts verifiers, and runs
//! the miner and its chain client against it: proofs found, submitted, accepted, verified,
//! attested, and rewards claimed, on the terminal and at the metrics endpoint.
//!
//! The steps, in order: [`Sizes`] (parties, shards, hosts) sets how many anvil accounts
//! [`Accounts`] takes keys from; [`host_configs`] derives each host's configuration;
//! [`contract_spec`] and [`set_up_contract`] deploy, register, fund and authorize;
//! [`start_verifiers`] and [`start_hosts`] start the verifier services and hosts 1..; host 0
//! runs in this process as the node (src/node/).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy::node_bindings::AnvilInstance;
use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::devnet::{self, ContractSpec, Deployment, KindSpec};
use capminer_chain::verifier::{VerifierMetrics, VerifierService};
use capminer_config::Config;
use capminer_miner::verify::Verifier;
use capminer_miner::{Miner, gpu_params, randomx_options};
use capminer_proofs::{Target, UnitId, UnitKind};
use prometheus::Registry;

use super::{ConfigArg, load_config};
use crate::logging;
use crate::node::{ChainJob, CriticalTask, NodeArgs, run_node};
use crate::runtime::Runtime;

/// Arguments of `capminer devnet`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevnetArgs {
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
pub(crate) fn devnet(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    logging::init(&config)?;
    let runtime = Runtime::new(&config)?;
    let anvil_path = find_anvil(args.anvil.clone());
    let sizes = Sizes::of(&args);
    let anvil = devnet::spawn_anvil(
        &anvil_path,
        Some(args.port),
        &[
            "--block-time",
            "1",
            "--accounts",
            &sizes.accounts().to_string(),
        ],
    )?;
    let url = anvil.endpoint();
    let accounts = Accounts::from_anvil(&anvil, sizes);
    // Unit ids start with their provider's address: derive them from the devnet's provider.
    config.miner.provider = accounts.provider.address().0.0;
    let mut host_configs = host_configs(&config, sizes.hosts);
    let spec = contract_spec(&args, &config, &accounts);
    let units = planned_units(&host_configs)?;
    let deployment = runtime.block_on(set_up_contract(
        &url,
        &accounts,
        &spec,
        &units,
        args.epoch_seconds,
    ))?;
    tracing::info!(
        rpc = %url,
        contract = %deployment.address,
        provider = %accounts.provider.address(),
        units = units.iter().map(Vec::len).sum::<usize>(),
        hosts = sizes.hosts,
        verifiers = accounts.verifiers.len(),
        shards = sizes.shards,
        epoch_seconds = args.epoch_seconds,
        "devnet up: anvil, contract deployed, units registered, reward pool funded"
    );
    if config.api.enabled {
        tracing::info!(
            "live page: http://{}/ (over SSH: ssh -L {port}:127.0.0.1:{port} <host>, then open http://127.0.0.1:{port}/)",
            config.api.listen,
            port = config.api.listen.port()
        );
    }
    point_at_contract(&mut config, &anvil, &deployment);
    for c in &mut host_configs {
        c.chain = config.chain.clone();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let registry = Registry::new();
    let mut verifiers = start_verifiers(&runtime, &config, &accounts, &registry, &stop)?;
    // Hosts 1.. as child processes, each with its operator key: the devnet stops with an error
    // if one exits, and stops them when it ends.
    let hosts = start_hosts(&runtime, &config, &host_configs, &accounts.operators, &stop);
    let result = hosts.and_then(|hosts| {
        verifiers.critical.extend(hosts);
        run_node(NodeArgs {
            config: &host_configs[0],
            chain: Some(ChainJob {
                signer: accounts.node_signer(),
            }),
            runtime: &runtime,
            registry: &registry,
            stop: stop.clone(),
            critical: verifiers.critical,
            verifiers: verifiers.metrics,
        })
    });
    stop.store(true, Ordering::Release);
    drop(anvil);
    result
}

/// How many verifier parties, shards per party and hosts (each at least 1).
#[derive(Debug, Clone, Copy)]
struct Sizes {
    parties: usize,
    shards: usize,
    hosts: usize,
}

impl Sizes {
    fn of(args: &DevnetArgs) -> Self {
        Self {
            parties: args.verifiers.max(1) as usize,
            shards: args.shards.max(1) as usize,
            hosts: args.hosts.max(1) as usize,
        }
    }

    /// Delegate keys: one per shard of each party when parties run several shards.
    fn delegates(&self) -> usize {
        if self.shards > 1 {
            self.parties * self.shards
        } else {
            0
        }
    }

    /// Operator keys: one per host when there are several.
    fn operators(&self) -> usize {
        if self.hosts > 1 { self.hosts } else { 0 }
    }

    /// Accounts anvil creates: owner, provider, the parties, their delegates, the hosts'
    /// operators (at least anvil's 10).
    fn accounts(&self) -> usize {
        (2 + self.parties + self.delegates() + self.operators()).max(10)
    }
}

/// The devnet's keys, from anvil's accounts in the order of [`Sizes::accounts`].
#[derive(Debug)]
struct Accounts {
    sizes: Sizes,
    /// Deploys the contract and funds its pool; its guardian.
    owner: PrivateKeySigner,
    /// Registers the units.
    provider: PrivateKeySigner,
    /// The verifier parties.
    verifiers: Vec<PrivateKeySigner>,
    /// Per party, the keys its shards sign with: the party's own, or one delegate each.
    shard_keys: Vec<Vec<PrivateKeySigner>>,
    /// One per host when there are several.
    operators: Vec<PrivateKeySigner>,
}

impl Accounts {
    fn from_anvil(anvil: &AnvilInstance, sizes: Sizes) -> Self {
        let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
        let parties = sizes.parties;
        let verifiers: Vec<PrivateKeySigner> = (0..parties).map(|i| key(2 + i)).collect();
        let shard_keys = (0..parties)
            .map(|p| match sizes.shards {
                1 => vec![verifiers[p].clone()],
                n => (0..n).map(|s| key(2 + parties + p * n + s)).collect(),
            })
            .collect();
        let operators = (0..sizes.operators())
            .map(|h| key(2 + parties + sizes.delegates() + h))
            .collect();
        Self {
            sizes,
            owner: key(0),
            provider: key(1),
            verifiers,
            shard_keys,
            operators,
        }
    }

    /// What the node in this process (host 0) signs with: its operator key when there are
    /// several hosts, the provider's otherwise.
    fn node_signer(&self) -> PrivateKeySigner {
        if self.sizes.hosts > 1 {
            self.operators[0].clone()
        } else {
            self.provider.clone()
        }
    }
}

/// Each host's configuration: host `h` derives its units with `miner.host = h`; hosts 1.. keep
/// their state in `host-{h}` under `miner.state_dir`, serve metrics on the next ports and no
/// control API.
fn host_configs(config: &Config, hosts: usize) -> Vec<Config> {
    (0..hosts)
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
        .collect()
}

/// The contract to deploy: the schedule of the arguments, the parties as verifiers with a
/// majority quorum, both unit kinds at the configuration's targets.
fn contract_spec(args: &DevnetArgs, config: &Config, accounts: &Accounts) -> ContractSpec {
    let kind = |target: [u8; 32], challenge: [u8; 32]| KindSpec {
        target: Target(target),
        min_proofs: args.min_proofs,
        max_proofs: args.max_proofs,
        reward_wei: ETHER,
        collateral_wei: ETHER / 10,
        challenge,
    };
    ContractSpec {
        epoch_seconds: args.epoch_seconds,
        grace_seconds: args.grace_seconds,
        verify_seconds: args.verify_seconds,
        timelock_seconds: args.timelock_seconds,
        quorum: devnet::majority(accounts.verifiers.len() as u32),
        slash_bps: 1000,
        verifiers: accounts
            .verifiers
            .iter()
            .map(PrivateKeySigner::address)
            .collect(),
        guardian: accounts.owner.address(),
        kinds: [
            kind(config.epoch.cpu_target, [0; 32]),
            kind(
                config.epoch.gpu_target,
                capminer_chain::network_challenge(&config.network),
            ),
        ],
    }
}

/// The units each host plans on this machine, by host.
fn planned_units(host_configs: &[Config]) -> anyhow::Result<Vec<Vec<(UnitId, UnitKind)>>> {
    host_configs
        .iter()
        .map(|c| {
            Ok(Miner::plan(c)?
                .units()
                .into_iter()
                .map(|u| (u.id, u.kind))
                .collect())
        })
        .collect()
}

/// Deploys the contract, registers each host's `units` and assigns them to it, funds the
/// reward pool, authorizes the hosts' operators and the parties' delegates, then moves the
/// chain one epoch on.
async fn set_up_contract(
    url: &str,
    accounts: &Accounts,
    spec: &ContractSpec,
    units: &[Vec<(UnitId, UnitKind)>],
    epoch_seconds: u64,
) -> anyhow::Result<Deployment> {
    let Accounts {
        owner, provider, ..
    } = accounts;
    let deployment = devnet::deploy(url, owner.clone(), spec).await?;
    for (host, units) in (0u16..).zip(units) {
        let indices =
            devnet::register_units(url, provider.clone(), deployment.address, units).await?;
        if host != 0 {
            devnet::assign_units(url, provider.clone(), deployment.address, indices, host).await?;
        }
    }
    devnet::fund_pool(
        url,
        owner.clone(),
        deployment.address,
        U256::from(1000 * ETHER),
    )
    .await?;
    let contract = |k: &PrivateKeySigner| {
        devnet::signing_provider(url, k.clone())
            .map(|p| capminer_chain::bindings::Capacity::new(deployment.address, p))
    };
    // Each host's key takes its provider's offer (nobody binds a key without its consent).
    for (host, op) in (0u16..).zip(&accounts.operators) {
        devnet::bind_operator(url, provider.clone(), op.clone(), deployment.address, host).await?;
    }
    if accounts.sizes.shards > 1 {
        for (party, keys) in accounts.verifiers.iter().zip(&accounts.shard_keys) {
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
    let chain = devnet::signing_provider(url, owner.clone())?;
    chain.anvil_increase_time(epoch_seconds).await?;
    chain.anvil_mine(Some(1), None).await?;
    Ok(deployment)
}

/// Points `config.chain` at the deployed contract on anvil.
fn point_at_contract(config: &mut Config, anvil: &AnvilInstance, deployment: &Deployment) {
    config.chain.enabled = true;
    config.chain.rpc_url = anvil.endpoint();
    config.chain.contract = Some(deployment.address.0.0);
    config.chain.start_block = deployment.block;
    config.chain.chain_id = Some(anvil.chain_id());
}

/// The verifier services of this process: tasks the node cannot live without, and their
/// metric handles for its status.
struct Verifiers {
    critical: Vec<CriticalTask>,
    metrics: Vec<VerifierMetrics>,
}

/// Connects and starts one verifier service per shard of each party; they stop with `stop`.
fn start_verifiers(
    runtime: &Runtime,
    config: &Config,
    accounts: &Accounts,
    registry: &Registry,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Verifiers> {
    let shards = accounts.sizes.shards;
    let mut verifiers = Verifiers {
        critical: Vec::new(),
        metrics: Vec::new(),
    };
    // One checker for every shard of this process: a key's cache is built once.
    let checker = Arc::new(Verifier::new(randomx_options(config), gpu_params(config)?)?);
    for (i, keys) in accounts.shard_keys.iter().enumerate() {
        for (s, signer) in keys.iter().enumerate() {
            let mut vconfig = config.clone();
            vconfig.verifier.state_dir = config.verifier.state_dir.join(format!("verifier-{i}"));
            vconfig.verifier.shard = capminer_config::Shard {
                index: s as u32,
                count: shards as u32,
            };
            let service = runtime.block_on(VerifierService::connect(
                &vconfig,
                signer.clone(),
                checker.clone(),
                registry,
            ))?;
            verifiers.metrics.push(service.metrics().clone());
            let stopped = stop.clone();
            let task = runtime.spawn(service.run(move || stopped.load(Ordering::Acquire)));
            verifiers.critical.push(CriticalTask::new(
                format!("verifier {i} shard {s}/{shards}"),
                task,
            ));
        }
    }
    Ok(verifiers)
}

/// Starts hosts 1.. as `capminer run` child processes, each with its configuration written
/// beside the state directory and its operator key in the environment. Each is watched by a
/// task the node cannot live without: it ends when its host exits (a host that cannot bind its
/// metrics port, say), and stops its host when `stop` is set.
fn start_hosts(
    runtime: &Runtime,
    config: &Config,
    host_configs: &[Config],
    operators: &[PrivateKeySigner],
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<CriticalTask>> {
    let mut hosts = Vec::new();
    for (h, c) in host_configs.iter().enumerate().skip(1) {
        let path = config.miner.state_dir.join(format!("host-{h}.toml"));
        std::fs::create_dir_all(&config.miner.state_dir)?;
        std::fs::write(&path, c.to_toml())?;
        let key = alloy::hex::encode(operators[h].to_bytes());
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
        let host = Host(command.spawn()?);
        let pid = host.0.id();
        tracing::info!(host = h, pid, config = %path.display(), "host started");
        let stop = stop.clone();
        let task = runtime.spawn_blocking(move || host.watch(h, &stop));
        hosts.push(CriticalTask::new(format!("host {h} (pid {pid})"), task));
    }
    Ok(hosts)
}

/// A host's child process, stopped (SIGTERM, then waited for) when dropped if it still runs.
struct Host(std::process::Child);

impl Host {
    /// Returns when the host exits (logged as an error) or `stop` is set.
    fn watch(mut self, h: usize, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match self.0.try_wait() {
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
                Ok(Some(status)) => {
                    tracing::error!(host = h, %status, "host exited; see its log above");
                    return;
                }
                Err(e) => {
                    tracing::error!(host = h, error = %e, "cannot wait for the host");
                    return;
                }
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Only a child not yet reaped: a reaped one's pid may belong to another process.
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
}
