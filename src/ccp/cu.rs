//! One compute unit (CU) of the Fluence profile: its threads, pinned to the CPUs of the
//! physical core it is allocated to, hashing 32-byte local nonces with RandomX keyed by
//! `K = keccak256(global_nonce ‖ cu_id)` over the CU's own dataset (light mode: its cache).
//!
//! Thread 0 leads keying: when the job's key changes it waits until the other threads have
//! dropped their VMs, keys the cache and rebuilds the dataset in place (the same memory, epoch
//! after epoch), then publishes it; the others wait for it. A job whose key is unchanged (a new
//! difficulty alone) goes on hashing the same dataset. A move to another core changes only the
//! CPUs: each thread re-pins itself between two batches, and the dataset stays.
//!
//! Every batch looks at the job: a stop, a new key or a new epoch takes effect within one
//! batch of hashes. A proof is stored durably, with its index, before the thread hashes on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use capminer_kernels::key::{cpu_unit_key, meets_target};
use capminer_kernels::randomx::{Cache, Dataset, RandomXFlags, Vm, VmMemory, dataset_items_for};
use capminer_miner::topology::pin_current_thread;
use capminer_proofs::fluence::FluenceStore;
use capminer_protocol::FluenceEpoch;
use capminer_protocol::fluence::next_local_nonce;
use capminer_sync::{LockExt, recover};

use super::metrics::CcpMetrics;

/// Hashes between two looks at the job (pipelined in one call).
const BATCH: usize = 16;

/// What a CU's threads read: the job, the CPUs, the memory the leader published.
#[derive(Debug, Default)]
struct State {
    /// The epoch to hash in; `None`: idle.
    job: Option<FluenceEpoch>,
    /// The CPUs of the CU's core, and their version (bumped by a move).
    cpus: Vec<usize>,
    cpus_version: u64,
    stop: bool,
    /// Paused through the control API: the threads wait, the keyed memory stays.
    paused: bool,
    /// The keyed memory and its key.
    memory: Option<([u8; 32], VmMemory)>,
    failed: Option<String>,
}

#[derive(Debug)]
struct Shared {
    cu_id: [u8; 32],
    flags: RandomXFlags,
    store: Arc<FluenceStore>,
    metrics: CcpMetrics,
    state: Mutex<State>,
    changed: Condvar,
    building: AtomicBool,
    built_items: AtomicU64,
}

/// A running CU.
#[derive(Debug)]
pub(crate) struct CuProver {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl CuProver {
    /// Starts `threads` threads on `cpus` (the core's), hashing `job` as soon as keyed.
    pub(crate) fn start(
        cu_id: [u8; 32],
        cpus: Vec<usize>,
        threads: usize,
        flags: RandomXFlags,
        store: Arc<FluenceStore>,
        metrics: CcpMetrics,
        job: FluenceEpoch,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            cu_id,
            flags,
            store,
            metrics,
            state: Mutex::new(State {
                job: Some(job),
                cpus,
                cpus_version: 1,
                ..State::default()
            }),
            changed: Condvar::new(),
            building: AtomicBool::new(false),
            built_items: AtomicU64::new(0),
        });
        let label = hex::encode(&cu_id[..4]);
        let threads = (0..threads.max(1))
            .map(|t| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("cu-{label}-t{t}"))
                    .spawn(move || {
                        if let Err(e) = thread_main(&shared, t) {
                            tracing::error!(cu = %hex::encode(shared.cu_id), "CU thread {t} failed: {e}");
                            let mut state = shared.state.lock_or_recover();
                            state.failed.get_or_insert(e);
                            shared.changed.notify_all();
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { shared, threads })
    }

    /// Hashes in `job` from the next batch on (the dataset is rebuilt only if its key changed).
    pub(crate) fn set_job(&self, job: FluenceEpoch) {
        self.update(|s| s.job = Some(job));
    }

    /// Moves the CU's threads to `cpus`, keeping its dataset.
    pub(crate) fn move_to(&self, cpus: Vec<usize>) {
        self.update(|s| {
            if s.cpus != cpus {
                s.cpus = cpus;
                s.cpus_version += 1;
            }
        });
    }

    /// Pauses (the threads wait after their batch, keeping the keyed memory) or resumes it.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.update(|s| s.paused = paused);
    }

    /// True while paused.
    pub(crate) fn paused(&self) -> bool {
        self.shared.state.lock_or_recover().paused
    }

