//! The challenge's WGSL kernels and their pipelines: which search kernel runs ([`Kernel`], as
//! `gpu.kernel` asks for it: [`KernelChoice`]), the WGSL sources each is assembled from, and
//! the pipelines specialised for one set of challenge parameters (pipeline-overridable
//! constants), which [`super::GpuDevice`] caches.
//!
//! ```text
//!  blake3.wgsl           compression, X64, FNV                  every module
//!  build.wgsl            `build`                                 + blake3
//!  search_io.wgsl        parameters, bindings, nonce, target     every search module
//!  thread.wgsl           "thread": one invocation a hash, runtime parameters (the first kernel)
//!  lanes.wgsl            "lanes": 8 invocations a hash, constants
//!  share_subgroup.wgsl   lanes' exchange by subgroup shuffle
//!  share_workgroup.wgsl  lanes' exchange by workgroup memory (no subgroups)
//!  probe.wgsl            the bandwidth probe
//! ```

use capminer_protocol::GpuChallenge;

const BLAKE3: &str = include_str!("wgsl/blake3.wgsl");
const BUILD: &str = include_str!("wgsl/build.wgsl");
const SEARCH_IO: &str = include_str!("wgsl/search_io.wgsl");
const THREAD: &str = include_str!("wgsl/thread.wgsl");
const LANES: &str = include_str!("wgsl/lanes.wgsl");
const SHARE_SUBGROUP: &str = include_str!("wgsl/share_subgroup.wgsl");
const SHARE_WORKGROUP: &str = include_str!("wgsl/share_workgroup.wgsl");
pub(super) const PROBE: &str = include_str!("wgsl/probe.wgsl");

/// Which search kernel the operator asks for (`gpu.kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelChoice {
    /// The fastest the device supports: "lanes", by subgroup where it can.
    #[default]
    Auto,
    /// 8 invocations a hash, coalesced item loads.
    Lanes,
    /// One invocation a hash, the first kernel.
    Thread,
}

/// How the lanes of a hash exchange item indices, seeds and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Share {
    /// Subgroup shuffles (`wgpu::Features::SUBGROUP`, subgroups of at least 8).
    Subgroup,
    /// Workgroup memory between barriers: works everywhere.
    Workgroup,
}

/// A search kernel, as it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// One invocation a hash, parameters read at run time (the first kernel, for comparison).
    Thread,
    /// 8 invocations a hash, parameters as pipeline constants.
    Lanes(Share),
}

impl Kernel {
    /// Every kernel, for tests and the self-test (the subgroup one only where `subgroups`).
    pub fn all(subgroups: bool) -> Vec<Kernel> {
        let mut all = vec![Kernel::Thread, Kernel::Lanes(Share::Workgroup)];
        if subgroups {
            all.push(Kernel::Lanes(Share::Subgroup));
        }
        all
    }

    /// Its name in reports: "thread", "lanes/subgroup", "lanes/workgroup".
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Thread => "thread",
            Kernel::Lanes(Share::Subgroup) => "lanes/subgroup",
            Kernel::Lanes(Share::Workgroup) => "lanes/workgroup",
        }
    }

    /// The WGSL of its search module.
    fn source(&self) -> String {
        match self {
            Kernel::Thread => [BLAKE3, SEARCH_IO, THREAD].concat(),
            Kernel::Lanes(Share::Subgroup) => [BLAKE3, SEARCH_IO, LANES, SHARE_SUBGROUP].concat(),
            Kernel::Lanes(Share::Workgroup) => [BLAKE3, SEARCH_IO, LANES, SHARE_WORKGROUP].concat(),
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `n - 1` when `n` is a power of two (so `x % n == x & (n - 1)`), else 0 (use `%`).
fn mask_of(n: u32) -> f64 {
    if n.is_power_of_two() {
        f64::from(n - 1)
    } else {
        0.0
    }
}

/// What the pipelines of one search kernel depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SearchKey {
    pub(super) kernel: Kernel,
    pub(super) items: u32,
    pub(super) accesses: u32,
    pub(super) workgroup: u32,
    /// wgpu's runtime checks in the module (see [`module`]).
    pub(super) checks: bool,
}

/// What the build pipeline depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct BuildKey {
    pub(super) nodes: u32,
    pub(super) parents: u32,
    pub(super) workgroup: u32,
    /// wgpu's runtime checks in the module (see [`module`]).
    pub(super) checks: bool,
}

