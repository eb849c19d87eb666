//! The Fluence profile's proof store: the proofs `capminer ccp` serves to Fluence's node.
//!
//! One directory holds `fluence.log` (framed and checksummed as the proof store's
//! [`crate::store::log`]) and a `LOCK` file one process holds. The log holds one epoch: its
//! first record names the epoch (global nonce, difficulty), each later one a proof. A proof is
//! appended and fsynced before [`FluenceStore::append`] returns, with the next index of its CU
//! (from [`FIRST_PROOF_IDX`], without gaps); so after a crash (kill -9 included) every index
//! served before it is there again with the same proof, and none is given twice. A new epoch
//! replaces the log whole, durably, with its epoch record alone: indices start again.
//!
//! Proofs found under an epoch that is no longer the store's are refused (`Ok(None)`): a
//! unit's last round of an old epoch never lands in the new one.
//!
//! ```text
//!  record  = 0x01 ‖ global_nonce[32] ‖ difficulty[32]                      (65 bytes)
//!          | 0x02 ‖ cu_id[32] ‖ idx u64 LE ‖ local_nonce[32] ‖ result_hash[32] (105 bytes)
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use capminer_protocol::fluence::FIRST_PROOF_IDX;
use capminer_protocol::{FluenceEpoch, FluenceProof};
use capminer_sync::LockExt;

use crate::Result;
use crate::store::lock_dir;
use crate::store::log::{Log, Recovery, Rewrite, sync_dir};

const LOG_FILE: &str = "fluence.log";
const EPOCH: u8 = 1;
const PROOF: u8 = 2;

/// One record of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Epoch(FluenceEpoch),
    Proof(FluenceProof),
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(105);
        match self {
            Record::Epoch(e) => {
                out.push(EPOCH);
                out.extend_from_slice(&e.global_nonce);
                out.extend_from_slice(&e.difficulty);
            }
            Record::Proof(p) => {
                out.push(PROOF);
                out.extend_from_slice(&p.cu_id);
                out.extend_from_slice(&p.idx.to_le_bytes());
                out.extend_from_slice(&p.local_nonce);
                out.extend_from_slice(&p.result_hash);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        let b32 = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32 bytes") };
        match (bytes.first()?, bytes.len()) {
            (&EPOCH, 65) => Some(Record::Epoch(FluenceEpoch {
                global_nonce: b32(1),
                difficulty: b32(33),
            })),
            (&PROOF, 105) => Some(Record::Proof(FluenceProof {
                cu_id: b32(1),
                idx: u64::from_le_bytes(bytes[33..41].try_into().expect("8 bytes")),
                local_nonce: b32(41),
                result_hash: b32(73),
            })),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    log: Log,
    epoch: Option<FluenceEpoch>,
    /// Each CU's proofs of the epoch; the proof with index `i` at position `i - 1`.
    units: BTreeMap<[u8; 32], Vec<FluenceProof>>,
}

/// The store (see the module's documentation).
#[derive(Debug)]
pub struct FluenceStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    _lock: File,
}

impl FluenceStore {
    /// Opens (creating) the store in `dir`, repairs its log after a crash and replays it.
    pub fn open(dir: &Path) -> Result<(FluenceStore, Recovery)> {
        std::fs::create_dir_all(dir).map_err(|source| crate::StoreError::Io {
            path: dir.to_path_buf(),
            op: "create directory",
            source,
        })?;
        let lock = lock_dir(dir)?;
        let (log, payloads, recovery) =
            Log::open(&dir.join(LOG_FILE), |p| Record::decode(p).is_some())?;
        let mut epoch = None;
        let mut units: BTreeMap<[u8; 32], Vec<FluenceProof>> = BTreeMap::new();
        for record in payloads.iter().filter_map(|p| Record::decode(p)) {
            match record {
                Record::Epoch(e) => {
                    epoch = Some(e);
                    units.clear();
                }
                Record::Proof(p) => {
                    let proofs = units.entry(p.cu_id).or_default();
                    if epoch.is_some() && p.idx == next_idx(proofs) {
                        proofs.push(p);
                    } else {
                        tracing::warn!(
                            "fluence proof store {}: skipped a proof of CU {} with index {} (out of sequence)",
                            dir.display(),
                            hex::encode(p.cu_id),
                            p.idx
                        );
                    }
                }
            }
        }
        let store = FluenceStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner { log, epoch, units }),
            _lock: lock,
        };
        Ok((store, recovery))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The epoch the store holds proofs of.
    pub fn epoch(&self) -> Option<FluenceEpoch> {
        self.inner.lock_or_recover().epoch
    }

    /// Makes `epoch` the store's, durably: the same epoch keeps every proof and index (false);
    /// another one replaces the log with its record alone (true).
    pub fn set_epoch(&self, epoch: FluenceEpoch) -> Result<bool> {
        let mut inner = self.inner.lock_or_recover();
        if inner.epoch == Some(epoch) {
            return Ok(false);
        }
        let record = Record::Epoch(epoch).encode();
        let path = self.dir.join(LOG_FILE);
        let image = Rewrite::begin(&path, [record.as_slice()])?.finish([])?;
        inner.log.install(image)?;
        sync_dir(&self.dir)?;
        inner.epoch = Some(epoch);
        inner.units.clear();
        Ok(true)
    }

    /// Stores a proof CU `cu_id` found under `epoch`, durably, with the CU's next index; `None`
    /// if `epoch` is no longer the store's (the proof is dropped).
    pub fn append(
        &self,
        epoch: &FluenceEpoch,
        cu_id: [u8; 32],
        local_nonce: [u8; 32],
        result_hash: [u8; 32],
    ) -> Result<Option<FluenceProof>> {
        let mut inner = self.inner.lock_or_recover();
        if inner.epoch.as_ref() != Some(epoch) {
            return Ok(None);
        }
        let idx = next_idx(inner.units.get(&cu_id).map_or(&[][..], Vec::as_slice));
        let proof = FluenceProof {
            cu_id,
            idx,
            local_nonce,
            result_hash,
        };
        inner.log.append(&Record::Proof(proof).encode())?;
        inner.units.entry(cu_id).or_default().push(proof);
        Ok(Some(proof))
    }

    /// CU `cu_id`'s proofs with an index above `after`, in index order, at most `limit`.
    pub fn after(&self, cu_id: &[u8; 32], after: u64, limit: usize) -> Vec<FluenceProof> {
        let inner = self.inner.lock_or_recover();
        let Some(proofs) = inner.units.get(cu_id) else {
            return Vec::new();
        };
        let skip = usize::try_from(after.saturating_sub(FIRST_PROOF_IDX - 1)).unwrap_or(usize::MAX);
        proofs.iter().skip(skip).take(limit).copied().collect()
    }

    /// Every CU with proofs in the epoch, and how many.
    pub fn counts(&self) -> Vec<([u8; 32], u64)> {
        let inner = self.inner.lock_or_recover();
        inner
            .units
            .iter()
            .map(|(cu, proofs)| (*cu, proofs.len() as u64))
            .collect()
    }
}

