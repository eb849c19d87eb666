//! A unit's keys in an epoch: the salt mixed into every item of its dataset and the header
//! hashed with every nonce.

use super::primitives::{b3, words_of, x64};

/// What a unit's dataset and hashes are keyed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitKeys {
    /// `X64("capminer/gpu/salt" ‖ B3(seed ‖ unit_id))`, mixed into every item.
    pub salt: [u32; 16],
    /// `B3("capminer/gpu/head" ‖ B3(seed ‖ unit_id))`, hashed with every nonce.
    pub header: [u8; 32],
}

impl UnitKeys {
    /// The keys of a unit in an epoch.
    pub fn new(seed: &[u8; 32], unit_id: &[u8; 32]) -> Self {
        let unit_key = b3(&[seed.as_slice(), unit_id].concat());
        Self {
            salt: x64(&[b"capminer/gpu/salt".as_slice(), &unit_key].concat()),
            header: b3(&[b"capminer/gpu/head".as_slice(), &unit_key].concat()),
        }
    }

    /// The header as 8 little-endian words.
    pub fn header_words(&self) -> [u32; 8] {
        words_of(&self.header)
    }
}
