//! The live page in the Fluence profile: `capminer run`'s page (`crate::api::page`, one page
//! for both), served on `ccp.listen` beside the JSON-RPC with this module as its source:
//!
//! ```text
//!  GET /  /page/{file}     the page; its script shows the Fluence sections for the status's
//!                          "profile": "fluence" (commitment, CUs, proofs served, no chain)
//!  GET /api/v1/live        {"profile": "fluence", "now": <unix s>,
//!                           "units": [{"unit": "<first 8 hex of the id>", "cu": "<64 hex>",
//!                                      "build": [done, items] | null,
//!                                      "hashrate": {"10s": .., "60s": .., "15m": ..},
//!                                      "proofs_per_hour": ..}],
//!                           "alerts": [...]}  (see alerts.rs)
//!  GET /api/v1/history     a sample every 10 s: each CU (labelled as in `units`) with its
//!                          hashrate over the 10 s and its proofs found; the store's errors
//! ```
//!
//! The status (`GET /api/v1/status`, status.rs) has the rest: the commitment, each CU's core,
//! threads, state, proofs and last index, the utility CPUs and the proofs served.
//!
//! The CUs count hashes, not a rate: each sample's hashrate is the CU's hashes since the
//! previous sample over the time between them (a CU's first sample comes one step after it
//! starts); the page's 60 s and 15 min rates are means over the history's samples. The sampler
//! also notes since when a hashing CU's count has not moved (the not-hashing alert).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use capminer_sync::LockExt;
use serde::Serialize;

use super::Ccp;
use super::alerts::{self, CuFacts};
use super::status::{self, CcpStatus, CuStatus};
use super::units::CuView;
use crate::api::alerts::Alert;
use crate::api::history::{History, Sample, UnitSample};
use crate::api::page::{LiveSource, unix_now};

/// Hex digits of a CU's id in its label.
const LABEL_HEX: usize = 8;
/// The rate windows the page shows: name, seconds.
const WINDOWS: [(&str, u64); 3] = [("10s", 10), ("60s", 60), ("15m", 900)];

/// `capminer ccp`'s source of the live page.
#[derive(Debug)]
pub(crate) struct CcpPage {
    ccp: Arc<Ccp>,
    tracker: Mutex<Tracker>,
}

impl CcpPage {
    pub(crate) fn new(ccp: Arc<Ccp>) -> Self {
        Self {
            ccp,
            tracker: Mutex::default(),
        }
    }
}

/// `GET /api/v1/live` in the Fluence profile.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct CcpLive {
    /// `fluence`.
    profile: &'static str,
    /// Unix time of this answer.
    now: u64,
    /// The CUs, in the status's order (by core).
    units: Vec<CuLive>,
    alerts: Vec<Alert>,
}

#[derive(Debug, Serialize, PartialEq)]
struct CuLive {
    /// Its label: the first hex digits of its id (as in the history).
    unit: String,
    /// Its id, hex.
    cu: String,
    /// Dataset items built and in all, while it builds its dataset.
    build: Option<(u64, u64)>,
    /// Hashes per second, the mean of the history's samples over 10 s, 60 s and 15 min;
    /// `null` before its first sample.
    hashrate: BTreeMap<&'static str, Option<f64>>,
    /// Proofs found per hour over the history's last hour.
    proofs_per_hour: Option<f64>,
}

/// A CU's label: the first [`LABEL_HEX`] digits of its hex id.
fn label(cu: &str) -> &str {
    cu.get(..LABEL_HEX).unwrap_or(cu)
}

/// What the sampler remembers between two samples.
#[derive(Debug, Default)]
struct Tracker {
    /// The last sample's time and each CU's hash count then.
    last: Option<(Instant, HashMap<String, u64>)>,
    /// Since when each CU has counted no hash while hashing (its last count or state change).
    still_since: HashMap<String, Instant>,
}

