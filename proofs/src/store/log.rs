//! The append-only log file: framing, checksums, and recovery after a crash or corruption.
//!
//! Each record is framed as `magic "CMP1" ‖ len u32 LE ‖ crc32c(len ‖ payload) u32 LE ‖ payload`.
//! A crash can only tear the tail (everything before the last fsync is intact), so a bad record
//! with nothing valid after it is a torn tail and is cut off. A bad region followed by valid
//! records is corruption in the middle: its bytes are saved aside and the log is rewritten
//! with every valid record, so a good record is never lost either way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

const MAGIC: [u8; 4] = *b"CMP1";
const HEADER: usize = 12;
/// Largest payload accepted when scanning (a sanity bound against corrupt lengths).
const MAX_PAYLOAD: usize = 64 << 20;

/// Frames a payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    crc = crc32c::crc32c_append(crc, payload);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a valid record at `at`, and the record's total length.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + HEADER)?;
    if header[..4] != MAGIC {
        return None;
    }
    let len_bytes: [u8; 4] = header[4..8].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let actual = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    (crc == actual).then_some((payload, HEADER + len))
}

/// What scanning a log found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Valid payloads in file order.
    pub payloads: Vec<Vec<u8>>,
    /// Bytes after the last valid record that form no valid record (a torn write).
    pub torn_tail: Option<std::ops::Range<usize>>,
    /// Corrupt regions followed by valid records.
    pub corrupt: Vec<std::ops::Range<usize>>,
    /// Length of the valid prefix when there is no mid-file corruption.
    pub valid_len: usize,
}

/// Scans a whole log image. `accept` rejects payloads that checksum but do not decode.
pub fn scan(bytes: &[u8], accept: impl Fn(&[u8]) -> bool) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while at < bytes.len() {
        if let Some((payload, len)) = record_at(bytes, at).filter(|(p, _)| accept(p)) {
            scan.payloads.push(payload.to_vec());
            at += len;
            if scan.corrupt.is_empty() {
                scan.valid_len = at;
            }
            continue;
        }
        // Look for the next valid record after the bad byte.
        let next = (at + 1..bytes.len()).find(|&p| {
            bytes[p..].starts_with(&MAGIC) && record_at(bytes, p).is_some_and(|(pl, _)| accept(pl))
        });
        match next {
            Some(p) => {
                scan.corrupt.push(at..p);
                at = p;
            }
            None => {
                scan.torn_tail = Some(at..bytes.len());
                break;
            }
        }
    }
    scan
}

/// What a read-only look at the log (one that repairs nothing) skipped: the valid records
/// around it were read. A writable open repairs the same and says so in its [`Recovery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    /// The log file.
    pub path: PathBuf,
    /// Byte ranges that form no valid record, each with valid records after it (a flipped
    /// byte, an overwritten block), and about how many records each held.
    pub corrupt: Vec<(std::ops::Range<usize>, usize)>,
    /// Bytes after the last valid record that are no record being written (garbage appended,
    /// a whole record whose checksum fails), and about how many records they held.
    pub bad_tail: Option<(std::ops::Range<usize>, usize)>,
    /// An incomplete last record: a crash during its write (never acknowledged as stored), or
    /// a write in progress by the miner holding the store. Not damage.
    pub torn_tail: Option<std::ops::Range<usize>>,
}

impl Damage {
    /// What `scan` of `bytes` (the log at `path`) skipped.
    pub fn of(path: &Path, bytes: &[u8], scan: &Scan) -> Self {
        let records = |r: &std::ops::Range<usize>| {
            (r.start..r.end)
                .filter(|&p| bytes[p..].starts_with(&MAGIC))
                .count()
                .max(1)
        };
        let (torn_tail, bad_tail) = match &scan.torn_tail {
            Some(tail) if is_partial_record(&bytes[tail.clone()]) => (Some(tail.clone()), None),
            Some(tail) => (None, Some((tail.clone(), records(tail)))),
            None => (None, None),
        };
        Damage {
            path: path.to_path_buf(),
            corrupt: scan
                .corrupt
                .iter()
                .map(|r| (r.clone(), records(r)))
                .collect(),
            bad_tail,
            torn_tail,
        }
    }

    /// True if records were lost to damage (not counting a torn tail).
    pub fn is_damaged(&self) -> bool {
        !self.corrupt.is_empty() || self.bad_tail.is_some()
    }

