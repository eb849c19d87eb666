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
//!
//! Modules, each depending only on those below it:
//!
//! ```text
//!  cmd/      one module per subcommand (run, devnet, bench, ...)
//!  node/     the miner's main job: units, store, chain client, servers, until a signal
//!  ccp/      the Fluence profile: CCP's JSON-RPC, its CUs and their proof store
//!  api/      the control API (status, control, units), given the node's shared state
//!  runtime   the async runtime pinned to the utility CPUs (state it owns), signals, and
//!            NodeShared: what the node shares with the API
//!  reload, metrics_server, logging, epoch, progress, output (stdout for every command): leaves
//! ```

mod api;
mod ccp;
mod cmd;
mod epoch;
mod logging;
mod metrics_server;
mod node;
mod output;
mod progress;
mod reload;
mod runtime;

use std::process::ExitCode;

use clap::Parser;

/// Proof-of-capacity miner: CPU units on RandomX, proofs stored crash-safely.
#[derive(Debug, Parser)]
#[command(name = "capminer", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        // `capminer proofs export | head`: the reader has what it wanted.
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capminer: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
