//! Operator keys and hosts: offers (some by strangers), acceptances (some of no offer, some of a
//! key bound elsewhere), revocations, releases and unit assignments.

use alloy::primitives::Address;
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::sequence::{Call, Seq};

impl Seq<'_> {
    pub(super) fn op_hosts(&mut self) {
        self.tick();
        let operators = self.actors.operators;
        let mut key = self.rng.pick(&operators);
        let host = self.rng.below(3) as u16;
        let offers: Vec<(Address, Address)> = self.model.offers.keys().copied().collect();
        let bound: Vec<Address> = self.model.operators.keys().copied().collect();
        let step = if !offers.is_empty() && self.rng.chance(50) {
            // Mostly an offer made: its key accepts it.
            key = self.rng.pick(&offers).1;
            40
        } else if !bound.is_empty() && self.rng.chance(30) {
            // A bound key: revoked by its provider, or released by itself.
            key = self.rng.pick(&bound);
            if self.rng.chance(60) { 65 } else { 77 }
        } else {
            self.rng.below(100)
        };
        match step {
            0..35 => {
                let from = self.prover();
                let to = if self.rng.chance(95) {
                    key
                } else {
                    self.any_actor()
                };
                let mut next = self.model.clone();
                let expect = next.offer_operator(from, to, host);
                let data = Capacity::authorizeOperatorCall { operator: to, host }.abi_encode();
                let desc = format!("offer {to} host {host}");
                self.send(
                    Call::new("authorizeOperator", from, 0, data, vec![], desc),
                    next,
                    expect,
                );
            }
            35..65 => {
                // Mostly a provider that made this key an offer.
                let offered: Vec<Address> = self
                    .model
                    .offers
                    .keys()
                    .filter(|(_, k)| *k == key)
                    .map(|(p, _)| *p)
                    .collect();
                let provider = if !offered.is_empty() && self.rng.chance(80) {
                    self.rng.pick(&offered)
                } else {
                    self.provider()
                };
                let mut next = self.model.clone();
                let expect = next.accept_operator(key, provider);
                let data = Capacity::acceptOperatorCall { provider }.abi_encode();
                self.send(
                    Call::new(
                        "acceptOperator",
                        key,
                        0,
                        data,
                        vec![],
                        format!("of {provider}"),
                    ),
                    next,
                    expect,
                );
            }
            65..77 => {
                let from = match self.model.operators.get(&key) {
                    Some((p, _)) if self.rng.chance(80) => *p,
                    _ => self.provider(),
                };
                let mut next = self.model.clone();
                let expect = next.revoke_operator(from, key);
                let data = Capacity::revokeOperatorCall { operator: key }.abi_encode();
                self.send(
                    Call::new("revokeOperator", from, 0, data, vec![], format!("{key}")),
                    next,
                    expect,
                );
            }
            77..85 => {
                let mut next = self.model.clone();
                let expect = next.release_operator(key);
                let data = Capacity::releaseOperatorCall {}.abi_encode();
                self.send(
                    Call::new("releaseOperator", key, 0, data, vec![], String::new()),
                    next,
                    expect,
                );
            }
            _ => {
                let from = self.prover();
                let mut indices: Vec<u32> = self
                    .units_of(from)
                    .into_iter()
                    .filter(|_| self.rng.chance(50))
                    .collect();
                if self.rng.chance(5) {
                    indices.push(self.model.units.len() as u32);
                }
                let mut next = self.model.clone();
                let expect = next.assign_units(from, &indices, host);
                let desc = format!("{indices:?} to host {host}");
                let data = Capacity::assignUnitsCall { indices, host }.abi_encode();
                self.send(
                    Call::new("assignUnits", from, 0, data, vec![], desc),
                    next,
                    expect,
                );
            }
        }
    }
}
