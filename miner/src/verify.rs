//! Independent verification of proofs, from the key alone (RandomX light mode).
//!
//! This is the one verification path: `capminer verify` and the verifier service both call
//! [`Verifier::verify`]. CPU claims are grouped by key (seed, unit): each key's 256 MiB cache
//! is built once and every claim under it is hashed in parallel, one VM per worker thread. GPU
//! claims are grouped by epoch: the epoch's light cache is built once, and each claim's items
//! are rebuilt from it (`2 × parents` cache nodes per item read).

use std::collections::BTreeMap;
use std::sync::Arc;

use capminer_kernels::gpu_challenge::{GpuParams, LightCache, UnitKeys, hash_light};
use capminer_kernels::key::{cpu_input, cpu_unit_key};
use capminer_kernels::randomx::{Cache, RandomXFlags, RandomXOptions, Vm, VmMemory};
pub use capminer_proofs::verify::{Checker, Claim, Verdict};
use capminer_proofs::{Hash, UnitId, UnitKind};
use rayon::prelude::*;

use crate::{MinerError, Result};

/// Verifies claims: CPU proofs in RandomX light mode, GPU proofs from the light cache.
#[derive(Debug, Clone, Copy)]
pub struct Verifier {
    flags: RandomXFlags,
    gpu: GpuParams,
}

impl Verifier {
    /// A verifier with these RandomX options (always run in light mode) and the network's GPU
    /// challenge parameters.
    pub fn new(options: RandomXOptions, gpu: GpuParams) -> Result<Self> {
        let flags =
            RandomXFlags::resolve(&options.light()).map_err(|source| MinerError::Kernel {
                unit: "verifier".into(),
                source,
            })?;
        Ok(Self { flags, gpu })
    }

    /// Verdicts for `claims`, in the same order.
    pub fn verify(&self, claims: &[Claim]) -> Result<Vec<Verdict>> {
        // CPU claims by RandomX key (seed, unit); GPU claims by epoch seed (one light cache).
        let mut cpu: BTreeMap<([u8; 32], UnitId), Vec<usize>> = BTreeMap::new();
        let mut gpu: BTreeMap<[u8; 32], Vec<usize>> = BTreeMap::new();
        let mut verdicts: Vec<Option<Verdict>> = vec![None; claims.len()];
        for (i, c) in claims.iter().enumerate() {
            match c.kind {
                UnitKind::Cpu => cpu.entry((c.epoch.seed.0, c.unit)).or_default().push(i),
                UnitKind::Gpu => gpu.entry(c.epoch.seed.0).or_default().push(i),
            }
        }
        let mut results: Vec<Result<Vec<(usize, Verdict)>>> = cpu
            .into_par_iter()
            .map(|((seed, unit), indices)| self.verify_key(&seed, &unit, &indices, claims))
            .collect();
        for (seed, indices) in gpu {
            results.push(Ok(self.verify_gpu(&seed, &indices, claims)));
        }
        for group in results {
            for (i, verdict) in group? {
                verdicts[i] = Some(verdict);
            }
        }
        Ok(verdicts
            .into_iter()
            .map(|v| v.expect("every claim has a verdict"))
            .collect())
    }

    fn verify_key(
        &self,
        seed: &[u8; 32],
        unit: &UnitId,
        indices: &[usize],
        claims: &[Claim],
    ) -> Result<Vec<(usize, Verdict)>> {
        let kernel = |source| MinerError::Kernel {
            unit: unit.to_string(),
            source,
        };
        let mut cache = Cache::new(self.flags).map_err(kernel)?;
        cache.init(&cpu_unit_key(seed, unit.as_bytes()));
        let memory = VmMemory::Cache(Arc::new(cache));
        // One VM per worker, each hashing a contiguous share of the claims pipelined.
        let share = indices.len().div_ceil(rayon::current_num_threads()).max(1);
        let shares: Vec<Result<Vec<(usize, Verdict)>>> = indices
            .par_chunks(share)
            .map(|chunk| {
                let mut vm = Vm::new(self.flags, memory.clone()).map_err(kernel)?;
                let inputs: Vec<[u8; 8]> =
                    chunk.iter().map(|&i| cpu_input(claims[i].nonce)).collect();
                let refs: Vec<&[u8]> = inputs.iter().map(|i| i.as_slice()).collect();
                Ok(chunk
                    .iter()
                    .zip(vm.hash_batch(&refs))
                    .map(|(&i, h)| (i, judge(&claims[i], Hash(h))))
                    .collect())
            })
            .collect();
        let mut out = Vec::with_capacity(indices.len());
        for share in shares {
            out.extend(share?);
        }
        Ok(out)
    }
}

impl Checker for Verifier {
    fn check(&self, claims: &[Claim]) -> std::result::Result<Vec<Verdict>, String> {
        self.verify(claims).map_err(|e| e.to_string())
    }
}

impl Verifier {
    /// GPU claims of one epoch: the light cache once, then each hash from it, in parallel.
    fn verify_gpu(
        &self,
        seed: &[u8; 32],
        indices: &[usize],
        claims: &[Claim],
    ) -> Vec<(usize, Verdict)> {
        let cache = LightCache::build(seed, &self.gpu);
        indices
            .par_iter()
            .map(|&i| {
                let claim = &claims[i];
                let keys = UnitKeys::new(seed, claim.unit.as_bytes());
                (
                    i,
                    judge(
                        claim,
                        Hash(hash_light(&cache, &keys, &self.gpu, claim.nonce)),
                    ),
                )
            })
            .collect()
    }
}

fn judge(claim: &Claim, hash: Hash) -> Verdict {
    if !claim.epoch.target(claim.kind).is_met_by(&hash.0) {
        Verdict::AboveTarget { hash }
    } else if let Some(claimed) = claim.hash.filter(|c| *c != hash) {
        Verdict::WrongHash { hash, claimed }
    } else {
        Verdict::Valid { hash }
    }
}
