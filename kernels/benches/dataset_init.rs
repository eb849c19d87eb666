//! Re-keying head to head: capminer's dataset initialisation against the reference
//! `randomx-benchmark`, on the same threads of the same machine, in one run.
//!
//! Each round, one after the other (one 2 GiB dataset alive at a time):
//!
//! 1. for each capminer method (`simd`, then `library`; `scalar` with `CAPMINER_BENCH_SCALAR=1`):
//!    as the miner keys a unit for the first time, allocate and key a cache (Argon2d fill plus
//!    program generation: "key") while a second thread allocates a dataset, then build the
//!    dataset on `T` threads ("build": from the key's end to the last item, the allocation's
//!    remainder included), then rebuild it in place (timed);
//! 2. run `randomx-benchmark --mine --auto --init T --nonces 1` (built from the RandomX sources
//!    `randomx-rs` vendors) and read its `Memory initialized in` time, which covers cache
//!    allocation and keying plus the dataset's allocation and build, like step 1's first build.
//!    It runs right after capminer's `simd` side in even rounds and right before it in odd ones,
//!    so the two sides of the ratio are measured back to back and neither is always the first.
//! 3. with `CAPMINER_BENCH_XMRIG` set to an xmrig binary (built from its public sources; not
//!    fetched here), run `xmrig --bench=1M --randomx-init=T [--no-huge-pages]` and read its
//!    `dataset ready (<ms> ms)` (cache keying plus dataset build, allocation excluded), then stop
//!    it: it is beside the others for reference, its ratio on the same scale.
//!
//! Before the rounds, one unreported library build warms the memory up (a VM's first touch of
//! fresh pages would otherwise be charged to the first side).
//!
//! Re-key thread-seconds = `T` x (key + first build wall time), for all; the ratio is over the
//! reference's (the target is 0.40 or less for `simd`).
//!
//! Environment: `CAPMINER_BENCH_INIT_THREADS` (default: all CPUs), `CAPMINER_BENCH_ROUNDS`
//! (default 1), `CAPMINER_BENCH_XMRIG`, `CAPMINER_BENCH_LARGE_PAGES=1` (all three on reserved
//! 2 MiB pages; else all on 4 KiB pages, capminer's transparent huge pages off). Run with
//! `cargo bench -p capminer-kernels --bench dataset_init`.

#[path = "../../benches/common/mod.rs"]
mod common;

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use capminer_kernels::randomx::{Cache, Dataset, DatasetInit, RandomXFlags, RandomXOptions};
use common::{build_reference, env_u64, large_pages, reference_init_seconds, reference_mine};

struct Measured {
    name: String,
    key_seconds: f64,
    build_seconds: f64,
    rebuild_seconds: f64,
}

fn capminer(method: DatasetInit, threads: usize, round: u8) -> Measured {
    let flags = RandomXFlags::resolve(&RandomXOptions {
        large_pages: large_pages(), // as the reference and xmrig are run
        transparent_huge_pages: false,
        dataset_init: method,
        ..RandomXOptions::default()
    })
    .expect("flags");
    let key = [round; 32];
    // As the miner keys a unit for the first time: the dataset is allocated beside the keying,
    // and the first build counts from the key to the last item (allocation included, as in the
    // reference's time).
    let started = Instant::now();
    let keyed = Cache::keyed_beside(flags, &key, || Dataset::new(flags)).expect("cache");
    let (cache, key_seconds) = (keyed.cache, keyed.key_seconds);
    let mut dataset = keyed.beside.expect("dataset");
    let build = |dataset: &mut Dataset| {
        assert!(dataset.build(&cache, threads, &|_| {}, &AtomicU64::new(0), &|| false));
    };
    build(&mut dataset);
    let build_seconds = started.elapsed().as_secs_f64() - key_seconds;
    let rebuilding = Instant::now();
    build(&mut dataset);
    let rebuild_seconds = rebuilding.elapsed().as_secs_f64();
    Measured {
        name: format!("capminer {}", flags.dataset_init()),
        key_seconds,
        build_seconds,
        rebuild_seconds,
    }
}

