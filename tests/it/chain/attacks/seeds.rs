//! Seeds under a reorg: a provider never mines, submits or gets reported under a seed that a reorg
//! replaced.

use std::sync::Arc;

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Hash, Proof, Target, UnitKind};

use super::{COLLATERAL, at, collateral, packed, seed, seeded, send};
use crate::chain::{Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_cannot_swap_the_seed_under_a_provider() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = unit_id(1, 0xa1);
    let index = net.register(1, &[(unit, UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut config = net.chain_config();
    config.confirmations = 3;
    let mut client = net
        .client(1, config, store.clone(), &[(unit, UnitKind::Cpu)])
        .await;

    // The client fixes the seed, and hands it to the miner only once its block is final.
    assert!(client.tick().await.unwrap().new_epoch.is_none());
    let s1 = seed(&net, e).await;
    assert_ne!(s1, B256::ZERO, "the client fixed the seed");
    assert!(
        client.tick().await.unwrap().new_epoch.is_none(),
        "not final yet: no mining under it"
    );
    net.advance(0).await;
    net.advance(0).await;
    let delivered = client.tick().await.unwrap().new_epoch.expect("final now");
    assert_eq!(delivered.seed.0, s1.0);

    // Proofs found under s1 go in.
    let proofs: Vec<Proof> = (1..=4)
        .map(|nonce| Proof {
            unit,
            kind: UnitKind::Cpu,
            epoch: e,
            nonce,
            hash: Hash::default(),
        })
        .collect();
    store.append(&proofs).unwrap();
    client.tick().await.unwrap().submitted.expect("a batch");
    assert_eq!(net.count(index, e).await, 4);

    // A reorg deeper than the confirmations drops the seeding block (and the batch); the epoch
    // is seeded again, in another block: another seed.
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    let depth = net.provider.get_block_number().await.unwrap() - delivered_block(&net, e).await + 1;
    net.provider.anvil_rollback(Some(depth)).await.unwrap();
    net.provider.anvil_drop_all_transactions().await.unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    assert_eq!(seed(&net, e).await, B256::ZERO, "the seeding block is gone");
    net.advance(0).await;
    let (_, s2) = seeded(&net).await;
    assert_ne!(s2, s1);

    // The attack of the audit: nonces found under s1 submitted again. The contract refuses
    // them under s2 (before, they were accepted and every verifier reported them).
    let err = send(at(&net, 1).submitProofs(e, s1, packed(index, &[1, 2, 3, 4])))
        .await
        .unwrap_err();
    match err {
        CapacityErrors::SeedMismatch(m) => {
            assert_eq!((m.epoch, m.expected, m.given), (e, s2, s1));
        }
        other => panic!("expected SeedMismatch, got {other:?}"),
    }
    assert_eq!(net.count(index, e).await, 0);

    // The client sees the new seed: the old proofs are skipped (never resubmitted, so never
    // reported), the old seed is retired in the store, and the epoch is delivered again under
    // s2 for the miner to re-key.
    client.tick().await.unwrap();
    assert_eq!(
        store
            .proofs(|p| p.proof.epoch == e && p.state == ProofState::Skipped)
            .unwrap()
            .len(),
        4
    );
    // The miner, still under s1 until it re-keys, finds one more: the store refuses it, so it
    // can never go out under s2 (where every verifier would report it).
    let late = Proof {
        nonce: 5,
        ..proofs[0]
    };
    assert!(matches!(
        store.append_mined(&delivered, &[late]),
        Err(capminer_proofs::StoreError::StaleEpoch(n)) if n == e
    ));
    let mut again = None;
    for _ in 0..6 {
        again = again.or(client.tick().await.unwrap().new_epoch);
        net.advance(0).await;
    }
    let again = again.expect("the epoch is delivered again");
    assert_eq!((again.number, again.seed.0), (e, s2.0));
    assert_eq!(
        net.count(index, e).await,
        0,
        "nothing mined under s1 was accepted"
    );
    assert_eq!(collateral(&net, index).await, COLLATERAL as u128);

    // Re-keyed under s2, the miner's proofs are stored and delivered again.
    assert!(matches!(
        store.append_mined(&delivered, &[late]),
        Err(capminer_proofs::StoreError::StaleEpoch(_))
    ));
    store.append_mined(&again, &[late]).unwrap();
    for _ in 0..3 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    assert_eq!(
        net.count(index, e).await,
        1,
        "mined under s2, accepted under s2"
    );
}

/// The block that fixed epoch `e`'s seed.
async fn delivered_block(net: &Net, e: u64) -> u64 {
    net.contract().epochInfo(e).call().await.unwrap().seedBlock
}
