//! Durable whole-file writes, the one copy: the proof store's archive files and the verifier's
//! progress file are written this way. A file is replaced atomically, so that after a crash it
//! holds either its old content or the new one, whole: the new content goes to a temporary
//! file beside it (`<name>.tmp`), which is fsynced, renamed over the file, and the directory is
//! fsynced so that the rename itself survives.
//!
//! Blocking (every step may wait on the disk): async callers run it on a blocking thread.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// A durable write that failed: which file or directory, and at which step.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {source}")]
pub struct DurableError {
    /// The file or directory the step was on (the temporary file until the rename).
    pub path: PathBuf,
    /// The step: `create`, `write`, `fsync`, `rename` or `fsync directory`.
    pub op: &'static str,
    /// The OS error.
    pub source: std::io::Error,
}

impl From<DurableError> for StoreError {
    fn from(e: DurableError) -> Self {
        StoreError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

/// The temporary file a durable write of `path` fills first: `<name>.tmp` beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `path` durably: `fill` writes the content into a new temporary file beside it (see
/// [`temp_path`]), which is fsynced and renamed over `path`; then the directory is fsynced.
/// The directory must exist. On an error `path` is untouched (a temporary file may be left,
/// and is overwritten by the next write).
pub fn write(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), DurableError> {
    let step = |path: &Path, op: &'static str| {
        let path = path.to_path_buf();
        move |source| DurableError { path, op, source }
    };
    let tmp = temp_path(path);
    let mut file = File::create(&tmp).map_err(step(&tmp, "create"))?;
    fill(&mut file).map_err(step(&tmp, "write"))?;
    file.sync_all().map_err(step(&tmp, "fsync"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(step(path, "rename"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step(dir, "fsync directory"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, |f| f.write_all(b"first")).unwrap();
        write(&path, |f| f.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!temp_path(&path).exists());
        assert_eq!(temp_path(&path), dir.path().join("state.json.tmp"));
    }

    #[test]
    fn a_failed_write_leaves_the_file_as_it_was_and_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, |f| f.write_all(b"kept")).unwrap();
        let err = write(&path, |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert_eq!(err.op, "write");
        assert_eq!(err.path, temp_path(&path));
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        let missing = dir.path().join("no-such-dir").join("state.json");
        let err = write(&missing, |f| f.write_all(b"x")).unwrap_err();
        assert_eq!(err.op, "create");
    }
}
