//! `GET /api/v1/live`: what the live page shows beside `GET /api/v1/status`: each unit's
//! dataset build and last re-key, its proofs this epoch against the epoch's `min_proofs` and
//! `max_proofs` with a projection to the epoch's end, the epoch's end, the pipeline per epoch,
//! the chain's totals (gas, balance, claims), the GPU devices, and the alerts.
//!
//! The alerts are the conditions of `deploy/prometheus/alerts.yml`, evaluated here from the
//! same metric handles and the node's [`History`] (for the ones that look back), each with its
//! fix in one line; they fire at once, where Prometheus waits their `for:`. Two are the page's
//! own: a unit paused through the API, and the chain's head not moving (RPC unreachable).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use capminer_miner::{Miner, UnitState};
use capminer_proofs::store::Tally;
use prometheus::core::Collector;
use serde::Serialize;

use super::ApiError;
use super::history::History;
use super::page::{Page, secured_json, unix_now};
use super::status::total_where;

/// Epochs before the current one the pipeline shows.
const PIPELINE_EPOCHS: u64 = 5;
/// Below this balance (wei) the gas alert fires, as in alerts.yml.
const LOW_BALANCE_WEI: f64 = 1e17;
/// Seconds without a new head block before the RPC alert fires.
const HEAD_STALL_SECS: u64 = 120;

/// `GET /api/v1/live`.
#[derive(Debug, Serialize)]
pub(super) struct Live {
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
    /// `epoch_proofs` plus what the rate adds by the epoch's end.
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
    memory_bytes: f64,
}

/// One condition that needs the operator.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct Alert {
    /// The rule's name in alerts.yml (or the page's own).
    name: &'static str,
    severity: &'static str,
    /// The unit, verifier or node it is about.
    subject: String,
    /// What is wrong.
    summary: String,
    /// What to do, in one line.
    fix: &'static str,
}

fn alert(
    name: &'static str,
    severity: &'static str,
    subject: &str,
    summary: String,
    fix: &'static str,
) -> Alert {
    Alert {
        name,
        severity,
        subject: subject.to_string(),
        summary,
        fix,
    }
}

