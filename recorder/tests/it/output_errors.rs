//! What the recorder does when it cannot write its output: an unwritable path fails at start
//! with one clear line; a disk that fills up mid-capture stops it cleanly, naming the file and
//! the error, and the file keeps every block written before.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn recorder_cmd(output: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recorder"));
    cmd.args(["record", "--attach", "tracepoint", "--duration", "2s", "-o"])
        .arg(output);
    cmd
}

/// The recorder failed at start with exactly one line, `recorder: error: {expected}`.
fn assert_one_line_error(status: std::process::ExitStatus, stderr: &str, expected: &str) {
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, format!("recorder: error: {expected}\n"));
}

#[test]
fn unwritable_output_fails_at_start_with_one_clear_line() {
    let Some(_kernel) = live_kernel("unwritable_output_fails_at_start_with_one_clear_line") else {
        return;
    };
    let dir = temp_dir("unwritable");

    let missing = Path::new("/proc/nonexistent/x.gsot");
    let (status, err) = run_to_exit(&mut recorder_cmd(missing));
    assert_one_line_error(
        status,
        &err,
        "cannot write /proc/nonexistent/x.gsot: No such file or directory (os error 2)",
    );

    // The output names a directory.
    let (status, err) = run_to_exit(&mut recorder_cmd(&dir));
    assert_one_line_error(
        status,
        &err,
        &format!(
            "cannot write {}: it is a directory, not a regular file; nothing was written",
            dir.display()
        ),
    );

    // A directory without write permission. Root writes anywhere, so the recorder runs as root
    // without CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH): still allowed to trace, not to write.
    let ro = dir.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = ro.join("x.gsot");
    let (status, err) = run_to_exit(
        Command::new("setpriv")
            .args(["--bounding-set=-dac_override,-dac_read_search", "--"])
            .arg(env!("CARGO_BIN_EXE_recorder"))
            .args(["record", "--attach", "tracepoint", "--duration", "2s", "-o"])
            .arg(&out),
    );
    assert_one_line_error(
        status,
        &err,
        &format!(
            "cannot write {}: Permission denied (os error 13)",
            out.display()
        ),
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    fn new(dir: &Path, size: &str) -> TmpfsMount {
        std::fs::create_dir_all(dir).unwrap();
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("size={size},mode=0700")).unwrap();
        // SAFETY: NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                c"gsot-test".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mounting a tmpfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        TmpfsMount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let target = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path. Lazy, so a file still open elsewhere cannot keep the
        // mount (and its memory) around.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn disk_full_stops_cleanly_and_keeps_every_written_block() {
    let Some(_kernel) = live_kernel("disk_full_stops_cleanly_and_keeps_every_written_block") else {
        return;
    };
    let dir = temp_dir("disk-full");
    let mount = TmpfsMount::new(&dir.join("small"), "256k");
    let out = mount.dir.join("full.gsot");
    let me = std::process::id().to_string();
    // Small blocks, so many are complete before the one that does not fit.
    let mut rec = start_recorder(&out, &["--pid", &me, "--block-events", "2048"]);
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    // About 2 bytes per call in the file: 256 KiB is full after some 130,000 calls.
    let mut exited = None;
    let mut calls = 0;
    for _ in 0..100 {
        calls += recorder::workload::flood(sock.as_raw_fd(), 50_000);
        exited = rec.wait_exit(Duration::from_millis(100));
        if exited.is_some() {
            break;
        }
    }
    let Some((status, log)) = exited else {
        let log = rec.stop().1;
        panic!("{calls} calls did not fill a 256 KiB disk:\n{log}");
    };
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let last = log.lines().last().unwrap();
    let prefix = format!(
        "recorder: error: writing {}: No space left on device (os error 28); stopped, keeping the ",
        out.display()
    );
    let kept: u64 = last
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(" events of the blocks written before the error"))
        .unwrap_or_else(|| panic!("unexpected last line {last:?}:\n{log}"))
        .parse()
        .unwrap();

    let reader = format::TraceReader::open(&out).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        reader.recovery().is_some(),
        "a file cut by a full disk has no index"
    );
    let events = reader.read_all_events().unwrap();
    assert!(!events.is_empty(), "{log}");
    assert_eq!(
        events.len() as u64,
        kept,
        "the file yields exactly the events the recorder said it kept"
    );
    assert!(
        events
            .iter()
            .all(|e| e.optname == libc::SO_RCVBUF && e.ret == 0 && e.tgid == std::process::id())
    );
    assert!(
        reader
            .processes()
            .iter()
            .any(|p| p.pid == std::process::id())
    );
    drop(reader);
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
}
