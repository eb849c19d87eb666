//! The trust core under attack, on a real anvil with the real contract: each test performs an
//! attack of the audit (docs/THREATS.md) and shows it fail, with honest providers still
//! attested and paid beside it.

use std::marker::PhantomData;
use std::sync::Arc;

use alloy::contract::CallBuilder;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolEvent};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Hash, Proof, Target, UnitKind};

use super::{ACCOUNTS, GRACE, Net, spec, unit_id};

const REWARD: u64 = 1_000_000_000_000_000_000;
const COLLATERAL: u64 = REWARD / 10;

/// The contract as seen by account `i`: a new provider for every transaction (a provider's
/// nonce cache counts a call that reverted in estimation, and the next one would wait forever).
fn at(net: &Net, i: usize) -> Capacity::CapacityInstance<DynProvider> {
    Capacity::new(
        net.address(),
        devnet::signing_provider(&net.url, net.key(i)).unwrap(),
    )
}

/// Sends a call; a revert comes back as the contract's own error.
async fn send<C: SolCall>(
    call: CallBuilder<&DynProvider, PhantomData<C>>,
) -> Result<TransactionReceipt, CapacityErrors> {
    match call.send().await {
        Ok(pending) => {
            let hash = *pending.tx_hash();
            let receipt = pending
                .with_timeout(Some(std::time::Duration::from_secs(20)))
                .get_receipt()
                .await
                .unwrap_or_else(|e| panic!("transaction {hash} not mined: {e}"));
            assert!(receipt.status(), "mined but reverted: {receipt:?}");
            Ok(receipt)
        }
        Err(e) => Err(e
            .as_decoded_interface_error::<CapacityErrors>()
            .unwrap_or_else(|| panic!("not one of the contract's errors: {e}"))),
    }
}

