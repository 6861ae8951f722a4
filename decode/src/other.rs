//! Option tables of the less common levels (SCTP, RAW, PACKET, NETLINK, TLS, MPTCP, XDP, ALG,
//! TIPC, VSOCK, KCM, SMC, DCCP, BLUETOOTH, CAN, MCTP, ...), from their uapi headers, and the
//! decoders of their structured values.

use super::Kind::*;
use super::{Decoded, Opt, StructBuilder, Value, opt, trailing};

/// SOL_SCTP (132), include/uapi/linux/sctp.h.
pub const SCTP: &[Opt] = &[
    opt(0, "SCTP_RTOINFO", Hex),
    opt(1, "SCTP_ASSOCINFO", Hex),
    opt(2, "SCTP_INITMSG", Hex),
    opt(3, "SCTP_NODELAY", Bool),
    opt(4, "SCTP_AUTOCLOSE", Int),
    opt(5, "SCTP_SET_PEER_PRIMARY_ADDR", Hex),
    opt(6, "SCTP_PRIMARY_ADDR", Hex),
    opt(7, "SCTP_ADAPTATION_LAYER", Hex),
    opt(8, "SCTP_DISABLE_FRAGMENTS", Bool),
    opt(9, "SCTP_PEER_ADDR_PARAMS", Hex),
    opt(10, "SCTP_DEFAULT_SEND_PARAM", Hex),
    opt(11, "SCTP_EVENTS", Hex),
    opt(12, "SCTP_I_WANT_MAPPED_V4_ADDR", Bool),
    opt(13, "SCTP_MAXSEG", Hex),
    opt(14, "SCTP_STATUS", Hex),
    opt(15, "SCTP_GET_PEER_ADDR_INFO", Hex),
    opt(16, "SCTP_DELAYED_SACK", Hex),
    opt(17, "SCTP_CONTEXT", Hex),
    opt(18, "SCTP_FRAGMENT_INTERLEAVE", Int),
    opt(19, "SCTP_PARTIAL_DELIVERY_POINT", U32),
    opt(20, "SCTP_MAX_BURST", Hex),
    opt(21, "SCTP_AUTH_CHUNK", Hex),
    opt(22, "SCTP_HMAC_IDENT", Hex),
    opt(23, "SCTP_AUTH_KEY", Hex),
    opt(24, "SCTP_AUTH_ACTIVE_KEY", Hex),
    opt(25, "SCTP_AUTH_DELETE_KEY", Hex),
    opt(26, "SCTP_PEER_AUTH_CHUNKS", Hex),
    opt(27, "SCTP_LOCAL_AUTH_CHUNKS", Hex),
    opt(28, "SCTP_GET_ASSOC_NUMBER", U32),
    opt(29, "SCTP_GET_ASSOC_ID_LIST", Hex),
    opt(30, "SCTP_AUTO_ASCONF", Bool),
    opt(31, "SCTP_PEER_ADDR_THLDS", Hex),
    opt(32, "SCTP_RECVRCVINFO", Bool),
    opt(33, "SCTP_RECVNXTINFO", Bool),
    opt(34, "SCTP_DEFAULT_SNDINFO", Hex),
    opt(35, "SCTP_AUTH_DEACTIVATE_KEY", Hex),
    opt(36, "SCTP_REUSE_PORT", Bool),
    opt(37, "SCTP_PEER_ADDR_THLDS_V2", Hex),
    opt(100, "SCTP_SOCKOPT_BINDX_ADD", Hex),
    opt(101, "SCTP_SOCKOPT_BINDX_REM", Hex),
    opt(102, "SCTP_SOCKOPT_PEELOFF", Hex),
    opt(103, "SCTP_GET_PEER_ADDRS_NUM_OLD", Hex),
    opt(104, "SCTP_GET_PEER_ADDRS_OLD", Hex),
    opt(105, "SCTP_GET_LOCAL_ADDRS_NUM_OLD", Hex),
    opt(106, "SCTP_GET_LOCAL_ADDRS_OLD", Hex),
    opt(107, "SCTP_SOCKOPT_CONNECTX_OLD", Hex),
    opt(108, "SCTP_GET_PEER_ADDRS", Hex),
    opt(109, "SCTP_GET_LOCAL_ADDRS", Hex),
    opt(110, "SCTP_SOCKOPT_CONNECTX", Hex),
    opt(111, "SCTP_SOCKOPT_CONNECTX3", Hex),
    opt(112, "SCTP_GET_ASSOC_STATS", Hex),
    opt(113, "SCTP_PR_SUPPORTED", Hex),
    opt(114, "SCTP_DEFAULT_PRINFO", Hex),
    opt(115, "SCTP_PR_ASSOC_STATUS", Hex),
    opt(116, "SCTP_PR_STREAM_STATUS", Hex),
    opt(117, "SCTP_RECONFIG_SUPPORTED", Hex),
    opt(118, "SCTP_ENABLE_STREAM_RESET", Hex),
    opt(119, "SCTP_RESET_STREAMS", Hex),
    opt(120, "SCTP_RESET_ASSOC", Hex),
    opt(121, "SCTP_ADD_STREAMS", Hex),
    opt(122, "SCTP_SOCKOPT_PEELOFF_FLAGS", Hex),
    opt(123, "SCTP_STREAM_SCHEDULER", Hex),
    opt(124, "SCTP_STREAM_SCHEDULER_VALUE", Hex),
    opt(125, "SCTP_INTERLEAVING_SUPPORTED", Hex),
    opt(126, "SCTP_SENDMSG_CONNECT", Bool),
    opt(127, "SCTP_EVENT", Hex),
    opt(128, "SCTP_ASCONF_SUPPORTED", Hex),
    opt(129, "SCTP_AUTH_SUPPORTED", Hex),
    opt(130, "SCTP_ECN_SUPPORTED", Hex),
    opt(131, "SCTP_EXPOSE_POTENTIALLY_FAILED_STATE", Hex),
    opt(132, "SCTP_REMOTE_UDP_ENCAPS_PORT", Hex),
    opt(133, "SCTP_PLPMTUD_PROBE_INTERVAL", Hex),
];

