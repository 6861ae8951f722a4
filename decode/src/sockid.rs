//! Socket identity: the names and text forms of the socket behind a call (family, type,
//! protocol, TCP state, addresses, Unix names), the one list of its field names that events'
//! JSON and CSV, `--where`, `stats --by` and the Parquet columns share, and address/CIDR
//! matching for filters. Numbers are as the kernel has them (FORMAT.md 4.3); whatever this
//! module does not know is shown by its number, never refused.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::names;

pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const AF_NETLINK: u16 = 16;
pub const AF_PACKET: u16 = 17;

/// The socket fields, in output order, with what they mean: the names of the events' JSON and
/// CSV fields, of `--where` and `--by` fields and of the Parquet columns.
pub const SOCKET_FIELDS: &[(&str, &str)] = &[
    (
        "sock_family",
        "address family (AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, ...)",
    ),
    (
        "sock_type",
        "socket type (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, ...)",
    ),
    (
        "sock_protocol",
        "protocol number (IPPROTO_* for IP, NETLINK_* for netlink)",
    ),
    (
        "tcp_state",
        "TCP state (ESTABLISHED, LISTEN, SYN_SENT, ...); none when not TCP",
    ),
    (
        "local_addr",
        "local IP address (canonical text; fe80::1%2 with a scope)",
    ),
    ("local_port", "local port"),
    ("remote_addr", "remote IP address"),
    ("remote_port", "remote port"),
    (
        "unix_path",
        "Unix socket's bound name (@name when abstract)",
    ),
    ("unix_peer", "Unix socket peer's bound name"),
    ("sock_ino", "socket inode (socket:[N])"),
    ("netns", "network namespace inode"),
];

/// `AF_INET` for 2, the number as text for a family without a name.
pub fn family_name(v: u16) -> Cow<'static, str> {
    match names::address_family(v as i32) {
        Some(n) => n.into(),
        None => v.to_string().into(),
    }
}

/// The family for a name or number as a user gives it: `AF_INET`, `inet`, `inet6`, `unix`, `2`.
pub fn family_by_name(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    let want = if up.starts_with("AF_") {
        up
    } else {
        format!("AF_{up}")
    };
    let want = match want.as_str() {
        "AF_LOCAL" => "AF_UNIX".to_string(),
        _ => want,
    };
    names::ADDRESS_FAMILIES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(&want))
        .map(|&(v, _)| v as u16)
}

pub fn sock_type_name(v: u16) -> Cow<'static, str> {
    match names::find(names::SOCK_TYPES, v as i32) {
        Some(n) => n.into(),
        None => v.to_string().into(),
    }
}

pub fn sock_type_by_name(s: &str) -> Option<u16> {
    if let Ok(n) = s.parse::<u16>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    let want = if up.starts_with("SOCK_") {
        up
    } else {
        format!("SOCK_{up}")
    };
    names::SOCK_TYPES
        .iter()
        .find(|t| t.1 == want)
        .map(|t| t.0 as u16)
}

/// `ESTABLISHED` for 1; `None` for 0 (not TCP); the number as text for one without a name.
pub fn tcp_state_name(v: u8) -> Option<Cow<'static, str>> {
    match (v, crate::tcp::state_name(v)) {
        (0, _) => None,
        (_, Some(n)) => Some(n.into()),
        (v, None) => Some(v.to_string().into()),
    }
}

pub fn tcp_state_by_name(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    let want = up.strip_prefix("TCP_").unwrap_or(&up);
    (1..=13u8).find(|&v| crate::tcp::state_name(v) == Some(want))
}

