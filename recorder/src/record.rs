//! A recording session: set up the probes, drain the ring buffer into trace files (rotating
//! them), keep the process table and the loss records, and stop cleanly.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use format::raw::{MAX_SNAPLEN, RAW_HEADER_SIZE, RawEventHeader};
use format::{CaptureHeader, Event, LossRecord, ProcessInfo, TraceWriter, WriterOptions};
use recorder_ebpf::{
    Config, FILTER_CGROUP, FILTER_COMM, FILTER_ERRORS_ONLY, FILTER_LEVEL, FILTER_OPTNAME,
    FILTER_PID, FILTER_UID, INFLIGHT_MAX_ENTRIES, TaskOffsets,
};

use crate::bpf::{AttachMode, Probes, load_and_attach};
use crate::sys;

/// Filters applied in the kernel.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    /// (cgroup id, as the user gave it).
    pub cgroup: Option<(u64, String)>,
    pub level: Option<i32>,
    pub optname: Option<i32>,
    pub errors_only: bool,
}

impl Filters {
    /// The (name, value) pairs stored in the file header.
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let mut push = |k: &str, val: String| v.push((k.to_string(), val));
        if let Some(p) = self.pid {
            push("pid", p.to_string());
        }
        if let Some(c) = &self.comm {
            push("comm", c.clone());
        }
        if let Some(u) = self.uid {
            push("uid", u.to_string());
        }
        if let Some((id, given)) = &self.cgroup {
            push("cgroup", format!("{given} (id {id})"));
        }
        if let Some(l) = self.level {
            push("level", l.to_string());
        }
        if let Some(o) = self.optname {
            push("optname", o.to_string());
        }
        if self.errors_only {
            push("errors_only", "true".into());
        }
        v
    }

    fn apply(&self, cfg: &mut Config) -> Result<()> {
        cfg.filters = 0;
        if let Some(p) = self.pid {
            cfg.filters |= FILTER_PID;
            cfg.pid = p;
        }
        if let Some(c) = &self.comm {
            if c.is_empty() || c.len() > 15 {
                bail!("--comm {c:?}: the kernel keeps at most 15 bytes of a task name");
            }
            cfg.filters |= FILTER_COMM;
            cfg.comm = [0; 16];
            cfg.comm[..c.len()].copy_from_slice(c.as_bytes());
        }
        if let Some(u) = self.uid {
            cfg.filters |= FILTER_UID;
            cfg.uid = u;
        }
        if let Some((id, _)) = self.cgroup {
            cfg.filters |= FILTER_CGROUP;
            cfg.cgroup_id = id;
        }
        if let Some(l) = self.level {
            cfg.filters |= FILTER_LEVEL;
            cfg.level = l;
        }
        if let Some(o) = self.optname {
            cfg.filters |= FILTER_OPTNAME;
            cfg.optname = o;
        }
        if self.errors_only {
            cfg.filters |= FILTER_ERRORS_ONLY;
        }
        Ok(())
    }
}

/// Everything `recorder record` can be told.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: PathBuf,
    /// Modes to try, in order (one for an explicit `--attach`).
    pub modes: Vec<AttachMode>,
    pub snaplen: u32,
    pub ringbuf_size: u32,
    pub filters: Filters,
    pub duration: Option<Duration>,
    pub max_events: Option<u64>,
    pub rotate_size: Option<u64>,
    pub rotate_time: Option<Duration>,
    pub block_events: u32,
    /// Longest time an event waits in the open block before it is flushed to the file.
    pub flush_interval: Duration,
    /// How often the ring buffer is drained when no burst forces a wakeup.
    pub drain_interval: Duration,
    pub command_line: Vec<String>,
    /// `--user`: who the recorder runs as once attached, and who owns its files.
    pub run_as: Option<crate::privs::RunAs>,
    /// In-flight slots (a power of two, at most `INFLIGHT_MAX_ENTRIES`); fewer only in tests.
    pub inflight_slots: u32,
}

impl RecordOptions {
    /// The uid that owns the output files (an existing one must already be theirs).
    fn owner(&self) -> u32 {
        // SAFETY: geteuid cannot fail.
        self.run_as
            .as_ref()
            .map_or_else(|| unsafe { libc::geteuid() }, |u| u.uid)
    }
}

