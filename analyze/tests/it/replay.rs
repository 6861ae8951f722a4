//! `analyze replay`: same lines as `analyze events`, at the recorded pace (scaled by --speed,
//! gaps capped by --max-gap), a closed pipe ends it with 0, Ctrl-C stops it between lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use format::{CaptureHeader, OwnedEvent, TraceWriter, WriterOptions};

use crate::common::{Run, analyze, command};

/// `analyze ARGS` and how long it took.
fn timed(args: &[&str]) -> (Run, Duration) {
    let t = Instant::now();
    let r = analyze(args);
    (r, t.elapsed())
}

/// A trace with one event at each of these offsets (ms) from the start.
fn trace_at(path: &Path, offsets_ms: &[u64]) {
    let header = CaptureHeader {
        capture_id: [3; 16],
        host_name: "h".into(),
        boot_to_wall_ns: 1_767_225_600_000_000_000,
        start_ts_ns: 1_000_000,
        attach_mode: "synthetic".into(),
        ..CaptureHeader::default()
    };
    let mut w = TraceWriter::try_new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        &header,
        WriterOptions::default(),
    )
    .unwrap();
    for (i, ms) in offsets_ms.iter().enumerate() {
        let e = OwnedEvent {
            ts_ns: 1_000_000 + ms * 1_000_000,
            duration_ns: 1000,
            tgid: 7,
            tid: 7,
            comm: *b"client\0\0\0\0\0\0\0\0\0\0",
            fd: i as i32,
            level: 1,
            optname: 4,
            optlen_in: 4,
            optlen_out: 4,
            value: vec![0; 4],
            ..OwnedEvent::default()
        };
        w.write(&e.as_event()).unwrap();
    }
    w.finish().unwrap();
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("analyze-replay-{}-{name}", std::process::id()))
}

#[test]
fn max_speed_writes_what_events_writes() {
    for format in ["text", "json"] {
        for src in [
            "samples/synthetic-mixed.gsot",
            "samples/real/curl-local-http.gsot",
        ] {
            let Run {
                code: c1,
                stdout: replay,
                stderr: e1,
            } = analyze(&[
                "replay", src, "--speed", "max", "--format", format, "--errors",
            ]);
            let Run {
                code: c2,
                stdout: events,
                ..
            } = analyze(&["events", src, "--format", format, "--errors"]);
            assert_eq!((c1, c2), (0, 0), "{e1}");
            assert_eq!(replay, events, "{src} {format}");
        }
    }
}

#[test]
fn pacing_follows_the_recording_scaled_and_capped() {
    let p = tmp("pace.gsot");
    trace_at(&p, &[0, 200, 400, 600]);
    // Original pacing: 600 ms from first to last line.
    let (
        Run {
            code, stdout: out, ..
        },
        took,
    ) = timed(&["replay", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4);
    assert!(took >= Duration::from_millis(590), "{took:?}");
    // Three times faster: 200 ms.
    let (_, took) = timed(&["replay", p.to_str().unwrap(), "--speed", "3"]);
    assert!(took >= Duration::from_millis(195), "{took:?}");
    assert!(took < Duration::from_millis(590), "{took:?}");
    // Gaps capped at 10 ms: about 30 ms, far from 600.
    let (Run { stdout: out, .. }, took) =
        timed(&["replay", p.to_str().unwrap(), "--max-gap", "10ms"]);
    assert_eq!(out.lines().count(), 4);
    assert!(took >= Duration::from_millis(29), "{took:?}");
    assert!(took < Duration::from_millis(400), "{took:?}");
    let Run {
        code, stderr: err, ..
    } = analyze(&["replay", p.to_str().unwrap(), "--speed", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--speed"), "{err}");
    let _ = std::fs::remove_file(&p);
}

#[test]
fn lines_arrive_when_due_and_a_closed_pipe_is_not_an_error() {
    let p = tmp("pipe.gsot");
    trace_at(&p, &[0, 300, 60_000]);
    let mut child = command()
        .args(["replay", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("client[7/7]"), "{line}");
    line.clear();
    // The second line is flushed when due (300 ms), not held back until the end.
    reader.read_line(&mut line).unwrap();
    let at = t.elapsed();
    assert!(
        at >= Duration::from_millis(250) && at < Duration::from_secs(5),
        "{at:?}"
    );
    drop(reader);
    // The third event is a minute away; this part only checks the flush when due. A closed
    // pipe is noticed at the next write, so it is checked with a short trace below.
    let _ = child.kill();
    let _ = child.wait();

    let q = tmp("pipe2.gsot");
    trace_at(&q, &[0, 50, 100, 150, 200]);
    let mut child = command()
        .args(["replay", q.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_file(&q);
}

#[test]
fn ctrl_c_stops_between_lines() {
    let p = tmp("sigint.gsot");
    trace_at(&p, &[0, 60_000]);
    let mut child = command()
        .args(["replay", p.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let t = Instant::now();
    // SAFETY: sends SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "stopped promptly");
    assert_eq!(status.code(), Some(130));
    assert!(first.starts_with('{') && first.ends_with("}\n"), "{first}");
    assert_eq!(rest, "", "nothing after the interrupt");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(err, "");
    let _ = std::fs::remove_file(&p);
}
