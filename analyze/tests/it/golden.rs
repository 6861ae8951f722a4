//! Golden outputs for the sample files in `samples/` (which are never rewritten, see
//! samples/README.md). Set `UPDATE_GOLDEN=1` to rewrite the expected files after an intended
//! change, then review the diff.

use crate::common::{analyze, root};

/// Runs `analyze ARGS` and compares exit code, stdout and stderr with `tests/golden/NAME`.
fn golden(name: &str, args: &[&str]) {
    let r = analyze(args);
    let actual = format!(
        "$ analyze {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    let path = root().join("analyze/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        panic!(
            "{name}: output differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

const MIXED: &str = "samples/synthetic-mixed.gsot";
const LOOP: &str = "samples/synthetic-loop.gsot";
const CRASHED: &str = "samples/crashed.gsot";
const SOCKETS: &str = "samples/synthetic-mixed-1.2.gsot";

#[test]
fn events_sockets_text() {
    golden("events-sockets.txt", &["events", SOCKETS, "-n", "60"]);
}

#[test]
fn events_sockets_json_and_info() {
    golden(
        "events-sockets.jsonl",
        &["events", SOCKETS, "--format", "json", "-n", "12"],
    );
    golden("info-sockets.txt", &["info", SOCKETS, "--processes", "0"]);
}

#[test]
fn info_mixed() {
    golden("info-mixed.txt", &["info", MIXED, "--processes", "0"]);
}

#[test]
fn info_mixed_json() {
    golden("info-mixed.json", &["info", "--format", "json", MIXED]);
}

#[test]
fn info_crashed() {
    golden("info-crashed.txt", &["info", CRASHED]);
}

#[test]
fn events_mixed_text() {
    golden("events-mixed.txt", &["events", MIXED, "-n", "120"]);
}

#[test]
fn events_mixed_errors_json() {
    golden(
        "events-mixed-errors.jsonl",
        &["events", MIXED, "--errors", "--format", "json", "-n", "40"],
    );
}

#[test]
fn events_mixed_tcp_info_csv() {
    golden(
        "events-mixed-tcp-info.csv",
        &[
            "events",
            MIXED,
            "--optname",
            "TCP_INFO",
            "--format",
            "csv",
            "-n",
            "6",
        ],
    );
}

#[test]
fn events_mixed_where_rel_time() {
    golden(
        "events-mixed-where.txt",
        &[
            "events",
            MIXED,
            "--time",
            "rel",
            "--where",
            "comm ~ \"post*\" && (optname == SO_PEERCRED || optname == SO_LINGER || optname == SO_RCVTIMEO)",
        ],
    );
}

#[test]
fn events_loop_time_range() {
    golden(
        "events-loop-range.txt",
        &[
            "events", LOOP, "--since", "1ms", "--until", "1.003ms", "--time", "iso",
        ],
    );
}

#[test]
fn events_crashed() {
    golden(
        "events-crashed.csv",
        &[
            "events",
            CRASHED,
            "--format",
            "csv",
            "--fields",
            "ts_ns,pid,comm,optname_name,errno",
            "-n",
            "5",
        ],
    );
}

#[test]
fn stats_mixed_comm_optname() {
    golden(
        "stats-mixed-comm-optname.txt",
        &["stats", MIXED, "--by", "comm,optname", "--top", "25"],
    );
}

#[test]
fn stats_mixed_errno_json() {
    golden(
        "stats-mixed-errno.json",
        &["stats", MIXED, "--by", "errno", "--format", "json"],
    );
}

#[test]
fn stats_mixed_level_csv() {
    golden(
        "stats-mixed-level.csv",
        &[
            "stats",
            MIXED,
            "--by",
            "level,optname",
            "--format",
            "csv",
            "--sort",
            "key",
        ],
    );
}

#[test]
fn stats_loop_interval() {
    golden(
        "stats-loop-interval.txt",
        &["stats", LOOP, "--by", "comm", "--interval", "200us"],
    );
}

#[test]
fn verify_samples() {
    golden("verify-mixed.txt", &["verify", MIXED, LOOP]);
    golden("verify-crashed.txt", &["verify", CRASHED]);
}

#[test]
fn real_recordings() {
    for (name, file) in [
        ("real-curl.txt", "samples/real/curl-local-http.gsot"),
        (
            "real-python-tcp-info.txt",
            "samples/real/python-urllib-and-http-server.gsot",
        ),
        ("real-refused.txt", "samples/real/psql-and-ssh-refused.gsot"),
    ] {
        golden(name, &["events", file]);
    }
    golden(
        "real-python-tcp-info.jsonl",
        &[
            "events",
            "--format",
            "json",
            "samples/real/python-urllib-and-http-server.gsot",
        ],
    );
    golden(
        "real-refused-info.txt",
        &["info", "samples/real/psql-and-ssh-refused.gsot"],
    );
}
