//! Epoch-aware scheduling on a real anvil: a unit hashes only while the contract would count
//! its proofs. Units at the epoch's maximum idle until the next epoch; units not registered,
//! not yet started or retired idle and say why; units below the minimum are served first by
//! the batcher (`delivery::units_below_the_minimum_are_delivered_first`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use capminer_chain::ChainService;
use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_miner::Miner;
use capminer_miner::unit::UnitState;
use capminer_proofs::Target;
use capminer_proofs::store::{ProofState, ProofStore};
use prometheus::Registry;

use super::{Net, light_miner_config, planned_units, register_planned, spec};

/// One tick, its epoch and holds handed to the miner as the node does; one more block.
async fn step(net: &Net, client: &mut ChainService, miner: &Miner) {
    let report = client.tick().await.unwrap();
    if let Some(e) = report.new_epoch {
        miner.set_epoch(e).unwrap();
    }
    if let Some(holds) = &report.holds {
        miner.set_holds(holds.iter().map(|(id, why)| (*id, why.as_deref())));
    }
    net.advance(0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Steps until `done` holds (at most two minutes); panics with `what` otherwise.
async fn step_until(
    net: &Net,
    client: &mut ChainService,
    miner: &Miner,
    what: &str,
    mut done: impl FnMut(&Miner) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(miner) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        step(net, client, miner).await;
    }
}

/// A store in a fresh directory and a light-mode miner config on `net` (the directory lives as
/// long as the returned guard).
fn light_store_and_config(
    net: &Net,
) -> (tempfile::TempDir, Arc<ProofStore>, capminer_config::Config) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let config = light_miner_config(net, dir.path());
    (dir, store, config)
}

fn label(miner: &Miner, i: usize) -> String {
    miner.units()[i].info().label.clone()
}

fn hashes(miner: &Miner, i: usize) -> u64 {
    miner.units()[i].hashes()
}

