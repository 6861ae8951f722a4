//! Socket identity in analyze's output: the strace `-yy` text form of every family, the typed
//! JSON fields, and sockets whose fields make no sense, shown with their raw values.

use format::{CaptureHeader, OwnedEvent, OwnedSocketRef, Socket};

use crate::common::{analyze, tmp_dir, write_events};

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a);
    b
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn ip(
    family: u16,
    ty: u16,
    proto: u16,
    state: u8,
    local: ([u8; 16], u16),
    remote: ([u8; 16], u16),
) -> Socket {
    Socket {
        family,
        sock_type: ty,
        protocol: proto,
        tcp_state: state,
        local_addr: local.0,
        local_port: local.1,
        remote_addr: remote.0,
        remote_port: remote.1,
        ino: 5000 + local.1 as u64,
        netns: 4026531840,
        ..Socket::default()
    }
}

/// One socket of each kind the text form names, and the inconsistent ones.
fn sockets() -> Vec<(i32, OwnedSocketRef)> {
    use OwnedSocketRef::{NoSocket, NotRecorded};
    let unix = |path: &[u8], peer: &[u8]| Socket {
        family: 1,
        sock_type: 1,
        unix_path: path.to_vec(),
        unix_peer: peer.to_vec(),
        ino: 777,
        ..Socket::default()
    };
    vec![
        (
            4,
            OwnedSocketRef::Socket(ip(
                2,
                1,
                6,
                1,
                (v4([127, 0, 0, 1]), 40312),
                (v4([127, 0, 0, 1]), 5432),
            )),
        ),
        (
            5,
            OwnedSocketRef::Socket(ip(10, 1, 6, 10, (v6("::1"), 8080), ([0; 16], 0))),
        ),
        (7, OwnedSocketRef::Socket(unix(b"/run/app.sock", b""))),
        (
            9,
            OwnedSocketRef::Socket(ip(2, 2, 17, 0, ([0; 16], 5353), ([0; 16], 0))),
        ),
        (
            3,
            OwnedSocketRef::Socket(format::Socket {
                family: 16,
                sock_type: 3,
                netlink_portid: 1234,
                ..Default::default()
            }),
        ),
        (
            6,
            OwnedSocketRef::Socket(ip(
                10,
                1,
                6,
                1,
                (v6("::ffff:10.0.0.5"), 40000),
                (v6("::ffff:10.0.0.7"), 443),
            )),
        ),
        (
            8,
            OwnedSocketRef::Socket(format::Socket {
                scope_id: 2,
                ..ip(10, 2, 17, 0, (v6("fe80::1"), 546), (v6("fe80::2"), 547))
            }),
        ),
        (
            10,
            OwnedSocketRef::Socket(unix(b"\0abstract", b"/run/peer.sock")),
        ),
        (
            11,
            OwnedSocketRef::Socket(ip(2, 2, 1, 0, (v4([0; 4]), 0), ([0; 16], 0))),
        ),
        (
            12,
            OwnedSocketRef::Socket(format::Socket {
                family: 17,
                sock_type: 3,
                ino: 4242,
                ..Default::default()
            }),
        ),
        // Inconsistent: an unknown family, with a port and no address; a unix path with
        // a NUL inside and a byte that is not UTF-8; a TCP state the kernel does not have.
        (
            13,
            OwnedSocketRef::Socket(format::Socket {
                family: 99,
                local_port: 80,
                ino: 1,
                ..Default::default()
            }),
        ),
        (14, OwnedSocketRef::Socket(unix(b"/tmp/a\0b\xff", b""))),
        (
            15,
            OwnedSocketRef::Socket(ip(2, 1, 6, 77, ([0; 16], 80), ([0; 16], 0))),
        ),
        (16, NoSocket),
        (17, NotRecorded),
        // AF_PACKET's protocol is the ethertype it receives (ETH_P_ALL; one without a name).
        (
            18,
            OwnedSocketRef::Socket(format::Socket {
                family: 17,
                sock_type: 3,
                protocol: 3,
                ino: 4243,
                ..Default::default()
            }),
        ),
        (
            19,
            OwnedSocketRef::Socket(format::Socket {
                family: 17,
                sock_type: 2,
                protocol: 0x88b5,
                ino: 4244,
                ..Default::default()
            }),
        ),
    ]
}

