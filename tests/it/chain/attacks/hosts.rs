//! Host keys (audit round 3): a stolen operator key reaches only the units of its own host, and
//! nobody binds a key to a provider without the key's consent.

use alloy::primitives::{Address, U256};
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::{Target, UnitKind};

use super::{
    REWARD, accepted_in, at, close, collateral, fund, groups, packed, report, seeded, send, settle,
};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

const PROVIDER: usize = 1;
const VERIFIER: usize = 2;

/// A stolen host key (attack: "a stolen host key hits every unit of its provider"). Before, an
/// operator key submitted for every unit of its provider: with host 0's key the attacker sent
/// nonce 2^64-1 for the units of host 1, every later honest nonce of those unit-epochs was
/// skipped (also after the revocation), and honest verifiers' reports of the junk slashed host
/// 1's units. Now a key submits only for the units assigned to its host: the junk for host 1
/// reverts the whole batch, host 1's honest proofs are accepted, attested and paid; what the
/// key still does to its own host's units (junk in the open epoch, reported and slashed once)
/// stops at the revocation, and a new key for the host goes on (docs/THREATS.md, attack 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_host_key_reaches_only_the_units_of_its_own_host() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    fund(&net, 10 * REWARD).await;
    let units = net
        .register(
            PROVIDER,
            &[
                (unit_id(PROVIDER, 1), UnitKind::Cpu),
                (unit_id(PROVIDER, 2), UnitKind::Cpu),
            ],
        )
        .await;
    let (own, other) = (units[0], units[1]);
    send(at(&net, PROVIDER).assignUnits(vec![other], 1))
        .await
        .unwrap();
    let (stolen, honest, replacement) = (4, 5, 6);
    net.bind_operator(PROVIDER, stolen, 0).await;
    net.bind_operator(PROVIDER, honest, 1).await;
    let e = net.next_epoch().await;
    let (_, s) = seeded(&net).await;

    // The thief's junk for the other host's unit reverts, alone or mixed with its own host's.
    for batch in [
        packed(other, &[u64::MAX]),
        [
            packed(own, &[1]).to_vec(),
            packed(other, &[u64::MAX]).to_vec(),
        ]
        .concat()
        .into(),
    ] {
        match send(at(&net, stolen).submitProofs(e, s, batch))
            .await
            .unwrap_err()
        {
            CapacityErrors::NotUnitOwner(n) => {
                assert_eq!((n.unit, n.provider), (other, ACCOUNTS[PROVIDER]));
            }
            other => panic!("expected NotUnitOwner, got {other:?}"),
        }
    }
    // On its own host it still submits junk, until the provider revokes it.
    let junk = send(at(&net, stolen).submitProofs(e, s, packed(own, &[u64::MAX])))
        .await
        .unwrap();
    assert_eq!(accepted_in(&junk), 1);
    send(at(&net, PROVIDER).revokeOperator(ACCOUNTS[stolen]))
        .await
        .unwrap();
    let revoked = send(at(&net, stolen).submitProofs(e, s, packed(own, &[u64::MAX])))
        .await
        .unwrap_err();
    assert!(
        matches!(revoked, CapacityErrors::NotUnitOwner(_)),
        "{revoked:?}"
    );
    // The other host's key, and the provider itself, deliver host 1's proofs in full.
    let receipt = send(at(&net, honest).submitProofs(e, s, packed(other, &[1, 2, 3])))
        .await
        .unwrap();
    assert_eq!(accepted_in(&receipt), 3, "host 1's unit-epoch is untouched");
    // A new key for host 0 (the revoked one cannot come back without the provider's offer).
    net.bind_operator(PROVIDER, replacement, 0).await;
    let refused = send(at(&net, stolen).acceptOperator(ACCOUNTS[PROVIDER]))
        .await
        .unwrap_err();
    assert!(matches!(refused, CapacityErrors::NoOffer(_)), "{refused:?}");

    // Verification: host 1's unit is attested; the junk of host 0's is reported and slashed
    // once, and host 1's collateral is whole.
    close(&net, e).await;
    let (digest, hash) = super::digest_and_sample_hash(&net, other, e).await;
    send(at(&net, VERIFIER).attest(
        other,
        e,
        digest,
        3,
        super::sample_signature(&net, VERIFIER, hash),
    ))
    .await
    .unwrap();
    let evidence = groups(&net, own, e).await;
    report(&net, VERIFIER, own, e, u64::MAX, evidence)
        .await
        .unwrap();
    let full = 10u128.pow(17);
    assert_eq!(collateral(&net, other).await, full, "no slash on host 1");
    assert_eq!(collateral(&net, own).await, full - full / 10, "one slash");
    settle(&net, e).await;
    let claimable = async |unit: u32| {
        net.contract()
            .claimable(unit, e)
            .call()
            .await
            .unwrap()
            .amount
    };
    assert_eq!(
        claimable(other).await,
        U256::from(REWARD),
        "host 1's unit-epoch is paid"
    );
    assert_eq!(claimable(own).await, U256::ZERO);
}

