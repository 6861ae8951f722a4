//! The committed real recordings stay readable and hold what samples/real/README.md says.

fn open(name: &str) -> (format::TraceReader, Vec<format::OwnedEvent>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/real")
        .join(name);
    let r = format::TraceReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(r.recovery().is_none());
    assert_eq!(r.header().attach_mode, "tracepoint");
    let ev = r.read_all_events().unwrap();
    (r, ev)
}

#[test]
fn curl_sample_holds_so_error_after_each_connect() {
    let (r, ev) = open("curl-local-http.gsot");
    assert_eq!(ev.len(), 3);
    for e in &ev {
        assert_eq!(e.as_event().comm_str(), "curl");
        assert_eq!(
            (e.level, e.optname, e.ret),
            (libc::SOL_SOCKET, libc::SO_ERROR, 0)
        );
        assert_eq!(e.value, 0i32.to_ne_bytes());
    }
    // curl exits before the recorder's next drain, so /proc no longer has its exe: the table
    // still names it, from the event's comm.
    assert!(r.processes().iter().any(|p| p.comm == "curl"));
}

#[test]
fn python_sample_holds_a_whole_tcp_info() {
    let (_, ev) = open("python-urllib-and-http-server.gsot");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].level, ev[0].optname, ev[0].optlen_in),
        (libc::IPPROTO_TCP, libc::TCP_INFO, 256)
    );
    assert_eq!(ev[0].value.len(), 256);
}

#[test]
fn refused_connects_report_econnrefused() {
    let (_, ev) = open("psql-and-ssh-refused.gsot");
    let refused: Vec<_> = ev
        .iter()
        .filter(|e| e.optname == libc::SO_ERROR && e.value == libc::ECONNREFUSED.to_ne_bytes())
        .collect();
    let comms: Vec<_> = refused
        .iter()
        .map(|e| e.as_event().comm_str().into_owned())
        .collect();
    assert!(
        comms.contains(&"psql".to_string()) && comms.contains(&"ssh".to_string()),
        "{comms:?}"
    );
}

#[test]
fn flight_recorder_sample_holds_the_window_around_its_trigger() {
    let (r, ev) = open("ring-enoprotoopt.gsot");
    let extra = |k: &str| {
        r.header()
            .extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert_eq!(extra("trigger"), "expression errno == ENOPROTOOPT");
    let t: u64 = extra("trigger_ns").parse().unwrap();
    let names: Vec<i32> = ev.iter().map(|e| e.optname).collect();
    let (rcv, snd) = (libc::SO_RCVBUF, libc::SO_SNDBUF);
    assert_eq!(names, [rcv, rcv, rcv, 9999, snd, snd, snd]);
    assert_eq!((ev[3].ts_ns, ev[3].ret), (t, -libc::ENOPROTOOPT));
    assert_eq!(extra("trigger_event_tid"), ev[3].tid.to_string());
    assert!(
        ev.iter()
            .all(|e| e.ts_ns + 1_000_000_000 >= t && e.ts_ns <= t + 500_000_000)
    );
}
