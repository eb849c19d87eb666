//! capminer's Fluence flavor against Fluence's own prover code (`ccp-randomx` 0.17.0), in one
//! run, like for like: the same threads (thread `i` pinned to CPU `i` on both sides), the same
//! pages (4 KiB, capminer's transparent-huge-pages advice off; or reserved 2 MiB pages on both
//! with `CAPMINER_BENCH_LARGE_PAGES=1`), the same inputs (32-byte local nonces, pipelined).
//!
//! One run:
//!
//! 1. capminer: key a Fluence cache while the dataset is allocated beside it (as the miner
//!    re-keys a unit), build the dataset with capminer's SIMD initialisation on `T` threads
//!    (timed: key + build, allocation included), and check two fast-mode hashes against
//!    `fluence-kat hash` (ccp-randomx, light mode);
//! 2. ccp-randomx: `fluence-kat bench T` (a separate process that links only Fluence's crates):
//!    `Cache::new`, `Dataset::allocate` and `randomx_init_dataset` split evenly over `T`
//!    threads as CCP splits it (timed the same way); it then waits with its dataset built;
//! 3. hashing, both datasets alive: `P` phases of `S` seconds a side, alternating the sides in
//!    ABBA order (capminer, ccp, ccp, capminer, ...), so that a shared host's load drifts over
//!    both alike; each side hashes on `T` threads pinned to CPUs `0..T`: capminer through
//!    [`RandomXSearcher`] (32-byte local nonces, pipelined), ccp-randomx with its `RandomXVM`'s
//!    `hash_first`/`hash_next`.
//!
//! 4. concurrent pairs (`Q` of them, with at least 2 threads): both sides hash at the same time
//!    for `S` seconds, capminer on CPUs `0..T/2` and ccp-randomx on `T/2..T` (one thread a CPU),
//!    then the halves swap; a pair's ratio is capminer's hashes a second over ccp-randomx's,
//!    each summed over both halves. Load that comes and goes on a shared host falls on both
//!    sides at once, which alternating phases cannot give.
//!
//! The table gives hashes per second per core (hashing threads = cores) over all phases, the
//! spread of the per-pair ratios, and re-key seconds; ratios are capminer / ccp-randomx for
//! the hashrate (the bar is 0.98) and ccp-randomx / capminer for re-keying (above 1: faster).
//!
//! Environment: `CAPMINER_BENCH_THREADS` (default: all CPUs), `CAPMINER_BENCH_SECONDS` (a phase,
//! default 10), `CAPMINER_BENCH_PHASES` (default 6), `CAPMINER_BENCH_PAIRS` (default 6),
//! `CAPMINER_BENCH_LARGE_PAGES=1`,
//! `CAPMINER_FLUENCE_KAT` (a built `fluence-kat`; else it is built into `target/fluence-kat`).
//! Needs two datasets' worth of memory (about 8.5 GiB). Run with
//! `cargo bench -p capminer-kernels --bench fluence`.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use capminer_kernels::key::{LOCAL_NONCE_TAIL, cpu_unit_key};
use capminer_kernels::randomx::{
    Cache, Dataset, DatasetInit, RandomXFlags, RandomXOptions, RandomXSearcher, Vm, VmMemory,
};
use capminer_kernels::search::Searcher;
use capminer_protocol::RandomxFlavor;

/// One side's re-key time and hashing totals.
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

/// capminer's side: its Fluence dataset, built.
struct Capminer {
    flags: RandomXFlags,
    dataset: Arc<Dataset>,
    side: Side,
}

fn capminer(kat: &PathBuf, threads: usize) -> Capminer {
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
    let nonces = [0u64, 1 << 40];
    let ours: Vec<String> = nonces
        .iter()
        .map(|&n| hex::encode(check.hash_one(n).expect("hash")))
        .collect();
    let output = Command::new(kat)
        .arg("hash")
        .arg(hex::encode(key))
        .args(nonces.map(|n| hex::encode(check.input(n))))
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
    Capminer {
        flags,
        dataset,
        side: Side {
            key_seconds,
            build_seconds,
            hashes: 0,
            hash_seconds: 0.0,
            pages,
        },
    }
}

