//! The 32-byte values of the protocol (unit ids, seeds, targets, hashes), with their hex and
//! serde forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Error parsing a `0x`-prefixed 32-byte hex string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 32 bytes as 64 hex digits (optionally 0x-prefixed), got {0:?}")]
pub struct ParseBytes32Error(pub String);

macro_rules! bytes32_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = ParseBytes32Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix("0x").unwrap_or(s);
                let mut out = [0u8; 32];
                hex::decode_to_slice(digits, &mut out)
                    .map_err(|_| ParseBytes32Error(s.to_string()))?;
                Ok(Self(out))
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

bytes32_type!(
    /// A unit's network-wide identifier (`bytes32` on chain).
    UnitId
);
bytes32_type!(
    /// An epoch's seed, fixed by chain randomness at the epoch boundary.
    Seed
);
bytes32_type!(
    /// A 256-bit big-endian threshold: a proof counts when its hash is at most the target.
    Target
);
bytes32_type!(
    /// A 32-byte hash (a proof's hash, a transaction or block hash).
    Hash
);

impl Target {
    /// True when `hash`, read big-endian, is at most this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        hash <= &self.0
    }

    /// The target a hash meets with probability `1 / expected_hashes` (uniform hashes).
    pub fn for_expected_hashes(expected_hashes: u64) -> Self {
        // target = floor((2^256 - 1) / n): divide the all-ones 256-bit number by n, byte by byte.
        let divisor = u128::from(expected_hashes.max(1));
        let mut out = [0u8; 32];
        let mut remainder: u128 = 0;
        for byte in out.iter_mut() {
            let value = (remainder << 8) | 0xff;
            *byte = (value / divisor) as u8;
            remainder = value % divisor;
        }
        Self(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes32_round_trips_through_hex_and_serde() {
        let id: UnitId = "0x00000000000000000000000000000000000000000000000000000000000000ff"
            .parse()
            .unwrap();
        assert_eq!(id.0[31], 0xff);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(
            json,
            "\"0x00000000000000000000000000000000000000000000000000000000000000ff\""
        );
        assert_eq!(serde_json::from_str::<UnitId>(&json).unwrap(), id);
        assert!("0x12".parse::<UnitId>().is_err());
    }

    #[test]
    fn target_for_expected_hashes_is_floor_of_max_over_n() {
        assert_eq!(Target::for_expected_hashes(1).0, [0xff; 32]);
        let half = Target::for_expected_hashes(2).0;
        assert_eq!(half[0], 0x7f);
        assert!(half[1..].iter().all(|b| *b == 0xff));
        let t = Target::for_expected_hashes(256).0;
        assert_eq!(t[0], 0);
        assert!(t[1..].iter().all(|b| *b == 0xff));
        // 2^256-1 / 3 = 0x5555...55
        assert!(Target::for_expected_hashes(3).0.iter().all(|b| *b == 0x55));
    }
}
