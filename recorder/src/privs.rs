//! What the recorder keeps of root once it is attached: the capabilities its remaining work
//! needs, no-new-privileges, and with `--user NAME` that user's identity.
//!
//! After start the recorder reads the ring buffer (mapped memory), the maps it holds fds for and
//! writes its files: none of that needs a capability on kernels from 6.5, which check
//! `kernel.unprivileged_bpf_disabled` only when programs are loaded and maps created, not on
//! every bpf() call. What stays is the process table: `/proc/PID/exe` of another user's (or a
//! more privileged) process is readable only with CAP_SYS_PTRACE (ptrace_may_access, read mode).
//! `/proc/PID/{comm,stat,cgroup}` are world-readable.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities kept after start, for the help text and README.
pub const KEPT_HELP: &str = "Capabilities: starting needs root, or CAP_BPF and CAP_PERFMON (plus \
read access to tracefs for --attach tracepoint). Once attached, the recorder keeps only \
CAP_SYS_PTRACE (to read /proc/PID/exe of other users' processes for the process table; on kernels \
before 6.5 also CAP_BPF, whose bpf() calls on its own maps are checked), sets no-new-privileges, \
and with --user NAME runs as that user, who then creates the rotated files.";

/// The user given with `--user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Looks `name` up in the user database.
    pub fn lookup(name: &str) -> Result<RunAs> {
        let c = CString::new(name).context("--user: a name without NUL bytes")?;
        // SAFETY: `c` is NUL-terminated; the recorder is single-threaded when it parses its
        // arguments, so the static buffer getpwnam returns is read before anything reuses it.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            bail!("--user {name}: no such user");
        }
        // SAFETY: a non-null pointer from getpwnam points to a valid passwd entry.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Ok(RunAs {
            name: name.to_string(),
            uid,
            gid,
        })
    }

    /// Fails unless this user may create files in `dir` (rotation creates them after the
    /// switch). Asks the kernel with this user's effective ids, then takes root's back.
    pub fn check_writable(&self, dir: &Path) -> Result<()> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))
            .context("a path without NUL bytes")?;
        // SAFETY: getegid/geteuid cannot fail; setegid/seteuid between root and this user are
        // allowed to a process whose real and saved ids stay root's; `c` is NUL-terminated.
        let ok = unsafe {
            let (egid, euid) = (libc::getegid(), libc::geteuid());
            if libc::setegid(self.gid) != 0 || libc::seteuid(self.uid) != 0 {
                bail!(
                    "--user {}: cannot take its ids: {}",
                    self.name,
                    std::io::Error::last_os_error()
                );
            }
            let ok = libc::faccessat(
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::W_OK | libc::X_OK,
                libc::AT_EACCESS,
            ) == 0;
            if libc::seteuid(euid) != 0 || libc::setegid(egid) != 0 {
                bail!(
                    "cannot take back root's ids: {}",
                    std::io::Error::last_os_error()
                );
            }
            ok
        };
        if !ok {
            bail!(
                "--user {} (uid {}) cannot create files in {}, where rotated files go; \
                 make it writable by that user or choose another directory",
                self.name,
                self.uid,
                dir.display()
            );
        }
        Ok(())
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = crate::sys::uname_field(|u| &u.release);
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// The capabilities kept after start on this kernel, among those the process has.
pub fn kept() -> Result<CapsHashSet> {
    let mut want = CapsHashSet::from([Capability::CAP_SYS_PTRACE]);
    if kernel_version() < (6, 5) {
        // Before 6.5 every bpf() call, map lookups on a held fd too, is refused without it
        // while unprivileged BPF is disabled (the default of most distributions).
        want.insert(Capability::CAP_BPF);
    }
    let have = caps::read(None, CapSet::Permitted).context("reading the capability sets")?;
    Ok(want.intersection(&have).copied().collect())
}

/// Drops everything but [`kept`], optionally switches to `run_as`, and sets no-new-privileges.
/// Capability sets are per thread: this runs only while the recorder has just one.
pub fn drop_after_start(run_as: Option<&RunAs>) -> Result<()> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_string()))
        });
    if threads.as_deref() != Some("1") {
        bail!("dropping privileges needs a single-threaded recorder (threads: {threads:?})");
    }
    let kept = kept()?;
    let err = |what: &str| format!("dropping privileges: {what}");
    // The bounding set can only shrink, and only with CAP_SETPCAP; without it (started with
    // just CAP_BPF and CAP_PERFMON) no-new-privileges already stops exec from gaining any.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for c in caps::runtime::thread_all_supported().difference(&kept) {
            caps::drop(None, CapSet::Bounding, *c).with_context(|| err("bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).with_context(|| err("ambient set"))?;
    caps::clear(None, CapSet::Inheritable).with_context(|| err("inheritable set"))?;
    if let Some(u) = run_as {
        switch_user(u)?;
    }
    // Effective first: it must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, &kept).with_context(|| err("effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).with_context(|| err("permitted set"))?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes an integer and unused zero arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!(
            "{}: {}",
            err("no-new-privileges"),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// setgroups/setgid/setuid to `u`, keeping the permitted set across setuid (keepcaps).
fn switch_user(u: &RunAs) -> Result<()> {
    caps::securebits::set_keepcaps(true).context("dropping privileges: keepcaps")?;
    // SAFETY: a one-element group list that outlives the call; setgid/setuid take plain ids.
    // glibc applies them to every thread, and there is only one anyway.
    let failed = unsafe {
        libc::setgroups(1, &u.gid) != 0 || libc::setgid(u.gid) != 0 || libc::setuid(u.uid) != 0
    };
    if failed {
        bail!(
            "--user {}: cannot switch to uid {}: {}",
            u.name,
            u.uid,
            std::io::Error::last_os_error()
        );
    }
    caps::securebits::set_keepcaps(false).context("dropping privileges: keepcaps")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_named() {
        let e = RunAs::lookup("no-such-user-gsot").unwrap_err();
        assert_eq!(e.to_string(), "--user no-such-user-gsot: no such user");
        assert_eq!(RunAs::lookup("root").unwrap().uid, 0);
    }
}
