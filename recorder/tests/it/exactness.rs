//! Every call made while the programs are attached is recorded or counted as lost, exactly
//! once, even when threads collide on their in-flight slots.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;

use crate::common::*;

#[test]
fn colliding_threads_every_call_recorded_or_counted() {
    let Some(_kernel) = live_kernel("colliding_threads_every_call_recorded_or_counted") else {
        return;
    };
    // Whether two calls overlap depends on the scheduler: on a busy machine the threads may
    // take turns on one CPU for a whole run. Every round asserts the identity; the test needs
    // one round in which collisions really happened, so it cannot pass without testing them.
    const ROUNDS: usize = 4;
    let mut logs = Vec::new();
    for _ in 0..ROUNDS {
        let (lost, log) = one_round();
        if lost > 0 {
            return;
        }
        logs.push(log);
    }
    panic!(
        "8 threads on one slot never collided in {ROUNDS} rounds:\n{}",
        logs.join("\n")
    );
}

/// One recording of 8 threads flooding one in-flight slot; returns what was lost and the log.
fn one_round() -> (u64, String) {
    let dir = temp_dir("exactness");
    let out = dir.join("collide.gsot");
    let me = std::process::id().to_string();
    // One slot for every thread: on two CPUs, calls are in flight at once all the time.
    let rec = start_recorder(
        &out,
        &[
            "--pid",
            &me,
            "--inflight-slots",
            "1",
            "--ringbuf-size",
            "16M",
        ],
    );
    let sock = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    const THREADS: u64 = 8;
    const CALLS: u64 = 25_000;
    let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS as usize));
    let tids: Vec<u32> = (0..THREADS)
        .map(|_| {
            let start = std::sync::Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                assert_eq!(recorder::workload::flood(fd, CALLS), CALLS);
                // SAFETY: gettid has no arguments and cannot fail.
                unsafe { libc::gettid() as u32 }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let (reader, events, log) = stop_and_read(rec);

    let captured = events.len() as u64;
    let lost: u64 = reader.losses().iter().map(|l| l.lost).sum();
    assert_eq!(
        captured + lost,
        THREADS * CALLS,
        "captured {captured} + lost {lost}:\n{log}"
    );
    // What was captured is whole: the thread's own call, not fields of another's.
    let rcvbuf = events[0].value.clone();
    for e in &events {
        assert!(tids.contains(&e.tid), "{e:?}");
        assert_eq!(
            (e.fd, e.optname, e.ret, e.optlen_in, e.optlen_out, &e.value),
            (fd, libc::SO_RCVBUF, 0, 4, 4, &rcvbuf),
            "{e:?}"
        );
    }
    for &tid in &tids {
        let n = events.iter().filter(|e| e.tid == tid).count() as u64;
        assert!(n <= CALLS, "thread {tid}: {n} events for {CALLS} calls");
    }
    let _ = std::fs::remove_dir_all(&dir);
    (lost, log)
}
