//! `analyze slice`: the selected events of a trace as a smaller, valid trace file to attach to
//! a bug report, optionally with everything that names the machine, its programs or their data
//! replaced by placeholders.
//!
//! What the slice keeps, so it stays consistent: the header (with a note in `extra` saying
//! what was sliced), the process-table entries of the processes that have events in the slice,
//! and the loss records that overlap the slice's time range (losses belong to no process, so
//! process filters do not drop them). Events keep their recorded order.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use format::raw::COMM_LEN;
use format::{AggregatePeriod, CaptureHeader, OwnedEvent, TraceWriter, WriterOptions};

use crate::AppError;
use crate::decode::cgroup;
use crate::filter::{FileFilter, Filter, FilterArgs, Tri};
use crate::input::{self, Input, all_blocks, for_each_selected, selected_blocks};
use crate::sampled;

const SLICE_HELP: &str = "\
The slice keeps the header (noting in `extra` what was sliced), the process-table entries of
processes with events in the slice, and the loss records overlapping its time range.

--redact replaces, with placeholders that are the same for the same input within one slice
(and keyed by a random secret, so a guess cannot be confirmed by hashing it):
  host name -> \"redacted\", process names -> proc-XXXXXXXX, executable and cgroup paths ->
  /redacted/exe-XXXXXXXX and /redacted/cgroup-XXXXXXXX (a container's or pod's path keeps its
  runtime, container id, pod UID and QoS class in a canonical path, a container name becomes
  ctr-XXXXXXXX; the container table's names and images -> ctr-, image-, pod-, ns-XXXXXXXX),
  option value bytes -> zero bytes of the
  same length (decoders still see the sizes), the recorder's command line and the values of
  its filters and extra metadata; the header's `redacted` flag is set.
  Sockets: IP addresses -> addresses of the documentation ranges, numbered in the order first
  met (IPv4: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, then 198.18.0.0/15; IPv6:
  2001:db8::/32, link-local ones fe80::N), so equal addresses stay equal and keep their family;
  v4-mapped addresses map their IPv4 part; loopback and unspecified addresses are kept. Unix
  names -> /redacted/unix-XXXXXXXX (@redacted-unix-XXXXXXXX when abstract). Ports are kept
  unless --redact-ports (then 49152 + N in order first met, 0 kept).
  Ids (pids, uids, cgroup ids, fds, socket inodes, namespaces), times, options, results and
  pointers are kept.

Examples:
  analyze slice cap.gsot --since 10s --until 12s -o bug.gsot
  analyze slice cap.gsot --comm nginx --errors --redact -o nginx-errors.gsot";

#[derive(Args, Debug)]
#[command(after_help = SLICE_HELP)]
pub struct SliceArgs {
    /// The trace file to slice.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output trace file.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: PathBuf,
    /// Replace host name, process names, paths, option values and socket addresses and
    /// names by placeholders.
    #[arg(long)]
    pub redact: bool,
    /// With --redact, replace ports by placeholders too.
    #[arg(long, requires = "redact")]
    pub redact_ports: bool,
}

/// Keyed, stable placeholders: the same input gives the same placeholder within one run.
struct Redactor {
    key: RandomState,
    comms: HashMap<[u8; COMM_LEN], [u8; COMM_LEN]>,
    /// Placeholders of addresses (IPv4 as its 4 bytes), and of ports when those are redacted.
    v4: HashMap<[u8; 4], [u8; 4]>,
    v6: HashMap<[u8; 16], [u8; 16]>,
    ports: Option<HashMap<u16, u16>>,
}

impl Redactor {
    fn new(redact_ports: bool) -> Redactor {
        Redactor {
            key: RandomState::new(),
            comms: HashMap::new(),
            v4: HashMap::new(),
            v6: HashMap::new(),
            ports: redact_ports.then(HashMap::new),
        }
    }

    fn tag(&self, s: &[u8]) -> String {
        format!("{:08x}", self.key.hash_one(s) as u32)
    }

    /// The placeholder of a task name, NUL-padded like the kernel's. Keyed on the name up to
    /// its first NUL, so an event's comm and a process-table comm map alike.
    fn comm(&mut self, comm: &[u8; COMM_LEN]) -> [u8; COMM_LEN] {
        if let Some(c) = self.comms.get(comm) {
            return *c;
        }
        let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        let mut out = [0u8; COMM_LEN];
        let p = format!("proc-{}", self.tag(&comm[..end]));
        out[..p.len()].copy_from_slice(p.as_bytes());
        self.comms.insert(*comm, out);
        out
    }

    fn comm_str(&mut self, comm: &str) -> String {
        let mut c = [0u8; COMM_LEN];
        let n = comm.len().min(COMM_LEN);
        c[..n].copy_from_slice(&comm.as_bytes()[..n]);
        format::comm_to_str(&self.comm(&c)).into_owned()
    }

    fn path(&self, kind: &str, p: &str) -> String {
        if p.is_empty() {
            String::new()
        } else {
            format!("/redacted/{kind}-{}", self.tag(p.as_bytes()))
        }
    }

    /// A container's or pod's path keeps its runtime, container id, pod UID and QoS class (ids,
    /// like pids, are kept) in a canonical path, a container's name becomes ctr-XXXXXXXX;
    /// any other path (a unit's name says what runs) becomes a placeholder.
    fn cgroup(&self, p: &str) -> String {
        let info = cgroup::parse(p);
        let name = format!("ctr-{}", self.tag(info.container_name.as_bytes()));
        cgroup::path_of(&info, &name).unwrap_or_else(|| self.path("cgroup", p))
    }

    /// A container's names and image become keyed placeholders; its id and runtime stay.
    fn container(&self, c: &mut format::ContainerInfo) {
        let fields = [
            ("ctr", &mut c.name),
            ("image", &mut c.image),
            ("pod", &mut c.pod_name),
            ("ns", &mut c.pod_namespace),
            ("ctr", &mut c.k8s_container),
        ];
        for (kind, v) in fields {
            if !v.is_empty() {
                *v = format!("{kind}-{}", self.tag(v.as_bytes()));
            }
        }
    }

    fn value(&self, v: &str) -> String {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            v.to_string()
        } else {
            format!("redacted-{}", self.tag(v.as_bytes()))
        }
    }

    fn header(&self, h: &mut CaptureHeader) {
        h.host_name = "redacted".into();
        h.command_line = Vec::new();
        for (k, v) in h.filters.iter_mut().chain(h.extra.iter_mut()) {
            *v = match k.as_str() {
                // Whether sockets were recorded stays; why not (free text) does not.
                format::SOCKET_IDENTITY_KEY => v.split(':').next().unwrap_or_default().into(),
                _ => self.value(v),
            };
        }
        h.redacted = true;
    }

    fn event(&mut self, e: &mut OwnedEvent) {
        e.comm = self.comm(&e.comm);
        e.value.fill(0);
        if let format::OwnedSocketRef::Socket(s) = &mut e.socket {
            self.socket(s);
        }
    }

    fn socket(&mut self, s: &mut format::Socket) {
        use crate::decode::sockid::{AF_INET, AF_INET6, AF_UNIX};
        match s.family {
            AF_INET => {
                for a in [&mut s.local_addr, &mut s.remote_addr] {
                    let v4: [u8; 4] = a[..4].try_into().expect("4 bytes");
                    a[..4].copy_from_slice(&self.v4(v4));
                }
            }
            AF_INET6 => {
                for a in [&mut s.local_addr, &mut s.remote_addr] {
                    *a = self.v6(*a);
                }
            }
            AF_UNIX => {
                for name in [&mut s.unix_path, &mut s.unix_peer] {
                    *name = match name.as_slice() {
                        [] => Vec::new(),
                        [0, rest @ ..] => format!("\0redacted-unix-{}", self.tag(rest)).into(),
                        path => format!("/redacted/unix-{}", self.tag(path)).into(),
                    };
                }
            }
            _ => {}
        }
        if let Some(ports) = &mut self.ports {
            for p in [&mut s.local_port, &mut s.remote_port] {
                if *p != 0 {
                    // 49152, 49153, ... 65535, then 1, 2, ...: one placeholder per port, never 0.
                    let n = ports.len() as u32;
                    let placeholder = ((49151 + n) % 65535 + 1) as u16;
                    *p = *ports.entry(*p).or_insert(placeholder);
                }
            }
        }
    }

    /// An IPv4 address's placeholder: loopback and 0.0.0.0 are kept, others numbered into the
    /// documentation ranges, then the benchmarking range.
    fn v4(&mut self, a: [u8; 4]) -> [u8; 4] {
        if a[0] == 127 || a == [0; 4] {
            return a;
        }
        let n = self.v4.len() as u32;
        *self.v4.entry(a).or_insert_with(|| match n {
            0..254 => [192, 0, 2, 1 + n as u8],
            254..508 => [198, 51, 100, (n - 253) as u8],
            508..762 => [203, 0, 113, (n - 507) as u8],
            n => {
                let [_, _, hi, lo] = (n - 762).to_be_bytes();
                [198, 18 + (hi & 1), hi, lo]
            }
        })
    }

    /// An IPv6 address's placeholder: ::1 and :: are kept, a v4-mapped one maps its IPv4 part,
    /// link-local ones become fe80::N, others 2001:db8::N.
    fn v6(&mut self, a: [u8; 16]) -> [u8; 16] {
        let ip = std::net::Ipv6Addr::from(a);
        if ip.is_loopback() || ip.is_unspecified() {
            return a;
        }
        if let Some(v4) = ip.to_ipv4_mapped() {
            return std::net::Ipv4Addr::from(self.v4(v4.octets()))
                .to_ipv6_mapped()
                .octets();
        }
        let n = self.v6.len() as u64 + 1;
        *self.v6.entry(a).or_insert_with(|| {
            let prefix: [u16; 2] = match a[..2] == [0xfe, 0x80] {
                true => [0xfe80, 0],
                false => [0x2001, 0x0db8],
            };
            let mut b = std::net::Ipv6Addr::new(prefix[0], prefix[1], 0, 0, 0, 0, 0, 0).octets();
            b[8..].copy_from_slice(&n.to_be_bytes());
            b
        })
    }
}

