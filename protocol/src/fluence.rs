//! The Fluence profile's proof values (see [`crate::NetworkProfile::Fluence`]), as Fluence's
//! Capacity Commitment Prover (CCP) and its contract define them:
//!
//! * an epoch is a `(global_nonce, difficulty)` pair: either changing starts a new epoch;
//! * a compute unit (CU) hashes with RandomX key `K = keccak256(global_nonce ‖ cu_id)`;
//! * the input is a 32-byte local nonce; a proof is valid when the result hash, read as a
//!   big-endian integer, is `<=` the difficulty;
//! * each CU numbers its proofs of an epoch: [`FluenceProof::idx`], from 1 (so a client that
//!   asks for proofs "after 0" gets every one).

use serde::{Deserialize, Serialize};

/// An epoch of Fluence's network: its global nonce and difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FluenceEpoch {
    /// The epoch's global nonce.
    pub global_nonce: [u8; 32],
    /// The largest valid result hash (big-endian).
    pub difficulty: [u8; 32],
}

/// One proof a CU found in a [`FluenceEpoch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FluenceProof {
    /// The compute unit's id.
    pub cu_id: [u8; 32],
    /// Its index among the CU's proofs of the epoch (from 1, without gaps).
    pub idx: u64,
    /// The hashed input.
    pub local_nonce: [u8; 32],
    /// RandomX(K, local_nonce).
    pub result_hash: [u8; 32],
}

/// The first proof index of a CU in an epoch.
pub const FIRST_PROOF_IDX: u64 = 1;

/// A CU's local nonces, as CCP counts them: bytes 0..8 a little-endian counter that wraps,
/// bytes 8..32 fixed for the job (random, so that restarts and threads never overlap).
pub fn next_local_nonce(nonce: &mut [u8; 32]) {
    let counter = u64::from_le_bytes(nonce[..8].try_into().expect("8 bytes"));
    nonce[..8].copy_from_slice(&counter.wrapping_add(1).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_nonce_counts_in_its_first_eight_bytes_little_endian_and_wraps() {
        let mut n = [7u8; 32];
        n[..8].copy_from_slice(&0x00ff_ffff_ffff_ffffu64.to_le_bytes());
        next_local_nonce(&mut n);
        assert_eq!(&n[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&n[8..], &[7u8; 24]);
        n[..8].copy_from_slice(&[0xff; 8]);
        next_local_nonce(&mut n);
        assert_eq!(&n[..8], &[0; 8]);
        assert_eq!(&n[8..], &[7u8; 24]);
    }
}
