//! Which units should hash, decided from the chain: a unit the contract would not count does
//! not spend its cores. Rules, for the epoch the miner mines:
//!
//! | the chain says | the unit |
//! |---|---|
//! | not registered (yet) | holds: "not registered on contract …"; registered later, it starts |
//! | its first epoch is later | holds until that epoch |
//! | retired (its end epoch has come) | holds for good |
//! | collateral below what its kind required (slashed) | holds until topped up |
//! | the store holds the epoch's maximum of its proofs | holds until the next epoch |
//! | another machine mines its id (`duplicates`) | holds until restarted |
//!
//! A held unit's threads idle (its cores are left to the machine) and `capminer status` says
//! why. Registration and collateral are read again when the epoch changes and every
//! [`REFRESH`] (or sixth of an epoch, if shorter); the proof counts every tick. Units below the epoch's minimum are served
//! first by the batcher (`batch::plan`), so what a unit still needs for its reward goes out
//! before anything else.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use capminer_proofs::UnitId;
use capminer_protocol::{UnitIndex, UnitRef};

use super::{ChainService, UnitRow};
use crate::Result;

/// How often registration and collateral are read again within an epoch.
pub(super) const REFRESH: Duration = Duration::from_secs(30);

/// Why each unit must not hash now (`None`: it hashes), by unit.
pub type Holds = BTreeMap<UnitId, Option<String>>;

/// What the contract says of one registered unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OnChain {
    start: u64,
    end: u64,
    collateral: u128,
    required: u128,
}

/// The chain's view of our units, and what was last handed to the miner.
#[derive(Debug, Default)]
pub(super) struct Standing {
    /// Registered units, as last read.
    on_chain: BTreeMap<UnitId, OnChain>,
    /// When they were read, and for which epoch.
    read: Option<(Instant, u64)>,
    /// The holds last handed on.
    last: Option<Holds>,
}

impl ChainService {
    /// Takes in units the miner runs that this service does not know yet (added while it
    /// runs, through the control API): they are looked up on chain at the next tick like the
    /// units that were not registered when it connected, held idle until they are, and their
    /// proofs delivered from then on.
    pub fn learn_units(&mut self, units: Vec<UnitRef>) {
        let mut learned = false;
        for unit in units {
            if self.units.contains_key(&unit.id)
                || self.unregistered.iter().any(|u| u.id == unit.id)
            {
                continue;
            }
            tracing::info!(unit = %unit.label, "unit added while running: looking it up on chain");
            self.unregistered.push(unit);
            learned = true;
        }
        if learned {
            self.standing.read = None; // look it up at the next tick
        }
    }

    /// Looks up units not registered when the service connected; those registered since (to
    /// this signer) join the units the service submits for.
    async fn adopt_registered(&mut self) -> Result<()> {
        if self.unregistered.is_empty() {
            return Ok(());
        }
        let ids: Vec<UnitId> = self.unregistered.iter().map(|unit| unit.id).collect();
        // Read before the list is taken apart, so a failed read leaves every unit in it.
        let found = self.chain.unit_indices(&ids).await?;
        let mut units = Vec::new();
        let mut indices = Vec::new();
        for (unit, index) in std::mem::take(&mut self.unregistered)
            .into_iter()
            .zip(found)
        {
            match index {
                Some(index) => {
                    units.push(unit);
                    indices.push(index);
                }
                None => self.unregistered.push(unit),
            }
        }
        let infos = match self.chain.unit_infos(&indices).await {
            Ok(infos) => infos,
            Err(e) => {
                self.unregistered.extend(units);
                return Err(e);
            }
        };
        for ((unit, index), info) in units.into_iter().zip(indices).zip(infos) {
            let provider: Address = info.provider;
            if provider != self.txm.address() && Some(provider) != self.provider {
                tracing::error!(unit = %unit.label, %provider, "unit registered to another provider: it stays idle");
                self.unregistered.push(unit);
                continue;
            }
            tracing::info!(unit = %unit.label, %index, "unit registered on chain: it starts hashing");
            self.by_index.insert(index, unit.id);
            self.units.insert(unit.id, UnitRow::new(index, unit));
        }
        Ok(())
    }

    /// The holds of every unit for epoch `e` given each unit's proofs of `e` in the store;
    /// `Some` only when they changed since last handed on.
    pub(super) async fn holds(
        &mut self,
        e: u64,
        stored: &std::collections::HashMap<UnitId, i64>,
    ) -> Result<Option<Holds>> {
        let refresh = REFRESH.min(Duration::from_secs(self.chain.schedule.duration / 6));
        let due = match self.standing.read {
            Some((at, epoch)) => epoch != e || at.elapsed() >= refresh,
            None => true,
        };
        if due {
            self.adopt_registered().await?;
            let (ids, indices): (Vec<UnitId>, Vec<UnitIndex>) =
                self.units.iter().map(|(id, row)| (*id, row.index)).unzip();
            let infos = self.chain.unit_infos(&indices).await?;
            self.standing.on_chain = ids
                .into_iter()
                .zip(infos)
                .map(|(id, info)| {
                    let u = OnChain {
                        start: info.startEpoch,
                        end: info.endEpoch,
                        collateral: info.collateral.to::<u128>(),
                        required: info.registeredCollateral.to::<u128>(),
                    };
                    (id, u)
                })
                .collect();
            self.standing.read = Some((Instant::now(), e));
        }
        let max = self.params.get(&e).map(|p| p.max);
        let address = self.chain.address;
        let mut holds: Holds = self
            .unregistered
            .iter()
            .map(|unit| {
                (
                    unit.id,
                    Some(format!("not registered on contract {address}")),
                )
            })
            .collect();
        for (id, row) in &self.units {
            let u = self.standing.on_chain.get(id);
            let count = stored.get(id).copied().unwrap_or(0);
            let duplicate = self.duplicates.hold(id);
            let hold = match (u, max) {
                _ if duplicate.is_some() => duplicate,
                (Some(u), _) if e < u.start => {
                    Some(format!("not active yet: starts at epoch {}", u.start))
                }
                (Some(u), _) if e >= u.end => Some(format!("retired on chain at epoch {}", u.end)),
                (Some(u), _) if u.collateral < u.required => Some(format!(
                    "collateral short (slashed): {} of {} wei; top it up",
                    u.collateral, u.required
                )),
                (_, Some(max)) if count >= i64::from(max[row.kind.index()]) => Some(format!(
                    "at the epoch's maximum ({} proofs): idle until epoch {}",
                    max[row.kind.index()],
                    e + 1
                )),
                _ => None,
            };
            holds.insert(*id, hold);
        }
        if self.standing.last.as_ref() == Some(&holds) {
            return Ok(None);
        }
        self.standing.last = Some(holds.clone());
        Ok(Some(holds))
    }

    /// Each unit's proofs of epoch `e` in the store, not skipped (0 for a unit without any).
    pub(super) async fn stored_counts(&self, e: u64) -> std::collections::HashMap<UnitId, i64> {
        let mut counts: std::collections::HashMap<UnitId, i64> =
            self.units.keys().map(|u| (*u, 0)).collect();
        for (_, unit, tally) in self.tallies(e..=e).await {
            counts.insert(unit, i64::from(tally.counted()));
        }
        counts
    }
}