/// What the filter options said, for the header note.
fn describe(f: &FilterArgs, redact: bool) -> String {
    let mut parts = Vec::new();
    let mut list = |name: &str, v: Vec<String>| {
        if !v.is_empty() {
            parts.push(format!("--{name} {}", v.join(",")));
        }
    };
    let nums = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>();
    list("pid", nums(&f.pid));
    list("tid", nums(&f.tid));
    list("uid", nums(&f.uid));
    // Under --redact, names the user typed could name the programs: say only that they were.
    let names = |v: &Vec<String>| {
        if redact && !v.is_empty() {
            vec!["(redacted)".to_string()]
        } else {
            v.clone()
        }
    };
    list("comm", names(&f.comm));
    list("cgroup", names(&f.cgroup));
    list("container", names(&f.container));
    list("pod", names(&f.pod));
    list("k8s-namespace", names(&f.k8s_namespace));
    list("level", f.level.clone());
    list("optname", f.optname.clone());
    list("errno", f.errno.clone());
    if f.errors {
        parts.push("--errors".into());
    }
    for (name, v) in [
        ("since", &f.since),
        ("until", &f.until),
        ("min-duration", &f.min_duration),
    ] {
        if let Some(v) = v {
            parts.push(format!("--{name} {v}"));
        }
    }
    if let Some(w) = &f.where_expr {
        parts.push(if redact {
            "--where (redacted)".into()
        } else {
            format!("--where {w}")
        });
    }
    if parts.is_empty() {
        "all events".into()
    } else {
        parts.join(" ")
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn run(a: &SliceArgs, out: &mut dyn Write) -> Result<(), AppError> {
    if same_file(&a.file, &a.output) {
        return Err(AppError::usage(format!(
            "-o {}: is the input file; write the slice somewhere else",
            a.output.display()
        )));
    }
    let inputs = input::open_all(std::slice::from_ref(&a.file))?;
    let inp = &inputs[0];
    let span = input::span(&inputs);
    let filter = Filter::new(&a.filter, span)?;
    let ff = filter.for_file(&inp.reader);
    let blocks = selected_blocks(&inp.reader, &ff);

    // Which processes have events in the slice decides the process table, which the writer
    // puts before the events: a first pass over the site tables alone finds them.
    let mut pids = HashSet::new();
    all_blocks(
        inp,
        &blocks,
        |_, d| {
            let mut seen = HashSet::new();
            let mut verdicts: Vec<Tri> = Vec::new();
            for_each_selected(d, &ff, &mut verdicts, |_, e| {
                seen.insert(e.tgid);
            });
            seen
        },
        |seen| -> Result<(), AppError> {
            pids.extend(seen);
            Ok(())
        },
    )?;

    let mut redactor = a.redact.then(|| Redactor::new(a.redact_ports));
    let mut header = inp.reader.header().clone();
    if let Some(r) = &redactor {
        r.header(&mut header);
    }
    let source = if a.redact {
        "(redacted)".to_string()
    } else {
        a.file.display().to_string()
    };
    header.extra.push(("sliced_from".into(), source));
    header
        .extra
        .push(("slice".into(), describe(&a.filter, a.redact)));

    let mut tmp_name = a.output.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = a.output.with_file_name(tmp_name);
    let file = File::create(&tmp)
        .map_err(|e| AppError::Output(format!("{}: cannot create: {e}", tmp.display())))?;
    let werr = |e: format::Error| AppError::Output(format!("{}: {e}", a.output.display()));
    let result = (|| -> Result<(u64, usize, usize, usize), AppError> {
        let mut w = TraceWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            &header,
            WriterOptions::default(),
        )
        .map_err(werr)?;
        let mut procs = 0;
        for p in inp.reader.processes() {
            if pids.contains(&p.pid) {
                let mut p = p.clone();
                if let Some(r) = redactor.as_mut() {
                    p.comm = r.comm_str(&p.comm);
                    p.exe = r.path("exe", &p.exe);
                    p.cgroup = r.cgroup(&p.cgroup);
                }
                w.add_process(p);
                procs += 1;
            }
        }
        for v in inp.reader.cgroup_v1_paths() {
            if pids.contains(&v.pid) {
                let mut v = v.clone();
                if let Some(r) = redactor.as_ref() {
                    v.path = r.cgroup(&v.path);
                }
                w.add_cgroup_v1(v);
            }
        }
        // The container table's entries of the containers kept (FORMAT.md 5.1).
        let kept: HashSet<String> = inp
            .reader
            .processes()
            .iter()
            .filter(|p| pids.contains(&p.pid))
            .map(|p| cgroup::parse(&p.cgroup).container_id)
            .chain(
                inp.reader
                    .cgroup_v1_paths()
                    .iter()
                    .filter(|v| pids.contains(&v.pid))
                    .map(|v| cgroup::parse(&v.path).container_id),
            )
            .collect();
        for c in inp.reader.containers() {
            if kept.contains(&c.id) {
                let mut c = c.clone();
                if let Some(r) = redactor.as_ref() {
                    r.container(&mut c);
                }
                w.add_container(c);
            }
        }
        let mut losses = 0;
        for l in inp.reader.losses() {
            if l.end_ns >= ff.from && l.start_ns <= ff.last {
                w.add_loss(*l);
                losses += 1;
            }
        }
        let periods = aggregates(inp, &filter, &ff);
        let n_periods = periods.len();
        for p in periods {
            w.add_aggregates(p);
        }
        let mut events = 0u64;
        all_blocks(
            inp,
            &blocks,
            |_, d| {
                let mut v = Vec::new();
                let mut verdicts: Vec<Tri> = Vec::new();
                for_each_selected(d, &ff, &mut verdicts, |_, e| v.push(e.to_owned_event()));
                v
            },
            |batch: Vec<OwnedEvent>| -> Result<(), AppError> {
                for mut e in batch {
                    if let Some(r) = redactor.as_mut() {
                        r.event(&mut e);
                    }
                    w.write(&e.as_event()).map_err(werr)?;
                    events += 1;
                }
                Ok(())
            },
        )?;
        let mut f = w.finish().map_err(werr)?;
        f.flush()
            .map_err(|e| AppError::Output(format!("{}: {e}", a.output.display())))?;
        Ok((events, procs, losses, n_periods))
    })();
    let (events, procs, losses, periods) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &a.output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AppError::Output(format!(
            "{}: cannot rename into place: {e}",
            a.output.display()
        ))
    })?;
    writeln!(
        out,
        "wrote {events} events, {procs} processes, {losses} loss records{} to {}{}",
        if periods > 0 {
            format!(", {periods} aggregate periods")
        } else {
            String::new()
        },
        a.output.display(),
        if a.redact { " (redacted)" } else { "" }
    )?;
    Ok(())
}

