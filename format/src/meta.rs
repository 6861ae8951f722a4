//! Capture metadata and side tables: the header, the process table, loss records.
//!
//! These are written with bincode 2.0.1 (`bincode::config::standard()`); `FORMAT.md` spells out
//! the resulting bytes field by field. New fields are only ever appended (minor version bump),
//! and readers fill absent trailing fields with their defaults.

use bincode::Encode;

/// What a capture was: the trace file's header section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct CaptureHeader {
    /// Random id of this capture, the same in every file of a rotated capture.
    pub capture_id: [u8; 16],
    pub host_name: String,
    /// `uname -r` of the traced machine.
    pub kernel_release: String,
    /// `uname -m` of the traced machine, e.g. `x86_64`.
    pub arch: String,
    /// Number of possible CPUs on the traced machine.
    pub cpu_count: u32,
    /// Add to a boot-time timestamp (ns) to get Unix time in ns.
    pub boot_to_wall_ns: i64,
    /// Boot-time ns when the capture started.
    pub start_ts_ns: u64,
    /// Name and version of the program that wrote the file, e.g. `recorder 0.1.0`.
    pub recorder_version: String,
    /// The recorder's command line, one argument per element.
    pub command_line: Vec<String>,
    /// How events were captured: `tracepoint`, `kprobe`, `fentry`, or `synthetic`.
    pub attach_mode: String,
    /// Filters applied in the kernel, as (name, value) pairs, e.g. `("pid", "812")`.
    pub filters: Vec<(String, String)>,
    /// Most value bytes copied per call.
    pub snaplen: u32,
    /// Index of this file in a rotated capture, from 0.
    pub sequence: u32,
    /// Whether host name, process names, paths and values were replaced by placeholders.
    pub redacted: bool,
    /// Anything else worth keeping, as (key, value) pairs.
    pub extra: Vec<(String, String)>,
}

/// The `extra` key (FORMAT.md 3) by which a header says whether the events carry socket
/// identity. An `extra` pair rather than a new field: a 1.1 reader shows it as it is, and no
/// header byte changes meaning.
pub const SOCKET_IDENTITY_KEY: &str = "socket_identity";

/// Whether a capture recorded the socket behind each call: the header's `socket_identity`
/// pair, `recorded`, `off` or `unavailable`, the last two optionally followed by `: ` and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketCapture<'a> {
    /// The header does not say: a file older than 1.2, or a writer that does not know.
    NotSaid,
    Recorded,
    /// Turned off (`recorder record --no-sockets`), and why.
    Off(&'a str),
    /// The recorder could not (no kernel BTF, or the walk could not be set up), and why.
    Unavailable(&'a str),
    /// A value this reader does not know, as it is.
    Other(&'a str),
}

impl<'a> SocketCapture<'a> {
    /// Parses the value of a `socket_identity` pair.
    pub fn parse(v: &'a str) -> SocketCapture<'a> {
        let (word, why) = v.split_once(": ").unwrap_or((v, ""));
        match word {
            "recorded" if why.is_empty() => SocketCapture::Recorded,
            "off" => SocketCapture::Off(why),
            "unavailable" => SocketCapture::Unavailable(why),
            _ => SocketCapture::Other(v),
        }
    }

    /// The `extra` pair a writer stores for this (none for [`SocketCapture::NotSaid`]).
    pub fn extra_pair(self) -> Option<(String, String)> {
        let with = |word: &str, why: &str| match why {
            "" => word.to_string(),
            why => format!("{word}: {why}"),
        };
        let v = match self {
            SocketCapture::NotSaid => return None,
            SocketCapture::Recorded => "recorded".to_string(),
            SocketCapture::Off(why) => with("off", why),
            SocketCapture::Unavailable(why) => with("unavailable", why),
            SocketCapture::Other(v) => v.to_string(),
        };
        Some((SOCKET_IDENTITY_KEY.to_string(), v))
    }

    /// Whether the events can carry socket identity.
    pub fn is_recorded(self) -> bool {
        self == SocketCapture::Recorded
    }
}

impl CaptureHeader {
    /// What the header says about socket identity (the first `socket_identity` pair).
    pub fn socket_capture(&self) -> SocketCapture<'_> {
        self.extra
            .iter()
            .find(|(k, _)| k == SOCKET_IDENTITY_KEY)
            .map_or(SocketCapture::NotSaid, |(_, v)| SocketCapture::parse(v))
    }
}

/// One process the capture saw, so a trace can name processes even after they are gone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct ProcessInfo {
    /// tgid.
    pub pid: u32,
    pub ppid: u32,
    /// Boot-time ns of the first event (or discovery) of this process.
    pub first_seen_ns: u64,
    pub comm: String,
    /// Target of `/proc/PID/exe`, empty if unknown.
    pub exe: String,
    /// cgroup v2 path, empty if unknown.
    pub cgroup: String,
}

/// What a container runtime said of one container at capture time (FORMAT.md 5.1, since
/// 1.3): the names the cgroup path cannot give.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct ContainerInfo {
    /// The container id as its cgroup path names it (64 hex digits).
    pub id: String,
    /// Who answered: `docker`.
    pub runtime: String,
    pub name: String,
    pub image: String,
    /// The Kubernetes labels `io.kubernetes.pod.name`, `.pod.namespace`, `.container.name`.
    pub pod_name: String,
    pub pod_namespace: String,
    pub k8s_container: String,
}