/// SOL_RAW (255): ICMP_FILTER on IPv4 raw sockets (uapi/linux/icmp.h), IPV6_CHECKSUM on IPv6
/// raw sockets (net/ipv6/raw.c handles it at this level).
pub const RAW: &[Opt] = &[opt(1, "ICMP_FILTER", Mask32), opt(7, "IPV6_CHECKSUM", Int)];

/// SOL_PACKET (263), include/uapi/linux/if_packet.h.
pub const PACKET: &[Opt] = &[
    opt(1, "PACKET_ADD_MEMBERSHIP", Hex),
    opt(2, "PACKET_DROP_MEMBERSHIP", Hex),
    opt(3, "PACKET_RECV_OUTPUT", Bool),
    opt(5, "PACKET_RX_RING", Hex),
    opt(6, "PACKET_STATISTICS", PacketStats),
    opt(7, "PACKET_COPY_THRESH", Int),
    opt(8, "PACKET_AUXDATA", Bool),
    opt(9, "PACKET_ORIGDEV", Bool),
    opt(10, "PACKET_VERSION", PacketVersion),
    opt(11, "PACKET_HDRLEN", Int),
    opt(12, "PACKET_RESERVE", U32),
    opt(13, "PACKET_TX_RING", Hex),
    opt(14, "PACKET_LOSS", Bool),
    opt(15, "PACKET_VNET_HDR", Bool),
    opt(16, "PACKET_TX_TIMESTAMP", Int),
    opt(17, "PACKET_TIMESTAMP", Int),
    opt(18, "PACKET_FANOUT", Hex),
    opt(19, "PACKET_TX_HAS_OFF", Bool),
    opt(20, "PACKET_QDISC_BYPASS", Bool),
    opt(21, "PACKET_ROLLOVER_STATS", Hex),
    opt(22, "PACKET_FANOUT_DATA", Hex),
    opt(23, "PACKET_IGNORE_OUTGOING", Bool),
    opt(24, "PACKET_VNET_HDR_SZ", Int),
];

