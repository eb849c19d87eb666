//! CPU units: one physical core, its SMT siblings pinned one thread each, one RandomX dataset.
//!
//! Thread 0 of a unit leads re-keying. At a new epoch every thread drops its VM; the leader
//! waits until it holds the only reference to the unit's dataset, keys a fresh cache with
//! `K = keccak256(seed ‖ unit_id)`, rebuilds the dataset in place on `dataset_threads` threads
//! (pinned to the unit's CPUs when they fit there), and publishes it with a new nonce order.
//! Then every thread creates a VM over it and hashes rounds. In light mode the cache itself is
//! what the VMs read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use capminer_kernels::KernelError;
use capminer_kernels::key::cpu_unit_key;
use capminer_kernels::randomx::{
    Cache, Dataset, PageSize, RandomXFlags, RandomXSearcher, Vm, VmMemory, dataset_items_for,
};
use capminer_proofs::Epoch;
use capminer_sync::{LockExt, recover};
use prometheus::{Gauge, Histogram};

use crate::error::panic_message;
use crate::metrics::MinerMetrics;
use crate::order::NonceOrder;
use crate::plan::CpuUnitPlan;
use crate::topology::{current_tid, pin_current_thread};
use crate::unit::{BuildReport, Unit, UnitContext, UnitInfo, UnitState};
use crate::{MinerError, Result};

/// What the leader publishes for one epoch.
#[derive(Debug, Default)]
struct Slot {
    /// Epoch sequence the memory is keyed for (0: none).
    seq: u64,
    epoch: Option<Epoch>,
    memory: Option<VmMemory>,
    order: Option<Arc<NonceOrder>>,
    failed: Option<String>,
}

#[derive(Debug)]
struct Shared {
    ctx: Arc<UnitContext>,
    plan: CpuUnitPlan,
    flags: RandomXFlags,
    slot: Mutex<Slot>,
    ready: Condvar,
    built_items: AtomicU64,
    building: AtomicU64,
    hashing_epoch: AtomicU64,
    tids: Mutex<Vec<i32>>,
    last_build: Mutex<Option<BuildReport>>,
    build_seconds: Histogram,
    huge_pages: Gauge,
}

