//! The socket behind a call as analyze shows it: strace `-yy` style after the fd in the text
//! form, and the typed fields of [`SOCKET_FIELDS`] for JSON, CSV and Parquet. Every value the
//! decoder does not know is shown by its number; nothing here can fail.

use std::borrow::Cow;
use std::fmt::Write as _;

use format::{Socket, SocketRef};

pub use crate::decode::sockid::SOCKET_FIELDS;
use crate::decode::sockid::{
    AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_UNIX, endpoint_text, ethertype_name, family_name,
    ip_text, is_ip, netlink_protocol_name, sock_type_name, tcp_state_name, unix_name_text,
};

const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;

/// strace's name of an IP socket's protocol: `TCP`, `UDP`, `PING`, `RAW`, ..., `IP` otherwise.
fn ip_label(s: &Socket) -> &'static str {
    match (s.sock_type, s.protocol) {
        (_, 262) => "MPTCP",
        (_, 132) => "SCTP",
        (_, 136) => "UDPLITE",
        (SOCK_RAW, _) => "RAW",
        (SOCK_STREAM, 0 | 6) => "TCP",
        (SOCK_DGRAM, 0 | 17) => "UDP",
        (SOCK_DGRAM, 1 | 58) => "PING",
        _ => "IP",
    }
}

/// Appends `<TCP:[127.0.0.1:40312->127.0.0.1:5432]>` for a call's socket; nothing when the
/// capture has no socket identity or the fd was not a socket.
pub fn write_text(out: &mut String, r: SocketRef<'_>) {
    let Some(s) = r.socket() else { return };
    out.push('<');
    write_label(out, s);
    out.push('>');
}

/// `TCP:[127.0.0.1:40312->127.0.0.1:5432]`: the text form without its angle brackets.
pub fn write_label(out: &mut String, s: &Socket) {
    match s.family {
        AF_INET | AF_INET6 => {
            out.push_str(ip_label(s));
            if s.family == AF_INET6 {
                out.push_str("v6");
            }
            out.push_str(":[");
            endpoint_text(out, s.family, &s.local_addr, s.local_port, s.scope_id);
            if s.remote_port != 0 || s.remote_addr != [0; 16] {
                out.push_str("->");
                endpoint_text(out, s.family, &s.remote_addr, s.remote_port, s.scope_id);
            }
        }
        AF_UNIX => {
            out.push_str("UNIX:[");
            match unix_name_text(&s.unix_path) {
                Some(p) => out.push_str(&p),
                None => {
                    let _ = write!(out, "{}", s.ino);
                }
            }
            if let Some(p) = unix_name_text(&s.unix_peer) {
                out.push_str("->");
                out.push_str(&p);
            }
        }
        AF_NETLINK => {
            let p = netlink_protocol_name(s.protocol);
            let _ = write!(out, "NETLINK:[{p}:{}", s.netlink_portid);
        }
        // The ethertype it receives; 0 is none given, or a file from before it was recorded.
        AF_PACKET if s.protocol != 0 => {
            let _ = write!(out, "PACKET:[{}", ethertype_name(s.protocol));
        }
        f => {
            let name = family_name(f);
            match name.strip_prefix("AF_") {
                Some(n) => out.push_str(n),
                None => {
                    let _ = write!(out, "AF_{name}");
                }
            }
            let _ = write!(out, ":[{}", s.ino);
        }
    }
    out.push(']');
}

/// One socket field's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Null,
    Num(u64),
    Str(Cow<'a, str>),
}

/// The value of the socket field `name` (one of [`SOCKET_FIELDS`]): null when the call has no
/// socket, and for a field its family does not have (ports of a Unix socket).
pub fn field(r: SocketRef<'_>, name: &str) -> FieldValue<'static> {
    use FieldValue::*;
    let Some(s) = r.socket() else { return Null };
    let ip = is_ip(s.family);
    let str = |v: Option<String>| v.map_or(Null, |v| Str(v.into()));
    match name {
        "sock_family" => Str(family_name(s.family)),
        "sock_type" => Str(sock_type_name(s.sock_type)),
        "sock_protocol" => Num(s.protocol as u64),
        "tcp_state" => tcp_state_name(s.tcp_state).map_or(Null, Str),
        "local_addr" => str(ip_text(s.family, &s.local_addr, s.scope_id)),
        "remote_addr" => str(ip_text(s.family, &s.remote_addr, s.scope_id)),
        "local_port" if ip => Num(s.local_port as u64),
        "remote_port" if ip => Num(s.remote_port as u64),
        "unix_path" if s.family == AF_UNIX => str(unix_name_text(&s.unix_path)),
        "unix_peer" if s.family == AF_UNIX => str(unix_name_text(&s.unix_peer)),
        "sock_ino" => Num(s.ino),
        "netns" => Num(s.netns as u64),
        _ => Null,
    }
}

/// Whether `name` is a socket field.
pub fn is_socket_field(name: &str) -> bool {
    SOCKET_FIELDS.iter().any(|f| f.0 == name)
}

/// How `info` says whether the capture has socket identity.
pub fn capture_text(h: &format::CaptureHeader) -> String {
    use format::SocketCapture::*;
    let why = |w: &str| match w {
        "" => String::new(),
        w => format!(": {w}"),
    };
    match h.socket_capture() {
        NotSaid => "not recorded (the header does not say)".into(),
        Recorded => "recorded".into(),
        Off(w) => format!("not recorded, turned off{}", why(w)),
        Unavailable(w) => format!("not recorded, unavailable{}", why(w)),
        Other(v) => format!("unknown ({v})"),
    }
}
