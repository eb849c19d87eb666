//! The chain client's Prometheus metrics.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Metric families of the chain client.
#[derive(Debug, Clone)]
pub struct ChainMetrics {
    /// Proofs put into transactions (resubmissions included).
    pub proofs_submitted: IntCounter,
    /// Proofs the contract accepted (counted once, when first seen in a canonical log).
    pub proofs_accepted: IntCounter,
    /// Proofs called final whose block a reorg deeper than `chain.confirmations` replaced.
    pub final_proofs_reorged: IntCounter,
    /// Proofs the contract skipped, or that could not be sent before their epoch closed.
    pub proofs_skipped: IntCounterVec,
    /// Proofs not yet final.
    pub proofs_pending: IntGauge,
    /// Transactions by kind and event (sent, replaced, failed).
    pub transactions: IntCounterVec,
    /// Gas used by included transactions.
    pub gas_used: IntCounter,
    /// Gas per accepted proof of the last included batch.
    pub gas_per_proof: IntGauge,
    /// Last block seen.
    pub last_block: IntGauge,
    /// The chain's current epoch.
    pub chain_epoch: IntGauge,
    /// Rewards claimed, in gwei.
    pub rewards_claimed_gwei: IntCounter,
    /// The signer's balance, in wei (what pays for gas).
    pub balance_wei: Gauge,
    /// Proofs per unit the current epoch needs for its reward, by kind.
    pub epoch_min_proofs: IntGaugeVec,
    /// Proofs per unit the current epoch counts at most, by kind.
    pub epoch_max_proofs: IntGaugeVec,
    /// When the current epoch ends (unix time, chain clock).
    pub epoch_ends: IntGauge,
    /// Seconds per epoch.
    pub epoch_duration: IntGauge,
    /// Proofs of the current epoch a unit has in the store, not skipped.
    pub epoch_proofs: IntGaugeVec,
    /// 1 for a unit held because another machine mines its id (a duplicate host), by unit.
    pub duplicate_host_units: IntGaugeVec,
    /// Nonces of this host's units the contract accepted from transactions this host never
    /// sent, by unit.
    pub foreign_nonces: IntCounterVec,
}

/// Every reason a proof is skipped for (`capminer_chain_proofs_skipped_total{reason}`), exported
/// from the start at 0, so a rate over them is 0 rather than absent.
pub const SKIP_REASONS: [&str; 4] = ["contract", "expired", "over_max", "seed_changed"];

