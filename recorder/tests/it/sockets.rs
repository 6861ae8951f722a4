//! Socket identity: a workload of known sockets, each queried with getsockopt(SO_TYPE) while
//! the recorder runs; every event's socket must equal, field by field, what the workload itself
//! learns from getsockname/getpeername, fstat and /proc/thread-self/ns/net.

use std::mem::{size_of, zeroed};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::process::Command;

use format::{OwnedSocketRef, Socket};
use recorder::workload::{Call, getsockopt};

use crate::common::*;

const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_SENT: u8 = 2;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// (family, address bytes, port, IPv6 scope id) of a sockaddr.
fn addr_of(sa: &libc::sockaddr_storage) -> (u16, [u8; 16], u16, u32) {
    let mut a = [0u8; 16];
    match i32::from(sa.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let s = unsafe { &*(sa as *const _ as *const libc::sockaddr_in) };
            a[..4].copy_from_slice(&s.sin_addr.s_addr.to_ne_bytes());
            (libc::AF_INET as u16, a, u16::from_be(s.sin_port), 0)
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let s = unsafe { &*(sa as *const _ as *const libc::sockaddr_in6) };
            a.copy_from_slice(&s.sin6_addr.s6_addr);
            let scope = s.sin6_scope_id;
            (libc::AF_INET6 as u16, a, u16::from_be(s.sin6_port), scope)
        }
        f => (f as u16, a, 0, 0),
    }
}

type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

/// getsockname or getpeername: the address and its length (0 when not connected).
fn name(f: NameFn, fd: RawFd) -> (libc::sockaddr_storage, usize) {
    // SAFETY: plain data, filled by the kernel below.
    let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid out pointers of the stated size.
    let r = unsafe { f(fd, (&raw mut sa).cast(), &mut len) };
    (sa, if r == 0 { len as usize } else { 0 })
}

fn ino(fd: RawFd) -> u64 {
    // SAFETY: plain data, filled by fstat.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    st.st_ino
}

fn netns() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino() as u32
}

/// What the workload knows of an IPv4/IPv6 socket it made.
fn inet(fd: RawFd, sock_type: i32, protocol: i32, tcp_state: u8) -> Socket {
    let (local, _) = name(libc::getsockname, fd);
    let (family, local_addr, local_port, scope) = addr_of(&local);
    let (peer, peer_len) = name(libc::getpeername, fd);
    let (_, remote_addr, remote_port, peer_scope) = if peer_len > 0 {
        addr_of(&peer)
    } else {
        (0, [0; 16], 0, 0)
    };
    Socket {
        family,
        sock_type: sock_type as u16,
        protocol: protocol as u16,
        tcp_state,
        local_addr,
        local_port,
        remote_addr,
        remote_port,
        scope_id: scope.max(peer_scope),
        ino: ino(fd),
        netns: netns(),
        ..Socket::default()
    }
}

/// `sun_path` bytes of a sockaddr_un of `len` bytes: a path without its NUL, or an abstract
/// name (leading NUL) whole.
fn sun_path(sa: &libc::sockaddr_storage, len: usize) -> Vec<u8> {
    // SAFETY: an AF_UNIX address is a sockaddr_un.
    let s = unsafe { &*(sa as *const _ as *const libc::sockaddr_un) };
    let n = len.saturating_sub(2);
    let b: Vec<u8> = s.sun_path[..n].iter().map(|&c| c as u8).collect();
    match b.first() {
        Some(0) => b,
        _ => b.split(|&c| c == 0).next().unwrap_or_default().to_vec(),
    }
}

fn unix(fd: RawFd, sock_type: i32) -> Socket {
    let (local, local_len) = name(libc::getsockname, fd);
    let (peer, peer_len) = name(libc::getpeername, fd);
    Socket {
        family: libc::AF_UNIX as u16,
        sock_type: sock_type as u16,
        unix_path: sun_path(&local, local_len),
        unix_peer: sun_path(&peer, peer_len),
        ino: ino(fd),
        netns: netns(),
        ..Socket::default()
    }
}

