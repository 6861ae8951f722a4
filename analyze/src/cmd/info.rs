//! `analyze info`: what a capture is.

use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use format::{AggregatePeriod, SAMPLE_ALL, TraceReader};

use crate::AppError;
use crate::attr::Attributor;
use crate::decode::cgroup::{Attribution, FIELDS, Field};
use crate::decode::json_string;
use crate::filter::Filter;
use crate::filter::to_wall;
use crate::input::{self, Input};
use crate::sampled::Coverage;
use crate::stats::{self, GroupField, Query};
use crate::time::{format_duration, iso};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  analyze info capture.gsot\n  analyze info --format json capture-*.gsot | jq .events"
)]
pub struct InfoArgs {
    /// Trace files (each is described on its own).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Text)]
    pub format: InfoFormat,
    /// Process table rows to show (all with 0).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub processes: usize,
}

/// What `info` reports about one file.
struct Facts {
    first_ts: Option<u64>,
    last_ts: Option<u64>,
    raw_bytes: Option<u64>,
    /// Each container seen, with its call count, most calls first.
    containers: Vec<(Attribution, u64)>,
}

fn facts(inp: &Input) -> Facts {
    let r = &inp.reader;
    let nonempty = || r.blocks().iter().filter(|b| b.event_count > 0);
    Facts {
        first_ts: nonempty().map(|b| b.ts_min).min(),
        last_ts: nonempty().map(|b| b.ts_max).max(),
        raw_bytes: raw_bytes(&inp.path, r),
        containers: containers(inp),
    }
}

/// The containers of the process table with their calls. Counting reads every block's front
/// (or summary), so a file whose processes are in no container costs nothing more.
fn containers(inp: &Input) -> Vec<(Attribution, u64)> {
    let attr = Attributor::new(&inp.reader);
    if !attr.attributions().any(Attribution::is_container) {
        return Vec::new();
    }
    let filter = Filter::all().with_attribution();
    let ff = filter.for_file(&inp.reader);
    let by = [GroupField::Attr(Field::ContainerId), GroupField::Container];
    let q = Query {
        by: &by,
        interval: None,
        max_intervals: 0,
    };
    let blocks = crate::input::selected_blocks(&inp.reader, &ff);
    let agg = stats::aggregate_file(inp, &ff, &blocks, &q, rayon::current_num_threads());
    let mut v: Vec<(Attribution, u64)> = agg
        .keys
        .iter()
        .zip(&agg.groups)
        .filter_map(|(k, g)| {
            let (id, label) = (
                crate::attr::interned(k[0] as u32),
                crate::attr::interned(k[1] as u32),
            );
            let a = attr.attributions().find(|a| {
                a.is_container()
                    && a.get(Field::ContainerId).unwrap_or("") == id
                    && a.container_label().unwrap_or("") == label
            })?;
            Some((a.clone(), g.hist.count))
        })
        .collect();
    v.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.container_label().cmp(&b.0.container_label()))
    });
    v
}

/// Sum of the blocks' decompressed payload sizes, read from each block header (bytes 4..8 of
/// the section body, FORMAT.md "Block section") without decompressing anything. The reader does
/// not expose this yet, so it is read from the file directly.
fn raw_bytes(path: &str, r: &TraceReader) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    let mut total = 0u64;
    for b in r.blocks() {
        let mut buf = [0u8; 4];
        f.read_exact_at(&mut buf, b.offset + 16 + 4).ok()?;
        total += u32::from_le_bytes(buf) as u64;
    }
    Some(total)
}

pub fn run(a: &InfoArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let inputs = input::open_all(&a.files)?;
    for (i, inp) in inputs.iter().enumerate() {
        let f = facts(inp);
        let s = match a.format {
            InfoFormat::Text => {
                let mut s = text(inp, &f, a.processes);
                if i + 1 < inputs.len() {
                    s.push('\n');
                }
                s
            }
            InfoFormat::Json => json(inp, &f),
        };
        out.write_all(s.as_bytes())?;
    }
    Ok(())
}

