//! Gas per proof of `submitProofs`, measured on a real anvil with the real contract.
//!
//! For each batch size (1, 10, 100, 1000 proofs of one unit; 100 proofs over 10 units) it
//! sends one batch as a unit's first of the epoch (fresh storage words) and one as a follow-up
//! batch of the same units, and prints gasUsed of the whole transaction (21000 base and
//! calldata included) and its gas per proof. The target: at most 2,000 gas a proof at 100.
//! Run with `cargo bench --bench chain_gas`; needs anvil from `deploy/setup.sh`.

mod chain;

use std::path::PathBuf;

use alloy::primitives::Bytes;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_proofs::{UnitId, UnitKind};

/// One unit's nonces in a batch.
type Group = (u32, std::ops::Range<u64>);

fn packed(groups: &[Group]) -> Bytes {
    let mut out = Vec::new();
    for (unit, nonces) in groups {
        out.extend_from_slice(&unit.to_be_bytes());
        out.extend_from_slice(&(nonces.end - nonces.start).to_be_bytes()[6..]);
        for n in nonces.clone() {
            out.extend_from_slice(&(n * 7919 + 13).to_be_bytes());
        }
    }
    out.into()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let anvil_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/node_modules/.bin/anvil");
    let anvil = devnet::spawn_anvil(&anvil_path, None, &["--gas-limit", "100000000"])
        .expect("anvil (deploy/setup.sh installs it)");
    let url = anvil.endpoint();
    let key = |i: usize| PrivateKeySigner::from(anvil.keys()[i].clone());
    let spec = chain::gas_spec(32_768, key(2).address(), key(0).address());
    let deployment = devnet::deploy(&url, key(0), &spec).await.unwrap();
    let provider_address = key(1).address();
    let units: Vec<(UnitId, UnitKind)> = (0..40u8)
        .map(|i| {
            let mut id = [i + 1; 32];
            id[..20].copy_from_slice(provider_address.as_slice());
            (UnitId(id), UnitKind::Cpu)
        })
        .collect();
    let indices = devnet::register_units(&url, key(1), deployment.address, &units)
        .await
        .unwrap();
    let provider = devnet::signing_provider(&url, key(1)).unwrap();
    provider.anvil_increase_time(86_400).await.unwrap();
    provider.anvil_mine(Some(1), None).await.unwrap();
    let contract = Capacity::new(deployment.address, provider.clone());
    let epoch = contract.currentEpoch().call().await.unwrap();
    contract
        .advanceEpoch()
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let seed = contract.epochInfo(epoch).call().await.unwrap().seed;

    let cases: Vec<(&str, Vec<Group>)> = vec![
        ("1 proof, 1 unit", vec![(indices[0], 0..1)]),
        ("10 proofs, 1 unit", vec![(indices[1], 0..10)]),
        ("100 proofs, 1 unit", vec![(indices[2], 0..100)]),
        ("1000 proofs, 1 unit", vec![(indices[3], 0..1000)]),
        (
            "100 proofs, 10 units",
            (0..10).map(|i| (indices[10 + i], 0..10)).collect(),
        ),
    ];
    println!("submitProofs gas on anvil (whole transaction: 21000 base + calldata + execution)");
    println!(
        "{:<22} {:>14} {:>10} {:>16} {:>10}",
        "batch", "first gas", "per proof", "follow-up gas", "per proof"
    );
    let mut at_100 = 0;
    for (name, groups) in cases {
        let proofs: u64 = groups.iter().map(|(_, r)| r.end - r.start).sum();
        let mut row = Vec::new();
        for round in 0..2u64 {
            let shifted: Vec<Group> = groups
                .iter()
                .map(|(u, r)| (*u, r.start + round * 100_000..r.end + round * 100_000))
                .collect();
            let receipt = contract
                .submitProofs(epoch, seed, packed(&shifted))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
            assert!(receipt.status());
            let accepted: usize = receipt
                .inner
                .logs()
                .iter()
                .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
                .map(|l| l.inner.data.nonces.len() / 8)
                .sum();
            assert_eq!(accepted as u64, proofs, "every proof accepted");
            row.push(receipt.gas_used);
        }
        if name == "100 proofs, 1 unit" {
            at_100 = row[0] / proofs;
        }
        println!(
            "{:<22} {:>14} {:>10} {:>16} {:>10}",
            name,
            row[0],
            row[0] / proofs,
            row[1],
            row[1] / proofs
        );
    }
    println!();
    println!("gas per proof at 100 proofs (first batch of the epoch): {at_100} (target <= 2000)");
}
