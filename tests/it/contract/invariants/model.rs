//! The model: what the contract must hold (units, unit-epochs, epochs, pool, governance), built
//! from the calls that succeeded, and the queries the predictions and checks ask of it (epoch
//! windows, parameters in force, what a claim earns).

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, Bytes, keccak256};
use capminer_chain::bindings::Capacity::{CapacityEvents as Ev, KindParams};

use super::NO_END;

#[derive(Debug, Clone)]
pub(super) struct UnitM {
    pub(super) provider: Address,
    pub(super) kind: u8,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) id: B256,
    pub(super) collateral: u128,
    pub(super) registered: u128,
    pub(super) claimed: u64,
    /// The provider's host whose operator keys submit for it.
    pub(super) host: u16,
}

#[derive(Debug, Clone, Default)]
pub(super) struct UnitEpochM {
    /// The accepted nonces of each `ProofsAccepted` log, in log order.
    pub(super) groups: Vec<Vec<u64>>,
    /// The delta width of each logged group (its submitted group's).
    pub(super) widths: Vec<usize>,
    pub(super) last: Option<u64>,
    pub(super) count: u32,
    pub(super) digest: B256,
    pub(super) attesters: BTreeSet<Address>,
    /// Slashed (final): reports met the quorum in force when one came, or `enforceFailure`.
    pub(super) failed: bool,
    /// One report per verifier: the nonce it named.
    pub(super) reports: BTreeMap<Address, u64>,
}

#[derive(Debug, Clone)]
pub(super) struct EpochM {
    pub(super) seed: B256,
    /// Checked equal to `epochInfo(e)` when the epoch was seeded, and again later.
    pub(super) params: [KindParams; 2],
}

/// What the contract must hold, built from the calls that succeeded.
#[derive(Debug, Clone)]
pub(super) struct Model {
    pub(super) chain_id: u64,
    pub(super) contract: Address,
    pub(super) owner: Address,
    pub(super) genesis: u64,
    pub(super) dur: u64,
    pub(super) grace: u64,
    pub(super) verify: u64,
    pub(super) delay: u64,
    pub(super) slash_bps: u128,
    pub(super) paused: bool,
    pub(super) guardian: Address,
    pub(super) verifiers: BTreeSet<Address>,
    pub(super) quorum: u32,
    /// Every quorum in force and since when: (time, quorum).
    pub(super) quorum_history: Vec<(u64, u32)>,
    pub(super) initial: [KindParams; 2],
    /// Executed `setKindParams`: (epoch it executed in, kind, parameters).
    pub(super) changes: Vec<(u64, u8, KindParams)>,
    pub(super) epochs: BTreeMap<u64, EpochM>,
    pub(super) units: Vec<UnitM>,
    pub(super) ids: BTreeSet<B256>,
    pub(super) ue: BTreeMap<(u32, u64), UnitEpochM>,
    pub(super) pool: u128,
    pub(super) owed: BTreeMap<Address, u128>,
    /// Sum of `RewardsClaimed` amounts per provider.
    pub(super) paid: BTreeMap<Address, u128>,
    pub(super) scheduled: BTreeMap<B256, (u64, Bytes)>,
    /// Every governance call ever scheduled (to schedule or execute again).
    pub(super) known_calls: Vec<Bytes>,
    /// Bound operator keys: key => (provider, host).
    pub(super) operators: BTreeMap<Address, (Address, u16)>,
    /// Offers not yet accepted: (provider, key) => host.
    pub(super) offers: BTreeMap<(Address, Address), u16>,
}

pub(super) type Expect = Result<Vec<Ev>, &'static str>;

/// A logged group: `uint8 w ‖ uint64 first ‖ w-byte deltas` (nonces strictly increasing, each
/// delta fitting `w` bytes).
pub(super) fn logged(w: usize, nonces: &[u64]) -> Vec<u8> {
    let mut out = vec![w as u8];
    out.extend(nonces[0].to_be_bytes());
    for p in nonces.windows(2) {
        out.extend(&(p[1] - p[0]).to_be_bytes()[8 - w..]);
    }
    out
}

