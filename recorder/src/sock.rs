//! From the socket fields the eBPF program read (`format::raw::RawSocket`, the kernel's own
//! representation) to the identity an event carries (`format::Socket`).

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context as _, Result, bail};
use format::raw::{RAW_HEADER_SIZE, RawEventHeader, RawSocket, SOCK_NONE, SOCK_PRESENT};
use format::{OwnedSocketRef, Socket};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;
const IPPROTO_TCP: u16 = 6;
const SOCK_STREAM: u16 = 1;

/// A drained record's option value and the identity of its socket (whose AF_UNIX names
/// follow the value), each cut to the bytes the record has.
pub fn of_record<'a>(h: &RawEventHeader, record: &'a [u8]) -> (&'a [u8], OwnedSocketRef) {
    let (value, names) = record_parts(h, record);
    (value, from_raw(&h.socket, names))
}

/// A drained record's option value and its AF_UNIX name bytes, which follow the value, each
/// cut to the bytes the record has.
pub fn record_parts<'a>(h: &RawEventHeader, record: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let value_end = (RAW_HEADER_SIZE + h.value_len as usize).min(record.len());
    let names_end = (value_end + h.socket.names_len()).min(record.len());
    (
        &record[RAW_HEADER_SIZE.min(value_end)..value_end],
        &record[value_end..names_end],
    )
}

/// The identity of a record's socket. `names` are the AF_UNIX name bytes the record carries
/// after its value (`raw.names_len()` of them, or fewer if the record was cut short).
pub fn from_raw(raw: &RawSocket, names: &[u8]) -> OwnedSocketRef {
    match raw.status {
        SOCK_PRESENT => OwnedSocketRef::Socket(socket(raw, names)),
        SOCK_NONE => OwnedSocketRef::NoSocket,
        _ => OwnedSocketRef::NotRecorded,
    }
}

fn socket(raw: &RawSocket, names: &[u8]) -> Socket {
    let inet = matches!(raw.family, AF_INET | AF_INET6);
    let mut s = Socket {
        family: raw.family,
        sock_type: raw.sock_type,
        // What SO_PROTOCOL says, but for AF_PACKET (whose sk_protocol is 0) the ethertype.
        protocol: match raw.family {
            AF_PACKET => u16::from_be(raw.protocol),
            _ => raw.protocol,
        },
        ino: raw.ino,
        netns: raw.netns,
        ..Socket::default()
    };
    if inet {
        if raw.protocol == IPPROTO_TCP && raw.sock_type == SOCK_STREAM {
            s.tcp_state = raw.state;
        }
        s.local_addr = raw.local_addr;
        s.remote_addr = raw.remote_addr;
        s.local_port = raw.local_port;
        s.remote_port = u16::from_be(raw.remote_port_be);
        if raw.family == AF_INET6 && (needs_scope(&raw.local_addr) || needs_scope(&raw.remote_addr))
        {
            s.scope_id = raw.bound_dev_if;
        }
    }
    match raw.family {
        AF_NETLINK => s.netlink_portid = raw.netlink_portid,
        AF_UNIX => {
            let path_len = usize::from(raw.unix_path_len).min(names.len());
            let (path, rest) = names.split_at(path_len);
            let peer = &rest[..usize::from(raw.unix_peer_len).min(rest.len())];
            s.unix_path = unix_name(path);
            s.unix_peer = unix_name(peer);
        }
        _ => {}
    }
    s
}

/// A `sun_path` as the kernel keeps it: a path name with its terminating NUL (dropped here),
/// or an abstract name (leading NUL), whose every byte counts.
fn unix_name(b: &[u8]) -> Vec<u8> {
    match b {
        [0, ..] => b.to_vec(),
        _ => b.split(|&c| c == 0).next().unwrap_or_default().to_vec(),
    }
}

/// What the kernel's `__ipv6_addr_needs_scope_id` says: link-local unicast, and multicast of
/// interface- or link-local scope, are meaningful only with an interface.
fn needs_scope(a: &[u8; 16]) -> bool {
    let link_local = a[0] == 0xfe && a[1] & 0xc0 == 0x80;
    let mcast_local = a[0] == 0xff && matches!(a[1] & 0x0f, 1 | 2);
    link_local || mcast_local
}

