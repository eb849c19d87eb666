//! Light-mode caches by key, built once and shared: the verifier's RandomX memory.
//!
//! Verifying a CPU proof needs its key's 256 MiB cache (Argon2 fill plus the JIT-compiled
//! SuperscalarHash programs, about a second). [`LightCaches`] keeps the caches of recent keys
//! and hands out shared references:
//!
//! ```text
//!   get(K) ─▶ K ready? ──yes──▶ Arc<Cache>
//!               │ being built by another thread? ──▶ wait for it, then as above
//!               └ no: mark K in flight ─▶ recycle the least recently used idle cache (or
//!                 allocate) ─▶ key it (outside the lock) ─▶ ready, wake the waiters
//! ```
//!
//! So a key is built once however many threads, verifiers or shards of the process ask for it
//! at the same time, and every proof of a unit-epoch reuses it. At most `capacity` idle caches
//! are kept (256 MiB each); a cache still in use is never taken from under its user, so while
//! more than `capacity` keys are being verified at once the store holds that many, and shrinks
//! back as they finish. An evicted cache's memory is re-keyed in place rather than freed, which
//! saves its page faults (and, with transparent huge pages, the kernel's compaction).
//! [`LightCaches::shared`] is the one store per flags of the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use capminer_sync::{LockExt, recover};

use super::{Cache, RandomXFlags};
use crate::Result;

/// Keyed light-mode caches with in-flight deduplication, bounded in idle caches.
#[derive(Debug)]
pub struct LightCaches {
    flags: RandomXFlags,
    capacity: usize,
    state: Mutex<State>,
    changed: Condvar,
    builds: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<[u8; 32], Entry>,
    /// Use counter, for least-recently-used eviction.
    clock: u64,
}

#[derive(Debug)]
enum Entry {
    /// A thread is keying it; others wait on `changed`.
    Building,
    Ready {
        cache: Arc<Cache>,
        used: u64,
    },
}

impl LightCaches {
    /// A store for caches allocated with `flags` (made light-mode), keeping at most
    /// `capacity` idle caches (at least one).
    pub fn new(flags: RandomXFlags, capacity: usize) -> Self {
        Self {
            flags: flags.light(),
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            builds: AtomicU64::new(0),
        }
    }

    /// The process's store for `flags`, created on first use with one idle cache per thread
    /// of rayon's global pool (the verifier's parallelism).
    pub fn shared(flags: RandomXFlags) -> Arc<Self> {
        static STORES: OnceLock<Mutex<HashMap<RandomXFlags, Arc<LightCaches>>>> = OnceLock::new();
        let flags = flags.light();
        let mut stores = STORES.get_or_init(Default::default).lock_or_recover();
        stores
            .entry(flags)
            .or_insert_with(|| Arc::new(Self::new(flags, rayon::current_num_threads())))
            .clone()
    }

    /// The flags its caches (and the VMs over them) use.
    pub fn flags(&self) -> RandomXFlags {
        self.flags
    }

    /// How many caches it has keyed so far: one per distinct key while the key stays cached.
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The cache of `key`, keyed once: built here, or by another thread that is building it
    /// now, or kept from before.
    pub fn get(&self, key: &[u8; 32]) -> Result<Arc<Cache>> {
        let mut state = self.state.lock_or_recover();
        loop {
            state.clock += 1;
            let now = state.clock;
            match state.entries.get_mut(key) {
                Some(Entry::Ready { cache, used }) => {
                    *used = now;
                    return Ok(cache.clone());
                }
                Some(Entry::Building) => {
                    state = recover(self.changed.wait(state));
                }
                None => break,
            }
        }
        state.entries.insert(*key, Entry::Building);
        let recycled = self.evict(&mut state);
        drop(state);

        // Keyed outside the lock: other keys are served and built meanwhile. If keying fails
        // or panics, the guard withdraws the entry and a waiter builds it instead.
        let in_flight = InFlight { store: self, key };
        let mut cache = match recycled {
            Some(cache) => cache,
            None => Cache::new(self.flags)?,
        };
        cache.init(key);
        let cache = Arc::new(cache);
        std::mem::forget(in_flight);
        self.builds.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock_or_recover();
        state.clock += 1;
        let used = state.clock;
        state.entries.insert(
            *key,
            Entry::Ready {
                cache: cache.clone(),
                used,
            },
        );
        drop(state);
        self.changed.notify_all();
        Ok(cache)
    }

