//! The Grafana dashboard (panels, data source, grid, the panels an operator needs) and its
//! provisioning files; the panel expressions the live test evaluates.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::{read, str_of, yaml_json};

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
pub(super) fn panel_expressions(dashboard: &Json) -> Vec<(String, String)> {
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
pub(super) fn substitute(expr: &str) -> String {
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

pub(super) fn dashboard() -> Json {
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
