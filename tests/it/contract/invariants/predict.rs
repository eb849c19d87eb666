//! The model's predictions, one per contract call: each applies the call to the model and returns
//! the events it must emit, or the name of the error it must revert with (the model is then
//! thrown away).

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{SolCall, SolInterface, SolValue};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::{CapacityCalls, CapacityEvents as Ev};

use super::model::{EpochM, Expect, MAX_GROUPS, Model, UnitM, bad_params, chain_digest, logged};
use super::{BPS, NO_END};

impl Model {
    pub(super) fn register(
        &mut self,
        now: u64,
        from: Address,
        ids: &[B256],
        kinds: &[u8],
        value: u128,
    ) -> Expect {
        if ids.len() != kinds.len() || ids.is_empty() {
            return Err("LengthMismatch");
        }
        let cur = self.current(now);
        let p = self.params_for(cur + 1);
        let mut expected = 0u128;
        for &k in kinds {
            if k >= 2 {
                return Err("UnknownKind");
            }
            expected += p[k as usize].collateral;
        }
        if value != expected {
            return Err("WrongCollateral");
        }
        let mut events = Vec::new();
        for (id, &kind) in ids.iter().zip(kinds) {
            if Address::from_slice(&id[..20]) != from {
                return Err("IdNotBound");
            }
            if !self.ids.insert(*id) {
                return Err("DuplicateUnit");
            }
            let c = p[kind as usize].collateral;
            self.units.push(UnitM {
                provider: from,
                kind,
                start: cur + 1,
                end: NO_END,
                id: *id,
                collateral: c,
                registered: c,
                claimed: cur + 1,
                host: 0,
            });
            events.push(Ev::UnitRegistered(Capacity::UnitRegistered {
                index: (self.units.len() - 1) as u32,
                id: *id,
                provider: from,
                kind,
                startEpoch: cur + 1,
            }));
        }
        Ok(events)
    }

    pub(super) fn advance(&mut self, now: u64, block: u64) -> Expect {
        let cur = self.current(now);
        if self.epochs.contains_key(&cur) {
            return Ok(Vec::new());
        }
        // revm's empty database answers BLOCKHASH(n) with keccak256 of n in decimal.
        let parent = keccak256((block - 1).to_string().as_bytes());
        let seed =
            keccak256((U256::from(self.chain_id), self.contract, cur, parent).abi_encode_params());
        let params = self.params_for(cur);
        self.epochs.insert(cur, EpochM { seed, params });
        Ok(vec![Ev::EpochStarted(Capacity::EpochStarted {
            epoch: cur,
            seed,
            version: 0, // not modelled: taken from the log
        })])
    }

