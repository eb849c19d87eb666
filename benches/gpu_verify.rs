//! Criterion: CPU verification of one GPU proof from the light cache, with the real network's
//! parameters (16 MiB cache, 1 GiB units, 256 parents, 64 accesses), and the cache build.
//! Compare with Ethash light verification (1.76 ms a hash, 0.43 s cache build on the
//! project's machine). Run with `cargo bench --bench gpu_verify`.

use capminer_kernels::gpu::reference::{LightCache, UnitKeys, hash_light};
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
    let mut group = c.benchmark_group("light cache");
    group.sample_size(10);
    group.bench_function("build the 16 MiB light cache of an epoch", |b| {
        b.iter(|| LightCache::build(&seed, &params))
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
