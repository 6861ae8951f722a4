//! `analyze`: offline queries over getsockopt trace files.
//!
//! The binary is a thin shell around [`run`]; the modules are shared by every subcommand (and
//! by the ones to come: export, replay, slice, plot):
//! * [`decode`]: names and values as the kernel defines them;
//! * [`filter`]: the filter options and `--where`, evaluated per call site;
//! * [`input`]: opening files, damage reporting, parallel ordered decoding, multi-file merge;
//! * [`output`]: an event as text, JSON or CSV;
//! * [`cmd`]: one module per subcommand.

pub mod cmd;
pub mod decode;
#[cfg(feature = "export")]
pub mod export;
pub mod filter;
pub mod input;
pub mod output;
pub mod stats;
pub mod time;

use std::ffi::OsString;
use std::io::{self, Write};

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: `verify` found problems, or a damaged file was read only in part.
pub const EXIT_DAMAGED: u8 = 1;
/// Exit code: bad command line (unknown option, bad `--where`, ...).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: an input is not a trace, is from an unsupported version, or cannot be read.
pub const EXIT_UNREADABLE: u8 = 3;

/// An error that ends the program: exit code and a one-line message (without the `analyze:`
/// prefix). An empty message with code 0 is a quiet stop (the reader closed the pipe).
#[derive(Debug)]
pub struct AppError {
    pub code: u8,
    pub message: String,
}

impl AppError {
    pub fn usage(message: impl Into<String>) -> AppError {
        AppError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<io::Error> for AppError {
    fn from(e: io::Error) -> AppError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `analyze events x | head`: the reader has what it wanted.
            AppError {
                code: EXIT_OK,
                message: String::new(),
            }
        } else {
            AppError {
                code: EXIT_UNREADABLE,
                message: format!("writing the output: {e}"),
            }
        }
    }
}

impl From<filter::FilterError> for AppError {
    fn from(e: filter::FilterError) -> AppError {
        AppError::usage(e.0)
    }
}

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  verify found problems, or a damaged input was read only in part (stderr says what was skipped)
  2  bad command line (unknown option, bad --where expression, ...)
  3  an input is not a trace file, is from an unsupported format version, or cannot be read

Examples:
  analyze info capture.gsot
  analyze events capture.gsot --comm nginx --optname TCP_INFO | less
  analyze events capture.gsot --errors --format json
  analyze events cap-0.gsot cap-1.gsot --since 10s --until 20s
  analyze stats capture.gsot --by comm,optname --top 20
  analyze stats capture.gsot --where 'duration > 10us || errno == EINVAL' --interval 1s
  analyze verify capture.gsot";

/// Offline queries over getsockopt trace files.
#[derive(Parser, Debug)]
#[command(name = "analyze", version, about, after_help = AFTER_HELP)]
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
}

/// Runs the program on `args` (the first being the program name); returns the exit code.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
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
    let result = match &cli.command {
        Command::Info(a) => cmd::info::run(a, &mut out),
        Command::Events(a) => cmd::events::run(a, &mut out),
        Command::Stats(a) => cmd::stats::run(a, &mut out),
        Command::Verify(a) => cmd::verify::run(a, &mut out),
        #[cfg(feature = "export")]
        Command::Export(a) => cmd::export::run(a, &mut out),
        Command::Slice(a) => cmd::slice::run(a, &mut out),
        Command::Replay(a) => cmd::replay::run(a, &mut out),
        Command::Plot(a) => cmd::plot::run(a, &mut out),
    }
    .and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) if input::damaged() && code == EXIT_OK => EXIT_DAMAGED,
        Ok(code) => code,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("analyze: {}", e.message);
            }
            e.code
        }
    }
}
