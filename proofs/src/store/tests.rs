use super::*;
use crate::{Hash, Seed, Target, UnitKind};

fn epoch(n: u64) -> Epoch {
    Epoch {
        number: n,
        seed: Seed([n as u8; 32]),
        targets: [Target([0x0f; 32]), Target([0x1f; 32])],
    }
}

fn proof(epoch: u64, unit: u8, nonce: u64) -> Proof {
    Proof {
        unit: UnitId([unit; 32]),
        kind: UnitKind::Cpu,
        epoch,
        nonce,
        hash: Hash([nonce as u8; 32]),
    }
}

#[test]
fn proofs_and_states_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, recovery) = ProofStore::open(dir.path()).unwrap();
        assert_eq!(recovery, Recovery::default());
        store.record_epoch(&epoch(1)).unwrap();
        assert_eq!(
            store
                .append(&[proof(1, 1, 5), proof(1, 1, 3), proof(1, 2, 9)])
                .unwrap(),
            3
        );
        assert_eq!(
            store.append(&[proof(1, 1, 5)]).unwrap(),
            0,
            "duplicates are skipped"
        );
        let tx = Hash([7; 32]);
        store
            .set_state(&[proof(1, 1, 3).id()], ProofState::Submitted { tx })
            .unwrap();
    }
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(
        recovery.records, 3,
        "epoch, one record of three proofs, one state change"
    );
    assert_eq!(store.epoch(1), Some(epoch(1)));
    let all = store.proofs(|_| true).unwrap();
    let names: Vec<(u8, u64)> = all
        .iter()
        .map(|s| (s.proof.unit.0[0], s.proof.nonce))
        .collect();
    assert_eq!(
        names,
        vec![(1, 3), (1, 5), (2, 9)],
        "ordered by unit then nonce"
    );
    assert_eq!(all[0].state, ProofState::Submitted { tx: Hash([7; 32]) });
    assert_eq!(all[1].state, ProofState::Found);
    assert_eq!(store.max_nonce(1, &UnitId([1; 32])), Some(5));
    assert_eq!(store.max_nonce(2, &UnitId([1; 32])), None);
}

#[test]
fn proofs_of_an_unrecorded_epoch_and_states_of_unknown_proofs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.append(&[proof(4, 1, 1)]),
        Err(StoreError::UnknownEpoch(4))
    ));
    let err = store
        .set_state(&[proof(4, 1, 1).id()], ProofState::Final)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownProof(_)), "{err}");
}

#[test]
fn a_second_writer_is_refused_but_a_reader_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    store.record_epoch(&epoch(1)).unwrap();
    store.append(&[proof(1, 1, 1)]).unwrap();
    assert!(matches!(
        ProofStore::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    let reader = ProofStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.proofs(|_| true).unwrap().len(), 1);
    assert!(
        reader.record_epoch(&epoch(2)).is_err(),
        "a reader cannot write"
    );
}

#[test]
fn a_torn_tail_is_cut_and_corruption_in_the_middle_loses_no_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    {
        let (store, _) = ProofStore::open(dir.path()).unwrap();
        store.record_epoch(&epoch(1)).unwrap();
        for n in 0..3 {
            store.append(&[proof(1, 1, n)]).unwrap();
        }
    }
    // Corrupt the second proof record's payload, and tear a record at the end.
    let mut bytes = std::fs::read(&path).unwrap();
    let epoch_len = 12 + 105;
    let proof_len = 12 + 1 + 4 + 81;
    bytes[epoch_len + proof_len + 20] ^= 0x40;
    let torn = log::frame(&Record::Proofs(vec![proof(1, 1, 99)]).encode());
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();

    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.records, 3, "epoch + proofs 0 and 2");
    assert_eq!(recovery.quarantined.len(), 1);
    let start = epoch_len + proof_len;
    assert_eq!(recovery.quarantined[0].0, start..start + proof_len);
    let nonces: Vec<u64> = store
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|s| s.proof.nonce)
        .collect();
    assert_eq!(nonces, vec![0, 2]);
    let saved = std::fs::read(&recovery.quarantined[0].1).unwrap();
    assert_eq!(saved.len(), proof_len);
    // The rewritten log is clean: appends continue and a reopen finds no damage.
    store.append(&[proof(1, 1, 7)]).unwrap();
    drop(store);
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.torn_bytes, 0);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(store.proofs(|_| true).unwrap().len(), 3);
}

