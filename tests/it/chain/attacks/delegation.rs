//! Operator and delegate keys (attack 12): an operator submits for its provider and nothing else;
//! a delegate votes once for its party and falls silent when revoked.

use alloy::primitives::U256;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::{Target, UnitKind};

use super::{
    accepted_in, at, close, digest_and_sample_hash, packed, sample_signature, seeded, send,
};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

/// Hosts and shards (attack 12): an operator key submits its provider's proofs and can do
/// nothing else; a delegate votes for its party, never twice with another shard, and falls
/// silent when revoked or when its party leaves the verifier set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_only_submit_and_delegates_vote_once_for_their_party() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 9), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    let (_, s) = seeded(&net).await;
    let (provider, operator, stranger) = (1, 4, 5);

    // Before authorization, and for another provider's operator, the call reverts.
    let refused = send(at(&net, operator).submitProofs(e, s, packed(unit, &[1])))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CapacityErrors::NotUnitOwner(_)),
        "{refused:?}"
    );
    send(at(&net, provider).authorizeOperator(ACCOUNTS[operator], 0))
        .await
        .unwrap();
    send(at(&net, operator).acceptOperator(ACCOUNTS[provider]))
        .await
        .unwrap();
    // Another provider's offer binds nothing: the key is its provider's until it leaves.
    send(at(&net, 3).authorizeOperator(ACCOUNTS[operator], 0))
        .await
        .unwrap();
    match send(at(&net, operator).acceptOperator(ACCOUNTS[3]))
        .await
        .unwrap_err()
    {
        CapacityErrors::KeyTaken(t) => assert_eq!(t.holder, ACCOUNTS[provider]),
        other => panic!("expected KeyTaken, got {other:?}"),
    }
    let self_op = send(at(&net, provider).authorizeOperator(ACCOUNTS[provider], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(self_op, CapacityErrors::KeyTaken(_)),
        "{self_op:?}"
    );
    let receipt = send(at(&net, operator).submitProofs(e, s, packed(unit, &[1, 2])))
        .await
        .unwrap();
    assert_eq!(
        accepted_in(&receipt),
        2,
        "the operator submits for the provider"
    );

    // Nothing else: retire, top up, withdraw and claim are the provider's.
    let value = U256::from(1u64);
    for err in [
        send(at(&net, operator).retireUnits(vec![unit]))
            .await
            .unwrap_err(),
        send(at(&net, operator).topUp(unit).value(value))
            .await
            .unwrap_err(),
        send(at(&net, operator).withdrawCollateral(vec![unit]))
            .await
            .unwrap_err(),
        send(at(&net, operator).claim(vec![unit], e))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, CapacityErrors::NotUnitOwner(_)), "{err:?}");
    }
    // Only its provider revokes it; then it submits nothing more.
    let not_yours = send(at(&net, stranger).revokeOperator(ACCOUNTS[operator]))
        .await
        .unwrap_err();
    assert!(
        matches!(not_yours, CapacityErrors::NotYours(_)),
        "{not_yours:?}"
    );
    send(at(&net, provider).revokeOperator(ACCOUNTS[operator]))
        .await
        .unwrap();
    let revoked = send(at(&net, operator).submitProofs(e, s, packed(unit, &[3])))
        .await
        .unwrap_err();
    assert!(
        matches!(revoked, CapacityErrors::NotUnitOwner(_)),
        "{revoked:?}"
    );

    // Delegates: only a verifier authorizes them; a verifier is not a delegate.
    let (party, d1, d2) = (2, 5, 6);
    let not_verifier = send(at(&net, 3).authorizeDelegate(ACCOUNTS[d1]))
        .await
        .unwrap_err();
    assert!(
        matches!(not_verifier, CapacityErrors::NotVerifier(_)),
        "{not_verifier:?}"
    );
    let verifier_as_delegate = send(at(&net, party).authorizeDelegate(ACCOUNTS[party]))
        .await
        .unwrap_err();
    assert!(
        matches!(verifier_as_delegate, CapacityErrors::KeyTaken(_)),
        "{verifier_as_delegate:?}"
    );
    for d in [d1, d2] {
        send(at(&net, party).authorizeDelegate(ACCOUNTS[d]))
            .await
            .unwrap();
    }
    close(&net, e).await;
    let (digest, hash) = digest_and_sample_hash(&net, unit, e).await;
    let sig = |i: usize| sample_signature(&net, i, hash);
    let receipt = send(at(&net, d1).attest(unit, e, digest, 2, sig(d1)))
        .await
        .unwrap();
    let attested = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<Capacity::Attested>().ok())
        .unwrap();
    assert_eq!(
        attested.inner.data.verifier, ACCOUNTS[party],
        "the party's vote"
    );
    assert!(
        net.contract()
            .hasAttested(unit, e, ACCOUNTS[party])
            .call()
            .await
            .unwrap()
    );
    // The other shard, and the party itself, cannot vote again.
    for (who, signer) in [(d2, d2), (party, party)] {
        match send(at(&net, who).attest(unit, e, digest, 2, sig(signer)))
            .await
            .unwrap_err()
        {
            CapacityErrors::AlreadyAttested(a) => assert_eq!(a.verifier, ACCOUNTS[party]),
            other => panic!("expected AlreadyAttested, got {other:?}"),
        }
    }
    // A delegate signs its own sample: the party's signature sent by a delegate is refused.
    let unit2 = net.register(1, &[(unit_id(1, 10), UnitKind::Cpu)]).await[0];
    let e2 = net.next_epoch().await;
    let (_, s2) = seeded(&net).await;
    send(at(&net, provider).submitProofs(e2, s2, packed(unit2, &[7])))
        .await
        .unwrap();
    close(&net, e2).await;
    let (digest2, hash2) = digest_and_sample_hash(&net, unit2, e2).await;
    let party_sig = sample_signature(&net, party, hash2);
    let wrong = send(at(&net, d2).attest(unit2, e2, digest2, 1, party_sig))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, CapacityErrors::BadSampleSignature(_)),
        "{wrong:?}"
    );
    // Revoked, a delegate no longer votes.
    send(at(&net, party).revokeDelegate(ACCOUNTS[d2]))
        .await
        .unwrap();
    let d2_sig = sample_signature(&net, d2, hash2);
    let gone = send(at(&net, d2).attest(unit2, e2, digest2, 1, d2_sig))
        .await
        .unwrap_err();
    assert!(matches!(gone, CapacityErrors::NotVerifier(_)), "{gone:?}");
}
