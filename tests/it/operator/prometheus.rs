//! The Prometheus files, for `capminer run` and `capminer verifier` (`prometheus.yml`,
//! `alerts.yml`, `alerts_test.yml`) and for `capminer ccp` (`prometheus-ccp.yml`,
//! `alerts-ccp.yml`, `alerts-ccp_test.yml`): checked and unit-tested by promtool; every alert
//! annotated, and tested both firing and not firing.

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

/// The configuration, rule and rule-test files of each profile, in deploy/prometheus.
const FILES: [[&str; 3]; 2] = [
    ["prometheus.yml", "alerts.yml", "alerts_test.yml"],
    [
        "prometheus-ccp.yml",
        "alerts-ccp.yml",
        "alerts-ccp_test.yml",
    ],
];

/// The alerting rules of `file` (in deploy/prometheus): name to rule.
pub(super) fn alert_rules(file: &str) -> BTreeMap<String, Json> {
    let rules = yaml_json(&format!("prometheus/{file}"));
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
    let mut names = BTreeSet::new();
    for [config, rules_file, tests_file] in FILES {
        for args in [
            &["check", "config", config][..],
            &["check", "rules", rules_file],
            &["test", "rules", tests_file],
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
        let config = yaml_json(&format!("prometheus/{config}"));
        assert_eq!(config["rule_files"], serde_json::json!([rules_file]));

        // Every alert: a severity, a summary, a description; no name in two files.
        let rules = alert_rules(rules_file);
        assert!(rules.len() >= 6, "{rules:?}");
        for (name, rule) in &rules {
            assert!(names.insert(name.clone()), "{name} in two rule files");
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
        let tests = yaml_json(&format!("prometheus/{tests_file}"));
        assert_eq!(tests["rule_files"], serde_json::json!([rules_file]));
        let mut firing = BTreeSet::new();
        let mut quiet = BTreeSet::new();
        for test in tests["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"].as_array().expect("alert_rule_test") {
                let name = str_of(&case["alertname"], "alertname").to_string();
                assert!(
                    rules.contains_key(&name),
                    "{tests_file} tests an unknown alert {name}"
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
        assert_eq!(firing, all, "{rules_file}: every alert tested firing");
        assert_eq!(quiet, all, "{rules_file}: every alert tested not firing");
    }
}
