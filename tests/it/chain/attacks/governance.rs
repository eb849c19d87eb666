//! Governance: the timelock, two-step ownership, a guardian that only pauses; changes that take
//! effect from the next epoch, and a report quorum above one.

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{COLLATERAL, at, close, collateral, groups, packed, report, seeded, send, submit};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_is_timelocked_ownership_moves_in_two_steps_and_the_guardian_only_pauses() {
    let mut s = spec(Target([0xff; 32]), 1, 100);
    s.timelock_seconds = 3600;
    let net = Net::start(&s, &[]).await;

    // No direct parameter or verifier change; only through the timelock, after the delay.
    let params = net.contract().kindParams(0).call().await.unwrap();
    let direct = send(at(&net, 0).setKindParams(0, params.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(direct, CapacityErrors::OnlyTimelock(_)),
        "{direct:?}"
    );
    let add = Capacity::addVerifierCall { v: ACCOUNTS[5] };
    let outsider = send(at(&net, 3).schedule(add.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(outsider, CapacityErrors::OnlyOwner(_)),
        "{outsider:?}"
    );
    let eta = devnet::schedule(&net.url, net.key(0), net.address(), &add)
        .await
        .unwrap();
    let early = send(at(&net, 0).execute(add.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(early, CapacityErrors::TimelockPending(ref p) if p.eta == U256::from(eta)),
        "{early:?}"
    );
    let not_governance = Capacity::fundPoolCall {};
    let err = send(at(&net, 0).schedule(not_governance.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(matches!(err, CapacityErrors::NotTimelocked(_)), "{err:?}");
    net.advance_to(eta).await;
    devnet::execute(&net.url, net.key(0), net.address(), &add)
        .await
        .unwrap();
    assert!(net.contract().isVerifier(ACCOUNTS[5]).call().await.unwrap());
    let twice = send(at(&net, 0).execute(add.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(twice, CapacityErrors::NotScheduled(_)),
        "{twice:?}"
    );

    // Ownership: never to zero; the new owner must accept.
    let zero = send(at(&net, 0).transferOwnership(Address::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(zero, CapacityErrors::ZeroAddress(_)), "{zero:?}");
    send(at(&net, 0).transferOwnership(ACCOUNTS[3]))
        .await
        .unwrap();
    assert_eq!(net.contract().owner().call().await.unwrap(), ACCOUNTS[0]);
    let wrong = send(at(&net, 4).acceptOwnership()).await.unwrap_err();
    assert!(matches!(wrong, CapacityErrors::OnlyOwner(_)), "{wrong:?}");
    send(at(&net, 3).acceptOwnership()).await.unwrap();
    assert_eq!(net.contract().owner().call().await.unwrap(), ACCOUNTS[3]);

    // The guardian (account 0) pauses submissions and claims; collateral still moves.
    let unit = net.register(1, &[(unit_id(1, 3), UnitKind::Cpu)]).await[0];
    net.next_epoch().await;
    let (e, s1) = seeded(&net).await;
    let not_guardian = send(at(&net, 1).setPaused(true)).await.unwrap_err();
    assert!(
        matches!(not_guardian, CapacityErrors::OnlyGuardian(_)),
        "{not_guardian:?}"
    );
    send(at(&net, 0).setPaused(true)).await.unwrap();
    let paused = send(at(&net, 1).submitProofs(e, s1, packed(unit, &[1])))
        .await
        .unwrap_err();
    assert!(matches!(paused, CapacityErrors::IsPaused(_)), "{paused:?}");
    let claim = send(at(&net, 1).claim(vec![unit], e)).await.unwrap_err();
    assert!(matches!(claim, CapacityErrors::IsPaused(_)), "{claim:?}");
    send(at(&net, 1).retireUnits(vec![unit])).await.unwrap();
    send(at(&net, 0).setPaused(false)).await.unwrap();
    assert_eq!(submit(&net, unit, &[1]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_changes_take_effect_and_a_report_quorum_above_one_slashes_into_the_pool() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 4), UnitKind::Cpu)]).await[0];
    // A second verifier, then a quorum of two; new parameters from the next epoch.
    let add = Capacity::addVerifierCall { v: ACCOUNTS[4] };
    devnet::schedule(&net.url, net.key(0), net.address(), &add)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &add)
        .await
        .unwrap();
    let quorum = Capacity::setQuorumCall { q: 2 };
    devnet::schedule(&net.url, net.key(0), net.address(), &quorum)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &quorum)
        .await
        .unwrap();
    assert_eq!(net.contract().quorum().call().await.unwrap(), 2);
    assert_eq!(net.contract().verifierCount().call().await.unwrap(), 2);
    let now = net.epoch().await;
    let mut params = net.contract().kindParams(0).call().await.unwrap();
    params.maxProofs = 3;
    let set = Capacity::setKindParamsCall { kind: 0, p: params };
    devnet::schedule(&net.url, net.key(0), net.address(), &set)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &set)
        .await
        .unwrap();
    let info = net.contract().epochInfo(now).call().await.unwrap();
    assert_eq!(
        info.maxProofs[0], 100,
        "the running epoch keeps its parameters"
    );

    let e = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(
        net.contract().epochInfo(e).call().await.unwrap().maxProofs[0],
        3
    );
    assert_eq!(
        submit(&net, unit, &[1, 2, 3, 4, 5]).await,
        3,
        "the new maximum"
    );
    close(&net, e).await;

    // One report of two changes nothing; the second fails the unit-epoch and slashes into the
    // reward pool.
    let evidence = groups(&net, unit, e).await;
    report(&net, 2, unit, e, 2, evidence.clone()).await.unwrap();
    let state = net.contract().unitEpoch(unit, e).call().await.unwrap();
    assert!(!state.failed);
    assert_eq!(collateral(&net, unit).await, COLLATERAL as u128);
    let twice = report(&net, 2, unit, e, 2, evidence.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(twice, CapacityErrors::AlreadyReported(_)),
        "{twice:?}"
    );
    let pool: U256 = net.contract().rewardPool().call().await.unwrap();
    report(&net, 4, unit, e, 2, evidence).await.unwrap();
    assert!(
        net.contract()
            .unitEpoch(unit, e)
            .call()
            .await
            .unwrap()
            .failed
    );
    assert_eq!(collateral(&net, unit).await, (COLLATERAL * 9 / 10) as u128);
    assert_eq!(
        net.contract().rewardPool().call().await.unwrap() - pool,
        U256::from(COLLATERAL / 10),
        "the slash went to the pool"
    );

    // Back to one verifier: the quorum first, then the removal.
    let quorum = Capacity::setQuorumCall { q: 1 };
    devnet::schedule(&net.url, net.key(0), net.address(), &quorum)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &quorum)
        .await
        .unwrap();
    let remove = Capacity::removeVerifierCall { v: ACCOUNTS[4] };
    devnet::schedule(&net.url, net.key(0), net.address(), &remove)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &remove)
        .await
        .unwrap();
    assert!(!net.contract().isVerifier(ACCOUNTS[4]).call().await.unwrap());
    let outsider = send(at(&net, 4).abstain(unit, e, 1)).await.unwrap_err();
    assert!(
        matches!(outsider, CapacityErrors::NotVerifier(_)),
        "{outsider:?}"
    );
}
