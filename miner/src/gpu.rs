//! GPU units: a slice of one GPU's memory holding the unit's own dataset, built on the GPU from
//! the epoch's light cache, searched by the WGSL kernel, every hit re-checked on the CPU.
//!
//! One thread drives a unit: at a new epoch it takes the device's light cache (built on the CPU
//! and uploaded once per device and epoch, by the first of its units that asks), rebuilds the
//! dataset in place on the GPU (the device and the buffer are kept), and hashes rounds through
//! the same [`UnitContext::run_rounds`] as CPU units, with a [`CheckedSearcher`] between the
//! GPU and the proof store: a GPU hit whose hash the CPU reference does not reproduce, or that
//! misses the target, is a compute error, counted and never stored.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use capminer_config::GpuKernel;
use capminer_kernels::gpu::reference::{LightCache, UnitKeys, hash_light, hash_light_many};
use capminer_kernels::gpu::{
    DeviceInfo, GpuDataset, GpuDevice, GpuSearcher, Kernel, KernelChoice, Tuning,
};
use capminer_kernels::key::meets_target;
use capminer_kernels::{Searched, Searcher};
use capminer_proofs::{Epoch, UnitId};
use capminer_protocol::GpuChallenge;
use capminer_sync::LockExt;
use prometheus::Histogram;

use crate::error::panic_message;
use crate::fault::FaultKind;
use crate::metrics::MinerMetrics;
use crate::order::NonceOrder;
use crate::topology::current_tid;
use crate::unit::{BuildReport, Unit, UnitContext, UnitInfo, UnitState};
use crate::{MinerError, Result};

/// One GPU unit, placed on a device.
#[derive(Debug, Clone)]
pub struct GpuUnitPlan {
    /// `gpu<device>.<slot>`.
    pub label: String,
    /// Network-wide id.
    pub id: UnitId,
    /// The opened device, shared by its units.
    pub device: GpuDevice,
    /// Nonces per dispatch (`gpu.batch`), changeable while the unit hashes.
    pub batch: LiveBatch,
    /// The search kernel asked for (`gpu.kernel`).
    pub kernel: KernelChoice,
}

/// The kernel choice `gpu.kernel` states.
pub fn kernel_choice(kernel: GpuKernel) -> KernelChoice {
    match kernel {
        GpuKernel::Auto => KernelChoice::Auto,
        GpuKernel::Lanes => KernelChoice::Lanes,
        GpuKernel::Thread => KernelChoice::Thread,
    }
}

/// What a GPU unit reports beyond any unit's figures (for `capminer bench`).
#[derive(Debug, Clone)]
pub struct GpuUnitReport {
    /// Its device.
    pub device: DeviceInfo,
    /// The kernel it searches with (`None` before its first build).
    pub kernel: Option<Kernel>,
    /// Hits the GPU reported, since the unit started.
    pub hits_found: u64,
    /// Of those, the hits the CPU re-check refuted (compute errors).
    pub hits_refuted: u64,
    /// Seconds of the last light cache build on the CPU and its upload (once per device and
    /// epoch: the device's units share it).
    pub cache_seconds: f64,
    /// Seconds of the last dataset build on the GPU (submit to completion).
    pub build_seconds: f64,
    /// Device memory its dataset holds.
    pub memory_bytes: u64,
    /// Whether its kernels have wgpu's runtime checks (`gpu.runtime_checks`).
    pub runtime_checks: bool,
    /// Its batch, how it is tuned, and its dispatches' GPU seconds since it started.
    pub search: SearchStats,
}

/// Nonces per GPU dispatch, shared by the GPU units and changeable while they hash (a config
/// reload): the searcher picks a new value up at its next round.
#[derive(Debug, Clone, Default)]
pub struct LiveBatch(Arc<AtomicU32>);

impl LiveBatch {
    /// `None`: auto-tuned.
    pub fn new(batch: Option<u32>) -> Self {
        let live = Self::default();
        live.set(batch);
        live
    }

