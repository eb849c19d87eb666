//! The GPU challenge on any vendor's GPU through wgpu, and its CPU reference.
//!
//! ```text
//!  device     enumerate, DeviceInfo, GpuDevice      adapters, an open device, its pipelines
//!  kernel     Kernel, KernelChoice, Share           the WGSL kernels and their pipelines
//!  probe      Bandwidth                             the device's streaming and gather bandwidth
//!  cache      DeviceCache                           the epoch's light cache, once per device
//!  dataset    GpuDataset                            a unit's dataset in device memory, built there
//!  searcher   GpuSearcher, MAX_HITS, MAX_BATCH           the search kernel as a `Searcher`
//!  error      GpuError
//!  reference  LightCache, UnitKeys, hash_light, …   the same challenge in plain Rust on the CPU:
//!                                                   the specification, the verifier, the tests' oracle
//! ```
//!
//! WGSL is in `wgsl/` beside this file (see [`kernel`]'s table). The adapter's own limits are requested, so a
//! unit can use the largest binding the device allows (wgpu caps bindings at 2 GiB - 1,
//! lavapipe at 128 MiB); a unit that does not fit one binding is refused.

mod cache;
mod dataset;
mod device;
mod error;
pub mod kernel;
mod probe;
pub mod reference;
mod searcher;

pub use cache::DeviceCache;
pub use dataset::GpuDataset;
pub use device::{DeviceInfo, GpuDevice, enumerate};
pub use error::GpuError;
pub use kernel::{Kernel, KernelChoice, Share};
pub use probe::Bandwidth;
pub use searcher::{FIRST_BATCH, GpuSearcher, MAX_BATCH, MAX_HITS, Tuning, nonces_for_hits};

/// Invocations per workgroup of the build (`WG` in `build.wgsl`).
const WORKGROUP: u32 = 64;
/// Workgroups one dispatch row may have; more go into further rows.
const MAX_GROUPS_X: u32 = 65_535;

#[cfg(test)]
mod tests;
