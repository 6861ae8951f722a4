//! `-o -`: the trace on standard output, read as it arrives with the same stream reader
//! `analyze events -` uses; refused on a terminal and with rotation; a flight recorder's
//! one trigger streamed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use format::{DecodedBlock, OwnedEvent, StreamItem, StreamReader};

use crate::common::*;

/// Keeps a copy of what it reads, as `tee` would save a stream.
struct Tee<R> {
    inner: R,
    copy: Vec<u8>,
}

impl<R: std::io::Read> std::io::Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Reads the stream on a thread, sending every event as its block arrives; the thread's result
/// is how the stream ended and the stream's bytes.
fn read_stream(
    stdout: std::process::ChildStdout,
    tx: mpsc::Sender<OwnedEvent>,
) -> std::thread::JoinHandle<(String, Vec<u8>)> {
    std::thread::spawn(move || {
        let tee = Tee {
            inner: stdout,
            copy: Vec::new(),
        };
        let mut r = StreamReader::try_new(tee).unwrap();
        assert!(
            r.header()
                .extra
                .contains(&("output".into(), "stream".into()))
        );
        let mut d = DecodedBlock::new();
        while let Some(item) = r.next(&mut d).unwrap() {
            if let StreamItem::Block(_) = item {
                for e in d.events() {
                    let _ = tx.send(e.to_owned_event());
                }
            }
        }
        let end = format!("{:?}", r.end().unwrap());
        (end, r.into_inner().copy)
    })
}

/// `recorder record -o -` of this process's calls, flushing every `flush_ms`.
fn start_streaming(flush_ms: &str) -> Recorder {
    let me = std::process::id().to_string();
    let args = ["--pid", &me, "--flush-interval-ms", flush_ms];
    start_recorder_to(Path::new("-"), Stdio::piped(), &args)
}

#[test]
fn a_stream_shows_calls_before_the_recorder_stops_and_ends_like_a_file() {
    let Some(_kernel) = live_kernel("a_stream_shows_calls_before_the_recorder_stops") else {
        return;
    };
    let mut rec = start_streaming("200");
    let (tx, rx) = mpsc::channel();
    let reader = read_stream(rec.take_stdout(), tx);
    let (calls, _) = run_workload_on_thread("gsot-stream");
    // Every call arrives while the recorder still runs: within the flush interval, not at
    // its end.
    let mut got = Vec::new();
    while got.len() < calls.len() {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(e) => got.push(e),
            Err(_) => panic!(
                "{} of {} calls arrived while recording",
                got.len(),
                calls.len()
            ),
        }
    }
    assert!(
        rec.wait_exit(Duration::ZERO).is_none(),
        "the recorder is still running"
    );
    for call in &calls {
        let ev = find(&got, call).unwrap_or_else(|| panic!("{} missing", call.label));
        assert_eq!(
            (ev.ret, &ev.value),
            (call.ret, &call.value),
            "{}",
            call.label
        );
    }
    let (status, log) = rec.stop();
    assert!(status.success(), "{log}");
    let (end, bytes) = reader.join().unwrap();
    assert_eq!(end, "Finished", "{log}");
    assert!(log.contains("wrote the trace to standard output"), "{log}");
    // Saved, the stream is a finished trace file, for this crate's reader and the spec-only one.
    let dir = temp_dir("stream-saved");
    let saved = dir.join("saved.gsot");
    std::fs::write(&saved, &bytes).unwrap();
    let file = format::TraceReader::open(&saved).unwrap();
    assert!(file.recovery().is_none());
    assert_eq!(file.event_count(), got.len() as u64);
    let py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../format/tests/python/read_gsot.py"
        ))
        .arg(&saved)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py = String::from_utf8_lossy(&py.stdout);
    assert!(py.contains(&format!("\"events\": {},", got.len())), "{py}");
    assert!(py.contains("\"recovered\": false"), "{py}");
}

#[test]
fn a_killed_recorders_stream_yields_every_complete_block() {
    let Some(_kernel) = live_kernel("a_killed_recorders_stream_yields_every_complete_block") else {
        return;
    };
    let mut rec = start_streaming("200");
    let (tx, rx) = mpsc::channel();
    let reader = read_stream(rec.take_stdout(), tx);
    let (calls, _) = run_workload_on_thread("gsot-streamkill");
    std::thread::sleep(Duration::from_millis(1500));
    let log = rec.sigkill();
    let (end, _) = reader.join().unwrap();
    assert_eq!(end, "Unfinished", "{log}");
    let got: Vec<OwnedEvent> = rx.try_iter().collect();
    assert_eq!(got.len(), calls.len(), "{log}");
}

