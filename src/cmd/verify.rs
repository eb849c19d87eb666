//! `capminer verify`: re-check proofs from keys alone, in light mode.
//!
//! A proof listed more than once is checked and counted once (each repeat named on stderr);
//! a damaged store's skipped records are named on stderr and fail the run (status 1: not
//! everything stored could be verified); progress goes to stderr once checking takes more
//! than a moment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use capminer_miner::verify::{Claim, Verdict, Verifier};
use capminer_miner::{gpu_params, randomx_options};
use capminer_proofs::store::StoredProof;

use super::proofs::{ProofsFile, warn_damage};
use super::{ConfigArg, load_config};
use crate::output::outln;

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

/// Claims checked between two looks at the clock for a progress line: 32 a CPU (each of the
/// verifier's threads hashes a run of them with one VM), at least 64.
fn chunk() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 32).max(64)
}
/// Repeats named one by one on stderr; the rest are counted.
const REPEATS_NAMED: usize = 10;

/// Verifies; exit status 1 if any proof is invalid (each invalid one named on stdout) or the
/// store had damaged records (named on stderr).
pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let (mut file, damaged) = match &args.file {
        Some(path) => (ProofsFile::read(path)?, false),
        None => {
            let dir = args.store.as_ref().unwrap_or(&config.miner.state_dir);
            let (file, damage) = ProofsFile::from_store(dir, args.epoch)?;
            let damaged = warn_damage("verify", &damage);
            (file, damaged)
        }
    };
    if let Some(e) = args.epoch {
        file.proofs.retain(|p| p.proof.epoch == e);
    }
    let Distinct {
        checked: proofs,
        repeats,
    } = distinct(&file.proofs);
    for (i, first) in repeats.iter().take(REPEATS_NAMED) {
        eprintln!(
            "capminer verify: proofs[{i}] repeats proofs[{first}] ({}): counted once",
            file.proofs[*i].proof.id()
        );
    }
    if repeats.len() > REPEATS_NAMED {
        eprintln!(
            "capminer verify: ... and {} more repeated entries, each counted once",
            repeats.len() - REPEATS_NAMED
        );
    }
    let epochs: HashMap<u64, _> = file.epochs.iter().map(|e| (e.number, *e)).collect();
    let claims = proofs
        .iter()
        .map(|&(i, p)| {
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
    let verifier = Verifier::new(randomx_options(&config), gpu_params(&config)?)?;
    let verdicts = verify_with_progress(&verifier, &claims)?;
    let mut invalid = 0;
    for (&(_, p), verdict) in proofs.iter().zip(&verdicts) {
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
        outln!("INVALID {} ({}): {why}", p.proof.id(), p.proof.kind)?;
    }
    let repeated = match repeats.len() {
        0 => String::new(),
        n => format!(" ({n} repeated entries counted once)"),
    };
    outln!(
        "verified {} proofs: {} valid, {invalid} invalid{repeated}",
        claims.len(),
        claims.len() - invalid
    )?;
    if damaged {
        eprintln!(
            "capminer verify: the store has damaged records (above): their proofs were not verified"
        );
    }
    Ok(if invalid == 0 && !damaged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The proofs of a file to check, each once.
struct Distinct<'a> {
    /// Each proof with its position in the file, first occurrences only.
    checked: Vec<(usize, &'a StoredProof)>,
    /// The repeats: (position, position of the first occurrence).
    repeats: Vec<(usize, usize)>,
}

/// Sorts out repeated entries of `proofs`. Two entries with the same id but another hash or
/// kind are different claims and both checked.
fn distinct(proofs: &[StoredProof]) -> Distinct<'_> {
    let mut first = HashMap::new();
    let mut out = Distinct {
        checked: Vec::with_capacity(proofs.len()),
        repeats: Vec::new(),
    };
    for (i, p) in proofs.iter().enumerate() {
        let key = (p.proof.id(), p.proof.hash.0, p.proof.kind.as_str());
        match first.get(&key) {
            Some(&j) => out.repeats.push((i, j)),
            None => {
                first.insert(key, i);
                out.checked.push((i, p));
            }
        }
    }
    out
}

/// Checks `claims` a chunk at a time, saying on stderr how far it got at most once a second
/// (and after the first chunk) when there is more than one chunk.
fn verify_with_progress(verifier: &Verifier, claims: &[Claim]) -> anyhow::Result<Vec<Verdict>> {
    let start = Instant::now();
    let mut said: Option<Instant> = None;
    let mut verdicts = Vec::with_capacity(claims.len());
    let size = chunk();
    for chunk in claims.chunks(size) {
        verdicts.extend(verifier.verify(chunk)?);
        if claims.len() > size
            && verdicts.len() < claims.len()
            && said.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            eprintln!(
                "capminer verify: {} of {} proofs checked ({:.0} s)",
                verdicts.len(),
                claims.len(),
                start.elapsed().as_secs_f64()
            );
            said = Some(Instant::now());
        }
    }
    Ok(verdicts)
}
