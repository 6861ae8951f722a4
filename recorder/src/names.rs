//! Socket option level and name spellings accepted by `--level` and `--optname`.

const LEVELS: &[(&str, i32)] = &[
    ("SOL_SOCKET", libc::SOL_SOCKET),
    ("IPPROTO_IP", libc::IPPROTO_IP),
    ("SOL_IP", libc::SOL_IP),
    ("IPPROTO_TCP", libc::IPPROTO_TCP),
    ("SOL_TCP", libc::SOL_TCP),
    ("IPPROTO_UDP", libc::IPPROTO_UDP),
    ("SOL_UDP", libc::SOL_UDP),
    ("IPPROTO_IPV6", libc::IPPROTO_IPV6),
    ("SOL_IPV6", libc::SOL_IPV6),
    ("IPPROTO_RAW", libc::IPPROTO_RAW),
    ("SOL_RAW", libc::SOL_RAW),
    ("IPPROTO_SCTP", libc::IPPROTO_SCTP),
    ("SOL_NETLINK", libc::SOL_NETLINK),
    ("SOL_PACKET", libc::SOL_PACKET),
];

const OPTNAMES: &[(&str, i32)] = &[
    ("SO_DEBUG", libc::SO_DEBUG),
    ("SO_REUSEADDR", libc::SO_REUSEADDR),
    ("SO_TYPE", libc::SO_TYPE),
    ("SO_ERROR", libc::SO_ERROR),
    ("SO_DONTROUTE", libc::SO_DONTROUTE),
    ("SO_BROADCAST", libc::SO_BROADCAST),
    ("SO_SNDBUF", libc::SO_SNDBUF),
    ("SO_RCVBUF", libc::SO_RCVBUF),
    ("SO_KEEPALIVE", libc::SO_KEEPALIVE),
    ("SO_OOBINLINE", libc::SO_OOBINLINE),
    ("SO_LINGER", libc::SO_LINGER),
    ("SO_REUSEPORT", libc::SO_REUSEPORT),
    ("SO_PEERCRED", libc::SO_PEERCRED),
    ("SO_RCVLOWAT", libc::SO_RCVLOWAT),
    ("SO_RCVTIMEO", libc::SO_RCVTIMEO),
    ("SO_SNDTIMEO", libc::SO_SNDTIMEO),
    ("SO_ACCEPTCONN", libc::SO_ACCEPTCONN),
    ("SO_PROTOCOL", libc::SO_PROTOCOL),
    ("SO_DOMAIN", libc::SO_DOMAIN),
    ("SO_MARK", libc::SO_MARK),
    ("SO_PEERSEC", libc::SO_PEERSEC),
    ("TCP_NODELAY", libc::TCP_NODELAY),
    ("TCP_MAXSEG", libc::TCP_MAXSEG),
    ("TCP_CORK", libc::TCP_CORK),
    ("TCP_KEEPIDLE", libc::TCP_KEEPIDLE),
    ("TCP_KEEPINTVL", libc::TCP_KEEPINTVL),
    ("TCP_KEEPCNT", libc::TCP_KEEPCNT),
    ("TCP_INFO", libc::TCP_INFO),
    ("TCP_CONGESTION", libc::TCP_CONGESTION),
    ("TCP_USER_TIMEOUT", libc::TCP_USER_TIMEOUT),
    ("TCP_FASTOPEN", libc::TCP_FASTOPEN),
    ("IP_TOS", libc::IP_TOS),
    ("IP_TTL", libc::IP_TTL),
    ("IP_MTU_DISCOVER", libc::IP_MTU_DISCOVER),
    ("IP_MTU", libc::IP_MTU),
    ("IPV6_V6ONLY", libc::IPV6_V6ONLY),
    ("IPV6_UNICAST_HOPS", libc::IPV6_UNICAST_HOPS),
    ("IPV6_TCLASS", libc::IPV6_TCLASS),
];

fn lookup(table: &[(&str, i32)], what: &str, s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    table
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|&(_, n)| n)
        .ok_or_else(|| {
            format!(
                "unknown {what} {s:?}: give a number or one of {}",
                names(table)
            )
        })
}

fn names(table: &[(&str, i32)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Parses `SOL_SOCKET`, `ipproto_tcp`, `6`, ...
pub fn parse_level(s: &str) -> Result<i32, String> {
    lookup(LEVELS, "level", s)
}

/// Parses `SO_RCVBUF`, `tcp_info`, `8`, ...
pub fn parse_optname(s: &str) -> Result<i32, String> {
    lookup(OPTNAMES, "optname", s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse_level("SOL_SOCKET"), Ok(1));
        assert_eq!(parse_level("ipproto_tcp"), Ok(6));
        assert_eq!(parse_level("41"), Ok(41));
        assert_eq!(parse_optname("TCP_INFO"), Ok(11));
        assert_eq!(parse_optname("so_rcvbuf"), Ok(8));
        assert!(parse_optname("SO_NOPE").unwrap_err().contains("SO_RCVBUF"));
    }
}
