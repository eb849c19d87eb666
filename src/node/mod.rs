//! The miner's main job, shared by `capminer run` and `capminer devnet`: units mining, proofs
//! stored, epochs from the fixed epoch or the chain, the chain client submitting and claiming,
//! metrics and the control API served, until SIGINT or SIGTERM.
//!
//! [`run_node`] runs three named steps: [`Node::start`] (store, miner, servers, signal
//! handlers, epoch source), [`Node::supervise`] (until a stop, a failed unit or a dead critical
//! task) and [`Node::shut_down`] (units first, then the chain client delivers what they found).
//! The chain client's start is in [`chain`]; what `run` checks before it starts anything (and
//! `config check` and `doctor` check too) in [`preflight`].

mod chain;
pub(crate) mod preflight;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capminer_chain::verifier::VerifierMetrics;
use capminer_config::Config;
use capminer_miner::{Miner, panic_message};
use capminer_proofs::store::ProofStore;
use prometheus::Registry;

use crate::api;
use crate::progress::BuildProgress;
use crate::reload::{Reloader, reload_on_sighup};
use crate::runtime::{NodeMetrics, NodeShared, Runtime, wait_for_signal};
use crate::{epoch, metrics_server};

use chain::ChainClient;

/// The chain part of a node: the signer and the units it submits for come from the miner.
pub(crate) struct ChainJob {
    /// The provider's signer.
    pub signer: alloy::signers::local::PrivateKeySigner,
}

/// A task the node cannot live without (the chain client, a verifier): if it ends while the
/// node runs, the node stops with an error naming it, so a supervisor restarts the process
/// instead of keeping one alive that does nothing.
#[derive(Debug)]
pub(crate) struct CriticalTask {
    /// What it is, for the error ("the chain client").
    pub name: String,
    /// The task; it must end when the node's stop flag is set.
    pub task: tokio::task::JoinHandle<()>,
}

impl CriticalTask {
    /// Names `task`.
    pub(crate) fn new(name: impl Into<String>, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            name: name.into(),
            task,
        }
    }
}

/// What [`run_node`] runs with.
pub(crate) struct NodeArgs<'a> {
    /// The node's configuration.
    pub config: &'a Config,
    /// The chain client's signer; `None` mines the fixed epoch of `[epoch]`.
    pub chain: Option<ChainJob>,
    /// The runtime of the servers, the chain client and the critical tasks.
    pub runtime: &'a Runtime,
    /// Where every metric family of the process is registered.
    pub registry: &'a Registry,
    /// The node's one stop flag: the critical tasks passed in must end when it is set.
    pub stop: Arc<AtomicBool>,
    /// Tasks started before the node that it cannot live without (a devnet's verifiers).
    pub critical: Vec<CriticalTask>,
    /// Metric handles of the verifiers among them, for the status.
    pub verifiers: Vec<VerifierMetrics>,
}

/// Runs the node until a signal; non-zero when a unit failed or a critical task died.
pub(crate) fn run_node(args: NodeArgs<'_>) -> anyhow::Result<ExitCode> {
    let mut node = Node::start(args)?;
    let failed = node.supervise();
    node.shut_down(failed)
}

/// A started node: what supervising and stopping it needs.
struct Node<'a> {
    runtime: &'a Runtime,
    miner: Arc<Miner>,
    /// Set on a signal or a failure: the units, servers and verifiers stop.
    stop: Arc<AtomicBool>,
    /// Set after the miner stopped: the chain client stops after it, so it can deliver what
    /// the units found last.
    chain_stop: Arc<AtomicBool>,
    critical: Vec<CriticalTask>,
}

