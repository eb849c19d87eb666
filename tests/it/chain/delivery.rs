//! Delivery under trouble, on a real anvil: resubmission, the maximum, foreign units, a reorg
//! that drops an included batch, a stuck transaction, and the RPC endpoint gone for a while.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Bytes;
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::sol_types::SolCall;
use capminer_chain::ChainError;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::txmanager::{Head, TxKind};
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Hash, Proof, Target, UnitId, UnitKind};

use super::{Net, spec};

const UNIT: UnitId = super::unit_id(1, 0xa1);
const OTHER: UnitId = super::unit_id(3, 0xb2);

fn store() -> (tempfile::TempDir, Arc<ProofStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    (dir, store)
}

/// Stores found proofs of [`UNIT`] (the contract does not recompute hashes; verifiers do,
/// elsewhere).
fn found(store: &ProofStore, epoch: u64, nonces: impl IntoIterator<Item = u64>) {
    found_of(store, UNIT, epoch, nonces)
}

/// Stores found proofs of `unit`.
fn found_of(store: &ProofStore, unit: UnitId, epoch: u64, nonces: impl IntoIterator<Item = u64>) {
    let proofs: Vec<Proof> = nonces
        .into_iter()
        .map(|nonce| Proof {
            unit,
            kind: UnitKind::Cpu,
            epoch,
            nonce,
            hash: Hash::default(),
        })
        .collect();
    store.append(&proofs).unwrap();
}

fn states(store: &ProofStore) -> Vec<(u64, ProofState)> {
    store
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|p| (p.proof.nonce, p.state))
        .collect()
}

fn count_state(store: &ProofStore, f: impl Fn(&ProofState) -> bool) -> usize {
    store.proofs(|p| f(&p.state)).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmission_changes_nothing_extra_proofs_are_skipped_and_foreign_units_refused() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 7), &[]).await;
    let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
    let other = net.register(3, &[(OTHER, UnitKind::Cpu)]).await[0];
    let epoch = net.next_epoch().await;
    let (_dir, store) = store();
    let mut client = net
        .client(
            1,
            net.chain_config(),
            store.clone(),
            &[(UNIT, UnitKind::Cpu)],
        )
        .await;
    assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);

    found(&store, epoch, 10..15);
    let tx = client
        .tick()
        .await
        .unwrap()
        .submitted
        .expect("a batch goes out");
    for _ in 0..4 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    assert_eq!(net.count(index, epoch).await, 5);
    assert_eq!(count_state(&store, |s| *s == ProofState::Final), 5);

    // The same batch again, byte for byte: accepted by the node, counted by nobody.
    let sent = net
        .provider
        .get_transaction_by_hash(tx)
        .await
        .unwrap()
        .unwrap();
    let again = capminer_chain::devnet::signing_provider(&net.url, net.key(1)).unwrap();
    let input = alloy::consensus::Transaction::input(&sent).clone();
    let call = Capacity::submitProofsCall::abi_decode(&input).unwrap();
    let receipt = Capacity::new(net.address(), again)
        .submitProofs(call.epoch, call.seed, call.packed)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert!(
        receipt
            .inner
            .logs()
            .iter()
            .all(|l| l.log_decode::<Capacity::ProofsAccepted>().is_err()),
        "no proof accepted twice"
    );
    assert_eq!(net.count(index, epoch).await, 5);

    // Five more, with room for two under the maximum of 7: two sent, three skipped.
    found(&store, epoch, 20..25);
    client.tick().await.unwrap();
    for _ in 0..4 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    assert_eq!(net.count(index, epoch).await, 7);
    let all = states(&store);
    assert_eq!(
        all.iter().filter(|(_, s)| *s == ProofState::Final).count(),
        7
    );
    assert_eq!(
        all.iter()
            .filter(|(n, s)| *s == ProofState::Skipped && *n >= 22)
            .count(),
        3,
        "{all:?}"
    );

    // Someone else's unit: the contract refuses the batch with a typed error.
    let head = Head {
        number: 0,
        base_fee: 1_000_000_000,
    };
    let mut packed = Vec::new();
    capminer_chain::groups::encode_group(other, &[99], &mut packed);
    let seed = net.contract().epochInfo(epoch).call().await.unwrap().seed;
    let data = Capacity::submitProofsCall {
        epoch,
        seed,
        packed: Bytes::from(packed),
    }
    .abi_encode();
    let mut txm = client_txm(&net, 1);
    let err = txm
        .send(TxKind::Submit(epoch), net.address(), data.into(), head)
        .await
        .unwrap_err();
    match err {
        ChainError::Revert {
            error: CapacityErrors::NotUnitOwner(e),
            ..
        } => {
            assert_eq!(e.unit, other);
            assert_eq!(e.provider, net.key(3).address());
        }
        other => panic!("expected NotUnitOwner, got {other:?}"),
    }
}