    /// The batch asked for (`None`: auto-tuned).
    pub fn get(&self) -> Option<u32> {
        Some(self.0.load(Ordering::Acquire)).filter(|b| *b > 0)
    }

    /// Asks for another batch.
    pub fn set(&self, batch: Option<u32>) {
        self.0.store(batch.unwrap_or(0), Ordering::Release);
    }
}

impl GpuUnitPlan {
    /// The same unit on its adapter opened again (after the device was lost).
    pub fn reopened(&self) -> Result<Self> {
        let was = &self.device.info;
        let adapters = capminer_kernels::gpu::enumerate();
        let (info, adapter) = adapters
            .iter()
            .find(|(d, _)| d.index == was.index && d.name == was.name)
            .ok_or_else(|| MinerError::UnitFailed {
                unit: self.label.clone(),
                reason: format!("GPU {} {} is gone", was.index, was.name),
            })?;
        let device = GpuDevice::open(info.clone(), adapter)
            .map_err(|e| MinerError::Kernel {
                unit: self.label.clone(),
                source: e.into(),
            })?
            .with_runtime_checks(self.device.runtime_checks());
        Ok(Self {
            device,
            ..self.clone()
        })
    }
}

/// The GPU's hits, re-checked with the CPU reference before they go on.
#[derive(Debug)]
pub struct CheckedSearcher {
    inner: GpuSearcher,
    cache: Arc<LightCache>,
    keys: UnitKeys,
    params: GpuChallenge,
    ctx: Arc<UnitContext>,
    /// The live batch setting and the value last applied.
    batch: Option<(LiveBatch, Option<u32>)>,
    /// Hits the GPU reported, before the re-check.
    found: Arc<AtomicU64>,
    /// The searcher's batch, tuning and GPU time, for reports.
    stats: Arc<Mutex<SearchStats>>,
    /// `inner.gpu_seconds()` and `inner.overflows()` when last added to `stats`.
    gpu_seen: f64,
    overflows_seen: u64,
}

/// A GPU unit's search figures, across its searchers (one an epoch).
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchStats {
    /// Nonces a dispatch now.
    pub batch: u32,
    /// How the batch is chosen (`None` before the first search).
    pub tuning: Option<Tuning>,
    /// GPU seconds of its dispatches (timestamp queries; 0 without).
    pub gpu_seconds: f64,
    /// Dispatches whose hits overflowed their result buffer (redone in halves).
    pub overflows: u64,
}

impl CheckedSearcher {
    /// Wraps a GPU searcher with the reference for the same epoch and unit; refuted hits are
    /// counted on the unit's context (`capminer_compute_errors_total`, and the watchdog).
    pub fn new(
        inner: GpuSearcher,
        cache: Arc<LightCache>,
        keys: UnitKeys,
        params: GpuChallenge,
        ctx: Arc<UnitContext>,
    ) -> Self {
        Self {
            inner,
            cache,
            keys,
            params,
            ctx,
            batch: None,
            found: Arc::default(),
            stats: Arc::default(),
            gpu_seen: 0.0,
            overflows_seen: 0,
        }
    }

    /// Keeps its batch, tuning and GPU time on `stats` as well.
    pub fn reporting_on(mut self, stats: Arc<Mutex<SearchStats>>) -> Self {
        self.stats = stats;
        self
    }

    /// Counts the hits the GPU reports (before the re-check) on `found` as well.
    pub fn counting_hits_on(mut self, found: Arc<AtomicU64>) -> Self {
        self.found = found;
        self
    }

    /// Hits the GPU reported, before the re-check.
    pub fn hits_found(&self) -> u64 {
        self.found.load(Ordering::Relaxed)
    }

    /// Follows `batch` (applied at the next round) instead of the batch it was created with.
    pub fn with_live_batch(mut self, batch: LiveBatch) -> Self {
        let now = batch.get();
        self.batch = Some((batch, now));
        self
    }
}