/// The bytes of a submitted group of `header_n` nonces: unit, count, width, first, then the
/// deltas between `nonces`, wrapping (a decreasing pair gives a delta that overflows, an equal
/// pair a zero delta: both malformed), at the width of the largest.
pub(super) fn submitted(unit: u32, header_n: usize, nonces: &[u64]) -> Vec<u8> {
    let deltas: Vec<u64> = nonces.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
    let widest = deltas.iter().copied().max().unwrap_or(1).max(1);
    let w = 8 - widest.leading_zeros() as usize / 8;
    let mut out = unit.to_be_bytes().to_vec();
    out.extend((header_n as u16).to_be_bytes());
    out.push(w as u8);
    out.extend(nonces.first().copied().unwrap_or(0).to_be_bytes());
    for d in deltas {
        out.extend(&d.to_be_bytes()[8 - w..]);
    }
    out
}

pub(super) fn chain_digest(d: B256, group: &[u8]) -> B256 {
    let mut d = keccak256([d.as_slice(), group].concat());
    d.0[16..].fill(0);
    d
}

pub(super) fn replay(groups: &[Vec<u64>], widths: &[usize]) -> B256 {
    groups
        .iter()
        .zip(widths)
        .fold(B256::ZERO, |d, (g, w)| chain_digest(d, &logged(*w, g)))
}

pub(super) fn zero_params() -> KindParams {
    KindParams {
        target: B256::ZERO,
        minProofs: 0,
        maxProofs: 0,
        reward: 0,
        collateral: 0,
        challenge: B256::ZERO,
    }
}

/// `MAX_PROOFS_LIMIT` of the contract.
pub(super) const MAX_PROOFS_LIMIT: u32 = 32_768;
/// `MAX_GROUPS` of the contract.
pub(super) const MAX_GROUPS: usize = 256;

pub(super) fn bad_params(p: &KindParams) -> bool {
    p.maxProofs == 0
        || p.maxProofs > MAX_PROOFS_LIMIT
        || p.minProofs > p.maxProofs
        || p.target == B256::ZERO
        || p.collateral > (1u128 << 96) - 1
}

impl Model {
    /// `ringSlots` of the contract: proof slots per unit.
    pub(super) fn ring(&self) -> u64 {
        1 + (self.grace + self.verify).div_ceil(self.dur)
    }

    /// Whether unit `unit`'s proof slot still holds `epoch`: it accepted proofs then, and no
    /// later epoch of the same slot did since.
    pub(super) fn slot_holds(&self, unit: u32, epoch: u64) -> bool {
        let k = self.ring();
        let accepted = |e: u64| {
            self.ue
                .get(&(unit, e))
                .is_some_and(|w| !w.groups.is_empty())
        };
        accepted(epoch)
            && !self
                .ue
                .range((unit, epoch + 1)..=(unit, u64::MAX))
                .any(|((_, e), w)| e % k == epoch % k && !w.groups.is_empty())
    }

    /// `unitEpoch(unit, epoch)`'s count, last nonce, digest and groups: the proof slot's while
    /// it holds the epoch; after, the count its votes recorded and nothing else.
    pub(super) fn slot_view(&self, unit: u32, epoch: u64) -> (u32, u64, B256, usize) {
        let empty = UnitEpochM::default();
        let w = self.ue.get(&(unit, epoch)).unwrap_or(&empty);
        if self.slot_holds(unit, epoch) {
            (w.count, w.last.unwrap_or(0), w.digest, w.groups.len())
        } else if !w.attesters.is_empty() || !w.reports.is_empty() {
            (w.count, 0, B256::ZERO, 0)
        } else {
            (0, 0, B256::ZERO, 0)
        }
    }

    pub(super) fn current(&self, now: u64) -> u64 {
        (now - self.genesis) / self.dur
    }

    pub(super) fn epoch_start(&self, e: u64) -> u128 {
        u128::from(self.genesis) + u128::from(e) * u128::from(self.dur)
    }

    pub(super) fn settle(&self, e: u64) -> u128 {
        self.epoch_start(e)
            + u128::from(self.dur)
            + u128::from(self.grace)
            + u128::from(self.verify)
    }

