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
//!
//! One file per part of the plane: [`promql`] (the metric names of an expression),
//! [`prometheus`] (configuration and rules through promtool), [`grafana`] (the dashboard and its
//! provisioning), [`live`] (everything evaluated by a real Prometheus), [`systemd`], [`container`],
//! [`kubernetes`], [`ccp`] (`capminer ccp`'s alerts evaluated by a real Prometheus). The helpers
//! that read `deploy/` are here.

mod ccp;
mod container;
mod grafana;
mod kubernetes;
mod live;
mod prometheus;
mod promql;
mod systemd;

use std::path::PathBuf;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

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

fn str_of<'a>(v: &'a Json, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}
