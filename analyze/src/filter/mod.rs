//! The selection layer every subcommand shares: the filter options, the `--where` language,
//! and their evaluation.
//!
//! A filter compiles to one [`Expr`]. Most fields belong to the call *site* (thread, fd, level,
//! option, lengths, result), which a block stores once for all the events that share it, so a
//! filter is first evaluated once per site per block ([`Filter::site_verdicts`]) with
//! three-valued logic: a site is in, out, or depends on the event's time or duration. Only the
//! last kind costs a per-event test. `--since`/`--until` become a time range that selects
//! blocks from the index before any block is read.

pub use gsot_decode::{expr, glob};

use clap::Args;
use format::{CaptureHeader, ProcessInfo, Site, Socket, ThreadEntry, TraceReader};
use gsot_decode::cgroup::Field;

pub use expr::{CmpOp, Expr, IntField, ParseError, Pred, Side, SockIntField};
use glob::Glob;

use crate::attr::Attributor;
use crate::decode::{errno, levels, sockid};
use crate::time;

/// Filter options, the same for every subcommand.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Filters (all given must hold)")]
pub struct FilterArgs {
    /// Process ids (tgid), comma-separated.
    #[arg(long, value_name = "PID,...", value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Thread ids, comma-separated.
    #[arg(long, value_name = "TID,...", value_delimiter = ',')]
    pub tid: Vec<u32>,
    /// Task names, shell globs (`ngin*`), comma-separated.
    #[arg(long, value_name = "GLOB,...", value_delimiter = ',')]
    pub comm: Vec<String>,
    /// User ids, comma-separated.
    #[arg(long, value_name = "UID,...", value_delimiter = ',')]
    pub uid: Vec<u32>,
    /// cgroup v2 ids, or globs on cgroup paths from the process table (`/system.slice/*`).
    #[arg(long, value_name = "ID|GLOB,...", value_delimiter = ',')]
    pub cgroup: Vec<String>,
    /// Containers: an id or its leading hex digits (`3f4e1b2c9d8a`), or a name glob.
    #[arg(long, value_name = "ID|GLOB,...", value_delimiter = ',')]
    pub container: Vec<String>,
    /// Kubernetes pods: a name glob (`web-*`), or a pod UID where no name was captured.
    #[arg(long, value_name = "GLOB,...", value_delimiter = ',')]
    pub pod: Vec<String>,
    /// Kubernetes namespaces, globs (not pid, mount or network namespaces).
    #[arg(long = "k8s-namespace", value_name = "GLOB,...", value_delimiter = ',')]
    pub k8s_namespace: Vec<String>,
    /// Socket levels, names or numbers (`SOL_TCP`, `tcp`, `6`).
    #[arg(long, value_name = "LEVEL,...", value_delimiter = ',')]
    pub level: Vec<String>,
    /// Options, names (`TCP_INFO`, named within their level) or numbers (any level).
    #[arg(long, value_name = "OPT,...", value_delimiter = ',')]
    pub optname: Vec<String>,
    /// Only calls that failed.
    #[arg(long)]
    pub errors: bool,
    /// Only calls that failed with these errnos, names or numbers (`EINVAL,ENOPROTOOPT`).
    #[arg(long, value_name = "ERRNO,...", value_delimiter = ',')]
    pub errno: Vec<String>,
    /// Start of the time range: a duration from the capture start (`10s`), from its end
    /// (`-10s`), or a UTC wall-clock time (`12:00:01.5`, `2026-01-01T12:00:01Z`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// End of the time range (exclusive), same forms as --since.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only calls that took at least this long (`10us`).
    #[arg(long, value_name = "DURATION")]
    pub min_duration: Option<String>,
    /// Calls on sockets with this local or remote port, comma-separated.
    #[arg(long, value_name = "PORT,...", value_delimiter = ',')]
    pub port: Vec<u16>,
    /// Calls on sockets with this local port, comma-separated.
    #[arg(long, value_name = "PORT,...", value_delimiter = ',')]
    pub local_port: Vec<u16>,
    /// Calls on sockets with this remote port, comma-separated.
    #[arg(long, value_name = "PORT,...", value_delimiter = ',')]
    pub remote_port: Vec<u16>,
    /// Calls on sockets whose local or remote address is this address or lies in this
    /// network (`10.0.0.0/8`, `::1`, `fe80::/10`), comma-separated.
    #[arg(long, value_name = "ADDR|CIDR,...", value_delimiter = ',')]
    pub addr: Vec<String>,
    /// Calls on sockets of these address families (`inet`, `inet6`, `unix`, `netlink`,
    /// `AF_PACKET`, a number), comma-separated.
    #[arg(long, value_name = "FAMILY,...", value_delimiter = ',')]
    pub family: Vec<String>,
    /// An expression over the fields, e.g.
    /// `comm == "nginx" && optname == TCP_INFO && duration > 10us || errno == EINVAL`.
    #[arg(long = "where", value_name = "EXPR")]
    pub where_expr: Option<String>,
}