/// A process's cgroup v1 path where its v2 path says nothing (FORMAT.md 5.2, since 1.3): the
/// process table entry with the same `pid` and `first_seen_ns` sits at the v2 root of a hybrid
/// host whose v1 hierarchies carry the containers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub struct CgroupV1Path {
    pub pid: u32,
    pub first_seen_ns: u64,
    /// From the `name=systemd` line of /proc/PID/cgroup, else the `memory` line.
    pub path: String,
}

/// The process table (FORMAT.md 5) by pid, answering which entry names an event's process.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    /// Each pid's entries by `first_seen_ns`, file order among equal times.
    by_pid: std::collections::HashMap<u32, Vec<ProcessInfo>>,
}

impl ProcessTable {
    /// The table of `entries` in file order.
    pub fn new(entries: &[ProcessInfo]) -> ProcessTable {
        let mut by_pid: std::collections::HashMap<u32, Vec<ProcessInfo>> = Default::default();
        for p in entries {
            by_pid.entry(p.pid).or_default().push(p.clone());
        }
        for list in by_pid.values_mut() {
            // Stable: of two entries seen at the same time, the later one in the file wins.
            list.sort_by_key(|p| p.first_seen_ns);
        }
        ProcessTable { by_pid }
    }

    /// The entry in force for `pid` at boot time `ts`: the latest with `first_seen_ns <= ts`,
    /// or the earliest when `ts` is before every entry of the pid (FORMAT.md 5).
    pub fn in_force_at(&self, pid: u32, ts: u64) -> Option<&ProcessInfo> {
        let list = self.by_pid.get(&pid)?;
        let later = list.partition_point(|p| p.first_seen_ns <= ts);
        list.get(later.saturating_sub(1))
    }

    /// Whether some pid has entries that differ in anything but their time.
    pub fn has_changes(&self) -> bool {
        self.by_pid.values().any(|l| {
            l.windows(2).any(|w| {
                (w[0].ppid, &w[0].comm, &w[0].exe, &w[0].cgroup)
                    != (w[1].ppid, &w[1].comm, &w[1].exe, &w[1].cgroup)
            })
        })
    }

    /// Every entry of `pid`, earliest first.
    pub fn entries(&self, pid: u32) -> &[ProcessInfo] {
        self.by_pid.get(&pid).map_or(&[], Vec::as_slice)
    }
}

/// Events the kernel could not hand over (ring buffer full) on one CPU during an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode)]
pub struct LossRecord {
    pub cpu: u32,
    /// How many events were dropped.
    pub lost: u64,
    /// Boot-time ns interval during which they were dropped.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// The bincode configuration of every metadata section: little-endian, varint integers.
pub(crate) fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

#[derive(Encode)]
struct IndexOnDisk<'a> {
    blocks: Vec<IndexBlockOnDisk>,
    sections: &'a [([u8; 4], u64)],
    total_events: u64,
    /// Since 1.3: offsets of the side sections of kinds added since (CTNR, CGV1).
    more_sections: &'a [u64],
}

#[derive(Encode)]
struct IndexBlockOnDisk {
    offset: u64,
    event_count: u32,
    ts_min: u64,
    ts_max: u64,
}

/// The decoded index section.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    pub blocks: Vec<crate::writer::IndexBlock>,
    pub sections: Vec<(crate::section::Tag, u64)>,
    pub total_events: u64,
    /// Offsets of the side sections of kinds added since 1.3 (empty before 1.3).
    pub more_sections: Vec<u64>,
}

pub(crate) fn encode_index(
    blocks: &[crate::writer::IndexBlock],
    sections: &[(crate::section::Tag, u64)],
    total_events: u64,
    more_sections: &[u64],
    out: &mut Vec<u8>,
) {
    let sections: Vec<([u8; 4], u64)> = sections.iter().map(|(t, o)| (t.0, *o)).collect();
    let index = IndexOnDisk {
        blocks: blocks
            .iter()
            .map(|b| IndexBlockOnDisk {
                offset: b.offset,
                event_count: b.event_count,
                ts_min: b.ts_min,
                ts_max: b.ts_max,
            })
            .collect(),
        sections: &sections,
        total_events,
        more_sections,
    };
    bincode::encode_into_std_write(&index, out, config()).expect("encoding into a Vec cannot fail");
}

