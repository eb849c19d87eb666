//! The primitives every part of the GPU challenge's CPU reference is written in: BLAKE3 (a
//! 32-byte hash and a 64-byte extendable output), the FNV-1 step, and the little-endian
//! conversions between bytes and words. The light cache, the unit keys and the hashes all
//! import from here, and nothing here imports from them.

const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1 step: `a * 0x01000193 XOR b`, wrapping.
pub fn fnv(a: u32, b: u32) -> u32 {
    a.wrapping_mul(FNV_PRIME) ^ b
}

/// The first 64 bytes of BLAKE3's extendable output of `input`, as 16 little-endian words.
pub fn x64(input: &[u8]) -> [u32; 16] {
    let mut out = [0u8; 64];
    blake3::Hasher::new()
        .update(input)
        .finalize_xof()
        .fill(&mut out);
    words_of(&out)
}

/// BLAKE3 of `input` (32 bytes).
pub(super) fn b3(input: &[u8]) -> [u8; 32] {
    *blake3::hash(input).as_bytes()
}

/// Little-endian words of a byte string whose length is a multiple of 4.
pub(super) fn words_of<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut out = [0u32; N];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
    }
    out
}

/// 16 words as 64 little-endian bytes.
pub(super) fn bytes_of(words: &[u32; 16]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Word-wise XOR of two nodes.
pub(super) fn xor16(a: &[u32; 16], b: &[u32; 16]) -> [u32; 16] {
    std::array::from_fn(|k| a[k] ^ b[k])
}
