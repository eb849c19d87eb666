//! The GPU search as a [`Searcher`]: double-buffered dispatches of a batch of nonces, the batch
//! auto-tuned to about 100 ms a submit, a dispatch whose hits overflow its result buffer
//! redone in halves, and the next range's first dispatch queued before a search returns, so
//! the GPU works while the caller re-checks and stores the hits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::dataset::GpuDataset;
use super::device::GpuDevice;
use super::error::GpuError;
use super::kernel::{Kernel, SearchPipelines};
use super::reference::UnitKeys;
use crate::search::{Hit, Searched, Searcher};

/// Hits one dispatch can report; more in one dispatch means an easy target: the host redoes
/// the dispatch in halves.
pub const MAX_HITS: u32 = 64;
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
/// 100 ms of work a submit unless fixed by the operator. Two result slots alternate, so the
/// results of one dispatch are read back while the next one already runs.
pub struct GpuSearcher {
    dataset: Arc<GpuDataset>,
    kernel: Kernel,
    pipelines: Arc<SearchPipelines>,
    header: [u32; 8],
    /// Two slots alternate between the dispatches in flight, the third ([`SPLIT_SLOT`]) serves
    /// the synchronous halves of an overflowed one, so those never overwrite the results of
    /// the dispatch still queued.
    slots: [Slot; 3],
    batch: u32,
    tune: bool,
    /// A dispatch queued after the last search, with its target (see [`Searcher::search`]).
    ahead: Option<(Pending, [u8; 32])>,
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

/// The result slot of [`GpuSearcher::search_split`].
const SPLIT_SLOT: usize = 2;

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
        let slots = [0, 1, 2].map(|_| {
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
                RESULT_BYTES,
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
        Ok(Self {
            dataset,
            kernel,
            pipelines,
            header: keys.header_words(),
            slots,
            batch: batch.unwrap_or(1 << 16).clamp(workgroup, MAX_BATCH),
            tune: batch.is_none(),
            ahead: None,
        })
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
            MAX_HITS,
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
        let search = d.dispatch(&p.search, &s.group, count, p.workgroup);
        let mut enc = d.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&s.results, 0, &s.staging, 0, RESULT_BYTES);
        let submission = d.queue.submit([search, enc.finish()]);
        Pending {
            slot,
            start,
            count,
            submission,
        }
    }

    /// Waits for a submitted search and reads its hits; `None` when more hashes met the
    /// target than a result buffer holds.
    fn collect(&self, pending: &Pending) -> Result<Option<Vec<Hit>>, GpuError> {
        let d = &self.dataset.device;
        let words = d.map_read(
            &self.slots[pending.slot].staging,
            pending.submission.clone(),
        )?;
        let found = words[0];
        if found > MAX_HITS {
            return Ok(None);
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
        Ok(Some(hits))
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
        match self.collect(&pending)? {
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

    /// Collects a dispatch's hits into `searched`, redoing it in halves if it overflowed.
    fn finish(
        &self,
        pending: &Pending,
        target: &[u8; 32],
        searched: &mut Searched,
    ) -> Result<(), GpuError> {
        match self.collect(pending)? {
            Some(hits) => searched.hits.extend(hits),
            None => self.search_split(pending.start, pending.count, target, &mut searched.hits)?,
        }
        searched.hashed += u64::from(pending.count);
        Ok(())
    }
}

fn hash_bytes(words: &[u32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
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
        // The dispatch queued at the end of the last call, if this call continues its range.
        let mut pending = self
            .ahead
            .take()
            .filter(|(p, t)| p.start == start && u64::from(p.count) <= count && t == target)
            .map(|(p, _)| p);
        let mut submitted = pending.as_ref().map_or(0, |p| u64::from(p.count));
        // An adopted dispatch started before this call: its time does not tune the batch.
        let mut timed = pending.is_none();
        let mut last = Instant::now();
        loop {
            // Submit the next dispatch before reading the previous one back.
            let next = (submitted < count && (pending.is_none() || !stop())).then(|| {
                let n = (count - submitted).min(u64::from(self.batch)) as u32;
                let slot = pending.as_ref().map_or(0, |p| 1 - p.slot);
                let p = self.submit(slot, start + submitted, n, target);
                submitted += u64::from(n);
                p
            });
            if let Some(done) = pending.take() {
                self.finish(&done, target, &mut searched)?;
                if self.tune && timed && done.count == self.batch {
                    let took = last.elapsed().as_secs_f64().max(1e-4);
                    let scaled = f64::from(self.batch) * TARGET_SUBMIT.as_secs_f64() / took;
                    let wg = self.pipelines.workgroup;
                    self.batch =
                        (scaled.clamp(f64::from(wg), f64::from(MAX_BATCH)) as u32) / wg * wg;
                }
                timed = true;
                last = Instant::now();
            }
            match next {
                Some(p) => pending = Some(p),
                None => break,
            }
        }
        // Keep the GPU busy while the caller re-checks and stores these hits: queue the range
        // that follows (a round's next range starts where this one ends, and is at least as
        // long as what this call hashed); the next call adopts it if it does continue there
        // with the same target, else it is dropped unread.
        let following = start.saturating_add(count);
        let ahead = searched.hashed.min(u64::from(self.batch)) as u32;
        if ahead > 0 && following.checked_add(u64::from(ahead)).is_some() {
            self.ahead = Some((self.submit(0, following, ahead, target), *target));
        }
        searched.hits.sort_by_key(|h| h.nonce);
        Ok(searched)
    }

    fn hash_one(&mut self, nonce: u64) -> crate::Result<[u8; 32]> {
        Ok(self.hash_range(nonce, 1)?[0])
    }
}
