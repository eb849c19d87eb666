//! One unit's dataset in device memory (one storage binding), built on the GPU from the epoch's
//! light cache.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use capminer_protocol::GpuChallenge;

use super::cache::{DeviceCache, upload};
use super::device::GpuDevice;
use super::error::GpuError;
use super::kernel::Kernel;
use super::reference::{LightCache, UnitKeys};
use super::searcher::GpuSearcher;
use super::{MAX_GROUPS_X, WORKGROUP};

/// Dispatches a dataset build is split into, for its progress.
const BUILD_PARTS: u32 = 16;

/// One unit's dataset in device memory.
pub struct GpuDataset {
    pub(super) device: GpuDevice,
    pub(super) params: GpuChallenge,
    pub(super) buffer: wgpu::Buffer,
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

    /// Builds (or rebuilds, at a new epoch) the dataset in place on the GPU from the epoch's
    /// cache and the unit's salt. The device and the buffer are kept. The cache is uploaded
    /// for this build alone: units of one device share theirs through
    /// [`GpuDevice::epoch_cache`] and [`Self::build_from`].
    pub fn build(&self, cache: &LightCache, keys: &UnitKeys) {
        let buffer = upload(&self.device, cache);
        self.build_over(&buffer, keys, &mut |_, _| {});
    }

    /// Builds the dataset from a cache already on the device, calling `progress(done, total)`
    /// (in halves of items) as the parts complete: the work is split into about
    /// [`BUILD_PARTS`] dispatches, one kept queued while the previous one is waited for, so
    /// the GPU does not idle between them.
    pub fn build_from(
        &self,
        cache: &DeviceCache,
        keys: &UnitKeys,
        progress: &mut dyn FnMut(u64, u64),
    ) {
        self.build_over(&cache.buffer, keys, progress);
    }

    fn build_over(
        &self,
        cache: &wgpu::Buffer,
        keys: &UnitKeys,
        progress: &mut dyn FnMut(u64, u64),
    ) {
        let d = &self.device;
        let pipeline = d.build_pipeline(&self.params);
        let total = 2 * self.params.items();
        let part = total
            .div_ceil(BUILD_PARTS)
            .next_multiple_of(WORKGROUP)
            .min(MAX_GROUPS_X * WORKGROUP);
        let mut queued: Option<(wgpu::SubmissionIndex, u32)> = None;
        let mut offset = 0;
        let wait = |submission: wgpu::SubmissionIndex| {
            let _ = d.device.poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            });
        };
        while offset < total {
            let mut uniform = vec![offset, total, 0, 0];
            uniform.extend_from_slice(&keys.salt);
            let params = d
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("build params"),
                    contents: bytemuck::cast_slice(&uniform),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let group = d.bind(&pipeline, &[(0, &params), (1, cache), (2, &self.buffer)]);
            let n = part.min(total - offset);
            let submission = d
                .queue
                .submit([d.dispatch(&pipeline, &group, n, WORKGROUP)]);
            offset += n;
            if let Some((previous, done)) = queued.replace((submission, offset)) {
                wait(previous);
                progress(u64::from(done), u64::from(total));
            }
        }
        if let Some((last, done)) = queued {
            wait(last);
            progress(u64::from(done), u64::from(total));
        }
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

    /// A searcher running `kernel` over this dataset for a unit's header: `batch` nonces a
    /// dispatch, or auto-tuned when `None`. Refused when the device cannot run `kernel`.
    pub fn searcher(
        self: &Arc<Self>,
        keys: &UnitKeys,
        batch: Option<u32>,
        kernel: Kernel,
    ) -> Result<GpuSearcher, GpuError> {
        GpuSearcher::new(self.clone(), keys, batch, kernel)
    }
}
