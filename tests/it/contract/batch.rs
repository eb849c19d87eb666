//! The provider's batches against the contract's decoding, on revm.
//!
//! Random units (kinds, maxima), random backlogs of found nonces, random batch bounds: each
//! round plans a batch as the chain client does (`batch::plan` with the contract's counts),
//! encodes it (`Plan::encode`), sends it, and requires the contract to accept exactly the plan:
//! its `ProofsAccepted` logs carry the planned groups in order, nonce for nonce, its return
//! value is (planned, 0), its counts grew by the planned number, and every nonce the plan put
//! over a maximum is one the contract has no room for. Nonces neither sent nor over the maximum
//! stay in the backlog for the next round, as they stay found in the store.
//!
//! `CAPMINER_BATCH_CASES` (default 60) sets the number of cases, `CAPMINER_BATCH_SEED` the base
//! seed (printed; case i runs with base + i).

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use capminer_chain::batch::{self, Backlog};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::KindParams;
use capminer_proofs::UnitId;
use revm::primitives::TxKind;

use super::revm::{Chain, Outcome};
use crate::common::{Rng, env_u64, seed_from_env};

const OWNER: Address = Address::repeat_byte(0x01);
const PROVIDER: Address = Address::repeat_byte(0x02);
const VERIFIER: Address = Address::repeat_byte(0x03);
const EPOCH: u64 = 3600;

fn params(rng: &mut Rng) -> KindParams {
    let max = rng.range(1, 64) as u32;
    KindParams {
        target: B256::repeat_byte(0xff),
        minProofs: rng.below(u64::from(max) + 1) as u32,
        maxProofs: max,
        reward: 1,
        collateral: 10,
        challenge: B256::ZERO,
    }
}

fn call(chain: &mut Chain, value: u128, data: Vec<u8>, what: &str) {
    let to = chain.contract;
    if let Outcome::Revert(out) = chain.send(PROVIDER, TxKind::Call(to), value, data) {
        panic!("{what} reverted: 0x{}", hex::encode(out));
    }
}

