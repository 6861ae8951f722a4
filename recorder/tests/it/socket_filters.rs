//! The in-kernel socket filters (`--port`, `--remote-addr`, `--family`): recorders with
//! different filters watch the same calls on known sockets; each file holds exactly the calls
//! whose socket matches.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;

use format::Socket;
use recorder::workload::{Call, getsockopt};

use crate::common::*;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const AF_UNIX: u16 = libc::AF_UNIX as u16;

/// A call and the (family, local port, remote port, remote address) of its socket, or None
/// for a call on something that is no socket.
type Known = (Call, Option<(u16, u16, u16, [u8; 16])>);

fn query(label: &'static str, fd: i32, family: u16) -> Known {
    use std::mem::{size_of, zeroed};
    let call = getsockopt(label, fd, libc::SOL_SOCKET, libc::SO_TYPE, 4);
    let port_addr = |f: NameFn| -> (u16, [u8; 16]) {
        // SAFETY: plain data filled by the kernel.
        let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: valid out pointers of the stated size.
        if unsafe { f(fd, (&raw mut sa).cast(), &mut len) } != 0 {
            return (0, [0; 16]);
        }
        let mut a = [0; 16];
        match family {
            AF_INET => {
                // SAFETY: an AF_INET socket's address is a sockaddr_in.
                let s = unsafe { &*(&raw const sa).cast::<libc::sockaddr_in>() };
                a[..4].copy_from_slice(&s.sin_addr.s_addr.to_ne_bytes());
                (u16::from_be(s.sin_port), a)
            }
            AF_INET6 => {
                // SAFETY: an AF_INET6 socket's address is a sockaddr_in6.
                let s = unsafe { &*(&raw const sa).cast::<libc::sockaddr_in6>() };
                (u16::from_be(s.sin6_port), s.sin6_addr.s6_addr)
            }
            _ => (0, a),
        }
    };
    let (local, _) = port_addr(libc::getsockname);
    let (remote, remote_addr) = port_addr(libc::getpeername);
    let known = (family != 0).then_some((family, local, remote, remote_addr));
    (call, known)
}

type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

type Pred = Box<dyn Fn(u16, u16, u16, [u8; 16]) -> bool>;

#[test]
fn socket_filters_keep_exactly_the_matching_sockets() {
    let Some(_kernel) = live_kernel("socket_filters_keep_exactly_the_matching_sockets") else {
        return;
    };
    let dir = temp_dir("socket-filters");
    let me = std::process::id().to_string();
    // The listeners exist before the recorders, so the filters can name their ports.
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let (p, q) = (
        l4.local_addr().unwrap().port(),
        l6.local_addr().unwrap().port(),
    );
    let loopback4 = |a: [u8; 16]| a[0] == 127;
    let cases: Vec<(&str, Vec<String>, Pred)> = vec![
        (
            "port",
            vec!["--port".into(), p.to_string()],
            Box::new(move |_, l, r, _| l == p || r == p),
        ),
        (
            "ports",
            vec!["--port".into(), format!("{q},{p}")],
            Box::new(move |_, l, r, _| [l, r].iter().any(|x| *x == p || *x == q)),
        ),
        (
            "remote-v4-net",
            vec!["--remote-addr".into(), "127.0.0.0/8".into()],
            Box::new(move |f, _, _, a| f == AF_INET && loopback4(a)),
        ),
        (
            "remote-v6",
            vec!["--remote-addr".into(), "::1".into()],
            Box::new(|f, _, _, a| f == AF_INET6 && a == std::net::Ipv6Addr::LOCALHOST.octets()),
        ),
        (
            "family-inet6",
            vec!["--family".into(), "inet6".into()],
            Box::new(|f, _, _, _| f == AF_INET6),
        ),
        (
            "family-unix",
            vec!["--family".into(), "unix".into()],
            Box::new(|f, _, _, _| f == AF_UNIX),
        ),
    ];
    let recorders: Vec<_> = cases
        .iter()
        .map(|(name, args, _)| {
            let mut all = vec!["--pid", me.as_str()];
            all.extend(args.iter().map(String::as_str));
            start_recorder(&dir.join(format!("{name}.gsot")), &all)
        })
        .collect();

    let calls: Vec<Known> = std::thread::spawn(move || {
        let c4 = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
        let (s4, _) = l4.accept().unwrap();
        let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
        let (s6, _) = l6.accept().unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(("127.0.0.1", p)).unwrap();
        let other = UdpSocket::bind("0.0.0.0:0").unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        let mut v = vec![
            query("tcp4 listener", l4.as_raw_fd(), AF_INET),
            query("tcp4 client", c4.as_raw_fd(), AF_INET),
            query("tcp4 server", s4.as_raw_fd(), AF_INET),
            query("tcp6 listener", l6.as_raw_fd(), AF_INET6),
            query("tcp6 client", c6.as_raw_fd(), AF_INET6),
            query("tcp6 server", s6.as_raw_fd(), AF_INET6),
            query("udp to the tcp4 port", u.as_raw_fd(), AF_INET),
            query("udp unconnected", other.as_raw_fd(), AF_INET),
            query("unix", x.as_raw_fd(), AF_UNIX),
        ];
        v.push(query("EBADF", 999_999, 0));
        v
    })
    .join()
    .unwrap();

    for ((name, _, pred), rec) in cases.iter().zip(recorders) {
        let (reader, events, log) = stop_and_read(rec);
        let expected: Vec<&Call> = calls
            .iter()
            .filter(|(_, k)| k.is_some_and(|(f, l, r, a)| pred(f, l, r, a)))
            .map(|(c, _)| c)
            .collect();
        let got: Vec<(i32, Option<&Socket>)> = events
            .iter()
            .map(|e| (e.fd, e.socket.as_ref().socket()))
            .collect();
        assert_eq!(
            events.len(),
            expected.len(),
            "filter {name}: {got:?}\n{log}"
        );
        for call in expected {
            assert!(
                find(&events, call).is_some(),
                "filter {name} lost {}",
                call.label
            );
        }
        let keys: Vec<&str> = reader
            .header()
            .filters
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        let key = name.split('-').next().unwrap().trim_end_matches('s');
        let key = if key == "remote" { "remote_addr" } else { key };
        assert!(keys.contains(&key), "filter {name}: {keys:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_filters_refuse_a_capture_without_sockets() {
    let Some(_kernel) = live_kernel("socket_filters_refuse_a_capture_without_sockets") else {
        return;
    };
    let dir = temp_dir("socket-filters-refused");
    let (status, err) = run_to_exit(
        std::process::Command::new(env!("CARGO_BIN_EXE_recorder"))
            .args(["record", "-o"])
            .arg(dir.join("x.gsot"))
            .args(["--no-sockets", "--port", "80"]),
    );
    assert!(!status.success());
    assert!(
        err.contains("--port, --remote-addr and --family need the sockets --no-sockets turns off"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
