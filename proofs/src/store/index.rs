//! The store's in-memory index: what the log's records add up to.
//!
//! Proofs are kept per (epoch, unit), ordered by nonce. Beside them, the set of proofs not yet
//! in a terminal state (`unsettled`): the chain client's every tick reads only those, so a tick
//! costs what is in flight, not everything ever stored. Epochs moved to the archive leave the
//! index altogether (only their numbers stay, so late proofs for them are refused).

use std::collections::{BTreeMap, BTreeSet};

use super::StoredProof;
use super::record::{ProofState, Record};
use crate::{Epoch, Hash, Proof, ProofRef, UnitId, UnitKind};

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub kind: UnitKind,
    pub hash: Hash,
    pub state: ProofState,
}

/// Most proofs (or refs) in one record written by a snapshot.
const SNAPSHOT_CHUNK: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct Index {
    pub epochs: BTreeMap<u64, Epoch>,
    /// Epochs whose proofs live in the archive, not here.
    pub archived: BTreeSet<u64>,
    pub proofs: BTreeMap<(u64, UnitId), BTreeMap<u64, Entry>>,
    /// Proofs not in a terminal state.
    pub unsettled: BTreeSet<ProofRef>,
}

impl Index {
    pub fn replay(payloads: &[Vec<u8>]) -> Index {
        let mut index = Index::default();
        for p in payloads {
            if let Some(record) = Record::decode(p) {
                index.apply(record);
            }
        }
        index
    }

    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Epoch(e) => {
                self.epochs.insert(e.number, e);
            }
            Record::Proofs(proofs) => {
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
                        });
                        self.unsettled.insert(p.id());
                    }
                }
            }
            Record::State(state, refs) => {
                for r in refs {
                    if let Some(entry) = self.entry_mut(&r) {
                        entry.state = state;
                        if state.is_terminal() {
                            self.unsettled.remove(&r);
                        } else {
                            self.unsettled.insert(r);
                        }
                    }
                }
            }
        }
    }

    fn entry_mut(&mut self, r: &ProofRef) -> Option<&mut Entry> {
        self.proofs.get_mut(&(r.epoch, r.unit))?.get_mut(&r.nonce)
    }

    pub fn get(&self, r: &ProofRef) -> Option<&Entry> {
        self.proofs.get(&(r.epoch, r.unit))?.get(&r.nonce)
    }

    pub fn contains(&self, r: &ProofRef) -> bool {
        self.get(r).is_some()
    }

    pub fn stored(&self, r: &ProofRef) -> Option<StoredProof> {
        self.get(r).map(|e| stored(r, e))
    }

    /// Every proof of `epoch` with its entry, ordered by (unit, nonce).
    pub fn epoch_proofs(&self, epoch: u64) -> impl Iterator<Item = (ProofRef, &Entry)> {
        self.proofs
            .range((epoch, UnitId([0; 32]))..=(epoch, UnitId([0xff; 32])))
            .flat_map(move |((_, unit), nonces)| {
                nonces.iter().map(move |(nonce, e)| {
                    (
                        ProofRef {
                            epoch,
                            unit: *unit,
                            nonce: *nonce,
                        },
                        e,
                    )
                })
            })
    }

    /// True if some proof of `epoch` is not in a terminal state.
    pub fn epoch_unsettled(&self, epoch: u64) -> bool {
        let first = ProofRef {
            epoch,
            unit: UnitId([0; 32]),
            nonce: 0,
        };
        self.unsettled
            .range(first..)
            .next()
            .is_some_and(|r| r.epoch == epoch)
    }

    /// Removes `epoch`'s proofs (now in the archive); its number stays known as archived.
    pub fn archive(&mut self, epoch: u64) {
        let keys: Vec<(u64, UnitId)> = self
            .proofs
            .range((epoch, UnitId([0; 32]))..=(epoch, UnitId([0xff; 32])))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.proofs.remove(&k);
        }
        self.unsettled.retain(|r| r.epoch != epoch);
        self.epochs.remove(&epoch);
        self.archived.insert(epoch);
    }

    /// The records that rebuild this index (see [`records`]).
    pub fn snapshot(&self) -> Vec<Record> {
        let proofs = self.proofs.iter().flat_map(|((epoch, unit), nonces)| {
            nonces.iter().map(move |(nonce, e)| {
                let r = ProofRef {
                    epoch: *epoch,
                    unit: *unit,
                    nonce: *nonce,
                };
                (r, e)
            })
        });
        records(self.epochs.values().copied(), proofs)
    }

    /// The records of epoch `epoch` alone (what its archive file holds), if it is recorded.
    pub fn epoch_snapshot(&self, epoch: u64) -> Option<Vec<Record>> {
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
