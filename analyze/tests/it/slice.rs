//! `analyze slice`: a slice reads back as exactly the filtered events of its source, with a
//! consistent process table and loss records; `--redact` leaves none of the original names,
//! paths or value bytes anywhere in the file (raw bytes and decompressed blocks alike).

use std::path::Path;

use format::{
    CaptureHeader, DecodedBlock, LossRecord, OwnedEvent, ProcessInfo, TraceReader, TraceWriter,
    WriterOptions,
};

use crate::common::{Run, analyze, ok, root, tmp_dir};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_slice_holds_exactly_the_filtered_events() {
    let d = tmp_dir("exact");
    let src = "samples/synthetic-mixed.gsot";
    let cases: &[&[&str]] = &[
        &["--comm", "nginx,envoy", "--errors"],
        &["--since", "2ms", "--until", "6ms"],
        &[
            "--where",
            "optname == TCP_INFO && duration > 1us || errno == EINVAL",
        ],
        &[],
    ];
    for (i, filters) in cases.iter().enumerate() {
        let out = d.join(format!("s{i}.gsot"));
        let mut args = vec!["slice", src, "-o", s(&out)];
        args.extend_from_slice(filters);
        let said = ok(&args);
        // The slice is a whole, valid trace file.
        ok(&["verify", s(&out)]);
        let mut want_args = vec!["events", src, "--format", "json"];
        want_args.extend_from_slice(filters);
        let want = ok(&want_args);
        let got = ok(&["events", s(&out), "--format", "json"]);
        assert!(!want.is_empty(), "case {i} selects something");
        assert_eq!(got, want, "case {i}");
        let n = want.lines().count();
        assert!(said.contains(&format!("wrote {n} events")), "{said}");

        // Processes: exactly those with events; losses: those in the time range.
        let orig = TraceReader::open(root().join(src)).unwrap();
        let r = TraceReader::open(&out).unwrap();
        let events = r.read_all_events().unwrap();
        let mut pids: Vec<u32> = events.iter().map(|e| e.tgid).collect();
        pids.sort();
        pids.dedup();
        let mut table: Vec<u32> = r.processes().iter().map(|p| p.pid).collect();
        table.sort();
        table.dedup();
        assert_eq!(table, pids, "case {i}");
        for p in r.processes() {
            assert!(orig.processes().contains(p));
        }
        if filters.first() == Some(&"--since") {
            // The sample's one loss record lies at ~4.95ms: inside 2ms..6ms.
            assert_eq!(r.losses(), orig.losses());
        }
        let h = r.header();
        assert_eq!(h.host_name, orig.header().host_name);
        assert_eq!(h.capture_id, orig.header().capture_id);
        assert!(!h.redacted);
        assert!(h.extra.iter().any(|(k, v)| k == "sliced_from" && v == src));
        assert!(h.extra.iter().any(|(k, _)| k == "slice"));
    }
    let out = d.join("late.gsot");
    ok(&["slice", src, "--since", "9.95ms", "-o", s(&out)]);
    assert!(TraceReader::open(&out).unwrap().losses().is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

const HOST: &str = "secret-host-7f3a";
const COMMS: [&str; 2] = ["secretd-alpha", "secretd-bravo"];
const EXE: &str = "/opt/secret-vendor/bin/secretd";
const CGROUP: &str = "/secret.slice/secretd.service";
const CONGESTION: &[u8] = b"SECRETCC-9q\0\0\0\0\0";

/// A trace whose names, paths and values are distinctive enough to grep for.
fn secret_trace(path: &Path) -> Vec<OwnedEvent> {
    let header = CaptureHeader {
        capture_id: [9; 16],
        host_name: HOST.into(),
        boot_to_wall_ns: 1_767_225_600_000_000_000,
        start_ts_ns: 1_000,
        command_line: vec!["recorder".into(), "--comm".into(), COMMS[0].into()],
        filters: vec![("comm".into(), COMMS[0].into())],
        attach_mode: "synthetic".into(),
        snaplen: 256,
        ..CaptureHeader::default()
    };
    let mut w = TraceWriter::try_new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        &header,
        WriterOptions {
            max_block_events: 64,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for (i, c) in COMMS.iter().enumerate() {
        w.add_process(ProcessInfo {
            pid: 100 + i as u32,
            ppid: 1,
            first_seen_ns: 1_000,
            comm: c.to_string(),
            exe: EXE.into(),
            cgroup: CGROUP.into(),
        });
    }
    w.add_loss(LossRecord {
        cpu: 0,
        lost: 3,
        start_ns: 5_000,
        end_ns: 6_000,
    });
    // A TCP_INFO-sized value with a recognisable pattern, and TCP_CONGESTION names.
    let blob: Vec<u8> = (0..232u32).map(|i| (i * 7 + 13) as u8).collect();
    let mut events = Vec::new();
    for i in 0..300u64 {
        let c = COMMS[i as usize % 2];
        let mut comm = [0u8; 16];
        comm[..c.len()].copy_from_slice(c.as_bytes());
        let (optname, value) = match i % 3 {
            0 => (11, blob.clone()),
            1 => (13, CONGESTION.to_vec()),
            _ => (8, (123_456_789u32 + i as u32).to_le_bytes().to_vec()),
        };
        let e = OwnedEvent {
            ts_ns: 2_000 + i * 100,
            duration_ns: 500,
            tgid: 100 + (i % 2) as u32,
            tid: 100 + (i % 2) as u32,
            comm,
            fd: 4,
            level: if optname == 8 { 1 } else { 6 },
            optname,
            optlen_in: value.len() as i32,
            optlen_out: value.len() as i32,
            value,
            ..OwnedEvent::default()
        };
        w.write(&e.as_event()).unwrap();
        events.push(e);
    }
    w.finish().unwrap();
    events
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn redaction_leaves_no_original_bytes() {
    let d = tmp_dir("redact");
    let src = d.join("secret.gsot");
    let orig = secret_trace(&src);
    let out = d.join("redacted.gsot");
    let said = ok(&[
        "slice",
        s(&src),
        "--redact",
        "--comm",
        "secretd-*",
        "-o",
        s(&out),
    ]);
    assert!(
        said.contains("wrote 300 events, 2 processes, 1 loss records"),
        "{said}"
    );
    ok(&["verify", s(&out)]);

    // Everything the file holds: its raw bytes plus every block decompressed.
    let r = TraceReader::open(&out).unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    let mut d_block = DecodedBlock::new();
    for b in r.blocks() {
        r.decompress_block(b, &mut d_block).unwrap();
        bytes.extend_from_slice(d_block.payload());
    }
    let mut secrets: Vec<Vec<u8>> = vec![
        HOST.into(),
        EXE.into(),
        CGROUP.into(),
        b"secret".to_vec(),
        CONGESTION[..11].to_vec(),
        orig[0].value[..16].to_vec(),
        orig[0].value[100..132].to_vec(),
        src.to_str().unwrap().into(),
    ];
    secrets.extend(COMMS.iter().map(|c| c.as_bytes().to_vec()));
    secrets.extend(
        orig.iter()
            .filter(|e| e.optname == 8)
            .map(|e| e.value.clone()),
    );
    for secret in &secrets {
        assert!(
            !contains(&bytes, secret),
            "{:?} is still in the redacted file",
            String::from_utf8_lossy(secret)
        );
    }

    // What stays: counts, sizes, ids, times; placeholders are stable within the file.
    let h = r.header();
    assert!(h.redacted);
    assert_eq!(h.host_name, "redacted");
    let events = r.read_all_events().unwrap();
    assert_eq!(events.len(), orig.len());
    let mut placeholder = std::collections::HashMap::new();
    for (e, o) in events.iter().zip(&orig) {
        assert_eq!(e.value.len(), o.value.len());
        assert!(e.value.iter().all(|&b| b == 0));
        assert_eq!((e.ts_ns, e.tgid, e.optname), (o.ts_ns, o.tgid, o.optname));
        let p = placeholder.entry(o.comm).or_insert(e.comm);
        assert_eq!(*p, e.comm, "one comm, one placeholder");
        assert!(
            e.as_event().comm_str().starts_with("proc-"),
            "{}",
            e.as_event().comm_str()
        );
    }
    assert_eq!(placeholder.len(), 2);
    let distinct: std::collections::HashSet<_> = placeholder.values().collect();
    assert_eq!(distinct.len(), 2, "two comms, two placeholders");
    for p in r.processes() {
        let ev = events.iter().find(|e| e.tgid == p.pid).unwrap();
        assert_eq!(
            p.comm,
            ev.as_event().comm_str(),
            "process table and events agree"
        );
        assert!(p.exe.starts_with("/redacted/exe-"));
        assert!(p.cgroup.starts_with("/redacted/cgroup-"));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn slice_refuses_to_overwrite_its_input_and_names_bad_files() {
    let d = tmp_dir("errors");
    let src = d.join("t.gsot");
    secret_trace(&src);
    let Run { code, stderr, .. } = analyze(&["slice", s(&src), "-o", s(&src)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is the input file"), "{stderr}");
    let junk = d.join("junk.gsot");
    std::fs::write(&junk, [0u8; 40]).unwrap();
    let Run { code, stderr, .. } = analyze(&["slice", s(&junk), "-o", s(&d.join("o.gsot"))]);
    assert_eq!(code, 3);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("junk.gsot") && stderr.contains("offset"),
        "{stderr}"
    );
    assert!(!d.join("o.gsot").exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// `--redact` on a trace with sockets: no original address, Unix name or (with
/// `--redact-ports`) port is left in the events or any table, and equal ones stay equal and
/// keep their family.
#[test]
fn redaction_replaces_socket_addresses_names_and_ports() {
    use format::{Socket, SocketRef};
    let d = tmp_dir("redact-sockets");
    let src = root().join("samples/synthetic-mixed-1.2.gsot");
    let out = d.join("redacted.gsot");
    ok(&[
        "slice",
        s(&src),
        "--redact",
        "--redact-ports",
        "-o",
        s(&out),
    ]);
    ok(&["verify", s(&out)]);
    let orig = TraceReader::open(&src).unwrap().read_all_events().unwrap();
    let r = TraceReader::open(&out).unwrap();
    assert_eq!(r.header().socket_capture(), format::SocketCapture::Recorded);
    let mut bytes = std::fs::read(&out).unwrap();
    let mut d_block = DecodedBlock::new();
    for b in r.blocks() {
        r.decompress_block(b, &mut d_block).unwrap();
        bytes.extend_from_slice(d_block.payload());
    }
    let kept = |a: &[u8; 16], fam: u16| {
        a == &[0; 16]
            || (fam == 2 && a[0] == 127)
            || (fam == 10 && {
                let ip = std::net::Ipv6Addr::from(*a);
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
            })
    };
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for e in &orig {
        if let SocketRef::Socket(k) = e.socket.as_ref() {
            for a in [&k.local_addr, &k.remote_addr] {
                if (k.family == 2 || k.family == 10) && !kept(a, k.family) {
                    secrets.push(a.to_vec());
                }
            }
            for n in [&k.unix_path, &k.unix_peer] {
                let text = n.strip_prefix(b"\0").unwrap_or(n);
                if !text.is_empty() {
                    secrets.push(text.to_vec());
                }
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() > 20, "{}", secrets.len());
    for secret in &secrets {
        assert!(
            !contains(&bytes, secret),
            "{:?} is still in the redacted file",
            String::from_utf8_lossy(secret)
        );
    }
    let events = r.read_all_events().unwrap();
    assert_eq!(events.len(), orig.len());
    // One original, one placeholder, and back: equality is kept, and the family.
    let mut seen_fwd: std::collections::HashMap<(u16, [u8; 16]), [u8; 16]> = Default::default();
    let mut seen_back: std::collections::HashMap<(u16, [u8; 16]), [u8; 16]> = Default::default();
    for (e, o) in events.iter().zip(&orig) {
        let (Some(n), Some(k)) = (e.socket.as_ref().socket(), o.socket.as_ref().socket()) else {
            assert_eq!(e.socket, o.socket);
            continue;
        };
        assert_eq!(
            (n.family, n.sock_type, n.ino, n.netns),
            (k.family, k.sock_type, k.ino, k.netns)
        );
        for (na, ka) in [
            (&n.local_addr, &k.local_addr),
            (&n.remote_addr, &k.remote_addr),
        ] {
            if n.family == 2 || n.family == 10 {
                assert_eq!(*seen_fwd.entry((k.family, *ka)).or_insert(*na), *na);
                assert_eq!(*seen_back.entry((n.family, *na)).or_insert(*ka), *ka);
                let in_doc = match n.family {
                    2 => matches!(na[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113]),
                    _ => {
                        let ip = std::net::Ipv6Addr::from(*na);
                        na[..4] == [0x20, 0x01, 0x0d, 0xb8]
                            || na[..2] == [0xfe, 0x80]
                            || ip.to_ipv4_mapped().is_some_and(|v| {
                                matches!(
                                    v.octets()[..3],
                                    [192, 0, 2] | [198, 51, 100] | [203, 0, 113]
                                ) || v.is_loopback()
                            })
                    }
                };
                assert!(
                    kept(ka, k.family) == (na == ka) && (in_doc || na == ka),
                    "{k:?} -> {n:?}"
                );
            }
        }
        for p in [n.local_port, n.remote_port] {
            assert!(p == 0 || p >= 49152, "{p}");
        }
        let named = |s: &Socket| [s.unix_path.clone(), s.unix_peer.clone()];
        for (nn, kn) in named(n).iter().zip(named(k)) {
            assert_eq!(nn.is_empty(), kn.is_empty());
            assert_eq!(
                nn.first() == Some(&0),
                kn.first() == Some(&0),
                "abstract stays abstract"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
