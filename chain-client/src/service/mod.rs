//! The chain service: one `tick` does everything once; `run` ticks every `chain.poll_ms` until
//! asked to stop. Every state lives in the proof store or on the chain, so any tick may fail and
//! the next one repairs. One concern a file:
//!
//! - `epochs`: the current epoch, delivered once its seed is final, watched for seed changes;
//! - `delivery`: transactions settled, proofs reconciled with the logs, batches submitted;
//! - `claims`: rewards claimed once an epoch;
//! - `duplicates`: units another machine mines too (a copied config), held idle.

mod claims;
mod delivery;
mod duplicates;
mod epochs;
mod finality;
mod standing;
mod store;

pub use duplicates::DUPLICATE_HOST_HOLD;
pub use standing::Holds;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, TxHash};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use capminer_config::ChainConfig;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Epoch, Seed, UnitId, UnitKind};
use capminer_protocol::{UnitIndex, UnitRef};

use crate::handle::ChainHandle;
use crate::metrics::ChainMetrics;
use crate::txmanager::TxManager;
use crate::{ChainError, Result};

/// What the service needs besides the proof store.
#[derive(Debug, Clone)]
pub struct ChainSetup {
    /// `[chain]`.
    pub config: ChainConfig,
    /// The units whose proofs this service submits.
    pub units: Vec<UnitRef>,
    /// The provider's signer.
    pub signer: PrivateKeySigner,
    /// The GPU challenge word this miner computes (`GpuChallenge::to_word`), when it runs GPU
    /// units: connecting refuses a contract that states other parameters.
    pub gpu_challenge: Option<[u8; 32]>,
}

/// A registered unit of this service: its index in the contract, label and kind.
#[derive(Debug, Clone)]
struct UnitRow {
    index: UnitIndex,
    label: String,
    kind: UnitKind,
}

impl UnitRow {
    fn new(index: UnitIndex, unit: UnitRef) -> Self {
        Self {
            index,
            label: unit.label,
            kind: unit.kind,
        }
    }
}

/// Per-epoch seed and parameters of both kinds.
#[derive(Debug, Clone, Copy)]
struct EpochParams {
    seed: Seed,
    seed_block: u64,
    min: [u32; 2],
    max: [u32; 2],
}

/// What one tick saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Head block number.
    pub head: u64,
    /// The chain's current epoch.
    pub chain_epoch: u64,
    /// A new epoch for the miner, if one started (or on the first tick).
    pub new_epoch: Option<Epoch>,
    /// Hash of a proof batch sent this tick.
    pub submitted: Option<TxHash>,
    /// Why each unit must not hash (`None`: it hashes), when that changed this tick.
    pub holds: Option<Holds>,
}

/// The chain client of one provider.
#[derive(Debug)]
pub struct ChainService {
    config: ChainConfig,
    chain: ChainHandle,
    store: Arc<ProofStore>,
    metrics: ChainMetrics,
    txm: TxManager,
    units: HashMap<UnitId, UnitRow>,
    by_index: HashMap<UnitIndex, UnitId>,
    delivered: Option<u64>,
    params: BTreeMap<u64, EpochParams>,
    advancing: Option<u64>,
    claimed_at: Option<u64>,
    /// Stopping: every found proof is due at once.
    draining: bool,
    /// Blocks whose logs made proofs final, watched for deeper reorgs.
    final_marks: finality::FinalMarks,
    /// Units of this miner not registered on the contract (yet).
    unregistered: Vec<UnitRef>,
    /// Which units should hash.
    standing: standing::Standing,
    /// The provider this signer is an operator of (`None`: it is the provider itself).
    provider: Option<Address>,
    /// What the contract counts per (unit, epoch), as last read; dropped when reconciliation
    /// sees the unit's proofs accepted or undone.
    onchain: HashMap<(UnitId, u64), u32>,
    /// Acceptances at the final depth, per epoch, not read again every tick.
    deep_logs: BTreeMap<u64, delivery::DeepLogs>,
    /// Units another machine mines too.
    duplicates: duplicates::Duplicates,
}

/// The setup's units as the contract has them when the service connects.
struct Registration {
    /// Registered units, by id.
    units: HashMap<UnitId, UnitRow>,
    /// Their ids, by index.
    by_index: HashMap<UnitIndex, UnitId>,
    /// Units not registered (yet): idle until they are.
    unregistered: Vec<UnitRef>,
}