/// SOL_NETLINK (270), include/uapi/linux/netlink.h.
pub const NETLINK: &[Opt] = &[
    opt(1, "NETLINK_ADD_MEMBERSHIP", Hex),
    opt(2, "NETLINK_DROP_MEMBERSHIP", Hex),
    opt(3, "NETLINK_PKTINFO", Bool),
    opt(4, "NETLINK_BROADCAST_ERROR", Bool),
    opt(5, "NETLINK_NO_ENOBUFS", Bool),
    opt(6, "NETLINK_RX_RING", Hex),
    opt(7, "NETLINK_TX_RING", Hex),
    opt(8, "NETLINK_LISTEN_ALL_NSID", Bool),
    opt(9, "NETLINK_LIST_MEMBERSHIPS", Gids),
    opt(10, "NETLINK_CAP_ACK", Bool),
    opt(11, "NETLINK_EXT_ACK", Bool),
    opt(12, "NETLINK_GET_STRICT_CHK", Bool),
];

/// SOL_TLS (282), include/uapi/linux/tls.h.
pub const TLS: &[Opt] = &[
    opt(1, "TLS_TX", TlsCrypto),
    opt(2, "TLS_RX", TlsCrypto),
    opt(3, "TLS_TX_ZEROCOPY_RO", Bool),
    opt(4, "TLS_RX_EXPECT_NO_PAD", Bool),
];

/// SOL_MPTCP (284), include/uapi/linux/mptcp.h.
pub const MPTCP: &[Opt] = &[
    opt(1, "MPTCP_INFO", Hex),
    opt(2, "MPTCP_TCPINFO", Hex),
    opt(3, "MPTCP_SUBFLOW_ADDRS", Hex),
    opt(4, "MPTCP_FULL_INFO", Hex),
];

/// SOL_XDP (283), include/uapi/linux/if_xdp.h.
pub const XDP: &[Opt] = &[
    opt(1, "XDP_MMAP_OFFSETS", Hex),
    opt(2, "XDP_RX_RING", Hex),
    opt(3, "XDP_TX_RING", Hex),
    opt(4, "XDP_UMEM_REG", Hex),
    opt(5, "XDP_UMEM_FILL_RING", Hex),
    opt(6, "XDP_UMEM_COMPLETION_RING", Hex),
    opt(7, "XDP_STATISTICS", XdpStats),
    opt(8, "XDP_OPTIONS", Mask32),
];

/// SOL_ALG (279), include/uapi/linux/if_alg.h.
pub const ALG: &[Opt] = &[
    opt(1, "ALG_SET_KEY", Hex),
    opt(2, "ALG_SET_IV", Hex),
    opt(3, "ALG_SET_OP", Hex),
    opt(4, "ALG_SET_AEAD_ASSOCLEN", Hex),
    opt(5, "ALG_SET_AEAD_AUTHSIZE", Hex),
    opt(6, "ALG_SET_DRBG_ENTROPY", Hex),
    opt(7, "ALG_SET_KEY_BY_KEY_SERIAL", Hex),
];

/// SOL_TIPC (271), include/uapi/linux/tipc.h.
pub const TIPC: &[Opt] = &[
    opt(127, "TIPC_IMPORTANCE", Int),
    opt(128, "TIPC_SRC_DROPPABLE", Bool),
    opt(129, "TIPC_DEST_DROPPABLE", Bool),
    opt(130, "TIPC_CONN_TIMEOUT", Int),
    opt(131, "TIPC_NODE_RECVQ_DEPTH", U32),
    opt(132, "TIPC_SOCK_RECVQ_DEPTH", U32),
    opt(133, "TIPC_MCAST_BROADCAST", Bool),
    opt(134, "TIPC_MCAST_REPLICAST", Bool),
    opt(135, "TIPC_GROUP_JOIN", Hex),
    opt(136, "TIPC_GROUP_LEAVE", Hex),
    opt(137, "TIPC_SOCK_RECVQ_USED", U32),
    opt(138, "TIPC_NODELAY", Bool),
];

