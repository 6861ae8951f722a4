//! Decoding tests against bytes the running kernel returned: each test opens real sockets,
//! calls getsockopt through libc, and decodes what came back. (The machine kind is Linux 6.18
//! on x86_64, where `struct tcp_info` is 280 bytes; the tests check sizes only where the kernel
//! fixes them.)

use std::mem::size_of;

use analyze::decode::{Value, decode_value, errno, levels};

/// getsockopt with a buffer of `len` bytes; the bytes the kernel wrote, or the errno.
fn getsockopt(fd: i32, level: i32, opt: i32, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    let mut optlen = len as libc::socklen_t;
    // SAFETY: buf has `len` writable bytes and optlen says so.
    let r = unsafe { libc::getsockopt(fd, level, opt, buf.as_mut_ptr().cast(), &mut optlen) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(optlen as usize);
    Ok(buf)
}

fn setsockopt<T>(fd: i32, level: i32, opt: i32, v: &T) {
    // SAFETY: v points at size_of::<T>() readable bytes.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "setsockopt({level}, {opt}): {}",
        std::io::Error::last_os_error()
    );
}

fn socket(domain: i32, ty: i32, proto: i32) -> Fd {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    Fd(fd)
}

/// Closes the socket when dropped.
struct Fd(i32);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

/// Decodes what the kernel returned for (level, opt) and renders it as text.
fn decode(level: i32, opt: i32, bytes: &[u8]) -> (String, bool) {
    let d = decode_value(level, opt, bytes, true);
    (d.value.to_text(), d.truncated)
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    match v {
        Value::Struct(f) => {
            &f.iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no field {name} in {v:?}"))
                .1
        }
        v => panic!("not a struct: {v:?}"),
    }
}

/// A connected loopback TCP pair: (client, accepted server side).
fn tcp_pair() -> (Fd, Fd, Fd) {
    let l = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as u16;
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let alen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_in for these calls.
    unsafe {
        assert_eq!(
            libc::bind(l.0, (&addr as *const libc::sockaddr_in).cast(), alen),
            0
        );
        assert_eq!(libc::listen(l.0, 4), 0);
        let mut bound = addr;
        let mut blen = alen;
        assert_eq!(
            libc::getsockname(
                l.0,
                (&mut bound as *mut libc::sockaddr_in).cast(),
                &mut blen
            ),
            0
        );
        let c = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(
            libc::connect(c.0, (&bound as *const libc::sockaddr_in).cast(), alen),
            0
        );
        let s = libc::accept(l.0, std::ptr::null_mut(), std::ptr::null_mut());
        assert!(s >= 0);
        (l, c, Fd(s))
    }
}

#[test]
fn int_and_bool_options() {
    let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    let v: i32 = 65536;
    setsockopt(s.0, libc::SOL_SOCKET, libc::SO_RCVBUF, &v);
    let b = getsockopt(s.0, libc::SOL_SOCKET, libc::SO_RCVBUF, 4).unwrap();
    // The kernel doubles the requested size.
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_RCVBUF, &b),
        ("131072".into(), false)
    );
    setsockopt(s.0, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1i32);
    let b = getsockopt(s.0, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 4).unwrap();
    assert_eq!(decode(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &b).0, "1");
    setsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_NODELAY, &1i32);
    let b = getsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_NODELAY, 4).unwrap();
    assert_eq!(decode(libc::IPPROTO_TCP, libc::TCP_NODELAY, &b).0, "1");
    setsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &77i32);
    let b = getsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 4).unwrap();
    assert_eq!(decode(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &b).0, "77");
    setsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &1500i32);
    let b = getsockopt(s.0, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 4).unwrap();
    assert_eq!(
        decode(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &b).0,
        "1500"
    );
}

#[test]
fn so_linger() {
    let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    setsockopt(
        s.0,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        &libc::linger {
            l_onoff: 1,
            l_linger: 7,
        },
    );
    let b = getsockopt(s.0, libc::SOL_SOCKET, libc::SO_LINGER, 8).unwrap();
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_LINGER, &b),
        ("{l_onoff=1, l_linger=7}".into(), false)
    );
    // A 4-byte buffer: the kernel returns only l_onoff; decoded as far as it goes.
    let b = getsockopt(s.0, libc::SOL_SOCKET, libc::SO_LINGER, 4).unwrap();
    assert_eq!(b.len(), 4);
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_LINGER, &b),
        ("{l_onoff=1}".into(), true)
    );
}

