//! Sample signatures: each verifier draws its own sample from its deterministic signature over the
//! contract's sample hash, and nobody attests with another's signature.

use alloy::signers::SignerSync;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_proofs::{Target, UnitKind};

use super::{at, close, digest_and_sample_hash, seeded, send, submit};
use crate::chain::{ACCOUNTS, Net, spec, unit_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_signed_per_verifier_and_the_sample_hash_is_the_contracts() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 6), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    seeded(&net).await;
    submit(&net, unit, &(0..40).collect::<Vec<_>>()).await;
    close(&net, e).await;
    let (digest, onchain) = digest_and_sample_hash(&net, unit, e).await;
    let hash = capminer_chain::verifier::sample_hash(31337, net.address(), unit, e, digest);
    assert_eq!(hash, onchain, "the client's sample hash is the contract's");
    let sign = |i: usize| net.key(i).sign_hash_sync(&hash).unwrap().as_bytes();
    let (mine, theirs) = (sign(2), sign(4));
    assert_eq!(mine, sign(2), "deterministic: the verifier cannot grind it");
    let draw = |sig: &[u8; 65]| {
        capminer_chain::verifier::sample(
            &(0..40).collect::<Vec<u64>>(),
            0.1,
            &capminer_chain::verifier::sample_seed(sig),
            unit,
            e,
        )
    };
    assert_eq!(draw(&mine).len(), 4);
    assert_ne!(draw(&mine), draw(&theirs), "each verifier its own sample");
    // Someone else's signature (or none) does not make an attestation.
    let stolen = send(at(&net, 2).attest(unit, e, digest, 4, theirs.to_vec().into()))
        .await
        .unwrap_err();
    match stolen {
        CapacityErrors::BadSampleSignature(b) => {
            assert_eq!((b.signer, b.verifier), (ACCOUNTS[4], ACCOUNTS[2]))
        }
        other => panic!("expected BadSampleSignature, got {other:?}"),
    }
    let receipt = send(at(&net, 2).attest(unit, e, digest, 4, mine.to_vec().into()))
        .await
        .unwrap();
    let attested = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<Capacity::Attested>().ok())
        .unwrap();
    assert_eq!(
        attested.inner.data.sampleSignature.as_ref(),
        mine.as_slice()
    );
    assert_eq!(attested.inner.data.checked, 4);
}
