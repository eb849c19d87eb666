//! GPU adapters and an open device: enumeration, opening with the adapter's own limits (and
//! subgroups where it has them), the challenge's pipelines cached per parameter set, loss
//! detection, and the dispatch, bind and readback helpers the dataset and the searcher share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use capminer_protocol::GpuChallenge;
use capminer_sync::LockExt;

use super::MAX_GROUPS_X;
use super::cache::{CacheSlot, DeviceCache};
use super::error::GpuError;
use super::kernel::{
    BuildKey, Kernel, KernelChoice, SearchKey, SearchPipelines, Share, build_pipeline,
    search_pipelines,
};

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
    /// Driver name (Vulkan: `VkPhysicalDeviceDriverProperties::driverName`).
    pub driver: String,
    /// Driver version text.
    pub driver_info: String,
    /// Smallest and largest subgroup size the adapter reports.
    pub subgroup_sizes: (u32, u32),
    /// The adapter has `wgpu::Features::SUBGROUP`.
    pub subgroup_feature: bool,
    /// The adapter has `wgpu::Features::TIMESTAMP_QUERY` (GPU times of compute passes).
    pub timestamps: bool,
    /// Bytes of device memory the adapter reports (Vulkan: its largest device-local heap);
    /// 0 where the backend does not say (Metal, DX12).
    pub memory: u64,
}

impl DeviceInfo {
    /// Whether the lanes kernel can exchange by subgroup shuffle here: the feature, and
    /// subgroups of at least 8 (a group of 8 lanes within one subgroup).
    pub fn subgroups(&self) -> bool {
        self.subgroup_feature && self.subgroup_sizes.0 >= 8
    }
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
                driver: info.driver.clone(),
                driver_info: info.driver_info.clone(),
                subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
                subgroup_feature: adapter.features().contains(wgpu::Features::SUBGROUP),
                timestamps: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
                memory: device_memory(&adapter),
            };
            (d, adapter)
        })
        .collect()
}

/// Bytes of the adapter's largest device-local memory heap (Vulkan); 0 where unknown.
/// wgpu has no portable query for this; Vulkan's memory properties are read through wgpu-hal.
fn device_memory(adapter: &wgpu::Adapter) -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the hal adapter is only read (its instance and physical device handle) while
        // the guard lives, and nothing is created or destroyed through it.
        if let Some(hal) = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() } {
            let instance = hal.shared_instance().raw_instance();
            // SAFETY: the physical device belongs to this instance, which outlives the call.
            let props = unsafe {
                instance.get_physical_device_memory_properties(hal.raw_physical_device())
            };
            // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT = 0x1.
            return props
                .memory_heaps_as_slice()
                .iter()
                .filter(|heap| heap.flags.as_raw() & 1 != 0)
                .map(|heap| heap.size)
                .max()
                .unwrap_or(0);
        }
    }
    let _ = adapter;
    0
}

/// The challenge's pipelines on one device, created on first use for each parameter set.
#[derive(Default)]
pub(super) struct Pipelines {
    build: Mutex<HashMap<BuildKey, Arc<wgpu::ComputePipeline>>>,
    search: Mutex<HashMap<SearchKey, Arc<SearchPipelines>>>,
}