/// AF_VSOCK (40) used as a level, and SOL_VSOCK (287): include/uapi/linux/vm_sockets.h.
pub const VSOCK: &[Opt] = &[
    opt(0, "SO_VM_SOCKETS_BUFFER_SIZE", U64),
    opt(1, "SO_VM_SOCKETS_BUFFER_MIN_SIZE", U64),
    opt(2, "SO_VM_SOCKETS_BUFFER_MAX_SIZE", U64),
    opt(3, "SO_VM_SOCKETS_PEER_HOST_VM_ID", U32),
    opt(5, "SO_VM_SOCKETS_TRUSTED", Bool),
    opt(6, "SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD", TimevalOld),
    opt(7, "SO_VM_SOCKETS_NONBLOCK_TXRX", Bool),
    opt(8, "SO_VM_SOCKETS_CONNECT_TIMEOUT_NEW", TimevalNew),
];

/// SOL_KCM (281).
pub const KCM: &[Opt] = &[opt(1, "KCM_RECV_DISABLE", Bool)];

/// SOL_SMC (286).
pub const SMC: &[Opt] = &[opt(1, "SMC_LIMIT_HS", Bool)];

/// SOL_MCTP (285).
pub const MCTP: &[Opt] = &[opt(1, "MCTP_OPT_ADDR_EXT", Bool)];

/// SOL_DCCP (269), include/uapi/linux/dccp.h.
pub const DCCP: &[Opt] = &[
    opt(1, "DCCP_SOCKOPT_PACKET_SIZE", Int),
    opt(2, "DCCP_SOCKOPT_SERVICE", Hex),
    opt(3, "DCCP_SOCKOPT_CHANGE_L", Hex),
    opt(4, "DCCP_SOCKOPT_CHANGE_R", Hex),
    opt(5, "DCCP_SOCKOPT_GET_CUR_MPS", Int),
    opt(6, "DCCP_SOCKOPT_SERVER_TIMEWAIT", Bool),
    opt(10, "DCCP_SOCKOPT_SEND_CSCOV", Int),
    opt(11, "DCCP_SOCKOPT_RECV_CSCOV", Int),
    opt(12, "DCCP_SOCKOPT_AVAILABLE_CCIDS", Hex),
    opt(13, "DCCP_SOCKOPT_CCID", Int),
    opt(14, "DCCP_SOCKOPT_TX_CCID", Int),
    opt(15, "DCCP_SOCKOPT_RX_CCID", Int),
    opt(16, "DCCP_SOCKOPT_QPOLICY_ID", Int),
    opt(17, "DCCP_SOCKOPT_QPOLICY_TXQLEN", Int),
    opt(128, "DCCP_SOCKOPT_CCID_RX_INFO", Hex),
    opt(192, "DCCP_SOCKOPT_CCID_TX_INFO", Hex),
];

/// SOL_BLUETOOTH (274), include/net/bluetooth/bluetooth.h.
pub const BLUETOOTH: &[Opt] = &[
    opt(4, "BT_SECURITY", Hex),
    opt(7, "BT_DEFER_SETUP", U32),
    opt(8, "BT_FLUSHABLE", Bool),
    opt(9, "BT_POWER", Hex),
    opt(10, "BT_CHANNEL_POLICY", U32),
    opt(11, "BT_VOICE", Hex),
    opt(12, "BT_SNDMTU", Int),
    opt(13, "BT_RCVMTU", Int),
    opt(14, "BT_PHY", Mask32),
    opt(15, "BT_MODE", Int),
    opt(16, "BT_PKT_STATUS", Bool),
    opt(17, "BT_ISO_QOS", Hex),
    opt(18, "BT_CODEC", Hex),
    opt(19, "BT_ISO_BASE", Hex),
    opt(20, "BT_PKT_SEQNUM", Bool),
];

