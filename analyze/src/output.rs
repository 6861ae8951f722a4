//! One event as text (strace style), JSON or CSV.

use std::fmt::Write as _;

use clap::ValueEnum;
use format::raw::{
    FLAG_OPTLEN_IN_UNREADABLE, FLAG_OPTLEN_OUT_UNREADABLE, FLAG_VALUE_TRUNCATED,
    FLAG_VALUE_UNREADABLE,
};
use format::{CaptureHeader, Event};

use crate::attr::Attributor;
use crate::decode::cgroup::{self, Attribution};
use crate::decode::{self, errno, hex_into, json_string, json_string_array, levels};
use crate::time;

/// A capture header's fields as JSON object members, named as in FORMAT.md; `filters` and
/// `extra` are lists of `[key, value]` pairs, so a repeated key (`pid=1,pid=2`) survives. The
/// one encoder of `info --format json` and of Parquet's `gsot.headers`.
pub fn header_fields(s: &mut String, h: &CaptureHeader) {
    s.push_str("\"capture_id\":\"");
    hex_into(s, &h.capture_id);
    s.push('"');
    let strings = [
        ("host_name", &h.host_name),
        ("kernel_release", &h.kernel_release),
        ("arch", &h.arch),
        ("recorder_version", &h.recorder_version),
        ("attach_mode", &h.attach_mode),
    ];
    for (k, v) in strings {
        let _ = write!(s, ",\"{k}\":");
        json_string(s, v);
    }
    let _ = write!(
        s,
        ",\"cpu_count\":{},\"boot_to_wall_ns\":{},\"start_ts_ns\":{},\"snaplen\":{},\"sequence\":{},\"redacted\":{}",
        h.cpu_count, h.boot_to_wall_ns, h.start_ts_ns, h.snaplen, h.sequence, h.redacted
    );
    s.push_str(",\"command_line\":[");
    for (i, a) in h.command_line.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_string(s, a);
    }
    s.push(']');
    for (k, pairs) in [("filters", &h.filters), ("extra", &h.extra)] {
        let _ = write!(s, ",\"{k}\":[");
        for (i, (a, b)) in pairs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('[');
            json_string(s, a);
            s.push(',');
            json_string(s, b);
            s.push(']');
        }
        s.push(']');
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    /// One line per call, strace style.
    Text,
    /// One JSON object per line.
    Json,
    /// Comma-separated, with a header line.
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimeMode {
    /// UTC time of day, µs: 12:00:01.123456.
    Wall,
    /// UTC date and time, ns: 2026-01-01T12:00:01.123456789Z.
    Iso,
    /// Seconds since the capture start: +1.123456.
    Rel,
    /// Boot-time ns as recorded.
    Boot,
}

/// The fields of `--format json` and `--format csv`, in output order. Their names and meaning
/// are stable: new fields may be added, existing ones are not renamed or changed.
pub const EVENT_FIELDS: &[(&str, &str)] = &[
    ("time", "UTC wall-clock time, RFC 3339 with ns"),
    ("ts_ns", "boot-time ns at syscall entry, as recorded"),
    ("duration_ns", "syscall entry to exit, ns"),
    ("pid", "process id (tgid)"),
    ("tid", "thread id"),
    ("ppid", "parent process id"),
    ("uid", "user id"),
    ("gid", "group id"),
    ("comm", "task name"),
    ("cgroup_id", "cgroup v2 id"),
    ("pid_ns", "pid namespace inode"),
    ("mnt_ns", "mount namespace inode"),
    ("cpu", "CPU the call returned on"),
    ("fd", "socket file descriptor"),
    ("level", "socket level number"),
    (
        "level_name",
        "socket level name (SOL_TCP), null/empty if unknown",
    ),
    ("optname", "option number"),
    (
        "optname_name",
        "option name within its level (TCP_INFO), null/empty if unknown",
    ),
    ("optlen_in", "*optlen passed in"),
    ("optlen_out", "*optlen returned"),
    ("ret", "return value: 0 or -errno"),
    (
        "errno",
        "errno name (EINVAL) when the call failed, null/empty otherwise",
    ),
    (
        "flags",
        "recorder flags: value_truncated, value_unreadable, optlen_in_unreadable, optlen_out_unreadable",
    ),
    ("value_hex", "captured value bytes, hex"),
    (
        "value",
        "decoded value: JSON value (object, number, string), or strace-style text in CSV; null/empty when the call failed",
    ),
    (
        "value_truncated",
        "true when the value was decoded only in part (snap length, or a cut field)",
    ),
    attr_field(0),
    attr_field(1),
    attr_field(2),
    attr_field(3),
    attr_field(4),
    attr_field(5),
    attr_field(6),
    attr_field(7),
    attr_field(8),
    attr_field(9),
    ("file", "input file (only when several files are read)"),
];

