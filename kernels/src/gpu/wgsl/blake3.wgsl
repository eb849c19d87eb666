// The primitives of capminer's GPU challenge (docs/PROTOCOL.md, "GPU proofs"), u32 arithmetic
// only: one BLAKE3 compression, X64, the FNV step. Every other WGSL file of the challenge is
// appended to this one.

const IV = array<u32, 8>(
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
);
const CHUNK_START: u32 = 1u;
const CHUNK_END: u32 = 2u;
const ROOT: u32 = 8u;
const FNV_PRIME: u32 = 0x01000193u;

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

