//! The service's access to the proof store, off the async runtime: every write fsyncs, and
//! even a read may wait on the store's lock while a unit thread's append fsyncs. Each call
//! runs on tokio's blocking pool and is awaited.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use capminer_proofs::store::{ProofState, ProofStore, StoredProof, Tally};
use capminer_proofs::{Epoch, ProofRef, UnitId, UnitKind};

use super::ChainService;
use crate::Result;

/// Runs `f` on the store on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Arc<ProofStore>,
    f: impl FnOnce(&ProofStore) -> T + Send + 'static,
) -> T {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl ChainService {
    /// Our units' proofs not yet final or skipped that `keep` accepts.
    pub(super) async fn unsettled(
        &self,
        keep: impl Fn(&StoredProof) -> bool + Send + 'static,
    ) -> Vec<StoredProof> {
        let mut proofs = blocking(&self.store, move |s| s.unsettled(keep)).await;
        proofs.retain(|p| self.units.contains_key(&p.proof.unit));
        proofs
    }

    /// Our units' proofs submitted or included.
    pub(super) async fn in_flight(&self) -> Vec<StoredProof> {
        let mut proofs = blocking(&self.store, |s| s.in_flight()).await;
        proofs.retain(|p| self.units.contains_key(&p.proof.unit));
        proofs
    }

    /// The tallies of our units' proofs in `epochs`, by (epoch, unit).
    pub(super) async fn tallies(&self, epochs: RangeInclusive<u64>) -> Vec<(u64, UnitId, Tally)> {
        let mut tallies = blocking(&self.store, move |s| s.tallies(epochs)).await;
        tallies.retain(|(_, unit, _)| self.units.contains_key(unit));
        tallies
    }

    /// Our units' found proofs of epoch `e`: kind and nonces by unit.
    pub(super) async fn found(&self, e: u64) -> Vec<(UnitId, UnitKind, Vec<u64>)> {
        let mut found = blocking(&self.store, move |s| s.found(e)).await;
        found.retain(|(unit, _, _)| self.units.contains_key(unit));
        found
    }

    /// The stored proofs among `refs` that `keep` accepts.
    pub(super) async fn among(
        &self,
        refs: Vec<ProofRef>,
        keep: impl FnMut(&StoredProof) -> bool + Send + 'static,
    ) -> Vec<StoredProof> {
        blocking(&self.store, move |s| s.among(refs, keep)).await
    }

    /// When the longest-waiting found proof among `refs` was found.
    pub(super) async fn found_since(&self, refs: Vec<ProofRef>) -> Option<Instant> {
        blocking(&self.store, move |s| s.found_since(&refs)).await
    }

    /// Moves proofs to `state`, durably.
    pub(super) async fn set_state(&self, refs: Vec<ProofRef>, state: ProofState) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        Ok(blocking(&self.store, move |s| s.set_state(&refs, state)).await?)
    }

    /// Records an epoch, durably.
    pub(super) async fn record_epoch(&self, epoch: Epoch) -> Result<()> {
        Ok(blocking(&self.store, move |s| s.record_epoch(&epoch)).await?)
    }

    /// Retires epoch `e`'s seed in the store, durably.
    pub(super) async fn retire_epoch_seed(&self, e: u64) -> Result<()> {
        Ok(blocking(&self.store, move |s| s.retire_epoch_seed(e)).await?)
    }

    /// The store's record of epoch `e`.
    pub(super) async fn stored_epoch(&self, e: u64) -> Option<Epoch> {
        blocking(&self.store, move |s| s.epoch(e)).await
    }

    /// Moves every settled epoch before `before` (window closed, nothing in flight) to the
    /// store's archive; returns how many moved.
    pub(super) async fn archive_settled(&self, before: u64) -> Result<usize> {
        Ok(blocking(&self.store, move |s| {
            let mut moved = 0;
            for e in s.epochs().iter().map(|e| e.number).filter(|n| *n < before) {
                moved += usize::from(s.archive_epoch(e)?);
            }
            Ok::<_, capminer_proofs::StoreError>(moved)
        })
        .await?)
    }
}