/// SOL_CAN_RAW (101), include/uapi/linux/can/raw.h.
pub const CAN_RAW: &[Opt] = &[
    opt(1, "CAN_RAW_FILTER", Hex),
    opt(2, "CAN_RAW_ERR_FILTER", Mask32),
    opt(3, "CAN_RAW_LOOPBACK", Bool),
    opt(4, "CAN_RAW_RECV_OWN_MSGS", Bool),
    opt(5, "CAN_RAW_FD_FRAMES", Bool),
    opt(6, "CAN_RAW_JOIN_FILTERS", Bool),
    opt(7, "CAN_RAW_XL_FRAMES", Bool),
    opt(8, "CAN_RAW_XL_VCID_OPTS", Hex),
];

/// SOL_CAN_ISOTP (106), include/uapi/linux/can/isotp.h.
pub const CAN_ISOTP: &[Opt] = &[
    opt(1, "CAN_ISOTP_OPTS", Hex),
    opt(2, "CAN_ISOTP_RECV_FC", Hex),
    opt(3, "CAN_ISOTP_TX_STMIN", U32),
    opt(4, "CAN_ISOTP_RX_STMIN", U32),
    opt(5, "CAN_ISOTP_LL_OPTS", Hex),
];

/// SOL_CAN_J1939 (107), include/uapi/linux/can/j1939.h.
pub const CAN_J1939: &[Opt] = &[
    opt(1, "SO_J1939_FILTER", Hex),
    opt(2, "SO_J1939_PROMISC", Bool),
    opt(3, "SO_J1939_SEND_PRIO", Int),
    opt(4, "SO_J1939_ERRQUEUE", Bool),
];

/// SOL_RXRPC (272), include/uapi/linux/rxrpc.h.
pub const RXRPC: &[Opt] = &[
    opt(1, "RXRPC_SECURITY_KEY", Hex),
    opt(2, "RXRPC_SECURITY_KEYRING", Hex),
    opt(3, "RXRPC_EXCLUSIVE_CONNECTION", Hex),
    opt(4, "RXRPC_MIN_SECURITY_LEVEL", U32),
    opt(5, "RXRPC_UPGRADEABLE_SERVICE", Hex),
    opt(6, "RXRPC_SUPPORTED_CMSG", Int),
    opt(7, "RXRPC_MANAGE_RESPONSE", Bool),
];

/// SOL_PPPOL2TP (273), include/uapi/linux/if_pppol2tp.h.
pub const PPPOL2TP: &[Opt] = &[
    opt(1, "PPPOL2TP_SO_DEBUG", Int),
    opt(2, "PPPOL2TP_SO_RECVSEQ", Bool),
    opt(3, "PPPOL2TP_SO_SENDSEQ", Bool),
    opt(4, "PPPOL2TP_SO_LNSMODE", Bool),
    opt(5, "PPPOL2TP_SO_REORDERTO", Int),
];

/// SOL_LLC (268), include/uapi/linux/llc.h.
pub const LLC: &[Opt] = &[
    opt(1, "LLC_OPT_RETRY", Int),
    opt(2, "LLC_OPT_SIZE", Int),
    opt(3, "LLC_OPT_ACK_TMR_EXP", Int),
    opt(4, "LLC_OPT_P_TMR_EXP", Int),
    opt(5, "LLC_OPT_REJ_TMR_EXP", Int),
    opt(6, "LLC_OPT_BUSY_TMR_EXP", Int),
    opt(7, "LLC_OPT_TX_WIN", Int),
    opt(8, "LLC_OPT_RX_WIN", Int),
    opt(9, "LLC_OPT_PKTINFO", Bool),
];

