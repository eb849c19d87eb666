//! Reports and slashing: a report needs true evidence of a submitted nonce and the verification
//! window; a failed unit-epoch is never paid; a slashed unit neither proves nor earns until
//! topped up.

use alloy::primitives::U256;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::{Target, UnitKind};

use super::{
    COLLATERAL, REWARD, at, close, collateral, fund, groups, packed, report, seeded, send, settle,
    submit,
};
use crate::chain::{Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slashed_unit_neither_proves_nor_earns_until_topped_up() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let idx = net
        .register(
            1,
            &[
                (unit_id(1, 1), UnitKind::Cpu),
                (unit_id(1, 2), UnitKind::Cpu),
            ],
        )
        .await;
    let (bad, good) = (idx[0], idx[1]);
    let e1 = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(submit(&net, bad, &[1, 2, 3]).await, 3);
    assert_eq!(submit(&net, good, &[1, 2]).await, 2);
    close(&net, e1).await;
    report(&net, 2, bad, e1, 2, groups(&net, bad, e1).await)
        .await
        .unwrap();
    assert_eq!(collateral(&net, bad).await, (COLLATERAL * 9 / 10) as u128);

    // Next epoch: the slashed unit's proofs are skipped, the other unit's accepted.
    let e2 = net.epoch().await;
    assert_eq!(e2, e1 + 1);
    seeded(&net).await;
    assert_eq!(submit(&net, bad, &[5, 6]).await, 0, "short of collateral");
    assert_eq!(submit(&net, good, &[5, 6]).await, 2);
    assert_eq!(net.count(bad, e2).await, 0);

    // Top-up: more than the shortfall is refused; the exact shortfall restores it.
    let err = send(at(&net, 1).topUp(bad).value(U256::from(COLLATERAL)))
        .await
        .unwrap_err();
    assert!(matches!(err, CapacityErrors::WrongCollateral(_)), "{err:?}");
    let foreign = send(at(&net, 3).topUp(bad).value(U256::from(COLLATERAL / 10)))
        .await
        .unwrap_err();
    assert!(
        matches!(foreign, CapacityErrors::NotUnitOwner(_)),
        "{foreign:?}"
    );
    send(at(&net, 1).topUp(bad).value(U256::from(COLLATERAL / 10)))
        .await
        .unwrap();
    assert_eq!(collateral(&net, bad).await, COLLATERAL as u128);
    assert_eq!(submit(&net, bad, &[7]).await, 1, "proving again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_need_evidence_and_the_window_and_a_failed_epoch_is_never_paid() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    fund(&net, 10 * REWARD).await;
    let idx = net
        .register(
            1,
            &[
                (unit_id(1, 1), UnitKind::Cpu),
                (unit_id(1, 2), UnitKind::Cpu),
            ],
        )
        .await;
    let (accused, honest) = (idx[0], idx[1]);
    let e = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, accused, &[1, 2]).await;
    submit(&net, accused, &[3]).await;
    submit(&net, honest, &[10, 12]).await;

    // Before the window closes nobody may report.
    let g = groups(&net, accused, e).await;
    assert_eq!(g.len(), 2, "two logs, two groups");
    let early = report(&net, 2, accused, e, 2, g.clone()).await.unwrap_err();
    assert!(matches!(early, CapacityErrors::WindowOpen(_)), "{early:?}");
    close(&net, e).await;

    // The audit's attack: a nonce never submitted (424242). Refused, with true evidence or not.
    let never = report(&net, 2, accused, e, 424_242, g.clone())
        .await
        .unwrap_err();
    match never {
        CapacityErrors::NonceNotSubmitted(n) => {
            assert_eq!((n.unit, n.epoch, n.nonce), (accused, e, 424_242))
        }
        other => panic!("expected NonceNotSubmitted, got {other:?}"),
    }
    let forged = vec![g[0].clone(), packed(0, &[424_242]).slice(6..)];
    let forged = report(&net, 2, accused, e, 424_242, forged)
        .await
        .unwrap_err();
    assert!(
        matches!(forged, CapacityErrors::BadEvidence(_)),
        "{forged:?}"
    );
    let partial = report(&net, 2, accused, e, 2, g[..1].to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(partial, CapacityErrors::BadEvidence(_)),
        "{partial:?}"
    );
    assert_eq!(
        collateral(&net, accused).await,
        COLLATERAL as u128,
        "nothing slashed"
    );

    // Attested, then reported with evidence within the window: failed, and no longer attested.
    assert!(net.attest(2, accused, e).await);
    assert!(
        net.contract()
            .unitEpoch(accused, e)
            .call()
            .await
            .unwrap()
            .isAttested
    );
    report(&net, 2, accused, e, 3, g.clone()).await.unwrap();
    let state = net.contract().unitEpoch(accused, e).call().await.unwrap();
    assert!(state.failed && !state.isAttested, "{state:?}");
    assert_eq!(
        collateral(&net, accused).await,
        (COLLATERAL * 9 / 10) as u128
    );

    // The honest unit: attested, paid after settlement; no report after it.
    assert!(net.attest(2, honest, e).await);
    settle(&net, e).await;
    let late = report(&net, 2, honest, e, 10, groups(&net, honest, e).await)
        .await
        .unwrap_err();
    assert!(
        matches!(late, CapacityErrors::VerificationClosed(_)),
        "{late:?}"
    );
    let now = net.epoch().await;
    let pool: U256 = net.contract().rewardPool().call().await.unwrap();
    send(at(&net, 1).claim(vec![accused, honest], now))
        .await
        .unwrap();
    let paid = pool - net.contract().rewardPool().call().await.unwrap();
    assert_eq!(paid, U256::from(REWARD), "one reward: the honest unit's");
}
