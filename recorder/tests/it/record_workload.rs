//! Records the demo workload in tracepoint mode and checks every call field by field against
//! what the calls themselves saw, plus the header and the process table.

use std::os::unix::fs::MetadataExt as _;

use crate::common::*;

fn ns_inode(kind: &str) -> u32 {
    std::fs::metadata(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .ino() as u32
}

fn own_cgroup_id() -> u64 {
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    std::fs::metadata(format!("/sys/fs/cgroup{path}"))
        .unwrap()
        .ino()
}

#[test]
fn every_workload_call_is_recorded_exactly() {
    let Some(_kernel) = live_kernel("every_workload_call_is_recorded_exactly") else {
        return;
    };
    let dir = temp_dir("workload");
    let out = dir.join("trace.gsot");
    let me = std::process::id().to_string();
    let boot_before = recorder::sys::boot_ns();
    let rec = start_recorder(&out, &["--pid", &me, "--snaplen", "512"]);
    let (calls, comm) = run_workload_on_thread("gsot-workload");
    let (reader, mut events, log) = stop_and_read(rec);
    let boot_after = recorder::sys::boot_ns();

    events.sort_by_key(|e| e.ts_ns);
    let labels: Vec<_> = calls.iter().map(|c| c.label).collect();
    assert_eq!(
        events.len(),
        calls.len(),
        "one event per workload call and nothing else from this process: {labels:?}\n{log}"
    );
    assert!(
        calls.len() >= 18,
        "the workload makes every call: {labels:?}"
    );
    let pid = std::process::id();
    // SAFETY: getppid cannot fail.
    let ppid = unsafe { libc::getppid() } as u32;
    let cgroup_id = own_cgroup_id();
    for (call, ev) in calls.iter().zip(&events) {
        let what = call.label;
        assert_eq!(ev.tgid, pid, "{what}");
        assert_eq!(ev.tid, call.tid, "{what}");
        assert_eq!(format::Event::comm_str(&ev.as_event()), comm, "{what}");
        assert_eq!(ev.fd, call.fd, "{what}");
        assert_eq!(ev.level, call.level, "{what}");
        assert_eq!(ev.optname, call.optname, "{what}");
        assert_eq!(ev.optval_ptr, call.optval_ptr, "{what}");
        assert_eq!(ev.optlen_ptr, call.optlen_ptr, "{what}");
        assert_eq!(ev.optlen_in, call.optlen_in, "{what}");
        assert_eq!(ev.optlen_out, call.optlen_out, "{what}");
        assert_eq!(ev.ret, call.ret, "{what}");
        assert_eq!(ev.value, call.value, "{what}: value bytes");
        assert_eq!(ev.flags, 0, "{what}: nothing truncated or unreadable");
        assert_eq!((ev.uid, ev.gid), (0, 0), "{what}");
        assert_eq!(ev.ppid, ppid, "{what}");
        assert_eq!(ev.pid_ns, ns_inode("pid"), "{what}");
        assert_eq!(ev.mnt_ns, ns_inode("mnt"), "{what}");
        assert_eq!(ev.cgroup_id, cgroup_id, "{what}");
        assert!(ev.ts_ns > boot_before && ev.ts_ns < boot_after, "{what}");
        assert!(
            ev.duration_ns > 0 && ev.duration_ns < 1_000_000_000,
            "{what}"
        );
    }
    // The calls the issue names explicitly are among them.
    for must in [
        "tcp SO_RCVBUF",
        "tcp SO_TYPE",
        "tcp TCP_INFO",
        "tcp TCP_CONGESTION",
        "tcp SO_ERROR after refused connect",
        "udp6 IPV6_V6ONLY",
        "unix SO_PEERCRED",
        "EBADF fd -1",
        "ENOTSOCK pipe",
        "EFAULT bad optval",
        "EINVAL negative optlen",
        "ENOPROTOOPT unknown optname",
    ] {
        assert!(labels.contains(&must), "workload lacks {must}");
    }

    // Header.
    let h = reader.header();
    assert_eq!(h.attach_mode, "tracepoint");
    assert_eq!(h.snaplen, 512);
    assert_eq!(h.filters, vec![("pid".to_string(), me.clone())]);
    assert!(h.command_line.iter().any(|a| a == "record"));
    assert!(h.recorder_version.starts_with("recorder "));
    assert_eq!(h.kernel_release, recorder::sys::uname_field(|u| &u.release));
    assert_eq!(h.arch, std::env::consts::ARCH);
    assert!(h.cpu_count >= 1);
    assert_ne!(h.capture_id, [0; 16]);
    assert!(h.start_ts_ns > boot_before && h.start_ts_ns < boot_after);
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let wall_of_after = boot_after as i64 + h.boot_to_wall_ns;
    assert!(
        (wall_now - wall_of_after).abs() < 5_000_000_000,
        "boot_to_wall_ns is off"
    );
    assert!(reader.losses().is_empty(), "no loss at this rate");

    // Process table: this process, by its real exe.
    let me_proc = reader
        .processes()
        .iter()
        .find(|p| p.pid == pid)
        .expect("this process in the table");
    assert_eq!(me_proc.ppid, ppid);
    assert_eq!(
        std::path::Path::new(&me_proc.exe),
        std::env::current_exe().unwrap()
    );
    assert!(
        log.contains("1 file(s)")
            && log.contains(&format!("{} events captured, 0 lost", calls.len())),
        "{log}"
    );

    // The file holds process names and values: owner-only.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let _ = std::fs::remove_dir_all(&dir);
}
