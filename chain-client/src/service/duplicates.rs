//! Duplicate hosts: another machine mining this host's unit ids, from a copied config or
//! image (the same `miner.host`, or the same `id`s in `cpu.units`). Both machines find the same
//! nonces and race to submit them; the contract takes each nonce once and only above the
//! unit's last, so each one's batches are skipped whenever the other's got in first, and the
//! work of one of them is wasted.
//!
//! Evidence, read from the `ProofsAccepted` logs delivery reads anyway: a canonical log in a
//! block after this client connected accepts a nonce of one of this client's units in a
//! transaction this client did not send, that is a transaction
//!
//! - this process did not sign (every proof transaction's hash is recorded before it is sent,
//!   fee-bump replacements included, so one whose send failed in transit is still ours);
//! - no stored proof is submitted or included in (a previous run of this host, same store);
//! - not from this signer with an account nonce below the one it had when this client
//!   connected (a previous run whose store was wiped, or that crashed between sending a batch
//!   and recording it).
//!
//! Logs up to the block this client connected at are never evidence: a previous run of this
//! host cannot be told from another machine there. Only this client's own units count: an
//! operator key serving other units of the same provider is not a duplicate.
//!
//! A unit with evidence is held idle for the rest of the process's life (`standing` hands the
//! hold to the miner), with an error naming the unit, the epoch, the foreign nonce and the
//! cause; `capminer_chain_duplicate_host_units{unit}` is 1 (0 for the other units) and
//! `capminer_chain_foreign_nonces_total{unit}` counts every foreign nonce. What the unit found
//! is still delivered: nothing stored is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, TxHash};
use alloy::providers::Provider;
use capminer_proofs::store::{ProofState, StoredProof};
use capminer_proofs::{Hash, ProofRef, UnitId};

use super::ChainService;
use crate::Result;
use crate::tracker::ChainView;

/// How every hold of a duplicated unit begins (`capminer status` and `doctor` look for it).
pub const DUPLICATE_HOST_HOLD: &str = "duplicate host";

/// Who sent a proof transaction that accepted nonces of this client's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// This host (this run or an earlier one).
    Ours,
    /// Another machine, signing as `sender`.
    Foreign { sender: Address },
}

/// What made a unit a duplicate: the first foreign nonce seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Evidence {
    epoch: u64,
    nonce: u64,
    tx: Hash,
    sender: Address,
}

/// The duplicate-host watch of one client.
#[derive(Debug)]
pub(super) struct Duplicates {
    /// The head when the client connected: logs up to it are never evidence.
    since_block: u64,
    /// The signer's account nonce (pending) when the client connected: its transactions
    /// below it were sent before this run.
    start_nonce: u64,
    /// `miner.host` of this machine, when the node said (for the message).
    host: Option<u32>,
    /// The origin of each transaction looked up, with its epoch (forgotten once closed).
    origins: HashMap<Hash, (u64, Origin)>,
    /// Foreign nonces counted, each once (forgotten once their epoch closed).
    foreign: HashSet<ProofRef>,
    /// Units held as duplicated, with their evidence.
    held: BTreeMap<UnitId, Evidence>,
}

impl Duplicates {
    /// The watch of a client that connected at block `since_block`, its signer's pending
    /// nonce then `start_nonce`.
    pub(super) fn new(since_block: u64, start_nonce: u64) -> Self {
        Self {
            since_block,
            start_nonce,
            host: None,
            origins: HashMap::new(),
            foreign: HashSet::new(),
            held: BTreeMap::new(),
        }
    }

    /// The hold of `unit`, when it is duplicated.
    pub(super) fn hold(&self, unit: &UnitId) -> Option<String> {
        let e = self.held.get(unit)?;
        Some(format!(
            "{DUPLICATE_HOST_HOLD}: nonce {} of epoch {} was accepted in transaction {} from {}, which this host never sent: {}",
            e.nonce,
            e.epoch,
            e.tx,
            e.sender,
            self.cause()
        ))
    }

    /// The likely cause and its fix.
    fn cause(&self) -> String {
        let host = self
            .host
            .map_or_else(|| "miner.host".to_string(), |h| format!("miner.host = {h}"));
        format!(
            "another machine runs {host} with the same unit ids (a copied config or image); give each machine its own miner.host (or its own cpu.units ids), then restart this one"
        )
    }
}

impl ChainService {
    /// Names this machine's `miner.host` in the duplicate-host error and hold.
    pub fn set_miner_host(&mut self, host: u32) {
        self.duplicates.host = Some(host);
    }

