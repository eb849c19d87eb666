//! `capminer status`: a running node's units, hashrates, proofs and chain state, read from its
//! control API (`GET /api/v1/status`) and printed as a table, or as the API's JSON. In the
//! Fluence profile (`network.profile = "fluence"`), `capminer ccp`'s status instead: the
//! commitment and each CU, from `GET /api/v1/status` at `ccp.listen` (see src/ccp/status.rs).

use std::process::ExitCode;

use super::api_client::{api_error, request};
use super::{ConfigArg, load_config};
use crate::api::Status;
use crate::ccp::status::CcpStatus;
use crate::output::outln;
use capminer_protocol::NetworkProfile;

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
    if config.network.profile == NetworkProfile::Fluence {
        return ccp_status(config.ccp.listen, args.json);
    }
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

/// `capminer ccp`'s status at `listen` (`ccp.listen`).
fn ccp_status(listen: std::net::SocketAddr, json: bool) -> anyhow::Result<ExitCode> {
    let (code, body) = request(listen, "GET", "/api/v1/status", None).map_err(|e| {
        anyhow::anyhow!(
            "{e:#} (network.profile = \"fluence\": the status is `capminer ccp`'s, at ccp.listen = {listen})"
        )
    })?;
    if code != 200 {
        return Err(api_error(code, &body));
    }
    if json {
        outln!("{body}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let s: CcpStatus = serde_json::from_str(&body)?;
    outln!(
        "capminer {} (profile {})  up {} s  proofs served {}",
        s.version,
        s.profile,
        s.uptime_seconds,
        s.proofs_served
    )?;
    match &s.commitment {
        Some(c) => outln!(
            "commitment: global nonce {}  difficulty {}",
            c.global_nonce,
            c.difficulty
        )?,
        None => outln!("commitment: none (no CU runs)")?,
    }
    outln!(
        "{:<64} {:>4} {:>7} {:<8} {:>12} {:>7} {:>9}",
        "cu",
        "core",
        "threads",
        "state",
        "hashes",
        "proofs",
        "last idx"
    )?;
    for u in &s.units {
        outln!(
            "{:<64} {:>4} {:>7} {:<8} {:>12} {:>7} {:>9}{}",
            u.cu,
            u.core,
            u.threads,
            u.state,
            u.hashes,
            u.proofs_found,
            u.last_proof_index.map_or("-".into(), |i| i.to_string()),
            u.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )?;
    }
    let cpus: Vec<String> = s.utility_cpus.iter().map(|c| c.to_string()).collect();
    outln!(
        "utility CPUs: {}",
        if cpus.is_empty() {
            "any".into()
        } else {
            cpus.join(", ")
        }
    )?;
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