/// What a finished session did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub lost: u64,
    pub bytes_written: u64,
    pub files: Vec<PathBuf>,
    pub mode: String,
}

impl Summary {
    pub fn bytes_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.bytes_written as f64 / self.events as f64
        }
    }
}

/// What a session tells its user while it runs; the binary prints these, a test may collect them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Kernel BTF gave no task offsets: ppid and namespace ids will be 0.
    NoBtfOffsets(String),
    /// An attach mode tried before the one that worked, and why it was not used.
    NotUsing(String),
    /// The probes are attached.
    Attached { mode: AttachMode, to: String },
    /// A new output file was started.
    Rotated(PathBuf),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::NoBtfOffsets(e) => write!(
                f,
                "warning: no kernel BTF offsets ({e}); ppid and namespace ids will be 0"
            ),
            Notice::NotUsing(why) => write!(f, "not using {why}"),
            Notice::Attached { mode, to } => write!(f, "attached via {mode} ({to})"),
            Notice::Rotated(path) => write!(f, "rotated to {}", path.display()),
        }
    }
}

/// Receives a session's notices as they happen.
pub type Reporter = Box<dyn FnMut(Notice)>;

/// The n-th file of a rotated capture: `trace.gsot`, `trace.1.gsot`, `trace.2.gsot`, ...
pub fn rotated_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{n}"),
    };
    base.with_file_name(name)
}

type Writer = TraceWriter<BufWriter<File>>;

/// A running capture.
pub struct Session {
    opts: RecordOptions,
    report: Reporter,
    probes: Probes,
    header: CaptureHeader,
    writer: Option<Writer>,
    file_index: u32,
    file_started: Instant,
    path: PathBuf,
    seen: HashSet<u32>,
    last_loss_count: Vec<u64>,
    summary: Summary,
    finished_bytes: u64,
    /// Events in the files already finished.
    finished_events: u64,
    /// Events of the current file in blocks completely written to it: what an output error
    /// leaves readable there (the open block and a block cut short by the error are not).
    committed: u64,
}

/// Opens an output file (the first or a rotated one) through [`crate::output::create`], for
/// the user the recorder writes as.
fn create_output(path: &Path, owner: u32) -> Result<File> {
    crate::output::create(path, owner).with_context(|| format!("cannot write {}", path.display()))
}

