//! One supervised unit: its state machine (running, stopping, waiting, ...), fault detection,
//! restarts with backoff, and the operator's restarts, removals and moves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_config::WatchdogConfig;
use prometheus::IntGauge;

use super::{Reason, UnitView};
use crate::launch::{Launcher, UnitPlan};
use crate::unit::{Unit, UnitContext, UnitState};
use crate::{MinerError, Result};

/// Where a supervised unit is in its life.
#[derive(Debug)]
pub(super) enum Phase {
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
pub(super) enum Cause {
    /// A fault; `None` when a thread exited on its own (the join tells why).
    Fault(Option<Reason>),
    /// The operator asked for a restart: at once, not counted as a fault.
    Restart,
    /// The operator removed the unit; with a plan, the unit that takes its place (a move).
    Remove(Option<Box<UnitPlan>>),
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) plan: UnitPlan,
    pub(super) ctx: Arc<UnitContext>,
    pub(super) phase: Phase,
    pub(super) up: IntGauge,
    /// Faults since the backoff was last reset.
    pub(super) faults: u32,
    pub(super) restarts: u64,
    /// When the running instance started.
    pub(super) started: Instant,
    pub(super) last_hashes: u64,
    pub(super) quiet_rounds: u32,
    pub(super) epoch_seq: u64,
    pub(super) errors_base: u64,
}

impl Slot {
    pub(super) fn new(plan: UnitPlan, launcher: &Launcher) -> Result<Self> {
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

    pub(super) fn view(&self) -> UnitView {
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
        let gpu = match &self.phase {
            Phase::Running(unit) | Phase::Stopping { unit, .. } => unit.gpu_report(),
            _ => None,
        };
        UnitView {
            info: self.ctx.info.clone(),
            gpu,
            state,
            hashes: self.ctx.hashes(),
            last_build,
            thread_ids,
            restarts: self.restarts,
            down,
        }
    }

    /// One watchdog step.
    pub(super) fn check(&mut self, now: Instant, w: &WatchdogConfig, launcher: &Launcher) {
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
            tracing::info!(unit = %self.ctx.info.label, "hashing, no fault for {} ms since the last restart: backoff reset", w.backoff_reset_ms);
            self.faults = 0;
        }
        None
    }

    /// Halts the unit for `cause` (an operator's restart, removal or move). A unit down after
    /// a fault is removed at once, or restarted at once; false when the change cannot be made
    /// now (stopping already, a move of a unit that is down, or a fault with the watchdog off).
    pub(super) fn halt(&mut self, cause: Cause, launcher: &Launcher) -> bool {
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
            // Down and waiting out its backoff: an operator's restart starts it now.
            Phase::Waiting { reason, .. } if matches!(cause, Cause::Restart) => {
                self.phase = Phase::Waiting {
                    reason,
                    until: Instant::now(),
                };
                true
            }
            Phase::Waiting { .. } | Phase::GaveUp(_) if matches!(cause, Cause::Remove(None)) => {
                self.phase = self.removed(None, launcher);
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
pub(super) fn backoff(w: &WatchdogConfig, faults: u32) -> Duration {
    let ms = w
        .backoff_initial_ms
        .saturating_mul(1u64.checked_shl(faults).unwrap_or(u64::MAX))
        .min(w.backoff_max_ms);
    Duration::from_millis(ms)
}
