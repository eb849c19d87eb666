//! Independent verification of proofs, from the key alone (RandomX light mode).
//!
//! This is the one verification path: `capminer verify` and the verifier service both call
//! [`Verifier::verify`]. CPU claims are grouped by key (seed, unit): each key's 256 MiB cache
//! comes from the process's [`LightCaches`], which keys it once however many verifiers (or
//! shards, or retries) of the process ask for it, and every claim under it is hashed in
//! parallel, one VM per worker thread, pipelined. GPU
//! claims are grouped by epoch: the epoch's light cache is built once, and each claim's items
//! are rebuilt from it (`2 × parents` cache nodes per item read).

use std::collections::BTreeMap;
use std::sync::Arc;

use capminer_kernels::gpu::reference::{LOCKSTEP, LightCache, UnitKeys, hash_light_many};
use capminer_kernels::key::{cpu_input, cpu_unit_key};
use capminer_kernels::randomx::{LightCaches, RandomXFlags, RandomXOptions, Vm, VmMemory};
use capminer_proofs::{Hash, UnitId, UnitKind};
use capminer_protocol::GpuChallenge;
pub use capminer_protocol::{Checker, Claim, Verdict, VerifyError, VerifyErrorKind};
use rayon::prelude::*;

use capminer_kernels::KernelError;

use crate::{MinerError, Result};

/// Verifies claims: CPU proofs in RandomX light mode, GPU proofs from the light cache.
#[derive(Debug, Clone)]
pub struct Verifier {
    caches: Arc<LightCaches>,
    gpu: GpuChallenge,
}

impl Verifier {
    /// A verifier with these RandomX options (always run in light mode) and the network's GPU
    /// challenge parameters, sharing the process's light caches for those options.
    pub fn new(options: RandomXOptions, gpu: GpuChallenge) -> Result<Self> {
        let flags =
            RandomXFlags::resolve(&options.light()).map_err(|source| MinerError::Kernel {
                unit: "verifier".into(),
                source,
            })?;
        Ok(Self::with_caches(LightCaches::shared(flags), gpu))
    }

    /// A verifier over these light caches (their flags are its RandomX flags).
    pub fn with_caches(caches: Arc<LightCaches>, gpu: GpuChallenge) -> Self {
        Self { caches, gpu }
    }

    /// Its light caches.
    pub fn caches(&self) -> &Arc<LightCaches> {
        &self.caches
    }

