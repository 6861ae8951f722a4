//! Writes a deterministic synthetic trace: `gen-trace --seed 1 --events 1000000 -o out.gsot`.

use std::io::BufWriter;
use std::process::ExitCode;

use format::WriterOptions;
use format::synth::{SynthConfig, Workload, write_trace};

const USAGE: &str = "usage: gen-trace [--seed N] [--events N] [--workload mixed|loop] [--processes N] [--snaplen N] [--block-events N] -o FILE
       gen-trace --print-block-offsets FILE   (one block section offset per line)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-trace: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut cfg = SynthConfig::default();
    let mut opts = WriterOptions::default();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        let num =
            |s: String, name: &str| s.parse::<u64>().map_err(|e| format!("{name} {s:?}: {e}"));
        match a.as_str() {
            "--seed" => cfg.seed = num(val("--seed")?, "--seed")?,
            "--events" => cfg.events = num(val("--events")?, "--events")?,
            "--processes" => cfg.processes = num(val("--processes")?, "--processes")? as u32,
            "--snaplen" => cfg.snaplen = num(val("--snaplen")?, "--snaplen")? as u32,
            "--block-events" => {
                opts.max_block_events = num(val("--block-events")?, "--block-events")? as u32
            }
            "--workload" => {
                cfg.workload = match val("--workload")?.as_str() {
                    "mixed" => Workload::Mixed,
                    "loop" => Workload::Loop,
                    w => return Err(format!("unknown workload {w:?}: expected mixed or loop")),
                }
            }
            "-o" | "--output" => out = Some(val("-o")?),
            "--print-block-offsets" => {
                let path = val("--print-block-offsets")?;
                let r = format::TraceReader::open(&path).map_err(|e| format!("{path}: {e}"))?;
                for b in r.blocks() {
                    println!("{}", b.offset);
                }
                return Ok(());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("unexpected argument {a:?}\n{USAGE}")),
        }
    }
    let path = out.ok_or(format!("-o FILE is required\n{USAGE}"))?;
    let file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
    let w = write_trace(cfg, BufWriter::new(file), opts).map_err(|e| format!("{path}: {e}"))?;
    w.into_inner()
        .map_err(|e| format!("{path}: {}", e.error()))?
        .sync_all()
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(())
}
