//! The GPU search as a [`Searcher`]: dispatches of a batch of nonces, always one queued while
//! another is read back, the batch auto-tuned to about 100 ms a submit, and up to a round's
//! worth of the next range's dispatches queued before a search returns, so the GPU works while
//! the caller re-checks and stores the hits. Uniform buffers and bind groups are made once per
//! result slot.
//!
//! A result buffer holds [`MAX_HITS`] hits, and at an easy target a dispatch is cut to the
//! nonces that expect at most a quarter of that ([`nonces_for_hits`]), so a dispatch whose hits
//! overflow its buffer (redone in halves, synchronously: the GPU idles meanwhile) stays a
//! rare accident instead of the rule whenever the target is easy.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::dataset::GpuDataset;
use super::device::GpuDevice;
use super::error::GpuError;
use super::kernel::{Kernel, SearchPipelines};
use super::reference::UnitKeys;
use crate::search::{Hit, Searched, Searcher};

/// Hits one dispatch can report (a result buffer is 40 KiB); a dispatch is cut to expect at
/// most a quarter of them, and one that still finds more is redone in halves.
pub const MAX_HITS: u32 = 1024;
/// Nonces one dispatch may search. Above 65 535 workgroups a dispatch is a 2-D grid of
/// them (see `GpuDevice::dispatch`; the kernels index `gid.x + gid.y * groups.x * WG`), so a
/// batch is not held to one row's 4 194 240 (65 535 × 64); 2^30 keeps that index, which
/// can exceed the count by up to one row, within a `u32`.
pub const MAX_BATCH: u32 = 1 << 30;

/// Words a hit takes in a result buffer: the nonce (2) and the hash (8).
const HIT_WORDS: u32 = 10;

/// Bytes of a dispatch's parameters: 8 words, the header (8) and the target (8).
const PARAMS_BYTES: u64 = 24 * 4;

/// Bytes of a result buffer: the hit count and `MAX_HITS` slots.
const RESULT_BYTES: u64 = (4 + MAX_HITS * HIT_WORDS * 4) as u64;

/// The GPU search as a [`Searcher`]: dispatches of `batch` nonces, auto-tuned to about
/// 100 ms of work a submit unless fixed by the operator. The next dispatch is always queued
/// while one is read back, and when a search returns up to [`AHEAD`] more are queued for the
/// range that follows.
pub struct GpuSearcher {
    dataset: Arc<GpuDataset>,
    kernel: Kernel,
    pipelines: Arc<SearchPipelines>,
    header: [u32; 8],
    /// [`RING`] slots taken in turn by the dispatches in flight (at most [`AHEAD`] at once, so
    /// the next slot in turn is free), and one more ([`SPLIT_SLOT`]) for the synchronous
    /// halves of an overflowed dispatch, so those never overwrite the results of one queued.
    slots: [Slot; RING + 1],
    /// The slot the next dispatch takes.
    next_slot: usize,
    /// GPU times of the dispatches, where the device has timestamp queries.
    timer: Option<Timer>,
    /// How the batch is chosen.
    tuning: Tuning,
    /// GPU seconds of the dispatches read back so far (timestamp queries; 0 without).
    gpu_seconds: f64,
    batch: u32,
    tune: bool,
    /// Hits a dispatch may report: [`MAX_HITS`], less only in tests that overflow it.
    max_hits: u32,
    /// Dispatches whose hits overflowed their result buffer (each redone in halves).
    overflows: u64,
    /// Dispatches queued after the last search, in nonce order, with their target (see
    /// [`Searcher::search`]).
    ahead: (VecDeque<Pending>, [u8; 32]),
}

/// What one dispatch in flight uses, created once and reused by every dispatch in the slot:
/// a dispatch's parameters are written into its uniform buffer with `Queue::write_buffer`,
/// which takes effect at the next submit, after the submits before it (so a queued dispatch
/// keeps the parameters it was submitted with).
struct Slot {
    /// The search parameters (uniform).
    params: wgpu::Buffer,
    /// The hit count and hits (storage).
    results: wgpu::Buffer,
    /// `results` copied for reading back.
    staging: wgpu::Buffer,
    /// Binds `params`, the dataset and `results` to the search pipeline.
    group: wgpu::BindGroup,
}

