//! The verifier's progress on disk: the next epoch to verify, per contract, written atomically
//! and durably (`capminer_proofs::durable`) so a restart resumes there.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use capminer_config::Shard;

use crate::{ChainError, Result};

/// The verifier's progress on disk: the next epoch to verify, per contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Progress {
    pub(super) contract: Address,
    pub(super) next_epoch: u64,
}

/// `progress.json`, or `progress-shard-I-of-N.json` for shard `I/N`, so shards may share a
/// directory.
fn progress_path(dir: &Path, shard: Shard) -> PathBuf {
    if shard == Shard::WHOLE {
        dir.join("progress.json")
    } else {
        dir.join(format!(
            "progress-shard-{}-of-{}.json",
            shard.index, shard.count
        ))
    }
}

/// What the progress file is called in errors.
const FILE: &str = "verifier progress file";

/// The next epoch to verify for `contract`, from the progress file in `dir` (0: none yet, or
/// the file is another contract's).
pub(super) fn load_progress(dir: &Path, shard: Shard, contract: Address) -> Result<u64> {
    let path = progress_path(dir, shard);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let p: Progress =
                serde_json::from_str(&text).map_err(|source| ChainError::BadFile {
                    file: FILE,
                    path: path.clone(),
                    source,
                })?;
            Ok(if p.contract == contract {
                p.next_epoch
            } else {
                0
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(ChainError::Io {
            file: FILE,
            path,
            op: "read",
            source,
        }),
    }
}

/// Writes the progress atomically and durably ([`capminer_proofs::durable`]). Blocking: the
/// service calls it on the blocking pool.
pub(super) fn save_progress(dir: &Path, shard: Shard, progress: Progress) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|source| ChainError::Io {
        file: FILE,
        path: dir.to_path_buf(),
        op: "create directory",
        source,
    })?;
    let text = serde_json::to_string(&progress).expect("progress serializes");
    capminer_proofs::durable::write(&progress_path(dir, shard), |f| f.write_all(text.as_bytes()))
        .map_err(ChainError::durable(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_and_is_per_contract_and_shard() {
        let dir = tempfile::tempdir().unwrap();
        let a = Address::repeat_byte(1);
        let whole = Shard::WHOLE;
        let half = Shard { index: 1, count: 2 };
        assert_eq!(load_progress(dir.path(), whole, a).unwrap(), 0);
        save_progress(
            dir.path(),
            whole,
            Progress {
                contract: a,
                next_epoch: 7,
            },
        )
        .unwrap();
        assert_eq!(load_progress(dir.path(), whole, a).unwrap(), 7);
        assert_eq!(
            load_progress(dir.path(), whole, Address::repeat_byte(2)).unwrap(),
            0,
            "another contract starts over"
        );
        assert_eq!(
            load_progress(dir.path(), half, a).unwrap(),
            0,
            "a shard has its own progress"
        );
        save_progress(
            dir.path(),
            half,
            Progress {
                contract: a,
                next_epoch: 3,
            },
        )
        .unwrap();
        assert_eq!(load_progress(dir.path(), half, a).unwrap(), 3);
        assert_eq!(load_progress(dir.path(), whole, a).unwrap(), 7, "untouched");
        assert!(dir.path().join("progress-shard-1-of-2.json").exists());
    }
}
