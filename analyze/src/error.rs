//! How `analyze` ends when it does not end well: every exit code but 0 belongs to one variant
//! of [`AppError`], and `--help` lists them from the same table.

use std::fmt;
use std::io;

/// Exit code: `verify` found problems, or a damaged file was read only in part.
pub const EXIT_DAMAGED: u8 = 1;
/// Exit code: bad command line (unknown option, bad `--where`, ...).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: an input is not a trace, is from an unsupported version, or cannot be read; or
/// the output cannot be written.
pub const EXIT_UNREADABLE: u8 = 3;
/// Exit code: Ctrl-C stopped `replay` (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Every exit code and what it means, for `--help`.
const EXIT_CODES: [(u8, &str); 5] = [
    (
        0,
        "success (also when the reader of stdout closes it early, as `| head` does)",
    ),
    (
        EXIT_DAMAGED,
        "verify found problems, or a damaged input was read only in part (stderr says what was skipped)",
    ),
    (
        EXIT_USAGE,
        "bad command line (unknown option, bad --where expression, ...)",
    ),
    (
        EXIT_UNREADABLE,
        "an input is not a trace file, is from an unsupported format version, or cannot be read; or an output cannot be written",
    ),
    (
        EXIT_INTERRUPTED,
        "replay was stopped by Ctrl-C (between two lines)",
    ),
];

/// The `Exit status:` paragraph of `--help`.
pub fn exit_status_help() -> String {
    let mut s = String::from("Exit status:\n");
    for (code, what) in EXIT_CODES {
        s.push_str(&format!("  {code:<3} {what}\n"));
    }
    s
}

/// Why the program ends with a non-zero exit code. The messages are one line, without the
/// `analyze:` prefix; the variants without one have said what was wrong already.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// Bad command line.
    Usage(String),
    /// An input that cannot be read at all.
    Unreadable(String),
    /// Inputs that cannot be read, each reported on stderr already (`verify` goes on past them).
    UnreadableReported,
    /// A damaged input; what is wrong with it is written out already.
    Damaged,
    /// An output file that cannot be created or written.
    Output(String),
    /// Writing stdout failed. A closed pipe is not a failure: [`crate::run`] exits 0 for it.
    Write(io::Error),
    /// Ctrl-C; what was written so far is flushed.
    Interrupted,
}

impl AppError {
    pub fn usage(message: impl Into<String>) -> AppError {
        AppError::Usage(message.into())
    }

    /// The exit code this ending owns.
    pub fn code(&self) -> u8 {
        match self {
            AppError::Damaged => EXIT_DAMAGED,
            AppError::Usage(_) => EXIT_USAGE,
            AppError::Unreadable(_)
            | AppError::UnreadableReported
            | AppError::Output(_)
            | AppError::Write(_) => EXIT_UNREADABLE,
            AppError::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// `analyze events x | head`: the reader has what it wanted.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, AppError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// The line for stderr, or nothing for the endings that have been reported already.
impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Usage(m) | AppError::Unreadable(m) | AppError::Output(m) => f.write_str(m),
            AppError::Write(e) => write!(f, "writing the output: {e}"),
            AppError::UnreadableReported | AppError::Damaged | AppError::Interrupted => Ok(()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<io::Error> for AppError {
    fn from(e: io::Error) -> AppError {
        AppError::Write(e)
    }
}

impl From<crate::filter::FilterError> for AppError {
    fn from(e: crate::filter::FilterError) -> AppError {
        AppError::usage(e.0)
    }
}
