//! Every socket level Linux defines (include/linux/socket.h `SOL_*`, plus the protocol numbers
//! used as levels), each with the option table of that level.

use super::{Opt, ip, ipv6, other, socket, tcp, udp};

/// A socket level: its number, the name shown, other names accepted on input, its options.
#[derive(Debug)]
pub struct Level {
    pub value: i32,
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub options: &'static [Opt],
}

const fn level(
    value: i32,
    name: &'static str,
    aliases: &'static [&'static str],
    options: &'static [Opt],
) -> Level {
    Level {
        value,
        name,
        aliases,
        options,
    }
}

const NONE: &[Opt] = &[];

/// The levels, by number. Names follow strace (`SOL_TCP`, not `IPPROTO_TCP`).
pub const LEVELS: &[Level] = &[
    level(0, "SOL_IP", &["IPPROTO_IP", "IP"], ip::OPTIONS),
    level(1, "SOL_SOCKET", &["SOCKET"], socket::OPTIONS),
    level(6, "SOL_TCP", &["IPPROTO_TCP", "TCP"], tcp::OPTIONS),
    level(17, "SOL_UDP", &["IPPROTO_UDP", "UDP"], udp::OPTIONS),
    level(40, "AF_VSOCK", &[], other::VSOCK),
    level(41, "SOL_IPV6", &["IPPROTO_IPV6", "IPV6"], ipv6::OPTIONS),
    level(
        58,
        "SOL_ICMPV6",
        &["IPPROTO_ICMPV6", "ICMPV6"],
        ipv6::ICMPV6_OPTIONS,
    ),
    level(100, "SOL_CAN_BASE", &[], NONE),
    level(101, "SOL_CAN_RAW", &["CAN_RAW"], other::CAN_RAW),
    level(106, "SOL_CAN_ISOTP", &["CAN_ISOTP"], other::CAN_ISOTP),
    level(107, "SOL_CAN_J1939", &["CAN_J1939"], other::CAN_J1939),
    level(132, "SOL_SCTP", &["IPPROTO_SCTP", "SCTP"], other::SCTP),
    level(
        136,
        "SOL_UDPLITE",
        &["IPPROTO_UDPLITE", "UDPLITE"],
        udp::UDPLITE_OPTIONS,
    ),
    level(255, "SOL_RAW", &["IPPROTO_RAW", "RAW"], other::RAW),
    level(256, "SOL_IPX", &[], NONE),
    level(257, "SOL_AX25", &[], NONE),
    level(258, "SOL_ATALK", &[], NONE),
    level(259, "SOL_NETROM", &[], NONE),
    level(260, "SOL_ROSE", &[], NONE),
    level(261, "SOL_DECNET", &[], NONE),
    level(262, "SOL_X25", &[], NONE),
    level(263, "SOL_PACKET", &["PACKET"], other::PACKET),
    level(264, "SOL_ATM", &[], NONE),
    level(265, "SOL_AAL", &[], NONE),
    level(266, "SOL_IRDA", &[], NONE),
    level(267, "SOL_NETBEUI", &[], NONE),
    level(268, "SOL_LLC", &[], other::LLC),
    level(269, "SOL_DCCP", &["DCCP"], other::DCCP),
    level(270, "SOL_NETLINK", &["NETLINK"], other::NETLINK),
    level(271, "SOL_TIPC", &["TIPC"], other::TIPC),
    level(272, "SOL_RXRPC", &[], other::RXRPC),
    level(273, "SOL_PPPOL2TP", &[], other::PPPOL2TP),
    level(274, "SOL_BLUETOOTH", &["BLUETOOTH"], other::BLUETOOTH),
    level(275, "SOL_PNPIPE", &[], NONE),
    level(276, "SOL_RDS", &[], other::RDS),
    level(277, "SOL_IUCV", &[], NONE),
    level(278, "SOL_CAIF", &[], NONE),
    level(279, "SOL_ALG", &["ALG"], other::ALG),
    level(280, "SOL_NFC", &[], NONE),
    level(281, "SOL_KCM", &["KCM"], other::KCM),
    level(282, "SOL_TLS", &["TLS"], other::TLS),
    level(283, "SOL_XDP", &["XDP"], other::XDP),
    level(284, "SOL_MPTCP", &["MPTCP"], other::MPTCP),
    level(285, "SOL_MCTP", &["MCTP"], other::MCTP),
    level(286, "SOL_SMC", &["SMC"], other::SMC),
    level(287, "SOL_VSOCK", &["VSOCK"], other::VSOCK),
];

/// Names programs use for an option that the tables show under another name, e.g. glibc's
/// `SO_RCVTIMEO` is `SO_RCVTIMEO_OLD` on 64-bit.
const OPTION_ALIASES: &[(i32, &str, i32)] = &[
    (1, "SO_RCVTIMEO", 20),
    (1, "SO_SNDTIMEO", 21),
    (1, "SO_TIMESTAMP", 29),
    (1, "SO_TIMESTAMPNS", 35),
    (1, "SO_TIMESTAMPING", 37),
    (1, "SO_ATTACH_FILTER", 26),
    (1, "SO_SECURITY_ENCRYPTION_NETWORK", 24),
    (132, "SCTP_DELAYED_ACK_TIME", 16),
    (132, "SCTP_DELAYED_ACK", 16),
];

pub fn find_level(v: i32) -> Option<&'static Level> {
    LEVELS
        .binary_search_by_key(&v, |l| l.value)
        .ok()
        .map(|i| &LEVELS[i])
}