#[test]
fn so_peercred() {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) },
        0
    );
    let (a, _b) = (Fd(fds[0]), Fd(fds[1]));
    let bytes = getsockopt(a.0, libc::SOL_SOCKET, libc::SO_PEERCRED, 12).unwrap();
    // SAFETY: plain syscalls.
    let (pid, uid, gid) = unsafe { (libc::getpid(), libc::getuid(), libc::getgid()) };
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_PEERCRED, &bytes),
        (format!("{{pid={pid}, uid={uid}, gid={gid}}}"), false)
    );
}

#[test]
fn so_error_is_an_errno_name() {
    // A non-blocking connect to a closed loopback port: SO_ERROR says ECONNREFUSED.
    let l = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as u16;
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let alen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let mut bound = addr;
    let mut blen = alen;
    // SAFETY: valid sockaddr_in buffers. Bind a port, then close it, so nobody listens there.
    unsafe {
        assert_eq!(
            libc::bind(l.0, (&addr as *const libc::sockaddr_in).cast(), alen),
            0
        );
        assert_eq!(
            libc::getsockname(
                l.0,
                (&mut bound as *mut libc::sockaddr_in).cast(),
                &mut blen
            ),
            0
        );
    }
    drop(l);
    let c = socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
    // SAFETY: valid sockaddr_in; poll on one fd.
    unsafe {
        libc::connect(c.0, (&bound as *const libc::sockaddr_in).cast(), alen);
        let mut p = libc::pollfd {
            fd: c.0,
            events: libc::POLLOUT,
            revents: 0,
        };
        libc::poll(&mut p, 1, 2000);
    }
    let b = getsockopt(c.0, libc::SOL_SOCKET, libc::SO_ERROR, 4).unwrap();
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_ERROR, &b).0,
        "ECONNREFUSED"
    );
    // Read again: the error was consumed, SO_ERROR is now 0.
    let b = getsockopt(c.0, libc::SOL_SOCKET, libc::SO_ERROR, 4).unwrap();
    assert_eq!(decode(libc::SOL_SOCKET, libc::SO_ERROR, &b).0, "0");
}

#[test]
fn rcvtimeo_old_and_new_layouts() {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    setsockopt(
        s.0,
        libc::SOL_SOCKET,
        libc::SO_RCVTIMEO,
        &libc::timeval {
            tv_sec: 5,
            tv_usec: 500_000,
        },
    );
    // The kernel keeps timeouts in jiffies; half a second is exact for every HZ.
    setsockopt(
        s.0,
        libc::SOL_SOCKET,
        libc::SO_SNDTIMEO,
        &libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        },
    );
    // glibc's SO_RCVTIMEO on 64-bit is SO_RCVTIMEO_OLD (20): a 16-byte struct timeval.
    assert_eq!(libc::SO_RCVTIMEO, 20);
    let b = getsockopt(s.0, libc::SOL_SOCKET, 20, 16).unwrap();
    assert_eq!(b.len(), 16);
    assert_eq!(
        decode(libc::SOL_SOCKET, 20, &b),
        ("{tv_sec=5, tv_usec=500000}".into(), false)
    );
    assert_eq!(
        levels::option_name(libc::SOL_SOCKET, 20),
        Some("SO_RCVTIMEO_OLD")
    );
    let b = getsockopt(s.0, libc::SOL_SOCKET, 21, 16).unwrap();
    assert_eq!(decode(libc::SOL_SOCKET, 21, &b).0, "{tv_sec=2, tv_usec=0}");
    // SO_RCVTIMEO_NEW (66): struct __kernel_sock_timeval, two s64.
    let b = getsockopt(s.0, libc::SOL_SOCKET, 66, 16).unwrap();
    assert_eq!(b.len(), 16);
    assert_eq!(
        decode(libc::SOL_SOCKET, 66, &b),
        ("{tv_sec=5, tv_usec=500000}".into(), false)
    );
    assert_eq!(
        levels::option_name(libc::SOL_SOCKET, 67),
        Some("SO_SNDTIMEO_NEW")
    );
    let b = getsockopt(s.0, libc::SOL_SOCKET, 67, 16).unwrap();
    assert_eq!(decode(libc::SOL_SOCKET, 67, &b).0, "{tv_sec=2, tv_usec=0}");
}