/// A usage error in a filter option: which option, and the message.
#[derive(Debug)]
pub struct FilterError(pub String);

/// A point in time as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    FromStart(u64),
    FromEnd(u64),
    Wall(i64),
}

impl TimeSpec {
    fn parse(s: &str, capture_start_wall: i64) -> Result<TimeSpec, String> {
        let t = s.trim();
        if let Some(rest) = t.strip_prefix('-') {
            return time::parse_duration(rest).map(TimeSpec::FromEnd);
        }
        let rel = t.strip_prefix('+').unwrap_or(t);
        if let Ok(ns) = time::parse_duration(rel) {
            return Ok(TimeSpec::FromStart(ns));
        }
        time::parse_wall(t, time::day_of(capture_start_wall))
            .map(TimeSpec::Wall)
            .ok_or_else(|| {
                format!(
                    "expected a duration from the capture start (10s), from its end (-10s), or a UTC time (12:00:01, 2026-01-01T12:00:01Z), found {s:?}"
                )
            })
    }

    /// Unix ns of this point in a capture spanning `start..end` (Unix ns).
    fn resolve(self, start: i64, end: i64) -> i64 {
        match self {
            TimeSpec::FromStart(d) => start.saturating_add(d.min(i64::MAX as u64) as i64),
            TimeSpec::FromEnd(d) => end.saturating_sub(d.min(i64::MAX as u64) as i64),
            TimeSpec::Wall(t) => t,
        }
    }
}

/// What the inputs span in wall-clock time, for resolving relative times.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Unix ns of the capture start (the earliest header start of all inputs).
    pub start_wall: i64,
    /// Unix ns of the last event of all inputs.
    pub end_wall: i64,
}

impl Span {
    pub fn of(readers: &[&TraceReader]) -> Span {
        let start_wall = readers
            .iter()
            .map(|r| to_wall(r.header().start_ts_ns, r.header().boot_to_wall_ns))
            .min()
            .unwrap_or(0);
        let end_wall = readers
            .iter()
            .filter_map(|r| {
                let b2w = r.header().boot_to_wall_ns;
                r.blocks()
                    .iter()
                    .filter(|b| b.event_count > 0)
                    .map(|b| to_wall(b.ts_max, b2w))
                    .max()
            })
            .max()
            .unwrap_or(start_wall);
        Span {
            start_wall,
            end_wall,
        }
    }
}

