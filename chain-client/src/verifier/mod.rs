//! The verifier: follows the proofs accepted on chain, recomputes every one (or its own sample,
//! drawn from its signature over the unit-epoch), and attests per (unit, epoch) over the digest
//! of the accepted nonces, or reports an invalid one with the evidence that it was accepted.
//! Rewards go only to attested unit-epochs.
//!
//! ```text
//!  window of epoch e closed ─▶ ProofsAccepted logs of e (bounded slices) ─▶ per unit: nonces,
//!      groups, digest chain ─▶ sig = sign(sampleHash(unit, e, digest)) ─▶ sample(keccak(sig))
//!      ─▶ Checker (spawn_blocking) ─▶ all valid: attest(unit, e, digest, checked, sig)
//!      │ any invalid: reportInvalid(smallest invalid, groups) │ cannot check: abstain(reason)
//!      │ checker out of resources (VerifyError::is_retryable): that unit-epoch again next tick
//!      ─▶ once every transaction of e is mined and no unit-epoch of e waits for a retry:
//!         progress.json next_epoch = e + 1 (written durably, on the blocking pool)
//! ```
//!
//! `verify_epoch` runs in three steps: `plan` (what the chain holds of each unit-epoch; abstain
//! where this verifier cannot check; sign and draw the sample), `recompute` (the checker, off
//! the runtime) and `settle` (attest, report, abstain, or defer to the next tick). A
//! recomputation the checker cannot do for lack of resources is not a verdict and not a reason
//! to abstain: the unit-epoch is tried again each tick until it is checked or its epoch
//! settles (later epochs wait meanwhile). Any other [`VerifyError`] abstains
//! ([`Abstain::CheckFailed`]).
//!
//! Each verifier's sample is its own: keccak256 of its deterministic (RFC 6979) signature, so a
//! provider or block producer cannot predict it, and anyone can audit it from the `Attested`
//! event. With a fraction `f` of a unit-epoch's `n` nonces fake
//! and `k = ceil(rate × n)` of them checked, a verifier misses every fake one with probability
//! `C(n − fn, k) / C(n, k) ≤ (1 − f)^k` (docs/THREATS.md has the table).
//!
//! Restarting resumes at `next_epoch`; `hasAttested` keeps a unit-epoch from being attested
//! twice, and a report already made reverts with `AlreadyReported`, which counts as done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use capminer_config::{Config, Shard};
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use capminer_protocol::{Checker, Claim, UnitIndex, Verdict, VerifyError};
use prometheus::Registry;

use crate::bindings::Capacity;
use crate::bindings::Capacity::CapacityErrors;
use crate::handle::ChainHandle;
use crate::metrics::ChainMetrics;
use crate::txmanager::{Head, TxKind, TxManager};
use crate::{ChainError, Result};

mod metrics;
mod progress;
mod sample;

pub use metrics::VerifierMetrics;
use progress::{Progress, load_progress, save_progress};
pub use sample::{sample, sample_hash, sample_seed};

/// Reason code of an invalid-proof report: the hash is above the target.
pub const REASON_ABOVE_TARGET: u8 = 1;

/// The nonces of one unit in one epoch, as the logs give them.
#[derive(Debug, Default)]
struct UnitNonces {
    nonces: Vec<u64>,
    digest: B256,
    /// The accepted nonces of each log, in log order: the evidence of a report.
    groups: Vec<Bytes>,
}

/// An epoch as the contract has it, for verification.
#[derive(Debug, Clone, Copy)]
struct EpochOnChain {
    /// Its seed and targets.
    epoch: Epoch,
    /// The block that fixed the seed: no proof of the epoch is older.
    seed_block: u64,
    /// The GPU challenge word its GPU proofs were computed under.
    gpu_challenge: [u8; 32],
}

/// One unit-epoch to recompute, with what attesting it takes.
#[derive(Debug)]
struct Planned {
    /// The unit.
    index: UnitIndex,
    /// Its kind.
    kind: UnitKind,
    /// The digest of its accepted nonces (what an attestation names).
    digest: B256,
    /// This verifier's signature over its sample hash (drew the sample; goes with the
    /// attestation).
    signature: [u8; 65],
    /// The sampled claims.
    claims: Vec<Claim>,
}

/// What to do with one unit-epoch, decided before any recomputation.
#[derive(Debug)]
enum UnitPlan {
    /// Nothing: it failed already, or this verifier's party attested it.
    Skip,
    /// State on chain that it cannot be checked.
    Abstain(Abstain),
    /// Recompute its sample.
    Check(Planned),
}

