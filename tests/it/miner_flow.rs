//! The miner end to end in light mode: proofs found, stored in nonce order, re-keying on a new
//! epoch without new threads, pinning checked through /proc, pause, restart, re-verification.

use std::sync::Arc;
use std::time::Duration;

use capminer_config::Config;
use capminer_miner::Miner;
use capminer_miner::topology::{Topology, parse_cpu_list};
use capminer_miner::verify::Verdict;
use capminer_proofs::store::{ProofStore, Record, StoredProof};
use capminer_proofs::{Epoch, Hash, Seed, Target};
use prometheus::Registry;

use crate::common::wait_for;

fn light_config() -> Config {
    let mut config = Config::default();
    config.cpu.randomx.full_memory = false;
    config.cpu.randomx.large_pages = false;
    config.cpu.round_ms = 100;
    config
}

fn epoch(number: u64, seed: u8) -> Epoch {
    Epoch {
        number,
        seed: Seed([seed; 32]),
        targets: [Target::for_expected_hashes(8), Target([0; 32])],
    }
}

fn start(config: &Config, store: &Arc<ProofStore>) -> Miner {
    Miner::start_planned(
        config,
        Miner::plan(config).unwrap(),
        store.clone(),
        &Registry::new(),
    )
    .unwrap()
}

fn proofs_in(store: &ProofStore, epoch: u64) -> Vec<StoredProof> {
    store.proofs(|p| p.proof.epoch == epoch).unwrap()
}

/// Waits until every unit has at least `n` proofs stored in `epoch`.
fn wait_for_proofs(store: &ProofStore, miner: &Miner, epoch: u64, n: usize) {
    let units: Vec<_> = miner.units().iter().map(|u| u.info().id).collect();
    let enough = wait_for(Duration::from_secs(120), || {
        let proofs = proofs_in(store, epoch);
        units
            .iter()
            .all(|id| proofs.iter().filter(|p| p.proof.unit == *id).count() >= n)
            .then_some(())
    });
    assert!(
        enough.is_some(),
        "units did not find {n} proofs each in epoch {epoch}"
    );
}

fn allowed_cpus(tid: i32) -> Vec<usize> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    parse_cpu_list(line.split(':').nth(1).unwrap()).unwrap()
}

#[test]
fn units_prove_rekey_pause_restart_and_every_proof_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let config = light_config();
    let miner = start(&config, &store);
    assert_eq!(
        miner.units().len(),
        Topology::detect().unwrap().cores.len(),
        "auto: one unit per core"
    );

    miner.set_epoch(epoch(1, 0xa1)).unwrap();
    wait_for_proofs(&store, &miner, 1, 5);

    // Every hashing thread is pinned to its unit's core, as the OS reports it.
    let topology = Topology::detect().unwrap();
    let tids: Vec<Vec<i32>> = miner.units().iter().map(|u| u.thread_ids()).collect();
    for (unit, tids) in miner.units().iter().zip(&tids) {
        let index: usize = unit.info().label.trim_start_matches("cpu").parse().unwrap();
        let core = topology.core(index).unwrap();
        assert_eq!(tids.len(), unit.info().threads);
        for tid in tids {
            assert_eq!(allowed_cpus(*tid).len(), 1);
            assert!(
                core.cpus.contains(&allowed_cpus(*tid)[0]),
                "{} thread {tid} is pinned to its core",
                unit.info().label
            );
        }
    }

    // A new epoch re-keys every unit on the same threads.
    miner.set_epoch(epoch(2, 0xb2)).unwrap();
    wait_for_proofs(&store, &miner, 2, 5);
    let after: Vec<Vec<i32>> = miner.units().iter().map(|u| u.thread_ids()).collect();
    assert_eq!(after, tids, "re-keying keeps the unit threads");
    for unit in miner.units() {
        assert_eq!(unit.last_build().unwrap().epoch, 2);
    }

    // Pause stops hashing within a round; resume restarts it.
    miner.set_paused(true);
    let hashes = || -> Vec<u64> { miner.units().iter().map(|u| u.hashes()).collect() };
    // The counters settle once the rounds in flight end (however loaded the machine), and stay.
    // Settled means unchanged for a whole second: on a machine loaded several times over, a
    // hashing thread can sit descheduled mid-hash for hundreds of milliseconds.
    let paused = wait_for(Duration::from_secs(20), || {
        let before = hashes();
        std::thread::sleep(Duration::from_millis(1000));
        (hashes() == before).then_some(before)
    })
    .expect("hashing stops once paused");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        paused,
        miner.units().iter().map(|u| u.hashes()).collect::<Vec<_>>(),
        "no hashing while paused"
    );
    miner.set_paused(false);
    assert!(
        wait_for(Duration::from_secs(10), || (miner.units()[0].hashes()
            > paused[0])
            .then_some(()))
        .is_some()
    );
    miner.stop().unwrap();

    // A restart in the same epoch continues above the last stored nonce of each unit.
    let before_restart = proofs_in(&store, 2);
    let miner = start(&config, &store);
    miner.set_epoch(epoch(2, 0xb2)).unwrap();
    wait_for_proofs(
        &store,
        &miner,
        2,
        before_restart.len() / miner.units().len() + 3,
    );
    miner.stop().unwrap();

    // The log holds each unit's proofs of an epoch in strictly increasing nonce order, across
    // the restart too.
    let bytes = std::fs::read(dir.path().join("proofs.log")).unwrap();
    let scan = capminer_proofs::store::log::scan(&bytes, |p| Record::decode(p).is_some());
    let mut last = std::collections::HashMap::new();
    let mut logged = 0;
    for payload in &scan.payloads {
        if let Some(Record::Proofs(proofs)) = Record::decode(payload) {
            for p in proofs {
                logged += 1;
                let prev = last.insert((p.epoch, p.unit), p.nonce);
                assert!(
                    prev.is_none_or(|prev| prev < p.nonce),
                    "{} after nonce {prev:?}",
                    p.id()
                );
            }
        }
    }
    let all = store.proofs(|_| true).unwrap();
    assert_eq!(logged, all.len());

    // Every stored proof re-verifies in light mode; tampered claims do not.
    let (verifier, claims) = crate::common::verify_store(&config, &store);
    let mut wrong_unit = claims[0];
    wrong_unit.unit = claims
        .iter()
        .find(|c| c.unit != claims[0].unit)
        .unwrap()
        .unit;
    let mut wrong_hash = claims[1];
    wrong_hash.hash = Some(Hash([0; 32]));
    let mut hard = claims[2];
    hard.epoch.targets[0] = Target([0; 32]);
    let verdicts = verifier.verify(&[wrong_unit, wrong_hash, hard]).unwrap();
    assert!(
        !verdicts[0].is_valid(),
        "a proof under another unit's key fails: {:?}",
        verdicts[0]
    );
    assert!(
        matches!(verdicts[1], Verdict::WrongHash { .. }),
        "{:?}",
        verdicts[1]
    );
    assert!(
        matches!(verdicts[2], Verdict::AboveTarget { .. }),
        "{:?}",
        verdicts[2]
    );
}
