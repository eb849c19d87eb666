//! capminer's chain client: epochs from the capacity contract, proofs into it in batches,
//! exactly once in effect whatever fails, and rewards back.
//!
//! ```text
//!             ┌────────── ChainService::tick (every chain.poll_ms) ──────────┐
//!  node ──────▶ head block ─▶ EpochWatcher ─▶ new epoch (seed, targets) ─────┼─▶ miner re-keys
//!             │                                                             │
//!  ProofStore ─▶ found proofs ─▶ Batcher (gas-bounded, min first, max cap) ─┼─▶ TxManager ─▶ node
//!      ▲      │                                                             │   (nonces, EIP-1559,
//!      │      │  ProofsAccepted logs (canonical) ─▶ Tracker ────────────────┤    fee-bump replacement)
//!      └──────┼── submitted(tx) → included(block) → final | skipped | found  │
//!             │  Claimer: claimable ≥ threshold ─▶ claim(units, epoch) ─────┘
//! ```
//!
//! The chain's `ProofsAccepted` logs are the truth: a proof is included when a canonical log
//! accepts it and final once that log is `confirmations` deep; a proof whose log left the
//! canonical chain, or whose transaction was dropped, is found again and resubmitted. The
//! contract skips duplicates, so resubmitting is harmless.

#![warn(missing_docs)]

pub mod batch;
pub mod bindings;
pub mod devnet;
mod error;
pub mod groups;
pub mod handle;
pub mod key;
pub mod logs;
pub mod metrics;
pub mod service;
pub mod tracker;
pub mod txmanager;
pub mod verifier;

pub use error::{ChainError, Result};
pub use service::{ChainService, ChainSetup, DUPLICATE_HOST_HOLD, Holds};

/// The GPU challenge word of a `[network]` section: what the contract must state for GPU units
/// (`KindParams.challenge`) so that provers and verifiers compute the same challenge.
pub fn network_challenge(network: &capminer_config::NetworkConfig) -> [u8; 32] {
    network.gpu_challenge().to_word()
}
