//! The `--where` expression language: a tokenizer and a recursive-descent parser that compiles
//! straight to [`Expr`], resolving names (options, levels, errnos) against the field they are
//! compared with, so `optname == TCP_INFO` means level SOL_TCP option 11, never SO_NO_CHECK.
//!
//! ```text
//! expr    := or
//! or      := and ( ("||" | "or") and )*
//! and     := unary ( ("&&" | "and") unary )*
//! unary   := ("!" | "not") unary | "(" expr ")" | compare
//! compare := FIELD OP VALUE
//! OP      := "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~" | "in"
//!            (~ is a glob match; in: an address in a network, remote_addr in 10.0.0.0/8)
//! VALUE   := NUMBER | NUMBER UNIT | "-" NUMBER | NAME | ADDRESS | "string"
//! ```
//!
//! A test of a socket field (sock_family, remote_port, ...) is false for a call without a
//! socket (none recorded, or the fd was not a socket), whatever its operator: `remote_port !=
//! 443` holds only for calls on sockets; `!(remote_port == 443)` holds for the others too.

use super::glob::Glob;
use crate::cgroup;
use crate::sockid::{self, Cidr, SocketView};
use crate::time::parse_duration;
use crate::{errno, levels};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    #[inline]
    pub fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// Integer fields known per call site (so known for every event of a site in a block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntField {
    Pid,
    Tid,
    Ppid,
    Uid,
    Gid,
    Cgroup,
    PidNs,
    MntNs,
    Cpu,
    Fd,
    Level,
    Optname,
    OptlenIn,
    OptlenOut,
    Ret,
    Errno,
    ValueLen,
    Flags,
}

/// Integer fields of the socket behind a call (FORMAT.md 4.3). Names (families, types, TCP
/// states) are resolved to their numbers when parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockIntField {
    Family,
    Type,
    Protocol,
    TcpState,
    LocalPort,
    RemotePort,
    Ino,
    Netns,
}

/// Which address or name of a socket: its own, its peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// One test on one field.
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    Int(IntField, CmpOp, i64),
    /// comm equal to (or, negated, different from) a name; or matching a glob.
    Comm {
        glob: Glob,
        negate: bool,
    },
    /// (level, optname) in a set: what an option name means.
    Option {
        pairs: Vec<(i32, i32)>,
        negate: bool,
    },
    /// The cgroup path from the process table matches a glob.
    CgroupPath {
        glob: Glob,
        negate: bool,
    },
    /// An attribution field of the process (container, pod, unit) matches a glob. An unknown
    /// value matches nothing: `pod_name != x` holds for a process in no pod, `pod_name ~ *`
    /// does not.
    Attr {
        field: cgroup::Field,
        glob: Glob,
        negate: bool,
    },
    /// Call duration in ns.
    Duration(CmpOp, u64),
    /// Time since the capture start in ns.
    Time(CmpOp, u64),
    /// A socket field compared with a number (ports only on IP sockets).
    Sock(SockIntField, CmpOp, i64),
    /// An IP address of the socket in (or, negated, outside) a network.
    SockAddr {
        side: Side,
        net: Cidr,
        negate: bool,
    },
    /// A Unix socket's bound name (`unix_path`, Local) or its peer's (Remote) as text
    /// (`@name` when abstract) matches a glob.
    UnixName {
        side: Side,
        glob: Glob,
        negate: bool,
    },
}

impl Pred {
    /// Whether the predicate needs the event itself (its time or duration), not just its site.
    pub fn per_event(&self) -> bool {
        matches!(self, Pred::Duration(..) | Pred::Time(..))
    }

    /// Whether the predicate tests the call's socket.
    pub fn on_socket(&self) -> bool {
        matches!(
            self,
            Pred::Sock(..) | Pred::SockAddr { .. } | Pred::UnixName { .. }
        )
    }
}

