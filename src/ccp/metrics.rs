//! The Prometheus families of `capminer ccp`: one family a metric, labelled by CU id, and
//! counters monotonic across epochs (CCP repeats its families per core and resets them).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The families.
#[derive(Debug, Clone)]
pub(crate) struct CcpMetrics {
    /// Hashes a CU computed, across epochs.
    pub hashes: IntCounterVec,
    /// Proofs a CU found and stored durably.
    pub proofs_found: IntCounterVec,
    /// Proofs handed to the node by `get_proofs_after` and `get_batch_proofs_after`.
    pub proofs_served: IntCounter,
    /// Proofs lost because the store refused a write.
    pub store_errors: IntCounter,
    /// The physical core each allocated CU runs on.
    pub unit_core: IntGaugeVec,
    /// CUs allocated now.
    pub units: IntGauge,
    /// Each allocated CU's state: 3 paused, 2 hashing, 1 keying (cache, dataset), 0 failed.
    pub unit_state: IntGaugeVec,
    /// JSON-RPC calls, by method and outcome.
    pub requests: IntCounterVec,
    /// Time to key a CU (cache plus dataset).
    pub build_seconds: Histogram,
}

impl CcpMetrics {
    /// Creates and registers the families.
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            hashes: IntCounterVec::new(
                Opts::new(
                    "capminer_ccp_hashes_total",
                    "Hashes a compute unit computed, across epochs",
                ),
                &["cu"],
            )?,
            proofs_found: IntCounterVec::new(
                Opts::new(
                    "capminer_ccp_proofs_found_total",
                    "Proofs a compute unit found and stored durably (result hash at or below the difficulty)",
                ),
                &["cu"],
            )?,
            proofs_served: IntCounter::new(
                "capminer_ccp_proofs_served_total",
                "Proofs returned to the node by get_proofs_after and get_batch_proofs_after",
            )?,
            store_errors: IntCounter::new(
                "capminer_ccp_store_errors_total",
                "Proofs lost because the proof store refused the write",
            )?,
            unit_core: IntGaugeVec::new(
                Opts::new(
                    "capminer_ccp_unit_core",
                    "The physical core a compute unit runs on",
                ),
                &["cu"],
            )?,
            units: IntGauge::new("capminer_ccp_units", "Compute units allocated now")?,
            unit_state: IntGaugeVec::new(
                Opts::new(
                    "capminer_ccp_unit_state",
                    "A compute unit's state: 3 paused (control API), 2 hashing, 1 keying (cache and dataset), 0 failed (its threads stopped; see the log)",
                ),
                &["cu"],
            )?,
            requests: IntCounterVec::new(
                Opts::new(
                    "capminer_ccp_requests_total",
                    "JSON-RPC calls by method and outcome",
                ),
                &["method", "outcome"],
            )?,
            build_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "capminer_ccp_dataset_build_seconds",
                    "Time to key a compute unit: cache plus dataset build",
                )
                .buckets(vec![
                    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 300.0,
                ]),
            )?,
        };
        registry.register(Box::new(m.hashes.clone()))?;
        registry.register(Box::new(m.proofs_found.clone()))?;
        registry.register(Box::new(m.proofs_served.clone()))?;
        registry.register(Box::new(m.store_errors.clone()))?;
        registry.register(Box::new(m.unit_core.clone()))?;
        registry.register(Box::new(m.units.clone()))?;
        registry.register(Box::new(m.unit_state.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.build_seconds.clone()))?;
        Ok(m)
    }
}
