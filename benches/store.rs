//! The proof store at 1,000,000 proofs: does appending stay fast, and does a chain-client tick
//! stay the size of what is in flight?
//!
//! Fills a store with `CAPMINER_BENCH_PROOFS` proofs (default 1,000,000): 100 units, 100 proofs
//! per unit and epoch, each epoch's proofs appended in one record per unit, submitted, then
//! final, as a long-running miner leaves them. Two stores are filled the same way, in the same
//! run, on the same disk:
//!
//! * `archived`: each epoch is archived once settled (what the chain client does), so two
//!   epochs stay open;
//! * `unarchived`: nothing is archived (every proof stays in the index and the log).
//!
//! Then, in each store, with 100 proofs found and in flight in the open epoch:
//!
//! * tick: the store work of one delivery tick as the client does it now (three reads of the
//!   unsettled proofs and one state change of 100 proofs), and, in the unarchived store, as it
//!   did before the store kept an unsettled set (five full scans with the same filters, then
//!   the same state change);
//! * append latency: two threads append one proof at a time (1,000 each, every append fsynced)
//!   while a third thread ticks without pause: p50, p99, max;
//! * open: replaying the log when the miner starts; the log's size.
//!
//! The two are measured in the order archived, unarchived, unarchived, archived (four rows).
//!
//! Run with `cargo bench -p capminer-proofs --bench store` (builds the store crate alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Epoch, Hash, Proof, ProofRef, Seed, Target, UnitId, UnitKind};

const UNITS: u64 = 100;
const PER_UNIT: u64 = 100;

fn epoch(n: u64) -> Epoch {
    Epoch {
        number: n,
        seed: Seed([n as u8 | 1; 32]),
        targets: [Target([0x0f; 32]), Target([0x1f; 32])],
    }
}

fn unit(u: u64) -> UnitId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&u.to_be_bytes());
    UnitId(id)
}

fn proof(e: u64, u: u64, nonce: u64) -> Proof {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&(e ^ u << 20 ^ nonce << 40).to_le_bytes());
    Proof {
        unit: unit(u),
        kind: UnitKind::Cpu,
        epoch: e,
        nonce,
        hash: Hash(hash),
    }
}

/// Fills `epochs` settled epochs, archiving each when `archive`; returns the open epoch.
fn fill(store: &ProofStore, epochs: u64, archive: bool) -> u64 {
    for e in 1..=epochs {
        store.record_epoch(&epoch(e)).unwrap();
        let mut refs = Vec::new();
        for u in 0..UNITS {
            let proofs: Vec<Proof> = (0..PER_UNIT).map(|n| proof(e, u, n)).collect();
            refs.extend(proofs.iter().map(Proof::id));
            store.append(&proofs).unwrap();
        }
        let tx = Hash([e as u8; 32]);
        store
            .set_state(&refs, ProofState::Submitted { tx })
            .unwrap();
        store.set_state(&refs, ProofState::Final).unwrap();
        if archive && e >= 2 {
            assert!(store.archive_epoch(e - 1).unwrap());
        }
    }
    let open = epochs + 1;
    store.record_epoch(&epoch(open)).unwrap();
    let found: Vec<Proof> = (0..UNITS).map(|u| proof(open, u, 0)).collect();
    store.append(&found).unwrap();
    open
}

/// The store work of one tick as the client does it now.
fn tick_now(store: &ProofStore, flip: &mut bool) {
    let all = store.unsettled(|_| true);
    let found = store.unsettled(|p| p.state == ProofState::Found);
    let _submitted = store.unsettled(|p| matches!(p.state, ProofState::Submitted { .. }));
    change(store, &all, &found, flip);
}