impl Tracker {
    /// Takes in the CUs' counts at `now`: each CU's sample (for those seen at the previous
    /// sample), and the times their counts last moved.
    fn update(&mut self, now: Instant, units: &[CuStatus]) -> Vec<UnitSample> {
        let previous = self.last.take();
        let mut counts = HashMap::new();
        let mut samples = Vec::new();
        for u in units {
            counts.insert(u.cu.clone(), u.hashes);
            let before = previous
                .as_ref()
                .and_then(|(t, c)| Some((*t, *c.get(&u.cu)?)));
            if u.state != "hashing" || before.is_none_or(|(_, n)| u.hashes > n) {
                self.still_since.insert(u.cu.clone(), now);
            }
            if let Some((then, n)) = before {
                let secs = now.duration_since(then).as_secs_f64();
                let hashed = u.hashes.saturating_sub(n) as f64;
                samples.push(UnitSample {
                    unit: label(&u.cu).into(),
                    hashrate: (if secs > 0.0 { hashed / secs } else { 0.0 }) as f32,
                    found: u.proofs_found,
                    compute_errors: 0,
                    restarts: 0,
                });
            }
        }
        self.still_since.retain(|cu, _| counts.contains_key(cu));
        self.last = Some((now, counts));
        samples
    }
}

impl LiveSource for CcpPage {
    type Live = CcpLive;

    fn live(&self, history: &Mutex<History>) -> Result<CcpLive, String> {
        let (views, commitment) = status::snapshot(&self.ccp);
        let status = status::from_snapshot(&self.ccp, views.clone(), commitment, Vec::new());
        let now = Instant::now();
        let still: HashMap<String, u64> = self
            .tracker
            .lock_or_recover()
            .still_since
            .iter()
            .map(|(cu, t)| (cu.clone(), now.duration_since(*t).as_secs()))
            .collect();
        let history = history.lock_or_recover();
        Ok(build(unix_now(), &status, &views, &still, &history))
    }

    fn sample(&self) -> Option<Sample> {
        let status = status::status(&self.ccp, Vec::new());
        let units = self
            .tracker
            .lock_or_recover()
            .update(Instant::now(), &status.units);
        let mut sample = Sample::new(unix_now(), units);
        sample.store_errors = self.ccp.metrics().store_errors.get();
        Some(sample)
    }
}

