//! The flight recorder (`--ring`): nothing written until a trigger, then one normal trace file
//! holding exactly the calls of the window before the trigger and of `--after` after it.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use crate::common::*;

fn boot_ns() -> u64 {
    recorder::sys::boot_ns()
}

/// One quiet getsockopt(SO_RCVBUF) call; returns the boot-time bounds around it.
fn quiet_call(fd: i32) -> (u64, u64) {
    let before = boot_ns();
    assert_eq!(recorder::workload::flood(fd, 1), 1);
    (before, boot_ns())
}

/// `n` quiet calls `gap` apart.
fn quiet_calls(fd: i32, n: usize, gap: Duration) -> Vec<(u64, u64)> {
    (0..n)
        .map(|_| {
            let c = quiet_call(fd);
            std::thread::sleep(gap);
            c
        })
        .collect()
}

fn extra<'a>(r: &'a format::TraceReader, key: &str) -> &'a str {
    r.header()
        .extra
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in the header: {:?}", r.header().extra))
}

#[test]
fn a_failing_call_writes_exactly_the_window_around_it() {
    let Some(_kernel) = live_kernel("a_failing_call_writes_exactly_the_window_around_it") else {
        return;
    };
    let dir = temp_dir("flight-expr");
    let out = dir.join("flight.gsot");
    let me = std::process::id().to_string();
    let mut rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--ring",
            "1s",
            "--after",
            "500ms",
            "--trigger",
            "errno == ENOTSOCK",
            "--max-triggers",
            "1",
            "--flush-interval-ms",
            "100",
        ],
    );
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    // 2.5 s of quiet calls: more than the window and its retention slack.
    let mut calls = quiet_calls(fd, 25, Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!out.exists(), "a file was written before the trigger");
    // The failing call: getsockopt on a file that is not a socket.
    let file = std::fs::File::open("/dev/null").unwrap();
    let (mut v, mut len) = (0i32, 4 as libc::socklen_t);
    // SAFETY: v and len are valid for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            file.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    assert_eq!(r, -1);
    // 1.2 s of calls after it: those of the first 500 ms belong in the file, the others not.
    calls.extend(quiet_calls(fd, 12, Duration::from_millis(100)));
    let (status, log) = rec
        .wait_exit(Duration::from_secs(30))
        .expect("--max-triggers 1: the recorder stops after its file");
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    let reader = format::TraceReader::open(&out).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(reader.recovery().is_none(), "{log}");
    let t: u64 = extra(&reader, "trigger_ns").parse().unwrap();
    assert_eq!(extra(&reader, "trigger"), "expression errno == ENOTSOCK");
    assert_eq!(extra(&reader, "ring_window_ns"), "1000000000");
    let events = reader.read_all_events().unwrap();
    let failing: Vec<_> = events.iter().filter(|e| e.ret == -libc::ENOTSOCK).collect();
    assert_eq!(failing.len(), 1, "{log}");
    assert_eq!(
        failing[0].ts_ns, t,
        "the trigger's time is its call's entry"
    );
    assert_eq!(
        extra(&reader, "trigger_event_tid"),
        failing[0].tid.to_string()
    );
    let (from, until) = (t - 1_000_000_000, t + 500_000_000);
    let mut expected = 0;
    for (before, after) in &calls {
        let held = events
            .iter()
            .any(|e| e.ret == 0 && (*before..=*after).contains(&e.ts_ns));
        if *before >= from && *after <= until {
            assert!(held, "a call inside the window is missing\n{log}");
            expected += 1;
        } else if *after < from || *before > until {
            assert!(!held, "a call outside the window was written\n{log}");
        }
    }
    assert!(expected >= 10, "only {expected} calls in the window");
    assert!(
        (expected..=expected + 2).contains(&(events.len() - 1)),
        "{} events, {expected} calls in the window\n{log}",
        events.len()
    );
    assert!(log.contains("triggered by errno == ENOTSOCK"), "{log}");
    assert!(!recorder::record::rotated_path(&out, 1).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connected loopback TCP pair's client end, and the listener's port.
fn connected() -> (std::net::TcpStream, TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
        l,
        port,
    )
}

