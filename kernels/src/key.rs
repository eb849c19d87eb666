//! Keys and hash inputs, byte for byte as `docs/PROTOCOL.md` states them.
//!
//! * CPU unit key: `K = keccak256(seed ‖ unit_id)`, 32 + 32 bytes in, 32 out. The same value is
//!   `keccak256(abi.encodePacked(seed, unitId))` in Solidity.
//! * CPU hash input: the nonce as 8 bytes, little-endian.
//!
//! Fluence's network (the `fluence` profile, Fluence's RandomX fork) keys the same way,
//! `K = keccak256(global_nonce ‖ cu_id)` ([`cpu_unit_key`] with the global nonce as the seed and
//! the CU id as the unit id), and hashes a 32-byte local nonce ([`local_nonce`]): CCP counts in
//! its bytes 0..8, a little-endian u64, and keeps bytes 8..32 fixed for a job.

use tiny_keccak::{Hasher, Keccak};

/// Keccak-256 of the concatenation of `parts`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut keccak = Keccak::v256();
    for part in parts {
        keccak.update(part);
    }
    let mut out = [0u8; 32];
    keccak.finalize(&mut out);
    out
}

/// The RandomX key of a CPU unit for an epoch: `keccak256(seed ‖ unit_id)`.
pub fn cpu_unit_key(seed: &[u8; 32], unit_id: &[u8; 32]) -> [u8; 32] {
    keccak256(&[seed, unit_id])
}

/// The RandomX input for a nonce: its 8 little-endian bytes.
pub fn cpu_input(nonce: u64) -> [u8; 8] {
    nonce.to_le_bytes()
}

/// Bytes of a Fluence local nonce that stay fixed while its counter runs.
pub const LOCAL_NONCE_TAIL: usize = 24;

/// The Fluence hash input (a CCP local nonce) with counter `counter`: its 8 little-endian bytes,
/// then `tail`.
pub fn local_nonce(counter: u64, tail: &[u8; LOCAL_NONCE_TAIL]) -> [u8; 32] {
    let mut nonce = [0u8; 32];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce[8..].copy_from_slice(tail);
    nonce
}

/// The counter of a local nonce (its bytes 0..8, little-endian).
pub fn local_nonce_counter(nonce: &[u8; 32]) -> u64 {
    u64::from_le_bytes(nonce[..8].try_into().expect("8 bytes"))
}

/// True when `hash`, read as a 256-bit big-endian integer, is at most `target`.
///
/// Lexicographic order of two equal-length byte strings is the order of the big-endian
/// integers they encode, so this is a plain slice comparison.
pub fn meets_target(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    hash <= target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn keccak_of_empty_input_is_the_known_constant() {
        assert_eq!(
            keccak256(&[]),
            h("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
        );
    }

    #[test]
    fn cpu_unit_key_matches_the_fluence_vector() {
        // global nonce and CU id from Fluence CCP's example; K from its end-to-end test.
        let seed = h("13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6");
        let unit = h("21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f");
        assert_eq!(
            cpu_unit_key(&seed, &unit),
            h("f83d1e9bd5a92d09e2e08b20a66c1ec1887cf2c564d350439637d1522a2299ac")
        );
    }

    #[test]
    fn cpu_input_is_little_endian() {
        assert_eq!(cpu_input(0x0102_0304_0506_0708), [8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn local_nonce_counts_little_endian_in_its_first_eight_bytes() {
        let tail = [0xab; LOCAL_NONCE_TAIL];
        let nonce = local_nonce(0x0102_0304_0506_0708, &tail);
        assert_eq!(nonce[..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(nonce[8..], tail);
        assert_eq!(local_nonce_counter(&nonce), 0x0102_0304_0506_0708);
        // CCP's end-to-end vector (b): counter 1 and a zero tail is 01 then 31 zero bytes.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(local_nonce(1, &[0; LOCAL_NONCE_TAIL]), one);
    }

    #[test]
    fn target_comparison_is_big_endian_and_inclusive() {
        let mut target = [0u8; 32];
        target[1] = 0x10;
        let mut hash = target;
        assert!(meets_target(&hash, &target), "equal hash meets the target");
        hash[31] = 1;
        assert!(
            !meets_target(&hash, &target),
            "one more in the lowest byte fails"
        );
        let mut low = [0u8; 32];
        low[1] = 0x0f;
        low[2..].fill(0xff);
        assert!(
            meets_target(&low, &target),
            "a smaller high byte wins over larger low bytes"
        );
    }
}
