//! The crash-safe proof store.
//!
//! One directory holds `proofs.log` (see [`log`] for the framing and [`record`] for the bytes)
//! and a `LOCK` file that one process holds while it writes. Every change is one record,
//! appended and fsynced before the call returns: a proof counts as stored only then. On open,
//! the log is replayed into an in-memory index per (epoch, unit), ordered by nonce.
//!
//! Proof states move found → submitted(tx) → included(block) → final; a dropped transaction or
//! a block that left the canonical chain moves proofs back to found.

pub mod log;
mod record;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use log::Recovery;
pub use record::{ProofState, Record};

use crate::{Epoch, Hash, Proof, ProofRef, Result, StoreError, UnitId, UnitKind};

/// A stored proof with its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredProof {
    /// The proof.
    #[serde(flatten)]
    pub proof: Proof,
    /// Where it is on its way to the chain.
    #[serde(flatten)]
    pub state: ProofState,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: UnitKind,
    hash: Hash,
    state: ProofState,
}

#[derive(Debug, Default)]
struct Index {
    epochs: BTreeMap<u64, Epoch>,
    proofs: BTreeMap<(u64, UnitId), BTreeMap<u64, Entry>>,
}

impl Index {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Epoch(e) => {
                self.epochs.insert(e.number, e);
            }
            Record::Proofs(proofs) => {
                for p in proofs {
                    self.proofs
                        .entry((p.epoch, p.unit))
                        .or_default()
                        .entry(p.nonce)
                        .or_insert(Entry {
                            kind: p.kind,
                            hash: p.hash,
                            state: ProofState::Found,
                        });
                }
            }
            Record::State(state, refs) => {
                for r in refs {
                    if let Some(entry) = self.entry_mut(&r) {
                        entry.state = state;
                    }
                }
            }
        }
    }

    fn entry_mut(&mut self, r: &ProofRef) -> Option<&mut Entry> {
        self.proofs.get_mut(&(r.epoch, r.unit))?.get_mut(&r.nonce)
    }

    fn contains(&self, r: &ProofRef) -> bool {
        self.proofs
            .get(&(r.epoch, r.unit))
            .is_some_and(|m| m.contains_key(&r.nonce))
    }
}

#[derive(Debug)]
struct Inner {
    log: Option<log::Log>,
    index: Index,
}

/// The proof store of one miner. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct ProofStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    _lock: Option<File>,
}

const LOG_FILE: &str = "proofs.log";
const LOCK_FILE: &str = "LOCK";

impl ProofStore {
    /// Puts a layer between the store's log and its file: fault injection for tests (a sink
    /// that loses what was not synced when "power is cut", one that fails writes).
    pub fn wrap_log_sink(&self, wrap: impl FnOnce(Box<dyn log::LogSink>) -> Box<dyn log::LogSink>) {
        let mut inner = self.inner.lock().expect("proof store lock poisoned");
        if let Some(log) = inner.log.as_mut() {
            log.wrap_sink(wrap);
        }
    }

