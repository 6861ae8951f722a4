//! SOL_TCP / IPPROTO_TCP (6): options and `struct tcp_info` from include/uapi/linux/tcp.h.

use super::Kind::*;
use super::socket::flag_names;
use super::{Bytes, DataField, Decoded, FieldType, Opt, StructBuilder, Value, data, opt, trailing};

pub const OPTIONS: &[Opt] = &[
    opt(1, "TCP_NODELAY", Bool),
    opt(2, "TCP_MAXSEG", Int),
    opt(3, "TCP_CORK", Bool),
    opt(4, "TCP_KEEPIDLE", Int),
    opt(5, "TCP_KEEPINTVL", Int),
    opt(6, "TCP_KEEPCNT", Int),
    opt(7, "TCP_SYNCNT", Int),
    opt(8, "TCP_LINGER2", Int),
    opt(9, "TCP_DEFER_ACCEPT", Int),
    opt(10, "TCP_WINDOW_CLAMP", Int),
    opt(11, "TCP_INFO", TcpInfo),
    opt(12, "TCP_QUICKACK", Bool),
    opt(13, "TCP_CONGESTION", Str),
    opt(14, "TCP_MD5SIG", Hex),
    opt(15, "TCP_COOKIE_TRANSACTIONS", Hex),
    opt(16, "TCP_THIN_LINEAR_TIMEOUTS", Bool),
    opt(17, "TCP_THIN_DUPACK", Bool),
    opt(18, "TCP_USER_TIMEOUT", Int),
    opt(19, "TCP_REPAIR", Int),
    opt(20, "TCP_REPAIR_QUEUE", Int),
    opt(21, "TCP_QUEUE_SEQ", U32),
    opt(22, "TCP_REPAIR_OPTIONS", Hex),
    opt(23, "TCP_FASTOPEN", Int),
    opt(24, "TCP_TIMESTAMP", U32),
    opt(25, "TCP_NOTSENT_LOWAT", U32),
    opt(26, "TCP_CC_INFO", Hex),
    opt(27, "TCP_SAVE_SYN", Bool),
    opt(28, "TCP_SAVED_SYN", Hex),
    opt(29, "TCP_REPAIR_WINDOW", TcpRepairWindow),
    opt(30, "TCP_FASTOPEN_CONNECT", Bool),
    opt(31, "TCP_ULP", Str),
    opt(32, "TCP_MD5SIG_EXT", Hex),
    opt(33, "TCP_FASTOPEN_KEY", Hex),
    opt(34, "TCP_FASTOPEN_NO_COOKIE", Bool),
    opt(35, "TCP_ZEROCOPY_RECEIVE", Hex),
    opt(36, "TCP_INQ", Int),
    opt(37, "TCP_TX_DELAY", Int),
    opt(38, "TCP_AO_ADD_KEY", Hex),
    opt(39, "TCP_AO_DEL_KEY", Hex),
    opt(40, "TCP_AO_INFO", Hex),
    opt(41, "TCP_AO_GET_KEYS", Hex),
    opt(42, "TCP_AO_REPAIR", Hex),
    opt(43, "TCP_IS_MPTCP", Bool),
    opt(44, "TCP_RTO_MAX_MS", Int),
    opt(45, "TCP_RTO_MIN_US", Int),
    opt(46, "TCP_DELACK_MAX_US", Int),
];

/// `TCP_*` connection states (include/net/tcp_states.h).
pub fn state_name(v: u8) -> Option<&'static str> {
    const STATES: [&str; 14] = [
        "",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
        "NEW_SYN_RECV",
        "BOUND_INACTIVE",
    ];
    STATES.get(v as usize).copied().filter(|s| !s.is_empty())
}

/// `TCP_CA_*` congestion avoidance states.
fn ca_state_name(v: u8) -> Option<&'static str> {
    ["Open", "Disorder", "CWR", "Recovery", "Loss"]
        .get(v as usize)
        .copied()
}

/// `TCPI_OPT_*` bits of `tcpi_options`.
const TCPI_OPTIONS: &[(u32, &str)] = &[
    (1, "TIMESTAMPS"),
    (2, "SACK"),
    (4, "WSCALE"),
    (8, "ECN"),
    (16, "ECN_SEEN"),
    (32, "SYN_DATA"),
    (64, "USEC_TS"),
    (128, "TFO_CHILD"),
];

fn sym_or_num(name: Option<&'static str>, v: u8) -> Value {
    match name {
        Some(n) => Value::Sym(n.to_string()),
        None => Value::UInt(v as u64),
    }
}

/// One `struct tcp_info` field after the first 8 bytes: name, offset, width, unit.
struct Field(&'static str, usize, u8, &'static str);