    /// Its hashing threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads.len()
    }

    /// True while the CU builds its dataset (or keys its cache).
    pub(crate) fn building(&self) -> bool {
        self.shared.building.load(Ordering::Acquire)
    }

    /// Dataset items built and in all while it builds its dataset; `None` otherwise (in light
    /// mode too: keying a cache has no items to count).
    pub(crate) fn build_progress(&self) -> Option<(u64, u64)> {
        let flags = self.shared.flags;
        (self.building() && flags.full_memory()).then(|| {
            (
                self.shared.built_items.load(Ordering::Relaxed),
                dataset_items_for(flags.flavor()),
            )
        })
    }

    /// Why a thread of the CU failed, if one did.
    pub(crate) fn failed(&self) -> Option<String> {
        self.shared.state.lock_or_recover().failed.clone()
    }

    /// Stops the threads (within a batch, or a dataset chunk) and waits for them. Blocking.
    pub(crate) fn stop(self) {
        self.update(|s| s.stop = true);
        for t in self.threads {
            let _ = t.join();
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.shared.state.lock_or_recover();
        change(&mut state);
        self.shared.changed.notify_all();
    }
}

/// A snapshot of what a thread acts on.
struct Look {
    job: Option<FluenceEpoch>,
    cpu: Option<(usize, u64)>,
    stop: bool,
}

fn look(shared: &Shared, t: usize) -> Look {
    let s = shared.state.lock_or_recover();
    Look {
        // A paused CU waits as an idle one does; a build under way goes on (see `interrupted`).
        job: if s.paused { None } else { s.job },
        cpu: (!s.cpus.is_empty()).then(|| (s.cpus[t % s.cpus.len()], s.cpus_version)),
        stop: s.stop || s.failed.is_some(),
    }
}

fn thread_main(shared: &Shared, t: usize) -> Result<(), String> {
    let mut pinned = 0;
    let mut vm: Option<([u8; 32], Vm)> = None;
    let mut nonce = [0u8; 32];
    let mut nonce_job: Option<FluenceEpoch> = None;
    let cu = hex::encode(shared.cu_id);
    let hashes = shared.metrics.hashes.with_label_values(&[&cu]);
    let found = shared.metrics.proofs_found.with_label_values(&[&cu]);
    loop {
        let now = look(shared, t);
        if now.stop {
            return Ok(());
        }
        if let Some((cpu, version)) = now.cpu.filter(|(_, v)| *v != pinned) {
            pin_current_thread(&[cpu]).map_err(|e| e.to_string())?;
            pinned = version;
        }
        let Some(job) = now.job else {
            let s = shared.state.lock_or_recover();
            let _ = recover(shared.changed.wait_timeout(s, Duration::from_millis(200)));
            continue;
        };
        let key = cpu_unit_key(&job.global_nonce, &shared.cu_id);
        if vm.as_ref().map(|(k, _)| *k) != Some(key) {
            vm = None; // releases the memory for the leader
            let memory = if t == 0 {
                rekey(shared, key)?
            } else {
                wait_for_key(shared, key)
            };
            let Some(memory) = memory else {
                continue; // a newer job or a stop came in meanwhile
            };
            vm = Some((
                key,
                Vm::new(shared.flags, memory).map_err(|e| e.to_string())?,
            ));
        }
        let (_, machine) = vm.as_mut().expect("keyed above");
        if nonce_job != Some(job) {
            nonce = random_nonce().map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
            nonce_job = Some(job);
        }
        let mut inputs = [[0u8; 32]; BATCH];
        for input in &mut inputs {
            *input = nonce;
            next_local_nonce(&mut nonce);
        }
        let refs: Vec<&[u8]> = inputs.iter().map(|i| i.as_slice()).collect();
        let results = machine.hash_batch(&refs);
        hashes.inc_by(BATCH as u64);
        for (input, hash) in inputs.iter().zip(&results) {
            if !meets_target(hash, &job.difficulty) {
                continue;
            }
            match shared.store.append(&job, shared.cu_id, *input, *hash) {
                Ok(Some(proof)) => {
                    found.inc();
                    tracing::debug!(cu = %cu, idx = proof.idx, "proof found");
                }
                Ok(None) => {} // the epoch changed under the batch: not a proof of the new one
                Err(e) => {
                    shared.metrics.store_errors.inc();
                    tracing::error!(cu = %cu, "proof lost: cannot store it: {e}");
                }
            }
        }
    }
}

