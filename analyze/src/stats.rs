//! Aggregation over a trace: groups keyed by call-site fields, each with a count, an error count
//! and a latency histogram; optionally split by time interval.
//!
//! Grouping keys are site fields (process, option, result, ...), so a block's sites are mapped
//! to groups once per block and each event costs one table lookup by site index. Blocks are
//! spread over a fixed set of worker threads, each with its own group table, merged at the end:
//! memory is (workers x groups x histogram), whatever the file size.
//!
//! Latency percentiles come from a log-linear histogram: exact below 256 ns, and above that
//! buckets 1/128 of a power of two wide, reported at the bucket midpoint, so any percentile is
//! within 0.4% of the exact value (and never outside the group's exact min..max). Histograms
//! merge exactly, which is what lets workers and files be combined.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use format::{BlockFront, BlockInfo, BlockSummary, FrontParts, Site, Socket, ThreadEntry};

use crate::attr::Attributor;
use crate::decode::{cgroup, sockid};
use crate::filter::{FileFilter, IntField, Side, SockIntField, Tri, int_field};
use crate::input::{Input, report_block};

/// Sub-bucket bits: 2^7 = 128 buckets per power of two.
const SUB_BITS: u32 = 7;
const EXACT: u64 = 1 << (SUB_BITS + 1);

fn bucket(v: u64) -> u32 {
    if v < EXACT {
        return v as u32;
    }
    let k = 63 - v.leading_zeros();
    let sub = (v >> (k - SUB_BITS)) as u32 - (1 << SUB_BITS);
    EXACT as u32 + (k - SUB_BITS - 1) * (1 << SUB_BITS) + sub
}

fn bucket_low(i: u32) -> u64 {
    if (i as u64) < EXACT {
        return i as u64;
    }
    let j = i - EXACT as u32;
    let k = j / (1 << SUB_BITS) + SUB_BITS + 1;
    if k >= 64 {
        // One past the last bucket.
        return u64::MAX;
    }
    let sub = (j % (1 << SUB_BITS)) as u64 + (1 << SUB_BITS);
    sub << (k - SUB_BITS)
}

/// A mergeable latency histogram over a dense range of buckets.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    lo: u32,
    counts: Vec<u64>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
    pub sum: u128,
}

impl Histogram {
    #[inline]
    pub fn add(&mut self, v: u64) {
        self.add_n(v, 1);
    }

    #[inline]
    fn add_n(&mut self, v: u64, n: u64) {
        let b = bucket(v);
        // Fast path: the bucket is inside the range seen so far (almost always, after the first
        // few events of a group).
        let i = b.wrapping_sub(self.lo) as usize;
        match self.counts.get_mut(i) {
            Some(c) => *c += n,
            None => self.add_bucket(b, n),
        }
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        self.count += n;
        self.sum += v as u128 * n as u128;
    }

    #[cold]
    fn add_bucket(&mut self, b: u32, n: u64) {
        if self.counts.is_empty() {
            self.lo = b;
            self.counts.push(0);
        } else if b < self.lo {
            let grow = (self.lo - b) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = b;
        } else if (b - self.lo) as usize >= self.counts.len() {
            self.counts.resize((b - self.lo) as usize + 1, 0);
        }
        self.counts[(b - self.lo) as usize] += n;
    }

    /// The calls of an aggregate entry (FORMAT.md 5.3): each bucket's calls at its reported
    /// value, with the entry's exact duration sum and maximum.
    pub fn add_aggregate(&mut self, e: &format::AggregateEntry) {
        let sum = self.sum;
        for &(i, n) in &e.buckets {
            self.add_n(e.bucket_value(i), n);
        }
        self.max = self.max.max(e.duration_max_ns);
        self.sum = sum + e.duration_sum_ns as u128;
    }

    pub fn merge(&mut self, o: &Histogram) {
        if o.count == 0 {
            return;
        }
        for (i, &c) in o.counts.iter().enumerate() {
            if c > 0 {
                self.add_bucket(o.lo + i as u32, c);
            }
        }
        if self.count == 0 || o.min < self.min {
            self.min = o.min;
        }
        self.max = self.max.max(o.max);
        self.count += o.count;
        self.sum += o.sum;
    }

