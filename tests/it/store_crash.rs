//! The proof store killed with SIGKILL by a child process, mid-write, and reopened.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Hash, Proof, Seed, Target, UnitId, UnitKind};

const CHILD_ENV: &str = "CAPMINER_IT_STORE_CHILD";

fn epoch() -> Epoch {
    Epoch {
        number: 3,
        seed: Seed([3; 32]),
        targets: [Target([0xff; 32]), Target([0xff; 32])],
    }
}

/// Run as a child process: append proofs forever, printing each nonce once its fsync returned;
/// after `torn_after` proofs, append half a record (a write cut short) and wait to be killed.
#[test]
#[ignore = "child process of the store crash tests"]
fn store_crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, torn_after) = spec.split_once('|').unwrap();
    let torn_after: u64 = torn_after.parse().unwrap();
    let (store, _) = ProofStore::open(std::path::Path::new(dir)).unwrap();
    store.record_epoch(&epoch()).unwrap();
    let mut out = std::io::stdout().lock();
    for nonce in 0u64.. {
        if nonce == torn_after {
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(format!("{dir}/proofs.log"))
                .unwrap();
            // A frame header promising 86 payload bytes, followed by only 20 of them.
            log.write_all(b"CMP1\x56\x00\x00\x00\x00\x00\x00\x00")
                .unwrap();
            log.write_all(&[2u8; 20]).unwrap();
            log.sync_all().unwrap();
            writeln!(out, "torn").unwrap();
            out.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        let proof = Proof {
            unit: UnitId([(nonce % 3) as u8; 32]),
            kind: UnitKind::Cpu,
            epoch: 3,
            nonce,
            hash: Hash([nonce as u8; 32]),
        };
        store.append(&[proof]).unwrap();
        writeln!(out, "stored {nonce}").unwrap();
        out.flush().unwrap();
    }
}

/// Starts the child, reads its stdout until `kill_when` says so, SIGKILLs it, and returns
/// the nonces it reported stored.
fn crash_child(
    dir: &std::path::Path,
    torn_after: u64,
    kill_when: impl Fn(&str, usize) -> bool,
) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_crash::store_crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{torn_after}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stored = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test <name> ... " before the child's first line, on the same line.
        if let Some(at) = line.find("stored ") {
            stored.push(line[at + 7..].trim().parse().unwrap());
        }
        if kill_when(&line, stored.len()) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stored
}

#[test]
fn a_store_killed_mid_write_keeps_every_fsynced_proof() {
    let dir = tempfile::tempdir().unwrap();
    // Killed while appending as fast as it can: wherever the kill lands, every proof it
    // reported stored is there after reopening.
    let stored = crash_child(dir.path(), u64::MAX, |_, n| n >= 150);
    let (store, _recovery) = ProofStore::open(dir.path()).unwrap();
    let nonces: Vec<u64> = store
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|p| p.proof.nonce)
        .collect();
    for n in &stored {
        assert!(nonces.contains(n), "nonce {n} was fsynced but is missing");
    }
    assert!(nonces.len() >= stored.len());
}

#[test]
fn a_torn_tail_is_cut_off_and_nothing_before_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crash_child(dir.path(), 40, |line, _| line.ends_with("torn"));
    assert_eq!(stored, (0..40).collect::<Vec<_>>());
    let log = dir.path().join("proofs.log");
    let torn_len = std::fs::metadata(&log).unwrap().len();
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(
        recovery.torn_bytes, 32,
        "the 12-byte header and 20 payload bytes"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        torn_len - 32,
        "cut back to the last good record"
    );
    let nonces: Vec<u64> = store
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|p| p.proof.nonce)
        .collect();
    let mut sorted = nonces.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..40).collect::<Vec<_>>());
    // The store goes on working after the repair, and reopens clean.
    let proof = store.proofs(|_| true).unwrap()[0].proof;
    let next = Proof {
        nonce: 1000,
        ..proof
    };
    assert_eq!(store.append(&[next]).unwrap(), 1);
    drop(store);
    let (store, recovery) = ProofStore::open(dir.path()).unwrap();
    assert_eq!(recovery.torn_bytes, 0);
    assert_eq!(store.proofs(|_| true).unwrap().len(), 41);
}
