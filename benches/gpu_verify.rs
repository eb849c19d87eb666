//! Criterion: CPU verification of one GPU proof from the light cache, with the real network's
//! parameters (16 MiB cache, 1 GiB units, 256 parents, 64 accesses), of 64 side by side (a
//! verifier's batch, a GPU round's re-check), and the cache build.
//! Compare with Ethash light verification (1.76 ms a hash, 0.43 s cache build on the
//! project's machine). Run with `cargo bench --bench gpu_verify`.

use capminer_kernels::gpu::reference::{LightCache, UnitKeys, hash_light, hash_light_many};
use capminer_protocol::GpuChallenge;
use criterion::{Criterion, criterion_group, criterion_main};

fn verify(c: &mut Criterion) {
    let params = GpuChallenge::NETWORK;
    let seed = [0x42; 32];
    let cache = LightCache::build(&seed, &params);
    let keys = UnitKeys::new(&seed, &[0x17; 32]);
    let mut nonce = 0u64;
    c.bench_function(
        "verify one GPU proof (light cache, network parameters)",
        |b| {
            b.iter(|| {
                nonce += 1;
                hash_light(&cache, &keys, &params, nonce)
            })
        },
    );
    // A verifier's batch or a GPU round's re-check: 64 hashes of one unit, side by side.
    let mut out = [[0u8; 32]; 64];
    c.bench_function(
        "verify 64 GPU proofs side by side (light cache, network parameters)",
        |b| {
            b.iter(|| {
                let nonces: Vec<u64> = (0..64).map(|k| nonce + k).collect();
                nonce += 64;
                hash_light_many(&cache, &keys, &params, &nonces, &mut out);
                out[0]
            })
        },
    );
    let mut group = c.benchmark_group("light cache");
    group.sample_size(10);
    group.bench_function("build the 16 MiB light cache of an epoch", |b| {
        b.iter(|| LightCache::build(&seed, &params))
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
