//! `recorder`: record every getsockopt() call on this machine into a trace file.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use format::raw::DEFAULT_SNAPLEN;
use recorder::bpf::AttachMode;
use recorder::record::{Filters, RecordOptions, Session, Summary};
use recorder::{bpf, names, sys, workload};

#[derive(Parser)]
#[command(
    name = "recorder",
    version,
    about = "Record getsockopt() calls with eBPF into a trace file"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record until Ctrl-C/SIGTERM, --duration or --max-events.
    Record(RecordArgs),
    /// Record while running the built-in demo workload (TCP, UDP, IPv6, Unix; some calls fail).
    Demo {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Measure the recorder's overhead on a tight getsockopt loop (traced vs untraced).
    Bench {
        /// getsockopt calls per measured loop.
        #[arg(long, default_value_t = 2_000_000)]
        calls: u64,
        #[arg(long, value_enum, default_value_t = Attach::Tracepoint)]
        attach: Attach,
        /// CPU the loop is pinned to (the recorder runs on the others).
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Extra arguments for the recorder (e.g. `--extra=--comm --extra=nomatch` to time
        /// the cost of a call the kernel filters out).
        #[arg(long, allow_hyphen_values = true, hide = true)]
        extra: Vec<String>,
    },
    /// Runs the demo workload and prints its calls (used by `demo` as its traced child).
    #[command(hide = true)]
    Workload {
        /// Wait for a line on stdin before starting, so the tracer can set its pid filter.
        #[arg(long)]
        wait_stdin: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Attach {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

impl Attach {
    fn modes(self) -> Vec<AttachMode> {
        match self {
            Attach::Auto => AttachMode::AUTO_ORDER.to_vec(),
            Attach::Fentry => vec![AttachMode::Fentry],
            Attach::Kprobe => vec![AttachMode::Kprobe],
            Attach::Tracepoint => vec![AttachMode::Tracepoint],
        }
    }
}

#[derive(Args)]
struct CommonArgs {
    /// Output trace file (created mode 0600; rotated files are FILE.1.EXT, FILE.2.EXT, ...).
    #[arg(short, long)]
    output: PathBuf,
    /// auto tries fentry, then kprobe, then tracepoint (cheapest first).
    #[arg(long, value_enum, default_value_t = Attach::Auto)]
    attach: Attach,
    /// Most option value bytes copied per call.
    #[arg(long, default_value_t = DEFAULT_SNAPLEN)]
    snaplen: u32,
    /// Ring buffer size in bytes (power of two, >= 4096); accepts K/M/G suffixes.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    ringbuf_size: u64,
    /// Events per compressed block.
    #[arg(long, default_value_t = 131072)]
    block_events: u32,
    /// Longest an event waits before its block is flushed to the file (bounds a crash's loss).
    #[arg(long, default_value_t = 1000)]
    flush_interval_ms: u64,
    /// How often the ring buffer is drained when no burst wakes the recorder earlier.
    #[arg(long, default_value_t = 50, hide = true)]
    drain_interval_ms: u64,
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Only this process (tgid).
    #[arg(long)]
    pid: Option<u32>,
    /// Only tasks with this name (exact, at most 15 bytes).
    #[arg(long)]
    comm: Option<String>,
    /// Only this user id.
    #[arg(long)]
    uid: Option<u32>,
    /// Only this cgroup v2: a path (e.g. /system.slice/nginx.service) or a numeric id.
    #[arg(long)]
    cgroup: Option<String>,
    /// Only this level: a name (SOL_SOCKET, IPPROTO_TCP, ...) or a number.
    #[arg(long, value_parser = names::parse_level)]
    level: Option<i32>,
    /// Only this option: a name (SO_RCVBUF, TCP_INFO, ...) or a number.
    #[arg(long, value_parser = names::parse_optname)]
    optname: Option<i32>,
    /// Only calls that failed.
    #[arg(long)]
    errors_only: bool,
    /// Stop after this long (e.g. 10s, 5m, 1h, 500ms).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    max_events: Option<u64>,
    /// Start a new file when the current one reaches this size (e.g. 100M).
    #[arg(long, value_parser = parse_size)]
    rotate_size: Option<u64>,
    /// Start a new file after this long (e.g. 1h).
    #[arg(long, value_parser = parse_duration)]
    rotate_time: Option<Duration>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => {
                    return Err(format!(
                        "bad size {s:?}: use a number with an optional K, M or G"
                    ));
                }
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("bad size {s:?}: use a number with an optional K, M or G"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {s:?}: use e.g. 500ms, 10s, 5m, 1h");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| bad())?;
    match &s[split..] {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(bad()),
    }
}

fn record_options(common: &CommonArgs, filters: Filters) -> Result<RecordOptions> {
    let ringbuf_size = u32::try_from(common.ringbuf_size)
        .ok()
        .filter(|n| n.is_power_of_two() && *n >= 4096)
        .context("--ringbuf-size must be a power of two between 4K and 2G")?;
    Ok(RecordOptions {
        output: common.output.clone(),
        modes: common.attach.modes(),
        snaplen: common.snaplen,
        ringbuf_size,
        filters,
        duration: None,
        max_events: None,
        rotate_size: None,
        rotate_time: None,
        block_events: common.block_events,
        flush_interval: Duration::from_millis(common.flush_interval_ms.max(1)),
        drain_interval: Duration::from_millis(common.drain_interval_ms.max(1)),
        command_line: std::env::args().collect(),
    })
}

fn print_summary(s: &Summary, started: Instant) {
    let cpu_ns = sys::self_cpu_ns();
    eprintln!(
        "recorder: {} events captured, {} lost, {} bytes written ({:.1} bytes/event) in {} file(s), {:.1}s, attach mode {}",
        s.events,
        s.lost,
        s.bytes_written,
        s.bytes_per_event(),
        s.files.len(),
        started.elapsed().as_secs_f64(),
        s.mode
    );
    eprintln!(
        "recorder: own CPU {:.1} ms ({:.0} ns/event), peak RSS {:.1} MiB",
        cpu_ns as f64 / 1e6,
        if s.events == 0 {
            0.0
        } else {
            cpu_ns as f64 / s.events as f64
        },
        sys::peak_rss_bytes() as f64 / (1 << 20) as f64
    );
    for f in &s.files {
        eprintln!("recorder: wrote {}", f.display());
    }
}

fn cmd_record(args: RecordArgs) -> Result<()> {
    let cgroup = match &args.cgroup {
        Some(spec) => Some((sys::cgroup_id(spec)?, spec.clone())),
        None => None,
    };
    let filters = Filters {
        pid: args.pid,
        comm: args.comm.clone(),
        uid: args.uid,
        cgroup,
        level: args.level,
        optname: args.optname,
        errors_only: args.errors_only,
    };
    let mut opts = record_options(&args.common, filters)?;
    opts.duration = args.duration;
    opts.max_events = args.max_events;
    opts.rotate_size = args.rotate_size;
    opts.rotate_time = args.rotate_time;
    sys::install_stop_handlers();
    let started = Instant::now();
    let session = Session::start(opts)?;
    eprintln!(
        "recorder: recording to {} (Ctrl-C to stop)",
        args.common.output.display()
    );
    let summary = session.run(&sys::STOP)?;
    print_summary(&summary, started);
    Ok(())
}

fn cmd_demo(common: CommonArgs) -> Result<()> {
    let opts = record_options(&common, Filters::default())?;
    sys::install_stop_handlers();
    let started = Instant::now();
    let mut session = Session::start(opts)?;
    let exe = std::env::current_exe().context("locating the recorder binary")?;
    let mut child = Command::new(exe)
        .args(["workload", "--wait-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo workload")?;
    session.set_pid_filter(child.id())?;
    eprintln!(
        "recorder: recording the demo workload (pid {}) to {}",
        child.id(),
        common.output.display()
    );
    writeln!(child.stdin.take().context("workload stdin")?, "go")
        .context("starting the demo workload")?;
    let stdout = child.stdout.take().context("workload stdout")?;
    let printer = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    });
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        // Give the last exit events a drain cycle to land before stopping.
        std::thread::sleep(Duration::from_millis(200));
        sys::STOP.store(true, Ordering::Relaxed);
        status
    });
    let summary = session.run(&sys::STOP)?;
    let status = waiter
        .join()
        .expect("waiter thread")
        .context("waiting for the workload")?;
    let _ = printer.join();
    if !status.success() {
        bail!("the demo workload failed ({status})");
    }
    print_summary(&summary, started);
    Ok(())
}

fn cmd_workload(wait_stdin: bool) -> Result<()> {
    if wait_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the start signal")?;
    }
    let calls = workload::run().context("demo workload")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36} {:>4} {:>6} {:>8} {:>10} {:>10} {:>6}",
        "call", "fd", "level", "optname", "optlen in", "optlen out", "ret"
    )?;
    for c in &calls {
        writeln!(
            out,
            "{:<36} {:>4} {:>6} {:>8} {:>10} {:>10} {:>6}",
            c.label, c.fd, c.level, c.optname, c.optlen_in, c.optlen_out, c.ret
        )?;
    }
    Ok(())
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

