//! capminer's integration tests: real processes, real files, real OS threads.

mod chain;
mod cli;
mod common;
mod contract_invariants;
mod disk_faults;
mod gpu;
mod metrics;
mod miner_flow;
mod operator;
mod store_crash;
