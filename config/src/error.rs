//! Configuration errors: each names the file, the line when known, and the key.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, with the line (1-based) when known.
    File {
        /// The file.
        path: PathBuf,
        /// Line of the key, if it was found in the file.
        line: Option<usize>,
    },
    /// An environment variable override.
    Env(String),
    /// Built-in defaults (no file given).
    Defaults,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "config file {}, line {line}", path.display()),
            Source::File { path, line: None } => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{at}: not valid TOML: {message}")]
    Syntax {
        /// Where.
        at: Source,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown, has the wrong type, or holds a value that cannot work.
    #[error("{at}: key `{key}`: {message}")]
    Key {
        /// Where.
        at: Source,
        /// Dotted key path, e.g. `cpu.units[1].core`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}
