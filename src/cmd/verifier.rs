//! `capminer verifier`: recompute the proofs submitted to the contract and attest on chain.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use capminer_chain::key::{KeySource, load_signer};
use capminer_chain::verifier::VerifierService;
use capminer_miner::verify::Verifier;
use capminer_miner::{gpu_params, randomx_options};
use prometheus::Registry;

use super::{ConfigArg, load_config};
use crate::runtime::{Runtime, connect_with_retries, wait_for_signal};
use crate::{logging, metrics_server};

/// Arguments of `capminer verifier`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifierArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// This process's shard of its party's unit-epochs, I/N (overrides verifier.shard): N
    /// shards, each with its own delegate key, check everything once.
    #[arg(long, value_name = "I/N")]
    shard: Option<capminer_config::Shard>,
}

/// Runs the verifier until SIGINT or SIGTERM.
pub(crate) fn verifier(args: VerifierArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.config)?;
    if let Some(shard) = args.shard {
        config.verifier.shard = shard;
    }
    logging::init(&config)?;
    if config.chain.contract.is_none() {
        return Err(config
            .key_error("chain.contract", "the verifier needs the contract address")
            .into());
    }
    let signer = load_signer(
        KeySource::verifier(config.verifier.key_file.as_deref()),
        |k| std::env::var(k).ok(),
    )?;
    let runtime = Runtime::new(&config)?;
    let registry = Registry::new();
    let stop = Arc::new(AtomicBool::new(false));
    let metrics_died = Arc::new(AtomicBool::new(false));
    if config.metrics.enabled {
        let (_, task) = runtime.block_on(metrics_server::serve(
            config.metrics.listen,
            registry.clone(),
            stop.clone(),
        ))?;
        // A critical task: if it ends while the verifier runs, the process stops with an
        // error, so a supervisor restarts it rather than keeping it blind.
        let (s, died) = (stop.clone(), metrics_died.clone());
        runtime.spawn(async move {
            let _ = task.await;
            if !s.load(Ordering::Acquire) {
                tracing::error!("the metrics server stopped while the verifier runs: stopping");
                died.store(true, Ordering::Release);
                s.store(true, Ordering::Release);
            }
        });
    }
    let checker = Arc::new(Verifier::new(
        randomx_options(&config),
        gpu_params(&config)?,
    )?);
    runtime.spawn(wait_for_signal(stop.clone()));
    let Some(service) = runtime.block_on(connect_with_retries(&stop, || {
        VerifierService::connect(&config, signer.clone(), checker.clone(), &registry)
    }))?
    else {
        return Ok(ExitCode::SUCCESS); // stopped before the chain answered
    };
    let s = stop.clone();
    runtime.block_on(service.run(move || s.load(Ordering::Acquire)));
    if metrics_died.load(Ordering::Acquire) {
        anyhow::bail!("the metrics server stopped unexpectedly");
    }
    Ok(ExitCode::SUCCESS)
}
