//! The proof types every part of capminer shares, and the crash-safe [`store::ProofStore`].
//!
//! ```text
//!  miner units ──found──▶ ProofStore (append-only log, fsync) ──▶ batcher / chain client
//!                             ▲                                         │
//!                             └──── submitted(tx) → included(block) → final ◀┘
//! ```

pub mod challenge;
pub mod error;
pub mod store;
mod types;
pub mod verify;

pub use challenge::GpuChallenge;
pub use error::{Result, StoreError};
pub use types::{Epoch, Hash, Proof, ProofRef, Seed, Target, UnitId, UnitKind};
