//! capminer's Fluence flavor against Fluence's own prover code (`ccp-randomx` 0.17.0), in one
//! run, like for like: the same threads (thread `i` pinned to CPU `i` on both sides), the same
//! pages (4 KiB, capminer's transparent-huge-pages advice off; or reserved 2 MiB pages on both
//! with `CAPMINER_BENCH_LARGE_PAGES=1`), the same inputs (32-byte local nonces, pipelined).
//!
//! Each round, one side after the other (one 4128 MiB dataset alive at a time):
//!
//! 1. capminer: key a Fluence cache while the dataset is allocated beside it (as the miner
//!    re-keys a unit), build the dataset with capminer's SIMD initialisation on `T` threads,
//!    check two fast-mode hashes against `fluence-kat hash` (ccp-randomx, light mode), then
//!    hash on `T` threads for `S` seconds through [`RandomXSearcher`];
//! 2. ccp-randomx: `fluence-kat bench T S` (a separate process that links only Fluence's
//!    crates): `Cache::new`, `Dataset::allocate` and `randomx_init_dataset` split evenly over `T`
//!    threads (as CCP splits it), then `T` fast VMs hashing for `S` seconds.
//!
//! capminer runs first in even rounds and second in odd ones (`CAPMINER_BENCH_CCP_FIRST=1`: the
//! other way round), so that neither side always meets fresh memory first. The table gives hashes per second
//! per core (hashing threads = cores here) and re-key seconds (key + dataset build, allocation
//! included), and the ratios capminer / ccp-randomx (hashrate: the bar is 0.98) and ccp-randomx /
//! capminer (re-key: above 1 is faster).
//!
//! Environment: `CAPMINER_BENCH_THREADS` (default: all CPUs), `CAPMINER_BENCH_SECONDS` (hashing
//! time a side, default 30), `CAPMINER_BENCH_ROUNDS` (default 1), `CAPMINER_BENCH_LARGE_PAGES=1`,
//! `CAPMINER_BENCH_CCP_FIRST=1`, `CAPMINER_FLUENCE_KAT` (a built `fluence-kat`; else it is built into `target/fluence-kat`).
//! Needs about 4.5 GiB of memory. Run with `cargo bench -p capminer-kernels --bench fluence`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use capminer_kernels::key::{LOCAL_NONCE_TAIL, cpu_unit_key};
use capminer_kernels::randomx::{
    Cache, Dataset, DatasetInit, RandomXFlags, RandomXOptions, RandomXSearcher, Vm, VmMemory,
};
use capminer_kernels::search::Searcher;
use capminer_protocol::RandomxFlavor;

struct Side {
    key_seconds: f64,
    build_seconds: f64,
    hashes: u64,
    hash_seconds: f64,
    pages: String,
}

impl Side {
    fn per_core(&self, threads: usize) -> f64 {
        self.hashes as f64 / self.hash_seconds / threads as f64
    }

