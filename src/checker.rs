//! The verifier service's checker: the miner's light-mode verifier, so `capminer verify` and
//! `capminer verifier` share one verification path.

use capminer_chain::verifier::{Check, Checker, Claim};
use capminer_miner::verify::{self, Verdict, Verifier};

/// Checks claims with [`Verifier`].
#[derive(Debug)]
pub struct MinerChecker(pub Verifier);

impl Checker for MinerChecker {
    fn check(&self, claims: &[Claim]) -> Result<Vec<Check>, String> {
        let claims: Vec<verify::Claim> = claims
            .iter()
            .map(|c| verify::Claim {
                unit: c.unit,
                kind: c.kind,
                epoch: c.epoch,
                nonce: c.nonce,
                hash: None,
            })
            .collect();
        let verdicts = self.0.verify(&claims).map_err(|e| e.to_string())?;
        Ok(verdicts
            .into_iter()
            .map(|v| match v {
                Verdict::Valid { .. } | Verdict::WrongHash { .. } => Check::Valid,
                Verdict::AboveTarget { .. } => Check::AboveTarget,
                Verdict::Unverifiable(_) => Check::Unsupported,
            })
            .collect())
    }
}
