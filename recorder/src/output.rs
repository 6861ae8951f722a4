//! Opening the recorder's output files (the first, every rotated one) without trusting what
//! already sits at their path: the recorder runs as root in directories other users may write.
//!
//! The last component is never followed when it is a symlink (O_NOFOLLOW), a new file is created
//! with O_EXCL, and an existing one is reused only when the opened descriptor itself is a regular
//! file owned by the user the recorder writes as. Every check and the mode change act on the
//! descriptor, so nothing can be swapped in between the check and the write.
//!
//! A stream (`-o -`, `--output-fd N`) is a descriptor the recorder is given: it is written in
//! order and never re-read, truncated, synced as a file, rotated or removed.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

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
    /// A stream's descriptor that cannot take a trace; the message says which and why.
    Stream(String),
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
            OutputError::Stream(why) => f.write_str(why),
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

/// Where a capture goes: a file (rotated files are named after it), or a stream that cannot
/// seek or be rotated (`-o -` is standard output, `--output-fd N` any open descriptor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Fd(i32),
}

impl Target {
    /// `-o PATH` (`-` for standard output) or `--output-fd N`.
    pub fn new(output: Option<PathBuf>, fd: Option<i32>) -> Target {
        match (output, fd) {
            (_, Some(fd)) => Target::Fd(fd),
            (Some(p), None) if p.as_os_str() == "-" => Target::Fd(libc::STDOUT_FILENO),
            (Some(p), None) => Target::File(p),
            (None, None) => Target::Fd(libc::STDOUT_FILENO),
        }
    }

    pub fn is_stream(&self) -> bool {
        matches!(self, Target::Fd(_))
    }

    /// The file's path; for a stream, `-` (nothing is ever created or removed there).
    pub fn path(&self) -> &Path {
        match self {
            Target::File(p) => p,
            Target::Fd(_) => Path::new("-"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(p) => p.display().fmt(f),
            Target::Fd(libc::STDOUT_FILENO) => f.write_str("standard output"),
            Target::Fd(n) => write!(f, "file descriptor {n}"),
        }
    }
}

/// An opened output: a file, or a stream's descriptor.
pub struct Output {
    file: File,
    stream: bool,
    /// Bytes the descriptor took.
    written: u64,
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Opens `target` for a new trace: a file as [`create`] does, a stream as [`adopt_stream`].
pub fn open(target: &Target, owner: u32) -> anyhow::Result<Output> {
    use anyhow::Context as _;
    let (file, stream) = match target {
        Target::File(p) => (create(p, owner), false),
        Target::Fd(fd) => (adopt_stream(*fd), true),
    };
    Ok(Output {
        file: file.with_context(|| format!("cannot write {target}"))?,
        stream,
        written: 0,
    })
}

/// Removes what [`open`] created for a capture that never started: a file, never a stream.
pub fn discard(target: &Target) {
    if let Target::File(p) = target {
        let _ = std::fs::remove_file(p);
    }
}

impl Output {
    /// Makes a file durable and returns its length; a stream has nothing to sync (a regular
    /// file behind one is synced too) and returns the bytes it took.
    pub fn close(self) -> io::Result<u64> {
        let m = self.file.metadata()?;
        if m.file_type().is_file() {
            self.file.sync_all()?;
        }
        Ok(if self.stream { self.written } else { m.len() })
    }
}

/// Takes over descriptor `fd` for a trace stream. Refused: a terminal (a trace is binary), a
/// descriptor not open for writing, standard error (the recorder's messages go there), and a
/// regular file that is not empty (a trace's offsets count from the file's first byte).
///
/// The trace gets a close-on-exec duplicate, so no child (the demo's workload) holds the
/// stream open; `fd` itself is then pointed at standard error (standard output) or closed,
/// so nothing else this process prints can land inside the trace.
pub fn adopt_stream(fd: i32) -> Result<File, OutputError> {
    let refuse = |why: String| OutputError::Stream(format!("it {why}"));
    if fd == libc::STDERR_FILENO {
        return Err(refuse(
            "is where the recorder writes its messages; give another descriptor".into(),
        ));
    }
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(refuse("is not open".into()));
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(refuse("is open for reading only".into()));
    }
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(fd) } == 1 {
        return Err(refuse(
            "is a terminal, and a trace is binary: pipe it (`| analyze events -`), redirect it \
             (`> trace.gsot`), or name a file with -o"
                .into(),
        ));
    }
    // SAFETY: fstat writes only into the zeroed struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is open.
    if unsafe { libc::fstat(fd, &mut st) } == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_size > 0
    {
        // Appended to (>>) or overwritten in place (<>), it would hold something before or
        // after the trace: refused rather than truncated, since the recorder did not open it.
        return Err(refuse(format!(
            "is a regular file that already holds {} bytes: a trace must be the whole file \
             (redirect with >, which empties it, or name the file with -o)",
            st.st_size
        )));
    }
    // SAFETY: duplicates a descriptor we checked is open; the new one is ours alone.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: both descriptors are open; the trace keeps its duplicate.
    unsafe {
        if fd == libc::STDOUT_FILENO {
            libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
        } else {
            libc::close(fd);
        }
    }
    // SAFETY: `dup` was just created and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(dup) })
}

/// The reader of a trace stream closed it: the capture stopped. Not a crash and not an I/O
/// error of the recorder's own: the exit status says which ([`EXIT_STREAM_CLOSED`]).
#[derive(Debug)]
pub struct StreamClosed {
    pub target: Target,
    /// Events of the blocks handed to the stream before it closed.
    pub events: u64,
}

/// Exit status when the reader of the stream closed it: 141, what a shell reports for a
/// writer that SIGPIPE ended, so a pipeline treats the recorder like any writer whose reader
/// left.
pub const EXIT_STREAM_CLOSED: u8 = 141;

impl std::fmt::Display for StreamClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the reader of {} closed it (broken pipe); stopped, having handed it the {} events of \
             the blocks written before",
            self.target, self.events
        )
    }
}

impl std::error::Error for StreamClosed {}

/// The one-line error that ends a capture whose output failed (disk full, I/O error, a closed
/// pipe): which output, why, and how many events it keeps. `path` is the file being written
/// (a rotated one), `finished` the events of the files already finished, `committed` those of
/// the blocks completely handed to the current one.
pub fn failed(
    target: &Target,
    path: &Path,
    e: anyhow::Error,
    finished: u64,
    committed: u64,
) -> anyhow::Error {
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    if target.is_stream() && broken_pipe {
        return StreamClosed {
            target: target.clone(),
            events: committed,
        }
        .into();
    }
    // format's I/O errors print their source too: say each cause once.
    let mut causes: Vec<String> = Vec::new();
    for c in e.chain() {
        let c = c.to_string();
        if causes.last() != Some(&c) {
            causes.push(c);
        }
    }
    if target.is_stream() {
        return anyhow::anyhow!(
            "writing {target}: {}; stopped, having handed it the {committed} events of the \
             blocks written before the error",
            causes.join(": ")
        );
    }
    // What the file keeps is what a reader recovers from it: the blocks whose bytes all
    // reached the disk. The writer cannot know that exactly (its last block, or the block
    // summary after it, may be cut anywhere by the error), so the file is read back.
    let kept = format::TraceReader::open(path)
        .map(|r| r.event_count())
        .unwrap_or(committed);
    anyhow::anyhow!(
        "writing {}: {}; stopped, keeping the {} events of the blocks written before the error",
        path.display(),
        causes.join(": "),
        finished + kept
    )
}