/// A boolean combination of predicates.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    True,
    Pred(Pred),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    pub fn and(list: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for e in list {
            match e {
                Expr::True => {}
                Expr::And(v) => flat.extend(v),
                e => flat.push(e),
            }
        }
        match flat.len() {
            0 => Expr::True,
            1 => flat.pop().expect("one element"),
            _ => Expr::And(flat),
        }
    }

    pub fn or(mut list: Vec<Expr>) -> Expr {
        if list.len() == 1 {
            list.pop().expect("one element")
        } else {
            Expr::Or(list)
        }
    }

    /// The same expression with the operands of every `&&` and `||` in order of the cost of
    /// testing them (integers, then options, then names and paths): tests have no side
    /// effects, so the order changes only how soon a short circuit comes.
    pub fn cheapest_first(self) -> Expr {
        match self {
            Expr::And(v) => Expr::And(sorted_by_cost(v)),
            Expr::Or(v) => Expr::Or(sorted_by_cost(v)),
            Expr::Not(e) => Expr::Not(Box::new(e.cheapest_first())),
            e => e,
        }
    }

    fn cost(&self) -> u32 {
        match self {
            Expr::True => 0,
            Expr::Pred(Pred::Int(..)) => 1,
            Expr::Pred(Pred::Option { .. }) => 2,
            Expr::Pred(Pred::Duration(..) | Pred::Time(..)) => 3,
            Expr::Pred(Pred::Comm { .. }) => 4,
            Expr::Pred(Pred::CgroupPath { .. } | Pred::Attr { .. }) => 8,
            Expr::Pred(Pred::Sock(..)) => 2,
            Expr::Pred(Pred::SockAddr { .. }) => 3,
            Expr::Pred(Pred::UnixName { .. }) => 5,
            Expr::Not(e) => e.cost(),
            Expr::And(v) | Expr::Or(v) => v.iter().map(Expr::cost).sum(),
        }
    }

    /// Whether evaluating needs the socket of a call anywhere.
    pub fn uses_sockets(&self) -> bool {
        match self {
            Expr::True => false,
            Expr::Pred(p) => p.on_socket(),
            Expr::Not(e) => e.uses_sockets(),
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::uses_sockets),
        }
    }

    /// Whether evaluating needs the event's time anywhere (its duration aside).
    pub fn uses_time(&self) -> bool {
        match self {
            Expr::True => false,
            Expr::Pred(p) => matches!(p, Pred::Time(..)),
            Expr::Not(e) => e.uses_time(),
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::uses_time),
        }
    }

    /// The durations at which some duration test of the expression can change its answer,
    /// ascending, without 0: between two neighbours every test, so the whole expression for a
    /// given site and time, answers the same (`d <= v` changes at v + 1, `d == v` at v and v + 1).
    pub fn duration_breaks(&self) -> Vec<u64> {
        fn walk(e: &Expr, out: &mut Vec<u64>) {
            match e {
                Expr::True => {}
                Expr::Pred(Pred::Duration(_, v)) => out.extend([*v, v.saturating_add(1)]),
                Expr::Pred(_) => {}
                Expr::Not(e) => walk(e, out),
                Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| walk(e, out)),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort_unstable();
        out.dedup();
        out.retain(|&b| b > 0);
        out
    }

    /// Whether evaluating needs per-event data anywhere.
    pub fn per_event(&self) -> bool {
        match self {
            Expr::True => false,
            Expr::Pred(p) => p.per_event(),
            Expr::Not(e) => e.per_event(),
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::per_event),
        }
    }
}

/// One call as [`Expr::matches`] sees it: what a live evaluator (the recorder's `--trigger`)
/// knows of an event it has just drained. `analyze` judges whole blocks' sites instead, with
/// its own three-valued walk over the same [`Expr`].
pub trait Call {
    /// An integer field; [`IntField::Errno`] is 0 for a call that succeeded.
    fn int(&self, f: IntField) -> i128;
    /// The task name without its NUL padding.
    fn comm(&self) -> &[u8];
    /// The process's cgroup v2 path (empty when unknown).
    fn cgroup_path(&self) -> Vec<u8>;
    /// The process's attribution (container, pod, unit).
    fn attribution(&self) -> cgroup::Attribution;
    fn duration_ns(&self) -> u64;
    /// Time since the capture's start, ns.
    fn time_ns(&self) -> u64;
    /// The call's socket; `None` for a call without one (none recorded, or not a socket).
    fn socket(&self) -> Option<SocketView<'_>>;
}

impl Expr {
    /// Whether one call passes the expression.
    pub fn matches(&self, c: &impl Call) -> bool {
        match self {
            Expr::True => true,
            Expr::Pred(p) => p.matches(c),
            Expr::Not(e) => !e.matches(c),
            Expr::And(v) => v.iter().all(|e| e.matches(c)),
            Expr::Or(v) => v.iter().any(|e| e.matches(c)),
        }
    }
}

impl Pred {
    fn matches(&self, c: &impl Call) -> bool {
        match self {
            Pred::Int(f, op, v) => op.test(c.int(*f), *v as i128),
            Pred::Comm { glob, negate } => glob.matches(c.comm()) != *negate,
            Pred::CgroupPath { glob, negate } => glob.matches(&c.cgroup_path()) != *negate,
            // As analyze judges it: an unknown value matches nothing.
            Pred::Attr {
                field,
                glob,
                negate,
            } => match c.attribution().get(*field) {
                Some(v) => glob.matches(v.as_bytes()) != *negate,
                None => *negate,
            },
            Pred::Option { pairs, negate } => {
                let (level, optname) = (c.int(IntField::Level), c.int(IntField::Optname));
                pairs
                    .iter()
                    .any(|&(l, o)| l as i128 == level && o as i128 == optname)
                    != *negate
            }
            Pred::Duration(op, v) => op.test(c.duration_ns(), *v),
            Pred::Time(op, v) => op.test(c.time_ns(), *v),
            Pred::Sock(..) | Pred::SockAddr { .. } | Pred::UnixName { .. } => {
                self.socket_matches(c.socket().as_ref())
            }
        }
    }

    /// Whether a call's socket passes this socket test ([`Pred::Sock`], [`Pred::SockAddr`],
    /// [`Pred::UnixName`]): false without a socket, for a field its family lacks, and for a
    /// predicate that is not a socket test.
    pub fn socket_matches(&self, sock: Option<&SocketView<'_>>) -> bool {
        let Some(k) = sock else { return false };
        match self {
            Pred::Sock(f, op, v) => f.of(k).is_some_and(|x| op.test(x, *v as i128)),
            Pred::SockAddr { side, net, negate } => {
                let a = match side {
                    Side::Local => k.local_addr,
                    Side::Remote => k.remote_addr,
                };
                sockid::is_ip(k.family) && net.contains(k.family, a) != *negate
            }
            Pred::UnixName { side, glob, negate } => {
                let name = match side {
                    Side::Local => k.unix_path,
                    Side::Remote => k.unix_peer,
                };
                let text = sockid::unix_name_text(name).unwrap_or_default();
                k.family == sockid::AF_UNIX && glob.matches(text.as_bytes()) != *negate
            }
            _ => false,
        }
    }
}

