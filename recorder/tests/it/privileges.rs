//! Without root (or CAP_BPF and CAP_PERFMON) the recorder says so in one line, before it
//! touches the kernel or creates its output file.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::common::*;

/// `recorder record -o OUT` run through `setpriv SETPRIV...`. The binary is copied where any
/// user may run it (the build directory may not be).
fn run_with(setpriv: &[&str], bin: &Path, out: &Path) -> (std::process::ExitStatus, String) {
    run_to_exit(
        Command::new("setpriv")
            .args(setpriv)
            .arg("--")
            .arg(bin)
            .args(["record", "--attach", "tracepoint", "--duration", "1s", "-o"])
            .arg(out),
    )
}

#[test]
fn unprivileged_runs_fail_naming_what_is_missing() {
    let Some(_kernel) = live_kernel("unprivileged_runs_fail_naming_what_is_missing") else {
        return;
    };
    let dir = temp_dir("privileges");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let bin = dir.join("recorder");
    std::fs::copy(env!("CARGO_BIN_EXE_recorder"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join("x.gsot");
    let nobody = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "nobody",
            nobody.to_vec(),
            "recording needs root, or the capabilities CAP_BPF and CAP_PERFMON: this process \
             (uid 65534) lacks both; run it as root (sudo)",
        ),
        (
            "nobody with CAP_BPF",
            [
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all,+bpf",
                "--ambient-caps=+bpf",
            ]
            .to_vec(),
            "recording needs root, or the capabilities CAP_BPF and CAP_PERFMON: this process \
             (uid 65534) lacks CAP_PERFMON; run it as root (sudo)",
        ),
        (
            "root without capabilities",
            ["--inh-caps=-all", "--bounding-set=-all"].to_vec(),
            "recording needs root, or the capabilities CAP_BPF and CAP_PERFMON: this process \
             (uid 0) lacks both; its capabilities were dropped: run it with the full \
             capabilities of root",
        ),
    ];
    for (name, setpriv, expected) in cases {
        let (status, err) = run_with(&setpriv, &bin, &out);
        assert_eq!(status.code(), Some(1), "{name}: {err}");
        assert_eq!(err, format!("recorder: error: {expected}\n"), "{name}");
        assert!(!out.exists(), "{name}: created its output anyway");
    }

    // CAP_BPF and CAP_PERFMON load programs, but the syscall tracepoints are found through
    // tracefs, which is root's alone (its default mode, 0700): the failure names that, and
    // leaves no empty file.
    use std::os::unix::fs::MetadataExt as _;
    let tracefs_mode = std::fs::metadata("/sys/kernel/tracing").unwrap().mode();
    if tracefs_mode & 0o005 != 0 {
        eprintln!("tracefs is open to other users here ({tracefs_mode:o}): case not applicable");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let (status, err) = run_with(
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all,+bpf,+perfmon",
            "--ambient-caps=+bpf,+perfmon",
        ],
        &bin,
        &out,
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        "recorder: error: no attach mode works here:\n  tracepoint: \
         /sys/kernel/tracing/events/syscalls is not readable by this user (tracefs is \
         root-only): tracepoint mode needs root\n"
    );
    assert!(!out.exists(), "a failed start left {}", out.display());
    let _ = std::fs::remove_dir_all(&dir);
}
