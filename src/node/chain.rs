//! The node's chain client: its metric families registered (before the control API starts,
//! which reports them), then connected and run, feeding the miner its epochs, its holds and
//! reading the units it runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use capminer_chain::metrics::ChainMetrics;
use capminer_chain::{ChainService, ChainSetup};
use capminer_config::Config;
use capminer_miner::Miner;
use capminer_proofs::store::ProofStore;
use capminer_protocol::UnitRef;
use prometheus::Registry;

use super::{ChainJob, CriticalTask, Node};
use crate::runtime::connect_with_retries;

/// A chain client about to start.
pub(super) struct ChainClient {
    job: ChainJob,
    /// Its metric families, registered.
    pub(super) metrics: ChainMetrics,
}

impl ChainClient {
    /// Registers the client's metric families in `registry`.
    pub(super) fn new(job: ChainJob, registry: &Registry) -> anyhow::Result<Self> {
        Ok(Self {
            job,
            metrics: ChainMetrics::register(registry)?,
        })
    }

    /// Connects (retrying while the RPC node is unreachable, until the node stops: then
    /// `None`) and starts the client on the node's runtime; it stops when the node's
    /// `chain_stop` is set.
    pub(super) fn start(
        self,
        node: &Node<'_>,
        config: &Config,
        store: Arc<ProofStore>,
    ) -> anyhow::Result<Option<CriticalTask>> {
        let setup = ChainSetup {
            config: config.chain.clone(),
            units: unit_list(&node.miner),
            signer: self.job.signer,
            gpu_challenge: Some(capminer_chain::network_challenge(&config.network)),
        };
        let metrics = self.metrics;
        let Some(mut service) = node.runtime.block_on(connect_with_retries(&node.stop, || {
            ChainService::connect(setup.clone(), store.clone(), metrics.clone())
        }))?
        else {
            tracing::info!("stopped before the chain's RPC node answered");
            return Ok(None);
        };
        service.set_miner_host(config.miner.host);
        let (m, s) = (Arc::downgrade(&node.miner), node.chain_stop.clone());
        let held = Arc::downgrade(&node.miner);
        let running = Arc::downgrade(&node.miner);
        let task = node.runtime.spawn(service.run(
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
        Ok(Some(CriticalTask::new("the chain client", task)))
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
