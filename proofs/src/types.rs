//! Identifiers, epochs and proofs, with their exact byte forms.

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

/// The two unit kinds; their number is the on-chain `uint8 kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// One physical core with its own RandomX dataset.
    Cpu = 0,
    /// A slice of one GPU's memory holding the unit's dataset.
    Gpu = 1,
}

impl UnitKind {
    /// Both kinds, in on-chain order.
    pub const ALL: [UnitKind; 2] = [UnitKind::Cpu, UnitKind::Gpu];

    /// The on-chain number.
    pub fn index(self) -> usize {
        self as usize
    }

    /// From the on-chain number.
    pub fn from_index(i: u8) -> Option<Self> {
        match i {
            0 => Some(UnitKind::Cpu),
            1 => Some(UnitKind::Gpu),
            _ => None,
        }
    }

    /// Lower-case name, as in labels and config.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Cpu => "cpu",
            UnitKind::Gpu => "gpu",
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One epoch: its number, its seed and the target of each unit kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// Epoch number (on chain: `(timestamp - genesis) / duration`).
    pub number: u64,
    /// Seed fixed at the epoch boundary.
    pub seed: Seed,
    /// Target per unit kind, indexed by [`UnitKind::index`].
    pub targets: [Target; 2],
}

impl Epoch {
    /// The target of a unit kind.
    pub fn target(&self, kind: UnitKind) -> &Target {
        &self.targets[kind.index()]
    }
}

/// Names one proof: the unit, the epoch and the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProofRef {
    /// Epoch number.
    pub epoch: u64,
    /// Unit.
    pub unit: UnitId,
    /// Nonce.
    pub nonce: u64,
}

impl fmt::Display for ProofRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unit {} epoch {} nonce {}",
            self.unit, self.epoch, self.nonce
        )
    }
}

/// A proof found by a unit: its nonce's hash met the epoch's target for the unit's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Unit that found it.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Epoch number.
    pub epoch: u64,
    /// Nonce.
    pub nonce: u64,
    /// The hash the unit computed (not sent on chain; verifiers recompute it).
    pub hash: Hash,
}

impl Proof {
    /// The proof's name.
    pub fn id(&self) -> ProofRef {
        ProofRef {
            epoch: self.epoch,
            unit: self.unit,
            nonce: self.nonce,
        }
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