/// `GET /api/v1/live`.
pub(super) async fn live(State(page): State<Page>) -> Result<Response, ApiError> {
    let miner = page.api.miner()?;
    let store = page.api.node.store.clone();
    let epoch = u64::try_from(miner.metrics().epoch.get())
        .ok()
        .filter(|e| *e > 0);
    // The store's lock may wait on a unit's fsync: off the async threads.
    let tallies = match epoch {
        Some(e) => tokio::task::spawn_blocking(move || {
            store.tallies(e.saturating_sub(PIPELINE_EPOCHS)..=e)
        })
        .await
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let history = page.history.lock().unwrap_or_else(|e| e.into_inner());
    Ok(secured_json(&build(
        &miner, &page, epoch, &tallies, &history,
    )))
}

fn build(
    miner: &Miner,
    page: &Page,
    epoch: Option<u64>,
    tallies: &[(u64, capminer_protocol::UnitId, Tally)],
    history: &History,
) -> Live {
    let now = unix_now();
    let chain = page.api.node.metrics.chain.as_ref();
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
    let hour_ago = history.ago(3600);
    let newest = history.fine().back();
    let mut alerts = Vec::new();
    let mut units = Vec::new();
    let mut gpus: BTreeMap<String, GpuLive> = BTreeMap::new();
    for view in miner.units() {
        let info = view.info();
        let label = info.label.as_str();
        let kind = info.kind.as_str();
        let epoch_proofs = tallies
            .iter()
            .filter(|(e, id, _)| Some(*e) == epoch && *id == info.id)
            .map(|(_, _, t)| u64::from(t.counted()))
            .sum();
        let found = |s: &super::history::Sample| {
            s.units.iter().find(|u| &*u.unit == label).map(|u| u.found)
        };
        let proofs_per_hour = match (hour_ago, newest) {
            (Some(a), Some(b)) if b.t > a.t => Some(
                (found(b).unwrap_or(0).saturating_sub(found(a).unwrap_or(0))) as f64 * 3600.0
                    / (b.t - a.t) as f64,
            ),
            _ => None,
        };
        let (min_proofs, max_proofs) = (kind_value(&mins, kind), kind_value(&maxs, kind));
        let projected = match (ends_at, proofs_per_hour) {
            (Some(end), Some(rate)) => {
                Some(epoch_proofs as f64 + rate * end.saturating_sub(now) as f64 / 3600.0)
            }
            _ => None,
        };
        let rate = |w: &str| total_where(&rates, &[("unit", label), ("window", w)]).unwrap_or(0.0);
        // The conditions of alerts.yml about one unit.
        let state = view.state();
        if state == UnitState::Failed {
            alerts.push(alert(
                "CapminerUnitDown",
                "critical",
                label,
                format!("{label} is down after a fault: it finds no proofs"),
                "the watchdog restarts it; if it stays down read its error in the log (core, GPU or driver)",
            ));
        }
        if miner.is_paused(label) {
            alerts.push(alert(
                "CapminerUnitPaused",
                "warning",
                label,
                format!("{label} is paused through the control API: it finds no proofs"),
                "press Resume (or run `capminer ctl resume --unit <unit>`)",
            ));
        } else if matches!(state, UnitState::Hashing(_))
            && rate("15m") > 0.0
            && rate("60s") < 0.5 * rate("15m")
        {
            alerts.push(alert(
                "CapminerHashrateDrop",
                "warning",
                label,
                format!(
                    "{label} hashes at {:.1} H/s over 60 s, under half its 15-minute {:.1} H/s",
                    rate("60s"),
                    rate("15m")
                ),
                "look for throttling, a neighbour on its core, or lost huge pages",
            ));
        }
        if let Some(restarts) = hour_ago
            .and_then(|a| a.units.iter().find(|u| &*u.unit == label))
            .map(|u| view.restarts().saturating_sub(u64::from(u.restarts)))
            .filter(|r| *r >= 3)
        {
            alerts.push(alert(
                "CapminerUnitRestarting",
                "warning",
                label,
                format!("the watchdog restarted {label} {restarts} times in the last hour"),
                "its core, GPU or driver faults again and again: read the log's errors for it",
            ));
        }
        let errors_now = newest.and_then(|s| s.units.iter().find(|u| &*u.unit == label));
        let errors_then = history
            .ago(600)
            .and_then(|s| s.units.iter().find(|u| &*u.unit == label));
        if let (Some(now_s), Some(then_s)) = (errors_now, errors_then)
            && now_s.compute_errors > then_s.compute_errors
        {
            alerts.push(alert(
                "CapminerComputeErrors",
                "warning",
                label,
                format!(
                    "{} GPU results of {label} in 10 minutes were not reproduced by the CPU reference",
                    now_s.compute_errors - then_s.compute_errors
                ),
                "undo overclocking, test the card's memory, or update its driver",
            ));
        }
        if let (Some(min), Some(end), Some(d)) = (min_proofs, ends_at, duration)
            && epoch_proofs < min
            && (end.saturating_sub(now) as f64) < 0.25 * d as f64
        {
            alerts.push(alert(
                "CapminerProofsBelowMinimumLateInEpoch",
                "critical",
                label,
                format!("{label} has {epoch_proofs} proofs, fewer than the {min} the reward needs, in the epoch's last quarter"),
                "make sure it hashes (not paused, not failed); plan more units or cores for the next epoch",
            ));
        }
        if info.kind == capminer_protocol::UnitKind::Gpu {
            let device = info.place.clone();
            let g = gpus.entry(device.clone()).or_insert(GpuLive {
                device,
                units: Vec::new(),
                hashrate: 0.0,
                memory_bytes: 0.0,
            });
            g.units.push(label.to_string());
            g.hashrate += rate("60s");
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
    node_alerts(page, history, &mut alerts);
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
            attested: verifier_total(page, |v| total_where(&v.verified().collect(), &[])),
        }),
        gpus: gpus.into_values().collect(),
        alerts,
    }
}