/// An open GPU: device, queue and the challenge's pipelines, shared by its units.
#[derive(Clone)]
pub struct GpuDevice {
    /// What it is.
    pub info: DeviceInfo,
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    pub(super) pipelines: Arc<Pipelines>,
    cache: Arc<CacheSlot>,
    lost: Arc<AtomicBool>,
    /// wgpu's runtime checks in its shader modules (see `kernel::module`).
    runtime_checks: bool,
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
            required_features: adapter.features()
                & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|e| GpuError::Open {
                name: info.name.clone(),
                message: e.to_string(),
            })?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let name = info.name.clone();
        device.set_device_lost_callback(move |reason, message| {
            tracing::error!("GPU {name} lost ({reason:?}): {message}");
            flag.store(true, Ordering::Release);
        });
        Ok(Self {
            info,
            device,
            queue,
            pipelines: Arc::default(),
            cache: Arc::default(),
            lost,
            runtime_checks: true,
        })
    }

    /// The same device with wgpu's runtime checks in its shader modules on (the default) or
    /// off (`gpu.runtime_checks`; the modules' accesses are in bounds by construction, see
    /// `kernel::module`). Pipelines are cached per setting.
    pub fn with_runtime_checks(mut self, on: bool) -> Self {
        self.runtime_checks = on;
        self
    }

    /// Whether its shader modules have wgpu's runtime checks.
    pub fn runtime_checks(&self) -> bool {
        self.runtime_checks
    }

    /// The kernel `choice` runs on this device: "auto" and "lanes" exchange by subgroup where
    /// the device can ([`DeviceInfo::subgroups`]), else by workgroup memory.
    pub fn kernel(&self, choice: KernelChoice) -> Kernel {
        match choice {
            KernelChoice::Thread => Kernel::Thread,
            KernelChoice::Auto | KernelChoice::Lanes if self.info.subgroups() => {
                Kernel::Lanes(Share::Subgroup)
            }
            KernelChoice::Auto | KernelChoice::Lanes => Kernel::Lanes(Share::Workgroup),
        }
    }

    /// Whether `kernel` can run here (a subgroup kernel needs [`DeviceInfo::subgroups`]).
    pub fn supports(&self, kernel: Kernel) -> bool {
        kernel != Kernel::Lanes(Share::Subgroup) || self.info.subgroups()
    }

    /// The light cache of the epoch `seed` on this device, shared by its units: built on the
    /// CPU and uploaded by the first unit that asks for it, while the others wait for it. The
    /// flag is true for the call that built it.
    pub fn epoch_cache(&self, seed: &[u8; 32], params: &GpuChallenge) -> (Arc<DeviceCache>, bool) {
        let mut built = false;
        let cache = self.cache.get(self, seed, params, &mut built);
        (cache, built)
    }

    /// The build pipeline for `params` (created on first use, then cached).
    pub(super) fn build_pipeline(&self, params: &GpuChallenge) -> Arc<wgpu::ComputePipeline> {
        let key = BuildKey::of(params, self.runtime_checks);
        self.pipelines
            .build
            .lock_or_recover()
            .entry(key)
            .or_insert_with(|| Arc::new(build_pipeline(&self.device, key)))
            .clone()
    }

    /// The search pipelines of `kernel` for `params` (created on first use, then cached).
    pub(super) fn search_pipelines(
        &self,
        params: &GpuChallenge,
        kernel: Kernel,
    ) -> Result<Arc<SearchPipelines>, GpuError> {
        if !self.supports(kernel) {
            return Err(GpuError::Kernel {
                name: self.info.name.clone(),
                kernel: kernel.name(),
            });
        }
        // Lanes: whole subgroups in a workgroup, and at most the 256 slots of the fallback.
        let workgroup = match kernel {
            Kernel::Thread => 64,
            Kernel::Lanes(_) => self.info.subgroup_sizes.1.clamp(64, 256),
        };
        let key = SearchKey {
            kernel,
            items: params.items(),
            accesses: params.accesses,
            workgroup,
            checks: self.runtime_checks,
        };
        Ok(self
            .pipelines
            .search
            .lock_or_recover()
            .entry(key)
            .or_insert_with(|| Arc::new(search_pipelines(&self.device, key)))
            .clone())
    }

    /// True once the driver reported the device lost (a reset, a removal, or [`Self::destroy`]):
    /// nothing on it works any more; open the adapter again.
    pub fn is_lost(&self) -> bool {
        // wgpu reports a loss from its maintenance, which a poll runs.
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.lost.load(Ordering::Acquire)
    }

    /// Destroys the device, as a driver reset would (for fault-injection tests).
    pub fn destroy(&self) {
        self.device.destroy();
        self.lost.store(true, Ordering::Release);
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

    /// A command buffer running `pipeline` (of `workgroup` invocations a workgroup) over
    /// `invocations`, as a 2D grid of workgroups when one row cannot hold them.
    pub(super) fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        invocations: u32,
        workgroup: u32,
    ) -> wgpu::CommandBuffer {
        self.dispatch_timed(pipeline, group, invocations, workgroup, None)
    }

    /// [`Self::dispatch`], writing the pass's start and end times to `timestamps` where given.
    pub(super) fn dispatch_timed(
        &self,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        invocations: u32,
        workgroup: u32,
        timestamps: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) -> wgpu::CommandBuffer {
        let groups = invocations.div_ceil(workgroup);
        let (x, y) = if groups <= MAX_GROUPS_X {
            (groups, 1)
        } else {
            (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
        };
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: timestamps,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.finish()
    }

    /// Copies the first `bytes` of `buffer` to a staging buffer and reads them back.
    pub(super) fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u32>, GpuError> {
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
    pub(super) fn map_read(
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
    pub(super) fn bind(
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
