//! Proof delivery: transactions settled, every non-terminal proof reconciled with the canonical
//! `ProofsAccepted` logs, and the next batch submitted when one is due.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, TxHash, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolCall;
use capminer_proofs::store::{ProofState, StoredProof};
use capminer_proofs::{Hash, ProofRef, Seed, UnitId};
use capminer_protocol::UnitIndex;

use super::{ChainService, EpochParams};
use crate::batch::{self, Backlog};
use crate::bindings::Capacity;
use crate::bindings::Capacity::CapacityErrors;
use crate::tracker::{self, Acceptance, ChainView};
use crate::txmanager::{Head, Settled, TxKind};
use crate::{ChainError, Result};

/// The acceptances of one epoch's proofs that lie at the final depth (at least
/// `chain.confirmations` below the head when read), so they need not be read again every tick:
/// a tick reads only the blocks after `to`, which always include the last `confirmations`
/// blocks, where a reorg within the fault model can still change what the logs say. Only the
/// acceptances of proofs the store has not settled are kept, so the map stays small however
/// many proofs the epoch has delivered. A reorg deeper than the confirmations (seen by the
/// finality watch) or a changed seed drops the cache, and the next tick reads from the seed's
/// block again, as it does after a restart.
#[derive(Debug, Default)]
pub(super) struct DeepLogs {
    /// The last block whose logs are all in `entries` (or were settled).
    to: Option<u64>,
    entries: HashMap<ProofRef, Acceptance>,
}

/// Proofs moving to one state in one reconciliation.
struct Move {
    /// The state.
    state: ProofState,
    /// The proofs.
    refs: Vec<ProofRef>,
}

/// The next proof batch: one epoch's planned groups, the seed they were mined under, and
/// every proof they carry.
struct Batch {
    /// The epoch.
    epoch: u64,
    /// The seed as the chain has it (and the proofs were mined under).
    seed: Seed,
    /// The groups to send.
    plan: batch::Plan,
    /// The proofs in them.
    refs: Vec<ProofRef>,
}

