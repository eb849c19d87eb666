//! The control every unit thread watches: the current epoch, pause and stop.
//!
//! Any change bumps one atomic generation number. Hashing threads compare it between hashes
//! (a relaxed load, no lock), so a new epoch, a pause or a stop takes effect within one hash;
//! the round then ends and the thread reads the new state under the lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use capminer_sync::{LockExt, recover};

use capminer_proofs::Epoch;

/// A consistent view of the control state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Generation when read.
    pub generation: u64,
    /// The current epoch and its sequence number (1 for the first epoch set, then 2, ...).
    pub epoch: Option<(u64, Epoch)>,
    /// Units should idle.
    pub paused: bool,
    /// Units should exit.
    pub stopped: bool,
}

#[derive(Debug, Default)]
struct State {
    epoch: Option<(u64, Epoch)>,
    paused: bool,
    /// Units paused one by one (by label), beside the pause of all.
    paused_units: std::collections::BTreeSet<String>,
    /// Units the chain says must not hash now (by label), and why.
    holds: std::collections::BTreeMap<String, String>,
    stopped: bool,
}

/// Shared by the miner and every unit thread.
#[derive(Debug, Default)]
pub struct Control {
    generation: AtomicU64,
    epoch_seq: AtomicU64,
    stopped: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Control {
    /// A control with no epoch yet, running.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.state.lock_or_recover();
        f(&mut state);
        self.epoch_seq
            .store(state.epoch.map_or(0, |(seq, _)| seq), Ordering::Release);
        self.stopped.store(state.stopped, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_all();
    }

    /// Publishes a new epoch: every unit re-keys, keeping its threads.
    pub fn set_epoch(&self, epoch: Epoch) {
        self.update(|s| {
            let seq = s.epoch.map_or(1, |(seq, _)| seq + 1);
            s.epoch = Some((seq, epoch));
        });
    }

    /// Pauses or resumes hashing.
    pub fn set_paused(&self, paused: bool) {
        self.update(|s| s.paused = paused);
    }

    /// Pauses or resumes one unit (by label); the others go on.
    pub fn set_unit_paused(&self, label: &str, paused: bool) {
        self.update(|s| {
            if paused {
                s.paused_units.insert(label.to_string());
            } else {
                s.paused_units.remove(label);
            }
        });
    }

    /// Holds unit `label` idle for `reason` (the chain would not count its proofs), or lets it
    /// hash again (`None`). Changes nothing, and wakes no thread, when it is already so.
    pub fn set_unit_hold(&self, label: &str, reason: Option<&str>) {
        {
            let state = self.state.lock_or_recover();
            if state.holds.get(label).map(String::as_str) == reason {
                return;
            }
        }
        self.update(|s| match reason {
            Some(why) => {
                s.holds.insert(label.to_string(), why.to_string());
            }
            None => {
                s.holds.remove(label);
            }
        });
    }

    /// Why unit `label` is held idle, if it is.
    pub fn hold(&self, label: &str) -> Option<String> {
        let state = self.state.lock_or_recover();
        state.holds.get(label).cloned()
    }

    /// The current epoch and its sequence number.
    pub fn epoch(&self) -> Option<(u64, Epoch)> {
        self.state.lock_or_recover().epoch
    }

    /// True if unit `label` is paused, alone or with all.
    pub fn is_paused(&self, label: &str) -> bool {
        let state = self.state.lock_or_recover();
        state.paused || state.paused_units.contains(label)
    }

    /// Wakes every unit thread to re-read its state (one unit halted, for instance).
    pub fn nudge(&self) {
        self.update(|_| {});
    }

    /// Asks every unit to exit.
    pub fn stop(&self) {
        self.update(|s| s.stopped = true);
    }

    /// The generation: changes whenever anything else does. Cheap; read between hashes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Sequence number of the current epoch (0: none yet). Cheap.
    pub fn epoch_seq(&self) -> u64 {
        self.epoch_seq.load(Ordering::Acquire)
    }

    /// True once `stop` was called. Cheap.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The current state as unit `label` sees it (paused if all are, it alone is, or it is
    /// held).
    pub fn snapshot_for(&self, label: &str) -> Snapshot {
        let state = self.state.lock_or_recover();
        Snapshot {
            generation: self.generation(),
            epoch: state.epoch,
            paused: state.paused
                || state.paused_units.contains(label)
                || state.holds.contains_key(label),
            stopped: state.stopped,
        }
    }

    /// Blocks until the generation differs from `seen` (or `timeout` passes).
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) {
        let state = self.state.lock_or_recover();
        let _unused = recover(
            self.changed
                .wait_timeout_while(state, timeout, |_| self.generation() == seen),
        );
    }
}