/// The sum over this process's verifiers; `None` without one.
fn verifier_total(
    page: &Page,
    read: impl Fn(&capminer_chain::verifier::VerifierMetrics) -> Option<f64>,
) -> Option<f64> {
    let verifiers = &page.api.node.metrics.verifiers;
    (!verifiers.is_empty()).then(|| verifiers.iter().filter_map(&read).sum())
}

/// The alerts about the node as a whole: the store, the chain and the verifiers.
fn node_alerts(page: &Page, history: &History, alerts: &mut Vec<Alert>) {
    let newest = history.fine().back();
    let node = "node";
    if let (Some(now_s), Some(then_s)) = (newest, history.ago(600))
        && now_s.store_errors > then_s.store_errors
    {
        alerts.push(alert(
            "CapminerStoreErrors",
            "critical",
            node,
            format!(
                "{} proof store writes failed in 10 minutes",
                now_s.store_errors - then_s.store_errors
            ),
            "free or replace the disk of miner.state_dir; the proofs wait in memory and are retried",
        ));
    }
    if let Some(chain) = &page.api.node.metrics.chain {
        let head = chain.last_block.get();
        if head > 0 && chain.balance_wei.get() < LOW_BALANCE_WEI {
            alerts.push(alert(
                "CapminerGasBalanceLow",
                "warning",
                node,
                format!(
                    "the provider's signer holds {:.4} ether, under 0.1",
                    chain.balance_wei.get() / 1e18
                ),
                "top up the signer's account: proof batches stop when it cannot pay their gas",
            ));
        }
        if chain.final_proofs_reorged.get() > 0 {
            alerts.push(alert(
                "CapminerFinalProofsReorged",
                "critical",
                node,
                format!(
                    "{} proofs called final lost their block to a deeper reorg since start",
                    chain.final_proofs_reorged.get()
                ),
                "raise chain.confirmations",
            ));
        }
        if let (Some(now_s), Some(then_s)) = (newest, history.ago(HEAD_STALL_SECS))
            && now_s.t >= then_s.t + HEAD_STALL_SECS
            && now_s.head_block == then_s.head_block
        {
            alerts.push(alert(
                "CapminerRpcUnreachable",
                "critical",
                node,
                format!(
                    "the chain's head has stayed at block {} for {} s",
                    now_s.head_block,
                    now_s.t - then_s.t
                ),
                "check that chain.rpc_url's node runs, is synced and reachable from this host",
            ));
        }
        if let (Some(now_s), Some(then_s)) = (newest, history.ago(900))
            && now_s.t >= then_s.t + 900
            && chain.proofs_pending.get() > 0
            && now_s.accepted == then_s.accepted
        {
            alerts.push(alert(
                "CapminerProofsPendingTooLong",
                "critical",
                node,
                format!(
                    "{} proofs wait and none became final for 15 minutes",
                    chain.proofs_pending.get()
                ),
                "check the RPC node, the gas price cap (chain.gas.max_fee_gwei) and the balance",
            ));
        }
    }
    for v in &page.api.node.metrics.verifiers {
        if v.backlog().get() > 1 {
            alerts.push(alert(
                "CapminerVerifierBacklog",
                "warning",
                "verifier",
                format!("a verifier is {} closed epochs behind", v.backlog().get()),
                "give the verifier CPU, a reachable RPC node and gas",
            ));
        }
    }
    if let Some(invalid) = verifier_total(page, |v| total_where(&v.invalid().collect(), &[]))
        && invalid > 0.0
    {
        alerts.push(alert(
            "CapminerVerifierFoundInvalidProofs",
            "critical",
            "verifier",
            format!("the verifiers found {invalid} invalid proofs since start (reported on chain)"),
            "a provider cheats, or miner and verifier disagree on parameters: compare configs",
        ));
    }
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
