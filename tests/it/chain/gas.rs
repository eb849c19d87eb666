//! The gas budget of `submitProofs`, enforced: gas is deterministic, so this fails the moment a
//! change makes a 100-proof batch (3-byte deltas) cost more than 700 gas a proof (whole
//! transaction: 21,000 base, calldata and execution), the target of audit round 3.
//! `cargo bench --bench chain_gas` prints the full table and the fleet mix.

use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{Net, spec, unit_id};

/// Gas a proof at 100 proofs of one unit, first batch of the epoch, at most.
const BUDGET: u64 = 700;

/// Seeds the next epoch and submits `packed` in it as account 1 (the units' provider); returns
/// the epoch and the mined receipt, checked successful.
async fn submit_in_next_epoch(
    net: &Net,
    packed: Vec<u8>,
) -> (u64, alloy::rpc::types::TransactionReceipt) {
    let e = net.next_epoch().await;
    net.seed_epoch().await;
    let seed = net.contract().epochInfo(e).call().await.unwrap().seed;
    let receipt = Capacity::new(
        net.address(),
        devnet::signing_provider(&net.url, net.key(1)).unwrap(),
    )
    .submitProofs(e, seed, packed.into())
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    assert!(receipt.status());
    (e, receipt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_proof_batch_stays_within_the_gas_budget() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 32_768), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 1), UnitKind::Cpu)]).await[0];
    // Nonces 2^21 apart: 3-byte deltas, as proofs found at about that rate are.
    let nonces: Vec<u64> = (0..100u64).map(|n| (n << 21) + 13).collect();
    let mut packed = Vec::new();
    capminer_chain::groups::encode_group(unit, &nonces, &mut packed);
    let (e, receipt) = submit_in_next_epoch(&net, packed).await;
    assert_eq!(net.count(unit, e).await, 100);
    let per_proof = receipt.gas_used / 100;
    eprintln!(
        "submitProofs, 100 proofs: {} gas, {per_proof} a proof",
        receipt.gas_used
    );
    assert!(
        per_proof <= BUDGET,
        "{per_proof} gas a proof is over the budget of {BUDGET}"
    );
}

/// Registration buys each unit its proof slots (`ringSlots` words of 22,100 gas), so a unit
/// costs about 175k gas to register: 250 units in one transaction would pass a 30M block.
/// `register_units` sends at most `REGISTER_CHUNK` a transaction, each well inside anvil's 30M
/// block; the indices come back in order, and the last unit proves like the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_many_units_goes_in_transactions_that_fit_a_block() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 32_768), &[]).await;
    let units: Vec<(capminer_proofs::UnitId, UnitKind)> = (0..250u32)
        .map(|i| {
            let mut id = unit_id(1, 0).0;
            id[28..].copy_from_slice(&i.to_be_bytes());
            let kind = if i % 5 == 0 {
                UnitKind::Gpu
            } else {
                UnitKind::Cpu
            };
            (capminer_proofs::UnitId(id), kind)
        })
        .collect();
    assert!(units.len() > 2 * devnet::REGISTER_CHUNK);
    let indices = net.register(1, &units).await;
    assert_eq!(indices, (0..250).collect::<Vec<u32>>());
    assert_eq!(net.contract().unitCount().call().await.unwrap(), 250);
    let mut packed = Vec::new();
    for unit in [0u32, 249] {
        capminer_chain::groups::encode_group(unit, &[7, 9], &mut packed);
    }
    let (e, _) = submit_in_next_epoch(&net, packed).await;
    assert_eq!((net.count(0, e).await, net.count(249, e).await), (2, 2));
}
