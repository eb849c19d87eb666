//! Checks of a node that mines (`capminer run`, `config check`, `doctor`), beyond what every
//! command's [`Config::validate`] checks: it has units to run, and with `chain.enabled` its unit
//! ids can be bound to the provider on the contract, without it targets a hash can meet.
//!
//! The contract registers a unit only for the provider whose address starts its id
//! (`IdNotBound` otherwise), and derived ids start with `miner.provider`: a node whose ids do
//! not start with the provider's address connects, finds none of its units registered, and
//! idles forever. These checks refuse it before anything starts.

use crate::{Config, ConfigError, Units};

impl Config {
    /// Checks that this configuration, run as a mining node, has units to run and, with
    /// `chain.enabled`, unit ids its provider can own. `signer` is the address of the key
    /// the node signs with, when known: the fix of a zero `miner.provider` names it.
    pub fn validate_mining(&self, signer: Option<[u8; 20]>) -> Result<(), ConfigError> {
        self.validate_has_units()?;
        if self.chain.enabled {
            self.validate_unit_owner(signer)?;
        } else {
            self.validate_fixed_targets()?;
        }
        Ok(())
    }

    /// The fixed epoch's targets of the units that run: no hash is below a zero target.
    fn validate_fixed_targets(&self) -> Result<(), ConfigError> {
        let targets = [
            ("epoch.cpu_target", self.cpu.enabled, &self.epoch.cpu_target),
            ("epoch.gpu_target", self.gpu.enabled, &self.epoch.gpu_target),
        ];
        for (key, used, target) in targets {
            if used && *target == [0; 32] {
                return Err(self.key_error(
                    key,
                    "zero: no hash is below it, so the units would never find a proof; \
                     remove the key for the default",
                ));
            }
        }
        Ok(())
    }

    /// A node with neither CPU nor GPU units would start, serve its endpoints and mine nothing.
    fn validate_has_units(&self) -> Result<(), ConfigError> {
        if self.gpu.enabled {
            return Ok(());
        }
        if !self.cpu.enabled {
            return Err(self.key_error(
                "cpu.enabled",
                "false, and gpu.enabled = false: this node would mine nothing; enable CPU units \
                 (cpu.enabled = true) or GPU units (gpu.enabled = true)",
            ));
        }
        if matches!(&self.cpu.units, Units::List(units) if units.is_empty()) {
            return Err(self.key_error(
                "cpu.units",
                "an empty list, and gpu.enabled = false: this node would mine nothing; list \
                 units (cpu.units = [{ core = 0 }]), use \"auto\" (one per physical core), or \
                 enable GPU units",
            ));
        }
        Ok(())
    }

    /// With the chain, a contract that can exist, and every unit id must start with
    /// `miner.provider`, which cannot be zero.
    fn validate_unit_owner(&self, signer: Option<[u8; 20]>) -> Result<(), ConfigError> {
        if self.chain.contract == Some([0; 20]) {
            return Err(self.key_error(
                "chain.contract",
                "the zero address holds no contract: set the deployed capacity contract's address",
            ));
        }
        let provider = self.miner.provider;
        if provider == [0; 20] {
            let shown = match signer {
                Some(address) => format!(
                    "; the key this node signs with is 0x{0}: if it is the provider's own key, set \
                     miner.provider = \"0x{0}\"",
                    hex::encode(address)
                ),
                None => String::new(),
            };
            return Err(self.key_error(
                "miner.provider",
                format!(
                    "the zero address, with chain.enabled = true: every derived unit id would start \
                     with 20 zero bytes, which the contract never registers (IdNotBound), and the \
                     node would idle. Set it to the provider's address: `capminer provider address` \
                     prints it from the provider's key (chain.key_file or CAPMINER_PRIVATE_KEY){shown}"
                ),
            ));
        }
        if let Units::List(units) = &self.cpu.units {
            for (i, unit) in units.iter().enumerate() {
                if let Some(id) = unit.id
                    && id[..20] != provider
                {
                    return Err(self.key_error(
                        &format!("cpu.units[{i}].id"),
                        format!(
                            "does not start with miner.provider = 0x{}: the contract binds a unit \
                             to the provider whose address starts its id (IdNotBound otherwise); \
                             remove the id to derive it, or correct miner.provider",
                            hex::encode(provider)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
