//! `GET /api/v1/status`: the units from the miner's live objects, the proofs in flight from
//! the store, and the counters from the typed handles of the metric families (the miner's
//! `MinerMetrics`, the chain client's `ChainMetrics`, each verifier's `VerifierMetrics`). No
//! family is looked up by name: renaming a metric cannot turn its status field into a `null`.
//!
//! A field is absent (or its section `null`) only where there is no value: a family with no
//! series yet (no transaction sent), no chain client, no verifier in this process.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use capminer_miner::metrics::MinerMetrics;
use capminer_miner::{Miner, UnitState, UnitView};
use capminer_proofs::store::{ProofState, StoredProof};
use prometheus::core::Collector;
use prometheus::proto::{MetricFamily, MetricType};
use serde::{Deserialize, Serialize};

use super::{Api, ApiError};
use crate::runtime::NodeMetrics;

/// One unit in `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnitStatus {
    /// Label (`cpu0`).
    pub unit: String,
    /// Network-wide id.
    pub id: String,
    /// `cpu` or `gpu`.
    pub kind: String,
    /// Where it runs.
    pub place: String,
    /// Hashing threads.
    pub threads: usize,
    /// hashing, keying, paused, idle or failed.
    pub state: String,
    /// Why, when not hashing.
    pub reason: Option<String>,
    /// Hashes per second over 10 s, 60 s and 15 min.
    pub hashrate: BTreeMap<String, f64>,
    /// Hashes since start.
    pub hashes: u64,
    /// Times the watchdog restarted it.
    #[serde(default)]
    pub restarts: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Status {
    /// capminer's version.
    pub version: String,
    /// Seconds since the node started.
    pub uptime_seconds: u64,
    /// The epoch being mined.
    pub epoch: Option<u64>,
    /// Every unit.
    pub units: Vec<UnitStatus>,
    /// Proofs not yet final or skipped, by state (found, submitted, included).
    pub proofs_in_flight: BTreeMap<String, usize>,
    /// Counters since start: found, stored, stale, store errors.
    pub proofs: BTreeMap<String, f64>,
    /// The chain client, when one runs: head block, chain epoch, pending proofs, accepted,
    /// transactions, units held as mined by another machine too (`duplicate_host_units`).
    pub chain: Option<BTreeMap<String, f64>>,
    /// The verifier, when one runs in this process: its backlog and work done.
    pub verifier: Option<BTreeMap<String, f64>>,
}

/// `GET /api/v1/status`.
pub(super) async fn status(State(api): State<Api>) -> Result<Response, ApiError> {
    let miner = api.miner()?;
    let store = api.node.store.clone();
    // The store's lock may wait on a unit's fsync: off the async threads.
    let in_flight = tokio::task::spawn_blocking(move || store.unsettled(|_| true))
        .await
        .unwrap_or_default();
    let status = build_status(&miner, &api.node.metrics, &in_flight, api.started);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&status).expect("status serializes"),
    )
        .into_response())
}

fn build_status(
    miner: &Miner,
    metrics: &NodeMetrics,
    in_flight: &[StoredProof],
    started: Instant,
) -> Status {
    // Collected once: every unit reads its three windows from it.
    let rates = miner.metrics().hashrate.collect();
    let units = miner
        .units()
        .iter()
        .map(|u| unit_status(miner, u, &rates))
        .collect();
    let counters = Counters::read(miner.metrics(), metrics);
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: started.elapsed().as_secs(),
        epoch: counters.epoch,
        units,
        proofs_in_flight: by_state(in_flight),
        proofs: counters.proofs,
        chain: counters.chain,
        verifier: counters.verifier,
    }
}

/// One unit: its state and why, its hashrates from `rates` (the hashrate family, collected).
fn unit_status(miner: &Miner, u: &UnitView, rates: &[MetricFamily]) -> UnitStatus {
    let info = u.info();
    let paused = miner.is_paused(&info.label);
    let (state, reason) = match (u.state(), paused, miner.hold(&info.label)) {
        (UnitState::Failed, _, _) => (
            "failed",
            Some(format!(
                "down after a fault ({}): the watchdog restarts it; see the log",
                u.down().map_or("error", |r| r.as_str())
            )),
        ),
        (_, true, _) => ("paused", Some("paused through the control API".into())),
        (_, _, Some(why)) => ("idle", Some(why)),
        (UnitState::Hashing(_), _, _) => ("hashing", None),
        (UnitState::Building { .. }, _, _) => {
            ("keying", Some("building its dataset for the epoch".into()))
        }
        (UnitState::Idle, _, _) => ("idle", Some("no epoch yet".into())),
    };
    let hashrate = ["10s", "60s", "15m"]
        .iter()
        .map(|w| {
            let rate = total_where(rates, &[("unit", info.label.as_str()), ("window", w)]);
            (w.to_string(), rate.unwrap_or(0.0))
        })
        .collect();
    UnitStatus {
        unit: info.label.clone(),
        id: info.id.to_string(),
        kind: info.kind.as_str().to_string(),
        place: info.place.clone(),
        threads: info.threads,
        state: state.to_string(),
        reason,
        hashrate,
        hashes: u.hashes(),
        restarts: u.restarts(),
    }
}

