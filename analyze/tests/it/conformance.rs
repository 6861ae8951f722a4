//! The conformance suite (samples/conformance/, FORMAT.md 8.1): every crafted file read by the
//! `format` reader and by `analyze info`, `events`, `stats` and `verify`, each giving the
//! outcome the file's `.json` expects: events, processes, losses, unreadable blocks, rejected
//! summaries, problem offsets, exit codes and the exact error of a refused file.

use std::path::PathBuf;

use crate::common::{analyze, root, tmp_dir};
use format::{BlockSummary, DecodedBlock, OwnedEvent, TraceReader, comm_to_str};
use serde_json::{Value, json};

fn cases() -> Vec<(String, Value)> {
    let dir = root().join("samples/conformance");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("the suite exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 40, "{} cases", out.len());
    out
}

fn path_of(name: &str) -> String {
    format!("samples/conformance/{name}.gsot")
}

/// An event in the suite's JSON shape (comm cut at its first NUL, FORMAT.md 4.1).
fn shown(e: &OwnedEvent) -> Value {
    json!({
        "ts_ns": e.ts_ns, "duration_ns": e.duration_ns, "tgid": e.tgid, "tid": e.tid,
        "comm": comm_to_str(&e.comm), "fd": e.fd, "level": e.level, "optname": e.optname,
        "ret": e.ret, "flags": e.flags,
        "value": e.value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "optlen_in": e.optlen_in, "optlen_out": e.optlen_out, "cpu": e.cpu,
    })
}

fn exit_of(want: &Value, cmd: &str) -> i32 {
    want["exit"][cmd].as_i64().unwrap() as i32
}

#[test]
fn the_format_reader_gives_every_expected_outcome() {
    for (name, want) in cases() {
        let path = root().join(path_of(&name));
        let opened = TraceReader::open(&path);
        if let Some(r) = want["refused"].as_object() {
            let e = opened.err().unwrap_or_else(|| panic!("{name}: opened"));
            assert_eq!(e.offset(), r["offset"].as_u64(), "{name}");
            assert_eq!(e.to_string(), r["error"].as_str().unwrap(), "{name}");
            continue;
        }
        let reader = opened.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.recovery().is_some(), want["recovered"], "{name}");
        let procs: Vec<Value> = reader
            .processes()
            .iter()
            .map(|p| {
                json!({"pid": p.pid, "ppid": p.ppid, "first_seen_ns": p.first_seen_ns,
                       "comm": p.comm, "exe": p.exe, "cgroup": p.cgroup})
            })
            .collect();
        assert_eq!(Value::from(procs), want["processes"], "{name}");
        let losses: Vec<Value> = reader
            .losses()
            .iter()
            .map(|l| json!({"cpu": l.cpu, "lost": l.lost, "start_ns": l.start_ns, "end_ns": l.end_ns}))
            .collect();
        assert_eq!(Value::from(losses), want["losses"], "{name}");
        let aggregates: Vec<Value> = reader.aggregates().iter().map(aggregate_json).collect();
        let none = Value::Array(Vec::new());
        let want_aggregates = want.get("aggregates").unwrap_or(&none);
        assert_eq!(&Value::from(aggregates), want_aggregates, "{name}");

        let (mut events, mut unreadable, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        let mut d = DecodedBlock::new();
        let mut summary = BlockSummary::new();
        for b in reader.blocks() {
            if reader.decode_block(b, &mut d).is_err() {
                unreadable.push(b.offset);
                continue;
            }
            events.extend(d.events().map(|e| shown(&e.to_owned_event())));
            if reader.read_summary(b, &mut summary).is_err() {
                rejected.push(b.offset);
            }
        }
        assert_eq!(Value::from(events), want["events"], "{name}");
        assert_eq!(Value::from(unreadable), want["unreadable_blocks"], "{name}");
        assert_eq!(Value::from(rejected), want["rejected_summaries"], "{name}");
    }
}

#[test]
fn every_command_gives_the_expected_exit_status_and_counts() {
    for (name, want) in cases() {
        let path = path_of(&name);
        let p = path.as_str();
        let run = |args: &[&str]| {
            let r = analyze(args);
            assert_eq!(
                r.code,
                exit_of(&want, args[0]),
                "{name}: {args:?}: {}",
                r.stderr
            );
            r
        };
        let info = run(&["info", p, "--format", "json"]);
        let events = run(&["events", p, "--format", "csv", "--fields", "ts_ns"]);
        let stats = run(&["stats", p, "--by", "", "--format", "csv"]);
        if let Some(r) = want["refused"].as_object() {
            let line = format!("analyze: {p}: {}\n", r["error"].as_str().unwrap());
            for run in [&info, &events, &stats] {
                assert_eq!(run.stderr, line, "{name}");
                assert_eq!(run.stdout, "", "{name}");
            }
            continue;
        }
        // Every command counts the same events, an event at 2^64-1 included.
        let want_ts: Vec<String> = want["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ts_ns"].to_string())
            .collect();
        let got_ts: Vec<&str> = events.stdout.lines().skip(1).collect();
        assert_eq!(got_ts, want_ts, "{name}");
        let count = stats
            .stdout
            .lines()
            .nth(1)
            .map_or(0, |l| l.split(',').next().unwrap().parse().unwrap());
        assert_eq!(
            count,
            want["stats_count"].as_u64().unwrap(),
            "{name}: {}",
            stats.stdout
        );
        if want["unreadable_blocks"].as_array().unwrap().is_empty() {
            let n = format!("\"events\":{},", want_ts.len());
            assert!(info.stdout.contains(&n), "{name}: {}", info.stdout);
        }
        assert!(info.stdout.contains("\"blocks_checked\":false"), "{name}");
        for (glob, n) in want["cgroup"].as_object().into_iter().flatten() {
            let r = run(&[
                "events", p, "--cgroup", glob, "--format", "csv", "--fields", "ts_ns",
            ]);
            assert_eq!(
                r.stdout.lines().count() as u64 - 1,
                n.as_u64().unwrap(),
                "{name} {glob}"
            );
        }
    }
}

