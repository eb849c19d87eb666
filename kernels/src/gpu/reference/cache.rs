//! The epoch's light cache: the nodes every unit's dataset is derived from, and all a verifier
//! keeps of an epoch.

use rayon::prelude::*;

use super::primitives::{bytes_of, x64, xor16};
use capminer_protocol::GpuChallenge;
use capminer_protocol::gpu::CACHE_ROUNDS;

/// The light cache of one epoch: `cache_bytes / 64` nodes of 16 words.
#[derive(Clone, PartialEq, Eq)]
pub struct LightCache {
    /// The nodes.
    pub nodes: Vec<[u32; 16]>,
}

impl std::fmt::Debug for LightCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LightCache({} nodes)", self.nodes.len())
    }
}

impl LightCache {
    /// Builds the cache of `seed`: `c[0] = X64("capminer/gpu/cache" ‖ seed)`,
    /// `c[i] = X64(c[i-1])`, then [`CACHE_ROUNDS`] rounds of
    /// `c[i] = X64(c[(i-1) mod n] XOR c[c[i].word0 mod n])`. Sequential by design.
    pub fn build(seed: &[u8; 32], params: &GpuChallenge) -> Self {
        let n = params.nodes() as usize;
        let mut nodes = Vec::with_capacity(n);
        nodes.push(x64(&[b"capminer/gpu/cache".as_slice(), seed].concat()));
        for i in 1..n {
            let previous = bytes_of(&nodes[i - 1]);
            nodes.push(x64(&previous));
        }
        for _ in 0..CACHE_ROUNDS {
            for i in 0..n {
                let v = nodes[i][0] as usize % n;
                let mixed = xor16(&nodes[(i + n - 1) % n], &nodes[v]);
                nodes[i] = x64(&bytes_of(&mixed));
            }
        }
        Self { nodes }
    }

    /// The nodes as one flat slice of words (what the GPU gets).
    pub fn words(&self) -> Vec<u32> {
        self.nodes
            .par_iter()
            .flat_map_iter(|n| n.iter().copied())
            .collect()
    }
}
