//! The trust core under attack, on a real anvil with the real contract: each test performs an
//! attack of the audit (docs/THREATS.md) and shows it fail, with honest providers still
//! attested and paid beside it.
//!
//! One file per family of attacks: [`seeds`] (a reorg swapping the seed), [`reports`] (reports
//! and slashing), [`settlement`] (rewards and collateral across settlement), [`governance`]
//! (timelock, ownership, guardian, quorum), [`submissions`] (unit ids and proof batches),
//! [`samples`] (sample signatures), [`delegation`] (operator and delegate keys); from the third
//! audit round: [`hosts`] (a stolen host key, binding without consent), [`quorum`] (settlement
//! by the quorum in force), [`evidence`] (reports that always fit), [`small`] (signature
//! encodings, the guardian while paused, slash rounding). The helpers that drive the contract by
//! hand are here.

mod delegation;
mod evidence;
mod governance;
mod hosts;
mod quorum;
mod reports;
mod samples;
mod seeds;
mod settlement;
mod small;
mod submissions;

use std::marker::PhantomData;

use alloy::contract::CallBuilder;
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::SignerSync;
use alloy::sol_types::{SolCall, SolEvent};
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;

use super::{GRACE, Net};

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
    let mut out = Vec::new();
    capminer_chain::groups::encode_group(unit, nonces, &mut out);
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
        .map(|l| {
            capminer_chain::groups::decode_run(&l.inner.data.group)
                .unwrap()
                .len()
        })
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
        .map(|l| l.inner.data.group.clone())
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
        .to::<u128>()
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