fn reference(threads: usize) -> f64 {
    let mut command = reference_mine(&build_reference(), threads as u64, 1);
    if large_pages() {
        command.arg("--largePages");
    }
    let out = command.output().expect("randomx-benchmark runs");
    assert!(out.status.success(), "randomx-benchmark failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(reference_init_seconds)
        .expect("randomx-benchmark prints its init time")
}

/// xmrig's dataset build on `threads` threads, in seconds: started in its offline benchmark
/// mode (its log to a file: it writes nothing to a pipe) and stopped once it reports the dataset
/// ready.
fn xmrig(binary: &str, threads: usize) -> f64 {
    let log = std::env::temp_dir().join(format!("capminer-bench-xmrig-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut child = std::process::Command::new(binary)
        .args(["--bench=1M", "--no-color"])
        .args((!large_pages()).then_some("--no-huge-pages"))
        .arg(format!("--threads={threads}"))
        .arg(format!("--randomx-init={threads}"))
        .arg(format!("--log-file={}", log.display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("CAPMINER_BENCH_XMRIG runs");
    let started = Instant::now();
    let ms = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ready = text
            .split("dataset ready (")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
        if ready.is_some() || started.elapsed().as_secs() > 600 {
            break ready;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    ms.expect("xmrig reports `dataset ready (<ms> ms)` within 10 minutes") / 1000.0
}

fn main() {
    let threads = env_u64(
        "CAPMINER_BENCH_INIT_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    ) as usize;
    let rounds = env_u64("CAPMINER_BENCH_ROUNDS", 1);
    // Beside the SIMD side, which runs next to the reference.
    let mut methods = vec![DatasetInit::Library];
    if std::env::var_os("CAPMINER_BENCH_SCALAR").is_some() {
        methods.push(DatasetInit::Scalar);
    }
    build_reference();
    // Warm-up, not reported: on a VM the first touch of memory the guest has not used yet
    // costs the host's faults too (seen here: 8-9 s more for a first dataset on freshly reserved
    // huge pages), which would fall on whichever side runs first. The library's build touches
    // the same cache and dataset memory every side then reuses.
    capminer(DatasetInit::Library, threads, 0);
    println!(
        "dataset init head to head, {threads} threads, {rounds} round(s), {} pages",
        if large_pages() {
            "2 MiB reserved"
        } else {
            "4 KiB"
        }
    );
    println!(
        "{:<24} {:>8} {:>9} {:>10} {:>9} {:>11} {:>9}",
        "", "key s", "build s", "rebuild s", "re-key s", "thread-s", "ratio"
    );
    // Per round: the SIMD side's re-key wall seconds, the reference's and xmrig's.
    let mut summary: Vec<(f64, f64, Option<f64>)> = Vec::new();
    for round in 0..rounds {
        // The SIMD side and the reference run back to back, first one then the other in turn
        // (so that neither is always the one that meets the host's next busy minute), then the
        // others.
        let mut results: Vec<Measured> = Vec::new();
        let key = round as u8 + 1;
        let reference_first = (round % 2 == 1).then(|| reference(threads));
        if DatasetInit::Simd.resolve().is_ok() {
            results.push(capminer(DatasetInit::Simd, threads, key));
        } else {
            eprintln!("no AVX2 on this CPU: skipping the SIMD path");
        }
        let reference_seconds = reference_first.unwrap_or_else(|| reference(threads));
        for &method in &methods {
            results.push(capminer(method, threads, key));
        }
        let xmrig_seconds = std::env::var("CAPMINER_BENCH_XMRIG")
            .ok()
            .map(|binary| xmrig(&binary, threads));
        print_round(&results, threads, reference_seconds, xmrig_seconds);
        if let Some(simd) = results.iter().find(|m| m.name.starts_with("capminer simd")) {
            summary.push((
                simd.key_seconds + simd.build_seconds,
                reference_seconds,
                xmrig_seconds,
            ));
        }
        print_key_shares(&results);
    }
    print_summary(&summary);
}

/// One round's table: each capminer side, the reference, and xmrig when it ran.
fn print_round(
    results: &[Measured],
    threads: usize,
    reference_seconds: f64,
    xmrig_seconds: Option<f64>,
) {
    let reference_thread_seconds = reference_seconds * threads as f64;
    for m in results {
        let rekey = m.key_seconds + m.build_seconds;
        println!(
            "{:<24} {:>8.2} {:>9.2} {:>10.2} {:>9.2} {:>11.1} {:>9.3}",
            m.name,
            m.key_seconds,
            m.build_seconds,
            m.rebuild_seconds,
            rekey,
            rekey * threads as f64,
            rekey * threads as f64 / reference_thread_seconds,
        );
    }
    println!(
        "{:<24} {:>8} {:>9} {:>10} {:>9.2} {:>11.1} {:>9.3}",
        "reference randomx-bench", "", "", "", reference_seconds, reference_thread_seconds, 1.0
    );
    if let Some(seconds) = xmrig_seconds {
        println!(
            "{:<24} {:>8} {:>9} {:>10} {:>9.2} {:>11.1} {:>9.3}",
            "xmrig (dataset ready)",
            "",
            "",
            "",
            seconds,
            seconds * threads as f64,
            seconds / reference_seconds
        );
    }
}

/// How much of each side's re-key the cache's Argon2 keying took.
fn print_key_shares(results: &[Measured]) {
    for m in results {
        let rekey = m.key_seconds + m.build_seconds;
        println!(
            "  {}: Argon2 cache key {:.2} s = {:.0} % of its re-key wall time",
            m.name,
            m.key_seconds,
            100.0 * m.key_seconds / rekey
        );
    }
}

/// Medians over the rounds (per round: the SIMD side's re-key wall seconds, the reference's,
/// xmrig's), when there was more than one.
fn print_summary(summary: &[(f64, f64, Option<f64>)]) {
    if summary.len() > 1 {
        // The VM's neighbours move every side's time by 10 % or more from one minute to the
        // next, and the sides run one after the other: medians over the rounds are steadier.
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            let n = values.len();
            (values[(n - 1) / 2] + values[n / 2]) / 2.0
        };
        let ratios = median(summary.iter().map(|s| s.0 / s.1).collect());
        let simd = median(summary.iter().map(|s| s.0).collect());
        let reference = median(summary.iter().map(|s| s.1).collect());
        println!(
            "over {} rounds: median SIMD ratio {ratios:.3}; median re-key {simd:.2} s (SIMD) against \
             {reference:.2} s (reference), ratio of medians {:.3}",
            summary.len(),
            simd / reference
        );
        let xmrig: Vec<f64> = summary.iter().filter_map(|s| s.2).collect();
        if !xmrig.is_empty() {
            let xmrig = median(xmrig);
            println!(
                "  xmrig median {xmrig:.2} s: SIMD at {:.3} of xmrig's time (xmrig's leaves out \
                 its allocation, capminer's includes it)",
                simd / xmrig
            );
        }
    }
}