/// `NETLINK_*` protocols (include/uapi/linux/netlink.h), without their prefix.
const NETLINK_PROTOCOLS: &[(u16, &str)] = &[
    (0, "ROUTE"),
    (1, "UNUSED"),
    (2, "USERSOCK"),
    (3, "FIREWALL"),
    (4, "SOCK_DIAG"),
    (5, "NFLOG"),
    (6, "XFRM"),
    (7, "SELINUX"),
    (8, "ISCSI"),
    (9, "AUDIT"),
    (10, "FIB_LOOKUP"),
    (11, "CONNECTOR"),
    (12, "NETFILTER"),
    (13, "IP6_FW"),
    (14, "DNRTMSG"),
    (15, "KOBJECT_UEVENT"),
    (16, "GENERIC"),
    (18, "SCSITRANSPORT"),
    (19, "ECRYPTFS"),
    (20, "RDMA"),
    (21, "CRYPTO"),
    (22, "SMC"),
];

pub fn netlink_protocol_name(v: u16) -> Cow<'static, str> {
    table_name(NETLINK_PROTOCOLS, v).unwrap_or_else(|| v.to_string().into())
}

fn table_name(table: &[(u16, &'static str)], v: u16) -> Option<Cow<'static, str>> {
    table.iter().find(|p| p.0 == v).map(|p| p.1.into())
}

/// Ethertypes (include/uapi/linux/if_ether.h) an AF_PACKET socket is commonly opened for.
const ETHERTYPES: &[(u16, &str)] = &[
    (0x0001, "ETH_P_802_3"),
    (0x0003, "ETH_P_ALL"),
    (0x0004, "ETH_P_802_2"),
    (0x0060, "ETH_P_LOOP"),
    (0x0800, "ETH_P_IP"),
    (0x0806, "ETH_P_ARP"),
    (0x8035, "ETH_P_RARP"),
    (0x8100, "ETH_P_8021Q"),
    (0x86DD, "ETH_P_IPV6"),
    (0x8863, "ETH_P_PPP_DISC"),
    (0x8864, "ETH_P_PPP_SES"),
    (0x888E, "ETH_P_PAE"),
    (0x88A8, "ETH_P_8021AD"),
    (0x88CC, "ETH_P_LLDP"),
];

/// `ETH_P_ALL` for 3 (an AF_PACKET socket's `protocol`, host order); `0x88b5` for an ethertype
/// without a name here.
pub fn ethertype_name(v: u16) -> Cow<'static, str> {
    table_name(ETHERTYPES, v).unwrap_or_else(|| format!("{v:#06x}").into())
}

/// A socket's fields as the `--where` socket tests read them ([`crate::expr::Pred::socket_matches`]),
/// borrowed from a file's socket table (analyze) or from a just-drained record (the recorder's
/// `--trigger`), so both judge a socket by the one implementation. Meanings as in FORMAT.md 4.3.
#[derive(Clone, Copy, Debug)]
pub struct SocketView<'a> {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub tcp_state: u8,
    pub local_addr: &'a [u8; 16],
    pub local_port: u16,
    pub remote_addr: &'a [u8; 16],
    pub remote_port: u16,
    pub ino: u64,
    pub netns: u32,
    pub unix_path: &'a [u8],
    pub unix_peer: &'a [u8],
}

/// Whether a family's addresses are IP addresses (and `local_addr`/`remote_addr` hold them).
pub fn is_ip(family: u16) -> bool {
    family == AF_INET || family == AF_INET6
}

/// An IP address in its canonical text form (`10.0.0.1`, `::1`, `::ffff:10.0.0.1`,
/// `fe80::1%2` with a scope), or `None` when the family has no IP addresses.
pub fn ip_text(family: u16, addr: &[u8; 16], scope_id: u32) -> Option<String> {
    match family {
        AF_INET => Some(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()),
        AF_INET6 => {
            let a = Ipv6Addr::from(*addr);
            Some(match scope_id {
                0 => a.to_string(),
                s => format!("{a}%{s}"),
            })
        }
        _ => None,
    }
}

/// `addr:port` as strace shows it: `10.0.0.1:80`, `[::1]:80`.
pub fn endpoint_text(out: &mut String, family: u16, addr: &[u8; 16], port: u16, scope_id: u32) {
    let a = ip_text(family, addr, scope_id).unwrap_or_default();
    let _ = match family {
        AF_INET6 => write!(out, "[{a}]:{port}"),
        _ => write!(out, "{a}:{port}"),
    };
}

/// A Unix socket name as text: a path as it is, an abstract name (leading NUL) as `@name`,
/// any byte that is not printable ASCII (further NULs included) as `\xNN`; `None` when empty.
pub fn unix_name_text(name: &[u8]) -> Option<String> {
    let (prefix, rest) = match name {
        [] => return None,
        [0, rest @ ..] => ("@", rest),
        all => ("", all),
    };
    let mut s = String::from(prefix);
    for &b in rest {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            b => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    Some(s)
}

/// An IP address or network as a user gives it: `10.0.0.1`, `10.0.0.0/8`, `::1`, `fe80::/10`.
/// An IPv4 network also matches IPv4 addresses held v4-mapped in an IPv6 socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub v6: bool,
    pub addr: [u8; 16],
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("expected an IP address or network (10.0.0.0/8, ::1), found {s:?}");
        let (a, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (v6, addr, max) = if let Ok(v4) = a.parse::<Ipv4Addr>() {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (false, b, 32)
        } else if let Ok(v6) = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<Ipv6Addr>()
        {
            (true, v6.octets(), 128)
        } else {
            return Err(bad());
        };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("a prefix of at most {max} bits, found {s:?}"));
        }
        Ok(Cidr { v6, addr, prefix })
    }

    /// Whether an address of `family` (FORMAT.md 4.3 layout) lies in this network.
    pub fn contains(&self, family: u16, addr: &[u8; 16]) -> bool {
        let (bytes, max): (&[u8], u8) = match (family, self.v6) {
            (AF_INET, false) => (&addr[..4], 32),
            (AF_INET6, true) => (&addr[..], 128),
            (AF_INET6, false) if addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] => {
                (&addr[12..], 32)
            }
            _ => return false,
        };
        debug_assert!(self.prefix <= max);
        let full = self.prefix as usize / 8;
        if bytes[..full] != self.addr[..full] {
            return false;
        }
        match self.prefix % 8 {
            0 => true,
            bits => {
                let mask = 0xffu8 << (8 - bits);
                bytes[full] & mask == self.addr[full] & mask
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_family_and_v4_mapped() {
        let v4 = |a: [u8; 4]| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a);
            b
        };
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(AF_INET, &v4([10, 1, 2, 3])));
        assert!(!net.contains(AF_INET, &v4([11, 0, 0, 1])));
        let mapped = "::ffff:10.9.9.9".parse::<Ipv6Addr>().unwrap().octets();
        assert!(net.contains(AF_INET6, &mapped));
        assert!(!net.contains(AF_UNIX, &v4([10, 0, 0, 1])));
        let ll = Cidr::parse("fe80::/10").unwrap();
        assert!(ll.contains(AF_INET6, &"fe80::1".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(!ll.contains(AF_INET6, &"fec0::1".parse::<Ipv6Addr>().unwrap().octets()));
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().prefix, 32);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.org").is_err());
    }

    #[test]
    fn names_and_numbers_both_ways() {
        assert_eq!(family_name(2), "AF_INET");
        assert_eq!(family_name(999), "999");
        assert_eq!(family_by_name("inet6"), Some(10));
        assert_eq!(family_by_name("AF_UNIX"), Some(1));
        assert_eq!(family_by_name("local"), Some(1));
        assert_eq!(tcp_state_name(10).as_deref(), Some("LISTEN"));
        assert_eq!(tcp_state_name(0), None);
        assert_eq!(tcp_state_name(99).as_deref(), Some("99"));
        assert_eq!(tcp_state_by_name("established"), Some(1));
        assert_eq!(sock_type_by_name("dgram"), Some(2));
        assert_eq!(unix_name_text(b"\0ab\x01"), Some("@ab\\x01".into()));
        assert_eq!(unix_name_text(b""), None);
        let a = "fe80::1".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(ip_text(AF_INET6, &a, 2).unwrap(), "fe80::1%2");
    }
}