#[test]
fn domain_type_protocol_are_names() {
    for (domain, ty, proto, want) in [
        (
            libc::AF_INET,
            libc::SOCK_STREAM,
            0,
            ("AF_INET", "SOCK_STREAM", "IPPROTO_TCP"),
        ),
        (
            libc::AF_INET6,
            libc::SOCK_DGRAM,
            0,
            ("AF_INET6", "SOCK_DGRAM", "IPPROTO_UDP"),
        ),
        (
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET,
            0,
            ("AF_UNIX", "SOCK_SEQPACKET", "IPPROTO_IP"),
        ),
        (
            libc::AF_INET,
            libc::SOCK_RAW,
            libc::IPPROTO_ICMP,
            ("AF_INET", "SOCK_RAW", "IPPROTO_ICMP"),
        ),
    ] {
        let s = socket(domain, ty, proto);
        let get = |opt| {
            let b = getsockopt(s.0, libc::SOL_SOCKET, opt, 4).unwrap();
            decode(libc::SOL_SOCKET, opt, &b).0
        };
        assert_eq!(get(libc::SO_DOMAIN), want.0);
        assert_eq!(get(libc::SO_TYPE), want.1);
        assert_eq!(get(libc::SO_PROTOCOL), want.2);
    }
}

#[test]
fn so_cookie_is_a_u64() {
    let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    let b = getsockopt(s.0, libc::SOL_SOCKET, libc::SO_COOKIE, 8).unwrap();
    assert_eq!(b.len(), 8);
    let cookie = u64::from_le_bytes(b[..8].try_into().unwrap());
    assert!(cookie > 0);
    assert_eq!(
        decode(libc::SOL_SOCKET, libc::SO_COOKIE, &b),
        (cookie.to_string(), false)
    );
}

#[test]
fn tcp_info_every_length() {
    let (_l, c, _s) = tcp_pair();
    let full = getsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_INFO, 512).unwrap();
    // Whatever this kernel's size, it ends on a field boundary of the layout we know (or goes
    // past it): decoded completely, never marked truncated.
    assert!(full.len() >= 104, "{}", full.len());
    let d = decode_value(libc::IPPROTO_TCP, libc::TCP_INFO, &full, true);
    assert!(!d.truncated, "{} bytes", full.len());
    assert_eq!(field(&d.value, "state"), &Value::Sym("ESTABLISHED".into()));
    assert_eq!(field(&d.value, "ca_state"), &Value::Sym("Open".into()));
    // Loopback: the MSS is what the kernel says; check against the raw field at offset 16.
    let snd_mss = u32::from_le_bytes(full[16..20].try_into().unwrap()) as u64;
    assert_eq!(field(&d.value, "snd_mss"), &Value::UInt(snd_mss));
    let rtt = u32::from_le_bytes(full[68..72].try_into().unwrap()) as u64;
    assert_eq!(field(&d.value, "rtt"), &Value::Unit(rtt, "us"));
    if full.len() >= 280 {
        assert!(matches!(field(&d.value, "options2"), Value::Hex(_)));
    }
    // Older callers' (and kernels') sizes: 104 (2.6), 232 (5.4), 248 (6.7).
    for (len, last) in [
        (104usize, "total_retrans"),
        (232, "snd_wnd"),
        (248, "total_rto_time"),
    ] {
        let b = getsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_INFO, len).unwrap();
        assert_eq!(b.len(), len);
        let d = decode_value(libc::IPPROTO_TCP, libc::TCP_INFO, &b, true);
        assert!(!d.truncated, "{len}");
        match &d.value {
            Value::Struct(f) => assert_eq!(f.last().unwrap().0, last, "{len}"),
            v => panic!("{v:?}"),
        }
    }
    // A buffer that cuts a field: decoded up to it and marked.
    let b = getsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_INFO, 106).unwrap();
    let d = decode_value(libc::IPPROTO_TCP, libc::TCP_INFO, &b, true);
    assert!(d.truncated);
    match &d.value {
        Value::Struct(f) => assert_eq!(f.last().unwrap().0, "total_retrans"),
        v => panic!("{v:?}"),
    }
    // A value the recorder's snap length cut is marked too.
    assert!(decode_value(libc::IPPROTO_TCP, libc::TCP_INFO, &full, false).truncated);
}

