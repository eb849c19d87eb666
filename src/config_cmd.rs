//! `capminer config check` and `capminer config print`.

use std::process::ExitCode;

use capminer_miner::Miner;

use crate::{ConfigArg, load_config};

/// Subcommands of `capminer config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration against this machine (cores, memory, CPU flags).
    Check(ConfigArg),
    /// Print the effective configuration (file, defaults and environment overrides) as TOML.
    Print(ConfigArg),
}

/// Runs a `capminer config` subcommand.
pub fn config(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check(arg) => {
            let config = load_config(&arg)?;
            let (plans, flags) = Miner::plan(&config)?;
            println!(
                "configuration is valid: {} CPU unit(s), RandomX {flags}",
                plans.len()
            );
            for p in plans {
                println!(
                    "  {} id {} on core {} (cpus {:?}), {} threads",
                    p.label, p.id, p.core.index, p.core.cpus, p.threads
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Print(arg) => {
            print!("{}", load_config(&arg)?.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}
