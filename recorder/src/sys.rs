//! Small wrappers around the host facts and system calls the recorder needs.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result, bail};

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// `CLOCK_BOOTTIME` in ns: the clock `bpf_ktime_get_boot_ns` reads.
pub fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// CPU time the calling thread has used (user and system), in ns.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) as u64
}

/// Unix time minus boot time, in ns: add it to an event's timestamp for wall-clock time.
/// Read as realtime-boottime-realtime and averaged, so a preemption between reads shows as
/// at most half its length.
pub fn boot_to_wall_ns() -> i64 {
    let r1 = clock_ns(libc::CLOCK_REALTIME);
    let b = clock_ns(libc::CLOCK_BOOTTIME);
    let r2 = clock_ns(libc::CLOCK_REALTIME);
    ((r1 + r2) / 2 - b) as i64
}

pub fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    // SAFETY: getrandom writes at most id.len() bytes into id.
    let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if n != id.len() as isize {
        // Not cryptographic, only unique enough to tell captures apart.
        let t = clock_ns(libc::CLOCK_REALTIME) as u128 ^ (u128::from(std::process::id()) << 64);
        id = t.to_le_bytes();
    }
    id
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One field of `uname(2)`, e.g. `|u| &u.release`.
pub fn uname_field(field: impl Fn(&libc::utsname) -> &[libc::c_char; 65]) -> String {
    // SAFETY: utsname is plain old data; uname fills it in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let raw = field(&u);
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Number of possible CPUs (the per-CPU maps have one slot each).
pub fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map(|n| n as u32).unwrap_or(0)
}

/// Fails with one clear line unless the process can load and attach tracing programs.
pub fn check_privileges() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    privilege_error(cap_eff, euid).map_or(Ok(()), |msg| bail!("{msg}"))
}

/// The one-line error for a process with effective capabilities `cap_eff` running as `euid`,
/// or `None` if it may load and attach tracing programs.
fn privilege_error(cap_eff: u64, euid: u32) -> Option<String> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let has = |c: u32| cap_eff & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let lacks = match (has(CAP_BPF), has(CAP_PERFMON)) {
        (false, false) => "lacks both",
        (true, _) => "lacks CAP_PERFMON",
        (_, true) => "lacks CAP_BPF",
    };
    let fix = if euid == 0 {
        "its capabilities were dropped: run it with the full capabilities of root"
    } else {
        "run it as root (sudo)"
    };
    Some(format!(
        "recording needs root, or the capabilities CAP_BPF and CAP_PERFMON: this process \
         (uid {euid}) {lacks}; {fix}"
    ))
}

/// Hands the pages of freed heap memory back to the kernel. Start-up parses the kernel's BTF
/// (megabytes, more than once) and frees it, but glibc keeps freed memory resident: it would
/// count in the recorder's resident memory for the whole capture, next to the ring buffer.
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointer and only releases pages of free heap chunks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Old kernels charge BPF maps to RLIMIT_MEMLOCK; newer ones (5.11+) to the memory cgroup.
/// Raising the limit costs nothing and makes the former work.
pub fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid rlimit structs; raising the soft limit to the hard one is always allowed.
        unsafe {
            libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
        }
    }
}

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Syscall tracepoints are found through tracefs, which a fresh machine may not have mounted.
pub fn ensure_tracefs() -> Result<()> {
    let events = std::path::Path::new(TRACEFS).join("events");
    match std::fs::metadata(&events) {
        Ok(_) => return Ok(()),
        // Mounted but closed to this user (tracefs is root-only by default): mounting again
        // would not help. Tracepoint mode says so if it is the one tried.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(_) => {}
    }
    let ret = {
        // SAFETY: all strings are NUL-terminated literals; no data argument.
        unsafe {
            libc::mount(
                c"nodev".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        }
    };
    if ret != 0 {
        let e = std::io::Error::last_os_error();
        // Not fatal by itself: fentry or kprobe may still work. Tracepoint mode will say why.
        eprintln!("recorder: tracefs is not mounted at {TRACEFS} and mounting it failed: {e}");
    } else {
        eprintln!("recorder: mounted tracefs at {TRACEFS}");
    }
    Ok(())
}

/// Resolves `--cgroup` in the cgroup2 hierarchy wherever it is mounted
/// ([`crate::cgroupfs::Cgroup2::resolve`]).
pub fn cgroup_id(spec: &str) -> Result<u64> {
    if let Ok(id) = spec.parse::<u64>() {
        return Ok(id);
    }
    crate::cgroupfs::Cgroup2::open()?.resolve(spec)
}

/// Set by SIGINT/SIGTERM.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C and SIGTERM end the capture cleanly. Without SA_RESTART, so the drain loop's
/// poll returns at once.
pub fn install_stop_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// CPU time (user + system) this process has used so far, in ns.
pub fn self_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as u64
}

/// Peak resident set size of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits for wakeups of a file descriptor, not for its readiness: an edge-triggered epoll.
///
/// A BPF ring buffer polls readable whenever it holds data, so a plain `poll` returns at once
/// while events keep coming, and the reader spins draining a few records at a time (a poll,
/// a drain and a loss-counter syscall per pass) right behind the writer. The programs submit
/// without a wakeup unless the buffer is filling up; with this, the reader sleeps until such a
/// forced wakeup or its timeout, as intended.
pub struct WakeupWait {
    epoll: std::os::fd::OwnedFd,
}

impl WakeupWait {
    /// Waits on every one of `fds` (the ring buffer, or each CPU's perf buffer).
    pub fn new(fds: &[std::os::fd::RawFd]) -> std::io::Result<WakeupWait> {
        use std::os::fd::FromRawFd as _;
        // SAFETY: plain syscall; the descriptor is owned by the OwnedFd below.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(epfd) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0,
        };
        for &fd in fds {
            // SAFETY: valid descriptors and event.
            if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(WakeupWait { epoll })
    }

    /// Returns after a wakeup, a signal or `timeout_ms`.
    pub fn wait(&self, timeout_ms: i32) {
        use std::os::fd::AsRawFd as _;
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for one event; EINTR simply ends the wait early.
        unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, timeout_ms) };
    }
}

/// User plus system CPU time of process `pid` so far, in ns (from `/proc/PID/stat`, so at the
/// clock tick's resolution).
pub fn process_cpu_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised comm, which may itself hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "state".
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_errors_name_what_is_missing() {
        let cap = |c: u32| 1u64 << c;
        assert_eq!(privilege_error(cap(21), 1000), None);
        assert_eq!(privilege_error(cap(38) | cap(39), 1000), None);
        assert_eq!(
            privilege_error(cap(39), 1000).unwrap(),
            "recording needs root, or the capabilities CAP_BPF and CAP_PERFMON: this process \
             (uid 1000) lacks CAP_PERFMON; run it as root (sudo)"
        );
        assert!(
            privilege_error(cap(38), 7)
                .unwrap()
                .contains("lacks CAP_BPF;")
        );
        assert!(
            privilege_error(0, 0)
                .unwrap()
                .ends_with("(uid 0) lacks both; its capabilities were dropped: run it with the full capabilities of root")
        );
    }
}
