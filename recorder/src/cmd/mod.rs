//! The recorder's subcommands, one file each with its own arguments and `run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use format::raw::DEFAULT_SNAPLEN;
use recorder::bpf::{AttachMode, BufferKind};
use recorder::output::{EXIT_STREAM_CLOSED, StreamClosed, Target};
use recorder::record::{Filters, Notice, RecordOptions, Reporter, SocketWalk, Summary};
use recorder::support::{EXIT_UNSUPPORTED, Unsupported};
use recorder::sys;

mod bench;
mod demo;
mod generate;
mod record;

#[derive(Parser)]
#[command(
    name = "recorder",
    version,
    about = "Record getsockopt() calls with eBPF into a trace file",
    after_help = after_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record until Ctrl-C/SIGTERM, --duration or --max-events.
    Record(Box<record::Args>),
    /// Record while running the built-in demo workload (TCP, UDP, IPv6, Unix; some calls fail).
    Demo(demo::Args),
    /// Measure the recorder's overhead on a tight getsockopt loop (traced vs untraced).
    Bench(bench::Args),
    /// Runs the demo workload and prints its calls (used by `demo` as its traced child).
    #[command(hide = true)]
    Workload(demo::WorkloadArgs),
    /// Man pages or shell completions, for packaging (scripts/release.sh).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// Capabilities and exit statuses, under `recorder --help`.
fn after_help() -> String {
    format!(
        "{}\n\nExit status: 0 done, 1 an error, 2 a usage error, {EXIT_UNSUPPORTED} this kernel \
         cannot record (no attach mode or no buffer kind works: the error names the kernel and \
         each missing piece: kprobes, BTF, BPF trampolines, the ring buffer, tracefs), \
         {EXIT_STREAM_CLOSED} the reader of the trace stream (-o -, --output-fd) closed it and \
         the capture stopped (what it received is a valid, unfinished trace).",
        recorder::privs::KEPT_HELP
    )
}

/// Parses the command line, runs the subcommand and turns its outcome into the exit status.
pub fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Record(args) => record::run(*args),
        Cmd::Demo(args) => demo::run(args),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Workload(args) => demo::run_workload(args),
        Cmd::Generate(args) => generate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (e.g. `| head`) is how the reader says it has seen enough.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // The reader of `-o -` left: the capture stopped, which is no error of its own.
        Err(e) if e.is::<StreamClosed>() => {
            eprintln!("recorder: {e}");
            ExitCode::from(EXIT_STREAM_CLOSED)
        }
        Err(e) => {
            eprintln!("recorder: error: {e:#}");
            match e.downcast_ref::<Unsupported>() {
                Some(_) => ExitCode::from(EXIT_UNSUPPORTED),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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

/// What `record` and `demo` share: where and how to write.
#[derive(Args)]
struct CommonArgs {
    /// Output trace file (created mode 0600; rotated files are FILE.1.EXT, FILE.2.EXT, ...);
    /// `-` writes the trace to standard output (not a terminal), e.g. `-o - | analyze events -`.
    #[arg(
        short,
        long,
        required_unless_present = "output_fd",
        conflicts_with = "output_fd"
    )]
    output: Option<PathBuf>,
    /// Write the trace to this open file descriptor, as `-o -` does to standard output.
    #[arg(long, value_name = "N")]
    output_fd: Option<i32>,
    /// auto tries fentry, then kprobe, then tracepoint (cheapest first).
    #[arg(long, value_enum, default_value_t = Attach::Auto)]
    attach: Attach,
    /// Most option value bytes copied per call.
    #[arg(long, default_value_t = DEFAULT_SNAPLEN)]
    snaplen: u32,
    /// Ring buffer size in bytes (a power of two from 4K to 16M); accepts K/M/G suffixes.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    ringbuf_size: u64,
    /// How records reach user space: auto takes the ring buffer if the kernel has one (5.8+),
    /// else per-CPU perf buffers (which share --ringbuf-size between the CPUs). The
    /// environment variable is how the test suite runs every recorder with perf buffers.
    #[arg(long, value_enum, env = "GSOT_BUFFER", default_value_t = BufferKind::Auto)]
    buffer: BufferKind,
    /// Events per compressed block.
    #[arg(long, default_value_t = 131072)]
    block_events: u32,
    /// Longest an event waits before its block is flushed to the file (bounds a crash's loss).
    #[arg(long, default_value_t = 1000)]
    flush_interval_ms: u64,
    /// How often the ring buffer is drained when no burst wakes the recorder earlier.
    #[arg(long, default_value_t = 50, hide = true)]
    drain_interval_ms: u64,
    /// Test only: in-flight slots shared by all threads (a power of two), fewer to force
    /// threads to collide.
    #[arg(long, default_value_t = recorder_ebpf::INFLIGHT_MAX_ENTRIES, hide = true)]
    inflight_slots: u32,
    /// Test only: milliseconds the writer thread sleeps per batch, to stall compression.
    #[arg(long, default_value_t = 0, hide = true)]
    test_write_delay_ms: u64,
    /// Record no socket identity (the walk from each call's fd to its socket at entry: about
    /// 80 ns per call here, 250-300 on kernels before 6.2; README, Performance).
    #[arg(long)]
    no_sockets: bool,
    /// How the programs walk from an fd to its socket (for `bench`).
    #[arg(long, hide = true, value_enum, default_value_t = SocketWalk::Auto)]
    socket_walk: SocketWalk,
    /// Overload protection: hand over at most N events a second (whole machine), a uniform
    /// sample, and count every call exactly in aggregate records (README, "Overload").
    #[arg(long, value_name = "N")]
    max_rate: Option<u64>,
}

impl CommonArgs {
    fn target(&self) -> Target {
        Target::new(self.output.clone(), self.output_fd)
    }

    fn record_options(&self, filters: Filters) -> Result<RecordOptions> {
        let ringbuf_size = recorder::record::ringbuf_size(self.ringbuf_size)?;
        Ok(RecordOptions {
            output: self.target(),
            modes: self.attach.modes(),
            snaplen: self.snaplen,
            ringbuf_size,
            buffer: self.buffer,
            filters,
            duration: None,
            max_events: None,
            rotate_size: None,
            rotate_time: None,
            ring: None,
            block_events: self.block_events,
            flush_interval: Duration::from_millis(self.flush_interval_ms.max(1)),
            drain_interval: Duration::from_millis(self.drain_interval_ms.max(1)),
            command_line: std::env::args().collect(),
            run_as: None,
            inflight_slots: self.inflight_slots,
            test_write_delay: Duration::from_millis(self.test_write_delay_ms),
            container_names: true,
            no_sockets: self.no_sockets,
            socket_walk: self.socket_walk,
            max_rate: self.max_rate,
        })
    }
}

/// Prints a session's notices on stderr, as the recorder's own lines.
fn stderr_reporter() -> Reporter {
    Box::new(|n: Notice| eprintln!("recorder: {n}"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size {s:?}: use a number with an optional K, M or G");
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(bad()),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

fn print_summary(s: &Summary, to: &Target, started: Instant) {
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
    if to.is_stream() {
        eprintln!("recorder: wrote the trace to {to}");
        return;
    }
    for f in &s.files {
        eprintln!("recorder: wrote {}", f.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }
}
