//! The file side of a recording session, on its own thread: turns drained records into events,
//! compresses them into trace files (rotating them), keeps each file's process table and
//! loss records, and finishes the files. The drain ([`crate::record`]) hands it batches
//! through a bounded queue, so a slow compression or disk never stops the ring buffer drain
//! for longer than the queue takes to fill.

use std::collections::HashSet;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use format::raw::{RawEventHeader, RawSocket};
use format::{
    CaptureHeader, Event, LossRecord, OwnedSocketRef, ProcessInfo, TraceWriter, WriterOptions,
};

use crate::cgroupfs::CgroupNames;
use crate::docker::ContainerNames;
use crate::output::{Output, Target};
use crate::record::{Notice, RecordOptions, Reporter, Summary, rotated_path};
use crate::ring::Flight;

/// Bytes of records per batch: large enough that the queue costs little per event, small
/// enough that the queue's bound keeps memory low (see [`QUEUE_BATCHES`]).
pub(crate) const BATCH_BYTES: usize = 256 << 10;
/// Batches the queue holds: 4 MiB of records in flight between drain and compression at most.
pub(crate) const QUEUE_BATCHES: usize = 16;

/// What the drain sends.
pub(crate) enum Msg {
    /// Ring buffer records, each as a little-endian `u32` length and its bytes.
    Batch(Vec<u8>),
    /// Records the kernel could not hand over, on one CPU in one interval.
    Loss(LossRecord),
    /// `--max-rate`: one period's aggregate records.
    Aggregates(format::AggregatePeriod),
}

/// Appends one ring buffer record to `batch` in the layout [`Msg::Batch`] describes.
pub(crate) fn push_record(batch: &mut Vec<u8>, record: &[u8]) {
    batch.extend_from_slice(&(record.len() as u32).to_le_bytes());
    batch.extend_from_slice(record);
}

/// The records of a batch, in order.
pub(crate) fn records(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (record, tail) = tail.split_at(len);
        rest = tail;
        Some(record)
    })
}

type Writer = TraceWriter<BufWriter<Output>>;

/// The last record's socket fields and what they became: consecutive calls are mostly on one
/// socket, and converting its fields again for each (a `Socket` built and moved) was a tenth
/// of the writer thread's time.
#[derive(Default)]
struct SocketCache {
    raw: RawSocket,
    names: Vec<u8>,
    socket: OwnedSocketRef,
}

impl SocketCache {
    /// The identity of a record's socket (see [`crate::sock::from_raw`]).
    fn convert(&mut self, raw: &RawSocket, names: &[u8]) -> &OwnedSocketRef {
        // Names are empty but for AF_UNIX: no slice comparison (a memcmp call) for those.
        let same_names =
            names.len() == self.names.len() && (names.is_empty() || names == self.names);
        if *raw != self.raw || !same_names {
            self.socket = crate::sock::from_raw(raw, names);
            self.raw = *raw;
            self.names.clear();
            self.names.extend_from_slice(names);
        }
        &self.socket
    }
}

/// The output files of a session.
pub(crate) struct Sink {
    opts: RecordOptions,
    report: Reporter,
    header: CaptureHeader,
    writer: Option<Writer>,
    file_index: u32,
    file_started: Instant,
    path: PathBuf,
    seen: HashSet<u32>,
    last_socket: SocketCache,
    /// Names the cgroup of a process gone before /proc was read; `None` without cgroup2.
    pub(crate) cgroups: Option<CgroupNames>,
    /// Asks Docker for the names of the containers met; `None` without Docker.
    pub(crate) names: Option<ContainerNames>,
    summary: Summary,
    finished_bytes: u64,
    /// Events in the files already finished.
    finished_events: u64,
    /// Events of the current file in blocks completely written to it: what an output error
    /// leaves readable there (the open block and a block cut short by the error are not).
    committed: u64,
    /// The stream a flight recorder writes its one trigger's trace to, taken at start.
    pub(crate) held_stream: Option<Output>,
}

