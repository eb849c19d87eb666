//! The verifier's Prometheus families.

use alloy::primitives::Address;
use capminer_config::Shard;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Metrics of a verifier.
#[derive(Debug, Clone)]
pub struct VerifierMetrics {
    pub(super) verified: IntCounterVec,
    pub(super) invalid: IntCounterVec,
    pub(super) seconds: Histogram,
    pub(super) backlog: IntGauge,
    pub(super) attestations: IntCounterVec,
}

impl VerifierMetrics {
    /// Creates and registers the families; every series carries the verifier's address and
    /// shard, so several verifiers can share one registry.
    pub fn register(
        registry: &Registry,
        verifier: Address,
        shard: Shard,
    ) -> prometheus::Result<Self> {
        let (v, shard) = (verifier.to_string(), shard.to_string());
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label("verifier", v.clone())
                .const_label("shard", shard.clone())
        };
        let m = Self {
            verified: IntCounterVec::new(
                opts(
                    "capminer_verifier_proofs_verified_total",
                    "Proofs recomputed",
                ),
                &["kind"],
            )?,
            invalid: IntCounterVec::new(
                opts(
                    "capminer_verifier_invalid_found_total",
                    "Recomputed proofs found invalid",
                ),
                &["kind"],
            )?,
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "capminer_verifier_epoch_seconds",
                    "Time to verify every unit of one epoch",
                )
                .const_label("verifier", v.clone())
                .buckets(vec![
                    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            )?,
            backlog: IntGauge::with_opts(opts(
                "capminer_verifier_backlog_epochs",
                "Closed epochs not yet verified",
            ))?,
            attestations: IntCounterVec::new(
                opts(
                    "capminer_verifier_transactions_total",
                    "Attestations and invalid-proof reports sent",
                ),
                &["what"],
            )?,
        };
        registry.register(Box::new(m.verified.clone()))?;
        registry.register(Box::new(m.invalid.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.backlog.clone()))?;
        registry.register(Box::new(m.attestations.clone()))?;
        Ok(m)
    }
}

/// Typed read access to the families a status report shows (the binary's `/api/v1/status`).
impl VerifierMetrics {
    /// `capminer_verifier_backlog_epochs`: closed epochs not yet verified.
    pub fn backlog(&self) -> &IntGauge {
        &self.backlog
    }

    /// `capminer_verifier_proofs_verified_total`, by kind.
    pub fn verified(&self) -> &IntCounterVec {
        &self.verified
    }

    /// `capminer_verifier_invalid_found_total`, by kind.
    pub fn invalid(&self) -> &IntCounterVec {
        &self.invalid
    }
}
