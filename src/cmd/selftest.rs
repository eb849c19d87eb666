//! `capminer bench --selftest`: every search kernel of every configured GPU device against the
//! CPU reference, on that device (a machine without a Rust toolchain cannot run the tests):
//! a small unit built on the GPU compared item for item with the CPU's and 4096 hashes a kernel
//! bit for bit, then a unit of the network's parameters (when one fits a binding) with 256
//! hashes a kernel against the light cache, the verifier's way.

use std::sync::Arc;

use capminer_kernels::gpu::reference::{Dataset, LightCache, UnitKeys, hash_light, hash_with};
use capminer_kernels::gpu::{GpuDataset, GpuDevice, Kernel};
use capminer_protocol::GpuChallenge;
use serde::Serialize;

/// Hashes each kernel computes on the small unit.
const SMALL_HASHES: u32 = 4096;
/// Hashes each kernel computes on the network's unit (each re-checked from the light cache).
const NETWORK_HASHES: u32 = 256;
/// The small unit: 8 MiB, a 64 KiB cache, the network's parents and accesses.
const SMALL: GpuChallenge = GpuChallenge {
    unit_bytes: 8 << 20,
    cache_bytes: 64 << 10,
    parents: 256,
    accesses: 64,
};

/// One comparison.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    /// "dataset" or a kernel's name.
    what: String,
    /// The parameters, as `GpuChallenge` prints them.
    params: String,
    /// Items or hashes compared.
    compared: u64,
    /// Of those, the ones that differ.
    mismatches: u64,
}

/// One device's checks.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceCheck {
    adapter: String,
    driver: String,
    backend: String,
    subgroup_sizes: (u32, u32),
    /// wgpu's runtime checks in the kernels checked (`gpu.runtime_checks`).
    runtime_checks: bool,
    checks: Vec<Check>,
    /// Why the network's unit was not checked, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

/// The whole self-test.
#[derive(Debug, Serialize)]
pub(crate) struct SelfTest {
    pub(crate) passed: bool,
    devices: Vec<DeviceCheck>,
}

/// Runs the checks on each device (each once, however many units it has).
pub(crate) fn selftest(devices: &[GpuDevice], network: GpuChallenge) -> anyhow::Result<SelfTest> {
    let mut out = Vec::new();
    for device in devices {
        let info = &device.info;
        tracing::info!(gpu = %info.name, "self-test: every kernel against the CPU reference");
        let mut checks = small_unit(device)?;
        let skipped = if network.unit_bytes > info.max_binding {
            Some(format!(
                "a unit of {} bytes does not fit one binding of {} bytes",
                network.unit_bytes, info.max_binding
            ))
        } else {
            checks.extend(network_unit(device, network)?);
            None
        };
        out.push(DeviceCheck {
            adapter: info.name.clone(),
            driver: format!("{} {}", info.driver, info.driver_info),
            backend: info.backend.clone(),
            subgroup_sizes: info.subgroup_sizes,
            runtime_checks: device.runtime_checks(),
            checks,
            skipped,
        });
    }
    let passed = out
        .iter()
        .flat_map(|d| &d.checks)
        .all(|c| c.mismatches == 0 && c.compared > 0);
    Ok(SelfTest {
        passed,
        devices: out,
    })
}

/// The small unit: the whole dataset item for item, and every kernel's hashes bit for bit
/// against the CPU's full dataset.
fn small_unit(device: &GpuDevice) -> anyhow::Result<Vec<Check>> {
    let p = SMALL;
    let cache = LightCache::build(&[0x5e; 32], &p);
    let keys = UnitKeys::new(&[0x5e; 32], &[0x1f; 32]);
    let gpu = Arc::new(GpuDataset::new(device, p)?);
    gpu.build(&cache, &keys);
    let cpu = Dataset::build(&cache, &keys, &p);
    let words = gpu.read_back()?;
    let items = u64::from(p.items());
    let bad_items = (0..p.items() as usize)
        .filter(|i| words[i * 32..(i + 1) * 32] != cpu.words[i * 32..(i + 1) * 32])
        .count() as u64;
    let mut checks = vec![Check {
        what: "dataset".into(),
        params: p.to_string(),
        compared: items,
        mismatches: bad_items,
    }];
    let start = (1u64 << 32) - 1000; // across a 32-bit carry
    let reference = parallel(SMALL_HASHES, |i| {
        hash_with(&keys.header, start + u64::from(i), &p, |x| cpu.item(x))
    });
    for kernel in Kernel::all(device.info.subgroups()) {
        let hashes = gpu
            .searcher(&keys, None, kernel)?
            .hash_range(start, SMALL_HASHES)?;
        checks.push(compare(kernel, &p, &hashes, &reference));
    }
    Ok(checks)
}

/// A unit of the network's parameters: every kernel's hashes against the light cache.
fn network_unit(device: &GpuDevice, p: GpuChallenge) -> anyhow::Result<Vec<Check>> {
    let cache = LightCache::build(&[0x6e; 32], &p);
    let keys = UnitKeys::new(&[0x6e; 32], &[0x2f; 32]);
    let gpu = Arc::new(GpuDataset::new(device, p)?);
    gpu.build(&cache, &keys);
    let start = 0x0123_4567_89ab_cdef;
    let reference = parallel(NETWORK_HASHES, |i| {
        hash_light(&cache, &keys, &p, start + u64::from(i))
    });
    let mut checks = Vec::new();
    for kernel in Kernel::all(device.info.subgroups()) {
        let hashes = gpu
            .searcher(&keys, None, kernel)?
            .hash_range(start, NETWORK_HASHES)?;
        checks.push(compare(kernel, &p, &hashes, &reference));
    }
    Ok(checks)
}

fn compare(kernel: Kernel, p: &GpuChallenge, gpu: &[[u8; 32]], cpu: &[[u8; 32]]) -> Check {
    let mismatches = gpu.iter().zip(cpu).filter(|(a, b)| a != b).count() as u64;
    if mismatches > 0 {
        tracing::error!(%kernel, "self-test: {mismatches} of {} hashes differ from the CPU reference", cpu.len());
    }
    Check {
        what: kernel.name().into(),
        params: p.to_string(),
        compared: gpu.len().min(cpu.len()) as u64,
        mismatches,
    }
}

/// `f(0..n)` on every CPU, in order.
fn parallel(n: u32, f: impl Fn(u32) -> [u8; 32] + Sync) -> Vec<[u8; 32]> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()) as u32;
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    ((t * per).min(n)..((t + 1) * per).min(n))
                        .map(f)
                        .collect::<Vec<[u8; 32]>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("a reference thread").into_iter())
            .collect::<Vec<[u8; 32]>>()
    })
}