/// The answer from the status, the CUs' views (their build progress), the seconds each CU
/// has counted no hash (`still`) and the history.
fn build(
    now: u64,
    status: &CcpStatus,
    views: &[CuView],
    still: &HashMap<String, u64>,
    history: &History,
) -> CcpLive {
    let mut alerts = Vec::new();
    let units = status
        .units
        .iter()
        .map(|u| {
            let unit = label(&u.cu);
            alerts.extend(alerts::cu_alerts(&CuFacts {
                cu: &u.cu,
                label: unit,
                core: u.core,
                state: &u.state,
                reason: u.reason.as_deref(),
                still_secs: still.get(&u.cu).copied(),
            }));
            CuLive {
                unit: unit.to_string(),
                cu: u.cu.clone(),
                build: views
                    .iter()
                    .find(|v| hex::encode(v.cu) == u.cu)
                    .and_then(|v| v.build),
                hashrate: WINDOWS
                    .iter()
                    .map(|(name, secs)| (*name, history.mean_rate(unit, *secs)))
                    .collect(),
                proofs_per_hour: history.found_per_hour(unit),
            }
        })
        .collect();
    let store_errors_10m = history
        .fine()
        .back()
        .zip(history.ago(600))
        .map(|(newest, then)| newest.store_errors.saturating_sub(then.store_errors));
    alerts.extend(alerts::node_alerts(
        status.commitment.is_some(),
        store_errors_10m,
    ));
    CcpLive {
        profile: "fluence",
        now,
        units,
        alerts,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ccp::status::CommitmentStatus;

    const CU: &str = "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f";

    fn cu(state: &str, hashes: u64, found: u64) -> CuStatus {
        CuStatus {
            cu: CU.into(),
            core: 1,
            threads: 2,
            state: state.into(),
            reason: None,
            hashes,
            proofs_found: found,
            last_proof_index: None,
        }
    }

    #[test]
    fn samples_rate_each_cu_from_its_counts_and_note_when_they_stop() {
        let mut tracker = Tracker::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + std::time::Duration::from_secs(s);
        // First seen: no rate yet.
        assert!(tracker.update(t0, &[cu("hashing", 100, 0)]).is_empty());
        let got = tracker.update(at(10), &[cu("hashing", 600, 3)]);
        assert_eq!(
            got,
            [UnitSample {
                unit: "21f7ce63".into(),
                hashrate: 50.0,
                found: 3,
                compute_errors: 0,
                restarts: 0
            }]
        );
        assert_eq!(tracker.still_since[CU], at(10));
        // The count stands still: the time it last moved stays.
        let got = tracker.update(at(20), &[cu("hashing", 600, 3)]);
        assert_eq!(got[0].hashrate, 0.0);
        assert_eq!(tracker.still_since[CU], at(10));
        // Paused: not stuck, the clock starts again.
        tracker.update(at(30), &[cu("paused", 600, 3)]);
        assert_eq!(tracker.still_since[CU], at(30));
        // Gone: forgotten.
        assert!(tracker.update(at(40), &[]).is_empty());
        assert!(tracker.still_since.is_empty());
    }

    #[test]
    fn the_live_answer_has_the_fluence_shape() {
        let mut history = History::default();
        for (i, rate) in [40.0, 60.0].into_iter().enumerate() {
            history.push(Sample::new(
                1000 + 10 * i as u64,
                vec![UnitSample {
                    unit: "21f7ce63".into(),
                    hashrate: rate,
                    found: 2 * i as u64,
                    compute_errors: 0,
                    restarts: 0,
                }],
            ));
        }
        let mut status = CcpStatus {
            version: "0.1.0".into(),
            profile: "fluence".into(),
            uptime_seconds: 5,
            commitment: Some(CommitmentStatus {
                global_nonce: "00".repeat(32),
                difficulty: "ff".repeat(32),
            }),
            units: vec![cu("paused", 700, 2)],
            utility_cpus: vec![],
            proofs_served: 0,
        };
        let views = [CuView {
            cu: hex::decode(CU).unwrap().try_into().unwrap(),
            core: 1,
            threads: 2,
            paused: true,
            building: false,
            build: Some((5, 64)),
            failed: None,
        }];
        let still = HashMap::from([(CU.to_string(), 100)]);
        let live = build(1011, &status, &views, &still, &history);
        assert_eq!(
            serde_json::to_value(&live).unwrap(),
            json!({
                "profile": "fluence",
                "now": 1011,
                "units": [{
                    "unit": "21f7ce63",
                    "cu": CU,
                    "build": [5, 64],
                    "hashrate": {"10s": 60.0, "60s": 50.0, "15m": 50.0},
                    // 2 found in 10 s.
                    "proofs_per_hour": 720.0,
                }],
                "alerts": [{
                    "name": "CapminerCcpUnitPaused",
                    "severity": "warning",
                    "subject": CU,
                    "summary": "CU 21f7ce63 (core 1) is paused through the control API: it finds no proofs",
                    "fix": "press Resume on its row (or run `capminer ctl resume --unit <its CU id>`)",
                }],
            })
        );
        // No commitment, no CU, no sample: its alert, nothing else.
        status.commitment = None;
        status.units.clear();
        let live = build(1011, &status, &[], &HashMap::new(), &History::default());
        assert_eq!(live.units, []);
        let names: Vec<&str> = live.alerts.iter().map(|a| a.name).collect();
        assert_eq!(names, ["CapminerCcpNoCommitment"]);
    }
}
