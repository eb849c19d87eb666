//! Operations on units: registrations (foreign ids, duplicates, wrong collateral), top-ups,
//! retirements and collateral withdrawals.

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;

use crate::contract::invariants::NO_END;
use crate::contract::invariants::names::short_bytes;
use crate::contract::invariants::sequence::{Call, Seq};

impl Seq<'_> {
    pub(super) fn op_register(&mut self) {
        self.tick();
        let from = self.provider();
        let k = self.rng.range(1, 3);
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        for _ in 0..k {
            let holder = if self.rng.chance(92) {
                from
            } else {
                self.any_actor()
            };
            let mut id = [0u8; 32];
            id[..20].copy_from_slice(holder.as_slice());
            id[31] = self.rng.below(10) as u8; // few suffixes: duplicates happen
            ids.push(B256::from(id));
            kinds.push(if self.rng.chance(97) {
                self.rng.below(2) as u8
            } else {
                self.rng.range(2, 255) as u8
            });
        }
        if self.rng.chance(3) {
            kinds.push(0);
        } else if self.rng.chance(2) {
            ids.clear();
            kinds.clear();
        }
        let p = self.model.params_for(self.cur() + 1);
        let expected: u128 = kinds
            .iter()
            .filter(|&&k| k < 2)
            .map(|&k| p[k as usize].collateral)
            .sum();
        let value = match self.rng.below(100) {
            0..88 => expected,
            88..94 => expected + 1 + u128::from(self.rng.below(1000)),
            _ => expected.saturating_sub(1),
        };
        let mut next = self.model.clone();
        let expect = next.register(self.now(), from, &ids, &kinds, value);
        let desc = format!(
            "ids {:?} kinds {kinds:?} value {value}",
            ids.iter()
                .map(|i| format!("{}..{:02x}", short_bytes(&i[..20]), i[31]))
                .collect::<Vec<_>>()
        );
        let data = Capacity::registerUnitsCall { ids, kinds }.abi_encode();
        self.send(
            Call::new("registerUnits", from, value, data, vec![], desc),
            next,
            expect,
        );
    }

    pub(super) fn op_top_up(&mut self) {
        self.tick();
        let slashed: Vec<Address> = self
            .model
            .units
            .iter()
            .filter(|u| u.collateral < u.registered)
            .map(|u| u.provider)
            .collect();
        let from = if !slashed.is_empty() && self.rng.chance(70) {
            self.rng.pick(&slashed)
        } else {
            self.prover()
        };
        let own = self.units_of(from);
        let short: Vec<u32> = own
            .iter()
            .copied()
            .filter(|&i| {
                self.model.units[i as usize].collateral < self.model.units[i as usize].registered
            })
            .collect();
        let index = if !short.is_empty() && self.rng.chance(70) {
            self.rng.pick(&short)
        } else if !own.is_empty() && self.rng.chance(85) {
            self.rng.pick(&own)
        } else {
            self.rng.below(self.model.units.len() as u64 + 1) as u32
        };
        let need = self
            .model
            .units
            .get(index as usize)
            .map_or(0, |u| u.registered - u.collateral);
        let value = match self.rng.below(100) {
            0..55 => need,
            55..75 if need > 1 => u128::from(
                self.rng
                    .range(1, (need - 1).min(u128::from(u64::MAX)) as u64),
            ),
            55..85 => 0,
            _ => need + 1,
        };
        let mut next = self.model.clone();
        let expect = next.top_up(from, index, value);
        let data = Capacity::topUpCall { index }.abi_encode();
        self.send(
            Call::new(
                "topUp",
                from,
                value,
                data,
                vec![],
                format!("unit {index} with {value} (short {need})"),
            ),
            next,
            expect,
        );
    }

    pub(super) fn op_retire(&mut self) {
        self.tick();
        let from = self.prover();
        let mut indices = self.some_units(from, |u| u.end == NO_END);
        if self.rng.chance(70) {
            indices.truncate(1);
        }
        let mut next = self.model.clone();
        let expect = next.retire(self.now(), from, &indices);
        let data = Capacity::retireUnitsCall {
            indices: indices.clone(),
        }
        .abi_encode();
        self.send(
            Call::new(
                "retireUnits",
                from,
                0,
                data,
                vec![],
                format!("units {indices:?}"),
            ),
            next,
            expect,
        );
    }

    pub(super) fn op_withdraw(&mut self) {
        self.tick();
        // Mostly the provider of a retired unit with collateral left.
        let retired: Vec<(Address, u64, u64)> = self
            .model
            .units
            .iter()
            .filter(|u| u.end != NO_END && u.registered > 0)
            .map(|u| (u.provider, u.start, u.end))
            .collect();
        let from = if !retired.is_empty() && self.rng.chance(70) {
            let (from, start, end) = self.rng.pick(&retired);
            // Sometimes wait until around the end of its lock: from the end of its last
            // epoch to a little after that epoch's settlement.
            let now = self.now();
            if end > start && self.rng.chance(50) {
                let lo = (self.model.epoch_start(end) as u64).max(now);
                let hi = self.model.settle(end - 1) as u64 + 3;
                if lo < hi {
                    let to = self.rng.range(lo, hi);
                    self.history.push(format!(
                        "t={now} wait until t={to}, near unit end {end}'s settlement"
                    ));
                    self.chain.block += (to - now) / 12;
                    self.chain.time = to;
                }
            }
            from
        } else {
            self.prover()
        };
        let now = self.now();
        let indices = self.some_units(from, |u| u.end != NO_END && u.registered > 0);
        let mut next = self.model.clone();
        let expect = next.withdraw(now, from, &indices);
        let data = Capacity::withdrawCollateralCall {
            indices: indices.clone(),
        }
        .abi_encode();
        self.send(
            Call::new(
                "withdrawCollateral",
                from,
                0,
                data,
                vec![],
                format!("units {indices:?}"),
            ),
            next,
            expect,
        );
    }
}
