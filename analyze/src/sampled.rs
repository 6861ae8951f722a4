//! Sampled captures (`recorder record --max-rate`, FORMAT.md 5.3): every call is in the
//! file's aggregate records, a sample of them also as events. A question whose groups and
//! filters the aggregate records hold (process, level, option, result, time range by whole
//! periods) is answered from them alone, exactly; any other from the sample alone, which the
//! caller says. Never from both: each sampled call is also in its period's counts.

use format::{AggregateEntry, AggregatePeriod, Site, ThreadEntry};

use crate::decode::expr::{Expr, IntField, Pred};
use crate::filter::FileFilter;
use crate::input::Input;
use crate::stats::{Agg, GroupField, Query, key_part};

/// The fields an aggregate entry is keyed by, as `--by` and `--where` name them.
pub const AGGREGATE_FIELDS: &str = "pid, level, optname, errno, ret";

/// What a file's aggregate records say about the capture as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub periods: usize,
    /// Every call counted, the overflow entry's included.
    pub calls: u64,
    /// Calls of the overflow entry: no process, option or result known.
    pub overflow: u64,
    /// Calls picked for the sample, and of those turned away by the cap or the full buffer.
    pub sampled: u64,
    pub capped: u64,
    pub dropped: u64,
    /// Boot-time span of the periods.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Coverage {
    pub fn of(periods: &[AggregatePeriod]) -> Coverage {
        let mut c = Coverage {
            periods: periods.len(),
            start_ns: periods.iter().map(|p| p.start_ns).min().unwrap_or(0),
            end_ns: periods.iter().map(|p| p.end_ns).max().unwrap_or(0),
            ..Coverage::default()
        };
        for p in periods {
            (c.sampled, c.capped, c.dropped) = (
                c.sampled + p.sampled,
                c.capped + p.capped,
                c.dropped + p.dropped,
            );
            for e in &p.entries {
                c.calls += e.calls();
                c.overflow += if e.is_overflow() { e.calls() } else { 0 };
            }
        }
        c
    }
}

/// The header's `max_rate` (FORMAT.md 3.2): the capture was sampled.
pub fn max_rate(header: &format::CaptureHeader) -> Option<&str> {
    header
        .extra
        .iter()
        .find(|(k, _)| k == "max_rate")
        .map(|(_, v)| v.as_str())
}

/// What `events` says on stderr, before any event, when a file is sampled: its aggregate
/// records (or, in a stream that has not reached them, its header's `max_rate`) say so.
pub fn events_note(
    path: &str,
    header: &format::CaptureHeader,
    periods: &[AggregatePeriod],
) -> Option<String> {
    let rate = max_rate(header);
    if periods.is_empty() {
        return rate.map(|r| {
            format!("note: {path} was sampled (--max-rate {r}): its events are a sample of its calls; `analyze stats` counts every call from its aggregate records")
        });
    }
    let c = Coverage::of(periods);
    Some(format!(
        "note: {path} was sampled (--max-rate {}): its events are a sample of its {} calls, which `analyze stats` counts from its aggregate records",
        rate.unwrap_or("?"),
        c.calls
    ))
}

/// A question with no `--by` and no `--interval`: what `export` and `slice` ask
/// [`unanswerable`] about their filter alone.
pub const NO_QUERY: Query<'static> = Query {
    by: &[],
    interval: None,
    max_intervals: 0,
};

/// Why a question cannot be answered from aggregate records (`None`: it can).
pub fn unanswerable(
    by: &[GroupField],
    by_names: &[String],
    expr: &Expr,
    q: &Query<'_>,
) -> Option<String> {
    if q.interval.is_some() {
        return Some("--interval".into());
    }
    if let Some((_, name)) = by.iter().zip(by_names).find(|(f, _)| !keyed(**f)) {
        return Some(format!("--by {name}"));
    }
    (!expr_keyed(expr))
        .then(|| format!("a filter on other fields than {AGGREGATE_FIELDS} and the time range"))
}

fn keyed(f: GroupField) -> bool {
    use IntField::*;
    matches!(
        f,
        GroupField::Option | GroupField::Int(Pid | Level | Optname | Ret | Errno)
    )
}

fn expr_keyed(e: &Expr) -> bool {
    use IntField::*;
    match e {
        Expr::True => true,
        Expr::Pred(Pred::Int(Pid | Level | Optname | Ret | Errno, ..) | Pred::Option { .. }) => {
            true
        }
        Expr::Pred(_) => false,
        Expr::Not(e) => expr_keyed(e),
        Expr::And(v) | Expr::Or(v) => v.iter().all(expr_keyed),
    }
}

/// What [`add_file`] could not put in any group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Periods the time range cuts, and their calls (the range only partly covers them).
    pub cut_periods: usize,
    pub cut_calls: u64,
    /// Calls of overflow entries in the range (no key to group or filter them by).
    pub overflow: u64,
}

/// The periods of one file wholly inside the filter's time range; counts in `left` the ones
/// it cuts.
fn periods_inside<'a>(
    input: &'a Input,
    ff: &FileFilter<'_>,
    left: &mut Left,
) -> impl Iterator<Item = &'a AggregatePeriod> {
    input.reader.aggregates().iter().filter(move |p| {
        let inside = inside(p, ff);
        if !inside && p.start_ns <= ff.last && p.end_ns > ff.from {
            left.cut_periods += 1;
            left.cut_calls += p.entries.iter().map(AggregateEntry::calls).sum::<u64>();
        }
        inside
    })
}