#[test]
fn a_reader_that_leaves_stops_the_capture_with_status_141() {
    let Some(_kernel) = live_kernel("a_reader_that_leaves_stops_the_capture") else {
        return;
    };
    let mut rec = start_streaming("100");
    drop(rec.take_stdout());
    run_workload_on_thread("gsot-streamgone");
    let (status, log) = rec
        .wait_exit(Duration::from_secs(20))
        .expect("the recorder stops when its reader has gone");
    assert_eq!(status.code(), Some(141), "{log}");
    assert!(
        log.contains("recorder: the reader of standard output closed it (broken pipe); stopped"),
        "{log}"
    );
}

#[test]
fn rotation_and_the_flight_recorder_with_a_stream_are_refused() {
    let Some(_kernel) = live_kernel("rotation_with_a_stream_is_refused") else {
        return;
    };
    let (status, log) = run_to_exit(Command::new(env!("CARGO_BIN_EXE_recorder")).args([
        "record",
        "-o",
        "-",
        "--rotate-size",
        "1M",
    ]));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "recorder: error: --rotate-size and --rotate-time need an output file: standard \
             output is a stream, which cannot be rotated"
        ),
        "{log}"
    );
    let (status, log) = run_to_exit(Command::new(env!("CARGO_BIN_EXE_recorder")).args([
        "record",
        "-o",
        "-",
        "--ring",
        "10s",
        "--max-triggers",
        "2",
    ]));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "recorder: error: --ring with a stream writes one trigger's trace to standard \
             output, then stops: --max-triggers above 1 needs -o FILE (one file per trigger)"
        ),
        "{log}"
    );
}

/// getsockopt(SO_RCVBUF) on something that is not a socket: fails with ENOTSOCK.
fn not_a_socket_call() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let (mut v, mut len) = (0i32, 4 as libc::socklen_t);
    // SAFETY: v and len are valid for the duration of the call.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    assert_eq!(r, -1);
}

#[test]
fn a_flight_recorder_streams_its_one_trigger_then_stops() {
    let Some(_kernel) = live_kernel("a_flight_recorder_streams_its_one_trigger") else {
        return;
    };
    let me = std::process::id().to_string();
    let args = [
        "--pid",
        &me,
        "--flush-interval-ms",
        "100",
        "--ring",
        "2s",
        "--after",
        "300ms",
        "--trigger",
        "errno == ENOTSOCK",
    ];
    let mut rec = start_recorder_to(Path::new("-"), Stdio::piped(), &args);
    let (tx, rx) = mpsc::channel();
    let reader = read_stream(rec.take_stdout(), tx);
    let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    for _ in 0..5 {
        assert_eq!(recorder::workload::flood(fd, 1), 1);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "nothing is streamed before the trigger"
    );
    not_a_socket_call();
    let (status, log) = rec
        .wait_exit(Duration::from_secs(30))
        .expect("one trigger on a stream: the recorder stops after it");
    assert!(status.success(), "recorder failed ({status}):\n{log}");
    let (end, bytes) = reader.join().unwrap();
    assert_eq!(end, "Finished", "{log}");
    let got: Vec<OwnedEvent> = rx.try_iter().collect();
    let failing = got.iter().filter(|e| e.ret == -libc::ENOTSOCK).count();
    let quiet = got.iter().filter(|e| e.ret == 0 && e.fd == fd).count();
    assert_eq!((failing, quiet), (1, 5), "{log}");
    let dir = temp_dir("flight-stream");
    let saved = dir.join("saved.gsot");
    std::fs::write(&saved, &bytes).unwrap();
    let file = format::TraceReader::open(&saved).unwrap();
    let trigger = file.header().extra.iter().find(|(k, _)| k == "trigger");
    assert_eq!(
        trigger.map(|(_, v)| v.as_str()),
        Some("expression errno == ENOTSOCK")
    );
    assert_eq!(file.event_count(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_terminal_is_refused_as_the_stream() {
    let Some(_kernel) = live_kernel("a_terminal_is_refused_as_the_stream") else {
        return;
    };
    // SAFETY: a new pseudo-terminal pair; the follower's name is copied before any other call.
    let follower = unsafe {
        let leader = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(leader >= 0);
        assert_eq!(libc::grantpt(leader), 0);
        assert_eq!(libc::unlockpt(leader), 0);
        std::ffi::CStr::from_ptr(libc::ptsname(leader))
            .to_string_lossy()
            .into_owned()
    };
    let tty = std::fs::OpenOptions::new()
        .write(true)
        .open(&follower)
        .unwrap();
    // Not run_to_exit: that one sets standard output itself.
    let out = Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["record", "-o", "-", "--duration", "1s"])
        .stdin(Stdio::null())
        .stdout(tty)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "recorder: error: cannot write standard output: it is a terminal, and a trace is binary"
        ),
        "{log}"
    );
}
