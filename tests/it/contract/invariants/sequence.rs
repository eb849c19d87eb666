//! One sequence's state (the chain, the model, the history) and how it sends a call: the outcome
//! is compared with the model's prediction (events or revert reason, ether moved), then the
//! contract is read back and checked.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolEventInterface, SolInterface};
use capminer_chain::bindings::Capacity::{CapacityErrors, CapacityEvents as Ev};

use super::actors::Actors;
use super::checks::same_events;
use super::model::{Expect, Model};
use super::names::{event_name, revert_name, short};
use super::stats::Stats;
use crate::common::Rng;
use crate::contract::revm::{Chain, Outcome};
use revm::primitives::TxKind;

/// The last step, for the checks that compare before and after.
pub(super) enum Last<'e> {
    /// No state change expected: a reverted call or a time jump.
    Nothing,
    /// The state was restored from a snapshot.
    Restored,
    /// A call succeeded with these events.
    Success(&'static str, &'e [Ev]),
}

pub(super) struct Seq<'a> {
    pub(super) seed: u64,
    pub(super) rng: Rng,
    pub(super) chain: Chain,
    pub(super) model: Model,
    pub(super) actors: &'a Actors,
    pub(super) sigs: &'a mut HashMap<(Address, B256), [u8; 65]>,
    pub(super) stats: &'a mut Stats,
    pub(super) history: Vec<String>,
    pub(super) in_reorg: bool,
}

pub(super) struct Call {
    pub(super) op: &'static str,
    pub(super) from: Address,
    pub(super) value: u128,
    pub(super) data: Vec<u8>,
    /// Unit-epochs the call aims at, read back after it.
    pub(super) targets: Vec<(u32, u64)>,
    pub(super) desc: String,
}

impl Call {
    pub(super) fn new(
        op: &'static str,
        from: Address,
        value: u128,
        data: Vec<u8>,
        targets: Vec<(u32, u64)>,
        desc: String,
    ) -> Self {
        Self {
            op,
            from,
            value,
            data,
            targets,
            desc,
        }
    }
}

