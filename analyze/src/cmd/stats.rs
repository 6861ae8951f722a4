//! `analyze stats`: count, errors and latency percentiles per group, or a rate over time.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::AppError;
use crate::decode::{errno, json_string, levels};
use crate::filter::{Filter, FilterArgs, IntField, SockIntField};
use crate::input::{self, selected_blocks};
use crate::output::csv_cell;
use crate::sampled;
use crate::stats::{self, Agg, GroupField, KeyPart, Query, SockGroup};
use crate::time::{self, format_duration};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Count,
    Errors,
    P50,
    P99,
    Max,
    Key,
}

const STATS_HELP: &str = "\
Group fields (--by): comm, pid, tid, ppid, uid, gid, cgroup, pidns, mntns, cpu, fd, level,
optname (named within its level), errno (empty for success), ret, optlen, optlen_out, value_len;
pod (name/namespace, else UID), container (name, else short id), and the attribution fields
container_runtime, container_id, container_name, image, pod_uid, pod_name, pod_namespace,
k8s_container, qos_class, systemd_unit (empty when a process has none; a process whose cgroup
changed during the capture is grouped by its last one); of the socket: sock_family, sock_type,
sock_protocol, tcp_state, local_addr, local_port, remote_addr, remote_port, unix_path,
unix_peer, sock_ino, netns (empty for a call without a socket), and socket (one group per
socket inode, shown with the tuple of its first call met).

