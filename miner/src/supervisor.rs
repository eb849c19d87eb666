//! The per-unit supervisor: the watchdog that restarts one faulty unit while the others hash.
//!
//! ```text
//!            every round (cpu.round_ms), for each unit:
//!  Running ──fault──▶ Stopping ──threads exited──▶ Waiting (backoff) ──time──▶ Running (new
//!     │   a thread exited (panic, error,    │ join: classify the reason,        instance, same
//!     │   GPU device lost), a stall, too    │ count it, keep the proofs         context: hash
//!     │   many compute errors               │ its order held (salvage)          counter, proofs)
//!     └──────────── the other units never stop ─────────────────────────────────────────────┘
//! ```
//!
//! Faults: a thread that exits on its own (`panic` when it panicked, `device_lost` when its GPU
//! device is lost, `error` for any other error); `stall`: no hash for `watchdog.stall_rounds`
//! rounds while the unit should hash (an epoch, keyed, not paused); `compute_errors`: more than
//! `watchdog.max_compute_errors` GPU results refuted by the CPU in one epoch. The unit alone is
//! halted ([`UnitContext::halt`]), joined once its threads have exited, and started again from
//! its plan after `watchdog.backoff_initial_ms`, doubled at each further fault up to
//! `watchdog.backoff_max_ms`, and reset after `watchdog.backoff_reset_ms` of healthy hashing.
//! A GPU unit whose device was lost gets the adapter opened again. The unit's [`UnitContext`]
//! outlives its instances, so its hash counter stays monotonic, and proofs found but not yet
//! stored become orphans stored before any newer proof, the next instance hashing past every
//! nonce the last one took. `capminer_unit_restarts_total{unit,kind,reason}` counts restarts;
//! `capminer_unit_up` is 0 from the fault until the unit runs again. With `watchdog.enabled =
//! false` a fault is final: [`Supervisor::given_up`] names the unit and the node stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use capminer_config::WatchdogConfig;
use capminer_kernels::gpu_challenge::GpuParams;
use capminer_kernels::randomx::RandomXFlags;
use capminer_proofs::UnitKind;
use capminer_proofs::store::ProofStore;
use prometheus::IntGauge;

use crate::control::Control;
use crate::cpu::CpuUnit;
use crate::fault::Faults;
use crate::gpu::{GpuUnit, GpuUnitPlan};
use crate::hashrate::Sampler;
use crate::metrics::MinerMetrics;
use crate::plan::CpuUnitPlan;
use crate::unit::{BuildReport, Unit, UnitContext, UnitInfo, UnitState};
use crate::{MinerError, Result};

/// A unit to run: what the planner made of the configuration.
#[derive(Debug, Clone)]
pub enum UnitPlan {
    /// A CPU unit on a physical core.
    Cpu(CpuUnitPlan),
    /// A GPU unit on a device.
    Gpu(GpuUnitPlan),
}

impl UnitPlan {
    /// Its label (`cpu0`, `gpu0.1`).
    pub fn label(&self) -> &str {
        match self {
            UnitPlan::Cpu(p) => &p.label,
            UnitPlan::Gpu(p) => &p.label,
        }
    }
}

/// Why a unit was restarted (the `reason` label of `capminer_unit_restarts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A hashing thread panicked.
    Panic,
    /// A thread stopped with an error (or the unit could not start again).
    Error,
    /// The GPU device was lost.
    DeviceLost,
    /// No hash for `watchdog.stall_rounds` rounds while it should hash.
    Stall,
    /// More than `watchdog.max_compute_errors` refuted GPU results in an epoch.
    ComputeErrors,
}

