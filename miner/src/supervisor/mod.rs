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
//! `watchdog.backoff_max_ms`, and reset once the unit hashes `watchdog.backoff_reset_ms` after
//! its last restart without a new fault.
//! A GPU unit whose device was lost gets the adapter opened again. The unit's [`UnitContext`]
//! outlives its instances, so its hash counter stays monotonic, and proofs found but not yet
//! stored become orphans stored before any newer proof, the next instance hashing past every
//! nonce the last one took. `capminer_unit_restarts_total{unit,kind,reason}` counts restarts;
//! `capminer_unit_up` is 0 from the fault until the unit runs again. With `watchdog.enabled =
//! false` a fault is final: [`Supervisor::given_up`] names the unit and the node stops.

mod slot;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use capminer_config::WatchdogConfig;
use capminer_sync::LockExt;

use crate::hashrate::Sampler;
pub use crate::launch::{Launcher, UnitPlan};
use crate::unit::{BuildReport, UnitContext, UnitInfo, UnitState};
use crate::{MinerError, Result};
use slot::{Cause, Phase, Slot};

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
    /// The unit is stopping, or down when the change needs it running: try again once it runs.
    #[error("the unit is stopping, or down after a fault: try again once it runs")]
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
    gpu: Option<crate::gpu::GpuUnitReport>,
}

impl UnitView {
    /// A GPU unit's own figures (of the running instance); `None` for other units.
    pub fn gpu_report(&self) -> Option<crate::gpu::GpuUnitReport> {
        self.gpu.clone()
    }
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
            .map_err(|source| MinerError::Spawn {
                unit: "supervisor".into(),
                source,
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Every unit, as it is now.
    pub fn units(&self) -> Vec<UnitView> {
        self.shared
            .slots
            .lock_or_recover()
            .iter()
            .map(Slot::view)
            .collect()
    }

    /// True if a unit labelled `label` exists.
    pub fn has_unit(&self, label: &str) -> bool {
        self.shared
            .slots
            .lock_or_recover()
            .iter()
            .any(|s| s.ctx.info.label == label)
    }

    /// The label of a unit that faulted while the watchdog is disabled, if any.
    pub fn given_up(&self) -> Option<String> {
        self.shared
            .slots
            .lock_or_recover()
            .iter()
            .find(|s| matches!(s.phase, Phase::GaveUp(_)))
            .map(|s| s.ctx.info.label.clone())
    }

    /// The watchdog settings in force.
    pub fn settings(&self) -> WatchdogConfig {
        self.shared.settings.lock_or_recover().clone()
    }

    /// Applies new watchdog settings from the next check on.
    pub fn set_settings(&self, settings: WatchdogConfig) {
        *self.shared.settings.lock_or_recover() = settings;
    }

    /// Restarts unit `label` at once (an operator's request: no backoff, not a fault).
    pub fn restart_unit(&self, label: &str) -> Result<(), ChangeError> {
        self.with_slot(label, |slot, l| slot.halt(Cause::Restart, l))
    }

    /// Removes unit `label` (its threads stop within a hash; its proofs are stored).
    pub fn remove_unit(&self, label: &str) -> Result<(), ChangeError> {
        self.with_slot(label, |slot, l| slot.halt(Cause::Remove(None), l))
    }

    /// Replaces unit `label` by the unit of `plan` once its threads have stopped (a move: the
    /// new unit keeps its waiting proofs and hashes past its nonces when it has the same id).
    pub fn move_unit(&self, label: &str, plan: UnitPlan) -> Result<(), ChangeError> {
        self.with_slot(label, |slot, l| {
            slot.halt(Cause::Remove(Some(Box::new(plan))), l)
        })
    }

    /// Starts the unit of `plan` beside the others.
    pub fn add_unit(&self, plan: UnitPlan) -> Result<()> {
        let mut slots = self.shared.slots.lock_or_recover();
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
        self.shared
            .slots
            .lock_or_recover()
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

    fn with_slot(
        &self,
        label: &str,
        f: impl FnOnce(&mut Slot, &Launcher) -> bool,
    ) -> Result<(), ChangeError> {
        let mut slots = self.shared.slots.lock_or_recover();
        let slot = slots
            .iter_mut()
            .find(|s| s.ctx.info.label == label)
            .ok_or(ChangeError::NoSuchUnit)?;
        if f(slot, &self.shared.launcher) {
            Ok(())
        } else {
            Err(ChangeError::Busy)
        }
    }

    /// Sets the nonces per dispatch of every GPU unit (`gpu.batch`), from their next round.
    pub fn set_gpu_batch(&self, batch: Option<u32>) {
        for slot in self.shared.slots.lock_or_recover().iter() {
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
        for slot in std::mem::take(&mut *self.shared.slots.lock_or_recover()) {
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
        let settings = shared.settings.lock_or_recover().clone();
        let now = Instant::now();
        let contexts: Vec<Arc<UnitContext>> = {
            let mut slots = shared.slots.lock_or_recover();
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
    use super::slot::backoff;
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