#[test]
fn tcp_congestion_and_ulp_are_strings() {
    let (_l, c, _s) = tcp_pair();
    let b = getsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_CONGESTION, 16).unwrap();
    let want = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    assert_eq!(
        decode(libc::IPPROTO_TCP, libc::TCP_CONGESTION, &b).0,
        format!("\"{}\"", want.trim())
    );
    // No ULP attached: the kernel returns an empty name.
    let b = getsockopt(c.0, libc::IPPROTO_TCP, 31, 16).unwrap();
    assert_eq!(levels::option_name(libc::IPPROTO_TCP, 31), Some("TCP_ULP"));
    assert_eq!(decode(libc::IPPROTO_TCP, 31, &b).0, "\"\"");
    setsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_CONGESTION, b"reno\0");
    let b = getsockopt(c.0, libc::IPPROTO_TCP, libc::TCP_CONGESTION, 16).unwrap();
    assert_eq!(
        decode(libc::IPPROTO_TCP, libc::TCP_CONGESTION, &b).0,
        "\"reno\""
    );
}

#[test]
fn ip_tos_ttl_mtu_and_v6only() {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    setsockopt(s.0, libc::IPPROTO_IP, libc::IP_TOS, &0xb9i32);
    let b = getsockopt(s.0, libc::IPPROTO_IP, libc::IP_TOS, 4).unwrap();
    // 0xb9 = DSCP 46 (EF), ECN 01 = ECT(1).
    assert_eq!(
        decode(libc::IPPROTO_IP, libc::IP_TOS, &b).0,
        "{tos=0xb9, dscp=46, ecn=ECT(1)}"
    );
    // A 1-byte buffer: the kernel returns the TOS as a single byte.
    let b = getsockopt(s.0, libc::IPPROTO_IP, libc::IP_TOS, 1).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        decode(libc::IPPROTO_IP, libc::IP_TOS, &b).0,
        "{tos=0xb9, dscp=46, ecn=ECT(1)}"
    );
    setsockopt(s.0, libc::IPPROTO_IP, libc::IP_TTL, &42i32);
    let b = getsockopt(s.0, libc::IPPROTO_IP, libc::IP_TTL, 4).unwrap();
    assert_eq!(decode(libc::IPPROTO_IP, libc::IP_TTL, &b).0, "42");
    // IP_MTU needs a connected socket: loopback's MTU.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as u16;
    addr.sin_port = 9u16.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    // SAFETY: valid sockaddr_in.
    let r = unsafe {
        libc::connect(
            s.0,
            (&addr as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(r, 0);
    let b = getsockopt(s.0, libc::IPPROTO_IP, libc::IP_MTU, 4).unwrap();
    let lo_mtu: i32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The route MTU, capped at IP_MAX_MTU (65535).
    assert_eq!(
        decode(libc::IPPROTO_IP, libc::IP_MTU, &b).0,
        lo_mtu.min(65535).to_string()
    );
    let b = getsockopt(s.0, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, 4).unwrap();
    assert!(
        decode(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &b)
            .0
            .starts_with("IP_PMTUDISC_")
    );

    let s6 = socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    setsockopt(s6.0, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &1i32);
    let b = getsockopt(s6.0, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 4).unwrap();
    assert_eq!(decode(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &b).0, "1");
    setsockopt(s6.0, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &9i32);
    let b = getsockopt(s6.0, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 4).unwrap();
    assert_eq!(
        decode(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &b).0,
        "9"
    );
}

#[test]
fn errors_from_the_kernel_have_names() {
    let s = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    // An option SOL_TCP does not have.
    let e = getsockopt(s.0, libc::IPPROTO_TCP, 9999, 4).unwrap_err();
    assert_eq!(errno::name(e), Some("ENOPROTOOPT"));
    // Not a socket.
    let e = getsockopt(
        0.max(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) }),
        libc::SOL_SOCKET,
        libc::SO_TYPE,
        4,
    )
    .unwrap_err();
    assert_eq!(errno::name(e), Some("ENOTSOCK"));
    // A closed descriptor.
    let e = getsockopt(100_000, libc::SOL_SOCKET, libc::SO_TYPE, 4).unwrap_err();
    assert_eq!(errno::name(e), Some("EBADF"));
    // A negative length.
    let mut optlen: libc::socklen_t = u32::MAX;
    let mut v = 0i32;
    // SAFETY: v is writable; the kernel rejects the length before writing.
    let r = unsafe {
        libc::getsockopt(
            s.0,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut v as *mut i32).cast(),
            &mut optlen,
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        errno::name(std::io::Error::last_os_error().raw_os_error().unwrap()),
        Some("EINVAL")
    );
}

