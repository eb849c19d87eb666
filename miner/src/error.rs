//! Errors of the miner.

/// Result alias for miner operations.
pub type Result<T, E = MinerError> = std::result::Result<T, E>;

/// What went wrong in the miner.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The configuration cannot work on this machine (names the key and where it was set).
    #[error(transparent)]
    Config(#[from] capminer_config::ConfigError),
    /// The CPU topology could not be read.
    #[error("CPU topology: {0}")]
    Topology(String),
    /// A thread could not be pinned.
    #[error("thread pinning: {0}")]
    Pin(String),
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