/// A running CPU unit.
#[derive(Debug)]
pub struct CpuUnit {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl CpuUnit {
    /// Starts the unit's threads; they wait for the first epoch.
    pub fn start(
        plan: CpuUnitPlan,
        flags: RandomXFlags,
        ctx: Arc<UnitContext>,
        metrics: &MinerMetrics,
    ) -> Result<Self> {
        let labels = [ctx.info.label.as_str(), ctx.info.kind.as_str()];
        ctx.publish_info(metrics, &flags.to_string());
        let shared = Arc::new(Shared {
            build_seconds: metrics.dataset_build_seconds.with_label_values(&labels),
            huge_pages: metrics.huge_pages.with_label_values(&labels),
            ctx,
            plan,
            flags,
            slot: Mutex::new(Slot::default()),
            ready: Condvar::new(),
            built_items: AtomicU64::new(0),
            building: AtomicU64::new(0),
            hashing_epoch: AtomicU64::new(u64::MAX),
            tids: Mutex::new(Vec::new()),
            last_build: Mutex::new(None),
        });
        let threads = (0..shared.plan.threads)
            .map(|t| {
                let label = shared.ctx.info.label.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("{label}-t{t}"))
                    .spawn(move || {
                        let result = thread_main(&shared, t);
                        if let Err(e) = &result {
                            tracing::error!(unit = %shared.ctx.info.label, "unit thread {t} failed: {e}");
                            shared.ctx.mark_failed();
                            let mut slot = shared.slot.lock_or_recover();
                            slot.failed.get_or_insert_with(|| e.to_string());
                            shared.ready.notify_all();
                        }
                        result
                    })
                    .map_err(|source| MinerError::Spawn {
                        unit: label,
                        source,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { shared, threads })
    }
}

impl Unit for CpuUnit {
    fn info(&self) -> &UnitInfo {
        &self.shared.ctx.info
    }

    fn hashes(&self) -> u64 {
        self.shared.ctx.hashes()
    }

    fn state(&self) -> UnitState {
        let s = &self.shared;
        if s.ctx.failed() {
            return UnitState::Failed;
        }
        if s.building.load(Ordering::Acquire) != 0 {
            let total = if s.flags.full_memory() {
                dataset_items_for(s.flags.flavor())
            } else {
                0
            };
            return UnitState::Building {
                done: s.built_items.load(Ordering::Relaxed),
                total,
            };
        }
        match s.hashing_epoch.load(Ordering::Acquire) {
            u64::MAX => UnitState::Idle,
            e => UnitState::Hashing(e),
        }
    }

    fn last_build(&self) -> Option<BuildReport> {
        *self.shared.last_build.lock_or_recover()
    }

    fn thread_ids(&self) -> Vec<i32> {
        self.shared.tids.lock_or_recover().clone()
    }

    fn threads_exited(&self) -> (usize, usize) {
        let exited = self.threads.iter().filter(|t| t.is_finished()).count();
        (exited, self.threads.len())
    }

    fn join(self: Box<Self>) -> Result<()> {
        let mut first = Ok(());
        for t in self.threads {
            let r = t.join().unwrap_or_else(|payload| {
                Err(MinerError::Panicked {
                    unit: self.shared.ctx.info.label.clone(),
                    message: panic_message(payload),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

fn thread_main(shared: &Shared, t: usize) -> Result<()> {
    let cpus = &shared.plan.core.cpus;
    pin_current_thread(&[cpus[t % cpus.len()]])?;
    shared.tids.lock_or_recover().push(current_tid());
    let ctx = &shared.ctx;
    let mut keyed: Option<(u64, RandomXSearcher, Arc<NonceOrder>, Epoch)> = None;
    loop {
        let snap = ctx.control.snapshot_for(&ctx.info.label);
        if snap.stopped || ctx.should_exit() {
            return Ok(());
        }
        let Some((seq, _)) = snap.epoch.filter(|_| !snap.paused) else {
            if t == 0 {
                shared.hashing_epoch.store(u64::MAX, Ordering::Release);
            }
            ctx.control
                .wait_for_change(snap.generation, Duration::from_secs(1));
            continue;
        };
        if keyed.as_ref().map(|k| k.0) != Some(seq) {
            keyed = None; // drop our VM, releasing the dataset for the leader
            let published = if t == 0 {
                rekey(shared, seq)?
            } else {
                wait_for_keys(shared, seq)?
            };
            let Some((memory, order, epoch)) = published else {
                continue; // a newer epoch or a stop came in meanwhile
            };
            let vm = Vm::new(shared.flags, memory).map_err(|source| MinerError::Kernel {
                unit: ctx.info.label.clone(),
                source,
            })?;
            keyed = Some((seq, RandomXSearcher::new(vm), order, epoch));
        }
        let (_, searcher, order, epoch) = keyed.as_mut().expect("keyed above");
        if t == 0 {
            shared.hashing_epoch.store(epoch.number, Ordering::Release);
        }
        ctx.run_rounds(t, searcher, order, epoch, snap.generation)?;
    }
}

type Published = Option<(VmMemory, Arc<NonceOrder>, Epoch)>;

/// Non-leaders: wait until the leader has keyed the unit for epoch `seq`.
fn wait_for_keys(shared: &Shared, seq: u64) -> Result<Published> {
    let mut slot = shared.slot.lock_or_recover();
    loop {
        if let Some(reason) = &slot.failed {
            return Err(MinerError::UnitFailed {
                unit: shared.ctx.info.label.clone(),
                reason: reason.clone(),
            });
        }
        if slot.seq == seq {
            return Ok(Some((
                slot.memory.clone().expect("keyed slot has memory"),
                slot.order.clone().expect("keyed slot has an order"),
                slot.epoch.expect("keyed slot has an epoch"),
            )));
        }
        if shared.ctx.interrupted(seq) {
            return Ok(None);
        }
        slot = recover(shared.ready.wait_timeout(slot, Duration::from_millis(50))).0;
    }
}

/// The leader: re-key the unit's memory for epoch `seq` and publish it.
fn rekey(shared: &Shared, seq: u64) -> Result<Published> {
    let ctx = &shared.ctx;
    let control = &ctx.control;
    let (memory, old_order) = {
        let mut slot = shared.slot.lock_or_recover();
        slot.seq = 0;
        (slot.memory.take(), slot.order.take())
    };
    if let Some(order) = old_order {
        ctx.retire(&order);
    }
    let Some((_, epoch)) = control.epoch().filter(|(s, _)| *s == seq) else {
        return Ok(None);
    };
    // Wait until every other thread has dropped its VM (within one hash).
    while memory.as_ref().is_some_and(|m| strong_count(m) > 1) {
        if ctx.interrupted(seq) {
            put_back(shared, memory);
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let key = cpu_unit_key(epoch.seed.as_bytes(), ctx.info.id.as_bytes());
    let started = Instant::now();
    shared.built_items.store(0, Ordering::Relaxed);
    shared.building.store(1, Ordering::Release);
    let keyed = if shared.flags.full_memory() {
        build_dataset(shared, memory, &key, seq)?
    } else {
        key_light_cache(shared, memory, &key)?
    };
    shared.building.store(0, Ordering::Release);
    let Some(memory) = keyed.memory else {
        return Ok(None); // interrupted: the dataset is half built, rebuild at the next epoch
    };
    report_build(
        shared,
        epoch.number,
        started.elapsed().as_secs_f64(),
        keyed.pages,
        keyed.key_seconds,
    );
    let order = ctx.open_order(epoch.number, shared.plan.threads);
    let mut slot = shared.slot.lock_or_recover();
    *slot = Slot {
        seq,
        epoch: Some(epoch),
        memory: Some(memory.clone()),
        order: Some(order.clone()),
        failed: None,
    };
    shared.ready.notify_all();
    Ok(Some((memory, order, epoch)))
}

/// What keying produced: the memory (`None` if a newer epoch or a stop interrupted the
/// build), the pages it is on, and the seconds the cache's keying took (0 in light mode).
struct Keyed {
    memory: Option<VmMemory>,
    pages: PageSize,
    key_seconds: f64,
}

/// Full mode: keys a cache and builds the dataset from it, reusing the unit's dataset when it
/// had one (a first one is allocated beside the cache's keying, see `Cache::keyed_beside`).
fn build_dataset(
    shared: &Shared,
    memory: Option<VmMemory>,
    key: &[u8; 32],
    seq: u64,
) -> Result<Keyed> {
    let kernel = kernel_error(shared);
    let built = match memory {
        Some(VmMemory::Dataset(d)) => Some(d),
        _ => None,
    };
    let keyed = Cache::keyed_beside(shared.flags, key, || match built {
        Some(dataset) => Ok(dataset),
        None => Dataset::new(shared.flags).map(Arc::new),
    })
    .map_err(kernel)?;
    let cache = keyed.cache;
    let mut dataset = keyed.beside.map_err(kernel)?;
    let cpus = &shared.plan.dataset_cpus;
    let pin = |i: usize| {
        if let Err(e) = pin_current_thread(&[cpus[i % cpus.len()]]) {
            tracing::warn!("dataset build thread {i}: {e}");
        }
    };
    let stop = || shared.ctx.interrupted(seq);
    let exclusive = Arc::get_mut(&mut dataset).expect("leader holds the only dataset reference");
    let done = exclusive.build(
        &cache,
        shared.plan.dataset_threads,
        &pin,
        &shared.built_items,
        &stop,
    );
    let pages = dataset.pages();
    Ok(Keyed {
        memory: done.then_some(VmMemory::Dataset(dataset)),
        pages,
        key_seconds: keyed.key_seconds,
    })
}

/// Light mode: keys the unit's cache in place (a new one if it had none).
fn key_light_cache(shared: &Shared, memory: Option<VmMemory>, key: &[u8; 32]) -> Result<Keyed> {
    let mut cache = match memory {
        Some(VmMemory::Cache(c)) => c,
        _ => Arc::new(Cache::new(shared.flags.light()).map_err(kernel_error(shared))?),
    };
    Arc::get_mut(&mut cache)
        .expect("leader holds the only cache reference")
        .init(key);
    let pages = cache.pages();
    Ok(Keyed {
        memory: Some(VmMemory::Cache(cache)),
        pages,
        key_seconds: 0.0,
    })
}

/// A kernel error of this unit.
fn kernel_error(shared: &Shared) -> impl Fn(KernelError) -> MinerError + Copy + '_ {
    |source| MinerError::Kernel {
        unit: shared.ctx.info.label.clone(),
        source,
    }
}

/// Publishes a finished build: metrics, the unit's build report, a log line.
fn report_build(shared: &Shared, epoch: u64, seconds: f64, pages: PageSize, key_seconds: f64) {
    shared.build_seconds.observe(seconds);
    shared.huge_pages.set(pages.huge_share());
    *shared.last_build.lock_or_recover() = Some(BuildReport {
        epoch,
        seconds,
        huge_pages: pages.huge_share(),
        key_seconds,
        dataset_init: shared
            .flags
            .full_memory()
            .then(|| shared.flags.dataset_init()),
    });
    tracing::info!(
        unit = %shared.ctx.info.label,
        epoch,
        "keyed in {seconds:.1} s ({}, cache key {key_seconds:.1} s, {} pages, {} build threads)",
        if shared.flags.full_memory() {
            format!("dataset by {}", shared.flags.dataset_init())
        } else {
            "light cache".to_string()
        },
        pages,
        shared.plan.dataset_threads,
    );
}

fn put_back(shared: &Shared, memory: Option<VmMemory>) {
    shared.slot.lock_or_recover().memory = memory;
}

fn strong_count(memory: &VmMemory) -> usize {
    match memory {
        VmMemory::Dataset(d) => Arc::strong_count(d),
        VmMemory::Cache(c) => Arc::strong_count(c),
    }
}
