//! `recorder bench`: what the recorder adds to a tight getsockopt loop, against the same loop
//! untraced and against empty programs on the same hooks (the floor).

use std::io::BufRead as _;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum as _;
use recorder::bpf::BufferKind;
use recorder::{bpf, sys, workload};

use super::Attach;

#[derive(clap::Args)]
pub(super) struct Args {
    /// getsockopt calls per measured loop.
    #[arg(long, default_value_t = 2_000_000)]
    calls: u64,
    #[arg(long, value_enum, default_value_t = Attach::Tracepoint)]
    attach: Attach,
    /// CPU the loop is pinned to (the recorder runs on the others).
    #[arg(long, default_value_t = 0)]
    cpu: usize,
    /// The recorder's `--ringbuf-size` (the largest it takes by default: its peak RSS line is
    /// then the worst case of its memory bound).
    #[arg(long, default_value = "16M")]
    ringbuf_size: String,
    /// `perf` also times the loop under a recorder with per-CPU perf buffers, beside the ring
    /// buffer's run and with the same --ringbuf-size in all (--ringbuf-size, or what --extra
    /// sets).
    #[arg(long, value_enum)]
    buffer: Option<BufferKind>,
    /// Extra arguments for the recorder (e.g. `--extra=--comm --extra=nomatch` to time
    /// the cost of a call the kernel filters out).
    #[arg(long, allow_hyphen_values = true, hide = true)]
    extra: Vec<String>,
    /// Also time the loop under `record --max-rate N` (overload protection: a sample of
    /// events, every call counted in the kernel), next to the full recording.
    #[arg(long, value_name = "N")]
    max_rate: Option<u64>,
}

/// Cost of one getsockopt(SO_RCVBUF), averaged over a loop.
#[derive(Clone, Copy)]
struct LoopCost {
    /// Elapsed ns per call.
    wall: f64,
    /// ns of the loop thread's own CPU time per call (user and kernel, the BPF programs
    /// included): what the calls cost, without the time other tasks took the CPU. On a shared
    /// machine, a recorder busy on the other CPU pushes other work onto the loop's CPU, which
    /// shows in `wall` but not here.
    cpu: f64,
}

impl LoopCost {
    fn mean(a: LoopCost, b: LoopCost) -> LoopCost {
        LoopCost {
            wall: (a.wall + b.wall) / 2.0,
            cpu: (a.cpu + b.cpu) / 2.0,
        }
    }
}

/// Times `calls` getsockopt(SO_RCVBUF) calls.
fn time_loop(fd: i32, calls: u64) -> LoopCost {
    let (t, cpu) = (Instant::now(), sys::thread_cpu_ns());
    let ok = workload::flood(fd, calls);
    let cpu = sys::thread_cpu_ns() - cpu;
    assert_eq!(
        ok, calls,
        "getsockopt(SO_RCVBUF) failed in the benchmark loop"
    );
    LoopCost {
        wall: t.elapsed().as_nanos() as f64 / calls as f64,
        cpu: cpu as f64 / calls as f64,
    }
}

/// Times `calls` getppid() calls on a thread pinned to `cpu`: a syscall the recorder does
/// not trace, whose cost shows what attaching it taxes every other syscall of the machine
/// (syscall tracepoints move every task onto the slow syscall path). CPU time is what counts
/// here: the recorder shares that CPU.
fn time_getppid(cpu: usize, calls: u64) -> Result<LoopCost> {
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::pin_to_cpu(cpu).with_context(|| format!("pinning to CPU {cpu}"))?;
            let (t, cpu_ns) = (Instant::now(), sys::thread_cpu_ns());
            for _ in 0..calls {
                // SAFETY: getppid has no arguments and cannot fail.
                std::hint::black_box(unsafe { libc::getppid() });
            }
            let cpu_ns = sys::thread_cpu_ns() - cpu_ns;
            Ok(LoopCost {
                wall: t.elapsed().as_nanos() as f64 / calls as f64,
                cpu: cpu_ns as f64 / calls as f64,
            })
        })
        .join()
        .expect("the getppid thread does not panic")
    })
}

/// The getppid loop's CPU, if the machine has a CPU besides the getsockopt loop's (asked
/// before this thread is pinned).
fn other_cpu(cpu: usize) -> Option<usize> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (n > 1).then(|| (cpu + 1) % n)
}

