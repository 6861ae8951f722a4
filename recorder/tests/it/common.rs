//! Helpers shared by the integration tests: run the real recorder binary as a child process.
//!
//! These tests load BPF programs, so they need root. Run as root (as CI does) they must pass;
//! run by anyone else they print why they skip and return, unless `GSOT_REQUIRE_ROOT=1`
//! (scripts/test-all.sh sets it): then a skip is a failure, so CI cannot pass by skipping.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use recorder::workload::Call;

/// The live kernel for one test at a time: the tests share this process, and each recorder
/// would otherwise also see the getsockopt calls of the others (they filter on this pid).
static KERNEL: Mutex<()> = Mutex::new(());

/// Waits for the live kernel and returns a guard holding it for the test; without root,
/// prints why the test skips and returns None, or panics when `GSOT_REQUIRE_ROOT=1`.
pub fn live_kernel(test: &str) -> Option<MutexGuard<'static, ()>> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("GSOT_REQUIRE_ROOT").is_none_or(|v| v != "1"),
            "{test} needs root to load BPF programs, and GSOT_REQUIRE_ROOT=1 forbids skipping it"
        );
        eprintln!("skipping {test}: needs root to load BPF programs");
        return None;
    }
    // A test that failed while holding it leaves nothing behind that the next one depends on.
    Some(KERNEL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A fresh directory for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recorder-test-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Recorder {
    child: Child,
    log: Arc<Mutex<String>>,
    pub output: PathBuf,
}

/// Starts `recorder record -o OUTPUT --attach tracepoint ARGS...` and waits until it says it
/// is recording (attached). Panics with its output if it exits or takes too long.
pub fn start_recorder(output: &Path, args: &[&str]) -> Recorder {
    start_recorder_to(output, Stdio::null(), args)
}

/// [`start_recorder`] with its standard output `stdout` (a pipe, for `-o -`).
pub fn start_recorder_to(output: &Path, stdout: Stdio, args: &[&str]) -> Recorder {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["record", "-o"])
        .arg(output)
        .args(["--attach", "tracepoint"])
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the recorder");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("recorder: recording to") {
                let _ = ready_tx.send(());
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let status = child.wait();
        std::thread::sleep(Duration::from_millis(100));
        panic!(
            "the recorder did not start ({status:?}); its output:\n{}",
            log.lock().unwrap()
        );
    }
    Recorder {
        child,
        log,
        output: output.to_path_buf(),
    }
}

impl Recorder {
    /// The recorder's standard output, when it was started with a pipe there.
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child
            .stdout
            .take()
            .expect("started with a piped stdout")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGINT, then wait; returns the exit status and everything it printed on stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        // Let the last exit events reach the ring buffer and one drain cycle pass.
        std::thread::sleep(Duration::from_millis(150));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }

    /// Waits up to `timeout` for the recorder to exit by itself; returns its status and
    /// output, or None (still running) after the timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, String)> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Some((status, self.log.lock().unwrap().clone()));
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigkill(mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
        self.log.lock().unwrap().clone()
    }
}

/// Stops the recorder, checks it exited cleanly, and opens its file.
pub fn stop_and_read(rec: Recorder) -> (format::TraceReader, Vec<format::OwnedEvent>, String) {
    let output = rec.output.clone();
    let (status, log) = rec.stop();
    assert!(status.success(), "recorder failed ({status}):\n{log}");
    let reader = format::TraceReader::open(&output).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        reader.recovery().is_none(),
        "a cleanly stopped capture needs no recovery"
    );
    let events = reader.read_all_events().unwrap();
    (reader, events, log)
}

/// The event recording `call`: same thread and the very same user-space pointers.
pub fn find<'a>(events: &'a [format::OwnedEvent], call: &Call) -> Option<&'a format::OwnedEvent> {
    events.iter().find(|e| {
        e.tid == call.tid
            && e.fd == call.fd
            && e.optname == call.optname
            && e.optval_ptr == call.optval_ptr
            && e.optlen_ptr == call.optlen_ptr
    })
}

/// This thread's comm as the kernel reports it.
pub fn thread_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

/// Runs the workload on a thread with a known name, so its comm is predictable.
pub fn run_workload_on_thread(name: &str) -> (Vec<Call>, String) {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(|| (recorder::workload::run().unwrap(), thread_comm()))
        .unwrap()
        .join()
        .unwrap()
}

/// Runs `program args...` to completion (it must fail before recording anything) and returns
/// its exit status and stderr. Panics if it is still running after 60 s.
pub fn run_to_exit(cmd: &mut Command) -> (ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the recorder");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    for _ in 0..3000 {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("still running after 60 s: {}", reader.join().unwrap());
}

/// Every file of a rotated capture, in order: OUTPUT, then FILE.1.EXT, ... while they exist.
pub fn rotated_files(output: &Path) -> Vec<PathBuf> {
    (0..)
        .map(|n| recorder::record::rotated_path(output, n))
        .take_while(|p| p.exists())
        .collect()
}