    /// Opens (creating) the store in `dir` for writing, repairing the log if a crash tore its
    /// tail. Fails if another process has it open for writing.
    pub fn open(dir: &Path) -> Result<(ProofStore, Recovery)> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            op: "create directory",
            source,
        })?;
        let lock = lock_dir(dir)?;
        let (log, payloads, recovery) =
            log::Log::open(&dir.join(LOG_FILE), |p| Record::decode(p).is_some())?;
        let index = replay(&payloads);
        if recovery.records > 0 {
            tracing::info!(
                "proof store {}: {} records, {} proofs",
                dir.display(),
                recovery.records,
                index.proofs.values().map(BTreeMap::len).sum::<usize>()
            );
        }
        Ok((
            ProofStore {
                dir: dir.to_path_buf(),
                inner: Mutex::new(Inner {
                    log: Some(log),
                    index,
                }),
                _lock: Some(lock),
            },
            recovery,
        ))
    }

    /// Opens the store for reading only, while a miner may be writing it: valid records are
    /// read, nothing is repaired or locked, and every write method fails.
    pub fn open_read_only(dir: &Path) -> Result<ProofStore> {
        let path = dir.join(LOG_FILE);
        let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            op: "read",
            source,
        })?;
        let scan = log::scan(&bytes, |p| Record::decode(p).is_some());
        Ok(ProofStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                log: None,
                index: replay(&scan.payloads),
            }),
            _lock: None,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, record: Record) -> Result<()> {
        let mut inner = self.inner.lock().expect("proof store lock poisoned");
        self.write_locked(&mut inner, record)
    }

    fn write_locked(&self, inner: &mut Inner, record: Record) -> Result<()> {
        let log = inner.log.as_mut().ok_or_else(|| StoreError::Io {
            path: self.dir.clone(),
            op: "write",
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "store opened read-only",
            ),
        })?;
        log.append(&record.encode())?;
        inner.index.apply(record);
        Ok(())
    }

    /// Records an epoch's seed and targets (once; later calls for the same epoch do nothing).
    pub fn record_epoch(&self, epoch: &Epoch) -> Result<()> {
        if self.epoch(epoch.number).as_ref() == Some(epoch) {
            return Ok(());
        }
        self.write(Record::Epoch(*epoch))
    }

    /// Stores proofs durably (one fsync for all of them). Proofs already stored are skipped,
    /// so storing the same proofs twice is harmless. Their epoch must be recorded first.
    pub fn append(&self, proofs: &[Proof]) -> Result<usize> {
        self.append_checked(proofs, None)
    }

    /// Stores proofs found under `epoch` (seed and targets), as [`ProofStore::append`] does,
    /// only if `epoch` is still the store's record of that epoch number: proofs mined under a
    /// seed the chain no longer has (a deep reorg re-seeded the epoch) are refused with
    /// [`StoreError::StaleEpoch`], atomically with any concurrent `record_epoch`.
    pub fn append_mined(&self, epoch: &Epoch, proofs: &[Proof]) -> Result<usize> {
        self.append_checked(proofs, Some(epoch))
    }

    fn append_checked(&self, proofs: &[Proof], mined: Option<&Epoch>) -> Result<usize> {
        let mut inner = self.inner.lock().expect("proof store lock poisoned");
        if let Some(p) = proofs
            .iter()
            .find(|p| !inner.index.epochs.contains_key(&p.epoch))
        {
            return Err(StoreError::UnknownEpoch(p.epoch));
        }
        if let Some(e) = mined
            && let Some(p) = proofs
                .iter()
                .find(|p| p.epoch != e.number || inner.index.epochs.get(&p.epoch) != Some(e))
        {
            return Err(StoreError::StaleEpoch(p.epoch));
        }
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<Proof> = proofs
            .iter()
            .filter(|p| !inner.index.contains(&p.id()) && seen.insert(p.id()))
            .copied()
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let n = fresh.len();
        self.write_locked(&mut inner, Record::Proofs(fresh))?;
        Ok(n)
    }

    /// Retires epoch `number`'s seed: from now on no proof mined under the recorded seed is
    /// stored ([`ProofStore::append_mined`] refuses it) until the epoch is recorded again with
    /// the chain's new seed. The record keeps the targets with a zero seed.
    pub fn retire_epoch_seed(&self, number: u64) -> Result<()> {
        let Some(mut e) = self.epoch(number) else {
            return Ok(());
        };
        if e.seed == crate::Seed::default() {
            return Ok(());
        }
        e.seed = crate::Seed::default();
        self.write(Record::Epoch(e))
    }

    /// Moves proofs to `state`, durably. Every proof must be stored.
    pub fn set_state(&self, refs: &[ProofRef], state: ProofState) -> Result<()> {
        {
            let inner = self.inner.lock().expect("proof store lock poisoned");
            if let Some(r) = refs.iter().find(|r| !inner.index.contains(r)) {
                return Err(StoreError::UnknownProof(*r));
            }
        }
        if refs.is_empty() {
            return Ok(());
        }
        self.write(Record::State(state, refs.to_vec()))
    }

    /// An epoch's record.
    pub fn epoch(&self, number: u64) -> Option<Epoch> {
        self.inner
            .lock()
            .expect("proof store lock poisoned")
            .index
            .epochs
            .get(&number)
            .copied()
    }

    /// Every recorded epoch, oldest first.
    pub fn epochs(&self) -> Vec<Epoch> {
        let inner = self.inner.lock().expect("proof store lock poisoned");
        inner.index.epochs.values().copied().collect()
    }

    /// The highest stored nonce of a unit in an epoch.
    pub fn max_nonce(&self, epoch: u64, unit: &UnitId) -> Option<u64> {
        let inner = self.inner.lock().expect("proof store lock poisoned");
        inner
            .index
            .proofs
            .get(&(epoch, *unit))
            .and_then(|m| m.last_key_value().map(|(n, _)| *n))
    }

    /// Every stored proof that `keep` accepts, ordered by (epoch, unit, nonce).
    pub fn proofs(&self, mut keep: impl FnMut(&StoredProof) -> bool) -> Vec<StoredProof> {
        let inner = self.inner.lock().expect("proof store lock poisoned");
        let mut out = Vec::new();
        for ((epoch, unit), nonces) in &inner.index.proofs {
            for (nonce, e) in nonces {
                let stored = StoredProof {
                    proof: Proof {
                        unit: *unit,
                        kind: e.kind,
                        epoch: *epoch,
                        nonce: *nonce,
                        hash: e.hash,
                    },
                    state: e.state,
                };
                if keep(&stored) {
                    out.push(stored);
                }
            }
        }
        out
    }

    /// The state of one proof.
    pub fn state(&self, r: &ProofRef) -> Option<ProofState> {
        let inner = self.inner.lock().expect("proof store lock poisoned");
        inner
            .index
            .proofs
            .get(&(r.epoch, r.unit))
            .and_then(|m| m.get(&r.nonce))
            .map(|e| e.state)
    }
}

fn replay(payloads: &[Vec<u8>]) -> Index {
    let mut index = Index::default();
    for p in payloads {
        if let Some(record) = Record::decode(p) {
            index.apply(record);
        }
    }
    index
}

/// Takes the store's exclusive lock (released by the OS when the process dies, even by kill -9).
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            op: "open lock file",
            source,
        })?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StoreError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
