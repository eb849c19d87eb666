//! The verifiers' calls: attestations with good and bad signatures, reports with true and forged
//! evidence, abstentions.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::verifier::sample_hash;

use crate::contract::invariants::model::logged;
use crate::contract::invariants::sequence::{Call, Seq};
use crate::contract::invariants::{SECP256K1_ORDER, b256};

impl Seq<'_> {
    pub(super) fn op_attest(&mut self) {
        self.tick();
        let (from, key) = self.verifier();
        let (unit, epoch) = self.verify_target();
        let real = self
            .model
            .ue
            .get(&(unit, epoch))
            .map_or(B256::ZERO, |u| u.digest);
        let digest = match self.rng.below(100) {
            0..85 => real,
            85..95 => b256(&mut self.rng),
            _ => B256::ZERO,
        };
        let hash = sample_hash(
            self.chain.chain_id,
            self.chain.contract,
            unit,
            epoch,
            digest,
        );
        let nkeys = self.actors.verifiers.len();
        let own = key.unwrap_or_else(|| self.rng.below(nkeys as u64) as usize);
        let (sig, signer, how): (Vec<u8>, Option<Address>, &str) = match self.rng.below(100) {
            0..75 => (
                self.sign(own, hash).to_vec(),
                Some(self.actors.verifier(own)),
                "own signature",
            ),
            75..80 => {
                let other = (own + 1 + self.rng.below(nkeys as u64 - 1) as usize) % nkeys;
                (
                    self.sign(other, hash).to_vec(),
                    Some(self.actors.verifier(other)),
                    "another verifier's signature",
                )
            }
            80..85 => {
                let mut s = self.sign(own, hash);
                s[64] -= 27; // v as 0/1: refused, one byte string per signature (one sample)
                (s.to_vec(), None, "own signature, v in 0/1")
            }
            85..90 => {
                let s = self.sign(own, hash);
                let high = SECP256K1_ORDER - U256::from_be_slice(&s[32..64]);
                let mut t = s;
                t[32..64].copy_from_slice(&high.to_be_bytes::<32>());
                t[64] = if s[64] == 27 { 28 } else { 27 };
                (t.to_vec(), None, "high-s twin of own signature")
            }
            90..95 => (
                self.sign(own, hash)[..64].to_vec(),
                None,
                "64-byte signature",
            ),
            _ => {
                let other = sample_hash(
                    self.chain.chain_id,
                    self.chain.contract,
                    unit,
                    epoch + 1,
                    digest,
                );
                (
                    self.sign(own, other).to_vec(),
                    None,
                    "signature over another hash",
                )
            }
        };
        let checked = self.rng.below(64) as u32;
        let mut next = self.model.clone();
        let expect = next.attest(self.now(), from, unit, epoch, digest, checked, &sig, signer);
        let desc = format!(
            "({unit}, {epoch}) {} digest, {how}",
            if digest == real { "true" } else { "wrong" }
        );
        let data = Capacity::attestCall {
            unit,
            epoch,
            digest,
            checked,
            sampleSignature: sig.into(),
        }
        .abi_encode();
        self.send(
            Call::new("attest", from, 0, data, vec![(unit, epoch)], desc),
            next,
            expect,
        );
    }

    pub(super) fn op_report(&mut self) {
        self.tick();
        let (from, _) = self.verifier();
        let (unit, epoch) = self.verify_target();
        let (truth, widths): (Vec<Vec<u64>>, Vec<usize>) = self
            .model
            .ue
            .get(&(unit, epoch))
            .map(|u| (u.groups.clone(), u.widths.clone()))
            .unwrap_or_default();
        let all: Vec<u64> = truth.iter().flatten().copied().collect();
        let nonce = if self.rng.chance(75) && !all.is_empty() {
            self.rng.pick(&all)
        } else {
            let mut x = self.rng.below(40);
            while all.contains(&x) {
                x += 1;
            }
            x
        };
        let mut groups: Vec<Bytes> = truth
            .iter()
            .zip(&widths)
            .map(|(g, w)| Bytes::from(logged(*w, g)))
            .collect();
        let forged = if self.rng.chance(72) {
            "true evidence"
        } else {
            match self.rng.below(8) {
                0 => {
                    groups.pop();
                    "evidence without its last group"
                }
                1 if !groups.is_empty() => {
                    let g = self.rng.below(groups.len() as u64) as usize;
                    let mut b = groups[g].to_vec();
                    let at = self.rng.below(b.len() as u64) as usize;
                    b[at] ^= 1 << self.rng.below(8);
                    groups[g] = b.into();
                    "evidence with a flipped bit"
                }
                2 if groups.len() >= 2 => {
                    groups.swap(0, 1);
                    "evidence with two groups swapped"
                }
                3 => {
                    groups.push(Bytes::from(logged(8, &[nonce])));
                    "evidence with an extra group holding the nonce"
                }
                4 => {
                    let merged: Vec<u8> = groups.iter().flat_map(|g| g.to_vec()).collect();
                    groups = vec![merged.into()];
                    "evidence merged into one group"
                }
                5 => {
                    groups.insert(0, Bytes::from(vec![0u8; 7]));
                    "evidence with a 7-byte group first"
                }
                6 => {
                    groups.clear();
                    "no evidence"
                }
                _ => {
                    groups.reverse();
                    "evidence reversed"
                }
            }
        };
        let reason = if self.rng.chance(95) {
            self.rng.range(1, 2) as u8
        } else {
            self.rng.next_u64() as u8
        };
        let mut next = self.model.clone();
        let expect = next.report(self.now(), from, unit, epoch, nonce, reason, &groups);
        let desc = format!(
            "({unit}, {epoch}) nonce {nonce}{}, {forged}",
            if all.contains(&nonce) {
                " (submitted)"
            } else {
                " (never submitted)"
            }
        );
        let data = Capacity::reportInvalidCall {
            unit,
            epoch,
            nonce,
            reason,
            groups,
        }
        .abi_encode();
        self.send(
            Call::new("reportInvalid", from, 0, data, vec![(unit, epoch)], desc),
            next,
            expect,
        );
    }

    /// `enforceFailure` (by anyone) of a unit-epoch, mostly one with reports.
    pub(super) fn op_enforce(&mut self) {
        self.tick();
        let reported: Vec<(u32, u64)> = self
            .model
            .ue
            .iter()
            .filter(|(_, w)| !w.reports.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let (unit, epoch) = if !reported.is_empty() && self.rng.chance(80) {
            self.rng.pick(&reported)
        } else {
            self.verify_target()
        };
        let from = self.actors.providers[0];
        let mut next = self.model.clone();
        let expect = next.enforce_failure(unit, epoch);
        let data = Capacity::enforceFailureCall { unit, epoch }.abi_encode();
        self.send(
            Call::new(
                "enforceFailure",
                from,
                0,
                data,
                vec![(unit, epoch)],
                format!("({unit}, {epoch})"),
            ),
            next,
            expect,
        );
    }

    pub(super) fn op_abstain(&mut self) {
        self.tick();
        let (from, _) = self.verifier();
        let (unit, epoch) = self.verify_target();
        let reason = self.rng.range(1, 4) as u8;
        let next = self.model.clone();
        let expect = next.abstain(self.now(), from, unit, epoch, reason);
        let data = Capacity::abstainCall {
            unit,
            epoch,
            reason,
        }
        .abi_encode();
        self.send(
            Call::new(
                "abstain",
                from,
                0,
                data,
                vec![],
                format!("({unit}, {epoch}) reason {reason}"),
            ),
            next,
            expect,
        );
    }
}
