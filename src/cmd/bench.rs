//! `capminer bench`: hashrate of every configured unit on the fixed epoch; for GPU units also
//! their kernel, hits, build times and device, and for each GPU device the bytes its units
//! read per second against a bandwidth probe (streaming and gather) and a copy measured on the
//! same device in the same run. `--selftest`: every GPU kernel against the CPU reference.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_kernels::gpu::GpuDevice;
use capminer_miner::gpu::GpuUnitReport;
use capminer_miner::{Miner, UnitState, UnitView};
use capminer_proofs::UnitKind;
use capminer_proofs::store::ProofStore;
use prometheus::Registry;
use serde::Serialize;

use super::{ConfigArg, load_config};

mod targets;
use crate::output::outln;
use crate::progress::BuildProgress;
use crate::{epoch, logging};

/// Arguments of `capminer bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Seconds to measure, after every dataset is built.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead of measuring: compare every GPU kernel's hashes (and the dataset build) with the
    /// CPU reference on each configured device; exit status 1 when any differs.
    #[arg(long)]
    selftest: bool,
    /// After the measurement, ROUNDS rounds of the GPU units at a hard target (the epoch's) and
    /// at an easy one (about `--easy-hits` hits a second, each re-checked on the CPU and
    /// stored), `--seconds` each, alternated (hard first in even rounds, easy first in odd):
    /// the medians' ratio shows whether the GPU keeps hashing while hits are re-checked.
    #[arg(long, value_name = "ROUNDS", default_value_t = 0)]
    easy_hard: u32,
    /// Hits a second the easy target of `--easy-hard` aims at, at the measured hashrate.
    #[arg(long, default_value_t = 100)]
    easy_hits: u64,
}

/// One unit's result.
#[derive(Debug, Serialize)]
struct UnitResult {
    unit: String,
    kind: String,
    place: String,
    threads: usize,
    huge_pages: f64,
    build_seconds: f64,
    /// Of `build_seconds`, keying the cache (Argon2 fill and program generation).
    key_seconds: f64,
    /// Which code built the dataset ("simd (avx2 jit)", "library", ...; empty without one).
    dataset_init: String,
    hashes: u64,
    seconds: f64,
    hashrate: f64,
    /// GPU units: dataset bytes read per second (hashrate × accesses × 128).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_read_per_second: Option<f64>,
    /// GPU units: what only they report.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<GpuResult>,
}

/// A GPU unit's own figures, over the measured seconds unless said otherwise.
#[derive(Debug, Serialize)]
struct GpuResult {
    /// Index of its device in `capminer devices`.
    device: usize,
    adapter: String,
    driver: String,
    backend: String,
    /// "thread", "lanes/subgroup", "lanes/workgroup".
    kernel: String,
    /// wgpu's runtime checks in its kernels (`gpu.runtime_checks`; false: trusted modules).
    runtime_checks: bool,
    /// Nonces a dispatch at the end.
    batch: u32,
    /// How the batch was chosen: "gpu timestamps" (each dispatch's GPU time), "wall clock"
    /// (the adapter has no timestamp queries), "fixed" (`gpu.batch`).
    batch_tuning: String,
    /// GPU seconds of its search dispatches over the measured seconds (timestamp queries;
    /// 0 without): 1.0 is a GPU never idle. Credited when a round ends, and a round's first
    /// dispatches were queued before it began, so it is exact only over many rounds.
    gpu_busy: f64,
    /// The device's subgroup sizes (smallest, largest).
    subgroup_size: u32,
    subgroup_size_max: u32,
    /// Hits the GPU reported.
    hits_found: u64,
    /// Of those, hits the CPU re-check refuted.
    hits_refuted: u64,
    /// Dispatches whose hits overflowed their result buffer, each redone in halves while
    /// the GPU waited (an easy target cuts dispatches so this stays 0).
    dispatch_overflows: u64,
    /// The light cache build on the CPU (last build).
    cache_seconds: f64,
    /// The dataset build on the GPU (last build, submit to completion).
    dataset_build_seconds: f64,
    /// Device memory its dataset holds.
    device_memory_bytes: u64,
}