/// Unit `i` idles (held) and its hash counter stays where it is over ten more chain ticks.
async fn assert_idle(net: &Net, client: &mut ChainService, miner: &Miner, i: usize) {
    step_until(net, client, miner, "the held unit's threads idle", |m| {
        m.units()[i].state() == UnitState::Idle
    })
    .await;
    let before = hashes(miner, i);
    for _ in 0..10 {
        step(net, client, miner).await;
    }
    assert_eq!(
        hashes(miner, i),
        before,
        "unit {} hashed while held ({:?})",
        label(miner, i),
        miner.hold(&label(miner, i))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_at_the_epochs_maximum_idles_until_the_next_epoch() {
    const MAX: usize = 3;
    let net = Net::start(&spec(Target::for_expected_hashes(4), 1, MAX as u32), &[]).await;
    let (_dir, store, config) = light_store_and_config(&net);
    let (units, _) = register_planned(&net, &config).await;
    let first = net.next_epoch().await;
    let plan = Miner::plan(&config).unwrap();
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;

    step_until(
        &net,
        &mut client,
        &miner,
        "every unit is at the maximum",
        |m| {
            (0..units.len()).all(|i| {
                m.hold(&label(m, i))
                    .is_some_and(|why| why.contains("at the epoch's maximum (3 proofs)"))
            })
        },
    )
    .await;
    for (i, (unit, _)) in units.iter().enumerate() {
        assert_idle(&net, &mut client, &miner, i).await;
        let kept = store
            .proofs(|p| {
                p.proof.unit == *unit && p.proof.epoch == first && p.state != ProofState::Skipped
            })
            .unwrap()
            .len();
        assert_eq!(kept, MAX, "unit {i}: the maximum and no more is delivered");
    }

    // The next epoch: every unit hashes again.
    let idle: Vec<u64> = (0..units.len()).map(|i| hashes(&miner, i)).collect();
    net.next_epoch().await;
    step_until(
        &net,
        &mut client,
        &miner,
        "the units hash the next epoch",
        |m| (0..units.len()).all(|i| m.hold(&label(m, i)).is_none() && hashes(m, i) > idle[i]),
    )
    .await;
    miner.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_hashes_only_while_registered_started_and_not_retired() {
    let net = Net::start(&spec(Target::for_expected_hashes(1000), 1, 1000), &[]).await;
    let (_dir, store, config) = light_store_and_config(&net);
    let plan = Miner::plan(&config).unwrap();
    let units = planned_units(&config);
    assert!(units.len() >= 2, "this machine plans at least two units");
    // Only the first unit is registered.
    let index0 = net.register(1, &units[..1]).await[0];
    let first = net.next_epoch().await;
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;
    let address = net.address();
    step_until(&net, &mut client, &miner, "unit 0 hashes", |m| {
        hashes(m, 0) > 0
    })
    .await;
    assert_eq!(
        miner.hold(&label(&miner, 1)),
        Some(format!("not registered on contract {address}"))
    );
    assert_eq!(hashes(&miner, 1), 0, "an unregistered unit never hashed");
    assert_idle(&net, &mut client, &miner, 1).await;

    // Registered now, it starts with the next epoch; unit 0 is retired from the next epoch.
    net.register(1, &units[1..2]).await;
    let provider = devnet::signing_provider(&net.url, net.key(1)).unwrap();
    Capacity::new(address, provider)
        .retireUnits(vec![index0])
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let starts = format!("not active yet: starts at epoch {}", first + 1);
    step_until(
        &net,
        &mut client,
        &miner,
        "unit 1 waits for its first epoch",
        |m| m.hold(&label(m, 1)).as_deref() == Some(starts.as_str()),
    )
    .await;
    assert_eq!(
        miner.hold(&label(&miner, 0)),
        None,
        "unit 0 proves this epoch"
    );
    assert_idle(&net, &mut client, &miner, 1).await;

    net.next_epoch().await;
    let retired = format!("retired on chain at epoch {}", first + 1);
    step_until(
        &net,
        &mut client,
        &miner,
        "unit 1 hashes, unit 0 retired",
        |m| {
            m.hold(&label(m, 0)).as_deref() == Some(retired.as_str())
                && m.hold(&label(m, 1)).is_none()
                && matches!(m.units()[1].state(), UnitState::Hashing(e) if e == first + 1)
        },
    )
    .await;
    assert_idle(&net, &mut client, &miner, 0).await;
    let before = hashes(&miner, 1);
    step_until(&net, &mut client, &miner, "unit 1 keeps hashing", |m| {
        hashes(m, 1) > before
    })
    .await;
    miner.stop().unwrap();
}

/// A unit added while the node runs (the control API's `add`) is taken in by the running chain
/// client: looked up on chain, held idle while it is not registered, and, once registered, its
/// proofs are delivered without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_added_while_running_is_delivered_once_registered() {
    let net = Net::start(&spec(Target::for_expected_hashes(4), 1, 1000), &[]).await;
    let (_dir, store, config) = light_store_and_config(&net);
    let plan = Miner::plan(&config).unwrap();
    let units = planned_units(&config);
    assert!(units.len() >= 2, "this machine plans at least two units");
    net.register(1, &units[..1]).await;
    net.next_epoch().await;
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    // The client starts knowing only unit 0, as a node whose unit 1 came through the API.
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units[..1])
        .await;
    step_until(&net, &mut client, &miner, "unit 0 hashes", |m| {
        hashes(m, 0) > 0
    })
    .await;

    let (id1, kind1) = units[1];
    client.learn_units(vec![capminer_protocol::UnitRef {
        id: id1,
        kind: kind1,
        label: label(&miner, 1),
    }]);
    let address = net.address();
    let unregistered = format!("not registered on contract {address}");
    step_until(
        &net,
        &mut client,
        &miner,
        "the added unit is held as unregistered",
        |m| m.hold(&label(m, 1)).as_deref() == Some(unregistered.as_str()),
    )
    .await;
    assert_idle(&net, &mut client, &miner, 1).await;

    net.register(1, &units[1..2]).await;
    net.next_epoch().await;
    let delivered = |store: &ProofStore| {
        store
            .proofs(|p| p.proof.unit == id1 && p.state == ProofState::Final)
            .unwrap()
            .len()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered(&store) == 0 {
        assert!(
            Instant::now() < deadline,
            "the added unit's proofs were never delivered (hold {:?})",
            miner.hold(&label(&miner, 1))
        );
        step(&net, &mut client, &miner).await;
    }
    assert_eq!(miner.hold(&label(&miner, 1)), None, "registered: it hashes");
    miner.stop().unwrap();
}
