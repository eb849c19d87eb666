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
}

/// What the build pipeline depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct BuildKey {
    pub(super) nodes: u32,
    pub(super) parents: u32,
    pub(super) workgroup: u32,
}

impl BuildKey {
    pub(super) fn of(params: &GpuChallenge) -> Self {
        Self {
            nodes: params.nodes(),
            parents: params.parents,
            workgroup: super::WORKGROUP,
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

/// A WGSL module from `source`.
pub(super) fn module(device: &wgpu::Device, label: &str, source: String) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

pub(super) fn build_pipeline(device: &wgpu::Device, key: BuildKey) -> wgpu::ComputePipeline {
    let module = module(device, "build", [BLAKE3, BUILD].concat());
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
    let module = module(device, key.kernel.name(), key.kernel.source());
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
