//! capminer's integration tests: real processes, real files, real OS threads.

mod cli;
mod common;
mod metrics;
mod miner_flow;
mod store_crash;
