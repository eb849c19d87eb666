//! Fluence's own RandomX, alone in a binary: the reference capminer's Fluence flavor is checked
//! and measured against.
//!
//! This crate links `ccp-randomx` 0.17.0 (Fluence's fork, built by its own build script) and no
//! capminer kernels, so the only `randomx_*` symbols in the binary are the fork's: what it
//! prints is what Fluence's prover computes. Every mode prints plain lines on stdout:
//!
//! * `fluence-kat vectors`: known-answer vectors as Rust constants, pasted into capminer's
//!   kernels tests: `K = keccak256(global_nonce ‖ cu_id)`, a 32-byte local nonce and its hash
//!   (light mode), and a few dataset items of one key.
//! * `fluence-kat hash K NONCE...`: one line per 32-byte local nonce (hex): its hash under key
//!   `K` (hex), light mode.
//! * `fluence-kat items K FIRST COUNT`: dataset items `FIRST..FIRST + COUNT` of key `K`, one
//!   64-byte item (hex) a line, built by the fork's `randomx_init_dataset` into a dataset that
//!   is allocated whole but written only there.
//! * `fluence-kat bench THREADS [large-pages]`: the reference side of capminer's Fluence
//!   benchmark: key a cache, allocate and build a full dataset on `THREADS` threads (item
//!   ranges split evenly, as CCP splits them), print `key_seconds` and `build_seconds` and
//!   `ready`; then for each line `hash SECONDS [CPU...]` read from stdin, hash 32-byte local
//!   nonces pipelined on one fast VM a CPU (CPUs `0..THREADS` unless listed, each thread pinned
//!   to its CPU) for `SECONDS` and print `hashes N` and `hash_seconds S`; at the end of stdin,
//!   exit.

use std::process::ExitCode;
use std::time::Instant;

use ccp_randomx::{Cache, Dataset, RandomXFlags, RandomXVM};
use tiny_keccak::{Hasher, Keccak};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("vectors") => {
            vectors();
            Ok(())
        }
        Some("hash") if args.len() >= 3 => hash(&args[1], &args[2..]),
        Some("items") if args.len() == 4 => items(&args[1], &args[2], &args[3]),
        Some("bench") if args.len() >= 2 => bench(&args[1], args.get(2)),
        _ => Err(
            "usage: fluence-kat vectors | hash K NONCE... | items K FIRST COUNT | \
                  bench THREADS [large-pages]"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fluence-kat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut keccak = Keccak::v256();
    for part in parts {
        keccak.update(part);
    }
    let mut out = [0u8; 32];
    keccak.finalize(&mut out);
    out
}

fn bytes32(what: &str, s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} must be 32 bytes of hex, got {s:?}"))
}

fn number(what: &str, s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{what} must be a number, got {s:?}"))
}

fn light_cache(key: &[u8]) -> Result<Cache, String> {
    Cache::new(key, RandomXFlags::recommended()).map_err(|e| e.to_string())
}

