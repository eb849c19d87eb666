//! The checks after every step: the contract read back through its views and compared with the
//! model, and the invariants of the module documentation (balance, attested xor failed, no
//! slash without a submitted nonce, counts and digests, no reward without work, collateral flows).

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256, keccak256};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::{CapacityEvents as Ev, KindParams};

use super::NO_END;
use super::model::{Model, UnitEpochM, replay};
use super::sequence::{Last, Seq};

impl Seq<'_> {
    /// Reads the contract back and checks it against the model and the invariants. `prev` is the
    /// model before the last step.
    pub(super) fn check(&mut self, prev: &Model, last: &Last<'_>, targets: &[(u32, u64)]) {
        let now = self.now();
        let m = self.model.clone();
        let pool = self.chain.view(Capacity::rewardPoolCall {}).to::<u128>();
        if pool != m.pool {
            self.fail(&format!("rewardPool {pool}, model {}", m.pool));
        }
        let paused = self.chain.view(Capacity::pausedCall {});
        let quorum = self.chain.view(Capacity::quorumCall {});
        let count = self.chain.view(Capacity::verifierCountCall {});
        let guardian = self.chain.view(Capacity::guardianCall {});
        if paused != m.paused
            || quorum != m.quorum
            || count as usize != m.verifiers.len()
            || guardian != m.guardian
        {
            self.fail(&format!(
                "paused {paused}, quorum {quorum}, verifiers {count}, guardian {guardian}; model {}, {}, {}, {}",
                m.paused,
                m.quorum,
                m.verifiers.len(),
                m.guardian
            ));
        }

        // Operator keys: bound as the model says, offers as made.
        for op in self.actors.operators {
            let provider = self.chain.view(Capacity::operatorProviderCall(op));
            let host = self.chain.view(Capacity::operatorHostCall(op));
            let want = m.operators.get(&op).copied().unwrap_or_default();
            if (provider, host) != want {
                self.fail(&format!(
                    "operator {op}: provider {provider}, host {host}; model {want:?}"
                ));
            }
            for p in self.actors.providers {
                let offer = self
                    .chain
                    .view(Capacity::operatorOfferCall { _0: p, _1: op });
                let want = m.offers.get(&(p, op)).map_or(0, |h| u32::from(*h) + 1);
                if offer != want {
                    self.fail(&format!("operatorOffer({p}, {op}) = {offer}, model {want}"));
                }
            }
        }

        // Units, and invariant 1: the balance is the pool plus the collateral.
        let n = self.chain.view(Capacity::unitCountCall {});
        if n as usize != m.units.len() {
            self.fail(&format!("unitCount {n}, model {}", m.units.len()));
        }
        let mut collateral = Vec::with_capacity(n as usize);
        let mut infos = Vec::with_capacity(n as usize);
        for i in 0..n {
            let u = self.chain.view(Capacity::unitInfoCall { index: i });
            infos.push(u.clone());
            let w = &m.units[i as usize];
            if u.provider != w.provider
                || u.kind != w.kind
                || u.startEpoch != w.start
                || u.endEpoch != w.end
                || u.id != w.id
                || u.collateral.to::<u128>() != w.collateral
                || u.registeredCollateral.to::<u128>() != w.registered
                || u.claimedUpTo != w.claimed
                || u.host != w.host
            {
                self.fail(&format!("unitInfo({i}) = {u:?}, model {w:?}"));
            }
            collateral.push(u.collateral.to::<u128>());
        }
        // The many-unit view answers as the one-unit one, in the order asked (here reversed).
        let indices: Vec<u32> = (0..n).rev().collect();
        let many = self.chain.view(Capacity::unitInfosCall { indices });
        if !many.iter().eq(infos.iter().rev()) {
            self.fail(&format!(
                "unitInfos(all, reversed) = {many:?}, unitInfo each {infos:?}"
            ));
        }
        let mut ids: Vec<B256> = m.units.iter().map(|u| u.id).collect();
        ids.push(B256::repeat_byte(0xee)); // never registered
        let plus_one = self.chain.view(Capacity::unitIndicesOfCall { ids });
        let want: Vec<u32> = (1..=n).chain([0]).collect();
        if plus_one != want {
            self.fail(&format!(
                "unitIndicesOf(all, unknown) = {plus_one:?}, want {want:?}"
            ));
        }
        let balance = self.chain.balance(self.chain.contract);
        let backing = U256::from(pool) + U256::from(collateral.iter().sum::<u128>());
        if balance != backing {
            self.fail(&format!(
                "invariant 1: balance {balance} != rewardPool {pool} + collateral {collateral:?}"
            ));
        }

        if let Last::Success(op, events) = last {
            self.check_flows(prev, op, events, &collateral, pool);
        }

        for p in self.actors.providers {
            let owed = self.chain.view(Capacity::owedCall(p)).to::<u128>();
            if owed != m.owed.get(&p).copied().unwrap_or(0) {
                self.fail(&format!("owed({p}) = {owed}, model {:?}", m.owed.get(&p)));
            }
        }

        // Unit-epochs: invariants 2, 4, 5; and the earnings bound of invariant 6.
        let mut keys: BTreeSet<(u32, u64)> = m.ue.keys().copied().collect();
        keys.extend(targets.iter().copied());
        for _ in 0..2 {
            let unit = self.rng.below(m.units.len() as u64 + 1) as u32;
            let epoch = self.rng.below(m.current(now) + 2);
            keys.insert((unit, epoch));
        }
        let mut earned: BTreeMap<Address, u128> = BTreeMap::new();
        let empty = UnitEpochM::default();
        let mut counts: BTreeMap<u64, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
        for (unit, epoch) in keys {
            let r = self.chain.view(Capacity::unitEpochCall { unit, epoch });
            let c = counts.entry(epoch).or_default();
            c.0.push(unit);
            c.1.push(r.count);
            let w = m.ue.get(&(unit, epoch)).unwrap_or(&empty);
            let at = format!("unit-epoch ({unit}, {epoch}): {r:?}");
            if r.isAttested && r.failed {
                self.fail(&format!("invariant 2: {at} is both attested and failed"));
            }
            // While the unit's proof slot holds the epoch, its count is its logs'; after, the
            // count its votes recorded.
            let holds = m.slot_holds(unit, epoch);
            if !holds && !w.groups.is_empty() {
                self.stats.milestone("proof slot reused by a later epoch");
            }
            let logged: usize = w.groups.iter().map(Vec::len).sum();
            if holds && r.count as usize != logged {
                self.fail(&format!(
                    "invariant 4: {at} counts {} but its logs hold {logged} nonces",
                    r.count
                ));
            }
            if r.count > 0 {
                let (Some(u), Some(ep)) = (m.units.get(unit as usize), m.epochs.get(&epoch)) else {
                    self.fail(&format!(
                        "{at}: proofs of an unknown unit or an unseeded epoch"
                    ));
                };
                let max = ep.params[u.kind as usize].maxProofs;
                if r.count > max {
                    self.fail(&format!(
                        "invariant 4: {at} counts {} > maxProofs {max}",
                        r.count
                    ));
                }
            }
            let replayed = replay(&w.groups, &w.widths);
            if holds && r.digest != replayed {
                self.fail(&format!(
                    "invariant 5: {at} digest != replay of its logs {replayed}"
                ));
            }
            let (count, last, digest, groups) = m.slot_view(unit, epoch);
            if r.count != count
                || r.lastNonce != last
                || r.digest != digest
                || r.attestations as usize != w.attesters.len()
                || r.reports as usize != w.reports.len()
                || r.groups as usize != groups
                || r.isAttested != m.is_attested(w, epoch)
                || r.failed != m.is_failed(w, epoch)
            {
                self.fail(&format!(
                    "{at}, model {w:?}, slot view {:?}",
                    (count, last, digest, groups)
                ));
            }
            if let (Some(u), Some(ep)) = (m.units.get(unit as usize), m.epochs.get(&epoch)) {
                let p = &ep.params[u.kind as usize];
                if r.isAttested
                    && !r.failed
                    && r.count > 0
                    && r.count >= p.minProofs
                    && u128::from(now) >= m.settle(epoch)
                {
                    *earned.entry(u.provider).or_default() += p.reward;
                }
            }
        }
        for (epoch, (indices, want)) in counts {
            let many = self.chain.view(Capacity::unitEpochCountsCall {
                indices: indices.clone(),
                epoch,
            });
            if many != want {
                self.fail(&format!(
                    "unitEpochCounts({indices:?}, {epoch}) = {many:?}, unitEpoch each {want:?}"
                ));
            }
        }
        // Invariant 6: no reward without work.
        for p in self.actors.providers {
            let paid = m.paid.get(&p).copied().unwrap_or(0);
            let owed = m.owed.get(&p).copied().unwrap_or(0);
            let earned = earned.get(&p).copied().unwrap_or(0);
            if paid + owed > earned {
                self.fail(&format!(
                    "invariant 6: provider {p} was paid {paid} and is owed {owed}, but earned only {earned}"
                ));
            }
        }

        // Epoch parameters: one seeded epoch, and the next one.
        if !m.epochs.is_empty() {
            let seeded: Vec<u64> = m.epochs.keys().copied().collect();
            let e = self.rng.pick(&seeded);
            self.check_epoch(e);
        }
        let next = m.current(now) + 1;
        if !m.epochs.contains_key(&next) {
            let info = self.chain.view(Capacity::epochInfoCall { e: next });
            let want = m.params_for(next);
            if info.seed != B256::ZERO || !info_matches(&info, &want) {
                self.fail(&format!(
                    "epochInfo({next}) = {info:?}, model parameters {want:?}"
                ));
            }
        }

        // What a claim would pay, for a unit.
        if !m.units.is_empty() {
            let unit = self.rng.below(m.units.len() as u64) as u32;
            let to = if self.rng.chance(70) {
                m.current(now)
            } else {
                self.rng.below(m.current(now) + 3)
            };
            let r = self
                .chain
                .view(Capacity::claimableCall { unit, toEpoch: to });
            let (amount, next) = m.walk(unit as usize, to, now);
            if r.amount != U256::from(amount) || r.nextEpoch != next {
                self.fail(&format!(
                    "claimable({unit}, {to}) = {r:?}, model ({amount}, {next})"
                ));
            }
            let indices: Vec<u32> = (0..m.units.len() as u32).collect();
            let many = self.chain.view(Capacity::claimablesCall {
                indices: indices.clone(),
                toEpoch: to,
            });
            let want: Vec<U256> = indices
                .iter()
                .map(|&i| U256::from(m.walk(i as usize, to, now).0))
                .collect();
            if many != want {
                self.fail(&format!("claimables(all, {to}) = {many:?}, model {want:?}"));
            }
        }

        let governance = matches!(
            last,
            Last::Restored | Last::Success("execute" | "schedule" | "cancel", _)
        );
        if governance {
            for i in 0..self.actors.verifiers.len() {
                let v = self.actors.verifier(i);
                let is = self.chain.view(Capacity::isVerifierCall(v));
                if is != m.verifiers.contains(&v) {
                    self.fail(&format!("isVerifier({v}) = {is}, model {}", !is));
                }
            }
            for data in &m.known_calls {
                let id = keccak256(data);
                let at = self.chain.view(Capacity::scheduledAtCall(id));
                let want = m.scheduled.get(&id).map_or(0, |(eta, _)| *eta);
                if at != U256::from(want) {
                    self.fail(&format!("scheduledAt({id}) = {at}, model {want}"));
                }
            }
        }
        for &(unit, epoch) in targets {
            if let Some(w) = m.ue.get(&(unit, epoch)) {
                for i in 0..self.actors.verifiers.len() {
                    let v = self.actors.verifier(i);
                    let has = self
                        .chain
                        .view(Capacity::hasAttestedCall { unit, epoch, v });
                    if has != w.attesters.contains(&v) {
                        self.fail(&format!(
                            "hasAttested({unit}, {epoch}, {v}) = {has}, model {:?}",
                            w.attesters
                        ));
                    }
                }
            }
        }
    }

    /// Invariants 3 and 7, on the logs of a successful call: failures come from reports of
    /// submitted nonces, and collateral moves only by withdrawals, slashes (into the pool) and
    /// top-ups.
    pub(super) fn check_flows(
        &self,
        prev: &Model,
        op: &str,
        events: &[Ev],
        collateral: &[u128],
        pool: u128,
    ) {
        let now = self.now();
        let mut slashed_total = 0u128;
        for e in events {
            let Ev::UnitEpochFailed(f) = e else { continue };
            slashed_total += f.slashed.to::<u128>();
            let (submitted, earlier): (BTreeSet<u64>, Vec<u64>) = prev
                .ue
                .get(&(f.unit, f.epoch))
                .map(|u| {
                    let submitted = u.groups.iter().flatten().copied().collect();
                    (submitted, u.reports.values().copied().collect())
                })
                .unwrap_or_default();
            let now_reported: Vec<u64> = events
                .iter()
                .filter_map(|r| match r {
                    Ev::InvalidProofReported(r) if r.unit == f.unit && r.epoch == f.epoch => {
                        Some(r.nonce)
                    }
                    _ => None,
                })
                .collect();
            // The report that tipped the quorum, and every earlier one counted in it, named a
            // nonce of the unit-epoch's logs; and there were a quorum of them.
            // `enforceFailure` slashes on earlier reports alone, meeting the epoch's quorum.
            let all: Vec<u64> = earlier.iter().chain(&now_reported).copied().collect();
            let (tipped, quorum) = match op {
                "enforceFailure" => (true, prev.quorum_for(f.epoch)),
                _ => (!now_reported.is_empty(), prev.quorum),
            };
            if !tipped || all.iter().any(|n| !submitted.contains(n)) || (all.len() as u32) < quorum
            {
                self.fail(&format!(
                    "invariant 3: unit-epoch ({}, {}) failed by {op} on reports of nonces {all:?} (quorum {quorum}), its logs hold {submitted:?}",
                    f.unit, f.epoch
                ));
            }
        }
        for (i, before) in prev.units.iter().enumerate() {
            let after = collateral[i];
            let index = i as u32;
            if after < before.collateral {
                let withdrawn = events.iter().any(|e| matches!(e, Ev::CollateralWithdrawn(w) if w.index == index && w.amount == U256::from(before.collateral)));
                let retired_and_settled = before.end != NO_END
                    && (before.end <= before.start
                        || u128::from(now) >= prev.settle(before.end - 1));
                let by_withdrawal =
                    op == "withdrawCollateral" && withdrawn && after == 0 && retired_and_settled;
                let slash = before.collateral - after;
                let by_slash = (op == "reportInvalid" || op == "enforceFailure")
                    && events.iter().any(|e| matches!(e, Ev::UnitEpochFailed(f) if f.unit == index && f.slashed == U256::from(slash)));
                if !by_withdrawal && !by_slash {
                    self.fail(&format!(
                        "invariant 7: unit {i}'s collateral went from {} to {after} by {op} ({events:?})",
                        before.collateral
                    ));
                }
            } else if after > before.collateral {
                let topped = op == "topUp"
                    && events.iter().any(|e| matches!(e, Ev::CollateralToppedUp(t) if t.index == index && t.amount == U256::from(after - before.collateral)));
                if !topped {
                    self.fail(&format!(
                        "invariant 7: unit {i}'s collateral went up from {} to {after} by {op}",
                        before.collateral
                    ));
                }
            }
        }
        if (op == "reportInvalid" || op == "enforceFailure") && pool != prev.pool + slashed_total {
            self.fail(&format!(
                "invariant 7: the pool went from {} to {pool}, slashes were {slashed_total}",
                prev.pool
            ));
        }
    }

    /// `epochInfo(e)` of a seeded epoch against the model.
    pub(super) fn check_epoch(&mut self, e: u64) {
        let info = self.chain.view(Capacity::epochInfoCall { e });
        let ep = &self.model.epochs[&e];
        if info.seed != ep.seed || !info_matches(&info, &ep.params) {
            self.fail(&format!("epochInfo({e}) = {info:?}, model {ep:?}"));
        }
    }
}

/// Expected and actual events, with the fields the model does not track (parameter version
/// numbers) taken from the actual ones.
pub(super) fn same_events(expected: &[Ev], actual: &[Ev]) -> bool {
    expected.len() == actual.len()
        && expected.iter().zip(actual).all(|(e, a)| match (e, a) {
            (Ev::EpochStarted(e), Ev::EpochStarted(a)) => e.epoch == a.epoch && e.seed == a.seed,
            (Ev::KindParamsSet(e), Ev::KindParamsSet(a)) => {
                e.kind == a.kind && e.fromEpoch == a.fromEpoch && e.params == a.params
            }
            _ => e == a,
        })
}

pub(super) fn info_matches(info: &Capacity::epochInfoReturn, p: &[KindParams; 2]) -> bool {
    (0..2).all(|k| {
        info.targets[k] == p[k].target
            && info.minProofs[k] == p[k].minProofs
            && info.maxProofs[k] == p[k].maxProofs
            && info.rewards[k] == p[k].reward
            && info.challenges[k] == p[k].challenge
    })
}