/// The `i`th attribution field's name and meaning, as the cgroup module lists them.
const fn attr_field(i: usize) -> (&'static str, &'static str) {
    (cgroup::FIELDS[i].1, cgroup::FIELDS[i].2)
}

/// Where the socket fields ([`crate::socket::SOCKET_FIELDS`]) go in [`EVENT_FIELDS`] order:
/// after the container attribution fields, before `file`.
const SOCKET_FIELDS_AT: usize = EVENT_FIELDS.len() - 1;

/// Every field of `--format json` and `--format csv` in output order: [`EVENT_FIELDS`] with
/// the socket fields before `file`.
pub fn all_fields() -> impl Iterator<Item = (&'static str, &'static str)> {
    let (before, file) = EVENT_FIELDS.split_at(SOCKET_FIELDS_AT);
    before
        .iter()
        .chain(crate::socket::SOCKET_FIELDS)
        .chain(file)
        .copied()
}

/// Formats events of one file.
pub struct EventWriter {
    pub format: EventFormat,
    pub time_mode: TimeMode,
    /// Names out of [`all_fields`] for JSON/CSV, in output order.
    pub fields: Vec<&'static str>,
    pub show_file: bool,
}

/// What an event's formatting needs to know about its file.
pub struct FileCtx<'a> {
    pub path: &'a str,
    pub boot_to_wall: i64,
    /// Boot ns of the capture start in this file's clock.
    pub rel_base: u64,
    /// Which container, pod or unit each process is.
    pub attr: &'a Attributor,
}

