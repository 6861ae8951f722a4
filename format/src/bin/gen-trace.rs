//! Writes a deterministic synthetic trace: `gen-trace --seed 1 --events 1000000 -o out.gsot`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use format::WriterOptions;
use format::synth::{SynthConfig, Workload, write_trace};

/// Writes a deterministic synthetic trace (the same arguments give the same bytes).
#[derive(Parser)]
#[command(name = "gen-trace", version)]
struct Args {
    /// Seed of the generator.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Number of events.
    #[arg(long, default_value_t = SynthConfig::default().events)]
    events: u64,
    /// Shape of the workload.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Mixed)]
    workload: WorkloadArg,
    /// Number of processes (mixed workload).
    #[arg(long, default_value_t = SynthConfig::default().processes)]
    processes: u32,
    /// Value bytes kept per event.
    #[arg(long, default_value_t = SynthConfig::default().snaplen)]
    snaplen: u32,
    /// Host name in the header (a fleet of synthetic hosts).
    #[arg(long, value_name = "NAME", default_value = format::synth::SYNTH_HOST)]
    host: String,
    /// UTC wall-clock time of the first event, e.g. 2026-01-02T00:00:00Z [default:
    /// 2026-01-01T00:00:00Z]. Only the header's boot-to-wall offset changes: the events are
    /// the same.
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    start: Option<i64>,
    /// Events without socket identity (as `recorder record --no-sockets`); every other field
    /// is the same.
    #[arg(long)]
    no_sockets: bool,
    /// Events per block at most.
    #[arg(long, default_value_t = WriterOptions::default().max_block_events)]
    block_events: u32,
    /// Where to write the trace.
    #[arg(short, long, required_unless_present = "print_block_offsets")]
    output: Option<PathBuf>,
    /// Print the offset of every block section of FILE, one a line, and write nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    print_block_offsets: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum WorkloadArg {
    Mixed,
    Loop,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (&args.print_block_offsets, &args.output) {
        (Some(path), _) => print_block_offsets(path),
        (None, Some(path)) => generate(&args, path),
        (None, None) => unreachable!("clap requires --output without --print-block-offsets"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-trace: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse_start(s: &str) -> Result<i64, String> {
    gsot_decode::time::parse_wall(s, 0)
        .filter(|_| s.contains(['T', ' ']))
        .ok_or_else(|| format!("{s:?}: expected a UTC date and time, e.g. 2026-01-02T00:00:00Z"))
}

fn print_block_offsets(path: &Path) -> Result<(), String> {
    let r = format::TraceReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for b in r.blocks() {
        println!("{}", b.offset);
    }
    Ok(())
}

fn generate(args: &Args, path: &Path) -> Result<(), String> {
    let cfg = SynthConfig {
        seed: args.seed,
        events: args.events,
        processes: args.processes,
        snaplen: args.snaplen,
        host_name: args.host.clone(),
        start_wall_ns: args.start.unwrap_or(SynthConfig::default().start_wall_ns),
        sockets: !args.no_sockets,
        workload: match args.workload {
            WorkloadArg::Mixed => Workload::Mixed,
            WorkloadArg::Loop => Workload::Loop,
        },
    };
    let opts = WriterOptions {
        max_block_events: args.block_events,
        ..WriterOptions::default()
    };
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let w = write_trace(cfg, BufWriter::new(file), opts).map_err(|e| fail(&e))?;
    let file = w.into_inner().map_err(|e| fail(e.error()))?;
    file.sync_all().map_err(|e| fail(&e))
}
