//! Standard output for every command: written through [`write`] (or the `outln!` macro), so
//! that a reader that goes away (`capminer proofs export | head`) ends the command quietly with
//! status 0, and any other write error (a full disk: `> /dev/full`) is an error naming standard
//! output (status 2), never a panic.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe`: [`write`] turns it
//! into [`Closed`], which `main` recognizes in the error chain.

use std::io::Write;

/// The reader of standard output went away: the command ends quietly, with status 0 (as
/// `head`, `grep -q` and friends expect of the command they read from).
#[derive(Debug)]
pub(crate) struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for Closed {}

/// Writes `text` to standard output and flushes it: [`Closed`] if the reader went away, an
/// error naming standard output on any other failure.
pub(crate) fn write(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(Closed),
            _ => anyhow::anyhow!("cannot write to standard output: {e}"),
        })
}

/// Writes a formatted line to standard output through [`write`]; a `Result` to `?`.
macro_rules! outln {
    () => {
        $crate::output::write("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// True if `error` is (or was caused by) standard output closed by its reader.
pub(crate) fn is_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<Closed>())
}