impl<'a> Node<'a> {
    /// Opens the store, starts the miner, the metrics server, the SIGHUP reloader, the
    /// control API, the signal handler, and the epoch source: the chain client, or the fixed
    /// epoch.
    fn start(args: NodeArgs<'a>) -> anyhow::Result<Self> {
        let NodeArgs {
            config,
            chain,
            runtime,
            registry,
            stop,
            mut critical,
            verifiers,
        } = args;
        let plan = Miner::plan(config)?;
        let token = config
            .api
            .token_file
            .as_deref()
            .map(api::read_token)
            .transpose()?;
        let store = open_store(config)?;
        let miner = Arc::new(Miner::start_planned(config, plan, store.clone(), registry)?);
        if config.metrics.enabled {
            let (_, task) = runtime.block_on(metrics_server::serve(
                config.metrics.listen,
                registry.clone(),
                stop.clone(),
            ))?;
            critical.push(CriticalTask::new("the metrics server", task));
        }
        let reloader = Arc::new(Reloader::new(config.clone(), Arc::downgrade(&miner)));
        runtime.spawn(reload_on_sighup(reloader.clone()));
        // Its metric families are registered before the control API starts: the status reads them.
        let chain = chain
            .map(|job| ChainClient::new(job, registry))
            .transpose()?;
        if config.api.enabled {
            let shared = NodeShared {
                miner: Arc::downgrade(&miner),
                store: store.clone(),
                reloader,
                utility: runtime.utility_cpus().clone(),
                metrics: NodeMetrics {
                    chain: chain.as_ref().map(|c| c.metrics.clone()),
                    verifiers,
                },
            };
            let (_, task) =
                runtime.block_on(api::serve(config.api.listen, token, shared, stop.clone()))?;
            critical.push(CriticalTask::new("the control API", task));
        }
        runtime.spawn(wait_for_signal(stop.clone()));
        let mut node = Node {
            runtime,
            miner,
            stop,
            chain_stop: Arc::new(AtomicBool::new(false)),
            critical,
        };
        match chain {
            None => node.miner.set_epoch(epoch::fixed_epoch(config))?,
            Some(client) => {
                // None: stopped while connecting; supervise sees the stop at once.
                if let Some(task) = client.start(&node, config, store)? {
                    node.critical.push(task);
                }
            }
        }
        Ok(node)
    }

    /// Shows build progress until a stop is asked (`None`), a unit fails or a critical task
    /// ends (why).
    fn supervise(&mut self) -> Option<String> {
        let mut progress = BuildProgress::new();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            if let Some(unit) = self.miner.failed_unit() {
                return Some(format!(
                    "unit {unit} failed and watchdog.enabled = false; see the log above"
                ));
            }
            if let Some(i) = self.critical.iter().position(|c| c.task.is_finished()) {
                let CriticalTask { name, task } = self.critical.swap_remove(i);
                let why = match self.runtime.block_on(task) {
                    Err(e) if e.is_panic() => {
                        format!("panicked: {}", panic_message(e.into_panic()))
                    }
                    Err(e) => e.to_string(),
                    Ok(()) => "returned".into(),
                };
                tracing::error!("{name} stopped while the node runs ({why}): stopping");
                return Some(format!("{name} stopped unexpectedly ({why})"));
            }
            progress.update(&self.miner.units());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the units, then the chain client and the other critical tasks; the exit status,
    /// or why the node failed.
    fn shut_down(self, failed: Option<String>) -> anyhow::Result<ExitCode> {
        self.stop.store(true, Ordering::Release);
        tracing::info!("stopping: units first, then the chain client delivers what they found");
        let miner = Arc::try_unwrap(self.miner)
            .map_err(|_| anyhow::anyhow!("the miner is still shared at shutdown"))?;
        let stopped = miner.stop();
        self.chain_stop.store(true, Ordering::Release);
        for critical in self.critical {
            let _ = self.runtime.block_on(critical.task);
        }
        match (failed, stopped) {
            (None, Ok(())) => Ok(ExitCode::SUCCESS),
            (_, Err(e)) => Err(e.into()),
            (Some(why), Ok(())) => Err(anyhow::anyhow!(why)),
        }
    }
}

/// Opens the proof store of `miner.state_dir`, logging what its recovery repaired; an error
/// names the key and the config file (its message holds the OS error, printed once).
fn open_store(config: &Config) -> anyhow::Result<Arc<ProofStore>> {
    let (store, recovery) = ProofStore::open(&config.miner.state_dir)
        .map_err(|e| config.key_error("miner.state_dir", e.to_string()))?;
    if recovery.torn_bytes > 0 || !recovery.quarantined.is_empty() {
        tracing::warn!("proof store repaired on open: {recovery:?}");
    }
    Ok(Arc::new(store))
}
