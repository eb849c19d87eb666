//! The operator plane in `deploy/`: the Prometheus configuration and alert rules checked and
//! unit-tested by promtool; every Grafana panel and every alert evaluated by a real Prometheus
//! scraping a real miner and a real verifier on a real chain; the systemd units verified by
//! systemd; the Containerfile and the Kubernetes manifests checked against each other and
//! against the configuration loader.
//!
//! YAML (rules, their tests, Kubernetes manifests, provisioning) is parsed with `serde_yaml_ng`
//! (a dev-dependency): the manifests are nested, multi-document YAML that no small ad-hoc
//! parser reads correctly, and promtool reads only Prometheus's own files. The alert
//! expressions themselves are taken from Prometheus (`/api/v1/rules`) after it loaded
//! `alerts.yml`, so what is evaluated is exactly what the server runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use crate::common::{
    Kill, Prometheus, free_port, http_get, sample, spawn_capminer, text, wait_for,
};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(relative: &str) -> String {
    let path = deploy().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file.
fn yaml_docs(relative: &str) -> Vec<Yaml> {
    let text = read(relative);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("deploy/{relative} does not parse: {e}"))
        })
        .filter(|doc: &Yaml| !doc.is_null())
        .collect()
}

/// The one document of a YAML file, as JSON (easier to walk).
fn yaml_json(relative: &str) -> Json {
    let docs = yaml_docs(relative);
    assert_eq!(docs.len(), 1, "deploy/{relative}: one document");
    serde_json::to_value(&docs[0]).unwrap()
}

fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus, deploy/setup.sh installs it)")
}

fn str_of<'a>(v: &'a Json, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// The alerting rules of alerts.yml: name to rule.
fn alert_rules() -> BTreeMap<String, Json> {
    let rules = yaml_json("prometheus/alerts.yml");
    let mut by_name = BTreeMap::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = str_of(&rule["alert"], "alert").to_string();
            assert!(
                by_name.insert(name.clone(), rule.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    by_name
}

// ------------------------------------------------------------------ PromQL, minimally

/// Words of PromQL that are not metric names; those marked `true` are followed by a label list.
const KEYWORDS: &[(&str, bool)] = &[
    ("by", true),
    ("without", true),
    ("on", true),
    ("ignoring", true),
    ("group_left", true),
    ("group_right", true),
    ("and", false),
    ("or", false),
    ("unless", false),
    ("offset", false),
    ("bool", false),
    ("atan2", false),
    ("inf", false),
    ("nan", false),
];

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges,
/// strings and label lists that are neither keywords nor function or aggregation names (those
/// are followed by a parenthesis, or `by`/`without`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut label_list = false;
    let mut i = 0;
    let skip_string = |mut i: usize| {
        let quote = b[i];
        i += 1;
        while i < b.len() && b[i] != quote {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i + 1
    };
    let skip_to = |mut i: usize, close: u8| {
        while i < b.len() && b[i] != close {
            i = if matches!(b[i], b'"' | b'\'' | b'`') {
                skip_string(i)
            } else {
                i + 1
            };
        }
        i + 1
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'(' && label_list {
            label_list = false;
            i = skip_to(i, b')');
            continue;
        }
        label_list = false;
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(i),
            b'{' => i = skip_to(i, b'}'),
            b'[' => i = skip_to(i, b']'),
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let rest = expr[i..].trim_start();
                let next_word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A function or an aggregation: `name(`, `sum by (`, `sum without (`.
                let call = rest.starts_with('(') || ["by", "without"].contains(&next_word.as_str());
                if let Some((_, list)) = KEYWORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(word))
                {
                    label_list = *list;
                } else if !call {
                    names.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"(a_total{x="}b", y=~"c|d"} < on(instance, kind) group_left() e) and on(instance) (f - time() < 0.25 * g:h)"#
        ),
        ["a_total", "e", "f", "g:h"]
    );
    assert_eq!(
        names("sum by (instance, le) (rate(x_bucket[5m] offset 1h)) / 1e18 > bool 2 or vector(0)"),
        ["x_bucket"]
    );
    assert_eq!(
        names("sum(rate(y[1m])) without (unit) unless z"),
        ["y", "z"]
    );
    assert_eq!(names("up{job=~\"capminer-.*\"} == 0"), ["up"]);
}

