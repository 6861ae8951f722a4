//! A kernel on which nothing can record: one error naming the kernel and each missing piece,
//! and its own exit status. This host has no kprobe PMU and refuses fentry; hiding tracefs in
//! a private mount namespace (nothing outside it sees the change) takes the last mode away,
//! and hiding BTF as well stands for a kernel built without it. (A kernel without the ring
//! buffer, before 5.8, is not reachable here: no Debian suite older than 11 is served any
//! more; its message is held by the unit tests of `recorder::support`.)

use std::process::Command;

use crate::common::*;

/// Runs `recorder record` in a mount namespace of its own where /sys/kernel is an empty
/// tmpfs, so tracefs is gone and cannot be mounted again (the recorder tries), with the
/// kernel's BTF bound back in when `keep_btf`.
fn record_without_tracefs(keep_btf: bool, out: &std::path::Path) -> (Option<i32>, String) {
    let mut script = String::from("set -e; ");
    if keep_btf {
        script.push_str("mkdir -p \"$2\"; mount --bind /sys/kernel/btf \"$2\"; ");
    }
    script.push_str("mount -t tmpfs none /sys/kernel; ");
    if keep_btf {
        script.push_str("mkdir /sys/kernel/btf; mount --move \"$2\" /sys/kernel/btf; ");
    }
    // The comm filter keeps the capture empty should a mode attach after all.
    script.push_str("exec \"$0\" record -o \"$1\" --duration 1s --comm gsot-none");
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_recorder"))
        .arg(out)
        .arg(out.with_extension("btf"))
        .output()
        .expect("unshare runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_kernel_with_no_working_mode_gets_one_error_naming_each_missing_piece() {
    let Some(_k) =
        live_kernel("a_kernel_with_no_working_mode_gets_one_error_naming_each_missing_piece")
    else {
        return;
    };
    if std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        eprintln!("this kernel has kprobes: a mode would attach; case not applicable");
        return;
    }
    let dir = temp_dir("unsupported");
    let out = dir.join("never.gsot");
    let release = recorder::sys::uname_field(|u| &u.release);
    for (keep_btf, first_piece) in [
        (
            true,
            "BPF trampolines (fentry/fexit on __sys_getsockopt refused)",
        ),
        (
            false,
            "BTF (/sys/kernel/btf/vmlinux missing: fentry needs it)",
        ),
    ] {
        let (code, err) = record_without_tracefs(keep_btf, &out);
        assert_eq!(code, Some(3), "keep_btf {keep_btf}: {err}");
        let first = err
            .lines()
            .find(|l| l.starts_with("recorder: error:"))
            .unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "recorder: error: this kernel ({release}) cannot record: no attach mode works; \
                 it lacks {first_piece}, kprobes (no kprobe PMU: \
                 /sys/bus/event_source/devices/kprobe missing), tracefs \
                 (/sys/kernel/tracing/events/syscalls and \
                 /sys/kernel/debug/tracing/events/syscalls missing: not mounted, or no \
                 CONFIG_FTRACE_SYSCALLS)"
            ),
            "keep_btf {keep_btf}"
        );
        // Then each mode's own failure, in the order auto tried them; nothing else.
        let modes: Vec<&str> = err
            .lines()
            .skip_while(|l| !l.starts_with("recorder: error:"))
            .skip(1)
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(modes, ["  fentry", "  kprobe", "  tracepoint"], "{err}");
        assert!(
            !out.exists(),
            "a capture that never started left {}",
            out.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
