//! The device bandwidth probe: what a kernel gets from the device's memory when it streams a
//! buffer and when it gathers random 128-byte items from it (`wgsl/probe.wgsl`), so the
//! search's bytes per second can be stated as a fraction of what the memory delivers.

use std::time::{Duration, Instant};

use wgpu::util::DeviceExt;

use super::MAX_GROUPS_X;
use super::device::GpuDevice;
use super::error::GpuError;
use super::kernel::{PROBE, module, pipeline};

/// Invocations a workgroup of the probe (`WG` in `probe.wgsl`).
const PROBE_WG: u32 = 256;
/// Items a group of 8 lanes gathers (independent reads: 4 hashes' worth, so that the fixed
/// cost of an invocation does not count on a software adapter).
const GATHER_ACCESSES: u32 = 256;
/// Bytes each measured run reads at least (small buffers are swept several times).
const MIN_RUN_BYTES: u64 = 64 << 20;
/// Measured runs of each kind; the fastest counts.
const RUNS: u32 = 3;

/// What the probe measured on one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bandwidth {
    /// Bytes of the probed buffer.
    pub bytes: u64,
    /// Bytes per second of a coalesced streaming read of the buffer.
    pub stream: f64,
    /// Bytes per second of random 128-byte item reads, 8 lanes an item.
    pub gather: f64,
}

impl GpuDevice {
    /// Measures the streaming and the gather bandwidth over a buffer of `bytes` (rounded down
    /// to whole 128-byte items and capped at the largest binding). Wall time from submit to
    /// completion of each run, the fastest of [`RUNS`] after a warm-up.
    pub fn probe(&self, bytes: u64) -> Result<Bandwidth, GpuError> {
        let bytes = bytes.min(self.info.max_binding) / 128 * 128;
        // Let the device free what was dropped before (stopped units' datasets) first.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        if bytes == 0 {
            return Err(GpuError::Readback(
                "a probe needs at least 128 bytes".into(),
            ));
        }
        let data = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe data"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let module = module(&self.device, "probe", PROBE.to_string(), true);
        let constants = [("WG", f64::from(PROBE_WG))];
        let items = u32::try_from(bytes / 128).unwrap_or(u32::MAX);
        let vec4s = items.saturating_mul(8);

        // Stream: enough invocations to fill any GPU, each sweeping vec4s / threads.
        let threads = vec4s.min(1 << 20);
        let passes = MIN_RUN_BYTES.div_ceil(bytes).max(1) as u32;
        let stream = pipeline(&self.device, &module, "stream", &constants);
        let seconds = self.fastest(&stream, &data, [vec4s, items, 0, threads], threads, passes)?;
        let stream = (bytes * u64::from(passes)) as f64 / seconds.as_secs_f64();

        // Gather: groups of 8, each reading GATHER_ACCESSES random items.
        let per_group = u64::from(GATHER_ACCESSES) * 128;
        let groups = (MIN_RUN_BYTES.max(bytes) / per_group).clamp(1, 1 << 19) as u32;
        let threads = groups * 8;
        let gather = pipeline(&self.device, &module, "gather", &constants);
        let params = [vec4s, items, GATHER_ACCESSES, threads];
        let seconds = self.fastest(&gather, &data, params, threads, 1)?;
        let gather = (u64::from(groups) * per_group) as f64 / seconds.as_secs_f64();
        Ok(Bandwidth {
            bytes,
            stream,
            gather,
        })
    }

    /// The fastest of [`RUNS`] runs (after a warm-up) of `passes` dispatches of `pipeline`
    /// over `threads` invocations, from submit to completion.
    fn fastest(
        &self,
        pipeline: &wgpu::ComputePipeline,
        data: &wgpu::Buffer,
        params: [u32; 4],
        threads: u32,
        passes: u32,
    ) -> Result<Duration, GpuError> {
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("probe params"),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let sink = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe sink"),
            size: u64::from(threads) * 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let group = self.bind(pipeline, &[(0, &uniform), (1, data), (2, &sink)]);
        debug_assert!(threads.div_ceil(PROBE_WG) <= MAX_GROUPS_X * MAX_GROUPS_X);
        let mut best = Duration::MAX;
        for run in 0..=RUNS {
            let commands: Vec<wgpu::CommandBuffer> = (0..passes)
                .map(|_| self.dispatch(pipeline, &group, threads, PROBE_WG))
                .collect();
            let start = Instant::now();
            let submission = self.queue.submit(commands);
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(submission),
                    timeout: None,
                })
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            if run > 0 {
                best = best.min(start.elapsed());
            }
        }
        Ok(best)
    }
}
