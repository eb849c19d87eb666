//! Rewards and collateral across settlement: an unsettled epoch never freezes later rewards,
//! collateral stays locked until the unit's last epoch settles, and a claim never reverts for
//! lack of funds.

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{COLLATERAL, REWARD, at, close, fund, groups, report, seeded, send, settle, submit};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsettled_epoch_never_freezes_later_rewards_and_the_quorum_stays_reachable() {
    let mut s = spec(Target([0xff; 32]), 1, 100);
    s.verifiers = vec![ACCOUNTS[2], ACCOUNTS[4]];
    s.quorum = 2;
    let net = Net::start(&s, &[]).await;
    fund(&net, 10 * REWARD).await;
    let unit = net.register(1, &[(unit_id(1, 7), UnitKind::Cpu)]).await[0];
    let e1 = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, unit, &[1]).await;
    let e2 = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, unit, &[1]).await;
    // Epoch 1: one verifier of two skipped it (the audit's freeze). Epoch 2: both attest.
    close(&net, e1).await;
    assert!(net.attest(2, unit, e1).await);
    close(&net, e2).await;
    assert!(net.attest(2, unit, e2).await);
    assert!(net.attest(4, unit, e2).await);
    settle(&net, e2).await;
    let now = net.epoch().await;
    let c = net.contract().claimable(unit, now).call().await.unwrap();
    assert_eq!(
        c.amount,
        U256::from(REWARD),
        "epoch 2 pays, epoch 1 settled unpaid"
    );
    assert!(c.nextEpoch > e2);
    send(at(&net, 1).claim(vec![unit], now)).await.unwrap();
    assert_eq!(
        net.contract()
            .claimable(unit, now)
            .call()
            .await
            .unwrap()
            .amount,
        U256::ZERO
    );

    // A quorum above the verifier count is refused, and so is a removal below the quorum.
    let quorum = Capacity::setQuorumCall { q: 3 };
    devnet::schedule(&net.url, net.key(0), net.address(), &quorum)
        .await
        .unwrap();
    let err = send(at(&net, 0).execute(quorum.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CapacityErrors::BadQuorum(ref b) if b.quorum == 3 && b.verifiers == 2),
        "{err:?}"
    );
    let remove = Capacity::removeVerifierCall { v: ACCOUNTS[4] };
    devnet::schedule(&net.url, net.key(0), net.address(), &remove)
        .await
        .unwrap();
    let err = send(at(&net, 0).execute(remove.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(matches!(err, CapacityErrors::BadQuorum(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collateral_stays_locked_until_every_epoch_of_the_unit_is_settled() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 9), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, unit, &[1, 2]).await;
    let early = send(at(&net, 1).withdrawCollateral(vec![unit]))
        .await
        .unwrap_err();
    assert!(matches!(early, CapacityErrors::NotRetired(_)), "{early:?}");
    send(at(&net, 1).retireUnits(vec![unit])).await.unwrap();
    // Retired from e + 1: epoch e can still be reported until it settles.
    close(&net, e).await;
    let locked = send(at(&net, 1).withdrawCollateral(vec![unit]))
        .await
        .unwrap_err();
    let until: U256 = net.contract().settleTime(e).call().await.unwrap();
    match locked {
        CapacityErrors::CollateralLocked(l) => assert_eq!((l.unit, l.untilTime), (unit, until)),
        other => panic!("expected CollateralLocked, got {other:?}"),
    }
    report(&net, 2, unit, e, 1, groups(&net, unit, e).await)
        .await
        .unwrap();
    settle(&net, e).await;
    let before = net.provider.get_balance(ACCOUNTS[1]).await.unwrap();
    let receipt = send(at(&net, 1).withdrawCollateral(vec![unit]))
        .await
        .unwrap();
    let after = net.provider.get_balance(ACCOUNTS[1]).await.unwrap();
    let gas = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        after + gas - before,
        U256::from(COLLATERAL * 9 / 10),
        "what the slash left"
    );
    let contract_balance = net.provider.get_balance(net.address()).await.unwrap();
    let pool: U256 = net.contract().rewardPool().call().await.unwrap();
    assert_eq!(
        contract_balance, pool,
        "only the pool (with the slash) is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_never_reverts_for_lack_of_funds_and_pays_what_is_owed_later() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 5), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, unit, &[4]).await;
    close(&net, e).await;
    assert!(net.attest(2, unit, e).await);
    settle(&net, e).await;
    let now = net.epoch().await;
    let receipt = send(at(&net, 1).claim(vec![unit], now)).await.unwrap();
    let owed_event = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<Capacity::RewardsOwed>().ok())
        .expect("RewardsOwed says what is owed");
    assert_eq!(owed_event.inner.data.amount, U256::from(REWARD));
    assert_eq!(
        net.contract().owed(ACCOUNTS[1]).call().await.unwrap(),
        U256::from(REWARD)
    );
    fund(&net, REWARD / 2).await;
    send(at(&net, 1).claim(vec![unit], now)).await.unwrap();
    assert_eq!(
        net.contract().owed(ACCOUNTS[1]).call().await.unwrap(),
        U256::from(REWARD / 2),
        "half paid, half still owed"
    );
    fund(&net, REWARD).await;
    send(at(&net, 1).claim(vec![], now)).await.unwrap();
    assert_eq!(
        net.contract().owed(ACCOUNTS[1]).call().await.unwrap(),
        U256::ZERO
    );
    assert_eq!(
        net.contract().rewardPool().call().await.unwrap(),
        U256::from(REWARD / 2)
    );
}