impl CheckedSearcher {
    /// Whether the CPU reference reproduces each hit's hash and finds it at or below the
    /// target, in order. Spread over the machine's CPUs (1.94 ms a hit at the network's
    /// parameters) while the GPU already hashes the range the searcher queued next.
    fn recheck(&self, hits: &[capminer_kernels::Hit], target: &[u8; 32]) -> Vec<bool> {
        // A chunk's hashes side by side (`hash_light_many`), each against its hit.
        let check = |chunk: &[capminer_kernels::Hit]| {
            let nonces: Vec<u64> = chunk.iter().map(|h| h.nonce).collect();
            let mut reference = vec![[0u8; 32]; chunk.len()];
            hash_light_many(
                &self.cache,
                &self.keys,
                &self.params,
                &nonces,
                &mut reference,
            );
            chunk
                .iter()
                .zip(&reference)
                .map(|(hit, r)| *r == hit.hash && meets_target(r, target))
                .collect::<Vec<bool>>()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if hits.len() < 2 || threads < 2 {
            return check(hits);
        }
        let per = hits.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = hits
                .chunks(per)
                .map(|chunk| (chunk.len(), scope.spawn(move || check(chunk))))
                .collect();
            parts
                .into_iter()
                // A panicking check refutes its hits.
                .flat_map(|(n, part)| part.join().unwrap_or_else(|_| vec![false; n]))
                .collect()
        })
    }
}

impl Searcher for CheckedSearcher {
    fn search(
        &mut self,
        start: u64,
        count: u64,
        target: &[u8; 32],
        stop: &mut dyn FnMut() -> bool,
    ) -> capminer_kernels::Result<Searched> {
        if let Some((live, applied)) = &mut self.batch
            && live.get() != *applied
        {
            *applied = live.get();
            self.inner.set_batch(*applied);
            tracing::info!(unit = %self.ctx.info.label, "GPU batch now {}", self.inner.batch());
        }
        if self.ctx.fault_due(FaultKind::DeviceLost) {
            self.inner.device().destroy();
        }
        let mut searched = self.inner.search(start, count, target, stop)?;
        {
            let mut stats = self.stats.lock_or_recover();
            stats.batch = self.inner.batch();
            stats.tuning = Some(self.inner.tuning());
            stats.gpu_seconds += self.inner.gpu_seconds() - self.gpu_seen;
            self.gpu_seen = self.inner.gpu_seconds();
            stats.overflows += self.inner.overflows() - self.overflows_seen;
            self.overflows_seen = self.inner.overflows();
        }
        if self.ctx.fault_due(FaultKind::Compute) {
            searched.hits.push(capminer_kernels::Hit {
                nonce: start,
                hash: [0; 32],
            });
        }
        self.found
            .fetch_add(searched.hits.len() as u64, Ordering::Relaxed);
        let verdicts = self.recheck(&searched.hits, target);
        let mut verdict = verdicts.into_iter();
        searched.hits.retain(|hit| {
            let good = verdict.next().unwrap_or(false);
            if !good {
                self.ctx.count_compute_error();
                tracing::warn!(unit = %self.ctx.info.label, nonce = hit.nonce, "GPU compute error: the CPU reference disagrees; result dropped");
            }
            good
        });
        Ok(searched)
    }

    fn hash_one(&mut self, nonce: u64) -> capminer_kernels::Result<[u8; 32]> {
        Ok(hash_light(&self.cache, &self.keys, &self.params, nonce))
    }
}

#[derive(Debug, Default)]
struct State {
    building: bool,
    hashing: Option<u64>,
    last_build: Option<BuildReport>,
    kernel: Option<Kernel>,
    cache_seconds: f64,
    gpu_build_seconds: f64,
    /// Halves of items built, of all (the dataset build's progress).
    progress: (u64, u64),
}