    /// The `q` quantile (0..=1): the value at rank ceil(q * count), nearest-rank definition.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let b = self.lo + i as u32;
                let low = bucket_low(b);
                let high = bucket_low(b + 1).saturating_sub(1).max(low);
                let mid = low + (high - low) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// Fields a group key can be made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupField {
    Int(IntField),
    Comm,
    /// (level, optname): an option is only named within its level.
    Option,
    /// An attribution field of the process, interned ([`crate::attr::intern`]).
    Attr(cgroup::Field),
    /// The pod's name (and namespace), else its UID.
    Pod,
    /// The container's name, else its short id.
    Container,
    /// A field of the call's socket.
    Sock(SockGroup),
}

/// The socket fields a group key can be made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockGroup {
    Int(SockIntField),
    Addr(Side),
    Unix(Side),
    /// The socket itself: its inode, shown with its tuple.
    Socket,
}

pub const GROUP_FIELDS: &[&str] = &[
    "comm",
    "pid",
    "tid",
    "ppid",
    "uid",
    "gid",
    "cgroup",
    "pidns",
    "mntns",
    "cpu",
    "fd",
    "level",
    "optname",
    "errno",
    "ret",
    "optlen",
    "optlen_out",
    "value_len",
    "pod",
    "container",
    "sock_family",
    "sock_type",
    "sock_protocol",
    "tcp_state",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "unix_path",
    "unix_peer",
    "sock_ino",
    "netns",
    "socket",
];

/// [`GROUP_FIELDS`] and the attribution fields.
pub fn group_field_names() -> Vec<&'static str> {
    let attr = cgroup::FIELDS.iter().map(|f| f.1);
    GROUP_FIELDS.iter().copied().chain(attr).collect()
}

pub fn parse_group_field(s: &str) -> Option<GroupField> {
    use IntField::*;
    Some(match s {
        "comm" => GroupField::Comm,
        "optname" | "option" | "opt" => GroupField::Option,
        "pid" | "tgid" => GroupField::Int(Pid),
        "tid" => GroupField::Int(Tid),
        "ppid" => GroupField::Int(Ppid),
        "uid" => GroupField::Int(Uid),
        "gid" => GroupField::Int(Gid),
        "cgroup" => GroupField::Int(Cgroup),
        "pidns" => GroupField::Int(PidNs),
        "mntns" => GroupField::Int(MntNs),
        "cpu" => GroupField::Int(Cpu),
        "fd" => GroupField::Int(Fd),
        "level" => GroupField::Int(Level),
        "errno" => GroupField::Int(Errno),
        "ret" => GroupField::Int(Ret),
        "optlen" | "optlen_in" => GroupField::Int(OptlenIn),
        "optlen_out" => GroupField::Int(OptlenOut),
        "value_len" => GroupField::Int(ValueLen),
        "pod" => GroupField::Pod,
        "container" => GroupField::Container,
        "sock_family" | "family" => GroupField::Sock(SockGroup::Int(SockIntField::Family)),
        "sock_type" => GroupField::Sock(SockGroup::Int(SockIntField::Type)),
        "sock_protocol" => GroupField::Sock(SockGroup::Int(SockIntField::Protocol)),
        "tcp_state" => GroupField::Sock(SockGroup::Int(SockIntField::TcpState)),
        "local_port" => GroupField::Sock(SockGroup::Int(SockIntField::LocalPort)),
        "remote_port" => GroupField::Sock(SockGroup::Int(SockIntField::RemotePort)),
        "sock_ino" => GroupField::Sock(SockGroup::Int(SockIntField::Ino)),
        "netns" => GroupField::Sock(SockGroup::Int(SockIntField::Netns)),
        "local_addr" => GroupField::Sock(SockGroup::Addr(Side::Local)),
        "remote_addr" => GroupField::Sock(SockGroup::Addr(Side::Remote)),
        "unix_path" => GroupField::Sock(SockGroup::Unix(Side::Local)),
        "unix_peer" => GroupField::Sock(SockGroup::Unix(Side::Remote)),
        "socket" => GroupField::Sock(SockGroup::Socket),
        _ => GroupField::Attr(cgroup::Field::by_name(s)?),
    })
}

