//! `capminer run`: the node with the configured epoch source: the chain when
//! `chain.enabled`, the fixed `[epoch]` otherwise.

use std::process::ExitCode;

use super::{ConfigArg, load_config};
use crate::node::preflight::{preflight, profile_problem};
use crate::node::{ChainJob, NodeArgs, run_node};
use crate::runtime::Runtime;
use crate::{epoch, logging};

/// Arguments of `capminer run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Runs until SIGINT or SIGTERM; non-zero if a unit failed. A configuration that cannot work
/// (see [`preflight`]) is refused before anything starts.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    if let Some(problem) = profile_problem(&config) {
        anyhow::bail!("{problem}");
    }
    let signer = preflight(&config, |k| std::env::var(k).ok()).into_result()?;
    if !config.chain.enabled {
        epoch::check_recorded_seed(&config, args.config.config.as_deref())?;
    }
    logging::init(&config)?;
    let chain = signer.map(|signer| ChainJob { signer });
    let runtime = Runtime::new(&config)?;
    run_node(NodeArgs {
        config: &config,
        chain,
        runtime: &runtime,
        registry: &prometheus::Registry::new(),
        stop: Default::default(),
        critical: Vec::new(),
        verifiers: Vec::new(),
    })
}
