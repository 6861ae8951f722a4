//! The vocabulary of getsockopt shared by every gsotrace tool: names and values of calls as
//! the Linux kernel defines them, durations and times as users type them ([`time`]), and the
//! `--where` expression language ([`expr`]). It depends on nothing of gsotrace's, so the
//! recorder, analyze, the trace generator and the fuzz targets all use the one copy.
//!
//! * [`levels`]: every socket level Linux defines, each with its own option table, so an option
//!   number is only ever named within its level (TCP option 11 is `TCP_INFO`, never
//!   `SO_NO_CHECK`).
//! * One module per level with option tables and value decoders ([`socket`], [`ip`], [`ipv6`],
//!   [`tcp`], [`udp`], [`other`]), and [`errno`] for return values.
//! * [`Value`]: a decoded option value, rendered strace-style by [`Value::write_text`] and as
//!   JSON by [`Value::write_json`].
//!
//! Values are little-endian x86_64 / aarch64 layouts (LP64), which is what the recorder runs on.
//! Every decoder takes the captured bytes as they are: a value shorter than its struct is
//! decoded field by field as far as whole fields go, and the rest is marked truncated.

pub mod cgroup;
pub mod errno;
pub mod expr;
pub mod glob;
pub mod ip;
pub mod ipv6;
pub mod levels;
pub mod names;
pub mod other;
pub mod socket;
pub mod sockid;
pub mod tcp;
pub mod time;
pub mod udp;

use std::fmt::Write as _;

pub use levels::{LEVELS, Level, level_by_name, level_name, option_by_name, option_name};

/// How an option's value is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Whatever the kernel returned, as hex.
    Hex,
    /// A C `int` (or, if the kernel returned 1 byte, an unsigned char).
    Int,
    /// A C `int` that is 0 or 1 in meaning.
    Bool,
    /// An unsigned 32-bit value.
    U32,
    /// An unsigned 64-bit value (cookies, rates).
    U64,
    /// 32-bit or 64-bit unsigned depending on the length returned (SO_MAX_PACING_RATE).
    U32OrU64,
    /// A NUL-terminated string in a fixed buffer (TCP_CONGESTION, TCP_ULP, SO_BINDTODEVICE).
    Str,
    /// An errno number (SO_ERROR).
    Errno,
    /// An address family (SO_DOMAIN).
    Domain,
    /// A socket type (SO_TYPE).
    SockType,
    /// An IP protocol number (SO_PROTOCOL, IP_PROTOCOL).
    Protocol,
    /// `struct linger`.
    Linger,
    /// `struct ucred`.
    Ucred,
    /// SO_RCVTIMEO_OLD/SO_SNDTIMEO_OLD: `struct timeval` (16 bytes, or 8 from a 32-bit task).
    TimevalOld,
    /// SO_RCVTIMEO_NEW/SO_SNDTIMEO_NEW: `struct __kernel_sock_timeval` (two s64).
    TimevalNew,
    /// `struct tcp_info`.
    TcpInfo,
    /// An array of u32 group ids (SO_PEERGROUPS).
    Gids,
    /// SO_MEMINFO: `u32[SK_MEMINFO_VARS]`.
    MemInfo,
    /// IP_MTU_DISCOVER / IPV6_MTU_DISCOVER.
    PmtuDisc,
    /// IPV6_MTU_DISCOVER names (same numbers, IPV6_ prefix).
    Pmtu6Disc,
    /// A `struct in_addr` (IP_MULTICAST_IF).
    InAddr,
    /// IP_LOCAL_PORT_RANGE: low port in the low 16 bits, high port in the high 16 bits.
    PortRange,
    /// IP_TOS: the DSCP and ECN parts of a TOS byte.
    Tos,
    /// SO_TIMESTAMPING: flags, optionally followed by a PHC index.
    Timestamping,
    /// SO_TXTIME: `struct sock_txtime`.
    TxTime,
    /// UDP_ENCAP type.
    UdpEncap,
    /// PACKET_STATISTICS: `tpacket_stats` or `tpacket_stats_v3`.
    PacketStats,
    /// PACKET_VERSION.
    PacketVersion,
    /// XDP_STATISTICS.
    XdpStats,
    /// TLS_TX / TLS_RX: the `tls_crypto_info` head; key material is not shown.
    TlsCrypto,
    /// A u32 bit mask shown in hex (ICMP_FILTER).
    Mask32,
    /// `struct tcp_repair_window`.
    TcpRepairWindow,
}