impl Session {
    /// Checks privileges, attaches the probes and creates the first output file.
    pub fn start(opts: RecordOptions, mut report: Reporter) -> Result<Session> {
        sys::check_privileges()?;
        sys::raise_memlock_limit();
        if opts.modes.contains(&AttachMode::Tracepoint) {
            sys::ensure_tracefs()?;
        }
        if opts.snaplen == 0 || opts.snaplen as usize >= MAX_SNAPLEN {
            bail!("--snaplen must be between 1 and {}", MAX_SNAPLEN - 1);
        }
        if !opts.ringbuf_size.is_power_of_two() || opts.ringbuf_size < 4096 {
            bail!("--ringbuf-size must be a power of two of at least 4096 bytes");
        }
        if !opts.inflight_slots.is_power_of_two() || opts.inflight_slots > INFLIGHT_MAX_ENTRIES {
            bail!("--inflight-slots must be a power of two of at most {INFLIGHT_MAX_ENTRIES}");
        }
        let offsets = match crate::btf::Btf::from_sys_fs().and_then(|b| b.task_offsets()) {
            Ok(o) => o,
            Err(e) => {
                report(Notice::NoBtfOffsets(format!("{e:#}")));
                TaskOffsets::default()
            }
        };
        let mut config = Config {
            self_tgid: std::process::id(),
            snaplen: opts.snaplen,
            wakeup_threshold: opts.ringbuf_size / 2,
            loss_window_ns: sys::boot_ns(),
            offsets,
            inflight_mask: opts.inflight_slots - 1,
            ..Config::default()
        };
        opts.filters.apply(&mut config)?;
        if let Some(u) = &opts.run_as
            && (opts.rotate_size.is_some() || opts.rotate_time.is_some())
        {
            u.check_writable(opts.output.parent().unwrap_or(Path::new(".")))?;
        }
        // Create the file before attaching, so an unwritable output fails fast.
        let first = create_output(&opts.output, opts.owner())?;
        let probes = match load_and_attach(config, opts.ringbuf_size, &opts.modes) {
            Ok(p) => p,
            Err(e) => {
                // Leave no empty trace file behind a capture that never started.
                let _ = std::fs::remove_file(&opts.output);
                return Err(e);
            }
        };
        for f in &probes.fallbacks {
            report(Notice::NotUsing(f.to_string()));
        }
        report(Notice::Attached {
            mode: probes.mode,
            to: probes.attached_to.clone(),
        });

        let header = CaptureHeader {
            capture_id: sys::random_id(),
            host_name: sys::hostname(),
            kernel_release: sys::uname_field(|u| &u.release),
            arch: sys::uname_field(|u| &u.machine),
            cpu_count: sys::possible_cpus(),
            boot_to_wall_ns: sys::boot_to_wall_ns(),
            start_ts_ns: sys::boot_ns(),
            recorder_version: format!("recorder {}", env!("CARGO_PKG_VERSION")),
            command_line: opts.command_line.clone(),
            attach_mode: probes.mode.name().to_string(),
            filters: opts.filters.labels(),
            snaplen: opts.snaplen,
            sequence: 0,
            redacted: false,
            extra: vec![
                ("ringbuf_size".into(), opts.ringbuf_size.to_string()),
                ("attached_to".into(), probes.attached_to.clone()),
            ],
        };
        let writer = Self::new_writer(first, &header, &opts)
            .with_context(|| format!("writing {}", opts.output.display()))?;
        let mut summary = Summary {
            mode: probes.mode.name().to_string(),
            ..Summary::default()
        };
        summary.files.push(opts.output.clone());
        let last_loss_count = probes.losses()?.iter().map(|l| l.count).collect();
        // Attached, maps open, first file there: root's remaining powers are not needed.
        crate::privs::drop_after_start(opts.run_as.as_ref())?;
        Ok(Session {
            path: opts.output.clone(),
            opts,
            report,
            probes,
            header,
            writer: Some(writer),
            file_index: 0,
            file_started: Instant::now(),
            seen: HashSet::new(),
            last_loss_count,
            summary,
            finished_bytes: 0,
            finished_events: 0,
            committed: 0,
        })
    }

    fn new_writer(file: File, header: &CaptureHeader, opts: &RecordOptions) -> Result<Writer> {
        let wopts = WriterOptions {
            max_block_events: opts.block_events,
            max_block_age: opts.flush_interval,
            ..WriterOptions::default()
        };
        Ok(TraceWriter::try_new(
            BufWriter::with_capacity(256 << 10, file),
            header,
            wopts,
        )?)
    }

    pub fn mode(&self) -> AttachMode {
        self.probes.mode
    }

    fn writer(&mut self) -> &mut Writer {
        self.writer.as_mut().expect("writer present until finish")
    }

    fn events_so_far(&self) -> u64 {
        self.finished_events + self.writer.as_ref().map_or(0, |w| w.stats().events)
    }

