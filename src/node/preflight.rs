//! What a node needs before anything starts, checked by `capminer run` before it starts
//! anything and by `config check` and `doctor` without starting anything: every problem found
//! at once, each naming the config file (and line) and the key, the OS error once.
//!
//! ```text
//!  network.profile  "capminer": `run` proves to capminer's network only (the Fluence profile
//!                   is served to Fluence's node by `capminer ccp`)
//!  log.level        parses as a tracing filter
//!  miner.state_dir  a directory, or creatable: its nearest existing ancestor is a directory
//!                   this user can write to (probed with an unnamed temporary file)
//!  api.token_file   readable by its owner only, not empty (when the API is enabled)
//!  chain.key_file   (or CAPMINER_PRIVATE_KEY) a private key, owner only (when chain.enabled)
//!  units            the node mines something: units, and without a chain targets a hash can
//!                   meet; on a chain, a contract address and unit ids that can be bound to
//!                   miner.provider (Config::validate_mining)
//! ```

use std::io::ErrorKind;
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use capminer_chain::ChainError;
use capminer_chain::key::{KeyProblem, KeySource, load_signer};
use capminer_config::{Config, ConfigError};
use capminer_protocol::NetworkProfile;

use crate::{api, logging};

/// What the checks found.
pub(crate) struct Preflight {
    /// The key the chain client signs with, when `chain.enabled` and it loads.
    pub(crate) signer: Option<PrivateKeySigner>,
    /// Every problem, in the order above.
    pub(crate) problems: Vec<ConfigError>,
}

/// Runs every check on `config`; `env` reads environment variables (the key's).
pub(crate) fn preflight(config: &Config, env: impl Fn(&str) -> Option<String>) -> Preflight {
    let mut problems = Vec::new();
    if let Err(e) = logging::filter(config) {
        problems.push(
            e.downcast::<ConfigError>()
                .unwrap_or_else(|e| config.key_error("log.level", format!("{e:#}"))),
        );
    }
    if let Some(why) = dir_problem(&config.miner.state_dir) {
        problems.push(config.key_error("miner.state_dir", why));
    }
    if config.api.enabled
        && let Some(path) = &config.api.token_file
        && let Err(e) = api::read_token(path)
    {
        problems.push(config.key_error("api.token_file", format!("{e:#}")));
    }
    let signer = if config.chain.enabled {
        match load_signer(KeySource::provider(config.chain.key_file.as_deref()), env) {
            Ok(signer) => Some(signer),
            Err(e) => {
                problems.push(key_problem(config, e));
                None
            }
        }
    } else {
        None
    };
    if let Err(e) = config.validate_mining(signer.as_ref().map(|s| s.address().0.0)) {
        problems.push(e);
    }
    Preflight { signer, problems }
}

impl Preflight {
    /// The signer, or an error listing every problem, one a line.
    pub(crate) fn into_result(self) -> anyhow::Result<Option<PrivateKeySigner>> {
        match self.problems.as_slice() {
            [] => Ok(self.signer),
            [one] => Err(anyhow::anyhow!("{one}")),
            many => {
                let lines: Vec<String> = many.iter().map(|p| format!("  {p}")).collect();
                Err(anyhow::anyhow!(
                    "{} settings cannot work:\n{}",
                    many.len(),
                    lines.join("\n")
                ))
            }
        }
    }

    /// Whether a problem was found with `key`.
    pub(crate) fn blames(&self, key: &str) -> bool {
        self.problems
            .iter()
            .any(|p| matches!(p, ConfigError::Key { key: k, .. } if k == key))
    }
}

/// Why `run` cannot serve `network.profile`: there is no Fluence chain client, Fluence's node
/// (nox) submits the proofs it reads from `capminer ccp`. Only `run` asks: a Fluence
/// configuration is valid (`config check`, `doctor`), for `capminer ccp`.
pub(crate) fn profile_problem(config: &Config) -> Option<ConfigError> {
    let profile = config.network.profile;
    (profile != NetworkProfile::Capminer).then(|| {
        config.key_error(
            "network.profile",
            format!(
                "is \"{}\": `capminer run` proves to capminer's network only; Fluence's node (nox) \
                 submits Fluence's proofs itself: serve it with `capminer ccp` on this configuration",
                profile.name()
            ),
        )
    })
}

/// Why the provider's key did not load, blamed on `chain.key_file` (never with key material).
fn key_problem(config: &Config, e: ChainError) -> ConfigError {
    let message = match (&e, &config.chain.key_file) {
        // It names the file itself.
        (
            ChainError::Key {
                problem: KeyProblem::Unreadable(e),
                ..
            },
            Some(_),
        ) => e.to_string(),
        (ChainError::Key { problem, .. }, Some(path)) => format!("{}: {problem}", path.display()),
        (ChainError::NoKey { env_var, .. }, _) => format!(
            "not set, and neither is the {env_var} environment variable: chain.enabled = true \
             needs the key this node signs with (the provider's, or a host's operator key)"
        ),
        _ => e.to_string(),
    };
    config.key_error("chain.key_file", message)
}

/// What stops `dir` from being (or becoming) a directory this process can write its files in.
fn dir_problem(dir: &Path) -> Option<String> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if existing == dir => {
                return Some(format!("{} is a file, not a directory", dir.display()));
            }
            Ok(_) => {
                return Some(format!(
                    "{} cannot be created: {} is a file",
                    dir.display(),
                    existing.display()
                ));
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                    _ => {
                        existing = Path::new(".");
                        break;
                    }
                }
            }
            Err(e) => return Some(format!("{}: {e}", existing.display())),
        }
    }
    // An unnamed temporary file: nothing is left behind, whatever happens.
    match tempfile::tempfile_in(existing) {
        Ok(_) => None,
        Err(e) if existing == dir => Some(format!("{} is not writable: {e}", dir.display())),
        Err(e) => Some(format!(
            "{} cannot be created: {} is not writable: {e}",
            dir.display(),
            existing.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::dir_problem;

    #[test]
    fn a_state_dir_must_be_a_writable_directory_or_creatable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(dir_problem(dir.path()), None);
        assert_eq!(dir_problem(&dir.path().join("new/deeper")), None);
        assert!(!dir.path().join("new").exists(), "nothing is created");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let why = dir_problem(&file).unwrap();
        assert!(why.ends_with("is a file, not a directory"), "{why}");
        let why = dir_problem(&file.join("state")).unwrap();
        assert!(
            why.ends_with(&format!("cannot be created: {} is a file", file.display())),
            "{why}"
        );
        // procfs refuses new files even to root.
        let why = dir_problem(Path::new("/proc/self/capminer-state")).unwrap();
        assert!(
            why.starts_with(
                "/proc/self/capminer-state cannot be created: /proc/self is not writable: "
            ),
            "{why}"
        );
    }
}