/// One GPU device: its units together, against what its memory delivers.
#[derive(Debug, Serialize)]
struct DeviceResult {
    device: usize,
    adapter: String,
    driver: String,
    backend: String,
    units: usize,
    /// Device memory its units' datasets hold.
    device_memory_bytes: u64,
    /// Device memory the adapter reports (Vulkan's largest device-local heap; 0: unknown).
    device_memory_reported_bytes: u64,
    /// Seconds from the epoch's start until every unit of the device hashed: the shared light
    /// cache (CPU build and upload) and every unit's dataset built on the GPU.
    fill_seconds: f64,
    /// Of those, the device's light cache on the CPU and its upload (once per device).
    cache_seconds: f64,
    /// fill_seconds per GiB of datasets.
    fill_seconds_per_gib: f64,
    /// (fill_seconds - cache_seconds) per GiB: the GPU's dataset build, the units' builds
    /// together.
    dataset_build_seconds_per_gib: f64,
    hashrate: f64,
    bytes_read_per_second: f64,
    /// Bytes the probe's buffer had (the units' datasets together, at most one binding).
    probe_bytes: u64,
    /// The probe: a coalesced streaming read, bytes per second.
    probe_stream_bytes_per_second: f64,
    /// The probe: random 128-byte item reads, 8 lanes an item, bytes per second.
    probe_gather_bytes_per_second: f64,
    /// A buffer copy, read + write bytes per second.
    copy_bytes_per_second: f64,
    /// bytes_read_per_second / probe_stream_bytes_per_second.
    ratio_to_stream: f64,
    /// bytes_read_per_second / probe_gather_bytes_per_second.
    ratio_to_gather: f64,
    /// bytes_read_per_second / copy_bytes_per_second.
    ratio_to_copy: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    randomx_flags: String,
    units: Vec<UnitResult>,
    total_hashrate: f64,
    gpu_devices: Vec<DeviceResult>,
    /// `--easy-hard`: the GPU units at an easy and a hard target.
    #[serde(skip_serializing_if = "Option::is_none")]
    easy_hard: Option<targets::EasyHard>,
}

