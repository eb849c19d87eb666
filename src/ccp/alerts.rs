//! The live page's alerts in the Fluence profile (`capminer ccp`), with the types of
//! `capminer run`'s ([`Alert`]): what needs the operator where nox submits the proofs, so no
//! chain alert. Each fires at once, from facts the page gathers ([`CuFacts`]: the status and
//! what the sampler saw; the store's errors over the history's last 10 minutes), where
//! Prometheus waits the `for:` of the same rules in `deploy/prometheus/alerts-ccp.yml`:
//!
//! | alert | severity | when |
//! |---|---|---|
//! | `CapminerCcpNoCommitment` | warning | nox set no active commitment: no CU runs |
//! | `CapminerCcpUnitFailed` | critical | a CU's threads failed |
//! | `CapminerCcpUnitPaused` | warning | a CU is paused through the control API |
//! | `CapminerCcpUnitNotHashing` | critical | a hashing CU counted no hash for [`STILL_SECS`] |
//! | `CapminerCcpStoreErrors` | critical | proofs lost: the store refused their writes |

use crate::api::alerts::{Alert, alert};

/// Seconds a hashing CU may count no hash before its alert fires.
pub(crate) const STILL_SECS: u64 = 60;

/// What the alerts about one CU look at.
#[derive(Debug, Default)]
pub(crate) struct CuFacts<'a> {
    /// Its id, hex (the alert's subject, what `capminer ctl --unit` takes).
    pub cu: &'a str,
    /// Its label on the page (the id's first hex digits).
    pub label: &'a str,
    pub core: u32,
    /// As in the status: `building`, `hashing`, `paused` or `failed`.
    pub state: &'a str,
    /// Why it failed.
    pub reason: Option<&'a str>,
    /// Seconds its hash count has not moved while it hashes, as far as the sampler saw.
    pub still_secs: Option<u64>,
}

/// The alerts about one CU.
pub(crate) fn cu_alerts(f: &CuFacts<'_>) -> Vec<Alert> {
    let name = format!("CU {} (core {})", f.label, f.core);
    let mut out = Vec::new();
    match f.state {
        "failed" => out.push(alert(
            "CapminerCcpUnitFailed",
            "critical",
            f.cu,
            format!(
                "{name} failed ({}): it finds no proofs",
                f.reason.unwrap_or("see the log")
            ),
            "nox's next on_active_commitment starts it again with a fresh dataset; if it fails again, read the log for its core",
        )),
        "paused" => out.push(alert(
            "CapminerCcpUnitPaused",
            "warning",
            f.cu,
            format!("{name} is paused through the control API: it finds no proofs"),
            "press Resume on its row (or run `capminer ctl resume --unit <its CU id>`)",
        )),
        "hashing" => {
            if let Some(secs) = f.still_secs.filter(|s| *s >= STILL_SECS) {
                out.push(alert(
                    "CapminerCcpUnitNotHashing",
                    "critical",
                    f.cu,
                    format!("{name} should hash but counted no hash for {secs} s"),
                    "look for what holds its core (another process, a throttled CPU); restarting capminer ccp keeps the commitment and the proofs",
                ));
            }
        }
        _ => {}
    }
    out
}

/// The alerts about the service as a whole: the commitment and the store.
pub(crate) fn node_alerts(committed: bool, store_errors_10m: Option<u64>) -> Vec<Alert> {
    let mut out = Vec::new();
    if !committed {
        out.push(alert(
            "CapminerCcpNoCommitment",
            "warning",
            "node",
            "no active commitment: no CU runs and no proof is found".into(),
            "nox sends one (on_active_commitment) once the peer's capacity commitment is active: read nox's log and check that its ccp endpoint is this listener",
        ));
    }
    if let Some(errors) = store_errors_10m.filter(|e| *e > 0) {
        out.push(alert(
            "CapminerCcpStoreErrors",
            "critical",
            "node",
            format!("{errors} proofs lost in 10 minutes: the proof store refused their writes"),
            "free or replace the disk of miner.state_dir (the proofs are under <state_dir>/fluence)",
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

    fn hashing() -> CuFacts<'static> {
        CuFacts {
            cu: "21f7ce63f24fd9be",
            label: "21f7ce63",
            core: 1,
            state: "hashing",
            still_secs: Some(0),
            ..CuFacts::default()
        }
    }

    #[test]
    fn each_cu_condition_raises_its_alert_at_its_threshold() {
        let case = |f: CuFacts<'static>| names(&cu_alerts(&f));
        assert!(case(hashing()).is_empty());
        assert!(
            case(CuFacts {
                still_secs: Some(STILL_SECS - 1),
                ..hashing()
            })
            .is_empty()
        );
        let still = cu_alerts(&CuFacts {
            still_secs: Some(STILL_SECS),
            ..hashing()
        });
        assert_eq!(names(&still), ["CapminerCcpUnitNotHashing"]);
        assert_eq!(
            still[0].summary,
            "CU 21f7ce63 (core 1) should hash but counted no hash for 60 s"
        );
        assert_eq!(still[0].subject, "21f7ce63f24fd9be");
        // Building, or paused, counts no hash without being stuck.
        for state in ["building", "paused"] {
            let got = case(CuFacts {
                state,
                still_secs: Some(600),
                ..hashing()
            });
            let want: &[&str] = if state == "paused" {
                &["CapminerCcpUnitPaused"]
            } else {
                &[]
            };
            assert_eq!(got, want, "{state}");
        }
        let failed = cu_alerts(&CuFacts {
            state: "failed",
            reason: Some("cannot pin to CPU 7"),
            ..hashing()
        });
        assert_eq!(names(&failed), ["CapminerCcpUnitFailed"]);
        assert_eq!(
            failed[0].summary,
            "CU 21f7ce63 (core 1) failed (cannot pin to CPU 7): it finds no proofs"
        );
        assert_eq!(failed[0].severity, "critical");
    }

    #[test]
    fn the_commitment_and_the_store_raise_theirs() {
        assert!(node_alerts(true, Some(0)).is_empty());
        assert!(node_alerts(true, None).is_empty());
        assert_eq!(
            names(&node_alerts(false, None)),
            ["CapminerCcpNoCommitment"]
        );
        let lost = node_alerts(true, Some(2));
        assert_eq!(names(&lost), ["CapminerCcpStoreErrors"]);
        assert_eq!(
            lost[0].summary,
            "2 proofs lost in 10 minutes: the proof store refused their writes"
        );
    }
}