/// Boot-time ns to Unix ns: the sum in i128, clamped to i64 (FORMAT.md 4.1), so a boot time
/// at or past 2^63 does not wrap into the past.
pub fn to_wall(boot_ns: u64, boot_to_wall: i64) -> i64 {
    (boot_ns as i128 + boot_to_wall as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A compiled filter, independent of any one file.
#[derive(Clone, Debug)]
pub struct Filter {
    pub expr: Expr,
    /// Whether any part needs the event's time or duration.
    pub per_event: bool,
    /// Unix ns range `[from, to)`.
    pub wall_from: i64,
    pub wall_to: i64,
    /// Unix ns of the capture start (`time` in `--where` counts from here).
    pub start_wall: i64,
    pub uses_cgroup_paths: bool,
}

impl Filter {
    /// A filter that selects everything.
    pub fn all() -> Filter {
        Filter {
            expr: Expr::True,
            per_event: false,
            wall_from: i64::MIN,
            wall_to: i64::MAX,
            start_wall: 0,
            uses_cgroup_paths: false,
        }
    }

    /// Compiles the filter options. `where` errors are rendered with a caret.
    pub fn new(a: &FilterArgs, span: Span) -> Result<Filter, FilterError> {
        let mut all = Vec::new();
        let any_of = |list: Vec<Expr>| Expr::or(list);
        if !a.pid.is_empty() {
            all.push(any_of(ints(IntField::Pid, &a.pid)));
        }
        if !a.tid.is_empty() {
            all.push(any_of(ints(IntField::Tid, &a.tid)));
        }
        if !a.uid.is_empty() {
            all.push(any_of(ints(IntField::Uid, &a.uid)));
        }
        if !a.comm.is_empty() {
            let mut list = Vec::new();
            for c in &a.comm {
                let glob = Glob::new(c).map_err(|e| FilterError(format!("--comm: {e}")))?;
                list.push(Expr::Pred(Pred::Comm {
                    glob,
                    negate: false,
                }));
            }
            all.push(any_of(list));
        }
        if !a.cgroup.is_empty() {
            let mut list = Vec::new();
            for c in &a.cgroup {
                list.push(Expr::Pred(match expr::parse_int(c) {
                    Some(id) => Pred::Int(IntField::Cgroup, CmpOp::Eq, id),
                    None => Pred::CgroupPath {
                        glob: Glob::new(c).map_err(|e| FilterError(format!("--cgroup: {e}")))?,
                        negate: false,
                    },
                }));
            }
            all.push(any_of(list));
        }
        for (opt, given) in [
            ("--container", &a.container),
            ("--pod", &a.pod),
            ("--k8s-namespace", &a.k8s_namespace),
        ] {
            if !given.is_empty() {
                all.push(any_of(attr_filter(opt, given)?));
            }
        }
        if !a.level.is_empty() {
            let mut list = Vec::new();
            for l in &a.level {
                let v = expr::parse_int(l)
                    .or_else(|| levels::level_by_name(l).map(|v| v as i64))
                    .ok_or_else(|| {
                        FilterError(format!(
                            "--level: unknown level {l:?} (try SOL_SOCKET, SOL_TCP, SOL_IP, SOL_IPV6 or a number)"
                        ))
                    })?;
                list.push(Expr::Pred(Pred::Int(IntField::Level, CmpOp::Eq, v)));
            }
            all.push(any_of(list));
        }
        if !a.optname.is_empty() {
            let mut list = Vec::new();
            for o in &a.optname {
                list.push(Expr::Pred(match expr::parse_int(o) {
                    Some(v) => Pred::Int(IntField::Optname, CmpOp::Eq, v),
                    None => {
                        let pairs = levels::option_by_name(o);
                        if pairs.is_empty() {
                            return Err(FilterError(format!(
                                "--optname: unknown option {o:?} (names as in the kernel headers, e.g. TCP_INFO, SO_RCVBUF, or a number)"
                            )));
                        }
                        Pred::Option {
                            pairs,
                            negate: false,
                        }
                    }
                }));
            }
            all.push(any_of(list));
        }
        if a.errors {
            all.push(Expr::Pred(Pred::Int(IntField::Ret, CmpOp::Lt, 0)));
        }
        if !a.errno.is_empty() {
            let mut list = Vec::new();
            for e in &a.errno {
                let n = expr::parse_int(e)
                    .or_else(|| errno::by_name(e).map(|n| n as i64))
                    .ok_or_else(|| {
                        FilterError(format!(
                            "--errno: unknown errno {e:?} (e.g. EINVAL, or a number)"
                        ))
                    })?;
                list.push(Expr::Pred(Pred::Int(IntField::Errno, CmpOp::Eq, n)));
            }
            all.push(any_of(list));
        }
        if let Some(d) = &a.min_duration {
            let ns =
                time::parse_duration(d).map_err(|e| FilterError(format!("--min-duration: {e}")))?;
            all.push(Expr::Pred(Pred::Duration(CmpOp::Ge, ns)));
        }
        all.extend(socket_filters(a)?);
        if let Some(w) = &a.where_expr {
            let e = expr::parse(w).map_err(|e| FilterError(format!("--where: {}", e.render(w))))?;
            all.push(e);
        }
        let spec = |s: &Option<String>, what: &str| -> Result<Option<i64>, FilterError> {
            s.as_deref()
                .map(|s| {
                    TimeSpec::parse(s, span.start_wall)
                        .map(|t| t.resolve(span.start_wall, span.end_wall))
                        .map_err(|e| FilterError(format!("{what}: {e}")))
                })
                .transpose()
        };
        let wall_from = spec(&a.since, "--since")?.unwrap_or(i64::MIN);
        let wall_to = spec(&a.until, "--until")?.unwrap_or(i64::MAX);
        let expr = Expr::and(all).cheapest_first();
        Ok(Filter {
            per_event: expr.per_event(),
            uses_cgroup_paths: uses_process_table(&expr),
            expr,
            wall_from,
            wall_to,
            start_wall: span.start_wall,
        })
    }

    /// The same filter, binding each file's attribution of processes even where the filter
    /// itself needs none (for `stats --by pod`).
    pub fn with_attribution(mut self) -> Filter {
        self.uses_cgroup_paths = true;
        self
    }

    /// Whether a time range was given.
    pub fn has_time_range(&self) -> bool {
        self.wall_from != i64::MIN || self.wall_to != i64::MAX
    }

    /// The part of the filter that depends on one file: its clock and process table.
    pub fn for_file(&self, r: &TraceReader) -> FileFilter<'_> {
        self.for_parts(r.header(), || Attributor::new(r))
    }

    /// [`Filter::for_file`] from a file's header and the attribution of its side tables (so
    /// far, for a stream), made only when the filter needs it.
    pub fn for_parts(
        &self,
        header: &CaptureHeader,
        attr: impl FnOnce() -> Attributor,
    ) -> FileFilter<'_> {
        let b2w = header.boot_to_wall_ns as i128;
        // Inclusive boot-ns bounds, so an open end includes every timestamp up to 2^64-1. An
        // empty range comes out as from > last.
        let clamp = |v: i128| v.clamp(0, u64::MAX as i128) as u64;
        let to_boot = |wall: i64| -> u64 {
            if wall == i64::MIN {
                0
            } else {
                clamp(wall as i128 - b2w)
            }
        };
        let (from, last) = match (self.wall_from, self.wall_to) {
            (_, i64::MAX) => (to_boot(self.wall_from), u64::MAX),
            (f, t) if (t as i128 - 1 - b2w) < 0 || t <= f => (1, 0),
            (_, t) => (to_boot(self.wall_from), clamp(t as i128 - 1 - b2w)),
        };
        let attr = if self.uses_cgroup_paths {
            attr()
        } else {
            Attributor::default()
        };
        FileFilter {
            filter: self,
            from,
            last,
            rel_base: to_boot(self.start_wall),
            attr,
            duration_breaks: self.expr.duration_breaks(),
        }
    }
}

