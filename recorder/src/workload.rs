//! The built-in demo workload: TCP, UDP, IPv6 and Unix sockets calling a spread of options,
//! some of them failing on purpose. Every call's inputs and results are returned, so the tests
//! can check a recording against what the calls themselves saw.

use std::ffi::c_void;
use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

pub mod sockets;

/// One getsockopt call as the caller saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// What the call is for, e.g. `tcp SO_RCVBUF`.
    pub label: &'static str,
    pub tid: u32,
    pub fd: i32,
    pub level: i32,
    pub optname: i32,
    pub optval_ptr: u64,
    pub optlen_ptr: u64,
    /// `*optlen` before the call.
    pub optlen_in: i32,
    /// `*optlen` after the call.
    pub optlen_out: i32,
    /// 0 or `-errno`.
    pub ret: i32,
    /// The value bytes the kernel wrote (`optlen_out` bytes), empty if the call failed.
    pub value: Vec<u8>,
}

fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Calls getsockopt with a `buf_len`-byte buffer and records everything about the call.
pub fn getsockopt(
    label: &'static str,
    fd: RawFd,
    level: i32,
    optname: i32,
    buf_len: usize,
) -> Call {
    let mut buf = vec![0u8; buf_len.max(1)];
    raw_getsockopt(
        label,
        fd,
        level,
        optname,
        buf.as_mut_ptr().cast(),
        buf_len as i32,
        Some(&buf),
    )
}

/// The general form: any `optval` pointer and any `optlen`, for the failing cases.
/// `buf` is the memory `optval` points into when it is valid, to copy the value from.
fn raw_getsockopt(
    label: &'static str,
    fd: RawFd,
    level: i32,
    optname: i32,
    optval: *mut c_void,
    optlen_in: i32,
    buf: Option<&[u8]>,
) -> Call {
    let mut optlen: libc::socklen_t = 0;
    // SAFETY: optval is either a buffer of at least optlen_in bytes or a deliberately invalid
    // pointer, which the kernel checks (EFAULT) rather than dereferences blindly; its bytes
    // are only read back when `buf` says it is one.
    unsafe {
        getsockopt_at(
            label,
            fd,
            level,
            optname,
            optval.cast(),
            (&raw mut optlen).cast(),
            optlen_in,
            buf.is_some(),
        )
    }
}

const INT: usize = std::mem::size_of::<libc::c_int>();

