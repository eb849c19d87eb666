//! One capminer CPU unit against the reference RandomX benchmark, hashing at the same time.
//!
//! Builds `randomx-benchmark` from the very RandomX sources `randomx-rs` vendors (cmake,
//! Release). Each run:
//!
//! 1. starts one capminer CPU unit on core A, builds its dataset on `init` threads (timed)
//!    and pauses it;
//! 2. starts `randomx-benchmark --mine --auto --threads 1 --init <init>` (timed init), and as
//!    soon as its dataset is built pins it to core B;
//! 3. when the reference starts hashing, resumes the capminer unit, and counts capminer's
//!    hashes over exactly the reference's hashing time (whole rounds on both ends).
//!
//! Both hash over the same wall-clock window on two cores of the same machine, so the noise of
//! a shared host hits both; the next round swaps the cores. The table gives:
//!
//! * hashrate ratio: capminer / reference (the bar is 0.98, the goal 1.00 or better);
//! * dataset init ratio: reference seconds / capminer seconds (>= 1.00: capminer no slower).
//!
//! Every round measures capminer as configured by default (transparent huge pages advised for
//! the dataset) and with that advice off (`cpu.randomx.transparent_huge_pages = false`), which
//! is the like-for-like comparison with the reference on 4 KiB pages.
//!
//! Environment: `CAPMINER_BENCH_NONCES` (reference nonces, default 5000),
//! `CAPMINER_BENCH_INIT_THREADS` (default: all CPUs), `CAPMINER_BENCH_ROUNDS` (default 2).
//! Needs two cores and two datasets' worth of memory (about 4.5 GiB).
//! Run with `cargo bench --bench randomx_reference`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::{build_reference, env_u64, reference_init_seconds, reference_mine};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_config::{Config, UnitConfig, Units};
use capminer_miner::topology::Topology;
use capminer_miner::{Miner, UnitState, UnitView};
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Seed, Target};

/// One head-to-head run.
struct Run {
    reference_init: f64,
    reference_rate: f64,
    capminer_init: f64,
    capminer_rate: f64,
    huge_share: f64,
}

/// Waits until the unit's hash count moves past `after`; returns the count and the time.
fn round_end(unit: &dyn Fn() -> UnitView, after: u64) -> (u64, Instant) {
    while unit().hashes() == after {
        std::thread::sleep(Duration::from_micros(500));
    }
    (unit().hashes(), Instant::now())
}

fn head_to_head(
    binary: &Path,
    cores: (usize, usize),
    init_threads: u64,
    nonces: u64,
    thp: bool,
) -> Run {
    let topology = Topology::detect().unwrap();
    let mut config = Config::default();
    config.cpu.randomx.large_pages = false; // the reference runs without reserved huge pages too
    config.cpu.randomx.transparent_huge_pages = thp;
    config.cpu.units = Units::List(vec![UnitConfig {
        core: cores.0,
        id: None,
    }]);
    config.cpu.dataset_threads = Some(init_threads as usize);
    let plan = Miner::plan(&config).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(scratch.path()).unwrap().0);
    let miner = Miner::start_planned(&config, plan, store, &prometheus::Registry::new()).unwrap();
    miner
        .set_epoch(Epoch {
            number: 1,
            seed: Seed([1; 32]),
            targets: [Target([0; 32]), Target([0; 32])],
        })
        .unwrap();
    let unit = || miner.units().swap_remove(0);
    while !matches!(unit().state(), UnitState::Hashing(_)) {
        assert_ne!(unit().state(), UnitState::Failed);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (warm, _) = round_end(&unit, 0); // one round done: the JIT is warm
    miner.set_paused(true);
    let build = unit().last_build().unwrap();

    let mut reference = reference_mine(binary, init_threads, nonces)
        .stdout(Stdio::piped())
        .spawn()
        .expect("randomx-benchmark runs");
    let pid = reference.id() as i32;
    let reference_cpus = topology.core(cores.1).unwrap().cpus.clone();
    let mut reference_init = None;
    let mut reference_rate = None;
    let mut window = None;
    for line in BufReader::new(reference.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let number = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        };
        if let Some(seconds) = reference_init_seconds(&line) {
            reference_init = Some(seconds);
            pin_pid(pid, &reference_cpus);
        } else if line.starts_with("Running benchmark") {
            miner.set_paused(false);
            window = Some(round_end(&unit, unit().hashes()));
        } else if let Some(rate) = number("Performance: ") {
            reference_rate = Some(rate);
        }
    }
    assert!(
        reference.wait().unwrap().success(),
        "randomx-benchmark failed"
    );
    let (h0, t0) = window.expect("the reference started hashing");
    let (h1, t1) = round_end(&unit, unit().hashes());
    assert!(h0 > warm);
    miner.stop().unwrap();
    Run {
        reference_init: reference_init.expect("reference init time"),
        reference_rate: reference_rate.expect("reference hashrate"),
        capminer_init: build.seconds,
        capminer_rate: (h1 - h0) as f64 / t1.duration_since(t0).as_secs_f64(),
        huge_share: build.huge_pages,
    }
}

