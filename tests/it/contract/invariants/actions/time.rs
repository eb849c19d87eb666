//! The clock and the chain: advancing epochs (fixing their seeds), time jumps, and reorgs (the
//! whole EVM state and the model are snapshotted before a few operations and restored after).

use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::sequence::{Call, Last, Seq};

impl Seq<'_> {
    pub(super) fn op_advance(&mut self) {
        self.tick();
        let from = self.any_actor();
        let mut next = self.model.clone();
        let expect = next.advance(self.now(), self.chain.block + 1);
        let cur = self.cur();
        let seeding = !self.model.epochs.contains_key(&cur);
        let data = Capacity::advanceEpochCall {}.abi_encode();
        if self
            .send(
                Call::new(
                    "advanceEpoch",
                    from,
                    0,
                    data,
                    vec![],
                    format!("epoch {cur}"),
                ),
                next,
                expect,
            )
            .is_some()
            && seeding
        {
            self.check_epoch(cur);
        }
    }

    pub(super) fn op_time_jump(&mut self) {
        self.stats.steps += 1;
        let now = self.now();
        let m = self.model.clone();
        let cur = m.current(now);
        let to: u64 = match self.rng.below(100) {
            0..40 => now + self.rng.range(1, 10),
            40..65 => (m.epoch_start(cur + 1) as u64) + self.rng.below(m.grace + 5),
            65..80 => {
                // Into the verification window of an epoch with proofs.
                let waiting: Vec<u64> =
                    m.ue.iter()
                        .filter(|(_, u)| !u.groups.is_empty())
                        .map(|(k, _)| k.1)
                        .filter(|&e| !m.window_closed(e, now))
                        .collect();
                match waiting.first() {
                    Some(&e) => (m.epoch_start(e + 1) as u64) + m.grace + self.rng.below(m.verify),
                    None => now + self.rng.range(1, m.dur),
                }
            }
            80..92 => {
                // Past the settlement of an epoch with proofs.
                let unsettled: Vec<u64> =
                    m.ue.keys()
                        .map(|k| k.1)
                        .filter(|&e| u128::from(now) < m.settle(e))
                        .collect();
                match unsettled.first() {
                    Some(&e) => (m.settle(e) as u64) + self.rng.below(5),
                    None => now + self.rng.range(1, m.dur),
                }
            }
            _ => now + self.rng.range(1, 3) * m.dur + self.rng.below(m.verify + m.grace + 1),
        };
        let to = to.max(now);
        self.history.push(format!(
            "t={now} time jump to {to} (epoch {})",
            m.current(to)
        ));
        self.chain.block += (to - now) / 12;
        self.chain.time = to;
        let stats = self.stats.ops.entry("timeJump").or_default();
        stats.ok += 1;
        let prev = self.model.clone();
        self.check(&prev, &Last::Nothing, &[]);
    }

    pub(super) fn op_reorg(&mut self) {
        if self.in_reorg {
            return self.op_time_jump();
        }
        self.stats.steps += 1;
        let db = self.chain.evm.ctx.journaled_state.database.clone();
        let (time, block, model) = (self.chain.time, self.chain.block, self.model.clone());
        let k = self.rng.range(1, 5);
        self.history
            .push(format!("t={time} reorg: snapshot, then {k} operations"));
        self.in_reorg = true;
        for _ in 0..k {
            self.random_op();
        }
        self.in_reorg = false;
        self.chain.evm.ctx.journaled_state.database = db;
        self.chain.time = time;
        self.chain.block = block;
        let dropped = std::mem::replace(&mut self.model, model);
        self.history
            .push(format!("t={} reorg: restored", self.chain.time));
        self.stats.ops.entry("reorg").or_default().ok += 1;
        self.check(&dropped, &Last::Restored, &[]);
    }
}