/// The hashes of `nonces` under `key`, light mode, in order.
fn light_hashes(key: &[u8], nonces: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, String> {
    let cache = light_cache(key)?;
    let vm =
        RandomXVM::light(cache.handle(), RandomXFlags::recommended()).map_err(|e| e.to_string())?;
    Ok(nonces.iter().map(|n| *vm.hash(n).as_ref()).collect())
}

fn hash(key: &str, nonces: &[String]) -> Result<(), String> {
    let key = bytes32("K", key)?;
    let nonces = nonces
        .iter()
        .map(|n| bytes32("local nonce", n))
        .collect::<Result<Vec<_>, _>>()?;
    for h in light_hashes(&key, &nonces)? {
        println!("{}", hex::encode(h));
    }
    Ok(())
}

/// Items `first..first + count` of `key`'s dataset, 64 bytes each.
fn dataset_items(key: &[u8], first: u64, count: u64) -> Result<Vec<u8>, String> {
    let cache = light_cache(key)?;
    let mut dataset = Dataset::allocate(false).map_err(|e| e.to_string())?;
    let total = dataset.items_count();
    if first.checked_add(count).is_none_or(|end| end > total) {
        return Err(format!(
            "items {first}+{count} lie past the dataset's {total}"
        ));
    }
    dataset.initialize(&cache, first, count);
    let memory = dataset.handle().memory().cast::<u8>();
    // SAFETY: the dataset's memory holds `total` items of 64 bytes; items `first..first +
    // count` lie inside it and were just written; the dataset outlives this borrow.
    let items = unsafe {
        std::slice::from_raw_parts(memory.add((first * 64) as usize), (count * 64) as usize)
    };
    Ok(items.to_vec())
}

fn items(key: &str, first: &str, count: &str) -> Result<(), String> {
    let key = bytes32("K", key)?;
    let items = dataset_items(&key, number("FIRST", first)?, number("COUNT", count)?)?;
    for item in items.chunks_exact(64) {
        println!("{}", hex::encode(item));
    }
    Ok(())
}

/// A local nonce as CCP counts it: bytes 0..8 a little-endian counter, the rest fixed.
fn local_nonce(counter: u64, rest: u8) -> [u8; 32] {
    let mut nonce = [rest; 32];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// Prints the vectors as Rust constants for capminer's tests.
fn vectors() {
    let h = |s: &str| -> [u8; 32] { bytes32("vector", s).expect("a fixed vector") };
    // CCP's example global nonce and CU id (`main/examples/on_active_commitment.json`).
    let ccp_nonce = h("13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6");
    let ccp_cu = h("21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f");
    let cases: [([u8; 32], [u8; 32], [u8; 32]); 6] = [
        (ccp_nonce, ccp_cu, [0; 32]),
        (ccp_nonce, ccp_cu, local_nonce(1, 0)),
        ([0; 32], [0; 32], [0; 32]),
        ([0x11; 32], [0x22; 32], local_nonce(0, 0x33)),
        ([0x11; 32], [0x22; 32], local_nonce(u64::MAX, 0x33)),
        (
            [0xff; 32],
            [0x01; 32],
            h("0102030403040301020404050601020302030304020104050601020304060302"),
        ),
    ];
    println!(
        "/// (global_nonce, cu_id, K, local_nonce, hash), from ccp-randomx 0.17.0 in light mode."
    );
    println!("pub(super) const FLUENCE: &[(&str, &str, &str, &str, &str)] = &[");
    for (global, cu, nonce) in cases {
        let key = keccak(&[&global, &cu]);
        let hash = light_hashes(&key, &[nonce]).expect("a light-mode hash")[0];
        println!("    (");
        for field in [&global, &cu, &key, &nonce, &hash] {
            println!("        \"{}\",", hex::encode(field));
        }
        println!("    ),");
    }
    println!("];");
    let key = keccak(&[&ccp_nonce, &ccp_cu]);
    let total = Dataset::allocate(false).expect("a dataset").items_count();
    println!(
        "/// Dataset items (index, 64 bytes) of the first vector's K, from ccp-randomx 0.17.0."
    );
    println!("pub(super) const FLUENCE_ITEMS: &[(u64, &str)] = &[");
    for index in [0, 1, 1_000_003, total / 2, total - 1] {
        let item = dataset_items(&key, index, 1).expect("an item");
        println!("    ({index}, \"{}\"),", hex::encode(item));
    }
    println!("];");
}

/// Pins the calling thread to CPU `cpu` (best effort: the bench reports either way).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it; the call
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn bench(threads: &str, large: Option<&String>) -> Result<(), String> {
    let threads = number("THREADS", threads)?.max(1) as usize;
    let large = match large.map(String::as_str) {
        None => false,
        Some("large-pages") => true,
        Some(other) => return Err(format!("unknown option {other:?}")),
    };
    let mut flags = RandomXFlags::recommended_full_mem();
    if large {
        flags.insert(RandomXFlags::LARGE_PAGES);
    }
    let key = keccak(&[&[7; 32], &[9; 32]]);

    let started = Instant::now();
    let cache = Cache::new(&key, flags).map_err(|e| format!("cache: {e}"))?;
    println!("key_seconds {:.3}", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let dataset = Dataset::allocate(large).map_err(|e| format!("dataset: {e}"))?;
    let total = dataset.items_count();
    std::thread::scope(|scope| {
        for i in 0..threads {
            let (cache, mut handle) = (&cache, dataset.handle());
            scope.spawn(move || {
                pin(i);
                let start = total * i as u64 / threads as u64;
                let end = total * (i as u64 + 1) / threads as u64;
                handle.initialize(cache, start, end - start);
            });
        }
    });
    println!("build_seconds {:.3}", started.elapsed().as_secs_f64());
    println!("ready");
    drop(cache);
    // One counter a CPU, continued from phase to phase.
    let mut counters = std::collections::BTreeMap::<usize, u64>::new();
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let (seconds, cpus) = match words[..] {
            ["hash", seconds, ref cpus @ ..] => {
                let cpus = if cpus.is_empty() {
                    (0..threads).collect()
                } else {
                    cpus.iter()
                        .map(|c| number("CPU", c).map(|c| c as usize))
                        .collect::<Result<Vec<_>, _>>()?
                };
                (number("SECONDS", seconds)? as f64, cpus)
            }
            _ => return Err(format!("unknown command {line:?}")),
        };
        let mut phase: Vec<(usize, u64)> = cpus
            .iter()
            .map(|&cpu| (cpu, *counters.entry(cpu).or_default()))
            .collect();
        let (hashes, wall) = hash_phase(&dataset, flags, &mut phase, seconds);
        counters.extend(phase);
        println!("hashes {hashes}");
        println!("hash_seconds {wall:.3}");
    }
    Ok(())
}

/// Hashes on one fast VM a CPU for `seconds`, each thread pinned to its CPU and continuing
/// that CPU's counter; the hashes done and the longest thread's time.
fn hash_phase(
    dataset: &Dataset,
    flags: RandomXFlags,
    counters: &mut [(usize, u64)],
    seconds: f64,
) -> (u64, f64) {
    let hashed: Vec<(u64, f64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = counters
            .iter_mut()
            .map(|(cpu, counter)| {
                let (i, handle) = (*cpu, dataset.handle());
                scope.spawn(move || {
                    pin(i);
                    let vm = RandomXVM::fast(handle, flags).expect("a fast VM");
                    let started = Instant::now();
                    let first = *counter;
                    vm.hash_first(&local_nonce(*counter, i as u8));
                    while started.elapsed().as_secs_f64() < seconds {
                        for _ in 0..16 {
                            *counter += 1;
                            std::hint::black_box(vm.hash_next(&local_nonce(*counter, i as u8)));
                        }
                    }
                    std::hint::black_box(vm.hash_last());
                    *counter += 1;
                    (*counter - first, started.elapsed().as_secs_f64())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a hashing thread"))
            .collect()
    });
    let hashes: u64 = hashed.iter().map(|(n, _)| n).sum();
    let wall = hashed.iter().map(|(_, s)| *s).fold(0.0, f64::max);
    (hashes, wall)
}
