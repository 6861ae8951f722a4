//! The binary end to end: filter and `--where` semantics against a brute-force evaluation of
//! the same events, several files as one stream, bad inputs, exit codes, closed pipes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{analyze, command, synth, synth_events, tmp_dir, write_events};
use format::OwnedEvent;

/// Count of events `stats` selects with `args` (one total group).
fn stats_count(file: &str, args: &[&str]) -> u64 {
    let mut a = vec!["stats", file, "--by", "", "--format", "csv"];
    a.extend_from_slice(args);
    let r = analyze(&a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    let line = r.stdout.lines().nth(1).unwrap_or("0");
    line.split(',').next().unwrap().parse().unwrap()
}

/// Count of events `events` selects with `args`.
fn events_count(file: &str, args: &[&str]) -> u64 {
    let mut a = vec!["events", file, "--format", "csv", "--fields", "ts_ns"];
    a.extend_from_slice(args);
    let r = analyze(&a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout.lines().count() as u64 - 1
}

fn comm(e: &OwnedEvent) -> String {
    e.as_event().comm_str().into_owned()
}

#[test]
fn filters_select_exactly_what_a_brute_force_scan_selects() {
    let dir = tmp_dir("filters");
    let path = dir.join("f.gsot");
    let (seed, n) = (3, 30_000);
    synth(&path, seed, n, 4096);
    let (h, events) = synth_events(seed, n);
    let file = path.to_str().unwrap();
    let procs = format::synth::Synth::new(format::synth::SynthConfig {
        seed,
        events: n,
        ..Default::default()
    })
    .processes();
    let cgroup_of = move |pid: u32| {
        procs
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.cgroup.clone())
            .unwrap_or_default()
    };
    let start = h.start_ts_ns;
    let pid0 = events[0].tgid;
    let pid0_s = pid0.to_string();
    let ms = 1_000_000u64;
    type Pred = Box<dyn Fn(&OwnedEvent) -> bool>;
    let cases: Vec<(Vec<&str>, Pred)> = vec![
        (vec![], Box::new(|_| true)),
        (vec!["--pid", &pid0_s], Box::new(move |e| e.tgid == pid0)),
        (
            vec!["--comm", "ngin*,redis-*"],
            Box::new(|e| comm(e) == "nginx" || comm(e).starts_with("redis-")),
        ),
        (
            vec!["--optname", "TCP_INFO"],
            Box::new(|e| e.level == 6 && e.optname == 11),
        ),
        (vec!["--optname", "4"], Box::new(|e| e.optname == 4)),
        (vec!["--level", "SOL_SOCKET"], Box::new(|e| e.level == 1)),
        (
            vec!["--level", "ipv6,tcp"],
            Box::new(|e| e.level == 41 || e.level == 6),
        ),
        (vec!["--errors"], Box::new(|e| e.ret < 0)),
        (
            vec!["--errno", "EINVAL,EBADF"],
            Box::new(|e| e.ret == -22 || e.ret == -9),
        ),
        (vec!["--uid", "0"], Box::new(|e| e.uid == 0)),
        (
            vec!["--min-duration", "500ns"],
            Box::new(|e| e.duration_ns >= 500),
        ),
        (
            vec!["--since", "10ms", "--until", "20ms"],
            Box::new(move |e| e.ts_ns >= start + 10 * ms && e.ts_ns < start + 20 * ms),
        ),
        (
            vec![
                "--since",
                "00:00:00.015",
                "--until",
                "2026-01-01T00:00:00.025Z",
            ],
            Box::new(move |e| e.ts_ns >= start + 15 * ms && e.ts_ns < start + 25 * ms),
        ),
        (
            vec!["--cgroup", "/system.slice/*"],
            Box::new(move |e| cgroup_of(e.tgid).starts_with("/system.slice/")),
        ),
        (
            vec![
                "--where",
                "comm == \"nginx\" && optname == TCP_INFO && duration > 1us || errno == EINVAL",
            ],
            Box::new(|e| {
                (comm(e) == "nginx" && e.level == 6 && e.optname == 11 && e.duration_ns > 1000)
                    || e.ret == -22
            }),
        ),
        (
            vec![
                "--where",
                "!(level == SOL_SOCKET) and fd >= 5 and not optname == IP_TTL",
            ],
            Box::new(|e| e.level != 1 && e.fd >= 5 && !(e.level == 0 && e.optname == 2)),
        ),
        (
            vec!["--where", "time >= 5ms && time < 7ms || duration >= 590ns"],
            Box::new(move |e| {
                (e.ts_ns - start >= 5 * ms && e.ts_ns - start < 7 * ms) || e.duration_ns >= 590
            }),
        ),
        // Duration tests of every operator, at values the events have: the summary path
        // decides whole stretches of sorted durations between these values at once.
        (
            vec![
                "--where",
                "duration == 292ns || duration <= 250ns && duration != 240ns || (duration > 1400ns && !(duration >= 1450ns))",
            ],
            Box::new(|e| {
                let d = e.duration_ns;
                d == 292 || (d <= 250 && d != 240) || (d > 1400 && d < 1450)
            }),
        ),
        (
            vec![
                "--where",
                "uid != 0 && comm == \"nginx\" || ppid == 1 && cpu == 3 && duration < 300ns",
            ],
            Box::new(|e| {
                (e.uid != 0 && comm(e) == "nginx")
                    || (e.ppid == 1 && e.cpu == 3 && e.duration_ns < 300)
            }),
        ),
        (
            vec!["--where", "comm !~ \"*d\" && optlen_out < 8 && ret == 0"],
            Box::new(|e| !comm(e).ends_with('d') && e.optlen_out < 8 && e.ret == 0),
        ),
        (
            vec![
                "--where",
                "optname != SO_ERROR && errno == 0",
                "--comm",
                "java",
            ],
            Box::new(|e| !(e.level == 1 && e.optname == 4) && e.ret >= 0 && comm(e) == "java"),
        ),
    ];
    for (args, pred) in &cases {
        let want = events.iter().filter(|e| pred(e)).count() as u64;
        assert_eq!(stats_count(file, args), want, "stats {args:?}");
        assert_eq!(events_count(file, args), want, "events {args:?}");
    }
    // The cases are not vacuous: most select some but not all events.
    let partial = cases
        .iter()
        .filter(|(_, p)| {
            let k = events.iter().filter(|e| p(e)).count();
            k > 0 && k < events.len()
        })
        .count();
    assert!(partial >= cases.len() - 1, "{partial} of {}", cases.len());
}

#[test]
fn stats_groups_match_brute_force() {
    let dir = tmp_dir("groups");
    let path = dir.join("g.gsot");
    synth(&path, 4, 20_000, 3000);
    let (_, events) = synth_events(4, 20_000);
    let r = analyze(&[
        "stats",
        path.to_str().unwrap(),
        "--by",
        "comm,errno",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut groups = std::collections::HashMap::<(String, String), (u64, u64, u64)>::new();
    for e in &events {
        let errno = if e.ret < 0 {
            analyze::decode::errno::name(-e.ret).unwrap().to_string()
        } else {
            String::new()
        };
        let g = groups.entry((comm(e), errno)).or_default();
        g.0 += 1;
        g.1 += (e.ret < 0) as u64;
        g.2 = g.2.max(e.duration_ns);
    }
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), groups.len());
    for row in rows {
        let f: Vec<&str> = row.split(',').collect();
        let want = groups[&(f[0].to_string(), f[1].to_string())];
        assert_eq!(f[2].parse::<u64>().unwrap(), want.0, "{row}");
        assert_eq!(f[3].parse::<u64>().unwrap(), want.1, "{row}");
        assert_eq!(f[7].parse::<u64>().unwrap(), want.2, "max of {row}");
    }
}

#[test]
fn several_files_are_one_stream_in_time_order() {
    let dir = tmp_dir("multi");
    let (h, events) = synth_events(5, 12_000);
    let whole = dir.join("whole.gsot");
    write_events(&whole, &h, &events, 1000);
    // A rotated capture: consecutive halves.
    let (a, b) = (dir.join("a.gsot"), dir.join("b.gsot"));
    write_events(&a, &h, &events[..5000], 1000);
    let mut h2 = h.clone();
    h2.sequence = 1;
    write_events(&b, &h2, &events[5000..], 1000);
    // Interleaved files (e.g. per-CPU recorders): even and odd events.
    let even: Vec<OwnedEvent> = events.iter().step_by(2).cloned().collect();
    let odd: Vec<OwnedEvent> = events.iter().skip(1).step_by(2).cloned().collect();
    let (c, d) = (dir.join("even.gsot"), dir.join("odd.gsot"));
    write_events(&c, &h, &even, 700);
    write_events(&d, &h, &odd, 900);
    let fields = [
        "--format",
        "csv",
        "--fields",
        "ts_ns,tid,fd,optname_name,errno,value_hex",
    ];
    let run = |files: &[&std::path::Path], extra: &[&str]| {
        let mut args = vec!["events".to_string()];
        args.extend(files.iter().map(|p| p.to_str().unwrap().to_string()));
        args.extend(fields.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = analyze(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let want = run(&[&whole], &[]);
    assert_eq!(want.lines().count(), 12_001);
    assert_eq!(
        run(&[&b, &a], &[]),
        want,
        "rotated files given out of order"
    );
    assert_eq!(run(&[&d, &c], &[]), want, "interleaved files");
    let want_f = run(&[&whole], &["--errors", "--since", "3ms"]);
    assert!(want_f.lines().count() > 10);
    assert_eq!(run(&[&c, &d], &["--errors", "--since", "3ms"]), want_f);
    assert_eq!(
        run(&[&d, &c], &["-n", "100"]),
        want.lines()
            .take(101)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    // stats over several files is stats over their union.
    let s1 = analyze(&[
        "stats",
        whole.to_str().unwrap(),
        "--by",
        "comm,optname",
        "--format",
        "csv",
    ]);
    let s2 = analyze(&[
        "stats",
        c.to_str().unwrap(),
        d.to_str().unwrap(),
        "--by",
        "comm,optname",
        "--format",
        "csv",
    ]);
    assert_eq!(s1.stdout, s2.stdout);
}

/// Exit code, and stderr as one line naming the file.
fn expect_error(args: &[&str], code: i32, contains: &str) {
    let r = analyze(args);
    assert_eq!(
        r.code, code,
        "{args:?}: stdout {:?} stderr {:?}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains(contains),
        "{args:?}: stderr {:?} lacks {contains:?}",
        r.stderr
    );
}

#[test]
fn bad_inputs_give_one_line_errors_and_distinct_codes() {
    let dir = tmp_dir("bad");
    let good = dir.join("good.gsot");
    synth(&good, 6, 20_000, 4096);
    let bytes = std::fs::read(&good).unwrap();

    let text = dir.join("notes.txt");
    std::fs::write(&text, "these are not the bytes you are looking for\n").unwrap();
    let empty = dir.join("empty.gsot");
    std::fs::write(&empty, b"").unwrap();
    let short = dir.join("short.gsot");
    std::fs::write(&short, &bytes[..10]).unwrap();
    let mut newer = bytes.clone();
    newer[8] = 2; // major version 2
    let newer_p = dir.join("newer.gsot");
    std::fs::write(&newer_p, &newer).unwrap();
    let missing = dir.join("missing.gsot");

    for sub in ["info", "events", "stats", "verify"] {
        for (p, what) in [
            (&text, "at offset 0: expected the trace file magic"),
            (&empty, "at offset 0"),
            (&short, "at offset"),
            (
                &newer_p,
                &format!("format version 2.{}", format::VERSION_MINOR),
            ),
            (&missing, "No such file"),
        ] {
            let ps = p.to_str().unwrap();
            let r = analyze(&[sub, ps]);
            assert_eq!(r.code, 3, "{sub} {ps}: {r:?}", r = (&r.stdout, &r.stderr));
            assert!(
                r.stderr.starts_with(&format!("analyze: {ps}: ")),
                "{sub}: {:?}",
                r.stderr
            );
            assert!(r.stderr.contains(what), "{sub} {ps}: {:?}", r.stderr);
            assert_eq!(
                r.stderr.lines().count(),
                1,
                "{sub}: one line: {:?}",
                r.stderr
            );
        }
    }

    // A damaged block: the others are read, stderr says what was skipped, exit 1.
    let blocks = format::TraceReader::open(&good).unwrap().blocks().to_vec();
    assert!(blocks.len() >= 4);
    let victim = blocks[1];
    let mut corrupt = bytes.clone();
    corrupt[victim.offset as usize + 100] ^= 0x55;
    let corrupt_p = dir.join("corrupt.gsot");
    std::fs::write(&corrupt_p, &corrupt).unwrap();
    let cp = corrupt_p.to_str().unwrap();
    let r = analyze(&["events", cp, "--format", "csv", "--fields", "ts_ns"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().count() as u64 - 1,
        20_000 - victim.event_count as u64
    );
    assert!(
        r.stderr
            .contains(&format!("skipped the block at offset {}", victim.offset)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    let r = analyze(&["stats", cp, "--by", "", "--format", "csv"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains(&format!("\n{},", 20_000 - victim.event_count)),
        "{}",
        r.stdout
    );
    let r = analyze(&["verify", cp]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&format!(
            "at offset {}: checksum mismatch",
            victim.offset + 16
        )),
        "{}",
        r.stdout
    );
    let r = analyze(&["verify", good.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // Cut in the middle of a block: the blocks before are read.
    let cut = dir.join("cut.gsot");
    std::fs::write(&cut, &bytes[..blocks[2].offset as usize + 50]).unwrap();
    let r = analyze(&[
        "events",
        cut.to_str().unwrap(),
        "--format",
        "csv",
        "--fields",
        "ts_ns",
    ]);
    assert_eq!(r.code, 1);
    let before: u64 = blocks[..2].iter().map(|b| b.event_count as u64).sum();
    assert_eq!(r.stdout.lines().count() as u64 - 1, before);
    assert!(
        r.stderr
            .contains(&format!("at offset {}", blocks[2].offset + 16)),
        "{}",
        r.stderr
    );
    let r = analyze(&["verify", cut.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("damaged"));

    // Every byte position of a small file flipped: never a panic, always 0, 1 or 3.
    let small = dir.join("small.gsot");
    synth(&small, 7, 300, 100);
    let sb = std::fs::read(&small).unwrap();
    let flip = dir.join("flip.gsot");
    for i in (0..sb.len()).step_by(sb.len() / 97 + 1) {
        let mut b = sb.clone();
        b[i] ^= 0xff;
        std::fs::write(&flip, &b).unwrap();
        for sub in ["events", "verify", "stats", "info"] {
            let r = analyze(&[sub, flip.to_str().unwrap()]);
            assert!(
                [0, 1, 3].contains(&r.code),
                "{sub} with byte {i} flipped: {} {}",
                r.code,
                r.stderr
            );
        }
    }
}

#[test]
fn usage_errors_exit_2_and_point_at_the_problem() {
    let f = "samples/synthetic-mixed.gsot";
    let r = analyze(&[
        "events",
        f,
        "--where",
        "comm == \"nginx\" && duraton > 10us",
    ]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "analyze: --where: unknown field 'duraton'; fields: pid, tid, ppid, uid, gid, comm, cgroup, pidns, mntns, cpu, fd, level, optname, optlen, optlen_out, ret, errno, value_len, flags, duration, time, sock_family, sock_type, sock_protocol, tcp_state, local_addr, local_port, remote_addr, remote_port, unix_path, unix_peer, sock_ino, netns, container_runtime, container_id, container_name, image, pod_uid, pod_name, pod_namespace, k8s_container, qos_class, systemd_unit\n  comm == \"nginx\" && duraton > 10us\n                     ^\n"
    );
    expect_error(
        &["stats", f, "--by", "colour"],
        2,
        "--by: unknown field \"colour\"",
    );
    expect_error(
        &["events", f, "--optname", "TCP_NOPE"],
        2,
        "--optname: unknown option",
    );
    expect_error(
        &["events", f, "--since", "yesterday"],
        2,
        "--since: expected a duration",
    );
    expect_error(
        &["events", f, "--fields", "time,nope"],
        2,
        "--fields: unknown field",
    );
    expect_error(&["events", f, "--bogus"], 2, "--bogus");
    expect_error(&["frobnicate"], 2, "frobnicate");
    let r = analyze(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit status:") && r.stdout.contains("Examples:"));
    // Every code the program can end with is listed, 130 (replay's Ctrl-C) included.
    for code in [
        "\n  0 ",
        "\n  1 ",
        "\n  2 ",
        "\n  3 ",
        "\n  130 replay was stopped by Ctrl-C",
    ] {
        assert!(r.stdout.contains(code), "{code:?} missing from --help");
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let dir = tmp_dir("pipe");
    let path = dir.join("p.gsot");
    synth(&path, 8, 200_000, 65536);
    let mut child = command()
        .args(["events", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("getsockopt("));
    // The reader is gone (as with `| head -1`).
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn info_json_keeps_repeated_filter_keys_in_order() {
    let dir = tmp_dir("info-filters");
    let path = dir.join("f.gsot");
    let (mut h, events) = synth_events(6, 100);
    h.filters = vec![
        ("pid".into(), "1".into()),
        ("pid".into(), "2".into()),
        ("comm".into(), "a\"b".into()),
    ];
    write_events(&path, &h, &events, 1000);
    let r = analyze(&["info", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(r#""filters":[["pid","1"],["pid","2"],["comm","a\"b"]]"#),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(r#""host_name":"synth-host""#),
        "{}",
        r.stdout
    );
}
