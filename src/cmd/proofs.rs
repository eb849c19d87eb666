//! `capminer proofs`: the proof store as JSON, the format `capminer verify --file` reads.
//!
//! Reading a store repairs nothing (a running miner may hold it): what the read skipped, damaged
//! records or an incomplete last one, is said on stderr ([`warn_damage`]). Reading a file
//! refuses what it does not know, at the top level and inside each proof, naming the field and
//! the proof's position.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use capminer_proofs::Epoch;
use capminer_proofs::store::{Damage, ProofStore, StoredProof};
use serde::{Deserialize, Serialize};

use super::{ConfigArg, load_config};
use crate::output::outln;

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
    /// Reads a store (read-only: a running miner may hold it), optionally one epoch only, with
    /// what the read had to skip.
    pub(crate) fn from_store(dir: &Path, epoch: Option<u64>) -> anyhow::Result<(Self, Damage)> {
        let store = ProofStore::open_read_only(dir)?;
        let keep = |n: u64| epoch.is_none_or(|e| e == n);
        let file = Self {
            epochs: store
                .epochs()
                .into_iter()
                .filter(|e| keep(e.number))
                .collect(),
            proofs: store.proofs(|p| keep(p.proof.epoch))?,
        };
        Ok((file, store.damage().clone()))
    }

    /// Reads a file in the format of `capminer proofs export`, refusing unknown fields at the
    /// top level and in every proof (`proofs[3]: unknown field "x"`).
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let named =
            |e: &dyn std::fmt::Display| anyhow::anyhow!("proofs file {}: {e}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read proofs file {}: {e}", path.display()))?;
        let file: ProofsFile = serde_json::from_str(&text).map_err(|e| named(&e))?;
        // A proof's fields are flattened (proof and state), which serde cannot check for
        // unknown ones: compare each entry's keys with those of the proof read back.
        let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| named(&e))?;
        let entries = raw["proofs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, (entry, proof)) in entries.iter().zip(&file.proofs).enumerate() {
            let known = serde_json::to_value(proof)?;
            if let (Some(entry), Some(known)) = (entry.as_object(), known.as_object())
                && let Some(field) = entry.keys().find(|k| !known.contains_key(*k))
            {
                return Err(named(&format!(
                    "proofs[{i}] ({}): unknown field {field:?} (a proof has {})",
                    proof.proof.id(),
                    known
                        .keys()
                        .map(|k| format!("{k:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(file)
    }
}

/// Says on stderr what reading the store skipped; true if records were damaged (lost to the
/// read), not only an incomplete last one.
pub(crate) fn warn_damage(command: &str, damage: &Damage) -> bool {
    if damage.is_damaged() || damage.torn_tail.is_some() {
        eprintln!("capminer {command}: warning: proof store {damage}");
    }
    if damage.is_damaged() {
        eprintln!(
            "capminer {command}: warning: the damaged records' proofs are missing from this read; `capminer run` repairs the log when it next opens the store (damaged bytes in the middle are saved aside next to it)"
        );
    }
    damage.is_damaged()
}

/// Subcommands of `capminer proofs`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProofsCommand {
    /// Print the store's proofs (and their epochs) as JSON; what the read skipped of a damaged
    /// store is said on stderr.
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
            let (file, damage) = ProofsFile::from_store(&dir, epoch)?;
            warn_damage("proofs export", &damage);
            outln!("{}", serde_json::to_string_pretty(&file)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