impl Reason {
    /// Every reason, exported at 0 from the start.
    pub const ALL: [Reason; 5] = [
        Reason::Panic,
        Reason::Error,
        Reason::DeviceLost,
        Reason::Stall,
        Reason::ComputeErrors,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Panic => "panic",
            Reason::Error => "error",
            Reason::DeviceLost => "device_lost",
            Reason::Stall => "stall",
            Reason::ComputeErrors => "compute_errors",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an operator's change to a unit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No unit has this label.
    #[error("no such unit")]
    NoSuchUnit,
    /// The unit is down or already stopping: try again once it runs.
    #[error("the unit is not running (down after a fault, or stopping): try again once it runs")]
    Busy,
}

/// A unit as the supervisor sees it now (a copy: the unit may restart meanwhile).
#[derive(Debug, Clone)]
pub struct UnitView {
    info: UnitInfo,
    state: UnitState,
    hashes: u64,
    last_build: Option<BuildReport>,
    thread_ids: Vec<i32>,
    restarts: u64,
    down: Option<Reason>,
}

impl UnitView {
    /// What it is.
    pub fn info(&self) -> &UnitInfo {
        &self.info
    }
    /// What it is doing ([`UnitState::Failed`] while down).
    pub fn state(&self) -> UnitState {
        self.state
    }
    /// Hashes since the miner started, across restarts.
    pub fn hashes(&self) -> u64 {
        self.hashes
    }
    /// Its last completed re-keying (of the running instance).
    pub fn last_build(&self) -> Option<BuildReport> {
        self.last_build
    }
    /// Kernel thread ids of its hashing threads (of the running instance).
    pub fn thread_ids(&self) -> Vec<i32> {
        self.thread_ids.clone()
    }
    /// Times the watchdog restarted it.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
    /// Why it is down, while it is.
    pub fn down(&self) -> Option<Reason> {
        self.down
    }
}

/// What starting a unit needs besides its plan.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// RandomX flags of CPU units.
    pub flags: RandomXFlags,
    /// The GPU challenge's parameters.
    pub gpu_params: GpuParams,
    /// The shared control.
    pub control: Arc<Control>,
    /// The proof store.
    pub store: Arc<ProofStore>,
    /// Round length.
    pub round: Duration,
    /// Metric families.
    pub metrics: MinerMetrics,
    /// Faults to inject (tests only).
    pub faults: Arc<Faults>,
}

impl Launcher {
    fn context(&self, plan: &UnitPlan) -> Arc<UnitContext> {
        let info = match plan {
            UnitPlan::Cpu(p) => UnitInfo {
                label: p.label.clone(),
                id: p.id,
                kind: UnitKind::Cpu,
                place: format!(
                    "core {} (cpus {})",
                    p.core.index,
                    p.core
                        .cpus
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                threads: p.threads,
            },
            UnitPlan::Gpu(p) => UnitInfo {
                label: p.label.clone(),
                id: p.id,
                kind: UnitKind::Gpu,
                place: format!("{} ({})", p.device.info.name, p.device.info.backend),
                threads: 1,
            },
        };
        let ctx = UnitContext::new(
            info,
            self.control.clone(),
            self.store.clone(),
            self.round,
            &self.metrics,
        );
        Arc::new(ctx.with_faults(self.faults.clone()))
    }

    fn start(&self, plan: &UnitPlan, ctx: &Arc<UnitContext>) -> Result<Box<dyn Unit>> {
        let info = &ctx.info;
        Ok(match plan {
            UnitPlan::Cpu(p) => {
                tracing::info!(unit = %info.label, id = %info.id, "{}, {} threads, RandomX {}", info.place, info.threads, self.flags);
                Box::new(CpuUnit::start(
                    p.clone(),
                    self.flags,
                    ctx.clone(),
                    &self.metrics,
                )?)
            }
            UnitPlan::Gpu(p) => {
                tracing::info!(unit = %info.label, id = %info.id, "{}, {} MiB dataset", info.place, self.gpu_params.unit_bytes >> 20);
                Box::new(GpuUnit::start(
                    p.clone(),
                    self.gpu_params,
                    ctx.clone(),
                    &self.metrics,
                )?)
            }
        })
    }
}

/// Where a supervised unit is in its life.
#[derive(Debug)]
enum Phase {
    Running(Box<dyn Unit>),
    /// Halted; waiting for its threads.
    Stopping {
        unit: Box<dyn Unit>,
        cause: Cause,
        since: Instant,
        warned: bool,
    },
    Waiting {
        reason: Reason,
        until: Instant,
    },
    /// The watchdog is disabled and the unit faulted: final.
    GaveUp(Reason),
    /// Removed: dropped from the list after this check.
    Removed,
    /// Between states (never seen outside [`Slot::check`]).
    Moving,
}

/// Why a unit is being stopped.
#[derive(Debug)]
enum Cause {
    /// A fault; `None` when a thread exited on its own (the join tells why).
    Fault(Option<Reason>),
    /// The operator asked for a restart: at once, not counted as a fault.
    Restart,
    /// The operator removed the unit; with a plan, the unit that takes its place (a move).
    Remove(Option<Box<UnitPlan>>),
}

#[derive(Debug)]
struct Slot {
    plan: UnitPlan,
    ctx: Arc<UnitContext>,
    phase: Phase,
    up: IntGauge,
    /// Faults since the backoff was last reset.
    faults: u32,
    restarts: u64,
    /// When the running instance started.
    started: Instant,
    last_hashes: u64,
    quiet_rounds: u32,
    epoch_seq: u64,
    errors_base: u64,
}

impl Slot {
    fn new(plan: UnitPlan, launcher: &Launcher) -> Result<Self> {
        let ctx = launcher.context(&plan);
        let labels = [ctx.info.label.as_str(), ctx.info.kind.as_str()];
        for reason in Reason::ALL {
            let _ = launcher.metrics.unit_restarts.with_label_values(&[
                labels[0],
                labels[1],
                reason.as_str(),
            ]);
        }
        let up = launcher.metrics.unit_up.with_label_values(&labels);
        let unit = launcher.start(&plan, &ctx)?;
        up.set(1);
        Ok(Self {
            plan,
            ctx,
            phase: Phase::Running(unit),
            up,
            faults: 0,
            restarts: 0,
            started: Instant::now(),
            last_hashes: 0,
            quiet_rounds: 0,
            epoch_seq: 0,
            errors_base: 0,
        })
    }

