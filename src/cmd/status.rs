//! `capminer status`: a running node's units, hashrates, proofs and chain state, read from its
//! control API (`GET /api/v1/status`) and printed as a table, or as the API's JSON.

use std::process::ExitCode;

use super::api_client::{api_error, request};
use super::{ConfigArg, load_config};
use crate::api::Status;
use crate::output::outln;

/// Arguments of `capminer status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `capminer status`.
pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let (code, body) = request(config.api.listen, "GET", "/api/v1/status", None)?;
    if code != 200 {
        return Err(api_error(code, &body));
    }
    if args.json {
        outln!("{body}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let s: Status = serde_json::from_str(&body)?;
    outln!(
        "capminer {}  up {} s  epoch {}",
        s.version,
        s.uptime_seconds,
        s.epoch.map_or("-".into(), |e| e.to_string())
    )?;
    outln!(
        "{:<6} {:<4} {:<8} {:>10} {:>10} {:>10}  place",
        "unit",
        "kind",
        "state",
        "H/s 10s",
        "H/s 60s",
        "H/s 15m"
    )?;
    for u in &s.units {
        let rate = |w: &str| u.hashrate.get(w).copied().unwrap_or(0.0);
        outln!(
            "{:<6} {:<4} {:<8} {:>10.1} {:>10.1} {:>10.1}  {}{}{}",
            u.unit,
            u.kind,
            u.state,
            rate("10s"),
            rate("60s"),
            rate("15m"),
            u.place,
            u.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            match u.restarts {
                0 => String::new(),
                n => format!(" [restarted {n}x by the watchdog]"),
            }
        )?;
    }
    let line = |name: &str, m: &std::collections::BTreeMap<String, f64>| {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        outln!("{name}: {}", parts.join(", "))
    };
    line("proofs", &s.proofs)?;
    let in_flight: std::collections::BTreeMap<String, f64> = s
        .proofs_in_flight
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    line("in flight", &in_flight)?;
    if let Some(c) = &s.chain {
        line("chain", c)?;
    }
    duplicate_hosts(&s);
    if let Some(v) = &s.verifier {
        line("verifier", v)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A line that stands out when units are held because another machine mines their ids.
fn duplicate_hosts(s: &Status) {
    let held: Vec<&str> = s
        .units
        .iter()
        .filter(|u| {
            u.reason
                .as_deref()
                .is_some_and(|r| r.starts_with(capminer_chain::DUPLICATE_HOST_HOLD))
        })
        .map(|u| u.unit.as_str())
        .collect();
    if !held.is_empty() {
        println!(
            "DUPLICATE HOST: units {} are held: another machine mines their ids (a copied config or image); give each machine its own miner.host and restart",
            held.join(", ")
        );
    }
}
