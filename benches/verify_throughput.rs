//! Verification of CPU proofs (RandomX light mode) head to head with the reference.
//!
//! 1. Light cache build per key, through [`LightCaches`]: a fresh allocation, and an idle
//!    cache re-keyed in place (what the store does once it is full).
//! 2. Proofs verified per second on all cores, several keys, caches included
//!    (`Verifier::verify`, the path `capminer verify` and `capminer verifier` share).
//! 3. Head to head, ms per light-mode hash: the reference `randomx-benchmark --verify --auto`
//!    (built from the RandomX sources `randomx-rs` vendors, cmake Release) against
//!    `Verifier::verify` with its key's cache already built (as every proof of a unit-epoch
//!    after the first finds it), on the same CPUs (pinned), in ABBA order: each round runs
//!    reference, capminer like for like (4 KiB pages: `transparent_huge_pages = false`),
//!    capminer as configured by default (cache advised for transparent huge pages), then the
//!    same in reverse, so a shared host's load hits all sides alike. Round `r` keys the
//!    reference with `--seed r` and capminer with unit `r`: a key's SuperscalarHash programs
//!    set the cost of its hashes (within a few %), so keys rotate across rounds; one more side
//!    does the reference's very work (its 4-byte key, its block template and nonces) on
//!    capminer's VMs over a 4 KiB-page cache, and must give its exact result. Both wall and
//!    CPU time per hash are given (CPU time: the reference's from `/proc` between its
//!    "Running benchmark" line and its exit; capminer's process CPU time): on a loaded host
//!    the wall time also counts the time the scheduler gave to others.
//!
//! With `CAPMINER_BENCH_LARGE_PAGES=1` the reference runs with `--largePages` and the like-for-like
//! capminer side (and the same-work side) on reserved 2 MiB pages too (`vm.nr_hugepages` first).
//!
//! Environment: `CAPMINER_BENCH_NONCES` (hashes per side per run, default 100),
//! `CAPMINER_BENCH_ROUNDS` (default 3), `CAPMINER_BENCH_THREADS` (threads per side, default 1,
//! pinned to the last CPUs), `CAPMINER_BENCH_PROOFS` and `CAPMINER_BENCH_KEYS` (step 2,
//! defaults 32 and 4). Run with `cargo bench --bench verify_throughput`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use capminer_kernels::randomx::{Cache, LightCaches, RandomXFlags, RandomXOptions, Vm, VmMemory};
use capminer_miner::verify::{Claim, Verifier};
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use capminer_protocol::GpuChallenge;
use common::{build_reference, env_u64};
use rayon::prelude::*;

