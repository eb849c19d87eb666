//! The one interface of every unit kind, and the round loop they all share.
//!
//! ```text
//!  Control (epoch, pause, stop) ──▶ unit thread ──▶ re-key (kind-specific) ──▶ rounds:
//!      take nonce chunk ─▶ Searcher::search(…, stop = generation changed ∨ deadline)
//!      ─▶ count hashes ─▶ NonceOrder::end_round ─▶ ProofStore::append (fsync), in nonce order
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capminer_kernels::Searcher;
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Hash, Proof, UnitId, UnitKind};
use prometheus::{IntCounter, IntGauge};

use crate::control::Control;
use crate::metrics::MinerMetrics;
use crate::order::NonceOrder;
use crate::{MinerError, Result};

/// What a unit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    /// Short label for logs and metrics: `cpu0`, `gpu1`.
    pub label: String,
    /// Network-wide id.
    pub id: UnitId,
    /// Kind.
    pub kind: UnitKind,
    /// Where it runs, for people: `core 0 (cpus 0,8)`.
    pub place: String,
    /// Hashing threads (or GPU queues).
    pub threads: usize,
}

/// What a unit is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// No epoch yet, or paused.
    Idle,
    /// Building its dataset: `done` of `total` items.
    Building {
        /// Items built.
        done: u64,
        /// Items in all.
        total: u64,
    },
    /// Hashing the epoch with this number.
    Hashing(u64),
    /// Stopped after an error.
    Failed,
}

/// The last completed re-keying of a unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildReport {
    /// Epoch number keyed for.
    pub epoch: u64,
    /// Seconds to build the cache and dataset.
    pub seconds: f64,
    /// Share of the dataset (or light cache) on 2 MiB pages, 0 to 1.
    pub huge_pages: f64,
    /// Of `seconds`, those spent keying the cache (Argon2 fill and program generation).
    pub key_seconds: f64,
    /// Which code built the dataset items (`None` without a dataset: light mode, GPU units).
    pub dataset_init: Option<capminer_kernels::randomx::DatasetInit>,
}

/// One unit of committed hardware. Units start when created, follow the shared
/// [`Control`], and are joined after `Control::stop`.
pub trait Unit: Send + Sync + std::fmt::Debug {
    /// What it is.
    fn info(&self) -> &UnitInfo;
    /// Hashes computed since it started (monotonic, across epochs).
    fn hashes(&self) -> u64;
    /// What it is doing now.
    fn state(&self) -> UnitState;
    /// Its last completed re-keying.
    fn last_build(&self) -> Option<BuildReport>;
    /// Kernel thread ids of its hashing threads (to check pinning through the OS).
    fn thread_ids(&self) -> Vec<i32>;
    /// Waits for its threads to exit (after `Control::stop`); the first error, if any.
    fn join(self: Box<Self>) -> Result<()>;
}

/// Everything a unit's threads share, whatever the kind.
#[derive(Debug)]
pub struct UnitContext {
    /// What the unit is.
    pub info: UnitInfo,
    /// The shared control.
    pub control: Arc<Control>,
    /// Where proofs go.
    pub store: Arc<ProofStore>,
    /// Round length.
    pub round: Duration,
    hashes: AtomicU64,
    failed: AtomicBool,
    /// Proofs of epochs this unit has left that the store refused; retried before new ones.
    orphans: Mutex<Vec<Proof>>,
    hashes_metric: IntCounter,
    found_metric: IntCounter,
    stored_metric: IntCounter,
    waiting_metric: IntGauge,
    store_errors: IntCounter,
    stale_metric: IntCounter,
}

impl UnitContext {
    /// The context of one unit; binds its metric series.
    pub fn new(
        info: UnitInfo,
        control: Arc<Control>,
        store: Arc<ProofStore>,
        round: Duration,
        metrics: &MinerMetrics,
    ) -> Self {
        let labels = [info.label.as_str(), info.kind.as_str()];
        metrics.unit_up.with_label_values(&labels).set(1);
        Self {
            hashes: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            orphans: Mutex::new(Vec::new()),
            hashes_metric: metrics.hashes.with_label_values(&labels),
            found_metric: metrics.proofs_found.with_label_values(&labels),
            stored_metric: metrics.proofs_stored.with_label_values(&labels),
            waiting_metric: metrics.proofs_waiting.with_label_values(&labels),
            store_errors: metrics.store_errors.with_label_values(&labels),
            stale_metric: metrics.proofs_stale.with_label_values(&labels),
            info,
            control,
            store,
            round,
        }
    }

    /// Publishes `capminer_unit_info` for this unit, with `flags` describing how it hashes.
    pub fn publish_info(&self, metrics: &MinerMetrics, flags: &str) {
        metrics
            .unit_info
            .with_label_values(&[
                self.info.label.as_str(),
                self.info.kind.as_str(),
                &self.info.id.to_string(),
                &self.info.place,
                &self.info.threads.to_string(),
                flags,
            ])
            .set(1);
    }