#[test]
fn errno_table_matches_libc() {
    let known = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EINVAL, "EINVAL"),
        (libc::EMFILE, "EMFILE"),
        (libc::EPIPE, "EPIPE"),
        (libc::EDEADLK, "EDEADLK"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ELOOP, "ELOOP"),
        (libc::ENOMSG, "ENOMSG"),
        (libc::ENODATA, "ENODATA"),
        (libc::EPROTO, "EPROTO"),
        (libc::EOVERFLOW, "EOVERFLOW"),
        (libc::EILSEQ, "EILSEQ"),
        (libc::ENOTSOCK, "ENOTSOCK"),
        (libc::EDESTADDRREQ, "EDESTADDRREQ"),
        (libc::EMSGSIZE, "EMSGSIZE"),
        (libc::EPROTOTYPE, "EPROTOTYPE"),
        (libc::ENOPROTOOPT, "ENOPROTOOPT"),
        (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
        (libc::EADDRINUSE, "EADDRINUSE"),
        (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (libc::ENETDOWN, "ENETDOWN"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::ENOBUFS, "ENOBUFS"),
        (libc::EISCONN, "EISCONN"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
        (libc::EALREADY, "EALREADY"),
        (libc::EINPROGRESS, "EINPROGRESS"),
        (libc::ESTALE, "ESTALE"),
        (libc::EDQUOT, "EDQUOT"),
        (libc::ECANCELED, "ECANCELED"),
        (libc::EOWNERDEAD, "EOWNERDEAD"),
        (libc::ERFKILL, "ERFKILL"),
        (libc::EHWPOISON, "EHWPOISON"),
    ];
    for (n, name) in known {
        assert_eq!(errno::name(n), Some(name), "{n}");
    }
    // Every Linux errno from 1 to 133 but the two aliases' gaps (41, 58) has a name, and the
    // messages match the C library's strerror for the common ones.
    for n in 1..=133 {
        if n == 41 || n == 58 {
            assert_eq!(errno::name(n), None);
        } else {
            assert!(errno::name(n).is_some(), "{n}");
        }
    }
    for n in [
        libc::EINVAL,
        libc::ECONNREFUSED,
        libc::ENOPROTOOPT,
        libc::EBADF,
    ] {
        // SAFETY: strerror returns a valid C string.
        let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }
            .to_string_lossy()
            .into_owned();
        assert_eq!(errno::message(n), Some(msg.as_str()));
    }
}

