//! The cgroup v2 hierarchy, wherever this host mounts it: `/sys/fs/cgroup` on a unified host,
//! `/sys/fs/cgroup/unified` on a hybrid one (where `/sys/fs/cgroup` is a tmpfs of v1
//! controllers, whose inode numbers are not cgroup ids), or a private mount where there is none.
//!
//! A cgroup v2 id (what `bpf_get_current_cgroup_id()` returns) is the inode number of the
//! cgroup's directory in cgroup2, so `--cgroup PATH` is a stat there, and an event's id is
//! named by a walk of the hierarchy cached by inode, for processes gone before their
//! `/proc/PID/cgroup` was read.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// `statfs.f_type` of cgroup2 (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// Most directories one walk visits: a bound on the time a miss can cost.
const MAX_WALK: usize = 100_000;
/// Fewest time between two walks: ids of cgroups already removed miss every time.
const WALK_INTERVAL: Duration = Duration::from_millis(200);

/// Where cgroup2 is mounted, as /proc/self/mountinfo says: the mount point of the first
/// cgroup2 mount of the hierarchy's root (field 4 is `/`).
pub fn mount_point(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let f: Vec<&str> = left.split(' ').collect();
        let fstype = right.split(' ').next()?;
        let point = f.get(4)?;
        (fstype == "cgroup2" && f.get(3) == Some(&"/")).then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The v1 path of a process at the v2 root, from its /proc/PID/cgroup text: the `name=systemd`
/// line's path, else the `memory` line's (FORMAT.md 5.2). `None` when the v2 path is not the
/// root or no v1 line names anything but the root.
pub fn v1_path(proc_cgroup: &str) -> Option<String> {
    let mut v2_root = false;
    let (mut systemd, mut memory) = (None, None);
    for l in proc_cgroup.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        match ctrl {
            "" => v2_root = path == "/",
            "name=systemd" => systemd = Some(path),
            c if c.split(',').any(|c| c == "memory") => memory = Some(path),
            _ => {}
        }
    }
    let named = [systemd, memory].into_iter().flatten().find(|p| *p != "/");
    named.filter(|_| v2_root).map(str::to_string)
}

/// The cgroup2 hierarchy the recorder reads.
pub struct Cgroup2 {
    root: PathBuf,
    /// A mount the recorder made because the host had none, detached at once: reachable
    /// only through this directory handle, so nothing is left behind.
    _private: Option<std::fs::File>,
}

impl Cgroup2 {
    /// The host's cgroup2 mount, or a private one.
    pub fn open() -> Result<Cgroup2> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        match mount_point(&mountinfo) {
            Some(root) => Ok(Cgroup2 {
                root,
                _private: None,
            }),
            None => Cgroup2::mount_private(),
        }
    }

    /// Mounts cgroup2 on a fresh directory, keeps a handle on its root and detaches it.
    pub fn mount_private() -> Result<Cgroup2> {
        let dir = std::env::temp_dir().join(format!("gsotrace-cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        let target = CString::new(dir.as_os_str().as_bytes()).context("a temp dir without NUL")?;
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let r = unsafe {
            libc::mount(
                c"cgroup2".as_ptr(),
                target.as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&dir);
            bail!(
                "no cgroup2 is mounted, and mounting one on {} failed: {e}",
                dir.display()
            );
        }
        let handle = std::fs::File::open(&dir);
        // SAFETY: as above; MNT_DETACH leaves the mount alive while `handle` holds it.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&dir);
        let handle = handle.context("opening the private cgroup2 mount")?;
        let root = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&handle)
        ));
        Ok(Cgroup2 {
            root,
            _private: Some(handle),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `--cgroup`: a numeric id, or a path in cgroup2 (under its mount point, or as the `0::`
    /// line of /proc/PID/cgroup prints it). A path outside cgroup2 is refused, not misread.
    pub fn resolve(&self, spec: &str) -> Result<u64> {
        if let Ok(id) = spec.parse::<u64>() {
            return Ok(id);
        }
        let given = Path::new(spec);
        let path = if given.starts_with(&self.root) {
            given.to_path_buf()
        } else if given.starts_with("/sys/fs/cgroup") {
            bail!(
                "--cgroup {spec}: not in the cgroup v2 hierarchy, which is mounted at {}: give the path under it, or as the 0:: line of /proc/PID/cgroup prints it",
                self.root.display()
            );
        } else {
            self.root.join(spec.trim_start_matches('/'))
        };
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("--cgroup {spec}: {}", path.display()))?;
        if !meta.is_dir() || !is_cgroup2(&path) {
            bail!(
                "--cgroup {spec}: {} is not a cgroup v2 directory",
                path.display()
            );
        }
        Ok(meta.ino())
    }
}

/// Whether `path` lies on a cgroup2 file system.
pub fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct it is given; `c` is NUL-terminated.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type as i64 == CGROUP2_SUPER_MAGIC
    }
}

/// cgroup ids to paths (as /proc/PID/cgroup prints them), from walks of the hierarchy.
pub struct CgroupNames {
    fs: Cgroup2,
    by_id: HashMap<u64, String>,
    last_walk: Option<Instant>,
}

impl CgroupNames {
    pub fn new(fs: Cgroup2) -> CgroupNames {
        CgroupNames {
            fs,
            by_id: HashMap::new(),
            last_walk: None,
        }
    }

    /// The path of cgroup `id` while the cgroup exists; walks again on a miss, at most every
    /// [`WALK_INTERVAL`].
    pub fn path_of(&mut self, id: u64) -> Option<String> {
        if let Some(p) = self.by_id.get(&id) {
            return Some(p.clone());
        }
        if self.last_walk.is_some_and(|t| t.elapsed() < WALK_INTERVAL) {
            return None;
        }
        self.walk();
        self.by_id.get(&id).cloned()
    }

    fn walk(&mut self) {
        self.last_walk = Some(Instant::now());
        let mut stack = vec![(self.fs.root.clone(), String::from("/"))];
        let mut seen = 0;
        while let Some((dir, name)) = stack.pop() {
            seen += 1;
            if seen > MAX_WALK {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            self.by_id.insert(meta.ino(), name.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let child = e.file_name().to_string_lossy().into_owned();
                    let sub = if name == "/" {
                        format!("/{child}")
                    } else {
                        format!("{name}/{child}")
                    };
                    stack.push((e.path(), sub));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_path_only_for_a_process_at_the_v2_root() {
        let hybrid = "9:name=systemd:/\n4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(v1_path(hybrid).as_deref(), Some("/docker/abc"));
        let named = "9:name=systemd:/system.slice/docker-abc.scope\n4:memory:/docker/abc\n0::/\n";
        assert_eq!(
            v1_path(named).as_deref(),
            Some("/system.slice/docker-abc.scope")
        );
        assert_eq!(v1_path("4:memory:/docker/abc\n0::/docker/abc\n"), None);
        assert_eq!(v1_path("9:name=systemd:/\n4:memory:/\n0::/\n"), None);
        assert_eq!(v1_path("0::/\n"), None);
        assert_eq!(v1_path("garbage"), None);
    }

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_host() {
        let info = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";
        assert_eq!(
            mount_point(info),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        // A namespaced view (root not /) is not the hierarchy's root.
        let ns = "26 25 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw";
        assert_eq!(mount_point(ns), None);
        let odd = "26 25 0:23 / /mnt/cg\\0402 rw - cgroup2 none rw";
        assert_eq!(mount_point(odd), Some(PathBuf::from("/mnt/cg 2")));
        assert_eq!(mount_point("garbage\n - \n"), None);
    }
}
