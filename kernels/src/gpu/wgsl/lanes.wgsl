// ---------------------------------------------------------------- search: the "lanes" kernel
// 8 lanes per hash (ethminer's layout): lane L of a group of 8 owns words 4L..4L+3 of `mix`
// (one vec4) and loads `dataset[p * 8 + L]`, so one access of the group is one coalesced
// 128-byte load. Each invocation owns one nonce and computes its seed and final compressions
// alone; the group walks its 8 nonces two at a time (two loads in flight a lane), the item
// index taken from the lane that owns word i % 32 through `share2` (a subgroup shuffle, or
// workgroup memory where subgroups are missing: `share_subgroup.wgsl`, `share_workgroup.wgsl`).
// Control flow is uniform: no invocation returns early (one past the range hashes a nonce it
// does not report), as subgroup operations and barriers need.
//
// Item count, access count and workgroup size are pipeline constants: `% ITEMS` is a mask
// when ITEMS is a power of two (the network's 2^23; identical results), the access loop is
// unrolled by 4 so the word of `mix` each step uses is a constant component.

override ITEMS: u32 = 1u;
override ITEMS_MASK: u32 = 0u; // ITEMS - 1 when ITEMS is a power of two, else 0
override ACCESSES: u32 = 64u;
override WG: u32 = 64u;

fn item_of(x: u32) -> u32 {
    if ITEMS_MASK != 0u {
        return x & ITEMS_MASK;
    }
    return x % ITEMS;
}

// Access i of two hashes at once: `c` is word i % 32 of each hash's mix as this lane holds
// it (meaningful in the owning lane only), `s0` each hash's s[0].
fn access(i: u32, c: vec2<u32>, s0: vec2<u32>, lane: u32, ma: ptr<function, vec4<u32>>, mb: ptr<function, vec4<u32>>) {
    let x = vec2<u32>(fnv(i ^ s0.x, c.x), fnv(i ^ s0.y, c.y));
    let p = share2(x, (i % 32u) / 4u);
    let da = dataset[item_of(p.x) * 8u + lane];
    let db = dataset[item_of(p.y) * 8u + lane];
    let prime = vec4<u32>(FNV_PRIME);
    *ma = (*ma * prime) ^ da;
    *mb = (*mb * prime) ^ db;
}

// Member h's seed, as this lane sees it: all 16 words, 4 at a time.
fn seed_from(s: array<u32, 16>, h: u32) -> array<u32, 16> {
    var out: array<u32, 16>;
    for (var q = 0u; q < 4u; q++) {
        let v = share4(vec4<u32>(s[4u * q], s[4u * q + 1u], s[4u * q + 2u], s[4u * q + 3u]), h);
        out[4u * q] = v.x;
        out[4u * q + 1u] = v.y;
        out[4u * q + 2u] = v.z;
        out[4u * q + 3u] = v.w;
    }
    return out;
}

// The hash of this invocation's nonce, computed with the 7 other lanes of its group; every
// lane of the group must call it together.
fn hash_lanes(nonce: vec2<u32>, lane: u32) -> array<u32, 8> {
    let s = seed_of(nonce.x, nonce.y);
    var tail: array<u32, 16>;
    let w = (lane % 4u) * 4u; // mix = s ‖ s: lane L starts with s[4(L mod 4)..]
    for (var h = 0u; h < 8u; h += 2u) {
        let sa = seed_from(s, h);
        let sb = seed_from(s, h + 1u);
        var ma = vec4<u32>(sa[w], sa[w + 1u], sa[w + 2u], sa[w + 3u]);
        var mb = vec4<u32>(sb[w], sb[w + 1u], sb[w + 2u], sb[w + 3u]);
        let s0 = vec2<u32>(sa[0], sb[0]);
        for (var i = 0u; i < ACCESSES; i += 4u) {
            access(i, vec2<u32>(ma.x, mb.x), s0, lane, &ma, &mb);
            if i + 1u < ACCESSES { access(i + 1u, vec2<u32>(ma.y, mb.y), s0, lane, &ma, &mb); }
            if i + 2u < ACCESSES { access(i + 2u, vec2<u32>(ma.z, mb.z), s0, lane, &ma, &mb); }
            if i + 3u < ACCESSES { access(i + 3u, vec2<u32>(ma.w, mb.w), s0, lane, &ma, &mb); }
        }
        // cmix word L of both hashes, gathered to their owners h and h + 1.
        let c = vec2<u32>(
            fnv(fnv(fnv(ma.x, ma.y), ma.z), ma.w),
            fnv(fnv(fnv(mb.x, mb.y), mb.z), mb.w),
        );
        for (var k = 0u; k < 8u; k++) {
            let v = share2(c, k);
            if lane == h {
                tail[k] = v.x;
            }
            if lane == h + 1u {
                tail[k] = v.y;
            }
        }
    }
    return finish(s, tail);
}

fn index_of(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

fn search_at(index: u32, lane: u32) {
    let nonce = nonce_of(index);
    let hash = hash_lanes(nonce, lane);
    if index < search_params.count {
        record(nonce, hash);
    }
}

fn hash_all_at(index: u32, lane: u32) {
    let hash = hash_lanes(nonce_of(index), lane);
    if index < search_params.count {
        store_hash(index, hash);
    }
}