    /// Runs until `stop` is set, `--duration` passes or `--max-events` is reached, then drains
    /// what is left, finishes the file and returns the summary. An output error stops the
    /// capture too: the file keeps everything flushed before it, and the error is returned.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Summary> {
        let started = Instant::now();
        let result = self.run_loop(stop, started);
        // Whatever happened, drain once more and close the file properly if we still can.
        let drained = match &result {
            Ok(()) => self.drain(),
            Err(_) => Ok(()),
        };
        let finished = self.finish_file();
        result.and(drained).and(finished)?;
        self.summary.events = self.finished_events;
        self.summary.bytes_written = self.finished_bytes;
        Ok(self.summary)
    }

    fn run_loop(&mut self, stop: &AtomicBool, started: Instant) -> Result<()> {
        let timeout_ms = self.opts.drain_interval.as_millis().clamp(1, 1000) as i32;
        let wakeups = sys::WakeupWait::new(self.probes.events_fd())
            .context("waiting on the ring buffer (epoll)")?;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.opts.duration.is_some_and(|d| started.elapsed() >= d) {
                return Ok(());
            }
            wakeups.wait(timeout_ms);
            self.drain()?;
            if self.reached_max_events() {
                return Ok(());
            }
            match self.writer().poll_flush() {
                Ok(true) => self.committed = self.writer().stats().events,
                Ok(false) => {}
                Err(e) => return Err(self.output_error(e.into())),
            }
            self.maybe_rotate()?;
        }
    }

    fn reached_max_events(&self) -> bool {
        self.opts
            .max_events
            .is_some_and(|m| self.events_so_far() >= m)
    }

    /// The one-line error that ends a capture whose output failed (disk full, I/O error):
    /// which file, why, and how many events the files keep (those of the blocks written
    /// before the error; readers recover them from a file without its index).
    fn output_error(&self, e: anyhow::Error) -> anyhow::Error {
        // format's I/O errors print their source too: say each cause once.
        let mut causes: Vec<String> = Vec::new();
        for c in e.chain() {
            let c = c.to_string();
            if causes.last() != Some(&c) {
                causes.push(c);
            }
        }
        // What the file keeps is what a reader recovers from it: the blocks whose bytes all
        // reached the disk. The writer cannot know that exactly (its last block, or the block
        // summary after it, may be cut anywhere by the error), so the file is read back.
        let kept = format::TraceReader::open(&self.path)
            .map(|r| r.event_count())
            .unwrap_or(self.committed);
        anyhow!(
            "writing {}: {}; stopped, keeping the {} events of the blocks written before the error",
            self.path.display(),
            causes.join(": "),
            self.finished_events + kept
        )
    }

    /// Moves everything in the ring buffer into the writer, then collects loss counters.
    fn drain(&mut self) -> Result<()> {
        let max = self.opts.max_events.unwrap_or(u64::MAX);
        let mut budget = max.saturating_sub(self.events_so_far());
        let Session {
            probes,
            writer,
            seen,
            committed,
            ..
        } = self;
        let writer = writer.as_mut().expect("writer present until finish");
        let mut blocks = writer.stats().blocks;
        let mut write_error = None;
        // Consecutive events mostly come from one process: skip the set lookup for those.
        let mut last_tgid = None;
        while let Some(item) = probes.events.next() {
            if budget == 0 || write_error.is_some() {
                // Keep consuming so the kernel side does not count phantom losses, but the
                // file is complete (max events) or broken (error).
                continue;
            }
            let Some(h) = RawEventHeader::read_from(&item) else {
                continue;
            };
            let value_end = (RAW_HEADER_SIZE + h.value_len as usize).min(item.len());
            let ev = Event::from_raw(&h, &item[RAW_HEADER_SIZE..value_end]);
            if last_tgid != Some(h.tgid) {
                last_tgid = Some(h.tgid);
                if seen.insert(h.tgid) {
                    writer.add_process(process_info(&h));
                }
            }
            match writer.write(&ev) {
                // A block closed by this write holds every event so far: none is left open.
                Ok(()) => {
                    let stats = writer.stats();
                    if stats.blocks != blocks {
                        blocks = stats.blocks;
                        *committed = stats.events;
                    }
                }
                Err(e) => write_error = Some(e),
            }
            budget -= 1;
        }
        if let Some(e) = write_error {
            return Err(self.output_error(e.into()));
        }
        self.collect_losses()
    }

    fn collect_losses(&mut self) -> Result<()> {
        let slots = self.probes.losses()?;
        let mut any = false;
        for (cpu, slot) in slots.iter().enumerate() {
            let prev = self.last_loss_count.get(cpu).copied().unwrap_or(0);
            if slot.count > prev {
                let lost = slot.count - prev;
                self.summary.lost += lost;
                self.writer().add_loss(LossRecord {
                    cpu: cpu as u32,
                    lost,
                    start_ns: slot.first_ns,
                    end_ns: slot.last_ns,
                });
                any = true;
            }
        }
        self.last_loss_count = slots.iter().map(|s| s.count).collect();
        if any {
            // Losses after this moment start a new interval (see LossSlot).
            let mut cfg = *self.probes.config();
            cfg.loss_window_ns = sys::boot_ns();
            self.probes.set_config(cfg)?;
        }
        Ok(())
    }

    fn maybe_rotate(&mut self) -> Result<()> {
        let stats = self.writer().stats();
        let by_size = self
            .opts
            .rotate_size
            .is_some_and(|s| stats.bytes_written >= s);
        let by_time = self
            .opts
            .rotate_time
            .is_some_and(|t| self.file_started.elapsed() >= t);
        if !(by_size || by_time) || stats.events == 0 {
            return Ok(());
        }
        self.finish_file()?;
        self.file_index += 1;
        self.path = rotated_path(&self.opts.output, self.file_index);
        self.header.sequence = self.file_index;
        self.header.start_ts_ns = sys::boot_ns();
        let file = crate::output::create(&self.path, self.opts.owner())
            .map_err(|e| self.output_error(e.into()))?;
        self.writer = Some(
            Self::new_writer(file, &self.header, &self.opts).map_err(|e| self.output_error(e))?,
        );
        self.file_started = Instant::now();
        // Each file names the processes it holds events of.
        self.seen.clear();
        self.summary.files.push(self.path.clone());
        (self.report)(Notice::Rotated(self.path.clone()));
        Ok(())
    }

    fn finish_file(&mut self) -> Result<()> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        // Blocks first, so an error in the index or trailer still counts them as kept.
        if let Err(e) = w.flush() {
            return Err(self.output_error(e.into()));
        }
        let stats = w.stats();
        self.committed = stats.events;
        let bw = w.finish().map_err(|e| self.output_error(e.into()))?;
        let file = bw
            .into_inner()
            .map_err(|e| self.output_error(anyhow!("{}", e.error())))?;
        file.sync_all().map_err(|e| self.output_error(e.into()))?;
        self.finished_events += stats.events;
        self.committed = 0;
        self.finished_bytes += file
            .metadata()
            .map(|m| m.len())
            .unwrap_or(stats.bytes_written);
        Ok(())
    }
}

