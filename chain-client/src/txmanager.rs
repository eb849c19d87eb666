//! One transaction manager per signer: nonces, EIP-1559 fees under a cap, and same-nonce
//! replacement with a fee bump when a transaction is stuck.
//!
//! Transactions are signed locally and sent raw, with every field set here: the nonce comes
//! from a cache that is re-synchronised from the node (`pending` count) at start and after any
//! nonce error; `maxFeePerGas = min(2 × baseFee + tip, cap)`; a transaction not mined after
//! `stuck_blocks` blocks is re-signed with the same nonce and both fees raised by
//! `bump_percent` (at least what the current base fee needs), until the cap.

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, TxHash};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use capminer_config::GasConfig;

use crate::metrics::ChainMetrics;
use crate::{ChainError, Result};

const GWEI: u128 = 1_000_000_000;

/// What a transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// `submitProofs` for an epoch.
    Submit(u64),
    /// `advanceEpoch` for an epoch.
    Advance(u64),
    /// `claim`.
    Claim,
    /// `attest` or `reportInvalid` for an epoch.
    Attest(u64),
}

impl TxKind {
    fn label(self) -> &'static str {
        match self {
            TxKind::Submit(_) => "submit",
            TxKind::Advance(_) => "advance",
            TxKind::Claim => "claim",
            TxKind::Attest(_) => "attest",
        }
    }
}

/// The head of the chain as the manager needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Block number.
    pub number: u64,
    /// Base fee per gas of the head block (wei).
    pub base_fee: u128,
}

/// The latest block as a [`Head`], and its timestamp.
pub async fn latest_head(provider: &DynProvider, endpoint: &str) -> Result<(Head, u64)> {
    let block = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| ChainError::from_rpc(endpoint, "eth_getBlockByNumber", e))?
        .ok_or_else(|| ChainError::Rejected {
            call: "eth_getBlockByNumber",
            message: "no latest block".into(),
        })?;
    let head = Head {
        number: block.header.number,
        base_fee: u128::from(block.header.base_fee_per_gas.unwrap_or(1_000_000_000)),
    };
    Ok((head, block.header.timestamp))
}

/// A transaction sent and not yet settled.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// What it is for.
    pub kind: TxKind,
    /// Account nonce.
    pub nonce: u64,
    /// Every hash sent with this nonce (replacements append), newest last.
    pub hashes: Vec<TxHash>,
    request: TransactionRequest,
    max_fee: u128,
    tip: u128,
    sent_at: u64,
}

impl InFlight {
    /// The newest hash.
    pub fn hash(&self) -> TxHash {
        *self
            .hashes
            .last()
            .expect("an in-flight transaction has a hash")
    }
}

/// How an in-flight transaction ended.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Mined, with its receipt (which may show a revert).
    Mined(InFlight, Box<TransactionReceipt>),
    /// Its nonce was used by a transaction we do not know (it was dropped or replaced
    /// elsewhere): whatever it carried must be sent again.
    Dropped(InFlight),
}

/// Sends and shepherds the transactions of one signer.
#[derive(Debug)]
pub struct TxManager {
    provider: DynProvider,
    wallet: EthereumWallet,
    from: Address,
    chain_id: u64,
    endpoint: String,
    gas: GasConfig,
    next_nonce: Option<u64>,
    inflight: Vec<InFlight>,
    /// The hash of every proof transaction signed, replacements included, by epoch: recorded
    /// before it is sent, so one whose send failed in transit (and got in all the same) is
    /// still known as ours.
    signed: std::collections::HashMap<TxHash, u64>,
    metrics: ChainMetrics,
}

impl TxManager {
    /// A manager for `wallet`'s default signer `from`.
    pub fn new(
        provider: DynProvider,
        wallet: EthereumWallet,
        from: Address,
        chain_id: u64,
        endpoint: String,
        gas: GasConfig,
        metrics: ChainMetrics,
    ) -> Self {
        Self {
            provider,
            wallet,
            from,
            chain_id,
            endpoint,
            gas,
            next_nonce: None,
            inflight: Vec::new(),
            signed: std::collections::HashMap::new(),
            metrics,
        }
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.from
    }

    /// Transactions sent and not settled.
    pub fn inflight(&self) -> &[InFlight] {
        &self.inflight
    }

