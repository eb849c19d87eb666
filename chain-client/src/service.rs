//! The chain service: one `tick` does everything once (epoch, transactions, reconciliation,
//! batching, claims); `run` ticks every `chain.poll_ms` until asked to stop. Every state
//! lives in the proof store or on the chain, so any tick may fail and the next one repairs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bytes, TxHash, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use capminer_config::ChainConfig;
use capminer_proofs::store::{ProofState, ProofStore, StoredProof};
use capminer_proofs::{Epoch, Hash, ProofRef, Seed, Target, UnitId, UnitKind};

use crate::batch::{self, Backlog};
use crate::bindings::Capacity;
use crate::bindings::Capacity::CapacityErrors;
use crate::error::redact_url;
use crate::metrics::ChainMetrics;
use crate::tracker::{self, Acceptance, ChainView};
use crate::txmanager::{Head, Settled, TxKind, TxManager};
use crate::{ChainError, Result};

/// What the service needs besides the proof store.
#[derive(Debug, Clone)]
pub struct ChainSetup {
    /// `[chain]`.
    pub config: ChainConfig,
    /// The units whose proofs this service submits: id, kind, label.
    pub units: Vec<(UnitId, UnitKind, String)>,
    /// The provider's signer.
    pub signer: PrivateKeySigner,
    /// The GPU challenge word this miner computes (`GpuChallenge::to_word`), when it runs GPU
    /// units: connecting refuses a contract that states other parameters.
    pub gpu_challenge: Option<[u8; 32]>,
}

#[derive(Debug, Clone)]
struct UnitRow {
    index: u32,
    label: String,
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
}

/// The chain client of one provider.
#[derive(Debug)]
pub struct ChainService {
    config: ChainConfig,
    endpoint: String,
    provider: DynProvider,
    address: Address,
    store: Arc<ProofStore>,
    metrics: ChainMetrics,
    txm: TxManager,
    units: HashMap<UnitId, UnitRow>,
    by_index: HashMap<u32, UnitId>,
    genesis: u64,
    duration: u64,
    grace: u64,
    delivered: Option<u64>,
    params: BTreeMap<u64, EpochParams>,
    first_seen: HashMap<ProofRef, Instant>,
    advancing: Option<u64>,
    claimed_at: Option<u64>,
}

