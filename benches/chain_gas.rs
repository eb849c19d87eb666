//! Gas per proof of `submitProofs`, measured on a real anvil with the real contract.
//!
//! Part 1, one batch at a time: for each batch size (1, 10, 100, 1000 proofs of one unit; 100
//! proofs over 10 units) it sends one batch as the units' first of the epoch (their proof slot
//! changes from an earlier epoch's state) and one as a follow-up batch of the same units, and
//! prints gasUsed of the whole transaction (21000 base and calldata included) per proof.
//!
//! Part 2, the fleet mix: 200 units (150 CPU, 50 GPU) with 50 proofs each per epoch, over
//! several epochs, delivered as the chain client's planner (`batch::plan`, default limits)
//! batches them when proofs wait for the epoch's end (`chain.batch.max_wait_ms` at least an
//! epoch: one group per unit-epoch). Nonce gaps are drawn as a target gives them (geometric):
//! mean 2^21 hashes between proofs for CPU units (about 1,200 H/s over a day), 2^36 for GPU
//! units.
//!
//! Every nonce gap comes from a seeded generator (`CAPMINER_GAS_SEED`, printed). Prints the two
//! lines the targets are stated on. `CAPMINER_GAS_TRACE=1` also prints each transaction's gas by
//! opcode (anvil's step tracer). Run with `cargo bench --bench chain_gas`; needs anvil from
//! `deploy/setup.sh`.

mod chain;

use std::path::PathBuf;

use alloy::primitives::{B256, Bytes};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::batch::{self, Backlog};
use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_chain::groups::{decode_run, encode_group};
use capminer_config::BatchConfig;
use capminer_proofs::{UnitId, UnitKind};
use capminer_protocol::UnitIndex;

const EPOCH: u64 = 86_400;
/// Units of the fleet mix, and how many of them are GPU units.
const FLEET_UNITS: usize = 200;
const FLEET_GPU_UNITS: usize = 50;
const FLEET_PROOFS: usize = 50;
const FLEET_EPOCHS: usize = 4;
/// Mean hashes between two proofs (log2).
const CPU_GAP_LOG2: u32 = 21;
const GPU_GAP_LOG2: u32 = 36;

/// splitmix64: the bench's only randomness, from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A gap between proofs when a hash meets the target with probability 2^-`log2`.
    fn gap(&mut self, log2: u32) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        1 + (-(1.0 - u).ln() * (1u64 << log2) as f64) as u64
    }

    /// `n` nonces of one unit-epoch, from a random start.
    fn nonces(&mut self, n: usize, log2: u32) -> Vec<u64> {
        let mut x = self.next() >> 8;
        (0..n)
            .map(|_| {
                x += self.gap(log2);
                x
            })
            .collect()
    }
}

struct Bench {
    provider: DynProvider,
    contract: Capacity::CapacityInstance<DynProvider>,
}

impl Bench {
    /// Moves the chain's clock by `seconds` and fixes the new epoch's seed.
    async fn advance(&self, seconds: u64) -> (u64, B256) {
        self.provider.anvil_increase_time(seconds).await.unwrap();
        self.provider.anvil_mine(Some(1), None).await.unwrap();
        let epoch = self.contract.currentEpoch().call().await.unwrap();
        self.contract
            .advanceEpoch()
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        let seed = self.contract.epochInfo(epoch).call().await.unwrap().seed;
        (epoch, seed)
    }