/// Pins every thread of process `pid` to `cpus`.
fn pin_pid(pid: i32, cpus: &[usize]) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let tid: i32 = task.file_name().to_string_lossy().parse().unwrap();
        // SAFETY: sched_setaffinity on a tid with a set we build; failure is reported.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus {
                libc::CPU_SET(c, &mut set);
            }
            assert_eq!(
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0,
                "pinning the reference"
            );
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test harness probing
    }
    let nonces = env_u64("CAPMINER_BENCH_NONCES", 5000);
    let init_threads = env_u64(
        "CAPMINER_BENCH_INIT_THREADS",
        std::thread::available_parallelism().unwrap().get() as u64,
    );
    let rounds = env_u64("CAPMINER_BENCH_ROUNDS", 2);
    let cores = Topology::detect().unwrap().cores.len();
    assert!(cores >= 2, "the head-to-head needs two physical cores");
    let binary = build_reference();
    println!(
        "One capminer CPU unit vs the reference RandomX benchmark, hashing at the same time on two cores"
    );
    println!(
        "reference: randomx-benchmark --mine --auto --threads 1 --init {init_threads} --nonces {nonces} (4 KiB pages)"
    );
    println!(
        "capminer: one unit, RandomX flags as `capminer bench` reports them, dataset init on {init_threads} threads"
    );
    println!();
    println!(
        "{:<6} {:<7} {:<17} {:>8} {:>10} {:>8} {:>9} {:>9} {:>8}",
        "round",
        "cores",
        "capminer",
        "huge %",
        "ref H/s",
        "cap H/s",
        "ratio",
        "ref init",
        "cap init"
    );
    let mut results: Vec<(bool, Run)> = Vec::new();
    for round in 0..rounds {
        let pair = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        for thp in [true, false] {
            let run = head_to_head(&binary, pair, init_threads, nonces, thp);
            println!(
                "{:<6} {:<7} {:<17} {:>8.0} {:>10.1} {:>8.1} {:>9.3} {:>9.2} {:>8.2}",
                round + 1,
                format!("{}/{}", pair.0, pair.1),
                if thp { "default (THP)" } else { "THP off" },
                run.huge_share * 100.0,
                run.reference_rate,
                run.capminer_rate,
                run.capminer_rate / run.reference_rate,
                run.reference_init,
                run.capminer_init
            );
            results.push((thp, run));
        }
    }
    println!();
    for (thp, name) in [(true, "default (THP)"), (false, "THP off")] {
        let runs: Vec<&Run> = results
            .iter()
            .filter(|(t, _)| *t == thp)
            .map(|(_, r)| r)
            .collect();
        let n = runs.len() as f64;
        let rate = runs
            .iter()
            .map(|r| r.capminer_rate / r.reference_rate)
            .sum::<f64>()
            / n;
        let init = runs
            .iter()
            .map(|r| r.reference_init / r.capminer_init)
            .sum::<f64>()
            / n;
        println!(
            "capminer {name:<14} hashrate ratio {rate:.3} (bar 0.98, goal >= 1.00); dataset init ratio {init:.3} (>= 1.00: no slower)"
        );
    }
}
