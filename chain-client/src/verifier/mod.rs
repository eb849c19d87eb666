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
//!      ─▶ once every transaction of e is mined: progress.json next_epoch = e + 1
//! ```
//!
//! Each verifier's sample is its own: keccak256 of its deterministic (RFC 6979) signature, so a
//! provider or block producer cannot predict it, and anyone can audit it from the `Attested`
//! event. With a fraction `f` of a unit-epoch's `n` nonces fake
//! and `k = ceil(rate × n)` of them checked, a verifier misses every fake one with probability
//! `C(n − fn, k) / C(n, k) ≤ (1 − f)^k` (docs/THREATS.md has the table).
//!
//! Restarting resumes at `next_epoch`; `hasAttested` keeps a unit-epoch from being attested
//! twice, and a report already made reverts with `AlreadyReported`, which counts as done.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use capminer_config::{Config, Shard};
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use capminer_protocol::{Checker, Claim, Verdict};
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

/// One unit-epoch to settle after recomputation: unit, kind, digest, sample signature, and its
/// sampled claims.
type Planned = (u32, UnitKind, B256, [u8; 65], Vec<Claim>);

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
    /// Recomputation itself failed.
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
    units: BTreeMap<u32, (UnitId, Option<UnitKind>)>,
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
        let txm = TxManager::new(
            chain.provider.clone(),
            EthereumWallet::from(signer.clone()),
            me,
            chain.chain_id,
            chain.endpoint.clone(),
            config.chain.gas.clone(),
            ChainMetrics::register(&Registry::new())
                .map_err(|e| ChainError::Setup(e.to_string()))?,
        );
        tracing::info!(address = %chain.address, verifier = %me, %party, %shard, next_epoch, sample_rate = config.verifier.sample_rate, "verifier connected to {}", chain.endpoint);
        Ok(Self {
            chain,
            txm,
            signer,
            checker,
            metrics: VerifierMetrics::register(registry, me, shard)
                .map_err(|e| ChainError::Setup(e.to_string()))?,
            state_dir: config.verifier.state_dir.clone(),
            sample_rate: config.verifier.sample_rate,
            log_range: config.chain.log_range.max(1),
            start_block: config.chain.start_block,
            gpu_challenge,
            poll: Duration::from_millis(config.chain.poll_ms),
            next_epoch,
            sent_for: None,
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

    /// Records epoch `e` as done, durably.
    fn done(&mut self, e: u64) -> Result<()> {
        self.next_epoch = e + 1;
        save_progress(
            &self.state_dir,
            self.shard,
            Progress {
                contract: self.chain.address,
                next_epoch: self.next_epoch,
            },
        )
    }

    /// One pass: settle our transactions; when the epoch in hand is done, record it; verify
    /// the next closed epoch. Returns the epoch it sent transactions for, if any.
    pub async fn tick(&mut self) -> Result<Option<u64>> {
        let (head, now) =
            crate::txmanager::latest_head(&self.chain.provider, &self.chain.endpoint).await?;
        let (settled, _) = self.txm.poll(head).await?;
        for s in settled {
            match s {
                crate::txmanager::Settled::Dropped(flight) => {
                    tracing::warn!(kind = ?flight.kind, "verifier transaction dropped: verifying the epoch again");
                    self.sent_for = None;
                }
                // Estimated fine, mined reverted: the chain moved under it (a reorg changed the
                // digest). The epoch is checked again against what the chain holds now.
                crate::txmanager::Settled::Mined(flight, receipt) if !receipt.status() => {
                    tracing::warn!(kind = ?flight.kind, "verifier transaction reverted when mined: verifying the epoch again");
                    self.sent_for = None;
                }
                crate::txmanager::Settled::Mined(..) => {}
            }
        }
        if let Some(e) = self.sent_for {
            if !self.txm.inflight().is_empty() {
                return Ok(None);
            }
            self.done(e)?;
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
                    "epoch settled before this verifier reached it: nothing to attest any more"
                );
            } else if self.verify_epoch(e, head).await? {
                self.sent_for = Some(e);
                return Ok(Some(e));
            }
            self.done(e)?;
        }
    }

    /// Verifies epoch `e`; returns true if it sent any transaction. One unit-epoch that cannot
    /// be checked or whose transaction the contract refuses never holds up the others.
    async fn verify_epoch(&mut self, e: u64, head: Head) -> Result<bool> {
        let started = Instant::now();
        let info = self
            .chain
            .contract()
            .epochInfo(e)
            .call()
            .await
            .map_err(self.chain.call_error("epochInfo"))?;
        if info.seed == B256::ZERO {
            return Ok(false); // nobody started it: no proofs
        }
        let epoch = Epoch {
            number: e,
            seed: Seed(info.seed.0),
            targets: [Target(info.targets[0].0), Target(info.targets[1].0)],
        };
        let from = info.seedBlock.max(self.start_block);
        let shard = self.shard;
        let by_unit: BTreeMap<u32, UnitNonces> = self
            .accepted(e, from, head.number)
            .await?
            .into_iter()
            .filter(|(unit, _)| shard.owns(*unit, e))
            .collect();
        if by_unit.is_empty() {
            return Ok(false);
        }
        let party = self.party;
        let mut sent = false;
        let mut plan: Vec<Planned> = Vec::new();
        for (index, unit) in &by_unit {
            let onchain = self
                .chain
                .contract()
                .unitEpoch(*index, e)
                .call()
                .await
                .map_err(self.chain.call_error("unitEpoch"))?;
            if onchain.failed
                || self
                    .chain
                    .contract()
                    .hasAttested(*index, e, party)
                    .call()
                    .await
                    .map_err(self.chain.call_error("hasAttested"))?
            {
                continue;
            }
            if onchain.digest != unit.digest {
                tracing::error!(
                    unit = index,
                    epoch = e,
                    "the logs' digest differs from the contract's: logs missing; abstaining"
                );
                sent |= self
                    .abstain(*index, e, Abstain::DigestMismatch, head)
                    .await?;
                continue;
            }
            let (id, kind) = self.unit(*index).await?;
            let Some(kind) = kind else {
                tracing::error!(
                    unit = index,
                    epoch = e,
                    "unit of a kind this verifier does not know: abstaining"
                );
                sent |= self
                    .abstain(*index, e, Abstain::UnsupportedKind, head)
                    .await?;
                continue;
            };
            if kind == UnitKind::Gpu && info.challenges[1].0 != self.gpu_challenge {
                tracing::error!(
                    unit = index,
                    epoch = e,
                    "the epoch's GPU challenge ({}) is not this verifier's ({}): abstaining",
                    capminer_protocol::GpuChallenge::describe(&info.challenges[1].0),
                    capminer_protocol::GpuChallenge::describe(&self.gpu_challenge)
                );
                sent |= self
                    .abstain(*index, e, Abstain::ChallengeMismatch, head)
                    .await?;
                continue;
            }
            let hash = sample_hash(
                self.chain.chain_id,
                self.chain.address,
                *index,
                e,
                unit.digest,
            );
            let signature = self
                .signer
                .sign_hash_sync(&hash)
                .map_err(|err| ChainError::Setup(format!("signing the sample hash: {err}")))?
                .as_bytes();
            let chosen = sample(
                &unit.nonces,
                self.sample_rate,
                &sample_seed(&signature),
                *index,
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
            plan.push((*index, kind, unit.digest, signature, claims));
        }
        if plan.is_empty() {
            return Ok(sent);
        }
        // Recomputation off the runtime, the unit-epochs side by side on the blocking pool's
        // rayon threads (each builds its own key's cache, single-threaded Argon2, so one after
        // another would leave all cores but one idle while caches are built); each is checked
        // on its own, so a failure is that unit's.
        let checker = self.checker.clone();
        let (plan, results) = tokio::task::spawn_blocking(move || {
            use rayon::prelude::*;
            let results: Vec<_> = plan.par_iter().map(|p| checker.check(&p.4)).collect();
            (plan, results)
        })
        .await
        .map_err(|err| ChainError::Setup(format!("verification task of epoch {e}: {err}")))?;
        for ((index, kind, digest, signature, claims), result) in plan.into_iter().zip(results) {
            let checks = match result {
                Ok(checks) => checks,
                Err(err) => {
                    tracing::error!(
                        unit = index,
                        epoch = e,
                        "recomputation failed: {err}; abstaining"
                    );
                    sent |= self.abstain(index, e, Abstain::CheckFailed, head).await?;
                    continue;
                }
            };
            self.metrics
                .verified
                .with_label_values(&[kind.as_str()])
                .inc_by(claims.len() as u64);
            let invalid: Vec<u64> = claims
                .iter()
                .zip(&checks)
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
                        unit: index,
                        epoch: e,
                        digest,
                        checked: claims.len() as u32,
                        sampleSignature: Bytes::copy_from_slice(&signature),
                    }
                    .abi_encode(),
                ),
                Some(&nonce) => {
                    tracing::warn!(
                        unit = index,
                        epoch = e,
                        nonce,
                        invalid = invalid.len(),
                        "invalid proof found: reporting it"
                    );
                    (
                        "report",
                        Capacity::reportInvalidCall {
                            unit: index,
                            epoch: e,
                            nonce,
                            reason: REASON_ABOVE_TARGET,
                            groups: by_unit[&index].groups.clone(),
                        }
                        .abi_encode(),
                    )
                }
            };
            if self.send(index, e, what, data, head).await? {
                sent = true;
                tracing::info!(
                    unit = index,
                    epoch = e,
                    proofs = claims.len(),
                    "{what} sent"
                );
            }
        }
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(sent)
    }

    /// States on chain that this verifier could not check the unit-epoch.
    async fn abstain(&mut self, unit: u32, e: u64, why: Abstain, head: Head) -> Result<bool> {
        let data = Capacity::abstainCall {
            unit,
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
        unit: u32,
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
                    unit,
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
    async fn unit(&mut self, index: u32) -> Result<(UnitId, Option<UnitKind>)> {
        if let Some(u) = self.units.get(&index) {
            return Ok(*u);
        }
        let info = self.chain.unit_info(index).await?;
        let u = (UnitId(info.id.0), UnitKind::from_index(info.kind));
        self.units.insert(index, u);
        Ok(u)
    }

    /// Every unit's accepted nonces in epoch `e`, in log order, with the digest chain.
    async fn accepted(&self, e: u64, from: u64, head: u64) -> Result<BTreeMap<u32, UnitNonces>> {
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
        let mut out: BTreeMap<u32, UnitNonces> = BTreeMap::new();
        for log in logs {
            let unit = out.entry(log.unit).or_default();
            unit.digest = keccak256([unit.digest.as_slice(), &log.nonces].concat());
            unit.nonces.extend(log.nonces());
            unit.groups.push(log.nonces);
        }
        Ok(out)
    }
}
