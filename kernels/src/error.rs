//! Errors of the compute kernels.

/// Result alias for kernel operations.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// What went wrong in a kernel, with what the reader needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KernelError {
    /// RandomX could not allocate a structure even with normal pages.
    #[error(
        "RandomX could not allocate its {what} ({bytes} bytes) even with normal pages: out of memory?"
    )]
    RandomXAlloc {
        /// Which structure: "cache", "dataset" or "VM".
        what: &'static str,
        /// How much memory it needed.
        bytes: u64,
    },
    /// The requested RandomX flags cannot work on this CPU or build.
    #[error("RandomX flag {flag} was requested but {reason}")]
    UnsupportedFlag {
        /// Flag name as in the config (`jit`, `hard_aes`, `argon2 = "avx2"`, ...).
        flag: &'static str,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A full-memory VM was asked for without a dataset, or a light VM without a cache.
    #[error("RandomX VM needs {0}")]
    VmSetup(&'static str),
    /// The GPU failed.
    #[error("GPU: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
}