/// `info --format json` of one opened file (also `gsot.info` in Python).
pub fn json_of(inp: &Input) -> String {
    json(inp, &facts(inp))
}

fn text(inp: &Input, f: &Facts, max_procs: usize) -> String {
    let r = &inp.reader;
    let h = r.header();
    let b2w = h.boot_to_wall_ns;
    let mut s = String::new();
    let (maj, min) = r.version();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<15}{v}");
    };
    line("file:", inp.path.clone());
    line("format:", format!("{maj}.{min}"));
    line("capture id:", hex(&h.capture_id));
    line("host:", h.host_name.clone());
    line(
        "kernel:",
        format!("{} ({}, {} CPUs)", h.kernel_release, h.arch, h.cpu_count),
    );
    line("recorder:", h.recorder_version.clone());
    line("command:", shell_words(&h.command_line));
    line("attach mode:", h.attach_mode.clone());
    line(
        "filters:",
        if h.filters.is_empty() {
            "none".into()
        } else {
            h.filters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    line("snaplen:", format!("{} bytes", h.snaplen));
    line("sockets:", crate::socket::capture_text(h));
    line("sequence:", format!("file {} of its capture", h.sequence));
    if h.redacted {
        line(
            "redacted:",
            "yes (names, paths and values are placeholders)".into(),
        );
    }
    for (k, v) in &h.extra {
        line("extra:", format!("{k}={v}"));
    }
    line("started:", iso(to_wall(h.start_ts_ns, b2w)) + " (UTC)");
    match (f.first_ts, f.last_ts) {
        (Some(a), Some(b)) => line(
            "events span:",
            format!(
                "{} .. {} ({})",
                iso(to_wall(a, b2w)),
                iso(to_wall(b, b2w)),
                format_duration(b.saturating_sub(a))
            ),
        ),
        _ => line("events span:", "no events".into()),
    }
    line("events:", r.event_count().to_string());
    let lost: u64 = r.losses().iter().map(|l| l.lost).sum();
    line(
        "lost:",
        format!("{lost} in {} loss records", r.losses().len()),
    );
    for l in r.losses().iter().take(20) {
        let _ = writeln!(
            s,
            "  cpu {:<3} {:>8} lost at {} for {}",
            l.cpu,
            l.lost,
            iso(to_wall(l.start_ns, b2w)),
            format_duration(l.end_ns.saturating_sub(l.start_ns))
        );
    }
    if r.losses().len() > 20 {
        let _ = writeln!(s, "  ... {} more", r.losses().len() - 20);
    }
    aggregates_text(&mut s, r.aggregates(), r.event_count(), b2w);
    let _ = writeln!(s, "{:<15}{}", "processes:", r.processes().len());
    let shown = if max_procs == 0 {
        r.processes().len()
    } else {
        max_procs
    };
    for p in r.processes().iter().take(shown) {
        let _ = writeln!(
            s,
            "  {:>7} {:<16} ppid {:<7} {} {}",
            p.pid, p.comm, p.ppid, p.exe, p.cgroup
        );
    }
    if r.processes().len() > shown {
        let _ = writeln!(
            s,
            "  ... {} more (--processes 0 shows all)",
            r.processes().len() - shown
        );
    }
    let _ = writeln!(s, "{:<15}{}", "containers:", f.containers.len());
    for (a, calls) in &f.containers {
        let or = |v: Option<&str>| v.unwrap_or("-").to_string();
        let _ = writeln!(
            s,
            "  {:<14} {:<14} pod {:<38} {calls} calls",
            or(a.container_label()),
            or(a.get(Field::Runtime)),
            a.pod_label().unwrap_or_else(|| "-".into()),
        );
    }
    let nblocks = r.blocks().len();
    let _ = writeln!(
        s,
        "{:<15}{} ({:.0} events per block)",
        "blocks:",
        nblocks,
        r.event_count() as f64 / nblocks.max(1) as f64
    );
    let events = r.event_count().max(1) as f64;
    let _ = writeln!(
        s,
        "{:<15}{} bytes ({:.1} bytes per event)",
        "file size:",
        r.file_len(),
        r.file_len() as f64 / events
    );
    if let Some(raw) = f.raw_bytes {
        let _ = writeln!(
            s,
            "{:<15}{} bytes ({:.1} bytes per event, compression {:.1}x)",
            "raw size:",
            raw,
            raw as f64 / events,
            raw as f64 / r.file_len().max(1) as f64
        );
    }
    match r.recovery() {
        None => {
            // The O(1) open decodes no block: say so rather than imply the file is intact.
            let _ = writeln!(
                s,
                "{:<15}yes (trailer and index intact; block contents not checked: `analyze verify` checks every block)",
                "ended cleanly:"
            );
        }
        Some(rec) => {
            let _ = writeln!(
                s,
                "{:<15}no: {}; recovered by scanning up to offset {}",
                "ended cleanly:", rec.reason, rec.stopped_at
            );
            for p in &rec.problems {
                let _ = writeln!(s, "  skipped: {p}");
            }
        }
    }
    s
}

fn json(inp: &Input, f: &Facts) -> String {
    let r = &inp.reader;
    let h = r.header();
    let b2w = h.boot_to_wall_ns;
    let mut s = String::from("{");
    let key = |s: &mut String, k: &str| {
        if !s.ends_with('{') {
            s.push(',');
        }
        json_string(s, k);
        s.push(':');
    };
    let jstr = |s: &mut String, k: &str, v: &str| {
        key(s, k);
        json_string(s, v);
    };
    let jnum = |s: &mut String, k: &str, v: String| {
        key(s, k);
        s.push_str(&v);
    };
    jstr(&mut s, "file", &inp.path);
    let (maj, min) = r.version();
    jstr(&mut s, "format_version", &format!("{maj}.{min}"));
    s.push(',');
    crate::output::header_fields(&mut s, h);
    let (word, why) = match h.socket_capture() {
        format::SocketCapture::NotSaid => ("not_said", ""),
        format::SocketCapture::Recorded => ("recorded", ""),
        format::SocketCapture::Off(w) => ("off", w),
        format::SocketCapture::Unavailable(w) => ("unavailable", w),
        format::SocketCapture::Other(v) => ("unknown", v),
    };
    jstr(&mut s, "socket_identity", word);
    jstr(&mut s, "socket_identity_note", why);
    jstr(&mut s, "start", &iso(to_wall(h.start_ts_ns, b2w)));
    match (f.first_ts, f.last_ts) {
        (Some(a), Some(b)) => {
            jstr(&mut s, "first_event", &iso(to_wall(a, b2w)));
            jstr(&mut s, "last_event", &iso(to_wall(b, b2w)));
            jnum(&mut s, "span_ns", b.saturating_sub(a).to_string());
        }
        _ => {
            jnum(&mut s, "first_event", "null".into());
            jnum(&mut s, "last_event", "null".into());
            jnum(&mut s, "span_ns", "0".into());
        }
    }
    jnum(&mut s, "events", r.event_count().to_string());
    jnum(
        &mut s,
        "lost",
        r.losses().iter().map(|l| l.lost).sum::<u64>().to_string(),
    );
    if !r.aggregates().is_empty() {
        key(&mut s, "aggregates");
        aggregates_json(&mut s, r.aggregates(), b2w);
    }
    key(&mut s, "losses");
    s.push('[');
    for (i, l) in r.losses().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"cpu\":{},\"lost\":{},\"start\":", l.cpu, l.lost);
        json_string(&mut s, &iso(to_wall(l.start_ns, b2w)));
        let _ = write!(
            s,
            ",\"duration_ns\":{}}}",
            l.end_ns.saturating_sub(l.start_ns)
        );
    }
    s.push(']');
    key(&mut s, "processes");
    s.push('[');
    for (i, p) in r.processes().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"pid\":{},\"ppid\":{},\"comm\":", p.pid, p.ppid);
        json_string(&mut s, &p.comm);
        s.push_str(",\"exe\":");
        json_string(&mut s, &p.exe);
        s.push_str(",\"cgroup\":");
        json_string(&mut s, &p.cgroup);
        s.push('}');
    }
    s.push(']');
    key(&mut s, "containers");
    s.push('[');
    for (i, (a, calls)) in f.containers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('{');
        for (f, name, _) in FIELDS {
            json_string(&mut s, name);
            s.push(':');
            match a.get(*f) {
                Some(v) => json_string(&mut s, v),
                None => s.push_str("null"),
            }
            s.push(',');
        }
        let _ = write!(s, "\"calls\":{calls}}}");
    }
    s.push(']');
    jnum(&mut s, "blocks", r.blocks().len().to_string());
    jnum(&mut s, "file_bytes", r.file_len().to_string());
    jnum(
        &mut s,
        "raw_bytes",
        f.raw_bytes.map_or("null".into(), |v| v.to_string()),
    );
    jnum(&mut s, "ended_cleanly", r.recovery().is_none().to_string());
    // info never decodes a block; `verify` does.
    jnum(&mut s, "blocks_checked", "false".to_string());
    key(&mut s, "problems");
    let problems: Vec<String> = r
        .recovery()
        .map(|rec| {
            std::iter::once(rec.reason.to_string())
                .chain(rec.problems.iter().map(|p| p.to_string()))
                .collect()
        })
        .unwrap_or_default();
    list(&mut s, &problems);
    s.push_str("}\n");
    s
}

