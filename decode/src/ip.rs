//! SOL_IP / IPPROTO_IP (0): options from include/uapi/linux/in.h.

use super::Kind::*;
use super::{Opt, Value, opt};

pub const OPTIONS: &[Opt] = &[
    opt(1, "IP_TOS", Tos),
    opt(2, "IP_TTL", Int),
    opt(3, "IP_HDRINCL", Bool),
    opt(4, "IP_OPTIONS", Hex),
    opt(5, "IP_ROUTER_ALERT", Bool),
    opt(6, "IP_RECVOPTS", Bool),
    opt(7, "IP_RETOPTS", Bool),
    opt(8, "IP_PKTINFO", Bool),
    opt(9, "IP_PKTOPTIONS", Hex),
    opt(10, "IP_MTU_DISCOVER", PmtuDisc),
    opt(11, "IP_RECVERR", Bool),
    opt(12, "IP_RECVTTL", Bool),
    opt(13, "IP_RECVTOS", Bool),
    opt(14, "IP_MTU", Int),
    opt(15, "IP_FREEBIND", Bool),
    opt(16, "IP_IPSEC_POLICY", Hex),
    opt(17, "IP_XFRM_POLICY", Hex),
    opt(18, "IP_PASSSEC", Bool),
    opt(19, "IP_TRANSPARENT", Bool),
    opt(20, "IP_ORIGDSTADDR", Bool),
    opt(21, "IP_MINTTL", Int),
    opt(22, "IP_NODEFRAG", Bool),
    opt(23, "IP_CHECKSUM", Bool),
    opt(24, "IP_BIND_ADDRESS_NO_PORT", Bool),
    opt(25, "IP_RECVFRAGSIZE", Bool),
    opt(26, "IP_RECVERR_RFC4884", Bool),
    opt(32, "IP_MULTICAST_IF", InAddr),
    opt(33, "IP_MULTICAST_TTL", Int),
    opt(34, "IP_MULTICAST_LOOP", Bool),
    opt(35, "IP_ADD_MEMBERSHIP", Hex),
    opt(36, "IP_DROP_MEMBERSHIP", Hex),
    opt(37, "IP_UNBLOCK_SOURCE", Hex),
    opt(38, "IP_BLOCK_SOURCE", Hex),
    opt(39, "IP_ADD_SOURCE_MEMBERSHIP", Hex),
    opt(40, "IP_DROP_SOURCE_MEMBERSHIP", Hex),
    opt(41, "IP_MSFILTER", Hex),
    opt(42, "MCAST_JOIN_GROUP", Hex),
    opt(43, "MCAST_BLOCK_SOURCE", Hex),
    opt(44, "MCAST_UNBLOCK_SOURCE", Hex),
    opt(45, "MCAST_LEAVE_GROUP", Hex),
    opt(46, "MCAST_JOIN_SOURCE_GROUP", Hex),
    opt(47, "MCAST_LEAVE_SOURCE_GROUP", Hex),
    opt(48, "MCAST_MSFILTER", Hex),
    opt(49, "IP_MULTICAST_ALL", Bool),
    opt(50, "IP_UNICAST_IF", Int),
    opt(51, "IP_LOCAL_PORT_RANGE", PortRange),
    opt(52, "IP_PROTOCOL", Protocol),
    // Netfilter's getsockopt interface lives at this level too (uapi/linux/netfilter_ipv4).
    opt(64, "IPT_SO_GET_INFO", Hex),
    opt(65, "IPT_SO_GET_ENTRIES", Hex),
    opt(66, "IPT_SO_GET_REVISION_MATCH", Hex),
    opt(67, "IPT_SO_GET_REVISION_TARGET", Hex),
    opt(80, "SO_ORIGINAL_DST", Hex),
];

/// IP_TOS: the DSCP (upper 6 bits) and ECN (lower 2 bits) of the TOS byte.
pub fn tos_value(v: i32) -> Value {
    const ECN: [&str; 4] = ["Not-ECT", "ECT(1)", "ECT(0)", "CE"];
    let v = v as u32;
    if v > 0xff {
        return Value::Hex(v as u64);
    }
    Value::Struct(vec![
        ("tos", Value::Hex(v as u64)),
        ("dscp", Value::UInt((v >> 2) as u64)),
        ("ecn", Value::Sym(ECN[(v & 3) as usize].to_string())),
    ])
}
