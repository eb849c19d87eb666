//! The GPU challenge on any vendor's GPU through wgpu: devices, a unit's dataset in device
//! memory (one storage binding), the build kernel, and the search kernel as a [`Searcher`].
//!
//! WGSL is in `challenge.wgsl` beside this file. The adapter's own limits are requested, so a
//! unit can use the largest binding the device allows (wgpu caps bindings at 2 GiB - 1,
//! lavapipe at 128 MiB); a unit that does not fit one binding is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use capminer_protocol::GpuChallenge;

use crate::gpu_challenge::{LightCache, UnitKeys};
use crate::search::{Hit, Searched, Searcher};

const WORKGROUP: u32 = 64;
const MAX_GROUPS_X: u32 = 65_535;
/// Hits one dispatch can report; more in one dispatch means an easy target: the host redoes
/// the dispatch in halves.
pub const MAX_HITS: u32 = 64;
const HIT_WORDS: u32 = 10;

/// Errors of the GPU path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No such adapter.
    #[error("no GPU adapter {0}")]
    NoAdapter(String),
    /// The device could not be opened.
    #[error("cannot open GPU {name}: {message}")]
    Open {
        /// Adapter name.
        name: String,
        /// wgpu's message.
        message: String,
    },
    /// A unit's dataset does not fit one storage binding.
    #[error(
        "a unit of {unit_bytes} bytes does not fit one storage binding of GPU {name} (at most {max_binding} bytes)"
    )]
    TooLarge {
        /// Adapter name.
        name: String,
        /// Requested unit size.
        unit_bytes: u64,
        /// The device's largest binding.
        max_binding: u64,
    },
    /// Reading results back failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
}

/// What a GPU adapter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index in the enumeration.
    pub index: usize,
    /// Adapter name.
    pub name: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// PCI device id.
    pub device: u32,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU (software), other.
    pub device_type: String,
    /// PCI bus id, when the driver reports one.
    pub pci_bus_id: String,
    /// True for software adapters (lavapipe, llvmpipe, SwiftShader).
    pub software: bool,
    /// Largest storage binding.
    pub max_binding: u64,
    /// Largest buffer.
    pub max_buffer: u64,
}

/// The GPU adapters on this machine (Vulkan, Metal and DX12; GL has no compute guarantees).
pub fn enumerate() -> Vec<(DeviceInfo, wgpu::Adapter)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters =
        pollster::block_on(instance.enumerate_adapters(
            wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
        ));
    adapters
        .into_iter()
        .enumerate()
        .map(|(index, adapter)| {
            let info = adapter.get_info();
            let limits = adapter.limits();
            let d = DeviceInfo {
                index,
                name: info.name.clone(),
                vendor: info.vendor,
                device: info.device,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                pci_bus_id: info.device_pci_bus_id.clone(),
                software: info.device_type == wgpu::DeviceType::Cpu,
                max_binding: limits
                    .max_storage_buffer_binding_size
                    .min(limits.max_buffer_size),
                max_buffer: limits.max_buffer_size,
            };
            (d, adapter)
        })
        .collect()
}

struct Pipelines {
    build: wgpu::ComputePipeline,
    search: wgpu::ComputePipeline,
    hash_all: wgpu::ComputePipeline,
}