/// The fields of `struct tcp_info` from byte 8 on, in order, as Linux 6.18 defines them. The
/// struct only ever grew at its end: 104 bytes up to `total_retrans` (2.6), then the pacing
/// rates (3.15), ..., `snd_wnd` (5.4, 232 bytes), `rcv_wnd`/`rehash` (6.2, 240), the RTO totals
/// (6.7, 248), and the AccECN counters (6.18, 280). The kernel copies
/// `min(optlen, sizeof(struct tcp_info))` bytes, so the length tells which kernel (or which
/// caller's struct) this is, and every whole field present is decoded.
const TCP_INFO_FIELDS: &[Field] = &[
    Field("rto", 8, 4, "us"),
    Field("ato", 12, 4, "us"),
    Field("snd_mss", 16, 4, ""),
    Field("rcv_mss", 20, 4, ""),
    Field("unacked", 24, 4, ""),
    Field("sacked", 28, 4, ""),
    Field("lost", 32, 4, ""),
    Field("retrans", 36, 4, ""),
    Field("fackets", 40, 4, ""),
    Field("last_data_sent", 44, 4, "ms"),
    Field("last_ack_sent", 48, 4, "ms"),
    Field("last_data_recv", 52, 4, "ms"),
    Field("last_ack_recv", 56, 4, "ms"),
    Field("pmtu", 60, 4, ""),
    Field("rcv_ssthresh", 64, 4, ""),
    Field("rtt", 68, 4, "us"),
    Field("rttvar", 72, 4, "us"),
    Field("snd_ssthresh", 76, 4, ""),
    Field("snd_cwnd", 80, 4, ""),
    Field("advmss", 84, 4, ""),
    Field("reordering", 88, 4, ""),
    Field("rcv_rtt", 92, 4, "us"),
    Field("rcv_space", 96, 4, ""),
    Field("total_retrans", 100, 4, ""),
    Field("pacing_rate", 104, 8, ""),
    Field("max_pacing_rate", 112, 8, ""),
    Field("bytes_acked", 120, 8, ""),
    Field("bytes_received", 128, 8, ""),
    Field("segs_out", 136, 4, ""),
    Field("segs_in", 140, 4, ""),
    Field("notsent_bytes", 144, 4, ""),
    Field("min_rtt", 148, 4, "us"),
    Field("data_segs_in", 152, 4, ""),
    Field("data_segs_out", 156, 4, ""),
    Field("delivery_rate", 160, 8, ""),
    Field("busy_time", 168, 8, "us"),
    Field("rwnd_limited", 176, 8, "us"),
    Field("sndbuf_limited", 184, 8, "us"),
    Field("delivered", 192, 4, ""),
    Field("delivered_ce", 196, 4, ""),
    Field("bytes_sent", 200, 8, ""),
    Field("bytes_retrans", 208, 8, ""),
    Field("dsack_dups", 216, 4, ""),
    Field("reord_seen", 220, 4, ""),
    Field("rcv_ooopack", 224, 4, ""),
    Field("snd_wnd", 228, 4, ""),
    Field("rcv_wnd", 232, 4, ""),
    Field("rehash", 236, 4, ""),
    Field("total_rto", 240, 2, ""),
    Field("total_rto_recoveries", 242, 2, ""),
    Field("total_rto_time", 244, 4, "ms"),
    Field("received_ce", 248, 4, ""),
    Field("delivered_e1_bytes", 252, 4, ""),
    Field("delivered_e0_bytes", 256, 4, ""),
    Field("delivered_ce_bytes", 260, 4, ""),
    Field("received_e1_bytes", 264, 4, ""),
    Field("received_e0_bytes", 268, 4, ""),
    Field("received_ce_bytes", 272, 4, ""),
];

/// The fields of the first 8 bytes (u8s and bitfields) and of the last word (6.18's bitfields),
/// as data; [`decode_tcp_info`] gives them in this order around [`TCP_INFO_FIELDS`].
const HEAD_FIELDS: &[DataField] = &[
    data("state", FieldType::Text, ""),
    data("ca_state", FieldType::Text, ""),
    data("retransmits", FieldType::U8, ""),
    data("probes", FieldType::U8, ""),
    data("backoff", FieldType::U8, ""),
    data("options", FieldType::Text, ""),
    data("snd_wscale", FieldType::U8, ""),
    data("rcv_wscale", FieldType::U8, ""),
    data("delivery_rate_app_limited", FieldType::U8, ""),
    data("fastopen_client_fail", FieldType::U8, ""),
];
const TAIL_FIELDS: &[DataField] = &[
    data("ecn_mode", FieldType::U8, ""),
    data("accecn_opt_seen", FieldType::U8, ""),
    data("accecn_fail_mode", FieldType::U8, ""),
    data("options2", FieldType::U32, ""),
];

/// Every field [`decode_tcp_info`] knows, in its order, typed by its width in the struct.
pub fn data_fields() -> impl Iterator<Item = DataField> {
    let middle = TCP_INFO_FIELDS.iter().map(|&Field(name, _, width, unit)| {
        let ty = match width {
            2 => FieldType::U16,
            4 => FieldType::U32,
            _ => FieldType::U64,
        };
        data(name, ty, unit)
    });
    HEAD_FIELDS
        .iter()
        .copied()
        .chain(middle)
        .chain(TAIL_FIELDS.iter().copied())
}

/// Size of `struct tcp_info` on Linux 6.18.
pub const TCP_INFO_LEN: usize = 280;

