//! Money in and out of the reward pool: claims and pool funding.

use alloy::primitives::Address;
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::sequence::{Call, Seq};

impl Seq<'_> {
    /// Is there an attested unit-epoch nobody claimed yet?
    pub(super) fn unclaimed_rewards(&self) -> bool {
        let m = &self.model;
        m.ue.iter()
            .any(|((u, e), w)| m.is_attested(w, *e) && m.units[*u as usize].claimed <= *e)
    }

    pub(super) fn op_claim(&mut self) {
        self.tick();
        // Mostly the provider of an attested unit-epoch not claimed yet.
        let unclaimed: Vec<Address> = self
            .model
            .ue
            .iter()
            .filter(|((u, e), w)| {
                self.model.is_attested(w, *e) && self.model.units[*u as usize].claimed <= *e
            })
            .map(|((u, _), _)| self.model.units[*u as usize].provider)
            .collect();
        let from = if !unclaimed.is_empty() && self.rng.chance(60) {
            self.rng.pick(&unclaimed)
        } else {
            self.prover()
        };
        let own = self.units_of(from);
        // Mostly wait for an attested unit-epoch of the sender to settle.
        let now = self.now();
        let m = &self.model;
        let pending =
            m.ue.iter()
                .filter(|((u, e), w)| {
                    own.contains(u) && m.is_attested(w, *e) && u128::from(now) < m.settle(*e)
                })
                .map(|((_, e), _)| *e)
                .min();
        if let Some(e) = pending.filter(|_| self.rng.chance(70)) {
            let to = m.settle(e) as u64 + self.rng.below(5);
            self.history
                .push(format!("t={now} wait until t={to}, epoch {e}'s settlement"));
            self.chain.block += (to - now) / 12;
            self.chain.time = to;
        }
        let mut indices = Vec::new();
        let n = if self.rng.chance(8) {
            0
        } else {
            self.rng.range(1, 3)
        };
        for _ in 0..n {
            if self.rng.chance(90) && !own.is_empty() {
                indices.push(self.rng.pick(&own));
            } else {
                indices.push(self.rng.below(self.model.units.len() as u64 + 1) as u32);
            }
        }
        let cur = self.cur();
        let to = match self.rng.below(100) {
            0..55 => cur,
            55..70 => cur.saturating_sub(self.rng.range(1, 4)),
            70..82 => u64::MAX,
            _ => self.rng.below(cur + 5),
        };
        let mut next = self.model.clone();
        let expect = next.claim(self.now(), from, &indices, to);
        let data = Capacity::claimCall {
            unitIndices: indices.clone(),
            toEpoch: to,
        }
        .abi_encode();
        self.send(
            Call::new(
                "claim",
                from,
                0,
                data,
                vec![],
                format!("units {indices:?} to epoch {to}"),
            ),
            next,
            expect,
        );
    }

    pub(super) fn op_fund(&mut self) {
        self.tick();
        let from = self.any_actor();
        let value = match self.rng.below(100) {
            0..10 => 0,
            10..55 => u128::from(self.rng.range(1, 1_000_000_000)),
            _ => u128::from(self.rng.range(1, 1 << 50)),
        };
        let mut next = self.model.clone();
        let (data, expect, how) = match self.rng.below(100) {
            0..70 => (
                Capacity::fundPoolCall {}.abi_encode(),
                next.fund(from, value),
                "fundPool",
            ),
            70..94 => (Vec::new(), next.fund(from, value), "plain transfer"),
            _ => (
                vec![0xde, 0xad, 0xbe, 0xef],
                Err("<empty>"),
                "unknown selector",
            ),
        };
        self.send(
            Call::new(
                "fundPool",
                from,
                value,
                data,
                vec![],
                format!("{how} of {value}"),
            ),
            next,
            expect,
        );
    }
}
