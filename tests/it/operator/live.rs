//! The live evaluation: a real Prometheus with the shipped configuration scrapes a real miner and
//! a real verifier on a real chain; every Grafana panel must return data and every alert must be a
//! valid query naming metrics that exist, and none holding on the healthy system.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::grafana::{dashboard, panel_expressions, substitute};
use super::prometheus::alert_rules;
use super::promql::metric_names;
use super::{deploy, str_of, yaml_json};
use crate::common::{Kill, Prometheus, free_port, http_get, sample, spawn_capminer, wait_for};

/// The value of the first sample of `expr` in Prometheus, if any.
fn scalar(prometheus: &Prometheus, expr: &str) -> Option<f64> {
    let series = prometheus.query(expr).ok()?;
    series.first()?["value"][1].as_str()?.parse().ok()
}

/// Every metric name Prometheus has scraped.
pub(super) fn metric_names_present(prometheus: &Prometheus) -> BTreeSet<String> {
    prometheus.api("label/__name__/values", &[]).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The alerts Prometheus loaded: name to expression, as the server runs it.
pub(super) fn loaded_alerts(prometheus: &Prometheus) -> BTreeMap<String, String> {
    let rules = prometheus.api("rules", &[("type", "alert")]).unwrap();
    rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            (
                str_of(&r["name"], "name").to_string(),
                str_of(&r["query"], "query").to_string(),
            )
        })
        .collect()
}

