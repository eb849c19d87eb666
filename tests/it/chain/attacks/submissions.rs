//! Unit ids and proof batches: ids cannot be squatted or registered twice, and bad submissions
//! (unseeded, malformed, closed epoch) fail with the contract's typed errors.

use alloy::primitives::{B256, U256};
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::{Target, UnitKind};

use super::{COLLATERAL, at, packed, seeded, send, submit};
use crate::chain::{ACCOUNTS, GRACE, Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_cannot_be_squatted_and_submissions_fail_with_typed_errors() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let value = U256::from(COLLATERAL);
    let theirs = unit_id(1, 0x77);
    let squat = send(
        at(&net, 3)
            .registerUnits(vec![theirs.0.into()], vec![0])
            .value(value),
    )
    .await
    .unwrap_err();
    match squat {
        CapacityErrors::IdNotBound(b) => assert_eq!(b.provider, ACCOUNTS[3]),
        other => panic!("expected IdNotBound, got {other:?}"),
    }
    let unit = net.register(1, &[(theirs, UnitKind::Cpu)]).await[0];
    let dup = send(
        at(&net, 1)
            .registerUnits(vec![theirs.0.into()], vec![0])
            .value(value),
    )
    .await
    .unwrap_err();
    assert!(matches!(dup, CapacityErrors::DuplicateUnit(_)), "{dup:?}");

    let e = net.next_epoch().await;
    let not_seeded = send(at(&net, 1).submitProofs(e, B256::ZERO, packed(unit, &[1])))
        .await
        .unwrap_err();
    assert!(
        matches!(not_seeded, CapacityErrors::EpochNotSeeded(_)),
        "{not_seeded:?}"
    );
    let (_, s) = seeded(&net).await;
    let truncated = packed(unit, &[1, 2]).slice(..10);
    let malformed = send(at(&net, 1).submitProofs(e, s, truncated))
        .await
        .unwrap_err();
    assert!(
        matches!(malformed, CapacityErrors::MalformedBatch(_)),
        "{malformed:?}"
    );
    assert_eq!(submit(&net, unit, &[1]).await, 1);
    net.next_epoch().await;
    net.advance(GRACE).await;
    let closed = send(at(&net, 1).submitProofs(e, s, packed(unit, &[2])))
        .await
        .unwrap_err();
    assert!(
        matches!(closed, CapacityErrors::EpochClosed(ref c) if c.epoch == e),
        "{closed:?}"
    );
}
