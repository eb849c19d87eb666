// capminer's GPU challenge (docs/PROTOCOL.md, "GPU proofs"), u32 arithmetic only.
// Entry points: `build` writes a unit's dataset from the epoch's light cache; `search` hashes
// a range of nonces and records the ones at or below the target; `hash_all` writes every hash
// of a range (for checks against the CPU reference).

const IV = array<u32, 8>(
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
);
const CHUNK_START: u32 = 1u;
const CHUNK_END: u32 = 2u;
const ROOT: u32 = 8u;
const FNV_PRIME: u32 = 0x01000193u;
const WORKGROUP: u32 = 64u;
const HIT_WORDS: u32 = 10u; // nonce lo, nonce hi, 8 hash words

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

fn fnv(a: u32, b: u32) -> u32 {
    return (a * FNV_PRIME) ^ b;
}

fn g(v: ptr<function, array<u32, 16>>, a: u32, b: u32, c: u32, d: u32, mx: u32, my: u32) {
    (*v)[a] = (*v)[a] + (*v)[b] + mx;
    (*v)[d] = rotr((*v)[d] ^ (*v)[a], 16u);
    (*v)[c] = (*v)[c] + (*v)[d];
    (*v)[b] = rotr((*v)[b] ^ (*v)[c], 12u);
    (*v)[a] = (*v)[a] + (*v)[b] + my;
    (*v)[d] = rotr((*v)[d] ^ (*v)[a], 8u);
    (*v)[c] = (*v)[c] + (*v)[d];
    (*v)[b] = rotr((*v)[b] ^ (*v)[c], 7u);
}

// One BLAKE3 compression (chunk counter 0); returns all 16 output words.
fn compress(cv: array<u32, 8>, block: array<u32, 16>, block_len: u32, flags: u32) -> array<u32, 16> {
    var v = array<u32, 16>(
        cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        IV[0], IV[1], IV[2], IV[3], 0u, 0u, block_len, flags,
    );
    var m = block;
    for (var r = 0u; r < 7u; r++) {
        g(&v, 0u, 4u, 8u, 12u, m[0], m[1]);
        g(&v, 1u, 5u, 9u, 13u, m[2], m[3]);
        g(&v, 2u, 6u, 10u, 14u, m[4], m[5]);
        g(&v, 3u, 7u, 11u, 15u, m[6], m[7]);
        g(&v, 0u, 5u, 10u, 15u, m[8], m[9]);
        g(&v, 1u, 6u, 11u, 12u, m[10], m[11]);
        g(&v, 2u, 7u, 8u, 13u, m[12], m[13]);
        g(&v, 3u, 4u, 9u, 14u, m[14], m[15]);
        m = array<u32, 16>(
            m[2], m[6], m[3], m[10], m[7], m[0], m[4], m[13],
            m[1], m[11], m[12], m[5], m[9], m[14], m[15], m[8],
        );
    }
    var out: array<u32, 16>;
    for (var i = 0u; i < 8u; i++) {
        out[i] = v[i] ^ v[i + 8u];
        out[i + 8u] = v[i + 8u] ^ cv[i];
    }
    return out;
}

// The first 64 bytes of BLAKE3's output for an input of `len` <= 64 bytes held in `block`.
fn x64(block: array<u32, 16>, len: u32) -> array<u32, 16> {
    return compress(IV, block, len, CHUNK_START | CHUNK_END | ROOT);
}

fn bswap(x: u32) -> u32 {
    return (x >> 24u) | ((x >> 8u) & 0xff00u) | ((x << 8u) & 0xff0000u) | (x << 24u);
}

// ---------------------------------------------------------------- dataset build

struct BuildParams {
    nodes: u32,
    parents: u32,
    offset: u32, // first half of this dispatch
    total: u32,  // halves in the unit
    salt: array<vec4<u32>, 4>,
}

@group(0) @binding(0) var<uniform> build_params: BuildParams;
@group(0) @binding(1) var<storage, read> cache: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dataset_out: array<vec4<u32>>;