/// Proofs not yet final or skipped, counted by state.
fn by_state(in_flight: &[StoredProof]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for p in in_flight {
        let name = match p.state {
            ProofState::Found => "found",
            ProofState::Submitted { .. } => "submitted",
            ProofState::Included { .. } => "included",
            ProofState::Final | ProofState::Skipped => continue,
        };
        *counts.entry(name.to_string()).or_insert(0) += 1;
    }
    counts
}

/// The status's counters, read from typed metric handles.
#[derive(Debug, PartialEq)]
struct Counters {
    epoch: Option<u64>,
    proofs: BTreeMap<String, f64>,
    chain: Option<BTreeMap<String, f64>>,
    verifier: Option<BTreeMap<String, f64>>,
}

impl Counters {
    fn read(miner: &MinerMetrics, node: &NodeMetrics) -> Self {
        let verifiers = &node.verifiers;
        Self {
            epoch: u64::try_from(miner.epoch.get()).ok().filter(|e| *e > 0),
            proofs: present([
                ("found", total(&miner.proofs_found)),
                ("stored", total(&miner.proofs_stored)),
                ("stale", total(&miner.proofs_stale)),
                ("store_errors", total(&miner.store_errors)),
            ])
            .unwrap_or_default(),
            chain: node.chain.as_ref().and_then(|c| {
                present([
                    ("head_block", Some(c.last_block.get() as f64)),
                    ("epoch", Some(c.chain_epoch.get() as f64)),
                    ("proofs_pending", Some(c.proofs_pending.get() as f64)),
                    ("proofs_submitted", Some(c.proofs_submitted.get() as f64)),
                    ("proofs_accepted", Some(c.proofs_accepted.get() as f64)),
                    ("proofs_skipped", total(&c.proofs_skipped)),
                    ("transactions", total(&c.transactions)),
                    ("duplicate_host_units", total(&c.duplicate_host_units)),
                ])
            }),
            verifier: present([
                (
                    "backlog_epochs",
                    sum(verifiers.iter().map(|v| Some(v.backlog().get() as f64))),
                ),
                (
                    "proofs_verified",
                    sum(verifiers.iter().map(|v| total(v.verified()))),
                ),
                (
                    "invalid_found",
                    sum(verifiers.iter().map(|v| total(v.invalid()))),
                ),
            ]),
        }
    }
}

/// The fields that have a value; `None` when none has.
fn present<const N: usize>(fields: [(&str, Option<f64>); N]) -> Option<BTreeMap<String, f64>> {
    let out: BTreeMap<String, f64> = fields
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key.to_string(), v)))
        .collect();
    (!out.is_empty()).then_some(out)
}

/// The sum of the values there are; `None` when there is none.
fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values
        .flatten()
        .fold(None, |total, v| Some(total.unwrap_or(0.0) + v))
}

/// The sum of every series of `family` (a typed handle); `None` while it has none. Reads
/// only: no series is created.
fn total(family: &impl Collector) -> Option<f64> {
    total_where(&family.collect(), &[])
}