/// `--port --local-port --remote-port --addr --family`, each an `||` of its values.
fn socket_filters(a: &FilterArgs) -> Result<Vec<Expr>, FilterError> {
    let port = |f: SockIntField, p: u16| Expr::Pred(Pred::Sock(f, CmpOp::Eq, p as i64));
    let addr = |side, net| {
        Expr::Pred(Pred::SockAddr {
            side,
            net,
            negate: false,
        })
    };
    let mut all = Vec::new();
    let either = |p: &u16| [SockIntField::LocalPort, SockIntField::RemotePort].map(|f| port(f, *p));
    for (list, exprs) in [
        (&a.port, a.port.iter().flat_map(either).collect::<Vec<_>>()),
        (
            &a.local_port,
            a.local_port
                .iter()
                .map(|&p| port(SockIntField::LocalPort, p))
                .collect(),
        ),
        (
            &a.remote_port,
            a.remote_port
                .iter()
                .map(|&p| port(SockIntField::RemotePort, p))
                .collect(),
        ),
    ] {
        if !list.is_empty() {
            all.push(Expr::or(exprs));
        }
    }
    if !a.addr.is_empty() {
        let mut list = Vec::new();
        for s in &a.addr {
            let net = sockid::Cidr::parse(s).map_err(|e| FilterError(format!("--addr: {e}")))?;
            list.extend([addr(Side::Local, net), addr(Side::Remote, net)]);
        }
        all.push(Expr::or(list));
    }
    if !a.family.is_empty() {
        let mut list = Vec::new();
        for f in &a.family {
            let v = sockid::family_by_name(f).ok_or_else(|| {
                FilterError(format!(
                    "--family: unknown address family {f:?} (inet, inet6, unix, netlink, AF_PACKET or a number)"
                ))
            })?;
            list.push(Expr::Pred(Pred::Sock(
                SockIntField::Family,
                CmpOp::Eq,
                v as i64,
            )));
        }
        all.push(Expr::or(list));
    }
    Ok(all)
}

