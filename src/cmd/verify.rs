//! `capminer verify`: re-check proofs from keys alone, in light mode.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use capminer_miner::verify::{Claim, Verdict, Verifier};
use capminer_miner::{gpu_params, randomx_options};

use super::proofs::ProofsFile;
use super::{ConfigArg, load_config};

/// Arguments of `capminer verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Verify the proofs of this store directory (default: miner.state_dir).
    #[arg(long, value_name = "DIR", conflicts_with = "file")]
    store: Option<PathBuf>,
    /// Verify the proofs of a JSON file in the format of `capminer proofs export`.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Only this epoch.
    #[arg(long)]
    epoch: Option<u64>,
}

/// Verifies; exit status 1 if any proof is invalid, each invalid one named on stdout.
pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let file = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read proofs file {}: {e}", path.display()))?;
            let mut file: ProofsFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("proofs file {}: {e}", path.display()))?;
            if let Some(e) = args.epoch {
                file.proofs.retain(|p| p.proof.epoch == e);
            }
            file
        }
        None => ProofsFile::from_store(
            args.store.as_ref().unwrap_or(&config.miner.state_dir),
            args.epoch,
        )?,
    };
    let epochs: HashMap<u64, _> = file.epochs.iter().map(|e| (e.number, *e)).collect();
    let claims = file
        .proofs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let epoch = epochs.get(&p.proof.epoch).ok_or_else(|| {
                anyhow::anyhow!(
                    "proofs[{i}] ({}): epoch {} is not among the epochs given",
                    p.proof.id(),
                    p.proof.epoch
                )
            })?;
            Ok(Claim {
                unit: p.proof.unit,
                kind: p.proof.kind,
                epoch: *epoch,
                nonce: p.proof.nonce,
                hash: Some(p.proof.hash),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let verdicts =
        Verifier::new(randomx_options(&config), gpu_params(&config)?)?.verify(&claims)?;
    let mut invalid = 0;
    for (p, verdict) in file.proofs.iter().zip(&verdicts) {
        let why = match verdict {
            Verdict::Valid { .. } => continue,
            Verdict::AboveTarget { hash } => {
                format!(
                    "hash {hash} is above the target {}",
                    epochs[&p.proof.epoch].target(p.proof.kind)
                )
            }
            Verdict::WrongHash { hash, claimed } => {
                format!("hash is {hash}, the prover reported {claimed}")
            }
        };
        invalid += 1;
        println!("INVALID {} ({}): {why}", p.proof.id(), p.proof.kind);
    }
    println!(
        "verified {} proofs: {} valid, {invalid} invalid",
        claims.len(),
        claims.len() - invalid
    );
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
