//! `analyze`: offline queries over getsockopt trace files.
//!
//! The binary is a thin shell around [`run`]; the modules are shared by every subcommand:
//! * [`decode`]: names and values as the kernel defines them;
//! * [`filter`]: the filter options and `--where`, evaluated per call site;
//! * [`input`]: opening files, damage reporting, parallel ordered decoding, multi-file merge;
//! * [`output`]: an event as text, JSON or CSV;
//! * [`export`]: events as typed Arrow columns for Parquet;
//! * [`error`]: how the program ends, with which exit code;
//! * [`cmd`]: one module per subcommand.

pub mod attr;
pub mod cmd;
/// Names, values and decoders live in `gsot-decode`, shared with the recorder.
pub use gsot_decode as decode;
pub mod error;
#[cfg(feature = "export")]
pub mod export;
pub mod filter;
pub mod input;
pub mod output;
pub mod sampled;
pub mod socket;
pub mod stats;
pub use gsot_decode::time;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{AppError, EXIT_DAMAGED, EXIT_INTERRUPTED, EXIT_UNREADABLE, EXIT_USAGE};

const EXAMPLES: &str = "\
Examples:
  analyze info capture.gsot
  analyze events capture.gsot --comm nginx --optname TCP_INFO | less
  analyze events capture.gsot --errors --format json
  analyze events cap-0.gsot cap-1.gsot --since 10s --until 20s
  analyze stats capture.gsot --by comm,optname --top 20
  analyze stats capture.gsot --where 'duration > 10us || errno == EINVAL' --interval 1s
  analyze verify capture.gsot";

fn after_help() -> String {
    format!("{}\n{EXAMPLES}", error::exit_status_help())
}

/// Offline queries over getsockopt trace files.
#[derive(Parser, Debug)]
#[command(name = "analyze", version, about, after_help = after_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads for decoding (default: all CPUs).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// What a capture is: header, time span, events, losses, processes, blocks, sizes.
    Info(cmd::info::InfoArgs),
    /// One line (or JSON object, or CSV row) per call, with decoded values.
    Events(cmd::events::EventsArgs),
    /// Count, errors and latency percentiles per group; or a rate over time.
    Stats(cmd::stats::StatsArgs),
    /// Check every checksum and structure; exit 1 if the file is not whole.
    Verify(cmd::verify::VerifyArgs),
    /// The selected events as a typed Parquet file, or a dataset partitioned by host and date.
    #[cfg(feature = "export")]
    Export(cmd::export::ExportArgs),
    /// A smaller, valid trace of the selected events, optionally redacted, for a bug report.
    Slice(cmd::slice::SliceArgs),
    /// The events written to stdout at their recorded pace (or faster), as text or JSON lines.
    Replay(cmd::replay::ReplayArgs),
    /// A picture: calls per second over time and a latency histogram per group (SVG or PNG).
    Plot(cmd::plot::PlotArgs),
    /// Man pages or shell completions, for packaging (scripts/release.sh).
    #[command(hide = true)]
    Generate(cmd::generate::GenerateArgs),
}

/// Runs the program on `args` (the first being the program name).
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    ExitCode::from(exit_code(args))
}

fn exit_code(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    if let Some(n) = cli.threads {
        // Only fails if a pool exists already (a second call in one process): keep that one.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let result = run_command(&cli.command, &mut out);
    // Flushed whatever the outcome: after Ctrl-C the lines written so far are wanted too.
    let flushed = out.flush().map_err(AppError::from);
    match result.and(flushed) {
        Ok(()) if input::damaged() => EXIT_DAMAGED,
        Ok(()) => 0,
        Err(e) if e.is_closed_pipe() => 0,
        Err(e) => {
            let message = e.to_string();
            if !message.is_empty() {
                eprintln!("analyze: {message}");
            }
            e.code()
        }
    }
}

fn run_command(command: &Command, out: &mut dyn Write) -> Result<(), AppError> {
    match command {
        Command::Info(a) => cmd::info::run(a, out),
        Command::Events(a) => cmd::events::run(a, out),
        Command::Stats(a) => cmd::stats::run(a, out),
        Command::Verify(a) => cmd::verify::run(a, out),
        #[cfg(feature = "export")]
        Command::Export(a) => cmd::export::run(a, out),
        Command::Slice(a) => cmd::slice::run(a, out),
        Command::Replay(a) => cmd::replay::run(a, out),
        Command::Plot(a) => cmd::plot::run(a, out),
        Command::Generate(a) => cmd::generate::run(a, out),
    }
}
