//! `capminer run`: the node with the configured epoch source: the chain when
//! `chain.enabled`, the fixed `[epoch]` otherwise.

use std::process::ExitCode;

use capminer_chain::key::{KeySource, load_signer};

use super::{ConfigArg, load_config};
use crate::node::{ChainJob, NodeArgs, run_node};
use crate::runtime::Runtime;
use crate::{epoch, logging};

/// Arguments of `capminer run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Runs until SIGINT or SIGTERM; non-zero if a unit failed.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    if !config.chain.enabled {
        epoch::check_recorded_seed(&config, args.config.config.as_deref())?;
    }
    logging::init(&config)?;
    let chain = if config.chain.enabled {
        let signer = load_signer(KeySource::provider(config.chain.key_file.as_deref()), |k| {
            std::env::var(k).ok()
        })?;
        Some(ChainJob { signer })
    } else {
        None
    };
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
