//! `capminer ccp`: capminer in the Fluence profile, in place of Fluence's Capacity Commitment
//! Prover (CCP). Fluence's node (nox) drives it over CCP's JSON-RPC ([`rpc`]) as it drives
//! CCP; proofs are Fluence's (see `capminer_protocol::fluence`).
//!
//! ```text
//!  nox ──JSON-RPC──▶ rpc ──▶ Ccp ──▶ state.json (durable, first)
//!                     │        ├──▶ FluenceStore::set_epoch (durable)
//!                     │        └──▶ Units ──▶ CuProver per CU: threads pinned to its core,
//!                     │                        dataset keyed by keccak(global_nonce ‖ cu_id)
//!                     │                                 │ proof (hash <= difficulty)
//!                     └── get_proofs_after ◀── FluenceStore (fsync, per-CU index) ◀──┘
//! ```
//!
//! Calls that change the commitment take one lock ([`Ccp::commit`]), save the state, then
//! reconcile the CUs; reading proofs takes only the store's lock, so it never waits for a
//! dataset build or a commitment change.
//!
//! The same listener serves the control API ([`control`]: status, pause, resume) and the
//! operator's live page (`capminer run`'s page with this profile's data: [`page`], its
//! alerts in [`alerts`]).

mod alerts;
mod control;
mod cu;
mod metrics;
mod page;
pub(crate) mod rpc;
mod state;
pub(crate) mod status;
#[cfg(test)]
mod tests;
mod units;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use capminer_config::Config;
use capminer_kernels::randomx::RandomXFlags;
use capminer_proofs::fluence::FluenceStore;
use capminer_protocol::{FluenceEpoch, FluenceProof};
use capminer_sync::LockExt;
use prometheus::Registry;

pub(crate) use control::routes as control_routes;
pub(crate) use metrics::CcpMetrics;
use state::{Commitment, SavedState};
use units::Units;

/// Why a call failed: a parameter at fault (JSON-RPC "invalid params", naming it), or the
/// prover (CCP's code 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CcpError {
    /// A parameter is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The parameter, with its path (`cu_allocation.3`, `utility_core_ids[1]`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The prover could not do it.
    #[error("{0}")]
    Prover(String),
}