    /// Sends one `submitProofs`; returns its gasUsed and the proofs its logs accepted.
    async fn submit(&self, epoch: u64, seed: B256, packed: Vec<u8>) -> (u64, usize) {
        let receipt = self
            .contract
            .submitProofs(epoch, seed, Bytes::from(packed))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(receipt.status());
        if std::env::var("CAPMINER_GAS_TRACE").is_ok() {
            let trace: serde_json::Value = self
                .provider
                .raw_request(
                    "debug_traceTransaction".into(),
                    (
                        receipt.transaction_hash,
                        serde_json::json!({"disableStorage": true, "disableStack": true}),
                    ),
                )
                .await
                .unwrap();
            let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for s in trace["structLogs"].as_array().unwrap() {
                let e = by.entry(s["op"].as_str().unwrap().to_string()).or_default();
                e.0 += 1;
                e.1 += s["gasCost"].as_u64().unwrap();
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort_by_key(|(_, (_, g))| std::cmp::Reverse(*g));
            eprintln!(
                "TRACE gas {}: {:?}",
                receipt.gas_used,
                &v[..25.min(v.len())]
            );
        }
        let accepted = receipt
            .inner
            .logs()
            .iter()
            .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
            .map(|l| decode_run(&l.inner.data.group).unwrap().len())
            .sum();
        (receipt.gas_used, accepted)
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seed = std::env::var("CAPMINER_GAS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6a5_2026);
    let mut rng = Rng(seed);
    let anvil_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
    let tracing = std::env::var("CAPMINER_GAS_TRACE").is_ok();
    let args: &[&str] = if tracing {
        &["--gas-limit", "100000000", "--steps-tracing"]
    } else {
        &["--gas-limit", "100000000"]
    };
    let anvil =
        devnet::spawn_anvil(&anvil_path, None, args).expect("anvil (deploy/setup.sh installs it)");
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let spec = chain::gas_spec(32_768, key(2).address(), key(0).address());
    let deployment = devnet::deploy(&url, key(0), &spec).await.unwrap();
    let provider_address = key(1).address();
    let unit = |i: usize, kind: UnitKind| {
        let mut id = [0u8; 32];
        id[..20].copy_from_slice(provider_address.as_slice());
        id[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        (UnitId(id), kind)
    };
    let units: Vec<(UnitId, UnitKind)> = (0..40 + FLEET_UNITS)
        .map(|i| {
            let gpu = (40..40 + FLEET_GPU_UNITS).contains(&i);
            unit(i, if gpu { UnitKind::Gpu } else { UnitKind::Cpu })
        })
        .collect();
    let indices = devnet::register_units(&url, key(1), deployment.address, &units)
        .await
        .unwrap();
    let provider = devnet::signing_provider(&url, key(1)).unwrap();
    let bench = Bench {
        contract: Capacity::new(deployment.address, provider.clone()),
        provider,
    };
    println!("capminer chain_gas: seed {seed} (CAPMINER_GAS_SEED={seed})");
    println!(
        "ring slots per unit: {}",
        bench.contract.ringSlots().call().await.unwrap()
    );

    // Part 1. One epoch earlier first, so the first batches below change slots that held
    // proofs of an earlier epoch, as in steady state.
    let (epoch, _) = bench.advance(EPOCH).await;
    let earlier = bench.contract.epochInfo(epoch).call().await.unwrap().seed;
    for &i in &indices[..20] {
        let mut packed = Vec::new();
        encode_group(i, &rng.nonces(3, CPU_GAP_LOG2), &mut packed);
        bench.submit(epoch, earlier, packed).await;
    }
    let (epoch, seed_word) = bench.advance(EPOCH * 2).await;
    let cases: Vec<(&str, Vec<(u32, usize)>)> = vec![
        ("1 proof, 1 unit", vec![(indices[0], 1)]),
        ("10 proofs, 1 unit", vec![(indices[1], 10)]),
        ("100 proofs, 1 unit", vec![(indices[2], 100)]),
        ("1000 proofs, 1 unit", vec![(indices[3], 1000)]),
        (
            "100 proofs, 10 units",
            (0..10).map(|i| (indices[10 + i], 10)).collect(),
        ),
    ];
    println!();
    println!("submitProofs gas on anvil (whole transaction: 21000 base + calldata + execution)");
    println!("nonce gaps: geometric, mean 2^{CPU_GAP_LOG2}");
    println!(
        "{:<22} {:>12} {:>10} {:>14} {:>10}",
        "batch", "first gas", "per proof", "follow-up gas", "per proof"
    );
    let mut at_100 = 0;
    for (name, groups) in cases {
        let proofs: usize = groups.iter().map(|(_, n)| n).sum();
        let runs: Vec<(u32, Vec<u64>)> = groups
            .iter()
            .map(|&(u, n)| (u, rng.nonces(2 * n, CPU_GAP_LOG2)))
            .collect();
        let mut row = Vec::new();
        for round in 0..2 {
            let mut packed = Vec::new();
            for (u, nonces) in &runs {
                let half = nonces.len() / 2;
                encode_group(*u, &nonces[round * half..(round + 1) * half], &mut packed);
            }
            let (gas, accepted) = bench.submit(epoch, seed_word, packed).await;
            assert_eq!(accepted, proofs, "every proof accepted");
            row.push(gas);
        }
        let per = |g: u64| g / proofs as u64;
        if name == "100 proofs, 1 unit" {
            at_100 = per(row[0]);
        }
        println!(
            "{:<22} {:>12} {:>10} {:>14} {:>10}",
            name,
            row[0],
            per(row[0]),
            row[1],
            per(row[1])
        );
    }

    // Part 2: the fleet mix.
    let fleet: Vec<(u32, u32)> = (0..FLEET_UNITS)
        .map(|i| {
            let gpu = i < FLEET_GPU_UNITS;
            (
                indices[40 + i],
                if gpu { GPU_GAP_LOG2 } else { CPU_GAP_LOG2 },
            )
        })
        .collect();
    let limits = BatchConfig::default();
    println!();
    println!(
        "fleet mix: {FLEET_UNITS} units ({FLEET_GPU_UNITS} GPU, mean gap 2^{GPU_GAP_LOG2}; {} CPU, mean gap 2^{CPU_GAP_LOG2}), {FLEET_PROOFS} proofs a unit-epoch, {FLEET_EPOCHS} epochs, batched by batch::plan (max_proofs {}, max_gas {}) once each epoch ends",
        FLEET_UNITS - FLEET_GPU_UNITS,
        limits.max_proofs,
        limits.max_gas
    );
    println!(
        "{:<8} {:>6} {:>8} {:>12} {:>10}",
        "epoch", "txs", "proofs", "gas", "per proof"
    );
    let mut worst = 0;
    let mut total = (0u64, 0usize);
    for round in 0..FLEET_EPOCHS {
        let (e, s) = bench.advance(EPOCH).await;
        let mut backlogs: Vec<Backlog> = fleet
            .iter()
            .map(|&(index, log2)| Backlog {
                unit: UnitId([0; 32]),
                index: UnitIndex(index),
                onchain: 0,
                min: 1,
                max: 32_768,
                nonces: rng.nonces(FLEET_PROOFS, log2),
            })
            .collect();
        // The epoch ends: the client sends everything (flush), batch by batch.
        bench.provider.anvil_increase_time(EPOCH).await.unwrap();
        bench.provider.anvil_mine(Some(1), None).await.unwrap();
        let (mut gas, mut proofs, mut txs) = (0u64, 0usize, 0usize);
        loop {
            let plan = batch::plan(backlogs.clone(), limits.max_proofs, limits.max_gas, true);
            if plan.groups.is_empty() {
                break;
            }
            for (_, index, sent) in &plan.groups {
                let b = backlogs.iter_mut().find(|b| b.index == *index).unwrap();
                b.nonces.drain(..sent.len());
                b.onchain += sent.len() as u32;
            }
            let (g, accepted) = bench.submit(e, s, plan.encode()).await;
            assert_eq!(accepted, plan.proofs(), "every proof accepted");
            gas += g;
            proofs += accepted;
            txs += 1;
        }
        assert_eq!(proofs, FLEET_UNITS * FLEET_PROOFS);
        let per = gas / proofs as u64;
        println!(
            "{:<8} {:>6} {:>8} {:>12} {:>10}",
            round + 1,
            txs,
            proofs,
            gas,
            per
        );
        worst = worst.max(per);
        total.0 += gas;
        total.1 += proofs;
    }
    println!(
        "all epochs: {} gas for {} proofs, {} a proof",
        total.0,
        total.1,
        total.0 / total.1 as u64
    );
    println!();
    println!("gas per proof at 100 proofs (first batch of the epoch): {at_100} (target <= 700)");
    println!(
        "gas per proof at the fleet mix: {worst} (the worst epoch of {FLEET_EPOCHS}; target <= 600)"
    );
}
