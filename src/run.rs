//! `capminer run`: mine until stopped.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capminer_miner::Miner;
use capminer_proofs::store::ProofStore;
use prometheus::Registry;

use crate::{ConfigArg, epoch, load_config, logging, metrics_server, progress::BuildProgress};

/// Arguments of `capminer run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Runs the miner on the fixed epoch until SIGINT or SIGTERM; non-zero if a unit failed.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    logging::init(&config)?;
    let runtime = runtime(&config)?;
    let (plans, flags) = Miner::plan(&config)?;
    let (store, recovery) = ProofStore::open(&config.miner.state_dir)?;
    if recovery.torn_bytes > 0 || !recovery.quarantined.is_empty() {
        tracing::warn!("proof store repaired on open: {recovery:?}");
    }
    let store = Arc::new(store);
    let registry = Registry::new();
    let miner = Miner::start_planned(&config, plans, flags, store.clone(), &registry)?;
    if config.metrics.enabled {
        runtime.block_on(metrics_server::serve(
            config.metrics.listen,
            registry.clone(),
        ))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    runtime.spawn(wait_for_signal(stop.clone()));
    miner.set_epoch(epoch::fixed_epoch(&config))?;

    let mut progress = BuildProgress::new();
    let failed = loop {
        if stop.load(Ordering::Acquire) {
            break None;
        }
        if let Some(unit) = miner.failed_unit() {
            break Some(unit);
        }
        progress.update(miner.units());
        std::thread::sleep(Duration::from_millis(200));
    };
    tracing::info!("stopping: waiting for units to finish their round");
    let stopped = miner.stop();
    match (failed, stopped) {
        (None, Ok(())) => Ok(ExitCode::SUCCESS),
        (_, Err(e)) => Err(e.into()),
        (Some(unit), Ok(())) => Err(anyhow::anyhow!("unit {unit} failed; see the log above")),
    }
}

/// A small runtime for the metrics endpoint and signals; pinned to the utility cores if any.
fn runtime(config: &capminer_config::Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let utility: Vec<usize> = {
        let topology = capminer_miner::topology::Topology::detect()?;
        config
            .cpu
            .utility_cores
            .iter()
            .filter_map(|c| topology.core(*c))
            .flat_map(|c| c.cpus.clone())
            .collect()
    };
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("capminer-rt")
        .enable_all()
        .on_thread_start(move || {
            if !utility.is_empty() {
                let _ = capminer_miner::topology::pin_current_thread(&utility);
            }
        })
        .build()?)
}

async fn wait_for_signal(stop: Arc<AtomicBool>) {
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