/// An open GPU: device, queue and the challenge's pipelines, shared by its units.
#[derive(Clone)]
pub struct GpuDevice {
    /// What it is.
    pub info: DeviceInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: Arc<Pipelines>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl GpuDevice {
    /// Opens an adapter, asking for its own limits (the largest bindings it allows).
    pub fn open(info: DeviceInfo, adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        let desc = wgpu::DeviceDescriptor {
            label: Some("capminer"),
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|e| GpuError::Open {
                name: info.name.clone(),
                message: e.to_string(),
            })?;
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = lost.clone();
        let name = info.name.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::error!("GPU {name} lost ({reason:?}): {message}");
            flag.store(true, std::sync::atomic::Ordering::Release);
        });
        let module = device.create_shader_module(wgpu::include_wgsl!("challenge.wgsl"));
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pipelines = Arc::new(Pipelines {
            build: pipeline("build"),
            search: pipeline("search"),
            hash_all: pipeline("hash_all"),
        });
        Ok(Self {
            info,
            device,
            queue,
            pipelines,
            lost,
        })
    }

    /// True once the driver reported the device lost (a reset, a removal, or [`Self::destroy`]):
    /// nothing on it works any more; open the adapter again.
    pub fn is_lost(&self) -> bool {
        // wgpu reports a loss from its maintenance, which a poll runs.
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Destroys the device, as a driver reset would (for fault-injection tests).
    pub fn destroy(&self) {
        self.device.destroy();
        self.lost.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Bytes per second of a large buffer-to-buffer copy on this device (the bandwidth figure
    /// the challenge's reads are compared with).
    pub fn copy_bandwidth(&self, bytes: u64) -> f64 {
        let bytes = bytes.min(self.info.max_buffer / 2) & !3;
        let make = |usage| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bandwidth"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let (src, dst) = (
            make(wgpu::BufferUsages::COPY_SRC),
            make(wgpu::BufferUsages::COPY_DST),
        );
        let copy = || {
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
            self.queue.submit([enc.finish()]);
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        };
        copy(); // warm up
        let start = Instant::now();
        let rounds = 4;
        for _ in 0..rounds {
            copy();
        }
        // A copy reads and writes every byte.
        2.0 * bytes as f64 * f64::from(rounds) / start.elapsed().as_secs_f64()
    }

    fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        invocations: u32,
    ) -> wgpu::CommandBuffer {
        let groups = invocations.div_ceil(WORKGROUP);
        let (x, y) = if groups <= MAX_GROUPS_X {
            (groups, 1)
        } else {
            (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
        };
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.finish()
    }

    fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u32>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        let submission = self.queue.submit([enc.finish()]);
        self.map_read(&staging, submission)
    }

    /// Waits for `submission`, then maps `staging` and copies its words out.
    fn map_read(
        &self,
        staging: &wgpu::Buffer,
        submission: wgpu::SubmissionIndex,
    ) -> Result<Vec<u32>, GpuError> {
        let failed = |e: &dyn std::fmt::Display| GpuError::Readback(e.to_string());
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| failed(&e))?;
        rx.recv().map_err(|e| failed(&e))?.map_err(|e| failed(&e))?;
        let view = slice.get_mapped_range().map_err(|e| failed(&e))?;
        let words = bytemuck::cast_slice::<u8, u32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(words)
    }

    /// A bind group of `pipeline`'s layout over `(binding, buffer)` pairs.
    fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }
}

/// One unit's dataset in device memory.
pub struct GpuDataset {
    device: GpuDevice,
    params: GpuChallenge,
    buffer: wgpu::Buffer,
}

impl std::fmt::Debug for GpuDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GpuDataset({} bytes on {})",
            self.params.unit_bytes, self.device.info.name
        )
    }
}

impl GpuDataset {
    /// Allocates a unit's dataset on `device`; refused if it does not fit one binding.
    pub fn new(device: &GpuDevice, params: GpuChallenge) -> Result<Self, GpuError> {
        if params.unit_bytes > device.info.max_binding {
            return Err(GpuError::TooLarge {
                name: device.info.name.clone(),
                unit_bytes: params.unit_bytes,
                max_binding: device.info.max_binding,
            });
        }
        let buffer = device.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unit dataset"),
            size: params.unit_bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            device: device.clone(),
            params,
            buffer,
        })
    }

    /// Device bytes this unit holds.
    pub fn bytes(&self) -> u64 {
        self.params.unit_bytes
    }

    /// Builds (or rebuilds, for a new epoch) the dataset on the GPU from the epoch's light
    /// cache and the unit's salt. The device and the buffer are kept.
    pub fn build(&self, cache: &LightCache, keys: &UnitKeys) {
        let d = &self.device;
        let cache_buffer = d
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("light cache"),
                contents: bytemuck::cast_slice(&cache.words()),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let total = 2 * self.params.items();
        let per_dispatch = MAX_GROUPS_X * WORKGROUP;
        let mut offset = 0;
        while offset < total {
            let mut uniform = vec![cache.nodes.len() as u32, self.params.parents, offset, total];
            uniform.extend_from_slice(&keys.salt);
            let params = d
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("build params"),
                    contents: bytemuck::cast_slice(&uniform),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let group = d.bind(
                &d.pipelines.build,
                &[(0, &params), (1, &cache_buffer), (2, &self.buffer)],
            );
            let n = per_dispatch.min(total - offset);
            d.queue.submit([d.dispatch(&d.pipelines.build, &group, n)]);
            offset += n;
        }
        let _ = d.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// The whole dataset read back (for checks against the CPU reference).
    pub fn read_back(&self) -> Result<Vec<u32>, GpuError> {
        self.device.read(&self.buffer, self.params.unit_bytes)
    }

    /// Overwrites item `i` in device memory (fault injection for tests of the CPU re-check).
    pub fn overwrite_item(&self, i: u32, words: &[u32; 32]) {
        self.device.queue.write_buffer(
            &self.buffer,
            u64::from(i) * 128,
            bytemuck::cast_slice(words),
        );
        let _ = self.device.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// A searcher over this dataset for a unit's header.
    pub fn searcher(self: &Arc<Self>, keys: &UnitKeys, batch: Option<u32>) -> GpuSearcher {
        let d = &self.device;
        let buffer = |label, usage| {
            d.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: RESULT_BYTES,
                usage,
                mapped_at_creation: false,
            })
        };
        let results = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let staging = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        GpuSearcher {
            dataset: self.clone(),
            header: keys.header_words(),
            slots: [0, 1].map(|_| {
                (
                    buffer("results", results),
                    buffer("results staging", staging),
                )
            }),
            batch: batch.unwrap_or(1 << 16).max(WORKGROUP),
            tune: batch.is_none(),
        }
    }
}

