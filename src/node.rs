//! The miner's main job, shared by `capminer run` and `capminer devnet`: units mining, proofs
//! stored, epochs from the fixed epoch or the chain, the chain client submitting and claiming,
//! metrics served, until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capminer_chain::metrics::ChainMetrics;
use capminer_chain::{ChainService, ChainSetup};
use capminer_config::Config;
use capminer_miner::{Miner, panic_message};
use capminer_proofs::store::ProofStore;
use capminer_protocol::UnitRef;
use prometheus::Registry;

use crate::reload::{Reloader, reload_on_sighup};
use crate::{epoch, metrics_server, progress::BuildProgress};

/// The chain part of a node: the signer and the units it submits for come from the miner.
pub struct ChainJob {
    /// The provider's signer.
    pub signer: alloy::signers::local::PrivateKeySigner,
}

/// A task the node cannot live without (the chain client, a verifier): if it ends while the
/// node runs, the node stops with an error naming it, so a supervisor restarts the process
/// instead of keeping one alive that does nothing.
pub type CriticalTask = (String, tokio::task::JoinHandle<()>);

/// Runs the node until a signal; non-zero when a unit failed or a critical task died.
/// `stop` is the node's one stop flag: the critical tasks passed in must end when it is set.
pub fn run_node(
    config: &Config,
    chain: Option<ChainJob>,
    runtime: &tokio::runtime::Runtime,
    registry: &Registry,
    stop: Arc<AtomicBool>,
    mut critical: Vec<CriticalTask>,
) -> anyhow::Result<ExitCode> {
    let plan = Miner::plan(config)?;
    let token = config
        .api
        .token_file
        .as_deref()
        .map(crate::api::read_token)
        .transpose()?;
    let (store, recovery) = ProofStore::open(&config.miner.state_dir)?;
    if recovery.torn_bytes > 0 || !recovery.quarantined.is_empty() {
        tracing::warn!("proof store repaired on open: {recovery:?}");
    }
    let store = Arc::new(store);
    let miner = Arc::new(Miner::start_planned(config, plan, store.clone(), registry)?);
    if config.metrics.enabled {
        let (_, task) = runtime.block_on(metrics_server::serve(
            config.metrics.listen,
            registry.clone(),
            stop.clone(),
        ))?;
        critical.push(("the metrics server".into(), task));
    }
    let reloader = Arc::new(Reloader::new(config.clone(), Arc::downgrade(&miner)));
    runtime.spawn(reload_on_sighup(reloader.clone()));
    if config.api.enabled {
        let (_, task) = runtime.block_on(crate::api::serve(
            config.api.listen,
            token,
            Arc::downgrade(&miner),
            store.clone(),
            registry.clone(),
            reloader,
            stop.clone(),
        ))?;
        critical.push(("the control API".into(), task));
    }
    runtime.spawn(wait_for_signal(stop.clone()));
    // The chain client stops after the miner, so it can deliver what the units found last.
    let chain_stop = Arc::new(AtomicBool::new(false));

    match chain {
        None => miner.set_epoch(epoch::fixed_epoch(config))?,
        Some(job) => {
            let units = unit_list(&miner);
            let setup = ChainSetup {
                config: config.chain.clone(),
                units,
                signer: job.signer,
                gpu_challenge: Some(capminer_chain::network_challenge(&config.network)),
            };
            let metrics = ChainMetrics::register(registry)?;
            let service = runtime.block_on(connect_with_retries(&stop, || {
                ChainService::connect(setup.clone(), store.clone(), metrics.clone())
            }))?;
            let (m, s) = (Arc::downgrade(&miner), chain_stop.clone());
            let held = Arc::downgrade(&miner);
            let running = Arc::downgrade(&miner);
            let task = runtime.spawn(service.run(
                move |e| {
                    if let Some(m) = m.upgrade()
                        && let Err(err) = m.set_epoch(e)
                    {
                        tracing::error!("cannot start epoch {}: {err}", e.number);
                    }
                },
                move |holds| {
                    if let Some(m) = held.upgrade() {
                        m.set_holds(holds.iter().map(|(id, why)| (*id, why.as_deref())));
                    }
                },
                move || running.upgrade().map(|m| unit_list(&m)).unwrap_or_default(),
                move || s.load(Ordering::Acquire),
            ));
            critical.push(("the chain client".into(), task));
        }
    }

    let mut progress = BuildProgress::new();
    let failed = loop {
        if stop.load(Ordering::Acquire) {
            break None;
        }
        if let Some(unit) = miner.failed_unit() {
            break Some(format!(
                "unit {unit} failed and watchdog.enabled = false; see the log above"
            ));
        }
        if let Some(i) = critical.iter().position(|(_, t)| t.is_finished()) {
            let (name, task) = critical.swap_remove(i);
            let why = match runtime.block_on(task) {
                Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
                Err(e) => e.to_string(),
                Ok(()) => "returned".into(),
            };
            tracing::error!("{name} stopped while the node runs ({why}): stopping");
            break Some(format!("{name} stopped unexpectedly ({why})"));
        }
        progress.update(&miner.units());
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Release);
    tracing::info!("stopping: units first, then the chain client delivers what they found");
    let miner = Arc::try_unwrap(miner)
        .map_err(|_| anyhow::anyhow!("the miner is still shared at shutdown"))?;
    let stopped = miner.stop();
    chain_stop.store(true, Ordering::Release);
    for (_, task) in critical {
        let _ = runtime.block_on(task);
    }
    match (failed, stopped) {
        (None, Ok(())) => Ok(ExitCode::SUCCESS),
        (_, Err(e)) => Err(e.into()),
        (Some(why), Ok(())) => Err(anyhow::anyhow!(why)),
    }
}

