//! Network parameters of the GPU challenge.

/// The GPU challenge's parameters: network-wide, every prover and verifier uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuParams {
    /// Bytes of one unit's dataset (a multiple of 128).
    pub unit_bytes: u64,
    /// Bytes of the epoch's light cache (a multiple of 64).
    pub cache_bytes: u64,
    /// Cache nodes folded into each 64-byte half of an item.
    pub parents: u32,
    /// Dependent item reads per hash.
    pub accesses: u32,
}

/// Cache mixing rounds (fixed).
pub const CACHE_ROUNDS: u32 = 3;

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

impl GpuParams {
    /// The real network's parameters: 1 GiB units, a 16 MiB cache, 256 parents, 64 accesses.
    pub const NETWORK: GpuParams = GpuParams {
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
}