fn ints(f: IntField, v: &[u32]) -> Vec<Expr> {
    v.iter()
        .map(|&x| Expr::Pred(Pred::Int(f, CmpOp::Eq, x as i64)))
        .collect()
}

/// `--container`, `--pod`, `--k8s-namespace`: one alternative per value and field it may name.
fn attr_filter(opt: &str, given: &[String]) -> Result<Vec<Expr>, FilterError> {
    let mut list = Vec::new();
    let mut push = |field: Field, pattern: &str| -> Result<(), FilterError> {
        let glob = Glob::new(pattern).map_err(|e| FilterError(format!("{opt}: {e}")))?;
        list.push(Expr::Pred(Pred::Attr {
            field,
            glob,
            negate: false,
        }));
        Ok(())
    };
    for g in given {
        match opt {
            "--container" => {
                push(Field::ContainerName, g)?;
                // Leading hex digits name an id as `docker` takes them; a glob may match ids.
                let hex =
                    !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_hexdigit());
                let id = if hex {
                    format!("{}*", g.to_ascii_lowercase())
                } else {
                    g.clone()
                };
                push(Field::ContainerId, &id)?;
            }
            "--pod" => {
                push(Field::PodName, g)?;
                push(Field::PodUid, g)?;
            }
            _ => push(Field::PodNamespace, g)?,
        }
    }
    Ok(list)
}

/// Whether the expression asks the process table (cgroup paths, attribution).
fn uses_process_table(e: &Expr) -> bool {
    match e {
        Expr::True => false,
        Expr::Pred(p) => matches!(p, Pred::CgroupPath { .. } | Pred::Attr { .. }),
        Expr::Not(e) => uses_process_table(e),
        Expr::And(v) | Expr::Or(v) => v.iter().any(uses_process_table),
    }
}