    /// Whether this manager signed `hash` as a proof transaction (`submitProofs`) of an epoch
    /// not yet forgotten (see [`TxManager::forget_signed_before`]).
    pub fn signed_proofs(&self, hash: &TxHash) -> bool {
        self.signed.contains_key(hash)
    }

    /// Forgets the proof transactions signed for epochs before `epoch` (their window closed).
    pub fn forget_signed_before(&mut self, epoch: u64) {
        self.signed.retain(|_, e| *e >= epoch);
    }

    fn rpc(
        &self,
        call: &'static str,
    ) -> impl Fn(alloy::transports::RpcError<alloy::transports::TransportErrorKind>) -> ChainError + '_
    {
        move |e| ChainError::from_rpc(&self.endpoint, call, e)
    }

    fn cap(&self) -> u128 {
        u128::from(self.gas.max_fee_gwei) * GWEI
    }

    /// Estimates, signs and sends a call of `data` to `to`. Reverts are decoded and nothing is
    /// sent. A nonce the node refuses resynchronises the cache and the send is tried once more.
    pub async fn send(
        &mut self,
        kind: TxKind,
        to: Address,
        data: Bytes,
        head: Head,
    ) -> Result<TxHash> {
        match self.try_send(kind, to, data.clone(), head).await {
            Err(_) if self.next_nonce.is_none() => self.try_send(kind, to, data, head).await,
            other => other,
        }
        .inspect(|_| {
            self.metrics
                .transactions
                .with_label_values(&[kind.label(), "sent"])
                .inc();
        })
        .inspect_err(|_| {
            self.metrics
                .transactions
                .with_label_values(&[kind.label(), "failed"])
                .inc();
        })
    }

    async fn try_send(
        &mut self,
        kind: TxKind,
        to: Address,
        data: Bytes,
        head: Head,
    ) -> Result<TxHash> {
        let nonce = match self.next_nonce {
            Some(n) => n,
            None => self
                .provider
                .get_transaction_count(self.from)
                .pending()
                .await
                .map_err(self.rpc("eth_getTransactionCount"))?,
        };
        let base = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(data)
            .with_chain_id(self.chain_id);
        let estimate = self
            .provider
            .estimate_gas(base.clone())
            .await
            .map_err(self.rpc("eth_estimateGas"))?;
        let gas_limit = estimate + estimate * self.gas.limit_margin_percent / 100;
        let tip = (u128::from(self.gas.priority_fee_gwei) * GWEI).min(self.cap());
        let max_fee = (2 * head.base_fee + tip).min(self.cap());
        let request = base.with_gas_limit(gas_limit).with_nonce(nonce);
        let mut flight = InFlight {
            kind,
            nonce,
            hashes: Vec::new(),
            request,
            max_fee,
            tip,
            sent_at: head.number,
        };
        let hash = self.sign_and_send(&flight).await?;
        flight.hashes.push(hash);
        self.next_nonce = Some(nonce + 1);
        tracing::info!(?kind, nonce, %hash, gas_limit, max_fee_gwei = max_fee as f64 / GWEI as f64, "transaction sent");
        self.inflight.push(flight);
        Ok(hash)
    }

    async fn sign_and_send(&mut self, flight: &InFlight) -> Result<TxHash> {
        let request = flight
            .request
            .clone()
            .with_max_fee_per_gas(flight.max_fee)
            .with_max_priority_fee_per_gas(flight.tip);
        let envelope: TxEnvelope =
            request
                .build(&self.wallet)
                .await
                .map_err(|e| ChainError::Rejected {
                    call: "sign transaction",
                    message: e.to_string(),
                })?;
        let hash = *envelope.tx_hash();
        if let TxKind::Submit(epoch) = flight.kind {
            self.signed.insert(hash, epoch);
        }
        let sent = self
            .provider
            .send_raw_transaction(&envelope.encoded_2718())
            .await;
        match sent {
            Ok(_) => Ok(hash),
            Err(e) => {
                let error = ChainError::from_rpc(&self.endpoint, "eth_sendRawTransaction", e);
                if let ChainError::Rejected { message, .. } = &error {
                    let m = message.to_ascii_lowercase();
                    if m.contains("already known") {
                        return Ok(hash); // the node has exactly this transaction already
                    }
                    if m.contains("nonce") {
                        self.next_nonce = None; // resync from the node next time
                    }
                }
                Err(error)
            }
        }
    }

