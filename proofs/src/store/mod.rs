//! The crash-safe proof store.
//!
//! One directory holds `proofs.log` (see [`log`] for the framing and [`record`] for the bytes)
//! and a `LOCK` file that one process holds while it writes. Every change is one record,
//! appended and fsynced before the call returns: a proof counts as stored only then. On open,
//! the log is replayed into an in-memory index per (epoch, unit), ordered by nonce (see
//! [`index`]). Settled epochs move to the [`archive`], one file each, and leave the index and
//! the log, which is then compacted: memory, ticks and start-up stay the size of the epochs
//! still open, however long the miner runs.
//!
//! Proof states move found → submitted(tx) → included(block) → final; a dropped transaction or
//! a block that left the canonical chain moves proofs back to found.

mod archive;
mod index;
pub mod log;
mod record;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use capminer_sync::LockExt;

pub use index::Tally;
pub use log::{Damage, Recovery};
pub use record::{ProofState, Record};

use crate::{Epoch, Proof, ProofRef, Result, StoreError, UnitId, UnitKind};
use index::Index;

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

#[derive(Debug)]
struct Inner {
    log: Option<log::Log>,
    index: Index,
    /// While the log is being compacted: the records appended since its snapshot was taken.
    compacting: Option<Vec<Vec<u8>>>,
}

/// The proof store of one miner. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct ProofStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    _lock: Option<File>,
    /// What a read-only open skipped (a writable open repairs instead: see [`Recovery`]).
    damage: Damage,
}

const LOG_FILE: &str = "proofs.log";
const LOCK_FILE: &str = "LOCK";

