// ---------------------------------------------------------------- lanes: exchange by workgroup memory
// The fallback where subgroups are missing (or too small): a group is 8 consecutive invocations
// of the workgroup; `share*(x, src)` writes x to this invocation's slot and reads lane `src`'s
// between two barriers (WG is at most 256, checked by the host).

var<workgroup> slots2: array<vec2<u32>, 256>;
var<workgroup> slots4: array<vec4<u32>, 256>;
var<private> me: u32;

fn share2(x: vec2<u32>, src: u32) -> vec2<u32> {
    slots2[me] = x;
    workgroupBarrier();
    let v = slots2[(me & ~7u) + src];
    workgroupBarrier();
    return v;
}

fn share4(x: vec4<u32>, src: u32) -> vec4<u32> {
    slots4[me] = x;
    workgroupBarrier();
    let v = slots4[(me & ~7u) + src];
    workgroupBarrier();
    return v;
}

@compute @workgroup_size(WG)
fn search(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    me = lid;
    search_at(index_of(gid, groups), lid & 7u);
}

@compute @workgroup_size(WG)
fn hash_all(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    me = lid;
    hash_all_at(index_of(gid, groups), lid & 7u);
}