/// Timestamp queries: a start and an end per result slot, resolved into 256-byte strides
/// (the resolve alignment) and copied behind the slot's results into its staging buffer.
struct Timer {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    /// Nanoseconds a timestamp tick.
    period: f64,
}

/// Bytes between two slots' resolved timestamps (`wgpu::QUERY_RESOLVE_BUFFER_ALIGNMENT`).
const RESOLVE_STRIDE: u64 = 256;

/// How a searcher's batch is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// Fixed by the operator (`gpu.batch`).
    Fixed,
    /// Auto-tuned from each dispatch's GPU time (timestamp queries).
    Timestamps,
    /// Auto-tuned from the wall-clock time between completions (no timestamp queries).
    WallClock,
}

impl Tuning {
    /// Its name in reports: "fixed", "gpu timestamps", "wall clock".
    pub fn name(self) -> &'static str {
        match self {
            Tuning::Fixed => "fixed",
            Tuning::Timestamps => "gpu timestamps",
            Tuning::WallClock => "wall clock",
        }
    }
}

/// A dispatch in flight.
struct Pending {
    slot: usize,
    start: u64,
    count: u32,
    submission: wgpu::SubmissionIndex,
}

impl std::fmt::Debug for GpuSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuSearcher({}, batch {})", self.kernel, self.batch)
    }
}

/// Dispatches a search keeps in flight: the next one queued while the last is read back.
const IN_FLIGHT: usize = 2;
/// Dispatches at most queued when a search returns, covering up to what it hashed: the GPU
/// keeps hashing the next round's range while the caller re-checks and stores the hits (a
/// slow fsync included), up to about a round's worth (two auto-tuned dispatches of ~100 ms
/// against 200 ms rounds: more would make every round wait for work queued before it).
const AHEAD: usize = 2;
/// Result slots in turn: one more than ever in flight at once.
const RING: usize = AHEAD + 1;
/// The result slot of [`GpuSearcher::search_split`].
const SPLIT_SLOT: usize = RING;

/// The first batch when auto-tuned: small, so that a slow device (a software one, or one
/// shared by many units) is not stuck for seconds in its first dispatch; the first timed
/// dispatch scales it to [`TARGET_SUBMIT`] in one step however far that is.
pub const FIRST_BATCH: u32 = 1 << 12;

/// Work a submit should take when auto-tuned.
const TARGET_SUBMIT: Duration = Duration::from_millis(100);

