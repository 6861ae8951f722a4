//! The one error type of this crate. Every variant that concerns the file's bytes names the
//! byte offset (from the start of the file) where the problem was found.

use std::fmt;

/// An error reading or writing a trace file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error from the underlying file or writer.
    Io(std::io::Error),
    /// The file does not start with the trace file magic.
    NotATrace { found: [u8; 8] },
    /// The file's major version is not one this reader reads.
    UnsupportedVersion { major: u16, minor: u16 },
    /// The bytes end before something that must be there.
    Truncated { offset: u64, expected: String },
    /// A stored checksum does not match the bytes it covers.
    ChecksumMismatch {
        offset: u64,
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    /// The bytes are there but do not hold what the format says they must.
    Malformed { offset: u64, expected: String },
    /// zstd failed to decompress a block.
    Decompress { offset: u64, message: String },
    /// The caller asked for something the format cannot represent.
    InvalidInput(String),
}

impl Error {
    /// The file offset the error concerns, where there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::NotATrace { .. } => Some(0),
            Error::UnsupportedVersion { .. } => Some(8),
            Error::Truncated { offset, .. }
            | Error::ChecksumMismatch { offset, .. }
            | Error::Malformed { offset, .. }
            | Error::Decompress { offset, .. } => Some(*offset),
            Error::Io(_) | Error::InvalidInput(_) => None,
        }
    }

    pub(crate) fn truncated(offset: u64, expected: impl Into<String>) -> Error {
        Error::Truncated {
            offset,
            expected: expected.into(),
        }
    }

    pub(crate) fn malformed(offset: u64, expected: impl Into<String>) -> Error {
        Error::Malformed {
            offset,
            expected: expected.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::NotATrace { found } => write!(
                f,
                "at offset 0: expected the trace file magic 89 47 53 4f 0d 0a 1a 0a, found {}: not a getsockopt trace file",
                hex(found)
            ),
            Error::UnsupportedVersion { major, minor } => write!(
                f,
                "at offset 8: this file is format version {major}.{minor}, this reader reads versions {}.x only; use a newer release of the tools",
                crate::VERSION_MAJOR
            ),
            Error::Truncated { offset, expected } => {
                write!(f, "at offset {offset}: file ends, expected {expected}")
            }
            Error::ChecksumMismatch {
                offset,
                what,
                stored,
                computed,
            } => write!(
                f,
                "at offset {offset}: checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x} (the file is corrupted)"
            ),
            Error::Malformed { offset, expected } => {
                write!(f, "at offset {offset}: expected {expected}")
            }
            Error::Decompress { offset, message } => {
                write!(f, "at offset {offset}: expected a zstd frame: {message}")
            }
            Error::InvalidInput(m) => write!(f, "{m}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}