/// `--remote-addr`: an address or a network, IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or an address alone (all its bits).
    pub fn parse(s: &str) -> Result<Cidr> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a
            .parse()
            .with_context(|| format!("{s:?}: expected an IPv4 or IPv6 address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => bail!("{s:?}: the prefix length must be 0..={max}"),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// The network and its mask as the program compares them: four words of an IPv6 address
    /// in memory order (an IPv4 network as its v4-mapped form, which the program also makes of
    /// IPv4 peers).
    pub fn words(&self) -> ([u32; 4], [u32; 4]) {
        let (v6, prefix) = match self.addr {
            IpAddr::V4(a) => (a.to_ipv6_mapped(), 96 + u32::from(self.prefix)),
            IpAddr::V6(a) => (a, u32::from(self.prefix)),
        };
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        let net = (u128::from(v6) & mask).to_be_bytes();
        let mask = mask.to_be_bytes();
        let word = |b: &[u8; 16], i: usize| {
            u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
        };
        (
            std::array::from_fn(|i| word(&net, i)),
            std::array::from_fn(|i| word(&mask, i)),
        )
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `--family`: the AF_* number of `inet`, `inet6` or `unix`.
pub fn parse_family(s: &str) -> Result<u16> {
    match s {
        "inet" => Ok(AF_INET),
        "inet6" => Ok(AF_INET6),
        "unix" => Ok(AF_UNIX),
        _ => bail!("{s:?}: expected inet, inet6 or unix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(family: u16) -> RawSocket {
        RawSocket {
            family,
            status: SOCK_PRESENT,
            ..RawSocket::default()
        }
    }

    #[test]
    fn cidrs_become_v4_mapped_words() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        let (net, mask) = c.words();
        let b = |w: [u32; 4]| w.iter().flat_map(|w| w.to_ne_bytes()).collect::<Vec<u8>>();
        assert_eq!(
            b(net),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0, 0]
        );
        assert_eq!(b(mask)[8..], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        let (_, mask) = Cidr::parse("::/0").unwrap().words();
        assert_eq!(mask, [0; 4]);
        let c = Cidr::parse("2001:db8::1").unwrap();
        assert_eq!((c.prefix, c.to_string().as_str()), (128, "2001:db8::1/128"));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn statuses_map_to_the_three_answers() {
        let none = RawSocket {
            status: SOCK_NONE,
            ..RawSocket::default()
        };
        assert_eq!(from_raw(&none, &[]), OwnedSocketRef::NoSocket);
        assert_eq!(
            from_raw(&RawSocket::default(), &[]),
            OwnedSocketRef::NotRecorded
        );
    }

    #[test]
    fn inet_fields_and_tcp_state_only_where_they_mean_something() {
        let mut r = raw(AF_INET6);
        r.sock_type = SOCK_STREAM;
        r.protocol = IPPROTO_TCP;
        r.state = 10;
        r.local_port = 8080;
        r.remote_port_be = 443u16.to_be();
        r.local_addr[..2].copy_from_slice(&[0xfe, 0x80]);
        r.bound_dev_if = 3;
        let OwnedSocketRef::Socket(s) = from_raw(&r, &[]) else {
            panic!()
        };
        assert_eq!(
            (s.tcp_state, s.local_port, s.remote_port, s.scope_id),
            (10, 8080, 443, 3)
        );
        // UDP keeps sk_state too (TCP_ESTABLISHED when connected): not a TCP state.
        r.sock_type = 2;
        r.protocol = 17;
        r.local_addr = [0; 16];
        let OwnedSocketRef::Socket(s) = from_raw(&r, &[]) else {
            panic!()
        };
        assert_eq!((s.tcp_state, s.scope_id), (0, 0));
        // A packet socket's port fields are not ports.
        let mut p = raw(17);
        p.local_port = 3;
        let OwnedSocketRef::Socket(s) = from_raw(&p, &[]) else {
            panic!()
        };
        assert_eq!(s.local_port, 0);
    }

    #[test]
    fn unix_names_split_and_keep_abstract_bytes() {
        let mut r = raw(AF_UNIX);
        r.unix_path_len = 5;
        r.unix_peer_len = 3;
        let OwnedSocketRef::Socket(s) = from_raw(&r, b"/a/b\0\0x\0") else {
            panic!()
        };
        assert_eq!(
            (s.unix_path.as_slice(), s.unix_peer.as_slice()),
            (&b"/a/b"[..], &b"\0x\0"[..])
        );
        // A record cut short keeps what it has.
        let OwnedSocketRef::Socket(s) = from_raw(&r, b"/a") else {
            panic!()
        };
        assert_eq!((s.unix_path.as_slice(), s.unix_peer.len()), (&b"/a"[..], 0));
    }
}
