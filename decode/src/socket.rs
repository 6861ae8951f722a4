//! SOL_SOCKET (1): options from include/uapi/asm-generic/socket.h (the numbering of x86, arm,
//! arm64, riscv and s390; alpha, mips, parisc, sparc and powerpc number some differently and
//! are not supported).

use super::Kind::*;
use super::{Decoded, Opt, StructBuilder, Value, opt, trailing};

pub const OPTIONS: &[Opt] = &[
    opt(1, "SO_DEBUG", Bool),
    opt(2, "SO_REUSEADDR", Bool),
    opt(3, "SO_TYPE", SockType),
    opt(4, "SO_ERROR", Errno),
    opt(5, "SO_DONTROUTE", Bool),
    opt(6, "SO_BROADCAST", Bool),
    opt(7, "SO_SNDBUF", Int),
    opt(8, "SO_RCVBUF", Int),
    opt(9, "SO_KEEPALIVE", Bool),
    opt(10, "SO_OOBINLINE", Bool),
    opt(11, "SO_NO_CHECK", Bool),
    opt(12, "SO_PRIORITY", Int),
    opt(13, "SO_LINGER", Linger),
    opt(14, "SO_BSDCOMPAT", Bool),
    opt(15, "SO_REUSEPORT", Bool),
    opt(16, "SO_PASSCRED", Bool),
    opt(17, "SO_PEERCRED", Ucred),
    opt(18, "SO_RCVLOWAT", Int),
    opt(19, "SO_SNDLOWAT", Int),
    opt(20, "SO_RCVTIMEO_OLD", TimevalOld),
    opt(21, "SO_SNDTIMEO_OLD", TimevalOld),
    opt(22, "SO_SECURITY_AUTHENTICATION", Int),
    opt(23, "SO_SECURITY_ENCRYPTION_TRANSPORT", Int),
    opt(24, "SO_SECURITY_ENCRYPTION_NETWORK", Int),
    opt(25, "SO_BINDTODEVICE", Str),
    // getsockopt(SO_ATTACH_FILTER) is SO_GET_FILTER: it returns the filter's length.
    opt(26, "SO_GET_FILTER", Int),
    opt(27, "SO_DETACH_FILTER", Int),
    opt(28, "SO_PEERNAME", Hex),
    opt(29, "SO_TIMESTAMP_OLD", Bool),
    opt(30, "SO_ACCEPTCONN", Bool),
    opt(31, "SO_PEERSEC", Str),
    opt(32, "SO_SNDBUFFORCE", Int),
    opt(33, "SO_RCVBUFFORCE", Int),
    opt(34, "SO_PASSSEC", Bool),
    opt(35, "SO_TIMESTAMPNS_OLD", Bool),
    opt(36, "SO_MARK", U32),
    opt(37, "SO_TIMESTAMPING_OLD", Timestamping),
    opt(38, "SO_PROTOCOL", Protocol),
    opt(39, "SO_DOMAIN", Domain),
    opt(40, "SO_RXQ_OVFL", Bool),
    opt(41, "SO_WIFI_STATUS", Bool),
    opt(42, "SO_PEEK_OFF", Int),
    opt(43, "SO_NOFCS", Bool),
    opt(44, "SO_LOCK_FILTER", Bool),
    opt(45, "SO_SELECT_ERR_QUEUE", Bool),
    opt(46, "SO_BUSY_POLL", Int),
    opt(47, "SO_MAX_PACING_RATE", U32OrU64),
    opt(48, "SO_BPF_EXTENSIONS", Int),
    opt(49, "SO_INCOMING_CPU", Int),
    opt(50, "SO_ATTACH_BPF", Int),
    opt(51, "SO_ATTACH_REUSEPORT_CBPF", Hex),
    opt(52, "SO_ATTACH_REUSEPORT_EBPF", Hex),
    opt(53, "SO_CNX_ADVICE", Int),
    opt(54, "SCM_TIMESTAMPING_OPT_STATS", Hex),
    opt(55, "SO_MEMINFO", MemInfo),
    opt(56, "SO_INCOMING_NAPI_ID", U32),
    opt(57, "SO_COOKIE", U64),
    opt(58, "SCM_TIMESTAMPING_PKTINFO", Hex),
    opt(59, "SO_PEERGROUPS", Gids),
    opt(60, "SO_ZEROCOPY", Bool),
    opt(61, "SO_TXTIME", TxTime),
    opt(62, "SO_BINDTOIFINDEX", Int),
    opt(63, "SO_TIMESTAMP_NEW", Bool),
    opt(64, "SO_TIMESTAMPNS_NEW", Bool),
    opt(65, "SO_TIMESTAMPING_NEW", Timestamping),
    opt(66, "SO_RCVTIMEO_NEW", TimevalNew),
    opt(67, "SO_SNDTIMEO_NEW", TimevalNew),
    opt(68, "SO_DETACH_REUSEPORT_BPF", Int),
    opt(69, "SO_PREFER_BUSY_POLL", Bool),
    opt(70, "SO_BUSY_POLL_BUDGET", Int),
    opt(71, "SO_NETNS_COOKIE", U64),
    opt(72, "SO_BUF_LOCK", Int),
    opt(73, "SO_RESERVE_MEM", Int),
    opt(74, "SO_TXREHASH", Int),
    opt(75, "SO_RCVMARK", Bool),
    opt(76, "SO_PASSPIDFD", Bool),
    opt(77, "SO_PEERPIDFD", Int),
    opt(78, "SO_DEVMEM_LINEAR", Hex),
    opt(79, "SO_DEVMEM_DMABUF", Hex),
    opt(80, "SO_DEVMEM_DONTNEED", Hex),
    opt(81, "SCM_TS_OPT_ID", Int),
    opt(82, "SO_RCVPRIORITY", Bool),
    opt(83, "SO_PASSRIGHTS", Bool),
    opt(84, "SO_INQ", Bool),
];

