//! The store's in-memory index: what the log's records add up to.
//!
//! Proofs are kept per (epoch, unit), ordered by nonce. Beside them, a [`Tally`] per (epoch,
//! unit) of its proofs by state, kept as records are applied: the chain client's every tick
//! reads the tallies (one entry per unit) and walks only the units whose proofs wait or move,
//! so a tick costs what is in flight, not everything ever stored, and counting a unit's
//! proofs costs nothing. Epochs moved to the archive leave the index altogether (only their
//! numbers stay, so late proofs for them are refused).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::time::Instant;

use super::StoredProof;
use super::record::{ProofState, Record};
use crate::{Epoch, Hash, Proof, ProofRef, UnitId, UnitKind};

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub kind: UnitKind,
    pub hash: Hash,
    pub state: ProofState,
    /// When it was last found (stored, or moved back to found); in memory only: replayed
    /// proofs count from when the store was opened.
    pub since: Instant,
}

/// One unit's proofs of one epoch, counted by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Found, waiting to be submitted.
    pub found: u32,
    /// Submitted or included: on their way.
    pub moving: u32,
    /// Final.
    pub settled: u32,
    /// Skipped: the contract never counts them.
    pub skipped: u32,
}

impl Tally {
    /// Proofs that count or may still count (all but the skipped).
    pub fn counted(&self) -> u32 {
        self.found + self.moving + self.settled
    }

    /// Proofs not in a terminal state.
    pub fn unsettled(&self) -> u32 {
        self.found + self.moving
    }

    fn slot(&mut self, state: ProofState) -> &mut u32 {
        match state {
            ProofState::Found => &mut self.found,
            ProofState::Submitted { .. } | ProofState::Included { .. } => &mut self.moving,
            ProofState::Final => &mut self.settled,
            ProofState::Skipped => &mut self.skipped,
        }
    }
}

/// Most proofs (or refs) in one record written by a snapshot.
const SNAPSHOT_CHUNK: usize = 4096;

/// The (epoch, unit) keys of `epochs`.
pub(super) fn epoch_keys(epochs: RangeInclusive<u64>) -> RangeInclusive<(u64, UnitId)> {
    (*epochs.start(), UnitId([0; 32]))..=(*epochs.end(), UnitId([0xff; 32]))
}

#[derive(Debug, Default)]
pub(super) struct Index {
    pub epochs: BTreeMap<u64, Epoch>,
    /// Epochs whose proofs live in the archive, not here.
    pub archived: BTreeSet<u64>,
    pub proofs: BTreeMap<(u64, UnitId), BTreeMap<u64, Entry>>,
    /// The proofs of each (epoch, unit) by state.
    pub tallies: BTreeMap<(u64, UnitId), Tally>,
}

impl Index {
    pub(super) fn replay(payloads: &[Vec<u8>]) -> Index {
        let mut index = Index::default();
        for p in payloads {
            if let Some(record) = Record::decode(p) {
                index.apply(record);
            }
        }
        index
    }

    pub(super) fn apply(&mut self, record: Record) {
        match record {
            Record::Epoch(e) => {
                self.epochs.insert(e.number, e);
            }
            Record::Proofs(proofs) => {
                let now = Instant::now();
                for p in proofs {
                    if self.archived.contains(&p.epoch) {
                        continue;
                    }
                    let nonces = self.proofs.entry((p.epoch, p.unit)).or_default();
                    if let std::collections::btree_map::Entry::Vacant(v) = nonces.entry(p.nonce) {
                        v.insert(Entry {
                            kind: p.kind,
                            hash: p.hash,
                            state: ProofState::Found,
                            since: now,
                        });
                        self.tallies.entry((p.epoch, p.unit)).or_default().found += 1;
                    }
                }
            }
            Record::State(state, refs) => {
                let now = Instant::now();
                for r in refs {
                    let key = (r.epoch, r.unit);
                    let Some(entry) = self.proofs.get_mut(&key).and_then(|n| n.get_mut(&r.nonce))
                    else {
                        continue;
                    };
                    let old = std::mem::replace(&mut entry.state, state);
                    if state == ProofState::Found && old != ProofState::Found {
                        entry.since = now;
                    }
                    let tally = self.tallies.entry(key).or_default();
                    *tally.slot(old) -= 1;
                    *tally.slot(state) += 1;
                }
            }
        }
    }

    pub(super) fn get(&self, r: &ProofRef) -> Option<&Entry> {
        self.proofs.get(&(r.epoch, r.unit))?.get(&r.nonce)
    }

