//! Per-unit nonce order: proofs reach the store in strictly increasing nonce order.
//!
//! The threads of a unit take nonce chunks from one counter. Each thread publishes its
//! position: a lower bound on every nonce it may still hash (the counter's value at the end of
//! its last round, or "infinity" once it has left the epoch). A found proof waits until every
//! thread's position has passed it; then no smaller nonce can appear any more, and it is
//! released to the store together with every other waiting proof below that watermark, in order.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use capminer_proofs::Proof;
use capminer_sync::LockExt;

#[derive(Debug)]
struct State {
    positions: Vec<u64>,
    pending: BTreeMap<u64, Proof>,
}

/// The nonce order of one unit in one epoch.
#[derive(Debug)]
pub struct NonceOrder {
    next: AtomicU64,
    state: Mutex<State>,
}

impl NonceOrder {
    /// Starts at nonce `start` for `threads` threads.
    pub fn new(start: u64, threads: usize) -> Self {
        Self {
            next: AtomicU64::new(start),
            state: Mutex::new(State {
                positions: vec![start; threads],
                pending: BTreeMap::new(),
            }),
        }
    }

    /// Thread `thread` starts (or resumes) hashing: its position becomes the counter's value.
    pub fn join(&self, thread: usize) {
        let mut state = self.state.lock_or_recover();
        state.positions[thread] = self.next.load(Ordering::Acquire);
    }

    /// The first nonce not taken yet.
    pub fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Takes the next `count` nonces; returns the first.
    pub fn take(&self, count: u64) -> u64 {
        self.next.fetch_add(count, Ordering::AcqRel)
    }

    /// Ends a round of `thread` with the proofs it found; `leaving` when the thread will hash no
    /// more in this epoch (new epoch, pause, stop). Releases every waiting proof below the new
    /// watermark to `sink`, in nonce order, while holding the lock, so two threads never
    /// interleave their releases. If `sink` fails, the proofs stay waiting and are offered again
    /// at the next round's end. Returns how many were released.
    pub fn end_round<E>(
        &self,
        thread: usize,
        found: impl IntoIterator<Item = Proof>,
        leaving: bool,
        sink: impl FnOnce(&[Proof]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut state = self.state.lock_or_recover();
        for proof in found {
            state.pending.insert(proof.nonce, proof);
        }
        state.positions[thread] = if leaving {
            u64::MAX
        } else {
            self.next.load(Ordering::Acquire)
        };
        let watermark = state.positions.iter().copied().min().unwrap_or(u64::MAX);
        let ready: Vec<Proof> = state.pending.range(..watermark).map(|(_, p)| *p).collect();
        if ready.is_empty() {
            return Ok(0);
        }
        sink(&ready)?;
        for p in &ready {
            state.pending.remove(&p.nonce);
        }
        Ok(ready.len())
    }

    /// Takes every waiting proof out, in nonce order (when the order is retired at a new epoch
    /// while the store is failing, so the proofs can be retried from elsewhere).
    pub fn drain(&self) -> Vec<Proof> {
        // These are the proofs a restart must not lose, even from a lock a panicking unit
        // thread left (see capminer_sync for why its map is whole).
        let mut state = self.state.lock_or_recover();
        std::mem::take(&mut state.pending).into_values().collect()
    }

    /// Proofs found but not yet released.
    pub fn pending(&self) -> usize {
        self.state.lock_or_recover().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capminer_proofs::{Hash, UnitId, UnitKind};

    fn proof(nonce: u64) -> Proof {
        Proof {
            unit: UnitId([1; 32]),
            kind: UnitKind::Cpu,
            epoch: 1,
            nonce,
            hash: Hash::default(),
        }
    }

    fn nonces(released: &std::cell::RefCell<Vec<u64>>) -> Vec<u64> {
        released.borrow().clone()
    }

    #[test]
    fn a_proof_waits_until_every_thread_has_passed_it() {
        let order = NonceOrder::new(0, 2);
        let released = std::cell::RefCell::new(Vec::new());
        let sink = |p: &[Proof]| -> Result<(), ()> {
            released.borrow_mut().extend(p.iter().map(|p| p.nonce));
            Ok(())
        };
        order.join(0);
        order.join(1);
        let a = order.take(10); // thread 0: 0..10
        let b = order.take(10); // thread 1: 10..20
        assert_eq!((a, b), (0, 10));
        // Thread 1 finds 15 first; thread 0 is still at position 0, so 15 must wait.
        order.end_round(1, [proof(15)], false, sink).unwrap();
        assert_eq!(nonces(&released), Vec::<u64>::new());
        assert_eq!(order.pending(), 1);
        // Thread 0 finds 7 and passes the counter (20): both go out, 7 first.
        order.end_round(0, [proof(7)], false, sink).unwrap();
        assert_eq!(nonces(&released), vec![7, 15]);
    }

    #[test]
    fn leaving_releases_everything_and_a_failing_sink_keeps_proofs() {
        let order = NonceOrder::new(100, 2);
        order.join(0);
        order.join(1);
        let _ = order.take(5);
        assert_eq!(
            order.end_round(1, [], false, |_| Err("unused")),
            Ok(0),
            "thread 1 passes 105"
        );
        assert_eq!(
            order.end_round(0, [proof(103)], true, |_| Err("disk full")),
            Err("disk full")
        );
        assert_eq!(order.pending(), 1, "a failed store keeps the proof waiting");
        let mut out = Vec::new();
        order
            .end_round(1, [], true, |p: &[Proof]| -> Result<(), ()> {
                out.extend(p.iter().map(|p| p.nonce));
                Ok(())
            })
            .unwrap();
        assert_eq!(out, vec![103]);
        assert_eq!(order.pending(), 0);
    }

    #[test]
    fn concurrent_threads_release_in_strictly_increasing_order() {
        let order = std::sync::Arc::new(NonceOrder::new(0, 4));
        let released = std::sync::Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (order, released) = (order.clone(), released.clone());
                s.spawn(move || {
                    order.join(t);
                    for round in 0..200u64 {
                        let start = order.take(7);
                        // "Find" every nonce divisible by 5 in the chunk.
                        let found: Vec<Proof> = (start..start + 7)
                            .filter(|n| n % 5 == 0)
                            .map(proof)
                            .collect();
                        let leaving = round == 199;
                        order
                            .end_round(t, found, leaving, |p: &[Proof]| -> Result<(), ()> {
                                released.lock().unwrap().extend(p.iter().map(|p| p.nonce));
                                Ok(())
                            })
                            .unwrap();
                    }
                });
            }
        });
        let released = released.lock().unwrap();
        assert!(
            released.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
        assert_eq!(
            released.len(),
            (0..4 * 200 * 7).filter(|n| n % 5 == 0).count(),
            "none lost"
        );
    }
}
