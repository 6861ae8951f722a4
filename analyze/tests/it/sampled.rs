//! A sampled capture (`recorder record --max-rate`, FORMAT.md 5.3): `stats` counts every
//! call from the aggregate records where its question allows, and says when it cannot;
//! `info` and `events` say the capture was sampled.

use crate::common::*;

const SAMPLE: &str = "samples/real/sampled-flood.gsot";

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("stats JSON")
}

#[test]
fn stats_counts_every_call_per_option_and_errno_exactly() {
    let v = json(&["stats", SAMPLE, "--by", "optname,errno", "--format", "json"]);
    assert_eq!(v["total"]["count"], 430_000);
    assert_eq!(v["total"]["errors"], 30_000);
    let count = |opt: &str| {
        let g = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"]["optname"] == opt);
        g.map(|g| {
            (
                g["count"].as_u64().unwrap(),
                g["errors"].as_u64().unwrap(),
                g["key"]["errno"].clone(),
            )
        })
    };
    assert_eq!(
        count("SO_RCVBUF"),
        Some((200_000, 0, serde_json::Value::Null))
    );
    assert_eq!(
        count("SO_SNDBUF"),
        Some((200_000, 0, serde_json::Value::Null))
    );
    assert_eq!(
        count("SOL_TCP:9999"),
        Some((30_000, 30_000, "ENOPROTOOPT".into()))
    );
    let r = analyze(&[
        "stats",
        SAMPLE,
        "--by",
        "errno",
        "--where",
        "errno == ENOPROTOOPT",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("ENOPROTOOPT,30000,30000")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("from their aggregate records, every call"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_aggregates_percentiles_lie_within_their_buckets_and_max_is_exact() {
    let v = json(&["stats", SAMPLE, "--by", "", "--format", "json"]);
    let t = &v["total"];
    // Every SO_SNDBUF/SO_RCVBUF/ENOPROTOOPT call of this machine takes about a microsecond.
    for q in ["p50_ns", "p90_ns", "p99_ns"] {
        let ns = t[q].as_u64().unwrap();
        assert!((500..2000).contains(&ns), "{q} = {ns}");
    }
    // The maximum is the records' exact one, the longest of the 430,000 calls (the sample's
    // events are far fewer and miss it).
    let r = format::TraceReader::open(root().join(SAMPLE)).unwrap();
    let longest = r
        .aggregates()
        .iter()
        .flat_map(|p| &p.entries)
        .map(|e| e.duration_max_ns)
        .max();
    assert_eq!(t["max_ns"].as_u64(), longest);
    let sample_max = r
        .read_all_events()
        .unwrap()
        .iter()
        .map(|e| e.duration_ns)
        .max();
    assert!(sample_max < longest);
}

#[test]
fn other_keys_are_answered_from_the_sample_and_stats_says_so() {
    let r = analyze(&["stats", SAMPLE, "--by", "comm", "--format", "csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("sampflood,1138,"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("--by comm is answered from the sample of events only"),
        "{}",
        r.stderr
    );
    let r = analyze(&[
        "stats",
        SAMPLE,
        "--where",
        "duration > 1us",
        "--format",
        "csv",
    ]);
    assert!(
        r.stderr.contains("answered from the sample of events only"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_time_range_counts_whole_periods_and_names_the_cut_ones() {
    let all = analyze(&[
        "stats", SAMPLE, "--by", "", "--since", "+0s", "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(v["total"]["count"], 430_000, "{}", all.stderr);
    let r = analyze(&[
        "stats", SAMPLE, "--by", "", "--since", "2s", "--until", "3s",
    ]);
    assert!(r.stderr.contains("the time range cuts"), "{}", r.stderr);
}

#[test]
fn info_shows_how_much_was_aggregated_and_events_say_sampled() {
    let s = ok(&["info", SAMPLE]);
    assert!(
        s.contains("aggregated:    430000 calls in 16 periods of aggregate records"),
        "{s}"
    );
    assert!(s.contains("max_rate=500"), "{s}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["info", SAMPLE, "--format", "json"])).unwrap();
    assert_eq!(v["aggregates"]["calls"], 430_000);
    assert_eq!(v["aggregates"]["periods"].as_array().unwrap().len(), 16);
    let r = analyze(&["events", SAMPLE, "--format", "json", "--limit", "3"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.lines().count(), 3, "stdout stays JSON lines");
    assert!(
        r.stdout
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    assert!(
        r.stderr
            .contains("was sampled (--max-rate 500): its events are a sample of its 430000 calls"),
        "{}",
        r.stderr
    );
    let v = ok(&["verify", SAMPLE]);
    assert!(v.contains("1138 events"), "{v}");
}

#[test]
fn export_writes_the_aggregate_records_beside_the_events() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, UInt64Type};
    let dir = tmp_dir("sampled-export");
    let out = dir.join("cap.parquet");
    let s = ok(&[
        "export",
        SAMPLE,
        "-o",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let agg = dir.join("cap.aggregates.parquet");
    assert!(
        s.contains(&format!("exported 13 aggregate rows to {}", agg.display())),
        "{s}"
    );
    let batches = crate::export::read_parquet(&agg);
    let mut by = std::collections::BTreeMap::new();
    for b in &batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (opt, ret, calls) = (col("optname"), col("ret"), col("calls"));
        let (opt, ret) = (
            opt.as_primitive::<Int32Type>(),
            ret.as_primitive::<Int32Type>(),
        );
        let calls = calls.as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            *by.entry((opt.value(i), ret.value(i))).or_insert(0) += calls.value(i);
        }
    }
    let want = [((7, 0), 200_000), ((8, 0), 200_000), ((9999, -92), 30_000)];
    assert_eq!(by.into_iter().collect::<Vec<_>>(), want);
    // A filter the records cannot hold: the events only, and a note saying so.
    let out2 = dir.join("comm.parquet");
    let r = analyze(&[
        "export",
        SAMPLE,
        "--comm",
        "sampflood",
        "-o",
        out2.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("the aggregate records are not exported"),
        "{}",
        r.stderr
    );
    assert!(!dir.join("comm.aggregates.parquet").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `stats --by '' --format csv` of `args`: its one data line, and stderr.
fn total(args: &[&str]) -> (String, String) {
    let mut a = vec!["stats"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--by", "", "--format", "csv"]);
    let r = analyze(&a);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (
        r.stdout.lines().nth(1).unwrap_or_default().to_string(),
        r.stderr,
    )
}

#[test]
fn a_slice_keeps_the_aggregate_records_its_filter_selects() {
    let dir = tmp_dir("sampled-slice-kept");
    let out = dir.join("slice.gsot");
    let out = out.to_str().unwrap();
    let filter = ["--optname", "SO_RCVBUF", "--since", "2s", "--until", "3s"];
    let mut args = vec!["slice", SAMPLE, "-o", out];
    args.extend_from_slice(&filter);
    let r = analyze(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(", 2 aggregate periods to "),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("the time range cuts 2 aggregate period(s)"),
        "{}",
        r.stderr
    );
    // The slice answers exactly what the whole file answers for the same question.
    let mut whole = vec![SAMPLE];
    whole.extend_from_slice(&filter);
    let (expected, _) = total(&whole);
    assert!(expected.starts_with("13482,0,"), "{expected}");
    let (got, err) = total(&[out]);
    assert_eq!(got, expected);
    assert!(
        err.contains("from their aggregate records, every call"),
        "{err}"
    );
    // With no filter every call of every period stays.
    ok(&["slice", SAMPLE, "-o", out]);
    assert!(total(&[out]).0.starts_with("430000,30000,"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slice_whose_filter_the_aggregates_cannot_answer_is_counted_from_its_events() {
    let dir = tmp_dir("sampled-slice");
    let out = dir.join("slice.gsot");
    let out = out.to_str().unwrap();
    let r = analyze(&["slice", SAMPLE, "-o", out, "--where", "duration > 1us"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the aggregate records are not sliced: a filter on other fields"),
        "{}",
        r.stderr
    );
    let (expected, _) = total(&[SAMPLE, "--where", "duration > 1us"]);
    assert!(expected.starts_with("27,1,"), "{expected}");
    let (got, err) = total(&[out]);
    assert_eq!(got, expected);
    assert!(err.contains("holds no aggregate records"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