impl SockIntField {
    /// The field's value for a socket; `None` for a port of a socket that is not IP.
    pub fn of(self, k: &SocketView<'_>) -> Option<i128> {
        let ip = sockid::is_ip(k.family);
        Some(match self {
            SockIntField::Family => k.family as i128,
            SockIntField::Type => k.sock_type as i128,
            SockIntField::Protocol => k.protocol as i128,
            SockIntField::TcpState => k.tcp_state as i128,
            SockIntField::LocalPort if ip => k.local_port as i128,
            SockIntField::RemotePort if ip => k.remote_port as i128,
            SockIntField::Ino => k.ino as i128,
            SockIntField::Netns => k.netns as i128,
            _ => return None,
        })
    }
}

fn sorted_by_cost(v: Vec<Expr>) -> Vec<Expr> {
    let mut v: Vec<Expr> = v.into_iter().map(Expr::cheapest_first).collect();
    v.sort_by_key(Expr::cost);
    v
}

/// A parse error: a message and the character column it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// The message, then the expression, then a caret under the column.
    pub fn render(&self, src: &str) -> String {
        format!(
            "{}\n  {}\n  {}^",
            self.message,
            src,
            " ".repeat(self.column)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Num(String),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Not,
    And,
    Or,
    Minus,
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Num(s) => format!("'{s}'"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Op(o) => format!("'{o}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Not => "'!'".into(),
        Tok::And => "'&&'".into(),
        Tok::Or => "'||'".into(),
        Tok::Minus => "'-'".into(),
        Tok::End => "the end of the expression".into(),
    }
}

/// Splits `src` into tokens with their character columns.
fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column, message: String| ParseError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let tok = match two.as_str() {
            "==" => Some(Tok::Op("==")),
            "!=" => Some(Tok::Op("!=")),
            "<=" => Some(Tok::Op("<=")),
            ">=" => Some(Tok::Op(">=")),
            "!~" => Some(Tok::Op("!~")),
            "&&" => Some(Tok::And),
            "||" => Some(Tok::Or),
            _ => None,
        };
        if let Some(t) = tok {
            out.push((t, start));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '!' => Tok::Not,
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '~' => Tok::Op("~"),
            '-' => Tok::Minus,
            '=' => {
                return Err(err(
                    start,
                    "expected '==' (comparison), found a single '='".into(),
                ));
            }
            '&' | '|' => {
                return Err(err(
                    start,
                    format!("expected '{c}{c}', found a single '{c}'"),
                ));
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "this string is not closed".into())),
                        Some(&q) if q == quote => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some(&e) => {
                                    s.push(e);
                                }
                                None => {
                                    return Err(err(start, "this string is not closed".into()));
                                }
                            }
                        }
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                i += 1;
                out.push((Tok::Str(s), start));
                continue;
            }
            c if c.is_ascii_digit() => {
                let mut s = String::new();
                while let Some(&ch) = chars.get(i) {
                    // ':', '/' and '%' for addresses and networks (10.0.0.0/8, 2001:db8::1).
                    if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | 'µ' | ':' | '/' | '%')
                    {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Num(s), start));
                continue;
            }
            // An IPv6 address that starts with '::'.
            ':' => {
                let mut s = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_ascii_alphanumeric() || matches!(ch, '.' | ':' | '/' | '%') {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((Tok::Num(s), start));
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '.' | '*' | '?' | ':' | '/' | '%')
                    {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                let t = match s.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::Op("in"),
                    _ => Tok::Ident(s),
                };
                out.push((t, start));
                continue;
            }
            c => return Err(err(start, format!("unexpected character '{c}'"))),
        };
        out.push((tok, start));
        i += 1;
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// The fields `--where` and `--by` know, with what they mean. Shown by `--help`.
pub const FIELDS: &[(&str, &str)] = &[
    ("pid", "process id (tgid)"),
    ("tid", "thread id"),
    ("ppid", "parent process id"),
    ("uid", "user id"),
    ("gid", "group id"),
    ("comm", "task name (== != exact, ~ !~ glob)"),
    (
        "cgroup",
        "cgroup v2 id, or a path glob against the process table",
    ),
    ("pidns", "pid namespace inode"),
    ("mntns", "mount namespace inode"),
    ("cpu", "CPU the call returned on"),
    ("fd", "socket file descriptor"),
    (
        "level",
        "socket level: number or name (SOL_TCP, IPPROTO_TCP, tcp)",
    ),
    (
        "optname",
        "option: name (TCP_INFO, within its level) or number (any level)",
    ),
    ("optlen", "*optlen passed in"),
    ("optlen_out", "*optlen returned"),
    ("ret", "return value (0 or -errno)"),
    ("errno", "errno name or number; 0 when the call succeeded"),
    ("value_len", "captured value bytes"),
    ("flags", "recorder flag bits"),
    (
        "duration",
        "call duration (10us, 1.5ms; a bare number is ns)",
    ),
    ("time", "time since the capture start (2s, 150ms)"),
    (
        "sock_family",
        "socket's address family: AF_INET, inet6, unix, netlink, or a number",
    ),
    (
        "sock_type",
        "socket type: SOCK_STREAM, dgram, raw, ... or a number",
    ),
    (
        "sock_protocol",
        "protocol number (6 TCP, 17 UDP; NETLINK_* for netlink)",
    ),
    (
        "tcp_state",
        "TCP state: ESTABLISHED, LISTEN, SYN_SENT, ... or a number",
    ),
    (
        "local_addr",
        "local IP address: == != an address, in a network (10.0.0.0/8)",
    ),
    ("local_port", "local port"),
    (
        "remote_addr",
        "remote IP address: == != an address, in a network",
    ),
    ("remote_port", "remote port"),
    (
        "unix_path",
        "Unix socket's bound name (== != exact, ~ !~ glob; @name abstract)",
    ),
    ("unix_peer", "Unix socket peer's bound name"),
    ("sock_ino", "socket inode"),
    ("netns", "network namespace inode"),
];