/// Decodes a `struct tcp_info` of any length: every whole field present, in order. A length
/// that ends inside a field marks the value truncated; bytes beyond the 6.18 struct (a newer
/// kernel) are kept as `extra`.
pub fn decode_tcp_info(bytes: &[u8]) -> Decoded {
    let mut s = StructBuilder::new(bytes);
    s.field("state", |b| b.u8(0).map(|v| sym_or_num(state_name(v), v)))
        .field("ca_state", |b| {
            b.u8(1).map(|v| sym_or_num(ca_state_name(v), v))
        })
        .field("retransmits", |b| b.u8(2).map(|v| Value::UInt(v as u64)))
        .field("probes", |b| b.u8(3).map(|v| Value::UInt(v as u64)))
        .field("backoff", |b| b.u8(4).map(|v| Value::UInt(v as u64)))
        .field("options", |b| {
            b.u8(5).map(|v| flag_names(v as u32, TCPI_OPTIONS))
        })
        // Bitfields: on little-endian, the first declared bitfield takes the low bits.
        .field("snd_wscale", |b| {
            b.u8(6).map(|v| Value::UInt((v & 0xf) as u64))
        })
        .field("rcv_wscale", |b| {
            b.u8(6).map(|v| Value::UInt((v >> 4) as u64))
        })
        .field("delivery_rate_app_limited", |b| {
            b.u8(7).map(|v| Value::UInt((v & 1) as u64))
        })
        .field("fastopen_client_fail", |b| {
            b.u8(7).map(|v| Value::UInt(((v >> 1) & 3) as u64))
        });
    for &Field(name, at, width, unit) in TCP_INFO_FIELDS {
        s.field(name, |b: &Bytes<'_>| {
            let v = match width {
                2 => b.u16(at)? as u64,
                4 => b.u32(at)? as u64,
                _ => b.u64(at)?,
            };
            Some(if unit.is_empty() {
                Value::UInt(v)
            } else {
                Value::Unit(v, unit)
            })
        });
    }
    // The last word (6.18): ecn_mode:2, accecn_opt_seen:2, accecn_fail_mode:4, options2:24.
    s.field("ecn_mode", |b| {
        b.u32(276).map(|v| Value::UInt((v & 3) as u64))
    })
    .field("accecn_opt_seen", |b| {
        b.u32(276).map(|v| Value::UInt(((v >> 2) & 3) as u64))
    })
    .field("accecn_fail_mode", |b| {
        b.u32(276).map(|v| Value::UInt(((v >> 4) & 0xf) as u64))
    })
    .field("options2", |b| {
        b.u32(276).map(|v| Value::Hex((v >> 8) as u64))
    });
    // Ending exactly after a field is a complete (older) struct; only a cut field is a
    // truncation. Known sizes end on field boundaries, so compare with the last field read.
    let mut d = trailing(s, TCP_INFO_LEN);
    if !d.truncated || bytes.len() < 8 {
        return d;
    }
    d.truncated = !ends_on_field_boundary(bytes.len());
    d
}

/// Whether a `tcp_info` of `len` bytes ends exactly at the end of a field.
fn ends_on_field_boundary(len: usize) -> bool {
    len == 8 || TCP_INFO_FIELDS.iter().any(|f| f.1 + f.2 as usize == len)
}

/// `struct tcp_repair_window`.
pub fn decode_repair_window(bytes: &[u8]) -> Decoded {
    let mut s = StructBuilder::new(bytes);
    for (i, name) in ["snd_wl1", "snd_wnd", "max_window", "rcv_wnd", "rcv_wup"]
        .into_iter()
        .enumerate()
    {
        s.field(name, |b| b.u32(i * 4).map(|v| Value::UInt(v as u64)));
    }
    trailing(s, 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_contiguous_and_end_at_276() {
        let mut at = 8;
        for f in TCP_INFO_FIELDS {
            assert_eq!(f.1, at, "{} at {}", f.0, f.1);
            at += f.2 as usize;
        }
        assert_eq!(at, 276);
    }

    #[test]
    fn data_fields_name_what_the_decoder_gives_in_order() {
        let mut full = vec![0u8; TCP_INFO_LEN];
        full[0] = 1;
        let Value::Struct(fields) = decode_tcp_info(&full).value else {
            panic!("tcp_info decodes to a struct");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        let want: Vec<&str> = data_fields().map(|f| f.name).collect();
        assert_eq!(names, want);
        // A short struct is a prefix.
        let Value::Struct(short) = decode_tcp_info(&full[..104]).value else {
            panic!("tcp_info decodes to a struct");
        };
        assert_eq!(short.len(), 10 + 24);
        assert_eq!(short.last().map(|f| f.0), Some("total_retrans"));
    }

    #[test]
    fn older_kernel_sizes_are_complete_and_cut_fields_are_truncated() {
        for len in [104usize, 160, 192, 200, 224, 232, 240, 248, 280] {
            let d = decode_tcp_info(&vec![0u8; len]);
            assert!(!d.truncated, "{len}");
        }
        for len in [3usize, 10, 106, 230, 279] {
            let d = decode_tcp_info(&vec![0u8; len]);
            assert!(d.truncated, "{len}");
        }
    }
}
