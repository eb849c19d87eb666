//! Verification throughput of CPU proofs, next to the reference RandomX light mode.
//!
//! Prints: the light cache build time per key; proofs verified per second on one core and on
//! all cores (`Verifier::verify`, the path `capminer verify` and `capminer verifier` share),
//! for one key and for several keys; and the reference `randomx-benchmark --verify --auto`
//! time per hash from the same RandomX sources, with the ratio.
//! Environment: `CAPMINER_BENCH_PROOFS` (proofs per key, default 64), `CAPMINER_BENCH_KEYS`
//! (default 4). Run with `cargo bench --bench verify_throughput`.

mod common;

use std::process::Command;
use std::time::Instant;

use capminer_kernels::key::cpu_unit_key;
use capminer_kernels::randomx::{Cache, RandomXFlags, RandomXOptions};
use capminer_miner::verify::{Claim, Verifier};
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use common::{build_reference, env_u64};

fn claims(keys: u64, per_key: u64) -> Vec<Claim> {
    let epoch = Epoch {
        number: 1,
        seed: Seed([5; 32]),
        targets: [Target([0xff; 32]), Target([0xff; 32])],
    };
    (0..keys)
        .flat_map(|k| {
            (0..per_key).map(move |nonce| Claim {
                unit: UnitId([k as u8 + 1; 32]),
                kind: UnitKind::Cpu,
                epoch,
                nonce,
                hash: None,
            })
        })
        .collect()
}

fn throughput(verifier: &Verifier, claims: &[Claim], threads: usize) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let start = Instant::now();
    let verdicts = pool.install(|| verifier.verify(claims).unwrap());
    assert!(
        verdicts.iter().all(|v| v.is_valid()),
        "an all-ones target accepts every hash"
    );
    claims.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let per_key = env_u64("CAPMINER_BENCH_PROOFS", 64);
    let keys = env_u64("CAPMINER_BENCH_KEYS", 4);
    let cores = std::thread::available_parallelism().unwrap().get();
    let options = RandomXOptions {
        large_pages: false,
        ..RandomXOptions::default()
    };

    let flags = RandomXFlags::resolve(&options.light()).unwrap();
    let mut cache = Cache::new(flags).unwrap();
    let mut build = Vec::new();
    for k in 0..4u8 {
        let t = Instant::now();
        cache.init(&cpu_unit_key(&[k; 32], &[k; 32]));
        build.push(t.elapsed().as_secs_f64());
    }
    build.sort_by(f64::total_cmp);
    let cache_seconds = build[build.len() / 2];

    let verifier =
        Verifier::new(options, capminer_kernels::gpu_challenge::GpuParams::NETWORK).unwrap();
    let one_key = claims(1, per_key);
    let many = claims(keys, per_key);
    let single = throughput(&verifier, &one_key, 1);
    let all_one = throughput(&verifier, &one_key, cores);
    let all_many = throughput(&verifier, &many, cores);

    let out = Command::new(build_reference())
        .args(["--verify", "--auto", "--nonces", "100"])
        .output()
        .expect("randomx-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let reference_ms: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Performance: "))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no performance line in:\n{text}"));

    println!("CPU proof verification (RandomX light mode, {cores} cores)");
    println!("{:<52} {:>12}", "measure", "value");
    println!(
        "{:<52} {:>12.3}",
        "light cache build per key (s, median of 4)", cache_seconds
    );
    println!(
        "{:<52} {:>12.1}",
        format!("proofs/s, 1 key x {per_key}, 1 core (cache included)"),
        single
    );
    println!(
        "{:<52} {:>12.1}",
        format!("proofs/s, 1 key x {per_key}, {cores} cores"),
        all_one
    );
    println!(
        "{:<52} {:>12.1}",
        format!("proofs/s, {keys} keys x {per_key}, {cores} cores"),
        all_many
    );
    println!(
        "{:<52} {:>12.1}",
        "proofs/s per core (all cores, several keys)",
        all_many / cores as f64
    );
    let per_proof_ms = 1000.0 / all_many * cores as f64;
    let per_hash_ms = (per_key as f64 / single - cache_seconds) / per_key as f64 * 1000.0;
    println!(
        "{:<52} {:>12.2}",
        "ms per proof per core, caches included", per_proof_ms
    );
    println!(
        "{:<52} {:>12.2}",
        "ms per hash on 1 core, cache excluded", per_hash_ms
    );
    println!(
        "{:<52} {:>12.2}",
        "reference randomx-benchmark --verify: ms per hash", reference_ms
    );
    println!(
        "{:<52} {:>12.3}",
        "ratio reference / capminer ms per hash (>= 1: faster)",
        reference_ms / per_hash_ms
    );
    println!("GPU proofs: no GPU unit kind in this build, nothing to measure.");
}
