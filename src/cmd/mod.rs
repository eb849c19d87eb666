//! The subcommands, one module each, and what they share: the `--config` and `--log-format`
//! arguments and loading the configuration they name.
//!
//! ```text
//!  run       ── the node (src/node/) with the configured epoch source
//!  devnet    ── anvil, the contract, verifiers, hosts, then the node against them
//!  bench     ── hashrate of every configured unit on the fixed epoch
//!  verify    ── proofs re-checked in light mode          proofs    ── the store as JSON
//!  verifier  ── proofs on chain re-checked and attested  doctor    ── this machine checked
//!  status, ctl ── a running node through its control API (src/api/)
//!  provider, party ── tasks signed with the provider's or a verifier party's own key
//!  devices   ── the GPU adapters                          config    ── check or print
//!  ccp       ── the Fluence profile: CCP's JSON-RPC for Fluence's node (src/ccp/)
//! ```

mod api_client;
pub(crate) mod bench;
pub(crate) mod ccp;
pub(crate) mod config;
pub(crate) mod ctl;
pub(crate) mod devices;
pub(crate) mod devnet;
pub(crate) mod doctor;
pub(crate) mod party;
pub(crate) mod proofs;
pub(crate) mod provider;
pub(crate) mod run;
mod selftest;
mod signed;
pub(crate) mod status;
pub(crate) mod verifier;
pub(crate) mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// Where the configuration comes from.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArg {
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
pub(crate) enum LogFormatArg {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object a line.
    Json,
}

// The subcommands (a plain comment: clap would read a doc comment as help text).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Mine: run every configured unit, store proofs, serve metrics.
    Run(run::RunArgs),
    /// Everything on one machine: anvil, the contract, the miner, its chain client, verifiers.
    Devnet(devnet::DevnetArgs),
    /// Measure the hashrate of every configured unit on the fixed epoch.
    Bench(bench::BenchArgs),
    /// Re-check proofs in light mode; exits non-zero if any is invalid.
    Verify(verify::VerifyArgs),
    /// Verify the proofs submitted on chain and attest (or report invalid ones).
    Verifier(verifier::VerifierArgs),
    /// List the GPU adapters (for `gpu.devices`).
    Devices,
    /// Check this machine against the configuration: ok / warn / fail with the fix for each.
    Doctor(doctor::DoctorArgs),
    /// Show a running miner's units, hashrates, proofs and chain state (its control API).
    Status(status::StatusArgs),
    /// Pause, resume or reload a running miner, or one of its units (needs api.token_file).
    Ctl(ctl::CtlArgs),
    /// The provider's tasks (its own key): address, register, authorize|revoke host operators,
    /// claim, retire, withdraw, top-up, units.
    Provider(provider::ProviderArgs),
    /// A verifier party's tasks (its own key): authorize|revoke shard delegates.
    Party(party::PartyArgs),
    /// Work with the proof store.
    #[command(subcommand)]
    Proofs(proofs::ProofsCommand),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Prove for Fluence's network (network.profile = "fluence"): serve CCP's JSON-RPC to
    /// Fluence's node (nox) in place of Fluence's Capacity Commitment Prover.
    Ccp(ccp::CcpArgs),
}

impl Command {
    /// Runs the subcommand; its exit status, or the error that ended it.
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(args) => run::run(args),
            Command::Devnet(args) => devnet::devnet(args),
            Command::Bench(args) => bench::bench(args),
            Command::Verify(args) => verify::verify(args),
            Command::Verifier(args) => verifier::verifier(args),
            Command::Proofs(cmd) => proofs::proofs(cmd),
            Command::Provider(args) => provider::provider(args),
            Command::Party(args) => party::party(args),
            Command::Devices => devices::devices(),
            Command::Doctor(args) => doctor::doctor(args),
            Command::Status(args) => status::status(args),
            Command::Ctl(args) => ctl::ctl(args),
            Command::Config(cmd) => config::config(cmd),
            Command::Ccp(args) => ccp::ccp(args),
        }
    }
}

/// Loads the configuration named by `arg`, with the process environment's overrides.
pub(crate) fn load_config(arg: &ConfigArg) -> anyhow::Result<capminer_config::Config> {
    let mut config = capminer_config::load(arg.config.as_deref(), std::env::vars())?;
    if let Some(format) = arg.log_format {
        config.log.format = match format {
            LogFormatArg::Text => capminer_config::LogFormat::Text,
            LogFormatArg::Json => capminer_config::LogFormat::Json,
        };
    }
    Ok(config)
}