/// Whether grouping by these fields needs the calls' sockets.
pub fn by_sockets(by: &[GroupField]) -> bool {
    by.iter().any(|f| matches!(f, GroupField::Sock(_)))
}

/// The key part of a socket field for a call without a socket, or without that field.
pub const NO_SOCKET_KEY: KeyPart = u128::MAX;
/// An IPv4 address as a key part: in a range of IPv6 multicast addresses, which no socket has
/// as its own or its peer's address.
const V4_KEY: KeyPart = 0xffff_ffff_ffff_ffff_ffff_fffe_0000_0000;

/// Texts that do not fit a key part (Unix names, sockets' tuples), by the number that stands
/// for them in keys: one table for the process, so every worker and file agrees.
static TEXTS: std::sync::LazyLock<Mutex<Interner>> = std::sync::LazyLock::new(Default::default);

/// Each text's number, and each number's text.
type Interner = (HashMap<String, u128>, HashMap<u128, String>);

fn intern(text: String) -> KeyPart {
    let mut t = TEXTS.lock().expect("no panics holding it");
    if let Some(&k) = t.0.get(&text) {
        return k;
    }
    let k = t.0.len() as u128;
    t.1.insert(k, text.clone());
    t.0.insert(text, k);
    k
}

/// The text a key part of a Unix name stands for.
pub fn interned(k: KeyPart) -> Option<String> {
    TEXTS
        .lock()
        .expect("no panics holding it")
        .1
        .get(&k)
        .cloned()
}

/// A socket's inode with the tuple of its first call met, as `--by socket` shows it.
static SOCKETS: std::sync::LazyLock<Mutex<HashMap<u64, String>>> =
    std::sync::LazyLock::new(Default::default);

/// How `--by socket` shows the socket of inode `ino`.
pub fn socket_text(ino: u64) -> String {
    let known = SOCKETS
        .lock()
        .expect("no panics holding it")
        .get(&ino)
        .cloned();
    known.unwrap_or_else(|| format!("socket:[{ino}]"))
}

fn sock_key(g: SockGroup, k: &Socket) -> KeyPart {
    match g {
        SockGroup::Int(f) => f.of(&k.view()).map_or(NO_SOCKET_KEY, |v| v as KeyPart),
        SockGroup::Addr(side) => {
            let a = match side {
                Side::Local => &k.local_addr,
                Side::Remote => &k.remote_addr,
            };
            match k.family {
                sockid::AF_INET => V4_KEY | u32::from_be_bytes([a[0], a[1], a[2], a[3]]) as u128,
                sockid::AF_INET6 => u128::from_be_bytes(*a),
                _ => NO_SOCKET_KEY,
            }
        }
        SockGroup::Unix(side) => {
            let name = match side {
                Side::Local => &k.unix_path,
                Side::Remote => &k.unix_peer,
            };
            match k.family {
                sockid::AF_UNIX => intern(sockid::unix_name_text(name).unwrap_or_default()),
                _ => NO_SOCKET_KEY,
            }
        }
        SockGroup::Socket => {
            let mut t = SOCKETS.lock().expect("no panics holding it");
            t.entry(k.ino).or_insert_with(|| {
                let mut s = String::new();
                crate::socket::write_label(&mut s, k);
                format!("{s} ino={}", k.ino)
            });
            k.ino as KeyPart
        }
    }
}

/// An address key part as text (empty for none).
pub fn addr_key_text(v: KeyPart) -> String {
    match v {
        NO_SOCKET_KEY => String::new(),
        v if v >> 32 == V4_KEY >> 32 => std::net::Ipv4Addr::from(v as u32).to_string(),
        v => std::net::Ipv6Addr::from(v).to_string(),
    }
}

/// One part of a group key. comm is its 16 NUL-padded bytes; an option is level << 32 | optname.
pub type KeyPart = u128;