/// A process table entry from /proc, falling back to the event's own fields for processes
/// that are already gone.
fn process_info(h: &RawEventHeader) -> ProcessInfo {
    let pid = h.tgid;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let read = |name: &str| std::fs::read_to_string(proc_dir.join(name)).ok();
    let comm = read("comm")
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_else(|| format::Event::from_raw(h, &[]).comm_str().into_owned());
    let exe = std::fs::read_link(proc_dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cgroup = read("cgroup")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default();
    let ppid = read("stat")
        .and_then(|s| parse_stat_ppid(&s))
        .unwrap_or(h.ppid);
    ProcessInfo {
        pid,
        ppid,
        first_seen_ns: h.ts_enter_ns,
        comm,
        exe,
        cgroup,
    }
}

/// Field 4 of /proc/PID/stat; the comm in field 2 may contain spaces and parentheses, so
/// parsing starts after its last ')'.
fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_number_before_the_extension() {
        let p = Path::new("/tmp/x/trace.gsot");
        assert_eq!(rotated_path(p, 0), p);
        assert_eq!(rotated_path(p, 1), Path::new("/tmp/x/trace.1.gsot"));
        assert_eq!(rotated_path(Path::new("out"), 12), Path::new("out.12"));
    }

    #[test]
    fn stat_ppid_survives_odd_comms() {
        assert_eq!(parse_stat_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn filters_reject_long_comms() {
        let f = Filters {
            comm: Some("sixteen_chars_xx".into()),
            ..Filters::default()
        };
        assert!(f.apply(&mut Config::default()).is_err());
        let f = Filters {
            comm: Some("curl".into()),
            errors_only: true,
            ..Filters::default()
        };
        let mut c = Config::default();
        f.apply(&mut c).unwrap();
        assert_eq!(&c.comm[..5], b"curl\0");
        assert_eq!(c.filters, FILTER_COMM | FILTER_ERRORS_ONLY);
    }
}