/// A call with a buffer of its own: label, fd, level, optname, buffer length.
type Plain = (&'static str, RawFd, i32, i32, usize);

fn plain_calls(calls: &mut Vec<Call>, table: &[Plain]) {
    for &(label, fd, level, optname, len) in table {
        calls.push(getsockopt(label, fd, level, optname, len));
    }
}

/// Runs the whole workload once and returns every call it made, in order.
pub fn run() -> io::Result<Vec<Call>> {
    use libc::{IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, SOL_SOCKET};
    let mut calls = Vec::new();

    // TCP: a listener, a connected pair, and a refused connect.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    let (l, c, s) = (listener.as_raw_fd(), client.as_raw_fd(), server.as_raw_fd());
    #[rustfmt::skip]
    plain_calls(&mut calls, &[
        ("tcp listener SO_RCVBUF", l, SOL_SOCKET, libc::SO_RCVBUF, INT),
        ("tcp SO_RCVBUF", c, SOL_SOCKET, libc::SO_RCVBUF, INT),
        ("tcp SO_SNDBUF", c, SOL_SOCKET, libc::SO_SNDBUF, INT),
        ("tcp SO_TYPE", c, SOL_SOCKET, libc::SO_TYPE, INT),
        ("tcp TCP_INFO", c, IPPROTO_TCP, libc::TCP_INFO, 512),
        ("tcp TCP_CONGESTION", s, IPPROTO_TCP, libc::TCP_CONGESTION, 16),
        ("tcp TCP_NODELAY", c, IPPROTO_TCP, libc::TCP_NODELAY, INT),
        ("tcp TCP_MAXSEG", s, IPPROTO_TCP, libc::TCP_MAXSEG, INT),
    ]);
    calls.push(refused_connect_so_error()?);

    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let u = udp.as_raw_fd();
    #[rustfmt::skip]
    plain_calls(&mut calls, &[
        ("udp SO_RCVBUF", u, SOL_SOCKET, libc::SO_RCVBUF, INT),
        ("udp IP_TTL", u, IPPROTO_IP, libc::IP_TTL, INT),
        ("udp IP_TOS", u, IPPROTO_IP, libc::IP_TOS, INT),
    ]);
    // IPv6 (skipped where the kernel has no IPv6).
    if let Ok(v6) = UdpSocket::bind("[::1]:0") {
        let v = v6.as_raw_fd();
        plain_calls(
            &mut calls,
            &[("udp6 IPV6_V6ONLY", v, IPPROTO_IPV6, libc::IPV6_V6ONLY, INT)],
        );
    }
    let (a, _b) = UnixStream::pair()?;
    let cred = std::mem::size_of::<libc::ucred>();
    // Failures, one per errno; the pipe is closed when the function returns, early or not.
    let (pipe_r, _pipe_w) = io::pipe()?;
    #[rustfmt::skip]
    plain_calls(&mut calls, &[
        ("unix SO_PEERCRED", a.as_raw_fd(), SOL_SOCKET, libc::SO_PEERCRED, cred),
        ("EBADF fd -1", -1, SOL_SOCKET, libc::SO_RCVBUF, INT),
        ("ENOTSOCK pipe", pipe_r.as_raw_fd(), SOL_SOCKET, libc::SO_RCVBUF, INT),
    ]);
    calls.push(raw_getsockopt(
        "EFAULT bad optval",
        c,
        SOL_SOCKET,
        libc::SO_RCVBUF,
        // Page zero is never mapped.
        8 as *mut c_void,
        INT as i32,
        None,
    ));
    let mut buf = [0u8; INT];
    calls.push(raw_getsockopt(
        "EINVAL negative optlen",
        c,
        SOL_SOCKET,
        libc::SO_RCVBUF,
        buf.as_mut_ptr().cast(),
        -1,
        Some(&buf),
    ));
    plain_calls(
        &mut calls,
        &[("ENOPROTOOPT unknown optname", c, SOL_SOCKET, 9999, INT)],
    );
    placed_calls(c, &mut calls)?;
    Ok(calls)
}

/// Calls with `optval` and `optlen` placed in one buffer: the layouts where the exit program
/// fetches `*optlen` and the value with a single read of the memory around both (optlen just
/// after or before the value, or inside it), and the ones where it cannot (too far apart, a
/// value larger than that read, the read running into an unmapped page).
fn placed_calls(fd: RawFd, calls: &mut Vec<Call>) -> io::Result<()> {
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // Two pages, the second made inaccessible: memory that ends where the first page does.
    // SAFETY: a fresh anonymous mapping, unmapped below.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mem = mem.cast::<u8>();
    // SAFETY: the second page of the mapping made above.
    if unsafe { libc::mprotect(mem.add(page).cast(), page, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (sol, tcp) = (libc::SOL_SOCKET, libc::IPPROTO_TCP);
    let int = INT as i32;
    for (label, level, optname, optval_at, optlen_at, optlen_in) in [
        ("optlen right after value", sol, libc::SO_RCVBUF, 0, 4, int),
        (
            "optlen right before value",
            sol,
            libc::SO_RCVBUF,
            68,
            64,
            int,
        ),
        (
            "optlen 56 bytes before value",
            sol,
            libc::SO_SNDBUF,
            184,
            128,
            int,
        ),
        (
            "optlen 100 bytes before value",
            sol,
            libc::SO_SNDBUF,
            300,
            200,
            int,
        ),
        (
            "optlen 60 bytes after value",
            sol,
            libc::SO_TYPE,
            400,
            460,
            int,
        ),
        (
            "optlen on the value itself",
            sol,
            libc::SO_RCVBUF,
            512,
            512,
            int,
        ),
        (
            "TCP_INFO right after optlen",
            tcp,
            libc::TCP_INFO,
            1028,
            1024,
            512,
        ),
        (
            "ENOPROTOOPT, optlen after value",
            sol,
            9999,
            1600,
            1604,
            int,
        ),
        // The memory around both runs into the inaccessible page; each alone is readable.
        (
            "optlen at end of readable memory",
            sol,
            libc::SO_RCVBUF,
            page - 8,
            page - 4,
            int,
        ),
    ] {
        // SAFETY: every offset leaves room for the value and optlen inside the first page.
        calls.push(unsafe {
            getsockopt_at(
                label,
                fd,
                level,
                optname,
                mem.add(optval_at),
                mem.add(optlen_at),
                optlen_in,
                true,
            )
        });
    }
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(mem.cast(), 2 * page) };
    Ok(())
}

/// getsockopt with `optval` and `optlen` where the caller put them; the value bytes are read
/// back if `value_readable` and the call succeeded.
///
/// # Safety
/// `optlen` must be valid for 4 bytes and, if `value_readable`, `optval` for `optlen_in` bytes
/// (they may overlap).
#[allow(clippy::too_many_arguments)]
unsafe fn getsockopt_at(
    label: &'static str,
    fd: RawFd,
    level: i32,
    optname: i32,
    optval: *mut u8,
    optlen: *mut u8,
    optlen_in: i32,
    value_readable: bool,
) -> Call {
    let optlen = optlen.cast::<libc::socklen_t>();
    // SAFETY: valid for 4 bytes (the caller's promise), maybe unaligned.
    unsafe { optlen.write_unaligned(optlen_in as libc::socklen_t) };
    // SAFETY: as promised by the caller.
    let r = unsafe { libc::getsockopt(fd, level, optname, optval.cast(), optlen) };
    let ret = if r == 0 {
        0
    } else {
        -io::Error::last_os_error().raw_os_error().unwrap_or(0)
    };
    // SAFETY: as above.
    let optlen_out = unsafe { optlen.read_unaligned() } as i32;
    let value = if value_readable && ret == 0 && optlen_out > 0 {
        // SAFETY: the kernel wrote optlen_out <= optlen_in bytes at optval. Read after the
        // call, as the recorder reads them: where optlen overlaps the value, its new bytes.
        unsafe { std::slice::from_raw_parts(optval, optlen_out as usize).to_vec() }
    } else {
        Vec::new()
    };
    Call {
        label,
        tid: gettid(),
        fd,
        level,
        optname,
        optval_ptr: optval as u64,
        optlen_ptr: optlen as u64,
        optlen_in,
        optlen_out,
        ret,
        value,
    }
}

/// A non-blocking connect to a port nobody listens on; once it fails, SO_ERROR reports
/// ECONNREFUSED (and clears it).
fn refused_connect_so_error() -> io::Result<Call> {
    let closed_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns; closed when `owned` drops.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: closed_port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: addr is a valid sockaddr_in of the given length.
    unsafe {
        libc::connect(
            fd,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 1000) };
    let call = getsockopt(
        "tcp SO_ERROR after refused connect",
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        INT,
    );
    drop(owned);
    Ok(call)
}

/// Calls getsockopt(SO_RCVBUF) `n` times as fast as possible; returns how many succeeded.
pub fn flood(fd: RawFd, n: u64) -> u64 {
    flood_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, n)
}

/// Calls getsockopt(`level`, `optname`) with an int buffer `n` times as fast as possible;
/// returns how many succeeded.
pub fn flood_option(fd: RawFd, level: i32, optname: i32, n: u64) -> u64 {
    let mut ok = 0;
    for _ in 0..n {
        let mut v: libc::c_int = 0;
        let mut len = INT as libc::socklen_t;
        // SAFETY: v and len are valid for the duration of the call.
        let r = unsafe { libc::getsockopt(fd, level, optname, (&raw mut v).cast(), &mut len) };
        ok += u64::from(r == 0);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_makes_the_calls_the_tests_rely_on() {
        let calls = run().unwrap();
        let by = |label: &str| calls.iter().find(|c| c.label == label).unwrap();
        assert_eq!(by("tcp SO_TYPE").value, (libc::SOCK_STREAM).to_ne_bytes());
        assert_eq!(
            by("tcp SO_ERROR after refused connect").value,
            libc::ECONNREFUSED.to_ne_bytes()
        );
        assert!(by("tcp TCP_INFO").optlen_out > 200);
        let cc = by("tcp TCP_CONGESTION");
        assert_eq!((cc.ret, cc.optlen_in), (0, 16));
        assert!(cc.value[0].is_ascii_lowercase(), "{:?}", cc.value);
        assert_eq!(by("EBADF fd -1").ret, -libc::EBADF);
        assert_eq!(by("ENOTSOCK pipe").ret, -libc::ENOTSOCK);
        assert_eq!(by("EFAULT bad optval").ret, -libc::EFAULT);
        assert_eq!(by("EINVAL negative optlen").ret, -libc::EINVAL);
        assert_eq!(by("ENOPROTOOPT unknown optname").ret, -libc::ENOPROTOOPT);
        let cred = &by("unix SO_PEERCRED").value;
        assert_eq!(cred[..4], std::process::id().to_ne_bytes());
    }
}