    /// Settles what was mined or dropped and replaces what is stuck. Returns the settled
    /// transactions, and the replacements sent as (kind, old hash, new hash).
    pub async fn poll(
        &mut self,
        head: Head,
    ) -> Result<(Vec<Settled>, Vec<(TxKind, TxHash, TxHash)>)> {
        let mut settled = Vec::new();
        let mut replaced = Vec::new();
        if self.inflight.is_empty() {
            // Nothing of ours is pending: take the nonce from the node at the next send, so a
            // reorg that un-mined a transaction, or another sender of this key, cannot leave
            // the cache ahead of the chain.
            self.next_nonce = None;
            return Ok((settled, replaced));
        }
        let mined_nonce = self
            .provider
            .get_transaction_count(self.from)
            .latest()
            .await
            .map_err(self.rpc("eth_getTransactionCount"))?;
        let known_nonce = self
            .provider
            .get_transaction_count(self.from)
            .pending()
            .await
            .map_err(self.rpc("eth_getTransactionCount"))?;
        let mut keep = Vec::new();
        for mut flight in std::mem::take(&mut self.inflight) {
            let mut receipt = None;
            for hash in flight.hashes.iter().rev() {
                match self.provider.get_transaction_receipt(*hash).await {
                    Ok(Some(r)) => {
                        receipt = Some(r);
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.inflight.push(flight.clone());
                        self.inflight.extend(keep);
                        return Err(ChainError::from_rpc(
                            &self.endpoint,
                            "eth_getTransactionReceipt",
                            e,
                        ));
                    }
                }
            }
            if let Some(r) = receipt {
                if !r.status() {
                    self.metrics
                        .transactions
                        .with_label_values(&[flight.kind.label(), "failed"])
                        .inc();
                }
                settled.push(Settled::Mined(flight, Box::new(r)));
                continue;
            }
            if mined_nonce > flight.nonce || known_nonce <= flight.nonce {
                // Its nonce was used by another transaction, or the node no longer knows it
                // (dropped from the pool, or un-mined by a reorg): what it carried goes again.
                self.metrics
                    .transactions
                    .with_label_values(&[flight.kind.label(), "failed"])
                    .inc();
                tracing::warn!(kind = ?flight.kind, nonce = flight.nonce, "transaction dropped");
                self.next_nonce = None;
                settled.push(Settled::Dropped(flight));
                continue;
            }
            if head.number >= flight.sent_at + self.gas.stuck_blocks {
                let old = flight.hash();
                if let Some(new) = self.bump(&mut flight, head).await? {
                    replaced.push((flight.kind, old, new));
                }
            }
            keep.push(flight);
        }
        self.inflight = keep;
        Ok((settled, replaced))
    }

    /// Re-signs a stuck transaction with the same nonce and higher fees; `None` at the cap.
    async fn bump(&mut self, flight: &mut InFlight, head: Head) -> Result<Option<TxHash>> {
        let cap = self.cap();
        let raise = |v: u128| v + (v * u128::from(self.gas.bump_percent)).div_ceil(100);
        let tip = raise(flight.tip).min(cap);
        let max_fee = raise(flight.max_fee).max(2 * head.base_fee + tip).min(cap);
        if max_fee <= flight.max_fee && tip <= flight.tip {
            tracing::warn!(nonce = flight.nonce, hash = %flight.hash(), "transaction stuck at the fee cap (chain.gas.max_fee_gwei); waiting");
            flight.sent_at = head.number;
            return Ok(None);
        }
        let previous = (flight.max_fee, flight.tip);
        flight.max_fee = max_fee;
        flight.tip = tip;
        match self.sign_and_send(flight).await {
            Ok(hash) => {
                flight.hashes.push(hash);
                flight.sent_at = head.number;
                self.metrics
                    .transactions
                    .with_label_values(&[flight.kind.label(), "replaced"])
                    .inc();
                tracing::info!(kind = ?flight.kind, nonce = flight.nonce, %hash, max_fee_gwei = max_fee as f64 / GWEI as f64, "stuck transaction replaced with higher fees");
                Ok(Some(hash))
            }
            Err(e) => {
                (flight.max_fee, flight.tip) = previous;
                Err(e)
            }
        }
    }
}
