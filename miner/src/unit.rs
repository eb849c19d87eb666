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
use capminer_sync::LockExt;
use prometheus::{IntCounter, IntGauge};

use crate::control::Control;
use crate::fault::{FaultKind, Faults};
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
    /// A GPU unit's own figures (kernel, hits, device); `None` for other units.
    fn gpu_report(&self) -> Option<crate::gpu::GpuUnitReport> {
        None
    }
    /// Kernel thread ids of its hashing threads (to check pinning through the OS).
    fn thread_ids(&self) -> Vec<i32>;
    /// How many of its threads have exited, of how many.
    fn threads_exited(&self) -> (usize, usize);
    /// Waits for its threads to exit (after `Control::stop` or [`UnitContext::halt`]); the
    /// first error, if any ([`MinerError::Panicked`] for a panic).
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
    /// Set by the supervisor to stop this unit alone.
    halted: AtomicBool,
    /// Rounds hashed since the unit (re)started.
    rounds: AtomicU64,
    compute_errors: AtomicU64,
    faults: Arc<Faults>,
    /// Proofs of epochs this unit has left that the store refused, or that a stopped instance
    /// of it held; retried before new ones.
    orphans: Mutex<Vec<Proof>>,
    /// The nonce order the unit hashes under now, with its epoch number.
    order: Mutex<Option<(u64, Arc<NonceOrder>)>>,
    /// Where a stopped instance left off: (epoch number, first nonce it had not taken).
    resume: Mutex<Option<(u64, u64)>>,
    compute_errors_metric: IntCounter,
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
            halted: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
            compute_errors: AtomicU64::new(0),
            faults: Arc::new(Faults::none()),
            orphans: Mutex::new(Vec::new()),
            order: Mutex::new(None),
            resume: Mutex::new(None),
            compute_errors_metric: metrics.compute_errors.with_label_values(&labels),
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

    /// The faults to inject into this unit (tests only: see [`crate::fault`]).
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = faults;
        self
    }

    /// Records that the unit is down: a thread stopped after an error, or the supervisor stopped
    /// it (`capminer_unit_up` 0).
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// True while the unit is down.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Asks this unit's threads alone to exit (within one hash, or one dataset build step).
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Release);
        self.control.nudge();
    }

    /// Clears the halt and the down mark before the supervisor starts the unit again.
    pub fn prepare_restart(&self) {
        self.halted.store(false, Ordering::Release);
        self.failed.store(false, Ordering::Release);
        self.rounds.store(0, Ordering::Release);
    }

    /// True once the unit's threads should exit: the miner stops or this unit was halted.
    pub fn should_exit(&self) -> bool {
        self.control.is_stopped() || self.halted.load(Ordering::Acquire)
    }

    /// True if the unit should leave the epoch with sequence `seq`: it exits or the epoch moved.
    pub fn interrupted(&self, seq: u64) -> bool {
        self.should_exit() || self.control.epoch_seq() != seq
    }

    /// Hashes computed so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// True if an injected fault of `kind` fires now (tests only: never in production builds;
    /// see [`crate::fault`] for when).
    pub fn fault_due(&self, kind: FaultKind) -> bool {
        self.faults
            .fire(kind, &self.info.label, self.rounds.load(Ordering::Relaxed))
    }

    /// Counts a GPU result the CPU reference refuted.
    pub fn count_compute_error(&self) {
        self.compute_errors.fetch_add(1, Ordering::Relaxed);
        self.compute_errors_metric.inc();
    }

    /// GPU results refuted so far.
    pub fn compute_errors(&self) -> u64 {
        self.compute_errors.load(Ordering::Relaxed)
    }

    /// The nonce order for hashing `epoch` on `threads` threads, from its first nonce not yet
    /// used: past the last proof stored and past where a stopped instance of the unit left
    /// off, so its nonces keep increasing across restarts.
    pub fn open_order(&self, epoch: u64, threads: usize) -> Arc<NonceOrder> {
        let stored = self
            .store
            .max_nonce(epoch, &self.info.id)
            .map_or(0, |n| n + 1);
        let resumed = match *self.resume.lock_or_recover() {
            Some((e, next)) if e == epoch => next,
            _ => 0,
        };
        let order = Arc::new(NonceOrder::new(stored.max(resumed), threads));
        *self.order.lock_or_recover() = Some((epoch, order.clone()));
        order
    }

    /// After the unit's threads have exited for a restart: the proofs its order still held
    /// become orphans (stored before any newer proof), and the next instance resumes past every
    /// nonce this one took. Nothing found is lost.
    pub fn salvage(&self) {
        let Some((epoch, order)) = self.order.lock_or_recover().take() else {
            return;
        };
        *self.resume.lock_or_recover() = Some((epoch, order.next()));
        let left = order.drain();
        if !left.is_empty() {
            tracing::info!(unit = %self.info.label, proofs = left.len(), "proofs of the stopped unit kept");
            self.orphans.lock_or_recover().extend(left);
        }
        self.waiting_metric
            .set(self.orphans.lock_or_recover().len() as i64);
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
            if let Err(e) = self.injected_fault() {
                break Err(e);
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
            self.rounds.fetch_add(1, Ordering::Relaxed);
        };
        self.release(thread, order, epoch, Vec::new(), true);
        result
    }

    /// Stores the proofs this unit still holds (a removed unit, or the miner stopping); what
    /// the store refuses is logged with its count.
    pub fn flush_orphans(&self) {
        let mut orphans = self.orphans.lock_or_recover();
        if orphans.is_empty() {
            return;
        }
        match self.store.append(&orphans) {
            Ok(n) => {
                self.stored_metric.inc_by(n as u64);
                orphans.clear();
            }
            Err(e) => {
                tracing::error!(unit = %self.info.label, proofs = orphans.len(), "cannot store the proofs of a stopped unit: {e}");
            }
        }
        self.waiting_metric.set(orphans.len() as i64);
    }

    /// Takes over what unit `from` (the same unit id, before a move) left: its waiting proofs
    /// and where it left off, so nothing is lost and nonces keep increasing.
    pub fn inherit(&self, from: &UnitContext) {
        if from.info.id != self.info.id {
            from.flush_orphans();
            return;
        }
        self.orphans
            .lock_or_recover()
            .extend(from.orphans.lock_or_recover().drain(..));
        *self.resume.lock_or_recover() = *from.resume.lock_or_recover();
    }

    /// The faults injected before a round (tests only): a panic, an error, or a stall that
    /// hashes nothing until the unit is stopped.
    fn injected_fault(&self) -> Result<()> {
        let label = &self.info.label;
        if self.fault_due(FaultKind::Panic) {
            panic!("injected fault: unit {label} panics");
        }
        if self.fault_due(FaultKind::Error) {
            return Err(MinerError::UnitFailed {
                unit: label.clone(),
                reason: "injected fault".into(),
            });
        }
        if self.fault_due(FaultKind::Stall) {
            while !self.should_exit() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Retires the order of an epoch this unit leaves for good: proofs it still holds (only
    /// when the store kept failing) are kept and retried before any newer proof.
    pub fn retire(&self, order: &Arc<NonceOrder>) {
        let left = order.drain();
        if !left.is_empty() {
            self.orphans.lock_or_recover().extend(left);
        }
        let mut current = self.order.lock_or_recover();
        if current.as_ref().is_some_and(|(_, o)| Arc::ptr_eq(o, order)) {
            *current = None;
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
            let mut orphans = self.orphans.lock_or_recover();
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
        let orphans = self.orphans.lock_or_recover().len();
        self.waiting_metric.set((order.pending() + orphans) as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capminer_proofs::{Seed, Target};

    #[test]
    fn a_restart_loses_no_waiting_proof_and_resumes_past_every_nonce_taken() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
        let epoch = Epoch {
            number: 3,
            seed: Seed([3; 32]),
            targets: [Target([0xff; 32]), Target([0xff; 32])],
        };
        store.record_epoch(&epoch).unwrap();
        let metrics = MinerMetrics::register(&prometheus::Registry::new()).unwrap();
        let info = UnitInfo {
            label: "cpu9".into(),
            id: UnitId([9; 32]),
            kind: UnitKind::Cpu,
            place: "test".into(),
            threads: 2,
        };
        let ctx = UnitContext::new(
            info,
            Arc::new(Control::new()),
            store.clone(),
            Duration::from_millis(100),
            &metrics,
        );
        let proof = |nonce| Proof {
            unit: UnitId([9; 32]),
            kind: UnitKind::Cpu,
            epoch: 3,
            nonce,
            hash: Hash([0; 32]),
        };
        // Thread 1 found nonce 15 but thread 0 has not passed it: it waits in the order when
        // the unit dies.
        let order = ctx.open_order(3, 2);
        order.join(0);
        order.join(1);
        order.take(10);
        order.take(10);
        ctx.release(1, &order, &epoch, vec![proof(15)], false);
        assert_eq!(order.pending(), 1);
        assert!(store.proofs(|_| true).unwrap().is_empty());

        ctx.salvage();
        let next = ctx.open_order(3, 2);
        assert_eq!(
            next.next(),
            20,
            "resumes past every nonce the dead unit took"
        );
        next.join(0);
        next.join(1);
        let start = next.take(1);
        ctx.release(0, &next, &epoch, vec![proof(start)], true);
        ctx.release(1, &next, &epoch, Vec::new(), true);
        let stored: Vec<u64> = store
            .proofs(|_| true)
            .unwrap()
            .iter()
            .map(|p| p.proof.nonce)
            .collect();
        assert_eq!(stored, vec![15, 20], "the kept proof first, nothing lost");
    }
}
