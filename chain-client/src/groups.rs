//! The bytes of proof groups, as `docs/PROTOCOL.md` states them: what `submitProofs` reads,
//! what a `ProofsAccepted` log carries, and the digest chained over the logs.
//!
//! ```text
//!  submitted group  uint32 unit ‖ uint16 n ‖ uint8 w ‖ uint64 first ‖ (n-1) × w-byte delta
//!  logged group                              uint8 w ‖ uint64 first ‖ (k-1) × w-byte delta
//!  digest           d = keccak256(d ‖ logged group) with the low 16 bytes cleared, from 0
//! ```
//!
//! All big-endian. A delta is the nonce minus the one before it (at least 1: nonces strictly
//! increase); `w` (1 to 8) is the fewest bytes that hold the group's largest delta. The
//! contract accepts one run of a group (the nonces above the unit-epoch's last accepted one,
//! up to its maximum) and logs that run in the same encoding, its deltas copied from the
//! calldata.

use alloy::primitives::{B256, keccak256};

/// Bytes before a submitted group's deltas: unit, count, width, first nonce.
pub const SUBMITTED_HEADER_BYTES: usize = 15;
/// Bytes before a logged group's deltas: width, first nonce.
pub const LOGGED_HEADER_BYTES: usize = 9;

/// The fewest bytes that hold every delta between consecutive `nonces` (1 if there is none).
///
/// # Panics
/// If `nonces` do not strictly increase (callers hold sorted, distinct nonces).
pub fn delta_width(nonces: &[u64]) -> usize {
    let widest = nonces
        .windows(2)
        .map(|p| {
            assert!(p[1] > p[0], "nonces must strictly increase");
            p[1] - p[0]
        })
        .max()
        .unwrap_or(1);
    (8 - widest.leading_zeros() as usize / 8).max(1)
}

/// Appends `nonces` (strictly increasing, at least one) in the logged encoding: width, first
/// nonce, deltas.
pub fn encode_run(nonces: &[u64], out: &mut Vec<u8>) {
    let w = delta_width(nonces);
    out.push(w as u8);
    out.extend_from_slice(&nonces[0].to_be_bytes());
    for p in nonces.windows(2) {
        out.extend_from_slice(&(p[1] - p[0]).to_be_bytes()[8 - w..]);
    }
}

/// Appends one submitted group: unit `index`'s `nonces` (strictly increasing, 1 to 65,535).
pub fn encode_group(index: u32, nonces: &[u64], out: &mut Vec<u8>) {
    assert!(
        !nonces.is_empty() && nonces.len() <= usize::from(u16::MAX),
        "a group holds 1 to 65,535 nonces"
    );
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&(nonces.len() as u16).to_be_bytes());
    encode_run(nonces, out);
}

/// Why a logged group does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Shorter than its header.
    #[error("{0} bytes, shorter than the 9-byte header")]
    Short(usize),
    /// A width outside 1..=8.
    #[error("delta width {0}, not 1 to 8")]
    Width(u8),
    /// Deltas that do not fill whole widths.
    #[error("{len} bytes of deltas, not a multiple of the width {w}")]
    Ragged {
        /// Bytes after the header.
        len: usize,
        /// The width.
        w: usize,
    },
    /// A zero delta or a nonce past 2^64 - 1.
    #[error("delta {index} is zero or overflows a 64-bit nonce")]
    Delta {
        /// Which delta (1 = the second nonce).
        index: usize,
    },
}

/// The nonces of one logged group.
pub fn decode_run(group: &[u8]) -> Result<Vec<u64>, GroupError> {
    if group.len() < LOGGED_HEADER_BYTES {
        return Err(GroupError::Short(group.len()));
    }
    let w = group[0];
    if !(1..=8).contains(&w) {
        return Err(GroupError::Width(w));
    }
    let w = usize::from(w);
    let deltas = &group[LOGGED_HEADER_BYTES..];
    if !deltas.len().is_multiple_of(w) {
        return Err(GroupError::Ragged {
            len: deltas.len(),
            w,
        });
    }
    let mut nonce = u64::from_be_bytes(group[1..9].try_into().expect("8 bytes"));
    let mut out = Vec::with_capacity(1 + deltas.len() / w);
    out.push(nonce);
    for (i, chunk) in deltas.chunks_exact(w).enumerate() {
        let mut be = [0u8; 8];
        be[8 - w..].copy_from_slice(chunk);
        nonce = match u64::from_be_bytes(be) {
            0 => None,
            delta => nonce.checked_add(delta),
        }
        .ok_or(GroupError::Delta { index: i + 1 })?;
        out.push(nonce);
    }
    Ok(out)
}

