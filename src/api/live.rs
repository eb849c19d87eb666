//! `GET /api/v1/live`: what the live page shows beside `GET /api/v1/status`: each unit's
//! dataset build and last re-key, its proofs this epoch against the epoch's `min_proofs` and
//! `max_proofs` with a projection to the epoch's end, the epoch's end, the pipeline per epoch,
//! the chain's totals (gas, balance, claims), the GPU devices, and the alerts.
//!
//! The alerts ([`alerts`](super::alerts)) are evaluated from facts gathered here: the metric
//! handles and the node's [`History`] for the ones that look back. This module is `capminer
//! run`'s [`LiveSource`]: it also takes the node's samples for the history.

use std::collections::BTreeMap;
use std::sync::Mutex;

use capminer_miner::{Miner, UnitState};
use capminer_proofs::store::Tally;
use prometheus::core::Collector;
use serde::Serialize;

use super::Api;
use super::alerts::{self, Alert, ChainFacts, NodeFacts, UnitFacts};
use super::history::{History, Sample, UnitSample};
use super::page::{LiveSource, unix_now};
use super::status::total_where;

/// Epochs before the current one the pipeline shows.
const PIPELINE_EPOCHS: u64 = 5;
/// `GET /api/v1/live`.
#[derive(Debug, Serialize)]
pub(crate) struct Live {
    /// Unix time of this answer (the node's clock).
    now: u64,
    epoch: EpochLive,
    units: Vec<UnitLive>,
    /// Open epochs, newest first: proofs by state (summed over units).
    pipeline: Vec<EpochPipeline>,
    chain: Option<ChainLive>,
    gpus: Vec<GpuLive>,
    alerts: Vec<Alert>,
}

#[derive(Debug, Serialize)]
struct EpochLive {
    number: Option<u64>,
    /// When it ends (unix time, chain clock); unknown without a chain client.
    ends_at: Option<u64>,
    duration_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
struct UnitLive {
    unit: String,
    /// Dataset items built and in all, while building.
    build: Option<(u64, u64)>,
    /// The last re-key: epoch, seconds it took.
    last_build: Option<(u64, f64)>,
    /// Proofs of this epoch in the store (not skipped).
    epoch_proofs: u64,
    min_proofs: Option<u64>,
    max_proofs: Option<u64>,
    /// Proofs found per hour over the history's last hour.
    proofs_per_hour: Option<f64>,
    /// `epoch_proofs` plus what the rate adds by the epoch's end, at most `max_proofs`.
    projected: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
struct EpochPipeline {
    epoch: u64,
    /// Found, waiting to be submitted.
    found: u32,
    /// Submitted or included, on their way to final.
    moving: u32,
    #[serde(rename = "final")]
    settled: u32,
    skipped: u32,
}

#[derive(Debug, Serialize)]
struct ChainLive {
    head_block: i64,
    gas_used: u64,
    balance_ether: f64,
    rewards_claimed_gwei: u64,
    proofs_accepted: u64,
    /// Proofs the verifiers of this process recomputed (a devnet's).
    attested: Option<f64>,
}

#[derive(Debug, Serialize)]
struct GpuLive {
    device: String,
    units: Vec<String>,
    hashrate: f64,
    /// Dataset bytes its units read a second: the hashrate times the network's bytes a hash
    /// (`accesses` × 128).
    bytes_per_second: f64,
    memory_bytes: f64,
}

impl LiveSource for Api {
    type Live = Live;

    fn live(&self, history: &Mutex<History>) -> Result<Live, String> {
        let miner = self.node.miner.upgrade().ok_or("the miner is stopping")?;
        let epoch = u64::try_from(miner.metrics().epoch.get())
            .ok()
            .filter(|e| *e > 0);
        // The store's lock may wait on a unit's fsync: the page calls this off the async threads.
        let tallies = match epoch {
            Some(e) => self
                .node
                .store
                .tallies(e.saturating_sub(PIPELINE_EPOCHS)..=e),
            None => Vec::new(),
        };
        let history = history.lock().unwrap_or_else(|e| e.into_inner());
        Ok(build(&miner, self, epoch, &tallies, &history))
    }

