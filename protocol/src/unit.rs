//! Units as the protocol names them: their kind (the on-chain `uint8 kind`), their on-chain
//! index, and the reference every part of capminer passes around (id, kind, label).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::UnitId;

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

/// A unit as the miner and the chain client pass it around: its id, its kind, and the label
/// an operator reads in logs and metrics (`cpu0`, `gpu1.2`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnitRef {
    /// Network-wide id.
    pub id: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Operator-facing label.
    pub label: String,
}

/// A unit's index in the capacity contract (`uint32`, assigned at registration).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnitIndex(pub u32);

impl fmt::Display for UnitIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u32> for UnitIndex {
    fn from(index: u32) -> Self {
        Self(index)
    }
}

impl From<UnitIndex> for u32 {
    fn from(index: UnitIndex) -> Self {
        index.0
    }
}