/// A log sink that keeps what was synced and, when power is cut, loses a random part of what
/// was written after the last sync (as a machine losing its page cache would).
#[derive(Debug)]
struct PowerCut {
    inner: Box<dyn log::LogSink>,
    state: std::sync::Arc<Mutex<CutState>>,
}

#[derive(Debug, Default)]
struct CutState {
    written: u64,
    synced: u64,
}

impl log::LogSink for PowerCut {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.state.lock().unwrap().written += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.inner.sync_data()?;
        let mut s = self.state.lock().unwrap();
        s.synced = s.written;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)?;
        let mut s = self.state.lock().unwrap();
        s.written = len;
        s.synced = s.synced.min(len);
        Ok(())
    }
}

/// xorshift64*: small, seeded, printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn power_cuts_at_random_moments_lose_no_acknowledged_proof() {
    let seed = std::env::var("CAPMINER_POWER_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("power cut seed {seed} (CAPMINER_POWER_CUT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    let mut acknowledged: Vec<Proof> = Vec::new();
    let mut nonce = 0u64;
    for round in 0..40 {
        let (store, _) = ProofStore::open(dir.path()).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let state = std::sync::Arc::new(Mutex::new(CutState {
            written: len,
            synced: len,
        }));
        let s = state.clone();
        store.wrap_log_sink(|inner| Box::new(PowerCut { inner, state: s }));
        store.record_epoch(&epoch(1)).unwrap();
        for _ in 0..rng.below(6) + 1 {
            let batch: Vec<Proof> = (0..rng.below(4) + 1)
                .map(|_| {
                    nonce += 1;
                    proof(1, (nonce % 3) as u8, nonce)
                })
                .collect();
            store.append(&batch).unwrap();
            acknowledged.extend(batch);
        }
        // Written but not yet synced: a frame cut short, as a crash mid-append leaves it.
        let pending = frame_bytes(&rng.below(1 << 20).to_le_bytes());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &pending).unwrap();
        state.lock().unwrap().written += pending.len() as u64;

        // Power is cut: what was synced stays, a random part of the rest survives.
        let (synced, written) = {
            let s = state.lock().unwrap();
            (s.synced, s.written)
        };
        let kept = synced + rng.below(written - synced + 1);
        drop(store);
        file.set_len(kept).unwrap();

        let (store, _) = ProofStore::open(dir.path()).unwrap();
        let stored = store.proofs(|_| true).unwrap();
        for p in &acknowledged {
            assert!(
                stored.iter().any(|s| s.proof == *p),
                "round {round} (seed {seed}): acknowledged proof {} lost",
                p.id()
            );
        }
        assert_eq!(
            stored.len(),
            acknowledged.len(),
            "round {round} (seed {seed})"
        );
    }
}

/// One framed record of `payload`, as the log writes it.
fn frame_bytes(payload: &[u8]) -> Vec<u8> {
    log::frame(payload)
}

/// Settles every unsettled proof of `e` in `store` as final.
fn settle(store: &ProofStore, e: u64) {
    let refs: Vec<ProofRef> = store
        .unsettled(|p| p.proof.epoch == e)
        .iter()
        .map(|p| p.proof.id())
        .collect();
    store.set_state(&refs, ProofState::Final).unwrap();
}