impl ChainService {
    /// Connects: checks the chain id, the contract and that every unit is registered to the
    /// signer; reads the epoch schedule.
    pub async fn connect(
        setup: ChainSetup,
        store: Arc<ProofStore>,
        metrics: ChainMetrics,
    ) -> Result<Self> {
        let config = setup.config;
        let endpoint = redact_url(&config.rpc_url);
        let url = config
            .rpc_url
            .parse()
            .map_err(|_| ChainError::Setup(format!("chain.rpc_url {endpoint}: not a valid URL")))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        let ep: &str = &endpoint;
        let rpc = |call: &'static str| move |e| ChainError::from_rpc(ep, call, e);
        let chain_id = provider.get_chain_id().await.map_err(rpc("eth_chainId"))?;
        if let Some(want) = config.chain_id
            && want != chain_id
        {
            return Err(ChainError::Setup(format!(
                "chain.chain_id is {want} but the node at {endpoint} serves chain {chain_id}"
            )));
        }
        let address = Address::from(
            config
                .contract
                .ok_or_else(|| ChainError::Setup("chain.contract is not set".into()))?,
        );
        let code = provider
            .get_code_at(address)
            .await
            .map_err(rpc("eth_getCode"))?;
        if code.is_empty() {
            return Err(ChainError::Setup(format!(
                "chain.contract {address}: no contract there on chain {chain_id}"
            )));
        }
        let contract = Capacity::new(address, provider.clone());
        let call =
            |name: &'static str| move |e: alloy::contract::Error| contract_error(ep, name, e);
        let genesis = contract
            .genesisTime()
            .call()
            .await
            .map_err(call("genesisTime"))?;
        let duration = contract
            .epochDuration()
            .call()
            .await
            .map_err(call("epochDuration"))?;
        let grace = contract
            .graceWindow()
            .call()
            .await
            .map_err(call("graceWindow"))?;
        if let Some(local) = setup.gpu_challenge
            && setup
                .units
                .iter()
                .any(|(_, kind, _)| *kind == UnitKind::Gpu)
        {
            let onchain = contract
                .kindParams(UnitKind::Gpu as u8)
                .call()
                .await
                .map_err(call("kindParams"))?
                .challenge
                .0;
            if onchain != local {
                return Err(ChainError::Setup(format!(
                    "the GPU challenge of [network] ({}) differs from contract {address}'s ({}): \
                     set [network] to the contract's parameters",
                    capminer_proofs::GpuChallenge::describe(&local),
                    capminer_proofs::GpuChallenge::describe(&onchain)
                )));
            }
        }
        let from = setup.signer.address();
        let mut units = HashMap::new();
        let mut by_index = HashMap::new();
        for (id, _kind, label) in setup.units {
            let index = contract
                .unitIndexOf(id.0.into())
                .call()
                .await
                .map_err(|e| match contract_error(ep, "unitIndexOf", e) {
                    ChainError::Revert { .. } => ChainError::Setup(format!(
                        "unit {label} ({id}) is not registered on contract {address}: register it first"
                    )),
                    other => other,
                })?;
            let info = contract
                .unitInfo(index)
                .call()
                .await
                .map_err(call("unitInfo"))?;
            if info.provider != from {
                return Err(ChainError::Setup(format!(
                    "unit {label} ({id}) is registered to {}, not to this signer {from}",
                    info.provider
                )));
            }
            by_index.insert(index, id);
            units.insert(id, UnitRow { index, label });
        }
        let txm = TxManager::new(
            provider.clone(),
            EthereumWallet::from(setup.signer),
            from,
            chain_id,
            endpoint.clone(),
            config.gas.clone(),
            metrics.clone(),
        );
        tracing::info!(%address, chain_id, %from, units = units.len(), epoch_seconds = duration.to::<u64>(), "chain client connected to {endpoint}");
        Ok(Self {
            endpoint,
            provider,
            address,
            store,
            metrics,
            txm,
            units,
            by_index,
            genesis: genesis.to(),
            duration: duration.to(),
            grace: grace.to(),
            delivered: None,
            params: BTreeMap::new(),
            first_seen: HashMap::new(),
            advancing: None,
            claimed_at: None,
            config,
        })
    }

    /// Ticks every `chain.poll_ms` until `stop` returns true, handing new epochs to `on_epoch`.
    /// Failed ticks are logged and retried; nothing is lost in between.
    pub async fn run(mut self, mut on_epoch: impl FnMut(Epoch), stop: impl Fn() -> bool) {
        let period = Duration::from_millis(self.config.poll_ms);
        while !stop() {
            match self.tick().await {
                Ok(report) => {
                    if let Some(epoch) = report.new_epoch {
                        on_epoch(epoch);
                    }
                }
                Err(e) if e.is_retryable() => tracing::warn!("chain: {e}; retrying"),
                Err(e) => tracing::error!("chain: {e}"),
            }
            tokio::time::sleep(period).await;
        }
    }

    fn rpc(
        &self,
        call: &'static str,
    ) -> impl Fn(alloy::transports::RpcError<alloy::transports::TransportErrorKind>) -> ChainError + '_
    {
        move |e| ChainError::from_rpc(&self.endpoint, call, e)
    }

    fn contract(&self) -> Capacity::CapacityInstance<DynProvider> {
        Capacity::new(self.address, self.provider.clone())
    }

    fn epoch_start(&self, e: u64) -> u64 {
        self.genesis + e * self.duration
    }

    /// True while proofs of `e` can still be submitted at time `now` (with a safety margin of
    /// two polls for the transaction to get in).
    fn open(&self, e: u64, now: u64, current: u64) -> bool {
        let margin = 2 * self.config.poll_ms.div_ceil(1000);
        e == current || (e + 1 == current && now + margin < self.epoch_start(current) + self.grace)
    }