impl ChainService {
    /// Settles transactions; records replacements in the store.
    pub(super) async fn settle(&mut self, head: Head) -> Result<()> {
        let (settled, replaced) = self.txm.poll(head).await?;
        for (kind, old, new) in replaced {
            if let TxKind::Submit(_) = kind {
                let old = ProofState::Submitted { tx: Hash(old.0) };
                let refs: Vec<ProofRef> = self
                    .in_flight()
                    .await
                    .iter()
                    .filter(|p| p.state == old)
                    .map(|p| p.proof.id())
                    .collect();
                self.set_state(refs, ProofState::Submitted { tx: Hash(new.0) })
                    .await?;
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

    pub(super) fn on_mined(&mut self, kind: TxKind, receipt: &TransactionReceipt) {
        self.metrics.gas_used.inc_by(receipt.gas_used);
        match kind {
            TxKind::Submit(epoch) => {
                let accepted: usize = receipt
                    .inner
                    .logs()
                    .iter()
                    .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
                    .map(|l| crate::groups::decode_run(&l.inner.data.group).map_or(0, |n| n.len()))
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

    /// Brings every non-terminal proof of our units in line with the chain. A found proof
    /// changes only when a log accepts it, so beside the proofs in flight only the found ones
    /// the logs name are read, not the whole backlog. Steps: the epochs with unsettled proofs;
    /// what the chain says of them ([`ChainView`]); the proofs it concerns, with the receipts
    /// of transactions no longer in flight; acceptances from transactions this host never sent
    /// (a duplicate host, see `duplicates`); the changes applied; then the found proofs of
    /// epochs whose window closed, expired.
    pub(super) async fn reconcile(&mut self, head: u64, now: u64, current: u64) -> Result<()> {
        let epochs = self.unsettled_epochs().await;
        if epochs.is_empty() {
            return Ok(());
        }
        let mut view = self.chain_view(head, &epochs).await?;
        let mut proofs = self.in_flight().await;
        let named: Vec<ProofRef> = view.accepted.keys().copied().collect();
        proofs.extend(self.among(named, |p| p.state == ProofState::Found).await);
        self.read_orphan_receipts(&proofs, &mut view).await?;
        let keep_from = epochs
            .first()
            .map_or(current, |e| current.min(*e))
            .saturating_sub(1);
        self.watch_duplicates(&proofs, &view, keep_from).await?;
        let changes = tracker::reconcile(&proofs, &view, self.config.confirmations);
        self.apply_changes(changes, &view).await?;
        self.prune_deep_logs(&epochs).await;
        self.expire_closed(epochs, now, current).await
    }

    /// The epochs with unsettled proofs of our units; sets `capminer_chain_proofs_pending`.
    async fn unsettled_epochs(&self) -> BTreeSet<u64> {
        let tallies = self.tallies(0..=u64::MAX).await;
        let pending: u64 = tallies
            .iter()
            .map(|(_, _, t)| u64::from(t.unsettled()))
            .sum();
        self.metrics.proofs_pending.set(pending as i64);
        tallies
            .iter()
            .filter(|(_, _, t)| t.unsettled() > 0)
            .map(|(e, _, _)| *e)
            .collect()
    }

    /// What the chain says of `epochs` up to `head`: the transactions in flight and the
    /// canonical acceptances (receipts are read later, for the proofs that need them).
    async fn chain_view(&mut self, head: u64, epochs: &BTreeSet<u64>) -> Result<ChainView> {
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
        for &e in epochs {
            self.accepted_logs(e, head, &mut view.accepted).await?;
        }
        Ok(view)
    }

    /// Reads the receipt of every transaction `proofs` were submitted in that is no longer in
    /// flight (dropped, or sent before a restart): mined by `view.head`, or still pending.
    async fn read_orphan_receipts(
        &self,
        proofs: &[StoredProof],
        view: &mut ChainView,
    ) -> Result<()> {
        let orphans: HashSet<Hash> = proofs
            .iter()
            .filter_map(|p| match p.state {
                ProofState::Submitted { tx } if !view.inflight.contains(&tx) => Some(tx),
                _ => None,
            })
            .collect();
        for tx in orphans {
            let receipt = self
                .chain
                .provider
                .get_transaction_receipt(TxHash::from(tx.0))
                .await
                .map_err(self.chain.rpc_error("eth_getTransactionReceipt"))?;
            // Logs were read up to `head`: a receipt from a later block says nothing yet.
            match receipt.and_then(|r| r.block_number) {
                Some(block) if block <= view.head => {
                    view.mined.insert(tx);
                }
                Some(_) => {
                    view.inflight.insert(tx);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Moves the proofs `changes` names to their new states, one store write a state, with
    /// the metrics and the finality marks; the contract's counts of their units are read
    /// again before their next batch.
    async fn apply_changes(
        &mut self,
        changes: Vec<(ProofRef, ProofState)>,
        view: &ChainView,
    ) -> Result<()> {
        let mut by_state: HashMap<String, Move> = HashMap::new();
        for (r, state) in changes {
            by_state
                .entry(format!("{state:?}"))
                .or_insert(Move {
                    state,
                    refs: Vec::new(),
                })
                .refs
                .push(r);
        }
        // What the contract counts changes only with what it accepts (or a reorg undoes): the
        // counts of units whose proofs moved are read again before their next batch.
        for r in by_state.values().flat_map(|m| &m.refs) {
            self.onchain.remove(&(r.unit, r.epoch));
        }
        for Move { state, refs } in by_state.into_values() {
            match state {
                ProofState::Final => {
                    self.metrics.proofs_accepted.inc_by(refs.len() as u64);
                    for r in &refs {
                        let a = view.accepted[r];
                        self.mark_final(a.block, a.block_hash, *r);
                    }
                }
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
            self.set_state(refs, state).await?;
        }
        Ok(())
    }

    /// Skips the found proofs of those of `epochs` whose window has closed: they can never
    /// count.
    async fn expire_closed(&self, epochs: BTreeSet<u64>, now: u64, current: u64) -> Result<()> {
        let mut expired: Vec<ProofRef> = Vec::new();
        for e in epochs
            .into_iter()
            .filter(|e| *e < current && !self.open(*e, now, current))
        {
            for (unit, _, nonces) in self.found(e).await {
                expired.extend(nonces.into_iter().map(|nonce| ProofRef {
                    epoch: e,
                    unit,
                    nonce,
                }));
            }
        }
        if expired.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            proofs = expired.len(),
            "proofs expired: their epoch closed before they were submitted"
        );
        self.metrics
            .proofs_skipped
            .with_label_values(&["expired"])
            .inc_by(expired.len() as u64);
        self.set_state(expired, ProofState::Skipped).await
    }

    /// Canonical `ProofsAccepted` logs of epoch `e` for our units, from the block that fixed
    /// its seed to `head`: those at the final depth from [`DeepLogs`], the rest read.
    pub(super) async fn accepted_logs(
        &mut self,
        e: u64,
        head: u64,
        out: &mut HashMap<ProofRef, Acceptance>,
    ) -> Result<()> {
        let seed_block = self
            .params(e)
            .await?
            .seed_block
            .max(self.config.start_block);
        let to = self.deep_logs.get(&e).and_then(|deep| deep.to);
        let from = to.map_or(seed_block, |to| to + 1).max(seed_block);
        let logs = crate::logs::proofs_accepted(
            &self.chain.provider,
            &self.chain.endpoint,
            self.chain.address,
            e,
            from,
            head,
            self.config.log_range,
        )
        .await?;
        // Blocks up to here are final: a reorg within the fault model cannot change them.
        let final_depth = head.saturating_sub(self.config.confirmations);
        let deep = self.deep_logs.entry(e).or_default();
        for log in &logs {
            let Some(unit) = self.by_index.get(&log.unit) else {
                continue;
            };
            for nonce in log.nonces() {
                let r = ProofRef {
                    unit: *unit,
                    epoch: e,
                    nonce,
                };
                let a = Acceptance {
                    block: log.block,
                    block_hash: log.block_hash,
                    tx: log.tx,
                };
                if log.block <= final_depth {
                    deep.entries.insert(r, a);
                }
                out.insert(r, a);
            }
        }
        if final_depth + 1 >= from {
            deep.to = Some(deep.to.map_or(final_depth, |to| to.max(final_depth)));
        }
        out.extend(deep.entries.iter().map(|(r, a)| (*r, *a)));
        Ok(())
    }

    /// Keeps in [`DeepLogs`] only the epochs still reconciled and, in them, the acceptances of
    /// proofs the store has not settled.
    async fn prune_deep_logs(&mut self, epochs: &BTreeSet<u64>) {
        let mut deep_logs = std::mem::take(&mut self.deep_logs);
        deep_logs.retain(|e, _| epochs.contains(e));
        for deep in deep_logs.values_mut() {
            let refs: Vec<ProofRef> = deep.entries.keys().copied().collect();
            let open: HashSet<ProofRef> = self
                .among(refs, |p| !p.state.is_terminal())
                .await
                .iter()
                .map(|p| p.proof.id())
                .collect();
            deep.entries.retain(|r, _| open.contains(r));
        }
        self.deep_logs = deep_logs;
    }

    /// Sends the next batch when one is due and none is in flight. Steps: the batch planned
    /// from the oldest open epoch's found proofs (those over their unit's maximum skipped on
    /// the way); whether it is due; the transaction sent.
    pub(super) async fn submit(
        &mut self,
        head: Head,
        now: u64,
        current: u64,
    ) -> Result<Option<TxHash>> {
        if self
            .txm
            .inflight()
            .iter()
            .any(|f| matches!(f.kind, TxKind::Submit(_)))
        {
            return Ok(None);
        }
        let Some(batch) = self.plan_batch(now, current).await? else {
            return Ok(None);
        };
        if !self.due(&batch, current).await {
            return Ok(None);
        }
        self.send_batch(batch, head).await
    }

    /// Plans the next batch: the oldest open epoch with found proofs (its window closes
    /// sooner), if its proofs were mined under the seed the chain has now; proofs over their
    /// unit's maximum are skipped. `None`: nothing to send.
    async fn plan_batch(&mut self, now: u64, current: u64) -> Result<Option<Batch>> {
        let Some(epoch) = self
            .tallies(0..=u64::MAX)
            .await
            .into_iter()
            .find(|(e, _, t)| t.found > 0 && self.open(*e, now, current))
            .map(|(e, _, _)| e)
        else {
            return Ok(None);
        };
        let params = self.params(epoch).await?;
        // Only proofs mined under the epoch's seed as the chain has it now go out.
        let Some(seed) = self.mined_seed(epoch).await.filter(|s| *s == params.seed) else {
            return Ok(None);
        };
        let backlogs = self.backlogs(epoch, &params, current).await?;
        let plan = batch::plan(
            backlogs,
            self.config.batch.max_proofs,
            self.config.batch.max_gas,
            self.draining || epoch < current,
        );
        self.skip_over_max(epoch, &plan.over_max).await?;
        if plan.groups.is_empty() {
            return Ok(None);
        }
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
        Ok(Some(Batch {
            epoch,
            seed,
            plan,
            refs,
        }))
    }

    /// What is waiting in `epoch`, by unit, in one pass over the epoch's found proofs, with
    /// the contract's counts of the units not read since their proofs last moved (read in a
    /// few calls).
    async fn backlogs(
        &mut self,
        epoch: u64,
        params: &EpochParams,
        current: u64,
    ) -> Result<Vec<Backlog>> {
        let waiting = self.found(epoch).await;
        self.onchain.retain(|(_, e), _| *e + 1 >= current);
        let unread: Vec<(UnitId, UnitIndex)> = waiting
            .iter()
            .map(|(unit, _, _)| (*unit, self.units[unit].index))
            .filter(|(unit, _)| !self.onchain.contains_key(&(*unit, epoch)))
            .collect();
        let indices: Vec<UnitIndex> = unread.iter().map(|(_, index)| *index).collect();
        let counts = self.chain.unit_epoch_counts(&indices, epoch).await?;
        for ((unit, _), count) in unread.into_iter().zip(counts) {
            self.onchain.insert((unit, epoch), count);
        }
        Ok(waiting
            .into_iter()
            .map(|(unit, kind, nonces)| Backlog {
                unit,
                index: self.units[&unit].index,
                onchain: self.onchain[&(unit, epoch)],
                min: params.min[kind.index()],
                max: params.max[kind.index()],
                nonces,
            })
            .collect())
    }

    /// Skips the proofs of `epoch` beyond their unit's maximum: the contract would not count
    /// them.
    async fn skip_over_max(&self, epoch: u64, over_max: &[(UnitId, Vec<u64>)]) -> Result<()> {
        for (unit, nonces) in over_max {
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
            self.set_state(refs, ProofState::Skipped).await?;
        }
        Ok(())
    }

    /// Whether `batch` goes now: when stopping, when it is full, when its epoch has ended, or
    /// once its longest-waiting proof has waited `chain.batch.max_wait_ms`.
    async fn due(&self, batch: &Batch, current: u64) -> bool {
        let cfg = &self.config.batch;
        self.draining
            || batch.plan.proofs() >= cfg.max_proofs
            || batch.epoch < current
            || self
                .found_since(batch.refs.clone())
                .await
                .unwrap_or_else(Instant::now)
                .elapsed()
                >= Duration::from_millis(cfg.max_wait_ms)
    }

    /// Sends `batch` and marks its proofs submitted. A contract that no longer has the seed
    /// they were mined under (a reorg) or no seed yet is not an error: the seed change is
    /// handled, or the epoch's parameters read again, and nothing is sent this tick.
    async fn send_batch(&mut self, batch: Batch, head: Head) -> Result<Option<TxHash>> {
        let Batch {
            epoch,
            seed,
            plan,
            refs,
        } = batch;
        let data = Capacity::submitProofsCall {
            epoch,
            seed: seed.0.into(),
            packed: Bytes::from(plan.encode()),
        }
        .abi_encode();
        let sent = self
            .txm
            .send(TxKind::Submit(epoch), self.chain.address, data.into(), head)
            .await;
        let hash = match sent {
            Err(ChainError::Revert {
                error: CapacityErrors::SeedMismatch(_),
                ..
            }) => {
                self.seed_changed(epoch, seed).await?;
                return Ok(None);
            }
            Err(ChainError::Revert {
                error: CapacityErrors::EpochNotSeeded(_),
                ..
            }) => {
                // The seeding block left the chain; it may come back the same: wait.
                self.params.remove(&epoch);
                return Ok(None);
            }
            other => other?,
        };
        let submitted = refs.len();
        self.set_state(refs, ProofState::Submitted { tx: Hash(hash.0) })
            .await?;
        self.metrics.proofs_submitted.inc_by(submitted as u64);
        tracing::info!(epoch, proofs = submitted, units = plan.groups.len(), %hash, "proof batch submitted");
        Ok(Some(hash))
    }
}