/// A planned unit-epoch and what recomputing it gave.
#[derive(Debug)]
struct Recomputed {
    planned: Planned,
    /// One verdict per claim, or why the checker could not judge them.
    verdicts: std::result::Result<Vec<Verdict>, VerifyError>,
}

/// What verifying (part of) one epoch did.
#[derive(Debug, Default)]
struct EpochOutcome {
    /// Whether any transaction was sent.
    sent: bool,
    /// Unit-epochs whose recomputation lacked resources: tried again at the next tick.
    deferred: BTreeSet<UnitIndex>,
}

/// Why a verifier could not check a unit-epoch (the contract's `abstain` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Abstain {
    /// The unit's kind is one this verifier cannot recompute.
    UnsupportedKind = 1,
    /// The epoch's challenge parameters differ from this verifier's `[network]`.
    ChallengeMismatch = 2,
    /// The logs this verifier read do not replay to the contract's digest.
    DigestMismatch = 3,
    /// The checker could not judge the sample for a reason that trying again cannot fix (a
    /// [`VerifyError`] not [retryable](VerifyError::is_retryable): unsupported, or failed).
    CheckFailed = 4,
}

/// A verifier of one contract.
pub struct VerifierService {
    chain: ChainHandle,
    txm: TxManager,
    signer: PrivateKeySigner,
    checker: Arc<dyn Checker>,
    metrics: VerifierMetrics,
    state_dir: PathBuf,
    sample_rate: f64,
    log_range: u64,
    start_block: u64,
    gpu_challenge: [u8; 32],
    poll: Duration,
    next_epoch: u64,
    sent_for: Option<u64>,
    /// Unit-epochs of `next_epoch` whose recomputation lacked resources: the next tick tries
    /// them again (and only them) before the epoch is done.
    deferred: BTreeSet<UnitIndex>,
    units: BTreeMap<UnitIndex, (UnitId, Option<UnitKind>)>,
    /// The verifier party it votes for: itself, or the party that made it a delegate.
    party: Address,
    /// Its share of the party's unit-epochs.
    shard: Shard,
}

impl std::fmt::Debug for VerifierService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierService")
            .field("address", &self.chain.address)
            .field("verifier", &self.txm.address())
            .field("next_epoch", &self.next_epoch)
            .finish_non_exhaustive()
    }
}

impl VerifierService {
    /// Connects with `config.chain` (node, contract, gas), `config.verifier` (state, sample)
    /// and `config.network` (the GPU challenge, which must be the contract's).
    pub async fn connect(
        config: &Config,
        signer: PrivateKeySigner,
        checker: Arc<dyn Checker>,
        registry: &Registry,
    ) -> Result<Self> {
        let chain = ChainHandle::connect(&config.chain).await?;
        let me = signer.address();
        let party = chain.verifier_party(me).await?;
        match party {
            Some(p) if p == me => {}
            Some(p) => {
                tracing::info!(delegate = %me, party = %p, "verifying as a delegate of verifier party {p}")
            }
            None => {
                tracing::warn!(%me, "this address is neither in the contract's verifier set nor a delegate of a verifier: its attestations will be refused")
            }
        }
        let party = party.unwrap_or(me);
        let shard = config.verifier.shard;
        let gpu_challenge = crate::network_challenge(&config.network);
        chain.check_gpu_challenge(&gpu_challenge).await?;
        let next_epoch = load_progress(&config.verifier.state_dir, shard, chain.address)?;
        let metrics = |what| move |source| ChainError::Metrics { what, source };
        let txm = TxManager::new(
            chain.provider.clone(),
            EthereumWallet::from(signer.clone()),
            me,
            chain.chain_id,
            chain.endpoint.clone(),
            config.chain.gas.clone(),
            ChainMetrics::register(&Registry::new()).map_err(metrics("transaction"))?,
        );
        tracing::info!(address = %chain.address, verifier = %me, %party, %shard, next_epoch, sample_rate = config.verifier.sample_rate, "verifier connected to {}", chain.endpoint);
        Ok(Self {
            chain,
            txm,
            signer,
            checker,
            metrics: VerifierMetrics::register(registry, me, shard).map_err(metrics("verifier"))?,
            state_dir: config.verifier.state_dir.clone(),
            sample_rate: config.verifier.sample_rate,
            log_range: config.chain.log_range.max(1),
            start_block: config.chain.start_block,
            gpu_challenge,
            poll: Duration::from_millis(config.chain.poll_ms),
            next_epoch,
            sent_for: None,
            deferred: BTreeSet::new(),
            units: BTreeMap::new(),
            party,
            shard,
        })
    }