    /// Returns the events and (accepted, skipped).
    pub(super) fn submit(
        &mut self,
        now: u64,
        from: Address,
        epoch: u64,
        seed: B256,
        packed: &[u8],
    ) -> Result<(Vec<Ev>, u64, u64), &'static str> {
        if self.paused {
            return Err("IsPaused");
        }
        let cur = self.current(now);
        if epoch != cur
            && !(epoch + 1 == cur
                && u128::from(now) < self.epoch_start(cur) + u128::from(self.grace))
        {
            return Err("EpochClosed");
        }
        let Some(ep) = self.epochs.get(&epoch) else {
            return Err("EpochNotSeeded");
        };
        if ep.seed != seed {
            return Err("SeedMismatch");
        }
        let max = [ep.params[0].maxProofs, ep.params[1].maxProofs];
        let (mut accepted, mut skipped) = (0u64, 0u64);
        let mut events = Vec::new();
        let mut off = 0usize;
        while off < packed.len() {
            if off + 15 > packed.len() {
                return Err("MalformedBatch");
            }
            let unit = u32::from_be_bytes(packed[off..off + 4].try_into().unwrap());
            let n = u16::from_be_bytes(packed[off + 4..off + 6].try_into().unwrap()) as usize;
            let w = packed[off + 6] as usize;
            if n == 0 || w == 0 || w > 8 {
                return Err("MalformedBatch");
            }
            let next = off + 15 + (n - 1) * w;
            if next > packed.len() {
                return Err("MalformedBatch");
            }
            let i = unit as usize;
            if i >= self.units.len() {
                return Err("UnknownUnit");
            }
            let u = &self.units[i];
            if !self.may_submit(from, u) {
                return Err("NotUnitOwner");
            }
            if epoch < u.start || epoch >= u.end || u.collateral < u.registered {
                skipped += n as u64;
                off = next;
                continue;
            }
            let max = max[u.kind as usize];
            let mut ue = self.ue.get(&(unit, epoch)).cloned().unwrap_or_default();
            if ue.groups.len() >= MAX_GROUPS {
                skipped += n as u64;
                off = next;
                continue;
            }
            let mut count = ue.count;
            let mut floor: u128 = ue.last.map_or(0, |l| u128::from(l) + 1);
            let mut took = Vec::new();
            let mut nonce = u128::from(u64::from_be_bytes(
                packed[off + 7..off + 15].try_into().unwrap(),
            ));
            for k in 0..n {
                if k > 0 {
                    let at = off + 15 + (k - 1) * w;
                    let mut be = [0u8; 8];
                    be[8 - w..].copy_from_slice(&packed[at..at + w]);
                    let delta = u128::from(u64::from_be_bytes(be));
                    nonce += delta;
                    if delta == 0 || nonce > u128::from(u64::MAX) {
                        return Err("MalformedBatch");
                    }
                }
                if nonce < floor || count >= max {
                    continue;
                }
                floor = nonce + 1;
                count += 1;
                took.push(nonce as u64);
            }
            accepted += took.len() as u64;
            skipped += (n - took.len()) as u64;
            if !took.is_empty() {
                let bytes = logged(w, &took);
                ue.count = count;
                ue.last = Some((floor - 1) as u64);
                ue.digest = chain_digest(ue.digest, &bytes);
                ue.groups.push(took);
                ue.widths.push(w);
                events.push(Ev::ProofsAccepted(Capacity::ProofsAccepted {
                    epoch,
                    unit,
                    count,
                    lastNonce: (floor - 1) as u64,
                    group: bytes.into(),
                }));
                self.ue.insert((unit, epoch), ue);
            }
            off = next;
        }
        Ok((events, accepted, skipped))
    }

    /// `signer`: whom the signature recovers to (None: nobody the contract accepts).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attest(
        &mut self,
        now: u64,
        from: Address,
        unit: u32,
        epoch: u64,
        digest: B256,
        checked: u32,
        sig: &[u8],
        signer: Option<Address>,
    ) -> Expect {
        if !self.verifiers.contains(&from) {
            return Err("NotVerifier");
        }
        self.check_verifying(epoch, now)?;
        let quorum = self.quorum;
        let Some(ue) = self.ue.get_mut(&(unit, epoch)) else {
            return Err("NothingSubmitted");
        };
        if digest != ue.digest {
            return Err("DigestMismatch");
        }
        if ue.failed || ue.reports.len() as u32 >= quorum {
            return Err("AlreadyFailed");
        }
        if signer != Some(from) {
            return Err("BadSampleSignature");
        }
        if !ue.attesters.insert(from) {
            return Err("AlreadyAttested");
        }
        let mut events = vec![Ev::Attested(Capacity::Attested {
            unit,
            epoch,
            verifier: from,
            digest,
            checked,
            sampleSignature: Bytes::copy_from_slice(sig),
        })];
        if ue.attesters.len() as u32 == quorum {
            events.push(Ev::UnitEpochAttested(Capacity::UnitEpochAttested {
                unit,
                epoch,
            }));
        }
        Ok(events)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
        &mut self,
        now: u64,
        from: Address,
        unit: u32,
        epoch: u64,
        nonce: u64,
        reason: u8,
        groups: &[Bytes],
    ) -> Expect {
        if !self.verifiers.contains(&from) {
            return Err("NotVerifier");
        }
        self.check_verifying(epoch, now)?;
        if unit as usize >= self.units.len() {
            return Err("UnknownUnit");
        }
        let quorum = self.quorum;
        let Some(ue) = self.ue.get_mut(&(unit, epoch)) else {
            return Err("NothingSubmitted");
        };
        // The evidence: the groups must replay to the digest, and one must hold the nonce.
        let mut d = B256::ZERO;
        let mut found = false;
        for g in groups {
            d = chain_digest(d, g);
            if found {
                continue;
            }
            if g.len() < 9 {
                return Err("MalformedBatch");
            }
            let w = g[0] as usize;
            if w == 0 || w > 8 || (g.len() - 9) % w != 0 {
                return Err("MalformedBatch");
            }
            let mut v = u128::from(u64::from_be_bytes(g[1..9].try_into().unwrap()));
            found = v == u128::from(nonce);
            for c in g[9..].chunks(w) {
                if found {
                    break;
                }
                let mut be = [0u8; 8];
                be[8 - w..].copy_from_slice(c);
                v += u128::from(u64::from_be_bytes(be));
                found = v == u128::from(nonce);
            }
        }
        if d != ue.digest {
            return Err("BadEvidence");
        }
        if !found {
            return Err("NonceNotSubmitted");
        }
        if ue.reports.insert(from, nonce).is_some() {
            return Err("AlreadyReported");
        }
        let n = ue.reports.len() as u32;
        let mut events = vec![Ev::InvalidProofReported(Capacity::InvalidProofReported {
            unit,
            epoch,
            nonce,
            reason,
            verifier: from,
        })];
        if n >= quorum && !ue.failed {
            events.push(self.slash(unit, epoch));
        }
        Ok(events)
    }

    /// `enforceFailure`: slashes a unit-epoch whose reports meet `quorum_for(epoch)` and that
    /// no report slashed.
    pub(super) fn enforce_failure(&mut self, unit: u32, epoch: u64) -> Expect {
        if unit as usize >= self.units.len() {
            return Err("UnknownUnit");
        }
        let q = self.quorum_for(epoch);
        match self.ue.get(&(unit, epoch)) {
            Some(ue) if !ue.failed && ue.reports.len() as u32 >= q => {
                Ok(vec![self.slash(unit, epoch)])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Marks the unit-epoch failed and moves the slash (rounded up) into the pool.
    fn slash(&mut self, unit: u32, epoch: u64) -> Ev {
        self.ue
            .get_mut(&(unit, epoch))
            .expect("a unit-epoch with reports")
            .failed = true;
        let u = &mut self.units[unit as usize];
        let slash = (u.registered * self.slash_bps)
            .div_ceil(BPS)
            .min(u.collateral);
        u.collateral -= slash;
        self.pool += slash;
        Ev::UnitEpochFailed(Capacity::UnitEpochFailed {
            unit,
            epoch,
            slashed: U256::from(slash),
        })
    }

    pub(super) fn abstain(
        &self,
        now: u64,
        from: Address,
        unit: u32,
        epoch: u64,
        reason: u8,
    ) -> Expect {
        if !self.verifiers.contains(&from) {
            return Err("NotVerifier");
        }
        self.check_verifying(epoch, now)?;
        Ok(vec![Ev::VerificationAbstained(
            Capacity::VerificationAbstained {
                unit,
                epoch,
                verifier: from,
                reason,
            },
        )])
    }

    pub(super) fn claim(&mut self, now: u64, from: Address, indices: &[u32], to: u64) -> Expect {
        if self.paused {
            return Err("IsPaused");
        }
        let mut due = self.owed.get(&from).copied().unwrap_or(0);
        for &index in indices {
            let i = self.owned(index, from)?;
            let (amount, next) = self.walk(i, to, now);
            self.units[i].claimed = next;
            due += amount;
        }
        let paid = due.min(self.pool);
        self.pool -= paid;
        self.owed.insert(from, due - paid);
        *self.paid.entry(from).or_default() += paid;
        let mut events = vec![Ev::RewardsClaimed(Capacity::RewardsClaimed {
            provider: from,
            amount: U256::from(paid),
            toEpoch: to,
        })];
        if due > paid {
            events.push(Ev::RewardsOwed(Capacity::RewardsOwed {
                provider: from,
                amount: U256::from(due - paid),
            }));
        }
        Ok(events)
    }

    pub(super) fn fund(&mut self, from: Address, value: u128) -> Expect {
        self.pool += value;
        Ok(vec![Ev::PoolFunded(Capacity::PoolFunded {
            from,
            amount: U256::from(value),
        })])
    }

    pub(super) fn top_up(&mut self, from: Address, index: u32, value: u128) -> Expect {
        let i = self.owned(index, from)?;
        let u = &mut self.units[i];
        let need = u.registered - u.collateral;
        if value == 0 || value > need {
            return Err("WrongCollateral");
        }
        u.collateral += value;
        Ok(vec![Ev::CollateralToppedUp(Capacity::CollateralToppedUp {
            index,
            amount: U256::from(value),
            collateral: U256::from(u.collateral),
        })])
    }

    pub(super) fn retire(&mut self, now: u64, from: Address, indices: &[u32]) -> Expect {
        let end = self.current(now) + 1;
        let mut events = Vec::new();
        for &index in indices {
            let i = self.owned(index, from)?;
            if self.units[i].end == NO_END {
                self.units[i].end = end;
                events.push(Ev::UnitRetired(Capacity::UnitRetired {
                    index,
                    endEpoch: end,
                }));
            }
        }
        Ok(events)
    }

    pub(super) fn withdraw(&mut self, now: u64, from: Address, indices: &[u32]) -> Expect {
        let mut events = Vec::new();
        for &index in indices {
            let i = self.owned(index, from)?;
            let u = &self.units[i];
            if u.end == NO_END {
                return Err("NotRetired");
            }
            if u.end > u.start && u128::from(now) < self.settle(u.end - 1) {
                return Err("CollateralLocked");
            }
            let u = &mut self.units[i];
            let amount = u.collateral;
            u.collateral = 0;
            u.registered = 0;
            events.push(Ev::CollateralWithdrawn(Capacity::CollateralWithdrawn {
                index,
                provider: from,
                amount: U256::from(amount),
            }));
        }
        Ok(events)
    }

    pub(super) fn schedule(&mut self, now: u64, from: Address, data: &Bytes) -> Expect {
        if from != self.owner {
            return Err("OnlyOwner");
        }
        if data.len() < 4 {
            return Err("NotTimelocked");
        }
        let selector: [u8; 4] = data[..4].try_into().unwrap();
        let timelocked = [
            Capacity::setKindParamsCall::SELECTOR,
            Capacity::addVerifierCall::SELECTOR,
            Capacity::removeVerifierCall::SELECTOR,
            Capacity::setQuorumCall::SELECTOR,
            Capacity::setGuardianCall::SELECTOR,
        ];
        if !timelocked.contains(&selector) {
            return Err("NotTimelocked");
        }
        let id = keccak256(data);
        if self.scheduled.contains_key(&id) {
            return Err("AlreadyScheduled");
        }
        let eta = now + self.delay;
        self.scheduled.insert(id, (eta, data.clone()));
        if !self.known_calls.contains(data) {
            self.known_calls.push(data.clone());
        }
        Ok(vec![Ev::CallScheduled(Capacity::CallScheduled {
            id,
            eta: U256::from(eta),
            data: data.clone(),
        })])
    }

    pub(super) fn execute(&mut self, now: u64, from: Address, data: &Bytes) -> Expect {
        if from != self.owner {
            return Err("OnlyOwner");
        }
        let id = keccak256(data);
        let Some(&(eta, _)) = self.scheduled.get(&id) else {
            return Err("NotScheduled");
        };
        if now < eta {
            return Err("TimelockPending");
        }
        self.scheduled.remove(&id);
        let mut events = Vec::new();
        match CapacityCalls::abi_decode(data).expect("scheduled calls decode") {
            CapacityCalls::setKindParams(c) => {
                if c.kind >= 2 {
                    return Err("UnknownKind");
                }
                if bad_params(&c.p) {
                    return Err("BadParams");
                }
                let cur = self.current(now);
                self.changes.push((cur, c.kind, c.p.clone()));
                events.push(Ev::KindParamsSet(Capacity::KindParamsSet {
                    kind: c.kind,
                    version: 0, // not modelled: taken from the log
                    fromEpoch: cur + 1,
                    params: c.p,
                }));
            }
            CapacityCalls::addVerifier(c) => {
                if c.v == Address::ZERO {
                    return Err("ZeroAddress");
                }
                if self.verifiers.insert(c.v) {
                    events.push(Ev::VerifierAdded(Capacity::VerifierAdded { verifier: c.v }));
                }
            }
            CapacityCalls::removeVerifier(c) => {
                if self.verifiers.contains(&c.v) {
                    if (self.verifiers.len() as u32) - 1 < self.quorum {
                        return Err("BadQuorum");
                    }
                    self.verifiers.remove(&c.v);
                    events.push(Ev::VerifierRemoved(Capacity::VerifierRemoved {
                        verifier: c.v,
                    }));
                }
            }
            CapacityCalls::setQuorum(c) => {
                if c.q == 0 || c.q > self.verifiers.len() as u32 {
                    return Err("BadQuorum");
                }
                self.set_quorum(now, c.q);
                events.push(Ev::QuorumSet(Capacity::QuorumSet { quorum: c.q }));
            }
            CapacityCalls::setGuardian(c) => {
                if c.g == Address::ZERO && self.paused {
                    return Err("ZeroAddress");
                }
                self.guardian = c.g;
                events.push(Ev::GuardianSet(Capacity::GuardianSet { guardian: c.g }));
            }
            other => panic!("not a timelocked call was scheduled: {other:?}"),
        }
        events.push(Ev::CallExecuted(Capacity::CallExecuted { id }));
        Ok(events)
    }

    pub(super) fn cancel(&mut self, from: Address, id: B256) -> Expect {
        if from != self.owner {
            return Err("OnlyOwner");
        }
        if self.scheduled.remove(&id).is_none() {
            return Err("NotScheduled");
        }
        Ok(vec![Ev::CallCancelled(Capacity::CallCancelled { id })])
    }

    pub(super) fn offer_operator(&mut self, from: Address, operator: Address, host: u16) -> Expect {
        if operator == Address::ZERO {
            return Err("ZeroAddress");
        }
        if operator == from {
            return Err("KeyTaken");
        }
        self.offers.insert((from, operator), host);
        Ok(vec![Ev::OperatorOffered(Capacity::OperatorOffered {
            provider: from,
            operator,
            host,
        })])
    }

    pub(super) fn accept_operator(&mut self, from: Address, provider: Address) -> Expect {
        let Some(&host) = self.offers.get(&(provider, from)) else {
            return Err("NoOffer");
        };
        if let Some((holder, _)) = self.operators.get(&from)
            && *holder != provider
        {
            return Err("KeyTaken");
        }
        self.offers.remove(&(provider, from));
        self.operators.insert(from, (provider, host));
        Ok(vec![Ev::OperatorAuthorized(Capacity::OperatorAuthorized {
            provider,
            operator: from,
            host,
        })])
    }

    pub(super) fn revoke_operator(&mut self, from: Address, operator: Address) -> Expect {
        let offered = self.offers.remove(&(from, operator)).is_some();
        if self
            .operators
            .get(&operator)
            .is_some_and(|(p, _)| *p == from)
        {
            self.operators.remove(&operator);
        } else if !offered {
            return Err("NotYours");
        }
        Ok(vec![Ev::OperatorRevoked(Capacity::OperatorRevoked {
            provider: from,
            operator,
        })])
    }

    pub(super) fn release_operator(&mut self, from: Address) -> Expect {
        let Some((provider, _)) = self.operators.remove(&from) else {
            return Err("NotYours");
        };
        Ok(vec![Ev::OperatorRevoked(Capacity::OperatorRevoked {
            provider,
            operator: from,
        })])
    }

    pub(super) fn assign_units(&mut self, from: Address, indices: &[u32], host: u16) -> Expect {
        for &index in indices {
            let i = self.owned(index, from)?;
            self.units[i].host = host;
        }
        Ok(vec![Ev::UnitsAssigned(Capacity::UnitsAssigned {
            provider: from,
            host,
            indices: indices.to_vec(),
        })])
    }

    pub(super) fn set_paused(&mut self, from: Address, p: bool) -> Expect {
        if from != self.guardian {
            return Err("OnlyGuardian");
        }
        self.paused = p;
        Ok(vec![Ev::Paused(Capacity::Paused { paused: p })])
    }
}