    /// One pass of everything.
    pub async fn tick(&mut self) -> Result<TickReport> {
        let (head, now) = crate::txmanager::latest_head(&self.provider, &self.endpoint).await?;
        let current = now.saturating_sub(self.genesis) / self.duration;
        self.metrics.last_block.set(head.number as i64);
        self.metrics.chain_epoch.set(current as i64);
        let mut report = TickReport {
            head: head.number,
            chain_epoch: current,
            ..TickReport::default()
        };

        report.new_epoch = self.watch_epoch(current, head).await?;
        self.settle(head).await?;
        self.reconcile(head.number, now, current).await?;
        report.submitted = self.submit(head, now, current).await?;
        self.claim(head, current).await?;
        Ok(report)
    }

    /// Delivers the current epoch once its seed is fixed and final (its block
    /// `chain.confirmations` deep), fixing it ourselves if needed. A delivered epoch's seed is
    /// read again every tick while its window is open: if a reorg deeper than the
    /// confirmations changed it, the proofs mined under the old seed are skipped (the contract
    /// would refuse them) and the epoch is delivered again, so the miner re-keys.
    async fn watch_epoch(&mut self, current: u64, head: Head) -> Result<Option<Epoch>> {
        if let Some(delivered) = self.delivered
            && let Some(known) = self.params.get(&delivered).map(|p| p.seed)
            && delivered + 1 >= current
        {
            let (now, _, _) = self.read_epoch(delivered).await?;
            if now.seed != known {
                self.seed_changed(delivered, known)?;
            }
        }
        if self.delivered == Some(current) {
            return Ok(None);
        }
        let (epoch, seed_block, params) = self.read_epoch(current).await?;
        if epoch.seed == Seed::default() {
            if self.advancing != Some(current) {
                let data = Capacity::advanceEpochCall {}.abi_encode();
                self.txm
                    .send(TxKind::Advance(current), self.address, data.into(), head)
                    .await?;
                self.advancing = Some(current);
            }
            return Ok(None);
        }
        if head.number + 1 < seed_block + self.config.confirmations.max(1) {
            return Ok(None); // fixed, not final yet
        }
        self.remember(&epoch, params)?;
        self.delivered = Some(current);
        tracing::info!(epoch = current, seed = %epoch.seed, "chain epoch");
        Ok(Some(epoch))
    }

    /// Proofs of epoch `e` mined under `old`, a seed the chain no longer has: skipped, and
    /// the epoch delivered again.
    fn seed_changed(&mut self, e: u64, old: Seed) -> Result<()> {
        let refs: Vec<ProofRef> = self
            .store
            .proofs(|p| p.proof.epoch == e && !p.state.is_terminal())
            .iter()
            .map(|p| p.proof.id())
            .collect();
        tracing::warn!(epoch = e, %old, proofs = refs.len(), "the epoch's seed changed (a reorg deeper than chain.confirmations): proofs mined under the old seed skipped, re-keying");
        self.metrics
            .proofs_skipped
            .with_label_values(&["seed_changed"])
            .inc_by(refs.len() as u64);
        self.store.set_state(&refs, ProofState::Skipped)?;
        self.params.remove(&e);
        self.delivered = None;
        Ok(())
    }

    /// An epoch's seed, targets and parameters as the chain has them now (seed zero if not
    /// fixed yet), and the block that fixed the seed.
    async fn read_epoch(&self, e: u64) -> Result<(Epoch, u64, EpochParams)> {
        let info = self
            .contract()
            .epochInfo(e)
            .call()
            .await
            .map_err(|err| contract_error(&self.endpoint, "epochInfo", err))?;
        let seed = Seed(info.seed.0);
        let epoch = Epoch {
            number: e,
            seed,
            targets: [Target(info.targets[0].0), Target(info.targets[1].0)],
        };
        let params = EpochParams {
            seed,
            seed_block: info.seedBlock,
            min: info.minProofs,
            max: info.maxProofs,
        };
        Ok((epoch, info.seedBlock, params))
    }

    /// Keeps a seeded epoch's parameters and records it in the store.
    fn remember(&mut self, epoch: &Epoch, params: EpochParams) -> Result<()> {
        self.params.insert(epoch.number, params);
        self.store.record_epoch(epoch)?;
        Ok(())
    }

    async fn params(&mut self, e: u64) -> Result<EpochParams> {
        if let Some(p) = self.params.get(&e) {
            return Ok(*p);
        }
        let (epoch, _, params) = self.read_epoch(e).await?;
        if epoch.seed == Seed::default() {
            return Err(ChainError::Rejected {
                call: "epochInfo",
                message: format!("epoch {e} has no seed"),
            });
        }
        self.remember(&epoch, params)?;
        Ok(params)
    }

