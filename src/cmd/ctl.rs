//! `capminer ctl`: pause, resume or reload a running node, or one of its units, through its
//! control API, at the address and with the token of the configuration's `[api]`. In the
//! Fluence profile it pauses and resumes `capminer ccp`'s CUs instead, at `ccp.listen`
//! (`--unit` is a CU id in hex; `capminer ccp` has no live reload).

use std::process::ExitCode;

use super::api_client::{api_error, request};
use super::{ConfigArg, load_config};
use crate::api::read_token;
use crate::output::outln;
use capminer_protocol::NetworkProfile;

/// What `capminer ctl` asks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Action {
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
pub(crate) struct CtlArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// What to do.
    action: Action,
    /// Only this unit (its label, e.g. cpu0; in the Fluence profile a CU id in hex); all units
    /// without it. With reload: the unit to restart after the configuration is reloaded.
    #[arg(long)]
    unit: Option<String>,
}

/// `capminer ctl`.
pub(crate) fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
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
    let fluence = config.network.profile == NetworkProfile::Fluence;
    if fluence && matches!(args.action, Action::Reload) {
        anyhow::bail!(
            "ctl reload: network.profile = \"fluence\": `capminer ccp` has no live reload (restart it; nox re-sends its commitment)"
        );
    }
    // A unit's label in `run`, a CU id in hex in `capminer ccp`: the query field each reads.
    let field = if fluence { "cu" } else { "unit" };
    let path = match &args.unit {
        Some(u)
            if u.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            format!("/api/v1/{verb}?{field}={u}")
        }
        Some(u) => anyhow::bail!("--unit {u:?}: unit labels are letters, digits, - and _"),
        None => format!("/api/v1/{verb}"),
    };
    let listen = if fluence {
        config.ccp.listen
    } else {
        config.api.listen
    };
    let (code, body) = request(listen, "POST", &path, Some(&token))?;
    if code != 200 {
        return Err(api_error(code, &body));
    }
    outln!("{body}")?;
    Ok(ExitCode::SUCCESS)
}