/// The entry as a call site of its process, if the filter selects it (never the overflow
/// entry, which has no key to filter by).
fn selects(
    ff: &FileFilter<'_>,
    p: &AggregatePeriod,
    e: &AggregateEntry,
    verdict: &mut Vec<crate::filter::Tri>,
) -> Option<(Site, ThreadEntry)> {
    if e.is_overflow() {
        return None;
    }
    let (site, thread) = site_of(e);
    let (sites, threads) = (std::slice::from_ref(&site), std::slice::from_ref(&thread));
    ff.site_verdicts(sites, threads, &[], verdict);
    ff.event_passes(verdict[0], &site, &thread, &[], p.start_ns, 0)
        .then_some((site, thread))
}

/// Calls `each` with every aggregate entry of one file that the filter selects (by whole
/// periods within the time range), its period, and the entry as a call site; counts in
/// `left` what it leaves out.
pub fn for_each_selected(
    input: &Input,
    ff: &FileFilter<'_>,
    left: &mut Left,
    mut each: impl FnMut(&AggregatePeriod, &AggregateEntry, &Site, &ThreadEntry),
) {
    let mut verdict = Vec::new();
    let mut overflow = 0;
    for p in periods_inside(input, ff, left) {
        for e in &p.entries {
            overflow += if e.is_overflow() { e.calls() } else { 0 };
            if let Some((site, thread)) = selects(ff, p, e, &mut verdict) {
                each(p, e, &site, &thread);
            }
        }
    }
    left.overflow += overflow;
}

/// Whether a period lies wholly inside the filter's time range: its calls have no times of
/// their own, so only whole periods are selected.
pub fn inside(p: &AggregatePeriod, ff: &FileFilter<'_>) -> bool {
    p.start_ns >= ff.from && p.end_ns.saturating_sub(1) <= ff.last
}

/// The periods wholly inside the filter's time range, each with the entries the filter
/// selects and its overflow entry (unattributed calls stay visible as such); periods left
/// with no entries are kept, so the coverage in time stays explicit. What `slice` writes.
pub fn selected_periods(
    input: &Input,
    ff: &FileFilter<'_>,
    left: &mut Left,
) -> Vec<AggregatePeriod> {
    let mut verdict = Vec::new();
    periods_inside(input, ff, left)
        .map(|p| AggregatePeriod {
            entries: (p.entries.iter())
                .filter(|e| e.is_overflow() || selects(ff, p, e, &mut verdict).is_some())
                .cloned()
                .collect(),
            ..p.clone()
        })
        .collect()
}

/// Adds the aggregate records of one file that the filter selects to `agg`.
pub fn add_file(input: &Input, ff: &FileFilter<'_>, q: &Query<'_>, agg: &mut Agg, left: &mut Left) {
    let mut key = Vec::new();
    for_each_selected(input, ff, left, |_, e, site, thread| {
        key.clear();
        key.extend(
            q.by.iter()
                .map(|&f| key_part(f, site, thread, &[], ff.attributor())),
        );
        let slot = agg.slot(&key) as usize;
        let g = &mut agg.groups[slot];
        g.errors += if e.ret < 0 { e.calls() } else { 0 };
        g.hist.add_aggregate(e);
    });
}

impl Left {
    /// What `stats` says on stderr about a sampled question: how it was answered, and what
    /// it could not count. `exact`: files answered from their aggregate records; `sample`:
    /// sampled files answered from their events, because of `why`.
    pub fn notes(&self, exact: usize, sample: &[&str], why: Option<&str>) -> Vec<String> {
        let mut v = Vec::new();
        if exact > 0 {
            v.push(format!(
                "note: {exact} sampled file(s) (--max-rate): counts, errors and latencies from their aggregate records, every call (percentiles within 6.25%, max exact; FORMAT.md 5.3)"
            ));
        }
        if self.cut_periods > 0 {
            v.push(format!(
                "warning: the time range cuts {} aggregate period(s); their {} calls are not counted (analyze info lists the periods)",
                self.cut_periods, self.cut_calls
            ));
        }
        if self.overflow > 0 {
            v.push(format!(
                "warning: {} calls were counted in the recorder's overflow entry (its map was full): they are in no group",
                self.overflow
            ));
        }
        if let (Some(why), false) = (why, sample.is_empty()) {
            v.push(format!(
                "note: {} was sampled (--max-rate): {why} is answered from the sample of events only, not from exact counts (those hold {AGGREGATE_FIELDS} and whole periods)",
                sample.join(", ")
            ));
        }
        v
    }
}

/// An entry as a call site of its process: the fields it is keyed by, the others zero (which
/// [`unanswerable`] keeps every question from looking at).
fn site_of(e: &AggregateEntry) -> (Site, ThreadEntry) {
    let site = Site {
        thread: 0,
        cpu: 0,
        fd: 0,
        level: e.level,
        optname: e.optname,
        optlen_in: 0,
        optlen_out: 0,
        ret: e.ret,
        flags: 0,
        value_len: 0,
        socket: Site::SOCKET_NOT_RECORDED,
    };
    let thread = ThreadEntry {
        tgid: e.tgid,
        tid: e.tgid,
        ppid: 0,
        uid: 0,
        gid: 0,
        comm: [0; 16],
        cgroup_id: 0,
        pid_ns: 0,
        mnt_ns: 0,
    };
    (site, thread)
}