    /// About how many records the damaged regions held.
    pub fn damaged_records(&self) -> usize {
        self.corrupt
            .iter()
            .chain(&self.bad_tail)
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regions: Vec<String> = self
            .corrupt
            .iter()
            .map(|(r, _)| format!("bytes {}..{}", r.start, r.end))
            .chain(
                self.bad_tail
                    .iter()
                    .map(|(r, _)| format!("bytes {}..{} at the end", r.start, r.end)),
            )
            .collect();
        if !regions.is_empty() {
            write!(
                f,
                "{}: {} damaged record(s) skipped ({}); the intact records around them were read",
                self.path.display(),
                self.damaged_records(),
                regions.join(", "),
            )?;
        }
        if let Some(t) = &self.torn_tail {
            if !regions.is_empty() {
                f.write_str("; ")?;
            } else {
                write!(f, "{}: ", self.path.display())?;
            }
            write!(
                f,
                "an incomplete last record skipped (bytes {}..{}: a crash during its write, or a write in progress)",
                t.start, t.end
            )?;
        }
        Ok(())
    }
}

/// True if `tail` is the beginning of a record cut short: part of a header, or a whole header
/// whose payload runs past the end.
fn is_partial_record(tail: &[u8]) -> bool {
    if tail.len() < HEADER {
        return MAGIC.starts_with(&tail[..tail.len().min(MAGIC.len())]);
    }
    let len = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]) as usize;
    tail[..4] == MAGIC && len <= MAX_PAYLOAD && HEADER + len > tail.len()
}

pub(super) fn io<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Fsyncs a directory, so a created or renamed file's entry is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync directory"))
}

/// Where the log's appends go: the file itself, or a layer over it that injects faults (the
/// tests cut power there: what was written but not synced is lost).
pub trait LogSink: std::fmt::Debug + Send {
    /// Writes all of `buf` at the end.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// Cuts the log back to `len` bytes.
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
}

impl LogSink for File {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
}

/// The open log, positioned for appends.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: Box<dyn LogSink>,
    len: u64,
    /// A rename of a rewritten image not yet made durable by a directory sync.
    dir_unsynced: bool,
}

/// What recovery did when the log was opened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records read.
    pub records: usize,
    /// Bytes of a torn tail cut off.
    pub torn_bytes: usize,
    /// Corrupt regions moved aside, with the files they were saved to.
    pub quarantined: Vec<(std::ops::Range<usize>, PathBuf)>,
}

impl Log {
    /// Opens (creating) the log, repairs it and returns its valid payloads.
    pub fn open(
        path: &Path,
        accept: impl Fn(&[u8]) -> bool,
    ) -> Result<(Log, Vec<Vec<u8>>, Recovery)> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path, "open"))?;
        if !existed {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path, "read"))?;
        let scan = scan(&bytes, accept);
        let mut recovery = Recovery {
            records: scan.payloads.len(),
            ..Recovery::default()
        };
        if !scan.corrupt.is_empty() {
            for region in &scan.corrupt {
                let aside = path.with_extension(format!("corrupt-at-{}", region.start));
                std::fs::write(&aside, &bytes[region.clone()])
                    .map_err(io(&aside, "save corrupt bytes"))?;
                tracing::error!(
                    "proof store {}: {} corrupt bytes at offset {} saved to {}; every valid record is kept",
                    path.display(),
                    region.len(),
                    region.start,
                    aside.display()
                );
                recovery.quarantined.push((region.clone(), aside));
            }
            file = rewrite(path, &scan.payloads)?;
        } else if let Some(tail) = &scan.torn_tail {
            tracing::warn!(
                "proof store {}: cut off a torn tail of {} bytes at offset {} (a write interrupted by a crash)",
                path.display(),
                tail.len(),
                tail.start
            );
            recovery.torn_bytes = tail.len();
            file.set_len(scan.valid_len as u64)
                .map_err(io(path, "truncate torn tail"))?;
            file.sync_all().map_err(io(path, "fsync"))?;
        }
        let len = file.metadata().map_err(io(path, "stat"))?.len();
        Ok((
            Log {
                path: path.to_path_buf(),
                file: Box::new(file),
                len,
                dir_unsynced: false,
            },
            scan.payloads,
            recovery,
        ))
    }

    /// Puts a layer between the log and its file (fault injection).
    pub fn wrap_sink(&mut self, wrap: impl FnOnce(Box<dyn LogSink>) -> Box<dyn LogSink>) {
        let file = std::mem::replace(&mut self.file, Box::new(NoSink));
        self.file = wrap(file);
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Continues on `file`, a rewritten image of this log (see [`Rewrite`]); a fault-injecting
    /// layer over the old file is dropped with it.
    pub fn install(&mut self, (file, synced): (File, bool)) -> Result<()> {
        self.len = file.metadata().map_err(io(&self.path, "stat"))?.len();
        self.file = Box::new(file);
        self.dir_unsynced = !synced;
        Ok(())
    }

    /// Appends one record and fsyncs it: when this returns `Ok`, the record is durable.
    pub fn append(&mut self, payload: &[u8]) -> Result<()> {
        if self.dir_unsynced {
            sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
            self.dir_unsynced = false;
        }
        let framed = frame(payload);
        let written = self
            .file
            .write_all(&framed)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Never leave a partial record for the next append to follow.
            let _ = self.file.set_len(self.len);
            return Err(io(&self.path, "append")(e));
        }
        self.len += framed.len() as u64;
        Ok(())
    }
}

