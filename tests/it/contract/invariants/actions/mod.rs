//! The operations of a sequence, by family: each picks a call (mostly a sensible one, sometimes
//! a wrong one), asks the model for its prediction and sends it. [`Seq::random_op`] draws the
//! next operation.

mod governance;
mod hosts;
mod proofs;
mod rewards;
mod time;
mod units;
mod verification;

use crate::contract::invariants::sequence::Seq;

impl Seq<'_> {
    pub(super) fn random_op(&mut self) {
        const WEIGHTS: [(&str, u64); 19] = [
            ("registerUnits", 6),
            ("advanceEpoch", 6),
            ("submitProofs", 24),
            ("attest", 14),
            ("reportInvalid", 9),
            ("abstain", 2),
            ("enforceFailure", 2),
            ("hosts", 9),
            ("claim", 8),
            ("fundPool", 4),
            ("topUp", 3),
            ("retireUnits", 2),
            ("withdrawCollateral", 4),
            ("schedule", 5),
            ("execute", 5),
            ("cancel", 1),
            ("setPaused", 2),
            ("timeJump", 8),
            ("reorg", 3),
        ];
        let op = if self.model.units.is_empty() && self.rng.chance(40) {
            "registerUnits"
        } else if self.model.paused && self.rng.chance(20) {
            "setPaused"
        } else if self.unclaimed_rewards() && self.rng.chance(12) {
            "claim"
        } else if self.model.units.iter().any(|u| u.collateral < u.registered) && self.rng.chance(8)
        {
            "topUp"
        } else {
            let total: u64 = WEIGHTS.iter().map(|w| w.1).sum();
            let mut r = self.rng.below(total);
            let mut chosen = WEIGHTS[0].0;
            for (name, w) in WEIGHTS {
                if r < w {
                    chosen = name;
                    break;
                }
                r -= w;
            }
            chosen
        };
        let verifiable = self.model.ue.iter().any(|((_, e), w)| {
            !w.groups.is_empty() && u128::from(self.chain.time) < self.model.settle(*e)
        });
        let op = match op {
            "attest" | "reportInvalid" | "abstain" if !verifiable && self.rng.chance(70) => {
                "submitProofs"
            }
            op => op,
        };
        match op {
            "registerUnits" => self.op_register(),
            "advanceEpoch" => self.op_advance(),
            "submitProofs" => self.op_submit(),
            "attest" => self.op_attest(),
            "reportInvalid" => self.op_report(),
            "abstain" => self.op_abstain(),
            "enforceFailure" => self.op_enforce(),
            "hosts" => self.op_hosts(),
            "claim" => self.op_claim(),
            "fundPool" => self.op_fund(),
            "topUp" => self.op_top_up(),
            "retireUnits" => self.op_retire(),
            "withdrawCollateral" => self.op_withdraw(),
            "schedule" => self.op_schedule(),
            "execute" => self.op_execute(),
            "cancel" => self.op_cancel(),
            "setPaused" => self.op_pause(),
            "timeJump" => self.op_time_jump(),
            _ => self.op_reorg(),
        }
    }
}
