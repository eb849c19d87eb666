// ---------------------------------------------------------------- search: the "thread" kernel
// One invocation per hash, every parameter read at run time from `search_params`: the kernel as
// first written, kept selectable (`gpu.kernel = "thread"`) to compare the others with.

const WORKGROUP: u32 = 64u;

// The hash of nonce (lo, hi) for this unit.
fn hash_nonce(lo: u32, hi: u32) -> array<u32, 8> {
    let s = seed_of(lo, hi);
    var mix: array<vec4<u32>, 8>;
    for (var q = 0u; q < 8u; q++) {
        let b = (q % 4u) * 4u;
        mix[q] = vec4<u32>(s[b], s[b + 1u], s[b + 2u], s[b + 3u]);
    }
    let prime = vec4<u32>(FNV_PRIME);
    for (var i = 0u; i < search_params.accesses; i++) {
        let lane = mix[(i % 32u) / 4u];
        var m: u32;
        switch i % 4u {
            case 0u: { m = lane.x; }
            case 1u: { m = lane.y; }
            case 2u: { m = lane.z; }
            default: { m = lane.w; }
        }
        let p = (fnv(i ^ s[0], m) % search_params.items) * 8u;
        for (var q = 0u; q < 8u; q++) {
            mix[q] = (mix[q] * prime) ^ dataset[p + q];
        }
    }
    var tail: array<u32, 16>;
    for (var q = 0u; q < 8u; q++) {
        let v = mix[q];
        tail[q] = fnv(fnv(fnv(v.x, v.y), v.z), v.w);
    }
    return finish(s, tail);
}

@compute @workgroup_size(64)
fn search(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    if index >= search_params.count {
        return;
    }
    let nonce = nonce_of(index);
    record(nonce, hash_nonce(nonce.x, nonce.y));
}

@compute @workgroup_size(64)
fn hash_all(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    if index >= search_params.count {
        return;
    }
    let nonce = nonce_of(index);
    store_hash(index, hash_nonce(nonce.x, nonce.y));
}
