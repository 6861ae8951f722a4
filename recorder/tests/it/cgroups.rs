//! Real cgroups on this kernel: directories made in the cgroup2 hierarchy with each runtime's
//! own naming, one workload process moved into each (one process per cgroup: the process table
//! keeps one entry per process and the programs cache a task's ids for 10 ms), recorded, and
//! every event's cgroup id, process table path and attribution asserted exactly.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gsot_decode::cgroup::{self, QosClass, Runtime};

use crate::common::*;

/// The cgroup2 mount of this host, wherever it is.
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    recorder::cgroupfs::mount_point(&info).expect("this host mounts cgroup2")
}

/// Removes the cgroups of a test, deepest first, even when the test fails.
struct Cgroups(PathBuf);

impl Drop for Cgroups {
    fn drop(&mut self) {
        fn remove(d: &Path) {
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        remove(&self.0);
    }
}

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const COMM: &str = "gsotcg";

/// (relative path, runtime, container id, pod UID, QoS, unit) of each cgroup made.
type Shape = (
    String,
    Option<Runtime>,
    String,
    String,
    Option<QosClass>,
    String,
);

fn shapes() -> Vec<Shape> {
    let id = |n: u8| format!("{}{n:02x}", &ID[..62]);
    let uid_ = UID.replace('-', "_");
    let (s, none) = (String::new, None);
    vec![
        (
            format!("docker/{}", id(1)),
            Some(Runtime::Docker),
            id(1),
            s(),
            none,
            s(),
        ),
        (
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{}.scope",
                id(2)
            ),
            Some(Runtime::Containerd),
            id(2),
            UID.into(),
            Some(QosClass::Burstable),
            s(),
        ),
        (
            format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{}.scope",
                id(3)
            ),
            Some(Runtime::CriO),
            id(3),
            UID.into(),
            Some(QosClass::BestEffort),
            s(),
        ),
        (
            format!(
                "kubepods.slice/kubepods-pod{uid_}.slice/docker-{}.scope",
                id(4)
            ),
            Some(Runtime::Docker),
            id(4),
            UID.into(),
            Some(QosClass::Guaranteed),
            s(),
        ),
        (
            format!("kubepods/burstable/pod{UID}/{}", id(5)),
            None,
            id(5),
            UID.into(),
            Some(QosClass::Burstable),
            s(),
        ),
        (
            format!("kubepods/besteffort/pod{UID}/crio-{}", id(6)),
            Some(Runtime::CriO),
            id(6),
            UID.into(),
            Some(QosClass::BestEffort),
            s(),
        ),
        (
            format!("kubepods/pod{UID}/{}", id(7)),
            None,
            id(7),
            UID.into(),
            Some(QosClass::Guaranteed),
            s(),
        ),
        (
            format!("machine.slice/libpod-{}.scope", id(8)),
            Some(Runtime::Podman),
            id(8),
            s(),
            none,
            s(),
        ),
        (
            "system.slice/gsot-foo.service".into(),
            None,
            s(),
            s(),
            none,
            "gsot-foo.service".into(),
        ),
    ]
}

