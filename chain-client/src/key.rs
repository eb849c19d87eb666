//! The provider's private key: from a file or the environment, never from the main config,
//! never in a log, an error or a metric.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;

use crate::{ChainError, Result};

/// Environment variable holding the key when no key file is configured.
pub const KEY_ENV: &str = "CAPMINER_PRIVATE_KEY";

/// Loads the signer from `key_file` (hex, optionally 0x-prefixed, surrounding whitespace
/// ignored) or, without a file, from `CAPMINER_PRIVATE_KEY`. Errors never contain key material.
pub fn load_signer(
    key_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PrivateKeySigner> {
    let (text, origin) = match key_file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                ChainError::Setup(format!(
                    "chain.key_file {}: cannot read: {e}",
                    path.display()
                ))
            })?,
            format!("chain.key_file {}", path.display()),
        ),
        None => (
            env(KEY_ENV).ok_or_else(|| {
                ChainError::Setup(format!(
                    "no provider key: set chain.key_file or the {KEY_ENV} environment variable"
                ))
            })?,
            format!("environment variable {KEY_ENV}"),
        ),
    };
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ChainError::Setup(format!(
            "{origin}: expected a private key as 64 hex digits"
        )));
    }
    hex.parse::<PrivateKeySigner>()
        .map_err(|_| ChainError::Setup(format!("{origin}: not a valid secp256k1 private key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn a_key_loads_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, format!("0x{KEY}\n")).unwrap();
        let signer = load_signer(Some(&file), |_| None).unwrap();
        // anvil's first development account
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let from_env = load_signer(None, |k| (k == KEY_ENV).then(|| KEY.to_string())).unwrap();
        assert_eq!(from_env.address(), signer.address());
    }

    #[test]
    fn errors_never_echo_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        let almost = &KEY[..63];
        std::fs::write(&file, almost).unwrap();
        let err = load_signer(Some(&file), |_| None).unwrap_err().to_string();
        assert!(!err.contains(almost), "{err}");
        assert!(err.contains("64 hex digits"), "{err}");
        let err = load_signer(None, |_| Some(format!("zz{}", &KEY[2..])))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&KEY[2..]), "{err}");
        let err = load_signer(None, |_| None).unwrap_err().to_string();
        assert!(err.contains(KEY_ENV), "{err}");
        // The signer's Debug does not print the key either.
        let signer = load_signer(None, |_| Some(KEY.to_string())).unwrap();
        assert!(!format!("{signer:?}").contains(KEY));
    }
}
