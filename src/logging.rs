//! Logging through `tracing`, to stderr, as text or JSON.

use std::io::IsTerminal;

use capminer_config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber from `[log]`.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log.level)
        .map_err(|e| config.key_error("log.level", format!("not a valid filter: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files and journals.
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