fn raw_socket(family: i32, ty: i32, protocol: i32) -> OwnedFd {
    // SAFETY: socket() has no pointer arguments.
    let fd = unsafe { libc::socket(family, ty, protocol) };
    assert!(
        fd >= 0,
        "socket({family}, {ty}, {protocol}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The calls made and the socket each must be recorded with, in order, all on this thread.
struct Expect(Vec<(Call, OwnedSocketRef)>);

impl Expect {
    fn query(&mut self, label: &'static str, fd: RawFd, expected: OwnedSocketRef) {
        let call = getsockopt(label, fd, libc::SOL_SOCKET, libc::SO_TYPE, 4);
        self.0.push((call, expected));
    }

    fn socket(&mut self, label: &'static str, fd: RawFd, s: Socket) {
        self.query(label, fd, OwnedSocketRef::Socket(s));
    }
}

fn tcp_and_udp(x: &mut Expect) {
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    x.socket(
        "tcp4 listener",
        l4.as_raw_fd(),
        inet(l4.as_raw_fd(), st, tcp, TCP_LISTEN),
    );
    let c4 = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
    let (s4, _) = l4.accept().unwrap();
    for (label, s) in [("tcp4 client", &c4), ("tcp4 server", &s4)] {
        x.socket(
            label,
            s.as_raw_fd(),
            inet(s.as_raw_fd(), st, tcp, TCP_ESTABLISHED),
        );
    }
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    x.socket(
        "tcp6 listener",
        l6.as_raw_fd(),
        inet(l6.as_raw_fd(), st, tcp, TCP_LISTEN),
    );
    let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
    let (s6, _) = l6.accept().unwrap();
    for (label, s) in [("tcp6 client", &c6), ("tcp6 server", &s6)] {
        x.socket(
            label,
            s.as_raw_fd(),
            inet(s.as_raw_fd(), st, tcp, TCP_ESTABLISHED),
        );
    }
    // An IPv6 socket talking to an IPv4 listener: v4-mapped addresses on both sides of it.
    let mapped = format!("[::ffff:127.0.0.1]:{}", l4.local_addr().unwrap().port());
    let m = TcpStream::connect(mapped).unwrap();
    let (_m_server, _) = l4.accept().unwrap();
    let mi = inet(m.as_raw_fd(), st, tcp, TCP_ESTABLISHED);
    assert_eq!(
        mi.remote_addr[..12],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    );
    x.socket("tcp6 v4-mapped client", m.as_raw_fd(), mi);

    let (dg, udp) = (libc::SOCK_DGRAM, libc::IPPROTO_UDP);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    x.socket("udp bound", u.as_raw_fd(), inet(u.as_raw_fd(), dg, udp, 0));
    let uc = UdpSocket::bind("[::1]:0").unwrap();
    uc.connect("[::1]:9").unwrap();
    x.socket(
        "udp6 connected",
        uc.as_raw_fd(),
        inet(uc.as_raw_fd(), dg, udp, 0),
    );

    // Queried before connect(), during a non-blocking connect to a listener whose accept
    // queue is full (its SYN is dropped: SYN_SENT), and after a connect() that completed.
    let full = raw_socket(libc::AF_INET, st, 0);
    let mut sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    let sin_len = size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: a valid sockaddr_in of its size.
    let r = unsafe { libc::bind(full.as_raw_fd(), (&raw const sin).cast(), sin_len) };
    assert_eq!(r, 0);
    // SAFETY: no pointers.
    assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
    let (bound, _) = name(libc::getsockname, full.as_raw_fd());
    sin.sin_port = addr_of(&bound).2.to_be();
    let queued = raw_socket(libc::AF_INET, st, 0);
    // SAFETY: as above.
    let r = unsafe { libc::connect(queued.as_raw_fd(), (&raw const sin).cast(), sin_len) };
    assert_eq!(r, 0);
    let before = raw_socket(libc::AF_INET, st | libc::SOCK_NONBLOCK, 0);
    let fd = before.as_raw_fd();
    x.socket("tcp before connect", fd, inet(fd, st, tcp, TCP_CLOSE));
    // SAFETY: as above.
    let r = unsafe { libc::connect(fd, (&raw const sin).cast(), sin_len) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    assert_eq!((r, errno), (-1, Some(libc::EINPROGRESS)));
    // getpeername says ENOTCONN until the handshake completes; the recorded peer is where the
    // connect() goes, which is what a SYN_SENT socket is doing.
    let mut syn_sent = inet(fd, st, tcp, TCP_SYN_SENT);
    syn_sent.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    syn_sent.remote_port = addr_of(&bound).2;
    x.socket("tcp syn_sent", fd, syn_sent);
    let later = raw_socket(libc::AF_INET, st, 0);
    let fd = later.as_raw_fd();
    x.socket("tcp not yet connected", fd, inet(fd, st, tcp, TCP_CLOSE));
    let sin = libc::sockaddr_in {
        sin_port: l4.local_addr().unwrap().port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        ..sin
    };
    // SAFETY: as above.
    let r = unsafe {
        libc::connect(
            fd,
            (&raw const sin).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(r, 0);
    x.socket("tcp after connect", fd, inet(fd, st, tcp, TCP_ESTABLISHED));
}

/// A connected socket queried, closed, and its fd number taken by a socket connected to another
/// port: the second call must not get the first socket's identity from any cache.
fn reused_fd(x: &mut Expect) {
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let first = TcpStream::connect(a.local_addr().unwrap()).unwrap();
    let fd = first.as_raw_fd();
    let first_id = inet(fd, st, tcp, TCP_ESTABLISHED);
    for _ in 0..3 {
        x.socket("reused fd: first", fd, first_id.clone());
    }
    drop(first);
    let second = TcpStream::connect(b.local_addr().unwrap()).unwrap();
    assert_eq!(second.as_raw_fd(), fd, "the fd number is reused");
    let second_id = inet(fd, st, tcp, TCP_ESTABLISHED);
    assert_ne!(
        (second_id.remote_port, second_id.ino),
        (first_id.remote_port, first_id.ino)
    );
    x.socket("reused fd: second", fd, second_id);
}

fn other_families(x: &mut Expect, dir: &std::path::Path) {
    let icmp = raw_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
    let fd = icmp.as_raw_fd();
    x.socket(
        "raw icmp",
        fd,
        inet(fd, libc::SOCK_RAW, libc::IPPROTO_ICMP, 0),
    );

    // The kernel keeps a packet socket's ethertype outside struct sock (packet_sock.num; its
    // sk_protocol, what SO_PROTOCOL returns, stays 0): the ethertype is recorded, host order,
    // the one socket() was given and then the one a bind() set.
    let packet = raw_socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        (libc::ETH_P_ALL as u16).to_be().into(),
    );
    let call = getsockopt(
        "packet",
        packet.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_PROTOCOL,
        4,
    );
    assert_eq!((call.ret, &call.value[..]), (0, &0i32.to_ne_bytes()[..]));
    let packet_id = Socket {
        family: libc::AF_PACKET as u16,
        sock_type: libc::SOCK_RAW as u16,
        protocol: libc::ETH_P_ALL as u16,
        ino: ino(packet.as_raw_fd()),
        netns: netns(),
        ..Socket::default()
    };
    x.0.push((call, OwnedSocketRef::Socket(packet_id.clone())));
    // SAFETY: plain data.
    let mut ll: libc::sockaddr_ll = unsafe { zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
    ll.sll_ifindex = 1;
    let len = size_of::<libc::sockaddr_ll>() as u32;
    // SAFETY: a valid sockaddr_ll of its size (ifindex 1: loopback).
    let r = unsafe { libc::bind(packet.as_raw_fd(), (&raw const ll).cast(), len) };
    assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
    let bound = Socket {
        protocol: libc::ETH_P_IPV6 as u16,
        ..packet_id
    };
    x.socket("packet bound to ETH_P_IPV6", packet.as_raw_fd(), bound);

    let nl = raw_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
    // SAFETY: plain data.
    let mut sa: libc::sockaddr_nl = unsafe { zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    let len = size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: a valid sockaddr_nl; pid 0 lets the kernel choose the port id.
    let r = unsafe { libc::bind(nl.as_raw_fd(), (&raw const sa).cast(), len) };
    assert_eq!(r, 0);
    let (bound, _) = name(libc::getsockname, nl.as_raw_fd());
    // SAFETY: the family is AF_NETLINK.
    let portid = unsafe { &*(&raw const bound).cast::<libc::sockaddr_nl>() }.nl_pid;
    assert_ne!(portid, 0);
    let nl_id = Socket {
        family: libc::AF_NETLINK as u16,
        sock_type: libc::SOCK_RAW as u16,
        protocol: libc::NETLINK_ROUTE as u16,
        netlink_portid: portid,
        ino: ino(nl.as_raw_fd()),
        netns: netns(),
        ..Socket::default()
    };
    x.socket("netlink route", nl.as_raw_fd(), nl_id);

    use std::os::unix::net::{UnixListener, UnixStream};
    let path = dir.join("s.sock");
    let l = UnixListener::bind(&path).unwrap();
    let c = UnixStream::connect(&path).unwrap();
    let (s, _) = l.accept().unwrap();
    for (label, fd) in [
        ("unix listener", l.as_raw_fd()),
        ("unix client", c.as_raw_fd()),
        ("unix server", s.as_raw_fd()),
    ] {
        x.socket(label, fd, unix(fd, libc::SOCK_STREAM));
    }
    assert_eq!(
        unix(c.as_raw_fd(), libc::SOCK_STREAM).unix_peer,
        path.as_os_str().as_encoded_bytes()
    );
    use std::os::linux::net::SocketAddrExt as _;
    let name = format!("gsot-test-{}", std::process::id());
    let abs = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let al = UnixListener::bind_addr(&abs).unwrap();
    let ac = UnixStream::connect_addr(&abs).unwrap();
    let al_id = unix(al.as_raw_fd(), libc::SOCK_STREAM);
    assert_eq!(al_id.unix_path, [b"\0", name.as_bytes()].concat());
    x.socket("unix abstract listener", al.as_raw_fd(), al_id);
    x.socket(
        "unix abstract client",
        ac.as_raw_fd(),
        unix(ac.as_raw_fd(), libc::SOCK_STREAM),
    );
    let (p1, p2) = UnixStream::pair().unwrap();
    x.socket(
        "unix socketpair",
        p1.as_raw_fd(),
        unix(p1.as_raw_fd(), libc::SOCK_STREAM),
    );
    drop(p2);
}

fn not_sockets(x: &mut Expect) {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    x.query("ENOTSOCK", file.as_raw_fd(), OwnedSocketRef::NoSocket);
    x.query("EBADF", 999_999, OwnedSocketRef::NoSocket);
    x.query("EBADF negative", -1, OwnedSocketRef::NoSocket);
}

/// An IPv6 link-local connection with its scope, in a network namespace of its own (so the
/// address does not touch the machine's): this thread's netns is another inode too.
fn link_local(x: &mut Expect) {
    // SAFETY: unshare affects this thread only (CLONE_NEWNET on a thread of its own).
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "unshare(CLONE_NEWNET)");
    // `ip` forked from this thread runs in its namespace.
    for args in [
        &["link", "set", "lo", "up"][..],
        &["-6", "addr", "add", "fe80::1/64", "dev", "lo", "nodad"],
    ] {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    }
    let lo = std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 0, 0, 1);
    let l = TcpListener::bind(lo).unwrap();
    // The route to a new address may lag the address by a moment (addrconf work after `up`).
    let c = (0..100)
        .find_map(|_| match TcpStream::connect(l.local_addr().unwrap()) {
            Err(e) if e.kind() == std::io::ErrorKind::NetworkUnreachable => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            }
            r => Some(r.unwrap()),
        })
        .expect("fe80::1 on lo never became reachable");
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let id = inet(c.as_raw_fd(), st, tcp, TCP_ESTABLISHED);
    assert_eq!(id.scope_id, 1);
    x.socket("tcp6 link-local client", c.as_raw_fd(), id);
    x.socket(
        "tcp6 link-local listener",
        l.as_raw_fd(),
        inet(l.as_raw_fd(), st, tcp, TCP_LISTEN),
    );
}

fn run_workload(dir: &std::path::Path) -> Vec<(Call, OwnedSocketRef)> {
    let mut x = Expect(Vec::new());
    tcp_and_udp(&mut x);
    reused_fd(&mut x);
    other_families(&mut x, dir);
    not_sockets(&mut x);
    x.0
}

/// Runs the workload under a recorder using `walk` and checks every event.
fn check_walk(dir: &std::path::Path, walk: &str, header_walk: &str) {
    let out = dir.join(format!("{walk}.gsot"));
    let me = std::process::id().to_string();
    let rec = start_recorder(&out, &["--pid", &me, "--socket-walk", walk]);
    let dir2 = dir.join(walk);
    std::fs::create_dir_all(&dir2).unwrap();
    let mut expected = std::thread::spawn(move || run_workload(&dir2))
        .join()
        .unwrap();
    let link_local = std::thread::spawn(|| {
        let mut x = Expect(Vec::new());
        link_local(&mut x);
        x.0
    });
    expected.extend(link_local.join().unwrap());
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
