// ---------------------------------------------------------------- bandwidth probe
// What the device's memory delivers to a kernel, to compare the search with: `stream` reads a
// buffer once, coalesced (each invocation a vec4 per step, the whole grid sweeping it);
// `gather` reads random 128-byte items, 8 lanes an item as the lanes kernel does, `ACCESSES`
// a group. Each invocation folds what it read into one word of `sink` so nothing is elided.

override WG: u32 = 256u;

struct ProbeParams {
    vec4s: u32,   // vec4s in the buffer
    items: u32,   // 128-byte items in the buffer
    accesses: u32, // items a group of 8 gathers
    threads: u32, // invocations in the grid
}

@group(0) @binding(0) var<uniform> probe: ProbeParams;
@group(0) @binding(1) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

fn probe_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

@compute @workgroup_size(WG)
fn stream(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = probe_index(gid, groups);
    if t >= probe.threads {
        return;
    }
    var acc = vec4<u32>(0u);
    for (var i = t; i < probe.vec4s; i += probe.threads) {
        acc = acc ^ data[i];
    }
    sink[t] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = probe_index(gid, groups);
    if t >= probe.threads {
        return;
    }
    let lane = t & 7u;
    var x = (t >> 3u) * 0x9E3779B9u + 0x7F4A7C15u;
    var acc = vec4<u32>(0u);
    for (var k = 0u; k < probe.accesses; k++) {
        // An xorshift step per access: the same item for the 8 lanes of a group.
        x = x ^ (x << 13u);
        x = x ^ (x >> 17u);
        x = x ^ (x << 5u);
        acc = acc ^ data[(x % probe.items) * 8u + lane];
    }
    sink[t] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