/// An option of a level: its number, its name, and how its value is decoded.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    pub value: i32,
    pub name: &'static str,
    pub kind: Kind,
}

/// Shorthand for the option tables.
pub(crate) const fn opt(value: i32, name: &'static str, kind: Kind) -> Opt {
    Opt { value, name, kind }
}

/// A decoded value. Structures keep their field order; numbers keep their units so the text
/// form can say `rtt=132us` while JSON carries the plain number.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    /// An unsigned number shown in hex (masks, flag words).
    Hex(u64),
    Bool(bool),
    /// A number with a unit: text `132us`, JSON `132`.
    Unit(u64, &'static str),
    /// A symbolic constant (`ESTABLISHED`, `AF_INET`, `ECONNREFUSED`).
    Sym(String),
    /// A string the kernel returned (`"cubic"`).
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Named fields, in order.
    Struct(Vec<(&'static str, Value)>),
    /// A list (SO_PEERGROUPS).
    List(Vec<Value>),
    /// Flag names joined with `|` in text, a list of names in JSON.
    Flags(Vec<String>),
}

/// How one field of a decoded struct is typed as data (the export's struct columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// The field's text as [`Value::write_text`] gives it (`ESTABLISHED`, `TIMESTAMPS|SACK`).
    Text,
    U8,
    U16,
    U32,
    U64,
    I32,
    I64,
}

/// One field of a struct value as data: the decoder's field name, its type, and its unit
/// (`us`, `ms`, or empty; a column name carries it as a suffix: `rtt_us`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataField {
    pub name: &'static str,
    pub ty: FieldType,
    pub unit: &'static str,
}

pub(crate) const fn data(name: &'static str, ty: FieldType, unit: &'static str) -> DataField {
    DataField { name, ty, unit }
}

const LINGER_FIELDS: &[DataField] = &[
    data("l_onoff", FieldType::I32, ""),
    data("l_linger", FieldType::I32, ""),
];
const UCRED_FIELDS: &[DataField] = &[
    data("pid", FieldType::I32, ""),
    data("uid", FieldType::U32, ""),
    data("gid", FieldType::U32, ""),
];
const TIMEVAL_FIELDS: &[DataField] = &[
    data("tv_sec", FieldType::I64, ""),
    data("tv_usec", FieldType::I64, ""),
];

/// The fields [`decode_kind`] gives a struct-valued kind, in its order, for the kinds whose
/// value is one fixed C struct (`tcp_info`, `linger`, `ucred`, `timeval`); `None` otherwise.
/// A value cut short decodes to a prefix of these (the tests hold the decoders to them).
pub fn struct_fields(kind: Kind) -> Option<Vec<DataField>> {
    Some(match kind {
        Kind::TcpInfo => tcp::data_fields().collect(),
        Kind::Linger => LINGER_FIELDS.to_vec(),
        Kind::Ucred => UCRED_FIELDS.to_vec(),
        Kind::TimevalOld | Kind::TimevalNew => TIMEVAL_FIELDS.to_vec(),
        _ => return None,
    })
}

/// A decoded option value and whether bytes were missing to decode all of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub value: Value,
    /// The value ended inside a field or before what the option's layout needs (or the
    /// recorder's snap length cut it): what is shown is all there was.
    pub truncated: bool,
}

impl Decoded {
    fn whole(value: Value) -> Decoded {
        Decoded {
            value,
            truncated: false,
        }
    }
}