#[test]
fn settled_epochs_move_to_the_archive_out_of_memory_and_log_and_export_still_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    for e in 1..=3 {
        store.record_epoch(&epoch(e)).unwrap();
        for n in 0..50 {
            store.append(&[proof(e, (n % 2) as u8, n)]).unwrap();
        }
    }
    let before = ProofStore::open_read_only(dir.path())
        .unwrap()
        .proofs(|_| true)
        .unwrap();
    store
        .set_state(&[proof(1, 0, 0).id()], ProofState::Skipped)
        .unwrap();
    assert!(
        !store.archive_epoch(1).unwrap(),
        "epoch 1 still has found proofs: not archived"
    );
    assert_eq!(store.unsettled(|p| p.proof.epoch == 1).len(), 49);
    settle(&store, 1);
    assert!(store.unsettled(|p| p.proof.epoch == 1).is_empty());
    let log_before = std::fs::metadata(&path).unwrap().len();
    assert!(store.archive_epoch(1).unwrap());
    assert!(!store.archive_epoch(1).unwrap(), "only once");
    assert!(store.is_archived(1));
    // Out of memory (the index holds the open epochs only), still readable from the archive.
    assert_eq!(store.state(&proof(1, 1, 1).id()), None);
    assert_eq!(store.epoch(1), None);
    assert_eq!(
        store.inner.lock().unwrap().index.proofs.len(),
        4,
        "two units of epochs 2 and 3"
    );
    let finals = store.proofs(|p| p.proof.epoch == 1).unwrap();
    assert_eq!(finals.len(), 50);
    assert_eq!(
        finals
            .iter()
            .filter(|p| p.state == ProofState::Final)
            .count(),
        49
    );
    assert_eq!(store.proofs(|_| true).unwrap().len(), 150);
    assert_eq!(store.unsettled(|_| true).len(), 100);
    assert!(matches!(
        store.append(&[proof(1, 0, 77)]),
        Err(StoreError::Archived(1))
    ));
    assert!(StoreError::Archived(1).is_refusal());
    // The log was compacted: epochs 2 and 3 only, 100 single-proof records folded into one.
    let log_after = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        log_after,
        2 * (12 + 105) + (12 + 1 + 4 + 100 * 81),
        "log {log_before} -> {log_after} bytes"
    );
    assert!(archive::path(dir.path(), 1).exists());

    // Reopened: the archived epoch stays out; appends go on; export sees everything.
    drop(store);
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.records, 3);
    assert!(store.is_archived(1));
    store.append(&[proof(3, 1, 99)]).unwrap();
    let reader = ProofStore::open_read_only(dir.path()).unwrap();
    let mut after = reader.proofs(|_| true).unwrap();
    assert!(
        after == store.proofs(|_| true).unwrap(),
        "the writer sees what a reader sees"
    );
    assert_eq!(after.len(), 151);
    after.retain(|p| p.proof.nonce != 99 || p.proof.epoch != 3);
    let expect: Vec<StoredProof> = before
        .iter()
        .map(|p| StoredProof {
            state: match (p.proof.epoch, p.proof.unit.0[0], p.proof.nonce) {
                (1, 0, 0) => ProofState::Skipped,
                (1, _, _) => ProofState::Final,
                _ => ProofState::Found,
            },
            ..*p
        })
        .collect();
    assert!(after == expect, "export after archiving differs");
    assert_eq!(
        reader.epochs().iter().map(|e| e.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn a_crash_between_writing_the_archive_and_compacting_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = ProofStore::open(dir.path()).unwrap();
        for e in 1..=2 {
            store.record_epoch(&epoch(e)).unwrap();
            store.append(&[proof(e, 1, 1), proof(e, 1, 2)]).unwrap();
        }
        settle(&store, 1);
        // What archive_epoch writes first, then "the process dies" before the compaction.
        let inner = store.inner.lock().unwrap();
        let records = vec![
            Record::Epoch(epoch(1)),
            Record::Proofs(vec![proof(1, 1, 1), proof(1, 1, 2)]),
            Record::State(
                ProofState::Final,
                vec![proof(1, 1, 1).id(), proof(1, 1, 2).id()],
            ),
        ];
        archive::write(dir.path(), 1, &records).unwrap();
        drop(inner);
    }
    let log_len = |d: &Path| std::fs::metadata(d.join(LOG_FILE)).unwrap().len();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    assert!(store.is_archived(1));
    assert_eq!(store.state(&proof(1, 1, 1).id()), None, "out of memory");
    assert_eq!(
        store.proofs(|p| p.proof.epoch == 1).unwrap().len(),
        2,
        "in the archive"
    );
    assert_eq!(log_len(dir.path()), (12 + 105) + (12 + 1 + 4 + 2 * 81));
    drop(store);
    let reader = ProofStore::open_read_only(dir.path()).unwrap();
    let all = reader.proofs(|_| true).unwrap();
    assert_eq!(all.len(), 4, "each proof once: {all:?}");
    assert_eq!(
        all.iter().filter(|p| p.state == ProofState::Final).count(),
        2
    );
}

