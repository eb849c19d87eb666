//! Epoch sources. For now the fixed epoch of the configuration (solo runs, benchmarks).

use capminer_config::Config;
use capminer_proofs::{Epoch, Seed, Target};

/// The fixed epoch of `[epoch]`. GPU units have no target there yet: nothing meets zero.
pub fn fixed_epoch(config: &Config) -> Epoch {
    Epoch {
        number: config.epoch.number,
        seed: Seed(config.epoch.seed),
        targets: [Target(config.epoch.cpu_target), Target([0; 32])],
    }
}
