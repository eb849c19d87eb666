//! The live page's alerts: the conditions of `deploy/prometheus/alerts.yml`, evaluated from
//! facts the node gathers ([`UnitFacts`], [`NodeFacts`]: its metric handles and its
//! [`History`](super::history::History) for the ones that look back), each with its fix in one
//! line. They fire at once, where Prometheus waits their `for:`; the ones alerts.yml counts over
//! a window count here over the history's (10 min, 30 min) or since start where the history has
//! no counter (reorged final proofs, invalid proofs found); a duplicate host fires from the chain
//! client's hold on the unit. Two are the page's own: a unit paused through the API, and the
//! chain's head not moving (RPC unreachable). `capminer ccp`'s page raises its own, with these
//! types (`crate::ccp::alerts`).

use serde::Serialize;

/// Below this balance (wei) the gas alert fires, as in alerts.yml.
const LOW_BALANCE_WEI: f64 = 1e17;
/// Seconds without a new head block before the RPC alert fires.
pub(super) const HEAD_STALL_SECS: u64 = 120;
/// Seconds without a proof becoming final, while some wait, before that alert fires.
pub(super) const PENDING_SECS: u64 = 900;

/// One condition that needs the operator.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Alert {
    /// The rule's name in alerts.yml (or the page's own).
    pub name: &'static str,
    /// `critical` or `warning`, as in alerts.yml.
    pub severity: &'static str,
    /// The unit, verifier or node it is about.
    pub subject: String,
    /// What is wrong.
    pub summary: String,
    /// What to do, in one line.
    pub fix: &'static str,
}

/// An alert (for `capminer ccp`'s page too, whose rules are in `crate::ccp::alerts`).
pub(crate) fn alert(
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

/// What the alerts about one unit look at.
#[derive(Debug, Default)]
pub(super) struct UnitFacts<'a> {
    pub label: &'a str,
    pub failed: bool,
    pub paused: bool,
    pub hashing: bool,
    /// Hashes per second over 60 s and 15 min.
    pub rate_60s: f64,
    pub rate_15m: f64,
    /// Watchdog restarts within the history's last 30 minutes.
    pub restarts_30m: Option<u64>,
    /// Compute errors within the history's last 10 minutes.
    pub compute_errors_10m: Option<u64>,
    pub epoch_proofs: u64,
    pub min_proofs: Option<u64>,
    /// Seconds to the epoch's end, and the epoch's length (with a chain client).
    pub epoch_left: Option<(u64, u64)>,
    /// The chain client's hold when another machine mines this unit's id (its evidence).
    pub duplicate_host: Option<String>,
}

/// What the alerts about the node as a whole look at.
#[derive(Debug, Default)]
pub(super) struct NodeFacts {
    /// Store write errors within the history's last 10 minutes.
    pub store_errors_10m: Option<u64>,
    pub chain: Option<ChainFacts>,
    /// Each verifier's closed epochs not verified.
    pub verifier_backlogs: Vec<i64>,
    /// Invalid proofs the verifiers found since start (`None` without a verifier).
    pub invalid_found: Option<f64>,
}

/// What the chain alerts look at.
#[derive(Debug, Default)]
pub(super) struct ChainFacts {
    pub head_block: i64,
    pub balance_wei: f64,
    pub final_proofs_reorged: u64,
    /// Seconds the head has stayed at `head_block` (as far back as the history sees).
    pub head_still_secs: u64,
    pub proofs_pending: i64,
    /// Seconds no proof was accepted (as far back as the history sees).
    pub no_accept_secs: u64,
}

/// The alerts about one unit.
pub(super) fn unit_alerts(f: &UnitFacts<'_>) -> Vec<Alert> {
    let label = f.label;
    let mut out = Vec::new();
    if f.failed {
        out.push(alert(
            "CapminerUnitDown",
            "critical",
            label,
            format!("{label} is down after a fault: it finds no proofs"),
            "the watchdog restarts it; if it stays down read its error in the log (core, GPU or driver)",
        ));
    }
    if f.paused {
        out.push(alert(
            "CapminerUnitPaused",
            "warning",
            label,
            format!("{label} is paused through the control API: it finds no proofs"),
            "press Resume (or run `capminer ctl resume --unit <unit>`)",
        ));
    } else if f.hashing && f.rate_15m > 0.0 && f.rate_60s < 0.5 * f.rate_15m {
        out.push(alert(
            "CapminerHashrateDrop",
            "warning",
            label,
            format!(
                "{label} hashes at {:.1} H/s over 60 s, under half its 15-minute {:.1} H/s",
                f.rate_60s, f.rate_15m
            ),
            "look for throttling, a neighbour on its core, or lost huge pages",
        ));
    }
    if let Some(evidence) = &f.duplicate_host {
        out.push(alert(
            "CapminerDuplicateHost",
            "critical",
            label,
            format!("{label} is held: another machine mines its unit id ({evidence})"),
            "give each machine its own miner.host (a copied config or image), then restart this node",
        ));
    }
    if let Some(restarts) = f.restarts_30m.filter(|r| *r >= 3) {
        out.push(alert(
            "CapminerUnitRestarting",
            "warning",
            label,
            format!("the watchdog restarted {label} {restarts} times in 30 minutes"),
            "its core, GPU or driver faults again and again: read the log's errors for it",
        ));
    }
    if let Some(errors) = f.compute_errors_10m.filter(|e| *e > 0) {
        out.push(alert(
            "CapminerComputeErrors",
            "warning",
            label,
            format!(
                "{errors} GPU results of {label} in 10 minutes were not reproduced by the CPU reference"
            ),
            "undo overclocking, test the card's memory, or update its driver",
        ));
    }
    if let (Some(min), Some((left, length))) = (f.min_proofs, f.epoch_left)
        && f.epoch_proofs < min
        && (left as f64) < 0.25 * length as f64
    {
        out.push(alert(
            "CapminerProofsBelowMinimumLateInEpoch",
            "critical",
            label,
            format!(
                "{label} has {} proofs, fewer than the {min} the reward needs, in the epoch's last quarter",
                f.epoch_proofs
            ),
            "make sure it hashes (not paused, not failed); plan more units or cores for the next epoch",
        ));
    }
    out
}