impl Registration {
    /// Looks `setup_units` up on chain; refuses a unit registered to a provider that `signer`
    /// neither is nor is an operator of, or assigned to another host than the operator's
    /// (`operator`: the provider it operates for and its host).
    async fn read(
        chain: &ChainHandle,
        setup_units: Vec<UnitRef>,
        signer: Address,
        operator: Option<(Address, u16)>,
    ) -> Result<Self> {
        let mut unregistered = Vec::new();
        let mut registered = Vec::new();
        let ids: Vec<UnitId> = setup_units.iter().map(|unit| unit.id).collect();
        let indices = chain.unit_indices(&ids).await?;
        for (unit, index) in setup_units.into_iter().zip(indices) {
            let Some(index) = index else {
                tracing::warn!(unit = %unit.label, id = %unit.id, address = %chain.address, "unit not registered on the contract: it stays idle until it is");
                unregistered.push(unit);
                continue;
            };
            registered.push((index, unit));
        }
        let indices: Vec<UnitIndex> = registered.iter().map(|(index, _)| *index).collect();
        let infos = chain.unit_infos(&indices).await?;
        let mut units = HashMap::new();
        let mut by_index = HashMap::new();
        for ((index, unit), info) in registered.into_iter().zip(infos) {
            if info.provider != signer {
                match operator {
                    Some((p, host)) if p == info.provider && host != info.host => {
                        return Err(ChainError::OtherHost {
                            unit,
                            host: info.host,
                            operator_host: host,
                            signer,
                        });
                    }
                    Some((p, _)) if p == info.provider => {}
                    _ => {
                        return Err(ChainError::Unauthorized {
                            unit,
                            provider: info.provider,
                            signer,
                        });
                    }
                }
            }
            by_index.insert(index, unit.id);
            units.insert(unit.id, UnitRow::new(index, unit));
        }
        Ok(Self {
            units,
            by_index,
            unregistered,
        })
    }
}

impl ChainService {
    /// Connects: checks the chain id, the contract, the GPU challenge when it runs GPU units,
    /// and that every unit is registered to the signer; reads the epoch schedule.
    pub async fn connect(
        setup: ChainSetup,
        store: Arc<ProofStore>,
        metrics: ChainMetrics,
    ) -> Result<Self> {
        let config = setup.config;
        let chain = ChainHandle::connect(&config).await?;
        if let Some(local) = setup.gpu_challenge
            && setup.units.iter().any(|unit| unit.kind == UnitKind::Gpu)
        {
            chain.check_gpu_challenge(&local).await?;
        }
        let contract = chain.contract();
        let address = chain.address;
        let from = setup.signer.address();
        // A host signs with its own operator key; the units stay the provider's.
        let provider = contract
            .operatorProvider(from)
            .call()
            .await
            .map_err(chain.call_error("operatorProvider"))?;
        let operator = if provider == Address::ZERO {
            None
        } else {
            let host = contract
                .operatorHost(from)
                .call()
                .await
                .map_err(chain.call_error("operatorHost"))?;
            tracing::info!(operator = %from, provider = %provider, host, "signing as an operator of provider {provider}, host {host}: proofs of that host's units only; claims, collateral and registration are the provider's");
            Some((provider, host))
        };
        let Registration {
            units,
            by_index,
            unregistered,
        } = Registration::read(&chain, setup.units, from, operator).await?;
        // Where this run starts, for the duplicate-host watch: what comes later is this run's.
        let since_block = chain
            .provider
            .get_block_number()
            .await
            .map_err(chain.rpc_error("eth_blockNumber"))?;
        let start_nonce = chain
            .provider
            .get_transaction_count(from)
            .pending()
            .await
            .map_err(chain.rpc_error("eth_getTransactionCount"))?;
        let txm = TxManager::new(
            chain.provider.clone(),
            EthereumWallet::from(setup.signer),
            from,
            chain.chain_id,
            chain.endpoint.clone(),
            config.gas.clone(),
            metrics.clone(),
        );
        tracing::info!(%address, chain_id = chain.chain_id, %from, units = units.len(), epoch_seconds = chain.schedule.duration, "chain client connected to {}", chain.endpoint);
        Ok(Self {
            chain,
            store,
            metrics,
            txm,
            units,
            by_index,
            delivered: None,
            params: BTreeMap::new(),
            advancing: None,
            claimed_at: None,
            draining: false,
            final_marks: finality::FinalMarks::new(),
            unregistered,
            standing: standing::Standing::default(),
            provider: operator.map(|(p, _)| p),
            onchain: HashMap::new(),
            deep_logs: BTreeMap::new(),
            duplicates: duplicates::Duplicates::new(since_block, start_nonce),
            config,
        })
    }

    /// Ticks every `chain.poll_ms` until `stop` returns true, handing new epochs to `on_epoch`
    /// and the units' holds (see `standing`) to `on_holds` when they change, and learning
    /// before each tick the units the miner runs now (`units`: added while running);
    /// then delivers what is left (see [`ChainService::drain`]). Failed ticks are logged and
    /// retried; nothing is lost in between.
    pub async fn run(
        mut self,
        mut on_epoch: impl FnMut(Epoch),
        mut on_holds: impl FnMut(&Holds),
        mut units: impl FnMut() -> Vec<UnitRef>,
        stop: impl Fn() -> bool,
    ) {
        let period = Duration::from_millis(self.config.poll_ms);
        while !stop() {
            self.learn_units(units());
            match self.tick().await {
                Ok(report) => {
                    if let Some(epoch) = report.new_epoch {
                        on_epoch(epoch);
                    }
                    if let Some(holds) = &report.holds {
                        on_holds(holds);
                    }
                }
                Err(e) if e.is_retryable() => tracing::warn!("chain: {e}; retrying"),
                Err(e) => tracing::error!("chain: {e}"),
            }
            tokio::time::sleep(period).await;
        }
        self.drain().await;
    }

