//! Rotation by size and by time: numbered files, each a whole trace of one capture, that
//! together hold exactly the calls made.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// Both tests filter on this process's pid, so each would record the other's calls: one at a
/// time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes `batches` bursts of `per_batch` getsockopt(SO_RCVBUF) calls with a pause after each,
/// so the recorder drains (and may rotate) between them. Returns the calls made.
pub(crate) fn bursts(batches: u64, per_batch: u64, pause: Duration) -> u64 {
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut calls = 0;
    for _ in 0..batches {
        calls += recorder::workload::flood(sock.as_raw_fd(), per_batch);
        std::thread::sleep(pause);
    }
    assert_eq!(calls, batches * per_batch, "a getsockopt failed");
    calls
}

/// Opens every file of the capture and checks they form one capture: each finished cleanly,
/// same capture id, sequence 0, 1, 2, ..., events in time order across files, our process in
/// each file's process table, no loss. Returns the readers.
pub(crate) fn check_rotated_capture(out: &Path, calls: u64, log: &str) -> Vec<format::TraceReader> {
    let files = rotated_files(out);
    let readers: Vec<_> = files
        .iter()
        .map(|f| {
            format::TraceReader::open(f).unwrap_or_else(|e| panic!("{}: {e}\n{log}", f.display()))
        })
        .collect();
    let capture_id = readers[0].header().capture_id;
    let mut total = 0;
    let mut last_ts = 0;
    for (i, (r, f)) in readers.iter().zip(&files).enumerate() {
        let name = f.display();
        assert!(r.recovery().is_none(), "{name} did not end cleanly\n{log}");
        assert_eq!(r.header().capture_id, capture_id, "{name}: capture id");
        assert_eq!(r.header().sequence, i as u32, "{name}: sequence");
        assert_eq!(r.header().attach_mode, "tracepoint");
        let events = r.read_all_events().unwrap();
        assert_eq!(events.len() as u64, r.event_count(), "{name}: index count");
        // A file is only rotated away once it holds events; the last one, opened at the last
        // rotation, may have seen none before the stop.
        if i + 1 < files.len() {
            assert!(
                !events.is_empty(),
                "{name}: a rotated file without events\n{log}"
            );
        }
        if events.is_empty() {
            continue;
        }
        assert!(
            events.iter().all(|e| e.optname == libc::SO_RCVBUF
                && e.ret == 0
                && e.tgid == std::process::id()),
            "{name}: an event that is not one of the workload's calls"
        );
        let first = events.iter().map(|e| e.ts_ns).min().unwrap();
        assert!(
            first >= last_ts,
            "{name} starts before the previous file ends"
        );
        last_ts = events.iter().map(|e| e.ts_ns).max().unwrap();
        assert!(
            r.processes().iter().any(|p| p.pid == std::process::id()),
            "{name}: its process table misses the process of its events"
        );
        assert!(r.losses().is_empty(), "{name}: {:?}\n{log}", r.losses());
        total += events.len() as u64;
    }
    assert_eq!(total, calls, "events across {} files\n{log}", files.len());
    assert!(
        log.contains(&format!("{calls} events captured, 0 lost"))
            && log.contains(&format!("in {} file(s)", files.len())),
        "the summary counts every file:\n{log}"
    );
    for f in &files {
        assert!(
            log.contains(&format!("recorder: wrote {}", f.display())),
            "{log}"
        );
    }
    // Nothing numbered past the last file.
    assert!(!recorder::record::rotated_path(out, files.len() as u32).exists());
    readers
}

#[test]
fn rotate_size_splits_one_capture_into_numbered_whole_files() {
    let Some(_kernel) = live_kernel("rotate_size_splits_one_capture_into_numbered_whole_files")
    else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("rotate-size");
    let out = dir.join("sized.gsot");
    let me = std::process::id().to_string();
    const ROTATE: u64 = 4096;
    let rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--rotate-size",
            "4K",
            "--block-events",
            "1000",
        ],
    );
    let calls = bursts(8, 5000, Duration::from_millis(150));
    let (status, log) = rec.stop();
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    let readers = check_rotated_capture(&out, calls, &log);
    assert!(
        readers.len() >= 4,
        "8 bursts of 5000 calls, drained apart, against a 4 KiB rotation size made only {} file(s):\n{log}",
        readers.len()
    );
    // A file is rotated away only once it holds the rotation size.
    for r in &readers[..readers.len() - 1] {
        assert!(
            r.file_len() >= ROTATE,
            "a rotated file of {} bytes",
            r.file_len()
        );
    }
    assert_eq!(
        log.matches("recorder: rotated to ").count(),
        readers.len() - 1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rotate_time_splits_one_capture_into_numbered_whole_files() {
    let Some(_kernel) = live_kernel("rotate_time_splits_one_capture_into_numbered_whole_files")
    else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir("rotate-time");
    // No extension: the number is appended (trace.1, trace.2, ...).
    let out = dir.join("timed");
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--rotate-time", "300ms"]);
    // About 1.8 s of bursts: at least 3 rotations of 300 ms, whatever the machine's load.
    let calls = bursts(12, 2000, Duration::from_millis(150));
    let (status, log) = rec.stop();
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    let readers = check_rotated_capture(&out, calls, &log);
    assert!(
        readers.len() >= 3,
        "1.8 s of calls with --rotate-time 300ms made only {} file(s):\n{log}",
        readers.len()
    );
    assert!(dir.join("timed.1").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
