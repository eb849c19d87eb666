//! The Prometheus files: `prometheus.yml`, `alerts.yml` and `alerts_test.yml` checked and
//! unit-tested by promtool; every alert annotated, and tested both firing and not firing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value as Json;

use super::{deploy, str_of, yaml_json};
use crate::common::text;

fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus, deploy/setup.sh installs it)")
}

/// The alerting rules of alerts.yml: name to rule.
pub(super) fn alert_rules() -> BTreeMap<String, Json> {
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
