//! A provider at fleet scale, on a real anvil with the real contract:
//!
//! 1. registering 10,000 units in batches of 100, 250 and 500 ids: gas per unit;
//! 2. the chain client of one host carrying all 10,000 units: connect time, then with 100
//!    proofs per unit found in the store (1,000,000 proofs), the time of each tick until every
//!    proof is submitted, and the process's peak resident memory.
//!
//! Run with `cargo bench --bench fleet_scale` (`CAPMINER_FLEET_UNITS` changes the 10,000;
//! `CAPMINER_FLEET_TICKS` bounds the ticks measured, 20 by default). Needs anvil from
//! `deploy/setup.sh`.

mod chain;
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use alloy::primitives::{FixedBytes, U256};
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_chain::metrics::ChainMetrics;
use capminer_chain::{ChainService, ChainSetup};
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Hash, Proof, UnitId, UnitKind};

/// Peak resident set of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn unit(provider: &[u8], i: u32) -> UnitId {
    let mut id = [0u8; 32];
    id[..20].copy_from_slice(provider);
    id[28..].copy_from_slice(&i.to_be_bytes());
    UnitId(id)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = common::env_u64("CAPMINER_FLEET_UNITS", 10_000) as usize;
    let max_ticks = common::env_u64("CAPMINER_FLEET_TICKS", 20) as usize;
    let anvil_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
    let anvil = devnet::spawn_anvil(
        &anvil_path,
        None,
        &["--gas-limit", "300000000", "--code-size-limit", "30000"],
    )
    .expect("anvil (deploy/setup.sh installs it)");
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let spec = chain::gas_spec(1_000, key(2).address(), key(0).address());
    let deployment = devnet::deploy(&url, key(0), &spec).await.unwrap();
    let provider = devnet::signing_provider(&url, key(1)).unwrap();
    let contract = Capacity::new(deployment.address, provider.clone());
    let me = key(1).address();

    let registered = register(&contract, me.as_slice(), n).await;
    // The units of the client: the last n registered (all with the 500 batches).
    let first = registered - n as u32;
    let units: Vec<capminer_protocol::UnitRef> = (0..n as u32)
        .map(|i| capminer_protocol::UnitRef {
            id: unit(me.as_slice(), first + i),
            kind: UnitKind::Cpu,
            label: format!("u{i}"),
        })
        .collect();
    provider.anvil_increase_time(86_400).await.unwrap();
    provider.anvil_mine(Some(1), None).await.unwrap();

    client_ticks(&url, &deployment, key(1), &provider, units, max_ticks).await;
}

/// Registers units in batches of 100, 250 and 500 ids (the first two sizes up to 1,000 units,
/// the last `n`), printing the gas per unit of each size; returns how many were registered.
async fn register<P: alloy::providers::Provider>(
    contract: &Capacity::CapacityInstance<P>,
    provider_address: &[u8],
    n: usize,
) -> u32 {
    let me = provider_address;
    println!("registerUnits on anvil: {n} units in batches (whole transactions)");
    println!(
        "{:>10} {:>10} {:>14} {:>12}",
        "batch", "batches", "gas", "gas / unit"
    );
    let mut next = 0u32;
    for batch in [100usize, 250, 500] {
        let count = if batch == 500 { n } else { n.min(1_000) };
        let mut gas = 0u64;
        for chunk_start in (0..count).step_by(batch) {
            let size = batch.min(count - chunk_start);
            let ids: Vec<FixedBytes<32>> = (0..size)
                .map(|i| FixedBytes(unit(me, next + i as u32).0))
                .collect();
            next += size as u32;
            let receipt = contract
                .registerUnits(ids, vec![0u8; size])
                .value(U256::ZERO)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            assert!(receipt.status());
            gas += receipt.gas_used;
        }
        println!(
            "{:>10} {:>10} {:>14} {:>12}",
            batch,
            count.div_ceil(batch),
            gas,
            gas / count as u64
        );
    }
    next
}

/// The chain client of one host with every unit: connect, 100 proofs per unit into the store,
/// then the time of each tick until `max_ticks`, and the peak resident memory.
async fn client_ticks<
    P: alloy::providers::Provider + alloy::providers::ext::AnvilApi<alloy::network::Ethereum>,
>(
    url: &str,
    deployment: &devnet::Deployment,
    signer: PrivateKeySigner,
    provider: &P,
    units: Vec<capminer_protocol::UnitRef>,
    max_ticks: usize,
) {
    let n = units.len();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut config = capminer_config::ChainConfig {
        enabled: true,
        rpc_url: url.to_string(),
        contract: Some(deployment.address.0.0),
        start_block: deployment.block,
        confirmations: 1,
        ..capminer_config::ChainConfig::default()
    };
    config.batch.max_wait_ms = 0;
    let started = Instant::now();
    let mut client = ChainService::connect(
        ChainSetup {
            config,
            units: units.clone(),
            signer,
            gpu_challenge: None,
        },
        store.clone(),
        ChainMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .await
    .unwrap();
    let connect = started.elapsed();
    // The client fixes the epoch's seed and delivers it once the seed is final.
    let mut delivered = None;
    for _ in 0..20 {
        delivered = delivered.or(client.tick().await.unwrap().new_epoch);
        if delivered.is_some() {
            break;
        }
        provider.anvil_mine(Some(1), None).await.unwrap();
    }
    let epoch = delivered.expect("the client delivers the epoch");
    for chunk in units.chunks(100) {
        let proofs: Vec<Proof> = chunk
            .iter()
            .flat_map(|u| {
                (0..100u64).map(move |nonce| Proof {
                    unit: u.id,
                    kind: UnitKind::Cpu,
                    epoch: epoch.number,
                    nonce,
                    hash: Hash::default(),
                })
            })
            .collect();
        store.append(&proofs).unwrap();
    }
    println!();
    println!(
        "chain client, {n} units x 100 proofs ({} proofs): connect {:.2} s",
        n * 100,
        connect.as_secs_f64()
    );
    println!("{:>6} {:>10} {:>10}", "tick", "ms", "submitted");
    let mut times = Vec::new();
    for t in 0..max_ticks {
        let started = Instant::now();
        let report = client.tick().await.unwrap();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        times.push(ms);
        println!("{:>6} {:>10.1} {:>10}", t, ms, report.submitted.is_some());
        provider.anvil_mine(Some(1), None).await.unwrap();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "tick median {:.1} ms, max {:.1} ms; peak resident memory {:.0} MiB",
        times[times.len() / 2],
        times[times.len() - 1],
        peak_rss_mib()
    );
}