    fn sample(&self) -> Option<Sample> {
        let miner = self.node.miner.upgrade()?;
        Some(take_sample(&miner, self))
    }
}

/// The node now: each unit's 10 s hashrate and counters, the chain's head and accepted proofs.
/// Reads metric handles only (no lock a unit holds while hashing).
fn take_sample(miner: &Miner, api: &Api) -> Sample {
    let metrics = miner.metrics();
    let (rates, found, errors) = (
        metrics.hashrate.collect(),
        metrics.proofs_found.collect(),
        metrics.compute_errors.collect(),
    );
    let units = miner
        .units()
        .iter()
        .map(|u| {
            let label = u.info().label.as_str();
            let only = [("unit", label)];
            UnitSample {
                unit: label.into(),
                hashrate: total_where(&rates, &[("unit", label), ("window", "10s")]).unwrap_or(0.0)
                    as f32,
                found: total_where(&found, &only).unwrap_or(0.0) as u64,
                compute_errors: total_where(&errors, &only).unwrap_or(0.0) as u64,
                restarts: u32::try_from(u.restarts()).unwrap_or(u32::MAX),
            }
        })
        .collect();
    let mut sample = Sample::new(unix_now(), units);
    if let Some(chain) = &api.node.metrics.chain {
        sample.head_block = u64::try_from(chain.last_block.get()).unwrap_or(0);
        sample.accepted = chain.proofs_accepted.get();
    }
    sample.store_errors = total_where(&metrics.store_errors.collect(), &[]).unwrap_or(0.0) as u64;
    sample
}

fn build<'a>(
    miner: &Miner,
    api: &Api,
    epoch: Option<u64>,
    tallies: &[(u64, capminer_protocol::UnitId, Tally)],
    history: &'a History,
) -> Live {
    let now = unix_now();
    let chain = api.node.metrics.chain.as_ref();
    let ends_at = chain
        .and_then(|c| u64::try_from(c.epoch_ends.get()).ok())
        .filter(|t| *t > 0);
    let duration = chain
        .and_then(|c| u64::try_from(c.epoch_duration.get()).ok())
        .filter(|d| *d > 0);
    let (mins, maxs) = match chain {
        Some(c) => (c.epoch_min_proofs.collect(), c.epoch_max_proofs.collect()),
        None => (Vec::new(), Vec::new()),
    };
    let kind_value = |families: &[prometheus::proto::MetricFamily], kind: &str| {
        total_where(families, &[("kind", kind)]).map(|v| v as u64)
    };
    let rates = miner.metrics().hashrate.collect();
    let memory = miner.metrics().gpu_memory.collect();
    let newest = history.fine().back();
    let mut alerts = Vec::new();
    let mut units = Vec::new();
    let mut gpus: BTreeMap<String, GpuLive> = BTreeMap::new();
    let bytes_per_hash = api
        .node
        .reloader
        .running()
        .network
        .gpu_challenge()
        .bytes_per_hash() as f64;
    for view in miner.units() {
        let info = view.info();
        let label = info.label.as_str();
        let kind = info.kind.as_str();
        let epoch_proofs = tallies
            .iter()
            .filter(|(e, id, _)| Some(*e) == epoch && *id == info.id)
            .map(|(_, _, t)| u64::from(t.counted()))
            .sum();
        let proofs_per_hour = history.found_per_hour(label);
        let (min_proofs, max_proofs) = (kind_value(&mins, kind), kind_value(&maxs, kind));
        let projected = match (ends_at, proofs_per_hour) {
            // The contract counts no more than the maximum (the chain client idles the unit there).
            (Some(end), Some(rate)) => Some(
                (epoch_proofs as f64 + rate * end.saturating_sub(now) as f64 / 3600.0)
                    .min(max_proofs.map_or(f64::INFINITY, |m| m as f64)),
            ),
            _ => None,
        };
        let rate = |w: &str| total_where(&rates, &[("unit", label), ("window", w)]).unwrap_or(0.0);
        let state = view.state();
        let in_sample = |s: Option<&'a Sample>| unit_in(s, label);
        let since = |secs: u64, read: fn(&UnitSample) -> u64| {
            let then = in_sample(history.ago(secs))?;
            Some(read(in_sample(newest)?).saturating_sub(read(then)))
        };
        alerts.extend(alerts::unit_alerts(&UnitFacts {
            label,
            failed: state == UnitState::Failed,
            paused: miner.is_paused(label),
            hashing: matches!(state, UnitState::Hashing(_)),
            rate_60s: rate("60s"),
            rate_15m: rate("15m"),
            // The sampled count against the live one: a restart since the last sample counts.
            restarts_30m: in_sample(history.ago(1800))
                .map(|then| view.restarts().saturating_sub(u64::from(then.restarts))),
            compute_errors_10m: since(600, |u| u.compute_errors),
            epoch_proofs,
            min_proofs,
            epoch_left: ends_at
                .zip(duration)
                .map(|(end, d)| (end.saturating_sub(now), d)),
            duplicate_host: miner
                .hold(label)
                .filter(|why| why.starts_with(capminer_chain::DUPLICATE_HOST_HOLD)),
        }));
        if info.kind == capminer_protocol::UnitKind::Gpu {
            let device = info.place.clone();
            let g = gpus.entry(device.clone()).or_insert(GpuLive {
                device,
                units: Vec::new(),
                hashrate: 0.0,
                bytes_per_second: 0.0,
                memory_bytes: 0.0,
            });
            g.units.push(label.to_string());
            g.hashrate += rate("60s");
            g.bytes_per_second += rate("60s") * bytes_per_hash;
            g.memory_bytes += total_where(&memory, &[("unit", label)]).unwrap_or(0.0);
        }
        units.push(UnitLive {
            unit: label.to_string(),
            build: match state {
                UnitState::Building { done, total } => Some((done, total)),
                _ => None,
            },
            last_build: view.last_build().map(|b| (b.epoch, b.seconds)),
            epoch_proofs,
            min_proofs,
            max_proofs,
            proofs_per_hour,
            projected,
        });
    }
    alerts.extend(alerts::node_alerts(&node_facts(api, history)));
    Live {
        now,
        epoch: EpochLive {
            number: epoch,
            ends_at,
            duration_seconds: duration,
        },
        units,
        pipeline: pipeline(tallies),
        chain: chain.map(|c| ChainLive {
            head_block: c.last_block.get(),
            gas_used: c.gas_used.get(),
            balance_ether: c.balance_wei.get() / 1e18,
            rewards_claimed_gwei: c.rewards_claimed_gwei.get(),
            proofs_accepted: c.proofs_accepted.get(),
            attested: verifier_total(api, |v| total_where(&v.verified().collect(), &[])),
        }),
        gpus: gpus.into_values().collect(),
        alerts,
    }
}

/// The sum over this process's verifiers; `None` without one.
fn verifier_total(
    api: &Api,
    read: impl Fn(&capminer_chain::verifier::VerifierMetrics) -> Option<f64>,
) -> Option<f64> {
    let verifiers = &api.node.metrics.verifiers;
    (!verifiers.is_empty()).then(|| verifiers.iter().filter_map(&read).fold(0.0, |a, b| a + b))
}

/// The unit labelled `label` in `sample`.
fn unit_in<'a>(sample: Option<&'a Sample>, label: &str) -> Option<&'a UnitSample> {
    sample?.units.iter().find(|u| &*u.unit == label)
}