    /// The next epoch it will verify.
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch
    }

    /// Its metric families (for a status report in the same process).
    pub fn metrics(&self) -> &VerifierMetrics {
        &self.metrics
    }

    /// Ticks every `chain.poll_ms` until `stop` returns true.
    pub async fn run(mut self, stop: impl Fn() -> bool) {
        while !stop() {
            if let Err(e) = self.tick().await {
                if e.is_retryable() {
                    tracing::warn!("verifier: {e}; retrying");
                } else {
                    tracing::error!("verifier: {e}");
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Records epoch `e` as done, durably: the progress file is written (and fsynced) on the
    /// blocking pool, off the runtime's threads.
    async fn done(&mut self, e: u64) -> Result<()> {
        self.next_epoch = e + 1;
        self.deferred.clear();
        let (dir, shard) = (self.state_dir.clone(), self.shard);
        let progress = Progress {
            contract: self.chain.address,
            next_epoch: self.next_epoch,
        };
        tokio::task::spawn_blocking(move || save_progress(&dir, shard, progress))
            .await
            .map_err(|source| ChainError::TaskJoin {
                task: format!("writing the verifier progress (epoch {e} done)"),
                source,
            })?
    }

    /// One pass: settle our transactions; when the epoch in hand is done, record it; verify
    /// the next closed epoch. Returns the epoch it sent transactions for, if any. An epoch with
    /// unit-epochs deferred for lack of resources is not done: the next tick checks them again,
    /// until they are checked or the epoch settles.
    pub async fn tick(&mut self) -> Result<Option<u64>> {
        let (head, now) =
            crate::txmanager::latest_head(&self.chain.provider, &self.chain.endpoint).await?;
        self.settle_transactions(head).await?;
        if let Some(e) = self.sent_for {
            if !self.txm.inflight().is_empty() {
                return Ok(None);
            }
            if self.deferred.is_empty() {
                self.done(e).await?;
            }
            self.sent_for = None;
        }
        let schedule = self.chain.schedule;
        let closed = schedule.epoch_at(now.saturating_sub(schedule.grace)); // epochs < this are closed
        self.metrics
            .backlog
            .set(closed.saturating_sub(self.next_epoch) as i64);
        // Epochs with nothing to send (no proofs, or all attested already) are done at once.
        loop {
            let e = self.next_epoch;
            if now < schedule.close_time(e) {
                return Ok(None);
            }
            if now >= schedule.settle_time(e) {
                tracing::warn!(
                    epoch = e,
                    deferred = self.deferred.len(),
                    "epoch settled before this verifier reached it: nothing to attest any more"
                );
            } else {
                let only = (!self.deferred.is_empty()).then(|| self.deferred.clone());
                let outcome = self.verify_epoch(e, head, only.as_ref()).await?;
                self.deferred = outcome.deferred;
                if outcome.sent {
                    self.sent_for = Some(e);
                    return Ok(Some(e));
                }
                if !self.deferred.is_empty() {
                    return Ok(None);
                }
            }
            self.done(e).await?;
        }
    }

    /// Polls our transactions. One dropped, or reverted when mined (estimated fine, the chain
    /// moved under it: a reorg changed the digest), has its epoch verified again, whole.
    async fn settle_transactions(&mut self, head: Head) -> Result<()> {
        let (settled, _) = self.txm.poll(head).await?;
        for s in settled {
            match s {
                crate::txmanager::Settled::Dropped(flight) => {
                    tracing::warn!(kind = ?flight.kind, "verifier transaction dropped: verifying the epoch again");
                    self.sent_for = None;
                    self.deferred.clear();
                }
                crate::txmanager::Settled::Mined(flight, receipt) if !receipt.status() => {
                    tracing::warn!(kind = ?flight.kind, "verifier transaction reverted when mined: verifying the epoch again");
                    self.sent_for = None;
                    self.deferred.clear();
                }
                crate::txmanager::Settled::Mined(..) => {}
            }
        }
        Ok(())
    }

    /// Verifies epoch `e` (only the unit-epochs `only`, when given: those deferred before) in
    /// three steps: [plan](Self::plan) (read what the chain holds, abstain where this verifier
    /// cannot check, draw each sample), [recompute](Self::recompute) (off the runtime) and
    /// [settle](Self::settle) (attest, report, abstain, or defer). One unit-epoch that cannot
    /// be checked or whose transaction the contract refuses never holds up the others.
    async fn verify_epoch(
        &mut self,
        e: u64,
        head: Head,
        only: Option<&BTreeSet<UnitIndex>>,
    ) -> Result<EpochOutcome> {
        let started = Instant::now();
        let mut outcome = EpochOutcome::default();
        let Some(onchain) = self.read_epoch(e).await? else {
            return Ok(outcome); // nobody started it: no proofs
        };
        let from = onchain.seed_block.max(self.start_block);
        let shard = self.shard;
        let by_unit: BTreeMap<UnitIndex, UnitNonces> = self
            .accepted(e, from, head.number)
            .await?
            .into_iter()
            .filter(|(unit, _)| shard.owns(unit.0, e))
            .filter(|(unit, _)| only.is_none_or(|only| only.contains(unit)))
            .collect();
        if by_unit.is_empty() {
            return Ok(outcome);
        }
        let planned = self.plan(&onchain, &by_unit, head, &mut outcome).await?;
        if planned.is_empty() {
            return Ok(outcome);
        }
        for recomputed in self.recompute(e, planned).await? {
            let groups = &by_unit[&recomputed.planned.index].groups;
            self.settle(e, recomputed, groups, head, &mut outcome)
                .await?;
        }
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Epoch `e` as the contract has it; `None` while its seed is not fixed (nobody started
    /// it: no proofs).
    async fn read_epoch(&self, e: u64) -> Result<Option<EpochOnChain>> {
        let info = self
            .chain
            .contract()
            .epochInfo(e)
            .call()
            .await
            .map_err(self.chain.call_error("epochInfo"))?;
        if info.seed == B256::ZERO {
            return Ok(None);
        }
        Ok(Some(EpochOnChain {
            epoch: Epoch {
                number: e,
                seed: Seed(info.seed.0),
                targets: [Target(info.targets[0].0), Target(info.targets[1].0)],
            },
            seed_block: info.seedBlock,
            gpu_challenge: info.challenges[1].0,
        }))
    }

    /// Step 1: decides for each unit-epoch of `by_unit` (see [`UnitPlan`]); sends the
    /// abstentions at once (noting in `outcome` whether any went out) and returns the
    /// unit-epochs to recompute.
    async fn plan(
        &mut self,
        onchain: &EpochOnChain,
        by_unit: &BTreeMap<UnitIndex, UnitNonces>,
        head: Head,
        outcome: &mut EpochOutcome,
    ) -> Result<Vec<Planned>> {
        let e = onchain.epoch.number;
        let mut planned = Vec::new();
        for (&index, unit) in by_unit {
            match self.plan_unit(onchain, index, unit).await? {
                UnitPlan::Skip => {}
                UnitPlan::Abstain(why) => outcome.sent |= self.abstain(index, e, why, head).await?,
                UnitPlan::Check(p) => planned.push(p),
            }
        }
        Ok(planned)
    }

    /// What to do with unit `index`'s nonces `unit` in the epoch: skip it if it failed or was
    /// attested by our party already; abstain (saying why in the log) if the logs do not
    /// replay to the contract's digest, its kind is unknown, or the epoch's GPU challenge is not
    /// ours; else sign its sample hash and draw the sample.
    async fn plan_unit(
        &mut self,
        onchain: &EpochOnChain,
        index: UnitIndex,
        unit: &UnitNonces,
    ) -> Result<UnitPlan> {
        let e = onchain.epoch.number;
        let contract = self.chain.contract();
        let state = contract
            .unitEpoch(index.0, e)
            .call()
            .await
            .map_err(self.chain.call_error("unitEpoch"))?;
        if state.failed
            || contract
                .hasAttested(index.0, e, self.party)
                .call()
                .await
                .map_err(self.chain.call_error("hasAttested"))?
        {
            return Ok(UnitPlan::Skip);
        }
        if state.digest != unit.digest {
            tracing::error!(
                unit = %index,
                epoch = e,
                "the logs' digest differs from the contract's: logs missing; abstaining"
            );
            return Ok(UnitPlan::Abstain(Abstain::DigestMismatch));
        }
        let (id, kind) = self.unit(index).await?;
        let Some(kind) = kind else {
            tracing::error!(
                unit = %index,
                epoch = e,
                "unit of a kind this verifier does not know: abstaining"
            );
            return Ok(UnitPlan::Abstain(Abstain::UnsupportedKind));
        };
        if kind == UnitKind::Gpu && onchain.gpu_challenge != self.gpu_challenge {
            tracing::error!(
                unit = %index,
                epoch = e,
                "the epoch's GPU challenge ({}) is not this verifier's ({}): abstaining",
                capminer_protocol::GpuChallenge::describe(&onchain.gpu_challenge),
                capminer_protocol::GpuChallenge::describe(&self.gpu_challenge)
            );
            return Ok(UnitPlan::Abstain(Abstain::ChallengeMismatch));
        }
        self.draw_sample(onchain.epoch, index, id, kind, unit)
            .map(UnitPlan::Check)
    }

    /// Signs the sample hash of unit `index` (`id`, `kind`) in `epoch` and draws its sample of
    /// `unit`'s nonces from the signature.
    fn draw_sample(
        &self,
        epoch: Epoch,
        index: UnitIndex,
        id: UnitId,
        kind: UnitKind,
        unit: &UnitNonces,
    ) -> Result<Planned> {
        let e = epoch.number;
        let hash = sample_hash(
            self.chain.chain_id,
            self.chain.address,
            index,
            e,
            unit.digest,
        );
        let signature = self
            .signer
            .sign_hash_sync(&hash)
            .map_err(|source| ChainError::Signer {
                what: "signing the sample hash",
                source,
            })?
            .as_bytes();
        let chosen = sample(
            &unit.nonces,
            self.sample_rate,
            &sample_seed(&signature),
            index,
            e,
        );
        let claims = chosen
            .into_iter()
            .map(|i| Claim {
                unit: id,
                kind,
                epoch,
                nonce: unit.nonces[i],
                hash: None,
            })
            .collect();
        Ok(Planned {
            index,
            kind,
            digest: unit.digest,
            signature,
            claims,
        })
    }

    /// Step 2: recomputes the planned unit-epochs off the runtime, side by side on the blocking
    /// pool's rayon threads (each builds its own key's cache, single-threaded Argon2, so one
    /// after another would leave all cores but one idle while caches are built); each is
    /// checked on its own, so a failure is that unit's. A recomputation that panics fails the
    /// epoch's pass ([`ChainError::TaskJoin`]): the next tick verifies it again.
    async fn recompute(&self, e: u64, planned: Vec<Planned>) -> Result<Vec<Recomputed>> {
        let checker = self.checker.clone();
        tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            planned
                .into_par_iter()
                .map(|planned| Recomputed {
                    verdicts: checker.check(&planned.claims),
                    planned,
                })
                .collect()
        })
        .await
        .map_err(|source| ChainError::TaskJoin {
            task: format!("verification task of epoch {e}"),
            source,
        })
    }

    /// Step 3: settles one recomputed unit-epoch. Verdicts: attest, or report the smallest
    /// invalid nonce. The checker could not judge: for lack of resources
    /// ([`VerifyError::is_retryable`]) the unit-epoch is deferred to the next tick, for any
    /// other reason this verifier abstains ([`Abstain::CheckFailed`]).
    async fn settle(
        &mut self,
        e: u64,
        recomputed: Recomputed,
        groups: &[Bytes],
        head: Head,
        outcome: &mut EpochOutcome,
    ) -> Result<()> {
        let Recomputed { planned, verdicts } = recomputed;
        let index = planned.index;
        let sent = match verdicts {
            Ok(verdicts) => {
                self.attest_or_report(e, planned, &verdicts, groups, head)
                    .await?
            }
            Err(err) if err.is_retryable() => {
                tracing::warn!(
                    unit = %index,
                    epoch = e,
                    "cannot recompute now: {err}; trying this unit-epoch again at the next tick"
                );
                outcome.deferred.insert(index);
                false
            }
            Err(err) => {
                tracing::error!(
                    unit = %index,
                    epoch = e,
                    "recomputation failed: {err}; abstaining"
                );
                self.abstain(index, e, Abstain::CheckFailed, head).await?
            }
        };
        outcome.sent |= sent;
        Ok(())
    }

    /// Attests `planned` when every verdict is valid, else reports its smallest nonce above
    /// the target with the logs' `groups` as evidence; returns whether it sent.
    async fn attest_or_report(
        &mut self,
        e: u64,
        planned: Planned,
        verdicts: &[Verdict],
        groups: &[Bytes],
        head: Head,
    ) -> Result<bool> {
        let Planned {
            index,
            kind,
            digest,
            signature,
            claims,
        } = planned;
        self.metrics
            .verified
            .with_label_values(&[kind.as_str()])
            .inc_by(claims.len() as u64);
        let invalid: Vec<u64> = claims
            .iter()
            .zip(verdicts)
            .filter(|(_, v)| matches!(v, Verdict::AboveTarget { .. }))
            .map(|(c, _)| c.nonce)
            .collect();
        self.metrics
            .invalid
            .with_label_values(&[kind.as_str()])
            .inc_by(invalid.len() as u64);
        let (what, data) = match invalid.iter().min() {
            None => (
                "attest",
                Capacity::attestCall {
                    unit: index.0,
                    epoch: e,
                    digest,
                    checked: claims.len() as u32,
                    sampleSignature: Bytes::copy_from_slice(&signature),
                }
                .abi_encode(),
            ),
            Some(&nonce) => {
                tracing::warn!(
                    unit = %index,
                    epoch = e,
                    nonce,
                    invalid = invalid.len(),
                    "invalid proof found: reporting it"
                );
                (
                    "report",
                    Capacity::reportInvalidCall {
                        unit: index.0,
                        epoch: e,
                        nonce,
                        reason: REASON_ABOVE_TARGET,
                        groups: groups.to_vec(),
                    }
                    .abi_encode(),
                )
            }
        };
        let sent = self.send(index, e, what, data, head).await?;
        if sent {
            tracing::info!(
                unit = %index,
                epoch = e,
                proofs = claims.len(),
                "{what} sent"
            );
        }
        Ok(sent)
    }

    /// States on chain that this verifier could not check the unit-epoch.
    async fn abstain(&mut self, unit: UnitIndex, e: u64, why: Abstain, head: Head) -> Result<bool> {
        let data = Capacity::abstainCall {
            unit: unit.0,
            epoch: e,
            reason: why as u8,
        }
        .abi_encode();
        self.send(unit, e, "abstain", data, head).await
    }

    /// Sends one verifier transaction. A refusal by the contract is logged and skipped (it
    /// concerns this unit-epoch alone); a node error is returned, to retry the epoch.
    async fn send(
        &mut self,
        unit: UnitIndex,
        e: u64,
        what: &'static str,
        data: Vec<u8>,
        head: Head,
    ) -> Result<bool> {
        match self
            .txm
            .send(TxKind::Attest(e), self.chain.address, data.into(), head)
            .await
        {
            Ok(_) => {
                self.metrics.attestations.with_label_values(&[what]).inc();
                Ok(true)
            }
            Err(ChainError::Revert {
                error: CapacityErrors::AlreadyAttested(_) | CapacityErrors::AlreadyReported(_),
                ..
            }) => Ok(false),
            Err(ChainError::Revert { error, .. }) => {
                tracing::error!(
                    unit = %unit,
                    epoch = e,
                    "the contract refused the {what}: {error:?}"
                );
                self.metrics
                    .attestations
                    .with_label_values(&["refused"])
                    .inc();
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// A unit's id and kind (`None`: a kind this verifier does not know).
    async fn unit(&mut self, index: UnitIndex) -> Result<(UnitId, Option<UnitKind>)> {
        if let Some(u) = self.units.get(&index) {
            return Ok(*u);
        }
        let info = self.chain.unit_info(index).await?;
        let u = (UnitId(info.id.0), UnitKind::from_index(info.kind));
        self.units.insert(index, u);
        Ok(u)
    }

    /// Every unit's accepted nonces in epoch `e`, in log order, with the digest chain.
    async fn accepted(
        &self,
        e: u64,
        from: u64,
        head: u64,
    ) -> Result<BTreeMap<UnitIndex, UnitNonces>> {
        let logs = crate::logs::proofs_accepted(
            &self.chain.provider,
            &self.chain.endpoint,
            self.chain.address,
            e,
            from,
            head,
            self.log_range,
        )
        .await?;
        let mut out: BTreeMap<UnitIndex, UnitNonces> = BTreeMap::new();
        for log in logs {
            let unit = out.entry(log.unit).or_default();
            unit.digest = crate::groups::chain_digest(&unit.digest, &log.group);
            unit.nonces.extend(log.nonces());
            unit.groups.push(log.group);
        }
        Ok(out)
    }
}