/// The same work through full scans, as ticks did before the unsettled set.
fn tick_before(store: &ProofStore, flip: &mut bool) {
    let all = store.proofs(|p| !p.state.is_terminal()).unwrap();
    let found = store.proofs(|p| p.state == ProofState::Found).unwrap();
    let _submitted = store
        .proofs(|p| matches!(p.state, ProofState::Submitted { .. }))
        .unwrap();
    let _expired = store.proofs(|p| p.state == ProofState::Found).unwrap();
    let _drain = store.proofs(|p| !p.state.is_terminal()).unwrap();
    change(store, &all, &found, flip);
}

/// Moves the open epoch's 100 proofs between found and submitted (one fsynced record).
fn change(
    store: &ProofStore,
    all: &[capminer_proofs::store::StoredProof],
    found: &[capminer_proofs::store::StoredProof],
    flip: &mut bool,
) {
    let refs: Vec<ProofRef> = all.iter().take(100).map(|p| p.proof.id()).collect();
    assert!(!refs.is_empty(), "the open epoch has proofs in flight");
    std::hint::black_box(found);
    let state = if *flip {
        ProofState::Found
    } else {
        ProofState::Submitted { tx: Hash([9; 32]) }
    };
    *flip = !*flip;
    store.set_state(&refs, state).unwrap();
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

struct Row {
    name: &'static str,
    proofs: u64,
    log_bytes: u64,
    open: Duration,
    tick_now: Duration,
    tick_before: Option<Duration>,
    appends: Vec<Duration>,
}

fn measure(name: &'static str, archive: bool, epochs: u64) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    let started = Instant::now();
    let open = fill(&store, epochs, archive);
    eprintln!(
        "{name}: filled {epochs} epochs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut flip = false;
    let time = |f: &dyn Fn(&mut bool), flip: &mut bool| {
        let runs = 20;
        let t = Instant::now();
        for _ in 0..runs {
            f(flip);
        }
        t.elapsed() / runs
    };
    let tick_now_t = time(&|flip: &mut bool| tick_now(&store, flip), &mut flip);
    // Full scans of an archived store would read the archive files: the "before" figure is
    // the unarchived store's, as every store was before archiving existed.
    let tick_before_t =
        (!archive).then(|| time(&|flip: &mut bool| tick_before(&store, flip), &mut flip));

    // Appends from two unit threads while the client ticks without pause.
    let store = Arc::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                tick_now(&store, &mut flip);
            }
        })
    };
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..1000u64)
                    .map(|n| {
                        let p = proof(open, UNITS + w, n + 1);
                        let t = Instant::now();
                        store.append(&[p]).unwrap();
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut appends: Vec<Duration> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    appends.sort_unstable();
    drop(store);

    let log_bytes = std::fs::metadata(dir.path().join("proofs.log"))
        .unwrap()
        .len();
    let t = Instant::now();
    let (reopened, _) = ProofStore::open(dir.path()).unwrap();
    let open_time = t.elapsed();
    drop(reopened);
    Row {
        name,
        proofs: epochs * UNITS * PER_UNIT + UNITS + 2000,
        log_bytes,
        open: open_time,
        tick_now: tick_now_t,
        tick_before: tick_before_t,
        appends,
    }
}

fn main() {
    let proofs = std::env::var("CAPMINER_BENCH_PROOFS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let epochs = (proofs / (UNITS * PER_UNIT)).max(2);
    // A B B A: load that drifts during the run weighs on both stores alike.
    let rows = [
        measure("archived", true, epochs),
        measure("unarchived", false, epochs),
        measure("unarchived", false, epochs),
        measure("archived", true, epochs),
    ];
    println!(
        "\n| store | proofs stored | log MiB | open ms | tick ms (unsettled set) | tick ms (full scans, before) | append p50 ms | append p99 ms | append max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.proofs,
            r.log_bytes as f64 / (1 << 20) as f64,
            ms(r.open),
            ms(r.tick_now),
            r.tick_before.map_or("—".into(), ms),
            ms(quantile(&r.appends, 0.5)),
            ms(quantile(&r.appends, 0.99)),
            ms(*r.appends.last().unwrap()),
        );
    }
}