    /// Settles transactions; records replacements in the store.
    async fn settle(&mut self, head: Head) -> Result<()> {
        let (settled, replaced) = self.txm.poll(head).await?;
        for (kind, old, new) in replaced {
            if let TxKind::Submit(_) = kind {
                let refs: Vec<ProofRef> = self
                    .store
                    .proofs(|p| p.state == ProofState::Submitted { tx: Hash(old.0) })
                    .iter()
                    .map(|p| p.proof.id())
                    .collect();
                self.store
                    .set_state(&refs, ProofState::Submitted { tx: Hash(new.0) })?;
            }
        }
        for s in settled {
            match s {
                Settled::Mined(flight, receipt) => self.on_mined(flight.kind, &receipt),
                Settled::Dropped(flight) => {
                    if let TxKind::Advance(_) = flight.kind {
                        self.advancing = None;
                    }
                }
            }
        }
        Ok(())
    }

    fn on_mined(&mut self, kind: TxKind, receipt: &TransactionReceipt) {
        self.metrics.gas_used.inc_by(receipt.gas_used);
        match kind {
            TxKind::Submit(epoch) => {
                let accepted: usize = receipt
                    .inner
                    .logs()
                    .iter()
                    .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
                    .map(|l| l.inner.data.nonces.len() / 8)
                    .sum();
                if accepted > 0 {
                    self.metrics
                        .gas_per_proof
                        .set((receipt.gas_used / accepted as u64) as i64);
                }
                tracing::info!(
                    epoch,
                    accepted,
                    gas = receipt.gas_used,
                    status = receipt.status(),
                    "proof batch mined"
                );
            }
            TxKind::Advance(_) => self.advancing = None,
            TxKind::Attest(_) => {}
            TxKind::Claim => {
                for l in receipt.inner.logs() {
                    if let Ok(c) = l.log_decode::<Capacity::RewardsClaimed>() {
                        let gwei: u64 = (c.inner.data.amount / U256::from(1_000_000_000u64)).to();
                        self.metrics.rewards_claimed_gwei.inc_by(gwei);
                        tracing::info!(wei = %c.inner.data.amount, "rewards claimed");
                    }
                }
            }
        }
    }

    /// Brings every non-terminal proof of our units in line with the chain.
    async fn reconcile(&mut self, head: u64, now: u64, current: u64) -> Result<()> {
        let proofs: Vec<StoredProof> = self
            .store
            .proofs(|p| !p.state.is_terminal() && self.units.contains_key(&p.proof.unit));
        self.metrics.proofs_pending.set(proofs.len() as i64);
        if proofs.is_empty() {
            return Ok(());
        }
        let mut view = ChainView {
            head,
            inflight: self
                .txm
                .inflight()
                .iter()
                .flat_map(|f| f.hashes.iter().map(|h| Hash(h.0)))
                .collect(),
            ..ChainView::default()
        };
        let epochs: HashSet<u64> = proofs.iter().map(|p| p.proof.epoch).collect();
        for e in epochs {
            self.accepted_logs(e, head, &mut view.accepted).await?;
        }
        let orphans: HashSet<Hash> = proofs
            .iter()
            .filter_map(|p| match p.state {
                ProofState::Submitted { tx } if !view.inflight.contains(&tx) => Some(tx),
                _ => None,
            })
            .collect();
        for tx in orphans {
            let receipt = self
                .provider
                .get_transaction_receipt(TxHash::from(tx.0))
                .await
                .map_err(self.rpc("eth_getTransactionReceipt"))?;
            if receipt.is_some() {
                view.mined.insert(tx);
            }
        }
        let changes = tracker::reconcile(&proofs, &view, self.config.confirmations);
        let mut by_state: HashMap<String, (ProofState, Vec<ProofRef>)> = HashMap::new();
        for (r, state) in changes {
            by_state
                .entry(format!("{state:?}"))
                .or_insert((state, Vec::new()))
                .1
                .push(r);
        }
        for (state, refs) in by_state.into_values() {
            match state {
                ProofState::Final => self.metrics.proofs_accepted.inc_by(refs.len() as u64),
                ProofState::Skipped => self
                    .metrics
                    .proofs_skipped
                    .with_label_values(&["contract"])
                    .inc_by(refs.len() as u64),
                ProofState::Found => tracing::warn!(
                    proofs = refs.len(),
                    "proofs back to found (reorg or dropped transaction): resubmitting"
                ),
                _ => {}
            }
            self.store.set_state(&refs, state)?;
        }
        // Found proofs of epochs whose window has closed can never count.
        let expired: Vec<ProofRef> = self
            .store
            .proofs(|p| p.state == ProofState::Found && self.units.contains_key(&p.proof.unit))
            .into_iter()
            .filter(|p| p.proof.epoch < current && !self.open(p.proof.epoch, now, current))
            .map(|p| p.proof.id())
            .collect();
        if !expired.is_empty() {
            tracing::warn!(
                proofs = expired.len(),
                "proofs expired: their epoch closed before they were submitted"
            );
            self.metrics
                .proofs_skipped
                .with_label_values(&["expired"])
                .inc_by(expired.len() as u64);
            self.store.set_state(&expired, ProofState::Skipped)?;
        }
        Ok(())
    }