/// A python3 process that names itself, waits to be moved, makes two calls and exits, at once
/// or after `linger_ms`.
fn spawn_workload_lingering(linger_ms: u32) -> (std::process::Child, u32) {
    let script = format!(
        "import socket,sys,time\nopen('/proc/self/comm','w').write('{COMM}')\nprint('ready',flush=True)\nsys.stdin.readline()\ns=socket.socket()\ns.getsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF)\ns.getsockopt(socket.SOL_SOCKET,socket.SO_TYPE)\ntime.sleep({linger_ms}/1000)\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let pid = child.id();
    (child, pid)
}

fn spawn_workload() -> (std::process::Child, u32) {
    spawn_workload_lingering(0)
}

#[test]
fn every_runtime_shape_is_attributed_from_a_real_cgroup() {
    let Some(_kernel) = live_kernel("every_runtime_shape_is_attributed_from_a_real_cgroup") else {
        return;
    };
    let root = cgroup2_root();
    let top = format!("gsot-test-{}", std::process::id());
    let _cleanup = Cgroups(root.join(&top));
    let dir = temp_dir("cgroups");
    let out = dir.join("t.gsot");
    let rec = start_recorder(&out, &["--comm", COMM]);
    let mut made = Vec::new();
    for shape in shapes() {
        let rel = format!("/{top}/{}", shape.0);
        let path = root.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&path).unwrap();
        let (mut child, pid) = spawn_workload();
        std::fs::write(path.join("cgroup.procs"), pid.to_string()).unwrap();
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        assert!(child.wait().unwrap().success());
        made.push((pid, rel, std::fs::metadata(&path).unwrap().ino(), shape));
    }
    let (reader, events, log) = stop_and_read(rec);
    for (pid, rel, ino, (_, runtime, id, uid, qos, unit)) in &made {
        let mine: Vec<_> = events.iter().filter(|e| e.tgid == *pid).collect();
        assert_eq!(mine.len(), 2, "{rel}: both calls\n{log}");
        assert!(
            mine.iter().all(|e| e.cgroup_id == *ino),
            "{rel}: the kernel's cgroup id"
        );
        let entries: Vec<_> = reader
            .processes()
            .iter()
            .filter(|p| p.pid == *pid)
            .collect();
        assert_eq!(entries.len(), 1, "{rel}");
        assert_eq!(&entries[0].cgroup, rel, "the path the recorder read");
        let c = cgroup::parse(&entries[0].cgroup);
        assert_eq!(
            (
                c.runtime,
                &c.container_id,
                &c.pod_uid,
                c.qos,
                &c.systemd_unit
            ),
            (*runtime, id, uid, *qos, unit),
            "{rel}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cgroup_filter_resolves_in_the_cgroup2_mount_and_refuses_other_paths() {
    let Some(_kernel) = live_kernel("cgroup_filter_resolves_in_the_cgroup2_mount") else {
        return;
    };
    let root = cgroup2_root();
    let top = format!("gsot-filter-{}", std::process::id());
    let _cleanup = Cgroups(root.join(&top));
    let (inside, outside) = (format!("/{top}/docker/{ID}ff"), format!("/{top}/other"));
    for p in [&inside, &outside] {
        std::fs::create_dir_all(root.join(p.trim_start_matches('/'))).unwrap();
    }
    let dir = temp_dir("cgroup-filter");
    // As /proc/PID/cgroup prints it, and under the mount point: the same cgroup.
    let under_mount = root.join(inside.trim_start_matches('/'));
    let recs = [
        start_recorder(&dir.join("a.gsot"), &["--cgroup", &inside]),
        start_recorder(
            &dir.join("b.gsot"),
            &["--cgroup", under_mount.to_str().unwrap()],
        ),
    ];
    let mut pids = Vec::new();
    for p in [&inside, &outside] {
        let (mut child, pid) = spawn_workload();
        std::fs::write(
            root.join(p.trim_start_matches('/')).join("cgroup.procs"),
            pid.to_string(),
        )
        .unwrap();
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        assert!(child.wait().unwrap().success());
        pids.push(pid);
    }
    for rec in recs {
        let (_, events, log) = stop_and_read(rec);
        let got: Vec<u32> = events.iter().map(|e| e.tgid).collect();
        assert_eq!(got, [pids[0], pids[0]], "only the cgroup's process\n{log}");
    }
    // A v1 directory or a plain one is no cgroup v2: refused, not silently misread.
    // Climbing out of the mount with `..` reaches /proc, which is no cgroup.
    let mut bad = vec![(
        "/../../../../../../proc".to_string(),
        "is not a cgroup v2 directory",
    )];
    if root != Path::new("/sys/fs/cgroup") {
        bad.push((
            "/sys/fs/cgroup/memory".into(),
            "not in the cgroup v2 hierarchy, which is mounted at",
        ));
    }
    for (spec, want) in bad {
        let (status, stderr) = run_to_exit(
            Command::new(env!("CARGO_BIN_EXE_recorder"))
                .args(["record", "-o"])
                .arg(dir.join("bad.gsot"))
                .args(["--cgroup", &spec]),
        );
        assert!(!status.success(), "{spec}");
        assert!(
            stderr.contains(want) && stderr.contains(&spec),
            "{spec}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cgroup_id_names_its_path_while_the_cgroup_exists() {
    let Some(_kernel) = live_kernel("a_cgroup_id_names_its_path") else {
        return;
    };
    let root = cgroup2_root();
    let rel = format!("/gsot-names-{}/system.slice/x.service", std::process::id());
    let _cleanup = Cgroups(
        root.join(rel.trim_start_matches('/'))
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf(),
    );
    let path = root.join(rel.trim_start_matches('/'));
    std::fs::create_dir_all(&path).unwrap();
    let ino = std::fs::metadata(&path).unwrap().ino();
    let mut names =
        recorder::cgroupfs::CgroupNames::new(recorder::cgroupfs::Cgroup2::open().unwrap());
    assert_eq!(names.path_of(ino).as_deref(), Some(rel.as_str()));
    // The root is "/", as /proc/PID/cgroup prints it.
    let root_ino = std::fs::metadata(&root).unwrap().ino();
    assert_eq!(names.path_of(root_ino).as_deref(), Some("/"));
    // A private mount (for hosts without one) sees the same hierarchy and leaves no mount.
    let private = recorder::cgroupfs::Cgroup2::mount_private().unwrap();
    let mut names = recorder::cgroupfs::CgroupNames::new(private);
    assert_eq!(names.path_of(ino).as_deref(), Some(rel.as_str()));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("gsotrace-cgroup2-"), "{mounts}");
}

#[test]
fn a_process_at_the_v2_root_keeps_its_v1_path() {
    let Some(_kernel) = live_kernel("a_process_at_the_v2_root_keeps_its_v1_path") else {
        return;
    };
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if !v1.join("cgroup.procs").exists() || !own.lines().any(|l| l == "0::/") {
        // A unified host has no v1 hierarchy to keep.
        eprintln!("skipping: no v1 memory hierarchy with processes at the v2 root");
        return;
    }
    let top = format!("gsot-v1-{}", std::process::id());
    let _cleanup = Cgroups(v1.join(&top));
    let rel = format!("/{top}/docker/{ID}ee");
    let dir_v1 = v1.join(rel.trim_start_matches('/'));
    std::fs::create_dir_all(&dir_v1).unwrap();
    let dir = temp_dir("cgroup-v1");
    let out = dir.join("t.gsot");
    let rec = start_recorder(&out, &["--comm", COMM]);
    // Alive past a drain, so /proc/PID/cgroup is read while it names the v1 cgroup.
    let (mut child, pid) = spawn_workload_lingering(300);
    std::fs::write(dir_v1.join("cgroup.procs"), pid.to_string()).unwrap();
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (reader, events, log) = stop_and_read(rec);
    assert_eq!(events.iter().filter(|e| e.tgid == pid).count(), 2, "{log}");
    let entry = reader.processes().iter().find(|p| p.pid == pid).unwrap();
    assert_eq!(entry.cgroup, "/", "the v2 path: the root");
    let kept: Vec<_> = reader
        .cgroup_v1_paths()
        .iter()
        .filter(|v| v.pid == pid)
        .collect();
    assert_eq!(kept.len(), 1, "{:?}\n{log}", reader.cgroup_v1_paths());
    assert_eq!(
        (kept[0].first_seen_ns, kept[0].path.as_str()),
        (entry.first_seen_ns, rel.as_str())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