/// A site's key part; `sockets` is its block's socket table. Attribution is the process's
/// latest entry (a process that moved to another container during the capture is grouped by
/// the last).
pub fn key_part(
    f: GroupField,
    s: &Site,
    t: &ThreadEntry,
    sockets: &[Socket],
    attr: &Attributor,
) -> KeyPart {
    let ids = || attr.ids_of(attr.latest(t.tgid));
    match f {
        GroupField::Comm => u128::from_le_bytes(t.comm),
        GroupField::Option => ((s.level as u32 as u128) << 32) | s.optname as u32 as u128,
        GroupField::Int(i) => int_field(i, s, t) as u128,
        GroupField::Attr(a) => ids().fields[crate::attr::field_index(a)] as u128,
        GroupField::Pod => ids().pod as u128,
        GroupField::Container => ids().container as u128,
        GroupField::Sock(g) => sockets
            .get(s.socket as usize)
            .map_or(NO_SOCKET_KEY, |k| sock_key(g, k)),
    }
}

/// Whether grouping by `by` needs the process table's attribution.
pub fn needs_attribution(by: &[GroupField]) -> bool {
    by.iter().any(|f| {
        matches!(
            f,
            GroupField::Attr(_) | GroupField::Pod | GroupField::Container
        )
    })
}

/// What is kept per group (and per group and interval in the rate view).
#[derive(Clone, Debug, Default)]
pub struct Acc {
    pub errors: u64,
    pub hist: Histogram,
}

/// Per-interval counters of the rate view.
#[derive(Clone, Copy, Debug, Default)]
pub struct IntervalAcc {
    pub count: u64,
    pub errors: u64,
    pub max: u64,
}

/// A query: what to group by and whether to split by interval.
pub struct Query<'a> {
    pub by: &'a [GroupField],
    /// Interval width in ns for the rate view.
    pub interval: Option<u64>,
    /// Most intervals a rate view may have (memory bound).
    pub max_intervals: u64,
}

/// One worker's (or the final) aggregate.
#[derive(Default)]
pub struct Agg {
    /// Keys are a few small integers: a fast hash, not SipHash (the keys come from the file,
    /// but a collision costs time only, never a wrong answer).
    pub index: HashMap<Box<[KeyPart]>, u32, rustc_hash::FxBuildHasher>,
    pub keys: Vec<Box<[KeyPart]>>,
    pub groups: Vec<Acc>,
    /// Rate view: per group, counters per interval index.
    pub intervals: Vec<Vec<IntervalAcc>>,
    pub too_many_intervals: bool,
}

impl Agg {
    pub(crate) fn slot(&mut self, key: &[KeyPart]) -> u32 {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.groups.len() as u32;
        let k: Box<[KeyPart]> = key.into();
        self.index.insert(k.clone(), i);
        self.keys.push(k);
        self.groups.push(Acc::default());
        self.intervals.push(Vec::new());
        i
    }

    pub fn merge(&mut self, o: Agg) {
        self.too_many_intervals |= o.too_many_intervals;
        for ((k, acc), iv) in o.keys.into_iter().zip(o.groups).zip(o.intervals) {
            let i = self.slot(&k) as usize;
            let g = &mut self.groups[i];
            g.errors += acc.errors;
            g.hist.merge(&acc.hist);
            let mine = &mut self.intervals[i];
            if mine.len() < iv.len() {
                mine.resize(iv.len(), IntervalAcc::default());
            }
            for (m, x) in mine.iter_mut().zip(iv) {
                m.count += x.count;
                m.errors += x.errors;
                m.max = m.max.max(x.max);
            }
        }
    }
}

/// Per-worker scratch reused across blocks.
#[derive(Default)]
struct Scratch {
    verdicts: Vec<Tri>,
    site_slot: Vec<u32>,
    site_err: Vec<bool>,
    key: Vec<KeyPart>,
}