/// The alerts about the node as a whole: the store, the chain and the verifiers.
pub(super) fn node_alerts(f: &NodeFacts) -> Vec<Alert> {
    let node = "node";
    let mut out = Vec::new();
    if let Some(errors) = f.store_errors_10m.filter(|e| *e > 0) {
        out.push(alert(
            "CapminerStoreErrors",
            "critical",
            node,
            format!("{errors} proof store writes failed in 10 minutes"),
            "free or replace the disk of miner.state_dir; the proofs wait in memory and are retried",
        ));
    }
    if let Some(c) = &f.chain {
        if c.head_block > 0 && c.balance_wei < LOW_BALANCE_WEI {
            out.push(alert(
                "CapminerGasBalanceLow",
                "warning",
                node,
                format!(
                    "the provider's signer holds {:.4} ether, under 0.1",
                    c.balance_wei / 1e18
                ),
                "top up the signer's account: proof batches stop when it cannot pay their gas",
            ));
        }
        if c.final_proofs_reorged > 0 {
            out.push(alert(
                "CapminerFinalProofsReorged",
                "critical",
                node,
                format!(
                    "{} proofs called final lost their block to a deeper reorg since start",
                    c.final_proofs_reorged
                ),
                "raise chain.confirmations",
            ));
        }
        if c.head_still_secs >= HEAD_STALL_SECS {
            out.push(alert(
                "CapminerRpcUnreachable",
                "critical",
                node,
                format!(
                    "the chain's head has stayed at block {} for {} s",
                    c.head_block, c.head_still_secs
                ),
                "check that chain.rpc_url's node runs, is synced and reachable from this host",
            ));
        }
        if c.proofs_pending > 0 && c.no_accept_secs >= PENDING_SECS {
            out.push(alert(
                "CapminerProofsPendingTooLong",
                "critical",
                node,
                format!(
                    "{} proofs wait and none became final for 15 minutes",
                    c.proofs_pending
                ),
                "check the RPC node, the gas price cap (chain.gas.max_fee_gwei) and the balance",
            ));
        }
    }
    for backlog in f.verifier_backlogs.iter().filter(|b| **b > 1) {
        out.push(alert(
            "CapminerVerifierBacklog",
            "warning",
            "verifier",
            format!("a verifier is {backlog} closed epochs behind"),
            "give the verifier CPU, a reachable RPC node and gas",
        ));
    }
    if let Some(invalid) = f.invalid_found.filter(|i| *i > 0.0) {
        out.push(alert(
            "CapminerVerifierFoundInvalidProofs",
            "critical",
            "verifier",
            format!("the verifiers found {invalid} invalid proofs since start (reported on chain)"),
            "a provider cheats, or miner and verifier disagree on parameters: compare configs",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.name).collect()
    }

    fn hashing() -> UnitFacts<'static> {
        UnitFacts {
            label: "cpu0",
            hashing: true,
            rate_60s: 100.0,
            rate_15m: 100.0,
            restarts_30m: Some(0),
            compute_errors_10m: Some(0),
            epoch_proofs: 5,
            min_proofs: Some(10),
            epoch_left: Some((3000, 3600)),
            ..UnitFacts::default()
        }
    }

    #[test]
    fn a_healthy_unit_and_node_raise_nothing() {
        assert!(unit_alerts(&hashing()).is_empty());
        let chain = ChainFacts {
            head_block: 100,
            balance_wei: 2e18,
            head_still_secs: 30,
            proofs_pending: 3,
            no_accept_secs: 300,
            ..ChainFacts::default()
        };
        let node = NodeFacts {
            store_errors_10m: Some(0),
            chain: Some(chain),
            verifier_backlogs: vec![0, 1],
            invalid_found: Some(0.0),
        };
        assert!(node_alerts(&node).is_empty());
    }

    #[test]
    fn each_unit_condition_raises_its_alert_at_its_threshold() {
        let case = |f: UnitFacts<'static>| names(&unit_alerts(&f));
        assert_eq!(
            case(UnitFacts {
                failed: true,
                hashing: false,
                ..hashing()
            }),
            ["CapminerUnitDown"]
        );
        // Held because another machine mines its id: the duplicate-host alert, naming the
        // evidence the chain client gave.
        let held = unit_alerts(&UnitFacts {
            hashing: false,
            duplicate_host: Some("duplicate host: nonce 30 of epoch 4".into()),
            ..hashing()
        });
        assert_eq!(names(&held), ["CapminerDuplicateHost"]);
        assert!(
            held[0].summary.contains("nonce 30 of epoch 4"),
            "{:?}",
            held[0]
        );
        // Paused: its own alert, not a hashrate drop.
        assert_eq!(
            case(UnitFacts {
                paused: true,
                rate_60s: 0.0,
                ..hashing()
            }),
            ["CapminerUnitPaused"]
        );
        assert_eq!(
            case(UnitFacts {
                rate_60s: 49.9,
                ..hashing()
            }),
            ["CapminerHashrateDrop"]
        );
        assert!(
            case(UnitFacts {
                rate_60s: 50.0,
                ..hashing()
            })
            .is_empty()
        );
        // Re-keying (not hashing) dips the rate without an alert.
        assert!(
            case(UnitFacts {
                hashing: false,
                rate_60s: 0.0,
                ..hashing()
            })
            .is_empty()
        );
        assert_eq!(
            case(UnitFacts {
                restarts_30m: Some(3),
                ..hashing()
            }),
            ["CapminerUnitRestarting"]
        );
        assert!(
            case(UnitFacts {
                restarts_30m: Some(2),
                ..hashing()
            })
            .is_empty()
        );
        assert_eq!(
            case(UnitFacts {
                compute_errors_10m: Some(1),
                ..hashing()
            }),
            ["CapminerComputeErrors"]
        );
        // Below the minimum: only in the epoch's last quarter.
        assert_eq!(
            case(UnitFacts {
                epoch_left: Some((899, 3600)),
                ..hashing()
            }),
            ["CapminerProofsBelowMinimumLateInEpoch"]
        );
        assert!(
            case(UnitFacts {
                epoch_left: Some((900, 3600)),
                ..hashing()
            })
            .is_empty()
        );
        assert!(
            case(UnitFacts {
                epoch_left: Some((10, 3600)),
                epoch_proofs: 10,
                ..hashing()
            })
            .is_empty()
        );
        let alert = &unit_alerts(&UnitFacts {
            rate_60s: 20.0,
            ..hashing()
        })[0];
        assert_eq!(
            alert.summary,
            "cpu0 hashes at 20.0 H/s over 60 s, under half its 15-minute 100.0 H/s"
        );
        assert_eq!(alert.subject, "cpu0");
    }

    #[test]
    fn each_node_condition_raises_its_alert_at_its_threshold() {
        let chain = || ChainFacts {
            head_block: 100,
            balance_wei: 2e18,
            head_still_secs: 30,
            proofs_pending: 3,
            no_accept_secs: 300,
            ..ChainFacts::default()
        };
        let case = |store: u64, c: ChainFacts, backlogs: Vec<i64>, invalid: f64| {
            names(&node_alerts(&NodeFacts {
                store_errors_10m: Some(store),
                chain: Some(c),
                verifier_backlogs: backlogs,
                invalid_found: Some(invalid),
            }))
        };
        assert_eq!(case(1, chain(), vec![], 0.0), ["CapminerStoreErrors"]);
        assert_eq!(
            case(
                0,
                ChainFacts {
                    balance_wei: 0.99e17,
                    ..chain()
                },
                vec![],
                0.0
            ),
            ["CapminerGasBalanceLow"]
        );
        // No head block read yet: the balance is not known, no alert.
        assert!(
            case(
                0,
                ChainFacts {
                    head_block: 0,
                    balance_wei: 0.0,
                    ..chain()
                },
                vec![],
                0.0
            )
            .is_empty()
        );
        assert_eq!(
            case(
                0,
                ChainFacts {
                    final_proofs_reorged: 2,
                    ..chain()
                },
                vec![],
                0.0
            ),
            ["CapminerFinalProofsReorged"]
        );
        assert_eq!(
            case(
                0,
                ChainFacts {
                    head_still_secs: HEAD_STALL_SECS,
                    ..chain()
                },
                vec![],
                0.0
            ),
            ["CapminerRpcUnreachable"]
        );
        assert_eq!(
            case(
                0,
                ChainFacts {
                    no_accept_secs: PENDING_SECS,
                    ..chain()
                },
                vec![],
                0.0
            ),
            ["CapminerProofsPendingTooLong"]
        );
        assert!(
            case(
                0,
                ChainFacts {
                    no_accept_secs: PENDING_SECS,
                    proofs_pending: 0,
                    ..chain()
                },
                vec![],
                0.0
            )
            .is_empty()
        );
        assert_eq!(
            case(0, chain(), vec![1, 2], 0.0),
            ["CapminerVerifierBacklog"]
        );
        assert_eq!(
            case(0, chain(), vec![], 1.0),
            ["CapminerVerifierFoundInvalidProofs"]
        );
    }
}