/// Three-valued truth: a site-level evaluation may not know the answer yet. Ordered
/// `No < Maybe < Yes`, so "and" is the minimum, "or" the maximum and "not" the mirror image
/// (Kleene's logic): a whole block's sites are evaluated by one loop per operator so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tri {
    No,
    /// Depends on the event's time or duration.
    Maybe,
    Yes,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Maybe => Tri::Maybe,
        }
    }
}

/// A [`Filter`] bound to one file.
pub struct FileFilter<'f> {
    pub filter: &'f Filter,
    /// Boot-ns range `[from, last]` in this file's clock, both ends included.
    pub from: u64,
    pub last: u64,
    /// Boot ns of the capture start in this file's clock.
    pub rel_base: u64,
    attr: Attributor,
    duration_breaks: Vec<u64>,
}

impl FileFilter<'_> {
    /// The attribution of this file's processes; empty unless the filter uses the process
    /// table or was made [`Filter::with_attribution`].
    pub fn attributor(&self) -> &Attributor {
        &self.attr
    }

    /// [`Expr::duration_breaks`] of the filter's expression.
    pub fn duration_breaks(&self) -> &[u64] {
        &self.duration_breaks
    }

    /// One verdict per site of a decoded block, into `out`. `sockets` is the block's socket
    /// table: when it was not read (empty), every socket test is false, so a caller whose
    /// filter [uses sockets](Expr::uses_sockets) reads them.
    pub fn site_verdicts(
        &self,
        sites: &[Site],
        threads: &[ThreadEntry],
        sockets: &[Socket],
        out: &mut Vec<Tri>,
    ) {
        // Operator by operator over all sites, not site by site through the tree: a block has
        // thousands of sites, and a tight loop per node beats a branchy walk per site.
        let blk = Block { threads, sockets };
        self.eval_sites(&self.filter.expr, sites, &blk, out);
    }

    /// `e` for every site of a block (times and durations unknown), into `out`.
    fn eval_sites(&self, e: &Expr, sites: &[Site], blk: &Block<'_>, out: &mut Vec<Tri>) {
        let threads = blk.threads;
        out.clear();
        match e {
            Expr::True => out.resize(sites.len(), Tri::Yes),
            Expr::Pred(p) if p.per_event() => out.resize(sites.len(), Tri::Maybe),
            Expr::Pred(p)
                if let Some(of_thread) = threads
                    .iter()
                    .map(|t| self.thread_pred(p, t))
                    .collect::<Option<Vec<Tri>>>() =>
            {
                // Once per thread, then looked up; site thread indexes were validated by the
                // decoder.
                out.extend(sites.iter().map(|s| of_thread[s.thread as usize]));
            }
            // The two site predicates that matter most, as plain loops.
            Expr::Pred(Pred::Int(f, op, v)) => {
                let b = |x: bool| if x { Tri::Yes } else { Tri::No };
                out.extend(sites.iter().map(|s| {
                    let t = &threads[s.thread as usize];
                    b(op.test(int_field(*f, s, t), *v as i128))
                }));
            }
            Expr::Pred(Pred::Option { pairs, negate }) => {
                let b = |x: bool| if x { Tri::Yes } else { Tri::No };
                out.extend(sites.iter().map(|s| {
                    b(pairs.iter().any(|&(l, o)| l == s.level && o == s.optname) != *negate)
                }));
            }
            Expr::Pred(p) => {
                out.extend(sites.iter().map(|s| {
                    let t = &threads[s.thread as usize];
                    self.pred(p, s, t, blk.sockets, None)
                }));
            }
            Expr::Not(e) => {
                self.eval_sites(e, sites, blk, out);
                out.iter_mut().for_each(|v| *v = v.not());
            }
            Expr::And(v) | Expr::Or(v) => {
                let and = matches!(e, Expr::And(_));
                let Some((first, rest)) = v.split_first() else {
                    out.resize(sites.len(), if and { Tri::Yes } else { Tri::No });
                    return;
                };
                self.eval_sites(first, sites, blk, out);
                let mut part = Vec::new();
                for e in rest {
                    self.eval_sites(e, sites, blk, &mut part);
                    if and {
                        out.iter_mut()
                            .zip(&part)
                            .for_each(|(a, &b)| *a = (*a).min(b));
                    } else {
                        out.iter_mut()
                            .zip(&part)
                            .for_each(|(a, &b)| *a = (*a).max(b));
                    }
                }
            }
        }
    }

    /// A predicate's answer from the thread alone; `None` when it needs more.
    fn thread_pred(&self, p: &Pred, t: &ThreadEntry) -> Option<Tri> {
        Some(match p {
            Pred::Int(f, op, v) => tri(op.test(thread_int_field(*f, t)?, *v as i128)),
            Pred::Comm { glob, negate } => comm_matches(glob, *negate, t),
            Pred::CgroupPath { .. } | Pred::Attr { .. } => self.process_matches(p, t, None),
            Pred::Option { .. } | Pred::Duration(..) | Pred::Time(..) => return None,
            Pred::Sock(..) | Pred::SockAddr { .. } | Pred::UnixName { .. } => return None,
        })
    }

    /// A predicate on the process table entry (cgroup path, attribution). Without the event's
    /// time the answer is known only when every entry of the pid agrees (FORMAT.md 5: the entry
    /// in force at the event's time names its process).
    fn process_matches(&self, p: &Pred, t: &ThreadEntry, ts: Option<u64>) -> Tri {
        let hit = |e: Option<&ProcessInfo>| match p {
            Pred::CgroupPath { glob, negate } => {
                glob.matches(e.map_or("", |e| e.cgroup.as_str()).as_bytes()) != *negate
            }
            Pred::Attr {
                field,
                glob,
                negate,
            } => match self.attr.of(e).get(*field) {
                Some(v) => glob.matches(v.as_bytes()) != *negate,
                None => *negate,
            },
            _ => false,
        };
        let processes = self.attr.processes();
        if let Some(ts) = ts {
            return tri(hit(processes.in_force_at(t.tgid, ts)));
        }
        match processes.entries(t.tgid) {
            [] => tri(hit(None)),
            [first, rest @ ..] => {
                let v = hit(Some(first));
                if rest.iter().all(|p| hit(Some(p)) == v) {
                    tri(v)
                } else {
                    Tri::Maybe
                }
            }
        }
    }

    /// Whether a cgroup filter's answer for some process changes over time, so a block cannot
    /// be judged from its tables alone.
    pub fn cgroup_depends_on_time(&self) -> bool {
        self.attr.processes().has_changes()
    }

    /// Whether the event (time `ts`, `duration`) passes, given its site's verdict.
    #[inline]
    pub fn event_passes(
        &self,
        verdict: Tri,
        site: &Site,
        thread: &ThreadEntry,
        sockets: &[Socket],
        ts: u64,
        duration: u64,
    ) -> bool {
        if ts < self.from || ts > self.last {
            return false;
        }
        match verdict {
            Tri::Yes => true,
            Tri::No => false,
            Tri::Maybe => {
                let ev = Some((ts, duration));
                self.eval(&self.filter.expr, site, thread, sockets, ev) == Tri::Yes
            }
        }
    }

    fn eval(
        &self,
        e: &Expr,
        s: &Site,
        t: &ThreadEntry,
        k: &[Socket],
        ev: Option<(u64, u64)>,
    ) -> Tri {
        match e {
            Expr::True => Tri::Yes,
            Expr::Pred(p) => self.pred(p, s, t, k, ev),
            Expr::Not(e) => self.eval(e, s, t, k, ev).not(),
            Expr::And(v) => {
                let mut r = Tri::Yes;
                for e in v {
                    match self.eval(e, s, t, k, ev) {
                        Tri::No => return Tri::No,
                        Tri::Maybe => r = Tri::Maybe,
                        Tri::Yes => {}
                    }
                }
                r
            }
            Expr::Or(v) => {
                let mut r = Tri::No;
                for e in v {
                    match self.eval(e, s, t, k, ev) {
                        Tri::Yes => return Tri::Yes,
                        Tri::Maybe => r = Tri::Maybe,
                        Tri::No => {}
                    }
                }
                r
            }
        }
    }

    fn pred(
        &self,
        p: &Pred,
        s: &Site,
        t: &ThreadEntry,
        k: &[Socket],
        ev: Option<(u64, u64)>,
    ) -> Tri {
        let b = |x: bool| if x { Tri::Yes } else { Tri::No };
        match p {
            Pred::Sock(..) | Pred::SockAddr { .. } | Pred::UnixName { .. } => {
                b(p.socket_matches(k.get(s.socket as usize).map(Socket::view).as_ref()))
            }
            Pred::Int(f, op, v) => b(op.test(int_field(*f, s, t), *v as i128)),
            Pred::Comm { glob, negate } => comm_matches(glob, *negate, t),
            Pred::CgroupPath { .. } | Pred::Attr { .. } => {
                self.process_matches(p, t, ev.map(|(ts, _)| ts))
            }
            Pred::Option { pairs, negate } => {
                b(pairs.iter().any(|&(l, o)| l == s.level && o == s.optname) != *negate)
            }
            Pred::Duration(op, v) => match ev {
                Some((_, d)) => b(op.test(d, *v)),
                None => Tri::Maybe,
            },
            Pred::Time(op, v) => match ev {
                Some((ts, _)) => b(op.test(ts.saturating_sub(self.rel_base), *v)),
                None => Tri::Maybe,
            },
        }
    }
}