    fn view(&self) -> UnitView {
        let (state, last_build, thread_ids, down) = match &self.phase {
            Phase::Running(u) => (u.state(), u.last_build(), u.thread_ids(), None),
            Phase::Stopping {
                unit,
                cause: Cause::Fault(reason),
                ..
            } => (
                UnitState::Failed,
                unit.last_build(),
                Vec::new(),
                Some(reason.unwrap_or(Reason::Error)),
            ),
            // Stopping for an operator's restart, removal or move: not down after a fault.
            Phase::Stopping { unit, .. } => (UnitState::Idle, unit.last_build(), Vec::new(), None),
            Phase::Waiting { reason, .. } | Phase::GaveUp(reason) => {
                (UnitState::Failed, None, Vec::new(), Some(*reason))
            }
            Phase::Removed | Phase::Moving => (UnitState::Failed, None, Vec::new(), None),
        };
        UnitView {
            info: self.ctx.info.clone(),
            state,
            hashes: self.ctx.hashes(),
            last_build,
            thread_ids,
            restarts: self.restarts,
            down,
        }
    }

    /// One watchdog step.
    fn check(&mut self, now: Instant, w: &WatchdogConfig, launcher: &Launcher) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Running(unit) => match self.fault(unit.as_ref(), now, w) {
                None => Phase::Running(unit),
                Some(reason) => {
                    let why = reason.map_or("a thread exited".to_string(), |r| r.to_string());
                    let now = Instant::now();
                    tracing::warn!(unit = %self.ctx.info.label, "unit faulted ({why}): stopping it alone");
                    self.ctx.mark_failed();
                    self.ctx.halt();
                    Phase::Stopping {
                        unit,
                        cause: Cause::Fault(reason),
                        since: now,
                        warned: false,
                    }
                }
            },
            Phase::Stopping {
                unit,
                cause,
                since,
                warned,
            } => {
                let (exited, total) = unit.threads_exited();
                if exited < total {
                    if !warned && now.duration_since(since) > Duration::from_secs(30) {
                        tracing::error!(unit = %self.ctx.info.label, "{} of {total} threads have not stopped after 30 s; the unit stays down until they do", total - exited);
                    }
                    Phase::Stopping {
                        unit,
                        cause,
                        since,
                        warned: warned || now.duration_since(since) > Duration::from_secs(30),
                    }
                } else {
                    self.stopped(unit, cause, w, launcher)
                }
            }
            Phase::Waiting { until, .. } if now >= until => self.restart(now, w, launcher),
            other => other,
        };
        self.up.set(i64::from(
            matches!(self.phase, Phase::Running(_)) && !self.ctx.failed(),
        ));
    }

    /// The fault of a running unit, if any: `Some(None)` when a thread exited on its own.
    fn fault(
        &mut self,
        unit: &dyn Unit,
        now: Instant,
        w: &WatchdogConfig,
    ) -> Option<Option<Reason>> {
        if unit.threads_exited().0 > 0 {
            return Some(None);
        }
        let control = &self.ctx.control;
        let seq = control.epoch_seq();
        if seq != self.epoch_seq {
            self.epoch_seq = seq;
            self.errors_base = self.ctx.compute_errors();
        }
        if self.ctx.compute_errors() - self.errors_base > w.max_compute_errors {
            return Some(Some(Reason::ComputeErrors));
        }
        let hashing = matches!(unit.state(), UnitState::Hashing(_))
            && !control.is_paused(&self.ctx.info.label);
        let hashes = self.ctx.hashes();
        if hashing && hashes == self.last_hashes {
            self.quiet_rounds += 1;
        } else {
            self.quiet_rounds = 0;
        }
        self.last_hashes = hashes;
        if self.quiet_rounds >= w.stall_rounds {
            return Some(Some(Reason::Stall));
        }
        if hashing
            && self.faults > 0
            && now.duration_since(self.started) >= Duration::from_millis(w.backoff_reset_ms)
        {
            tracing::info!(unit = %self.ctx.info.label, "hashing without a fault for {} ms: backoff reset", w.backoff_reset_ms);
            self.faults = 0;
        }
        None
    }

    /// Halts the unit for `cause` (an operator's restart, removal or move); false if it is
    /// not running (down after a fault, or already stopping).
    fn halt(&mut self, cause: Cause) -> bool {
        match std::mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Running(unit) => {
                self.ctx.halt();
                self.phase = Phase::Stopping {
                    unit,
                    cause,
                    since: Instant::now(),
                    warned: false,
                };
                true
            }
            Phase::Waiting { .. } | Phase::GaveUp(_) if matches!(cause, Cause::Remove(None)) => {
                self.phase = Phase::Removed;
                true
            }
            other => {
                self.phase = other;
                false
            }
        }
    }

    /// The unit's threads have exited: join, keep its proofs, and go on as `cause` says.
    fn stopped(
        &mut self,
        unit: Box<dyn Unit>,
        cause: Cause,
        w: &WatchdogConfig,
        launcher: &Launcher,
    ) -> Phase {
        let result = unit.join();
        self.ctx.salvage();
        let reason = match cause {
            Cause::Fault(reason) => reason,
            Cause::Restart => {
                tracing::info!(unit = %self.ctx.info.label, "unit stopped for a restart asked by the operator");
                return self.restart(Instant::now(), w, launcher);
            }
            Cause::Remove(next) => return self.removed(next.map(|p| *p), launcher),
        };
        let lost = matches!(&self.plan, UnitPlan::Gpu(p) if p.device.is_lost());
        let reason = reason.unwrap_or(match &result {
            _ if lost => Reason::DeviceLost,
            Err(MinerError::Panicked { .. }) => Reason::Panic,
            _ => Reason::Error,
        });
        let detail = match &result {
            Err(e) => e.to_string(),
            Ok(()) => "stopped".into(),
        };
        if !w.enabled {
            tracing::error!(unit = %self.ctx.info.label, reason = %reason, "unit stopped ({detail}); watchdog.enabled = false: not restarting it");
            return Phase::GaveUp(reason);
        }
        self.schedule(reason, &detail, w, launcher)
    }

    /// Counts a restart for `reason` and schedules it after the unit's backoff.
    fn schedule(
        &mut self,
        reason: Reason,
        detail: &str,
        w: &WatchdogConfig,
        launcher: &Launcher,
    ) -> Phase {
        self.restarts += 1;
        launcher
            .metrics
            .unit_restarts
            .with_label_values(&[
                self.ctx.info.label.as_str(),
                self.ctx.info.kind.as_str(),
                reason.as_str(),
            ])
            .inc();
        let delay = backoff(w, self.faults);
        let now = Instant::now();
        self.faults = self.faults.saturating_add(1);
        tracing::warn!(
            unit = %self.ctx.info.label,
            reason = %reason,
            restart_in_ms = delay.as_millis() as u64,
            "unit stopped ({detail}): restarting it in {} ms (fault {} in a row)",
            delay.as_millis(),
            self.faults
        );
        Phase::Waiting {
            reason,
            until: now + delay,
        }
    }

    /// A removed unit: its proofs stored (or handed to the unit taking its place), its gauges
    /// gone; the unit of `next` started in its place.
    fn removed(&mut self, next: Option<UnitPlan>, launcher: &Launcher) -> Phase {
        let labels = [self.ctx.info.label.as_str(), self.ctx.info.kind.as_str()];
        let _ = launcher.metrics.unit_up.remove_label_values(&labels);
        for (_, window) in crate::hashrate::WINDOWS {
            let _ = launcher
                .metrics
                .hashrate
                .remove_label_values(&[labels[0], labels[1], window]);
        }
        let Some(plan) = next else {
            self.ctx.flush_orphans();
            tracing::info!(unit = %self.ctx.info.label, "unit removed");
            return Phase::Removed;
        };
        match Slot::new(plan, launcher) {
            Ok(slot) => {
                slot.ctx.inherit(&self.ctx);
                tracing::info!(unit = %self.ctx.info.label, to = %slot.ctx.info.label, place = %slot.ctx.info.place, "unit moved");
                *self = slot;
                std::mem::replace(&mut self.phase, Phase::Moving)
            }
            Err(e) => {
                self.ctx.flush_orphans();
                tracing::error!(unit = %self.ctx.info.label, "unit removed, but its replacement cannot start: {e}");
                Phase::Removed
            }
        }
    }

    fn restart(&mut self, now: Instant, w: &WatchdogConfig, launcher: &Launcher) -> Phase {
        if let UnitPlan::Gpu(p) = &self.plan
            && p.device.is_lost()
        {
            match p.reopened() {
                Ok(fresh) => self.plan = UnitPlan::Gpu(fresh),
                Err(e) => {
                    return self.schedule(Reason::DeviceLost, &e.to_string(), w, launcher);
                }
            }
        }
        self.ctx.prepare_restart();
        match launcher.start(&self.plan, &self.ctx) {
            Ok(unit) => {
                tracing::info!(unit = %self.ctx.info.label, restarts = self.restarts, "unit restarted");
                self.started = now;
                self.quiet_rounds = 0;
                self.last_hashes = self.ctx.hashes();
                self.errors_base = self.ctx.compute_errors();
                Phase::Running(unit)
            }
            Err(e) => {
                self.ctx.mark_failed();
                self.schedule(Reason::Error, &format!("cannot start: {e}"), w, launcher)
            }
        }
    }
}