/// `SOL_TCP` for 6; `None` for a number no level has.
pub fn level_name(v: i32) -> Option<&'static str> {
    find_level(v).map(|l| l.name)
}

/// The option `optname` of level `level`, from that level's table only.
pub fn option(level: i32, optname: i32) -> Option<&'static Opt> {
    find_level(level)?
        .options
        .iter()
        .find(|o| o.value == optname)
}

pub fn option_name(level: i32, optname: i32) -> Option<&'static str> {
    option(level, optname).map(|o| o.name)
}

/// The level named `s` (`SOL_TCP`, `IPPROTO_TCP`, `tcp`; case-insensitive).
pub fn level_by_name(s: &str) -> Option<i32> {
    LEVELS
        .iter()
        .find(|l| {
            l.name.eq_ignore_ascii_case(s) || l.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
        })
        .map(|l| l.value)
}

/// Every (level, optname) an option name stands for (case-insensitive). A name can exist at
/// several levels (`MCAST_JOIN_GROUP` at SOL_IP and SOL_IPV6).
pub fn option_by_name(s: &str) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = LEVELS
        .iter()
        .flat_map(|l| {
            l.options
                .iter()
                .filter(|o| o.name.eq_ignore_ascii_case(s))
                .map(|o| (l.value, o.value))
        })
        .collect();
    out.extend(
        OPTION_ALIASES
            .iter()
            .filter(|a| a.1.eq_ignore_ascii_case(s))
            .map(|a| (a.0, a.2)),
    );
    out
}

/// Parses a level as `--level` takes it: a name ([`level_by_name`]) or a number.
pub fn parse_level(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    level_by_name(s).ok_or_else(|| {
        let names: Vec<&str> = LEVELS.iter().map(|l| l.name).collect();
        format!(
            "unknown level {s:?}: give a number or one of {}",
            names.join(", ")
        )
    })
}

/// Resolves `--optname` (a name or a number) against `--level` if given: a (level, optname)
/// pair. Without a level, a name known at one level only sets that level too; a name known at
/// several asks for `--level`, naming them.
pub fn resolve_option(level: Option<i32>, s: &str) -> Result<(Option<i32>, i32), String> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok((level, n));
    }
    let found = option_by_name(s);
    let level_text = |l: i32| level_name(l).map_or_else(|| l.to_string(), str::to_string);
    match (level, found.as_slice()) {
        (_, []) => Err(format!(
            "unknown option name {s:?}: give a number or an option name such as SO_RCVBUF or TCP_INFO"
        )),
        (Some(l), _) => found
            .iter()
            .find(|&&(fl, _)| fl == l)
            .map(|&(_, o)| (Some(l), o))
            .ok_or_else(|| {
                let at: Vec<String> = found.iter().map(|&(fl, _)| level_text(fl)).collect();
                format!(
                    "option {s:?} is not an option of level {}: it is one of {}",
                    level_text(l),
                    at.join(", ")
                )
            }),
        (None, [(l, o)]) => Ok((Some(*l), *o)),
        (None, _) => {
            let at: Vec<String> = found.iter().map(|&(fl, _)| level_text(fl)).collect();
            Err(format!(
                "option {s:?} exists at several levels ({}): give --level",
                at.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_sorted_and_options_unique_per_level() {
        for w in LEVELS.windows(2) {
            assert!(w[0].value < w[1].value, "{} then {}", w[0].name, w[1].name);
        }
        for l in LEVELS {
            for (i, a) in l.options.iter().enumerate() {
                for b in &l.options[i + 1..] {
                    assert_ne!(a.value, b.value, "{}: {} and {}", l.name, a.name, b.name);
                    assert_ne!(a.name, b.name, "{}", l.name);
                }
            }
        }
    }

    #[test]
    fn an_option_number_is_named_only_within_its_level() {
        assert_eq!(option_name(6, 11), Some("TCP_INFO"));
        assert_eq!(option_name(1, 11), Some("SO_NO_CHECK"));
        assert_eq!(option_name(0, 11), Some("IP_RECVERR"));
        assert_eq!(option_name(6, 84), None);
        assert_eq!(option_name(12345, 1), None);
        assert_eq!(option_by_name("tcp_info"), vec![(6, 11)]);
        assert_eq!(level_by_name("IPPROTO_TCP"), Some(6));
        assert_eq!(level_by_name("sol_tcp"), Some(6));
    }

    #[test]
    fn option_names_resolve_with_and_without_a_level() {
        assert_eq!(parse_level("ipproto_tcp"), Ok(6));
        assert_eq!(parse_level("41"), Ok(41));
        assert!(parse_level("SOL_NOPE").unwrap_err().contains("SOL_SOCKET"));
        assert_eq!(resolve_option(None, "tcp_info"), Ok((Some(6), 11)));
        assert_eq!(resolve_option(None, "SO_RCVBUF"), Ok((Some(1), 8)));
        assert_eq!(resolve_option(Some(6), "TCP_INFO"), Ok((Some(6), 11)));
        assert_eq!(resolve_option(None, "11"), Ok((None, 11)));
        assert_eq!(
            resolve_option(None, "MCAST_JOIN_GROUP"),
            Err("option \"MCAST_JOIN_GROUP\" exists at several levels (SOL_IP, SOL_IPV6): give --level".into())
        );
        assert_eq!(
            resolve_option(Some(1), "TCP_INFO"),
            Err(
                "option \"TCP_INFO\" is not an option of level SOL_SOCKET: it is one of SOL_TCP"
                    .into()
            )
        );
        assert!(resolve_option(None, "SO_NOPE").is_err());
    }
}