/// What one traced loop cost and what the recorder used meanwhile.
struct RecorderRun {
    traced: LoopCost,
    /// The getppid loop on the other CPU while the recorder was attached.
    getppid: Option<LoopCost>,
    /// The recorder's CPU time before the loop started (loading programs, reading BTF).
    startup_cpu_ns: f64,
    /// The recorder's CPU time in all, from its rusage.
    total_cpu_ns: f64,
    peak_rss_kib: i64,
    status: i32,
    log: String,
}

impl RecorderRun {
    /// The recorder's CPU time after start-up, ns.
    fn working_cpu_ns(&self) -> f64 {
        self.total_cpu_ns - self.startup_cpu_ns
    }

    /// [`Self::working_cpu_ns`] per event (or call) of `n`.
    fn cpu_ns_per(&self, n: u64) -> f64 {
        self.working_cpu_ns() / n.max(1) as f64
    }
}

pub(super) fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("recorder-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("bench.gsot");
    let sock = std::net::TcpListener::bind("127.0.0.1:0")?;
    let fd = sock.as_raw_fd();
    let (calls, cpu) = (args.calls, args.cpu);
    // Before pinning, which narrows what this thread may run on to one CPU.
    let other = other_cpu(cpu);
    sys::pin_to_cpu(cpu).with_context(|| format!("pinning to CPU {cpu}"))?;
    time_loop(fd, calls / 10); // warm-up
    let untraced_before = time_loop(fd, calls);
    let getppid_untraced = other.map(|c| time_getppid(c, calls)).transpose()?;
    let floor = floor(args.attach, fd, calls);
    // A `--no-sockets` run (the socket walk off) goes beside this one, as its own row.
    let run = recorder_run(&args, &out, fd, other, &[])?;
    let bare = recorder_run(&args, &dir.join("bare.gsot"), fd, None, &["--no-sockets"])?;
    let sampled = match args.max_rate {
        Some(n) => {
            let out = dir.join("sampled.gsot");
            let run = recorder_run(&args, &out, fd, None, &["--max-rate", &n.to_string()])?;
            Some((
                n,
                run,
                format::TraceReader::open(&out).context("reading the --max-rate file")?,
            ))
        }
        None => None,
    };
    let perf_out = dir.join("perf.gsot");
    let perf = match args.buffer {
        Some(BufferKind::Perf) => {
            let perf_args = ["--buffer", "perf"];
            Some(recorder_run(&args, &perf_out, fd, None, &perf_args)?)
        }
        _ => None,
    };
    let untraced_after = time_loop(fd, calls);
    let untraced = LoopCost::mean(untraced_before, untraced_after);

    let reader =
        format::TraceReader::open(&out).with_context(|| format!("reading {}", out.display()))?;
    let events = reader.event_count();
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
    println!(
        "bench: {calls} getsockopt(SO_RCVBUF) calls per loop, pinned to CPU {cpu}, attach {}",
        mode_name(args.attach)
    );
    println!(
        "bench: untraced {:.0} ns/call (before {:.0}, after {:.0}); CPU time {:.0} ns/call",
        untraced.wall, untraced_before.wall, untraced_after.wall, untraced.cpu
    );
    report(untraced, floor, &run, events, lost, calls);
    report_sockets(untraced, &run, &bare);
    if let Some((n, s, r)) = &sampled {
        report_sampled(untraced, (&run, events), (*n, s, r), calls)?;
    }
    let perf_counts = perf
        .as_ref()
        .map(|p| report_perf(untraced, &run, p, &perf_out))
        .transpose()?;
    if let (Some(c), Some(before), Some(during)) = (other, getppid_untraced, run.getppid) {
        println!(
            "bench: getppid on CPU {c} (not traced): untraced {:.0} ns/call, with the recorder attached {:.0} ns/call (CPU time), ratio {:.2}x: what attaching costs every other syscall",
            before.cpu,
            during.cpu,
            during.cpu / before.cpu
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    for r in [&run, &bare]
        .into_iter()
        .chain(sampled.as_ref().map(|s| &s.1))
        .chain(perf.as_ref())
    {
        if r.status != 0 {
            bail!("the recorder failed:\n{}", r.log);
        }
    }
    // Only the traced loop runs while the recorder is attached.
    for (events, lost) in [(events, lost)].into_iter().chain(perf_counts) {
        if events != calls || lost != 0 {
            bail!(
                "expected exactly {calls} events and no loss, got {events} events and {lost} lost"
            );
        }
    }
    Ok(())
}

fn mode_name(attach: Attach) -> String {
    let value = attach.to_possible_value().expect("value");
    value.get_name().to_string()
}

/// The floor: empty programs on the same hooks. No recorder can be cheaper than this.
fn floor(attach: Attach, fd: i32, calls: u64) -> Option<(&'static str, LoopCost)> {
    let [mode] = attach.modes()[..] else {
        return None;
    };
    match bpf::attach_floor(mode) {
        Ok(probes) => {
            let cost = time_loop(fd, calls);
            drop(probes);
            Some((mode.name(), cost))
        }
        Err(e) => {
            eprintln!("bench: no floor measurement for {mode}: {e:#}");
            None
        }
    }
}

/// Runs `recorder record` (with `extra` arguments) on the other CPUs (as it would beside a
/// busy service), times the loop once it is recording, then the getppid loop on
/// `getppid_cpu`, then stops it and collects what it used.
fn recorder_run(
    args: &Args,
    out: &Path,
    fd: i32,
    getppid_cpu: Option<usize>,
    extra: &[&str],
) -> Result<RecorderRun> {
    let mut child = spawn_recorder(args, out, extra)?;
    let mut child_err = std::io::BufReader::new(child.stderr.take().context("stderr")?);
    let mut log = wait_until_recording(&mut child_err)?;
    // Start-up (loading programs, reading BTF) is not per-event work: count from here.
    let startup_cpu_ns = sys::process_cpu_ns(child.id() as i32).unwrap_or(0) as f64;
    let traced = time_loop(fd, args.calls);
    let getppid = getppid_cpu
        .map(|c| time_getppid(c, args.calls))
        .transpose()?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::io::Read::read_to_string(&mut child_err, &mut log)?;
    let (status, usage) = wait_with_usage(&child);
    Ok(RecorderRun {
        traced,
        getppid,
        startup_cpu_ns,
        total_cpu_ns: cpu_ns(&usage),
        peak_rss_kib: usage.ru_maxrss,
        status,
        log,
    })
}

fn spawn_recorder(args: &Args, out: &Path, extra: &[&str]) -> Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    let own_size = (args.extra.iter().map(String::as_str))
        .chain(extra.iter().copied())
        .any(|a| a == "--ringbuf-size");
    let size = ["--ringbuf-size", args.ringbuf_size.as_str()];
    cmd.args(["record", "-o"])
        .arg(out)
        .args([
            "--attach",
            &mode_name(args.attach),
            "--pid",
            &std::process::id().to_string(),
        ])
        .args(if own_size { &size[..0] } else { &size[..] })
        .args(&args.extra)
        .args(extra)
        // The bench says which run gets which buffer (`--buffer` for its perf run).
        .env_remove("GSOT_BUFFER")
        .stderr(Stdio::piped());
    let ncpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(sys::possible_cpus() as usize);
    let cpu = args.cpu;
    // SAFETY: the closure only calls sched_setaffinity, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for c in (0..ncpus).filter(|&c| c != cpu || ncpus == 1) {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
    cmd.spawn().context("starting the recorder")
}

/// Reads the recorder's stderr up to its `recording to` line; returns what it read.
fn wait_until_recording(child_err: &mut std::io::BufReader<ChildStderr>) -> Result<String> {
    let mut line = String::new();
    let mut log = String::new();
    loop {
        line.clear();
        if child_err.read_line(&mut line)? == 0 {
            bail!("the recorder exited before attaching:\n{log}");
        }
        log.push_str(&line);
        if line.starts_with("recorder: recording to") {
            return Ok(log);
        }
    }
}

/// Resource use: the child's exit status and rusage.
fn wait_with_usage(child: &Child) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, valid out pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (status, usage)
}

