//! The recorder runs as root where other users write: it never writes through what it did not
//! create or own, and once attached it keeps only CAP_SYS_PTRACE, with no-new-privileges, and
//! with `--user` that user's identity.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

const NOBODY: u32 = 65534;

fn record_2s(output: &Path, extra: &[&str]) -> (std::process::ExitStatus, String) {
    run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_recorder"))
            .args(["record", "--attach", "tracepoint", "--duration", "2s", "-o"])
            .arg(output)
            .args(extra),
    )
}

fn refused(output: &Path, what: &str) {
    let (status, err) = record_2s(output, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "recorder: error: cannot write {}: {what}\n",
            output.display()
        )
    );
}

#[test]
fn outputs_it_did_not_create_or_own_are_refused_untouched() {
    let Some(_kernel) = live_kernel("outputs_it_did_not_create_or_own_are_refused_untouched")
    else {
        return;
    };
    let dir = temp_dir("lp-outputs");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();

    // A link to a file the attacker wants overwritten (and made 0600).
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"victim\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.join("evil.gsot");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    refused(
        &link,
        "it is a symbolic link, and the recorder never follows one for its output; \
         name the file itself",
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o644);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());

    // A FIFO: opening it must neither block nor write.
    let fifo = dir.join("fifo.gsot");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    refused(
        &fifo,
        "it is a FIFO (named pipe), not a regular file; nothing was written",
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let sub = dir.join("sub.gsot");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside"), b"kept").unwrap();
    refused(
        &sub,
        "it is a directory, not a regular file; nothing was written",
    );
    assert_eq!(std::fs::read(sub.join("inside")).unwrap(), b"kept");

    // Another user's file in a sticky world-writable directory (/tmp's shape).
    let theirs = dir.join("theirs.gsot");
    std::fs::write(&theirs, b"their data\n").unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    refused(
        &theirs,
        "it is owned by uid 65534, not by uid 0 that the recorder writes as; \
         remove it or choose another name",
    );
    let m = std::fs::metadata(&theirs).unwrap();
    assert_eq!(std::fs::read(&theirs).unwrap(), b"their data\n");
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o666, NOBODY));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Field `name` of /proc/PID/status, and the same field of each of its threads.
fn status_fields(pid: i32, name: &str) -> Vec<String> {
    let mut dirs = vec![format!("/proc/{pid}")];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        dirs.push(t.unwrap().path().display().to_string());
    }
    dirs.iter()
        .map(|d| {
            let s = std::fs::read_to_string(format!("{d}/status")).unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap_or_else(|| panic!("{d}/status has no {name}"))
                .trim()
                .to_string()
        })
        .collect()
}

/// The documented sets of a running recorder: CAP_SYS_PTRACE (bit 19) only, plus CAP_BPF
/// (bit 39) on kernels before 6.5; nothing inheritable or ambient; no-new-privileges.
fn assert_least_privilege(pid: i32, log: &str) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let kept = if (v.next().unwrap(), v.next().unwrap()) >= (6, 5) {
        "0000000000080000"
    } else {
        "0000008000080000"
    };
    for (field, want) in [
        ("CapEff", kept),
        ("CapPrm", kept),
        ("CapBnd", kept),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
    ] {
        for got in status_fields(pid, field) {
            assert_eq!(got, want, "{field} of the running recorder\n{log}");
        }
    }
}

#[test]
fn a_running_recorder_keeps_only_what_it_needs() {
    let Some(_kernel) = live_kernel("a_running_recorder_keeps_only_what_it_needs") else {
        return;
    };
    let dir = temp_dir("lp-caps");
    let out = dir.join("caps.gsot");
    let rec = start_recorder(&out, &["--pid", "1"]);
    assert_least_privilege(rec.pid(), "");
    assert_eq!(status_fields(rec.pid(), "Uid")[0], "0\t0\t0\t0");
    let (_, _, log) = stop_and_read(rec);
    assert!(log.contains("0 events captured, 0 lost"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_nobody_records_every_call_with_rotation() {
    let Some(_kernel) = live_kernel("user_nobody_records_every_call_with_rotation") else {
        return;
    };
    let dir = temp_dir("lp-user");
    // Rotation creates files as nobody: the directory must let it, and is checked first.
    let (status, err) = record_2s(
        &dir.join("x.gsot"),
        &["--user", "nobody", "--rotate-size", "4K"],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "recorder: error: --user nobody (uid 65534) cannot create files in {}, where \
             rotated files go; make it writable by that user or choose another directory\n",
            dir.display()
        )
    );
    assert!(!dir.join("x.gsot").exists());

    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = dir.join("user.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(
        &out,
        &[
            "--user",
            "nobody",
            "--pid",
            &me,
            "--rotate-size",
            "4K",
            "--block-events",
            "1000",
        ],
    );
    assert_eq!(
        status_fields(rec.pid(), "Uid")[0],
        "65534\t65534\t65534\t65534"
    );
    assert_eq!(
        status_fields(rec.pid(), "Gid")[0],
        "65534\t65534\t65534\t65534"
    );
    assert_least_privilege(rec.pid(), "");
    let calls = crate::rotation::bursts(6, 5000, Duration::from_millis(150));
    let (status, log) = rec.stop();
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    // Every call exactly once across whole numbered files, as when root writes them.
    let readers = crate::rotation::check_rotated_capture(&out, calls, &log);
    assert!(readers.len() >= 3, "only {} file(s):\n{log}", readers.len());
    let exe = std::env::current_exe().unwrap().display().to_string();
    for (r, f) in readers.iter().zip(rotated_files(&out)) {
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o7777),
            (NOBODY, 0o600),
            "{}",
            f.display()
        );
        // Root's process, read by nobody: what CAP_SYS_PTRACE is kept for.
        let p = r.processes().iter().find(|p| p.pid == std::process::id());
        if r.event_count() > 0 {
            assert_eq!(
                p.map(|p| p.exe.as_str()),
                Some(exe.as_str()),
                "{}",
                f.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