// ------------------------------------------------------------------ Prometheus files

#[test]
fn alert_rules_pass_promtool() {
    let dir = deploy().join("prometheus");
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["test", "rules", "alerts_test.yml"],
    ] {
        let out = promtool(&dir, args);
        eprintln!("promtool {}: {}", args.join(" "), text(&out));
        assert!(out.status.success(), "promtool {args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
            "{}",
            text(&out)
        );
    }

    // Every alert: a severity, a summary, a description.
    let rules = alert_rules();
    assert!(rules.len() >= 8, "{rules:?}");
    for (name, rule) in &rules {
        let severity = str_of(&rule["labels"]["severity"], "severity");
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: {severity}"
        );
        for key in ["summary", "description"] {
            assert!(
                !str_of(&rule["annotations"][key], key).trim().is_empty(),
                "{name}: {key}"
            );
        }
    }

    // Every alert is tested both firing and not firing.
    let tests = yaml_json("prometheus/alerts_test.yml");
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = str_of(&case["alertname"], "alertname").to_string();
            assert!(
                rules.contains_key(&name),
                "a test of an unknown alert {name}"
            );
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 {
                firing.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let all: BTreeSet<String> = rules.keys().cloned().collect();
    assert_eq!(firing, all, "every alert tested firing");
    assert_eq!(quiet, all, "every alert tested not firing");
}

// ------------------------------------------------------------------ Grafana

/// Every panel of the dashboard, those inside rows included.
fn panels(dashboard: &Json) -> Vec<Json> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

/// Each panel expression of the dashboard: (panel title, expression as written).
fn panel_expressions(dashboard: &Json) -> Vec<(String, String)> {
    panels(dashboard)
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = str_of(&p["title"], "title").to_string();
            p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("panel {title} has no targets"))
                .iter()
                .map(move |t| (title.clone(), str_of(&t["expr"], "expr").to_string()))
        })
        .collect()
}

/// Grafana's variables, as the test evaluates them: the rate interval of a 1 s scrape, every
/// instance.
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace("$instance", ".*");
    assert!(
        !out.contains('$'),
        "a variable the test does not know: {expr}"
    );
    out
}

fn dashboard() -> Json {
    serde_json::from_str(&read("grafana/capminer.json")).expect("the dashboard is JSON")
}

#[test]
fn grafana_dashboard_and_provisioning_are_well_formed() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "capminer");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource["query"], "prometheus");
    let ds_ref = format!("${{{}}}", str_of(&datasource["name"], "name"));
    let mut ids = BTreeSet::new();
    for p in panels(&dashboard) {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids unique");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        }
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{} fits the 24-column grid", p["title"]);
    }
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], ds_ref.as_str());
    }
    let titles: BTreeSet<String> = panel_expressions(&dashboard)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for needed in [
        "Hashrate per unit",
        "Proofs this epoch against min and max",
        "Proofs submitted, accepted, skipped",
        "Proofs pending",
        "Transactions",
        "Gas",
        "Gas balance",
        "Rewards claimed",
        "Proofs verified",
        "Invalid proofs found",
        "Verifier backlog",
        "Verifier transactions",
    ] {
        assert!(titles.contains(needed), "a panel {needed}: {titles:?}");
    }

    let provider = yaml_json("grafana/provisioning/dashboards/capminer.yml");
    assert_eq!(provider["apiVersion"], 1);
    assert_eq!(provider["providers"][0]["type"], "file");
    assert!(provider["providers"][0]["options"]["path"].is_string());
    let sources = yaml_json("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(sources["datasources"][0]["type"], "prometheus");
}

// ------------------------------------------------------------------ the live evaluation

/// The value of the first sample of `expr` in Prometheus, if any.
fn scalar(prometheus: &Prometheus, expr: &str) -> Option<f64> {
    let series = prometheus.query(expr).ok()?;
    series.first()?["value"][1].as_str()?.parse().ok()
}

