//! A flood against a tiny ring buffer: the kernel drops events, and every dropped event is
//! accounted for, so captured + lost == calls made.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;

use crate::common::*;

const CALLS: u64 = 300_000;

/// What a flood of [`CALLS`] getsockopt calls left in a capture.
struct Flood {
    reader: format::TraceReader,
    events: Vec<format::OwnedEvent>,
    captured: u64,
    lost: u64,
    /// Boot-time ns just before and after the flood.
    boot_before: u64,
    boot_after: u64,
    log: String,
}

/// Floods `rec` with [`CALLS`] calls, stops it and reads what it captured and lost.
fn flood(rec: Recorder) -> Flood {
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let boot_before = recorder::sys::boot_ns();
    assert_eq!(recorder::workload::flood(sock.as_raw_fd(), CALLS), CALLS);
    let boot_after = recorder::sys::boot_ns();
    let (reader, events, log) = stop_and_read(rec);
    let lost = reader.losses().iter().map(|l| l.lost).sum();
    Flood {
        captured: events.len() as u64,
        reader,
        events,
        lost,
        boot_before,
        boot_after,
        log,
    }
}

#[test]
fn captured_plus_lost_equals_calls_made() {
    let Some(_kernel) = live_kernel("captured_plus_lost_equals_calls_made") else {
        return;
    };
    let dir = temp_dir("flood");
    let out = dir.join("flood.gsot");
    let me = std::process::id().to_string();
    // 4 KiB holds about 30 records; the drain timer is left at its default.
    let rec = start_recorder(&out, &["--pid", &me, "--ringbuf-size", "4096"]);
    let Flood {
        reader,
        events,
        captured,
        lost,
        boot_before,
        boot_after,
        log,
    } = flood(rec);
    assert!(lost > 0, "a 4 KiB ring buffer cannot hold a flood:\n{log}");
    assert_eq!(
        captured + lost,
        CALLS,
        "captured {captured} + lost {lost}:\n{log}"
    );
    assert!(
        log.contains(&format!("{captured} events captured, {lost} lost")),
        "the summary reports the same numbers:\n{log}"
    );
    for l in reader.losses() {
        assert!(l.lost > 0);
        assert!(l.start_ns <= l.end_ns, "{l:?}");
        assert!(
            l.start_ns >= boot_before && l.end_ns <= boot_after,
            "{l:?} outside the flood"
        );
        assert!((l.cpu as usize) < reader.header().cpu_count as usize);
    }
    // What was captured is intact.
    let rcvbuf = events[0].value.clone();
    assert!(
        events
            .iter()
            .all(|e| e.optname == libc::SO_RCVBUF && e.ret == 0 && e.value == rcvbuf)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compression stalled (a test knob sleeps the writer thread per batch): the drain goes on
/// into the bounded queue, then waits, and the kernel counts what its ring buffer cannot take.
#[test]
fn a_stalled_writer_loses_nothing_uncounted() {
    let Some(_kernel) = live_kernel("a_stalled_writer_loses_nothing_uncounted") else {
        return;
    };
    let dir = temp_dir("stall");
    let out = dir.join("stall.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--ringbuf-size",
            "64K",
            "--test-write-delay-ms",
            "20",
        ],
    );
    let Flood {
        reader,
        events,
        captured,
        lost,
        boot_before,
        boot_after,
        log,
    } = flood(rec);
    assert!(
        lost > 0,
        "a writer taking 20 ms a batch cannot keep up with a flood:\n{log}"
    );
    assert_eq!(
        captured + lost,
        CALLS,
        "captured {captured} + lost {lost}:\n{log}"
    );
    for l in reader.losses() {
        assert!(
            l.start_ns <= l.end_ns && l.start_ns >= boot_before && l.end_ns <= boot_after,
            "{l:?} outside the flood"
        );
    }
    assert!(
        events
            .iter()
            .all(|e| e.optname == libc::SO_RCVBUF && e.ret == 0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