fn packed(unit: u32, nonces: &[u64]) -> Bytes {
    let mut out = unit.to_be_bytes().to_vec();
    out.extend_from_slice(&(nonces.len() as u16).to_be_bytes());
    for n in nonces {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.into()
}

async fn seed(net: &Net, e: u64) -> B256 {
    net.contract().epochInfo(e).call().await.unwrap().seed
}

/// Fixes the current epoch's seed; returns (epoch, seed).
async fn seeded(net: &Net) -> (u64, B256) {
    let e = net.epoch().await;
    send(at(net, 3).advanceEpoch()).await.unwrap();
    (e, seed(net, e).await)
}

/// Submits `nonces` for `unit` (account 1's) in the current epoch; returns the accepted count.
async fn submit(net: &Net, unit: u32, nonces: &[u64]) -> usize {
    let e = net.epoch().await;
    let s = seed(net, e).await;
    let receipt = send(at(net, 1).submitProofs(e, s, packed(unit, nonces)))
        .await
        .unwrap();
    accepted_in(&receipt)
}

fn accepted_in(receipt: &TransactionReceipt) -> usize {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
        .map(|l| l.inner.data.nonces.len() / 8)
        .sum()
}

/// The evidence of a report: the accepted nonces of each `ProofsAccepted` log of the
/// unit-epoch, in log order.
async fn groups(net: &Net, unit: u32, e: u64) -> Vec<Bytes> {
    let filter = Filter::new()
        .address(net.address())
        .event_signature(Capacity::ProofsAccepted::SIGNATURE_HASH)
        .topic1(U256::from(e))
        .from_block(0);
    let mut logs = net.provider.get_logs(&filter).await.unwrap();
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    logs.iter()
        .filter_map(|l| l.log_decode::<Capacity::ProofsAccepted>().ok())
        .filter(|l| l.inner.data.unit == unit)
        .map(|l| l.inner.data.nonces.clone())
        .collect()
}

async fn report(
    net: &Net,
    verifier: usize,
    unit: u32,
    e: u64,
    nonce: u64,
    groups: Vec<Bytes>,
) -> Result<TransactionReceipt, CapacityErrors> {
    send(at(net, verifier).reportInvalid(unit, e, nonce, 1, groups)).await
}

/// Moves past the end of epoch `e`'s submission window.
async fn close(net: &Net, e: u64) {
    let end: U256 = net.contract().epochStart(e + 1).call().await.unwrap();
    net.advance_to(end.to::<u64>() + GRACE).await;
}

/// Moves past epoch `e`'s settlement.
async fn settle(net: &Net, e: u64) {
    let t: U256 = net.contract().settleTime(e).call().await.unwrap();
    net.advance_to(t.to()).await;
}

async fn collateral(net: &Net, unit: u32) -> u128 {
    net.contract()
        .unitInfo(unit)
        .call()
        .await
        .unwrap()
        .collateral
}

/// A closed unit-epoch's digest and the hash a verifier signs to draw its sample.
async fn digest_and_sample_hash(net: &Net, unit: u32, e: u64) -> (B256, B256) {
    let digest = net
        .contract()
        .unitEpoch(unit, e)
        .call()
        .await
        .unwrap()
        .digest;
    let hash = net
        .contract()
        .sampleHash(unit, e, digest)
        .call()
        .await
        .unwrap();
    (digest, hash)
}

/// Account `i`'s sample signature over `hash`.
fn sample_signature(net: &Net, i: usize, hash: B256) -> Bytes {
    net.key(i)
        .sign_hash_sync(&hash)
        .unwrap()
        .as_bytes()
        .to_vec()
        .into()
}

async fn fund(net: &Net, wei: u64) {
    devnet::fund_pool(&net.url, net.key(0), net.address(), U256::from(wei))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_cannot_swap_the_seed_under_a_provider() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 100), &[]).await;
    let unit = unit_id(1, 0xa1);
    let index = net.register(1, &[(unit, UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut config = net.chain_config();
    config.confirmations = 3;
    let mut client = net
        .client(1, config, store.clone(), &[(unit, UnitKind::Cpu)])
        .await;

    // The client fixes the seed, and hands it to the miner only once its block is final.
    assert!(client.tick().await.unwrap().new_epoch.is_none());
    let s1 = seed(&net, e).await;
    assert_ne!(s1, B256::ZERO, "the client fixed the seed");
    assert!(
        client.tick().await.unwrap().new_epoch.is_none(),
        "not final yet: no mining under it"
    );
    net.advance(0).await;
    net.advance(0).await;
    let delivered = client.tick().await.unwrap().new_epoch.expect("final now");
    assert_eq!(delivered.seed.0, s1.0);

    // Proofs found under s1 go in.
    let proofs: Vec<Proof> = (1..=4)
        .map(|nonce| Proof {
            unit,
            kind: UnitKind::Cpu,
            epoch: e,
            nonce,
            hash: Hash::default(),
        })
        .collect();
    store.append(&proofs).unwrap();
    client.tick().await.unwrap().submitted.expect("a batch");
    assert_eq!(net.count(index, e).await, 4);

    // A reorg deeper than the confirmations drops the seeding block (and the batch); the epoch
    // is seeded again, in another block: another seed.
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    let depth = net.provider.get_block_number().await.unwrap() - delivered_block(&net, e).await + 1;
    net.provider.anvil_rollback(Some(depth)).await.unwrap();
    net.provider.anvil_drop_all_transactions().await.unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    assert_eq!(seed(&net, e).await, B256::ZERO, "the seeding block is gone");
    net.advance(0).await;
    let (_, s2) = seeded(&net).await;
    assert_ne!(s2, s1);

    // The attack of the audit: nonces found under s1 submitted again. The contract refuses
    // them under s2 (before, they were accepted and every verifier reported them).
    let err = send(at(&net, 1).submitProofs(e, s1, packed(index, &[1, 2, 3, 4])))
        .await
        .unwrap_err();
    match err {
        CapacityErrors::SeedMismatch(m) => {
            assert_eq!((m.epoch, m.expected, m.given), (e, s2, s1));
        }
        other => panic!("expected SeedMismatch, got {other:?}"),
    }
    assert_eq!(net.count(index, e).await, 0);

    // The client sees the new seed: the old proofs are skipped (never resubmitted, so never
    // reported), the old seed is retired in the store, and the epoch is delivered again under
    // s2 for the miner to re-key.
    client.tick().await.unwrap();
    assert_eq!(
        store
            .proofs(|p| p.proof.epoch == e && p.state == ProofState::Skipped)
            .unwrap()
            .len(),
        4
    );
    // The miner, still under s1 until it re-keys, finds one more: the store refuses it, so it
    // can never go out under s2 (where every verifier would report it).
    let late = Proof {
        nonce: 5,
        ..proofs[0]
    };
    assert!(matches!(
        store.append_mined(&delivered, &[late]),
        Err(capminer_proofs::StoreError::StaleEpoch(n)) if n == e
    ));
    let mut again = None;
    for _ in 0..6 {
        again = again.or(client.tick().await.unwrap().new_epoch);
        net.advance(0).await;
    }
    let again = again.expect("the epoch is delivered again");
    assert_eq!((again.number, again.seed.0), (e, s2.0));
    assert_eq!(
        net.count(index, e).await,
        0,
        "nothing mined under s1 was accepted"
    );
    assert_eq!(collateral(&net, index).await, COLLATERAL as u128);

    // Re-keyed under s2, the miner's proofs are stored and delivered again.
    assert!(matches!(
        store.append_mined(&delivered, &[late]),
        Err(capminer_proofs::StoreError::StaleEpoch(_))
    ));
    store.append_mined(&again, &[late]).unwrap();
    for _ in 0..3 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    assert_eq!(
        net.count(index, e).await,
        1,
        "mined under s2, accepted under s2"
    );
}

/// The block that fixed epoch `e`'s seed.
async fn delivered_block(net: &Net, e: u64) -> u64 {
    net.contract().epochInfo(e).call().await.unwrap().seedBlock
}

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
    send(at(&net, provider).authorizeOperator(ACCOUNTS[operator]))
        .await
        .unwrap();
    match send(at(&net, 3).authorizeOperator(ACCOUNTS[operator]))
        .await
        .unwrap_err()
    {
        CapacityErrors::KeyTaken(t) => assert_eq!(t.holder, ACCOUNTS[provider]),
        other => panic!("expected KeyTaken, got {other:?}"),
    }
    let self_op = send(at(&net, provider).authorizeOperator(ACCOUNTS[provider]))
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