    /// Canonical `ProofsAccepted` logs of epoch `e` for our units, from the block that fixed
    /// its seed to `head`.
    async fn accepted_logs(
        &mut self,
        e: u64,
        head: u64,
        out: &mut HashMap<ProofRef, Acceptance>,
    ) -> Result<()> {
        let from = self
            .params(e)
            .await?
            .seed_block
            .max(self.config.start_block);
        let logs = crate::logs::proofs_accepted(
            &self.provider,
            &self.endpoint,
            self.address,
            e,
            from,
            head,
            self.config.log_range,
        )
        .await?;
        for log in &logs {
            let Some(unit) = self.by_index.get(&log.unit) else {
                continue;
            };
            for nonce in log.nonces() {
                out.insert(
                    ProofRef {
                        unit: *unit,
                        epoch: e,
                        nonce,
                    },
                    Acceptance {
                        block: log.block,
                        block_hash: log.block_hash,
                        tx: log.tx,
                    },
                );
            }
        }
        Ok(())
    }

    /// Sends the next batch when one is due and none is in flight.
    async fn submit(&mut self, head: Head, now: u64, current: u64) -> Result<Option<TxHash>> {
        if self
            .txm
            .inflight()
            .iter()
            .any(|f| matches!(f.kind, TxKind::Submit(_)))
        {
            return Ok(None);
        }
        let found: Vec<StoredProof> = self
            .store
            .proofs(|p| p.state == ProofState::Found && self.units.contains_key(&p.proof.unit));
        let seen_now = Instant::now();
        for p in &found {
            self.first_seen.entry(p.proof.id()).or_insert(seen_now);
        }
        self.first_seen
            .retain(|r, _| found.iter().any(|p| p.proof.id() == *r));
        // The oldest open epoch first: its window closes sooner.
        let mut epochs: Vec<u64> = found
            .iter()
            .map(|p| p.proof.epoch)
            .filter(|e| self.open(*e, now, current))
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        let Some(&epoch) = epochs.first() else {
            return Ok(None);
        };
        let params = self.params(epoch).await?;
        let mut backlogs = Vec::new();
        for (unit, row) in &self.units {
            let nonces: Vec<u64> = found
                .iter()
                .filter(|p| p.proof.epoch == epoch && p.proof.unit == *unit)
                .map(|p| p.proof.nonce)
                .collect();
            if nonces.is_empty() {
                continue;
            }
            let kind = found
                .iter()
                .find(|p| p.proof.unit == *unit)
                .map_or(0, |p| p.proof.kind.index());
            let onchain = self
                .contract()
                .unitEpoch(row.index, epoch)
                .call()
                .await
                .map_err(|e| contract_error(&self.endpoint, "unitEpoch", e))?;
            backlogs.push(Backlog {
                unit: *unit,
                index: row.index,
                onchain: onchain.count,
                min: params.min[kind],
                max: params.max[kind],
                nonces,
            });
        }
        let batch_cfg = &self.config.batch;
        let plan = batch::plan(backlogs, batch_cfg.max_proofs, batch_cfg.max_gas);
        for (unit, nonces) in &plan.over_max {
            let refs: Vec<ProofRef> = nonces
                .iter()
                .map(|&nonce| ProofRef {
                    epoch,
                    unit: *unit,
                    nonce,
                })
                .collect();
            tracing::info!(unit = %self.units[unit].label, epoch, proofs = refs.len(), "unit at its maximum for the epoch: extra proofs skipped");
            self.metrics
                .proofs_skipped
                .with_label_values(&["over_max"])
                .inc_by(refs.len() as u64);
            self.store.set_state(&refs, ProofState::Skipped)?;
        }
        if plan.groups.is_empty() {
            return Ok(None);
        }
        let oldest = plan
            .groups
            .iter()
            .flat_map(|(u, _, ns)| {
                ns.iter().map(move |&nonce| ProofRef {
                    epoch,
                    unit: *u,
                    nonce,
                })
            })
            .filter_map(|r| self.first_seen.get(&r))
            .min()
            .copied()
            .unwrap_or(seen_now);
        let due = plan.proofs() >= batch_cfg.max_proofs
            || epoch < current
            || seen_now.duration_since(oldest) >= Duration::from_millis(batch_cfg.max_wait_ms);
        if !due {
            return Ok(None);
        }
        let packed = plan.encode();
        let data = Capacity::submitProofsCall {
            epoch,
            seed: params.seed.0.into(),
            packed: Bytes::from(packed),
        }
        .abi_encode();
        let sent = self
            .txm
            .send(TxKind::Submit(epoch), self.address, data.into(), head)
            .await;
        let hash = match sent {
            Err(ChainError::Revert {
                error: CapacityErrors::SeedMismatch(_) | CapacityErrors::EpochNotSeeded(_),
                ..
            }) => {
                self.seed_changed(epoch, params.seed)?;
                return Ok(None);
            }
            other => other?,
        };
        let refs: Vec<ProofRef> = plan
            .groups
            .iter()
            .flat_map(|(u, _, ns)| {
                ns.iter().map(move |&nonce| ProofRef {
                    epoch,
                    unit: *u,
                    nonce,
                })
            })
            .collect();
        self.store
            .set_state(&refs, ProofState::Submitted { tx: Hash(hash.0) })?;
        self.metrics.proofs_submitted.inc_by(refs.len() as u64);
        tracing::info!(epoch, proofs = refs.len(), units = plan.groups.len(), %hash, "proof batch submitted");
        Ok(Some(hash))
    }