/// A new image of a log being written beside it: [`Rewrite::begin`] writes the bulk without
/// holding up appends to the live log; [`Rewrite::finish`] adds what was appended meanwhile and
/// renames it over the log, durably. Until the rename the old log stays whole and current.
#[derive(Debug)]
pub struct Rewrite {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl Rewrite {
    /// Writes `payloads` (framed) into `<path>.rewrite` and fsyncs it.
    pub fn begin<'a>(path: &Path, payloads: impl IntoIterator<Item = &'a [u8]>) -> Result<Self> {
        let tmp = path.with_extension("rewrite");
        let mut file = File::create(&tmp).map_err(io(&tmp, "create"))?;
        let mut buf = Vec::new();
        for payload in payloads {
            buf.extend_from_slice(&frame(payload));
            if buf.len() >= 1 << 20 {
                Write::write_all(&mut file, &buf).map_err(io(&tmp, "write"))?;
                buf.clear();
            }
        }
        Write::write_all(&mut file, &buf).map_err(io(&tmp, "write"))?;
        file.sync_all().map_err(io(&tmp, "fsync"))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file,
        })
    }

    /// Appends `tail`, fsyncs, renames the image over the log and reopens it for appends. The
    /// flag says whether the rename is durable yet (its directory synced).
    pub fn finish<'a>(mut self, tail: impl IntoIterator<Item = &'a [u8]>) -> Result<(File, bool)> {
        let tmp = self.tmp.clone();
        let mut buf = Vec::new();
        for payload in tail {
            buf.extend_from_slice(&frame(payload));
        }
        Write::write_all(&mut self.file, &buf).map_err(io(&tmp, "write"))?;
        self.file.sync_all().map_err(io(&tmp, "fsync"))?;
        // Opened before the rename: once the name points at the new image, we hold it.
        let reopened = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&tmp)
            .map_err(io(&tmp, "reopen"))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path, "rename rewritten log"))?;
        // The name already points at the new image: appends must go there even if the
        // directory cannot be synced now (the log retries before its next append returns).
        let synced = sync_dir(self.path.parent().unwrap_or(Path::new(".")))
            .inspect_err(|e| tracing::error!("proof store: {e} after compacting; retrying"))
            .is_ok();
        Ok((reopened, synced))
    }

    /// Gives the rewrite up: removes its temporary file; the live log stays as it was.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes `payloads` into a fresh log beside `path` and renames it over `path`, durably.
fn rewrite(path: &Path, payloads: &[Vec<u8>]) -> Result<File> {
    let (file, synced) = Rewrite::begin(path, payloads.iter().map(Vec::as_slice))?.finish([])?;
    if !synced {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(payloads: &[&[u8]]) -> Vec<u8> {
        payloads.iter().flat_map(|p| frame(p)).collect()
    }

    #[test]
    fn frame_layout_is_magic_len_crc_payload() {
        let f = frame(b"abc");
        assert_eq!(&f[..4], b"CMP1");
        assert_eq!(&f[4..8], &[3, 0, 0, 0]);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[3, 0, 0, 0]), b"abc");
        assert_eq!(&f[8..12], &crc.to_le_bytes());
        assert_eq!(&f[12..], b"abc");
    }

    #[test]
    fn a_torn_tail_is_reported_and_valid_records_kept() {
        let mut bytes = image(&[b"one", b"two"]);
        let good = bytes.len();
        bytes.extend_from_slice(&frame(b"three")[..9]);
        let scan = scan(&bytes, |_| true);
        assert_eq!(scan.payloads, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(scan.torn_tail, Some(good..bytes.len()));
        assert_eq!(scan.valid_len, good);
        assert!(scan.corrupt.is_empty());
    }

    #[test]
    fn corruption_in_the_middle_keeps_the_records_after_it() {
        let mut bytes = image(&[b"one", b"two", b"three"]);
        let second = frame(b"one").len();
        bytes[second + 13] ^= 0xff; // flip a payload byte of "two"
        let scan = scan(&bytes, |_| true);
        assert_eq!(scan.payloads, vec![b"one".to_vec(), b"three".to_vec()]);
        assert_eq!(scan.corrupt, vec![second..second + frame(b"two").len()]);
        assert_eq!(scan.torn_tail, None);
    }
}

/// A placeholder while a sink is being wrapped.
#[derive(Debug)]
struct NoSink;

impl LogSink for NoSink {
    fn write_all(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("no sink"))
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::other("no sink"))
    }

    fn set_len(&mut self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no sink"))
    }
}
