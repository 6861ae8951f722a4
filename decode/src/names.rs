//! Small constant tables shared by several levels: address families, socket types, IP
//! protocol numbers, path MTU discovery modes.

use super::Value;

/// A symbol if known, the number otherwise.
pub fn sym(name: Option<&'static str>, v: i32) -> Value {
    match name {
        Some(n) => Value::Sym(n.to_string()),
        None => Value::Int(v as i64),
    }
}

/// `AF_*` from include/linux/socket.h.
pub const ADDRESS_FAMILIES: &[(i32, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (3, "AF_AX25"),
    (4, "AF_IPX"),
    (5, "AF_APPLETALK"),
    (6, "AF_NETROM"),
    (7, "AF_BRIDGE"),
    (8, "AF_ATMPVC"),
    (9, "AF_X25"),
    (10, "AF_INET6"),
    (11, "AF_ROSE"),
    (12, "AF_DECnet"),
    (13, "AF_NETBEUI"),
    (14, "AF_SECURITY"),
    (15, "AF_KEY"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (18, "AF_ASH"),
    (19, "AF_ECONET"),
    (20, "AF_ATMSVC"),
    (21, "AF_RDS"),
    (22, "AF_SNA"),
    (23, "AF_IRDA"),
    (24, "AF_PPPOX"),
    (25, "AF_WANPIPE"),
    (26, "AF_LLC"),
    (27, "AF_IB"),
    (28, "AF_MPLS"),
    (29, "AF_CAN"),
    (30, "AF_TIPC"),
    (31, "AF_BLUETOOTH"),
    (32, "AF_IUCV"),
    (33, "AF_RXRPC"),
    (34, "AF_ISDN"),
    (35, "AF_PHONET"),
    (36, "AF_IEEE802154"),
    (37, "AF_CAIF"),
    (38, "AF_ALG"),
    (39, "AF_NFC"),
    (40, "AF_VSOCK"),
    (41, "AF_KCM"),
    (42, "AF_QIPCRTR"),
    (43, "AF_SMC"),
    (44, "AF_XDP"),
    (45, "AF_MCTP"),
];

pub fn address_family(v: i32) -> Option<&'static str> {
    find(ADDRESS_FAMILIES, v)
}

/// `SOCK_*` types (include/linux/net.h).
pub const SOCK_TYPES: &[(i32, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (6, "SOCK_DCCP"),
    (10, "SOCK_PACKET"),
];

/// `SOCK_*` types, with the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` bits a type may carry.
pub fn sock_type(v: i32) -> Value {
    let base = v & 0xf;
    let mut flags = Vec::new();
    match find(SOCK_TYPES, base) {
        Some(n) => flags.push(n.to_string()),
        None => return Value::Int(v as i64),
    }
    let mut rest = v & !0xf;
    for (bit, n) in [(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")] {
        if rest & bit != 0 {
            flags.push(n.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        flags.push(format!("{rest:#x}"));
    }
    if flags.len() == 1 {
        Value::Sym(flags.pop().expect("one element"))
    } else {
        Value::Flags(flags)
    }
}

/// `IPPROTO_*` from include/uapi/linux/in.h and in6.h.
pub const IP_PROTOCOLS: &[(i32, &str)] = &[
    (0, "IPPROTO_IP"),
    (1, "IPPROTO_ICMP"),
    (2, "IPPROTO_IGMP"),
    (4, "IPPROTO_IPIP"),
    (6, "IPPROTO_TCP"),
    (8, "IPPROTO_EGP"),
    (12, "IPPROTO_PUP"),
    (17, "IPPROTO_UDP"),
    (22, "IPPROTO_IDP"),
    (29, "IPPROTO_TP"),
    (33, "IPPROTO_DCCP"),
    (41, "IPPROTO_IPV6"),
    (43, "IPPROTO_ROUTING"),
    (44, "IPPROTO_FRAGMENT"),
    (46, "IPPROTO_RSVP"),
    (47, "IPPROTO_GRE"),
    (50, "IPPROTO_ESP"),
    (51, "IPPROTO_AH"),
    (58, "IPPROTO_ICMPV6"),
    (59, "IPPROTO_NONE"),
    (60, "IPPROTO_DSTOPTS"),
    (92, "IPPROTO_MTP"),
    (94, "IPPROTO_BEETPH"),
    (98, "IPPROTO_ENCAP"),
    (103, "IPPROTO_PIM"),
    (108, "IPPROTO_COMP"),
    (115, "IPPROTO_L2TP"),
    (132, "IPPROTO_SCTP"),
    (135, "IPPROTO_MH"),
    (136, "IPPROTO_UDPLITE"),
    (137, "IPPROTO_MPLS"),
    (143, "IPPROTO_ETHERNET"),
    (255, "IPPROTO_RAW"),
    (262, "IPPROTO_MPTCP"),
];

pub fn ip_protocol(v: i32) -> Option<&'static str> {
    find(IP_PROTOCOLS, v)
}

/// `IP_PMTUDISC_*` / `IPV6_PMTUDISC_*` (same numbers, different prefix).
pub fn pmtu_disc(v: i32, prefix: &str) -> Option<&'static str> {
    const IP: [&str; 6] = [
        "IP_PMTUDISC_DONT",
        "IP_PMTUDISC_WANT",
        "IP_PMTUDISC_DO",
        "IP_PMTUDISC_PROBE",
        "IP_PMTUDISC_INTERFACE",
        "IP_PMTUDISC_OMIT",
    ];
    const IP6: [&str; 6] = [
        "IPV6_PMTUDISC_DONT",
        "IPV6_PMTUDISC_WANT",
        "IPV6_PMTUDISC_DO",
        "IPV6_PMTUDISC_PROBE",
        "IPV6_PMTUDISC_INTERFACE",
        "IPV6_PMTUDISC_OMIT",
    ];
    let table = if prefix == "IPV6_" { &IP6 } else { &IP };
    usize::try_from(v).ok().and_then(|i| table.get(i)).copied()
}

pub(crate) fn find(table: &[(i32, &'static str)], v: i32) -> Option<&'static str> {
    table.iter().find(|e| e.0 == v).map(|e| e.1)
}
