//! Errors of the GPU path: a missing or unusable adapter, a unit too large for one binding, a
//! failed readback. Cloneable and comparable, so a [`crate::KernelError`] can carry one typed.

/// Errors of the GPU path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No such adapter.
    #[error("no GPU adapter {0}")]
    NoAdapter(String),
    /// The device could not be opened.
    #[error("cannot open GPU {name}: {message}")]
    Open {
        /// Adapter name.
        name: String,
        /// wgpu's message.
        message: String,
    },
    /// A unit's dataset does not fit one storage binding.
    #[error(
        "a unit of {unit_bytes} bytes does not fit one storage binding of GPU {name} (at most {max_binding} bytes)"
    )]
    TooLarge {
        /// Adapter name.
        name: String,
        /// Requested unit size.
        unit_bytes: u64,
        /// The device's largest binding.
        max_binding: u64,
    },
    /// The kernel needs what the device lacks (a subgroup kernel without subgroups of 8).
    #[error("GPU {name} cannot run the {kernel} kernel: it has no subgroups of 8 or more")]
    Kernel {
        /// Adapter name.
        name: String,
        /// The kernel asked for.
        kernel: &'static str,
    },
    /// Reading results back failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
}