impl EventWriter {
    pub fn new(
        format: EventFormat,
        time_mode: TimeMode,
        fields: Option<&str>,
        show_file: bool,
    ) -> Result<EventWriter, String> {
        let fields = match fields {
            None => all_fields()
                .map(|f| f.0)
                .filter(|&f| show_file || f != "file")
                .collect(),
            Some(list) => {
                let mut v = Vec::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let f = all_fields().find(|f| f.0 == name).ok_or_else(|| {
                        format!(
                            "--fields: unknown field {name:?}; fields: {}",
                            all_fields().map(|f| f.0).collect::<Vec<_>>().join(",")
                        )
                    })?;
                    v.push(f.0);
                }
                if v.is_empty() {
                    return Err("--fields: no field given".into());
                }
                v
            }
        };
        Ok(EventWriter {
            format,
            time_mode,
            fields,
            show_file,
        })
    }

    /// The CSV header line, if the format has one.
    pub fn header(&self) -> Option<String> {
        (self.format == EventFormat::Csv).then(|| format!("{}\n", self.fields.join(",")))
    }

    pub fn write(&self, out: &mut String, e: &Event<'_>, f: &FileCtx<'_>) {
        let a = f.attr.at(e.tgid, e.ts_ns);
        match self.format {
            EventFormat::Text => self.text(out, e, f, a),
            EventFormat::Json => self.json(out, e, f, a),
            EventFormat::Csv => self.csv(out, e, f, a),
        }
    }

    fn time(&self, out: &mut String, e: &Event<'_>, f: &FileCtx<'_>) {
        let wall = crate::filter::to_wall(e.ts_ns, f.boot_to_wall);
        match self.time_mode {
            TimeMode::Wall => time::write_time_of_day(out, wall),
            TimeMode::Iso => time::write_iso(out, wall),
            TimeMode::Rel => {
                let rel = e.ts_ns as i128 - f.rel_base as i128;
                let sign = if rel < 0 { "-" } else { "+" };
                let a = rel.unsigned_abs();
                let _ = write!(
                    out,
                    "{sign}{}.{:06}",
                    a / 1_000_000_000,
                    a % 1_000_000_000 / 1000
                );
            }
            TimeMode::Boot => {
                let _ = write!(out, "{}", e.ts_ns);
            }
        }
    }

    /// `12:00:01.123456 nginx[812/815] getsockopt(7, SOL_TCP, TCP_INFO, {...}, 280 => 232) = 0 <4.1us>`,
    /// with ` pod=NAME/NAMESPACE ctr=NAME` (or the UID and short id) in the brackets of a
    /// process in a pod or container.
    fn text(&self, out: &mut String, e: &Event<'_>, f: &FileCtx<'_>, a: &Attribution) {
        if self.show_file {
            let _ = write!(out, "{}: ", f.path);
        }
        self.time(out, e, f);
        out.push(' ');
        out.push_str(&e.comm_str());
        let _ = write!(out, "[{}/{}", e.tgid, e.tid);
        if let Some(pod) = a.pod_label() {
            let _ = write!(out, " pod={pod}");
        }
        if let Some(c) = a.container_label() {
            let _ = write!(out, " ctr={c}");
        }
        let _ = write!(out, "] getsockopt({}", e.fd);
        crate::socket::write_text(out, e.socket);
        out.push_str(", ");
        match levels::level_name(e.level) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{}", e.level);
            }
        }
        out.push_str(", ");
        match levels::option_name(e.level, e.optname) {
            Some(n) => out.push_str(n),
            None => {
                let _ = write!(out, "{}", e.optname);
            }
        }
        out.push_str(", ");
        match value_of(e) {
            // The kernel wrote nothing we could see: show the buffer address, as strace does.
            None => {
                let _ = write!(out, "{:#x}", e.optval_ptr);
            }
            Some(d) => {
                d.value.write_text(out);
                if d.truncated {
                    out.push_str("...");
                }
            }
        }
        out.push_str(", ");
        if e.flags & FLAG_OPTLEN_IN_UNREADABLE != 0 {
            out.push('?');
        } else {
            let _ = write!(out, "{}", e.optlen_in);
        }
        if e.ret >= 0 {
            if e.flags & FLAG_OPTLEN_OUT_UNREADABLE != 0 {
                out.push_str(" => ?");
            } else {
                let _ = write!(out, " => {}", e.optlen_out);
            }
        }
        out.push_str(") = ");
        if e.ret < 0 {
            let n = -(e.ret as i64);
            match (errno::name(n as i32), errno::message(n as i32)) {
                (Some(name), Some(msg)) => {
                    let _ = write!(out, "-1 {name} ({msg})");
                }
                _ => {
                    let _ = write!(out, "-1 errno {n}");
                }
            }
        } else {
            let _ = write!(out, "{}", e.ret);
        }
        out.push_str(" <");
        time::write_duration(out, e.duration_ns);
        out.push_str(">\n");
    }

    fn json(&self, out: &mut String, e: &Event<'_>, f: &FileCtx<'_>, a: &Attribution) {
        out.push('{');
        for (n, &name) in self.fields.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            json_string(out, name);
            out.push(':');
            self.field(out, e, f, a, name, true);
        }
        out.push_str("}\n");
    }

    fn csv(&self, out: &mut String, e: &Event<'_>, f: &FileCtx<'_>, a: &Attribution) {
        for (n, &name) in self.fields.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            self.field(out, e, f, a, name, false);
        }
        out.push('\n');
    }

    /// One field, as JSON (`json`) or as a CSV cell.
    fn field(
        &self,
        out: &mut String,
        e: &Event<'_>,
        f: &FileCtx<'_>,
        a: &Attribution,
        name: &str,
        json: bool,
    ) {
        let null = |out: &mut String| {
            if json {
                out.push_str("null")
            }
        };
        let string = |out: &mut String, s: &str| {
            if json {
                json_string(out, s)
            } else {
                csv_cell(out, s)
            }
        };
        macro_rules! num {
            ($v:expr) => {{
                let _ = write!(out, "{}", $v);
            }};
        }
        match name {
            "time" => {
                if json {
                    out.push('"');
                }
                time::write_iso(out, crate::filter::to_wall(e.ts_ns, f.boot_to_wall));
                if json {
                    out.push('"');
                }
            }
            "ts_ns" => num!(e.ts_ns),
            "duration_ns" => num!(e.duration_ns),
            "pid" => num!(e.tgid),
            "tid" => num!(e.tid),
            "ppid" => num!(e.ppid),
            "uid" => num!(e.uid),
            "gid" => num!(e.gid),
            "comm" => string(out, &e.comm_str()),
            "cgroup_id" => num!(e.cgroup_id),
            "pid_ns" => num!(e.pid_ns),
            "mnt_ns" => num!(e.mnt_ns),
            "cpu" => num!(e.cpu),
            "fd" => num!(e.fd),
            "level" => num!(e.level),
            "level_name" => match levels::level_name(e.level) {
                Some(n) => string(out, n),
                None => null(out),
            },
            "optname" => num!(e.optname),
            "optname_name" => match levels::option_name(e.level, e.optname) {
                Some(n) => string(out, n),
                None => null(out),
            },
            "optlen_in" => num!(e.optlen_in),
            "optlen_out" => num!(e.optlen_out),
            "ret" => num!(e.ret),
            "errno" => match e.errno() {
                Some(n) => match errno::name(n) {
                    Some(s) => string(out, s),
                    None => num!(n),
                },
                None => null(out),
            },
            "flags" => {
                let names = flag_names(e.flags);
                if json {
                    json_string_array(out, &names);
                } else {
                    out.push_str(&names.join("|"));
                }
            }
            "value_hex" => {
                if json {
                    out.push('"');
                }
                hex_into(out, e.value);
                if json {
                    out.push('"');
                }
            }
            "value" => match value_of(e) {
                None => null(out),
                Some(d) if json => d.value.write_json(out),
                Some(d) => csv_cell(out, &d.value.to_text()),
            },
            "value_truncated" => {
                let t = value_of(e).is_some_and(|d| d.truncated);
                out.push_str(if t { "true" } else { "false" });
            }
            "file" => string(out, f.path),
            name if crate::socket::is_socket_field(name) => {
                match crate::socket::field(e.socket, name) {
                    crate::socket::FieldValue::Null => null(out),
                    crate::socket::FieldValue::Num(v) => num!(v),
                    crate::socket::FieldValue::Str(v) => string(out, &v),
                }
            }
            _ => match cgroup::Field::by_name(name).and_then(|c| a.get(c)) {
                Some(v) => string(out, v),
                None => null(out),
            },
        }
    }
}

