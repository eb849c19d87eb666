//! The verifier: follows the proofs accepted on chain, recomputes every one (or a sample drawn
//! after submission from a block hash), and attests per (unit, epoch) over the digest of the
//! accepted nonces, or reports an invalid one. Rewards go only to attested unit-epochs.
//!
//! ```text
//!  window of epoch e closed ─▶ ProofsAccepted logs of e ─▶ per unit: nonces, digest chain
//!      ─▶ sample (keccak(hash of the first block after the close ‖ unit ‖ e)) ─▶ Checker
//!      ─▶ all valid: attest(unit, e, digest) │ any invalid: reportInvalid(smallest invalid)
//!      ─▶ once every transaction of e is mined: progress.json next_epoch = e + 1
//! ```
//!
//! Restarting resumes at `next_epoch`; `hasAttested` keeps a unit-epoch from being attested
//! twice, and a report already made reverts with `AlreadyReported`, which counts as done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use capminer_config::Config;
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use crate::bindings::Capacity;
use crate::bindings::Capacity::CapacityErrors;
use crate::error::redact_url;
use crate::metrics::ChainMetrics;
use crate::txmanager::{Head, TxKind, TxManager};
use crate::{ChainError, Result};

/// One proof to recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Unit id.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// The epoch's seed and targets.
    pub epoch: Epoch,
    /// Nonce.
    pub nonce: u64,
}

/// What recomputing one proof found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The hash meets the target.
    Valid,
    /// The hash is above the target (a nonce never hashed, another unit's proof, a wrong
    /// GPU result: all end up here).
    AboveTarget,
    /// This verifier cannot check this kind of proof; it neither attests nor reports.
    Unsupported,
}

/// Recomputes proofs. The binary gives the miner's verifier (one path for `capminer verify`
/// and this service).
pub trait Checker: Send + Sync {
    /// One result per claim, in order.
    fn check(&self, claims: &[Claim]) -> std::result::Result<Vec<Check>, String>;
}

/// Reason code of an invalid-proof report: the hash is above the target.
pub const REASON_ABOVE_TARGET: u8 = 1;

/// Metrics of a verifier.
#[derive(Debug, Clone)]
pub struct VerifierMetrics {
    verified: IntCounterVec,
    invalid: IntCounterVec,
    seconds: Histogram,
    backlog: IntGauge,
    attestations: IntCounterVec,
}

