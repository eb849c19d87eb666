//! The payloads of proof-store records, byte for byte (all integers little-endian).
//!
//! | tag | record | body |
//! |---|---|---|
//! | 1 | epoch | `number u64 ‖ seed 32 ‖ cpu target 32 ‖ gpu target 32` |
//! | 2 | proofs found | `n u32 ‖ n × (unit 32 ‖ kind u8 ‖ epoch u64 ‖ nonce u64 ‖ hash 32)` |
//! | 3 | state change | `state u8 ‖ tx 32 ‖ block u64 ‖ block hash 32 ‖ n u32 ‖ n × (epoch u64 ‖ unit 32 ‖ nonce u64)` |
//!
//! States: 0 found, 1 submitted, 2 included, 3 final, 4 skipped. Fields a state does not use
//! are zero.

use crate::{Epoch, Hash, Proof, ProofRef, Seed, Target, UnitId, UnitKind};

/// Where a proof is on its way to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ProofState {
    /// Found and stored; not (or no longer) in any transaction.
    Found,
    /// Sent in transaction `tx`.
    Submitted {
        /// Transaction hash.
        tx: Hash,
    },
    /// Its transaction is in block `block` (hash `block_hash`), not yet deep enough.
    Included {
        /// Transaction hash.
        tx: Hash,
        /// Block number.
        block: u64,
        /// Block hash, to notice the block leaving the canonical chain.
        block_hash: Hash,
    },
    /// Accepted by the contract in a block now final at the configured depth: done for good.
    Final,
    /// Will never count: the contract skipped it (over the unit's maximum, or stale), or its
    /// epoch's submission window closed before it got in. Done for good.
    Skipped,
}

impl ProofState {
    /// True for states nothing will change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ProofState::Final | ProofState::Skipped)
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An epoch's seed and targets.
    Epoch(Epoch),
    /// Proofs found, stored together.
    Proofs(Vec<Proof>),
    /// A state change for several proofs.
    State(ProofState, Vec<ProofRef>),
}

const TAG_EPOCH: u8 = 1;
const TAG_PROOFS: u8 = 2;
const TAG_STATE: u8 = 3;

impl Record {
    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Epoch(e) => {
                out.push(TAG_EPOCH);
                out.extend_from_slice(&e.number.to_le_bytes());
                out.extend_from_slice(&e.seed.0);
                out.extend_from_slice(&e.targets[0].0);
                out.extend_from_slice(&e.targets[1].0);
            }
            Record::Proofs(proofs) => {
                out.push(TAG_PROOFS);
                out.extend_from_slice(&(proofs.len() as u32).to_le_bytes());
                for p in proofs {
                    out.extend_from_slice(&p.unit.0);
                    out.push(p.kind as u8);
                    out.extend_from_slice(&p.epoch.to_le_bytes());
                    out.extend_from_slice(&p.nonce.to_le_bytes());
                    out.extend_from_slice(&p.hash.0);
                }
            }
            Record::State(state, refs) => {
                out.push(TAG_STATE);
                let (code, tx, block, block_hash) = match *state {
                    ProofState::Found => (0u8, Hash::default(), 0u64, Hash::default()),
                    ProofState::Submitted { tx } => (1, tx, 0, Hash::default()),
                    ProofState::Included {
                        tx,
                        block,
                        block_hash,
                    } => (2, tx, block, block_hash),
                    ProofState::Final => (3, Hash::default(), 0, Hash::default()),
                    ProofState::Skipped => (4, Hash::default(), 0, Hash::default()),
                };
                out.push(code);
                out.extend_from_slice(&tx.0);
                out.extend_from_slice(&block.to_le_bytes());
                out.extend_from_slice(&block_hash.0);
                out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
                for r in refs {
                    out.extend_from_slice(&r.epoch.to_le_bytes());
                    out.extend_from_slice(&r.unit.0);
                    out.extend_from_slice(&r.nonce.to_le_bytes());
                }
            }
        }
        out
    }

    /// Decodes a payload whose checksum already matched; `None` if it is not well formed.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            TAG_EPOCH => Record::Epoch(Epoch {
                number: r.u64()?,
                seed: Seed(r.b32()?),
                targets: [Target(r.b32()?), Target(r.b32()?)],
            }),
            TAG_PROOFS => {
                let n = r.u32()?;
                let mut proofs = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    proofs.push(Proof {
                        unit: UnitId(r.b32()?),
                        kind: UnitKind::from_index(r.u8()?)?,
                        epoch: r.u64()?,
                        nonce: r.u64()?,
                        hash: Hash(r.b32()?),
                    });
                }
                Record::Proofs(proofs)
            }
            TAG_STATE => {
                let code = r.u8()?;
                let (tx, block, block_hash) = (Hash(r.b32()?), r.u64()?, Hash(r.b32()?));
                let state = match code {
                    0 => ProofState::Found,
                    1 => ProofState::Submitted { tx },
                    2 => ProofState::Included {
                        tx,
                        block,
                        block_hash,
                    },
                    3 => ProofState::Final,
                    4 => ProofState::Skipped,
                    _ => return None,
                };
                let n = r.u32()?;
                let mut refs = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    refs.push(ProofRef {
                        epoch: r.u64()?,
                        unit: UnitId(r.b32()?),
                        nonce: r.u64()?,
                    });
                }
                Record::State(state, refs)
            }
            _ => return None,
        };
        r.0.is_empty().then_some(record)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn b32(&mut self) -> Option<[u8; 32]> {
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_record_layout_is_exact() {
        let proof = Proof {
            unit: UnitId([0xaa; 32]),
            kind: UnitKind::Gpu,
            epoch: 0x0102,
            nonce: 0x0a0b,
            hash: Hash([0x55; 32]),
        };
        let bytes = Record::Proofs(vec![proof]).encode();
        assert_eq!(bytes.len(), 1 + 4 + 81);
        assert_eq!(&bytes[..5], &[2, 1, 0, 0, 0]);
        assert_eq!(&bytes[5..37], &[0xaa; 32]);
        assert_eq!(bytes[37], 1, "kind gpu");
        assert_eq!(&bytes[38..46], &[2, 1, 0, 0, 0, 0, 0, 0], "epoch LE");
        assert_eq!(&bytes[46..54], &[0x0b, 0x0a, 0, 0, 0, 0, 0, 0], "nonce LE");
        assert_eq!(Record::decode(&bytes), Some(Record::Proofs(vec![proof])));
    }

    #[test]
    fn state_and_epoch_records_round_trip_and_trailing_bytes_are_rejected() {
        let refs = vec![ProofRef {
            epoch: 3,
            unit: UnitId([1; 32]),
            nonce: 9,
        }];
        let state = ProofState::Included {
            tx: Hash([2; 32]),
            block: 77,
            block_hash: Hash([3; 32]),
        };
        let bytes = Record::State(state, refs.clone()).encode();
        assert_eq!(bytes.len(), 1 + 1 + 32 + 8 + 32 + 4 + 48);
        assert_eq!(Record::decode(&bytes), Some(Record::State(state, refs)));
        let epoch = Record::Epoch(Epoch {
            number: 5,
            seed: Seed([4; 32]),
            targets: [Target([5; 32]), Target([6; 32])],
        });
        let mut bytes = epoch.encode();
        assert_eq!(bytes.len(), 105);
        assert_eq!(Record::decode(&bytes), Some(epoch));
        bytes.push(0);
        assert_eq!(Record::decode(&bytes), None);
    }
}
