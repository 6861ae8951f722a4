//! `--max-rate`: a flood far above the budget hands over at most the budget as events, and
//! the aggregate records count every call exactly, per option and per errno.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::time::Instant;

use crate::common::*;

/// (level, optname, ret) -> calls, summed over a file's aggregate periods.
fn aggregated(r: &format::TraceReader) -> HashMap<(i32, i32, i32), u64> {
    let mut by = HashMap::new();
    for p in r.aggregates() {
        for e in &p.entries {
            *by.entry((e.level, e.optname, e.ret)).or_default() += e.calls();
        }
    }
    by
}

#[test]
fn a_flood_above_max_rate_is_sampled_and_counted_exactly() {
    let Some(_kernel) = live_kernel("a_flood_above_max_rate_is_sampled_and_counted_exactly") else {
        return;
    };
    let dir = temp_dir("overload");
    let out = dir.join("overload.gsot");
    let me = std::process::id().to_string();
    const RATE: u64 = 2000;
    const FLUSH_MS: u64 = 200;
    let rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--max-rate",
            &RATE.to_string(),
            "--flush-interval-ms",
            &FLUSH_MS.to_string(),
        ],
    );
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    let started = Instant::now();
    let mut ok = 0;
    let mut refused = 0;
    // Rounds over a second or more, so several periods pass and the probability adapts.
    for _ in 0..6 {
        ok += recorder::workload::flood(fd, 60_000);
        // An option TCP does not have: ENOPROTOOPT.
        refused += 20_000 - recorder::workload::flood_option(fd, libc::SOL_SOCKET, 9999, 20_000);
    }
    let elapsed = started.elapsed();
    let (reader, events, log) = stop_and_read(rec);
    assert_eq!((ok, refused), (360_000, 120_000));
    let extra = &reader.header().extra;
    assert!(
        extra.contains(&("max_rate".into(), RATE.to_string())),
        "{extra:?}"
    );
    assert!(extra.contains(&("sampling".into(), "uniform-per-period".into())));
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
    let by = aggregated(&reader);
    let rcvbuf = by
        .get(&(libc::SOL_SOCKET, libc::SO_RCVBUF, 0))
        .copied()
        .unwrap_or(0);
    let enoprotoopt = by
        .get(&(libc::SOL_SOCKET, 9999, -libc::ENOPROTOOPT))
        .copied()
        .unwrap_or(0);
    // Exactly the calls made, nothing counted twice: aggregated + lost == calls.
    assert_eq!(rcvbuf + lost, ok, "{by:?}, lost {lost}:\n{log}");
    assert_eq!(enoprotoopt, refused, "{by:?}");
    assert_eq!(by.len(), 2, "no other key, no overflow: {by:?}");
    assert_eq!(lost, 0);
    // At most the budget, plus one period at full rate's worth of the cap, plus one call per
    // CPU and period that passed the cap at the same time as another.
    let periods = reader.aggregates().len() as u64;
    let cpus = reader.header().cpu_count as u64;
    let budget = (RATE as f64 * (elapsed.as_secs_f64() + FLUSH_MS as f64 / 1000.0)) as u64
        + RATE * FLUSH_MS / 1000
        + periods * cpus;
    assert!(
        (events.len() as u64) <= budget,
        "{} events, budget {budget} over {elapsed:?}",
        events.len()
    );
    assert!(
        events.len() as u64 >= RATE / 2,
        "a sample was handed over: {}",
        events.len()
    );
    // Every event's call is one the aggregates hold.
    assert!(
        events
            .iter()
            .all(|e| by.contains_key(&(e.level, e.optname, e.ret)))
    );
    let sampled: u64 = reader
        .aggregates()
        .iter()
        .map(|p| p.sampled - p.capped - p.dropped)
        .sum();
    assert_eq!(
        sampled,
        events.len() as u64,
        "every sampled call reached the file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn below_max_rate_every_call_is_an_event_and_percentiles_agree() {
    let Some(_kernel) = live_kernel("below_max_rate_every_call_is_an_event_and_percentiles_agree")
    else {
        return;
    };
    let dir = temp_dir("underload");
    let out = dir.join("underload.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--max-rate", "1000000"]);
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    assert_eq!(recorder::workload::flood(sock.as_raw_fd(), 5000), 5000);
    let (reader, events, _log) = stop_and_read(rec);
    assert_eq!(events.len(), 5000);
    let entries: Vec<&format::AggregateEntry> = reader
        .aggregates()
        .iter()
        .flat_map(|p| &p.entries)
        .collect();
    assert_eq!(entries.iter().map(|e| e.calls()).sum::<u64>(), 5000);
    // The exact durations against the histogram: each quantile within 1/16.
    let mut exact: Vec<u64> = events.iter().map(|e| e.duration_ns).collect();
    exact.sort();
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    for e in &entries {
        buckets.extend(e.buckets.iter().map(|&(i, n)| (e.bucket_value(i), n)));
    }
    buckets.sort();
    for q in [0.5, 0.9, 0.99] {
        let rank = (q * 5000.0_f64).ceil() as u64;
        let mut seen = 0;
        let got = buckets
            .iter()
            .find(|b| {
                seen += b.1;
                seen >= rank
            })
            .unwrap()
            .0;
        let want = exact[rank as usize - 1];
        assert!(
            got.abs_diff(want) as f64 <= want as f64 / 16.0 + 1.0,
            "q{q}: {got} vs {want}"
        );
    }
    let max = entries.iter().map(|e| e.duration_max_ns).max().unwrap();
    assert_eq!(max, *exact.last().unwrap(), "the maximum is exact");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_rotation_the_files_together_count_every_call() {
    let Some(_kernel) = live_kernel("with_rotation_the_files_together_count_every_call") else {
        return;
    };
    let dir = temp_dir("overload-rotation");
    let out = dir.join("rot.gsot");
    let me = std::process::id().to_string();
    let args = [
        "--pid",
        &me,
        "--max-rate",
        "500",
        "--flush-interval-ms",
        "100",
        "--rotate-time",
        "400ms",
    ];
    let rec = start_recorder(&out, &args);
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    for _ in 0..6 {
        assert_eq!(recorder::workload::flood(sock.as_raw_fd(), 25_000), 25_000);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, log) = rec.stop();
    assert!(status.success(), "{log}");
    let files = rotated_files(&out);
    assert!(files.len() >= 2, "{files:?}\n{log}");
    let mut counted = 0;
    for f in &files {
        let r = format::TraceReader::open(f).unwrap();
        counted += aggregated(&r).values().sum::<u64>();
        assert!(r.losses().is_empty());
    }
    assert_eq!(
        counted, 150_000,
        "the files' periods together: every call once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_rate_zero_and_with_ring_are_refused_in_one_line() {
    let Some(_kernel) = live_kernel("max_rate_zero_and_with_ring_are_refused_in_one_line") else {
        return;
    };
    let dir = temp_dir("overload-refused");
    let out = dir.join("x.gsot");
    let recorder = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_recorder"));
        c.args(["record", "-o"])
            .arg(&out)
            .args(["--attach", "tracepoint"]);
        c
    };
    let (status, err) = run_to_exit(recorder().args(["--max-rate", "0"]));
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        err,
        "recorder: error: --max-rate must be at least 1 (events per second)\n"
    );
    let (status, err) = run_to_exit(recorder().args(["--max-rate", "10", "--ring", "5s"]));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.starts_with("recorder: error: --max-rate and --ring do not compose"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists(), "no file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
