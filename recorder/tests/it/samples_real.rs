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
