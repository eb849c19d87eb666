//! `capminer proofs`: the proof store as JSON, the format `capminer verify --file` reads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use capminer_proofs::Epoch;
use capminer_proofs::store::{ProofStore, StoredProof};
use serde::{Deserialize, Serialize};

use super::{ConfigArg, load_config};

/// Proofs with the epochs they belong to.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofsFile {
    /// Seeds and targets of the epochs the proofs name.
    pub epochs: Vec<Epoch>,
    /// The proofs, with their states.
    pub proofs: Vec<StoredProof>,
}

impl ProofsFile {
    /// Reads a store (read-only: a running miner may hold it), optionally one epoch only.
    pub(crate) fn from_store(dir: &Path, epoch: Option<u64>) -> anyhow::Result<Self> {
        let store = ProofStore::open_read_only(dir)?;
        let keep = |n: u64| epoch.is_none_or(|e| e == n);
        Ok(Self {
            epochs: store
                .epochs()
                .into_iter()
                .filter(|e| keep(e.number))
                .collect(),
            proofs: store.proofs(|p| keep(p.proof.epoch))?,
        })
    }
}

/// Subcommands of `capminer proofs`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProofsCommand {
    /// Print the store's proofs (and their epochs) as JSON.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Store directory (default: miner.state_dir of the configuration).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Only this epoch.
        #[arg(long)]
        epoch: Option<u64>,
    },
}

/// Runs a `capminer proofs` subcommand.
pub(crate) fn proofs(cmd: ProofsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProofsCommand::Export {
            config,
            store,
            epoch,
        } => {
            let dir = match store {
                Some(dir) => dir,
                None => load_config(&config)?.miner.state_dir,
            };
            let file = ProofsFile::from_store(&dir, epoch)?;
            println!("{}", serde_json::to_string_pretty(&file)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