fn list(s: &mut String, v: &[String]) {
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_string(s, x);
    }
    s.push(']');
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    crate::decode::hex_into(&mut s, b);
    s
}

/// The command line as a shell would need it typed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=./,:+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sampled capture's aggregate records (FORMAT.md 5.3): how much of it they count, and
/// each period (the first 20).
fn aggregates_text(s: &mut String, periods: &[AggregatePeriod], events: u64, b2w: i64) {
    if periods.is_empty() {
        return;
    }
    let c = Coverage::of(periods);
    let share = events as f64 * 100.0 / c.calls.max(1) as f64;
    let _ = writeln!(
        s,
        "{:<15}{} calls in {} periods of aggregate records: every call; the {events} events are a sample of them ({share:.2}%)",
        "aggregated:", c.calls, c.periods
    );
    let _ = writeln!(
        s,
        "  sample: {} picked, {} turned away by the cap, {} by a full buffer; {} calls in the overflow entry",
        c.sampled, c.capped, c.dropped, c.overflow
    );
    for p in periods.iter().take(20) {
        let calls: u64 = p.entries.iter().map(|e| e.calls()).sum();
        let _ = writeln!(
            s,
            "  period {} for {}: {calls} calls, sampled with p={:.6}, {} events",
            iso(to_wall(p.start_ns, b2w)),
            format_duration(p.end_ns.saturating_sub(p.start_ns)),
            p.sample_p as f64 / SAMPLE_ALL as f64,
            p.sampled - p.capped - p.dropped
        );
    }
    if periods.len() > 20 {
        let _ = writeln!(s, "  ... {} more", periods.len() - 20);
    }
}

fn aggregates_json(s: &mut String, periods: &[AggregatePeriod], b2w: i64) {
    let c = Coverage::of(periods);
    let _ = write!(
        s,
        "{{\"calls\":{},\"overflow\":{},\"sampled\":{},\"capped\":{},\"dropped\":{},\"periods\":[",
        c.calls, c.overflow, c.sampled, c.capped, c.dropped
    );
    for (i, p) in periods.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"start\":");
        json_string(s, &iso(to_wall(p.start_ns, b2w)));
        let calls: u64 = p.entries.iter().map(|e| e.calls()).sum();
        let _ = write!(
            s,
            ",\"duration_ns\":{},\"calls\":{calls},\"sample_p\":{},\"sampled\":{},\"capped\":{},\"dropped\":{}}}",
            p.end_ns.saturating_sub(p.start_ns),
            p.sample_p as f64 / SAMPLE_ALL as f64,
            p.sampled,
            p.capped,
            p.dropped
        );
    }
    s.push_str("]}");
}
