//! capminer's miner: units of committed hardware proving, epoch after epoch.
//!
//! ```text
//!  epoch source ──set_epoch──▶ Miner ──▶ ProofStore::record_epoch
//!                                │
//!                                ▼  Control (epoch, pause, stop; one atomic generation)
//!                                │  Supervisor: one unit faults → that unit alone restarts
//!        ┌───────────────────────┼───────────────────────┐
//!     CpuUnit cpu0            CpuUnit cpu1            (GPU units: same Unit trait)
//!   threads pinned to       threads pinned to
//!   core 0's siblings       core 1's siblings
//!        │ re-key: K = keccak(seed ‖ unit id) → cache → dataset (in place)
//!        │ rounds: Searcher::search over nonce chunks, 100-250 ms each
//!        ▼
//!   NonceOrder (per unit) ──in nonce order──▶ ProofStore::append (fsync)
//! ```
//!
//! [`plan`] refuses configurations this machine cannot run; [`topology`] reads cores from
//! `/sys` and pins threads; [`metrics`] holds the Prometheus families; [`verify`] is the one
//! path that checks proofs from keys alone.

#![warn(missing_docs)]

pub mod change;
pub mod control;
pub mod cpu;
mod error;
pub mod fault;
pub mod gpu;
pub mod hashrate;
mod launch;
pub mod metrics;
mod miner;
pub mod order;
pub mod plan;
pub mod supervisor;
pub mod topology;
pub mod unit;
pub mod verify;

pub use error::{MinerError, Result, panic_message};
pub use miner::{Miner, MinerPlan, gpu_params, randomx_flags, randomx_options};
pub use supervisor::{Reason, UnitView};
pub use unit::{BuildReport, Unit, UnitInfo, UnitState};