#[test]
fn compaction_while_units_append_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    let store = std::sync::Arc::new(store);
    store.record_epoch(&epoch(1)).unwrap();
    let writers: Vec<_> = (0..3u8)
        .map(|unit| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..150 {
                    store.append(&[proof(1, unit, n)]).unwrap();
                }
            })
        })
        .collect();
    let mut compactions = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        store.compact().unwrap();
        compactions += 1;
    }
    for w in writers {
        w.join().unwrap();
    }
    assert!(compactions > 1, "{compactions} compactions");
    assert_eq!(store.proofs(|_| true).unwrap().len(), 450);
    drop(store);
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.torn_bytes, 0);
    assert!(recovery.quarantined.is_empty());
    assert_eq!(
        store.proofs(|_| true).unwrap().len(),
        450,
        "after reopening"
    );
}

/// A log sink over a file whose directory can turn read-only: writes fail with EROFS.
#[derive(Debug)]
struct ReadOnlyFs {
    inner: Box<dyn log::LogSink>,
    read_only: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReadOnlyFs {
    fn check(&self) -> std::io::Result<()> {
        if self.read_only.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::EROFS));
        }
        Ok(())
    }
}

impl log::LogSink for ReadOnlyFs {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write_all(buf)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
}

#[test]
fn a_store_that_turns_read_only_refuses_cleanly_and_takes_everything_once_writable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    store.record_epoch(&epoch(1)).unwrap();
    store.append(&[proof(1, 1, 1)]).unwrap();
    let read_only = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = read_only.clone();
    store.wrap_log_sink(|inner| {
        Box::new(ReadOnlyFs {
            inner,
            read_only: flag,
        })
    });
    let err = store.append(&[proof(1, 1, 2)]).unwrap_err();
    assert!(
        err.to_string().contains("Read-only file system") && err.to_string().contains("append"),
        "{err}"
    );
    assert!(
        store
            .set_state(&[proof(1, 1, 1).id()], ProofState::Final)
            .is_err()
    );
    assert_eq!(
        store.proofs(|_| true).unwrap().len(),
        1,
        "nothing half-applied"
    );
    assert_eq!(store.state(&proof(1, 1, 1).id()), Some(ProofState::Found));
    read_only.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.append(&[proof(1, 1, 2)]).unwrap(), 1, "retried");
    drop(store);
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(store.proofs(|_| true).unwrap().len(), 2);
}

