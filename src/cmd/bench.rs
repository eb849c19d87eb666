//! `capminer bench`: hashrate of every configured unit on the fixed epoch; for GPU units also
//! the bytes they read per second against a copy bandwidth measured on the same device.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_miner::{Miner, UnitState};
use capminer_proofs::UnitKind;
use capminer_proofs::store::ProofStore;
use prometheus::Registry;
use serde::Serialize;

use super::{ConfigArg, load_config};
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
    /// GPU units: bytes per second of a buffer copy on the same device (read + write).
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_bandwidth: Option<f64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    randomx_flags: String,
    units: Vec<UnitResult>,
    total_hashrate: f64,
}

/// Runs the benchmark; proofs go to a temporary store that is deleted afterwards.
pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    logging::init(&config)?;
    let plan = Miner::plan(&config)?;
    let flags = plan.flags;
    let bytes_per_hash = plan.gpu_params.bytes_per_hash() as f64;
    let devices: Vec<(String, capminer_kernels::gpu::GpuDevice)> = plan
        .gpu
        .iter()
        .map(|p| (p.label.clone(), p.device.clone()))
        .collect();
    let scratch = tempfile::tempdir()?;
    let (store, _) = ProofStore::open(scratch.path())?;
    let miner = Miner::start_planned(&config, plan, Arc::new(store), &Registry::new())?;
    if miner.units().is_empty() {
        anyhow::bail!("no units to benchmark: the configuration enables none");
    }
    miner.set_epoch(epoch::fixed_epoch(&config))?;
    let mut progress = BuildProgress::new();
    while !miner
        .units()
        .iter()
        .all(|u| matches!(u.state(), UnitState::Hashing(_)))
    {
        if let Some(unit) = miner.failed_unit() {
            anyhow::bail!("unit {unit} failed while keying");
        }
        progress.update(&miner.units());
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.update(&miner.units());
    let start = Instant::now();
    let before: Vec<u64> = miner.units().iter().map(|u| u.hashes()).collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let seconds = start.elapsed().as_secs_f64();
    let mut units: Vec<UnitResult> = miner
        .units()
        .iter()
        .zip(before)
        .map(|(u, b)| {
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
                copy_bandwidth: None,
            }
        })
        .collect();
    miner.stop()?;
    // Copy bandwidth, measured after mining so the units do not compete with it.
    for (label, device) in &devices {
        let bandwidth = device.copy_bandwidth(256 << 20);
        if let Some(u) = units.iter_mut().find(|u| &u.unit == label) {
            u.copy_bandwidth = Some(bandwidth);
        }
    }
    let report = Report {
        randomx_flags: flags.to_string(),
        total_hashrate: units.iter().map(|u| u.hashrate).sum(),
        units,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&report)?;
    }
    Ok(ExitCode::SUCCESS)
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
    for u in r.units.iter().filter(|u| u.bytes_read_per_second.is_some()) {
        let read = u.bytes_read_per_second.unwrap_or_default();
        let copy = u.copy_bandwidth.unwrap_or_default();
        outln!(
            "{}: reads {:.2} GB/s of its dataset; device copy bandwidth {:.2} GB/s; ratio {:.3}",
            u.unit,
            read / 1e9,
            copy / 1e9,
            if copy > 0.0 { read / copy } else { 0.0 }
        )?;
    }
    Ok(())
}