/// A real anvil with the contract, a real `capminer run` (one CPU unit and one GPU unit on
/// lavapipe, light mode) and a real `capminer verifier`, as processes; a real Prometheus with
/// deploy/prometheus/prometheus.yml (its targets pointed at them) and alerts.yml. Once proofs
/// were accepted, verified, attested and rewarded, every dashboard expression must return data,
/// and every alert expression must be valid and name only metrics Prometheus has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_every_panel_and_alert_on_a_live_miner_and_verifier() {
    use crate::chain::{GRACE, Net, VERIFY, light_miner_config, register_planned, spec};
    use capminer_config::{GpuDeviceConfig, UnitConfig, Units};
    use capminer_proofs::Target;

    let dir = tempfile::tempdir().unwrap();
    let (miner_port, verifier_port) = (free_port(), free_port());

    // The chain: long epochs, moved on by the test.
    let mut s = spec(Target::for_expected_hashes(8), 2, 100_000);
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
        units: 1,
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
        job["static_configs"] = serde_json::json!([{ "targets": [format!("127.0.0.1:{port}")] }]);
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
    for (((_, kind, label), index), counted) in plan_units.iter().zip(&indices).zip(&counts) {
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
            100_000.0
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
    let names: BTreeSet<String> = prometheus.api("label/__name__/values", &[]).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

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
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failures.push(format!("panel {title}: no data for {query}")),
            Err(e) => failures.push(format!("panel {title}: {e}")),
        }
    }

    // Every alert Prometheus loaded from alerts.yml: a valid query naming metrics that exist.
    let rules = prometheus.api("rules", &[("type", "alert")]).unwrap();
    let loaded: BTreeMap<String, String> = rules["data"]["groups"]
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
        .collect();
    assert_eq!(
        loaded.keys().cloned().collect::<BTreeSet<_>>(),
        alert_rules().keys().cloned().collect::<BTreeSet<_>>(),
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

// ------------------------------------------------------------------ systemd

/// `systemd-analyze verify` and `systemd-analyze security --offline` of both units, with
/// ExecStart pointed at the built binary (verify requires it to exist). Warnings count as
/// failures: systemd only warns, exit status 0, about an unknown key or a bad value.
#[test]
fn systemd_units_verify_and_are_hardened() {
    let has = Command::new("systemd-analyze").arg("--version").output();
    if !has.is_ok_and(|o| o.status.success()) {
        eprintln!("systemd-analyze is not installed: the systemd units are not verified here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (unit, subcommand) in [
        ("capminer.service", "run"),
        ("capminer-verifier.service", "verifier"),
    ] {
        let unit_text = read(&format!("systemd/{unit}"));
        let service: BTreeMap<&str, &str> = unit_text
            .split("[Service]")
            .nth(1)
            .unwrap()
            .split("[Install]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        for (key, value) in [
            ("Restart", "on-failure"),
            ("LimitMEMLOCK", "infinity"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("User", "capminer"),
        ] {
            assert_eq!(service.get(key), Some(&value), "{unit}: {key}");
        }
        let exec = service["ExecStart"];
        let config = exec
            .strip_prefix(&format!("/usr/local/bin/capminer {subcommand} -c "))
            .unwrap_or_else(|| panic!("{unit}: ExecStart={exec}"));
        assert!(config.starts_with("/etc/capminer/"), "{unit}: {config}");
        let state = format!("/var/lib/{}", service["StateDirectory"]);
        assert_eq!(
            service.get("ReadWritePaths"),
            Some(&state.as_str()),
            "{unit}"
        );

        let copy = dir.path().join(unit);
        std::fs::write(
            &copy,
            unit_text.replace("/usr/local/bin/capminer", env!("CARGO_BIN_EXE_capminer")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
            "systemd-analyze verify {unit}: {}",
            text(&out)
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=40"])
            .arg(&copy)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let level = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split_once(": "))
            .and_then(|(_, v)| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{unit}: {}", text(&out)));
        eprintln!("{unit}: exposure level {level}");
        assert!(out.status.success(), "{unit}: {}", text(&out));
        assert!(level < 4.0, "{unit} exposure {level} (below 4.0 is 'OK')");
    }
}

// ------------------------------------------------------------------ container

#[test]
fn containerfile_builds_in_two_stages_and_runs_capminer_unprivileged() {
    let text = read("container/Containerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let instruction = |l: &str| l.split_whitespace().next().unwrap_or("").to_uppercase();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| instruction(l) == "FROM")
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(
        froms[0].contains("rust:1.95-bookworm") && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert!(froms[1].contains("debian:bookworm-slim"), "{}", froms[1]);
    let build_stage = text.split(froms[1]).next().unwrap();
    assert!(build_stage.contains("cmake"), "the builder installs cmake");
    assert!(
        build_stage.contains("cargo build --release --locked --bin capminer"),
        "the builder builds the locked release binary"
    );
    let runtime: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| *l != froms[1])
        .collect();
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=builder") && l.contains("capminer")),
        "the runtime takes the binary from the builder"
    );
    let user = runtime
        .iter()
        .rev()
        .find(|l| instruction(l) == "USER")
        .expect("a USER in the runtime stage");
    let who = user.split_whitespace().nth(1).unwrap();
    let name = who.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "USER {who}");
    let entrypoint = runtime
        .iter()
        .find(|l| instruction(l) == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    let entry: Vec<String> =
        serde_json::from_str(entrypoint.trim_start_matches("ENTRYPOINT").trim()).unwrap();
    assert!(entry[0].ends_with("/capminer"), "{entry:?}");
    let expose: BTreeSet<u16> = runtime
        .iter()
        .filter(|l| instruction(l) == "EXPOSE")
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        expose.contains(&9477) && expose.contains(&9479),
        "{expose:?}"
    );
}

// ------------------------------------------------------------------ Kubernetes

/// The configuration a ConfigMap key holds, loaded by capminer's own loader with the
/// container's `CAPMINER_*` variables.
fn load_config_text(text: &str, env: &BTreeMap<String, String>) -> capminer_config::Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capminer.toml");
    std::fs::write(&path, text).unwrap();
    let env = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    capminer_config::load(Some(&path), env)
        .unwrap_or_else(|e| panic!("the ConfigMap's configuration: {e}"))
}

/// What a container starts: its command and arguments run by a real `sh`, with a stand-in
/// `capminer` on PATH that records its arguments and environment. The container's env is built
/// as the kubelet builds it (`fieldRef`s from `fields`, `$(VAR)` expanded from earlier
/// variables); `mounts` maps the container's mount paths to local directories.
struct Started {
    ok: bool,
    stderr: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

fn start_container(
    c: &Json,
    fields: &BTreeMap<&str, &str>,
    mounts: &[(String, PathBuf)],
) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("capminer");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}/args\nenv > {0}/env\n",
            dir.path().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = str_of(&e["name"], "env name").to_string();
        let value = match e["value"].as_str() {
            Some(v) => env
                .iter()
                .fold(v.to_string(), |v, (k, x)| v.replace(&format!("$({k})"), x)),
            None => {
                let path = str_of(&e["valueFrom"]["fieldRef"]["fieldPath"], "fieldPath");
                fields[path].to_string()
            }
        };
        env.push((name, value));
    }
    let mut words: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(words[..2], ["/bin/sh", "-c"], "a shell entry point");
    let mut script = words.remove(2);
    for (path, local) in mounts {
        script = script.replace(path.as_str(), local.to_str().unwrap());
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    Started {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: read("args").lines().map(str::to_string).collect(),
        env: read("env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("CAPMINER_") || env.iter().any(|(n, _)| n == k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn kubernetes_manifests_parse_and_agree_with_each_other_and_the_config() {
    let mut docs: Vec<Json> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(deploy().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in &files {
        for doc in yaml_docs(&format!("k8s/{file}")) {
            let doc = serde_json::to_value(doc).unwrap();
            assert!(doc["apiVersion"].is_string(), "{file}: apiVersion");
            assert!(doc["metadata"]["name"].is_string(), "{file}: name");
            docs.push(doc);
        }
    }
    let kinds: BTreeMap<String, usize> = docs.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(str_of(&d["kind"], "kind").to_string()).or_default() += 1;
        m
    });
    for (kind, n) in [
        ("ConfigMap", 2),
        ("DaemonSet", 1),
        ("StatefulSet", 1),
        ("Service", 1),
    ] {
        assert_eq!(kinds.get(kind), Some(&n), "{n} {kind}: {kinds:?}");
    }
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && (name.is_empty() || d["metadata"]["name"] == name))
            .unwrap_or_else(|| panic!("a {kind} {name}"))
    };
    let namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] != "Namespace")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(namespaces.len(), 1, "one namespace: {namespaces:?}");
    let config_map = find("ConfigMap", "capminer-config");
    let config_name = str_of(&config_map["metadata"]["name"], "name");

    // The provider's hosts: distinct indices within miner.host's range.
    let hosts_map = find("ConfigMap", "capminer-hosts");
    let hosts: BTreeMap<String, u32> = hosts_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(node, i)| (node.clone(), str_of(i, "host").parse().unwrap()))
        .collect();
    assert!(hosts.len() >= 2, "a fleet: {hosts:?}");
    let indices: BTreeSet<u32> = hosts.values().copied().collect();
    assert_eq!(
        indices.len(),
        hosts.len(),
        "each host index once: {hosts:?}"
    );
    assert!(indices.iter().all(|i| *i <= capminer_config::MAX_HOST));

    let mut images = BTreeSet::new();
    for kind in ["DaemonSet", "StatefulSet"] {
        let workload = find(kind, "");
        assert_eq!(workload["apiVersion"], "apps/v1", "{kind}");
        let template = &workload["spec"]["template"];
        let selector = workload["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        for (k, v) in selector {
            assert_eq!(
                &template["metadata"]["labels"][k], v,
                "{kind}: selector matches"
            );
        }
        let pod = &template["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{kind}");
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{kind}");
        let c = &containers[0];
        images.insert(str_of(&c["image"], "image").to_string());
        for init in pod["initContainers"].as_array().into_iter().flatten() {
            images.insert(str_of(&init["image"], "image").to_string());
        }
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        let mounts = c["volumeMounts"].as_array().unwrap();
        let volumes = pod["volumes"].as_array().unwrap();
        let volume = |name: &Json| volumes.iter().find(|v| &v["name"] == name);
        let mount_of = |path: &Path| {
            mounts
                .iter()
                .find(|m| path.starts_with(str_of(&m["mountPath"], "mountPath")))
                .unwrap_or_else(|| panic!("{kind}: {} is mounted", path.display()))
        };

        // Start it as the kubelet would, on a known node or as a known replica.
        let hosts_dir = tempfile::tempdir().unwrap();
        for (node, i) in &hosts {
            std::fs::write(hosts_dir.path().join(node), i.to_string()).unwrap();
        }
        let mount_dirs: Vec<(String, PathBuf)> = mounts
            .iter()
            .filter(|m| {
                volume(&m["name"]).is_some_and(|v| v["configMap"]["name"] == "capminer-hosts")
            })
            .map(|m| {
                (
                    str_of(&m["mountPath"], "mountPath").to_string(),
                    hosts_dir.path().to_path_buf(),
                )
            })
            .collect();
        let node = hosts.keys().nth(1).unwrap().as_str();
        let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1);
        let pod_name = format!(
            "{}-{}",
            str_of(&workload["metadata"]["name"], "name"),
            replicas - 1
        );
        let fields = BTreeMap::from([
            ("spec.nodeName", node),
            ("metadata.name", pod_name.as_str()),
        ]);
        let started = start_container(c, &fields, &mount_dirs);
        assert!(started.ok, "{kind}: starts: {}", started.stderr);
        let (subcommand, key_var) = match kind {
            "DaemonSet" => ("run", "CAPMINER_CHAIN__KEY_FILE"),
            _ => ("verifier", "CAPMINER_VERIFIER__KEY_FILE"),
        };
        let args = &started.args;
        assert_eq!(args[..2], [subcommand, "-c"], "{kind}: {args:?}");
        let config_path = Path::new(&args[2]);
        let config_mount = mount_of(config_path);
        assert_eq!(config_mount["readOnly"], true);
        assert_eq!(
            volume(&config_mount["name"]).unwrap()["configMap"]["name"],
            config_name
        );
        let key = str_of(&config_mount["subPath"], "subPath");
        let config = load_config_text(str_of(&config_map["data"][key], "config"), &started.env);
        match kind {
            "DaemonSet" => {
                assert_eq!(config.miner.host, hosts[node], "the node's host index");
                // A node missing from capminer-hosts stops at once, saying so.
                let stray =
                    BTreeMap::from([("spec.nodeName", "stray-node"), ("metadata.name", "x")]);
                let refused = start_container(c, &stray, &mount_dirs);
                assert!(
                    !refused.ok
                        && refused.stderr.contains("stray-node")
                        && refused.stderr.contains("capminer-hosts"),
                    "{}",
                    refused.stderr
                );
            }
            _ => {
                // Replica I of N checks shard I/N, with N the replicas.
                assert_eq!(
                    args[3..],
                    [
                        "--shard".to_string(),
                        format!("{}/{replicas}", replicas - 1)
                    ],
                    "{kind}: {args:?}"
                );
                assert!(replicas >= 2, "a sharded party");
                let claim = &workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
                assert!(
                    mounts.iter().any(|m| &m["name"] == claim
                        && config
                            .verifier
                            .state_dir
                            .starts_with(str_of(&m["mountPath"], "mountPath"))),
                    "{kind}: each shard's progress on its own claim"
                );
            }
        }

        // The metrics port: the config's listen port = containerPort = the scrape annotation.
        let port = config.metrics.listen.port();
        assert!(config.metrics.enabled, "{kind}");
        assert!(
            config.metrics.listen.ip().is_unspecified(),
            "{kind}: reachable inside the pod network"
        );
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{kind}");
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string(),
            "{kind}"
        );
        let ports = c["ports"].as_array().unwrap();
        assert!(
            ports
                .iter()
                .any(|p| p["containerPort"] == port && p["name"] == "metrics"),
            "{kind}: containerPort {port}: {ports:?}"
        );

        // The key: this pod's own file of a Secret, read-only, mode 0400.
        let key_file = match kind {
            "DaemonSet" => config.chain.key_file.clone(),
            _ => config.verifier.key_file.clone(),
        }
        .unwrap_or_else(|| panic!("{kind}: a key file"));
        assert_eq!(
            started.env.get(key_var).map(PathBuf::from),
            Some(key_file.clone()),
            "{kind}: the key named by {key_var}"
        );
        let own = match kind {
            "DaemonSet" => format!("{node}.key"),
            _ => format!("{pod_name}.key"),
        };
        assert_eq!(
            key_file.file_name().unwrap().to_str(),
            Some(own.as_str()),
            "{kind}: its own key"
        );
        let key_mount = mount_of(&key_file);
        assert_eq!(key_mount["readOnly"], true, "{kind}: key read-only");
        let secret = &volume(&key_mount["name"]).unwrap()["secret"];
        assert!(
            secret["secretName"].is_string(),
            "{kind}: the key is a Secret"
        );
        assert_eq!(secret["defaultMode"], 0o400, "{kind}: key mode 0400");
        // The state directory is a mounted volume.
        let state = match kind {
            "DaemonSet" => config.miner.state_dir.clone(),
            _ => config.verifier.state_dir.clone(),
        };
        assert!(
            mounts
                .iter()
                .any(|m| state.starts_with(str_of(&m["mountPath"], "mountPath"))
                    && m["readOnly"] != true),
            "{kind}: {} on a writable volume",
            state.display()
        );

        // Huge pages: requests = limits, with memory requested too (Kubernetes requires both).
        let resources = &c["resources"];
        let requests = resources["requests"].as_object().unwrap();
        let limits = resources["limits"].as_object().unwrap();
        for (name, value) in requests.iter().chain(limits.iter()) {
            if name.starts_with("hugepages-") {
                assert_eq!(requests.get(name), Some(value), "{kind}: {name} requested");
                assert_eq!(limits.get(name), Some(value), "{kind}: {name} limited");
                assert!(requests.contains_key("memory") || requests.contains_key("cpu"));
            }
        }
        if kind == "DaemonSet" {
            assert!(
                requests.contains_key("hugepages-2Mi"),
                "miners ask for huge pages"
            );
            assert!(config.cpu.randomx.large_pages, "and the config uses them");
            assert!(
                !pod["nodeSelector"].as_object().unwrap().is_empty(),
                "miners run on selected nodes"
            );
        }
    }
    // The StatefulSet's governing Service exists and is headless.
    let service = find(
        "Service",
        str_of(
            &find("StatefulSet", "")["spec"]["serviceName"],
            "serviceName",
        ),
    );
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(images.len(), 1, "one image everywhere: {images:?}");
}
