//! Epoch sources. For now the fixed epoch of the configuration (solo runs, benchmarks), and
//! the check that it does not re-seed an epoch the proof store holds.

use std::path::Path;

use capminer_config::Config;
use capminer_proofs::store::ProofStore;
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

/// Refuses a fixed epoch whose number the proof store of `miner.state_dir` records under
/// another seed: an epoch's seed never changes under its number (every proof stored for it
/// would verify as invalid). Reads the store without locking it or repairing anything, so a
/// running node is not disturbed; no store yet is fine. `file` is the configuration file, for
/// the message.
pub(crate) fn check_recorded_seed(config: &Config, file: Option<&Path>) -> anyhow::Result<()> {
    let dir = &config.miner.state_dir;
    let fixed = fixed_epoch(config);
    match ProofStore::recorded_epoch(dir, fixed.number)? {
        Some(recorded) if recorded.seed != Seed::default() && recorded.seed != fixed.seed => {
            let file = file
                .map(|f| format!(" in {}", f.display()))
                .unwrap_or_default();
            anyhow::bail!(
                "[epoch].seed = {}{file}: the proof store {} records epoch {} ([epoch].number) with seed {}; an epoch's seed never changes under its number (the proofs stored for it would no longer verify): put back [epoch].seed = {}, or give the new seed a new [epoch].number",
                fixed.seed,
                dir.display(),
                fixed.number,
                recorded.seed,
                recorded.seed,
            )
        }
        _ => Ok(()),
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