/// The `submitProofs` call a transaction carried.
async fn submitted_call(net: &Net, tx: alloy::primitives::TxHash) -> Capacity::submitProofsCall {
    let sent = net
        .provider
        .get_transaction_by_hash(tx)
        .await
        .unwrap()
        .expect("the transaction is known");
    Capacity::submitProofsCall::abi_decode(alloy::consensus::Transaction::input(&sent)).unwrap()
}

fn client_txm(net: &Net, account: usize) -> capminer_chain::txmanager::TxManager {
    let signer = net.key(account);
    let from = signer.address();
    capminer_chain::txmanager::TxManager::new(
        net.provider.clone(),
        alloy::network::EthereumWallet::from(signer),
        from,
        31337,
        net.url.clone(),
        capminer_config::GasConfig::default(),
        capminer_chain::metrics::ChainMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_that_drops_an_included_batch_leads_to_its_resubmission() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
    let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
    let epoch = net.next_epoch().await;
    let (_dir, store) = store();
    let mut config = net.chain_config();
    config.confirmations = 3;
    let mut client = net
        .client(1, config, store.clone(), &[(UNIT, UnitKind::Cpu)])
        .await;
    assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);
    found(&store, epoch, 100..110);
    let first = client.tick().await.unwrap().submitted.unwrap();
    // anvil mines the batch on its own clock: on a loaded machine the next tick can come before
    // the receipt exists. Tick (without mining: the rollback below must take the batch's block)
    // until the client has seen it.
    let mut included = 0;
    for _ in 0..100 {
        client.tick().await.unwrap();
        included = count_state(&store, |s| matches!(s, ProofState::Included { .. }));
        if included == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(included, 10, "the batch's receipt is seen within 5 s");
    assert_eq!(net.count(index, epoch).await, 10);
    let first_call = submitted_call(&net, first).await;

    // The block with the batch leaves the chain, and its transaction with it.
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    net.provider.anvil_rollback(Some(1)).await.unwrap();
    net.provider.anvil_drop_all_transactions().await.unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    assert_eq!(
        net.count(index, epoch).await,
        0,
        "the reorg removed the batch"
    );

    let resubmitted = ten_ticks(&net, &mut client).await;
    // The same proofs went out again, under the same epoch and seed, and got in.
    let again = resubmitted.expect("the dropped proofs were submitted again");
    assert!(
        net.provider
            .get_transaction_receipt(again)
            .await
            .unwrap()
            .is_some(),
        "{first} {again}"
    );
    let again_call = submitted_call(&net, again).await;
    assert_eq!(
        (again_call.epoch, again_call.seed, &again_call.packed),
        (first_call.epoch, first_call.seed, &first_call.packed),
        "the resubmission carries exactly the dropped batch"
    );
    assert_eq!(
        net.count(index, epoch).await,
        10,
        "every proof counted once"
    );
    assert_eq!(count_state(&store, |s| *s == ProofState::Final), 10);
}

/// Epoch-aware scheduling: a unit below the epoch's minimum is served before one that has it,
/// whatever their order, when a batch cannot carry both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_below_the_minimum_are_delivered_first() {
    const SECOND: UnitId = super::unit_id(1, 0xa3);
    let net = Net::start(&spec(Target([0xff; 32]), 3, 1000), &[]).await;
    let units = [(UNIT, UnitKind::Cpu), (SECOND, UnitKind::Cpu)];
    let index = net.register(1, &units).await;
    assert!(index[0] < index[1], "UNIT comes first by index");
    let epoch = net.next_epoch().await;
    let (_dir, store) = store();
    let mut config = net.chain_config();
    config.batch.max_proofs = 3;
    let mut client = net.client(1, config, store.clone(), &units).await;
    assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);
    found(&store, epoch, 0..3);
    client.tick().await.unwrap().submitted.unwrap();
    net.advance(0).await;
    client.tick().await.unwrap();
    assert_eq!(net.count(index[0], epoch).await, 3, "UNIT has its minimum");

    // Both have three waiting; one batch carries three: SECOND's, below its minimum.
    found(&store, epoch, 3..6);
    found_of(&store, SECOND, epoch, 0..3);
    client.tick().await.unwrap().submitted.unwrap(); // anvil mines it at once
    assert_eq!(
        (
            net.count(index[0], epoch).await,
            net.count(index[1], epoch).await
        ),
        (3, 3),
        "the unit below its minimum went first"
    );
}

