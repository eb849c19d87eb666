//! Settlement follows the quorum in force (audit round 3): votes cast under one quorum are judged
//! at settlement by the quorum of that moment (`quorumFor(epoch)`).

use alloy::primitives::U256;
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{
    COLLATERAL, REWARD, at, close, collateral, digest_and_sample_hash, fund, groups, report,
    sample_signature, seeded, send, settle, submit,
};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

/// Schedules and executes a governance call (the tests' timelock delay is 0).
async fn govern(net: &Net, call: &impl SolCall) {
    devnet::schedule(&net.url, net.key(0), net.address(), call)
        .await
        .unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), call)
        .await
        .unwrap();
}

/// Attack "a quorum change strands votes already cast". Before, the quorum was compared only
/// when a vote arrived: at quorum 2 of 2, one verifier attested and the other was down; the
/// timelock lowered the quorum to 1 and removed the absent verifier, yet the unit-epoch never
/// became attested (a second attestation reverted `AlreadyAttested`) and paid nothing; a report
/// cast the same way never failed its unit-epoch. Now the votes are judged at settlement by the
/// quorum in force then: the attestation pays, the report fails its unit-epoch (no reward) and
/// `enforceFailure` slashes it; a quorum raised before settlement leaves a unit-epoch with one
/// attestation unpaid; a quorum change after settlement changes nothing; the removed verifier's
/// votes still count (docs/THREATS.md, attack 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_follows_the_quorum_in_force_not_the_one_at_vote_time() {
    let (present, absent) = (2, 4);
    let mut s = spec(Target([0xff; 32]), 1, 100);
    s.verifiers = vec![ACCOUNTS[present], ACCOUNTS[absent]];
    s.quorum = 2;
    let net = Net::start(&s, &[]).await;
    fund(&net, 10 * REWARD).await;
    let units = net
        .register(
            1,
            &[
                (unit_id(1, 1), UnitKind::Cpu),
                (unit_id(1, 2), UnitKind::Cpu),
            ],
        )
        .await;
    let (good, bad) = (units[0], units[1]);
    let e = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(submit(&net, good, &[1, 2]).await, 2);
    assert_eq!(submit(&net, bad, &[5]).await, 1);
    close(&net, e).await;

    // One vote each, of two needed: nothing yet.
    let (digest, hash) = digest_and_sample_hash(&net, good, e).await;
    send(at(&net, present).attest(good, e, digest, 2, sample_signature(&net, present, hash)))
        .await
        .unwrap();
    let evidence = groups(&net, bad, e).await;
    report(&net, present, bad, e, 5, evidence).await.unwrap();
    let state = async |unit: u32| net.contract().unitEpoch(unit, e).call().await.unwrap();
    let g = state(good).await;
    assert_eq!((g.attestations, g.isAttested), (1, false));
    let b = state(bad).await;
    assert_eq!((b.reports, b.failed), (1, false));
    assert_eq!(net.contract().quorumFor(e).call().await.unwrap(), 2);

    // The absent verifier is removed and the quorum lowered to 1 before settlement.
    govern(&net, &Capacity::setQuorumCall { q: 1 }).await;
    govern(
        &net,
        &Capacity::removeVerifierCall {
            v: ACCOUNTS[absent],
        },
    )
    .await;
    assert!(
        state(good).await.isAttested,
        "judged by the quorum in force"
    );
    assert!(state(bad).await.failed);
    // The present verifier cannot vote twice; it need not.
    let twice =
        send(at(&net, present).attest(good, e, digest, 2, sample_signature(&net, present, hash)))
            .await
            .unwrap_err();
    assert!(
        matches!(twice, CapacityErrors::AlreadyAttested(_)),
        "{twice:?}"
    );
    // The failure's slash is enforced by anyone, once.
    assert_eq!(collateral(&net, bad).await, COLLATERAL as u128);
    let receipt = send(at(&net, 3).enforceFailure(bad, e)).await.unwrap();
    let slashed: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<Capacity::UnitEpochFailed>().ok())
        .collect();
    assert_eq!(slashed.len(), 1);
    assert_eq!(collateral(&net, bad).await, (COLLATERAL * 9 / 10) as u128);
    let again = send(at(&net, 3).enforceFailure(bad, e)).await.unwrap();
    assert!(again.inner.logs().is_empty(), "once");

    // Settled: paid on the one attestation; a later quorum change rewrites nothing.
    settle(&net, e).await;
    govern(&net, &Capacity::addVerifierCall { v: ACCOUNTS[5] }).await;
    govern(&net, &Capacity::setQuorumCall { q: 2 }).await;
    assert_eq!(net.contract().quorumFor(e).call().await.unwrap(), 1);
    assert!(state(good).await.isAttested);
    let claimable = async |unit: u32| {
        net.contract()
            .claimable(unit, e)
            .call()
            .await
            .unwrap()
            .amount
    };
    assert_eq!(claimable(good).await, U256::from(REWARD));
    assert_eq!(claimable(bad).await, U256::ZERO);

    // A quorum raised before settlement: one attestation no longer suffices.
    let e2 = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(submit(&net, good, &[1]).await, 1);
    govern(&net, &Capacity::setQuorumCall { q: 1 }).await;
    close(&net, e2).await;
    let (digest2, hash2) = digest_and_sample_hash(&net, good, e2).await;
    send(at(&net, present).attest(good, e2, digest2, 1, sample_signature(&net, present, hash2)))
        .await
        .unwrap();
    let now = net.contract().unitEpoch(good, e2).call().await.unwrap();
    assert!(now.isAttested, "attested at the quorum of the moment");
    govern(&net, &Capacity::setQuorumCall { q: 2 }).await;
    settle(&net, e2).await;
    let then = net.contract().unitEpoch(good, e2).call().await.unwrap();
    assert!(
        !then.isAttested,
        "judged by the quorum in force at settlement"
    );
    let claim = net.contract().claimable(good, e2).call().await.unwrap();
    assert_eq!(claim.amount, U256::from(REWARD), "epoch e only");
}
