//! `capminer bench`: hashrate of every configured unit on the fixed epoch.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_miner::{Miner, UnitState, randomx_flags};
use capminer_proofs::store::ProofStore;
use prometheus::Registry;
use serde::Serialize;

use crate::{ConfigArg, epoch, load_config, logging, progress::BuildProgress};

/// Arguments of `capminer bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
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
    hashes: u64,
    seconds: f64,
    hashrate: f64,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    randomx_flags: String,
    units: Vec<UnitResult>,
    total_hashrate: f64,
}

/// Runs the benchmark; proofs go to a temporary store that is deleted afterwards.
pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    logging::init(&config)?;
    let flags = randomx_flags(&config)?;
    let scratch = tempfile::tempdir()?;
    let (store, _) = ProofStore::open(scratch.path())?;
    let miner = Miner::start(&config, Arc::new(store), &Registry::new())?;
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
        progress.update(miner.units());
        std::thread::sleep(Duration::from_millis(100));
    }
    progress.update(miner.units());
    let start = Instant::now();
    let before: Vec<u64> = miner.units().iter().map(|u| u.hashes()).collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    let seconds = start.elapsed().as_secs_f64();
    let units: Vec<UnitResult> = miner
        .units()
        .iter()
        .zip(before)
        .map(|(u, b)| {
            let hashes = u.hashes() - b;
            let build = u.last_build();
            UnitResult {
                unit: u.info().label.clone(),
                kind: u.info().kind.to_string(),
                place: u.info().place.clone(),
                threads: u.info().threads,
                huge_pages: build.map_or(0.0, |b| b.huge_pages),
                build_seconds: build.map_or(0.0, |b| b.seconds),
                hashes,
                seconds,
                hashrate: hashes as f64 / seconds,
            }
        })
        .collect();
    miner.stop()?;
    let report = Report {
        randomx_flags: flags.to_string(),
        total_hashrate: units.iter().map(|u| u.hashrate).sum(),
        units,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &Report) {
    println!("RandomX flags: {}", r.randomx_flags);
    println!(
        "{:<6} {:<4} {:<22} {:>7} {:>6} {:>9} {:>10} {:>10}",
        "unit", "kind", "place", "threads", "huge %", "build s", "hashes", "H/s"
    );
    for u in &r.units {
        println!(
            "{:<6} {:<4} {:<22} {:>7} {:>6.0} {:>9.1} {:>10} {:>10.1}",
            u.unit,
            u.kind,
            u.place,
            u.threads,
            u.huge_pages * 100.0,
            u.build_seconds,
            u.hashes,
            u.hashrate
        );
    }
    println!("{:<76} {:>10.1}", "total", r.total_hashrate);
}