    /// Makes room for one more cache: while the store is at capacity, drops the least recently
    /// used idle cache; returns the last one dropped, for re-keying in place.
    fn evict(&self, state: &mut State) -> Option<Cache> {
        let mut recycled = None;
        while state.entries.len() > self.capacity {
            let idle = state
                .entries
                .iter()
                .filter_map(|(k, e)| match e {
                    Entry::Ready { cache, used } if Arc::strong_count(cache) == 1 => {
                        Some((*used, *k))
                    }
                    _ => None,
                })
                .min();
            let Some((_, key)) = idle else { break };
            if let Some(Entry::Ready { cache, .. }) = state.entries.remove(&key) {
                recycled = Arc::into_inner(cache);
            }
        }
        recycled
    }
}

/// A key being built: withdrawn (and its waiters woken) if the build does not finish.
struct InFlight<'a> {
    store: &'a LightCaches,
    key: &'a [u8; 32],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.store.state.lock_or_recover().entries.remove(self.key);
        self.store.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::key::{cpu_input, cpu_unit_key};
    use crate::randomx::tests::PROTOCOL;
    use crate::randomx::{RandomXOptions, Vm, VmMemory};

    fn store(capacity: usize) -> LightCaches {
        let options = RandomXOptions {
            large_pages: false,
            ..RandomXOptions::default()
        };
        LightCaches::new(RandomXFlags::resolve(&options.light()).unwrap(), capacity)
    }

    /// The protocol vector `i`: its key, nonce and hash.
    fn vector(i: usize) -> ([u8; 32], u64, String) {
        let (seed, unit, _, nonce, hash) = PROTOCOL[i];
        let b32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
        (
            cpu_unit_key(&b32(seed), &b32(unit)),
            nonce,
            hash.to_string(),
        )
    }

    fn hash(caches: &LightCaches, cache: &Arc<Cache>, nonce: u64) -> String {
        let mut vm = Vm::new(caches.flags(), VmMemory::Cache(cache.clone())).unwrap();
        hex::encode(vm.hash(&cpu_input(nonce)))
    }

    #[test]
    fn concurrent_requests_for_one_key_build_it_once() {
        let caches = store(2);
        let (key, nonce, want) = vector(0);
        let barrier = Barrier::new(4);
        let got: Vec<Arc<Cache>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        caches.get(&key).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(caches.builds(), 1);
        assert!(got.iter().all(|c| Arc::ptr_eq(c, &got[0])));
        assert_eq!(hash(&caches, &got[0], nonce), want);
        caches.get(&key).unwrap();
        assert_eq!(caches.builds(), 1, "a kept key is not built again");
    }

    #[test]
    fn an_idle_cache_is_re_keyed_in_place_and_hashes_exactly() {
        let caches = store(1);
        let (first, nonce, want) = vector(0);
        let a = caches.get(&first).unwrap();
        assert_eq!(hash(&caches, &a, nonce), want);
        let memory = a.raw();
        drop(a);
        // Capacity 1 and the first cache idle: the second key reuses its memory.
        let (second, nonce, want) = vector(2);
        let b = caches.get(&second).unwrap();
        assert_eq!(b.raw(), memory, "the idle cache was recycled");
        assert_eq!(b.key(), Some(&second));
        assert_eq!(hash(&caches, &b, nonce), want);
        assert_eq!(caches.builds(), 2);
        drop(b);
        caches.get(&first).unwrap();
        assert_eq!(caches.builds(), 3, "an evicted key is built again");
    }

    #[test]
    fn a_cache_in_use_is_never_evicted() {
        let caches = store(1);
        let (first, nonce, want) = vector(1);
        let held = caches.get(&first).unwrap();
        let (second, ..) = vector(2);
        let other = caches.get(&second).unwrap();
        assert_ne!(held.raw(), other.raw());
        assert_eq!(hash(&caches, &held, nonce), want, "still keyed for its key");
        drop(other);
        // Both idle now, one over capacity: the next new key recycles the older one.
        drop(held);
        caches.get(&[9; 32]).unwrap();
        assert_eq!(caches.builds(), 3);
        assert_eq!(
            caches.state.lock_or_recover().entries.len(),
            1,
            "trimmed to capacity"
        );
    }

    #[test]
    fn one_shared_store_per_flags() {
        let flags = store(1).flags();
        let a = LightCaches::shared(flags);
        assert!(Arc::ptr_eq(&a, &LightCaches::shared(flags)));
        let other = RandomXFlags::resolve(
            &RandomXOptions {
                large_pages: false,
                transparent_huge_pages: false,
                ..RandomXOptions::default()
            }
            .light(),
        )
        .unwrap();
        assert!(!Arc::ptr_eq(&a, &LightCaches::shared(other)));
    }
}
