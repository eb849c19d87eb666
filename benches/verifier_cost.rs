//! The verifier's cost per unit-epoch, measured, and the cores a party needs per 10,000 units.
//!
//! A verifier checks a CPU unit-epoch by keying the light cache of its RandomX key
//! (`cpu_unit_key(seed, unit)`, through the process's [`LightCaches`](capminer_kernels::randomx::LightCaches)) and recomputing the
//! sampled proofs from it ([`Verifier::verify`], the path `capminer verifier` calls for each
//! unit-epoch). This runs that path over `CAPMINER_BENCH_KEYS` distinct unit-epochs (default
//! 40), one after another as the verifier service checks them, on all of rayon's threads:
//!
//! ```text
//!   per unit-epoch:  caches().get(key)            ─▶ cache build (wall, process CPU)
//!                    verify(S claims), S = 1       ─▶ proof checks for S (cache kept)
//!                    verify(S claims), S = 4, 16   ─▶ …
//! ```
//!
//! Process CPU time comes from `getrusage(RUSAGE_SELF)` (user + system, every thread), so
//! the time other processes of a shared host take is not counted, unlike wall time. The
//! store's first `threads` keys allocate fresh caches and are run but not counted: a running
//! verifier re-keys idle caches in place. The cost of a unit-epoch with S sampled proofs is
//! build + checks(S); the cores a party needs for 10,000 units with epochs of E seconds are
//! `cpu_s × 10,000 / E` (every core busy, unit-epochs checked side by side). A last pass checks
//! `CAPMINER_BENCH_KEYS` more unit-epochs side by side, as the verifier service does, and gives
//! the cores from its wall time (wall × threads per unit-epoch).
//!
//! Environment: `CAPMINER_BENCH_KEYS` (unit-epochs counted, default 40),
//! `CAPMINER_BENCH_SAMPLES` (sample counts, default `1,4,16`). Run with
//! `cargo bench --bench verifier_cost`.

mod common;

use std::time::Instant;

use capminer_kernels::key::cpu_unit_key;
use capminer_kernels::randomx::RandomXOptions;
use capminer_miner::verify::{Claim, Verdict, Verifier};
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use capminer_protocol::GpuChallenge;
use common::env_u64;

/// Units a party checks in the table.
const UNITS: f64 = 10_000.0;
/// Epoch lengths of the table, in seconds.
const EPOCHS: [(&str, f64); 3] = [("10 min", 600.0), ("1 h", 3600.0), ("24 h", 86_400.0)];

/// Wall and process CPU seconds since a start.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wall: f64,
    cpu: f64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Self) {
        self.wall += other.wall;
        self.cpu += other.cpu;
    }
}

/// User plus system CPU seconds of every thread of this process.
fn process_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass; a zeroed rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs `f`, returning its result and its wall and process CPU seconds.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let (wall, cpu) = (Instant::now(), process_cpu());
    let out = f();
    let cost = Cost {
        wall: wall.elapsed().as_secs_f64(),
        cpu: process_cpu() - cpu,
    };
    (out, cost)
}

fn unit(i: u64) -> UnitId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(b"costunit");
    id[24..].copy_from_slice(&i.to_be_bytes());
    UnitId(id)
}

/// `count` claims of unit-epoch (`epoch`, `unit`) from nonce `first`, all meeting the target.
fn claims(epoch: Epoch, unit: UnitId, first: u64, count: u64) -> Vec<Claim> {
    (first..first + count)
        .map(|nonce| Claim {
            unit,
            kind: UnitKind::Cpu,
            epoch,
            nonce,
            hash: None,
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let keys = env_u64("CAPMINER_BENCH_KEYS", 40);
    let samples: Vec<u64> = std::env::var("CAPMINER_BENCH_SAMPLES")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("CAPMINER_BENCH_SAMPLES: counts like 1,4,16")
        })
        .collect();
    // As `capminer verifier` resolves it by default, less reserved huge pages (none here).
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };
    let verifier = Verifier::new(options, GpuChallenge::NETWORK).unwrap();
    let threads = rayon::current_num_threads() as u64;
    let epoch = Epoch {
        number: 7,
        seed: Seed([0x5e; 32]),
        // All-ones targets: every recomputed hash is valid, so a wrong one would show.
        targets: [Target([0xff; 32]), Target([0xff; 32])],
    };

    let (build, checks) = unit_epochs(&verifier, epoch, keys, threads, &samples);
    print_table(keys, threads, &samples, build, &checks);
    side_by_side(&verifier, epoch, keys, threads);
}

