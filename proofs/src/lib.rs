//! The crash-safe [`store::ProofStore`]. The proof types it stores are `capminer-protocol`'s,
//! re-exported here for the store's users.
//!
//! ```text
//!  miner units ──found──▶ ProofStore (append-only log, fsync) ──▶ batcher / chain client
//!                             ▲                                         │
//!                             └──── submitted(tx) → included(block) → final ◀┘
//! ```
//!
//! [`fluence::FluenceStore`] holds the Fluence profile's proofs (one epoch, per-CU indices) on
//! the same log framing.
//!
//! [`durable`] is the one durable whole-file write (temporary file, fsync, rename, fsync of the
//! directory), used by the store's archive and by the chain verifier's progress file.

#![warn(missing_docs)]

pub mod durable;
pub mod error;
pub mod fluence;
pub mod store;

pub use capminer_protocol::{Epoch, Hash, Proof, ProofRef, Seed, Target, UnitId, UnitKind};
pub use error::{Result, StoreError};