/// The tables of the block whose sites are being judged.
struct Block<'a> {
    threads: &'a [ThreadEntry],
    sockets: &'a [Socket],
}

fn tri(x: bool) -> Tri {
    if x { Tri::Yes } else { Tri::No }
}

fn comm_matches(glob: &Glob, negate: bool, t: &ThreadEntry) -> Tri {
    let end = t.comm.iter().position(|&c| c == 0).unwrap_or(t.comm.len());
    tri(glob.matches(&t.comm[..end]) != negate)
}

/// The value of an integer field of a site, widened so every comparison is exact.
pub fn int_field(f: IntField, s: &Site, t: &ThreadEntry) -> i128 {
    thread_int_field(f, t)
        .or_else(|| site_int_field(f, s))
        .unwrap_or_default()
}

/// The value of an integer field that belongs to the site; `None` for a field of the thread.
fn site_int_field(f: IntField, s: &Site) -> Option<i128> {
    Some(match f {
        IntField::Cpu => s.cpu as i128,
        IntField::Fd => s.fd as i128,
        IntField::Level => s.level as i128,
        IntField::Optname => s.optname as i128,
        IntField::OptlenIn => s.optlen_in as i128,
        IntField::OptlenOut => s.optlen_out as i128,
        IntField::Ret => s.ret as i128,
        IntField::Errno => {
            if s.ret < 0 {
                -(s.ret as i128)
            } else {
                0
            }
        }
        IntField::ValueLen => s.value_len as i128,
        IntField::Flags => s.flags as i128,
        _ => return None,
    })
}

/// The value of an integer field that belongs to the thread; `None` for a field of the site.
pub fn thread_int_field(f: IntField, t: &ThreadEntry) -> Option<i128> {
    Some(match f {
        IntField::Pid => t.tgid as i128,
        IntField::Tid => t.tid as i128,
        IntField::Ppid => t.ppid as i128,
        IntField::Uid => t.uid as i128,
        IntField::Gid => t.gid as i128,
        IntField::Cgroup => t.cgroup_id as i128,
        IntField::PidNs => t.pid_ns as i128,
        IntField::MntNs => t.mnt_ns as i128,
        _ => return None,
    })
}