impl Sink {
    /// Starts the first file, `first`, already created at `opts.output`; a flight recorder
    /// has none until its first trigger.
    pub(crate) fn try_new(
        first: Option<Output>,
        opts: RecordOptions,
        report: Reporter,
        header: CaptureHeader,
        mode: &str,
    ) -> Result<Sink> {
        let writer = first
            .map(|f| new_writer(f, &header, &opts))
            .transpose()
            .with_context(|| format!("writing {}", opts.output))?;
        let summary = Summary {
            mode: mode.to_string(),
            files: writer
                .iter()
                .map(|_| opts.output.path().to_path_buf())
                .collect(),
            ..Summary::default()
        };
        Ok(Sink {
            path: opts.output.path().to_path_buf(),
            opts,
            report,
            header,
            writer,
            file_index: 0,
            file_started: Instant::now(),
            seen: HashSet::new(),
            last_socket: SocketCache::default(),
            cgroups: None,
            names: None,
            summary,
            finished_bytes: 0,
            finished_events: 0,
            committed: 0,
            held_stream: None,
        })
    }

    /// Writes what arrives until the drain hangs up (or a flight recorder has written its
    /// `--max-triggers` files), then finishes the file. On an output error it returns at once.
    /// Either way it sets `done` and drops `queue`, which tell the drain to stop.
    pub(crate) fn run(
        mut self,
        queue: Receiver<Msg>,
        empties: Sender<Vec<u8>>,
        done: &AtomicBool,
    ) -> Result<Summary> {
        // Often enough for the flush interval and time rotation to be kept to within this.
        let tick = self.opts.flush_interval.min(Duration::from_millis(100));
        let mut flight = match &self.opts.ring {
            Some(r) => Some(Flight::try_new(
                r,
                self.header.start_ts_ns,
                self.opts.drain_interval,
            )?),
            None => None,
        };
        let result = loop {
            match queue.recv_timeout(tick) {
                Ok(Msg::Batch(mut batch)) => {
                    let written = match flight.as_mut() {
                        Some(f) => f.on_batch(&batch, &mut self),
                        None => self.write_batch(&batch, 0, u64::MAX),
                    };
                    if let Err(e) = written {
                        break Err(e);
                    }
                    batch.clear();
                    // The drain may have gone: then the buffer is simply dropped.
                    let _ = empties.send(batch);
                }
                Ok(Msg::Loss(loss)) => {
                    self.summary.lost += loss.lost;
                    match flight.as_mut() {
                        Some(f) => f.on_loss(loss, &mut self),
                        None => self.add_loss(loss),
                    }
                }
                Ok(Msg::Aggregates(period)) => {
                    if let Some(w) = self.writer.as_mut() {
                        w.add_aggregates(period);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
            let polled = match flight.as_mut() {
                Some(f) => f.poll(&mut self),
                None => self.poll().map(|()| false),
            };
            match polled {
                Ok(false) => {}
                Ok(true) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        done.store(true, Ordering::Relaxed);
        if let Some(f) = &flight {
            (self.report)(f.peak());
        }
        drop(queue);
        // Whatever happened, close the file properly if we still can.
        let finished = self.finish_file();
        result.and(finished)?;
        self.summary.events = self.finished_events;
        self.summary.bytes_written = self.finished_bytes;
        Ok(self.summary)
    }

    /// Adds a loss record to the open file, if one is open.
    pub(crate) fn add_loss(&mut self, loss: LossRecord) {
        if let Some(w) = self.writer.as_mut() {
            w.add_loss(loss);
        }
    }

    /// Writes the records of `batch` that entered from `from_ns` to `until_ns` (inclusive)
    /// to the open file.
    pub(crate) fn write_batch(&mut self, batch: &[u8], from_ns: u64, until_ns: u64) -> Result<()> {
        if !self.opts.test_write_delay.is_zero() {
            std::thread::sleep(self.opts.test_write_delay);
        }
        let Sink {
            writer,
            seen,
            last_socket,
            cgroups,
            names,
            committed,
            ..
        } = self;
        let writer = writer.as_mut().expect("writer present until finish");
        let mut blocks = writer.stats().blocks;
        // Consecutive events mostly come from one process: skip the set lookup for those.
        let mut last_tgid = None;
        let mut error = None;
        if let Some(n) = names.as_mut() {
            for c in n.ready() {
                writer.add_container(c);
            }
        }
        for item in records(batch) {
            let Some(h) = RawEventHeader::read_from(item) else {
                continue;
            };
            if h.ts_enter_ns < from_ns || h.ts_enter_ns > until_ns {
                continue;
            }
            let (value, unix_names) = crate::sock::record_parts(&h, item);
            let mut ev = Event::from_raw(&h, value);
            ev.socket = last_socket.convert(&h.socket, unix_names).as_ref();
            if last_tgid != Some(h.tgid) {
                last_tgid = Some(h.tgid);
                if seen.insert(h.tgid) {
                    let info = process_info(&h, cgroups.as_mut());
                    if let Some(path) = (info.cgroup == "/")
                        .then(|| std::fs::read_to_string(format!("/proc/{}/cgroup", h.tgid)).ok())
                        .flatten()
                        .and_then(|s| crate::cgroupfs::v1_path(&s))
                    {
                        writer.add_cgroup_v1(format::CgroupV1Path {
                            pid: info.pid,
                            first_seen_ns: info.first_seen_ns,
                            path,
                        });
                    }
                    if let Some(c) = names.as_mut().and_then(|n| n.request(&info.cgroup)) {
                        writer.add_container(c);
                    }
                    writer.add_process(info);
                }
            }
            if let Err(e) = writer.write(&ev) {
                error = Some(e);
                break;
            }
            // A block closed by this write holds every event so far: none is left open.
            let stats = writer.stats();
            if stats.blocks != blocks {
                blocks = stats.blocks;
                *committed = stats.events;
            }
        }
        match error {
            Some(e) => Err(self.output_error(e.into())),
            None => Ok(()),
        }
    }

    /// The time-driven work: flushing an old open block, rotating.
    pub(crate) fn poll(&mut self) -> Result<()> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        match w.poll_flush() {
            Ok(true) => self.committed = w.stats().events,
            Ok(false) => {}
            Err(e) => return Err(self.output_error(e.into())),
        }
        self.maybe_rotate()
    }

    /// The one-line error that ends a capture whose output failed (disk full, I/O error):
    /// which file, why, and how many events the files keep (those of the blocks written
    /// before the error; readers recover them from a file without its index).
    fn output_error(&self, e: anyhow::Error) -> anyhow::Error {
        crate::output::failed(
            &self.opts.output,
            &self.path,
            e,
            self.finished_events,
            self.committed,
        )
    }

    fn maybe_rotate(&mut self) -> Result<()> {
        let Some(stats) = self.writer.as_ref().map(TraceWriter::stats) else {
            return Ok(());
        };
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
        self.header.sequence = self.file_index;
        self.header.start_ts_ns = crate::sys::boot_ns();
        let header = self.header.clone();
        self.open_file(&header)?;
        (self.report)(Notice::Rotated(self.path.clone()));
        Ok(())
    }

    /// Opens file number `index` (named like a rotated one) for a flight recorder's trigger,
    /// its header the capture's with this `start_ts_ns` and the trigger's `extra` keys.
    pub(crate) fn start_file(
        &mut self,
        index: u32,
        start_ts_ns: u64,
        extra: Vec<(String, String)>,
        what: &str,
    ) -> Result<()> {
        self.file_index = index;
        let mut header = self.header.clone();
        header.sequence = index;
        header.start_ts_ns = start_ts_ns;
        header.extra.extend(extra);
        self.open_file(&header)?;
        (self.report)(Notice::Triggered {
            by: what.to_string(),
            path: self.path.clone(),
        });
        Ok(())
    }

    /// Opens the file `file_index` names, with `header`, as the one written to.
    fn open_file(&mut self, header: &CaptureHeader) -> Result<()> {
        // A stream takes one trace (a flight recorder's only trigger, see Session::start).
        let file = match self.held_stream.take() {
            Some(stream) => {
                self.path = self.opts.output.path().to_path_buf();
                stream
            }
            None => {
                self.path = rotated_path(self.opts.output.path(), self.file_index);
                crate::output::open(&Target::File(self.path.clone()), self.opts.owner())
                    .map_err(|e| self.output_error(e))?
            }
        };
        self.writer = Some(new_writer(file, header, &self.opts).map_err(|e| self.output_error(e))?);
        self.file_started = Instant::now();
        // Each file names the processes it holds events of.
        self.seen.clear();
        if let Some(n) = self.names.as_mut() {
            n.new_file();
        }
        self.summary.files.push(self.path.clone());
        Ok(())
    }

    pub(crate) fn finish_file(&mut self) -> Result<()> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        // Docker's answers still on their way: a short wait, bounded by its own timeout.
        if let Some(n) = self.names.as_mut() {
            for c in n.finish(Duration::from_millis(600)) {
                w.add_container(c);
            }
        }
        // Blocks first, so an error in the index or trailer still counts them as kept.
        if let Err(e) = w.flush() {
            return Err(self.output_error(e.into()));
        }
        let stats = w.stats();
        self.committed = stats.events;
        let bw = w.finish().map_err(|e| self.output_error(e.into()))?;
        let out = bw
            .into_inner()
            .map_err(|e| self.output_error(anyhow!("{}", e.error())))?;
        let len = out.close().map_err(|e| self.output_error(e.into()))?;
        self.finished_events += stats.events;
        self.committed = 0;
        self.finished_bytes += len;
        Ok(())
    }
}

fn new_writer(file: Output, header: &CaptureHeader, opts: &RecordOptions) -> Result<Writer> {
    let wopts = WriterOptions {
        max_block_events: opts.block_events,
        max_block_age: opts.flush_interval,
        ..WriterOptions::default()
    };
    let mut w = TraceWriter::try_new(BufWriter::with_capacity(256 << 10, file), header, wopts)?;
    // The header now, so a stream's reader can start before the first block.
    w.flush()?;
    Ok(w)
}

/// A process table entry from /proc, falling back to the event's own fields for processes
/// that are already gone (the cgroup path from the event's cgroup id, while the cgroup exists).
fn process_info(h: &RawEventHeader, cgroups: Option<&mut CgroupNames>) -> ProcessInfo {
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
        .or_else(|| cgroups?.path_of(h.cgroup_id))
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
    fn stat_ppid_survives_odd_comms() {
        assert_eq!(parse_stat_ppid("42 (a) b) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn the_socket_cache_answers_what_converting_each_record_does() {
        use format::raw::{SOCK_NONE, SOCK_PRESENT};
        let sock = |family, ino, names: u8| RawSocket {
            family,
            ino,
            status: SOCK_PRESENT,
            unix_path_len: names,
            ..RawSocket::default()
        };
        let none = RawSocket {
            status: SOCK_NONE,
            ..RawSocket::default()
        };
        let records: [(RawSocket, &[u8]); 8] = [
            (RawSocket::default(), b""),
            (sock(2, 7, 0), b""),
            (sock(2, 7, 0), b""),
            (sock(2, 8, 0), b""),
            (none, b""),
            (sock(1, 9, 2), b"/a"),
            (sock(1, 9, 2), b"/b"),
            (sock(1, 9, 2), b"/b"),
        ];
        let mut cache = SocketCache::default();
        for (raw, names) in records {
            let want = crate::sock::from_raw(&raw, names);
            assert_eq!(*cache.convert(&raw, names), want);
        }
    }

    #[test]
    fn a_batch_gives_back_its_records_in_order() {
        let mut batch = Vec::new();
        for r in [&b"abc"[..], b"", b"0123456789"] {
            push_record(&mut batch, r);
        }
        let got: Vec<&[u8]> = records(&batch).collect();
        assert_eq!(got, [&b"abc"[..], b"", b"0123456789"]);
    }
}
