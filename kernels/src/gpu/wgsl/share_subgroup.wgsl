// ---------------------------------------------------------------- lanes: exchange by subgroup
// A group is 8 consecutive invocations of a subgroup (subgroups of 8 or more, a multiple of 8:
// checked by the host); `share*(x, src)` returns x as lane `src` of this group holds it.

var<private> group_base: u32;

fn share2(x: vec2<u32>, src: u32) -> vec2<u32> {
    return subgroupShuffle(x, group_base + src);
}

fn share4(x: vec4<u32>, src: u32) -> vec4<u32> {
    return subgroupShuffle(x, group_base + src);
}

@compute @workgroup_size(WG)
fn search(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    group_base = sid & ~7u;
    search_at(index_of(gid, groups), sid & 7u);
}

@compute @workgroup_size(WG)
fn hash_all(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
    group_base = sid & ~7u;
    hash_all_at(index_of(gid, groups), sid & 7u);
}
