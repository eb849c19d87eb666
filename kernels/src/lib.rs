//! The compute kernels of capminer: everything that turns a key and a nonce into a hash.
//!
//! ```text
//!   epoch seed ─┐
//!               ├─ keccak256 ─▶ unit key K ─▶ RandomX cache (256 MiB) ─▶ dataset (2080 MiB)
//!   unit id ────┘                                                          │
//!                                          nonce (u64, LE) ─▶ RandomX VM ◀─┘ ─▶ hash ≤ target?
//! ```
//!
//! * [`randomx`] wraps the RandomX library that `randomx-rs` builds and links: caches, datasets
//!   built in parallel slices, VMs, pipelined hashing, and large pages with a fallback.
//! * [`search`] is the one synchronous compute interface every unit kind implements:
//!   "hash this nonce range against this target and give me the hits".
//! * [`gpu`] runs the GPU challenge through wgpu; [`gpu::reference`] is the same challenge on
//!   the CPU (the specification, the verifier, and the oracle the GPU is tested against).
//! * [`key`] derives the per-unit keys and the exact hash inputs that `docs/PROTOCOL.md` fixes.
//!
//! Nothing here knows about threads, epochs, stores or chains: the miner drives these pieces.

#![warn(missing_docs)]

pub mod error;
pub mod gpu;
pub mod key;
pub mod randomx;
pub mod search;

pub use error::{KernelError, Result};
pub use search::{Hit, Searched, Searcher};
