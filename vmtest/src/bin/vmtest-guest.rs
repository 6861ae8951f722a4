//! The test driver that runs inside each guest (and on the host for the host kernel's row).
//!
//! For each attach mode: start `recorder record --attach MODE --comm gsot-vm-wl`, run the demo
//! workload and the socket workload on threads of that name (the very calls the host tests
//! check, the socket workload's each with the socket it knows), stop the recorder,
//! then print on stdout (the serial console in a guest) what the workload itself received,
//! the recorder's own output, and the trace file, in the line protocol of `vmtest`'s library.
//! Then time a short tight loop traced and untraced with `recorder bench`.
//! The driver judges nothing: the host checks everything it prints.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Parser;
use vmtest::{Context, GuestCall, SNAPLEN, WORKLOAD_COMM, hex, line};

#[derive(Parser)]
#[command(about = "Runs the recorder in each attach mode around the demo workload")]
struct Cli {
    /// The recorder binary.
    #[arg(long)]
    recorder: PathBuf,
    /// Where the trace files go.
    #[arg(long)]
    out: PathBuf,
    /// Scenarios (see `vmtest::SCENARIOS`) to run, in order.
    #[arg(long, value_delimiter = ',', default_values_t = vmtest::MODES.map(String::from))]
    modes: Vec<String>,
    /// getsockopt calls per timed loop of `recorder bench` (0: no bench). Emulation is slow:
    /// keep it small in a guest.
    #[arg(long, default_value_t = 20_000)]
    bench_calls: u64,
    /// Longest wait for the recorder to attach (BTF parsing under emulation takes a while).
    #[arg(long, default_value_t = 180)]
    attach_timeout: u64,
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

fn say_mode(kind: &str, mode: &str, extra: &[(&str, String)]) {
    let mut fields = vec![("mode", mode.to_string())];
    fields.extend(extra.iter().cloned());
    say(&line(kind, &fields));
}

fn log(mode: &str, text: &str) {
    say_mode("log", mode, &[("text", text.to_string())]);
}

/// A child's stderr (and stdout) lines, delivered through a channel by a reader thread each.
fn line_channel(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    rx
}

/// Waits for `child` up to `limit`, then SIGKILLs it.
fn wait_limited(child: &mut Child, limit: Duration) -> Result<(ExitStatus, bool)> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok((s, false));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (s.code(), s.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("signal{sig}"),
        _ => "unknown".into(),
    }
}

fn ns_inode(kind: &str) -> u32 {
    std::fs::metadata(format!("/proc/self/ns/{kind}")).map_or(0, |m| m.ino() as u32)
}

/// The cgroup v2 id of this process: the inode of its cgroup directory.
fn own_cgroup_id() -> u64 {
    let Ok(cg) = std::fs::read_to_string("/proc/self/cgroup") else {
        return 0;
    };
    let Some(path) = cg.lines().find_map(|l| l.strip_prefix("0::")) else {
        return 0;
    };
    std::fs::metadata(format!("/sys/fs/cgroup{path}")).map_or(0, |m| m.ino())
}

/// Mounts an empty tmpfs over each of `paths`, so the recorder finds nothing there.
fn hide(mode: &str, paths: &[&str]) -> Result<()> {
    for p in paths {
        let c = std::ffi::CString::new(*p)?;
        // SAFETY: valid NUL-terminated strings; no mount data.
        let r = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            anyhow::bail!("hiding {p}: {}", std::io::Error::last_os_error());
        }
        log(mode, &format!("vmtest-guest: hid {p} under an empty tmpfs"));
    }
    Ok(())
}