/// Aggregates the selected events of `blocks` of one file into `agg`, on `workers` threads.
pub fn aggregate_file(
    input: &Input,
    ff: &FileFilter<'_>,
    blocks: &[BlockInfo],
    q: &Query<'_>,
    workers: usize,
) -> Agg {
    // Only the front of each block is needed (its tables, times, durations and sites). A
    // question about sites and durations alone is answered from each block's tables and
    // summary (FORMAT.md 4.2) where the block has one and lies wholly inside the time range.
    // Sockets follow the values in a block: a question about them reads the whole payload.
    let sockets = ff.filter.expr.uses_sockets() || by_sockets(q.by);
    let parts = match sockets {
        true => FrontParts::TablesTimesAndSockets,
        false => FrontParts::TablesAndTimes,
    };
    let by_summary = q.interval.is_none()
        && !sockets
        && !ff.filter.expr.uses_time()
        && !ff.cgroup_depends_on_time();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let mut agg = Agg::default();
                let mut sc = Scratch::default();
                let mut front = BlockFront::new();
                let mut summary = BlockSummary::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = blocks.get(i) else { break };
                    let reader = &input.reader;
                    // A damaged summary is not believed: the block's columns answer instead.
                    if by_summary
                        && b.ts_min >= ff.from
                        && b.ts_max <= ff.last
                        && matches!(reader.read_summary(b, &mut summary), Ok(true))
                        && reader
                            .read_block_front(b, &mut front, FrontParts::Tables)
                            .is_ok()
                        && summary.site_count() == front.sites().len()
                    {
                        reader.release(b);
                        map_sites(&mut agg, &mut sc, &front, ff, q);
                        summary_block(&mut agg, &sc, &front, &summary, b, ff);
                        continue;
                    }
                    let read = reader.read_block_front(b, &mut front, parts);
                    reader.release(b);
                    match read {
                        Ok(()) => front_block(&mut agg, &mut sc, &front, b, ff, q),
                        Err(e) => report_block(&input.path, b, &e),
                    }
                }
                results.lock().expect("no worker panics").push(agg);
            });
        }
    });
    let mut parts = results.into_inner().expect("no worker panics");
    let mut total = parts.pop().unwrap_or_default();
    for p in parts {
        total.merge(p);
    }
    total
}

/// Maps each site of a block to its group slot (`u32::MAX`: filtered out).
fn map_sites(agg: &mut Agg, sc: &mut Scratch, fr: &BlockFront, ff: &FileFilter<'_>, q: &Query<'_>) {
    let (sites, threads, sockets) = (fr.sites(), fr.threads(), fr.sockets());
    ff.site_verdicts(sites, threads, sockets, &mut sc.verdicts);
    sc.site_slot.clear();
    sc.site_err.clear();
    for (s, &v) in sites.iter().zip(&sc.verdicts) {
        if v == Tri::No {
            sc.site_slot.push(u32::MAX);
        } else {
            let t = &threads[s.thread as usize];
            sc.key.clear();
            sc.key.extend(
                q.by.iter()
                    .map(|&f| key_part(f, s, t, sockets, ff.attributor())),
            );
            sc.site_slot.push(agg.slot(&sc.key));
        }
        sc.site_err.push(s.ret < 0);
    }
}

/// The hot loop over the front columns of one block.
fn front_block(
    agg: &mut Agg,
    sc: &mut Scratch,
    fr: &BlockFront,
    b: &BlockInfo,
    ff: &FileFilter<'_>,
    q: &Query<'_>,
) {
    map_sites(agg, sc, fr, ff, q);
    let whole_block = b.ts_min >= ff.from && b.ts_max <= ff.last;
    let need_ts = !whole_block || q.interval.is_some() || sc.verdicts.contains(&Tri::Maybe);
    let mut ts_iter = fr.timestamps();
    for (si, dur) in fr.site_indexes().zip(fr.durations()) {
        // Timestamps are a running sum: advance it for every event when it is needed at all.
        let ts = if need_ts {
            ts_iter.next().unwrap_or(0)
        } else {
            0
        };
        let si = si as usize;
        let slot = sc.site_slot[si];
        if slot == u32::MAX {
            continue;
        }
        let v = sc.verdicts[si];
        if v == Tri::Maybe || !whole_block {
            let s = &fr.sites()[si];
            let t = &fr.threads()[s.thread as usize];
            if !ff.event_passes(v, s, t, fr.sockets(), ts, dur) {
                continue;
            }
        }
        add_event(agg, sc, slot, si, ts, dur, ff, q);
    }
}