fn file() -> std::path::PathBuf {
    let dir = tmp_dir("sockets");
    let path = dir.join("sockets.gsot");
    let events: Vec<OwnedEvent> = sockets()
        .into_iter()
        .enumerate()
        .map(|(i, (fd, socket))| OwnedEvent {
            ts_ns: 1_000 + i as u64,
            tgid: 42,
            tid: 42,
            comm: *b"app\0\0\0\0\0\0\0\0\0\0\0\0\0",
            fd,
            level: 1,
            optname: 4,
            optlen_in: 4,
            optlen_out: 4,
            value: vec![0; 4],
            socket,
            ..OwnedEvent::default()
        })
        .collect();
    let h = CaptureHeader {
        attach_mode: "synthetic".into(),
        snaplen: 64,
        extra: format::SocketCapture::Recorded
            .extra_pair()
            .into_iter()
            .collect(),
        ..CaptureHeader::default()
    };
    write_events(&path, &h, &events, 100);
    path
}

#[test]
fn text_shows_each_family_strace_style_and_raw_values_of_nonsense() {
    let path = file();
    let r = analyze(&["events", path.to_str().unwrap(), "--time", "boot"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fds: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| {
            l.split_once("getsockopt(")
                .unwrap()
                .1
                .split_once(", SOL_SOCKET")
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(
        fds,
        [
            "4<TCP:[127.0.0.1:40312->127.0.0.1:5432]>",
            "5<TCPv6:[[::1]:8080]>",
            "7<UNIX:[/run/app.sock]>",
            "9<UDP:[0.0.0.0:5353]>",
            "3<NETLINK:[ROUTE:1234]>",
            "6<TCPv6:[[::ffff:10.0.0.5]:40000->[::ffff:10.0.0.7]:443]>",
            "8<UDPv6:[[fe80::1%2]:546->[fe80::2%2]:547]>",
            "10<UNIX:[@abstract->/run/peer.sock]>",
            "11<PING:[0.0.0.0:0]>",
            "12<PACKET:[4242]>",
            "13<AF_99:[1]>",
            "14<UNIX:[/tmp/a\\x00b\\xff]>",
            "15<TCP:[0.0.0.0:80]>",
            "16",
            "17",
            "18<PACKET:[ETH_P_ALL]>",
            "19<PACKET:[0x88b5]>",
        ]
    );
}

#[test]
fn json_has_typed_socket_fields_null_without_a_socket() {
    let path = file();
    let r = analyze(&[
        "events",
        path.to_str().unwrap(),
        "--format",
        "json",
        "--fields",
        "fd,sock_family,sock_type,sock_protocol,tcp_state,local_addr,local_port,remote_addr,remote_port,unix_path,unix_peer,sock_ino,netns",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"fd":4,"sock_family":"AF_INET","sock_type":"SOCK_STREAM","sock_protocol":6,"tcp_state":"ESTABLISHED","local_addr":"127.0.0.1","local_port":40312,"remote_addr":"127.0.0.1","remote_port":5432,"unix_path":null,"unix_peer":null,"sock_ino":45312,"netns":4026531840}"#
    );
    assert_eq!(
        lines[7],
        r#"{"fd":10,"sock_family":"AF_UNIX","sock_type":"SOCK_STREAM","sock_protocol":0,"tcp_state":null,"local_addr":null,"local_port":null,"remote_addr":null,"remote_port":null,"unix_path":"@abstract","unix_peer":"/run/peer.sock","sock_ino":777,"netns":0}"#
    );
    assert_eq!(
        lines[10],
        r#"{"fd":13,"sock_family":"99","sock_type":"0","sock_protocol":0,"tcp_state":null,"local_addr":null,"local_port":null,"remote_addr":null,"remote_port":null,"unix_path":null,"unix_peer":null,"sock_ino":1,"netns":0}"#
    );
    assert!(lines[12].contains(r#""tcp_state":"77""#), "{}", lines[12]);
    let none = r#"{"fd":16,"sock_family":null,"sock_type":null,"sock_protocol":null,"tcp_state":null,"local_addr":null,"local_port":null,"remote_addr":null,"remote_port":null,"unix_path":null,"unix_peer":null,"sock_ino":null,"netns":null}"#;
    assert_eq!(lines[13], none);
    assert_eq!(lines[14], none.replace("16", "17"));
    let info = analyze(&["info", path.to_str().unwrap()]);
    assert!(
        info.stdout.contains("sockets:       recorded\n"),
        "{}",
        info.stdout
    );
}

const SAMPLE: &str = "samples/synthetic-mixed-1.2.gsot";

/// The events of the 1.2 sample, read by the format crate.
fn sample_events() -> Vec<OwnedEvent> {
    let path = crate::common::root().join(SAMPLE);
    format::TraceReader::open(&path)
        .unwrap()
        .read_all_events()
        .unwrap()
}

fn count(args: &[&str]) -> usize {
    let mut a = vec!["events", SAMPLE, "--format", "csv", "--fields", "ts_ns"];
    a.extend_from_slice(args);
    let r = analyze(&a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout.lines().count() - 1
}

#[test]
fn socket_filters_select_exactly_what_a_brute_force_scan_selects() {
    let events = sample_events();
    let with = |f: &dyn Fn(&Socket) -> bool| {
        events
            .iter()
            .filter(|e| e.socket.as_ref().socket().is_some_and(f))
            .count()
    };
    let ip = |s: &Socket| s.family == 2 || s.family == 10;
    let in10 = |s: &Socket, a: &[u8; 16]| match s.family {
        2 => a[0] == 10,
        10 => a[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] && a[12] == 10,
        _ => false,
    };
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (
            vec!["--port", "5432"],
            with(&|s| ip(s) && (s.local_port == 5432 || s.remote_port == 5432)),
        ),
        (
            vec!["--local-port", "443,8000"],
            with(&|s| ip(s) && [443, 8000].contains(&s.local_port)),
        ),
        (
            vec!["--remote-port", "6379"],
            with(&|s| ip(s) && s.remote_port == 6379),
        ),
        (vec!["--family", "unix"], with(&|s| s.family == 1)),
        (
            vec!["--family", "inet6,netlink"],
            with(&|s| s.family == 10 || s.family == 16),
        ),
        (
            vec!["--addr", "::1"],
            with(&|s| s.family == 10 && (s.local_addr == v6("::1") || s.remote_addr == v6("::1"))),
        ),
        (
            vec!["--addr", "10.0.0.0/8"],
            with(&|s| in10(s, &s.local_addr) || in10(s, &s.remote_addr)),
        ),
        (
            vec!["--where", "remote_addr in 10.0.0.0/8"],
            with(&|s| in10(s, &s.remote_addr)),
        ),
        (
            vec!["--where", "remote_port == 443 && tcp_state == ESTABLISHED"],
            with(&|s| ip(s) && s.remote_port == 443 && s.tcp_state == 1),
        ),
        (
            vec!["--where", "sock_type == dgram"],
            with(&|s| s.sock_type == 2),
        ),
        (
            vec!["--where", "unix_path ~ \"/run/*\""],
            with(&|s| s.family == 1 && s.unix_path.starts_with(b"/run/")),
        ),
        (
            vec!["--where", "unix_peer == \"@/containerd-shim/k8s.io.sock\""],
            with(&|s| s.unix_peer == b"\0/containerd-shim/k8s.io.sock"),
        ),
        (
            vec!["--where", "netns != 4026531840"],
            with(&|s| s.netns != 4026531840),
        ),
        // A socket test is false without a socket; its negation holds there.
        (
            vec!["--where", "!(remote_port == 443)"],
            events.len() - with(&|s| ip(s) && s.remote_port == 443),
        ),
    ];
    for (args, want) in cases {
        assert!(
            want > 0,
            "{args:?} selects nothing in the sample: not a test"
        );
        assert_eq!(count(&args), want, "{args:?}");
    }
}

#[test]
fn stats_groups_by_socket_fields_as_a_brute_force_count() {
    let events = sample_events();
    let r = analyze(&[
        "stats",
        SAMPLE,
        "--by",
        "sock_family,remote_port",
        "--format",
        "csv",
        "--sort",
        "key",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut got: Vec<(String, u64)> = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (format!("{},{}", c[0], c[1]), c[2].parse().unwrap())
        })
        .collect();
    got.sort();
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for e in &events {
        let key = match e.socket.as_ref().socket() {
            None => ",".to_string(),
            Some(s) => {
                let fam = match s.family {
                    1 => "AF_UNIX",
                    2 => "AF_INET",
                    10 => "AF_INET6",
                    16 => "AF_NETLINK",
                    _ => unreachable!(),
                };
                let port = if s.family == 2 || s.family == 10 {
                    s.remote_port.to_string()
                } else {
                    String::new()
                };
                format!("{fam},{port}")
            }
        };
        *want.entry(key).or_default() += 1;
    }
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    // One group per socket inode, named by its tuple; a filter on sockets agrees with events.
    let r = analyze(&[
        "stats", SAMPLE, "--by", "socket", "--port", "5432", "--format", "csv",
    ]);
    let total: u64 = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').nth(6).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total as usize, count(&["--port", "5432"]));
    let inodes: std::collections::HashSet<u64> = events
        .iter()
        .filter_map(|e| e.socket.as_ref().socket())
        .filter(|s| {
            (s.family == 2 || s.family == 10) && (s.local_port == 5432 || s.remote_port == 5432)
        })
        .map(|s| s.ino)
        .collect();
    assert_eq!(r.stdout.lines().count() - 1, inodes.len());
    assert!(r.stdout.contains("TCP:[0.0.0.0:5432] ino="), "{}", r.stdout);
}