impl Capminer {
    /// Hashes on one thread a CPU of `cpus`, each pinned to its CPU, for `seconds`: the hashes
    /// and the longest thread's time. `phase` keeps each phase's nonces apart.
    fn hash(&self, cpus: &[usize], seconds: f64, phase: u64) -> (u64, f64) {
        let counts: Vec<(u64, f64)> = std::thread::scope(|scope| {
            let workers: Vec<_> = cpus
                .iter()
                .map(|&i| {
                    let dataset = self.dataset.clone();
                    scope.spawn(move || {
                        pin(i);
                        let vm = Vm::new(self.flags, VmMemory::Dataset(dataset)).expect("VM");
                        let mut searcher =
                            RandomXSearcher::with_tail(vm, [i as u8; LOCAL_NONCE_TAIL]);
                        let never = [0u8; 32];
                        let started = Instant::now();
                        let mut hashed = 0;
                        while started.elapsed().as_secs_f64() < seconds {
                            let done = searcher
                                .search(phase << 40 | hashed, 256, &never, &mut || false)
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
        let hashes = counts.iter().map(|(n, _)| n).sum();
        let wall = counts.iter().map(|(_, s)| *s).fold(0.0, f64::max);
        (hashes, wall)
    }
}

/// ccp-randomx's side: the `fluence-kat bench` process, its dataset built.
struct Ccp {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    side: Side,
}

/// Reads `name value` from the next line.
fn value(lines: &mut Lines<BufReader<ChildStdout>>, name: &str) -> f64 {
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("fluence-kat bench ended before {name}"))
        .expect("fluence-kat's output");
    line.strip_prefix(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("fluence-kat bench printed {line:?}, not {name}"))
}

fn ccp(kat: &PathBuf, threads: usize) -> Ccp {
    let mut child = Command::new(kat)
        .args(["bench", &threads.to_string()])
        .args(large_pages().then_some("large-pages"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("fluence-kat bench");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let key_seconds = value(&mut lines, "key_seconds");
    let build_seconds = value(&mut lines, "build_seconds");
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(
        ready.as_deref(),
        Some("ready"),
        "fluence-kat bench is ready"
    );
    Ccp {
        child,
        lines,
        side: Side {
            key_seconds,
            build_seconds,
            hashes: 0,
            hash_seconds: 0.0,
            pages: if large_pages() { "2MiB" } else { "4KiB" }.to_string(),
        },
    }
}

impl Ccp {
    /// Starts a phase of `seconds` on one thread a CPU of `cpus`; [`Ccp::finish`] reads it.
    fn start(&mut self, seconds: f64, cpus: &[usize]) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        let cpus: Vec<String> = cpus.iter().map(usize::to_string).collect();
        writeln!(stdin, "hash {} {}", seconds as u64, cpus.join(" ")).expect("fluence-kat's stdin");
        stdin.flush().expect("fluence-kat's stdin");
    }

    /// The hashes and the longest thread's time of the phase started last.
    fn finish(&mut self) -> (u64, f64) {
        let hashes = value(&mut self.lines, "hashes") as u64;
        (hashes, value(&mut self.lines, "hash_seconds"))
    }

    fn hash(&mut self, seconds: f64, cpus: &[usize]) -> (u64, f64) {
        self.start(seconds, cpus);
        self.finish()
    }
}

/// Hashes per second.
fn rate((hashes, seconds): (u64, f64)) -> f64 {
    hashes as f64 / seconds
}

/// The smallest, the median and the largest of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (sorted[0], median, sorted[n - 1])
}

/// The concurrent pairs: both sides hash at the same time, capminer on one half of the CPUs
/// and ccp-randomx on the other, then the halves swap. A pair's ratio is capminer's hashes a
/// second over ccp-randomx's, each summed over both halves: whatever slows the host in that
/// interval slows both sides alike, and a faster or busier CPU serves both sides once.
/// Returns each pair's ratio.
fn concurrent(
    ours: &Capminer,
    theirs: &mut Ccp,
    threads: usize,
    seconds: f64,
    pairs: u64,
) -> Vec<f64> {
    let half = threads / 2;
    let low: Vec<usize> = (0..half).collect();
    let high: Vec<usize> = (half..2 * half).collect();
    (0..pairs)
        .map(|pair| {
            let mut ours_rate = 0.0;
            let mut theirs_rate = 0.0;
            for (phase, (mine, other)) in [(&low, &high), (&high, &low)].into_iter().enumerate() {
                theirs.start(seconds, other);
                ours_rate += rate(ours.hash(mine, seconds, 1 << 20 | pair << 1 | phase as u64));
                theirs_rate += rate(theirs.finish());
            }
            ours_rate / theirs_rate
        })
        .collect()
}

fn main() {
    let threads = env_u64(
        "CAPMINER_BENCH_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    ) as usize;
    let seconds = env_u64("CAPMINER_BENCH_SECONDS", 10) as f64;
    let phases = env_u64("CAPMINER_BENCH_PHASES", 6);
    let pairs = env_u64("CAPMINER_BENCH_PAIRS", 6);
    let kat = fluence_kat();
    let mut ours = capminer(&kat, threads);
    let mut theirs = ccp(&kat, threads);
    let all: Vec<usize> = (0..threads).collect();
    let mut ratios = Vec::new();
    for phase in 0..phases {
        let run_ours = || ours.hash(&all, seconds, phase);
        let ((a, a_s), (b, b_s)) = if phase % 4 == 0 || phase % 4 == 3 {
            let a = run_ours();
            (a, theirs.hash(seconds, &all))
        } else {
            let b = theirs.hash(seconds, &all);
            (run_ours(), b)
        };
        ours.side.hashes += a;
        ours.side.hash_seconds += a_s;
        theirs.side.hashes += b;
        theirs.side.hash_seconds += b_s;
        ratios.push((a as f64 / a_s) / (b as f64 / b_s));
    }
    let paired = if threads >= 2 && pairs > 0 {
        concurrent(&ours, &mut theirs, threads, seconds, pairs)
    } else {
        Vec::new()
    };
    drop(theirs.child.stdin.take());
    let _ = theirs.child.wait();
    let (lo, median, hi) = spread(&ratios);
    println!(
        "Fluence flavor: {threads} threads pinned to CPUs 0..{threads}, {phases} phases of {seconds} s a side (ABBA); per-phase hashrate ratios {lo:.3}-{hi:.3} (median {median:.3})"
    );
    println!(
        "| side | pages (dataset init) | key s | build s | re-key s | H/s per core | hashrate ratio | re-key ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, side) in [("capminer", &ours.side), ("ccp-randomx", &theirs.side)] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.3} | {:.2} |",
            side.pages,
            side.key_seconds,
            side.build_seconds,
            side.rekey(),
            side.per_core(threads),
            side.per_core(threads) / theirs.side.per_core(threads),
            theirs.side.rekey() / side.rekey(),
        );
    }
    if !paired.is_empty() {
        let (lo, median, hi) = spread(&paired);
        let mean = paired.iter().sum::<f64>() / paired.len() as f64;
        println!(
            "Concurrent: {pairs} pairs of {seconds} s phases, capminer and ccp-randomx hashing at the same time on {} CPUs each, halves swapped within a pair",
            threads / 2
        );
        println!("| pairs | hashrate ratio (mean) | median | min | max |");
        println!("|---|---|---|---|---|");
        println!("| {pairs} | {mean:.3} | {median:.3} | {lo:.3} | {hi:.3} |");
    }
}
