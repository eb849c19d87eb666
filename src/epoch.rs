//! Epoch sources. For now the fixed epoch of the configuration (solo runs, benchmarks).

use capminer_config::Config;
use capminer_proofs::{Epoch, Seed, Target};

/// The fixed epoch of `[epoch]`, with its CPU and GPU targets.
pub(crate) fn fixed_epoch(config: &Config) -> Epoch {
    Epoch {
        number: config.epoch.number,
        seed: Seed(config.epoch.seed),
        targets: [
            Target(config.epoch.cpu_target),
            Target(config.epoch.gpu_target),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_epoch_carries_both_targets() {
        let mut config = Config::default();
        config.epoch.cpu_target = [0x11; 32];
        config.epoch.gpu_target = [0x22; 32];
        let e = fixed_epoch(&config);
        assert_eq!(e.targets, [Target([0x11; 32]), Target([0x22; 32])]);
    }
}