/// The wait before restarting a unit that faulted `faults` times in a row before.
fn backoff(w: &WatchdogConfig, faults: u32) -> Duration {
    let ms = w
        .backoff_initial_ms
        .saturating_mul(1u64.checked_shl(faults).unwrap_or(u64::MAX))
        .min(w.backoff_max_ms);
    Duration::from_millis(ms)
}

#[derive(Debug)]
struct Shared {
    slots: Mutex<Vec<Slot>>,
    launcher: Launcher,
    settings: Mutex<WatchdogConfig>,
    running: AtomicBool,
}

/// Runs every unit and watches them (one thread for all, a check every round).
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Supervisor {
    /// Starts the planned units and the watchdog thread.
    pub fn start(
        launcher: Launcher,
        plans: Vec<UnitPlan>,
        settings: WatchdogConfig,
    ) -> Result<Self> {
        let slots = plans
            .into_iter()
            .map(|p| Slot::new(p, &launcher))
            .collect::<Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            slots: Mutex::new(slots),
            launcher,
            settings: Mutex::new(settings),
            running: AtomicBool::new(true),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || watch(&s))
            .map_err(|e| MinerError::UnitFailed {
                unit: "supervisor".into(),
                reason: format!("cannot spawn thread: {e}"),
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Every unit, as it is now.
    pub fn units(&self) -> Vec<UnitView> {
        lock(&self.shared.slots).iter().map(Slot::view).collect()
    }

    /// True if a unit labelled `label` exists.
    pub fn has_unit(&self, label: &str) -> bool {
        lock(&self.shared.slots)
            .iter()
            .any(|s| s.ctx.info.label == label)
    }

    /// The label of a unit that faulted while the watchdog is disabled, if any.
    pub fn given_up(&self) -> Option<String> {
        lock(&self.shared.slots)
            .iter()
            .find(|s| matches!(s.phase, Phase::GaveUp(_)))
            .map(|s| s.ctx.info.label.clone())
    }

    /// The watchdog settings in force.
    pub fn settings(&self) -> WatchdogConfig {
        lock(&self.shared.settings).clone()
    }

    /// Applies new watchdog settings from the next check on.
    pub fn set_settings(&self, settings: WatchdogConfig) {
        *lock(&self.shared.settings) = settings;
    }

    /// Restarts unit `label` at once (an operator's request: no backoff, not a fault).
    pub fn restart_unit(&self, label: &str) -> Result<(), ChangeError> {
        self.with_slot(label, |slot| slot.halt(Cause::Restart))
    }

    /// Removes unit `label` (its threads stop within a hash; its proofs are stored).
    pub fn remove_unit(&self, label: &str) -> Result<(), ChangeError> {
        self.with_slot(label, |slot| slot.halt(Cause::Remove(None)))
    }

    /// Replaces unit `label` by the unit of `plan` once its threads have stopped (a move: the
    /// new unit keeps its waiting proofs and hashes past its nonces when it has the same id).
    pub fn move_unit(&self, label: &str, plan: UnitPlan) -> Result<(), ChangeError> {
        self.with_slot(label, |slot| slot.halt(Cause::Remove(Some(Box::new(plan)))))
    }

    /// Starts the unit of `plan` beside the others.
    pub fn add_unit(&self, plan: UnitPlan) -> Result<()> {
        let mut slots = lock(&self.shared.slots);
        if slots.iter().any(|s| s.ctx.info.label == plan.label()) {
            return Err(MinerError::UnitFailed {
                unit: plan.label().to_string(),
                reason: "a unit with this label runs already".into(),
            });
        }
        let slot = Slot::new(plan, &self.shared.launcher)?;
        slots.push(slot);
        Ok(())
    }

    /// The plans of the units there are now (those being removed excepted).
    pub fn plans(&self) -> Vec<UnitPlan> {
        lock(&self.shared.slots)
            .iter()
            .filter(|s| {
                !matches!(
                    s.phase,
                    Phase::Removed
                        | Phase::Stopping {
                            cause: Cause::Remove(_),
                            ..
                        }
                )
            })
            .map(|s| s.plan.clone())
            .collect()
    }

    fn with_slot(&self, label: &str, f: impl FnOnce(&mut Slot) -> bool) -> Result<(), ChangeError> {
        let mut slots = lock(&self.shared.slots);
        let slot = slots
            .iter_mut()
            .find(|s| s.ctx.info.label == label)
            .ok_or(ChangeError::NoSuchUnit)?;
        if f(slot) {
            Ok(())
        } else {
            Err(ChangeError::Busy)
        }
    }

    /// Sets the nonces per dispatch of every GPU unit (`gpu.batch`), from their next round.
    pub fn set_gpu_batch(&self, batch: Option<u32>) {
        for slot in lock(&self.shared.slots).iter() {
            if let UnitPlan::Gpu(p) = &slot.plan {
                p.batch.set(batch);
            }
        }
    }

    /// Stops the watchdog, then waits for every unit (after `Control::stop`); the first unit
    /// error, if any.
    pub fn stop(mut self) -> Result<()> {
        self.shared.running.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut first = Ok(());
        for slot in std::mem::take(&mut *lock(&self.shared.slots)) {
            let r = match slot.phase {
                Phase::Running(u) | Phase::Stopping { unit: u, .. } => u.join(),
                _ => Ok(()),
            };
            slot.ctx.flush_orphans();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// The watchdog thread: checks every unit each round, samples hashrates each second.
fn watch(shared: &Shared) {
    let mut sampler = Sampler::default();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let launcher = &shared.launcher;
    while shared.running.load(Ordering::Acquire) {
        let settings = lock(&shared.settings).clone();
        let now = Instant::now();
        let contexts: Vec<Arc<UnitContext>> = {
            let mut slots = lock(&shared.slots);
            if !launcher.control.is_stopped() {
                for slot in slots.iter_mut() {
                    slot.check(now, &settings, launcher);
                }
                slots.retain(|s| !matches!(s.phase, Phase::Removed));
            }
            slots.iter().map(|s| s.ctx.clone()).collect()
        };
        if now.duration_since(last_sample) >= Duration::from_secs(1) {
            last_sample = now;
            sampler.sample(&contexts, &launcher.metrics);
        }
        std::thread::sleep(launcher.round);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_longest() {
        let w = WatchdogConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ..WatchdogConfig::default()
        };
        let waits: Vec<u64> = (0..6).map(|n| backoff(&w, n).as_millis() as u64).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&w, 200).as_millis(), 1000, "no overflow");
    }
}