#[test]
fn tallies_follow_every_state_change_and_survive_reopening_and_archiving() {
    let dir = tempfile::tempdir().unwrap();
    let tx = Hash([7; 32]);
    let included = ProofState::Included {
        tx,
        block: 9,
        block_hash: Hash([8; 32]),
    };
    let tally = |found, moving, settled, skipped| Tally {
        found,
        moving,
        settled,
        skipped,
    };
    let u = |i: u8| UnitId([i; 32]);
    {
        let (store, _) = ProofStore::open(dir.path()).unwrap();
        store.record_epoch(&epoch(1)).unwrap();
        store.record_epoch(&epoch(2)).unwrap();
        let proofs: Vec<Proof> = (0..6).map(|n| proof(1, 1, n)).collect();
        store.append(&proofs).unwrap();
        store.append(&[proof(1, 2, 4), proof(2, 1, 0)]).unwrap();
        let id = |n| proof(1, 1, n).id();
        store
            .set_state(&[id(0), id(1)], ProofState::Submitted { tx })
            .unwrap();
        store.set_state(&[id(1)], included).unwrap();
        store.set_state(&[id(2)], ProofState::Final).unwrap();
        store.set_state(&[id(3)], ProofState::Skipped).unwrap();
        store.set_state(&[id(0)], ProofState::Found).unwrap();
        assert_eq!(
            store.tallies(1..=1),
            vec![(1, u(1), tally(3, 1, 1, 1)), (1, u(2), tally(1, 0, 0, 0))]
        );
        assert_eq!(store.tallies(1..=1)[0].2.counted(), 5);
        assert_eq!(store.tallies(2..=2), vec![(2, u(1), tally(1, 0, 0, 0))]);
        assert_eq!(store.tallies(0..=u64::MAX).len(), 3);
        assert_eq!(
            store.in_flight(),
            vec![StoredProof {
                proof: proof(1, 1, 1),
                state: included
            }]
        );
        assert_eq!(
            store.found(1),
            vec![
                (u(1), UnitKind::Cpu, vec![0, 4, 5]),
                (u(2), UnitKind::Cpu, vec![4])
            ]
        );
        assert_eq!(store.found(3), vec![]);
        assert_eq!(store.unsettled(|_| true).len(), 6);
    }
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(
        store.tallies(0..=u64::MAX),
        vec![
            (1, u(1), tally(3, 1, 1, 1)),
            (1, u(2), tally(1, 0, 0, 0)),
            (2, u(1), tally(1, 0, 0, 0))
        ],
        "replayed from the log"
    );
    settle(&store, 1);
    assert_eq!(store.tallies(1..=1)[0].2, tally(0, 0, 5, 1));
    assert!(store.archive_epoch(1).unwrap());
    assert_eq!(
        store.tallies(0..=u64::MAX),
        vec![(2, u(1), tally(1, 0, 0, 0))]
    );
}

#[test]
fn found_since_is_the_oldest_wait_among_the_refs_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    store.record_epoch(&epoch(1)).unwrap();
    let before = std::time::Instant::now();
    store.append(&[proof(1, 1, 0)]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let middle = std::time::Instant::now();
    store.append(&[proof(1, 1, 1)]).unwrap();
    let (a, b) = (proof(1, 1, 0).id(), proof(1, 1, 1).id());
    let since = store.found_since(&[a, b]).unwrap();
    assert!(since >= before && since < middle);
    assert!(store.found_since(&[b]).unwrap() >= middle);
    let tx = Hash([7; 32]);
    store.set_state(&[a], ProofState::Submitted { tx }).unwrap();
    assert!(
        store.found_since(&[a, b]).unwrap() >= middle,
        "a is no longer found"
    );
    assert_eq!(store.found_since(&[a]), None);
    let back = std::time::Instant::now();
    store.set_state(&[a], ProofState::Found).unwrap();
    assert!(
        store.found_since(&[a]).unwrap() >= back,
        "found again: waits from now"
    );
    assert_eq!(
        store.among([a, proof(1, 9, 9).id()], |_| true),
        vec![StoredProof {
            proof: proof(1, 1, 0),
            state: ProofState::Found
        }]
    );
}

#[test]
fn an_epoch_seed_never_changes_under_its_number_unless_retired_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    store.record_epoch(&epoch(1)).unwrap();
    store.append(&[proof(1, 1, 5)]).unwrap();
    let reseeded = Epoch {
        seed: Seed([0xee; 32]),
        ..epoch(1)
    };
    let err = store.record_epoch(&reseeded).unwrap_err();
    assert!(
        matches!(err, StoreError::SeedChanged { number: 1, recorded, given, .. }
            if recorded == epoch(1).seed && given == reseeded.seed),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&dir.path().display().to_string())
            && text.contains(&epoch(1).seed.to_string())
            && text.contains(&reseeded.seed.to_string()),
        "names the store and both seeds: {text}"
    );
    assert_eq!(store.epoch(1), Some(epoch(1)), "the record is unchanged");
    // New targets under the same seed are recorded as before.
    let retargeted = Epoch {
        targets: [Target([0x07; 32]), Target([0x17; 32])],
        ..epoch(1)
    };
    store.record_epoch(&retargeted).unwrap();
    // The chain's path after a reorg: retire the old seed, then record the new one.
    store.retire_epoch_seed(1).unwrap();
    store.record_epoch(&reseeded).unwrap();
    assert_eq!(store.epoch(1), Some(reseeded));
    drop(store);
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(store.epoch(1), Some(reseeded));
    assert_eq!(store.proofs(|_| true).unwrap().len(), 1, "no proof lost");
}

