//! capminer's protocol values: the one home of every type and number that a prover, a
//! verifier and the contract must agree on. Types only: no I/O, no compute, no async.
//!
//! ```text
//!  ids      UnitId, Seed, Target, Hash        the 32-byte values and their hex forms
//!  unit     UnitKind, UnitIndex, UnitRef      what a unit is called, on chain and off
//!  proof    Epoch, ProofRef, Proof            what a unit mines under and what it finds
//!  gpu      GpuChallenge (+ its chain word)   the GPU challenge's network parameters
//!  network  NetworkProfile, RandomxFlavor     which network a miner proves to, and its RandomX
//!  fluence  FluenceEpoch, FluenceProof         the Fluence profile's epoch and proof
//!  verify   Claim ─▶ Checker ─▶ Verdict       what a verifier recomputes and concludes,
//!                          └──▶ VerifyError   or why it could not
//! ```
//!
//! Every other crate converts to and from these at its edge (configuration keys, contract
//! words, kernel inputs); none keeps a copy.

#![warn(missing_docs)]

pub mod fluence;
pub mod gpu;
mod ids;
mod network;
mod proof;
mod unit;
pub mod verify;

pub use fluence::{FluenceEpoch, FluenceProof};
pub use gpu::{GpuChallenge, ParamsError};
pub use ids::{Hash, ParseBytes32Error, Seed, Target, UnitId};
pub use network::{NetworkProfile, RandomxFlavor};
pub use proof::{Epoch, Proof, ProofRef};
pub use unit::{UnitIndex, UnitKind, UnitRef};
pub use verify::{Checker, Claim, Verdict, VerifyError, VerifyErrorKind};
