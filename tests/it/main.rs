//! capminer's integration tests: real processes, real files, real OS threads.

mod api;
mod chain;
mod cli;
mod common;
mod config_traps;
mod contract;
mod devnet;
mod disk_faults;
mod fluence_profile;
mod fluence_status;
mod gpu;
mod gpu_bench;
mod hostile;
mod metrics;
mod miner_flow;
mod operator;
mod page;
mod reload;
mod store_crash;
mod units;
mod watchdog;