    /// Looks for acceptances of this client's units in transactions it did not send (see the
    /// module doc), among `view`'s; `proofs` are the stored proofs being reconciled (their
    /// transactions are this host's). Runs before the reconciliation changes their states.
    /// What is known of epochs before `keep_from` (closed, none of their proofs unsettled) is
    /// forgotten.
    pub(super) async fn watch_duplicates(
        &mut self,
        proofs: &[StoredProof],
        view: &ChainView,
        keep_from: u64,
    ) -> Result<()> {
        self.txm.forget_signed_before(keep_from);
        let watch = &mut self.duplicates;
        watch.origins.retain(|_, (e, _)| *e >= keep_from);
        watch.foreign.retain(|r| r.epoch >= keep_from);
        let stored: HashSet<Hash> = proofs
            .iter()
            .filter_map(|p| match p.state {
                ProofState::Submitted { tx } | ProofState::Included { tx, .. } => Some(tx),
                _ => None,
            })
            .collect();
        let mut unknown: BTreeMap<Hash, Vec<ProofRef>> = BTreeMap::new();
        for (r, a) in &view.accepted {
            if a.block <= watch.since_block
                || watch.foreign.contains(r)
                || stored.contains(&a.tx)
                || self.txm.signed_proofs(&TxHash::from(a.tx.0))
            {
                continue;
            }
            unknown.entry(a.tx).or_default().push(*r);
        }
        for (tx, mut refs) in unknown {
            let Some(origin) = self.origin(tx, refs[0].epoch).await? else {
                continue;
            };
            if let Origin::Foreign { sender } = origin {
                refs.sort_by_key(|r| (r.epoch, r.nonce));
                for r in refs {
                    self.foreign_nonce(r, tx, sender);
                }
            }
        }
        Ok(())
    }

    /// `capminer_chain_duplicate_host_units`: 1 for each unit held as duplicated, 0 for the
    /// others (and their foreign-nonce counters from 0), so every unit has its series.
    pub(super) fn show_duplicates(&self) {
        for (id, row) in &self.units {
            let labels = [row.label.as_str(), row.kind.as_str()];
            let held = self.duplicates.held.contains_key(id);
            self.metrics
                .duplicate_host_units
                .with_label_values(&labels)
                .set(i64::from(held));
            self.metrics.foreign_nonces.with_label_values(&labels);
        }
    }

    /// Who sent `tx` (looked up once); `None` while the node does not know it.
    async fn origin(&mut self, tx: Hash, epoch: u64) -> Result<Option<Origin>> {
        if let Some((_, origin)) = self.duplicates.origins.get(&tx) {
            return Ok(Some(*origin));
        }
        let Some(sent) = self
            .chain
            .provider
            .get_transaction_by_hash(TxHash::from(tx.0))
            .await
            .map_err(self.chain.rpc_error("eth_getTransactionByHash"))?
        else {
            return Ok(None);
        };
        let sender = sent.inner.signer();
        let origin = if sender == self.txm.address() && sent.nonce() < self.duplicates.start_nonce {
            Origin::Ours
        } else {
            Origin::Foreign { sender }
        };
        self.duplicates.origins.insert(tx, (epoch, origin));
        Ok(Some(origin))
    }

    /// Counts foreign nonce `r`; the first of a unit holds the unit, with an error.
    fn foreign_nonce(&mut self, r: ProofRef, tx: Hash, sender: Address) {
        let Some(row) = self.units.get(&r.unit) else {
            return;
        };
        let labels = [row.label.as_str(), row.kind.as_str()];
        let watch = &mut self.duplicates;
        watch.foreign.insert(r);
        self.metrics.foreign_nonces.with_label_values(&labels).inc();
        if watch.held.contains_key(&r.unit) {
            return;
        }
        watch.held.insert(
            r.unit,
            Evidence {
                epoch: r.epoch,
                nonce: r.nonce,
                tx,
                sender,
            },
        );
        self.metrics
            .duplicate_host_units
            .with_label_values(&labels)
            .set(1);
        tracing::error!(
            unit = %row.label,
            id = %r.unit,
            epoch = r.epoch,
            nonce = r.nonce,
            %tx,
            %sender,
            "duplicate host: the contract accepted nonce {} of unit {} in epoch {} from a transaction this host never sent: {}; the unit stays idle until then (what it found is still delivered)",
            r.nonce,
            row.label,
            r.epoch,
            watch.cause()
        );
    }
}