/// Ten proofs delivered and final (confirmations 2; batches of ten, a smaller one waits an
/// hour), four more found that wait, so the epoch stays open while the client reads blocks past
/// the batch's as final; then a fork below the batch's block
/// (deeper than the confirmations) that grows two blocks: with `mine_again` the batch's signed
/// transaction is mined again into the new chain at the same height (as a node returning it to
/// its pool would), else it is gone from the new chain.
struct DeepReorg {
    net: Net,
    _dir: tempfile::TempDir,
    store: Arc<ProofStore>,
    client: capminer_chain::ChainService,
    registry: prometheus::Registry,
    index: u32,
    epoch: u64,
}

impl DeepReorg {
    async fn start(mine_again: bool) -> Self {
        let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
        let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
        let epoch = net.next_epoch().await;
        let (dir, store) = store();
        let mut config = net.chain_config();
        config.confirmations = 2;
        config.batch.max_proofs = 10;
        config.batch.max_wait_ms = 3_600_000;
        let registry = prometheus::Registry::new();
        let mut client = net
            .client_in(
                1,
                config,
                store.clone(),
                &[(UNIT, UnitKind::Cpu)],
                &registry,
            )
            .await;
        assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);
        found(&store, epoch, 100..110);
        let first = client.tick().await.unwrap().submitted.unwrap();
        let batch_block = net
            .provider
            .get_transaction_receipt(first)
            .await
            .unwrap()
            .unwrap()
            .block_number
            .unwrap();
        for _ in 0..3 {
            net.advance(0).await;
            client.tick().await.unwrap();
        }
        assert_eq!(count_state(&store, |s| *s == ProofState::Final), 10);
        found(&store, epoch, 110..114);
        for _ in 0..3 {
            net.advance(0).await;
            assert_eq!(client.tick().await.unwrap().submitted, None, "four wait");
        }
        let raw = net
            .provider
            .get_raw_transaction_by_hash(first)
            .await
            .unwrap()
            .unwrap();
        let reorg = Self {
            net,
            _dir: dir,
            store,
            client,
            registry,
            index,
            epoch,
        };
        assert_eq!(reorg.reorged(), Some(0.0));

        let net = &reorg.net;
        let head = net.provider.get_block_number().await.unwrap();
        net.provider.anvil_set_auto_mine(false).await.unwrap();
        net.provider
            .anvil_rollback(Some(head - batch_block + 1))
            .await
            .unwrap();
        net.provider.anvil_drop_all_transactions().await.unwrap();
        net.provider.anvil_set_auto_mine(true).await.unwrap();
        if mine_again {
            let again = net.provider.send_raw_transaction(&raw).await.unwrap();
            let receipt = again.get_receipt().await.unwrap();
            assert_eq!(
                receipt.block_number,
                Some(batch_block),
                "mined at the same height"
            );
        }
        net.provider.anvil_mine(Some(2), None).await.unwrap();
        reorg
    }

    /// The counter of final proofs that a reorg undid.
    fn reorged(&self) -> Option<f64> {
        self.registry
            .gather()
            .iter()
            .find(|f| f.name() == "capminer_chain_final_proofs_reorged_total")
            .map(|f| f.get_metric()[0].get_counter().get_value())
    }

    async fn ticks(&mut self) -> Option<alloy::primitives::TxHash> {
        ten_ticks(&self.net, &mut self.client).await
    }
}

/// Ten ticks, each followed by a block; the first batch any of them submitted.
async fn ten_ticks(
    net: &Net,
    client: &mut capminer_chain::ChainService,
) -> Option<alloy::primitives::TxHash> {
    let mut submitted = None;
    for _ in 0..10 {
        let report = client.tick().await.unwrap();
        submitted = submitted.or(report.submitted);
        net.advance(0).await;
    }
    submitted
}