impl Seq<'_> {
    pub(super) fn fail(&self, what: &str) -> ! {
        let start = self.history.len().saturating_sub(80);
        let mut msg = format!(
            "contract invariant broken (sequence seed {seed}; replay with CAPMINER_FUZZ_SEED={seed} CAPMINER_FUZZ_SEQUENCES=1)\n{what}\nat t={} (genesis {}, epoch {}), block {}\noperations:\n",
            self.chain.time,
            self.model.genesis,
            self.model.current(self.chain.time),
            self.chain.block,
            seed = self.seed,
        );
        for (i, h) in self.history.iter().enumerate().skip(start) {
            msg.push_str(&format!("  {i:3}: {h}\n"));
        }
        panic!("{msg}");
    }

    pub(super) fn now(&self) -> u64 {
        self.chain.time
    }

    pub(super) fn cur(&self) -> u64 {
        self.model.current(self.chain.time)
    }

    pub(super) fn sign(&mut self, key: usize, hash: B256) -> [u8; 65] {
        let signer = &self.actors.verifiers[key];
        *self
            .sigs
            .entry((signer.address(), hash))
            .or_insert_with(|| signer.sign_hash_sync(&hash).expect("signing").as_bytes())
    }

    pub(super) fn balances(&self) -> Vec<U256> {
        let mut v: Vec<U256> = self
            .actors
            .all
            .iter()
            .map(|a| self.chain.balance(*a))
            .collect();
        v.push(self.chain.balance(self.chain.contract));
        v
    }

    /// Sends `call`; `next` and `expect` are the model's prediction. Returns the call's output
    /// if it succeeded.
    pub(super) fn send(&mut self, call: Call, next: Model, expect: Expect) -> Option<Bytes> {
        self.stats.steps += 1;
        self.history.push(format!(
            "t={} {} from {}: {}",
            self.now(),
            call.op,
            short(call.from),
            call.desc
        ));
        let before = self.balances();
        let to = TxKind::Call(self.chain.contract);
        let outcome = self.chain.send(call.from, to, call.value, call.data);
        let tag = match &outcome {
            Outcome::Success { logs, .. } => format!(" -> ok, {} logs", logs.len()),
            Outcome::Revert(data) => format!(" -> {}", revert_name(data)),
        };
        if let Some(h) = self.history.last_mut() {
            h.push_str(&tag);
        }
        match (expect, outcome) {
            (Ok(expected), Outcome::Success { logs, output }) => {
                let mut events = Vec::new();
                for log in &logs {
                    if log.address != self.chain.contract {
                        self.fail(&format!("log from {} instead of the contract", log.address));
                    }
                    match Ev::decode_log(log) {
                        Ok(ev) => events.push(ev.data),
                        Err(e) => self.fail(&format!("undecodable log {log:?}: {e}")),
                    }
                }
                if !same_events(&expected, &events) {
                    self.fail(&format!("{} succeeded with events\n  {events:?}\nbut the model expects\n  {expected:?}", call.op));
                }
                // Ether: only the sender and the contract move, by the value and what was paid.
                let received: u128 = events
                    .iter()
                    .map(|e| match e {
                        Ev::RewardsClaimed(c) => c.amount.to::<u128>(),
                        Ev::CollateralWithdrawn(c) => c.amount.to::<u128>(),
                        _ => 0,
                    })
                    .sum();
                let after = self.balances();
                let mut want = before.clone();
                let sender = self
                    .actors
                    .all
                    .iter()
                    .position(|a| *a == call.from)
                    .expect("actor");
                want[sender] = want[sender] - U256::from(call.value) + U256::from(received);
                let c = want.len() - 1;
                want[c] = want[c] + U256::from(call.value) - U256::from(received);
                if after != want {
                    self.fail(&format!(
                        "balances after {}: {after:?}, expected {want:?}",
                        call.op
                    ));
                }
                self.stats.ok(call.op);
                for e in &events {
                    *self.stats.events.entry(event_name(e)).or_default() += 1;
                    match e {
                        Ev::RewardsClaimed(c) if !c.amount.is_zero() => {
                            self.stats.milestone("claim paid")
                        }
                        Ev::RewardsOwed(_) => self.stats.milestone("claim owed"),
                        Ev::CollateralWithdrawn(c) if !c.amount.is_zero() => {
                            self.stats.milestone("collateral withdrawn")
                        }
                        Ev::UnitEpochFailed(c) if !c.slashed.is_zero() => {
                            self.stats.milestone("slash")
                        }
                        Ev::UnitEpochAttested(_) => self.stats.milestone("unit-epoch attested"),
                        Ev::ProofsAccepted(_) if self.model.operators.contains_key(&call.from) => {
                            self.stats.milestone("proofs by an operator key")
                        }
                        Ev::UnitEpochFailed(_) if call.op == "enforceFailure" => {
                            self.stats.milestone("failure enforced")
                        }
                        _ => {}
                    }
                }
                let prev = std::mem::replace(&mut self.model, next);
                self.check(&prev, &Last::Success(call.op, &events), &call.targets);
                Some(output)
            }
            (Err(name), Outcome::Revert(data)) => {
                let actual = revert_name(&data);
                if actual != name {
                    self.fail(&format!(
                        "{} reverted with {actual} ({:?}), the model expects {name}",
                        call.op,
                        CapacityErrors::abi_decode(&data).ok()
                    ));
                }
                if self.balances() != before {
                    self.fail("balances changed by a reverted call");
                }
                self.stats.reverted(call.op, name);
                let prev = self.model.clone();
                self.check(&prev, &Last::Nothing, &call.targets);
                None
            }
            (Ok(expected), Outcome::Revert(data)) => self.fail(&format!(
                "{} reverted with {} ({:?}), the model expects success with {expected:?}",
                call.op,
                revert_name(&data),
                CapacityErrors::abi_decode(&data).ok()
            )),
            (Err(name), Outcome::Success { logs, .. }) => self.fail(&format!(
                "{} succeeded ({} logs), the model expects a revert with {name}",
                call.op,
                logs.len()
            )),
        }
    }
}
