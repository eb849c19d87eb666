//! Private keys (the provider's, a verifier's): from a file or the environment, never from the
//! main config, never in a log, an error or a metric.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;

use crate::{ChainError, Result};

/// Environment variable holding the provider's key when `chain.key_file` is not set.
pub const KEY_ENV: &str = "CAPMINER_PRIVATE_KEY";
/// Environment variable holding a verifier's key when `verifier.key_file` is not set.
pub const VERIFIER_KEY_ENV: &str = "CAPMINER_VERIFIER_KEY";

/// Where a key comes from: a config key naming a file, or an environment variable.
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    /// The config key of the file (`chain.key_file`).
    pub config_key: &'a str,
    /// The file, if configured.
    pub file: Option<&'a Path>,
    /// The environment variable used without a file.
    pub env_var: &'a str,
}

impl KeySource<'_> {
    /// The provider's key: `chain.key_file`, else `CAPMINER_PRIVATE_KEY`.
    pub fn provider(file: Option<&Path>) -> KeySource<'_> {
        KeySource {
            config_key: "chain.key_file",
            file,
            env_var: KEY_ENV,
        }
    }

    /// A verifier's key: `verifier.key_file`, else `CAPMINER_VERIFIER_KEY`.
    pub fn verifier(file: Option<&Path>) -> KeySource<'_> {
        KeySource {
            config_key: "verifier.key_file",
            file,
            env_var: VERIFIER_KEY_ENV,
        }
    }
}

/// Why a configured key could not be loaded; never with key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    /// The key file cannot be read, or others may read it.
    #[error(transparent)]
    Unreadable(#[from] capminer_config::secret::SecretFileError),
    /// The text is not 64 hex digits (optionally 0x-prefixed).
    #[error("expected a private key as 64 hex digits")]
    NotHex,
    /// 64 hex digits, but not a secp256k1 private key (zero, or not below the group order).
    #[error("not a valid secp256k1 private key")]
    NotAKey,
}

/// Loads a signer from the key file (hex, optionally 0x-prefixed, surrounding whitespace
/// ignored) or, without one, from the environment variable. Errors never contain key material.
pub fn load_signer(
    source: KeySource<'_>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PrivateKeySigner> {
    let (text, origin) = match source.file {
        Some(path) => (
            capminer_config::secret::read_secret_file(path).map_err(|e| ChainError::Key {
                origin: source.config_key.to_string(),
                problem: e.into(),
            })?,
            format!("{} {}", source.config_key, path.display()),
        ),
        None => (
            env(source.env_var).ok_or_else(|| ChainError::NoKey {
                config_key: source.config_key.to_string(),
                env_var: source.env_var.to_string(),
            })?,
            format!("environment variable {}", source.env_var),
        ),
    };
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let problem = |problem| ChainError::Key {
        origin: origin.clone(),
        problem,
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(problem(KeyProblem::NotHex));
    }
    hex.parse::<PrivateKeySigner>()
        .map_err(|_| problem(KeyProblem::NotAKey))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    /// Writes `text` to a key file only its owner can read.
    fn write_key(file: &std::path::Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(file, text).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_as_ssh_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        write_key(&file, KEY);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signer(KeySource::verifier(Some(&file)), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("verifier.key_file")
                && err.contains("mode 644")
                && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains(KEY), "{err}");
    }

    #[test]
    fn a_key_loads_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        write_key(&file, &format!("0x{KEY}\n"));
        let signer = load_signer(KeySource::provider(Some(&file)), |_| None).unwrap();
        // anvil's first development account
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let from_env = load_signer(KeySource::provider(None), |k| {
            (k == KEY_ENV).then(|| KEY.to_string())
        })
        .unwrap();
        assert_eq!(from_env.address(), signer.address());
        let verifier = load_signer(KeySource::verifier(None), |k| {
            (k == VERIFIER_KEY_ENV).then(|| KEY.to_string())
        })
        .unwrap();
        assert_eq!(verifier.address(), signer.address());
    }

    #[test]
    fn errors_never_echo_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let almost = &KEY[..63];
        write_key(&file, almost);
        let err = load_signer(KeySource::provider(Some(&file)), |_| None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(almost), "{err}");
        assert!(
            err.contains("chain.key_file") && err.contains("64 hex digits"),
            "{err}"
        );
        let err = load_signer(KeySource::provider(None), |_| {
            Some(format!("zz{}", &KEY[2..]))
        })
        .unwrap_err()
        .to_string();
        assert!(!err.contains(&KEY[2..]), "{err}");
        let err = load_signer(KeySource::verifier(None), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(VERIFIER_KEY_ENV) && err.contains("verifier.key_file"),
            "{err}"
        );
        // The signer's Debug does not print the key either.
        let signer = load_signer(KeySource::provider(None), |_| Some(KEY.to_string())).unwrap();
        assert!(!format!("{signer:?}").contains(KEY));
    }
}