Columns: count; errors (calls that returned -1); p50/p90/p99/max latency (syscall entry to exit).
Percentiles use the nearest-rank definition over a log-linear histogram: exact below 256 ns,
within 0.4% above (never outside the group's min..max); max is exact.
With --interval, one row per interval and group: count, rate per second, errors, max latency;
intervals start at the capture start.

Sampled captures (recorder --max-rate): counts, errors and latencies come from the file's
aggregate records, which hold every call, when --by and the filters use only pid, level,
optname, errno, ret and the time range (by whole aggregate periods); percentiles are then
within 6.25% (the records' histogram), max exact. Anything else is answered from the sample
of events alone, and stats says so on stderr.

Speed: a question about sites and durations alone is answered from each block's summary (BSUM,
FORMAT.md 4.2) when it passes its structural checks; a summary that passes them but holds other
durations than its block is believed. `analyze verify` compares every summary with its block.

JSON: {\"total\": {...}, \"groups\": [{\"key\": {FIELD: VALUE, ...}, \"count\", \"errors\",
\"p50_ns\", \"p90_ns\", \"p99_ns\", \"max_ns\", \"mean_ns\"}, ...]} (with --interval, \"intervals\":
[{\"start\", \"offset_ns\", \"key\", \"count\", \"rate\", \"errors\", \"max_ns\"}]).

Examples:
  analyze stats cap.gsot --by comm,optname --top 20
  analyze stats cap.gsot --by errno --errors
  analyze stats cap.gsot --by pod,container --k8s-namespace default
  analyze stats cap.gsot --by optname --interval 1s --format csv";

#[derive(Args, Debug)]
#[command(after_help = STATS_HELP)]
pub struct StatsArgs {
    /// Trace files; several files are aggregated together.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Group by these fields, comma-separated ("" for one total).
    #[arg(long, value_name = "FIELD,...", default_value = "optname")]
    pub by: String,
    /// Show only the first N groups after sorting.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Sort groups by (descending; key sorts ascending).
    #[arg(long, value_enum, default_value_t = SortBy::Count)]
    pub sort: SortBy,
    /// Rate over time: one row per interval of this width (e.g. 1s, 100ms).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatsFormat::Table)]
    pub format: StatsFormat,
}

/// Most intervals of a rate view (each costs a few words per group).
const MAX_INTERVALS: u64 = 1 << 20;

/// `--by a,b,c`: the group fields and the names they were given as (shared with `plot`).
pub(crate) fn parse_by(by: &str) -> Result<(Vec<GroupField>, Vec<String>), AppError> {
    let mut fields = Vec::new();
    let mut names = Vec::new();
    for name in by.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let f = stats::parse_group_field(name).ok_or_else(|| {
            AppError::usage(format!(
                "--by: unknown field {name:?}; fields: {}",
                stats::group_field_names().join(", ")
            ))
        })?;
        fields.push(f);
        names.push(name.to_string());
    }
    Ok((fields, names))
}

/// `--interval DURATION` in ns, if given (shared with `plot`).
pub(crate) fn parse_interval(interval: Option<&str>) -> Result<Option<u64>, AppError> {
    let ns = interval
        .map(time::parse_duration)
        .transpose()
        .map_err(|e| AppError::usage(format!("--interval: {e}")))?;
    if ns == Some(0) {
        return Err(AppError::usage("--interval: must be longer than 0"));
    }
    Ok(ns)
}

pub fn run(a: &StatsArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let (by, by_names) = parse_by(&a.by)?;
    let interval = parse_interval(a.interval.as_deref())?;
    let inputs = input::open_all(&a.files)?;
    let span = input::span(&inputs);
    let mut filter = Filter::new(&a.filter, span)?;
    if stats::needs_attribution(&by) {
        filter = filter.with_attribution();
    }
    let q = Query {
        by: &by,
        interval,
        max_intervals: MAX_INTERVALS,
    };
    let workers = rayon::current_num_threads();
    let mut agg = Agg::default();
    // A sampled file answers from its aggregate records or from its events, never both.
    let why_not = sampled::unanswerable(&by, &by_names, &filter.expr, &q);
    let (mut left, mut exact, mut sample_only) = (sampled::Left::default(), 0, Vec::new());
    for inp in &inputs {
        let ff = filter.for_file(&inp.reader);
        if inp.reader.aggregates().is_empty() && sampled::max_rate(inp.reader.header()).is_some() {
            // Sampled, but its aggregate records are gone (a slice of it, say).
            sample_only.push(inp.path.as_str());
        } else if !inp.reader.aggregates().is_empty() {
            if why_not.is_none() {
                sampled::add_file(inp, &ff, &q, &mut agg, &mut left);
                exact += 1;
                continue;
            }
            sample_only.push(inp.path.as_str());
        }
        let blocks = selected_blocks(&inp.reader, &ff);
        agg.merge(stats::aggregate_file(inp, &ff, &blocks, &q, workers));
    }
    let why_not = why_not.or_else(|| {
        (!sample_only.is_empty()).then(|| {
            "every question (it holds no aggregate records: a slice of a sampled capture?)".into()
        })
    });
    for note in left.notes(exact, &sample_only, why_not.as_deref()) {
        eprintln!("analyze: {note}");
    }
    if agg.too_many_intervals {
        eprintln!(
            "analyze: warning: more than {MAX_INTERVALS} intervals; events after that are counted in the groups but not in the rate view (use a wider --interval)"
        );
    }
    let mut order: Vec<usize> = (0..agg.groups.len()).collect();
    let g = &agg.groups;
    match a.sort {
        SortBy::Count => order.sort_by(|&x, &y| {
            g[y].hist
                .count
                .cmp(&g[x].hist.count)
                .then(agg.keys[x].cmp(&agg.keys[y]))
        }),
        SortBy::Errors => order.sort_by(|&x, &y| {
            g[y].errors
                .cmp(&g[x].errors)
                .then(g[y].hist.count.cmp(&g[x].hist.count))
        }),
        SortBy::P50 => order.sort_by_key(|&x| std::cmp::Reverse(g[x].hist.quantile(0.5))),
        SortBy::P99 => order.sort_by_key(|&x| std::cmp::Reverse(g[x].hist.quantile(0.99))),
        SortBy::Max => order.sort_by_key(|&x| std::cmp::Reverse(g[x].hist.max)),
        SortBy::Key => {
            order.sort_by(|&x, &y| key_texts(&by, &agg.keys[x]).cmp(&key_texts(&by, &agg.keys[y])))
        }
    }
    // Empty groups (every event filtered per event) are not shown.
    order.retain(|&i| g[i].hist.count > 0);
    if let Some(n) = a.top {
        order.truncate(n);
    }
    let ctx = Ctx {
        by: &by,
        by_names: &by_names,
        agg: &agg,
        order: &order,
        interval,
        start_wall: span.start_wall,
    };
    let s = match (a.format, interval.is_some()) {
        (StatsFormat::Table, false) => ctx.table(),
        (StatsFormat::Table, true) => ctx.interval_table(),
        (StatsFormat::Json, _) => ctx.json(),
        (StatsFormat::Csv, false) => ctx.csv(),
        (StatsFormat::Csv, true) => ctx.interval_csv(),
    };
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// A key part as text: names where the kernel has them.
pub(crate) fn key_text(f: GroupField, v: KeyPart) -> String {
    match f {
        GroupField::Comm => {
            let b = v.to_le_bytes();
            let end = b.iter().position(|&c| c == 0).unwrap_or(16);
            String::from_utf8_lossy(&b[..end]).into_owned()
        }
        GroupField::Option => {
            let level = (v >> 32) as u32 as i32;
            let opt = v as u32 as i32;
            match levels::option_name(level, opt) {
                Some(n) => n.to_string(),
                None => match levels::level_name(level) {
                    Some(l) => format!("{l}:{opt}"),
                    None => format!("{level}:{opt}"),
                },
            }
        }
        GroupField::Int(IntField::Level) => {
            let l = v as i128 as i32;
            levels::level_name(l).map_or(l.to_string(), str::to_string)
        }
        GroupField::Int(IntField::Errno) => match v as i128 as i32 {
            0 => String::new(),
            n => errno::name(n).map_or(n.to_string(), str::to_string),
        },
        GroupField::Int(_) => (v as i128).to_string(),
        GroupField::Attr(_) | GroupField::Pod | GroupField::Container => {
            crate::attr::interned(v as u32)
        }
        GroupField::Sock(g) => sock_key_text(g, v),
    }
}

/// A socket key part as text: names for families, types and states, addresses in their text
/// form; empty for a call without a socket (or without that field).
fn sock_key_text(g: SockGroup, v: KeyPart) -> String {
    use crate::decode::sockid::{family_name, sock_type_name, tcp_state_name};
    if v == stats::NO_SOCKET_KEY {
        return String::new();
    }
    match g {
        SockGroup::Int(SockIntField::Family) => family_name(v as u16).into_owned(),
        SockGroup::Int(SockIntField::Type) => sock_type_name(v as u16).into_owned(),
        SockGroup::Int(SockIntField::TcpState) => {
            tcp_state_name(v as u8).map_or(String::new(), |s| s.into_owned())
        }
        SockGroup::Int(_) => v.to_string(),
        SockGroup::Addr(_) => stats::addr_key_text(v),
        SockGroup::Unix(_) => stats::interned(v).unwrap_or_default(),
        SockGroup::Socket => stats::socket_text(v as u64),
    }
}

fn key_texts(by: &[GroupField], k: &[KeyPart]) -> Vec<String> {
    by.iter().zip(k).map(|(&f, &v)| key_text(f, v)).collect()
}

/// A key part as JSON: strings for names, numbers for ids, null for "no errno".
fn key_json(out: &mut String, f: GroupField, v: KeyPart) {
    match f {
        GroupField::Comm | GroupField::Option | GroupField::Int(IntField::Level) => {
            json_string(out, &key_text(f, v))
        }
        GroupField::Int(IntField::Errno)
        | GroupField::Attr(_)
        | GroupField::Pod
        | GroupField::Container => {
            let t = key_text(f, v);
            if t.is_empty() {
                out.push_str("null")
            } else {
                json_string(out, &t)
            }
        }
        GroupField::Int(_) => {
            let _ = write!(out, "{}", v as i128);
        }
        GroupField::Sock(g) => match (g, v) {
            (_, stats::NO_SOCKET_KEY) => out.push_str("null"),
            (SockGroup::Int(SockIntField::Family | SockIntField::Type), _)
            | (SockGroup::Addr(_) | SockGroup::Unix(_) | SockGroup::Socket, _) => {
                json_string(out, &key_text(f, v))
            }
            (SockGroup::Int(SockIntField::TcpState), 0) => out.push_str("null"),
            (SockGroup::Int(SockIntField::TcpState), _) => json_string(out, &key_text(f, v)),
            (SockGroup::Int(_), v) => {
                let _ = write!(out, "{v}");
            }
        },
    }
}

struct Ctx<'a> {
    by: &'a [GroupField],
    by_names: &'a [String],
    agg: &'a Agg,
    order: &'a [usize],
    interval: Option<u64>,
    start_wall: i64,
}

impl Ctx<'_> {
    fn total(&self) -> stats::Acc {
        let mut t = stats::Acc::default();
        for g in &self.agg.groups {
            t.errors += g.errors;
            t.hist.merge(&g.hist);
        }
        t
    }

    fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut head: Vec<String> = self.by_names.to_vec();
        head.extend(["count", "errors", "err%", "p50", "p90", "p99", "max"].map(String::from));
        let row = |key: Vec<String>, g: &stats::Acc| {
            let mut r = key;
            let h = &g.hist;
            r.push(h.count.to_string());
            r.push(g.errors.to_string());
            r.push(format!(
                "{:.1}",
                100.0 * g.errors as f64 / h.count.max(1) as f64
            ));
            for q in [0.5, 0.9, 0.99] {
                r.push(format_duration(h.quantile(q)));
            }
            r.push(format_duration(h.max));
            r
        };
        for &i in self.order {
            rows.push(row(
                key_texts(self.by, &self.agg.keys[i]),
                &self.agg.groups[i],
            ));
        }
        let mut total_key = vec![String::new(); self.by.len()];
        if let Some(k) = total_key.first_mut() {
            *k = "(total)".into();
        }
        // Without --by the one group is the total already.
        let total_row = (!self.by.is_empty()).then(|| row(total_key, &self.total()));
        render_table(&head, &rows, total_row.as_ref(), self.by.len())
    }

    fn csv(&self) -> String {
        let mut s = String::new();
        let mut head: Vec<String> = self.by_names.to_vec();
        head.extend(
            [
                "count", "errors", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns",
            ]
            .map(String::from),
        );
        s.push_str(&head.join(","));
        s.push('\n');
        for &i in self.order {
            let g = &self.agg.groups[i];
            for (n, t) in key_texts(self.by, &self.agg.keys[i]).iter().enumerate() {
                if n > 0 {
                    s.push(',');
                }
                csv_cell(&mut s, t);
            }
            if !self.by.is_empty() {
                s.push(',');
            }
            let h = &g.hist;
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{}",
                h.count,
                g.errors,
                h.quantile(0.5),
                h.quantile(0.9),
                h.quantile(0.99),
                h.max,
                (h.sum / h.count.max(1) as u128)
            );
        }
        s
    }

    fn key_obj(&self, s: &mut String, i: usize) {
        s.push('{');
        for (n, (&f, &v)) in self.by.iter().zip(self.agg.keys[i].iter()).enumerate() {
            if n > 0 {
                s.push(',');
            }
            json_string(s, &self.by_names[n]);
            s.push(':');
            key_json(s, f, v);
        }
        s.push('}');
    }

    fn json(&self) -> String {
        let mut s = String::from("{\"by\":[");
        for (i, n) in self.by_names.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_string(&mut s, n);
        }
        s.push_str("],\"total\":");
        acc_json(&mut s, &self.total());
        s.push_str(",\"groups\":[");
        for (n, &i) in self.order.iter().enumerate() {
            if n > 0 {
                s.push(',');
            }
            s.push_str("{\"key\":");
            self.key_obj(&mut s, i);
            s.push(',');
            let mut a = String::new();
            acc_json(&mut a, &self.agg.groups[i]);
            s.push_str(&a[1..]);
        }
        s.push(']');
        if let Some(w) = self.interval {
            s.push_str(",\"interval_ns\":");
            let _ = write!(s, "{w}");
            s.push_str(",\"intervals\":[");
            let mut first = true;
            for (idx, i) in self.interval_rows() {
                let x = self.agg.intervals[i][idx];
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str("{\"start\":");
                let off = idx as u64 * w;
                json_string(
                    &mut s,
                    &time::iso(self.start_wall.saturating_add(off as i64)),
                );
                let _ = write!(s, ",\"offset_ns\":{off},\"key\":");
                self.key_obj(&mut s, i);
                let _ = write!(
                    s,
                    ",\"count\":{},\"rate\":{:.3},\"errors\":{},\"max_ns\":{}}}",
                    x.count,
                    x.count as f64 * 1e9 / w as f64,
                    x.errors,
                    x.max
                );
            }
            s.push(']');
        }
        s.push_str("}\n");
        s
    }

    /// (interval index, group) pairs with events, by interval then in group order.
    fn interval_rows(&self) -> Vec<(usize, usize)> {
        let n = self
            .order
            .iter()
            .map(|&i| self.agg.intervals[i].len())
            .max()
            .unwrap_or(0);
        let mut rows = Vec::new();
        for idx in 0..n {
            for &i in self.order {
                if self.agg.intervals[i].get(idx).is_some_and(|x| x.count > 0) {
                    rows.push((idx, i));
                }
            }
        }
        rows
    }

    fn interval_table(&self) -> String {
        let w = self.interval.unwrap_or(1);
        let mut head = vec!["start".to_string()];
        head.extend(self.by_names.iter().cloned());
        head.extend(["count", "rate/s", "errors", "max"].map(String::from));
        let mut rows = Vec::new();
        for (idx, i) in self.interval_rows() {
            let x = self.agg.intervals[i][idx];
            let mut r = vec![format!("+{}", format_duration(idx as u64 * w))];
            r.extend(key_texts(self.by, &self.agg.keys[i]));
            r.push(x.count.to_string());
            r.push(format!("{:.1}", x.count as f64 * 1e9 / w as f64));
            r.push(x.errors.to_string());
            r.push(format_duration(x.max));
            rows.push(r);
        }
        render_table(&head, &rows, None, self.by.len() + 1)
    }

    fn interval_csv(&self) -> String {
        let w = self.interval.unwrap_or(1);
        let mut s = String::from("start,offset_ns");
        for n in self.by_names {
            s.push(',');
            s.push_str(n);
        }
        s.push_str(",count,rate,errors,max_ns\n");
        for (idx, i) in self.interval_rows() {
            let x = self.agg.intervals[i][idx];
            let off = idx as u64 * w;
            let _ = write!(
                s,
                "{},{off}",
                time::iso(self.start_wall.saturating_add(off as i64))
            );
            for t in key_texts(self.by, &self.agg.keys[i]) {
                s.push(',');
                csv_cell(&mut s, &t);
            }
            let _ = writeln!(
                s,
                ",{},{:.3},{},{}",
                x.count,
                x.count as f64 * 1e9 / w as f64,
                x.errors,
                x.max
            );
        }
        s
    }
}

fn acc_json(s: &mut String, g: &stats::Acc) {
    let h = &g.hist;
    let _ = write!(
        s,
        "{{\"count\":{},\"errors\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"max_ns\":{},\"mean_ns\":{}}}",
        h.count,
        g.errors,
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max,
        h.sum / h.count.max(1) as u128
    );
}

/// Aligned columns: the first `left` columns left-aligned (keys), the rest right-aligned.
fn render_table(
    head: &[String],
    rows: &[Vec<String>],
    total: Option<&Vec<String>>,
    left: usize,
) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows.iter().chain(total) {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, r: &[String]| {
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i] - c.chars().count();
            if i < left {
                s.push_str(c);
                if i + 1 < r.len() {
                    s.push_str(&" ".repeat(pad));
                }
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.push('\n');
    };
    line(&mut s, head);
    for r in rows {
        line(&mut s, r);
    }
    if let Some(t) = total {
        line(&mut s, t);
    }
    s
}