fn cmd_bench(calls: u64, attach: Attach, cpu: usize, extra: &[String]) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let dir = std::env::temp_dir().join(format!("recorder-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("bench.gsot");
    let sock = std::net::TcpListener::bind("127.0.0.1:0")?;
    let fd = sock.as_raw_fd();
    let mode = attach
        .to_possible_value()
        .expect("value")
        .get_name()
        .to_string();
    sys::pin_to_cpu(cpu).with_context(|| format!("pinning to CPU {cpu}"))?;
    time_loop(fd, calls / 10); // warm-up
    let untraced_before = time_loop(fd, calls);

    // The floor: empty programs on the same hooks. No recorder can be cheaper than this.
    let floor = match attach.modes().as_slice() {
        [mode] => match bpf::attach_floor(*mode) {
            Ok(probes) => {
                let ns = time_loop(fd, calls);
                drop(probes);
                Some((mode.name(), ns))
            }
            Err(e) => {
                eprintln!("bench: no floor measurement for {mode}: {e:#}");
                None
            }
        },
        _ => None,
    };

    // The recorder runs on the other CPUs, as it would beside a busy service.
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["record", "-o"])
        .arg(&out)
        .args([
            "--attach",
            &mode,
            "--pid",
            &std::process::id().to_string(),
            "--ringbuf-size",
            "16M",
        ])
        .args(extra)
        .stderr(Stdio::piped());
    let ncpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(sys::possible_cpus() as usize);
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
    let mut child = cmd.spawn().context("starting the recorder")?;
    let mut child_err = std::io::BufReader::new(child.stderr.take().context("stderr")?);
    let mut line = String::new();
    let mut log = String::new();
    loop {
        line.clear();
        if child_err.read_line(&mut line)? == 0 {
            bail!("the recorder exited before attaching:\n{log}");
        }
        log.push_str(&line);
        if line.starts_with("recorder: recording to") {
            break;
        }
    }
    // Start-up (loading programs, reading BTF) is not per-event work: count from here.
    let startup_cpu_ns = sys::process_cpu_ns(child.id() as i32).unwrap_or(0);
    let traced = time_loop(fd, calls);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut child_err, &mut rest)?;
    log.push_str(&rest);
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, valid out pointers.
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let untraced_after = time_loop(fd, calls);
    let untraced = LoopCost::mean(untraced_before, untraced_after);

    let reader =
        format::TraceReader::open(&out).with_context(|| format!("reading {}", out.display()))?;
    let events = reader.event_count();
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
    let total_cpu_ns = (usage.ru_utime.tv_sec as f64 + usage.ru_stime.tv_sec as f64) * 1e9
        + (usage.ru_utime.tv_usec as f64 + usage.ru_stime.tv_usec as f64) * 1e3;
    let cpu_ns = total_cpu_ns - startup_cpu_ns as f64;
    let traced_calls = calls; // only the traced loop runs while the recorder is attached
    println!(
        "bench: {calls} getsockopt(SO_RCVBUF) calls per loop, pinned to CPU {cpu}, attach {mode}"
    );
    println!(
        "bench: untraced {:.0} ns/call (before {:.0}, after {:.0}); CPU time {:.0} ns/call",
        untraced.wall, untraced_before.wall, untraced_after.wall, untraced.cpu
    );
    let ratios = |c: LoopCost| {
        format!(
            "ratio {:.2}x; CPU time {:.0} ns/call, ratio {:.2}x",
            c.wall / untraced.wall,
            c.cpu,
            c.cpu / untraced.cpu
        )
    };
    if let Some((mode, c)) = floor {
        println!(
            "bench: floor    {:.0} ns/call  {} (empty programs on the {mode} hooks: what the hook itself costs)",
            c.wall,
            ratios(c)
        );
    }
    println!(
        "bench: traced   {:.0} ns/call  {}",
        traced.wall,
        ratios(traced)
    );
    println!("bench: events in file {events}, lost {lost} (expected {traced_calls})");
    println!(
        "bench: recorder CPU after start-up {:.0} ms = {:.0} ns/event (start-up {:.0} ms), peak RSS {:.1} MiB",
        cpu_ns / 1e6,
        cpu_ns / events.max(1) as f64,
        startup_cpu_ns as f64 / 1e6,
        usage.ru_maxrss as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    if status != 0 {
        bail!("the recorder failed:\n{log}");
    }
    if events != traced_calls || lost != 0 {
        bail!(
            "expected exactly {traced_calls} events and no loss, got {events} events and {lost} lost"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Record(args) => cmd_record(args),
        Cmd::Demo { common } => cmd_demo(common),
        Cmd::Bench {
            calls,
            attach,
            cpu,
            extra,
        } => cmd_bench(calls, attach, cpu, &extra),
        Cmd::Workload { wait_stdin } => cmd_workload(wait_stdin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (e.g. `| head`) is how the reader says it has seen enough.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("recorder: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
