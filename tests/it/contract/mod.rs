//! The capacity contract in process (revm): stateful invariant fuzzing, and the provider's batch
//! encoding against the contract's decoding.

mod batch;
mod invariants;
mod revm;
