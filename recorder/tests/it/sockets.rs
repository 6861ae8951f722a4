//! Socket identity: a workload of known sockets (`recorder::workload::sockets`, which the VM
//! matrix runs too), each queried with getsockopt while the recorder runs; every event's socket
//! must equal, field by field, what the workload itself learns from getsockname/getpeername,
//! fstat and /proc/thread-self/ns/net.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;

use format::OwnedSocketRef;
use recorder::workload::getsockopt;
use recorder::workload::sockets;

use crate::common::*;

/// Runs the workload under a recorder using `walk` and checks every event.
fn check_walk(dir: &std::path::Path, walk: &str, header_walk: &str) {
    let out = dir.join(format!("{walk}.gsot"));
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--socket-walk", walk]);
    let dir2 = dir.join(walk);
    std::fs::create_dir_all(&dir2).unwrap();
    let mut expected = std::thread::spawn(move || sockets::run(&dir2))
        .join()
        .unwrap()
        .unwrap();
    let link_local = std::thread::spawn(sockets::link_local);
    expected.extend(link_local.join().unwrap().unwrap());
    let (reader, events, log) = stop_and_read(rec);
    let h = reader.header();
    assert_eq!(
        h.socket_capture(),
        format::SocketCapture::Recorded,
        "{:?}",
        h.extra
    );
    assert!(
        h.extra
            .contains(&("socket_walk".into(), header_walk.into())),
        "{:?}",
        h.extra
    );
    // Each thread's events in time order are its calls in order.
    let mut taken = vec![false; events.len()];
    for (call, want) in &expected {
        let i = (0..events.len())
            .filter(|&i| !taken[i] && events[i].tid == call.tid)
            .min_by_key(|&i| events[i].ts_ns)
            .unwrap_or_else(|| panic!("{walk}: no event for {}\n{log}", call.label));
        taken[i] = true;
        let got = &events[i];
        assert_eq!(
            (got.fd, got.ret),
            (call.fd, call.ret),
            "{walk}: {}",
            call.label
        );
        assert_eq!(&got.socket, want, "{walk}: {}", call.label);
    }
    assert!(
        taken.iter().all(|&t| t),
        "{walk}: events no call made\n{log}"
    );
}

/// Every walk: the BTF-pointer one (this kernel has bpf_rdonly_cast), and the probe-read one
/// that kernels before 6.2 get, with and without its cache.
#[test]
fn every_event_carries_the_socket_the_workload_knows() {
    let Some(_kernel) = live_kernel("every_event_carries_the_socket_the_workload_knows") else {
        return;
    };
    let dir = temp_dir("sockets");
    for (walk, header_walk) in [
        ("auto", "btf"),
        ("probe", "probe-read"),
        ("probe-uncached", "probe-read, uncached"),
    ] {
        check_walk(&dir, walk, header_walk);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_sockets_records_none_and_says_so() {
    let Some(_kernel) = live_kernel("no_sockets_records_none_and_says_so") else {
        return;
    };
    let dir = temp_dir("no-sockets");
    let me = std::process::id().to_string();
    let rec = start_recorder(&dir.join("n.gsot"), &["--pid", &me, "--no-sockets"]);
    let calls = std::thread::spawn(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        [l.as_raw_fd(), file.as_raw_fd()]
            .map(|fd| getsockopt("no-sockets", fd, libc::SOL_SOCKET, libc::SO_TYPE, 4))
    })
    .join()
    .unwrap();
    let (reader, events, log) = stop_and_read(rec);
    let h = reader.header();
    assert_eq!(
        h.socket_capture(),
        format::SocketCapture::Off("--no-sockets"),
        "{:?}",
        h.extra
    );
    assert_eq!(events.len(), calls.len(), "{log}");
    for call in &calls {
        let e = find(&events, call).unwrap_or_else(|| panic!("no event for fd {}", call.fd));
        assert_eq!(e.socket, OwnedSocketRef::NotRecorded, "fd {}", call.fd);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
