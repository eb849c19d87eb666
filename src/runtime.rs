//! The node's runtime and what it shares.
//!
//! - [`Runtime`]: the small Tokio runtime of a long-running command (chain client, servers,
//!   signals), pinned to the utility cores. The CPUs it is pinned to are state it owns,
//!   [`UtilityCpus`]: its threads read them when they start, and whoever may move them (the
//!   control API's `{"utility_cores": [...]}`) is handed a clone.
//! - [`NodeShared`]: what the node hands the control API: the miner (weakly), the proof
//!   store, the reloader, the utility CPUs and the typed metric handles the status reads.
//! - [`wait_for_signal`] and [`connect_with_retries`], for every command that runs until
//!   stopped.
//!
//! This module depends on neither the node nor the API: both depend on it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use capminer_chain::metrics::ChainMetrics;
use capminer_chain::verifier::VerifierMetrics;
use capminer_config::Config;
use capminer_miner::Miner;
use capminer_proofs::store::ProofStore;

use crate::reload::Reloader;

/// The CPUs of the utility cores, where the runtime's threads run (empty: anywhere). Set when
/// the [`Runtime`] is built, read by every thread it starts later, changed by
/// [`UtilityCpus::move_to`]. Clones share the one list.
#[derive(Debug, Clone, Default)]
pub(crate) struct UtilityCpus(Arc<Mutex<Vec<usize>>>);

impl UtilityCpus {
    /// The CPUs now.
    pub(crate) fn get(&self) -> Vec<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, cpus: Vec<usize>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = cpus;
    }

    /// Moves the runtime to `cpus`: the calling thread (the runtime's worker, when called from
    /// a task) is pinned there at once, threads started later too; blocking-pool threads
    /// already idle keep their CPUs until they end (10 s idle).
    pub(crate) fn move_to(&self, cpus: Vec<usize>) -> anyhow::Result<()> {
        capminer_miner::topology::pin_current_thread(&cpus)?;
        self.set(cpus);
        Ok(())
    }
}

/// A small runtime for the chain client, the metrics endpoint, the control API and signals;
/// pinned to the utility cores if any. One worker thread, so tasks all run on it.
#[derive(Debug)]
pub(crate) struct Runtime {
    tokio: tokio::runtime::Runtime,
    utility: UtilityCpus,
}

impl Runtime {
    /// Builds the runtime, its threads pinned to the CPUs of `cpu.utility_cores`.
    pub(crate) fn new(config: &Config) -> anyhow::Result<Self> {
        let topology = capminer_miner::topology::Topology::detect()?;
        let utility = UtilityCpus::default();
        utility.set(
            config
                .cpu
                .utility_cores
                .iter()
                .filter_map(|c| topology.core(*c))
                .flat_map(|c| c.cpus.clone())
                .collect(),
        );
        let pinned = utility.clone();
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("capminer-rt")
            .enable_all()
            .on_thread_start(move || {
                let cpus = pinned.get();
                if !cpus.is_empty() {
                    let _ = capminer_miner::topology::pin_current_thread(&cpus);
                }
            })
            .build()?;
        Ok(Self { tokio, utility })
    }

    /// The CPUs its threads run on; a clone moves them.
    pub(crate) fn utility_cpus(&self) -> &UtilityCpus {
        &self.utility
    }

    /// Runs `future` to its end on the runtime, blocking the calling thread.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.tokio.block_on(future)
    }

    /// Spawns `future` on the runtime.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tokio.spawn(future)
    }

    /// Runs `f` on the runtime's blocking pool (waits on processes, files, hashing).
    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.tokio.spawn_blocking(f)
    }
}

/// Typed handles of the metric families the status reports beside the miner's own
/// (`Miner::metrics`): the chain client's when one runs, and those of the verifiers that run in
/// this process (a devnet's).
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeMetrics {
    /// The chain client's families, registered before the control API starts.
    pub chain: Option<ChainMetrics>,
    /// One per verifier service (shard) of this process.
    pub verifiers: Vec<VerifierMetrics>,
}

/// What the node shares with the control API. The node owns the miner: the API holds it
/// weakly, so it never keeps it alive past shutdown.
#[derive(Debug, Clone)]
pub(crate) struct NodeShared {
    /// The running miner; gone once the node stops.
    pub miner: Weak<Miner>,
    /// The proof store the miner writes.
    pub store: Arc<ProofStore>,
    /// The running configuration and what a reload changes.
    pub reloader: Arc<Reloader>,
    /// Where the runtime's threads run.
    pub utility: UtilityCpus,
    /// Metric handles for the status.
    pub metrics: NodeMetrics,
}

/// Sets `stop` on SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal(stop: Arc<AtomicBool>) {
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
/// 30 s): a process started while its node is briefly down waits for it. A stop (SIGINT,
/// SIGTERM) ends the wait at once, during an attempt or between two: `Ok(None)`, which the
/// caller treats as an ordinary stop. Any other error (a unit registered to another provider,
/// a wrong chain id) ends the start at once.
pub(crate) async fn connect_with_retries<T, F>(
    stop: &AtomicBool,
    mut connect: impl FnMut() -> F,
) -> anyhow::Result<Option<T>>
where
    F: Future<Output = capminer_chain::Result<T>>,
{
    let mut wait = Duration::from_secs(1);
    loop {
        let attempt = tokio::select! {
            attempt = connect() => attempt,
            () = until_stopped(stop) => return Ok(None),
        };
        match attempt {
            Ok(service) => return Ok(Some(service)),
            Err(e) if e.is_retryable() => {
                tracing::warn!("chain: {e}; connecting again in {wait:?}");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = until_stopped(stop) => return Ok(None),
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Resolves once `stop` is set (looked at every 50 ms).
async fn until_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
