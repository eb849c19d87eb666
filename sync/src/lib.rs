//! capminer's one lock-poisoning policy, for every `std::sync::Mutex` in the kernels, the
//! miner and the proof store.
//!
//! **The policy: a poisoned lock is recovered, never unwrapped.** Every lock is taken with
//! [`LockExt::lock_or_recover`], and every condition-variable wait goes through [`recover`].
//! A thread that panics while holding a lock ends its own unit (the supervisor sees the thread
//! exit and restarts that unit alone); the lock it leaves behind stays usable by every other
//! unit, the supervisor and the chain client. With `.lock().expect("poisoned")` instead, one
//! unit's panic while holding the proof store's lock would have failed every later store call
//! in the process, the chain client's included.
//!
//! **Why recovering is sound.** Poisoning guards against reading a value that a panic left
//! half-updated. Each value behind a lock here is whole at every point where its holder can
//! panic, so there is nothing half-updated to see:
//!
//! * plain values replaced whole by one assignment (the control's epoch and pause flags, a
//!   unit's published slot, build report, thread ids, GPU state): an assignment either
//!   happened or did not;
//! * maps and lists changed by single std calls (`insert`, `remove`, `push`, `take`: the nonce
//!   order's pending proofs, a unit's proof lists, the supervisor's slots, the light-cache
//!   store's entries): each call leaves the collection valid if it unwinds;
//! * the proof store's state: a record reaches the in-memory index only after it is durable in
//!   the log, and a failed append cuts the log back, so the index never holds what the log
//!   does not; the closures callers pass in (`keep`) only read it.
//!
//! A new lock must meet the same bar (whole between statements that can panic), or say in a
//! comment beside it why it does not and panic on poison itself.

#![warn(missing_docs)]

use std::sync::{LockResult, Mutex, MutexGuard, PoisonError};

/// Locking under the policy of this crate (see the crate's documentation).
pub trait LockExt<T: ?Sized> {
    /// Locks the mutex, recovering the guard if a thread panicked while holding it: the value
    /// is whole (see the crate's documentation), so the poison carries no information.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        recover(self.lock())
    }
}

/// The guard of a lock result, poisoned or not: for condition-variable waits
/// (`recover(condvar.wait(guard))`, `recover(condvar.wait_timeout(guard, d)).0`), under the
/// same policy as [`LockExt::lock_or_recover`].
pub fn recover<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar};
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panicking_thread_stays_usable() {
        let shared = Arc::new(Mutex::new(vec![1, 2]));
        let panicking = shared.clone();
        let joined = std::thread::spawn(move || {
            let mut guard = panicking.lock_or_recover();
            guard.push(3);
            panic!("a unit thread panics while holding the lock");
        })
        .join();
        assert!(joined.is_err(), "the thread panicked");
        assert!(shared.is_poisoned());
        assert!(shared.lock().is_err(), "a plain lock() reports the poison");

        // Through the helper: the value the panicking thread left, and it can go on changing.
        shared.lock_or_recover().push(4);
        assert_eq!(*shared.lock_or_recover(), [1, 2, 3, 4]);
        let other = shared.clone();
        std::thread::spawn(move || other.lock_or_recover().push(5))
            .join()
            .unwrap();
        assert_eq!(shared.lock_or_recover().len(), 5);
    }

    #[test]
    fn a_condvar_wait_on_a_poisoned_lock_recovers_the_guard() {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let panicking = pair.clone();
        let _ = std::thread::spawn(move || {
            let _guard = panicking.0.lock_or_recover();
            panic!("poison it");
        })
        .join();
        let (lock, changed) = &*pair;
        let guard = lock.lock_or_recover();
        let (guard, timeout) = recover(changed.wait_timeout(guard, Duration::from_millis(1)));
        assert!(timeout.timed_out());
        assert_eq!(*guard, 0);
    }
}