    fn rekey(&self) -> f64 {
        self.key_seconds + self.build_seconds
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

fn large_pages() -> bool {
    std::env::var("CAPMINER_BENCH_LARGE_PAGES").is_ok_and(|v| v == "1")
}

/// The `fluence-kat` binary, release build.
fn fluence_kat() -> PathBuf {
    if let Ok(path) = std::env::var("CAPMINER_FLUENCE_KAT") {
        return path.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/fluence-kat");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "capminer-fluence-kat",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&root)
        .status()
        .expect("running cargo to build fluence-kat");
    assert!(status.success(), "building fluence-kat failed");
    target.join("release/fluence-kat")
}

/// Pins the calling thread to CPU `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it; the call
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn capminer(kat: &PathBuf, threads: usize, seconds: f64) -> Side {
    let flags = RandomXFlags::resolve(&RandomXOptions {
        large_pages: large_pages(),
        transparent_huge_pages: false,
        dataset_init: DatasetInit::Auto,
        flavor: RandomxFlavor::Fluence,
        ..RandomXOptions::default()
    })
    .expect("flags");
    let key = cpu_unit_key(&[7; 32], &[9; 32]);
    let started = Instant::now();
    let keyed = Cache::keyed_beside(flags, &key, || Dataset::new(flags)).expect("cache");
    let (cache, key_seconds) = (keyed.cache, keyed.key_seconds);
    let mut dataset = keyed.beside.expect("dataset");
    let progress = AtomicU64::new(0);
    assert!(dataset.build(&cache, threads, &pin, &progress, &|| false));
    let build_seconds = started.elapsed().as_secs_f64() - key_seconds;
    drop(cache);
    let pages = format!("{} ({})", dataset.pages(), dataset.init_method());
    let dataset = Arc::new(dataset);

    // The fast VM hashes as ccp-randomx does.
    let tail = [0x5c; LOCAL_NONCE_TAIL];
    let mut check = RandomXSearcher::with_tail(
        Vm::new(flags, VmMemory::Dataset(dataset.clone())).expect("VM"),
        tail,
    );
    let ours: Vec<String> = [0u64, 1 << 40]
        .iter()
        .map(|&n| hex::encode(check.hash_one(n).expect("hash")))
        .collect();
    let output = Command::new(kat)
        .arg("hash")
        .arg(hex::encode(key))
        .args([0u64, 1 << 40].map(|n| hex::encode(check.input(n))))
        .output()
        .expect("fluence-kat hash");
    let theirs: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        ours, theirs,
        "capminer's fast-mode Fluence hashes are ccp-randomx's"
    );
    drop(check);

    let counts: Vec<(u64, f64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let dataset = dataset.clone();
                scope.spawn(move || {
                    pin(i);
                    let vm = Vm::new(flags, VmMemory::Dataset(dataset)).expect("VM");
                    let mut searcher = RandomXSearcher::with_tail(vm, [i as u8; LOCAL_NONCE_TAIL]);
                    let never = [0u8; 32];
                    let started = Instant::now();
                    let mut hashed = 0;
                    while started.elapsed().as_secs_f64() < seconds {
                        let done = searcher
                            .search(hashed, 256, &never, &mut || false)
                            .expect("search");
                        hashed += done.hashed;
                    }
                    (hashed, started.elapsed().as_secs_f64())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hashing thread"))
            .collect()
    });
    Side {
        key_seconds,
        build_seconds,
        hashes: counts.iter().map(|(n, _)| n).sum(),
        hash_seconds: counts.iter().map(|(_, s)| *s).fold(0.0, f64::max),
        pages,
    }
}

fn ccp(kat: &PathBuf, threads: usize, seconds: f64) -> Side {
    let output = Command::new(kat)
        .args(["bench", &threads.to_string(), &(seconds as u64).to_string()])
        .args(large_pages().then_some("large-pages"))
        .output()
        .expect("fluence-kat bench");
    assert!(
        output.status.success(),
        "fluence-kat bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("fluence-kat bench printed no {name}: {text}"))
    };
    Side {
        key_seconds: value("key_seconds"),
        build_seconds: value("build_seconds"),
        hashes: value("hashes") as u64,
        hash_seconds: value("hash_seconds"),
        pages: if large_pages() { "2MiB" } else { "4KiB" }.to_string(),
    }
}

fn main() {
    let threads = env_u64(
        "CAPMINER_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    ) as usize;
    let seconds = env_u64("CAPMINER_BENCH_SECONDS", 30) as f64;
    let rounds = env_u64("CAPMINER_BENCH_ROUNDS", 1);
    let flip = u64::from(std::env::var("CAPMINER_BENCH_CCP_FIRST").is_ok_and(|v| v == "1"));
    let kat = fluence_kat();
    println!(
        "Fluence flavor: {threads} threads pinned to CPUs 0..{threads}, {seconds} s of hashing a side"
    );
    println!(
        "| round | side | pages (dataset init) | key s | build s | re-key s | H/s per core | hashrate ratio | re-key ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for round in 0..rounds {
        let (ours, theirs) = if (round + flip) % 2 == 0 {
            let ours = capminer(&kat, threads, seconds);
            (ours, ccp(&kat, threads, seconds))
        } else {
            let theirs = ccp(&kat, threads, seconds);
            (capminer(&kat, threads, seconds), theirs)
        };
        for (name, side) in [("capminer", &ours), ("ccp-randomx", &theirs)] {
            println!(
                "| {round} | {name} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.3} | {:.2} |",
                side.pages,
                side.key_seconds,
                side.build_seconds,
                side.rekey(),
                side.per_core(threads),
                side.per_core(threads) / theirs.per_core(threads),
                theirs.rekey() / side.rekey(),
            );
        }
    }
}
