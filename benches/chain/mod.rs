//! Shared by the benchmarks that run the contract on anvil.

/// A contract for gas measurements: every hash a proof, no collateral, one-day epochs, one
/// verifier; `max_proofs` per unit-epoch.
pub(crate) fn gas_spec(
    max_proofs: u32,
    verifier: alloy::primitives::Address,
    guardian: alloy::primitives::Address,
) -> capminer_chain::devnet::ContractSpec {
    let kind = capminer_chain::devnet::KindSpec {
        target: capminer_proofs::Target([0xff; 32]),
        min_proofs: 1,
        max_proofs,
        reward_wei: 1,
        collateral_wei: 0,
        challenge: [0; 32],
    };
    capminer_chain::devnet::ContractSpec {
        epoch_seconds: 86_400,
        grace_seconds: 3_600,
        verify_seconds: 3_600,
        timelock_seconds: 0,
        quorum: 1,
        slash_bps: 0,
        verifiers: vec![verifier],
        guardian,
        kinds: [kind, kind],
    }
}
