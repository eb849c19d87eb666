//! `capminer config check` and `capminer config print`.

use std::process::ExitCode;

use capminer_miner::Miner;

use super::{ConfigArg, load_config};
use crate::node::preflight::preflight;
use crate::output::outln;

/// Subcommands of `capminer config`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate the configuration against this machine: cores, memory, CPU flags, the state
    /// directory, key and token files, the log filter, and with a chain the unit ids' owner.
    Check(ConfigArg),
    /// Print the effective configuration (file, defaults and environment overrides) as TOML.
    Print(ConfigArg),
}

/// Runs a `capminer config` subcommand.
pub(crate) fn config(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check(arg) => {
            let config = load_config(&arg)?;
            preflight(&config, |k| std::env::var(k).ok()).into_result()?;
            if !config.chain.enabled {
                crate::epoch::check_recorded_seed(&config, arg.config.as_deref())?;
            }
            let plan = Miner::plan(&config)?;
            outln!(
                "configuration is valid: {} CPU unit(s), RandomX {}; {} GPU unit(s)",
                plan.cpu.len(),
                plan.flags,
                plan.gpu.len()
            )?;
            for p in &plan.gpu {
                outln!(
                    "  {} id {} on {} ({})",
                    p.label,
                    p.id,
                    p.device.info.name,
                    p.device.info.backend
                )?;
            }
            for p in plan.cpu {
                outln!(
                    "  {} id {} on core {} (cpus {:?}), {} threads",
                    p.label,
                    p.id,
                    p.core.index,
                    p.core.cpus,
                    p.threads
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Print(arg) => {
            crate::output::write(&load_config(&arg)?.to_toml())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