fn cpu_ns(usage: &libc::rusage) -> f64 {
    (usage.ru_utime.tv_sec as f64 + usage.ru_stime.tv_sec as f64) * 1e9
        + (usage.ru_utime.tv_usec as f64 + usage.ru_stime.tv_usec as f64) * 1e3
}

/// The same loop under `--max-rate N`: what a call costs when most are only counted, against
/// the full recording, and that the aggregate records counted every call.
fn report_sampled(
    untraced: LoopCost,
    (full, full_events): (&RecorderRun, u64),
    (rate, run, r): (u64, &RecorderRun, &format::TraceReader),
    calls: u64,
) -> Result<()> {
    let c = run.traced;
    let counted: u64 = r
        .aggregates()
        .iter()
        .flat_map(|p| &p.entries)
        .map(|e| e.calls())
        .sum();
    println!(
        "bench: traced, --max-rate {rate} {:.0} ns/call  {} (full recording {:.0}); recorder CPU after start-up {:.0} ns/call (full recording {:.0}); {} events, {counted} calls counted",
        c.wall,
        ratios(untraced, c),
        full.traced.cpu,
        run.cpu_ns_per(calls),
        full.cpu_ns_per(full_events),
        r.event_count(),
    );
    if counted != calls {
        bail!("--max-rate: the aggregate records counted {counted} calls, expected {calls}");
    }
    Ok(())
}