/// The facts of the node-wide alerts.
fn node_facts(api: &Api, history: &History) -> NodeFacts {
    let newest = history.fine().back();
    let metrics = &api.node.metrics;
    NodeFacts {
        store_errors_10m: newest
            .zip(history.ago(600))
            .map(|(now_s, then_s)| now_s.store_errors.saturating_sub(then_s.store_errors)),
        chain: metrics.chain.as_ref().map(|c| ChainFacts {
            head_block: c.last_block.get(),
            balance_wei: c.balance_wei.get(),
            final_proofs_reorged: c.final_proofs_reorged.get(),
            head_still_secs: unchanged_secs(history, |s| s.head_block),
            proofs_pending: c.proofs_pending.get(),
            no_accept_secs: unchanged_secs(history, |s| s.accepted),
        }),
        verifier_backlogs: metrics
            .verifiers
            .iter()
            .map(|v| v.backlog().get())
            .collect(),
        invalid_found: verifier_total(api, |v| total_where(&v.invalid().collect(), &[])),
    }
}

/// For how many seconds `read` of the history's samples has stayed at its newest value (as far
/// back as the history goes; 0 without samples).
fn unchanged_secs(history: &History, read: impl Fn(&Sample) -> u64) -> u64 {
    let Some(newest) = history.fine().back() else {
        return 0;
    };
    let value = read(newest);
    let oldest_same = history
        .fine()
        .iter()
        .rev()
        .take_while(|s| read(s) == value)
        .last()
        .map_or(newest.t, |s| s.t);
    newest.t - oldest_same
}

/// The tallies summed per epoch, newest first.
fn pipeline(tallies: &[(u64, capminer_protocol::UnitId, Tally)]) -> Vec<EpochPipeline> {
    let mut out: BTreeMap<u64, EpochPipeline> = BTreeMap::new();
    for (epoch, _, t) in tallies {
        let e = out.entry(*epoch).or_insert(EpochPipeline {
            epoch: *epoch,
            found: 0,
            moving: 0,
            settled: 0,
            skipped: 0,
        });
        e.found += t.found;
        e.moving += t.moving;
        e.settled += t.settled;
        e.skipped += t.skipped;
    }
    out.into_values().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_sums_units_per_epoch_newest_first() {
        let unit = |b: u8| capminer_protocol::UnitId([b; 32]);
        let t = |found, moving, settled, skipped| Tally {
            found,
            moving,
            settled,
            skipped,
        };
        let got = pipeline(&[
            (6, unit(1), t(0, 1, 4, 1)),
            (7, unit(1), t(2, 1, 0, 0)),
            (7, unit(2), t(3, 0, 0, 0)),
        ]);
        assert_eq!(
            got,
            vec![
                EpochPipeline {
                    epoch: 7,
                    found: 5,
                    moving: 1,
                    settled: 0,
                    skipped: 0
                },
                EpochPipeline {
                    epoch: 6,
                    found: 0,
                    moving: 1,
                    settled: 4,
                    skipped: 1
                },
            ]
        );
    }
}
