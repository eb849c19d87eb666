//! Errors of the miner. A variant that wraps another error keeps it as its `source`: an
//! `io::Error` of the OS, a typed kernel or store error.

use std::path::PathBuf;

/// Result alias for miner operations.
pub type Result<T, E = MinerError> = std::result::Result<T, E>;

/// What went wrong in the miner.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The configuration cannot work on this machine (names the key and where it was set).
    #[error(transparent)]
    Config(#[from] capminer_config::ConfigError),
    /// The CPU topology does not parse.
    #[error("CPU topology: {0}")]
    Topology(String),
    /// A system file the plan reads (the CPU topology in sysfs, `/proc/meminfo`) could not be
    /// read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
    /// A thread cannot be pinned to the CPUs asked for.
    #[error("thread pinning: {0}")]
    Pin(String),
    /// The OS refused to get or set a thread's CPU affinity.
    #[error("thread pinning: {call}: {source}")]
    Affinity {
        /// The call, with its arguments.
        call: String,
        /// The OS's error.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("unit {unit} stopped: cannot spawn thread: {source}")]
    Spawn {
        /// Unit label ("supervisor" for the watchdog's thread).
        unit: String,
        /// The OS's error.
        source: std::io::Error,
    },
    /// A GPU could not be opened while the units were planned.
    #[error("GPU {index}: {source}")]
    Device {
        /// The adapter's index in the enumeration.
        index: usize,
        /// What went wrong.
        source: capminer_kernels::gpu::GpuError,
    },
    /// A kernel failed (allocation, unsupported flag).
    #[error("unit {unit}: {source}")]
    Kernel {
        /// Unit label.
        unit: String,
        /// The kernel error.
        source: capminer_kernels::KernelError,
    },
    /// The proof store failed.
    #[error(transparent)]
    Store(#[from] capminer_proofs::StoreError),
    /// A unit thread panicked.
    #[error("unit {unit}: a thread panicked: {message}")]
    Panicked {
        /// Unit label.
        unit: String,
        /// The panic's message.
        message: String,
    },
    /// A unit thread died.
    #[error("unit {unit} stopped: {reason}")]
    UnitFailed {
        /// Unit label.
        unit: String,
        /// Why.
        reason: String,
    },
}

/// The message of a panic's payload (a `&str` or a `String`; anything else said so).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