/// [`FIELDS`] and then the attribution fields ([`cgroup::FIELDS`]).
pub fn fields() -> impl Iterator<Item = (&'static str, &'static str)> {
    FIELDS
        .iter()
        .copied()
        .chain(cgroup::FIELDS.iter().map(|f| (f.1, f.2)))
}

enum FieldKind {
    Int(IntField),
    Comm,
    Cgroup,
    Attr(cgroup::Field),
    Level,
    Optname,
    Errno,
    Duration,
    Time,
    Sock(SockIntField),
    Addr(Side),
    Unix(Side),
}

fn field_kind(name: &str) -> Option<FieldKind> {
    use IntField::*;
    Some(match name {
        "pid" | "tgid" => FieldKind::Int(Pid),
        "tid" => FieldKind::Int(Tid),
        "ppid" => FieldKind::Int(Ppid),
        "uid" => FieldKind::Int(Uid),
        "gid" => FieldKind::Int(Gid),
        "comm" => FieldKind::Comm,
        "cgroup" => FieldKind::Cgroup,
        "pidns" => FieldKind::Int(PidNs),
        "mntns" => FieldKind::Int(MntNs),
        "cpu" => FieldKind::Int(Cpu),
        "fd" => FieldKind::Int(Fd),
        "level" => FieldKind::Level,
        "optname" | "option" | "opt" => FieldKind::Optname,
        "optlen" | "optlen_in" => FieldKind::Int(OptlenIn),
        "optlen_out" => FieldKind::Int(OptlenOut),
        "ret" => FieldKind::Int(Ret),
        "errno" => FieldKind::Errno,
        "value_len" => FieldKind::Int(ValueLen),
        "flags" => FieldKind::Int(Flags),
        "duration" | "dur" | "latency" => FieldKind::Duration,
        "time" => FieldKind::Time,
        "sock_family" | "family" => FieldKind::Sock(SockIntField::Family),
        "sock_type" => FieldKind::Sock(SockIntField::Type),
        "sock_protocol" => FieldKind::Sock(SockIntField::Protocol),
        "tcp_state" => FieldKind::Sock(SockIntField::TcpState),
        "local_port" => FieldKind::Sock(SockIntField::LocalPort),
        "remote_port" => FieldKind::Sock(SockIntField::RemotePort),
        "sock_ino" => FieldKind::Sock(SockIntField::Ino),
        "netns" => FieldKind::Sock(SockIntField::Netns),
        "local_addr" => FieldKind::Addr(Side::Local),
        "remote_addr" => FieldKind::Addr(Side::Remote),
        "unix_path" => FieldKind::Unix(Side::Local),
        "unix_peer" => FieldKind::Unix(Side::Remote),
        _ => FieldKind::Attr(cgroup::Field::by_name(name)?),
    })
}

