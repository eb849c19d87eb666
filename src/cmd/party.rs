//! `capminer party …`: a verifier party's tasks, signed with its own key (`verifier.key_file`
//! / `CAPMINER_VERIFIER_KEY`): it authorizes one delegate key per shard (`capminer verifier
//! --shard I/N` signs with it) and revokes them. `release`, signed with a delegate's key,
//! frees that key from its party.

use std::process::ExitCode;

use alloy::primitives::Address;

use super::ConfigArg;
use super::signed::{Whose, run_task};

/// `capminer party`.
#[derive(Debug, clap::Args)]
pub(crate) struct PartyArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    task: PartyTask,
}

#[derive(Debug, clap::Subcommand)]
enum PartyTask {
    /// Lets a delegate key (one shard's) attest, report and abstain for this party.
    Authorize {
        /// The delegate's address.
        delegate: Address,
    },
    /// Withdraws a delegate key's right to act for this party.
    Revoke {
        /// The delegate's address.
        delegate: Address,
    },
    /// Run with a delegate's key (as `verifier.key_file` / `CAPMINER_VERIFIER_KEY`): the key
    /// leaves its party.
    Release,
}

/// Runs one verifier-party task.
pub(crate) fn party(args: PartyArgs) -> anyhow::Result<ExitCode> {
    run_task(&args.config, Whose::Party, async |_, s| match args.task {
        PartyTask::Authorize { delegate } => {
            s.send(s.contract.authorizeDelegate(delegate), "authorizeDelegate")
                .await
        }
        PartyTask::Revoke { delegate } => {
            s.send(s.contract.revokeDelegate(delegate), "revokeDelegate")
                .await
        }
        PartyTask::Release => {
            s.send(s.contract.releaseDelegate(), "releaseDelegate")
                .await
        }
    })
}