/// The same loop under a recorder with `--no-sockets`: what socket identity adds per call.
fn report_sockets(untraced: LoopCost, run: &RecorderRun, bare: &RecorderRun) {
    let (with, without) = (run.traced, bare.traced);
    println!(
        "bench: traced, --no-sockets {:.0} ns/call  {}; socket identity adds {:.0} ns/call of CPU time",
        without.wall,
        ratios(untraced, without),
        with.cpu - without.cpu
    );
}

/// The same loop under a recorder with per-CPU perf buffers: its cost beside the ring
/// buffer's, and what its file holds (events, lost).
fn report_perf(
    untraced: LoopCost,
    ring: &RecorderRun,
    perf: &RecorderRun,
    out: &Path,
) -> Result<(u64, u64)> {
    let reader =
        format::TraceReader::open(out).with_context(|| format!("reading {}", out.display()))?;
    let (events, lost) = (
        reader.event_count(),
        reader.losses().iter().map(|l| l.lost).sum::<u64>(),
    );
    let c = perf.traced;
    println!(
        "bench: traced, perf buffers {:.0} ns/call  {}; {:+.0} ns/call of CPU time against the ring buffer; events {events}, lost {lost}; recorder CPU {:.0} ns/event, peak RSS {:.1} MiB",
        c.wall,
        ratios(untraced, c),
        c.cpu - ring.traced.cpu,
        perf.cpu_ns_per(events),
        perf.peak_rss_kib as f64 / 1024.0
    );
    Ok((events, lost))
}

/// A loop's cost against the untraced loop's, by wall clock and by CPU time.
fn ratios(untraced: LoopCost, c: LoopCost) -> String {
    format!(
        "ratio {:.2}x; CPU time {:.0} ns/call, ratio {:.2}x",
        c.wall / untraced.wall,
        c.cpu,
        c.cpu / untraced.cpu
    )
}

fn report(
    untraced: LoopCost,
    floor: Option<(&str, LoopCost)>,
    run: &RecorderRun,
    events: u64,
    lost: u64,
    expected: u64,
) {
    let ratios = |c: LoopCost| ratios(untraced, c);
    if let Some((mode, c)) = floor {
        println!(
            "bench: floor    {:.0} ns/call  {} (empty programs on the {mode} hooks: what the hook itself costs)",
            c.wall,
            ratios(c)
        );
    }
    let traced = run.traced;
    println!(
        "bench: traced   {:.0} ns/call  {}",
        traced.wall,
        ratios(traced)
    );
    println!("bench: events in file {events}, lost {lost} (expected {expected})");
    println!(
        "bench: recorder CPU after start-up {:.0} ms = {:.0} ns/event (start-up {:.0} ms), peak RSS {:.1} MiB",
        run.working_cpu_ns() / 1e6,
        run.cpu_ns_per(events),
        run.startup_cpu_ns / 1e6,
        run.peak_rss_kib as f64 / 1024.0
    );
}