/// Binding needs the key's consent (attack: "a stranger can capture a host key"). Before,
/// anyone bound an unbound key with `authorizeOperator`, front-running the provider (whose
/// call then reverted `KeyTaken`), and the captured key could not free itself (`NotYours`).
/// Now `authorizeOperator` only offers; the key accepts the offer of the provider it names,
/// so a stranger's offer binds nothing; and a key (operator or delegate) releases itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_binds_a_key_without_its_consent_and_a_key_frees_itself() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let (stranger, key) = (3, 4);
    let holder = async |k: usize| -> Address {
        net.contract()
            .operatorProvider(ACCOUNTS[k])
            .call()
            .await
            .unwrap()
    };

    // The stranger front-runs the provider's offer: it binds nothing.
    send(at(&net, stranger).authorizeOperator(ACCOUNTS[key], 7))
        .await
        .unwrap();
    assert_eq!(
        holder(key).await,
        Address::ZERO,
        "an offer is not a binding"
    );
    send(at(&net, PROVIDER).authorizeOperator(ACCOUNTS[key], 2))
        .await
        .unwrap();
    send(at(&net, key).acceptOperator(ACCOUNTS[PROVIDER]))
        .await
        .unwrap();
    assert_eq!(holder(key).await, ACCOUNTS[PROVIDER]);
    assert_eq!(
        net.contract()
            .operatorHost(ACCOUNTS[key])
            .call()
            .await
            .unwrap(),
        2
    );
    match send(at(&net, key).acceptOperator(ACCOUNTS[stranger]))
        .await
        .unwrap_err()
    {
        CapacityErrors::KeyTaken(t) => assert_eq!(t.holder, ACCOUNTS[PROVIDER]),
        other => panic!("expected KeyTaken, got {other:?}"),
    }
    // An offer is used once; none from a provider that made none.
    for p in [PROVIDER, 5] {
        let none = send(at(&net, key).acceptOperator(ACCOUNTS[p]))
            .await
            .unwrap_err();
        assert!(matches!(none, CapacityErrors::NoOffer(_)), "{none:?}");
    }

    // The key frees itself; then it may take another offer (here the stranger's, still open).
    send(at(&net, key).releaseOperator()).await.unwrap();
    assert_eq!(holder(key).await, Address::ZERO);
    let again = send(at(&net, key).releaseOperator()).await.unwrap_err();
    assert!(matches!(again, CapacityErrors::NotYours(_)), "{again:?}");
    send(at(&net, key).acceptOperator(ACCOUNTS[stranger]))
        .await
        .unwrap();
    assert_eq!(holder(key).await, ACCOUNTS[stranger]);

    // A delegate key bound by a verifier party frees itself too (before: `NotYours`).
    let delegate = 6;
    send(at(&net, VERIFIER).authorizeDelegate(ACCOUNTS[delegate]))
        .await
        .unwrap();
    send(at(&net, delegate).releaseDelegate()).await.unwrap();
    assert_eq!(
        net.contract()
            .delegateParty(ACCOUNTS[delegate])
            .call()
            .await
            .unwrap(),
        Address::ZERO
    );
}