#[test]
fn verify_lists_exactly_the_expected_problems_and_notes() {
    for (name, want) in cases() {
        let path = path_of(&name);
        let r = analyze(&["verify", &path]);
        assert_eq!(
            r.code,
            exit_of(&want, "verify"),
            "{name}: {}{}",
            r.stdout,
            r.stderr
        );
        if want["refused"].is_object() {
            continue;
        }
        let lines: Vec<&str> = r.stdout.lines().collect();
        let problems: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("{path}: at offset ")))
            .collect();
        for p in want["problems"].as_array().unwrap() {
            let text = p[1].as_str().unwrap();
            let prefix = match p[0].as_u64() {
                Some(off) => format!("{path}: at offset {off}: "),
                None => format!("{path}: at offset "),
            };
            assert!(
                problems
                    .iter()
                    .any(|l| l.starts_with(&prefix) && l.contains(text)),
                "{name}: no problem {p}: {}",
                r.stdout
            );
        }
        if want["problems"].as_array().unwrap().is_empty() {
            assert!(problems.is_empty(), "{name}: {}", r.stdout);
            assert!(
                lines.last().unwrap().starts_with(&format!("{path}: ok: ")),
                "{name}"
            );
        }
        let notes: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains(": note: "))
            .collect();
        assert_eq!(
            notes.len(),
            want["notes"].as_array().unwrap().len(),
            "{name}: {}",
            r.stdout
        );
        for n in want["notes"].as_array().unwrap() {
            let prefix = format!("{path}: note: at offset {}: ", n[0]);
            let text = n[1].as_str().unwrap();
            assert!(
                notes
                    .iter()
                    .any(|l| l.starts_with(&prefix) && l.contains(text)),
                "{name}: no note {n}: {}",
                r.stdout
            );
        }
        // A rejected summary costs no event: the status line counts them all readable.
        if !want["rejected_summaries"].as_array().unwrap().is_empty() {
            let n = want["events"].as_array().unwrap().len();
            let status = format!("{n} of {n} events in");
            assert!(
                lines.last().unwrap().contains(&status),
                "{name}: {}",
                r.stdout
            );
        }
    }
}

/// `slice` and `export` write the events every other command counts (an event at 2^64-1
/// included), for every file whose blocks all decode.
#[cfg(feature = "export")]
#[test]
fn slice_and_export_write_the_same_events() {
    let dir = tmp_dir("conformance-out");
    for (name, want) in cases() {
        let whole = want["unreadable_blocks"].as_array().unwrap().is_empty();
        if want["refused"].is_object() || !whole {
            continue;
        }
        let n = want["events"].as_array().unwrap().len() as u64;
        let sliced = dir.join(format!("{name}.gsot"));
        let r = analyze(&["slice", &path_of(&name), "-o", sliced.to_str().unwrap()]);
        assert!(r.code <= 1, "{name}: {}", r.stderr);
        assert_eq!(
            TraceReader::open(&sliced).unwrap().event_count(),
            n,
            "{name}"
        );
        let pq = dir.join(format!("{name}.parquet"));
        let r = analyze(&["export", &path_of(&name), "-o", pq.to_str().unwrap()]);
        assert!(r.code <= 1, "{name}: {}", r.stderr);
        let f = std::fs::File::open(&pq).unwrap();
        let rows = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .metadata()
            .file_metadata()
            .num_rows();
        assert_eq!(rows as u64, n, "{name}");
    }
}

#[test]
fn the_generator_is_committed_and_agrees_with_the_files() {
    let dir: PathBuf = root().join("samples/conformance");
    let run = std::process::Command::new("python3")
        .arg(dir.join("make.py"))
        .arg("--check")
        .output();
    match run {
        // The zstandard module is what read_gsot.py needs too; without Python the Python
        // suite (test_conformance.py) is what fails.
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("python3 make.py --check: {e}"),
    }
}

/// A period of aggregate records as the conformance `.json` writes it (FORMAT.md 5.3).
fn aggregate_json(p: &format::AggregatePeriod) -> Value {
    let entries: Vec<Value> = p
        .entries
        .iter()
        .map(|e| {
            json!({"tgid": e.tgid, "level": e.level, "optname": e.optname, "ret": e.ret,
                   "duration_sum_ns": e.duration_sum_ns, "duration_max_ns": e.duration_max_ns,
                   "buckets": e.buckets, "calls": e.calls()})
        })
        .collect();
    json!({"start_ns": p.start_ns, "end_ns": p.end_ns, "sample_p": p.sample_p,
           "sampled": p.sampled, "capped": p.capped, "dropped": p.dropped, "entries": entries})
}