use crate::Error;
use crate::wire::Cursor;

pub(crate) fn decode_index(c: &mut Cursor<'_>) -> Result<Index, Error> {
    // offset + count + two timestamps: at least 4 bytes per entry.
    let n = c.seq_len(4, "the index's block list")?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        blocks.push(crate::writer::IndexBlock {
            offset: c.varint_u64("a block offset")?,
            event_count: c.varint_u32("a block event count")?,
            ts_min: c.varint_u64("a block start time")?,
            ts_max: c.varint_u64("a block end time")?,
        });
    }
    let n = c.seq_len(5, "the index's section list")?;
    let mut sections = Vec::with_capacity(n);
    for _ in 0..n {
        let tag = crate::section::Tag(c.array("a section tag")?);
        sections.push((tag, c.varint_u64("a section offset")?));
    }
    let total_events = c.varint_u64("the total event count")?;
    // Since 1.3, and read leniently: bytes here that are not this list come from a writer
    // older than the field (FORMAT.md 6), and are ignored like any later version's bytes.
    let more_sections = (|| -> Result<Vec<u64>, Error> {
        let n = c.seq_len(1, "the index's list of later sections")?;
        (0..n)
            .map(|_| c.varint_u64("a later section's offset"))
            .collect()
    })()
    .unwrap_or_default();
    Ok(Index {
        blocks,
        sections,
        total_events,
        more_sections,
    })
}

/// Reads a header. Fields a later 1.x version appends follow these and are skipped; a field
/// a reader knows but an older file lacks would be filled with its default (none yet in 1.0).
pub(crate) fn decode_header(c: &mut Cursor<'_>) -> Result<CaptureHeader, Error> {
    Ok(CaptureHeader {
        capture_id: c.array("the capture id")?,
        host_name: c.string("the host name")?,
        kernel_release: c.string("the kernel release")?,
        arch: c.string("the architecture")?,
        cpu_count: c.varint_u32("the CPU count")?,
        boot_to_wall_ns: c.varint_i64("the boot-to-wall-clock offset")?,
        start_ts_ns: c.varint_u64("the capture start time")?,
        recorder_version: c.string("the recorder version")?,
        command_line: c.string_vec("the command line")?,
        attach_mode: c.string("the attach mode")?,
        filters: c.string_pairs("the filters")?,
        snaplen: c.varint_u32("the snap length")?,
        sequence: c.varint_u32("the file sequence number")?,
        redacted: c.bool("the redacted flag")?,
        extra: c.string_pairs("the extra metadata")?,
    })
}

pub(crate) fn decode_processes(
    c: &mut Cursor<'_>,
    out: &mut Vec<ProcessInfo>,
) -> Result<(), Error> {
    let n = c.seq_len(6, "the process list")?;
    for _ in 0..n {
        out.push(ProcessInfo {
            pid: c.varint_u32("a process id")?,
            ppid: c.varint_u32("a parent process id")?,
            first_seen_ns: c.varint_u64("a first-seen time")?,
            comm: c.string("a process name")?,
            exe: c.string("an executable path")?,
            cgroup: c.string("a cgroup path")?,
        });
    }
    Ok(())
}

pub(crate) fn decode_containers(
    c: &mut Cursor<'_>,
    out: &mut Vec<ContainerInfo>,
) -> Result<(), Error> {
    let n = c.seq_len(7, "the container list")?;
    for _ in 0..n {
        out.push(ContainerInfo {
            id: c.string("a container id")?,
            runtime: c.string("a container runtime")?,
            name: c.string("a container name")?,
            image: c.string("a container image")?,
            pod_name: c.string("a pod name")?,
            pod_namespace: c.string("a pod namespace")?,
            k8s_container: c.string("a Kubernetes container name")?,
        });
    }
    Ok(())
}

pub(crate) fn decode_cgroup_v1(
    c: &mut Cursor<'_>,
    out: &mut Vec<CgroupV1Path>,
) -> Result<(), Error> {
    let n = c.seq_len(3, "the cgroup v1 path list")?;
    for _ in 0..n {
        out.push(CgroupV1Path {
            pid: c.varint_u32("a process id")?,
            first_seen_ns: c.varint_u64("a first-seen time")?,
            path: c.string("a cgroup v1 path")?,
        });
    }
    Ok(())
}

pub(crate) fn decode_losses(c: &mut Cursor<'_>, out: &mut Vec<LossRecord>) -> Result<(), Error> {
    let n = c.seq_len(4, "the loss record list")?;
    for _ in 0..n {
        out.push(LossRecord {
            cpu: c.varint_u32("a loss record's CPU")?,
            lost: c.varint_u64("a lost event count")?,
            start_ns: c.varint_u64("a loss interval start")?,
            end_ns: c.varint_u64("a loss interval end")?,
        });
    }
    Ok(())
}