fn run_case(seed: u64) {
    let mut rng = Rng(seed);
    let t0 = 1_800_000_000;
    let mut chain = Chain::new(31337, t0, 100, &[OWNER, PROVIDER, VERIFIER]);
    let kinds = [params(&mut rng), params(&mut rng)];
    let args = Capacity::constructorCall {
        s: Capacity::Schedule {
            epochDuration: EPOCH,
            graceWindow: 60,
            verifyWindow: 60,
            timelockDelay: 0,
        },
        quorum_: 1,
        slashRateBps_: U256::ZERO,
        verifiers_: vec![VERIFIER],
        guardian_: OWNER,
        initial: kinds.clone(),
    };
    let mut code = Capacity::BYTECODE.to_vec();
    code.extend(args.abi_encode());
    let Outcome::Success { output, .. } = chain.send(OWNER, TxKind::Create, 0, code) else {
        panic!("seed {seed}: deployment reverted");
    };
    chain.contract = Address::from_slice(&output);

    // Units of both kinds, registered in one call; the epoch seeded.
    let n = rng.range(1, 8) as usize;
    let ids: Vec<UnitId> = (0..n)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..20].copy_from_slice(PROVIDER.as_slice());
            id[20..28].copy_from_slice(&seed.to_be_bytes());
            id[31] = i as u8;
            UnitId(id)
        })
        .collect();
    let unit_kinds: Vec<u8> = (0..n).map(|_| rng.below(2) as u8).collect();
    let register = Capacity::registerUnitsCall {
        ids: ids.iter().map(|u| B256::from(u.0)).collect(),
        kinds: unit_kinds.clone(),
    };
    call(
        &mut chain,
        10 * n as u128,
        register.abi_encode(),
        "registerUnits",
    );
    chain.time += EPOCH; // into epoch 1: units start at the next epoch
    call(
        &mut chain,
        0,
        Capacity::advanceEpochCall {}.abi_encode(),
        "advanceEpoch",
    );
    let epoch = chain.view(Capacity::currentEpochCall {});
    let seed_word = chain.view(Capacity::epochInfoCall { e: epoch }).seed;
    let first: u32 = 0;

    // Each unit's found nonces, strictly increasing, with gaps (nonces that met no target).
    let mut next_nonce = vec![0u64; n];
    let mut backlog: Vec<Vec<u64>> = vec![Vec::new(); n];
    // Each unit's digest as `groups::chain_digest` replays the logged groups.
    let mut digests = vec![alloy::primitives::B256::ZERO; n];
    for round in 0..rng.range(1, 6) {
        for u in 0..n {
            for _ in 0..rng.below(40) {
                next_nonce[u] += rng.range(1, 1_000_000);
                backlog[u].push(next_nonce[u]);
            }
        }
        let counts: Vec<u32> = (0..n)
            .map(|u| {
                chain
                    .view(Capacity::unitEpochCall {
                        unit: first + u as u32,
                        epoch,
                    })
                    .count
            })
            .collect();
        let backlogs: Vec<Backlog> = (0..n)
            .filter(|&u| !backlog[u].is_empty())
            .map(|u| {
                let k = &kinds[unit_kinds[u] as usize];
                Backlog {
                    unit: ids[u],
                    index: capminer_protocol::UnitIndex(first + u as u32),
                    onchain: counts[u],
                    min: k.minProofs,
                    max: k.maxProofs,
                    nonces: backlog[u].clone(),
                }
            })
            .collect();
        let max_proofs = rng.range(1, 300) as usize;
        let max_gas = if rng.chance(30) {
            rng.range(100_000, 400_000)
        } else {
            30_000_000
        };
        let plan = batch::plan(backlogs, max_proofs, max_gas, rng.chance(50));
        let what = format!("seed {seed} round {round}: plan {plan:?}");
        assert!(plan.proofs() <= max_proofs, "{what}");

        // Over the maximum: exactly the nonces the contract has no room for.
        for (unit, nonces) in &plan.over_max {
            let u = ids.iter().position(|i| i == unit).unwrap();
            let max = kinds[unit_kinds[u] as usize].maxProofs;
            let room = max.saturating_sub(counts[u]) as usize;
            assert_eq!(
                &backlog[u][room..],
                nonces.as_slice(),
                "{what}: over-max nonces of unit {u}"
            );
            backlog[u].truncate(room);
        }
        if plan.groups.is_empty() {
            continue;
        }
        let data = Capacity::submitProofsCall {
            epoch,
            seed: seed_word,
            packed: plan.encode().into(),
        }
        .abi_encode();
        let to = chain.contract;
        let Outcome::Success { logs, output } = chain.send(PROVIDER, TxKind::Call(to), 0, data)
        else {
            panic!("{what}: submitProofs reverted");
        };
        let ret = Capacity::submitProofsCall::abi_decode_returns(&output).unwrap();
        assert_eq!(
            (ret.accepted, ret.skipped),
            (U256::from(plan.proofs()), U256::ZERO),
            "{what}"
        );
        let accepted: Vec<(u32, Vec<u64>)> = logs
            .iter()
            .filter_map(|l| Capacity::ProofsAccepted::decode_log(l).ok())
            .map(|l| {
                let nonces = capminer_chain::groups::decode_run(&l.data.group).unwrap();
                (l.data.unit, nonces)
            })
            .collect();
        let planned: Vec<(u32, Vec<u64>)> = plan
            .groups
            .iter()
            .map(|(_, index, nonces)| (index.0, nonces.clone()))
            .collect();
        assert_eq!(accepted, planned, "{what}");
        for (_, index, nonces) in &plan.groups {
            let index = &index.0;
            let u = (index - first) as usize;
            let after = chain.view(Capacity::unitEpochCall {
                unit: *index,
                epoch,
            });
            assert_eq!(after.count, counts[u] + nonces.len() as u32, "{what}");
            // The logged group is the planned nonces at their fewest-byte width, and the
            // contract's digest is the client's replay of it.
            let mut logged = Vec::new();
            capminer_chain::groups::encode_run(nonces, &mut logged);
            digests[u] = capminer_chain::groups::chain_digest(&digests[u], &logged);
            assert_eq!(after.digest, digests[u], "{what}: digest of unit {u}");
            // Sent: out of the backlog (they are a prefix of it: nonce order is kept).
            assert_eq!(&backlog[u][..nonces.len()], nonces.as_slice(), "{what}");
            backlog[u].drain(..nonces.len());
        }
    }
}

#[test]
fn planned_batches_are_accepted_by_the_contract_exactly() {
    let cases = env_u64("CAPMINER_BATCH_CASES").unwrap_or(60);
    let base = seed_from_env("CAPMINER_BATCH_SEED");
    eprintln!("batch encoding: {cases} cases from seed {base} (CAPMINER_BATCH_SEED={base})");
    for i in 0..cases {
        run_case(base.wrapping_add(i));
    }
}
