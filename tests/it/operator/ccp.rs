//! `capminer ccp` watched as deploy/prometheus/prometheus-ccp.yml watches it: a real Prometheus
//! with that configuration (its target pointed at the process) and alerts-ccp.yml scrapes a real
//! `capminer ccp` in light mode, driven over JSON-RPC as Fluence's node drives it. Every alert
//! must be a valid query naming only metrics the process exports, none may hold while the CU
//! hashes, and the conditions of a paused CU and of no commitment must hold once they are true.

use std::time::Duration;

use serde_json::json;

use super::live::{loaded_alerts, metric_names_present};
use super::prometheus::alert_rules;
use super::promql::metric_names;
use super::{deploy, str_of, yaml_json};
use crate::common::{Prometheus, free_port, http, wait_for};
use crate::fluence_status::{CU, Ccp, TOKEN, call, commit, wait_until};

/// Waits until the expression of `alert` evaluates to exactly the series whose `cu` labels are
/// `cus` (no `cu` label: ""), or panics with what it evaluated to.
fn holds_for(
    prometheus: &Prometheus,
    alert: &str,
    expr: &str,
    cus: &[&str],
    log: &dyn Fn() -> String,
) {
    let mut last = Vec::new();
    let held = wait_for(Duration::from_secs(30), || {
        let series = prometheus
            .query(expr)
            .unwrap_or_else(|e| panic!("{alert}: {e}"));
        last = series
            .iter()
            .map(|s| s["metric"]["cu"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        (last == cus).then_some(())
    });
    assert!(
        held.is_some(),
        "{alert} ({expr}): expected to hold for the CUs {cus:?}, holds for {last:?}; log:\n{}",
        log()
    );
}

#[test]
fn a_real_prometheus_evaluates_every_ccp_alert_on_a_live_ccp() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let ccp = Ccp::start(
        dir.path(),
        &format!("listen = \"127.0.0.1:{metrics}\""),
        false,
    );
    let log = || ccp.log();
    // A difficulty no hash meets: the CU hashes and finds nothing.
    commit(ccp.port, &"00".repeat(32));
    wait_until(ccp.port, "the CU hashes", |s| {
        s["units"][0]["state"] == "hashing" && s["units"][0]["hashes"].as_u64() > Some(0)
    });

    // Prometheus with the shipped configuration, its one job pointed at the process.
    let mut config = yaml_json("prometheus/prometheus-ccp.yml");
    config["rule_files"] = json!([deploy().join("prometheus/alerts-ccp.yml")]);
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(str_of(&jobs[0]["job_name"], "job_name"), "capminer-ccp");
    jobs[0]["static_configs"] = json!([{ "targets": [format!("127.0.0.1:{metrics}")] }]);
    let prometheus = Prometheus::start(&config.to_string());
    // Two scrapes of a moving hash count, so the rates have what they need.
    let hashing = wait_for(Duration::from_secs(60), || {
        let series = prometheus
            .query("increase(capminer_ccp_hashes_total[30s]) > 0")
            .ok()?;
        (!series.is_empty()).then_some(())
    });
    assert!(
        hashing.is_some(),
        "Prometheus sees the CU hash; log:\n{}",
        log()
    );

    // Every alert of alerts-ccp.yml loaded, each a valid query naming metrics that exist.
    let loaded = loaded_alerts(&prometheus);
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        alert_rules("alerts-ccp.yml").keys().collect::<Vec<_>>(),
        "Prometheus loaded every alert of alerts-ccp.yml"
    );
    let names = metric_names_present(&prometheus);
    for (alert, expr) in &loaded {
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{alert}: {expr}");
        for name in used {
            assert!(
                names.contains(&name),
                "alert {alert}: no metric {name} in {expr}; present: {names:?}"
            );
        }
    }
    // A healthy CU that hashes: no condition holds.
    for (alert, expr) in &loaded {
        holds_for(&prometheus, alert, expr, &[], &log);
    }

    // Paused through the control API: the paused condition holds for that CU. (That a paused
    // CU's still hash count does not fire the not-hashing rule takes minutes to show; the rules'
    // promtool tests show it.)
    let (code, body) = http(
        ccp.port,
        "POST",
        &format!("/api/v1/pause?cu={CU}"),
        &[&format!("Authorization: Bearer {TOKEN}")],
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    holds_for(
        &prometheus,
        "CapminerCcpUnitPaused",
        &loaded["CapminerCcpUnitPaused"],
        &[CU],
        &log,
    );

    // No commitment: no CU, and the condition that says so holds for the process.
    call(ccp.port, "ccp_on_no_active_commitment", json!(null));
    holds_for(
        &prometheus,
        "CapminerCcpNoCommitment",
        &loaded["CapminerCcpNoCommitment"],
        &[""],
        &log,
    );
    holds_for(
        &prometheus,
        "CapminerCcpUnitPaused",
        &loaded["CapminerCcpUnitPaused"],
        &[],
        &log,
    );
}