/// The index the next proof of a CU gets.
fn next_idx(proofs: &[FluenceProof]) -> u64 {
    FIRST_PROOF_IDX + proofs.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: u8) -> FluenceEpoch {
        FluenceEpoch {
            global_nonce: [n; 32],
            difficulty: [0xff; 32],
        }
    }

    #[test]
    fn records_have_their_documented_bytes() {
        let p = FluenceProof {
            cu_id: [1; 32],
            idx: 0x0102,
            local_nonce: [3; 32],
            result_hash: [4; 32],
        };
        let bytes = Record::Proof(p).encode();
        assert_eq!(bytes.len(), 105);
        assert_eq!(bytes[0], 2);
        assert_eq!(&bytes[33..41], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Record::decode(&bytes), Some(Record::Proof(p)));
        let e = Record::Epoch(epoch(9)).encode();
        assert_eq!(e.len(), 65);
        assert_eq!(Record::decode(&e), Some(Record::Epoch(epoch(9))));
        assert_eq!(Record::decode(&bytes[..104]), None);
    }

    #[test]
    fn indices_are_per_cu_from_one_survive_reopening_and_restart_with_an_epoch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = FluenceStore::open(dir.path()).unwrap();
            assert!(store.set_epoch(epoch(1)).unwrap());
            assert!(!store.set_epoch(epoch(1)).unwrap());
            let a = store
                .append(&epoch(1), [0xa; 32], [1; 32], [0; 32])
                .unwrap()
                .unwrap();
            let b = store
                .append(&epoch(1), [0xb; 32], [2; 32], [0; 32])
                .unwrap()
                .unwrap();
            let a2 = store
                .append(&epoch(1), [0xa; 32], [3; 32], [0; 32])
                .unwrap()
                .unwrap();
            assert_eq!((a.idx, b.idx, a2.idx), (1, 1, 2));
            // A proof of another epoch is dropped.
            assert_eq!(
                store
                    .append(&epoch(2), [0xa; 32], [4; 32], [0; 32])
                    .unwrap(),
                None
            );
            // A second process cannot open the store.
            assert!(FluenceStore::open(dir.path()).is_err());
        }
        let (store, recovery) = FluenceStore::open(dir.path()).unwrap();
        assert_eq!(recovery.records, 4);
        assert_eq!(store.epoch(), Some(epoch(1)));
        let a: Vec<u64> = store
            .after(&[0xa; 32], 0, 10)
            .iter()
            .map(|p| p.idx)
            .collect();
        assert_eq!(a, [1, 2]);
        assert_eq!(store.after(&[0xa; 32], 1, 10)[0].local_nonce, [3; 32]);
        assert!(store.after(&[0xa; 32], 2, 10).is_empty());
        assert_eq!(store.after(&[0xa; 32], 0, 1).len(), 1);
        assert_eq!(store.counts(), vec![([0xa; 32], 2), ([0xb; 32], 1)]);
        assert_eq!(
            store
                .append(&epoch(1), [0xb; 32], [5; 32], [0; 32])
                .unwrap()
                .unwrap()
                .idx,
            2
        );
        assert!(store.set_epoch(epoch(2)).unwrap());
        assert!(store.counts().is_empty());
        drop(store);
        let (store, recovery) = FluenceStore::open(dir.path()).unwrap();
        assert_eq!(recovery.records, 1);
        assert_eq!(store.epoch(), Some(epoch(2)));
    }

    #[test]
    fn a_torn_last_record_is_cut_and_its_index_given_to_the_next_proof() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = FluenceStore::open(dir.path()).unwrap();
            store.set_epoch(epoch(1)).unwrap();
            store
                .append(&epoch(1), [0xa; 32], [1; 32], [0; 32])
                .unwrap();
            store
                .append(&epoch(1), [0xa; 32], [2; 32], [0; 32])
                .unwrap();
        }
        let path = dir.path().join(LOG_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 7).unwrap();
        drop(f);
        let (store, recovery) = FluenceStore::open(dir.path()).unwrap();
        assert_eq!(recovery.torn_bytes, 105 + 12 - 7);
        assert_eq!(store.counts(), vec![([0xa; 32], 1)]);
        let p = store
            .append(&epoch(1), [0xa; 32], [9; 32], [0; 32])
            .unwrap()
            .unwrap();
        assert_eq!(p.idx, 2);
    }
}
