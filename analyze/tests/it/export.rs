//! `analyze export` read back with the parquet crate's own Arrow reader: exact rows, a dataset
//! split at UTC midnight, and errors that name the file. (pyarrow and DuckDB check the rest in
//! analyze/tests/python.)
#![cfg(feature = "export")]

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampNanosecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use format::{CaptureHeader, OwnedEvent, TraceWriter, WriterOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::{Run, analyze, tmp_dir};

const NS_PER_DAY: i64 = 86_400_000_000_000;
/// 2026-01-01T00:00:00Z.
const MIDNIGHT: i64 = 20454 * NS_PER_DAY;

/// A trace whose events run from 23:59:59.5 to 00:00:00.5 UTC, one every 10 ms, on one host;
/// every tenth call fails, SO_RCVBUF values count up.
fn midnight_trace(path: &Path, host: &str) -> Vec<OwnedEvent> {
    let boot_start: u64 = 1_000_000_000_000;
    let header = CaptureHeader {
        capture_id: [7; 16],
        host_name: host.into(),
        boot_to_wall_ns: MIDNIGHT - 500_000_000 - boot_start as i64,
        start_ts_ns: boot_start,
        attach_mode: "synthetic".into(),
        snaplen: 64,
        ..CaptureHeader::default()
    };
    let mut events = Vec::new();
    for i in 0..100u32 {
        let mut e = OwnedEvent {
            ts_ns: boot_start + i as u64 * 10_000_000,
            duration_ns: 100 + i as u64,
            tgid: 42,
            tid: 42 + i % 3,
            comm: *b"server\0\0\0\0\0\0\0\0\0\0",
            fd: 3,
            level: 1,   // SOL_SOCKET
            optname: 8, // SO_RCVBUF
            optlen_in: 4,
            optlen_out: 4,
            value: (1000 + i as i32).to_le_bytes().to_vec(),
            ..OwnedEvent::default()
        };
        if i % 10 == 9 {
            e.ret = -22;
            e.value.clear();
        }
        events.push(e);
    }
    let f = std::fs::File::create(path).expect("create trace");
    let opts = WriterOptions {
        max_block_events: 16,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(std::io::BufWriter::new(f), &header, opts).expect("writer");
    for e in &events {
        w.write(&e.as_event()).expect("write");
    }
    w.finish().expect("finish");
    events
}

pub(crate) fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).expect("open parquet");
    ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("a parquet file")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

#[test]
fn rows_read_back_exactly() {
    let d = tmp_dir("exact");
    let trace = d.join("t.gsot");
    let events = midnight_trace(&trace, "web-1");
    let out = d.join("t.parquet");
    let Run {
        code,
        stdout,
        stderr,
    } = analyze(&[
        "export",
        trace.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--row-group-rows",
        "30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("exported 100 events"), "{stdout}");
    let batches = read_parquet(&out);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 100);
    let mut i = 0;
    for b in &batches {
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let dur = b
            .column_by_name("duration_ns")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let ret = b.column_by_name("ret").unwrap().as_primitive::<Int32Type>();
        let errno = b
            .column_by_name("errno")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let errno_names = errno.values().as_string::<i32>();
        let value = b.column_by_name("value").unwrap().as_binary::<i32>();
        let value_int = b
            .column_by_name("value_int")
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        let host = b
            .column_by_name("host")
            .unwrap()
            .as_dictionary::<Int32Type>();
        for r in 0..b.num_rows() {
            let e = &events[i];
            assert_eq!(
                time.value(r),
                MIDNIGHT - 500_000_000 + i as i64 * 10_000_000
            );
            assert_eq!(dur.value(r), e.duration_ns);
            assert_eq!(ret.value(r), e.ret);
            assert_eq!(value.value(r), e.value.as_slice());
            if e.ret < 0 {
                let k = errno.keys().value(r) as usize;
                assert_eq!(errno_names.value(k), "EINVAL");
                assert!(value_int.is_null(r));
            } else {
                assert!(errno.is_null(r));
                assert_eq!(value_int.value(r), 1000 + i as i64);
            }
            let hk = host.keys().value(r) as usize;
            assert_eq!(host.values().as_string::<i32>().value(hk), "web-1");
            i += 1;
        }
    }
    // 100 rows in row groups of at least 30 rows (blocks of 16): 32 + 32 + 32 + 4.
    let meta = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
        .unwrap()
        .metadata()
        .clone();
    let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(groups, vec![32, 32, 32, 4]);
    let kv = meta.file_metadata().key_value_metadata().expect("metadata");
    let headers = kv
        .iter()
        .find(|k| k.key == "gsot.headers")
        .expect("headers");
    assert!(
        headers
            .value
            .as_deref()
            .unwrap()
            .contains("\"host_name\":\"web-1\"")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn dataset_splits_at_utc_midnight_and_by_host() {
    let d = tmp_dir("dataset");
    let a = d.join("a.gsot");
    let b = d.join("b.gsot");
    midnight_trace(&a, "web-1");
    midnight_trace(&b, "db/2");
    let out = d.join("ds");
    let Run { code, stderr, .. } = analyze(&[
        "export",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--partition-by",
        "host,date",
        "--errors",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for host in ["web-1", "db%2F2"] {
        for (date, want) in [("2025-12-31", 5), ("2026-01-01", 5)] {
            let dir = out
                .join(format!("host={host}"))
                .join(format!("date={date}"));
            let files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), 1, "{files:?}");
            let batches = read_parquet(&files[0]);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, want, "{host} {date}");
            for b in &batches {
                assert!(b.column_by_name("host").is_none());
                let t = b
                    .column_by_name("time")
                    .unwrap()
                    .as_primitive::<TimestampNanosecondType>();
                for v in t.values() {
                    let day_start = if date == "2026-01-01" {
                        MIDNIGHT
                    } else {
                        MIDNIGHT - NS_PER_DAY
                    };
                    assert!((day_start..day_start + NS_PER_DAY).contains(v));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_input_and_bad_options_are_one_line_errors() {
    let d = tmp_dir("errors");
    let junk = d.join("junk.gsot");
    std::fs::write(&junk, b"not a trace at all, just text").unwrap();
    let out = d.join("o.parquet");
    let Run { code, stderr, .. } = analyze(&[
        "export",
        junk.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("junk.gsot"), "{stderr}");
    assert!(!out.exists());
    let trace = d.join("t.gsot");
    midnight_trace(&trace, "h");
    let Run { code, stderr, .. } = analyze(&[
        "export",
        trace.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--partition-by",
        "cpu",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--partition-by: unknown field \"cpu\""),
        "{stderr}"
    );
    let Run { code, stderr, .. } =
        analyze(&["export", trace.to_str().unwrap(), "-o", d.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is a directory"), "{stderr}");
    let Run { code, stderr, .. } = analyze(&[
        "export",
        trace.to_str().unwrap(),
        "-o",
        d.join("no/such/dir/x.parquet").to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert!(stderr.contains("cannot create"), "{stderr}");
    let _ = std::fs::remove_dir_all(&d);
}