fn unhide(paths: &[&str]) {
    for p in paths.iter().rev() {
        let c = std::ffi::CString::new(*p).expect("path");
        // SAFETY: valid NUL-terminated string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn run_scenario(cli: &Cli, name: &str) -> Result<()> {
    say_mode("begin", name, &[]);
    let sc = vmtest::scenario(name).with_context(|| format!("unknown scenario {name}"))?;
    hide(name, sc.hide)?;
    let r = run_mode(cli, name, sc);
    unhide(sc.hide);
    r
}

fn run_mode(cli: &Cli, mode: &str, sc: &vmtest::Scenario) -> Result<()> {
    let attach = sc.attach;
    let out = cli.out.join(format!("{mode}.gsot"));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new(&cli.recorder)
        .args(["record", "-o"])
        .arg(&out)
        .args([
            "--attach",
            attach,
            "--buffer",
            sc.buffer,
            "--comm",
            WORKLOAD_COMM,
        ])
        .args(["--snaplen", &SNAPLEN.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", cli.recorder.display()))?;
    let lines = line_channel(&mut child);
    let deadline = Instant::now() + Duration::from_secs(cli.attach_timeout);
    let mut attached = false;
    while !attached {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                log(mode, &l);
                attached = l.starts_with("recorder: recording to");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                log(
                    mode,
                    &format!(
                        "vmtest-guest: the recorder did not attach within {}s; killing it",
                        cli.attach_timeout
                    ),
                );
                break;
            }
        }
    }
    if !attached {
        let (status, _) = wait_limited(&mut child, Duration::from_secs(10))?;
        for l in lines.try_iter() {
            log(mode, &l);
        }
        say_mode("exit", mode, &[("status", status_text(status))]);
        return Ok(());
    }
    say_mode("attached", mode, &[]);

    let boot_before = recorder::sys::boot_ns();
    let dir = cli.out.join(format!("{mode}.sockets"));
    std::fs::create_dir_all(&dir)?;
    let workload = std::thread::Builder::new()
        .name(WORKLOAD_COMM.to_string())
        .spawn(move || {
            let comm = std::fs::read_to_string("/proc/thread-self/comm")
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
            let demo = recorder::workload::run();
            (demo, recorder::workload::sockets::run(&dir), comm)
        })?
        .join()
        .expect("workload thread");
    // After the others: it leaves its thread in a network namespace of its own.
    let link_local = std::thread::Builder::new()
        .name(WORKLOAD_COMM.to_string())
        .spawn(recorder::workload::sockets::link_local)?
        .join()
        .expect("link-local workload thread");
    let boot_after = recorder::sys::boot_ns();
    let (demo, sockets, comm) = workload;
    // The demo's calls have no socket the workload knows; the socket workload's each have one.
    let mut calls: Vec<_> = demo
        .context("the demo workload")?
        .into_iter()
        .map(|c| (c, None))
        .collect();
    let sockets = sockets.context("the socket workload")?;
    let link_local = link_local.context("the socket workload's link-local part")?;
    calls.extend(
        sockets
            .into_iter()
            .chain(link_local)
            .map(|(c, s)| (c, Some(s))),
    );

    // Let the last exit events reach the ring buffer and one drain cycle pass, as the host
    // tests do, then stop the recorder as a user would.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (status, killed) = wait_limited(&mut child, Duration::from_secs(60))?;
    if killed {
        log(mode, "vmtest-guest: the recorder ignored SIGINT for 60s");
    }
    // The reader thread ends when the recorder's stderr closes.
    for l in lines.iter() {
        log(mode, &l);
    }
    // SAFETY: these calls cannot fail.
    let (ppid, uid, gid) = unsafe { (libc::getppid() as u32, libc::getuid(), libc::getgid()) };
    let ctx = Context {
        pid: std::process::id(),
        ppid,
        uid,
        gid,
        pid_ns: ns_inode("pid"),
        mnt_ns: ns_inode("mnt"),
        cgroup_id: own_cgroup_id(),
        comm,
        boot_before,
        boot_after,
    };
    say(&ctx.to_line(mode));
    for (i, (c, socket)) in calls.iter().enumerate() {
        let call = GuestCall {
            label: c.label.to_string(),
            tid: c.tid,
            fd: c.fd,
            level: c.level,
            optname: c.optname,
            optval_ptr: c.optval_ptr,
            optlen_ptr: c.optlen_ptr,
            optlen_in: c.optlen_in,
            optlen_out: c.optlen_out,
            ret: c.ret,
            value: c.value.clone(),
            socket: socket.clone(),
        };
        say(&call.to_line(mode, i));
    }
    send_file(mode, &out);
    say_mode("exit", mode, &[("status", status_text(status))]);

    if attach != "auto" && cli.bench_calls > 0 {
        bench(cli, mode, sc)?;
    }
    Ok(())
}

/// The trace file in numbered hex chunks, then its length: the host reassembles and checks.
fn send_file(mode: &str, path: &Path) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            log(
                mode,
                &format!("vmtest-guest: reading {}: {e}", path.display()),
            );
            return;
        }
    };
    // 96 bytes make 192 hex characters: short lines wrap nowhere and a lost one costs little.
    let chunks: Vec<&[u8]> = bytes.chunks(96).collect();
    for (i, c) in chunks.iter().enumerate() {
        say_mode("chunk", mode, &[("i", i.to_string()), ("hex", hex(c))]);
    }
    say_mode(
        "file",
        mode,
        &[
            ("len", bytes.len().to_string()),
            ("chunks", chunks.len().to_string()),
        ],
    );
}

