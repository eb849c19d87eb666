//! The epoch's light cache on one device: built on the CPU and uploaded once per device and
//! epoch, then shared by every unit of the device (each builds its own dataset from it, and
//! re-checks its hits with the CPU copy). Without it, N units on a device would build the same
//! cache N times on the CPU and hold N copies of it (16 MiB each at the network's parameters)
//! in device memory.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wgpu::util::DeviceExt;

use capminer_protocol::GpuChallenge;
use capminer_sync::LockExt;

use super::device::GpuDevice;
use super::reference::LightCache;

/// One epoch's light cache, on the CPU and in one device's memory.
pub struct DeviceCache {
    /// The CPU copy (the reference the units re-check their hits with).
    pub cpu: Arc<LightCache>,
    pub(super) buffer: wgpu::Buffer,
    seed: [u8; 32],
    params: GpuChallenge,
    /// Seconds the CPU took to build it.
    pub cpu_seconds: f64,
    /// Seconds the upload to the device took.
    pub upload_seconds: f64,
}

impl std::fmt::Debug for DeviceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceCache({} bytes)", self.params.cache_bytes)
    }
}

impl DeviceCache {
    /// Uploads `cache` (built for `seed` and `params`) to `device`.
    pub(super) fn upload(
        device: &GpuDevice,
        cache: Arc<LightCache>,
        seed: &[u8; 32],
        params: GpuChallenge,
        cpu_seconds: f64,
    ) -> Self {
        let started = Instant::now();
        let buffer = upload(device, &cache);
        Self {
            cpu: cache,
            buffer,
            seed: *seed,
            params,
            cpu_seconds,
            upload_seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// `cache` in a new storage buffer on `device`.
pub(super) fn upload(device: &GpuDevice, cache: &LightCache) -> wgpu::Buffer {
    device
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("light cache"),
            contents: bytemuck::cast_slice(&cache.words()),
            usage: wgpu::BufferUsages::STORAGE,
        })
}

/// The device's current epoch cache: the last one built, replaced at the next epoch.
#[derive(Default)]
pub(super) struct CacheSlot(Mutex<Option<Arc<DeviceCache>>>);

impl CacheSlot {
    /// The cache for `seed` and `params`: the one held when it matches, else built and
    /// uploaded now. The lock is held while building, so the device's other units wait for
    /// this build instead of doing their own; `built` is set when this call built it.
    pub(super) fn get(
        &self,
        device: &GpuDevice,
        seed: &[u8; 32],
        params: &GpuChallenge,
        built: &mut bool,
    ) -> Arc<DeviceCache> {
        let mut slot = self.0.lock_or_recover();
        if let Some(held) = slot.as_ref()
            && held.seed == *seed
            && held.params == *params
        {
            *built = false;
            return held.clone();
        }
        // Release the old epoch's device copy before the new one is uploaded (units still
        // keyed to it keep their own reference until they rebuild).
        *slot = None;
        let started = Instant::now();
        let cpu = Arc::new(LightCache::build(seed, params));
        let cpu_seconds = started.elapsed().as_secs_f64();
        let cache = Arc::new(DeviceCache::upload(device, cpu, seed, *params, cpu_seconds));
        *slot = Some(cache.clone());
        *built = true;
        cache
    }
}