/// The decoded value of a call, `None` when it has none to show (the call failed, or the
/// recorder could not read the buffer). The one source of the value in every output: the
/// text line (strace style, `...` after a truncated one), CSV `value` and Parquet
/// `value_text` ([`decode::Value::write_text`]), JSON `value` ([`decode::Value::write_json`]),
/// and `value_truncated` in all three.
pub fn value_of(e: &Event<'_>) -> Option<decode::Decoded> {
    (e.ret >= 0 && e.flags & FLAG_VALUE_UNREADABLE == 0).then(|| decoded(e))
}

/// The decoded value of a successful call.
pub fn decoded(e: &Event<'_>) -> decode::Decoded {
    decode::decode_value(
        e.level,
        e.optname,
        e.value,
        e.flags & FLAG_VALUE_TRUNCATED == 0,
    )
}

pub fn flag_names(flags: u16) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = flags;
    for (bit, name) in [
        (FLAG_VALUE_TRUNCATED, "value_truncated"),
        (FLAG_VALUE_UNREADABLE, "value_unreadable"),
        (FLAG_OPTLEN_IN_UNREADABLE, "optlen_in_unreadable"),
        (FLAG_OPTLEN_OUT_UNREADABLE, "optlen_out_unreadable"),
    ] {
        if flags & bit != 0 {
            v.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    v
}

/// A CSV cell: quoted when it holds a comma, quote or newline (RFC 4180).
pub fn csv_cell(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}