    /// Verdicts for `claims`, in the same order, or why a claim could not be judged.
    pub fn verify(&self, claims: &[Claim]) -> Result<Vec<Verdict>, VerifyError> {
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
        let mut results: Vec<Result<Vec<(usize, Verdict)>, VerifyError>> = cpu
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
    ) -> Result<Vec<(usize, Verdict)>, VerifyError> {
        let kernel = |source| cannot_check(&claims[indices[0]], source);
        let cache = self
            .caches
            .get(&cpu_unit_key(seed, unit.as_bytes()))
            .map_err(kernel)?;
        let flags = self.caches.flags();
        let memory = VmMemory::Cache(cache);
        // One VM per worker, each hashing a contiguous share of the claims pipelined.
        let share = indices.len().div_ceil(rayon::current_num_threads()).max(1);
        let shares: Vec<Result<Vec<(usize, Verdict)>, VerifyError>> = indices
            .par_chunks(share)
            .map(|chunk| {
                let mut vm = Vm::new(flags, memory.clone()).map_err(kernel)?;
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
    fn check(&self, claims: &[Claim]) -> Result<Vec<Verdict>, VerifyError> {
        self.verify(claims)
    }
}

/// A kernel error met while checking `claim`, as the protocol's kinds: an allocation may
/// succeed later, flags this machine cannot run never will, the rest is a failed recomputation.
fn cannot_check(claim: &Claim, error: KernelError) -> VerifyError {
    let kind = match &error {
        KernelError::RandomXAlloc { .. } => VerifyErrorKind::Resources(error.to_string()),
        KernelError::UnsupportedFlag { .. } => VerifyErrorKind::Unsupported(error.to_string()),
        KernelError::VmSetup(_) | KernelError::Gpu(_) => VerifyErrorKind::Failed(error.to_string()),
    };
    VerifyError {
        claim: claim.id(),
        kind,
    }
}

impl Verifier {
    /// GPU claims of one epoch: the light cache once, then the hashes from it, in parallel,
    /// a unit's claims [`LOCKSTEP`] at a time side by side (their cache reads overlap).
    fn verify_gpu(
        &self,
        seed: &[u8; 32],
        indices: &[usize],
        claims: &[Claim],
    ) -> Vec<(usize, Verdict)> {
        let cache = LightCache::build(seed, &self.gpu);
        let mut by_unit: BTreeMap<UnitId, Vec<usize>> = BTreeMap::new();
        for &i in indices {
            by_unit.entry(claims[i].unit).or_default().push(i);
        }
        let batches: Vec<(UnitKeys, &[usize])> = by_unit
            .iter()
            .flat_map(|(unit, indices)| {
                let keys = UnitKeys::new(seed, unit.as_bytes());
                indices.chunks(LOCKSTEP).map(move |batch| (keys, batch))
            })
            .collect();
        batches
            .par_iter()
            .flat_map_iter(|(keys, batch)| {
                let nonces: Vec<u64> = batch.iter().map(|&i| claims[i].nonce).collect();
                let mut hashes = vec![[0u8; 32]; batch.len()];
                hash_light_many(&cache, keys, &self.gpu, &nonces, &mut hashes);
                batch
                    .iter()
                    .zip(hashes)
                    .map(|(&i, hash)| (i, judge(&claims[i], Hash(hash))))
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

#[cfg(test)]
mod tests {
    use capminer_proofs::{Epoch, Seed, Target};

    use super::*;

    /// `docs/PROTOCOL.md`: seed 0, unit 0, nonce 1.
    const SEED0_UNIT0_NONCE1: &str =
        "45d459d449c97906e78e027fd7df7f51ac61156a3b7ef568b10c0810d19d76c8";

    fn options() -> RandomXOptions {
        RandomXOptions {
            large_pages: false,
            ..RandomXOptions::default()
        }
    }

    /// `nonces` claims for each of `units`, in one epoch with seed 0 and an all-ones target.
    fn claims(units: &[u8], nonces: u64) -> Vec<Claim> {
        let epoch = Epoch {
            number: 1,
            seed: Seed([0; 32]),
            targets: [Target([0xff; 32]), Target([0xff; 32])],
        };
        units
            .iter()
            .flat_map(|&u| {
                (0..nonces).map(move |nonce| Claim {
                    unit: UnitId([u; 32]),
                    kind: UnitKind::Cpu,
                    epoch,
                    nonce,
                    hash: None,
                })
            })
            .collect()
    }

    #[test]
    fn verifiers_sharing_caches_build_each_key_once() {
        let flags = RandomXFlags::resolve(&options().light()).unwrap();
        let caches = Arc::new(LightCaches::new(flags, 4));
        let a = Verifier::with_caches(caches.clone(), GpuChallenge::NETWORK);
        let b = a.clone();
        let mut claims = claims(&[0, 1], 3);
        let want: [u8; 32] = hex::decode(SEED0_UNIT0_NONCE1).unwrap().try_into().unwrap();
        claims[1].hash = Some(Hash(want));
        claims[2].hash = Some(Hash(want)); // nonce 2: not its hash
        // Two verifiers (as two shards or parties of one process) at the same time.
        let (va, vb) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.verify(&claims).unwrap());
            let tb = s.spawn(|| b.verify(&claims).unwrap());
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert_eq!(va, vb);
        assert_eq!(caches.builds(), 2, "one build per key (seed, unit)");
        assert_eq!(va[1], Verdict::Valid { hash: Hash(want) });
        assert!(matches!(va[2], Verdict::WrongHash { .. }), "{:?}", va[2]);
        assert_eq!(va.iter().filter(|v| v.is_valid()).count(), 5);
        // Again, as a retry of the same unit-epochs: the kept caches serve it.
        assert_eq!(a.verify(&claims).unwrap(), va);
        assert_eq!(caches.builds(), 2);
    }

    #[test]
    fn verifiers_of_one_process_share_one_store() {
        let a = Verifier::new(options(), GpuChallenge::NETWORK).unwrap();
        let b = Verifier::new(options(), GpuChallenge::NETWORK).unwrap();
        assert!(Arc::ptr_eq(a.caches(), b.caches()));
    }
}
