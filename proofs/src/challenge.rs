//! The GPU challenge's parameters as one 32-byte word, the form the contract keeps per
//! parameter version (`KindParams.challenge`), so provers and verifiers can check that they
//! run the network's challenge.
//!
//! Layout (big-endian): `version u32 = 1 ‖ unit_bytes u64 ‖ cache_bytes u64 ‖ parents u32 ‖
//! accesses u32 ‖ 4 zero bytes`.

use std::fmt;

/// Version tag of the layout.
const LAYOUT: u32 = 1;

/// The GPU challenge's network parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuChallenge {
    /// Bytes of one unit's dataset.
    pub unit_bytes: u64,
    /// Bytes of the epoch's light cache.
    pub cache_bytes: u64,
    /// Cache nodes folded into each half item.
    pub parents: u32,
    /// Item reads per hash.
    pub accesses: u32,
}

impl GpuChallenge {
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