impl ChainMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            proofs_submitted: IntCounter::new(
                "capminer_chain_proofs_submitted_total",
                "Proofs put into transactions, resubmissions included",
            )?,
            proofs_accepted: IntCounter::new(
                "capminer_chain_proofs_accepted_total",
                "Proofs the contract accepted, counted once",
            )?,
            final_proofs_reorged: IntCounter::new(
                "capminer_chain_final_proofs_reorged_total",
                "Proofs called final whose block a reorg deeper than chain.confirmations replaced",
            )?,
            proofs_skipped: IntCounterVec::new(
                Opts::new(
                    "capminer_chain_proofs_skipped_total",
                    "Proofs that will never count: skipped by the contract, over the unit's maximum, or their epoch closed",
                ),
                &["reason"],
            )?,
            proofs_pending: IntGauge::new(
                "capminer_chain_proofs_pending",
                "Proofs found, submitted or included but not yet final",
            )?,
            transactions: IntCounterVec::new(
                Opts::new(
                    "capminer_chain_transactions_total",
                    "Transactions by kind (submit, advance, claim) and event (sent, replaced, failed)",
                ),
                &["kind", "event"],
            )?,
            gas_used: IntCounter::new(
                "capminer_chain_gas_used_total",
                "Gas used by included transactions",
            )?,
            gas_per_proof: IntGauge::new(
                "capminer_chain_gas_per_proof",
                "Gas per accepted proof of the last included proof batch",
            )?,
            last_block: IntGauge::new(
                "capminer_chain_last_block",
                "Number of the last block seen",
            )?,
            chain_epoch: IntGauge::new("capminer_chain_epoch", "The contract's current epoch")?,
            rewards_claimed_gwei: IntCounter::new(
                "capminer_chain_rewards_claimed_gwei_total",
                "Rewards claimed, in gwei",
            )?,
            balance_wei: Gauge::new(
                "capminer_chain_balance_wei",
                "Balance of the provider's signer, in wei, read every tick: it pays the gas",
            )?,
            epoch_min_proofs: IntGaugeVec::new(
                Opts::new(
                    "capminer_chain_epoch_min_proofs",
                    "Proofs per unit the current epoch needs for its reward, by unit kind",
                ),
                &["kind"],
            )?,
            epoch_max_proofs: IntGaugeVec::new(
                Opts::new(
                    "capminer_chain_epoch_max_proofs",
                    "Proofs per unit the current epoch counts at most, by unit kind",
                ),
                &["kind"],
            )?,
            epoch_ends: IntGauge::new(
                "capminer_chain_epoch_ends_timestamp_seconds",
                "When the contract's current epoch ends, unix time (the chain's clock)",
            )?,
            epoch_duration: IntGauge::new(
                "capminer_chain_epoch_duration_seconds",
                "Seconds per epoch of the contract",
            )?,
            epoch_proofs: IntGaugeVec::new(
                Opts::new(
                    "capminer_chain_epoch_proofs",
                    "Proofs of the contract's current epoch a unit has in the store (found, submitted, included or final; not skipped)",
                ),
                &["unit", "kind"],
            )?,
            duplicate_host_units: IntGaugeVec::new(
                Opts::new(
                    "capminer_chain_duplicate_host_units",
                    "1 for a unit held idle because another machine mines its id (a copied config or image: the same miner.host)",
                ),
                &["unit", "kind"],
            )?,
            foreign_nonces: IntCounterVec::new(
                Opts::new(
                    "capminer_chain_foreign_nonces_total",
                    "Nonces of this host's units the contract accepted from transactions this host never sent (another machine mining the same unit ids)",
                ),
                &["unit", "kind"],
            )?,
        };
        for reason in SKIP_REASONS {
            m.proofs_skipped.with_label_values(&[reason]);
        }
        m.register_in(registry)?;
        Ok(m)
    }

    /// Registers every family in `registry`.
    fn register_in(&self, registry: &Registry) -> prometheus::Result<()> {
        let m = self;
        registry.register(Box::new(m.proofs_submitted.clone()))?;
        registry.register(Box::new(m.proofs_accepted.clone()))?;
        registry.register(Box::new(m.final_proofs_reorged.clone()))?;
        registry.register(Box::new(m.proofs_skipped.clone()))?;
        registry.register(Box::new(m.proofs_pending.clone()))?;
        registry.register(Box::new(m.transactions.clone()))?;
        registry.register(Box::new(m.gas_used.clone()))?;
        registry.register(Box::new(m.gas_per_proof.clone()))?;
        registry.register(Box::new(m.last_block.clone()))?;
        registry.register(Box::new(m.chain_epoch.clone()))?;
        registry.register(Box::new(m.rewards_claimed_gwei.clone()))?;
        registry.register(Box::new(m.balance_wei.clone()))?;
        registry.register(Box::new(m.epoch_min_proofs.clone()))?;
        registry.register(Box::new(m.epoch_max_proofs.clone()))?;
        registry.register(Box::new(m.epoch_ends.clone()))?;
        registry.register(Box::new(m.epoch_duration.clone()))?;
        registry.register(Box::new(m.epoch_proofs.clone()))?;
        registry.register(Box::new(m.duplicate_host_units.clone()))?;
        registry.register(Box::new(m.foreign_nonces.clone()))?;
        Ok(())
    }
}
