//! Helpers shared by the integration tests: running the real binary, temporary files, traces.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use format::synth::{SynthConfig, Workload, write_trace};
use format::{OwnedEvent, TraceWriter, WriterOptions};

/// The repository root (tests run the binary from there so paths in outputs are stable).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("analyze/ has a parent")
        .to_path_buf()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The analyze binary, to run in the repository root.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_analyze"));
    c.current_dir(root());
    c
}

/// Runs `c` with no input and collects what it said.
pub fn run(c: &mut Command) -> Run {
    let out = c
        .stdin(Stdio::null())
        .output()
        .expect("the analyze binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `analyze ARGS` in the repository root.
pub fn analyze(args: &[&str]) -> Run {
    run(command().args(args))
}

/// Runs `analyze ARGS`, which must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    let r = analyze(args);
    assert_eq!(r.code, 0, "analyze {args:?}: {}", r.stderr);
    r.stdout
}

/// A fresh directory for one test.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("analyze-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a temp dir");
    d
}

/// Writes a synthetic mixed trace.
pub fn synth(path: &Path, seed: u64, events: u64, block_events: u32) {
    let cfg = SynthConfig {
        seed,
        events,
        workload: Workload::Mixed,
        ..SynthConfig::default()
    };
    let opts = WriterOptions {
        max_block_events: block_events,
        ..WriterOptions::default()
    };
    let f = std::fs::File::create(path).expect("create trace");
    write_trace(cfg, std::io::BufWriter::new(f), opts).expect("write trace");
}

/// The events a synthetic mixed trace holds, generated again (the generator is deterministic).
pub fn synth_events(seed: u64, events: u64) -> (format::CaptureHeader, Vec<OwnedEvent>) {
    let cfg = SynthConfig {
        seed,
        events,
        workload: Workload::Mixed,
        ..SynthConfig::default()
    };
    let mut s = format::synth::Synth::new(cfg);
    let h = s.header();
    let mut out = Vec::new();
    let mut e = OwnedEvent::default();
    while s.next_event(&mut e) {
        out.push(e.clone());
    }
    (h, out)
}

/// Writes `events` as a trace with header `h`.
pub fn write_events(
    path: &Path,
    h: &format::CaptureHeader,
    events: &[OwnedEvent],
    block_events: u32,
) {
    let f = std::fs::File::create(path).expect("create trace");
    let opts = WriterOptions {
        max_block_events: block_events,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(std::io::BufWriter::new(f), h, opts).expect("writer");
    for e in events {
        w.write(&e.as_event()).expect("write");
    }
    w.finish().expect("finish");
}
