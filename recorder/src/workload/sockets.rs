//! The socket workload: sockets of every kind the recorder names (TCP over IPv4 and IPv6 at
//! both ends, listeners, v4-mapped, link-local with a scope, UDP bound and connected, raw
//! ICMP, AF_PACKET, netlink, Unix paths, abstract names and pairs), queried with getsockopt in
//! the states that matter (before and after connect(), during a non-blocking connect, a closed
//! and reused fd, EBADF, ENOTSOCK). Each call comes with the socket the workload itself knows
//! it was made on, from getsockname/getpeername, fstat and /proc/thread-self/ns/net: what the
//! host test and the VM matrix compare every recorded event with, field by field.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use format::{OwnedSocketRef, Socket};

use super::{Call, getsockopt};

const TCP_ESTABLISHED: u8 = 1;
const TCP_SYN_SENT: u8 = 2;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// A call and the socket it must be recorded with.
pub type Expected = (Call, OwnedSocketRef);

/// An error unless `ok`: the workload's own expectation of the kernel failed.
fn ensure(ok: bool, what: impl FnOnce() -> String) -> io::Result<()> {
    match ok {
        true => Ok(()),
        false => Err(io::Error::other(what())),
    }
}

/// A libc return value: an error with what failed and errno when negative.
fn sys(r: i32, what: &str) -> io::Result<i32> {
    match r {
        r if r < 0 => Err(io::Error::other(format!(
            "{what}: {}",
            io::Error::last_os_error()
        ))),
        r => Ok(r),
    }
}

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

fn ino(fd: RawFd) -> io::Result<u64> {
    // SAFETY: plain data, filled by fstat.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: valid out pointer.
    sys(unsafe { libc::fstat(fd, &mut st) }, "fstat")?;
    Ok(st.st_ino)
}

fn netns() -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino() as u32)
}