impl VerifierMetrics {
    /// Creates and registers the families; every series carries the verifier's address, so
    /// several verifiers can share one registry.
    pub fn register(registry: &Registry, verifier: Address) -> prometheus::Result<Self> {
        let v = verifier.to_string();
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("verifier", v.clone());
        let m = Self {
            verified: IntCounterVec::new(
                opts(
                    "capminer_verifier_proofs_verified_total",
                    "Proofs recomputed",
                ),
                &["kind"],
            )?,
            invalid: IntCounterVec::new(
                opts(
                    "capminer_verifier_invalid_found_total",
                    "Recomputed proofs found invalid",
                ),
                &["kind"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "capminer_verifier_epoch_seconds",
                    "Time to verify every unit of one epoch",
                )
                .const_label("verifier", v.clone())
                .buckets(vec![
                    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            )?,
            backlog: IntGauge::with_opts(opts(
                "capminer_verifier_backlog_epochs",
                "Closed epochs not yet verified",
            ))?,
            attestations: IntCounterVec::new(
                opts(
                    "capminer_verifier_transactions_total",
                    "Attestations and invalid-proof reports sent",
                ),
                &["what"],
            )?,
        };
        registry.register(Box::new(m.verified.clone()))?;
        registry.register(Box::new(m.invalid.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.backlog.clone()))?;
        registry.register(Box::new(m.attestations.clone()))?;
        Ok(m)
    }
}

/// The verifier's progress on disk: the next epoch to verify, per contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Progress {
    contract: Address,
    next_epoch: u64,
}

fn progress_path(dir: &Path) -> PathBuf {
    dir.join("progress.json")
}

fn load_progress(dir: &Path, contract: Address) -> Result<u64> {
    let path = progress_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let p: Progress = serde_json::from_str(&text).map_err(|e| {
                ChainError::Setup(format!("verifier progress file {}: {e}", path.display()))
            })?;
            Ok(if p.contract == contract {
                p.next_epoch
            } else {
                0
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ChainError::Setup(format!(
            "verifier progress file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the progress atomically and durably (temporary file, fsync, rename, fsync dir).
fn save_progress(dir: &Path, progress: Progress) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| {
        ChainError::Setup(format!("verifier progress in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join("progress.json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(
        serde_json::to_string(&progress)
            .expect("progress serializes")
            .as_bytes(),
    )
    .and_then(|()| f.sync_all())
    .map_err(io)?;
    std::fs::rename(&tmp, progress_path(dir)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The nonces of one unit in one epoch, as the logs give them.
#[derive(Debug, Default)]
struct UnitNonces {
    nonces: Vec<u64>,
    digest: B256,
}

/// A verifier of one contract.
pub struct VerifierService {
    provider: DynProvider,
    address: Address,
    endpoint: String,
    txm: TxManager,
    checker: Box<dyn Checker>,
    metrics: VerifierMetrics,
    state_dir: PathBuf,
    sample_rate: f64,
    start_block: u64,
    poll: Duration,
    genesis: u64,
    duration: u64,
    grace: u64,
    next_epoch: u64,
    sent_for: Option<u64>,
    units: BTreeMap<u32, (UnitId, UnitKind)>,
}

impl std::fmt::Debug for VerifierService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierService")
            .field("address", &self.address)
            .field("verifier", &self.txm.address())
            .field("next_epoch", &self.next_epoch)
            .finish_non_exhaustive()
    }
}

impl VerifierService {
    /// Connects with `config.chain` (node, contract, gas) and `config.verifier` (state, sample).
    pub async fn connect(
        config: &Config,
        signer: PrivateKeySigner,
        checker: Box<dyn Checker>,
        registry: &Registry,
    ) -> Result<Self> {
        let endpoint = redact_url(&config.chain.rpc_url);
        let url =
            config.chain.rpc_url.parse().map_err(|_| {
                ChainError::Setup(format!("chain.rpc_url {endpoint}: not a valid URL"))
            })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        let address = Address::from(
            config
                .chain
                .contract
                .ok_or_else(|| ChainError::Setup("chain.contract is not set".into()))?,
        );
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::from_rpc(&endpoint, "eth_chainId", e))?;
        let contract = Capacity::new(address, provider.clone());
        let call = |name: &'static str| {
            let endpoint = endpoint.clone();
            move |e| crate::service::contract_error(&endpoint, name, e)
        };
        let me = signer.address();
        if !contract
            .isVerifier(me)
            .call()
            .await
            .map_err(call("isVerifier"))?
        {
            tracing::warn!(%me, "this address is not in the contract's verifier set: its attestations will be refused");
        }
        let genesis: U256 = contract
            .genesisTime()
            .call()
            .await
            .map_err(call("genesisTime"))?;
        let duration: U256 = contract
            .epochDuration()
            .call()
            .await
            .map_err(call("epochDuration"))?;
        let grace: U256 = contract
            .graceWindow()
            .call()
            .await
            .map_err(call("graceWindow"))?;
        let next_epoch = load_progress(&config.verifier.state_dir, address)?;
        let txm = TxManager::new(
            provider.clone(),
            EthereumWallet::from(signer),
            me,
            chain_id,
            endpoint.clone(),
            config.chain.gas.clone(),
            ChainMetrics::register(&Registry::new())
                .map_err(|e| ChainError::Setup(e.to_string()))?,
        );
        tracing::info!(%address, verifier = %me, next_epoch, sample_rate = config.verifier.sample_rate, "verifier connected to {endpoint}");
        Ok(Self {
            provider,
            address,
            endpoint,
            txm,
            checker,
            metrics: VerifierMetrics::register(registry, me)
                .map_err(|e| ChainError::Setup(e.to_string()))?,
            state_dir: config.verifier.state_dir.clone(),
            sample_rate: config.verifier.sample_rate,
            start_block: config.chain.start_block,
            poll: Duration::from_millis(config.chain.poll_ms),
            genesis: genesis.to(),
            duration: duration.to(),
            grace: grace.to(),
            next_epoch,
            sent_for: None,
            units: BTreeMap::new(),
        })
    }

    /// The next epoch it will verify.
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch
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

    fn contract(&self) -> Capacity::CapacityInstance<DynProvider> {
        Capacity::new(self.address, self.provider.clone())
    }

    fn rpc(
        &self,
        call: &'static str,
    ) -> impl Fn(alloy::transports::RpcError<alloy::transports::TransportErrorKind>) -> ChainError + '_
    {
        move |e| ChainError::from_rpc(&self.endpoint, call, e)
    }

    /// Records epoch `e` as done, durably.
    fn done(&mut self, e: u64) -> Result<()> {
        self.next_epoch = e + 1;
        save_progress(
            &self.state_dir,
            Progress {
                contract: self.address,
                next_epoch: self.next_epoch,
            },
        )
    }

    fn close_time(&self, e: u64) -> u64 {
        self.genesis + (e + 1) * self.duration + self.grace
    }

    /// One pass: settle our transactions; when the epoch in hand is done, record it; verify
    /// the next closed epoch. Returns the epoch it sent transactions for, if any.
    pub async fn tick(&mut self) -> Result<Option<u64>> {
        let (head, now) = crate::txmanager::latest_head(&self.provider, &self.endpoint).await?;
        let (settled, _) = self.txm.poll(head).await?;
        for s in settled {
            if let crate::txmanager::Settled::Dropped(flight) = s {
                tracing::warn!(kind = ?flight.kind, "verifier transaction dropped: verifying the epoch again");
                self.sent_for = None;
            }
        }
        if let Some(e) = self.sent_for {
            if !self.txm.inflight().is_empty() {
                return Ok(None);
            }
            self.done(e)?;
            self.sent_for = None;
        }
        let closed = now.saturating_sub(self.genesis + self.grace) / self.duration; // epochs < this are closed
        self.metrics
            .backlog
            .set(closed.saturating_sub(self.next_epoch) as i64);
        // Epochs with nothing to send (no proofs, or all attested already) are done at once.
        loop {
            let e = self.next_epoch;
            if now < self.close_time(e) {
                return Ok(None);
            }
            if self.verify_epoch(e, head).await? {
                self.sent_for = Some(e);
                return Ok(Some(e));
            }
            self.done(e)?;
        }
    }

    /// Verifies epoch `e`; returns true if it sent any transaction.
    async fn verify_epoch(&mut self, e: u64, head: Head) -> Result<bool> {
        let started = Instant::now();
        let info = self
            .contract()
            .epochInfo(e)
            .call()
            .await
            .map_err(|err| crate::service::contract_error(&self.endpoint, "epochInfo", err))?;
        if info.seed == B256::ZERO {
            return Ok(false); // nobody started it: no proofs
        }
        let epoch = Epoch {
            number: e,
            seed: Seed(info.seed.0),
            targets: [Target(info.targets[0].0), Target(info.targets[1].0)],
        };
        let by_unit = self.accepted(e).await?;
        if by_unit.is_empty() {
            return Ok(false);
        }
        let sample_seed = self.sample_seed(e, head.number).await?;
        let me = self.txm.address();
        let mut plan: Vec<(u32, B256, Vec<usize>)> = Vec::new();
        let mut claims = Vec::new();
        for (index, unit) in &by_unit {
            let onchain = self
                .contract()
                .unitEpoch(*index, e)
                .call()
                .await
                .map_err(|err| crate::service::contract_error(&self.endpoint, "unitEpoch", err))?;
            if onchain.digest != unit.digest {
                tracing::error!(
                    unit = index,
                    epoch = e,
                    "the logs' digest differs from the contract's: logs missing; not attesting"
                );
                continue;
            }
            if onchain.failed
                || self
                    .contract()
                    .hasAttested(*index, e, me)
                    .call()
                    .await
                    .map_err(|err| {
                        crate::service::contract_error(&self.endpoint, "hasAttested", err)
                    })?
            {
                continue;
            }
            let (id, kind) = self.unit(*index).await?;
            let sample = sample(&unit.nonces, self.sample_rate, &sample_seed, *index, e);
            let mut at = Vec::new();
            for &i in &sample {
                at.push(claims.len());
                claims.push(Claim {
                    unit: id,
                    kind,
                    epoch,
                    nonce: unit.nonces[i],
                });
            }
            plan.push((*index, unit.digest, at));
        }
        if plan.is_empty() {
            return Ok(false);
        }
        let checker = &self.checker;
        let checks = tokio::task::block_in_place(|| checker.check(&claims))
            .map_err(|e| ChainError::Setup(format!("verifying epoch {e}: {e}")))?;
        let mut sent = false;
        for (index, digest, at) in plan {
            let kind = claims.get(at[0]).map_or("cpu", |c| c.kind.as_str());
            self.metrics
                .verified
                .with_label_values(&[kind])
                .inc_by(at.len() as u64);
            if at.iter().any(|&i| checks[i] == Check::Unsupported) {
                tracing::warn!(
                    unit = index,
                    epoch = e,
                    "cannot verify this unit's proofs: neither attesting nor reporting"
                );
                continue;
            }
            let invalid: Vec<u64> = at
                .iter()
                .filter(|&&i| checks[i] == Check::AboveTarget)
                .map(|&i| claims[i].nonce)
                .collect();
            self.metrics
                .invalid
                .with_label_values(&[kind])
                .inc_by(invalid.len() as u64);
            let data = match invalid.iter().min() {
                None => Capacity::attestCall {
                    unit: index,
                    epoch: e,
                    digest,
                }
                .abi_encode(),
                Some(&nonce) => {
                    tracing::warn!(
                        unit = index,
                        epoch = e,
                        nonce,
                        invalid = invalid.len(),
                        "invalid proof found: reporting it"
                    );
                    Capacity::reportInvalidCall {
                        unit: index,
                        epoch: e,
                        nonce,
                        reason: REASON_ABOVE_TARGET,
                    }
                    .abi_encode()
                }
            };
            let what = if invalid.is_empty() {
                "attest"
            } else {
                "report"
            };
            match self
                .txm
                .send(TxKind::Attest(e), self.address, data.into(), head)
                .await
            {
                Ok(_) => {
                    sent = true;
                    self.metrics.attestations.with_label_values(&[what]).inc();
                    tracing::info!(unit = index, epoch = e, proofs = at.len(), "{what} sent");
                }
                Err(ChainError::Revert {
                    error: CapacityErrors::AlreadyAttested(_) | CapacityErrors::AlreadyReported(_),
                    ..
                }) => {}
                Err(other) => return Err(other),
            }
        }
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(sent)
    }

    async fn unit(&mut self, index: u32) -> Result<(UnitId, UnitKind)> {
        if let Some(u) = self.units.get(&index) {
            return Ok(*u);
        }
        let info = self
            .contract()
            .unitInfo(index)
            .call()
            .await
            .map_err(|err| crate::service::contract_error(&self.endpoint, "unitInfo", err))?;
        let kind = UnitKind::from_index(info.kind).unwrap_or(UnitKind::Cpu);
        let u = (UnitId(info.id.0), kind);
        self.units.insert(index, u);
        Ok(u)
    }

    /// Every unit's accepted nonces in epoch `e`, in log order, with the digest chain.
    async fn accepted(&self, e: u64) -> Result<BTreeMap<u32, UnitNonces>> {
        let filter = Filter::new()
            .address(self.address)
            .event_signature(Capacity::ProofsAccepted::SIGNATURE_HASH)
            .topic1(U256::from(e))
            .from_block(self.start_block);
        let mut logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(self.rpc("eth_getLogs"))?;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let mut out: BTreeMap<u32, UnitNonces> = BTreeMap::new();
        for log in logs.iter().filter(|l| !l.removed) {
            let Ok(decoded) = log.log_decode::<Capacity::ProofsAccepted>() else {
                continue;
            };
            let data = decoded.inner.data;
            let unit = out.entry(data.unit).or_default();
            unit.digest = keccak256([unit.digest.as_slice(), &data.nonces].concat());
            unit.nonces.extend(
                data.nonces
                    .chunks_exact(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        Ok(out)
    }

    /// The hash of the first block at or after epoch `e`'s window closed: fixed after every
    /// submission, unknown before. Found by binary search over block timestamps.
    async fn sample_seed(&self, e: u64, head: u64) -> Result<B256> {
        let close = self.close_time(e);
        let (mut lo, mut hi) = (self.start_block, head);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let block = self
                .provider
                .get_block_by_number(BlockNumberOrTag::Number(mid))
                .await
                .map_err(self.rpc("eth_getBlockByNumber"))?;
            match block {
                Some(b) if b.header.timestamp >= close => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(lo))
            .await
            .map_err(self.rpc("eth_getBlockByNumber"))?
            .ok_or_else(|| ChainError::Rejected {
                call: "eth_getBlockByNumber",
                message: format!("no block {lo}"),
            })?;
        Ok(block.header.hash)
    }
}

/// Indices of the nonces to recompute: all of them at rate 1, else `ceil(rate × n)` distinct
/// ones drawn from `keccak256(seed ‖ unit ‖ epoch ‖ counter)`, in increasing order.
pub fn sample(nonces: &[u64], rate: f64, seed: &B256, unit: u32, epoch: u64) -> Vec<usize> {
    let n = nonces.len();
    let k = ((n as f64 * rate).ceil() as usize).clamp(1.min(n), n);
    if k == n {
        return (0..n).collect();
    }
    let mut chosen = std::collections::BTreeSet::new();
    let mut counter = 0u64;
    while chosen.len() < k {
        let h = keccak256(
            [
                seed.as_slice(),
                &unit.to_be_bytes(),
                &epoch.to_be_bytes(),
                &counter.to_be_bytes(),
            ]
            .concat(),
        );
        chosen
            .insert((u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % n as u64) as usize);
        counter += 1;
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_distinct_and_sized() {
        let nonces: Vec<u64> = (0..100).collect();
        let seed = B256::repeat_byte(7);
        assert_eq!(
            sample(&nonces, 1.0, &seed, 3, 9),
            (0..100).collect::<Vec<_>>()
        );
        let a = sample(&nonces, 0.1, &seed, 3, 9);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            a,
            sample(&nonces, 0.1, &seed, 3, 9),
            "every verifier draws the same sample"
        );
        assert_ne!(
            a,
            sample(&nonces, 0.1, &B256::repeat_byte(8), 3, 9),
            "another block hash, another sample"
        );
        assert_eq!(
            sample(&nonces[..3], 0.01, &seed, 3, 9).len(),
            1,
            "at least one"
        );
        assert!(sample(&[], 0.5, &seed, 3, 9).is_empty());
    }

    #[test]
    fn progress_survives_and_is_per_contract() {
        let dir = tempfile::tempdir().unwrap();
        let a = Address::repeat_byte(1);
        assert_eq!(load_progress(dir.path(), a).unwrap(), 0);
        save_progress(
            dir.path(),
            Progress {
                contract: a,
                next_epoch: 7,
            },
        )
        .unwrap();
        assert_eq!(load_progress(dir.path(), a).unwrap(), 7);
        assert_eq!(
            load_progress(dir.path(), Address::repeat_byte(2)).unwrap(),
            0,
            "another contract starts over"
        );
    }
}