    pub(super) fn window_closed(&self, e: u64, now: u64) -> bool {
        u128::from(now) >= self.epoch_start(e) + u128::from(self.dur) + u128::from(self.grace)
    }

    pub(super) fn verifying(&self, e: u64, now: u64) -> bool {
        self.window_closed(e, now) && u128::from(now) < self.settle(e)
    }

    /// The parameters epoch `e` runs under: the initial ones, changed by every `setKindParams`
    /// executed in an earlier epoch.
    pub(super) fn params_for(&self, e: u64) -> [KindParams; 2] {
        let mut p = self.initial.clone();
        for (at, kind, q) in &self.changes {
            if *at < e {
                p[*kind as usize] = q.clone();
            }
        }
        p
    }

    /// The quorum that judges epoch `e`: the one set before its settlement time (the current
    /// one until then).
    pub(super) fn quorum_for(&self, e: u64) -> u32 {
        let t = self.settle(e);
        self.quorum_history
            .iter()
            .rev()
            .find(|(since, _)| u128::from(*since) < t)
            .unwrap_or(&self.quorum_history[0])
            .1
    }

    /// Records a quorum taking force at `now` (one entry per time, the last one wins).
    pub(super) fn set_quorum(&mut self, now: u64, q: u32) {
        self.quorum = q;
        match self.quorum_history.last_mut() {
            Some(last) if last.0 == now => last.1 = q,
            _ => self.quorum_history.push((now, q)),
        }
    }

    /// Failed: slashed, or reports meet `quorum_for(e)`.
    pub(super) fn is_failed(&self, ue: &UnitEpochM, e: u64) -> bool {
        ue.failed || ue.reports.len() as u32 >= self.quorum_for(e)
    }

    /// Attested: attestations meet `quorum_for(e)`, and not failed.
    pub(super) fn is_attested(&self, ue: &UnitEpochM, e: u64) -> bool {
        !self.is_failed(ue, e) && ue.attesters.len() as u32 >= self.quorum_for(e)
    }

    pub(super) fn check_verifying(&self, e: u64, now: u64) -> Result<(), &'static str> {
        if !self.window_closed(e, now) {
            return Err("WindowOpen");
        }
        if u128::from(now) >= self.settle(e) {
            return Err("VerificationClosed");
        }
        Ok(())
    }

    /// May `from` submit for `unit`: its provider, or an operator of that provider bound to the
    /// unit's host.
    pub(super) fn may_submit(&self, from: Address, unit: &UnitM) -> bool {
        unit.provider == from || self.operators.get(&from) == Some(&(unit.provider, unit.host))
    }

    pub(super) fn owned(&self, index: u32, from: Address) -> Result<usize, &'static str> {
        let i = index as usize;
        if i >= self.units.len() {
            return Err("UnknownUnit");
        }
        if self.units[i].provider != from {
            return Err("NotUnitOwner");
        }
        Ok(i)
    }

    /// Is unit-epoch (`unit`, `e`) rewardable, going by the model?
    pub(super) fn rewardable(&self, unit: usize, e: u64) -> u128 {
        let Some(ep) = self.epochs.get(&e) else {
            return 0;
        };
        let Some(ue) = self.ue.get(&(unit as u32, e)) else {
            return 0;
        };
        let p = &ep.params[self.units[unit].kind as usize];
        if self.is_attested(ue, e) && ue.count >= p.minProofs && ue.count > 0 {
            p.reward
        } else {
            0
        }
    }

    /// What claiming `unit` up to `to` earns now, and the next epoch to claim.
    pub(super) fn walk(&self, unit: usize, to: u64, now: u64) -> (u128, u64) {
        let u = &self.units[unit];
        let last = if u.end == NO_END {
            to
        } else {
            (u.end - 1).min(to)
        };
        let mut e = u.claimed;
        let mut amount = 0;
        while e <= last && u128::from(now) >= self.settle(e) {
            amount += self.rewardable(unit, e);
            e += 1;
        }
        (amount, e)
    }
}