/// SOL_RDS (276), include/uapi/linux/rds.h.
pub const RDS: &[Opt] = &[
    opt(1, "RDS_CANCEL_SENT_TO", Hex),
    opt(2, "RDS_GET_MR", Hex),
    opt(3, "RDS_FREE_MR", Hex),
    opt(5, "RDS_RECVERR", Bool),
    opt(6, "RDS_CONG_MONITOR", Bool),
    opt(7, "RDS_GET_MR_FOR_DEST", Hex),
    opt(8, "SO_RDS_TRANSPORT", Int),
    opt(9, "SO_RDS_MSG_RXPATH_LATENCY", Hex),
    opt(10000, "RDS_INFO_COUNTERS", Hex),
    opt(10001, "RDS_INFO_CONNECTIONS", Hex),
    opt(10003, "RDS_INFO_SEND_MESSAGES", Hex),
    opt(10004, "RDS_INFO_RETRANS_MESSAGES", Hex),
    opt(10005, "RDS_INFO_RECV_MESSAGES", Hex),
    opt(10006, "RDS_INFO_SOCKETS", Hex),
    opt(10007, "RDS_INFO_TCP_SOCKETS", Hex),
    opt(10008, "RDS_INFO_IB_CONNECTIONS", Hex),
    opt(10009, "RDS_INFO_CONNECTION_STATS", Hex),
    opt(10010, "RDS_INFO_IWARP_CONNECTIONS", Hex),
];

/// PACKET_STATISTICS: `struct tpacket_stats` (8 bytes) or `tpacket_stats_v3` (12 bytes).
pub fn decode_packet_stats(bytes: &[u8]) -> Decoded {
    let mut s = StructBuilder::new(bytes);
    s.field("tp_packets", |b| b.u32(0).map(|v| Value::UInt(v as u64)))
        .field("tp_drops", |b| b.u32(4).map(|v| Value::UInt(v as u64)));
    if bytes.len() >= 12 {
        s.field("tp_freeze_q_cnt", |b| {
            b.u32(8).map(|v| Value::UInt(v as u64))
        });
    }
    trailing(s, if bytes.len() >= 12 { 12 } else { 8 })
}

/// `TPACKET_V*`.
pub fn tpacket_version(v: i32) -> Option<&'static str> {
    ["TPACKET_V1", "TPACKET_V2", "TPACKET_V3"]
        .get(usize::try_from(v).ok()?)
        .copied()
}

/// XDP_STATISTICS: `struct xdp_statistics`, 3 u64 on kernels before 5.9, 6 since.
pub fn decode_xdp_stats(bytes: &[u8]) -> Decoded {
    const NAMES: [&str; 6] = [
        "rx_dropped",
        "rx_invalid_descs",
        "tx_invalid_descs",
        "rx_ring_full",
        "rx_fill_ring_empty_descs",
        "tx_ring_empty_descs",
    ];
    let mut s = StructBuilder::new(bytes);
    let n = if bytes.len() >= 48 { 6 } else { 3 };
    for (i, name) in NAMES.iter().take(n).enumerate() {
        s.field(name, |b| b.u64(i * 8).map(Value::UInt));
    }
    trailing(s, n * 8)
}

/// TLS_TX / TLS_RX: `struct tls_crypto_info { __u16 version; __u16 cipher_type; }` followed by
/// the cipher's IV, key, salt and record sequence. Only the head is shown: the rest is secret.
pub fn decode_tls_crypto(bytes: &[u8]) -> Decoded {
    const CIPHERS: &[(i32, &str)] = &[
        (51, "TLS_CIPHER_AES_GCM_128"),
        (52, "TLS_CIPHER_AES_GCM_256"),
        (53, "TLS_CIPHER_AES_CCM_128"),
        (54, "TLS_CIPHER_CHACHA20_POLY1305"),
        (55, "TLS_CIPHER_SM4_GCM"),
        (56, "TLS_CIPHER_SM4_CCM"),
        (57, "TLS_CIPHER_ARIA_GCM_128"),
        (58, "TLS_CIPHER_ARIA_GCM_256"),
    ];
    let mut s = StructBuilder::new(bytes);
    s.field("version", |b| {
        b.u16(0).map(|v| match v {
            0x0303 => Value::Sym("TLS_1_2_VERSION".into()),
            0x0304 => Value::Sym("TLS_1_3_VERSION".into()),
            v => Value::Hex(v as u64),
        })
    })
    .field("cipher_type", |b| {
        b.u16(2)
            .map(|v| super::names::sym(super::names::find(CIPHERS, v as i32), v as i32))
    });
    if bytes.len() > 4 {
        s.fields
            .push(("key_material_bytes", Value::UInt(bytes.len() as u64 - 4)));
    }
    s.finish()
}