/// Adds the events of a block from its summary; `map_sites` has run on the block's tables.
fn summary_block(
    agg: &mut Agg,
    sc: &Scratch,
    fr: &BlockFront,
    summary: &BlockSummary,
    b: &BlockInfo,
    ff: &FileFilter<'_>,
) {
    let add = |g: &mut Acc, durations: &[u64], err: bool| {
        g.errors += err as u64 * durations.len() as u64;
        // Sorted: equal durations come in runs, each added at once.
        for run in durations.chunk_by(|a, b| a == b) {
            g.hist.add_n(run[0], run.len() as u64);
        }
    };
    for (si, s) in fr.sites().iter().enumerate() {
        let slot = sc.site_slot[si];
        if slot == u32::MAX {
            continue;
        }
        let durations = summary.site_durations(si);
        let g = &mut agg.groups[slot as usize];
        if sc.verdicts[si] == Tri::Yes {
            add(g, durations, sc.site_err[si]);
            continue;
        }
        // Only the duration is undecided (the caller made sure no time test is involved, and
        // the block lies inside the time range, so its first timestamp stands in). The answer
        // can change only at the expression's duration breaks, and the durations are sorted:
        // one evaluation per stretch between breaks decides the whole stretch.
        let t = &fr.threads()[s.thread as usize];
        let mut start = 0;
        let mut stretch_min = 0;
        for next in ff.duration_breaks().iter().map(Some).chain([None]) {
            let end = match next {
                Some(&at) => start + durations[start..].partition_point(|&d| d < at),
                None => durations.len(),
            };
            if end > start && ff.event_passes(Tri::Maybe, s, t, &[], b.ts_min, stretch_min) {
                add(g, &durations[start..end], sc.site_err[si]);
            }
            start = end;
            stretch_min = next.copied().unwrap_or(0);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn add_event(
    agg: &mut Agg,
    sc: &Scratch,
    slot: u32,
    si: usize,
    ts: u64,
    dur: u64,
    ff: &FileFilter<'_>,
    q: &Query<'_>,
) {
    let g = &mut agg.groups[slot as usize];
    let err = sc.site_err[si];
    g.errors += err as u64;
    g.hist.add(dur);
    if let Some(width) = q.interval {
        let idx = ts.saturating_sub(ff.rel_base) / width;
        if idx >= q.max_intervals {
            agg.too_many_intervals = true;
            return;
        }
        let iv = &mut agg.intervals[slot as usize];
        if iv.len() <= idx as usize {
            iv.resize(idx as usize + 1, IntervalAcc::default());
        }
        let x = &mut iv[idx as usize];
        x.count += 1;
        x.errors += err as u64;
        x.max = x.max.max(dur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX / 2, u64::MAX]) {
            let b = bucket(v);
            assert!(b >= prev);
            prev = b;
            let lo = bucket_low(b);
            assert!(lo <= v, "{v}: bucket {b} starts at {lo}");
            if v >= EXACT {
                assert!((v - lo) as f64 / v as f64 <= 1.0 / 128.0, "{v}");
            } else {
                assert_eq!(lo, v);
            }
        }
    }

    #[test]
    fn quantiles_close_to_exact_and_merge_exactly() {
        let values: Vec<u64> = (0..10_000u64).map(|i| 100 + i * i % 97_531).collect();
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for (i, &v) in values.iter().enumerate() {
            if i % 2 == 0 { a.add(v) } else { b.add(v) }
        }
        a.merge(&b);
        let mut sorted = values.clone();
        sorted.sort();
        for q in [0.5, 0.9, 0.99, 1.0] {
            let exact =
                sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
            let got = a.quantile(q);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err <= 0.004, "q{q}: {got} vs {exact}");
        }
        assert_eq!(a.count, 10_000);
        assert_eq!(a.max, *sorted.last().unwrap());
        assert_eq!(a.min, sorted[0]);
    }
}