#[test]
fn a_trigger_on_a_socket_field_fires_on_exactly_the_matching_call() {
    let Some(_kernel) =
        live_kernel("a_trigger_on_a_socket_field_fires_on_exactly_the_matching_call")
    else {
        return;
    };
    let dir = temp_dir("flight-sock");
    let out = dir.join("flight.gsot");
    let me = std::process::id().to_string();
    let (wanted, _l1, port) = connected();
    let (other, _l2, _) = connected();
    let expr = format!("remote_port == {port} && errno == ENOPROTOOPT");
    let mut rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--ring",
            "2s",
            "--after",
            "300ms",
            "--trigger",
            &expr,
            "--max-triggers",
            "1",
            "--flush-interval-ms",
            "100",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let bad = |fd| recorder::workload::getsockopt("bad", fd, libc::IPPROTO_TCP, 9999, 4);
    // Each half of the expression alone, then both: only the last call may fire.
    let misses = [
        bad(other.as_raw_fd()),
        recorder::workload::getsockopt(
            "ok",
            wanted.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            4,
        ),
    ];
    std::thread::sleep(Duration::from_millis(300));
    let hit = bad(wanted.as_raw_fd());
    assert_eq!(
        (misses[0].ret, hit.ret),
        (-libc::ENOPROTOOPT, -libc::ENOPROTOOPT)
    );
    let (status, log) = rec
        .wait_exit(Duration::from_secs(30))
        .expect("--max-triggers 1: the recorder stops after its trigger's file");
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    let reader = format::TraceReader::open(&out).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(extra(&reader, "trigger"), format!("expression {expr}"));
    let events = reader.read_all_events().unwrap();
    let ev = find(&events, &hit).unwrap_or_else(|| panic!("the matching call is missing\n{log}"));
    assert_eq!(extra(&reader, "trigger_ns"), ev.ts_ns.to_string());
    let sock = ev.socket.as_ref().socket().expect("a socket").clone();
    assert_eq!((sock.remote_port, ev.ret), (port, -libc::ENOPROTOOPT));
    for m in &misses {
        let e = find(&events, m).unwrap_or_else(|| panic!("{} is missing\n{log}", m.label));
        assert!(e.ts_ns < ev.ts_ns, "{}", m.label);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigusr1_triggers_and_the_recorder_keeps_watching() {
    let Some(_kernel) = live_kernel("sigusr1_triggers_and_the_recorder_keeps_watching") else {
        return;
    };
    let dir = temp_dir("flight-signal");
    let out = dir.join("signalled.gsot");
    let me = std::process::id().to_string();
    let mut rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--ring",
            "30s",
            "--after",
            "200ms",
            "--max-triggers",
            "2",
        ],
    );
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    let first = quiet_calls(fd, 5, Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(200));
    let signalled = boot_ns();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.pid(), libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(out.exists(), "no file after SIGUSR1");
    let second = quiet_calls(fd, 5, Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: as above.
    unsafe { libc::kill(rec.pid(), libc::SIGUSR1) };
    let (status, log) = rec
        .wait_exit(Duration::from_secs(30))
        .expect("--max-triggers 2: the recorder stops after its second file");
    assert!(status.success(), "recorder failed ({status}):\n{log}");

    let files = rotated_files(&out);
    assert_eq!(files.len(), 2, "{log}");
    for (i, (f, calls)) in files.iter().zip([5, 10]).enumerate() {
        let r = format::TraceReader::open(f).unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(extra(&r, "trigger"), "signal SIGUSR1");
        assert_eq!(extra(&r, "trigger_number"), i.to_string());
        assert_eq!(r.header().sequence, i as u32);
        let events = r.read_all_events().unwrap();
        assert_eq!(events.len(), calls, "{}\n{log}", f.display());
        let held = |c: &(u64, u64)| events.iter().any(|e| (c.0..=c.1).contains(&e.ts_ns));
        assert!(first.iter().all(held));
        assert_eq!(second.iter().all(held), i == 1);
        assert!(r.processes().iter().any(|p| p.pid == std::process::id()));
    }
    let first_file = format::TraceReader::open(&files[0]).unwrap();
    let t: u64 = extra(&first_file, "trigger_ns").parse().unwrap();
    assert!(t >= signalled, "the trigger's time is when the signal came");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ring_stays_within_its_size_in_a_long_flood() {
    let Some(_kernel) = live_kernel("the_ring_stays_within_its_size_in_a_long_flood") else {
        return;
    };
    let dir = temp_dir("flight-flood");
    let out = dir.join("flood.gsot");
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--ring", "1h", "--ring-size", "2M"]);
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let calls = recorder::workload::flood(sock.as_raw_fd(), 2_000_000);
    let pid = rec.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .to_string();
    let (status, log) = rec.stop();
    assert!(status.success(), "recorder failed ({status}):\n{log}");
    assert!(!out.exists(), "nothing is written without a trigger");
    let peak: u64 = log
        .split("ring held at most ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ring peak in\n{log}"));
    eprintln!("{calls} calls: ring peak {peak} bytes of 2 MiB; recorder {hwm}");
    assert!(peak <= 2 << 20, "{log}");
    assert!(
        peak > 1 << 20,
        "a flood of {calls} calls fills a 2 MiB ring\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_ring_combinations_are_refused_in_one_line() {
    let dir = temp_dir("flight-bad");
    let out = dir.join("x.gsot");
    for (args, expected) in [
        (
            &["--ring", "0s"][..],
            "--ring 0: the window must be longer than 0",
        ),
        (
            &["--ring", "1s", "--ring-size", "4K"],
            "--ring-size must be at least 1M",
        ),
        (
            &["--ring", "1s", "--rotate-size", "1M"],
            "--rotate-size and --rotate-time do not apply",
        ),
        (
            &["--ring", "1s", "--max-triggers", "0"],
            "--max-triggers 0 would never write",
        ),
        (
            &["--ring", "1s", "--trigger", "errno == NOPE"],
            "--trigger: ",
        ),
        (&["--trigger", "errno == 1"], "--ring"),
    ] {
        let (status, stderr) = run_to_exit(
            std::process::Command::new(env!("CARGO_BIN_EXE_recorder"))
                .args(["record", "-o"])
                .arg(&out)
                .args(args),
        );
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