/// The leader: keys the CU's memory for `key` and publishes it; `None` if interrupted.
fn rekey(shared: &Shared, key: [u8; 32]) -> Result<Option<VmMemory>, String> {
    let old = shared.state.lock_or_recover().memory.take().map(|(_, m)| m);
    // Wait until every other thread has dropped its VM (within one batch).
    while old.as_ref().is_some_and(|m| strong_count(m) > 1) {
        if interrupted(shared, &key) {
            shared.state.lock_or_recover().memory = old.map(|m| ([0; 32], m));
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    shared.built_items.store(0, Ordering::Relaxed);
    shared.building.store(true, Ordering::Release);
    let keyed = if shared.flags.full_memory() {
        build_dataset(shared, old, &key)
    } else {
        key_cache(shared, old, &key)
    };
    shared.building.store(false, Ordering::Release);
    let Some(memory) = keyed? else {
        return Ok(None);
    };
    let seconds = started.elapsed().as_secs_f64();
    shared.metrics.build_seconds.observe(seconds);
    tracing::info!(cu = %hex::encode(shared.cu_id), "keyed in {seconds:.1} s");
    let mut state = shared.state.lock_or_recover();
    state.memory = Some((key, memory.clone()));
    shared.changed.notify_all();
    Ok(Some(memory))
}

fn build_dataset(
    shared: &Shared,
    old: Option<VmMemory>,
    key: &[u8; 32],
) -> Result<Option<VmMemory>, String> {
    let reuse = match old {
        Some(VmMemory::Dataset(d)) => Some(d),
        _ => None,
    };
    let keyed = Cache::keyed_beside(shared.flags, key, || match reuse {
        Some(dataset) => Ok(dataset),
        None => Dataset::new(shared.flags).map(Arc::new),
    })
    .map_err(|e| e.to_string())?;
    let mut dataset = keyed.beside.map_err(|e| e.to_string())?;
    let cpus = shared.state.lock_or_recover().cpus.clone();
    let pin = |i: usize| {
        if let Some(cpu) = cpus.get(i % cpus.len().max(1)) {
            let _ = pin_current_thread(&[*cpu]);
        }
    };
    let stop = || interrupted(shared, key);
    let exclusive = Arc::get_mut(&mut dataset).expect("the leader holds the only reference");
    let done = exclusive.build(
        &keyed.cache,
        cpus.len().max(1),
        &pin,
        &shared.built_items,
        &stop,
    );
    Ok(done.then_some(VmMemory::Dataset(dataset)))
}

fn key_cache(
    shared: &Shared,
    old: Option<VmMemory>,
    key: &[u8; 32],
) -> Result<Option<VmMemory>, String> {
    let mut cache = match old {
        Some(VmMemory::Cache(c)) => c,
        _ => Arc::new(Cache::new(shared.flags.light()).map_err(|e| e.to_string())?),
    };
    Arc::get_mut(&mut cache)
        .expect("the leader holds the only reference")
        .init(key);
    Ok(Some(VmMemory::Cache(cache)))
}

/// Non-leaders: the memory keyed for `key`, once the leader has published it.
fn wait_for_key(shared: &Shared, key: [u8; 32]) -> Option<VmMemory> {
    let mut state = shared.state.lock_or_recover();
    loop {
        if let Some((k, m)) = &state.memory
            && *k == key
        {
            return Some(m.clone());
        }
        if state.stop
            || state.failed.is_some()
            || state.job.map(|j| job_key(shared, &j)) != Some(key)
        {
            return None;
        }
        state = recover(
            shared
                .changed
                .wait_timeout(state, Duration::from_millis(50)),
        )
        .0;
    }
}

/// True once the CU stops or its job needs another key than `key`.
fn interrupted(shared: &Shared, key: &[u8; 32]) -> bool {
    let s = shared.state.lock_or_recover();
    s.stop || s.job.map(|j| job_key(shared, &j)).as_ref() != Some(key)
}

fn job_key(shared: &Shared, job: &FluenceEpoch) -> [u8; 32] {
    cpu_unit_key(&job.global_nonce, &shared.cu_id)
}

fn strong_count(memory: &VmMemory) -> usize {
    match memory {
        VmMemory::Dataset(d) => Arc::strong_count(d),
        VmMemory::Cache(c) => Arc::strong_count(c),
    }
}

/// A fresh random local nonce (CCP starts every job at one).
fn random_nonce() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut nonce = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}
