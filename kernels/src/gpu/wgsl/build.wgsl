// ---------------------------------------------------------------- dataset build
// `build` writes halves of a unit's dataset from the epoch's light cache. The node count, the
// parents and the workgroup size are pipeline constants: `% NODES` is a mask when NODES is a
// power of two (the network's 2^18; `x % 2^k == x & (2^k - 1)`, so the result is identical),
// the parent loop is unrolled by 16 so `m[j % 16]` has a constant index, and a node's 4 loads
// are written out.

override NODES: u32 = 2u;
override NODES_MASK: u32 = 0u; // NODES - 1 when NODES is a power of two, else 0
override PARENTS: u32 = 1u;
override WG: u32 = 64u;

struct BuildParams {
    offset: u32, // first half of this dispatch
    total: u32,  // halves in the unit
    pad0: u32,
    pad1: u32,
    salt: array<vec4<u32>, 4>,
}

@group(0) @binding(0) var<uniform> build_params: BuildParams;
@group(0) @binding(1) var<storage, read> cache: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dataset_out: array<vec4<u32>>;

fn node_of(x: u32) -> u32 {
    if NODES_MASK != 0u {
        return x & NODES_MASK;
    }
    return x % NODES;
}

// One parent: m = fnv16(m, c[fnv(h ^ j, mj) mod NODES]).
fn parent(m: ptr<function, array<u32, 16>>, h: u32, j: u32, mj: u32) {
    let p = node_of(fnv(h ^ j, mj)) * 4u;
    let a = cache[p];
    let b = cache[p + 1u];
    let c = cache[p + 2u];
    let d = cache[p + 3u];
    (*m)[0] = fnv((*m)[0], a.x);
    (*m)[1] = fnv((*m)[1], a.y);
    (*m)[2] = fnv((*m)[2], a.z);
    (*m)[3] = fnv((*m)[3], a.w);
    (*m)[4] = fnv((*m)[4], b.x);
    (*m)[5] = fnv((*m)[5], b.y);
    (*m)[6] = fnv((*m)[6], b.z);
    (*m)[7] = fnv((*m)[7], b.w);
    (*m)[8] = fnv((*m)[8], c.x);
    (*m)[9] = fnv((*m)[9], c.y);
    (*m)[10] = fnv((*m)[10], c.z);
    (*m)[11] = fnv((*m)[11], c.w);
    (*m)[12] = fnv((*m)[12], d.x);
    (*m)[13] = fnv((*m)[13], d.y);
    (*m)[14] = fnv((*m)[14], d.z);
    (*m)[15] = fnv((*m)[15], d.w);
}

@compute @workgroup_size(WG)
fn build(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let h = build_params.offset + gid.x + gid.y * groups.x * WG;
    if h >= build_params.total {
        return;
    }
    let c = node_of(h) * 4u;
    var seed: array<u32, 16>;
    for (var q = 0u; q < 4u; q++) {
        let w = cache[c + q] ^ build_params.salt[q];
        seed[4u * q] = w.x;
        seed[4u * q + 1u] = w.y;
        seed[4u * q + 2u] = w.z;
        seed[4u * q + 3u] = w.w;
    }
    seed[0] = seed[0] ^ h;
    var m = x64(seed, 64u);
    // Unrolled by 16: j % 16 is the constant index of each line. The guards fold away when
    // PARENTS is a multiple of 16 (the network's 256).
    for (var j = 0u; j < PARENTS; j += 16u) {
        parent(&m, h, j, m[0]);
        if j + 1u < PARENTS { parent(&m, h, j + 1u, m[1]); }
        if j + 2u < PARENTS { parent(&m, h, j + 2u, m[2]); }
        if j + 3u < PARENTS { parent(&m, h, j + 3u, m[3]); }
        if j + 4u < PARENTS { parent(&m, h, j + 4u, m[4]); }
        if j + 5u < PARENTS { parent(&m, h, j + 5u, m[5]); }
        if j + 6u < PARENTS { parent(&m, h, j + 6u, m[6]); }
        if j + 7u < PARENTS { parent(&m, h, j + 7u, m[7]); }
        if j + 8u < PARENTS { parent(&m, h, j + 8u, m[8]); }
        if j + 9u < PARENTS { parent(&m, h, j + 9u, m[9]); }
        if j + 10u < PARENTS { parent(&m, h, j + 10u, m[10]); }
        if j + 11u < PARENTS { parent(&m, h, j + 11u, m[11]); }
        if j + 12u < PARENTS { parent(&m, h, j + 12u, m[12]); }
        if j + 13u < PARENTS { parent(&m, h, j + 13u, m[13]); }
        if j + 14u < PARENTS { parent(&m, h, j + 14u, m[14]); }
        if j + 15u < PARENTS { parent(&m, h, j + 15u, m[15]); }
    }
    let half = x64(m, 64u);
    for (var q = 0u; q < 4u; q++) {
        dataset_out[h * 4u + q] = vec4<u32>(half[4u * q], half[4u * q + 1u], half[4u * q + 2u], half[4u * q + 3u]);
    }
}