/// A real anvil with the contract, a real `capminer run` (one CPU unit and one GPU unit on
/// lavapipe, light mode) and a real `capminer verifier`, as processes; a real Prometheus with
/// deploy/prometheus/prometheus.yml (its targets pointed at them) and alerts.yml. Once proofs
/// were accepted, verified, attested and rewarded, every dashboard expression must return data,
/// and every alert expression must be valid and name only metrics Prometheus has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_every_panel_and_alert_on_a_live_miner_and_verifier() {
    use crate::chain::{GRACE, Net, VERIFY, light_miner_config, register_planned, spec};
    use capminer_config::{GpuDeviceConfig, GpuUnits, UnitConfig, Units};
    use capminer_proofs::Target;

    let dir = tempfile::tempdir().unwrap();
    let (miner_port, verifier_port) = (free_port(), free_port());

    // The chain: long epochs, moved on by the test.
    let mut s = spec(Target::for_expected_hashes(8), 2, 32_768);
    s.epoch_seconds = 600;
    s.kinds[1].target = Target::for_expected_hashes(8192); // lavapipe: thousands of hashes a second
    let mut config = capminer_config::Config::default();
    config.network.gpu_unit_bytes = 4 << 20;
    config.network.gpu_cache_bytes = 64 << 10;
    s.kinds[1].challenge = capminer_chain::network_challenge(&config.network);
    let net = Net::start(&s, &["--block-time", "1"]).await;

    let mut miner = light_miner_config(&net, dir.path());
    miner.network = config.network.clone();
    miner.cpu.units = Units::List(vec![UnitConfig { core: 0, id: None }]);
    miner.gpu.enabled = true;
    miner.gpu.allow_software = true;
    miner.gpu.devices = vec![GpuDeviceConfig {
        select: "0".into(),
        units: GpuUnits::Count(1),
        memory_mib: None,
    }];
    miner.metrics.enabled = true;
    miner.metrics.listen = format!("127.0.0.1:{miner_port}").parse().unwrap();
    let (units, indices) = register_planned(&net, &miner).await;
    let plan_units = capminer_miner::Miner::plan(&miner).unwrap().units();
    assert_eq!(units.len(), 2, "one CPU unit, one GPU unit: {units:?}");
    capminer_chain::devnet::fund_pool(
        &net.url,
        net.key(0),
        net.address(),
        alloy::primitives::U256::from(10u128.pow(19)),
    )
    .await
    .unwrap();
    let epoch = net.next_epoch().await;

    let mut verifier = miner.clone();
    verifier.verifier.state_dir = dir.path().join("verifier");
    verifier.metrics.listen = format!("127.0.0.1:{verifier_port}").parse().unwrap();
    let key = |i: usize| alloy::hex::encode(net.key(i).to_bytes());
    let _miner = Kill(spawn_capminer(
        &miner,
        dir.path(),
        "miner",
        &["run"],
        ("CAPMINER_PRIVATE_KEY", key(1)),
    ));
    let _verifier = Kill(spawn_capminer(
        &verifier,
        dir.path(),
        "verifier",
        &["verifier"],
        ("CAPMINER_VERIFIER_KEY", key(2)),
    ));
    let log = |name: &str| {
        let log =
            std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    // Prometheus with the shipped configuration, its targets pointed at the two processes.
    let mut prom_config = yaml_json("prometheus/prometheus.yml");
    assert_eq!(prom_config["rule_files"], serde_json::json!(["alerts.yml"]));
    prom_config["rule_files"] = serde_json::json!([deploy().join("prometheus/alerts.yml")]);
    prom_config["global"]["scrape_interval"] = "1s".into();
    prom_config["global"]["evaluation_interval"] = "1s".into();
    let mut jobs = Vec::new();
    for job in prom_config["scrape_configs"].as_array_mut().unwrap() {
        let name = str_of(&job["job_name"], "job_name").to_string();
        let port = match name.as_str() {
            "capminer-miner" => miner_port,
            "capminer-verifier" => verifier_port,
            other => panic!("a scrape job the test does not know: {other}"),
        };
        // The shipped target labels (a miner's provider and host) stay: the fleet panels use them.
        let labels = job["static_configs"][0]["labels"].clone();
        job["static_configs"] = serde_json::json!([{ "targets": [format!("127.0.0.1:{port}")] }]);
        if !labels.is_null() {
            job["static_configs"][0]["labels"] = labels;
        }
        jobs.push(name);
    }
    assert_eq!(jobs, ["capminer-miner", "capminer-verifier"]);
    let prometheus = Prometheus::start(&prom_config.to_string());

    // Chain activity: every unit's proofs accepted in the epoch, on chain.
    let mut counts = Vec::new();
    for _ in 0..300 {
        counts.clear();
        for index in &indices {
            counts.push(net.count(*index, epoch).await);
        }
        if counts.iter().all(|c| *c >= 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        counts.iter().all(|c| *c >= 3),
        "every unit's proofs accepted in epoch {epoch}; miner log:\n{}",
        log("miner")
    );
    // The chain client's epoch gauges, exactly: what the contract says.
    let body = http_get(miner_port, "/metrics").unwrap();
    let metric = |name: &str| {
        sample(&body, name).unwrap_or_else(|| panic!("{name} in the miner's metrics:\n{body}"))
    };
    for ((unit, index), counted) in plan_units.iter().zip(&indices).zip(&counts) {
        let (kind, label) = (&unit.kind, &unit.label);
        let stored = metric(&format!(
            "capminer_chain_epoch_proofs{{kind=\"{kind}\",unit=\"{label}\"}}"
        ));
        assert!(
            stored >= f64::from(*counted),
            "unit {label} (index {index}): {stored} stored, at least the {counted} counted on chain before"
        );
        assert_eq!(
            metric(&format!(
                "capminer_chain_epoch_min_proofs{{kind=\"{kind}\"}}"
            )),
            2.0
        );
        assert_eq!(
            metric(&format!(
                "capminer_chain_epoch_max_proofs{{kind=\"{kind}\"}}"
            )),
            32_768.0
        );
    }
    assert_eq!(metric("capminer_chain_epoch_duration_seconds "), 600.0);
    let ends: alloy::primitives::U256 = net.contract().epochStart(epoch + 1).call().await.unwrap();
    assert_eq!(
        metric("capminer_chain_epoch_ends_timestamp_seconds "),
        ends.to::<u64>() as f64
    );
    let balance: f64 = alloy::providers::Provider::get_balance(&net.provider, net.key(1).address())
        .await
        .unwrap()
        .into();
    let reported = metric("capminer_chain_balance_wei ");
    assert!(
        (reported - balance).abs() < 1e16 && balance < 1e22,
        "balance {reported} reported, {balance} on chain (less than 0.01 ether apart: a few batches' gas)"
    );

    // The epoch closes: the verifier recomputes and attests every unit.
    net.next_epoch().await;
    net.advance(GRACE + 1).await;
    let mut attested = false;
    for _ in 0..240 {
        let mut all = true;
        for index in &indices {
            all &= net
                .contract()
                .unitEpoch(*index, epoch)
                .call()
                .await
                .unwrap()
                .isAttested;
        }
        if all {
            attested = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        attested,
        "the verifier attested every unit of epoch {epoch}; verifier log:\n{}",
        log("verifier")
    );
    // The epoch settles; in the next epoch the miner claims its rewards (once an epoch).
    net.advance(VERIFY + 1).await;
    net.next_epoch().await;
    let claimed = wait_for(Duration::from_secs(120), || {
        scalar(
            &prometheus,
            r#"capminer_chain_rewards_claimed_gwei_total{job="capminer-miner"} >= 2e9"#,
        )
    });
    assert_eq!(
        claimed,
        Some(2e9),
        "one ether a unit claimed, in gwei; miner log:\n{}",
        log("miner")
    );
    let attests = scalar(
        &prometheus,
        r#"sum(capminer_verifier_transactions_total{job="capminer-verifier", what="attest"})"#,
    );
    assert_eq!(attests, Some(2.0), "two attestations sent");
    // A few more scrapes, so every rate has two samples in its window.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Every metric name Prometheus has from the two jobs.
    let names = metric_names_present(&prometheus);

    // Every panel expression returns data.
    let expressions = panel_expressions(&dashboard());
    let mut failures = Vec::new();
    for (title, expr) in &expressions {
        let query = substitute(expr);
        for name in metric_names(&query) {
            if !names.contains(&name) {
                failures.push(format!("panel {title}: no metric {name} in {query}"));
            }
        }
        match prometheus.query(&query) {
            // A fleet panel's series each name their provider and host (the scrape's labels).
            Ok(series) if !series.is_empty() && query.contains("by (provider") => {
                let wanted: &[&str] = if query.contains("by (provider, host)") {
                    &["provider", "host"]
                } else {
                    &["provider"]
                };
                for s in &series {
                    for label in wanted {
                        if s["metric"][label].as_str().is_none_or(str::is_empty) {
                            failures.push(format!("panel {title}: no {label} label in {s}"));
                        }
                    }
                }
            }
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failures.push(format!("panel {title}: no data for {query}")),
            Err(e) => failures.push(format!("panel {title}: {e}")),
        }
    }

    // Every alert Prometheus loaded from alerts.yml: a valid query naming metrics that exist.
    let loaded = loaded_alerts(&prometheus);
    assert_eq!(
        loaded.keys().cloned().collect::<BTreeSet<_>>(),
        alert_rules("alerts.yml")
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        "Prometheus loaded every alert of alerts.yml"
    );
    let mut with_data = Vec::new();
    for (alert, expr) in &loaded {
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{alert}: {expr}");
        for name in used {
            if !names.contains(&name) {
                failures.push(format!("alert {alert}: no metric {name} in {expr}"));
            }
        }
        match prometheus.query(expr) {
            Ok(series) if !series.is_empty() => with_data.push(alert.clone()),
            Ok(_) => {}
            Err(e) => failures.push(format!("alert {alert}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\nmetrics present: {names:?}",
        failures.len(),
        failures.join("\n")
    );
    assert!(expressions.len() >= 20, "{}", expressions.len());
    // A healthy miner and verifier: no alert's condition holds (a transient, such as the dip
    // of a re-key, may take a few seconds to pass).
    let quiet = wait_for(Duration::from_secs(30), || {
        with_data = loaded
            .iter()
            .filter(|(_, expr)| prometheus.query(expr).is_ok_and(|s| !s.is_empty()))
            .map(|(alert, _)| alert.clone())
            .collect();
        with_data.is_empty().then_some(())
    });
    assert!(
        quiet.is_some(),
        "alert conditions hold on a healthy system: {with_data:?}; miner log:\n{}",
        log("miner")
    );
    eprintln!(
        "evaluated {} panel expressions (all with data) and {} alert expressions (valid, every metric present, none holding on the healthy system)",
        expressions.len(),
        loaded.len()
    );
}