impl ProofStore {
    /// Puts a layer between the store's log and its file: fault injection for tests (a sink
    /// that loses what was not synced when "power is cut", one that fails writes).
    pub fn wrap_log_sink(&self, wrap: impl FnOnce(Box<dyn log::LogSink>) -> Box<dyn log::LogSink>) {
        let mut inner = self.inner.lock_or_recover();
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
        let mut index = Index {
            archived: archive::epochs(dir)?.into_iter().collect(),
            ..Index::default()
        };
        // An epoch both archived and in the log: a crash came between the two steps of
        // archiving; the archive file is whole (renamed only once synced), so finish it.
        let mut leftovers = false;
        for p in &payloads {
            if let Some(record) = Record::decode(p) {
                leftovers |= record_epochs(&record).any(|e| index.archived.contains(&e));
                index.apply(record);
            }
        }
        for e in index.archived.clone() {
            index.epochs.remove(&e);
        }
        if recovery.records > 0 {
            tracing::info!(
                "proof store {}: {} records, {} proofs in open epochs, {} epochs archived",
                dir.display(),
                recovery.records,
                index.proofs.values().map(|m| m.len()).sum::<usize>(),
                index.archived.len(),
            );
        }
        let store = ProofStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                log: Some(log),
                index,
                compacting: None,
            }),
            _lock: Some(lock),
            damage: Damage::default(),
        };
        if leftovers {
            store.compact()?;
        }
        Ok((store, recovery))
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
        let damage = Damage::of(&path, &bytes, &scan);
        let mut index = Index::replay(&scan.payloads);
        // Archived epochs come back from their files (the log's copy, if a crash left one,
        // holds the same).
        for e in archive::epochs(dir)? {
            index.archive(e);
            index.archived.remove(&e);
            for record in archive::read(dir, e)? {
                index.apply(record);
            }
        }
        Ok(ProofStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                log: None,
                index,
                compacting: None,
            }),
            _lock: None,
            damage,
        })
    }

    /// What [`ProofStore::open_read_only`] skipped in the log: damaged records and an
    /// incomplete last one (nothing for a store opened for writing, which repairs them).
    pub fn damage(&self) -> &Damage {
        &self.damage
    }

    /// Epoch `number`'s record in the store in `dir` (its log, or its archive file once
    /// settled), read without locking or repairing anything, while a miner may write: cheaper
    /// than [`ProofStore::open_read_only`], which reads every archived epoch. `None` if the
    /// store does not exist or never recorded the epoch.
    pub fn recorded_epoch(dir: &Path, number: u64) -> Result<Option<Epoch>> {
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path,
                    op: "read",
                    source,
                });
            }
        };
        let records: Vec<Record> = if archive::path(dir, number).exists() {
            archive::read(dir, number)?
        } else {
            log::scan(&bytes, |p| Record::decode(p).is_some())
                .payloads
                .iter()
                .filter_map(|p| Record::decode(p))
                .collect()
        };
        // The last record of the epoch is its record, as on replay.
        Ok(records.into_iter().rev().find_map(|r| match r {
            Record::Epoch(e) if e.number == number => Some(e),
            _ => None,
        }))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, record: Record) -> Result<()> {
        let mut inner = self.inner.lock_or_recover();
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
        let payload = record.encode();
        log.append(&payload)?;
        if let Some(tail) = inner.compacting.as_mut() {
            tail.push(payload);
        }
        inner.index.apply(record);
        Ok(())
    }

    /// Records an epoch's seed and targets (once; later calls for the same epoch do nothing).
    /// A seed other than the one recorded for the number is refused
    /// ([`StoreError::SeedChanged`]) unless [`ProofStore::retire_epoch_seed`] retired it.
    pub fn record_epoch(&self, epoch: &Epoch) -> Result<()> {
        let mut inner = self.inner.lock_or_recover();
        match inner.index.epochs.get(&epoch.number) {
            Some(recorded) if recorded == epoch => return Ok(()),
            Some(recorded)
                if recorded.seed != crate::Seed::default() && recorded.seed != epoch.seed =>
            {
                return Err(StoreError::SeedChanged {
                    dir: self.dir.clone(),
                    number: epoch.number,
                    recorded: recorded.seed,
                    given: epoch.seed,
                });
            }
            _ => {}
        }
        self.write_locked(&mut inner, Record::Epoch(*epoch))
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
        let mut inner = self.inner.lock_or_recover();
        if let Some(p) = proofs
            .iter()
            .find(|p| inner.index.archived.contains(&p.epoch))
        {
            return Err(StoreError::Archived(p.epoch));
        }
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
            let inner = self.inner.lock_or_recover();
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
            .lock_or_recover()
            .index
            .epochs
            .get(&number)
            .copied()
    }

    /// Every recorded epoch, oldest first.
    pub fn epochs(&self) -> Vec<Epoch> {
        let inner = self.inner.lock_or_recover();
        inner.index.epochs.values().copied().collect()
    }

    /// The highest stored nonce of a unit in an epoch.
    pub fn max_nonce(&self, epoch: u64, unit: &UnitId) -> Option<u64> {
        let inner = self.inner.lock_or_recover();
        inner
            .index
            .proofs
            .get(&(epoch, *unit))
            .and_then(|m| m.last_key_value().map(|(n, _)| *n))
    }

    /// Every stored proof that `keep` accepts, archived epochs included (read back from their
    /// files), ordered by (epoch, unit, nonce). This walks everything ever stored: the chain
    /// client's ticks use [`ProofStore::unsettled`] instead.
    pub fn proofs(&self, mut keep: impl FnMut(&StoredProof) -> bool) -> Result<Vec<StoredProof>> {
        let archived: Vec<u64> = {
            let inner = self.inner.lock_or_recover();
            inner.index.archived.iter().copied().collect()
        };
        let mut old = Index::default();
        for e in archived {
            for record in archive::read(&self.dir, e)? {
                old.apply(record);
            }
        }
        let inner = self.inner.lock_or_recover();
        let mut out = Vec::new();
        for index in [&old, &inner.index] {
            for ((epoch, unit), nonces) in &index.proofs {
                for (nonce, e) in nonces {
                    let r = ProofRef {
                        epoch: *epoch,
                        unit: *unit,
                        nonce: *nonce,
                    };
                    let stored = index::stored(&r, e);
                    if keep(&stored) {
                        out.push(stored);
                    }
                }
            }
        }
        out.sort_by_key(|p| p.proof.id());
        Ok(out)
    }

    /// Every proof of an open (not archived) epoch, ordered by (unit, nonce): costs that
    /// epoch's proofs only.
    pub fn epoch_proofs(&self, epoch: u64) -> Vec<StoredProof> {
        let inner = self.inner.lock_or_recover();
        inner
            .index
            .epoch_proofs(epoch)
            .map(|(r, e)| index::stored(&r, e))
            .collect()
    }

    /// The proofs not yet in a terminal state (found, submitted, included) that `keep` accepts,
    /// ordered by (epoch, unit, nonce). Costs what is in flight, not what is stored.
    pub fn unsettled(&self, keep: impl FnMut(&StoredProof) -> bool) -> Vec<StoredProof> {
        self.grouped(|t| t.unsettled() > 0, |s| !s.is_terminal(), keep)
    }

    /// The proofs submitted or included (on their way to final), ordered by (epoch, unit,
    /// nonce): walks only the units that have such proofs.
    pub fn in_flight(&self) -> Vec<StoredProof> {
        self.grouped(
            |t| t.moving > 0,
            |s| {
                matches!(
                    s,
                    ProofState::Submitted { .. } | ProofState::Included { .. }
                )
            },
            |_| true,
        )
    }

    /// The proofs in a state `state` accepts, of the (epoch, unit) groups whose tally `group`
    /// accepts, that `keep` accepts.
    fn grouped(
        &self,
        group: impl Fn(&Tally) -> bool,
        state: impl Fn(&ProofState) -> bool,
        mut keep: impl FnMut(&StoredProof) -> bool,
    ) -> Vec<StoredProof> {
        let inner = self.inner.lock_or_recover();
        inner
            .index
            .grouped(0..=u64::MAX, group)
            .filter(|(_, e)| state(&e.state))
            .map(|(r, e)| index::stored(&r, e))
            .filter(|p| keep(p))
            .collect()
    }

    /// The tally of every (epoch, unit) of the open epochs in `epochs`, ordered by (epoch,
    /// unit): one entry a unit and epoch, however many proofs.
    pub fn tallies(&self, epochs: std::ops::RangeInclusive<u64>) -> Vec<(u64, UnitId, Tally)> {
        let inner = self.inner.lock_or_recover();
        inner
            .index
            .tallies
            .range(index::epoch_keys(epochs))
            .map(|(&(epoch, unit), t)| (epoch, unit, *t))
            .collect()
    }

    /// The found proofs of epoch `epoch`, by unit: kind and nonces, ordered by unit and nonce.
    /// Walks only the units with found proofs in that epoch.
    pub fn found(&self, epoch: u64) -> Vec<(UnitId, UnitKind, Vec<u64>)> {
        let inner = self.inner.lock_or_recover();
        let index = &inner.index;
        let mut out: Vec<(UnitId, UnitKind, Vec<u64>)> = Vec::new();
        for (r, e) in index
            .grouped(epoch..=epoch, |t| t.found > 0)
            .filter(|(_, e)| e.state == ProofState::Found)
        {
            match out.last_mut() {
                Some((unit, _, nonces)) if *unit == r.unit => nonces.push(r.nonce),
                _ => out.push((r.unit, e.kind, vec![r.nonce])),
            }
        }
        out
    }

    /// The proofs among `refs` that are stored in an open epoch and `keep` accepts.
    pub fn among(
        &self,
        refs: impl IntoIterator<Item = ProofRef>,
        mut keep: impl FnMut(&StoredProof) -> bool,
    ) -> Vec<StoredProof> {
        let inner = self.inner.lock_or_recover();
        refs.into_iter()
            .filter_map(|r| inner.index.stored(&r))
            .filter(|p| keep(p))
            .collect()
    }

    /// When the longest-waiting found proof among `refs` was found (stored, or moved back to
    /// found; proofs stored before the store was opened count from its opening).
    pub fn found_since<'a>(
        &self,
        refs: impl IntoIterator<Item = &'a ProofRef>,
    ) -> Option<std::time::Instant> {
        let inner = self.inner.lock_or_recover();
        refs.into_iter()
            .filter_map(|r| inner.index.get(r))
            .filter(|e| e.state == ProofState::Found)
            .map(|e| e.since)
            .min()
    }

    /// The state of one proof of an open epoch (`None` for a proof of an archived one).
    pub fn state(&self, r: &ProofRef) -> Option<ProofState> {
        let inner = self.inner.lock_or_recover();
        inner.index.get(r).map(|e| e.state)
    }

    /// True if epoch `number` has been archived.
    pub fn is_archived(&self, number: u64) -> bool {
        let inner = self.inner.lock_or_recover();
        inner.index.archived.contains(&number)
    }

    /// Moves a settled epoch (every proof final or skipped; the caller knows its window has
    /// closed) to the archive, then compacts the log. Returns `false`, doing nothing, if some
    /// proof of the epoch is not terminal yet or the epoch is unknown or archived already.
    /// Proofs for the epoch that arrive afterwards are refused ([`StoreError::Archived`]).
    pub fn archive_epoch(&self, number: u64) -> Result<bool> {
        // 1. Fence the epoch (appends to it are refused from now on) and copy it out.
        let records = {
            let mut inner = self.inner.lock_or_recover();
            let index = &mut inner.index;
            if index.archived.contains(&number) || index.epoch_unsettled(number) {
                return Ok(false);
            }
            let Some(records) = index.epoch_snapshot(number) else {
                return Ok(false);
            };
            index.archived.insert(number);
            records
        };
        // 2. Write its file, without holding up appends.
        if let Err(e) = archive::write(&self.dir, number, &records) {
            let mut inner = self.inner.lock_or_recover();
            inner.index.archived.remove(&number);
            return Err(e);
        }
        // 3. Drop it from memory, then from the log.
        self.inner.lock_or_recover().index.archive(number);
        self.compact()?;
        Ok(true)
    }

    /// Rewrites the log as a snapshot of the index (what archived epochs and superseded
    /// states leave). Appends go on meanwhile: they land in the old log and are copied to the
    /// new one before it takes the old one's place.
    pub fn compact(&self) -> Result<()> {
        let (path, snapshot) = {
            let mut inner = self.inner.lock_or_recover();
            let Some(log) = inner.log.as_ref() else {
                return Ok(()); // read-only
            };
            if inner.compacting.is_some() {
                return Ok(()); // another compaction is under way
            }
            let path = log.path().to_path_buf();
            let snapshot: Vec<Vec<u8>> =
                inner.index.snapshot().iter().map(Record::encode).collect();
            inner.compacting = Some(Vec::new());
            (path, snapshot)
        };
        let begun = log::Rewrite::begin(&path, snapshot.iter().map(Vec::as_slice));
        let mut inner = self.inner.lock_or_recover();
        let tail = inner.compacting.take().unwrap_or_default();
        let installed = begun
            .and_then(|rewrite| rewrite.finish(tail.iter().map(Vec::as_slice)))
            .and_then(|file| match inner.log.as_mut() {
                Some(log) => log.install(file),
                None => Ok(()),
            });
        if let Err(e) = &installed {
            let _ = std::fs::remove_file(path.with_extension("rewrite"));
            tracing::warn!("proof store: compaction failed, the log is unchanged: {e}");
        }
        installed
    }
}

/// The epochs a record touches.
fn record_epochs(record: &Record) -> Box<dyn Iterator<Item = u64> + '_> {
    match record {
        Record::Epoch(e) => Box::new(std::iter::once(e.number)),
        Record::Proofs(proofs) => Box::new(proofs.iter().map(|p| p.epoch)),
        Record::State(_, refs) => Box::new(refs.iter().map(|r| r.epoch)),
    }
}

/// Takes the store's exclusive lock (released by the OS when the process dies, even by kill -9).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
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
    // An exclusive flock(2) on Unix, as before std had it; held until the file is closed.
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(source)) => Err(StoreError::Io {
            path,
            op: "lock",
            source,
        }),
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
