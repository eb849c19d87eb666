//! Checks of a loaded configuration that need no look at the machine: each refusal names its
//! key, located where its value came from (file and line, or the environment variable).

use crate::{Config, ConfigError, MAX_HOST, Units};

impl Config {
    /// An error about `key`, located where that key's value came from.
    pub fn key_error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            at: self.origin.source_of(key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Checks what can be checked without looking at the machine.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_basics()?;
        self.validate_chain()?;
        self.validate_local()?;
        self.validate_watchdog()?;
        self.validate_units()
    }

    /// `cpu.round_ms` and `miner.host`.
    fn validate_basics(&self) -> Result<(), ConfigError> {
        let cpu = &self.cpu;
        if !(100..=250).contains(&cpu.round_ms) {
            return Err(self.key_error(
                "cpu.round_ms",
                format!("{} is outside 100..=250 ms", cpu.round_ms),
            ));
        }
        if self.miner.host > MAX_HOST {
            return Err(self.key_error(
                "miner.host",
                format!("{} is above {MAX_HOST}", self.miner.host),
            ));
        }
        Ok(())
    }

    /// `[chain]` and the verifier's sample rate.
    fn validate_chain(&self) -> Result<(), ConfigError> {
        let chain = &self.chain;
        if chain.enabled && chain.contract.is_none() {
            return Err(self.key_error(
                "chain.contract",
                "the contract address is required when chain.enabled = true",
            ));
        }
        if chain.poll_ms == 0 {
            return Err(self.key_error(
                "chain.poll_ms",
                "must be at least 1 ms: every poll queries the node",
            ));
        }
        if chain.gas.max_fee_gwei == 0 {
            return Err(self.key_error(
                "chain.gas.max_fee_gwei",
                "must be at least 1 gwei: no transaction is mined under a zero fee cap",
            ));
        }
        if !(chain.rpc_url.starts_with("http://") || chain.rpc_url.starts_with("https://")) {
            return Err(self.key_error(
                "chain.rpc_url",
                format!("{:?} is not an http(s) URL", chain.rpc_url),
            ));
        }
        if let Some(problem) = url_authority_problem(&chain.rpc_url) {
            // The URL is not shown: its user info, path or query may hold credentials.
            return Err(self.key_error(
                "chain.rpc_url",
                format!("{problem} (expected http(s)://HOST[:PORT][/PATH])"),
            ));
        }
        if !(self.verifier.sample_rate > 0.0 && self.verifier.sample_rate <= 1.0) {
            return Err(self.key_error(
                "verifier.sample_rate",
                format!("{} is outside (0, 1]", self.verifier.sample_rate),
            ));
        }
        if chain.gas.bump_percent < 10 {
            return Err(self.key_error(
                "chain.gas.bump_percent",
                "nodes refuse replacements that raise fees by less than 10%",
            ));
        }
        if chain.log_range == 0 {
            return Err(self.key_error("chain.log_range", "must be at least 1 block"));
        }
        if chain.batch.max_proofs == 0 || chain.batch.max_proofs > u16::MAX as usize {
            return Err(self.key_error("chain.batch.max_proofs", "must be within 1..=65535"));
        }
        Ok(())
    }

    /// What this machine serves and runs: the API's exposure, GPU batches, the two listeners,
    /// CPU thread counts.
    fn validate_local(&self) -> Result<(), ConfigError> {
        let cpu = &self.cpu;
        if self.api.enabled && !self.api.listen.ip().is_loopback() && self.api.token_file.is_none()
        {
            return Err(self.key_error(
                "api.listen",
                format!(
                    "{} is not a loopback address: set api.token_file too, so that only holders of the token can pause or change the miner",
                    self.api.listen
                ),
            ));
        }
        if self.gpu.batch == Some(0) {
            return Err(self.key_error(
                "gpu.batch",
                "0 nonces per dispatch cannot hash: give at least 1, or leave the key out \
                 (commented, as in the example) to auto-tune it",
            ));
        }
        self.validate_listeners()?;
        if cpu.threads_per_core == Some(0) {
            return Err(self.key_error("cpu.threads_per_core", "must be at least 1 (or absent)"));
        }
        if cpu.dataset_threads == Some(0) {
            return Err(self.key_error("cpu.dataset_threads", "must be at least 1 (or absent)"));
        }
        Ok(())
    }

    /// `[watchdog]`.
    fn validate_watchdog(&self) -> Result<(), ConfigError> {
        let w = &self.watchdog;
        if w.stall_rounds < 3 {
            return Err(self.key_error(
                "watchdog.stall_rounds",
                format!(
                    "{} is too few: a round may end without a hash, use at least 3",
                    w.stall_rounds
                ),
            ));
        }
        if w.backoff_initial_ms == 0 {
            return Err(self.key_error("watchdog.backoff_initial_ms", "must be at least 1 ms"));
        }
        if w.backoff_max_ms < w.backoff_initial_ms {
            return Err(self.key_error(
                "watchdog.backoff_max_ms",
                format!(
                    "{} is below watchdog.backoff_initial_ms = {}",
                    w.backoff_max_ms, w.backoff_initial_ms
                ),
            ));
        }
        if w.backoff_reset_ms == 0 {
            return Err(self.key_error("watchdog.backoff_reset_ms", "must be at least 1 ms"));
        }
        Ok(())
    }

    /// A `cpu.units` list: one unit per core, unique ids, none on a utility core.
    fn validate_units(&self) -> Result<(), ConfigError> {
        let cpu = &self.cpu;
        if let Units::List(units) = &cpu.units {
            for (i, unit) in units.iter().enumerate() {
                if let Some(j) = units[..i].iter().position(|u| u.core == unit.core) {
                    return Err(self.key_error(
                        &format!("cpu.units[{i}].core"),
                        format!(
                            "core {} is already used by cpu.units[{j}]: one unit per core",
                            unit.core
                        ),
                    ));
                }
                if let Some(id) = unit.id
                    && let Some(j) = units[..i].iter().position(|u| u.id == Some(id))
                {
                    return Err(self.key_error(
                        &format!("cpu.units[{i}].id"),
                        format!("id is already used by cpu.units[{j}]: unit ids are unique"),
                    ));
                }
                if cpu.utility_cores.contains(&unit.core) {
                    return Err(self.key_error(
                        &format!("cpu.units[{i}].core"),
                        format!("core {} is listed in cpu.utility_cores", unit.core),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The metrics endpoint and the control API cannot listen on one address (nor one port
    /// where either takes every address): the second would fail to bind at startup.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let (metrics, api) = (self.metrics.listen, self.api.listen);
        let clash = self.metrics.enabled
            && self.api.enabled
            && metrics.port() != 0
            && metrics.port() == api.port()
            && (metrics.ip() == api.ip()
                || metrics.ip().is_unspecified()
                || api.ip().is_unspecified());
        if clash {
            return Err(self.key_error(
                "metrics.listen",
                format!(
                    "{metrics} and api.listen = {api} are one address: two listeners cannot share it; \
                     give one of them another port (the defaults are 9477 for metrics, 9478 for the API)"
                ),
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serializes to TOML")
    }
}

/// What is wrong with an http(s) URL's authority (`user@host:port`), if anything: no host, or
/// a port that is not a number. Never quotes the URL (it may carry credentials).
fn url_authority_problem(url: &str) -> Option<&'static str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8545`.
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Some("has an unclosed IPv6 bracket in its host"),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Some("has no host");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Some("has a port that is not a number within 0..=65535");
    }
    None
}