/// Little-endian reads from a value that may be short: every read says whether it fitted.
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    pub fn u16(&self, at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.0.get(at..at + 2)?.try_into().ok()?))
    }
    pub fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }
    pub fn i32(&self, at: usize) -> Option<i32> {
        self.u32(at).map(|v| v as i32)
    }
    pub fn u64(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }
    pub fn i64(&self, at: usize) -> Option<i64> {
        self.u64(at).map(|v| v as i64)
    }
}

/// Builds a struct from a fixed field list, stopping at the first field that does not fit.
pub(crate) struct StructBuilder<'a> {
    pub b: Bytes<'a>,
    pub fields: Vec<(&'static str, Value)>,
    pub truncated: bool,
}

impl<'a> StructBuilder<'a> {
    pub fn new(bytes: &'a [u8]) -> StructBuilder<'a> {
        StructBuilder {
            b: Bytes(bytes),
            fields: Vec::new(),
            truncated: false,
        }
    }

    /// Adds a field read by `read` at `at`, unless an earlier field was already cut short or
    /// this one does not fit (then the struct is marked truncated).
    pub fn field(
        &mut self,
        name: &'static str,
        read: impl FnOnce(&Bytes<'a>) -> Option<Value>,
    ) -> &mut Self {
        if !self.truncated {
            match read(&self.b) {
                Some(v) => self.fields.push((name, v)),
                None => self.truncated = true,
            }
        }
        self
    }

    pub fn finish(self) -> Decoded {
        Decoded {
            value: Value::Struct(self.fields),
            truncated: self.truncated,
        }
    }
}

/// Decodes the value bytes of a call at `level`/`optname`. `captured_all` is false when the
/// recorder's snap length cut the value (then the result is marked truncated whatever the
/// decoder found).
pub fn decode_value(level: i32, optname: i32, bytes: &[u8], captured_all: bool) -> Decoded {
    let kind = levels::option(level, optname).map_or(Kind::Hex, |o| o.kind);
    let mut d = decode_kind(kind, bytes);
    if !captured_all {
        d.truncated = true;
    }
    d
}

/// Decodes `bytes` as `kind`.
pub fn decode_kind(kind: Kind, bytes: &[u8]) -> Decoded {
    let b = Bytes(bytes);
    match kind {
        Kind::Hex => Decoded::whole(Value::Bytes(bytes.to_vec())),
        Kind::Int => int_like(bytes, |v| Value::Int(v as i64)),
        Kind::Bool => int_like(bytes, |v| Value::Int(v as i64)),
        Kind::U32 => int_like(bytes, |v| Value::UInt(v as u32 as u64)),
        Kind::U64 => match b.u64(0) {
            Some(v) => exact(bytes, 8, Value::UInt(v)),
            None => fallback_int(bytes),
        },
        Kind::U32OrU64 => match (bytes.len(), b.u64(0), b.u32(0)) {
            (8.., Some(v), _) => exact(bytes, 8, Value::UInt(v)),
            (_, _, Some(v)) => exact(bytes, 4, Value::UInt(v as u64)),
            _ => short(bytes),
        },
        Kind::Str => Decoded::whole(Value::Str(c_string(bytes))),
        Kind::Errno => int_like(bytes, |v| match v {
            0 => Value::Int(0),
            n => errno::name(n).map_or(Value::Int(n as i64), |s| Value::Sym(s.to_string())),
        }),
        Kind::Domain => int_like(bytes, |v| names::sym(names::address_family(v), v)),
        Kind::SockType => int_like(bytes, names::sock_type),
        Kind::Protocol => int_like(bytes, |v| names::sym(names::ip_protocol(v), v)),
        Kind::Linger => {
            let mut s = StructBuilder::new(bytes);
            s.field("l_onoff", |b| b.i32(0).map(|v| Value::Int(v as i64)))
                .field("l_linger", |b| b.i32(4).map(|v| Value::Int(v as i64)));
            trailing(s, 8)
        }
        Kind::Ucred => {
            let mut s = StructBuilder::new(bytes);
            s.field("pid", |b| b.i32(0).map(|v| Value::Int(v as i64)))
                .field("uid", |b| b.u32(4).map(|v| Value::UInt(v as u64)))
                .field("gid", |b| b.u32(8).map(|v| Value::UInt(v as u64)));
            trailing(s, 12)
        }
        Kind::TimevalOld if bytes.len() < 16 && bytes.len() >= 8 => {
            // A 32-bit task's `struct timeval` (two 32-bit longs).
            let mut s = StructBuilder::new(bytes);
            s.field("tv_sec", |b| b.i32(0).map(|v| Value::Int(v as i64)))
                .field("tv_usec", |b| b.i32(4).map(|v| Value::Int(v as i64)));
            trailing(s, 8)
        }
        Kind::TimevalOld | Kind::TimevalNew => {
            let mut s = StructBuilder::new(bytes);
            s.field("tv_sec", |b| b.i64(0).map(Value::Int))
                .field("tv_usec", |b| b.i64(8).map(Value::Int));
            trailing(s, 16)
        }
        Kind::TcpInfo => tcp::decode_tcp_info(bytes),
        Kind::TcpRepairWindow => tcp::decode_repair_window(bytes),
        Kind::Gids => {
            let n = bytes.len() / 4;
            let list = (0..n)
                .filter_map(|i| b.u32(i * 4).map(|g| Value::UInt(g as u64)))
                .collect();
            Decoded {
                value: Value::List(list),
                truncated: !bytes.len().is_multiple_of(4),
            }
        }
        Kind::MemInfo => socket::decode_meminfo(bytes),
        Kind::PmtuDisc => int_like(bytes, |v| names::sym(names::pmtu_disc(v, "IP_"), v)),
        Kind::Pmtu6Disc => int_like(bytes, |v| names::sym(names::pmtu_disc(v, "IPV6_"), v)),
        Kind::InAddr => match bytes.get(..4) {
            Some(a) => exact(
                bytes,
                4,
                Value::Sym(format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
            ),
            None => short(bytes),
        },
        Kind::PortRange => int_like(bytes, |v| {
            let v = v as u32;
            Value::Struct(vec![
                ("lo", Value::UInt((v & 0xffff) as u64)),
                ("hi", Value::UInt((v >> 16) as u64)),
            ])
        }),
        Kind::Tos => int_like(bytes, ip::tos_value),
        Kind::Timestamping => socket::decode_timestamping(bytes),
        Kind::TxTime => socket::decode_txtime(bytes),
        Kind::UdpEncap => int_like(bytes, |v| names::sym(udp::encap_name(v), v)),
        Kind::PacketStats => other::decode_packet_stats(bytes),
        Kind::PacketVersion => int_like(bytes, |v| names::sym(other::tpacket_version(v), v)),
        Kind::XdpStats => other::decode_xdp_stats(bytes),
        Kind::TlsCrypto => other::decode_tls_crypto(bytes),
        Kind::Mask32 => int_like(bytes, |v| Value::Hex(v as u32 as u64)),
    }
}

/// An `int` option: 4 bytes as i32. The kernel hands back a single byte for some int options
/// (IP_TOS, IP_TTL, IP_MULTICAST_*) when the caller's buffer is smaller than an int.
fn int_like(bytes: &[u8], f: impl FnOnce(i32) -> Value) -> Decoded {
    match bytes.len() {
        0 => Decoded {
            value: Value::Bytes(Vec::new()),
            truncated: true,
        },
        1 => Decoded::whole(f(bytes[0] as i32)),
        2 | 3 => short(bytes),
        _ => exact(
            bytes,
            4,
            f(i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))),
        ),
    }
}

fn fallback_int(bytes: &[u8]) -> Decoded {
    int_like(bytes, |v| Value::Int(v as i64))
}

/// A value of `want` bytes; extra bytes are not ours to interpret, so they are shown as hex.
fn exact(bytes: &[u8], want: usize, v: Value) -> Decoded {
    if bytes.len() == want {
        Decoded::whole(v)
    } else {
        Decoded::whole(Value::Struct(vec![
            ("value", v),
            ("extra", Value::Bytes(bytes[want..].to_vec())),
        ]))
    }
}

/// Too short for even the first field: the bytes as they are, marked truncated.
fn short(bytes: &[u8]) -> Decoded {
    Decoded {
        value: Value::Bytes(bytes.to_vec()),
        truncated: true,
    }
}

/// Finishes a fixed-size struct, keeping bytes beyond its size visible.
pub(crate) fn trailing(s: StructBuilder<'_>, size: usize) -> Decoded {
    let bytes = s.b.0;
    let mut d = s.finish();
    if bytes.len() > size
        && let Value::Struct(f) = &mut d.value
    {
        f.push(("extra", Value::Bytes(bytes[size..].to_vec())));
    }
    d
}

/// The bytes up to the first NUL, lossy UTF-8.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Value {
    /// strace-style text: `{state=ESTABLISHED, rtt=132us}`, `"cubic"`, `ECONNREFUSED`.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::UInt(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Hex(v) => {
                let _ = write!(out, "{v:#x}");
            }
            Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Value::Unit(v, u) => {
                let _ = write!(out, "{v}{u}");
            }
            Value::Sym(s) => out.push_str(s),
            Value::Str(s) => write_quoted(out, s),
            Value::Bytes(b) => {
                out.push('"');
                for byte in b {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                out.push('"');
            }
            Value::Struct(fields) => {
                out.push('{');
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(name);
                    out.push('=');
                    v.write_text(out);
                }
                out.push('}');
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_text(out);
                }
                out.push(']');
            }
            Value::Flags(names) => {
                if names.is_empty() {
                    out.push('0');
                }
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    out.push_str(n);
                }
            }
        }
    }

    /// JSON: numbers as numbers, symbols and strings as strings, bytes as a hex string, structs
    /// as objects, flags as an array of names.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::UInt(v) | Value::Hex(v) | Value::Unit(v, _) => {
                let _ = write!(out, "{v}");
            }
            Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Value::Sym(s) | Value::Str(s) => json_string(out, s),
            Value::Bytes(b) => {
                out.push('"');
                hex_into(out, b);
                out.push('"');
            }
            Value::Struct(fields) => {
                out.push('{');
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(out, name);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Flags(names) => json_string_array(out, names),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s);
        s
    }
}