/// A sampled capture's aggregate records for the slice (FORMAT.md 5.3): the whole periods
/// inside its time range with the entries its filter selects, so `stats` of the slice still
/// counts every call of them. None, said on stderr, when the filter asks about fields they do
/// not hold (then `stats` of the slice counts from its events, and says so).
fn aggregates(inp: &Input, filter: &Filter, ff: &FileFilter<'_>) -> Vec<AggregatePeriod> {
    if inp.reader.aggregates().is_empty() {
        return Vec::new();
    }
    if let Some(why) = sampled::unanswerable(&[], &[], &filter.expr, &sampled::NO_QUERY) {
        eprintln!(
            "analyze: note: the aggregate records are not sliced: {why} selects calls they cannot (only the events are)"
        );
        return Vec::new();
    }
    let mut left = sampled::Left::default();
    let periods = sampled::selected_periods(inp, ff, &mut left);
    if left.cut_periods > 0 {
        eprintln!(
            "analyze: note: the time range cuts {} aggregate period(s), left out of the slice with their {} calls",
            left.cut_periods, left.cut_calls
        );
    }
    periods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_stable_and_fit_a_comm() {
        let mut r = Redactor::new(false);
        let mut a = [0u8; COMM_LEN];
        a[..5].copy_from_slice(b"nginx");
        let p1 = r.comm(&a);
        let p2 = r.comm(&a);
        assert_eq!(p1, p2);
        assert!(p1.starts_with(b"proc-"));
        assert_eq!(r.comm_str("nginx").as_bytes(), &p1[..13]);
        let mut b = a;
        b[0] = b'N';
        assert_ne!(r.comm(&b), p1);
        assert_eq!(r.path("exe", ""), "");
        assert!(
            r.path("exe", "/usr/sbin/nginx")
                .starts_with("/redacted/exe-")
        );
        assert_eq!(r.value("812"), "812");
        assert!(r.value("nginx").starts_with("redacted-"));
    }

    #[test]
    fn the_note_hides_typed_names_when_redacting() {
        let f = FilterArgs {
            comm: vec!["secretd".into()],
            errors: true,
            ..FilterArgs::default()
        };
        assert_eq!(describe(&f, false), "--comm secretd --errors");
        assert_eq!(describe(&f, true), "--comm (redacted) --errors");
        assert_eq!(describe(&FilterArgs::default(), false), "all events");
    }
}