/// The sum of the series of `families` whose labels include every `(name, value)` of
/// `labels`; `None` when none does.
pub(super) fn total_where(families: &[MetricFamily], labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for family in families {
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if matches {
                let value = match family.get_field_type() {
                    MetricType::COUNTER => m.get_counter().get_value(),
                    _ => m.get_gauge().get_value(),
                };
                *total.get_or_insert(0.0) += value;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use capminer_chain::metrics::ChainMetrics;
    use capminer_chain::verifier::VerifierMetrics;
    use prometheus::Registry;

    /// The lookup by name the status used before its typed reads: the sum of a gathered
    /// family's samples whose labels include every `(name, value)` of `labels`.
    fn by_name(families: &[MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = families.iter().find(|f| f.name() == name)?;
        total_where(std::slice::from_ref(family), labels)
    }

    /// The counters as the lookup by name read them from `registry`.
    fn by_names(registry: &Registry) -> Counters {
        let families = registry.gather();
        let pick = |names: &[(&str, &str)]| -> Option<BTreeMap<String, f64>> {
            let out: BTreeMap<String, f64> = names
                .iter()
                .filter_map(|(key, family)| {
                    by_name(&families, family, &[]).map(|v| (key.to_string(), v))
                })
                .collect();
            (!out.is_empty()).then_some(out)
        };
        Counters {
            epoch: by_name(&families, "capminer_epoch", &[])
                .map(|v| v as u64)
                .filter(|e| *e > 0),
            proofs: pick(&[
                ("found", "capminer_proofs_found_total"),
                ("stored", "capminer_proofs_stored_total"),
                ("stale", "capminer_proofs_stale_total"),
                ("store_errors", "capminer_store_errors_total"),
            ])
            .unwrap_or_default(),
            chain: pick(&[
                ("head_block", "capminer_chain_last_block"),
                ("epoch", "capminer_chain_epoch"),
                ("proofs_pending", "capminer_chain_proofs_pending"),
                ("proofs_submitted", "capminer_chain_proofs_submitted_total"),
                ("proofs_accepted", "capminer_chain_proofs_accepted_total"),
                ("proofs_skipped", "capminer_chain_proofs_skipped_total"),
                ("transactions", "capminer_chain_transactions_total"),
                (
                    "duplicate_host_units",
                    "capminer_chain_duplicate_host_units",
                ),
            ]),
            verifier: pick(&[
                ("backlog_epochs", "capminer_verifier_backlog_epochs"),
                ("proofs_verified", "capminer_verifier_proofs_verified_total"),
                ("invalid_found", "capminer_verifier_invalid_found_total"),
            ]),
        }
    }

    fn verifier(registry: &Registry, byte: u8) -> VerifierMetrics {
        let address = alloy::primitives::Address::repeat_byte(byte);
        VerifierMetrics::register(registry, address, capminer_config::Shard::default()).unwrap()
    }

    #[test]
    fn typed_reads_give_what_the_lookup_by_name_gave() {
        let registry = Registry::new();
        let miner = MinerMetrics::register(&registry).unwrap();
        let mut node = NodeMetrics::default();
        let empty = Counters::read(&miner, &node);
        assert_eq!(empty, by_names(&registry));
        assert_eq!(
            (empty.epoch, empty.chain, empty.verifier),
            (None, None, None)
        );
        assert!(empty.proofs.is_empty());

        // Units counting, a chain client with no transaction yet, two verifiers idle.
        miner.epoch.set(7);
        miner
            .proofs_found
            .with_label_values(&["cpu0", "cpu"])
            .inc_by(3);
        miner
            .proofs_found
            .with_label_values(&["gpu0", "gpu"])
            .inc_by(2);
        miner
            .proofs_stored
            .with_label_values(&["cpu0", "cpu"])
            .inc_by(3);
        let chain = ChainMetrics::register(&registry).unwrap();
        chain.last_block.set(120);
        chain.chain_epoch.set(6);
        chain.proofs_pending.set(4);
        chain.proofs_submitted.inc_by(5);
        chain.proofs_accepted.inc_by(1);
        let (v1, v2) = (verifier(&registry, 1), verifier(&registry, 2));
        v1.backlog().set(2);
        v2.backlog().set(1);
        node.chain = Some(chain.clone());
        node.verifiers = vec![v1.clone(), v2.clone()];
        let counting = Counters::read(&miner, &node);
        assert_eq!(counting, by_names(&registry));
        assert_eq!(counting.epoch, Some(7));
        assert_eq!(counting.proofs["found"], 5.0);
        let chain_fields = counting.chain.as_ref().unwrap();
        assert_eq!(chain_fields["head_block"], 120.0);
        assert_eq!(chain_fields["proofs_skipped"], 0.0);
        assert!(!chain_fields.contains_key("transactions"));
        let verifier_fields = counting.verifier.as_ref().unwrap();
        assert_eq!(verifier_fields["backlog_epochs"], 3.0);
        assert!(!verifier_fields.contains_key("proofs_verified"));

        // Transactions sent, proofs verified and one found invalid.
        chain
            .transactions
            .with_label_values(&["submit", "sent"])
            .inc_by(2);
        chain.proofs_skipped.with_label_values(&["expired"]).inc();
        v1.verified().with_label_values(&["cpu"]).inc_by(4);
        v2.verified().with_label_values(&["gpu"]).inc_by(1);
        v2.invalid().with_label_values(&["gpu"]).inc();
        miner.store_errors.with_label_values(&["cpu0", "cpu"]).inc();
        chain
            .duplicate_host_units
            .with_label_values(&["cpu0", "cpu"])
            .set(1);
        let busy = Counters::read(&miner, &node);
        assert_eq!(busy, by_names(&registry));
        assert_eq!(busy.chain.as_ref().unwrap()["transactions"], 2.0);
        assert_eq!(busy.chain.as_ref().unwrap()["duplicate_host_units"], 1.0);
        assert_eq!(busy.verifier.as_ref().unwrap()["proofs_verified"], 5.0);
    }

    #[test]
    fn hashrates_are_read_by_unit_and_window_without_creating_series() {
        let registry = Registry::new();
        let miner = MinerMetrics::register(&registry).unwrap();
        miner
            .hashrate
            .with_label_values(&["cpu0", "cpu", "10s"])
            .set(12.5);
        let rates = miner.hashrate.collect();
        let families = registry.gather();
        for (unit, window) in [("cpu0", "10s"), ("cpu0", "60s"), ("cpu1", "10s")] {
            let labels = [("unit", unit), ("window", window)];
            assert_eq!(
                total_where(&rates, &labels),
                by_name(&families, "capminer_hashrate", &labels)
            );
        }
        assert_eq!(
            total_where(&rates, &[("unit", "cpu0"), ("window", "10s")]),
            Some(12.5)
        );
        assert_eq!(
            total_where(&rates, &[("unit", "cpu1"), ("window", "10s")]),
            None
        );
        assert_eq!(miner.hashrate.collect()[0].get_metric().len(), 1);
    }
}
