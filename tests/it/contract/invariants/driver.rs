//! One sequence from start to end: a fresh contract deployed with random parameters (its
//! constructor events, genesis time and sample hash checked), then a random number of operations,
//! then every seeded epoch's parameters checked once more.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolConstructor, SolEventInterface};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityEvents as Ev;
use capminer_chain::verifier::sample_hash;

use super::actors::Actors;
use super::b256;
use super::model::{Model, bad_params, zero_params};
use super::sequence::{Last, Seq};
use super::stats::Stats;
use crate::common::Rng;
use crate::contract::revm::{Chain, Outcome};
use revm::primitives::TxKind;

/// Deploys a fresh contract with random parameters and runs one random sequence on it.
pub(super) fn run_sequence(
    seed: u64,
    creation: &[u8],
    actors: &Actors,
    sigs: &mut HashMap<(Address, B256), [u8; 65]>,
    stats: &mut Stats,
) {
    let mut rng = Rng(seed);
    let chain_id = rng.pick(&[1u64, 31337, 8453, 11_155_111]);
    let time = 1_700_000_000 + rng.below(1_000_000);
    let chain = Chain::new(chain_id, time, 1000 + rng.below(100_000), &actors.all);

    let dur = rng.range(30, 120);
    let schedule = Capacity::Schedule {
        epochDuration: dur,
        graceWindow: rng.below(dur),
        verifyWindow: rng.range(10, 120),
        timelockDelay: rng.range(0, 60),
    };
    let nverifiers = rng.range(1, 3) as usize;
    let quorum = rng.range(1, nverifiers as u64) as u32;
    let slash_bps = match rng.below(10) {
        0 => 0,
        1 => 10_000,
        _ => rng.range(1, 10_000),
    };
    let verifiers: Vec<Address> = (0..nverifiers).map(|i| actors.verifier(i)).collect();
    let mut seq = Seq {
        seed,
        rng,
        chain,
        model: Model {
            chain_id,
            contract: Address::ZERO,
            owner: actors.owner,
            genesis: time,
            dur,
            grace: schedule.graceWindow,
            verify: schedule.verifyWindow,
            delay: schedule.timelockDelay,
            slash_bps: u128::from(slash_bps),
            paused: false,
            guardian: actors.guardians[0],
            verifiers: verifiers.iter().copied().collect(),
            quorum,
            quorum_history: vec![(time, quorum)],
            initial: [zero_params(), zero_params()], // set before deployment
            changes: Vec::new(),
            epochs: BTreeMap::new(),
            units: Vec::new(),
            ids: BTreeSet::new(),
            ue: BTreeMap::new(),
            pool: 0,
            owed: BTreeMap::new(),
            paid: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            known_calls: Vec::new(),
            operators: BTreeMap::new(),
            offers: BTreeMap::new(),
        },
        actors,
        sigs,
        stats,
        history: Vec::new(),
        in_reorg: false,
    };
    let mut initial = [seq.random_params(), seq.random_params()];
    for p in &mut initial {
        if bad_params(p) {
            p.maxProofs = p.maxProofs.max(1);
            p.minProofs = p.minProofs.min(p.maxProofs);
            p.target = B256::repeat_byte(0x0f);
        }
    }
    seq.model.initial = initial.clone();
    let args = Capacity::constructorCall {
        s: schedule.clone(),
        quorum_: quorum,
        slashRateBps_: U256::from(slash_bps),
        verifiers_: verifiers.clone(),
        guardian_: actors.guardians[0],
        initial: initial.clone(),
    };
    let mut code = creation.to_vec();
    code.extend(args.abi_encode());
    seq.history.push(format!(
        "deploy: chain {chain_id}, t={time}, {schedule:?}, quorum {quorum} of {nverifiers}, slash {slash_bps} bps, kinds {initial:?}"
    ));
    let Outcome::Success { logs, output } = seq.chain.send(actors.owner, TxKind::Create, 0, code)
    else {
        seq.fail("deployment reverted");
    };
    seq.chain.contract = Address::from_slice(&output);
    seq.model.contract = seq.chain.contract;
    let mut want: Vec<Ev> = verifiers
        .iter()
        .map(|&v| Ev::VerifierAdded(Capacity::VerifierAdded { verifier: v }))
        .collect();
    want.push(Ev::QuorumSet(Capacity::QuorumSet { quorum }));
    for (k, p) in initial.iter().enumerate() {
        want.push(Ev::KindParamsSet(Capacity::KindParamsSet {
            kind: k as u8,
            version: 0,
            fromEpoch: 0,
            params: p.clone(),
        }));
    }
    want.push(Ev::OwnershipTransferred(Capacity::OwnershipTransferred {
        from: Address::ZERO,
        to: actors.owner,
    }));
    want.push(Ev::GuardianSet(Capacity::GuardianSet {
        guardian: actors.guardians[0],
    }));
    let got: Vec<Ev> = logs
        .iter()
        .map(|l| Ev::decode_log(l).expect("constructor logs decode").data)
        .collect();
    if got != want {
        seq.fail(&format!("constructor events {got:?}, expected {want:?}"));
    }
    let genesis = seq.chain.view(Capacity::genesisTimeCall {});
    if genesis != U256::from(time) {
        seq.fail(&format!("genesisTime {genesis}, expected {time}"));
    }
    let digest = b256(&mut seq.rng);
    let onchain = seq.chain.view(Capacity::sampleHashCall {
        unit: 3,
        epoch: 5,
        digest,
    });
    if onchain != sample_hash(chain_id, seq.chain.contract, 3, 5, digest) {
        seq.fail("sampleHash differs from capminer_chain::verifier::sample_hash");
    }
    let prev = seq.model.clone();
    seq.check(&prev, &Last::Nothing, &[]);

    let ops = seq.rng.range(20, 60);
    for _ in 0..ops {
        seq.random_op();
    }
    if std::env::var_os("CAPMINER_FUZZ_VERBOSE").is_some() {
        for h in &seq.history {
            eprintln!("  {h}");
        }
    }
    // Everything once more at the end: every seeded epoch's parameters.
    let seeded: Vec<u64> = seq.model.epochs.keys().copied().collect();
    for e in seeded {
        seq.check_epoch(e);
    }
}

/// The contract's creation code: the committed artifact's (compiled into the bindings), or that
/// of the artifact `CAPMINER_FUZZ_ARTIFACT` names (same ABI), to fuzz a changed contract.
pub(super) fn creation_code() -> Vec<u8> {
    let Some(path) = std::env::var_os("CAPMINER_FUZZ_ARTIFACT") else {
        return Capacity::BYTECODE.to_vec();
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let artifact: serde_json::Value = serde_json::from_str(&text).expect("artifact JSON");
    let hex_code = artifact["bytecode"]
        .as_str()
        .expect("artifact has a bytecode string");
    eprintln!("contract invariants: creation code from {}", path.display());
    hex::decode(hex_code.trim_start_matches("0x")).expect("bytecode hex")
}
