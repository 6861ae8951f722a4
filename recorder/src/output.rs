//! Opening the recorder's output files (the first, every rotated one) without trusting what
//! already sits at their path: the recorder runs as root in directories other users may write.
//!
//! The last component is never followed when it is a symlink (O_NOFOLLOW), a new file is created
//! with O_EXCL, and an existing one is reused only when the opened descriptor itself is a regular
//! file owned by the user the recorder writes as. Every check and the mode change act on the
//! descriptor, so nothing can be swapped in between the check and the write.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// Trace files hold names and option values: only their owner reads them.
const MODE: u32 = 0o600;

/// Why an output path was refused; the message is what the user sees after the path.
#[derive(Debug)]
pub enum OutputError {
    /// Something other than a regular file is at the path.
    NotRegular(&'static str),
    /// A regular file owned by another user.
    OtherOwner {
        uid: u32,
        owner: u32,
    },
    Io(io::Error),
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputError::NotRegular("a symbolic link") => write!(
                f,
                "it is a symbolic link, and the recorder never follows one for its output; \
                 name the file itself"
            ),
            OutputError::NotRegular(what) => {
                write!(f, "it is {what}, not a regular file; nothing was written")
            }
            OutputError::OtherOwner { uid, owner } => write!(
                f,
                "it is owned by uid {uid}, not by uid {owner} that the recorder writes as; \
                 remove it or choose another name"
            ),
            OutputError::Io(e) => e.fmt(f),
        }
    }
}

/// No source: the I/O error's text is already this error's whole message.
impl std::error::Error for OutputError {}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> Self {
        OutputError::Io(e)
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a regular file"
    }
}

fn open_raw(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let flags = flags | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), flags, MODE as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens `path` for a new trace: created (mode 0600, then owned by `owner`) when nothing is
/// there; when something is, truncated only if it is a regular file owned by `owner`.
pub fn create(path: &Path, owner: u32) -> Result<File, OutputError> {
    match open_raw(path, libc::O_CREAT | libc::O_EXCL) {
        Ok(f) => {
            // SAFETY: geteuid cannot fail.
            if owner != unsafe { libc::geteuid() } {
                // SAFETY: a valid descriptor; -1 keeps the group.
                if unsafe { libc::fchown(f.as_raw_fd(), owner, u32::MAX) } != 0 {
                    let e = io::Error::last_os_error();
                    let _ = std::fs::remove_file(path);
                    return Err(e.into());
                }
            }
            // The umask may have cleared bits of MODE, never added any: set it exactly anyway.
            f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
            Ok(f)
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => reuse(path, owner),
        Err(e) => Err(e.into()),
    }
}

/// The existing-file half of [`create`]. O_NONBLOCK: opening a FIFO must not wait for a reader.
fn reuse(path: &Path, owner: u32) -> Result<File, OutputError> {
    let f = match open_raw(path, libc::O_NONBLOCK) {
        Ok(f) => f,
        // ELOOP (a link), EISDIR, ENXIO (a FIFO without reader): say what is there.
        Err(e) => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if !m.file_type().is_file() => {
                    OutputError::NotRegular(kind_of(m.file_type()))
                }
                _ => e.into(),
            });
        }
    };
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(OutputError::NotRegular(kind_of(m.file_type())));
    }
    if m.uid() != owner {
        return Err(OutputError::OtherOwner {
            uid: m.uid(),
            owner,
        });
    }
    // SAFETY: a valid descriptor; clearing O_NONBLOCK (meaningless on a regular file) keeps
    // the writes' semantics plain.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
    f.set_len(0)?;
    f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    Ok(f)
}
