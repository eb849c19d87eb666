//! Files holding secrets (private keys, API tokens): read only if nobody but their owner can
//! read them, as ssh treats its keys. Errors name the file and the fix, never the content.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a secret file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// It could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error("{path}: readable by group or others (mode {mode:03o}): run chmod 600 {path}")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// The permission bits of `path` if group or others may read or write it.
pub fn exposed_mode(path: &Path) -> Result<Option<u32>, SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Reads a secret file, refusing one that group or others may read.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    if let Some(mode) = exposed_mode(path)? {
        return Err(SecretFileError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(|source| SecretFileError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_readable_files_are_read_and_errors_hold_no_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hunter2").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret_file(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("mode {mode:03o}")) && err.contains("chmod 600"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_secret_file(&path).unwrap(), "hunter2");
        }
        let err = read_secret_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
    }
}
