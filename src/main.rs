//! `capminer`: the command line.
//!
//! ```text
//!  capminer run      ── config ─▶ proof store ─▶ Miner (units) ◀─ epoch source (fixed epoch)
//!                                      ▲              │
//!                                      └── proofs ────┘      metrics ─▶ GET /metrics
//!  capminer bench    ── the same units on the fixed epoch, hashrate per unit
//!  capminer verify   ── proofs from the store or a JSON file, re-checked in light mode
//!  capminer proofs   ── export the store's proofs as JSON
//!  capminer config   ── check or print the effective configuration
//!  capminer status   ── a running node's state through its control API; `ctl` pauses, resumes,
//!                      reloads the configuration
//! ```

mod api;
mod bench;
mod config_cmd;
mod ctl_cmd;
mod devices_cmd;
mod devnet_cmd;
mod doctor_cmd;
mod epoch;
mod logging;
mod metrics_server;
mod node;
mod progress;
mod proofs_cmd;
mod provider_cmd;
mod reload;
mod run;
mod units_api;
mod verifier_cmd;
mod verify_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Proof-of-capacity miner: CPU units on RandomX, proofs stored crash-safely.
#[derive(Debug, Parser)]
#[command(name = "capminer", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// TOML configuration file (every key optional; see config/capminer.example.toml).
    /// CAPMINER_<SECTION>__<KEY> environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Log lines as text or JSON (overrides log.format).
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<LogFormatArg>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mine: run every configured unit, store proofs, serve metrics.
    Run(run::RunArgs),
    /// Everything on one machine: anvil, the contract, the miner, its chain client, verifiers.
    Devnet(devnet_cmd::DevnetArgs),
    /// Measure the hashrate of every configured unit on the fixed epoch.
    Bench(bench::BenchArgs),
    /// Re-check proofs in light mode; exits non-zero if any is invalid.
    Verify(verify_cmd::VerifyArgs),
    /// Verify the proofs submitted on chain and attest (or report invalid ones).
    Verifier(verifier_cmd::VerifierArgs),
    /// List the GPU adapters (for `gpu.devices`).
    Devices,
    /// Check this machine against the configuration: ok / warn / fail with the fix for each.
    Doctor(doctor_cmd::DoctorArgs),
    /// Show a running miner's units, hashrates, proofs and chain state (its control API).
    Status(ctl_cmd::StatusArgs),
    /// Pause, resume or reload a running miner, or one of its units (needs api.token_file).
    Ctl(ctl_cmd::CtlArgs),
    /// The provider's tasks (its own key): register, authorize|revoke host operators, claim,
    /// retire, withdraw, top-up, units.
    Provider(provider_cmd::ProviderArgs),
    /// A verifier party's tasks (its own key): authorize|revoke shard delegates.
    Party(provider_cmd::PartyArgs),
    /// Work with the proof store.
    #[command(subcommand)]
    Proofs(proofs_cmd::ProofsCommand),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Devnet(args) => devnet_cmd::devnet(args),
        Command::Bench(args) => bench::bench(args),
        Command::Verify(args) => verify_cmd::verify(args),
        Command::Verifier(args) => verifier_cmd::verifier(args),
        Command::Proofs(cmd) => proofs_cmd::proofs(cmd),
        Command::Provider(args) => provider_cmd::provider(args),
        Command::Party(args) => provider_cmd::party(args),
        Command::Devices => devices_cmd::devices(),
        Command::Doctor(args) => doctor_cmd::doctor(args),
        Command::Status(args) => ctl_cmd::status(args),
        Command::Ctl(args) => ctl_cmd::ctl(args),
        Command::Config(cmd) => config_cmd::config(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("capminer: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Loads the configuration named by `arg`, with the process environment's overrides.
pub fn load_config(arg: &ConfigArg) -> anyhow::Result<capminer_config::Config> {
    let mut config = capminer_config::load(arg.config.as_deref(), std::env::vars())?;
    if let Some(format) = arg.log_format {
        config.log.format = match format {
            LogFormatArg::Text => capminer_config::LogFormat::Text,
            LogFormatArg::Json => capminer_config::LogFormat::Json,
        };
    }
    Ok(config)
}