/// The digest after one more logged group: `keccak256(digest ‖ group)`, low 16 bytes cleared.
pub fn chain_digest(digest: &B256, group: &[u8]) -> B256 {
    let mut d = keccak256([digest.as_slice(), group].concat());
    d.0[16..].fill(0);
    d
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_submitted_group_is_byte_exact() {
        let mut out = Vec::new();
        encode_group(0x0102_0304, &[5, 0x105, 0x10_0105], &mut out);
        assert_eq!(
            hex(&out),
            "01020304\
             0003\
             03\
             0000000000000005\
             000100\
             100000"
        );
    }

    #[test]
    fn widths_are_the_fewest_bytes_of_the_largest_delta() {
        assert_eq!(delta_width(&[7]), 1);
        assert_eq!(delta_width(&[7, 8, 263]), 1); // deltas 1 and 255
        assert_eq!(delta_width(&[7, 8, 264]), 2); // 256 needs two bytes
        assert_eq!(delta_width(&[0, u64::MAX]), 8);
        assert_eq!(delta_width(&[0, 1 << 56]), 8);
        assert_eq!(delta_width(&[0, (1 << 56) - 1]), 7);
    }

    #[test]
    fn the_digest_is_the_known_value() {
        // keccak256(32 zero bytes ‖ 01 0000000000000005) =
        // e33d34929a4b74f50df498e00e6c6a31ff6c6d70da41645bb49474ce38a90a21 (js-sha3), low 16
        // bytes cleared; the contract's digest for the same group (tests/it/contract/batch.rs).
        let mut group = Vec::new();
        encode_run(&[5], &mut group);
        assert_eq!(hex(&group), "010000000000000005");
        assert_eq!(
            hex(chain_digest(&B256::ZERO, &group).as_slice()),
            "e33d34929a4b74f50df498e00e6c6a31\
             00000000000000000000000000000000"
        );
    }

    #[test]
    fn bad_logged_groups_are_refused_by_name() {
        assert_eq!(decode_run(&[1, 0, 0]), Err(GroupError::Short(3)));
        assert_eq!(decode_run(&[9; 9]), Err(GroupError::Width(9)));
        assert_eq!(decode_run(&[0; 9]), Err(GroupError::Width(0)));
        let mut g = vec![2, 0, 0, 0, 0, 0, 0, 0, 1];
        g.push(7);
        assert_eq!(decode_run(&g), Err(GroupError::Ragged { len: 1, w: 2 }));
        g.push(0);
        assert_eq!(decode_run(&g), Ok(vec![1, 1 + 0x700]));
        g.extend([0, 0]);
        assert_eq!(decode_run(&g), Err(GroupError::Delta { index: 2 }));
        let over = [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1];
        assert_eq!(decode_run(&over), Err(GroupError::Delta { index: 1 }));
    }

    proptest! {
        #[test]
        fn runs_round_trip(nonces in proptest::collection::btree_set(any::<u64>(), 1..60)) {
            let nonces: Vec<u64> = nonces.into_iter().collect();
            let mut out = Vec::new();
            encode_run(&nonces, &mut out);
            prop_assert_eq!(out.len(), LOGGED_HEADER_BYTES + (nonces.len() - 1) * delta_width(&nonces));
            prop_assert_eq!(decode_run(&out).unwrap(), nonces);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(nonces) = decode_run(&bytes) {
                prop_assert!(nonces.windows(2).all(|p| p[1] > p[0]));
                let mut again = Vec::new();
                encode_run(&nonces, &mut again);
                // The canonical width may be narrower than the one given.
                prop_assert_eq!(decode_run(&again).unwrap(), nonces);
            }
        }
    }
}