/// SO_MEMINFO: `u32 meminfo[SK_MEMINFO_VARS]`, indexed by `SK_MEMINFO_*`.
pub fn decode_meminfo(bytes: &[u8]) -> Decoded {
    const NAMES: [&str; 9] = [
        "rmem_alloc",
        "rcvbuf",
        "wmem_alloc",
        "sndbuf",
        "fwd_alloc",
        "wmem_queued",
        "optmem",
        "backlog",
        "drops",
    ];
    let mut s = StructBuilder::new(bytes);
    for (i, name) in NAMES.iter().enumerate() {
        s.field(name, |b| b.u32(i * 4).map(|v| Value::UInt(v as u64)));
    }
    // A shorter array is what an older kernel (fewer SK_MEMINFO_VARS) returns: not truncated.
    let whole = bytes.len().is_multiple_of(4);
    let mut d = trailing(s, NAMES.len() * 4);
    d.truncated = !whole;
    d
}

/// `SOF_TIMESTAMPING_*` bits.
const TIMESTAMPING_FLAGS: &[(u32, &str)] = &[
    (1 << 0, "SOF_TIMESTAMPING_TX_HARDWARE"),
    (1 << 1, "SOF_TIMESTAMPING_TX_SOFTWARE"),
    (1 << 2, "SOF_TIMESTAMPING_RX_HARDWARE"),
    (1 << 3, "SOF_TIMESTAMPING_RX_SOFTWARE"),
    (1 << 4, "SOF_TIMESTAMPING_SOFTWARE"),
    (1 << 5, "SOF_TIMESTAMPING_SYS_HARDWARE"),
    (1 << 6, "SOF_TIMESTAMPING_RAW_HARDWARE"),
    (1 << 7, "SOF_TIMESTAMPING_OPT_ID"),
    (1 << 8, "SOF_TIMESTAMPING_TX_SCHED"),
    (1 << 9, "SOF_TIMESTAMPING_TX_ACK"),
    (1 << 10, "SOF_TIMESTAMPING_OPT_CMSG"),
    (1 << 11, "SOF_TIMESTAMPING_OPT_TSONLY"),
    (1 << 12, "SOF_TIMESTAMPING_OPT_STATS"),
    (1 << 13, "SOF_TIMESTAMPING_OPT_PKTINFO"),
    (1 << 14, "SOF_TIMESTAMPING_OPT_TX_SWHW"),
    (1 << 15, "SOF_TIMESTAMPING_BIND_PHC"),
    (1 << 16, "SOF_TIMESTAMPING_OPT_ID_TCP"),
    (1 << 17, "SOF_TIMESTAMPING_OPT_RX_FILTER"),
    (1 << 18, "SOF_TIMESTAMPING_TX_COMPLETION"),
];

/// Names of the set bits of `v`; leftover bits in hex.
pub fn flag_names(v: u32, table: &[(u32, &str)]) -> Value {
    let mut names = Vec::new();
    let mut rest = v;
    for &(bit, name) in table {
        if v & bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    Value::Flags(names)
}

/// SO_TIMESTAMPING: `struct so_timestamping { int flags; int bind_phc; }`, of which older
/// kernels return only the flags.
pub fn decode_timestamping(bytes: &[u8]) -> Decoded {
    let mut s = StructBuilder::new(bytes);
    s.field("flags", |b| {
        b.u32(0).map(|v| flag_names(v, TIMESTAMPING_FLAGS))
    });
    if bytes.len() >= 8 {
        s.field("bind_phc", |b| b.i32(4).map(|v| Value::Int(v as i64)));
    }
    let size = if bytes.len() >= 8 { 8 } else { 4 };
    trailing(s, size)
}

/// SO_TXTIME: `struct sock_txtime { __kernel_clockid_t clockid; __u32 flags; }`.
pub fn decode_txtime(bytes: &[u8]) -> Decoded {
    const CLOCKS: &[(i32, &str)] = &[
        (0, "CLOCK_REALTIME"),
        (1, "CLOCK_MONOTONIC"),
        (7, "CLOCK_BOOTTIME"),
        (11, "CLOCK_TAI"),
    ];
    const FLAGS: &[(u32, &str)] = &[
        (1, "SOF_TXTIME_DEADLINE_MODE"),
        (2, "SOF_TXTIME_REPORT_ERRORS"),
    ];
    let mut s = StructBuilder::new(bytes);
    s.field("clockid", |b| {
        b.i32(0)
            .map(|v| super::names::sym(super::names::find(CLOCKS, v), v))
    })
    .field("flags", |b| b.u32(4).map(|v| flag_names(v, FLAGS)));
    trailing(s, 8)
}
