//! The smaller points of audit round 3 that the contract now closes: one signature encoding
//! (one sample) per verifier, a guardian that cannot be zeroed while paused, a slash that never
//! rounds to zero. (The others are written down in docs/THREATS.md.)

use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{
    at, close, collateral, digest_and_sample_hash, groups, report, sample_signature, seeded, send,
    submit,
};
use crate::chain::{Net, spec, unit_id};

/// A signature's `v` as 0/1 or 27/28. Before, the contract added 27 to a `v` below 27, so one
/// signature had two byte strings, hence two `keccak256(sig)` and two samples for one verifier
/// to choose from. Now only 27/28 recover; 0/1 is `BadSampleSignature` (signer zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_has_one_encoding_so_a_verifier_has_one_sample() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 1), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(submit(&net, unit, &[1]).await, 1);
    close(&net, e).await;
    let (digest, hash) = digest_and_sample_hash(&net, unit, e).await;
    let sig = sample_signature(&net, 2, hash);
    assert!(
        sig[64] == 27 || sig[64] == 28,
        "the client signs with 27/28"
    );
    let mut low = sig.to_vec();
    low[64] -= 27;
    match send(at(&net, 2).attest(unit, e, digest, 1, low.into()))
        .await
        .unwrap_err()
    {
        CapacityErrors::BadSampleSignature(b) => assert!(b.signer.is_zero()),
        other => panic!("expected BadSampleSignature, got {other:?}"),
    }
    send(at(&net, 2).attest(unit, e, digest, 1, sig))
        .await
        .unwrap();
}

/// `setGuardian(0)` while paused. Before, the timelock could set the guardian to zero while the
/// contract was paused, and nobody could ever resume submissions and claims. Now it reverts
/// `ZeroAddress` while paused (and is allowed unpaused, to have no guardian at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guardian_cannot_be_zeroed_while_paused() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    send(at(&net, 0).setPaused(true)).await.unwrap();
    let zero = Capacity::setGuardianCall {
        g: alloy::primitives::Address::ZERO,
    };
    devnet::schedule(&net.url, net.key(0), net.address(), &zero)
        .await
        .unwrap();
    let refused = send(at(&net, 0).execute(zero.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CapacityErrors::ZeroAddress(_)),
        "{refused:?}"
    );
    send(at(&net, 0).setPaused(false)).await.unwrap();
    devnet::execute(&net.url, net.key(0), net.address(), &zero)
        .await
        .unwrap();
    assert!(net.contract().guardian().call().await.unwrap().is_zero());
}

/// A slash rounding to zero. Before, `collateral × slashRateBps / 10,000` rounded down: with a
/// collateral of 9 wei at 10 % a failed unit-epoch cost nothing. Now it rounds up: 1 wei.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_never_rounds_to_zero() {
    let mut s = spec(Target([0xff; 32]), 1, 100);
    s.kinds[0].collateral_wei = 9;
    let net = Net::start(&s, &[]).await;
    let unit = net.register(1, &[(unit_id(1, 1), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    seeded(&net).await;
    assert_eq!(submit(&net, unit, &[1]).await, 1);
    close(&net, e).await;
    let evidence = groups(&net, unit, e).await;
    report(&net, 2, unit, e, 1, evidence).await.unwrap();
    assert_eq!(collateral(&net, unit).await, 8);
}