#[test]
fn a_read_only_open_tells_damage_from_an_incomplete_last_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = ProofStore::open(dir.path()).unwrap();
        store.record_epoch(&epoch(1)).unwrap();
        for n in 0..3 {
            store.append(&[proof(1, 1, n)]).unwrap();
        }
    }
    let path = dir.path().join(LOG_FILE);
    let clean = std::fs::read(&path).unwrap();
    let read = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let store = ProofStore::open_read_only(dir.path()).unwrap();
        let n = store.proofs(|_| true).unwrap().len();
        (store.damage().clone(), n)
    };
    let (damage, n) = read(&clean);
    assert_eq!(
        (damage.is_damaged(), damage.torn_tail.clone(), n),
        (false, None, 3)
    );
    assert_eq!(damage.to_string(), "");

    // A torn tail: the first half of a record.
    let one = log::frame(&Record::Proofs(vec![proof(1, 1, 9)]).encode());
    let mut torn = clean.clone();
    torn.extend_from_slice(&one[..one.len() / 2]);
    let (damage, n) = read(&torn);
    assert!(!damage.is_damaged(), "{damage:?}");
    assert_eq!(damage.torn_tail, Some(clean.len()..torn.len()));
    assert_eq!(n, 3);
    assert!(
        damage.to_string().contains("incomplete last record"),
        "{damage}"
    );

    // Garbage appended.
    let mut garbage = clean.clone();
    garbage.extend_from_slice(b"not a record at all");
    let (damage, n) = read(&garbage);
    assert!(damage.is_damaged());
    assert_eq!(damage.bad_tail, Some((clean.len()..garbage.len(), 1)));
    assert_eq!(n, 3);

    // A flipped byte in the second proof record: one record lost, the others read.
    let mut flipped = clean.clone();
    let second = (1..flipped.len())
        .filter(|&p| flipped[p..].starts_with(b"CMP1"))
        .nth(1)
        .unwrap();
    flipped[second + 14] ^= 0x40;
    let (damage, n) = read(&flipped);
    assert!(damage.is_damaged());
    assert_eq!(damage.corrupt.len(), 1, "{damage:?}");
    assert_eq!(damage.damaged_records(), 1);
    assert_eq!(damage.corrupt[0].0.start, second);
    assert_eq!(n, 2);
    let text = damage.to_string();
    assert!(
        text.contains("1 damaged record(s) skipped") && text.contains(&format!("bytes {second}..")),
        "{text}"
    );
}

#[test]
fn an_epoch_record_is_read_from_the_log_or_the_archive_without_opening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ProofStore::recorded_epoch(&dir.path().join("none"), 1).unwrap(),
        None
    );
    let (store, _) = ProofStore::open(dir.path()).unwrap();
    store.record_epoch(&epoch(1)).unwrap();
    store.record_epoch(&epoch(2)).unwrap();
    store.append(&[proof(1, 1, 5)]).unwrap();
    store
        .set_state(&[proof(1, 1, 5).id()], ProofState::Final)
        .unwrap();
    assert!(store.archive_epoch(1).unwrap());
    store.retire_epoch_seed(2).unwrap();
    // Read while the writer holds the store.
    assert_eq!(
        ProofStore::recorded_epoch(dir.path(), 1).unwrap(),
        Some(epoch(1))
    );
    let retired = Epoch {
        seed: Seed::default(),
        ..epoch(2)
    };
    assert_eq!(
        ProofStore::recorded_epoch(dir.path(), 2).unwrap(),
        Some(retired)
    );
    assert_eq!(ProofStore::recorded_epoch(dir.path(), 3).unwrap(), None);
}