    /// Records that a thread of the unit stopped after an error (`capminer_unit_up` 0).
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// True once a thread of the unit stopped after an error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Hashes computed so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// The first nonce to hash in `epoch`: one past the last proof already stored, so a restart
    /// within an epoch keeps the unit's nonces strictly increasing.
    pub fn start_nonce(&self, epoch: u64) -> u64 {
        self.store
            .max_nonce(epoch, &self.info.id)
            .map_or(0, |n| n + 1)
    }

    /// Hashes rounds of `epoch` on thread `thread` until the control's generation moves from
    /// `generation`, releasing proofs through `order` into the store.
    pub fn run_rounds(
        &self,
        thread: usize,
        searcher: &mut dyn Searcher,
        order: &NonceOrder,
        epoch: &Epoch,
        generation: u64,
    ) -> Result<()> {
        let target = epoch.target(self.info.kind).0;
        let mut chunk = 1u64;
        order.join(thread);
        let result = loop {
            if self.control.generation() != generation {
                break Ok(());
            }
            let deadline = Instant::now() + self.round;
            let start = order.take(chunk);
            let mut stop = || self.control.generation() != generation || Instant::now() >= deadline;
            let searched = match searcher.search(start, chunk, &target, &mut stop) {
                Ok(s) => s,
                Err(source) => {
                    break Err(MinerError::Kernel {
                        unit: self.info.label.clone(),
                        source,
                    });
                }
            };
            self.hashes.fetch_add(searched.hashed, Ordering::Relaxed);
            self.hashes_metric.inc_by(searched.hashed);
            let found: Vec<Proof> = searched
                .hits
                .iter()
                .map(|hit| Proof {
                    unit: self.info.id,
                    kind: self.info.kind,
                    epoch: epoch.number,
                    nonce: hit.nonce,
                    hash: Hash(hit.hash),
                })
                .collect();
            self.found_metric.inc_by(found.len() as u64);
            for p in &found {
                tracing::info!(unit = %self.info.label, epoch = epoch.number, nonce = p.nonce, "proof found");
            }
            self.release(thread, order, epoch, found, false);
            // Ask for twice what fitted in this round: the deadline, not the chunk, ends rounds.
            chunk = searched.hashed.saturating_mul(2).clamp(1, 1 << 32);
        };
        self.release(thread, order, epoch, Vec::new(), true);
        result
    }

    /// Retires the order of an epoch this unit leaves for good: proofs it still holds (only
    /// when the store kept failing) are kept and retried before any newer proof.
    pub fn retire(&self, order: &NonceOrder) {
        let left = order.drain();
        if !left.is_empty() {
            self.orphans
                .lock()
                .expect("orphans lock poisoned")
                .extend(left);
        }
    }

    fn release(
        &self,
        thread: usize,
        order: &NonceOrder,
        epoch: &Epoch,
        found: Vec<Proof>,
        leaving: bool,
    ) {
        {
            let mut orphans = self.orphans.lock().expect("orphans lock poisoned");
            if !orphans.is_empty() {
                match self.store.append(&orphans) {
                    Ok(n) => {
                        self.stored_metric.inc_by(n as u64);
                        orphans.clear();
                    }
                    Err(e) if e.is_refusal() => {
                        tracing::warn!(unit = %self.info.label, proofs = orphans.len(), "proofs of an earlier epoch dropped: {e}");
                        self.stale_metric.inc_by(orphans.len() as u64);
                        orphans.clear();
                    }
                    Err(e) => {
                        self.store_errors.inc();
                        tracing::error!(unit = %self.info.label, "cannot store proofs of an earlier epoch, keeping them: {e}");
                    }
                }
            }
        }
        let released = order.end_round(thread, found, leaving, |proofs| {
            match self.store.append_mined(epoch, proofs) {
                Err(e) if e.is_refusal() => {
                    // Mined under a seed the chain no longer has, or for an epoch settled and
                    // archived: the contract would refuse them. Dropped, never retried.
                    tracing::warn!(unit = %self.info.label, proofs = proofs.len(), "proofs dropped: {e}");
                    self.stale_metric.inc_by(proofs.len() as u64);
                    Ok(())
                }
                other => other.map(drop),
            }
        });
        match released {
            Ok(n) => self.stored_metric.inc_by(n as u64),
            Err(e) => {
                self.store_errors.inc();
                tracing::error!(unit = %self.info.label, "cannot store proofs, keeping them to retry: {e}");
            }
        }
        let orphans = self.orphans.lock().expect("orphans lock poisoned").len();
        self.waiting_metric.set((order.pending() + orphans) as i64);
    }
}
