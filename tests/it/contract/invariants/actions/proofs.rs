//! Proof batches: foreign units, stale and duplicate nonces, malformed packings, wrong seeds and
//! epochs.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::b256;
use crate::contract::invariants::model::submitted;
use crate::contract::invariants::sequence::{Call, Seq};

impl Seq<'_> {
    pub(super) fn op_submit(&mut self) {
        let cur = self.cur();
        if !self.model.epochs.contains_key(&cur) && self.rng.chance(80) {
            return self.op_advance();
        }
        self.tick();
        let cur = self.cur();
        // Honest batches: the current epoch, its seed, well-formed groups of the sender's
        // active units. The others may break any rule.
        let m = &self.model;
        let active: Vec<u32> = (0..m.units.len() as u32)
            .filter(|&i| {
                let u = &m.units[i as usize];
                u.start <= cur && cur < u.end && u.collateral >= u.registered
            })
            .collect();
        let honest = !active.is_empty() && self.rng.chance(55);
        let (from, epoch, own) = if honest {
            // The provider, or an operator key bound to the picked unit's host.
            let u = &self.model.units[self.rng.pick(&active) as usize];
            let hosts: Vec<Address> = self
                .model
                .operators
                .iter()
                .filter(|(_, bound)| **bound == (u.provider, u.host))
                .map(|(k, _)| *k)
                .collect();
            let from = if !hosts.is_empty() && self.rng.chance(40) {
                self.rng.pick(&hosts)
            } else {
                u.provider
            };
            let own: Vec<u32> = active
                .iter()
                .copied()
                .filter(|&i| self.model.may_submit(from, &self.model.units[i as usize]))
                .collect();
            (from, cur, own)
        } else {
            let from = self.prover();
            let epoch = match self.rng.below(100) {
                0..72 => cur,
                72..88 => cur.saturating_sub(1),
                _ => (cur + 1).saturating_sub(self.rng.below(5)),
            };
            (from, epoch, self.units_of(from))
        };
        let real = self.model.epochs.get(&epoch).map_or(B256::ZERO, |e| e.seed);
        let seed = if honest || self.rng.chance(92) {
            real
        } else {
            b256(&mut self.rng)
        };
        let mut packed = Vec::new();
        let groups = if self.rng.chance(4) {
            0
        } else {
            self.rng.range(1, 3)
        };
        let mut targets = Vec::new();
        let mut desc = format!(
            "epoch {epoch}{} groups",
            if seed == real { "" } else { " wrong seed," }
        );
        for _ in 0..groups {
            let unit = match self.rng.below(100) {
                _ if honest => self.rng.pick(&own),
                0..92 if !own.is_empty() => self.rng.pick(&own),
                0..97 => self.rng.below(self.model.units.len() as u64 + 1) as u32,
                _ => self.rng.next_u64() as u32,
            };
            let nonces = self.nonces(unit, epoch);
            desc.push_str(&format!(" [{unit}: {nonces:?}]"));
            targets.push((unit, epoch));
            let header_n = if !honest && self.rng.chance(3) {
                nonces.len() + 1
            } else {
                nonces.len()
            };
            packed.extend(submitted(unit, header_n, &nonces));
        }
        match self.rng.below(100) {
            _ if honest => {}
            0..4 if !packed.is_empty() => {
                let cut = self.rng.range(1, 7).min(packed.len() as u64) as usize;
                packed.truncate(packed.len() - cut);
                desc.push_str(&format!(" minus {cut} bytes"));
            }
            4..8 => {
                let extra = self.rng.range(1, 5) as usize;
                packed.extend((0..extra).map(|_| self.rng.next_u64() as u8));
                desc.push_str(&format!(" plus {extra} bytes"));
            }
            _ => {}
        }
        let mut next = self.model.clone();
        let prediction = next.submit(self.now(), from, epoch, seed, &packed);
        let (expect, counts) = match prediction {
            Ok((events, accepted, skipped)) => (Ok(events), Some((accepted, skipped))),
            Err(e) => (Err(e), None),
        };
        let data = Capacity::submitProofsCall {
            epoch,
            seed,
            packed: packed.into(),
        }
        .abi_encode();
        if let Some(out) = self.send(
            Call::new("submitProofs", from, 0, data, targets, desc),
            next,
            expect,
        ) {
            let r =
                Capacity::submitProofsCall::abi_decode_returns(&out).expect("submitProofs returns");
            let (accepted, skipped) = counts.expect("predicted success");
            if r.accepted != U256::from(accepted) || r.skipped != U256::from(skipped) {
                self.fail(&format!(
                    "submitProofs returned ({}, {}), model ({accepted}, {skipped})",
                    r.accepted, r.skipped
                ));
            }
        }
    }
}
