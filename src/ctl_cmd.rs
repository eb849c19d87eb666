//! `capminer status` and `capminer ctl`: the control API from the command line, at the address
//! and with the token of the configuration's `[api]`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use crate::api::{Status, read_token};
use crate::{ConfigArg, load_config};

/// Arguments of `capminer status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What `capminer ctl` asks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Action {
    /// Stop hashing (within one hash); datasets stay built.
    Pause,
    /// Hash again.
    Resume,
    /// Re-read the configuration and apply what can change live (as SIGHUP does); with
    /// --unit, restart that unit afterwards.
    Reload,
}

/// Arguments of `capminer ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// What to do.
    action: Action,
    /// Only this unit (its label, e.g. cpu0); all units without it. With reload: the unit to
    /// restart after the configuration is reloaded.
    #[arg(long)]
    unit: Option<String>,
}

/// One HTTP/1.1 request to the API; the status code and the body.
fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&[u8]>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
        anyhow::anyhow!("api.listen = {addr}: cannot connect ({e}): is `capminer run` running with [api] enabled?")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(t) = token {
        head.push_str(&format!(
            "Authorization: Bearer {}\r\n",
            String::from_utf8_lossy(t)
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (headers, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("api.listen = {addr}: not an HTTP response"))?;
    let code = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("api.listen = {addr}: no status line"))?;
    let chunked = headers
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Ok((
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// The body of a chunked response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn api_error(code: u16, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    anyhow::anyhow!("control API answered {code}: {message}")
}

/// `capminer status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let (code, body) = request(config.api.listen, "GET", "/api/v1/status", None)?;
    if code != 200 {
        return Err(api_error(code, &body));
    }
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let s: Status = serde_json::from_str(&body)?;
    println!(
        "capminer {}  up {} s  epoch {}",
        s.version,
        s.uptime_seconds,
        s.epoch.map_or("-".into(), |e| e.to_string())
    );
    println!(
        "{:<6} {:<4} {:<8} {:>10} {:>10} {:>10}  place",
        "unit", "kind", "state", "H/s 10s", "H/s 60s", "H/s 15m"
    );
    for u in &s.units {
        let rate = |w: &str| u.hashrate.get(w).copied().unwrap_or(0.0);
        println!(
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
        );
    }
    let line = |name: &str, m: &std::collections::BTreeMap<String, f64>| {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("{name}: {}", parts.join(", "));
    };
    line("proofs", &s.proofs);
    let in_flight: std::collections::BTreeMap<String, f64> = s
        .proofs_in_flight
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    line("in flight", &in_flight);
    if let Some(c) = &s.chain {
        line("chain", c);
    }
    if let Some(v) = &s.verifier {
        line("verifier", v);
    }
    Ok(ExitCode::SUCCESS)
}

/// `capminer ctl`.
pub fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let Some(path) = config.api.token_file.as_deref() else {
        return Err(config
            .key_error(
                "api.token_file",
                "changing the miner needs the API token: set api.token_file",
            )
            .into());
    };
    let token = read_token(path)?;
    let verb = match args.action {
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::Reload => "reload",
    };
    let path = match &args.unit {
        Some(u)
            if u.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            format!("/api/v1/{verb}?unit={u}")
        }
        Some(u) => anyhow::bail!("--unit {u:?}: unit labels are letters, digits, - and _"),
        None => format!("/api/v1/{verb}"),
    };
    let (code, body) = request(config.api.listen, "POST", &path, Some(&token))?;
    if code != 200 {
        return Err(api_error(code, &body));
    }
    println!("{body}");
    Ok(ExitCode::SUCCESS)
}
