//! Stateful fuzzing of the capacity contract, in process.
//!
//! Deploys the committed artifact (`contracts/artifacts/Capacity.json`, compiled from
//! `contracts/src/Capacity.sol`) on revm and runs random sequences of operations: unit
//! registrations (with ids of other providers, duplicates, wrong collateral), epochs, proof
//! batches (foreign units, units of another host, stale and duplicate nonces, malformed packings,
//! wrong seeds and epochs, operator keys of hosts), operator offers, acceptances, revocations,
//! releases and unit assignments, attestations with good and bad signatures, reports with true and forged evidence,
//! abstentions, claims, pool funding, top-ups, retirements, withdrawals, timelocked governance,
//! pauses, time jumps and reorgs (the whole EVM state and the model are snapshotted before a few
//! operations and restored after them).
//!
//! A Rust model predicts every call's outcome (the exact events of a success, the error of a
//! revert), and after every step the contract is read back through its views and checked against
//! the model and against what the contract promises:
//! 1. its balance is the reward pool plus the units' collateral;
//! 2. no unit-epoch is both attested and failed;
//! 3. no slash without a submitted nonce: a unit-epoch fails only on a quorum of reports (one per
//!    verifier), each naming a nonce that one of its earlier `ProofsAccepted` logs holds;
//! 4. a unit-epoch's count is at most the maxProofs of its epoch's parameters and is the number of
//!    nonces of its `ProofsAccepted` logs;
//! 5. its digest is the replay of those logs;
//! 6. no reward without work: what a provider was paid plus what it is owed never exceeds the
//!    rewards of its settled, attested, unfailed unit-epochs with enough proofs;
//! 7. collateral leaves a unit only by a withdrawal of the retired unit after its last
//!    settlement, or by a slash, which goes to the pool.
//!
//! `CAPMINER_FUZZ_SEQUENCES` (default 300) sets the number of sequences, `CAPMINER_FUZZ_SEED`
//! the base seed (decimal or 0x-hex; random by default). Sequence i runs with seed base + i, and
//! a failure prints the seed that replays that sequence alone (with `CAPMINER_FUZZ_SEQUENCES=1`)
//! and the operations that led to it. `CAPMINER_FUZZ_VERBOSE=1` prints every sequence's
//! operations; `CAPMINER_FUZZ_ARTIFACT=path/to/Capacity.json` fuzzes another build of the
//! contract (same ABI), e.g. a change before its artifact is committed.
//!
//! The pieces: [`model`] (the state the contract must hold) and [`predict`] (each call's
//! expected outcome); [`sequence`] (sending a call and comparing), [`generators`] (the random
//! choices), [`actions`] (the operations), [`checks`] (the read-back and the invariants);
//! [`driver`] (one sequence from deployment on); [`actors`], [`stats`], [`names`].

mod actions;
mod actors;
mod checks;
mod driver;
mod generators;
mod model;
mod names;
mod predict;
mod sequence;
mod stats;

use std::collections::HashMap;
use std::time::Instant;

use alloy::primitives::{B256, U256};

use crate::common::{Rng, env_u64, seed_from_env};
use actors::Actors;
use driver::{creation_code, run_sequence};
use stats::Stats;

const NO_END: u64 = u64::MAX;
const BPS: u128 = 10_000;
/// The order of secp256k1, to make high-s twins of signatures.
const SECP256K1_ORDER: U256 = U256::from_be_bytes([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);

/// 32 random bytes.
fn b256(rng: &mut Rng) -> B256 {
    let mut b = [0u8; 32];
    for c in b.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    B256::from(b)
}

#[test]
fn random_sequences_keep_the_contract_invariants() {
    let sequences = env_u64("CAPMINER_FUZZ_SEQUENCES").unwrap_or(300);
    let base = seed_from_env("CAPMINER_FUZZ_SEED");
    eprintln!(
        "contract invariants: {sequences} sequences from base seed {base} (CAPMINER_FUZZ_SEED={base})"
    );
    let creation = creation_code();
    let actors = Actors::new();
    let mut sigs = HashMap::new();
    let mut stats = Stats::default();
    let started = Instant::now();
    for i in 0..sequences {
        let seed = base.wrapping_add(i);
        eprintln!("sequence {i}: seed {seed}");
        run_sequence(seed, &creation, &actors, &mut sigs, &mut stats);
    }
    let elapsed = started.elapsed();

    eprintln!(
        "{:<20} {:>8} {:>8}  revert reasons",
        "operation", "ok", "reverted"
    );
    for (op, s) in &stats.ops {
        let reasons: Vec<String> = s.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
        eprintln!(
            "{op:<20} {:>8} {:>8}  {}",
            s.ok,
            s.reverted,
            reasons.join(", ")
        );
    }
    eprintln!("events: {:?}", stats.events);
    eprintln!("milestones: {:?}", stats.milestones);
    eprintln!(
        "contract invariants: {sequences} sequences, {} steps in {:.1} s",
        stats.steps,
        elapsed.as_secs_f64()
    );

    // Enough sequences must have exercised every operation and the outcomes that matter, so
    // the test cannot pass by reverting everything.
    if sequences >= 250 {
        for op in [
            "registerUnits",
            "advanceEpoch",
            "submitProofs",
            "attest",
            "reportInvalid",
            "abstain",
            "claim",
            "fundPool",
            "topUp",
            "retireUnits",
            "withdrawCollateral",
            "schedule",
            "execute",
            "cancel",
            "setPaused",
            "timeJump",
            "reorg",
            "enforceFailure",
            "authorizeOperator",
            "acceptOperator",
            "revokeOperator",
            "releaseOperator",
            "assignUnits",
        ] {
            let ok = stats.ops.get(op).map_or(0, |s| s.ok);
            assert!(ok > 0, "no {op} succeeded in {sequences} sequences");
        }
        for m in [
            "claim paid",
            "claim owed",
            "collateral withdrawn",
            "slash",
            "unit-epoch attested",
            "executed setKindParams",
            "executed addVerifier",
            "executed removeVerifier",
            "executed setQuorum",
            "executed setGuardian",
            "proofs by an operator key",
            "proof slot reused by a later epoch",
        ] {
            assert!(
                stats.milestones.get(m).copied().unwrap_or(0) > 0,
                "never reached: {m}"
            );
        }
    }
}
