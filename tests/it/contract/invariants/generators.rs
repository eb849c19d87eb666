//! The random choices of a sequence: time passing, who acts (providers, verifiers, members or
//! not), which unit-epochs are verified, the nonces of a proof batch, which units a call names,
//! kind parameters and governance calls.

use alloy::primitives::{Address, B256, Bytes};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::KindParams;

use super::b256;
use super::model::UnitM;
use super::sequence::Seq;

impl Seq<'_> {
    /// Time passing between transactions.
    pub(super) fn tick(&mut self) {
        self.chain.time += self.rng.below(3);
    }

    pub(super) fn any_actor(&mut self) -> Address {
        let actors = self.actors;
        self.rng.pick(&actors.all)
    }

    pub(super) fn provider(&mut self) -> Address {
        if self.rng.chance(88) {
            let actors = self.actors;
            self.rng.pick(&actors.providers)
        } else {
            self.any_actor()
        }
    }

    /// A provider with units, mostly.
    pub(super) fn prover(&mut self) -> Address {
        let with: Vec<Address> = self
            .actors
            .providers
            .iter()
            .copied()
            .filter(|&p| self.model.units.iter().any(|u| u.provider == p))
            .collect();
        let bound: Vec<Address> = self.model.operators.keys().copied().collect();
        if !bound.is_empty() && self.rng.chance(20) {
            self.rng.pick(&bound)
        } else if !with.is_empty() && self.rng.chance(88) {
            self.rng.pick(&with)
        } else {
            self.provider()
        }
    }

    /// The units `who` may submit for: its own, or, for an operator key, its host's.
    pub(super) fn units_of(&self, who: Address) -> Vec<u32> {
        (0..self.model.units.len() as u32)
            .filter(|&i| self.model.may_submit(who, &self.model.units[i as usize]))
            .collect()
    }

    /// A verifier to act: mostly a member, sometimes a key not (or no longer) in the set,
    /// sometimes nobody's key. Returns its address and its key's index.
    pub(super) fn verifier(&mut self) -> (Address, Option<usize>) {
        let r = self.rng.below(100);
        let members: Vec<usize> = (0..self.actors.verifiers.len())
            .filter(|&i| self.model.verifiers.contains(&self.actors.verifier(i)))
            .collect();
        if r < 75 && !members.is_empty() {
            let i = self.rng.pick(&members);
            (self.actors.verifier(i), Some(i))
        } else if r < 90 {
            let i = self.rng.below(self.actors.verifiers.len() as u64) as usize;
            (self.actors.verifier(i), Some(i))
        } else {
            let others = [
                self.actors.owner,
                self.actors.outsider,
                self.actors.providers[0],
            ];
            (self.rng.pick(&others), None)
        }
    }

    /// Verifiers wait for work: when no unit-epoch with proofs is in its verification window,
    /// mostly wait until the earliest one is.
    pub(super) fn wait_for_verification(&mut self) {
        let now = self.now();
        let m = &self.model;
        let proved =
            m.ue.iter()
                .filter(|(_, u)| !u.groups.is_empty())
                .map(|(k, _)| k.1);
        if proved.clone().any(|e| m.verifying(e, now)) || !self.rng.chance(80) {
            return;
        }
        if let Some(e) = proved.filter(|&e| !m.window_closed(e, now)).min() {
            let opens = (m.epoch_start(e + 1) + u128::from(m.grace)) as u64;
            let to = opens + self.rng.below(m.verify);
            self.history.push(format!(
                "t={now} wait until t={to}, epoch {e}'s verification window"
            ));
            self.chain.block += (to - now) / 12;
            self.chain.time = to;
        }
    }

    /// A unit-epoch to verify: mostly one with proofs whose verification window is open.
    pub(super) fn verify_target(&mut self) -> (u32, u64) {
        self.wait_for_verification();
        let now = self.now();
        let with: Vec<(u32, u64)> = self
            .model
            .ue
            .iter()
            .filter(|(_, u)| !u.groups.is_empty())
            .map(|(k, _)| *k)
            .collect();
        let open: Vec<(u32, u64)> = with
            .iter()
            .copied()
            .filter(|&(_, e)| self.model.verifying(e, now))
            .collect();
        let r = self.rng.below(100);
        if r < 70 && !open.is_empty() {
            self.rng.pick(&open)
        } else if r < 88 && !with.is_empty() {
            self.rng.pick(&with)
        } else {
            let unit = self.rng.below(self.model.units.len() as u64 + 2) as u32;
            let epoch = self.cur().saturating_sub(self.rng.below(4));
            (unit, epoch)
        }
    }

    /// Nonces for a group of `unit` in `epoch`: mostly above the last accepted one, sometimes
    /// stale, duplicated, unordered or extreme, sometimes more than the maximum.
    pub(super) fn nonces(&mut self, unit: u32, epoch: u64) -> Vec<u64> {
        let base = self
            .model
            .ue
            .get(&(unit, epoch))
            .and_then(|u| u.last)
            .map_or(0, |l| l.saturating_add(1));
        // Groups of no nonce, or of nonces that do not strictly increase (a zero or an
        // overflowing delta), are malformed: the whole batch reverts.
        let n = if self.rng.chance(10) {
            self.rng.range(8, 24)
        } else if self.rng.chance(4) {
            0
        } else {
            self.rng.range(1, 7)
        };
        let mut v = Vec::new();
        match self.rng.below(100) {
            0..64 => {
                let mut x = if self.rng.chance(15) {
                    base.saturating_sub(self.rng.range(1, 3))
                } else {
                    base.saturating_add(self.rng.below(3))
                };
                for _ in 0..n {
                    v.push(x);
                    x = x.saturating_add(self.rng.range(1, 5));
                }
            }
            64..80 => {
                // Around the last accepted one: stale ones are skipped.
                for _ in 0..n {
                    v.push(base.saturating_sub(5).saturating_add(self.rng.below(15)));
                }
                v.sort_unstable();
                v.dedup();
            }
            80..96 => {
                let x = base.saturating_add(self.rng.below(3));
                for _ in 0..n {
                    v.push(if self.rng.chance(60) {
                        x
                    } else {
                        x.saturating_add(1)
                    });
                }
            }
            96..98 => {
                // Not increasing: malformed.
                for _ in 0..n {
                    v.push(self.rng.pick(&[0, 1, u64::MAX - 1, u64::MAX, 1 << 63]));
                }
            }
            _ => {
                // Extremes, increasing: eight-byte deltas.
                for _ in 0..n {
                    v.push(self.rng.pick(&[0, 1, u64::MAX - 1, u64::MAX, 1 << 63]));
                }
                v.sort_unstable();
                v.dedup();
            }
        }
        v
    }

    /// Up to three of the sender's units (preferring those `prefer` picks), sometimes foreign.
    pub(super) fn some_units(
        &mut self,
        from: Address,
        prefer: impl Fn(&UnitM) -> bool,
    ) -> Vec<u32> {
        let own = self.units_of(from);
        let preferred: Vec<u32> = own
            .iter()
            .copied()
            .filter(|&i| prefer(&self.model.units[i as usize]))
            .collect();
        let mut indices = Vec::new();
        let least = if self.rng.chance(5) { 0 } else { 1 };
        for _ in 0..self.rng.range(least, 3) {
            let r = self.rng.below(100);
            if r < 60 && !preferred.is_empty() {
                indices.push(self.rng.pick(&preferred));
            } else if r < 92 && !own.is_empty() {
                indices.push(self.rng.pick(&own));
            } else {
                indices.push(self.rng.below(self.model.units.len() as u64 + 1) as u32);
            }
        }
        indices
    }

    pub(super) fn random_params(&mut self) -> KindParams {
        let max = self.rng.range(1, 20) as u32;
        let mut p = KindParams {
            target: b256(&mut self.rng),
            minProofs: if self.rng.chance(80) {
                self.rng.below(u64::from(max.min(4)) + 1) as u32
            } else {
                self.rng.range(0, u64::from(max)) as u32
            },
            maxProofs: max,
            reward: if self.rng.chance(15) {
                0
            } else {
                u128::from(self.rng.range(1, 1_000_000_000_000_000))
            },
            collateral: if self.rng.chance(15) {
                0
            } else {
                u128::from(self.rng.range(1, 10_000_000_000_000_000))
            },
            challenge: b256(&mut self.rng),
        };
        if self.rng.chance(8) {
            match self.rng.below(3) {
                0 => p.maxProofs = 0,
                1 => p.minProofs = p.maxProofs + 1,
                _ => p.target = B256::ZERO,
            }
        }
        p
    }

    pub(super) fn governance_call(&mut self) -> Bytes {
        let nv = self.actors.verifiers.len() as u64;
        let data = match self.rng.below(100) {
            0..30 => {
                let kind = if self.rng.chance(95) {
                    self.rng.below(2) as u8
                } else {
                    2
                };
                let p = self.random_params();
                Capacity::setKindParamsCall { kind, p }.abi_encode()
            }
            30..48 => {
                let v = if self.rng.chance(5) {
                    Address::ZERO
                } else {
                    self.actors.verifier(self.rng.below(nv) as usize)
                };
                Capacity::addVerifierCall { v }.abi_encode()
            }
            48..63 => {
                let v = self.actors.verifier(self.rng.below(nv) as usize);
                Capacity::removeVerifierCall { v }.abi_encode()
            }
            63..80 => Capacity::setQuorumCall {
                q: self.rng.below(nv + 1) as u32,
            }
            .abi_encode(),
            80..93 => {
                let g = match self.rng.below(10) {
                    0 => Address::ZERO,
                    1..5 => self.actors.guardians[1],
                    _ => self.actors.guardians[0],
                };
                Capacity::setGuardianCall { g }.abi_encode()
            }
            93..97 => Capacity::setPausedCall { p: true }.abi_encode(),
            _ => vec![0x12, 0x34, 0x56],
        };
        data.into()
    }
}