fn claims(units: std::ops::Range<u64>, per_key: u64) -> Vec<Claim> {
    let epoch = Epoch {
        number: 1,
        seed: Seed([5; 32]),
        targets: [Target([0xff; 32]), Target([0xff; 32])],
    };
    units
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

fn options(thp: bool) -> RandomXOptions {
    RandomXOptions {
        large_pages: !thp && common::large_pages(), // as the reference is run
        transparent_huge_pages: thp,
        ..RandomXOptions::default()
    }
}

/// Pins the calling thread (pid 0) or process `pid` to `cpus`.
fn pin(pid: i32, cpus: &[usize]) {
    // SAFETY: sched_setaffinity with a set we build; a failure only leaves it unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A rayon pool of `cpus.len()` threads, each pinned to `cpus`.
fn pool(cpus: &[usize]) -> rayon::ThreadPool {
    let cpus = cpus.to_vec();
    rayon::ThreadPoolBuilder::new()
        .num_threads(cpus.len())
        .start_handler(move |_| pin(0, &cpus))
        .build()
        .unwrap()
}

/// CPU seconds this process has used.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU seconds process `pid` has used (also readable once it exited, until it is reaped).
fn pid_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // SAFETY: a pure query.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / tick
}

/// Wall and CPU milliseconds per hash.
#[derive(Debug, Default, Clone, Copy)]
struct PerHash {
    wall: f64,
    cpu: f64,
}

/// The reference's hash input (`src/tests/benchmark.cpp`): a block template whose bytes 39..43
/// hold the nonce.
const TEMPLATE: [u8; 76] = [
    0x07, 0x07, 0xf7, 0xa4, 0xf0, 0xd6, 0x05, 0xb3, 0x03, 0x26, 0x08, 0x16, 0xba, 0x3f, 0x10, 0x90,
    0x2e, 0x1a, 0x14, 0x5a, 0xc5, 0xfa, 0xd3, 0xaa, 0x3a, 0xf6, 0xea, 0x44, 0xc1, 0x18, 0x69, 0xdc,
    0x4f, 0x85, 0x3f, 0x00, 0x2b, 0x2e, 0xea, 0x00, 0x00, 0x00, 0x00, 0x77, 0xb2, 0x06, 0xa0, 0x2c,
    0xa5, 0xb1, 0xd4, 0xce, 0x6b, 0xbf, 0xdf, 0x0a, 0xca, 0xc3, 0x8b, 0xde, 0xd3, 0x4d, 0x2d, 0xcd,
    0xee, 0xf9, 0x5c, 0xd2, 0x0c, 0xef, 0xc1, 0x2f, 0x61, 0xd5, 0x61, 0x09,
];

/// The reference's work on capminer's VMs: its key (`--seed`, 4 bytes) and its inputs, one VM
/// per thread, pipelined; returns the time and the XOR of the hashes, as the reference prints.
fn same_work(
    flags: RandomXFlags,
    pool: &rayon::ThreadPool,
    seed: u64,
    nonces: u64,
) -> (PerHash, String) {
    let mut cache = Cache::new(flags).unwrap();
    cache.init_bytes(&(seed as u32).to_le_bytes());
    let memory = VmMemory::Cache(Arc::new(cache));
    let inputs: Vec<[u8; 76]> = (0..nonces as u32)
        .map(|n| {
            let mut input = TEMPLATE;
            input[39..43].copy_from_slice(&n.to_le_bytes());
            input
        })
        .collect();
    let share = inputs.len().div_ceil(pool.current_num_threads());
    let (t, c) = (Instant::now(), process_cpu());
    let hashes: Vec<[u8; 32]> = pool.install(|| {
        inputs
            .par_chunks(share)
            .flat_map_iter(|chunk| {
                let mut vm = Vm::new(flags, memory.clone()).unwrap();
                let refs: Vec<&[u8]> = chunk.iter().map(|i| i.as_slice()).collect();
                vm.hash_batch(&refs)
            })
            .collect()
    });
    let (wall, cpu) = (t.elapsed().as_secs_f64(), process_cpu() - c);
    let mut xor = [0u8; 32];
    for h in hashes {
        xor.iter_mut().zip(h).for_each(|(x, b)| *x ^= b);
    }
    let per = PerHash {
        wall: wall * 1000.0 / nonces as f64,
        cpu: cpu * 1000.0 / nonces as f64,
    };
    (per, hex::encode(xor))
}

/// The reference's light mode: `randomx-benchmark --verify --auto` on `cpus`.
fn reference(binary: &Path, cpus: &[usize], nonces: u64, seed: u64) -> (PerHash, String) {
    let mut child = Command::new(binary)
        .args(["--verify", "--auto"])
        .args(common::large_pages().then_some("--largePages"))
        .arg("--threads")
        .arg(cpus.len().to_string())
        .arg("--nonces")
        .arg(nonces.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("randomx-benchmark runs");
    pin(child.id() as i32, cpus); // before its cache is built, so before any VM thread
    let (mut cpu0, mut wall, mut result) = (None, None, None);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("Running benchmark") {
            cpu0 = Some(pid_cpu(child.id()));
        } else if let Some(rest) = line.strip_prefix("Calculated result: ") {
            result = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Performance: ") {
            wall = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
    }
    let cpu1 = pid_cpu(child.id()); // exited, not yet reaped
    assert!(child.wait().unwrap().success(), "randomx-benchmark failed");
    let per = PerHash {
        wall: wall.expect("a Performance line"),
        cpu: (cpu1 - cpu0.expect("the reference started hashing")) * 1000.0 / nonces as f64,
    };
    (per, result.expect("a result line"))
}

/// capminer's light mode: `Verifier::verify` of `nonces` claims of one key whose cache is
/// already built.
fn capminer(verifier: &Verifier, pool: &rayon::ThreadPool, unit: u64, nonces: u64) -> PerHash {
    let claims = claims(unit..unit + 1, nonces);
    pool.install(|| verifier.verify(&claims[..1]).unwrap()); // builds (or finds) the cache
    let (t, c) = (Instant::now(), process_cpu());
    let verdicts = pool.install(|| verifier.verify(&claims).unwrap());
    let (wall, cpu) = (t.elapsed().as_secs_f64(), process_cpu() - c);
    assert!(verdicts.iter().all(|v| v.is_valid()), "all-ones target");
    PerHash {
        wall: wall * 1000.0 / nonces as f64,
        cpu: cpu * 1000.0 / nonces as f64,
    }
}

fn mean(xs: &[PerHash]) -> PerHash {
    let n = xs.len() as f64;
    PerHash {
        wall: xs.iter().map(|x| x.wall).sum::<f64>() / n,
        cpu: xs.iter().map(|x| x.cpu).sum::<f64>() / n,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nonces = env_u64("CAPMINER_BENCH_NONCES", 100);
    let rounds = env_u64("CAPMINER_BENCH_ROUNDS", 3);
    let threads = env_u64("CAPMINER_BENCH_THREADS", 1) as usize;
    let per_key = env_u64("CAPMINER_BENCH_PROOFS", 32);
    let keys = env_u64("CAPMINER_BENCH_KEYS", 4);
    let cpus_online = std::thread::available_parallelism().unwrap().get();
    let cpus: Vec<usize> = (cpus_online.saturating_sub(threads)..cpus_online).collect();
    let binary = build_reference();

    let flags = RandomXFlags::resolve(&options(true).light()).unwrap();
    let (fresh, in_place) = cache_builds(flags);
    let proofs_per_s = throughput(flags, cpus_online, keys, per_key);
    let like = Verifier::new(options(false), GpuChallenge::NETWORK).unwrap();
    let default = Verifier::new(options(true), GpuChallenge::NETWORK).unwrap();
    let pinned = pool(&cpus);
    let run = HeadToHead {
        binary: &binary,
        cpus: &cpus,
        pinned: &pinned,
        nonces,
    };
    let [r, s, l, d] = run.rounds(&like, &default, rounds);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    println!("CPU proof verification (RandomX light mode), {cpus_online} CPUs, shared host");
    println!(
        "{:<58} {:>9.3}",
        "light cache build per key, fresh (s, median of 4)",
        median(fresh)
    );
    println!(
        "{:<58} {:>9.3}",
        "light cache build per key, re-keyed in place (s, median)",
        median(in_place)
    );
    println!(
        "{:<58} {:>9.1}",
        format!("proofs/s, {keys} keys x {per_key}, {cpus_online} cores, caches included"),
        proofs_per_s
    );
    println!();
    println!(
        "Head to head: {threads} thread(s) on CPU {cpus:?}, {nonces} hashes a run, {rounds} ABBA rounds"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10}",
        "side", "wall ms", "ratio", "CPU ms", "ratio"
    );
    for (name, side) in [
        ("reference randomx-benchmark --verify --auto", r),
        ("capminer VMs, the reference's key and inputs", s),
        (
            if common::large_pages() {
                "capminer, 2 MiB reserved pages (like for like)"
            } else {
                "capminer, 4 KiB pages (like for like)"
            },
            l,
        ),
        ("capminer, default (THP-advised cache)", d),
    ] {
        println!(
            "{name:<44} {:>10.2} {:>10.3} {:>10.2} {:>10.3}",
            side.wall,
            r.wall / side.wall,
            side.cpu,
            r.cpu / side.cpu
        );
    }
    println!(
        "ratio = reference ms / side ms per hash (>= 1.00: as fast as the reference or faster)"
    );
    println!("same key and inputs: the XOR of every hash equals the reference's in every round");
}

/// Light cache builds: fresh, then re-keyed in place (capacity 1, the previous one idle), 4
/// keys each; seconds per build.
fn cache_builds(flags: RandomXFlags) -> (Vec<f64>, Vec<f64>) {
    let store = LightCaches::new(flags, 1);
    let mut fresh = Vec::new();
    let mut in_place = Vec::new();
    for k in 0..4u8 {
        let t = Instant::now();
        drop(LightCaches::new(flags, 1).get(&[k; 32]).unwrap());
        fresh.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        drop(store.get(&[k; 32]).unwrap());
        in_place.push(t.elapsed().as_secs_f64());
    }
    (fresh, in_place)
}

/// Proofs verified per second on all cores, caches included (a fresh store: every key built
/// once).
fn throughput(flags: RandomXFlags, cpus_online: usize, keys: u64, per_key: u64) -> f64 {
    let verifier = Verifier::with_caches(
        Arc::new(LightCaches::new(flags, cpus_online)),
        GpuChallenge::NETWORK,
    );
    let many = claims(100..100 + keys, per_key);
    let all = pool(&(0..cpus_online).collect::<Vec<_>>());
    let t = Instant::now();
    all.install(|| verifier.verify(&many).unwrap());
    many.len() as f64 / t.elapsed().as_secs_f64()
}

/// The head-to-head runs: the reference benchmark, capminer's VMs on the reference's work,
/// capminer like for like and capminer by default, on the same pinned CPUs.
struct HeadToHead<'a> {
    binary: &'a Path,
    cpus: &'a [usize],
    pinned: &'a rayon::ThreadPool,
    nonces: u64,
}

impl HeadToHead<'_> {
    /// `rounds` ABBA rounds; the mean time per hash of each side, in the order above.
    fn rounds(&self, like: &Verifier, default: &Verifier, rounds: u64) -> [PerHash; 4] {
        let (nonces, pinned, cpus) = (self.nonces, self.pinned, self.cpus);
        let like_flags = like.caches().flags();
        let (mut r, mut s, mut l, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let mut results = Vec::new();
            for side in [0, 1, 2, 3, 3, 2, 1, 0] {
                match side {
                    0 => {
                        let (per, result) = reference(self.binary, cpus, nonces, round);
                        r.push(per);
                        results.push(result);
                    }
                    1 => {
                        let (per, result) = same_work(like_flags, pinned, round, nonces);
                        s.push(per);
                        results.push(result);
                    }
                    2 => l.push(capminer(like, pinned, round, nonces)),
                    _ => d.push(capminer(default, pinned, round, nonces)),
                }
            }
            assert!(
                results.iter().all(|x| *x == results[0]),
                "capminer's VMs and the reference disagree on the same work: {results:?}"
            );
            let last = |v: &[PerHash]| format!("{:.1?}", &v[v.len() - 2..]);
            eprintln!(
                "round {round}: reference {} same work {} like for like {} default {}",
                last(&r),
                last(&s),
                last(&l),
                last(&d)
            );
        }
        [mean(&r), mean(&s), mean(&l), mean(&d)]
    }
}
