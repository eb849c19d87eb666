//! Blake2b-512 (RFC 7693, unkeyed) and RandomX's `Blake2Generator` (specification section 3.4).
//!
//! The generator holds a 64-byte buffer: the key (at most 60 bytes, zero-padded) followed by a
//! 32-bit little-endian nonce (0 for SuperscalarHash). Bytes and 32-bit little-endian words are
//! taken from the buffer in order; when a request does not fit in what is left, the whole buffer
//! is replaced by its own Blake2b-512 hash and reading restarts at its beginning. The buffer
//! starts "used up", so the first request hashes it.

const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

const SIGMA: [[usize; 16]; 12] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
];

/// One Blake2b compression of the 128-byte block `m`; `t` bytes hashed so far, `last` for the
/// final block.
fn compress(h: &mut [u64; 8], m: &[u64; 16], t: u64, last: bool) {
    let mut v = [0u64; 16];
    v[..8].copy_from_slice(h);
    v[8..].copy_from_slice(&IV);
    v[12] ^= t;
    if last {
        v[14] = !v[14];
    }
    for s in &SIGMA {
        let mut g = |a: usize, b: usize, c: usize, d: usize, x: u64, y: u64| {
            v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
            v[d] = (v[d] ^ v[a]).rotate_right(32);
            v[c] = v[c].wrapping_add(v[d]);
            v[b] = (v[b] ^ v[c]).rotate_right(24);
            v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
            v[d] = (v[d] ^ v[a]).rotate_right(16);
            v[c] = v[c].wrapping_add(v[d]);
            v[b] = (v[b] ^ v[c]).rotate_right(63);
        };
        g(0, 4, 8, 12, m[s[0]], m[s[1]]);
        g(1, 5, 9, 13, m[s[2]], m[s[3]]);
        g(2, 6, 10, 14, m[s[4]], m[s[5]]);
        g(3, 7, 11, 15, m[s[6]], m[s[7]]);
        g(0, 5, 10, 15, m[s[8]], m[s[9]]);
        g(1, 6, 11, 12, m[s[10]], m[s[11]]);
        g(2, 7, 8, 13, m[s[12]], m[s[13]]);
        g(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for i in 0..8 {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/// Blake2b with a 64-byte digest of a message of at most 128 bytes (all RandomX needs here).
pub(crate) fn blake2b_512(input: &[u8]) -> [u8; 64] {
    assert!(input.len() <= 128, "one-block Blake2b only");
    let mut h = IV;
    h[0] ^= 0x0101_0000 ^ 64; // digest length 64, no key, fanout 1, depth 1
    let mut block = [0u8; 128];
    block[..input.len()].copy_from_slice(input);
    let mut m = [0u64; 16];
    for (w, chunk) in m.iter_mut().zip(block.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    compress(&mut h, &m, input.len() as u64, true);
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(8).zip(h) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The largest key prefix the generator uses.
const MAX_SEED: usize = 60;

/// RandomX's pseudo-random byte stream for SuperscalarHash program generation.
#[derive(Debug, Clone)]
pub(crate) struct Blake2Generator {
    data: [u8; 64],
    index: usize,
}

impl Blake2Generator {
    /// The generator for `seed` (the RandomX key) and `nonce`.
    pub(crate) fn new(seed: &[u8], nonce: u32) -> Self {
        let mut data = [0u8; 64];
        let n = seed.len().min(MAX_SEED);
        data[..n].copy_from_slice(&seed[..n]);
        data[MAX_SEED..].copy_from_slice(&nonce.to_le_bytes());
        Self { data, index: 64 }
    }

    fn ensure(&mut self, bytes: usize) {
        if self.index + bytes > self.data.len() {
            self.data = blake2b_512(&self.data);
            self.index = 0;
        }
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> u8 {
        self.ensure(1);
        let b = self.data[self.index];
        self.index += 1;
        b
    }

    /// The next 32-bit little-endian word.
    pub(crate) fn u32(&mut self) -> u32 {
        self.ensure(4);
        let w = u32::from_le_bytes(
            self.data[self.index..self.index + 4]
                .try_into()
                .expect("4 bytes"),
        );
        self.index += 4;
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2b_512_known_answers() {
        // RFC 7693 appendix A ("abc") and the empty message.
        assert_eq!(
            hex::encode(blake2b_512(b"abc")),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1\
             7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        );
        assert_eq!(
            hex::encode(blake2b_512(b"")),
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419\
             d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce"
        );
    }
}