#[test]
fn level_and_option_constants_match_libc() {
    for (v, name) in [
        (libc::SOL_SOCKET, "SOL_SOCKET"),
        (libc::SOL_IP, "SOL_IP"),
        (libc::SOL_TCP, "SOL_TCP"),
        (libc::SOL_UDP, "SOL_UDP"),
        (libc::SOL_IPV6, "SOL_IPV6"),
        (libc::SOL_ICMPV6, "SOL_ICMPV6"),
        (libc::SOL_RAW, "SOL_RAW"),
        (libc::SOL_PACKET, "SOL_PACKET"),
        (libc::SOL_NETLINK, "SOL_NETLINK"),
        (libc::SOL_TIPC, "SOL_TIPC"),
        (libc::SOL_BLUETOOTH, "SOL_BLUETOOTH"),
        (libc::SOL_ALG, "SOL_ALG"),
        (libc::SOL_TLS, "SOL_TLS"),
        (libc::SOL_XDP, "SOL_XDP"),
        (libc::SOL_DCCP, "SOL_DCCP"),
        (libc::SOL_LLC, "SOL_LLC"),
        (libc::SOL_NFC, "SOL_NFC"),
        (libc::SOL_RDS, "SOL_RDS"),
        (libc::SOL_ATM, "SOL_ATM"),
        (libc::SOL_X25, "SOL_X25"),
    ] {
        assert_eq!(levels::level_name(v), Some(name));
    }
    for (level, opt, name) in [
        (libc::SOL_SOCKET, libc::SO_REUSEPORT, "SO_REUSEPORT"),
        (libc::SOL_SOCKET, libc::SO_PEERSEC, "SO_PEERSEC"),
        (libc::SOL_SOCKET, libc::SO_MARK, "SO_MARK"),
        (libc::SOL_SOCKET, libc::SO_BUSY_POLL, "SO_BUSY_POLL"),
        (libc::SOL_SOCKET, libc::SO_INCOMING_CPU, "SO_INCOMING_CPU"),
        (libc::SOL_SOCKET, libc::SO_ZEROCOPY, "SO_ZEROCOPY"),
        (libc::SOL_TCP, libc::TCP_INFO, "TCP_INFO"),
        (libc::SOL_TCP, libc::TCP_FASTOPEN, "TCP_FASTOPEN"),
        (libc::SOL_TCP, libc::TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT"),
        (libc::SOL_TCP, libc::TCP_ULP, "TCP_ULP"),
        (libc::SOL_IP, libc::IP_MTU_DISCOVER, "IP_MTU_DISCOVER"),
        (libc::SOL_IP, libc::IP_TRANSPARENT, "IP_TRANSPARENT"),
        (libc::SOL_IP, libc::IP_MULTICAST_ALL, "IP_MULTICAST_ALL"),
        (libc::SOL_IPV6, libc::IPV6_TCLASS, "IPV6_TCLASS"),
        (libc::SOL_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"),
        (libc::SOL_UDP, libc::UDP_GRO, "UDP_GRO"),
        (libc::SOL_UDP, libc::UDP_SEGMENT, "UDP_SEGMENT"),
        (
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            "PACKET_STATISTICS",
        ),
        (libc::SOL_PACKET, libc::PACKET_FANOUT, "PACKET_FANOUT"),
        (libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, "NETLINK_EXT_ACK"),
        (libc::SOL_TLS, libc::TLS_TX, "TLS_TX"),
        (libc::SOL_XDP, libc::XDP_STATISTICS, "XDP_STATISTICS"),
        (
            libc::SOL_ALG,
            libc::ALG_SET_AEAD_AUTHSIZE,
            "ALG_SET_AEAD_AUTHSIZE",
        ),
        (libc::IPPROTO_SCTP, libc::SCTP_STATUS, "SCTP_STATUS"),
    ] {
        assert_eq!(levels::option_name(level, opt), Some(name), "{level}/{opt}");
    }
    // The same number at another level is never given this level's name.
    assert_eq!(
        levels::option_name(libc::SOL_SOCKET, libc::TCP_INFO),
        Some("SO_NO_CHECK")
    );
    assert_eq!(levels::option_name(libc::SOL_TCP, libc::SO_COOKIE), None);
}

#[test]
fn udp_and_packet_options() {
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    setsockopt(s.0, libc::SOL_UDP, libc::UDP_SEGMENT, &1400i32);
    let b = getsockopt(s.0, libc::SOL_UDP, libc::UDP_SEGMENT, 4).unwrap();
    assert_eq!(decode(libc::SOL_UDP, libc::UDP_SEGMENT, &b).0, "1400");
    // Packet sockets need CAP_NET_RAW; the tests run as root on the project's machines.
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd >= 0 {
        let p = Fd(fd);
        let b = getsockopt(p.0, libc::SOL_PACKET, libc::PACKET_STATISTICS, 8).unwrap();
        assert_eq!(
            decode(libc::SOL_PACKET, libc::PACKET_STATISTICS, &b).0,
            "{tp_packets=0, tp_drops=0}"
        );
        let b = getsockopt(p.0, libc::SOL_PACKET, libc::PACKET_VERSION, 4).unwrap();
        assert_eq!(
            decode(libc::SOL_PACKET, libc::PACKET_VERSION, &b).0,
            "TPACKET_V1"
        );
    }
}

#[test]
fn unknown_options_are_hex() {
    let (text, trunc) = decode(libc::SOL_TCP, 4242, &[0xde, 0xad]);
    assert_eq!(text, "\"\\xde\\xad\"");
    assert!(!trunc);
    let (text, _) = decode(9999, 1, &[1, 2, 3]);
    assert_eq!(text, "\"\\x01\\x02\\x03\"");
}
