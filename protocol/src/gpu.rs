//! The GPU challenge's network parameters: the one definition the kernels, the miner, the
//! verifier, the configuration and the chain client all use. The contract keeps them per
//! parameter version as one 32-byte word (`KindParams.challenge`), so provers and verifiers can
//! check that they run the network's challenge.
//!
//! Word layout (big-endian): `version u32 = 1 ‖ unit_bytes u64 ‖ cache_bytes u64 ‖ parents u32 ‖
//! accesses u32 ‖ 4 zero bytes`.

use std::fmt;

/// Version tag of the layout.
const LAYOUT: u32 = 1;

/// Cache mixing rounds (fixed, not a parameter: not in the word).
pub const CACHE_ROUNDS: u32 = 3;

/// The GPU challenge's parameters: network-wide, every prover and verifier uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuChallenge {
    /// Bytes of one unit's dataset (a multiple of 128).
    pub unit_bytes: u64,
    /// Bytes of the epoch's light cache (a multiple of 64).
    pub cache_bytes: u64,
    /// Cache nodes folded into each 64-byte half of an item.
    pub parents: u32,
    /// Dependent item reads per hash.
    pub accesses: u32,
}

/// Why parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// `unit_bytes` is not a positive multiple of 128, or has more than 2^32 items.
    #[error("unit_bytes {0} must be a positive multiple of 128 with at most 2^32 items")]
    UnitBytes(u64),
    /// `cache_bytes` is not a multiple of 64 holding at least two nodes, or too many nodes.
    #[error("cache_bytes {0} must be a multiple of 64 holding 2 to 2^32 nodes")]
    CacheBytes(u64),
    /// `parents` or `accesses` is zero.
    #[error("parents and accesses must be at least 1")]
    Zero,
}

impl GpuChallenge {
    /// The real network's parameters: 1 GiB units, a 16 MiB cache, 256 parents, 64 accesses.
    pub const NETWORK: GpuChallenge = GpuChallenge {
        unit_bytes: 1 << 30,
        cache_bytes: 16 << 20,
        parents: 256,
        accesses: 64,
    };

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.unit_bytes == 0
            || !self.unit_bytes.is_multiple_of(128)
            || self.unit_bytes / 128 > u64::from(u32::MAX)
        {
            return Err(ParamsError::UnitBytes(self.unit_bytes));
        }
        if !self.cache_bytes.is_multiple_of(64)
            || self.cache_bytes < 128
            || self.cache_bytes / 64 > u64::from(u32::MAX)
        {
            return Err(ParamsError::CacheBytes(self.cache_bytes));
        }
        if self.parents == 0 || self.accesses == 0 {
            return Err(ParamsError::Zero);
        }
        Ok(())
    }

    /// 128-byte items in a unit's dataset.
    pub fn items(&self) -> u32 {
        (self.unit_bytes / 128) as u32
    }

    /// 64-byte nodes in the light cache.
    pub fn nodes(&self) -> u32 {
        (self.cache_bytes / 64) as u32
    }

    /// Bytes a hash reads from the dataset.
    pub fn bytes_per_hash(&self) -> u64 {
        u64::from(self.accesses) * 128
    }

    /// The contract's word.
    pub fn to_word(&self) -> [u8; 32] {
        let mut w = [0u8; 32];
        w[0..4].copy_from_slice(&LAYOUT.to_be_bytes());
        w[4..12].copy_from_slice(&self.unit_bytes.to_be_bytes());
        w[12..20].copy_from_slice(&self.cache_bytes.to_be_bytes());
        w[20..24].copy_from_slice(&self.parents.to_be_bytes());
        w[24..28].copy_from_slice(&self.accesses.to_be_bytes());
        w
    }

    /// Reads a word; `None` if it is not of this layout (zero: the contract states none).
    pub fn from_word(w: &[u8; 32]) -> Option<Self> {
        let u32_at = |i: usize| u32::from_be_bytes(w[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(w[i..i + 8].try_into().expect("8 bytes"));
        (u32_at(0) == LAYOUT && w[28..] == [0; 4]).then(|| Self {
            unit_bytes: u64_at(4),
            cache_bytes: u64_at(12),
            parents: u32_at(20),
            accesses: u32_at(24),
        })
    }

    /// Describes a word for an error message: the parameters, or the raw word.
    pub fn describe(w: &[u8; 32]) -> String {
        match Self::from_word(w) {
            Some(c) => c.to_string(),
            None => format!("0x{} (not a GPU challenge word)", hex::encode(w)),
        }
    }
}

impl fmt::Display for GpuChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unit_bytes {} cache_bytes {} parents {} accesses {}",
            self.unit_bytes, self.cache_bytes, self.parents, self.accesses
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_has_its_documented_bytes_and_round_trips() {
        let c = GpuChallenge {
            unit_bytes: 1 << 30,
            cache_bytes: 16 << 20,
            parents: 256,
            accesses: 64,
        };
        let w = c.to_word();
        assert_eq!(
            hex::encode(w),
            "00000001\
             0000000040000000\
             0000000001000000\
             00000100\
             00000040\
             00000000"
        );
        assert_eq!(GpuChallenge::from_word(&w), Some(c));
        assert_eq!(GpuChallenge::from_word(&[0; 32]), None);
        assert!(GpuChallenge::describe(&[0; 32]).contains("not a GPU challenge word"));
        assert_eq!(
            GpuChallenge::describe(&w),
            "unit_bytes 1073741824 cache_bytes 16777216 parents 256 accesses 64"
        );
    }
}
