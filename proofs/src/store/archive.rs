//! The archive: one file per settled epoch, out of the hot log and out of memory.
//!
//! When every proof of an epoch is terminal (final or skipped) and its window has closed,
//! nothing about it can change any more. [`ProofStore::archive_epoch`](super::ProofStore)
//! writes it to `archive/epoch-<n>.log` (the log's framing; records: the epoch, its proofs,
//! their states), durably ([`crate::durable`]: temporary file, fsync, rename, fsync of the
//! directory), and only
//! then drops it from the index and compacts the hot log without it. A crash between the two
//! leaves the epoch in both places, which opening the store notices and finishes.
//!
//! Export and verification read the archive back (`ProofStore::open_read_only`); the writing
//! miner never does, so its memory and its ticks stay the size of the epochs still open.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::log::{self, io, sync_dir};
use super::record::Record;
use crate::{Result, StoreError, durable};

/// The archive directory inside a store directory.
pub(super) const DIR: &str = "archive";

/// The file holding epoch `n`.
pub(super) fn path(store: &Path, n: u64) -> PathBuf {
    store.join(DIR).join(format!("epoch-{n}.log"))
}

/// The epochs archived in `store`, from the file names (ignoring anything else).
pub(super) fn epochs(store: &Path) -> Result<Vec<u64>> {
    let dir = store.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, "list")(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.map_err(io(&dir, "list"))?.file_name();
        let n = name
            .to_str()
            .and_then(|s| s.strip_prefix("epoch-"))
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok());
        out.extend(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes epoch `n`'s records durably.
pub(super) fn write(store: &Path, n: u64, records: &[Record]) -> Result<()> {
    let dir = store.join(DIR);
    let existed = dir.exists();
    std::fs::create_dir_all(&dir).map_err(io(&dir, "create directory"))?;
    if !existed {
        sync_dir(store)?;
    }
    durable::write(&path(store, n), |file| {
        records
            .iter()
            .try_for_each(|r| file.write_all(&log::frame(&r.encode())))
    })?;
    Ok(())
}

/// Reads epoch `n`'s records. An archive file is written whole before it is named, so any
/// record that does not check is damage, reported as such.
pub(super) fn read(store: &Path, n: u64) -> Result<Vec<Record>> {
    let p = path(store, n);
    let bytes = std::fs::read(&p).map_err(io(&p, "read"))?;
    let scan = log::scan(&bytes, |b| Record::decode(b).is_some());
    if scan.torn_tail.is_some() || !scan.corrupt.is_empty() {
        return Err(StoreError::Io {
            path: p,
            op: "read archive",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "damaged records (an archive file is written whole: restore it from a backup)",
            ),
        });
    }
    Ok(scan
        .payloads
        .iter()
        .filter_map(|b| Record::decode(b))
        .collect())
}