impl CcpError {
    pub(crate) fn field(field: String, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Proofs by CU id, in CU order.
pub(crate) type CuProofs = Vec<([u8; 32], Vec<FluenceProof>)>;

/// What changes with the commitment: the CUs and the saved state.
#[derive(Debug)]
struct Inner {
    units: Units,
    saved: SavedState,
}

/// The service.
#[derive(Debug)]
pub(crate) struct Ccp {
    dir: PathBuf,
    store: Arc<FluenceStore>,
    inner: Mutex<Inner>,
    metrics: CcpMetrics,
    started: Instant,
}

/// RandomX flags of the Fluence profile from the configuration: its flags, the profile's
/// flavor (Fluence's fork: `randomx_options` follows `network.profile`).
pub(crate) fn fluence_flags(config: &Config) -> anyhow::Result<RandomXFlags> {
    RandomXFlags::resolve(&capminer_miner::randomx_options(config)).map_err(|e| {
        anyhow::anyhow!(
            "network.profile = \"{}\": {e}",
            config.network.profile.name()
        )
    })
}

impl Ccp {
    /// Opens the store and the saved state under `<miner.state_dir>/fluence`; no CU runs yet.
    pub(crate) fn open(config: &Config, registry: &Registry) -> anyhow::Result<Self> {
        let flags = fluence_flags(config)?;
        let dir = config.miner.state_dir.join("fluence");
        let (store, recovery) = FluenceStore::open(&dir)?;
        if recovery.torn_bytes > 0 || !recovery.quarantined.is_empty() {
            tracing::warn!("fluence proof store repaired after a crash: {recovery:?}");
        }
        let store = Arc::new(store);
        let metrics = CcpMetrics::register(registry)?;
        let units = Units::new(config, flags, store.clone(), metrics.clone())?;
        let saved = state::load(&dir)?;
        Ok(Self {
            dir,
            store,
            inner: Mutex::new(Inner { units, saved }),
            metrics,
            started: Instant::now(),
        })
    }

    /// The metric families.
    pub(crate) fn metrics(&self) -> &CcpMetrics {
        &self.metrics
    }

    /// Takes up the saved commitment (after a restart), or logs why it cannot (then no CU
    /// runs until the node commits again); the saved utility CPUs, for the caller to move the
    /// runtime to. Blocking.
    pub(crate) fn restore(&self) -> anyhow::Result<Vec<usize>> {
        let mut inner = self.inner.lock_or_recover();
        let saved = inner.saved.clone();
        if let Some(c) = &saved.commitment {
            let allocation = c.allocation().context("the saved state")?;
            tracing::info!(
                "taking up the saved commitment: {} CUs, global nonce {}",
                allocation.len(),
                hex::encode(c.global_nonce)
            );
            self.store.set_epoch(c.epoch())?;
            let units = &mut inner.units;
            if let Err(e) = units
                .check(&allocation)
                .and_then(|()| units.apply(c.epoch(), &allocation))
            {
                // The node's next call may still work here: wait for it rather than exit.
                tracing::error!(
                    "cannot take up the saved commitment: {e}; no CU runs until the node commits again"
                );
            }
        }
        Ok(saved.utility_cores.iter().map(|c| *c as usize).collect())
    }

    /// `on_active_commitment`: returns once the commitment is saved and the CUs reconciled
    /// (their datasets build in the background). Blocking.
    pub(crate) fn commit(
        &self,
        epoch: FluenceEpoch,
        allocation: BTreeMap<u32, [u8; 32]>,
    ) -> Result<(), CcpError> {
        let mut inner = self.inner.lock_or_recover();
        inner.units.check(&allocation)?;
        let saved = SavedState {
            commitment: Some(Commitment {
                global_nonce: epoch.global_nonce,
                difficulty: epoch.difficulty,
                cu_allocation: allocation
                    .iter()
                    .map(|(core, cu)| (*core, hex::encode(cu)))
                    .collect(),
            }),
            utility_cores: inner.saved.utility_cores.clone(),
        };
        self.save(&saved)?;
        inner.saved = saved;
        let new = self
            .store
            .set_epoch(epoch)
            .map_err(|e| CcpError::Prover(e.to_string()))?;
        if new {
            tracing::info!(
                global_nonce = %hex::encode(epoch.global_nonce),
                difficulty = %hex::encode(epoch.difficulty),
                "new epoch: proof indices start again"
            );
        }
        inner.units.apply(epoch, &allocation)
    }

    /// `on_no_active_commitment`: every CU stops; the proofs stay readable. Blocking.
    pub(crate) fn uncommit(&self) -> Result<(), CcpError> {
        let mut inner = self.inner.lock_or_recover();
        let saved = SavedState {
            commitment: None,
            utility_cores: inner.saved.utility_cores.clone(),
        };
        self.save(&saved)?;
        inner.saved = saved;
        inner.units.stop_all();
        Ok(())
    }

    /// `realloc_utility_cores`: checks and saves the logical CPUs; they are returned for the
    /// caller to move the runtime's threads there. Blocking.
    pub(crate) fn set_utility_cores(&self, ids: &[u32]) -> Result<Vec<usize>, CcpError> {
        let mut inner = self.inner.lock_or_recover();
        let cpus: Vec<usize> = inner
            .units
            .topology()
            .cores
            .iter()
            .flat_map(|c| c.cpus.iter().copied())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if !cpus.contains(&(*id as usize)) {
                return Err(CcpError::field(
                    format!("utility_core_ids[{i}]"),
                    format!("no logical CPU {id} on this machine (CPUs {cpus:?})"),
                ));
            }
        }
        let saved = SavedState {
            commitment: inner.saved.commitment.clone(),
            utility_cores: ids.to_vec(),
        };
        self.save(&saved)?;
        inner.saved = saved;
        Ok(ids.iter().map(|c| *c as usize).collect())
    }

    /// The store's epoch and the proofs of each CU in `last_known` (every CU with proofs when
    /// `all`) after the index given for it (0 for a CU not named), `limit` proofs in all.
    pub(crate) fn proofs_after(
        &self,
        last_known: &BTreeMap<[u8; 32], u64>,
        all: bool,
        mut per_cu: impl FnMut(&[u8; 32]) -> usize,
        limit: usize,
    ) -> (Option<FluenceEpoch>, CuProofs) {
        let epoch = self.store.epoch();
        let mut cus: Vec<[u8; 32]> = last_known.keys().copied().collect();
        if all {
            cus.extend(self.store.counts().into_iter().map(|(cu, _)| cu));
            cus.sort();
            cus.dedup();
        }
        let mut left = limit;
        let mut out = Vec::new();
        for cu in cus {
            if left == 0 {
                break;
            }
            let after = last_known.get(&cu).copied().unwrap_or(0);
            let proofs = self.store.after(&cu, after, per_cu(&cu).min(left));
            if !proofs.is_empty() {
                left -= proofs.len();
                out.push((cu, proofs));
            }
        }
        (epoch, out)
    }

    /// Pauses or resumes `cu` (every running CU when `None`); the CUs it applied to. A pause
    /// lasts until resumed, the CU stops, or capminer restarts. Blocking.
    pub(crate) fn set_paused(
        &self,
        cu: Option<&[u8; 32]>,
        paused: bool,
    ) -> Result<Vec<[u8; 32]>, CcpError> {
        self.inner.lock_or_recover().units.set_paused(cu, paused)
    }

    /// Stops every CU. Blocking.
    pub(crate) fn shutdown(&self) {
        self.inner.lock_or_recover().units.stop_all();
    }

    /// Publishes each CU's state (`capminer_ccp_unit_state`).
    pub(crate) fn publish_states(&self) {
        let units = self.inner.lock_or_recover().units.view();
        let state = &self.metrics.unit_state;
        state.reset();
        for u in units {
            let cu = hex::encode(u.cu);
            let value = match (u.failed, u.paused, u.building) {
                (Some(_), _, _) => 0,
                (None, true, _) => 3,
                (None, false, true) => 1,
                (None, false, false) => 2,
            };
            state.with_label_values(&[&cu]).set(value);
        }
    }

    fn save(&self, saved: &SavedState) -> Result<(), CcpError> {
        state::save(&self.dir, saved)
            .map_err(|e| CcpError::Prover(format!("cannot save the state: {e:#}")))
    }
}
