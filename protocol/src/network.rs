//! Network profiles: which network a CPU unit proves to, and the RandomX it hashes with there.
//!
//! * `capminer`: capminer's own contract. Stock RandomX (the one `randomx-rs` vendors), key
//!   `keccak256(seed ‖ unit_id)`, input the nonce as 8 little-endian bytes.
//! * `fluence`: Fluence's Capacity contract, proofs handed to its node (nox) over CCP's JSON-RPC.
//!   Fluence's RandomX fork (16 cache accesses a dataset item, a 4 GiB dataset base), key
//!   `keccak256(global_nonce ‖ cu_id)`, input a 32-byte local nonce.

use serde::{Deserialize, Serialize};

/// Which network a miner proves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkProfile {
    /// capminer's own capacity contract.
    #[default]
    Capminer,
    /// Fluence's network, as a drop-in replacement of its Capacity Commitment Prover.
    Fluence,
}

impl NetworkProfile {
    /// The RandomX flavor its CPU units hash with.
    pub fn randomx(self) -> RandomxFlavor {
        match self {
            Self::Capminer => RandomxFlavor::Stock,
            Self::Fluence => RandomxFlavor::Fluence,
        }
    }

    /// Bytes of a CPU hash's input (the nonce as the network encodes it).
    pub fn nonce_bytes(self) -> usize {
        match self {
            Self::Capminer => 8,
            Self::Fluence => 32,
        }
    }

    /// Its name in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Capminer => "capminer",
            Self::Fluence => "fluence",
        }
    }
}

/// A RandomX parameter set: the constants of its `configuration.h` that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RandomxFlavor {
    /// Stock RandomX 1.x (Monero's parameters), as `randomx-rs` vendors it.
    #[default]
    Stock,
    /// Fluence's fork (as `ccp-randomx` vendors it).
    Fluence,
}

impl RandomxFlavor {
    /// `RANDOMX_CACHE_ACCESSES`: cache items mixed into one dataset item.
    pub fn cache_accesses(self) -> u32 {
        match self {
            Self::Stock => 8,
            Self::Fluence => 16,
        }
    }

    /// `RANDOMX_DATASET_BASE_SIZE` in bytes.
    pub fn dataset_base_bytes(self) -> u64 {
        match self {
            Self::Stock => 2 << 30,
            Self::Fluence => 4 << 30,
        }
    }

    /// `RANDOMX_DATASET_EXTRA_SIZE` in bytes (the same in both).
    pub fn dataset_extra_bytes(self) -> u64 {
        33_554_368
    }

    /// Bytes of a whole dataset (base plus extra).
    pub fn dataset_bytes(self) -> u64 {
        self.dataset_base_bytes() + self.dataset_extra_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_name_their_flavor_and_nonce_width() {
        assert_eq!(NetworkProfile::Capminer.randomx(), RandomxFlavor::Stock);
        assert_eq!(NetworkProfile::Fluence.randomx(), RandomxFlavor::Fluence);
        assert_eq!(NetworkProfile::Capminer.nonce_bytes(), 8);
        assert_eq!(NetworkProfile::Fluence.nonce_bytes(), 32);
        assert_eq!(RandomxFlavor::Stock.dataset_bytes(), 2_181_038_016);
        assert_eq!(RandomxFlavor::Fluence.dataset_bytes(), 4_328_521_664);
        let p: NetworkProfile = serde_json::from_str("\"fluence\"").unwrap();
        assert_eq!(p, NetworkProfile::Fluence);
    }
}
