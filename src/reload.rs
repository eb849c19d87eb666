//! Re-reading the configuration while the node runs (`POST /api/v1/reload`, SIGHUP,
//! `capminer ctl reload`).
//!
//! ```text
//!  config file + CAPMINER_* env ─▶ load + validate ──error──▶ refused: file, line, key; nothing
//!                                        │                    changes
//!                                        ▼
//!                 diff against the running config, key by key (dotted paths)
//!                   ├─ live keys ─▶ applied now: watchdog.*, log.level, gpu.batch
//!                   └─ any other ─▶ named in restart_required (the process keeps the old value)
//! ```
//!
//! The running configuration keeps the old values of keys that need a restart, so a later
//! reload names them again until the process restarts. Reading files and touching the miner
//! are blocking: the API and the signal handler call [`Reloader::reload`] off the async threads.

use std::sync::{Mutex, Weak};

use capminer_config::Config;
use capminer_miner::Miner;
use serde::{Deserialize, Serialize};

/// Keys (and sections) a reload applies while the node runs.
pub(crate) const LIVE_KEYS: &[&str] = &["watchdog", "log.level", "gpu.batch"];

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReloadReport {
    /// Changed keys applied now.
    pub applied: Vec<String>,
    /// Changed keys that take effect only when the process restarts.
    pub restart_required: Vec<String>,
}

/// The node's running configuration and what a reload changes.
#[derive(Debug)]
pub(crate) struct Reloader {
    running: Mutex<Config>,
    miner: Weak<Miner>,
}

impl Reloader {
    /// Reloads `running` (loaded from `running.origin.file`) into `miner`.
    pub(crate) fn new(running: Config, miner: Weak<Miner>) -> Self {
        Self {
            running: Mutex::new(running),
            miner,
        }
    }

    /// The configuration in force (live keys as last reloaded).
    pub(crate) fn running(&self) -> Config {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records utility cores changed through the API (so later unit changes check them).
    pub(crate) fn set_utility_cores(&self, cores: Vec<usize>) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cpu
            .utility_cores = cores;
    }

    /// Re-reads the configuration file and the environment and applies what can change live.
    /// A configuration that does not load (syntax, unknown key, invalid value, a log filter
    /// that does not parse) is refused with the error naming file, line and key, and nothing
    /// changes. Blocking.
    pub(crate) fn reload(&self) -> anyhow::Result<ReloadReport> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let new = capminer_config::load(running.origin.file.as_deref(), std::env::vars())?;
        let changed = changed_keys(&running, &new);
        let (applied, restart_required): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| is_live(k));
        let filter = crate::logging::filter(&new)?;
        let miner = self
            .miner
            .upgrade()
            .ok_or_else(|| anyhow::anyhow!("the miner is stopping"))?;
        if applied.iter().any(|k| k == "log.level") {
            crate::logging::set_filter(filter)?;
            running.log.level = new.log.level.clone();
        }
        if applied.iter().any(|k| k.starts_with("watchdog.")) {
            miner.supervisor().set_settings(new.watchdog.clone());
            running.watchdog = new.watchdog.clone();
        }
        if applied.iter().any(|k| k == "gpu.batch") {
            miner.supervisor().set_gpu_batch(new.gpu.batch);
            running.gpu.batch = new.gpu.batch;
        }
        let report = ReloadReport {
            applied,
            restart_required,
        };
        tracing::info!(applied = ?report.applied, restart_required = ?report.restart_required, "configuration reloaded");
        Ok(report)
    }
}

/// Reloads on every SIGHUP until the runtime ends; a refused configuration is logged and
/// changes nothing.
pub(crate) async fn reload_on_sighup(reloader: std::sync::Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP: {e}");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        let r = reloader.clone();
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!("SIGHUP: configuration not reloaded, nothing changed: {e:#}")
            }
            Err(e) => tracing::error!("SIGHUP: reload failed: {e}"),
        }
    }
}

fn is_live(key: &str) -> bool {
    LIVE_KEYS
        .iter()
        .any(|l| key == *l || key.strip_prefix(l).is_some_and(|r| r.starts_with('.')))
}

/// The dotted keys whose values differ between `a` and `b` (a key absent on one side
/// included), sorted.
pub(crate) fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let mut flat_a = Vec::new();
    let mut flat_b = Vec::new();
    flatten(
        &toml::Table::try_from(a).expect("serializes"),
        "",
        &mut flat_a,
    );
    flatten(
        &toml::Table::try_from(b).expect("serializes"),
        "",
        &mut flat_b,
    );
    let map_a: std::collections::BTreeMap<_, _> = flat_a.into_iter().collect();
    let map_b: std::collections::BTreeMap<_, _> = flat_b.into_iter().collect();
    let keys: std::collections::BTreeSet<&String> = map_a.keys().chain(map_b.keys()).collect();
    keys.into_iter()
        .filter(|k| map_a.get(*k) != map_b.get(*k))
        .cloned()
        .collect()
}

/// Leaves of `table` as `(dotted key, value)`; arrays are leaves.
fn flatten(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(t) => flatten(t, &format!("{path}."), out),
            other => out.push((path, other.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_dotted_leaves_and_sorted_into_live_and_restart() {
        let a = Config::default();
        let mut b = a.clone();
        b.watchdog.stall_rounds = 9;
        b.gpu.batch = Some(512);
        b.chain.rpc_url = "http://10.0.0.1:8545".into();
        b.cpu.units =
            capminer_config::Units::List(vec![capminer_config::UnitConfig { core: 1, id: None }]);
        let changed = changed_keys(&a, &b);
        assert_eq!(
            changed,
            vec![
                "chain.rpc_url",
                "cpu.units",
                "gpu.batch",
                "watchdog.stall_rounds"
            ]
        );
        let live: Vec<bool> = changed.iter().map(|k| is_live(k)).collect();
        assert_eq!(live, vec![false, false, true, true]);
        assert!(!is_live("log.level_x") && is_live("log.level"));
        assert!(changed_keys(&a, &a.clone()).is_empty());
    }
}
