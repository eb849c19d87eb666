//! `GET /api/v1/status` of `capminer ccp`, served on the JSON-RPC listener (`ccp.listen`,
//! loopback by default) beside `POST /`: the commitment, each CU and the utility CPUs, read from
//! the saved state, the live CUs, the proof store and the metric families `/metrics` serves
//! (one source of truth). Without a token, like `capminer run`'s status (routes in
//! control.rs); `capminer status` prints it as a table.
//!
//! ```json
//! {"version": "0.1.0", "profile": "fluence", "uptime_seconds": 12,
//!  "commitment": {"global_nonce": "<64 hex>", "difficulty": "<64 hex>"},
//!  "units": [{"cu": "<64 hex>", "core": 1, "threads": 2, "state": "hashing", "reason": null,
//!             "hashes": 5120, "proofs_found": 3, "last_proof_index": 3}],
//!  "utility_cpus": [0], "proofs_served": 3}
//! ```

use std::collections::HashMap;

use capminer_sync::LockExt;
use serde::{Deserialize, Serialize};

use super::Ccp;
use super::state::Commitment;
use super::units::CuView;

/// `GET /api/v1/status` in the Fluence profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CcpStatus {
    /// capminer's version.
    pub version: String,
    /// `fluence`.
    pub profile: String,
    /// Seconds since the service started.
    pub uptime_seconds: u64,
    /// The active commitment; `null`: none (no CU runs).
    pub commitment: Option<CommitmentStatus>,
    /// Every allocated CU, by core.
    pub units: Vec<CuStatus>,
    /// Logical CPUs the runtime's threads run on (empty: anywhere).
    pub utility_cpus: Vec<usize>,
    /// Proofs handed to the node since start (`capminer_ccp_proofs_served_total`).
    pub proofs_served: u64,
}

/// The active commitment, hex as on the wire (no `0x`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitmentStatus {
    /// The epoch's global nonce.
    pub global_nonce: String,
    /// The difficulty a result hash must not exceed (read big-endian).
    pub difficulty: String,
}

/// One CU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CuStatus {
    /// Its id, hex.
    pub cu: String,
    /// The physical core it is allocated to.
    pub core: u32,
    /// Its hashing threads.
    pub threads: usize,
    /// `building` (keying its cache and dataset), `hashing`, `paused` (control API) or
    /// `failed`.
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Hashes since start, across epochs (`capminer_ccp_hashes_total`).
    pub hashes: u64,
    /// Proofs found and stored since start, across epochs (`capminer_ccp_proofs_found_total`).
    pub proofs_found: u64,
    /// The index of its last proof in the current epoch; `null`: none yet.
    pub last_proof_index: Option<u64>,
}

/// The status now. Blocking (it takes the service's lock, held while a commitment changes).
pub(crate) fn status(ccp: &Ccp, utility_cpus: Vec<usize>) -> CcpStatus {
    let (units, commitment) = snapshot(ccp);
    from_snapshot(ccp, units, commitment, utility_cpus)
}

/// The running CUs and the commitment, read together. Blocking (the service's lock).
pub(crate) fn snapshot(ccp: &Ccp) -> (Vec<CuView>, Option<Commitment>) {
    let inner = ccp.inner.lock_or_recover();
    (inner.units.view(), inner.saved.commitment.clone())
}

/// The status of a [`snapshot`], with the store's counts and the metric families now.
pub(crate) fn from_snapshot(
    ccp: &Ccp,
    units: Vec<CuView>,
    commitment: Option<Commitment>,
    utility_cpus: Vec<usize>,
) -> CcpStatus {
    let counts: HashMap<[u8; 32], u64> = ccp.store.counts().into_iter().collect();
    let m = &ccp.metrics;
    let units = units
        .into_iter()
        .map(|u| {
            let cu = hex::encode(u.cu);
            let counter = |family: &prometheus::IntCounterVec| {
                family
                    .get_metric_with_label_values(&[&cu])
                    .map_or(0, |c| c.get())
            };
            let (state, reason) = match (u.failed, u.paused, u.building) {
                (Some(why), _, _) => ("failed", Some(why)),
                (None, true, _) => ("paused", None),
                (None, false, true) => ("building", None),
                (None, false, false) => ("hashing", None),
            };
            CuStatus {
                hashes: counter(&m.hashes),
                proofs_found: counter(&m.proofs_found),
                last_proof_index: counts
                    .get(&u.cu)
                    .filter(|n| **n > 0)
                    .map(|n| capminer_protocol::fluence::FIRST_PROOF_IDX + n - 1),
                cu,
                core: u.core,
                threads: u.threads,
                state: state.into(),
                reason,
            }
        })
        .collect();
    CcpStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        profile: "fluence".into(),
        uptime_seconds: ccp.started.elapsed().as_secs(),
        commitment: commitment.map(|c| CommitmentStatus {
            global_nonce: hex::encode(c.global_nonce),
            difficulty: hex::encode(c.difficulty),
        }),
        units,
        utility_cpus,
        proofs_served: m.proofs_served.get(),
    }
}