impl GpuSearcher {
    /// A searcher over `dataset` for a unit's header (see [`GpuDataset::searcher`]).
    pub(super) fn new(
        dataset: Arc<GpuDataset>,
        keys: &UnitKeys,
        batch: Option<u32>,
        kernel: Kernel,
    ) -> Result<Self, GpuError> {
        let d = &dataset.device;
        let pipelines = d.search_pipelines(&dataset.params, kernel)?;
        let workgroup = pipelines.workgroup;
        let buffer = |label, size, usage| {
            d.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let slots = [(); RING + 1].map(|()| {
            let params = buffer(
                "search params",
                PARAMS_BYTES,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let results = buffer(
                "results",
                RESULT_BYTES,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            );
            let staging = buffer(
                "results staging",
                RESULT_BYTES + 16,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let group = d.bind(
                &pipelines.search,
                &[(0, &params), (1, &dataset.buffer), (2, &results)],
            );
            Slot {
                params,
                results,
                staging,
                group,
            }
        });
        let timer = d.info.timestamps.then(|| Timer {
            queries: d.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("dispatch times"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * (RING as u32 + 1),
            }),
            resolve: buffer(
                "dispatch times",
                RESOLVE_STRIDE * (RING as u64 + 1),
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            period: f64::from(d.queue.get_timestamp_period()),
        });
        let tuning = match (batch, d.info.timestamps) {
            (Some(_), _) => Tuning::Fixed,
            (None, true) => Tuning::Timestamps,
            (None, false) => Tuning::WallClock,
        };
        Ok(Self {
            dataset,
            kernel,
            pipelines,
            header: keys.header_words(),
            slots,
            next_slot: 0,
            timer,
            tuning,
            gpu_seconds: 0.0,
            batch: batch.unwrap_or(FIRST_BATCH).clamp(workgroup, MAX_BATCH),
            tune: batch.is_none(),
            max_hits: MAX_HITS,
            overflows: 0,
            ahead: (VecDeque::new(), [0; 32]),
        })
    }

    /// Reports at most `hits` hits a dispatch (at most [`MAX_HITS`]) while dispatches are
    /// still cut for `MAX_HITS`: for tests of a dispatch that overflows its result buffer.
    #[doc(hidden)]
    pub fn limit_hits(&mut self, hits: u32) {
        self.max_hits = hits.clamp(1, MAX_HITS);
    }

    /// The kernel it runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Sets the nonces per dispatch from the next dispatch on; `None`: auto-tuned again, from
    /// the batch in use.
    pub fn set_batch(&mut self, batch: Option<u32>) {
        if let Some(b) = batch {
            self.batch = b.clamp(self.pipelines.workgroup, MAX_BATCH);
        }
        self.tune = batch.is_none();
        self.tuning = match (batch, self.timer.is_some()) {
            (Some(_), _) => Tuning::Fixed,
            (None, true) => Tuning::Timestamps,
            (None, false) => Tuning::WallClock,
        };
    }

    /// GPU seconds of the search dispatches read back so far, by timestamp queries (0 where
    /// the adapter has none): over a wall-clock interval, how busy the searches kept the GPU.
    pub fn gpu_seconds(&self) -> f64 {
        self.gpu_seconds
    }

    /// How the batch is chosen.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// When auto-tuned: tunes on from `batch` (a previous searcher's on the same device, at a
    /// new epoch) instead of the default; a fixed batch stays.
    pub fn tune_from(&mut self, batch: u32) {
        if self.tune {
            self.batch = batch.clamp(self.pipelines.workgroup, MAX_BATCH);
        }
    }

    /// Dispatches whose hits overflowed their result buffer, since it was made: each was
    /// redone in halves while the GPU waited.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Dispatches queued by the last search for the range after it.
    pub fn queued_ahead(&self) -> usize {
        self.ahead.0.len()
    }

    /// Nonces per dispatch now.
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// The device it searches on.
    pub fn device(&self) -> &GpuDevice {
        &self.dataset.device
    }

    /// The search parameters of a dispatch (`SearchParams` in `search_io.wgsl`).
    fn uniform(&self, start: u64, count: u32, target: &[u8; 32]) -> Vec<u32> {
        let p = &self.dataset.params;
        let mut uniform = vec![
            p.items(),
            p.accesses,
            start as u32,
            (start >> 32) as u32,
            count,
            self.max_hits,
            0,
            0,
        ];
        uniform.extend_from_slice(&self.header);
        uniform.extend(
            target
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes"))),
        );
        debug_assert_eq!(uniform.len() * 4, PARAMS_BYTES as usize);
        uniform
    }

    /// Every hash of nonces `start..start + count`, as the GPU computes them.
    pub fn hash_range(&self, start: u64, count: u32) -> Result<Vec<[u8; 32]>, GpuError> {
        let d = &self.dataset.device;
        let out = d.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hashes"),
            size: u64::from(count) * 32,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let params = d
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("hash params"),
                contents: bytemuck::cast_slice(&self.uniform(start, count, &[0; 32])),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let p = &self.pipelines;
        let group = d.bind(
            &p.hash_all,
            &[(0, &params), (1, &self.dataset.buffer), (3, &out)],
        );
        d.queue
            .submit([d.dispatch(&p.hash_all, &group, count, p.workgroup)]);
        let words = d.read(&out, u64::from(count) * 32)?;
        Ok(words.chunks_exact(8).map(hash_bytes).collect())
    }

    /// Submits a search of `start..start + count` into result slot `slot` (reset first), with
    /// the copy of its results to the slot's staging buffer.
    fn submit(&self, slot: usize, start: u64, count: u32, target: &[u8; 32]) -> Pending {
        let d = &self.dataset.device;
        let s = &self.slots[slot];
        d.queue.write_buffer(&s.results, 0, &[0u8; 4]);
        d.queue.write_buffer(
            &s.params,
            0,
            bytemuck::cast_slice(&self.uniform(start, count, target)),
        );
        let p = &self.pipelines;
        let writes = self
            .timer
            .as_ref()
            .map(|t| wgpu::ComputePassTimestampWrites {
                query_set: &t.queries,
                beginning_of_pass_write_index: Some(2 * slot as u32),
                end_of_pass_write_index: Some(2 * slot as u32 + 1),
            });
        let search = d.dispatch_timed(&p.search, &s.group, count, p.workgroup, writes);
        let mut enc = d.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&s.results, 0, &s.staging, 0, RESULT_BYTES);
        if let Some(t) = &self.timer {
            let at = RESOLVE_STRIDE * slot as u64;
            let first = 2 * slot as u32;
            enc.resolve_query_set(&t.queries, first..first + 2, &t.resolve, at);
            enc.copy_buffer_to_buffer(&t.resolve, at, &s.staging, RESULT_BYTES, 16);
        }
        let submission = d.queue.submit([search, enc.finish()]);
        Pending {
            slot,
            start,
            count,
            submission,
        }
    }

    /// Waits for a submitted search and reads its hits (`None` when more hashes met the
    /// target than a result buffer holds) and, with timestamp queries, its GPU seconds.
    fn collect(&self, pending: &Pending) -> Result<(Option<Vec<Hit>>, Option<f64>), GpuError> {
        let d = &self.dataset.device;
        let words = d.map_read(
            &self.slots[pending.slot].staging,
            pending.submission.clone(),
        )?;
        let gpu_seconds = self.timer.as_ref().and_then(|t| {
            let at = (RESULT_BYTES / 4) as usize;
            let tick = |i: usize| u64::from(words[at + i]) | (u64::from(words[at + i + 1]) << 32);
            let (begin, end) = (tick(0), tick(2));
            (end > begin).then(|| (end - begin) as f64 * t.period * 1e-9)
        });
        let found = words[0];
        if found > self.max_hits {
            return Ok((None, gpu_seconds));
        }
        let mut hits: Vec<Hit> = words[1..]
            .chunks_exact(HIT_WORDS as usize)
            .take(found as usize)
            .map(|w| Hit {
                nonce: u64::from(w[0]) | (u64::from(w[1]) << 32),
                hash: hash_bytes(&w[2..10]),
            })
            .collect();
        hits.sort_by_key(|h| h.nonce);
        Ok((Some(hits), gpu_seconds))
    }

    /// Searches a range synchronously, halving it whenever a result buffer overflows.
    fn search_split(
        &self,
        start: u64,
        count: u32,
        target: &[u8; 32],
        hits: &mut Vec<Hit>,
    ) -> Result<(), GpuError> {
        let pending = self.submit(SPLIT_SLOT, start, count, target);
        match self.collect(&pending)?.0 {
            Some(found) => hits.extend(found),
            None if count <= 1 => {
                return Err(GpuError::Readback(
                    "one nonce cannot overflow the result buffer".into(),
                ));
            }
            None => {
                let half = count / 2;
                self.search_split(start, half, target, hits)?;
                self.search_split(start + u64::from(half), count - half, target, hits)?;
            }
        }
        Ok(())
    }

    /// Collects a dispatch's hits into `searched`, redoing it in halves if it overflowed;
    /// returns its GPU seconds where the device measures them, and whether it overflowed.
    fn finish(
        &self,
        pending: &Pending,
        target: &[u8; 32],
        searched: &mut Searched,
    ) -> Result<(Option<f64>, bool), GpuError> {
        let (hits, gpu_seconds) = self.collect(pending)?;
        let overflowed = hits.is_none();
        match hits {
            Some(hits) => searched.hits.extend(hits),
            None => self.search_split(pending.start, pending.count, target, &mut searched.hits)?,
        }
        searched.hashed += u64::from(pending.count);
        Ok((gpu_seconds, overflowed))
    }
}

/// The most nonces that expect at most `hits` hashes at or below `target` (at least 1, at
/// most [`MAX_BATCH`]): a hash meets it with probability about `(top + 1) / 2^64`, `top` the
/// target's first 8 bytes (big-endian), which rounds the probability up.
pub fn nonces_for_hits(target: &[u8; 32], hits: u32) -> u64 {
    let top = u64::from_be_bytes(target[..8].try_into().expect("8 bytes"));
    let nonces = (u128::from(hits) << 64) / (u128::from(top) + 1);
    nonces.clamp(1, u128::from(MAX_BATCH)) as u64
}

fn hash_bytes(words: &[u32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

impl GpuSearcher {
    /// Submits a search of `start..start + count` into the next slot in turn.
    fn submit_next(&mut self, start: u64, count: u32, target: &[u8; 32]) -> Pending {
        let slot = self.next_slot;
        self.next_slot = (slot + 1) % RING;
        self.submit(slot, start, count, target)
    }

    /// The dispatches queued by the last search that begin this one: contiguous from `start`,
    /// within `count` nonces, for the same target. The rest are dropped unread.
    fn adopt(&mut self, start: u64, count: u64, target: &[u8; 32]) -> VecDeque<Pending> {
        let (queued, for_target) = std::mem::take(&mut self.ahead);
        let mut adopted = VecDeque::new();
        if for_target != *target {
            return adopted;
        }
        let mut at = start;
        for p in queued {
            if p.start != at || p.start + u64::from(p.count) > start.saturating_add(count) {
                break;
            }
            at += u64::from(p.count);
            adopted.push_back(p);
        }
        adopted
    }
}

impl Searcher for GpuSearcher {
    fn search(
        &mut self,
        start: u64,
        count: u64,
        target: &[u8; 32],
        stop: &mut dyn FnMut() -> bool,
    ) -> crate::Result<Searched> {
        let mut searched = Searched::default();
        // The dispatches queued at the end of the last call, if this call continues there.
        let mut queue = self.adopt(start, count, target);
        let mut submitted: u64 = queue.iter().map(|p| u64::from(p.count)).sum();
        // Adopted dispatches started before this call: their times do not tune the batch.
        let mut adopted = queue.len();
        let mut last = Instant::now();
        // The nonces of a dispatch: the batch, cut where the target is easy enough to overflow
        // a result buffer.
        let cut = nonces_for_hits(target, MAX_HITS / 4).max(u64::from(self.pipelines.workgroup));
        let per_dispatch = move |batch: u32| u64::from(batch).min(cut);
        loop {
            // Keep IN_FLIGHT dispatches queued before reading the oldest back.
            while queue.len() < IN_FLIGHT && submitted < count && (queue.is_empty() || !stop()) {
                let n = (count - submitted).min(per_dispatch(self.batch)) as u32;
                let p = self.submit_next(start + submitted, n, target);
                submitted += u64::from(n);
                queue.push_back(p);
            }
            let Some(done) = queue.pop_front() else {
                break;
            };
            let (gpu_seconds, overflowed) = self.finish(&done, target, &mut searched)?;
            self.overflows += u64::from(overflowed);
            self.gpu_seconds += gpu_seconds.unwrap_or(0.0);
            let wall = adopted == 0;
            adopted = adopted.saturating_sub(1);
            // The dispatch's own GPU time where measured, else (not for a dispatch queued
            // before this call) the wall clock between completions: dispatches queued back to
            // back complete one dispatch's GPU time apart.
            let took = match (self.tuning, gpu_seconds) {
                (Tuning::Timestamps, Some(s)) => Some(s),
                _ => wall.then(|| last.elapsed().as_secs_f64()),
            };
            // A whole dispatch (not a range's short tail) tunes the batch, a cut one too.
            let whole = u64::from(done.count) == per_dispatch(self.batch);
            if let Some(took) = took.filter(|_| self.tune && whole) {
                let took = took.max(1e-4);
                let scaled = f64::from(done.count) * TARGET_SUBMIT.as_secs_f64() / took;
                let wg = self.pipelines.workgroup;
                self.batch = (scaled.clamp(f64::from(wg), f64::from(MAX_BATCH)) as u32) / wg * wg;
            }
            last = Instant::now();
            if queue.is_empty() && stop() {
                break;
            }
        }
        // Keep the GPU busy while the caller re-checks and stores these hits: queue the range
        // that follows (a round's next range starts where this one ends, and is at least as
        // long as what this call hashed), up to AHEAD dispatches; the next call adopts them if
        // it does continue there with the same target, else they are dropped unread.
        let mut following = start.saturating_add(count);
        let mut left = searched.hashed.min(AHEAD as u64 * per_dispatch(self.batch));
        let mut ahead = VecDeque::new();
        while left > 0 {
            let n = left.min(per_dispatch(self.batch)) as u32;
            if following.checked_add(u64::from(n)).is_none() {
                break;
            }
            ahead.push_back(self.submit_next(following, n, target));
            following += u64::from(n);
            left -= u64::from(n);
        }
        self.ahead = (ahead, *target);
        searched.hits.sort_by_key(|h| h.nonce);
        Ok(searched)
    }

    fn hash_one(&mut self, nonce: u64) -> crate::Result<[u8; 32]> {
        Ok(self.hash_range(nonce, 1)?[0])
    }
}