/// Runs the benchmark; proofs go to a temporary store that is deleted afterwards.
pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    logging::init(&config)?;
    let plan = Miner::plan(&config)?;
    let flags = plan.flags;
    let bytes_per_hash = plan.gpu_params.bytes_per_hash() as f64;
    let mut devices: Vec<GpuDevice> = Vec::new();
    for p in &plan.gpu {
        if !devices.iter().any(|d| d.info.index == p.device.info.index) {
            devices.push(p.device.clone());
        }
    }
    if args.selftest {
        if devices.is_empty() {
            anyhow::bail!("no GPU units to self-test: the configuration enables none");
        }
        let result = super::selftest::selftest(&devices, plan.gpu_params)?;
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
        return Ok(if result.passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let scratch = tempfile::tempdir()?;
    let (store, _) = ProofStore::open(scratch.path())?;
    let miner = Miner::start_planned(&config, plan, Arc::new(store), &Registry::new())?;
    if miner.units().is_empty() {
        anyhow::bail!("no units to benchmark: the configuration enables none");
    }
    miner.set_epoch(epoch::fixed_epoch(&config))?;
    let mut progress = BuildProgress::new();
    let mut fill = FillClock::new(&devices, &miner.units());
    while !miner
        .units()
        .iter()
        .all(|u| matches!(u.state(), UnitState::Hashing(_)))
    {
        if let Some(unit) = miner.failed_unit() {
            anyhow::bail!("unit {unit} failed while keying");
        }
        progress.update(&miner.units());
        fill.update(&miner.units());
        std::thread::sleep(Duration::from_millis(50));
    }
    progress.update(&miner.units());
    fill.update(&miner.units());
    let start = Instant::now();
    let before: Vec<(u64, Option<GpuUnitReport>)> = miner
        .units()
        .iter()
        .map(|u| (u.hashes(), u.gpu_report()))
        .collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let seconds = start.elapsed().as_secs_f64();
    let units: Vec<UnitResult> = miner
        .units()
        .iter()
        .zip(before)
        .map(|(u, (b, gpu_before))| {
            let hashes = u.hashes() - b;
            let build = u.last_build();
            let hashrate = hashes as f64 / seconds;
            UnitResult {
                unit: u.info().label.clone(),
                kind: u.info().kind.to_string(),
                place: u.info().place.clone(),
                threads: u.info().threads,
                huge_pages: build.map_or(0.0, |b| b.huge_pages),
                build_seconds: build.map_or(0.0, |b| b.seconds),
                key_seconds: build.map_or(0.0, |b| b.key_seconds),
                dataset_init: build
                    .and_then(|b| b.dataset_init)
                    .map_or(String::new(), |d| d.to_string()),
                hashes,
                seconds,
                hashrate,
                bytes_read_per_second: (u.info().kind == UnitKind::Gpu)
                    .then_some(hashrate * bytes_per_hash),
                gpu: u
                    .gpu_report()
                    .map(|now| gpu_result(&now, gpu_before.as_ref(), seconds)),
            }
        })
        .collect();
    let easy_hard = if args.easy_hard > 0 {
        let rate: f64 = units
            .iter()
            .filter(|u| u.gpu.is_some())
            .map(|u| u.hashrate)
            .sum();
        let base = epoch::fixed_epoch(&config);
        Some(targets::easy_hard(
            &miner,
            base,
            args.easy_hard,
            Duration::from_secs(args.seconds),
            (rate / args.easy_hits.max(1) as f64).max(1.0) as u64,
        )?)
    } else {
        None
    };
    miner.stop()?;
    // The probes, after mining so the units do not compete with them.
    let gpu_devices = devices
        .iter()
        .map(|d| device_result(d, &units, fill.seconds(d.info.index)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = Report {
        randomx_flags: flags.to_string(),
        total_hashrate: units.iter().map(|u| u.hashrate).sum(),
        units,
        gpu_devices,
        easy_hard,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// When each GPU device has all its units built, from the epoch's start; logs a device's
/// progress as its units finish (`gpu0: 2 of 3 units built, 8 of 12 MiB, 1.4 s`).
struct FillClock {
    start: Instant,
    /// Per device: its index, its units' labels, how many were built when last logged, and
    /// when the last was built.
    devices: Vec<(usize, Vec<String>, usize, Option<f64>)>,
    unit_bytes: u64,
}

impl FillClock {
    fn new(devices: &[GpuDevice], units: &[UnitView]) -> Self {
        let unit_bytes = units
            .iter()
            .find_map(|u| u.gpu_report())
            .map_or(0, |r| r.memory_bytes);
        let devices = devices
            .iter()
            .map(|d| {
                let labels = units
                    .iter()
                    .filter(|u| {
                        u.gpu_report()
                            .is_some_and(|r| r.device.index == d.info.index)
                    })
                    .map(|u| u.info().label.clone())
                    .collect();
                (d.info.index, labels, 0, None)
            })
            .collect();
        Self {
            start: Instant::now(),
            devices,
            unit_bytes,
        }
    }

    fn update(&mut self, units: &[UnitView]) {
        let now = self.start.elapsed().as_secs_f64();
        for (index, labels, logged, done) in &mut self.devices {
            let built = units
                .iter()
                .filter(|u| labels.contains(&u.info().label))
                .filter(|u| matches!(u.state(), UnitState::Hashing(_)))
                .count();
            if built > *logged {
                *logged = built;
                tracing::info!(
                    "gpu{index}: {built} of {} units built, {} of {} MiB, {now:.1} s",
                    labels.len(),
                    (built as u64 * self.unit_bytes) >> 20,
                    (labels.len() as u64 * self.unit_bytes) >> 20
                );
            }
            if built == labels.len() && done.is_none() {
                *done = Some(now);
            }
        }
    }

    /// Seconds until device `index` had every unit built.
    fn seconds(&self, index: usize) -> f64 {
        self.devices
            .iter()
            .find(|d| d.0 == index)
            .and_then(|d| d.3)
            .unwrap_or(0.0)
    }
}

/// A GPU unit's figures: hits over the measured seconds (`before`: at their start).
fn gpu_result(now: &GpuUnitReport, before: Option<&GpuUnitReport>, seconds: f64) -> GpuResult {
    let (found, refuted) = before.map_or((0, 0), |b| (b.hits_found, b.hits_refuted));
    let d = &now.device;
    GpuResult {
        device: d.index,
        adapter: d.name.clone(),
        driver: format!("{} {}", d.driver, d.driver_info).trim().to_string(),
        backend: d.backend.clone(),
        kernel: now.kernel.map_or(String::new(), |k| k.to_string()),
        runtime_checks: now.runtime_checks,
        batch: now.search.batch,
        batch_tuning: now
            .search
            .tuning
            .map_or(String::new(), |t| t.name().to_string()),
        gpu_busy: (now.search.gpu_seconds - before.map_or(0.0, |b| b.search.gpu_seconds)) / seconds,
        subgroup_size: d.subgroup_sizes.0,
        subgroup_size_max: d.subgroup_sizes.1,
        hits_found: now.hits_found - found,
        hits_refuted: now.hits_refuted - refuted,
        dispatch_overflows: now.search.overflows - before.map_or(0, |b| b.search.overflows),
        cache_seconds: now.cache_seconds,
        dataset_build_seconds: now.build_seconds,
        device_memory_bytes: now.memory_bytes,
    }
}

/// A device's units together, and its probe over as many bytes as they hold.
fn device_result(
    d: &GpuDevice,
    units: &[UnitResult],
    fill_seconds: f64,
) -> anyhow::Result<DeviceResult> {
    let on: Vec<&UnitResult> = units
        .iter()
        .filter(|u| u.gpu.as_ref().is_some_and(|g| g.device == d.info.index))
        .collect();
    let memory: u64 = on
        .iter()
        .filter_map(|u| u.gpu.as_ref())
        .map(|g| g.device_memory_bytes)
        .sum();
    let read: f64 = on.iter().filter_map(|u| u.bytes_read_per_second).sum();
    let probe = d.probe(memory)?;
    // Two buffers: at most 256 MiB each, so a full device still has room for them.
    let copy = d.copy_bandwidth(probe.bytes.clamp(64 << 20, 256 << 20));
    let ratio = |of: f64| if of > 0.0 { read / of } else { 0.0 };
    // The device's one light cache: every unit reports the same figure.
    let cache_seconds = on
        .iter()
        .filter_map(|u| u.gpu.as_ref())
        .map(|g| g.cache_seconds)
        .fold(0.0, f64::max);
    let gib = memory as f64 / f64::from(1u32 << 30);
    let per_gib = |seconds: f64| if gib > 0.0 { seconds / gib } else { 0.0 };
    Ok(DeviceResult {
        device: d.info.index,
        adapter: d.info.name.clone(),
        driver: format!("{} {}", d.info.driver, d.info.driver_info)
            .trim()
            .to_string(),
        backend: d.info.backend.clone(),
        units: on.len(),
        device_memory_bytes: memory,
        device_memory_reported_bytes: d.info.memory,
        fill_seconds,
        cache_seconds,
        fill_seconds_per_gib: per_gib(fill_seconds),
        dataset_build_seconds_per_gib: per_gib((fill_seconds - cache_seconds).max(0.0)),
        hashrate: on.iter().map(|u| u.hashrate).sum(),
        bytes_read_per_second: read,
        probe_bytes: probe.bytes,
        probe_stream_bytes_per_second: probe.stream,
        probe_gather_bytes_per_second: probe.gather,
        copy_bytes_per_second: copy,
        ratio_to_stream: ratio(probe.stream),
        ratio_to_gather: ratio(probe.gather),
        ratio_to_copy: ratio(copy),
    })
}

fn print_table(r: &Report) -> anyhow::Result<()> {
    outln!("RandomX flags: {}", r.randomx_flags)?;
    outln!(
        "{:<7} {:<4} {:<34} {:>7} {:>6} {:>9} {:>10} {:>12}",
        "unit",
        "kind",
        "place",
        "threads",
        "huge %",
        "build s",
        "hashes",
        "H/s"
    )?;
    for u in &r.units {
        outln!(
            "{:<7} {:<4} {:<34} {:>7} {:>6.0} {:>9.1} {:>10} {:>12.1}",
            u.unit,
            u.kind,
            u.place.chars().take(34).collect::<String>(),
            u.threads,
            u.huge_pages * 100.0,
            u.build_seconds,
            u.hashes,
            u.hashrate
        )?;
    }
    outln!("{:<83} {:>12.1}", "total", r.total_hashrate)?;
    for u in r.units.iter().filter(|u| !u.dataset_init.is_empty()) {
        outln!(
            "{}: dataset built by {} in {:.1} s, of which {:.1} s keying the cache (Argon2)",
            u.unit,
            u.dataset_init,
            u.build_seconds,
            u.key_seconds
        )?;
    }
    for u in &r.units {
        if let Some(g) = &u.gpu {
            outln!(
                "{}: {} kernel on {} ({}, {}); {} hits, {} refuted; cache {:.2} s (CPU), dataset {:.2} s (GPU)",
                u.unit,
                g.kernel,
                g.adapter,
                g.driver,
                g.backend,
                g.hits_found,
                g.hits_refuted,
                g.cache_seconds,
                g.dataset_build_seconds
            )?;
        }
    }
    if let Some(e) = &r.easy_hard {
        outln!(
            "GPU at an easy target ({:.0} hits/s re-checked) / a hard one: {:.0} / {:.0} H/s = {:.3} (medians of {} rounds)",
            e.easy_hits_per_second,
            e.easy_hashrate,
            e.hard_hashrate,
            e.ratio,
            e.rounds
        )?;
    }
    for d in &r.gpu_devices {
        outln!(
            "gpu{} ({} units, {} MiB, filled in {:.1} s, {:.1} s/GiB built): reads {:.2} GB/s; probe stream {:.2} GB/s (ratio {:.3}), gather {:.2} GB/s (ratio {:.3}); copy {:.2} GB/s (ratio {:.3})",
            d.device,
            d.units,
            d.device_memory_bytes >> 20,
            d.fill_seconds,
            d.dataset_build_seconds_per_gib,
            d.bytes_read_per_second / 1e9,
            d.probe_stream_bytes_per_second / 1e9,
            d.ratio_to_stream,
            d.probe_gather_bytes_per_second / 1e9,
            d.ratio_to_gather,
            d.copy_bytes_per_second / 1e9,
            d.ratio_to_copy
        )?;
    }
    Ok(())
}
