//! The whole flow on a real anvil: epochs advance, units re-key, proofs land, a verifier
//! attests, rewards are claimed; the contract's counts equal the store's, exactly.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use capminer_chain::devnet;
use capminer_config::Config;
use capminer_miner::Miner;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Target, UnitId, UnitKind};
use prometheus::Registry;

use super::{EPOCH, GRACE, Net, VERIFY, spec};

fn light() -> Config {
    let mut config = Config::default();
    config.cpu.randomx.full_memory = false;
    config.cpu.randomx.large_pages = false;
    config.cpu.round_ms = 100;
    config
}

fn count_in(
    store: &ProofStore,
    unit: UnitId,
    epoch: u64,
    pred: impl Fn(&ProofState) -> bool,
) -> usize {
    store
        .proofs(|p| p.proof.unit == unit && p.proof.epoch == epoch && pred(&p.state))
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_land_units_rekey_and_rewards_are_claimed() {
    // Both epochs are attested at the end: the first one's verification window must reach
    // past the second one's close.
    let mut s = spec(Target::for_expected_hashes(8), 3, 1000);
    s.verify_seconds = EPOCH + VERIFY;
    let net = Net::start(&s, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut config = light();
    config.miner.provider = net.key(1).address().0.0; // derived unit ids start with it
    let plan = Miner::plan(&config).unwrap();
    let units: Vec<(UnitId, UnitKind)> = plan.units().into_iter().map(|u| (u.id, u.kind)).collect();
    let indices = net.register(1, &units).await;
    devnet::fund_pool(
        &net.url,
        net.key(0),
        net.address(),
        U256::from(10u64) * U256::from(10u64.pow(18)),
    )
    .await
    .unwrap();
    let first = net.next_epoch().await; // the units prove from here on
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;

    let mut threads = None;
    for epoch in [first, first + 1] {
        if epoch > first {
            assert_eq!(net.next_epoch().await, epoch);
        }
        let mut rekeyed = false;
        for _ in 0..600 {
            let report = client.tick().await.unwrap();
            if let Some(e) = report.new_epoch {
                assert_eq!(e.number, epoch);
                miner.set_epoch(e).unwrap();
                rekeyed = true;
            }
            net.advance(0).await; // one more block: confirmations accrue
            let landed = units.iter().all(|(u, _)| {
                count_in(&store, *u, epoch, |s| {
                    matches!(s, ProofState::Included { .. } | ProofState::Final)
                }) >= 5
            });
            if landed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(rekeyed, "the client delivered epoch {epoch}");
        for (u, _) in &units {
            assert!(
                count_in(&store, *u, epoch, |s| matches!(
                    s,
                    ProofState::Included { .. } | ProofState::Final
                )) >= 5
            );
        }
        let now: Vec<Vec<i32>> = miner.units().iter().map(|u| u.thread_ids()).collect();
        assert_eq!(
            *threads.get_or_insert(now.clone()),
            now,
            "units re-key on the same threads"
        );
    }
    miner.stop().unwrap();
    // Send what the units found before they stopped, while the window is open.
    for _ in 0..20 {
        if store
            .proofs(|p| p.state == ProofState::Found)
            .unwrap()
            .is_empty()
        {
            break;
        }
        client.tick().await.unwrap();
        net.advance(0).await;
    }

    // Close the second epoch's window, then let every proof settle.
    net.next_epoch().await;
    net.advance(GRACE + 1).await;
    for _ in 0..50 {
        client.tick().await.unwrap();
        net.advance(0).await;
        if store.proofs(|p| !p.state.is_terminal()).unwrap().is_empty() {
            break;
        }
    }
    assert!(
        store.proofs(|p| !p.state.is_terminal()).unwrap().is_empty(),
        "every proof settled"
    );
    assert!(
        store.is_archived(first),
        "epoch {first}: settled and closed, so moved to the store's archive"
    );
    for ((unit, _), index) in units.iter().zip(&indices) {
        for epoch in [first, first + 1] {
            let finals = count_in(&store, *unit, epoch, |s| *s == ProofState::Final);
            assert_eq!(
                net.count(*index, epoch).await as usize,
                finals,
                "unit {index} epoch {epoch}: chain count = store's final proofs"
            );
            assert_eq!(
                count_in(&store, *unit, epoch, |s| *s == ProofState::Skipped),
                0
            );
        }
    }

    // A verifier attests every unit-epoch; the client claims once they are settled.
    for index in &indices {
        for epoch in [first, first + 1] {
            assert!(net.attest(2, *index, epoch).await);
        }
    }
    let pool_before: U256 = net.contract().rewardPool().call().await.unwrap();
    net.next_epoch().await;
    net.advance(GRACE + VERIFY + 1).await; // past the verification window of both epochs
    for _ in 0..10 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    let pool_after: U256 = net.contract().rewardPool().call().await.unwrap();
    let expected = U256::from(units.len() as u64 * 2) * U256::from(10u64.pow(18));
    assert_eq!(
        pool_before - pool_after,
        expected,
        "one reward per unit per attested epoch"
    );
    for index in &indices {
        let (amount, _) = {
            let c = net
                .contract()
                .claimable(*index, net.epoch().await)
                .call()
                .await
                .unwrap();
            (c.amount, c.nextEpoch)
        };
        assert_eq!(amount, U256::ZERO, "nothing left to claim");
    }
}
