//! One unit's dataset in device memory (one storage binding), built on the GPU from the epoch's
//! light cache.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use capminer_protocol::GpuChallenge;

use super::device::GpuDevice;
use super::error::GpuError;
use super::kernel::Kernel;
use super::reference::{LightCache, UnitKeys};
use super::searcher::GpuSearcher;
use super::{MAX_GROUPS_X, WORKGROUP};

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
        let pipeline = d.build_pipeline(&self.params);
        let total = 2 * self.params.items();
        let per_dispatch = MAX_GROUPS_X * WORKGROUP;
        let mut offset = 0;
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
            let group = d.bind(
                &pipeline,
                &[(0, &params), (1, &cache_buffer), (2, &self.buffer)],
            );
            let n = per_dispatch.min(total - offset);
            d.queue
                .submit([d.dispatch(&pipeline, &group, n, WORKGROUP)]);
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