/// What the workload knows of an IPv4/IPv6 socket it made.
fn inet(fd: RawFd, sock_type: i32, protocol: i32, tcp_state: u8) -> io::Result<Socket> {
    let (local, _) = name(libc::getsockname, fd);
    let (family, local_addr, local_port, scope) = addr_of(&local);
    let (peer, peer_len) = name(libc::getpeername, fd);
    let (_, remote_addr, remote_port, peer_scope) = if peer_len > 0 {
        addr_of(&peer)
    } else {
        (0, [0; 16], 0, 0)
    };
    Ok(Socket {
        family,
        sock_type: sock_type as u16,
        protocol: protocol as u16,
        tcp_state,
        local_addr,
        local_port,
        remote_addr,
        remote_port,
        scope_id: scope.max(peer_scope),
        ino: ino(fd)?,
        netns: netns()?,
        ..Socket::default()
    })
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

fn unix(fd: RawFd, sock_type: i32) -> io::Result<Socket> {
    let (local, local_len) = name(libc::getsockname, fd);
    let (peer, peer_len) = name(libc::getpeername, fd);
    Ok(Socket {
        family: libc::AF_UNIX as u16,
        sock_type: sock_type as u16,
        unix_path: sun_path(&local, local_len),
        unix_peer: sun_path(&peer, peer_len),
        ino: ino(fd)?,
        netns: netns()?,
        ..Socket::default()
    })
}

fn raw_socket(family: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no pointer arguments.
    let fd = unsafe { libc::socket(family, ty, protocol) };
    sys(fd, &format!("socket({family}, {ty}, {protocol})"))?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bind` or `connect` to a sockaddr of type `T`.
fn to_addr<T>(
    f: unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32,
    fd: RawFd,
    sa: &T,
) -> i32 {
    // SAFETY: `sa` is a valid sockaddr of its type's size.
    unsafe {
        f(
            fd,
            (sa as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    }
}

fn loopback4(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    }
}

/// The calls made and the socket each must be recorded with, in order, all on one thread.
struct Expect(Vec<Expected>);

impl Expect {
    fn query(&mut self, label: &'static str, fd: RawFd, expected: OwnedSocketRef) {
        let call = getsockopt(label, fd, libc::SOL_SOCKET, libc::SO_TYPE, 4);
        self.0.push((call, expected));
    }

    fn socket(&mut self, label: &'static str, fd: RawFd, s: io::Result<Socket>) -> io::Result<()> {
        self.query(label, fd, OwnedSocketRef::Socket(s?));
        Ok(())
    }
}

fn tcp_and_udp(x: &mut Expect) -> io::Result<()> {
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let l4 = TcpListener::bind("127.0.0.1:0")?;
    let fd = l4.as_raw_fd();
    x.socket("tcp4 listener", fd, inet(fd, st, tcp, TCP_LISTEN))?;
    let c4 = TcpStream::connect(l4.local_addr()?)?;
    let (s4, _) = l4.accept()?;
    for (label, s) in [("tcp4 client", &c4), ("tcp4 server", &s4)] {
        let fd = s.as_raw_fd();
        x.socket(label, fd, inet(fd, st, tcp, TCP_ESTABLISHED))?;
    }
    let l6 = TcpListener::bind("[::1]:0")?;
    let fd = l6.as_raw_fd();
    x.socket("tcp6 listener", fd, inet(fd, st, tcp, TCP_LISTEN))?;
    let c6 = TcpStream::connect(l6.local_addr()?)?;
    let (s6, _) = l6.accept()?;
    for (label, s) in [("tcp6 client", &c6), ("tcp6 server", &s6)] {
        let fd = s.as_raw_fd();
        x.socket(label, fd, inet(fd, st, tcp, TCP_ESTABLISHED))?;
    }
    // An IPv6 socket talking to an IPv4 listener: v4-mapped addresses on both sides of it.
    let mapped = format!("[::ffff:127.0.0.1]:{}", l4.local_addr()?.port());
    let m = TcpStream::connect(mapped)?;
    let (_m_server, _) = l4.accept()?;
    let mi = inet(m.as_raw_fd(), st, tcp, TCP_ESTABLISHED)?;
    ensure(
        mi.remote_addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        || format!("the v4-mapped peer is {:?}", mi.remote_addr),
    )?;
    x.socket("tcp6 v4-mapped client", m.as_raw_fd(), Ok(mi))?;

    let (dg, udp) = (libc::SOCK_DGRAM, libc::IPPROTO_UDP);
    let u = UdpSocket::bind("127.0.0.1:0")?;
    x.socket("udp bound", u.as_raw_fd(), inet(u.as_raw_fd(), dg, udp, 0))?;
    let uc = UdpSocket::bind("[::1]:0")?;
    uc.connect("[::1]:9")?;
    let fd = uc.as_raw_fd();
    x.socket("udp6 connected", fd, inet(fd, dg, udp, 0))?;
    connect_states(x, l4.local_addr()?.port())
}

/// Queried before connect(), during a non-blocking connect to a listener whose accept queue
/// is full (its SYN is dropped: SYN_SENT), and after a connect() to `open_port` completed.
fn connect_states(x: &mut Expect, open_port: u16) -> io::Result<()> {
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let full = raw_socket(libc::AF_INET, st, 0)?;
    sys(to_addr(libc::bind, full.as_raw_fd(), &loopback4(0)), "bind")?;
    // SAFETY: no pointers.
    sys(unsafe { libc::listen(full.as_raw_fd(), 0) }, "listen")?;
    let (bound, _) = name(libc::getsockname, full.as_raw_fd());
    let full_port = addr_of(&bound).2;
    let queued = raw_socket(libc::AF_INET, st, 0)?;
    let to_full = loopback4(full_port);
    sys(
        to_addr(libc::connect, queued.as_raw_fd(), &to_full),
        "connect",
    )?;
    let before = raw_socket(libc::AF_INET, st | libc::SOCK_NONBLOCK, 0)?;
    let fd = before.as_raw_fd();
    x.socket("tcp before connect", fd, inet(fd, st, tcp, TCP_CLOSE))?;
    let r = to_addr(libc::connect, fd, &to_full);
    let errno = io::Error::last_os_error().raw_os_error();
    ensure((r, errno) == (-1, Some(libc::EINPROGRESS)), || {
        format!("a connect to a full accept queue gave {r} ({errno:?}), not EINPROGRESS")
    })?;
    // getpeername says ENOTCONN until the handshake completes; the recorded peer is where the
    // connect() goes, which is what a SYN_SENT socket is doing.
    let mut syn_sent = inet(fd, st, tcp, TCP_SYN_SENT)?;
    syn_sent.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    syn_sent.remote_port = full_port;
    x.socket("tcp syn_sent", fd, Ok(syn_sent))?;
    let later = raw_socket(libc::AF_INET, st, 0)?;
    let fd = later.as_raw_fd();
    x.socket("tcp not yet connected", fd, inet(fd, st, tcp, TCP_CLOSE))?;
    sys(to_addr(libc::connect, fd, &loopback4(open_port)), "connect")?;
    x.socket("tcp after connect", fd, inet(fd, st, tcp, TCP_ESTABLISHED))
}

/// A connected socket queried, closed, and its fd number taken by a socket connected to another
/// port: the second call must not get the first socket's identity from any cache.
fn reused_fd(x: &mut Expect) -> io::Result<()> {
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    let first = TcpStream::connect(a.local_addr()?)?;
    let fd = first.as_raw_fd();
    let first_id = inet(fd, st, tcp, TCP_ESTABLISHED)?;
    for _ in 0..3 {
        x.socket("reused fd: first", fd, Ok(first_id.clone()))?;
    }
    drop(first);
    let second = TcpStream::connect(b.local_addr()?)?;
    ensure(second.as_raw_fd() == fd, || {
        "the fd number was not reused".into()
    })?;
    let second_id = inet(fd, st, tcp, TCP_ESTABLISHED)?;
    ensure(
        (second_id.remote_port, second_id.ino) != (first_id.remote_port, first_id.ino),
        || "the second socket looks like the first".into(),
    )?;
    x.socket("reused fd: second", fd, Ok(second_id))
}

/// A packet socket's protocol is the ethertype it receives (packet_sock.num; its sk_protocol,
/// what SO_PROTOCOL returns, stays 0): the one socket() was given, then the one bind() set.
fn packet(x: &mut Expect) -> io::Result<()> {
    let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
    let packet = raw_socket(libc::AF_PACKET, libc::SOCK_RAW, eth_p_all.into())?;
    let fd = packet.as_raw_fd();
    let call = getsockopt("packet", fd, libc::SOL_SOCKET, libc::SO_PROTOCOL, 4);
    ensure((call.ret, &call.value[..]) == (0, &[0; 4][..]), || {
        format!(
            "SO_PROTOCOL of a packet socket: {} {:?}",
            call.ret, call.value
        )
    })?;
    let id = Socket {
        family: libc::AF_PACKET as u16,
        sock_type: libc::SOCK_RAW as u16,
        protocol: libc::ETH_P_ALL as u16,
        ino: ino(fd)?,
        netns: netns()?,
        ..Socket::default()
    };
    x.0.push((call, OwnedSocketRef::Socket(id.clone())));
    // SAFETY: plain data.
    let mut ll: libc::sockaddr_ll = unsafe { zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
    ll.sll_ifindex = 1;
    sys(to_addr(libc::bind, fd, &ll), "bind AF_PACKET to lo")?;
    let bound = Socket {
        protocol: libc::ETH_P_IPV6 as u16,
        ..id
    };
    x.socket("packet bound to ETH_P_IPV6", fd, Ok(bound))
}

fn netlink(x: &mut Expect) -> io::Result<()> {
    let nl = raw_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    // SAFETY: plain data.
    let mut sa: libc::sockaddr_nl = unsafe { zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    // Port id 0: the kernel chooses one.
    sys(to_addr(libc::bind, nl.as_raw_fd(), &sa), "bind AF_NETLINK")?;
    let (bound, _) = name(libc::getsockname, nl.as_raw_fd());
    // SAFETY: the family is AF_NETLINK.
    let portid = unsafe { &*(&raw const bound).cast::<libc::sockaddr_nl>() }.nl_pid;
    ensure(portid != 0, || "netlink port id 0 after bind".into())?;
    let id = Socket {
        family: libc::AF_NETLINK as u16,
        sock_type: libc::SOCK_RAW as u16,
        protocol: libc::NETLINK_ROUTE as u16,
        netlink_portid: portid,
        ino: ino(nl.as_raw_fd())?,
        netns: netns()?,
        ..Socket::default()
    };
    x.socket("netlink route", nl.as_raw_fd(), Ok(id))
}

fn unix_sockets(x: &mut Expect, dir: &Path) -> io::Result<()> {
    let st = libc::SOCK_STREAM;
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    let c = UnixStream::connect(&path)?;
    let (s, _) = l.accept()?;
    for (label, fd) in [
        ("unix listener", l.as_raw_fd()),
        ("unix client", c.as_raw_fd()),
        ("unix server", s.as_raw_fd()),
    ] {
        x.socket(label, fd, unix(fd, st))?;
    }
    let peer = unix(c.as_raw_fd(), st)?.unix_peer;
    ensure(peer == path.as_os_str().as_encoded_bytes(), || {
        format!("the client's peer is {peer:?}")
    })?;
    use std::os::linux::net::SocketAddrExt as _;
    let name = format!("gsot-test-{}-{}", std::process::id(), super::gettid());
    let abs = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
    let al = UnixListener::bind_addr(&abs)?;
    let ac = UnixStream::connect_addr(&abs)?;
    let al_id = unix(al.as_raw_fd(), st)?;
    ensure(al_id.unix_path == [b"\0", name.as_bytes()].concat(), || {
        format!("the abstract listener's name is {:?}", al_id.unix_path)
    })?;
    x.socket("unix abstract listener", al.as_raw_fd(), Ok(al_id))?;
    x.socket(
        "unix abstract client",
        ac.as_raw_fd(),
        unix(ac.as_raw_fd(), st),
    )?;
    let (p1, p2) = UnixStream::pair()?;
    x.socket("unix socketpair", p1.as_raw_fd(), unix(p1.as_raw_fd(), st))?;
    drop(p2);
    Ok(())
}

fn not_sockets(x: &mut Expect) -> io::Result<()> {
    let file = std::fs::File::open("/proc/self/status")?;
    x.query("ENOTSOCK", file.as_raw_fd(), OwnedSocketRef::NoSocket);
    x.query("EBADF", 999_999, OwnedSocketRef::NoSocket);
    x.query("EBADF negative", -1, OwnedSocketRef::NoSocket);
    Ok(())
}

/// Every socket of the workload but the link-local ones ([`link_local`]), on the calling
/// thread; a Unix socket is bound in `dir`.
pub fn run(dir: &Path) -> io::Result<Vec<Expected>> {
    let mut x = Expect(Vec::new());
    tcp_and_udp(&mut x)?;
    reused_fd(&mut x)?;
    let icmp = raw_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)?;
    let fd = icmp.as_raw_fd();
    let raw = (libc::SOCK_RAW, libc::IPPROTO_ICMP);
    x.socket("raw icmp", fd, inet(fd, raw.0, raw.1, 0))?;
    packet(&mut x)?;
    netlink(&mut x)?;
    unix_sockets(&mut x, dir)?;
    not_sockets(&mut x)?;
    Ok(x.0)
}

/// Brings `lo` of this thread's network namespace up and gives it `fe80::1/64`, with the
/// ioctls `ip` uses (no `ip` binary needed: the VM guests have only busybox).
fn link_local_lo() -> io::Result<()> {
    let s = raw_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0)?;
    // SAFETY: plain data.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *d = *c as libc::c_char;
    }
    // SAFETY: an ifreq naming an interface; the kernel fills in and reads its flags.
    unsafe {
        sys(
            libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr),
            "SIOCGIFFLAGS lo",
        )?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        sys(
            libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr),
            "SIOCSIFFLAGS lo up",
        )?;
    }
    let addr = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: "fe80::1"
                .parse::<std::net::Ipv6Addr>()
                .expect("an address")
                .octets(),
        },
        ifr6_prefixlen: 64,
        ifr6_ifindex: 1,
    };
    // SAFETY: an in6_ifreq for lo (ifindex 1 in every namespace).
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &addr) };
    sys(r, "SIOCSIFADDR fe80::1 on lo").map(drop)
}

/// `f` again while it fails with `kind`, for up to 2 s: what a new address may need first.
fn retry<T>(kind: io::ErrorKind, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    for _ in 0..100 {
        match f() {
            Err(e) if e.kind() == kind => std::thread::sleep(std::time::Duration::from_millis(20)),
            r => return r,
        }
    }
    f()
}

/// An IPv6 link-local connection with its scope, in a network namespace of its own (so the
/// address does not touch the machine's): this thread's netns is another inode too. Must run
/// on a thread of its own, which it leaves in that namespace.
pub fn link_local() -> io::Result<Vec<Expected>> {
    // SAFETY: unshare affects this thread only (CLONE_NEWNET on a thread of its own).
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    sys(r, "unshare(CLONE_NEWNET)")?;
    // No duplicate address detection in this namespace (what `ip addr add ... nodad` asks
    // for per address): a tentative address cannot be bound (6.12 was seen to run DAD on lo).
    // The file is this thread's namespace's; a kernel without it has no DAD to turn off.
    let _ = std::fs::write("/proc/sys/net/ipv6/conf/lo/accept_dad", "0");
    link_local_lo()?;
    let lo = std::net::SocketAddrV6::new("fe80::1".parse().expect("an address"), 0, 0, 1);
    let l = retry(io::ErrorKind::AddrNotAvailable, || TcpListener::bind(lo))?;
    // The route to a new address may lag the address by a moment (addrconf work after `up`).
    let c = retry(io::ErrorKind::NetworkUnreachable, || {
        TcpStream::connect(l.local_addr()?)
    })?;
    let (st, tcp) = (libc::SOCK_STREAM, libc::IPPROTO_TCP);
    let id = inet(c.as_raw_fd(), st, tcp, TCP_ESTABLISHED)?;
    ensure(id.scope_id == 1, || {
        format!("scope id {} for fe80::1 on lo", id.scope_id)
    })?;
    let mut x = Expect(Vec::new());
    x.socket("tcp6 link-local client", c.as_raw_fd(), Ok(id))?;
    let fd = l.as_raw_fd();
    x.socket(
        "tcp6 link-local listener",
        fd,
        inet(fd, st, tcp, TCP_LISTEN),
    )?;
    Ok(x.0)
}