/// CPUs of the utility cores, where the runtime's threads run (empty: anywhere). Threads the
/// runtime starts later read it; [`move_utility_cpus`] changes it.
static UTILITY_CPUS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

fn utility_cpus() -> Vec<usize> {
    UTILITY_CPUS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Moves the runtime to `cpus`: the calling thread (the runtime's worker, when called from a
/// task) is pinned there at once, threads started later too; blocking-pool threads already
/// idle keep their CPUs until they end (10 s idle).
pub fn move_utility_cpus(cpus: Vec<usize>) -> anyhow::Result<()> {
    capminer_miner::topology::pin_current_thread(&cpus)?;
    *UTILITY_CPUS.lock().unwrap_or_else(|e| e.into_inner()) = cpus;
    Ok(())
}

/// A small runtime for the chain client, the metrics endpoint and signals; pinned to the
/// utility cores if any. One worker thread, so tasks all run on it.
pub fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let topology = capminer_miner::topology::Topology::detect()?;
    let utility: Vec<usize> = config
        .cpu
        .utility_cores
        .iter()
        .filter_map(|c| topology.core(*c))
        .flat_map(|c| c.cpus.clone())
        .collect();
    *UTILITY_CPUS.lock().unwrap_or_else(|e| e.into_inner()) = utility;
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("capminer-rt")
        .enable_all()
        .on_thread_start(|| {
            let cpus = utility_cpus();
            if !cpus.is_empty() {
                let _ = capminer_miner::topology::pin_current_thread(&cpus);
            }
        })
        .build()?)
}

/// Sets `stop` on SIGINT or SIGTERM.
pub async fn wait_for_signal(stop: Arc<AtomicBool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop.store(true, Ordering::Release);
}

/// Runs `connect` until it succeeds, retrying while the node is unreachable (with backoff up to
/// 30 s, until a stop is asked): a process started while its node is briefly down waits for
/// it. Any other error (a unit registered to another provider, a wrong chain id) ends the start at once.
pub async fn connect_with_retries<T, F>(
    stop: &AtomicBool,
    mut connect: impl FnMut() -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = capminer_chain::Result<T>>,
{
    let mut wait = Duration::from_secs(1);
    loop {
        match connect().await {
            Ok(service) => return Ok(service),
            Err(e) if e.is_retryable() && !stop.load(Ordering::Acquire) => {
                tracing::warn!("chain: {e}; connecting again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The units the miner runs now.
fn unit_list(miner: &Miner) -> Vec<UnitRef> {
    miner
        .units()
        .iter()
        .map(|u| UnitRef {
            id: u.info().id,
            kind: u.info().kind,
            label: u.info().label.clone(),
        })
        .collect()
}
