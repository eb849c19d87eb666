//! Governance: timelocked scheduling, execution and cancellation of calls, and the guardian's
//! pause.

use alloy::primitives::{Address, B256, Bytes};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::b256;
use crate::contract::invariants::names::describe_call;
use crate::contract::invariants::sequence::{Call, Seq};

impl Seq<'_> {
    pub(super) fn op_schedule(&mut self) {
        self.tick();
        let from = if self.rng.chance(90) {
            self.actors.owner
        } else {
            self.any_actor()
        };
        let data = if self.rng.chance(20) && !self.model.known_calls.is_empty() {
            let known = self.model.known_calls.clone();
            known[self.rng.below(known.len() as u64) as usize].clone()
        } else {
            self.governance_call()
        };
        let mut next = self.model.clone();
        let expect = next.schedule(self.now(), from, &data);
        let desc = describe_call(&data);
        let call = Capacity::scheduleCall { data }.abi_encode();
        self.send(
            Call::new("schedule", from, 0, call, vec![], desc),
            next,
            expect,
        );
    }

    pub(super) fn op_execute(&mut self) {
        if self.model.scheduled.is_empty() && self.rng.chance(60) {
            return self.op_schedule();
        }
        let from = if self.rng.chance(92) {
            self.actors.owner
        } else {
            self.any_actor()
        };
        let pending: Vec<(u64, Bytes)> = self.model.scheduled.values().cloned().collect();
        let data = match self.rng.below(100) {
            0..80 if !pending.is_empty() => {
                let (eta, data) = pending[self.rng.below(pending.len() as u64) as usize].clone();
                // Mostly wait for the timelock first.
                if self.rng.chance(75) && eta > self.now() {
                    self.chain.time = eta + self.rng.below(3);
                }
                data
            }
            0..90 if !self.model.known_calls.is_empty() => {
                let known = self.model.known_calls.clone();
                known[self.rng.below(known.len() as u64) as usize].clone()
            }
            _ => self.governance_call(),
        };
        self.tick();
        let mut next = self.model.clone();
        let expect = next.execute(self.now(), from, &data);
        let desc = describe_call(&data);
        let call = Capacity::executeCall { data }.abi_encode();
        if self
            .send(
                Call::new("execute", from, 0, call, vec![], desc.clone()),
                next,
                expect,
            )
            .is_some()
        {
            let what = desc.split('(').next().unwrap_or_default().to_string();
            *self
                .stats
                .milestones
                .entry(match what.as_str() {
                    "setKindParams" => "executed setKindParams",
                    "addVerifier" => "executed addVerifier",
                    "removeVerifier" => "executed removeVerifier",
                    "setQuorum" => "executed setQuorum",
                    _ => "executed setGuardian",
                })
                .or_default() += 1;
        }
    }

    pub(super) fn op_cancel(&mut self) {
        self.tick();
        let from = if self.rng.chance(90) {
            self.actors.owner
        } else {
            self.any_actor()
        };
        let ids: Vec<B256> = self.model.scheduled.keys().copied().collect();
        let id = if !ids.is_empty() && self.rng.chance(80) {
            self.rng.pick(&ids)
        } else {
            b256(&mut self.rng)
        };
        let mut next = self.model.clone();
        let expect = next.cancel(from, id);
        let data = Capacity::cancelCall { id }.abi_encode();
        self.send(
            Call::new("cancel", from, 0, data, vec![], format!("{id}")),
            next,
            expect,
        );
    }

    pub(super) fn op_pause(&mut self) {
        self.tick();
        let from = if self.rng.chance(85) && self.model.guardian != Address::ZERO {
            self.model.guardian
        } else {
            self.any_actor()
        };
        let p = if self.model.paused {
            self.rng.chance(15)
        } else {
            self.rng.chance(60)
        };
        let mut next = self.model.clone();
        let expect = next.set_paused(from, p);
        let data = Capacity::setPausedCall { p }.abi_encode();
        self.send(
            Call::new("setPaused", from, 0, data, vec![], format!("{p}")),
            next,
            expect,
        );
    }
}
