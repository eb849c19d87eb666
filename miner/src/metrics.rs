//! The miner's Prometheus metrics: one family per metric, labelled by unit and kind.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Metric families of the miner, registered once.
#[derive(Debug, Clone)]
pub struct MinerMetrics {
    /// Hashes computed (monotonic across epochs).
    pub hashes: IntCounterVec,
    /// Hashrate over a window.
    pub hashrate: GaugeVec,
    /// Proofs found.
    pub proofs_found: IntCounterVec,
    /// Proofs stored durably.
    pub proofs_stored: IntCounterVec,
    /// Proofs found but waiting for the unit's other threads, or for a store retry.
    pub proofs_waiting: IntGaugeVec,
    /// Failed writes to the proof store (proofs kept in memory and retried).
    pub store_errors: IntCounterVec,
    /// Proofs dropped because their epoch was re-seeded while they were mined.
    pub proofs_stale: IntCounterVec,
    /// Dataset (or light cache) build time.
    pub dataset_build_seconds: HistogramVec,
    /// Share of the unit's dataset on 2 MiB pages (reserved or transparent), 0 to 1.
    pub huge_pages: GaugeVec,
    /// Static facts about each unit, as labels.
    pub unit_info: IntGaugeVec,
    /// The epoch being mined.
    pub epoch: IntGauge,
    /// GPU results the CPU reference did not reproduce (dropped, never stored).
    pub compute_errors: IntCounterVec,
    /// Device memory a GPU unit holds.
    pub gpu_memory: IntGaugeVec,
    /// 1 while a unit runs, 0 once it failed.
    pub unit_up: IntGaugeVec,
    /// Always 1; the labels describe the build.
    pub build_info: IntGaugeVec,
    /// Units restarted by the watchdog, by reason.
    pub unit_restarts: IntCounterVec,
}

const UNIT: &[&str] = &["unit", "kind"];

impl MinerMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = Families(registry);
        Ok(Self {
            hashes: r.counter(
                "capminer_hashes_total",
                "Hashes computed by a unit, across all epochs",
                UNIT,
            )?,
            hashrate: r.gauge(
                "capminer_hashrate",
                "Hashes per second of a unit over a sliding window (10s, 60s, 15m)",
                &["unit", "kind", "window"],
            )?,
            proofs_found: r.counter(
                "capminer_proofs_found_total",
                "Proofs found by a unit (hash at or below the target)",
                UNIT,
            )?,
            proofs_stored: r.counter(
                "capminer_proofs_stored_total",
                "Proofs written durably to the proof store",
                UNIT,
            )?,
            proofs_waiting: r.int_gauge(
                "capminer_proofs_waiting",
                "Proofs found but not yet stored (nonce ordering or store retry)",
                UNIT,
            )?,
            store_errors: r.counter(
                "capminer_store_errors_total",
                "Failed writes to the proof store; the proofs are kept and retried",
                UNIT,
            )?,
            proofs_stale: r.counter(
                "capminer_proofs_stale_total",
                "Proofs dropped: mined under a seed their epoch no longer has (a deep reorg), or for an epoch already settled and archived",
                UNIT,
            )?,
            dataset_build_seconds: r.add(HistogramVec::new(
                HistogramOpts::new(
                    "capminer_dataset_build_seconds",
                    "Time to key a unit: cache plus dataset build",
                )
                .buckets(vec![
                    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
                ]),
                UNIT,
            )?)?,
            huge_pages: r.gauge(
                "capminer_huge_pages",
                "Share of the unit's dataset on 2 MiB pages, reserved or transparent (0 to 1)",
                UNIT,
            )?,
            unit_info: r.int_gauge(
                "capminer_unit_info",
                "Always 1; the labels describe the unit",
                &["unit", "kind", "id", "place", "threads", "flags"],
            )?,
            epoch: r.add(IntGauge::new(
                "capminer_epoch",
                "Number of the epoch being mined",
            )?)?,
            compute_errors: r.counter(
                "capminer_compute_errors_total",
                "GPU results the CPU reference did not reproduce; dropped, never stored",
                UNIT,
            )?,
            gpu_memory: r.int_gauge(
                "capminer_gpu_memory_bytes",
                "Device memory a GPU unit holds",
                &["unit", "device"],
            )?,
            unit_up: r.int_gauge(
                "capminer_unit_up",
                "1 while the unit runs (hashing, keying, idle or paused), 0 while it is down after a fault (until the watchdog restarts it)",
                UNIT,
            )?,
            build_info: r.int_gauge(
                "capminer_build_info",
                "Always 1; the labels describe the build",
                &["version", "commit", "randomx_flags"],
            )?,
            unit_restarts: r.counter(
                "capminer_unit_restarts_total",
                "Units stopped and restarted alone by the watchdog, by reason (panic, error, device_lost, stall, compute_errors)",
                &["unit", "kind", "reason"],
            )?,
        })
    }
}

/// Creates families and registers each in the registry.
struct Families<'a>(&'a Registry);

impl Families<'_> {
    /// Registers `family` and returns it.
    fn add<M: Collector + Clone + 'static>(&self, family: M) -> prometheus::Result<M> {
        self.0.register(Box::new(family.clone()))?;
        Ok(family)
    }

    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn int_gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }
}