/// `recorder bench`: the same loop untraced, traced and untraced again, in this one run.
/// With perf buffers (`sc.buffer`), the bench's perf row is the scenario's overhead.
fn bench(cli: &Cli, mode: &str, sc: &vmtest::Scenario) -> Result<()> {
    let perf = sc.buffer == "perf";
    let mut child = Command::new(&cli.recorder)
        .args(["bench", "--calls", &cli.bench_calls.to_string()])
        .args(["--attach", sc.attach, "--cpu", "0"])
        .args(if perf { &["--buffer", "perf"][..] } else { &[] })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting recorder bench")?;
    let lines = line_channel(&mut child);
    let (status, killed) = wait_limited(&mut child, Duration::from_secs(300))?;
    let out: Vec<String> = lines.iter().collect();
    let mut untraced = None;
    let mut traced = None;
    let mut spread = None;
    let mut floor = None;
    for l in &out {
        log(mode, &format!("bench| {l}"));
        // "bench: untraced 512 ns/call (before ...)" and "bench: traced   700 ns/call  ratio ..."
        let num = |rest: &str| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        };
        if let Some(rest) = l.strip_prefix("bench: untraced ") {
            untraced = num(rest);
            // "(before 427, after 407)": how much the untraced loop moved while traced ran.
            let mut it = rest
                .split(|c: char| !c.is_ascii_digit() && c != '.')
                .filter_map(|w| w.parse::<f64>().ok())
                .skip(1);
            spread = it.next().zip(it.next());
        } else if let Some(rest) = l.strip_prefix("bench: floor ") {
            // Empty programs on the same hooks: what the hook costs before the recorder's work.
            floor = num(rest);
        } else if let Some(rest) = l.strip_prefix("bench: traced ").filter(|_| !perf) {
            traced = num(rest);
        } else if let Some(rest) = l
            .strip_prefix("bench: traced, perf buffers ")
            .filter(|_| perf)
        {
            traced = num(rest);
        }
    }
    let mut fields = vec![("calls", cli.bench_calls.to_string())];
    match (status.success(), untraced, traced) {
        (true, Some(u), Some(t)) => {
            fields.push(("ok", "1".into()));
            fields.push(("untraced_ns", format!("{u}")));
            fields.push(("traced_ns", format!("{t}")));
            if let Some(f) = floor {
                fields.push(("floor_ns", format!("{f}")));
            }
            if let Some((before, after)) = spread {
                fields.push(("untraced_before_ns", format!("{before}")));
                fields.push(("untraced_after_ns", format!("{after}")));
            }
        }
        _ => {
            fields.push(("ok", "0".into()));
            let why = if killed {
                "timed out after 300s".to_string()
            } else {
                format!(
                    "exit {}: {}",
                    status_text(status),
                    out.last().cloned().unwrap_or_default()
                )
            };
            fields.push(("error", why));
        }
    }
    say_mode("bench", mode, &fields);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = std::fs::create_dir_all(&cli.out) {
        eprintln!("vmtest-guest: creating {}: {e}", cli.out.display());
        return ExitCode::FAILURE;
    }
    let release = recorder::sys::uname_field(|u| &u.release);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    say(&line(
        "start",
        &[("kernel", release), ("cpus", cpus.to_string())],
    ));
    for mode in &cli.modes {
        if let Err(e) = run_scenario(&cli, mode) {
            // Reported, not fatal: the host sees this mode's lines stop and the others go on.
            log(mode, &format!("vmtest-guest: error: {e:#}"));
        }
    }
    say(&line("done", &[]));
    ExitCode::SUCCESS
}