impl BuildKey {
    pub(super) fn of(params: &GpuChallenge, checks: bool) -> Self {
        Self {
            nodes: params.nodes(),
            parents: params.parents,
            workgroup: super::WORKGROUP,
            checks,
        }
    }
}

/// A search kernel's two entry points, specialised for one [`SearchKey`].
#[derive(Debug)]
pub(super) struct SearchPipelines {
    pub(super) search: wgpu::ComputePipeline,
    pub(super) hash_all: wgpu::ComputePipeline,
    /// Invocations a workgroup.
    pub(super) workgroup: u32,
}

/// A compute pipeline of `entry` in `module` with pipeline constants `constants`.
pub(super) fn pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            // Every workgroup variable is written before it is read (`share*`).
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}

/// A WGSL module from `source`; with `checks` false, without wgpu's runtime checks (the
/// bounds checks naga injects around every array access, the counters it adds to bound every
/// loop, the guards around integer division), which `gpu.runtime_checks = false` selects to
/// compare.
///
/// Every index in the challenge's modules is in bounds by construction, so the checks can
/// never fire:
/// - dataset reads: `item_of(x) * 8 + lane` (lanes) and `(x % items) * 8 + q` (thread), with
///   `item_of(x) < ITEMS`, `lane, q < 8`, and the dataset binding exactly `ITEMS * 128` bytes
///   (`GpuDataset::new` allocates `unit_bytes`, `ITEMS = unit_bytes / 128`, `items` written
///   by the host from the same parameters; `unit_bytes <= 2 GiB` keeps `ITEMS * 8` in a u32);
/// - cache reads in `build`: `node_of(h) * 4 + q`, `node_of(h) < NODES = cache_bytes / 64`,
///   `q < 4`, the cache binding exactly `cache_bytes`;
/// - dataset writes in `build`: guarded by `h < total` (two halves an item);
/// - result writes: slot `< max_hits` (`MAX_HITS`, the result buffer's slot count), word
///   `slot * 10 + 9` at most; `hashes_out[index * 8 + i]` with `index < count`, the buffer
///   `count * 32` bytes (`hash_range`);
/// - workgroup slots: `me < WG <= 256` (the arrays' length), `(me & !7) + src` with `src < 8`
///   and `WG` a multiple of 8;
/// - private arrays: constant indices or loop counters below the array's length
///   (`seed_from`'s `w + 3 <= 15`, `mix[(i % 32) / 4] < 8`, `tail[k]`, `k < 8`);
/// - every loop counts up to a constant or to a uniform (`ACCESSES`, `PARENTS`, `accesses`)
///   by a fixed step, so none is infinite;
/// - every division and `%` is of `u32`s by a constant or by `items`, `ITEMS` or `NODES`, at
///   least 1 and 2 (`GpuChallenge::validate`: `unit_bytes >= 128`, `cache_bytes >= 128`).
///
/// The bit-exact tests run the modules both ways.
pub(super) fn module(
    device: &wgpu::Device,
    label: &str,
    source: String,
    checks: bool,
) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    if checks {
        device.create_shader_module(desc)
    } else {
        // SAFETY: every access of these modules is in bounds and every loop ends, by the
        // construction stated above; the tests compare their results with the CPU reference.
        unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
    }
}

pub(super) fn build_pipeline(device: &wgpu::Device, key: BuildKey) -> wgpu::ComputePipeline {
    let module = module(device, "build", [BLAKE3, BUILD].concat(), key.checks);
    pipeline(
        device,
        &module,
        "build",
        &[
            ("NODES", f64::from(key.nodes)),
            ("NODES_MASK", mask_of(key.nodes)),
            ("PARENTS", f64::from(key.parents)),
            ("WG", f64::from(key.workgroup)),
        ],
    )
}

pub(super) fn search_pipelines(device: &wgpu::Device, key: SearchKey) -> SearchPipelines {
    let module = module(device, key.kernel.name(), key.kernel.source(), key.checks);
    let constants: Vec<(&str, f64)> = match key.kernel {
        Kernel::Thread => Vec::new(),
        Kernel::Lanes(_) => vec![
            ("ITEMS", f64::from(key.items)),
            ("ITEMS_MASK", mask_of(key.items)),
            ("ACCESSES", f64::from(key.accesses)),
            ("WG", f64::from(key.workgroup)),
        ],
    };
    SearchPipelines {
        search: pipeline(device, &module, "search", &constants),
        hash_all: pipeline(device, &module, "hash_all", &constants),
        workgroup: key.workgroup,
    }
}