/// Builds each unit-epoch's cache and checks `samples` claims under it, one after another;
/// the first `threads` unit-epochs warm up and are not counted. Returns the build cost and
/// the check cost of each sample count, summed over the counted unit-epochs.
fn unit_epochs(
    verifier: &Verifier,
    epoch: Epoch,
    keys: u64,
    threads: u64,
    samples: &[u64],
) -> (Cost, Vec<Cost>) {
    let mut build = Cost::default();
    let mut checks = vec![Cost::default(); samples.len()];
    let started = Instant::now();
    for i in 0..threads + keys {
        let id = unit(i);
        let key = cpu_unit_key(&epoch.seed.0, id.as_bytes());
        let builds = verifier.caches().builds();
        let (cache, cost) = measure(|| verifier.caches().get(&key).unwrap());
        drop(cache);
        assert_eq!(
            verifier.caches().builds(),
            builds + 1,
            "one build per unit-epoch"
        );
        let counted = i >= threads;
        if counted {
            build += cost;
        }
        let mut first = 0;
        for (s, &count) in samples.iter().enumerate() {
            let batch = claims(epoch, id, first, count);
            first += count;
            let (verdicts, cost) = measure(|| verifier.verify(&batch).unwrap());
            assert!(verdicts.iter().all(|v| matches!(v, Verdict::Valid { .. })));
            if counted {
                checks[s] += cost;
            }
        }
        assert_eq!(
            verifier.caches().builds(),
            builds + 1,
            "the checks reuse the cache"
        );
        if counted && (i - threads + 1).is_multiple_of(10) {
            eprintln!(
                "{} unit-epochs, {:.0} s",
                i - threads + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }

    (build, checks)
}

/// Prints the per-unit-epoch costs and what they mean in cores per 10k units.
fn print_table(keys: u64, threads: u64, samples: &[u64], build: Cost, checks: &[Cost]) {
    let n = keys as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Verifier cost per CPU unit-epoch: {keys} unit-epochs, {threads} threads, \
         process CPU time (getrusage), load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "cache build (keyed in place): {:.3} s CPU, {:.3} s wall per unit-epoch",
        build.cpu / n,
        build.wall / n
    );
    println!();
    print!(
        "{:>8} {:>12} {:>12} {:>12} {:>12}",
        "sampled", "checks CPU s", "checks wall", "total CPU s", "total wall"
    );
    for (name, _) in EPOCHS {
        print!(" {:>14}", format!("cores/10k {name}"));
    }
    println!();
    for (s, &count) in samples.iter().enumerate() {
        let (cpu, wall) = (checks[s].cpu / n, checks[s].wall / n);
        let total = (build.cpu + checks[s].cpu) / n;
        print!(
            "{count:>8} {cpu:>12.3} {wall:>12.3} {total:>12.3} {:>12.3}",
            (build.wall + checks[s].wall) / n
        );
        for (_, seconds) in EPOCHS {
            print!(" {:>14.2}", total * UNITS / seconds);
        }
        println!();
    }
    println!(
        "cores/10k = total CPU s per unit-epoch x {UNITS} units / epoch seconds (cores kept busy)"
    );
}

/// The service's way: a batch of unit-epochs checked side by side on rayon's threads, each
/// with its own cache and S = 4 sampled proofs. Wall seconds x threads per unit-epoch is
/// what one process really spends of its cores.
fn side_by_side(verifier: &Verifier, epoch: Epoch, keys: u64, threads: u64) {
    let n = keys as f64;
    use rayon::prelude::*;
    let side: Vec<(UnitId, Vec<Claim>)> = (0..keys)
        .map(|i| {
            let id = unit(1_000_000 + i);
            (id, claims(epoch, id, 0, 4))
        })
        .collect();
    let (_, cost) = measure(|| {
        side.par_iter().for_each(|(_, batch)| {
            let verdicts = verifier.verify(batch).unwrap();
            assert!(verdicts.iter().all(|v| matches!(v, Verdict::Valid { .. })));
        })
    });
    let per = cost.wall * threads as f64 / n;
    print!(
        "side by side, S = 4: {:.2} unit-epochs/s on {threads} threads, {per:.3} core-s \
         ({:.3} CPU s) per unit-epoch; cores/10k",
        n / cost.wall,
        cost.cpu / n
    );
    for (name, seconds) in EPOCHS {
        print!(" {name} {:.2}", per * UNITS / seconds);
    }
    println!();
}