/// Beyond the threat model: a reorg deeper than `chain.confirmations` replaces the block whose
/// log made proofs final. The client sees the block's hash change, counts the proofs, and
/// (their epoch still open) delivers them again, so the store's "final" is true once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_the_confirmations_reopens_and_redelivers_final_proofs() {
    let mut reorg = DeepReorg::start(false).await;
    assert_eq!(
        reorg.net.count(reorg.index, reorg.epoch).await,
        0,
        "the reorg undid the batch"
    );
    let resubmitted = reorg.ticks().await;
    assert_eq!(
        reorg.reorged(),
        Some(10.0),
        "the undone final proofs are counted"
    );
    assert!(resubmitted.is_some(), "delivered again");
    assert_eq!(
        reorg.net.count(reorg.index, reorg.epoch).await,
        10,
        "every proof counted once"
    );
    assert_eq!(count_state(&reorg.store, |s| *s == ProofState::Final), 10);
}

/// The same deep reorg, but the new chain includes the batch again at a height the client had
/// already read as final: it must read those blocks again (not trust what it cached as final),
/// find the batch there and settle the proofs without sending them twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mined_again_below_the_old_final_depth_is_found_and_not_sent_twice() {
    let mut reorg = DeepReorg::start(true).await;
    assert_eq!(
        reorg.net.count(reorg.index, reorg.epoch).await,
        10,
        "the new chain holds the batch again"
    );
    let resubmitted = reorg.ticks().await;
    assert_eq!(
        reorg.reorged(),
        Some(10.0),
        "the undone final proofs are counted"
    );
    assert_eq!(resubmitted, None, "found in the new chain, not sent again");
    assert_eq!(count_state(&reorg.store, |s| *s == ProofState::Final), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_replaced_with_higher_fees() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
    let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
    let epoch = net.next_epoch().await;
    let (_dir, store) = store();
    let mut config = net.chain_config();
    config.gas.stuck_blocks = 2;
    config.gas.max_fee_gwei = 500;
    let mut client = net
        .client(1, config, store.clone(), &[(UNIT, UnitKind::Cpu)])
        .await;
    assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    found(&store, epoch, 1..4);
    let first = client.tick().await.unwrap().submitted.unwrap();
    let first_nonce = alloy::consensus::Transaction::nonce(
        &net.provider
            .get_transaction_by_hash(first)
            .await
            .unwrap()
            .expect("the first transaction is pending"),
    );

    // Blocks come, but the base fee is far above what the transaction offers.
    let gwei = 1_000_000_000u128;
    for _ in 0..3 {
        net.provider
            .anvil_set_next_block_base_fee_per_gas(100 * gwei)
            .await
            .unwrap();
        net.provider.anvil_mine(Some(1), None).await.unwrap();
        client.tick().await.unwrap();
    }
    for _ in 0..4 {
        net.provider.anvil_mine(Some(1), None).await.unwrap();
        client.tick().await.unwrap();
    }
    assert_eq!(net.count(index, epoch).await, 3);
    assert_eq!(count_state(&store, |s| *s == ProofState::Final), 3);
    assert!(
        net.provider
            .get_transaction_receipt(first)
            .await
            .unwrap()
            .is_none(),
        "the first one never got in"
    );
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(<Capacity::ProofsAccepted as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .from_block(0);
    let logs = net.provider.get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1);
    let carrier = logs[0].transaction_hash.unwrap();
    assert_ne!(carrier, first, "a replacement carried the proofs");
    let tx = net
        .provider
        .get_transaction_by_hash(carrier)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alloy::consensus::Transaction::nonce(&tx),
        first_nonce,
        "the replacement reuses the stuck transaction's account nonce"
    );
    let fee = alloy::consensus::Transaction::max_fee_per_gas(&tx);
    assert!(
        fee >= 200 * gwei,
        "bumped to at least twice the high base fee: {fee}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_is_delivered_after_the_rpc_endpoint_comes_back() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
    let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
    let epoch = net.next_epoch().await;
    let proxy = super::Proxy::start(net.anvil.port()).await;
    let (_dir, store) = store();
    let mut config = net.chain_config();
    config.rpc_url = format!("http://127.0.0.1:{}", proxy.port);
    let mut client = net
        .client(1, config, store.clone(), &[(UNIT, UnitKind::Cpu)])
        .await;
    assert_eq!(super::deliver_epoch(&net, &mut client).await.number, epoch);
    found(&store, epoch, 0..5);
    client.tick().await.unwrap();

    proxy.up.send(true).ok();
    proxy.up.send_replace(false);
    found(&store, epoch, 5..12);
    for _ in 0..3 {
        let err = client.tick().await.unwrap_err();
        assert!(
            err.is_retryable(),
            "an unreachable node is worth retrying: {err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.up.send_replace(true);
    for _ in 0..8 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    assert_eq!(net.count(index, epoch).await, 12);
    assert_eq!(count_state(&store, |s| *s == ProofState::Final), 12);
}
