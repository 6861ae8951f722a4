//! A flood against a tiny ring buffer: the kernel drops events, and every dropped event is
//! accounted for, so captured + lost == calls made.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;

use crate::common::*;

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
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    const CALLS: u64 = 300_000;
    let boot_before = recorder::sys::boot_ns();
    assert_eq!(recorder::workload::flood(sock.as_raw_fd(), CALLS), CALLS);
    let boot_after = recorder::sys::boot_ns();
    let (reader, events, log) = stop_and_read(rec);

    let captured = events.len() as u64;
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
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
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    const CALLS: u64 = 300_000;
    let boot_before = recorder::sys::boot_ns();
    assert_eq!(recorder::workload::flood(sock.as_raw_fd(), CALLS), CALLS);
    let boot_after = recorder::sys::boot_ns();
    let (reader, events, log) = stop_and_read(rec);

    let captured = events.len() as u64;
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
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