/// Bytes of a result buffer: the hit count and `MAX_HITS` slots.
const RESULT_BYTES: u64 = (4 + MAX_HITS * HIT_WORDS * 4) as u64;

/// The GPU search as a [`Searcher`]: dispatches of `batch` nonces, auto-tuned to about
/// 100 ms of work a submit unless fixed by the operator. Two result slots alternate, so the
/// results of one dispatch are read back while the next one already runs.
pub struct GpuSearcher {
    dataset: Arc<GpuDataset>,
    header: [u32; 8],
    /// (result buffer, staging buffer) per slot.
    slots: [(wgpu::Buffer, wgpu::Buffer); 2],
    batch: u32,
    tune: bool,
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
        write!(f, "GpuSearcher(batch {})", self.batch)
    }
}

/// Work a submit should take when auto-tuned.
const TARGET_SUBMIT: Duration = Duration::from_millis(100);

impl GpuSearcher {
    /// Sets the nonces per dispatch from the next dispatch on; `None`: auto-tuned again, from
    /// the batch in use.
    pub fn set_batch(&mut self, batch: Option<u32>) {
        if let Some(b) = batch {
            self.batch = b.max(WORKGROUP);
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

    fn params(&self, start: u64, count: u32, target: &[u8; 32]) -> wgpu::Buffer {
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
        self.dataset
            .device
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("search params"),
                contents: bytemuck::cast_slice(&uniform),
                usage: wgpu::BufferUsages::UNIFORM,
            })
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
        let params = self.params(start, count, &[0; 32]);
        let group = d.bind(
            &d.pipelines.hash_all,
            &[(0, &params), (1, &self.dataset.buffer), (3, &out)],
        );
        d.queue
            .submit([d.dispatch(&d.pipelines.hash_all, &group, count)]);
        let words = d.read(&out, u64::from(count) * 32)?;
        Ok(words.chunks_exact(8).map(hash_bytes).collect())
    }

    /// Submits a search of `start..start + count` into result slot `slot` (reset first), with
    /// the copy of its results to the slot's staging buffer.
    fn submit(&self, slot: usize, start: u64, count: u32, target: &[u8; 32]) -> Pending {
        let d = &self.dataset.device;
        let (results, staging) = &self.slots[slot];
        d.queue.write_buffer(results, 0, &[0u8; 4]);
        let params = self.params(start, count, target);
        let group = d.bind(
            &d.pipelines.search,
            &[(0, &params), (1, &self.dataset.buffer), (2, results)],
        );
        let search = d.dispatch(&d.pipelines.search, &group, count);
        let mut enc = d.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(results, 0, staging, 0, RESULT_BYTES);
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
        let words = d.map_read(&self.slots[pending.slot].1, pending.submission.clone())?;
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
        let pending = self.submit(0, start, count, target);
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
        let gpu = |e: GpuError| crate::KernelError::Gpu(e.to_string());
        let mut searched = Searched::default();
        let mut submitted = 0u64;
        let mut pending: Option<Pending> = None;
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
                self.finish(&done, target, &mut searched).map_err(gpu)?;
                if self.tune && done.count == self.batch {
                    let took = last.elapsed().as_secs_f64().max(1e-4);
                    let scaled = f64::from(self.batch) * TARGET_SUBMIT.as_secs_f64() / took;
                    self.batch = (scaled
                        .clamp(f64::from(WORKGROUP), f64::from(MAX_GROUPS_X * WORKGROUP))
                        as u32)
                        / WORKGROUP
                        * WORKGROUP;
                }
                last = Instant::now();
            }
            match next {
                Some(p) => pending = Some(p),
                None => break,
            }
        }
        searched.hits.sort_by_key(|h| h.nonce);
        Ok(searched)
    }

    fn hash_one(&mut self, nonce: u64) -> crate::Result<[u8; 32]> {
        self.hash_range(nonce, 1)
            .map(|h| h[0])
            .map_err(|e| crate::KernelError::Gpu(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