/// Parses a `--where` expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser { toks, pos: 0 };
    if p.peek() == &Tok::End {
        return Err(ParseError {
            column: 0,
            message: "expected a condition such as comm == \"nginx\", found an empty expression"
                .into(),
        });
    }
    let e = p.or()?;
    if p.peek() != &Tok::End {
        return Err(p.error(format!(
            "expected '&&', '||' or the end of the expression, found {}",
            describe(p.peek())
        )));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn column(&self) -> usize {
        self.toks[self.pos].1
    }
    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn error(&self, message: String) -> ParseError {
        ParseError {
            column: self.column(),
            message,
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut list = vec![self.and()?];
        while self.peek() == &Tok::Or {
            self.next();
            list.push(self.and()?);
        }
        Ok(Expr::or(list))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut list = vec![self.unary()?];
        while self.peek() == &Tok::And {
            self.next();
            list.push(self.unary()?);
        }
        Ok(if list.len() == 1 {
            list.pop().expect("one element")
        } else {
            Expr::And(list)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Not => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                let open = self.column();
                self.next();
                let e = self.or()?;
                if self.peek() != &Tok::RParen {
                    let found = describe(self.peek());
                    return Err(self.error(format!(
                        "expected ')' to close the '(' at column {}, found {found}",
                        open + 1
                    )));
                }
                self.next();
                Ok(e)
            }
            _ => self.compare(),
        }
    }

    /// `field op value`: the field and operator here, the value by one parser per field kind.
    fn compare(&mut self) -> Result<Expr, ParseError> {
        let (name, kind) = self.field()?;
        let (op, op_col) = self.operator(&name)?;
        let val_col = self.column();
        let (mut val, _) = self.next();
        let mut negative = false;
        if val == Tok::Minus {
            negative = true;
            val = self.next().0;
        }
        let rhs = Rhs {
            name,
            op_col,
            cmp: cmp_op(op),
            glob_op: matches!(op, "~" | "!~"),
            val,
            val_col,
            negative,
        };
        if rhs.val == Tok::End || matches!(rhs.val, Tok::Op(_) | Tok::And | Tok::Or | Tok::RParen) {
            return Err(rhs.err(format!(
                "expected a value after '{} {op}', found {}",
                rhs.name,
                describe(&rhs.val)
            )));
        }
        if rhs.glob_op
            && !matches!(
                kind,
                FieldKind::Comm | FieldKind::Cgroup | FieldKind::Attr(_) | FieldKind::Unix(_)
            )
        {
            return Err(ParseError {
                column: op_col,
                message: format!(
                    "'{op}' (glob match) works on comm, cgroup paths, container fields and unix names only"
                ),
            });
        }
        if op == "in" && !matches!(kind, FieldKind::Addr(_)) {
            return Err(ParseError {
                column: op_col,
                message: "'in' (an address in a network) works on local_addr and remote_addr only"
                    .into(),
            });
        }
        let pred = match kind {
            FieldKind::Int(f) => Pred::Int(f, rhs.cmp, rhs.int()?),
            FieldKind::Comm => rhs.comm()?,
            FieldKind::Cgroup => rhs.cgroup()?,
            FieldKind::Attr(f) => rhs.attr(f)?,
            FieldKind::Level => rhs.level()?,
            FieldKind::Optname => rhs.optname()?,
            FieldKind::Errno => rhs.errno()?,
            FieldKind::Duration => Pred::Duration(rhs.cmp, rhs.duration()?),
            FieldKind::Time => Pred::Time(rhs.cmp, rhs.duration()?),
            FieldKind::Sock(f) => Pred::Sock(f, rhs.cmp, rhs.sock_int(f)?),
            FieldKind::Addr(side) => rhs.addr(side)?,
            FieldKind::Unix(side) => {
                rhs.eq_only("a unix name")?;
                let s = match &rhs.val {
                    Tok::Str(s) | Tok::Ident(s) | Tok::Num(s) => s,
                    t => {
                        return Err(rhs.err(format!(
                            "expected a unix socket name, found {}",
                            describe(t)
                        )));
                    }
                };
                Pred::UnixName {
                    side,
                    glob: rhs.glob(s)?,
                    negate: rhs.cmp == CmpOp::Ne,
                }
            }
        };
        Ok(Expr::Pred(pred))
    }

    fn field(&mut self) -> Result<(String, FieldKind), ParseError> {
        let (tok, col) = self.next();
        let name = match tok {
            Tok::Ident(s) => s,
            t => {
                return Err(ParseError {
                    column: col,
                    message: format!(
                        "expected a field name (pid, comm, optname, errno, duration, ...), found {}",
                        describe(&t)
                    ),
                });
            }
        };
        let kind = field_kind(&name).ok_or_else(|| ParseError {
            column: col,
            message: format!(
                "unknown field '{name}'; fields: {}",
                fields().map(|f| f.0).collect::<Vec<_>>().join(", ")
            ),
        })?;
        Ok((name, kind))
    }

    fn operator(&mut self, name: &str) -> Result<(&'static str, usize), ParseError> {
        let (op_tok, op_col) = self.next();
        match op_tok {
            Tok::Op(o) => Ok((o, op_col)),
            t => Err(ParseError {
                column: op_col,
                message: format!(
                    "expected a comparison (==, !=, <, <=, >, >=, ~) after '{name}', found {}",
                    describe(&t)
                ),
            }),
        }
    }
}

fn cmp_op(op: &str) -> CmpOp {
    match op {
        "==" | "~" | "in" => CmpOp::Eq,
        "!=" | "!~" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        _ => CmpOp::Ge,
    }
}

/// The right-hand side of a comparison, with what its value parsers need to say where it went
/// wrong.
struct Rhs {
    name: String,
    op_col: usize,
    cmp: CmpOp,
    /// `~` or `!~`: the value is a glob pattern.
    glob_op: bool,
    val: Tok,
    val_col: usize,
    /// A `-` came before the value.
    negative: bool,
}

impl Rhs {
    fn err(&self, message: String) -> ParseError {
        ParseError {
            column: self.val_col,
            message,
        }
    }

    fn eq_only(&self, what: &str) -> Result<(), ParseError> {
        if matches!(self.cmp, CmpOp::Eq | CmpOp::Ne) {
            Ok(())
        } else {
            Err(ParseError {
                column: self.op_col,
                message: format!("{what} can only be compared with == or !="),
            })
        }
    }

    fn int(&self) -> Result<i64, ParseError> {
        let name = &self.name;
        let s = match &self.val {
            Tok::Num(s) => s,
            t => {
                return Err(self.err(format!(
                    "expected a number for '{name}', found {}",
                    describe(t)
                )));
            }
        };
        let n = parse_int(s)
            .ok_or_else(|| self.err(format!("expected a number for '{name}', found '{s}'")))?;
        Ok(if self.negative { -n } else { n })
    }

    /// The value as a glob: a pattern after `~`, the literal text after `==`.
    fn glob(&self, s: &str) -> Result<Glob, ParseError> {
        let pattern = if self.glob_op {
            s.to_string()
        } else {
            escape_glob(s)
        };
        Glob::new(&pattern).map_err(|e| self.err(e))
    }

    fn comm(&self) -> Result<Pred, ParseError> {
        self.eq_only("comm")?;
        let s = match &self.val {
            Tok::Str(s) | Tok::Ident(s) | Tok::Num(s) => s,
            t => {
                return Err(self.err(format!("expected a process name, found {}", describe(t))));
            }
        };
        Ok(Pred::Comm {
            glob: self.glob(s)?,
            negate: self.cmp == CmpOp::Ne,
        })
    }

    fn attr(&self, field: cgroup::Field) -> Result<Pred, ParseError> {
        self.eq_only(field.name())?;
        let s = match &self.val {
            Tok::Str(s) | Tok::Ident(s) | Tok::Num(s) => s,
            t => {
                return Err(self.err(format!(
                    "expected a name or a \"string\", found {}",
                    describe(t)
                )));
            }
        };
        Ok(Pred::Attr {
            field,
            glob: self.glob(s)?,
            negate: self.cmp == CmpOp::Ne,
        })
    }

    fn cgroup(&self) -> Result<Pred, ParseError> {
        match &self.val {
            Tok::Num(_) if !self.glob_op => Ok(Pred::Int(IntField::Cgroup, self.cmp, self.int()?)),
            Tok::Str(s) | Tok::Ident(s) => {
                self.eq_only("a cgroup path")?;
                Ok(Pred::CgroupPath {
                    glob: self.glob(s)?,
                    negate: self.cmp == CmpOp::Ne,
                })
            }
            t => Err(self.err(format!(
                "expected a cgroup id or path, found {}",
                describe(t)
            ))),
        }
    }

    fn level(&self) -> Result<Pred, ParseError> {
        let l = match &self.val {
            Tok::Num(_) => self.int()?,
            Tok::Ident(s) => levels::level_by_name(s).ok_or_else(|| {
                self.err(format!(
                    "unknown level '{s}' (try SOL_SOCKET, SOL_TCP, SOL_IP, SOL_IPV6, ...)"
                ))
            })? as i64,
            t => return Err(self.err(format!("expected a level, found {}", describe(t)))),
        };
        Ok(Pred::Int(IntField::Level, self.cmp, l))
    }

    fn optname(&self) -> Result<Pred, ParseError> {
        match &self.val {
            Tok::Num(_) => Ok(Pred::Int(IntField::Optname, self.cmp, self.int()?)),
            Tok::Ident(s) => {
                self.eq_only("an option name")?;
                let pairs = levels::option_by_name(s);
                if pairs.is_empty() {
                    return Err(self.err(format!(
                        "unknown option '{s}' (names are as in the kernel headers, e.g. TCP_INFO, SO_RCVBUF)"
                    )));
                }
                Ok(Pred::Option {
                    pairs,
                    negate: self.cmp == CmpOp::Ne,
                })
            }
            t => Err(self.err(format!("expected an option, found {}", describe(t)))),
        }
    }

    fn errno(&self) -> Result<Pred, ParseError> {
        let n = match &self.val {
            Tok::Num(_) => self.int()?,
            Tok::Ident(s) => errno::by_name(s).ok_or_else(|| {
                self.err(format!("unknown errno '{s}' (e.g. EINVAL, ENOPROTOOPT)"))
            })? as i64,
            t => return Err(self.err(format!("expected an errno, found {}", describe(t)))),
        };
        Ok(Pred::Int(IntField::Errno, self.cmp, n))
    }

    /// A socket field's number, or the name of a family, type or TCP state.
    fn sock_int(&self, f: SockIntField) -> Result<i64, ParseError> {
        let Tok::Ident(s) = &self.val else {
            return self.int();
        };
        let v = match f {
            SockIntField::Family => sockid::family_by_name(s).map(i64::from),
            SockIntField::Type => sockid::sock_type_by_name(s).map(i64::from),
            SockIntField::TcpState => sockid::tcp_state_by_name(s).map(i64::from),
            _ => None,
        };
        v.ok_or_else(|| {
            let what = match f {
                SockIntField::Family => "an address family (AF_INET, inet6, unix, netlink, ...)",
                SockIntField::Type => "a socket type (SOCK_STREAM, dgram, ...)",
                SockIntField::TcpState => "a TCP state (ESTABLISHED, LISTEN, ...)",
                _ => "a number",
            };
            self.err(format!("expected {what} for '{}', found '{s}'", self.name))
        })
    }

    fn addr(&self, side: Side) -> Result<Pred, ParseError> {
        self.eq_only("an address")?;
        let s = match &self.val {
            Tok::Num(s) | Tok::Ident(s) | Tok::Str(s) if !self.negative => s,
            t => {
                return Err(self.err(format!(
                    "expected an IP address or network, found {}",
                    describe(t)
                )));
            }
        };
        Ok(Pred::SockAddr {
            side,
            net: Cidr::parse(s).map_err(|e| self.err(e))?,
            negate: self.cmp == CmpOp::Ne,
        })
    }

    /// A duration or a time since the capture's start, in ns.
    fn duration(&self) -> Result<u64, ParseError> {
        match &self.val {
            Tok::Num(s) if !self.negative => parse_duration(s).map_err(|e| self.err(e)),
            t => Err(self.err(format!(
                "expected a duration such as 10us, found {}{}",
                if self.negative { "-" } else { "" },
                describe(t)
            ))),
        }
    }
}

/// Decimal or 0x-hex integer.
pub fn parse_int(s: &str) -> Option<i64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A glob that matches `s` literally.
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {

    struct TestCall {
        ret: i32,
        level: i32,
        optname: i32,
        comm: &'static [u8],
        duration_ns: u64,
    }

    impl Call for TestCall {
        fn int(&self, f: IntField) -> i128 {
            match f {
                IntField::Ret => self.ret as i128,
                IntField::Errno => (-self.ret).max(0) as i128,
                IntField::Level => self.level as i128,
                IntField::Optname => self.optname as i128,
                _ => 0,
            }
        }
        fn comm(&self) -> &[u8] {
            self.comm
        }
        fn cgroup_path(&self) -> Vec<u8> {
            b"/system.slice/envoy.service".to_vec()
        }
        fn attribution(&self) -> cgroup::Attribution {
            cgroup::Attribution {
                cgroup: cgroup::parse("/system.slice/envoy.service"),
                names: cgroup::Names::default(),
            }
        }
        fn duration_ns(&self) -> u64 {
            self.duration_ns
        }
        fn time_ns(&self) -> u64 {
            0
        }
        fn socket(&self) -> Option<SocketView<'_>> {
            None
        }
    }

    /// A failed call on a socket: `TestCall`'s answers, and the socket's.
    struct SockCall<'a>(TestCall, Option<SocketView<'a>>);

    impl Call for SockCall<'_> {
        fn int(&self, f: IntField) -> i128 {
            self.0.int(f)
        }
        fn comm(&self) -> &[u8] {
            self.0.comm()
        }
        fn cgroup_path(&self) -> Vec<u8> {
            self.0.cgroup_path()
        }
        fn attribution(&self) -> cgroup::Attribution {
            self.0.attribution()
        }
        fn duration_ns(&self) -> u64 {
            0
        }
        fn time_ns(&self) -> u64 {
            0
        }
        fn socket(&self) -> Option<SocketView<'_>> {
            self.1
        }
    }

    #[test]
    fn one_call_is_judged_with_its_socket() {
        let (local, remote) = (
            [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let tcp = SocketView {
            family: sockid::AF_INET,
            sock_type: 1,
            protocol: 6,
            tcp_state: 2,
            local_addr: &local,
            local_port: 40312,
            remote_addr: &remote,
            remote_port: 5432,
            ino: 77,
            netns: 4026531840,
            unix_path: b"",
            unix_peer: b"",
        };
        let unix = SocketView {
            family: sockid::AF_UNIX,
            sock_type: 1,
            protocol: 0,
            tcp_state: 0,
            local_port: 0,
            remote_port: 0,
            unix_path: b"\0app",
            ..tcp
        };
        let call = |s| {
            let c = TestCall {
                ret: -111,
                level: 6,
                optname: 11,
                comm: b"envoy",
                duration_ns: 0,
            };
            SockCall(c, s)
        };
        let (on_tcp, on_unix, on_none) = (call(Some(tcp)), call(Some(unix)), call(None));
        for (src, tcp, unix, none) in [
            (
                "remote_port == 5432 && errno == ECONNREFUSED",
                true,
                false,
                false,
            ),
            ("remote_port != 5432", false, false, false),
            ("!(remote_port == 5432)", false, true, true),
            (
                "remote_addr in 10.0.0.0/8 && tcp_state == SYN_SENT",
                true,
                false,
                false,
            ),
            (
                "unix_path == \"@app\" || local_port == 40312",
                true,
                true,
                false,
            ),
            ("sock_family == unix && sock_ino == 77", false, true, false),
        ] {
            let e = parse(src).unwrap();
            assert_eq!(e.matches(&on_tcp), tcp, "{src}");
            assert_eq!(e.matches(&on_unix), unix, "{src}");
            assert_eq!(e.matches(&on_none), none, "{src}");
        }
    }

    #[test]
    fn one_call_is_judged_by_the_parsed_expression() {
        let refused = TestCall {
            ret: -111,
            level: 6,
            optname: 11,
            comm: b"envoy",
            duration_ns: 2_000_000,
        };
        let ok = TestCall {
            ret: 0,
            comm: b"curl",
            duration_ns: 10,
            ..refused
        };
        for (src, on_refused, on_ok) in [
            ("errno == ECONNREFUSED", true, false),
            ("optname == TCP_INFO && duration > 1ms", true, false),
            ("comm == \"envoy\" && errno == ETIMEDOUT", false, false),
            ("comm ~ \"cu*\" || errno == 0", false, true),
            ("!(optname == TCP_INFO)", false, false),
            ("cgroup ~ \"*envoy*\"", true, true),
            ("systemd_unit == \"envoy.service\"", true, true),
        ] {
            let e = parse(src).unwrap();
            assert_eq!(e.matches(&refused), on_refused, "{src}");
            assert_eq!(e.matches(&ok), on_ok, "{src}");
        }
    }
    use super::*;

    #[test]
    fn cheapest_first_tests_integers_before_names_and_keeps_the_structure() {
        let e = parse("comm == nginx && optname == TCP_INFO && duration > 1us || errno == EINVAL")
            .unwrap()
            .cheapest_first();
        let Expr::Or(or) = &e else { panic!("{e:?}") };
        assert!(
            matches!(or[0], Expr::Pred(Pred::Int(IntField::Errno, ..))),
            "{e:?}"
        );
        let Expr::And(and) = &or[1] else {
            panic!("{e:?}")
        };
        assert!(matches!(and[0], Expr::Pred(Pred::Option { .. })), "{e:?}");
        assert!(matches!(and[1], Expr::Pred(Pred::Duration(..))), "{e:?}");
        assert!(matches!(and[2], Expr::Pred(Pred::Comm { .. })), "{e:?}");
    }

    #[test]
    fn precedence_and_over_or() {
        let e = parse("comm == nginx && optname == TCP_INFO || errno == EINVAL").unwrap();
        match e {
            Expr::Or(v) => {
                assert_eq!(v.len(), 2);
                assert!(matches!(&v[0], Expr::And(a) if a.len() == 2));
                assert_eq!(v[1], Expr::Pred(Pred::Int(IntField::Errno, CmpOp::Eq, 22)));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn names_resolve_within_their_field() {
        assert_eq!(
            parse("optname == TCP_INFO").unwrap(),
            Expr::Pred(Pred::Option {
                pairs: vec![(6, 11)],
                negate: false
            })
        );
        assert_eq!(
            parse("level == SOL_SOCKET").unwrap(),
            Expr::Pred(Pred::Int(IntField::Level, CmpOp::Eq, 1))
        );
        assert_eq!(
            parse("duration > 1.5ms").unwrap(),
            Expr::Pred(Pred::Duration(CmpOp::Gt, 1_500_000))
        );
        assert_eq!(
            parse("ret == -22").unwrap(),
            Expr::Pred(Pred::Int(IntField::Ret, CmpOp::Eq, -22))
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse("comm == \"nginx\" && duraton > 10us").unwrap_err();
        assert_eq!(e.column, 19);
        assert!(
            e.message.contains("unknown field 'duraton'"),
            "{}",
            e.message
        );
        let e = parse("comm = nginx").unwrap_err();
        assert_eq!(e.column, 5);
        let e = parse("optname == TCP_NOPE").unwrap_err();
        assert_eq!(e.column, 11);
        let e = parse("(pid == 1").unwrap_err();
        assert_eq!(e.column, 9);
        assert!(e.message.contains("')'"));
        let e = parse("duration > ").unwrap_err();
        assert_eq!(e.column, 11);
        let e = parse("optname < TCP_INFO").unwrap_err();
        assert_eq!(e.column, 8);
        assert_eq!(
            e.render("optname < TCP_INFO"),
            "an option name can only be compared with == or !=\n  optname < TCP_INFO\n          ^"
        );
        assert!(parse("").is_err());
        assert!(parse("pid == 1 pid").is_err());
    }

    #[test]
    fn socket_fields_parse_names_addresses_and_networks() {
        let net = |s: &str| Cidr::parse(s).unwrap();
        assert_eq!(
            parse("remote_addr in 10.0.0.0/8").unwrap(),
            Expr::Pred(Pred::SockAddr {
                side: Side::Remote,
                net: net("10.0.0.0/8"),
                negate: false
            })
        );
        assert_eq!(
            parse("local_addr != ::1").unwrap(),
            Expr::Pred(Pred::SockAddr {
                side: Side::Local,
                net: net("::1"),
                negate: true
            })
        );
        assert_eq!(
            parse("remote_addr in fe80::/10").unwrap(),
            Expr::Pred(Pred::SockAddr {
                side: Side::Remote,
                net: net("fe80::/10"),
                negate: false
            })
        );
        assert_eq!(
            parse("tcp_state == ESTABLISHED").unwrap(),
            Expr::Pred(Pred::Sock(SockIntField::TcpState, CmpOp::Eq, 1))
        );
        assert_eq!(
            parse("sock_family == inet6").unwrap(),
            Expr::Pred(Pred::Sock(SockIntField::Family, CmpOp::Eq, 10))
        );
        assert_eq!(
            parse("remote_port >= 1024").unwrap(),
            Expr::Pred(Pred::Sock(SockIntField::RemotePort, CmpOp::Ge, 1024))
        );
        assert!(parse("unix_path ~ \"/run/*\"").unwrap().uses_sockets());
        assert!(!parse("pid == 1").unwrap().uses_sockets());
        let e = parse("remote_port in 10.0.0.0/8").unwrap_err();
        assert!(e.message.contains("'in'"), "{}", e.message);
        let e = parse("remote_addr in 10.0.0.0/40").unwrap_err();
        assert!(e.message.contains("at most 32"), "{}", e.message);
        let e = parse("tcp_state == OPEN").unwrap_err();
        assert!(e.message.contains("a TCP state"), "{}", e.message);
        assert!(parse("remote_addr < 10.0.0.1").is_err());
    }
}