    /// The graceful stop: keeps ticking (new epochs are no longer handed on) until every proof
    /// found is in a block, or `chain.stop_timeout_ms` has passed; then says what is left and
    /// why. Proofs whose window closed are skipped as always; what is left stays in the store
    /// and goes out at the next start while its window is open.
    pub async fn drain(&mut self) {
        let period = Duration::from_millis(self.config.poll_ms);
        let deadline = Instant::now() + Duration::from_millis(self.config.stop_timeout_ms);
        self.draining = true;
        loop {
            let pending = self
                .unsettled(|p| matches!(p.state, ProofState::Found | ProofState::Submitted { .. }))
                .await;
            if pending.is_empty() {
                tracing::info!("chain client stopped: every proof found is in a block");
                return;
            }
            if Instant::now() >= deadline {
                let mut by_epoch: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
                for p in &pending {
                    let e = by_epoch.entry(p.proof.epoch).or_default();
                    match p.state {
                        ProofState::Found => e.0 += 1,
                        _ => e.1 += 1,
                    }
                }
                for (epoch, (found, submitted)) in by_epoch {
                    tracing::warn!(
                        epoch,
                        found,
                        submitted,
                        timeout_ms = self.config.stop_timeout_ms,
                        "chain client stopped before these proofs were in a block (chain.stop_timeout_ms passed): they stay in the store and are delivered at the next start while their epoch's window is open"
                    );
                }
                return;
            }
            if let Err(e) = self.tick().await {
                tracing::warn!("chain, stopping: {e}; retrying");
            }
            tokio::time::sleep(period).await;
        }
    }

    /// True while proofs of `e` can still be submitted at time `now` (with a safety margin of
    /// two polls for the transaction to get in).
    fn open(&self, e: u64, now: u64, current: u64) -> bool {
        let margin = 2 * self.config.poll_ms.div_ceil(1000);
        e == current || (e + 1 == current && now + margin < self.chain.schedule.close_time(e))
    }

    /// Moves epochs whose window has closed and whose proofs are all settled to the store's
    /// archive. A failure (a full disk, say) is logged and tried again next tick: nothing
    /// depends on it but the store's size.
    async fn archive(&self, now: u64, current: u64) {
        // The current epoch is open; the one before it only within its grace window.
        let first_open = match current.checked_sub(1) {
            Some(previous) if self.open(previous, now, current) => previous,
            _ => current,
        };
        match self.archive_settled(first_open).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                epochs = n,
                "settled epochs moved to the proof store's archive"
            ),
            Err(e) => tracing::warn!("proof store: archiving settled epochs: {e}; retrying"),
        }
    }

    /// One pass of everything.
    pub async fn tick(&mut self) -> Result<TickReport> {
        let (head, now) =
            crate::txmanager::latest_head(&self.chain.provider, &self.chain.endpoint).await?;
        let current = self.chain.schedule.epoch_at(now);
        self.metrics.last_block.set(head.number as i64);
        self.metrics.chain_epoch.set(current as i64);
        let schedule = self.chain.schedule;
        self.metrics.epoch_duration.set(schedule.duration as i64);
        self.metrics
            .epoch_ends
            .set(schedule.epoch_start(current + 1) as i64);
        self.observe_balance().await;
        let mut report = TickReport {
            head: head.number,
            chain_epoch: current,
            ..TickReport::default()
        };

        report.new_epoch = self.watch_epoch(current, head).await?;
        self.settle(head).await?;
        self.watch_finality(head.number, now, current).await?;
        self.reconcile(head.number, now, current).await?;
        self.archive(now, current).await;
        report.submitted = self.submit(head, now, current).await?;
        self.claim(head, current).await?;
        let counts = self.stored_counts(current).await;
        self.show_epoch_proofs(&counts);
        self.show_duplicates();
        let mined = self.delivered.unwrap_or(current);
        let mined_counts = if mined == current {
            counts
        } else {
            self.stored_counts(mined).await
        };
        report.holds = self.holds(mined, &mined_counts).await?;
        Ok(report)
    }

    /// `capminer_chain_balance_wei`: the signer's balance. A failed read is not the tick's
    /// failure (the gauge keeps its last value; the tick's other calls say whether the node is
    /// reachable).
    async fn observe_balance(&self) {
        match self.chain.provider.get_balance(self.txm.address()).await {
            Ok(wei) => self.metrics.balance_wei.set(f64::from(wei)),
            Err(e) => tracing::debug!("chain: cannot read the signer's balance: {e}"),
        }
    }

    /// `capminer_chain_epoch_proofs`: each unit's proofs of the current epoch in the store,
    /// not skipped.
    fn show_epoch_proofs(&self, counts: &HashMap<UnitId, i64>) {
        for (unit, count) in counts {
            let row = &self.units[unit];
            self.metrics
                .epoch_proofs
                .with_label_values(&[row.label.as_str(), row.kind.as_str()])
                .set(*count);
        }
    }
}
