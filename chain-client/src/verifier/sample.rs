//! Each verifier's own sample of a unit-epoch: drawn from its deterministic (RFC 6979)
//! signature over the unit-epoch's digest, so that no provider or block producer can predict
//! it, and anyone can audit it from the `Attested` event. (The contract cannot check that the
//! signature is the RFC 6979 one: a dishonest verifier could grind; see docs/THREATS.md.)

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::SolValue;
use capminer_protocol::UnitIndex;

/// What a verifier signs to draw its sample of a unit-epoch: `keccak256(abi.encode(
/// "capminer/sample/v1", chain id, contract, unit, epoch, digest))`, the contract's
/// `sampleHash`. `unit` is the unit's index in the contract (a [`UnitIndex`], or the contract's
/// `uint32` as such).
pub fn sample_hash(
    chain_id: u64,
    contract: Address,
    unit: impl Into<UnitIndex>,
    epoch: u64,
    digest: B256,
) -> B256 {
    keccak256(
        (
            "capminer/sample/v1".to_string(),
            U256::from(chain_id),
            contract,
            unit.into().0,
            epoch,
            digest,
        )
            .abi_encode_params(),
    )
}

/// The sample seed of a verifier's signature: `keccak256(r ‖ s ‖ v)`. capminer signs
/// deterministically (RFC 6979); nobody without the key can predict it.
pub fn sample_seed(signature: &[u8; 65]) -> B256 {
    keccak256(signature)
}

/// Indices of the nonces to recompute: all of them at rate 1, else `ceil(rate × n)` distinct
/// ones drawn from `keccak256(seed ‖ unit ‖ epoch ‖ counter)`, in increasing order (`unit`: as
/// in [`sample_hash`]).
pub fn sample(
    nonces: &[u64],
    rate: f64,
    seed: &B256,
    unit: impl Into<UnitIndex>,
    epoch: u64,
) -> Vec<usize> {
    let unit: UnitIndex = unit.into();
    let n = nonces.len();
    let k = ((n as f64 * rate).ceil() as usize).clamp(1.min(n), n);
    if k == n {
        return (0..n).collect();
    }
    let mut chosen = std::collections::BTreeSet::new();
    let mut counter = 0u64;
    while chosen.len() < k {
        let h = keccak256(
            [
                seed.as_slice(),
                &unit.0.to_be_bytes(),
                &epoch.to_be_bytes(),
                &counter.to_be_bytes(),
            ]
            .concat(),
        );
        chosen
            .insert((u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % n as u64) as usize);
        counter += 1;
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_distinct_and_sized() {
        let nonces: Vec<u64> = (0..100).collect();
        let seed = B256::repeat_byte(7);
        assert_eq!(
            sample(&nonces, 1.0, &seed, UnitIndex(3), 9),
            (0..100).collect::<Vec<_>>()
        );
        let a = sample(&nonces, 0.1, &seed, UnitIndex(3), 9);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            a,
            sample(&nonces, 0.1, &seed, UnitIndex(3), 9),
            "every verifier draws the same sample"
        );
        assert_ne!(
            a,
            sample(&nonces, 0.1, &B256::repeat_byte(8), UnitIndex(3), 9),
            "another block hash, another sample"
        );
        assert_eq!(
            sample(&nonces[..3], 0.01, &seed, UnitIndex(3), 9).len(),
            1,
            "at least one"
        );
        assert!(sample(&[], 0.5, &seed, UnitIndex(3), 9).is_empty());
    }
}