    /// Claims rewards once an epoch, when enough is claimable.
    async fn claim(&mut self, head: Head, current: u64) -> Result<()> {
        if !self.config.claim.enabled
            || self.claimed_at == Some(current)
            || self.txm.inflight().iter().any(|f| f.kind == TxKind::Claim)
        {
            return Ok(());
        }
        let contract = self.contract();
        let mut total = U256::ZERO;
        let mut indices = Vec::new();
        for row in self.units.values() {
            let c = contract
                .claimable(row.index, current)
                .call()
                .await
                .map_err(|e| contract_error(&self.endpoint, "claimable", e))?;
            if c.amount > U256::ZERO {
                total += c.amount;
                indices.push(row.index);
            }
        }
        self.claimed_at = Some(current);
        let threshold = U256::from(self.config.claim.threshold_gwei) * U256::from(1_000_000_000u64);
        if total == U256::ZERO || total < threshold {
            return Ok(());
        }
        indices.sort_unstable();
        let data = Capacity::claimCall {
            unitIndices: indices,
            toEpoch: current,
        }
        .abi_encode();
        self.txm
            .send(TxKind::Claim, self.address, data.into(), head)
            .await?;
        tracing::info!(wei = %total, "claiming rewards");
        Ok(())
    }
}

/// Maps a contract call error: reverts decoded into the contract's errors.
pub(crate) fn contract_error(
    endpoint: &str,
    call: &'static str,
    e: alloy::contract::Error,
) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(t) => ChainError::from_rpc(endpoint, call, t),
        other => ChainError::Rejected {
            call,
            message: other.to_string(),
        },
    }
}