    pub(super) fn contains(&self, r: &ProofRef) -> bool {
        self.get(r).is_some()
    }

    pub(super) fn stored(&self, r: &ProofRef) -> Option<StoredProof> {
        self.get(r).map(|e| stored(r, e))
    }

    /// Every proof of `epoch` with its entry, ordered by (unit, nonce).
    pub(super) fn epoch_proofs(&self, epoch: u64) -> impl Iterator<Item = (ProofRef, &Entry)> {
        self.proofs
            .range(epoch_keys(epoch..=epoch))
            .flat_map(|(&(epoch, unit), nonces)| group(epoch, unit, nonces))
    }

    /// The proofs of `epochs` in the (epoch, unit) groups whose tally `keep` accepts, ordered
    /// by (epoch, unit, nonce): walks those groups only.
    pub(super) fn grouped(
        &self,
        epochs: RangeInclusive<u64>,
        keep: impl Fn(&Tally) -> bool,
    ) -> impl Iterator<Item = (ProofRef, &Entry)> {
        self.tallies
            .range(epoch_keys(epochs))
            .filter(move |(_, t)| keep(t))
            .filter_map(|(key, _)| Some((*key, self.proofs.get(key)?)))
            .flat_map(|((epoch, unit), nonces)| group(epoch, unit, nonces))
    }

    /// True if some proof of `epoch` is not in a terminal state.
    pub(super) fn epoch_unsettled(&self, epoch: u64) -> bool {
        self.tallies
            .range(epoch_keys(epoch..=epoch))
            .any(|(_, t)| t.unsettled() > 0)
    }

    /// Removes `epoch`'s proofs (now in the archive); its number stays known as archived.
    pub(super) fn archive(&mut self, epoch: u64) {
        let keys: Vec<(u64, UnitId)> = self
            .proofs
            .range(epoch_keys(epoch..=epoch))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.proofs.remove(&k);
            self.tallies.remove(&k);
        }
        self.epochs.remove(&epoch);
        self.archived.insert(epoch);
    }

    /// The records that rebuild this index (see [`records`]).
    pub(super) fn snapshot(&self) -> Vec<Record> {
        let proofs = self
            .proofs
            .iter()
            .flat_map(|(&(epoch, unit), nonces)| group(epoch, unit, nonces));
        records(self.epochs.values().copied(), proofs)
    }

    /// The records of epoch `epoch` alone (what its archive file holds), if it is recorded.
    pub(super) fn epoch_snapshot(&self, epoch: u64) -> Option<Vec<Record>> {
        let record = *self.epochs.get(&epoch)?;
        Some(records(std::iter::once(record), self.epoch_proofs(epoch)))
    }
}

/// Records that rebuild `epochs` and `proofs`: the epochs, then the proofs, then their states
/// grouped by state, in chunks. Replaying them gives the same index.
fn records<'a>(
    epochs: impl Iterator<Item = Epoch>,
    proofs: impl Iterator<Item = (ProofRef, &'a Entry)>,
) -> Vec<Record> {
    let mut out: Vec<Record> = epochs.map(Record::Epoch).collect();
    let mut found = Vec::new();
    let mut states: BTreeMap<Vec<u8>, (ProofState, Vec<ProofRef>)> = BTreeMap::new();
    for (r, e) in proofs {
        found.push(stored(&r, e).proof);
        if e.state != ProofState::Found {
            // Group by the state's encoding (states carry tx and block fields).
            let key = Record::State(e.state, Vec::new()).encode();
            states.entry(key).or_insert((e.state, Vec::new())).1.push(r);
        }
    }
    out.extend(
        found
            .chunks(SNAPSHOT_CHUNK)
            .map(|c| Record::Proofs(c.to_vec())),
    );
    for (state, refs) in states.into_values() {
        out.extend(
            refs.chunks(SNAPSHOT_CHUNK)
                .map(|c| Record::State(state, c.to_vec())),
        );
    }
    out
}

/// The proofs of one (epoch, unit) group, with their refs.
fn group(
    epoch: u64,
    unit: UnitId,
    nonces: &BTreeMap<u64, Entry>,
) -> impl Iterator<Item = (ProofRef, &Entry)> {
    nonces
        .iter()
        .map(move |(&nonce, e)| (ProofRef { epoch, unit, nonce }, e))
}

pub(super) fn stored(r: &ProofRef, e: &Entry) -> StoredProof {
    StoredProof {
        proof: Proof {
            unit: r.unit,
            kind: e.kind,
            epoch: r.epoch,
            nonce: r.nonce,
            hash: e.hash,
        },
        state: e.state,
    }
}
