// ---------------------------------------------------------------- search: inputs and outputs
// What every search kernel shares: its parameters, the dataset and result bindings, the nonce
// of an invocation, the target comparison and the recording of a hit.

const HIT_WORDS: u32 = 10u; // nonce lo, nonce hi, 8 hash words

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

// s = X64(header ‖ nonce LE) of nonce (lo, hi).
fn seed_of(lo: u32, hi: u32) -> array<u32, 16> {
    var block: array<u32, 16>;
    for (var i = 0u; i < 8u; i++) {
        block[i] = word_of(search_params.header, i);
    }
    block[8] = lo;
    block[9] = hi;
    return x64(block, 40u);
}

// hash = BLAKE3(s ‖ cmix) over 96 bytes, cmix in tail[0..8].
fn finish(s: array<u32, 16>, tail: array<u32, 16>) -> array<u32, 8> {
    let first = compress(IV, s, 64u, CHUNK_START);
    let cv = array<u32, 8>(first[0], first[1], first[2], first[3], first[4], first[5], first[6], first[7]);
    let last = compress(cv, tail, 32u, CHUNK_END | ROOT);
    return array<u32, 8>(last[0], last[1], last[2], last[3], last[4], last[5], last[6], last[7]);
}

// Nonce of invocation `index`: base + index, as (lo, hi) with carry.
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

// Records a hash at or below the target in the result buffer.
fn record(nonce: vec2<u32>, hash: array<u32, 8>) {
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

// Writes a hash to `hashes_out` (hash_all).
fn store_hash(index: u32, hash: array<u32, 8>) {
    for (var i = 0u; i < 8u; i++) {
        hashes_out[index * 8u + i] = hash[i];
    }
}