#[derive(Debug)]
struct Shared {
    ctx: Arc<UnitContext>,
    plan: GpuUnitPlan,
    params: GpuChallenge,
    state: Mutex<State>,
    tid: AtomicI32,
    hits_found: Arc<AtomicU64>,
    stats: Arc<Mutex<SearchStats>>,
    build_seconds: Histogram,
    memory: prometheus::IntGauge,
}

/// A running GPU unit.
#[derive(Debug)]
pub struct GpuUnit {
    shared: Arc<Shared>,
    thread: JoinHandle<Result<()>>,
}

impl GpuUnit {
    /// Starts the unit's thread; it allocates the dataset and waits for the first epoch.
    pub fn start(
        plan: GpuUnitPlan,
        params: GpuChallenge,
        ctx: Arc<UnitContext>,
        metrics: &MinerMetrics,
    ) -> Result<Self> {
        let labels = [ctx.info.label.as_str(), ctx.info.kind.as_str()];
        ctx.publish_info(
            metrics,
            &format!(
                "unit {} B, cache {} B, parents {}, accesses {}",
                params.unit_bytes, params.cache_bytes, params.parents, params.accesses
            ),
        );
        let shared = Arc::new(Shared {
            build_seconds: metrics.dataset_build_seconds.with_label_values(&labels),
            memory: metrics
                .gpu_memory
                .with_label_values(&[ctx.info.label.as_str(), plan.device.info.name.as_str()]),
            ctx,
            plan,
            params,
            state: Mutex::new(State::default()),
            tid: AtomicI32::new(0),
            hits_found: Arc::default(),
            stats: Arc::default(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(shared.ctx.info.label.clone())
            .spawn(move || {
                let result = thread_main(&s);
                if let Err(e) = &result {
                    tracing::error!(unit = %s.ctx.info.label, "GPU unit failed: {e}");
                    s.ctx.mark_failed();
                }
                result
            })
            .map_err(|source| MinerError::Spawn {
                unit: shared.ctx.info.label.clone(),
                source,
            })?;
        Ok(Self { shared, thread })
    }
}

fn thread_main(shared: &Shared) -> Result<()> {
    shared.tid.store(current_tid(), Ordering::Release);
    let ctx = &shared.ctx;
    let gpu = |e: capminer_kernels::gpu::GpuError| MinerError::Kernel {
        unit: ctx.info.label.clone(),
        source: e.into(),
    };
    let dataset = Arc::new(GpuDataset::new(&shared.plan.device, shared.params).map_err(gpu)?);
    shared.memory.set(dataset.bytes() as i64);
    let mut keyed: Option<(u64, CheckedSearcher, Arc<NonceOrder>, Epoch)> = None;
    loop {
        let snap = ctx.control.snapshot_for(&ctx.info.label);
        if snap.stopped || ctx.should_exit() {
            return Ok(());
        }
        let Some((seq, epoch)) = snap.epoch.filter(|_| !snap.paused) else {
            shared.state.lock_or_recover().hashing = None;
            ctx.control
                .wait_for_change(snap.generation, Duration::from_secs(1));
            continue;
        };
        if keyed.as_ref().map(|k| k.0) != Some(seq) {
            // The batch the last epoch's searcher tuned itself to: the next one starts there.
            let mut tuned = None;
            if let Some((_, searcher, order, _)) = keyed.take() {
                tuned = Some(searcher.inner.batch());
                ctx.retire(&order);
            }
            {
                let mut state = shared.state.lock_or_recover();
                state.building = true;
                state.progress = (0, 0);
            }
            let started = Instant::now();
            // The device's cache for this epoch: built and uploaded by the first of its units
            // that asks, the others wait for it.
            let (device_cache, built_here) = shared
                .plan
                .device
                .epoch_cache(epoch.seed.as_bytes(), &shared.params);
            let cache = device_cache.cpu.clone();
            let keys = UnitKeys::new(epoch.seed.as_bytes(), ctx.info.id.as_bytes());
            let cache_seconds = device_cache.cpu_seconds + device_cache.upload_seconds;
            let gpu_started = Instant::now();
            dataset.build_from(&device_cache, &keys, &mut |done, total| {
                shared.state.lock_or_recover().progress = (done, total);
            });
            let gpu_seconds = gpu_started.elapsed().as_secs_f64();
            let seconds = started.elapsed().as_secs_f64();
            shared.build_seconds.observe(seconds);
            let cache_note = if built_here {
                "built here"
            } else {
                "the device's, shared"
            };
            let kernel = shared.plan.device.kernel(shared.plan.kernel);
            tracing::info!(unit = %ctx.info.label, epoch = epoch.number, %kernel, "GPU dataset built in {gpu_seconds:.2} s, {seconds:.2} s with the light cache ({cache_seconds:.2} s on the CPU and upload, {cache_note})");
            let searcher = CheckedSearcher::new(
                {
                    let mut searcher = dataset
                        .searcher(&keys, shared.plan.batch.get(), kernel)
                        .map_err(gpu)?;
                    if let Some(batch) = tuned {
                        searcher.tune_from(batch);
                    }
                    searcher
                },
                cache,
                keys,
                shared.params,
                ctx.clone(),
            )
            .with_live_batch(shared.plan.batch.clone())
            .counting_hits_on(shared.hits_found.clone())
            .reporting_on(shared.stats.clone());
            let order = ctx.open_order(epoch.number, 1);
            let mut state = shared.state.lock_or_recover();
            state.building = false;
            state.kernel = Some(kernel);
            state.cache_seconds = cache_seconds;
            state.gpu_build_seconds = gpu_seconds;
            state.last_build = Some(BuildReport {
                epoch: epoch.number,
                seconds,
                huge_pages: 0.0,
                key_seconds: cache_seconds,
                dataset_init: None,
            });
            drop(state);
            keyed = Some((seq, searcher, order, epoch));
        }
        let (_, searcher, order, epoch) = keyed.as_mut().expect("keyed above");
        shared.state.lock_or_recover().hashing = Some(epoch.number);
        ctx.run_rounds(0, searcher, order, epoch, snap.generation)?;
    }
}

impl Unit for GpuUnit {
    fn info(&self) -> &UnitInfo {
        &self.shared.ctx.info
    }

    fn hashes(&self) -> u64 {
        self.shared.ctx.hashes()
    }

    fn state(&self) -> UnitState {
        let state = self.shared.state.lock_or_recover();
        if self.shared.ctx.failed() {
            UnitState::Failed
        } else if state.building {
            let (done, total) = state.progress;
            UnitState::Building { done, total }
        } else {
            state.hashing.map_or(UnitState::Idle, UnitState::Hashing)
        }
    }

    fn last_build(&self) -> Option<BuildReport> {
        self.shared.state.lock_or_recover().last_build
    }

    fn gpu_report(&self) -> Option<GpuUnitReport> {
        let state = self.shared.state.lock_or_recover();
        Some(GpuUnitReport {
            device: self.shared.plan.device.info.clone(),
            kernel: state.kernel,
            hits_found: self.shared.hits_found.load(Ordering::Relaxed),
            hits_refuted: self.shared.ctx.compute_errors(),
            cache_seconds: state.cache_seconds,
            build_seconds: state.gpu_build_seconds,
            memory_bytes: self.shared.params.unit_bytes,
            runtime_checks: self.shared.plan.device.runtime_checks(),
            search: *self.shared.stats.lock_or_recover(),
        })
    }

    fn thread_ids(&self) -> Vec<i32> {
        match self.shared.tid.load(Ordering::Acquire) {
            0 => Vec::new(),
            tid => vec![tid],
        }
    }

    fn threads_exited(&self) -> (usize, usize) {
        (usize::from(self.thread.is_finished()), 1)
    }

    fn join(self: Box<Self>) -> Result<()> {
        self.thread.join().unwrap_or_else(|payload| {
            Err(MinerError::Panicked {
                unit: self.shared.ctx.info.label.clone(),
                message: panic_message(payload),
            })
        })
    }
}
