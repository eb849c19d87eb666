//! Logging through `tracing`, to stderr, as text or JSON; the filter (`log.level`) can be
//! changed while the process runs (a config reload).

use std::io::IsTerminal;
use std::sync::OnceLock;

use capminer_config::{Config, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Parses a `log.level` filter, blaming the key of `config` when it is not one.
pub(crate) fn filter(config: &Config) -> anyhow::Result<EnvFilter> {
    Ok(EnvFilter::try_new(&config.log.level)
        .map_err(|e| config.key_error("log.level", format!("not a valid filter: {e}")))?)
}

/// Installs the global subscriber from `[log]`.
pub(crate) fn init(config: &Config) -> anyhow::Result<()> {
    let (filter, handle) = reload::Layer::new(filter(config)?);
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files and journals.
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json()).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    let _ = FILTER.set(handle);
    Ok(())
}

/// Replaces the filter of the installed subscriber (a no-op when none is installed).
pub(crate) fn set_filter(filter: EnvFilter) -> anyhow::Result<()> {
    if let Some(handle) = FILTER.get() {
        handle
            .reload(filter)
            .map_err(|e| anyhow::anyhow!("cannot change the log filter: {e}"))?;
    }
    Ok(())
}