@compute @workgroup_size(64)
fn build(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let h = build_params.offset + gid.x + gid.y * groups.x * WORKGROUP;
    if h >= build_params.total {
        return;
    }
    let n = build_params.nodes;
    let c = (h % n) * 4u;
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
    for (var j = 0u; j < build_params.parents; j++) {
        let p = (fnv(h ^ j, m[j % 16u]) % n) * 4u;
        for (var q = 0u; q < 4u; q++) {
            let node = cache[p + q];
            m[4u * q] = fnv(m[4u * q], node.x);
            m[4u * q + 1u] = fnv(m[4u * q + 1u], node.y);
            m[4u * q + 2u] = fnv(m[4u * q + 2u], node.z);
            m[4u * q + 3u] = fnv(m[4u * q + 3u], node.w);
        }
    }
    let half = x64(m, 64u);
    for (var q = 0u; q < 4u; q++) {
        dataset_out[h * 4u + q] = vec4<u32>(half[4u * q], half[4u * q + 1u], half[4u * q + 2u], half[4u * q + 3u]);
    }
}

// ---------------------------------------------------------------- search

struct SearchParams {
    items: u32,
    accesses: u32,
    base_lo: u32,
    base_hi: u32,
    count: u32,
    max_hits: u32,
    pad0: u32,
    pad1: u32,
    header: array<vec4<u32>, 2>,
    target_be: array<vec4<u32>, 2>,
}

struct Results {
    count: atomic<u32>,
    data: array<u32>,
}

@group(0) @binding(0) var<uniform> search_params: SearchParams;
@group(0) @binding(1) var<storage, read> dataset: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> results: Results;
@group(0) @binding(3) var<storage, read_write> hashes_out: array<u32>;

fn word_of(a: array<vec4<u32>, 2>, i: u32) -> u32 {
    let v = a[i / 4u];
    switch i % 4u {
        case 0u: { return v.x; }
        case 1u: { return v.y; }
        case 2u: { return v.z; }
        default: { return v.w; }
    }
}

// The hash of nonce (lo, hi) for this unit.
fn hash_nonce(lo: u32, hi: u32) -> array<u32, 8> {
    var block: array<u32, 16>;
    for (var i = 0u; i < 8u; i++) {
        block[i] = word_of(search_params.header, i);
    }
    block[8] = lo;
    block[9] = hi;
    let s = x64(block, 40u);
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
    let first = compress(IV, s, 64u, CHUNK_START);
    let cv = array<u32, 8>(first[0], first[1], first[2], first[3], first[4], first[5], first[6], first[7]);
    let last = compress(cv, tail, 32u, CHUNK_END | ROOT);
    return array<u32, 8>(last[0], last[1], last[2], last[3], last[4], last[5], last[6], last[7]);
}

// Nonce of this invocation: base + index, as (lo, hi) with carry.
fn nonce_of(index: u32) -> vec2<u32> {
    let lo = search_params.base_lo + index;
    let carry = select(0u, 1u, lo < index);
    return vec2<u32>(lo, search_params.base_hi + carry);
}

// True when the hash, read big-endian, is at most the target.
fn meets(hash: array<u32, 8>) -> bool {
    for (var i = 0u; i < 8u; i++) {
        let h = bswap(hash[i]);
        let t = word_of(search_params.target_be, i);
        if h < t {
            return true;
        }
        if h > t {
            return false;
        }
    }
    return true;
}

@compute @workgroup_size(64)
fn search(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    if index >= search_params.count {
        return;
    }
    let nonce = nonce_of(index);
    let hash = hash_nonce(nonce.x, nonce.y);
    if meets(hash) {
        let slot = atomicAdd(&results.count, 1u);
        if slot < search_params.max_hits {
            let at = slot * HIT_WORDS;
            results.data[at] = nonce.x;
            results.data[at + 1u] = nonce.y;
            for (var i = 0u; i < 8u; i++) {
                results.data[at + 2u + i] = hash[i];
            }
        }
    }
}

@compute @workgroup_size(64)
fn hash_all(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * WORKGROUP;
    if index >= search_params.count {
        return;
    }
    let nonce = nonce_of(index);
    let hash = hash_nonce(nonce.x, nonce.y);
    for (var i = 0u; i < 8u; i++) {
        hashes_out[index * 8u + i] = hash[i];
    }
}