/// A C-style quoted string: printable ASCII as is, the rest escaped.
pub fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    out.push('"');
}

/// A JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of string literals.
pub fn json_string_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, s);
    }
    out.push(']');
}

/// Lower-case hex of `bytes`, no separators.
pub fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each struct kind's data fields are the names its decoder gives, in order, and in the
    /// Value shape that the type says (text, unsigned or signed).
    #[test]
    fn struct_fields_match_the_decoders() {
        for (kind, len) in [
            (Kind::Linger, 8),
            (Kind::Ucred, 12),
            (Kind::TimevalOld, 16),
            (Kind::TimevalOld, 8),
            (Kind::TimevalNew, 16),
            (Kind::TcpInfo, tcp::TCP_INFO_LEN),
        ] {
            let Value::Struct(got) = decode_kind(kind, &vec![1u8; len]).value else {
                panic!("{kind:?} decodes to a struct");
            };
            let want = struct_fields(kind).expect("a struct kind");
            assert_eq!(got.len(), want.len(), "{kind:?}");
            for ((name, v), f) in got.iter().zip(&want) {
                assert_eq!(*name, f.name, "{kind:?}");
                let ok = match f.ty {
                    FieldType::Text => {
                        matches!(v, Value::Sym(_) | Value::Flags(_) | Value::UInt(_))
                    }
                    FieldType::I32 | FieldType::I64 => matches!(v, Value::Int(_)),
                    _ => matches!(v, Value::UInt(_) | Value::Unit(..) | Value::Hex(_)),
                };
                assert!(ok, "{kind:?} {name}: {v:?} as {:?}", f.ty);
                if let Value::Unit(_, u) = v {
                    assert_eq!(*u, f.unit, "{kind:?} {name}");
                }
            }
        }
        assert!(struct_fields(Kind::Int).is_none());
    }
}
