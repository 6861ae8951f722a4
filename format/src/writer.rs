//! [`TraceWriter`]: appends a trace file section by section, so whatever it has flushed stays
//! readable if the process dies.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::AggregatePeriod;
use crate::block::{BlockEncoder, BlockHeader, MAX_BLOCK_EVENTS, MAX_BLOCK_RAW};
use crate::meta::{self, CaptureHeader, CgroupV1Path, ContainerInfo, LossRecord, ProcessInfo};
use crate::section::{self, SectionHeader, Tag};
use crate::summary::SummaryEncoder;
use crate::{Error, Event};

/// When blocks are closed and how hard they are compressed.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Close a block when it holds this many events (at most 1,048,576). The default, 131,072,
    /// measured cheaper to write and smaller than 65,536 on the generator's busy mix (a
    /// site's first event in a block costs the most, and a bigger block has fewer of them per
    /// event); a reader holds blocks twice the size. Figures: README, "Performance".
    pub max_block_events: u32,
    /// Close a block when its first event is this old (checked by [`TraceWriter::poll_flush`]
    /// and every 1024 writes). This bounds what a crash can lose.
    pub max_block_age: Duration,
    /// zstd level for blocks. 1 (the default) is the cheapest to write; higher levels make
    /// smaller files for more CPU (the format benchmark compares 1 and 3).
    pub zstd_level: i32,
    /// Compress block payloads with two zstd parameters changed from the level's own: literals
    /// stored as they are instead of Huffman-coded, and a 4096-entry match table (hashLog 12).
    /// On the generator's mix at level 1 this costs a few bytes per event for less CPU, a
    /// better trade than zstd's negative levels. Either way the frames are ordinary zstd
    /// frames. Summaries, which are nearly all literals, get the first change only, so that
    /// they decode at copying speed, which `analyze`'s summary questions feel. Figures:
    /// README, "Performance".
    pub fast_compression: bool,
    /// Write a `BSUM` section (durations by call site) after each block, so that counts and
    /// latency questions can be answered without the block's columns (FORMAT.md 4.2).
    pub block_summaries: bool,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            max_block_events: 131072,
            max_block_age: Duration::from_secs(1),
            zstd_level: 1,
            fast_compression: true,
            block_summaries: true,
        }
    }
}

/// Counters of what a [`TraceWriter`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Events written (including those in the still-open block).
    pub events: u64,
    /// Blocks closed.
    pub blocks: u64,
    /// Bytes handed to the underlying writer.
    pub bytes_written: u64,
    /// Sum of `lost` over the loss records added.
    pub lost: u64,
}

/// Start of payload flushes: a block is closed early when its payload reaches this size, far
/// below the format's limit, so huge option values cannot make a block unreadable.
const SOFT_BLOCK_RAW: usize = 16 << 20;

/// Writes a trace file: `try_new`, then `write` per event, then `finish`.
///
/// Dropping a writer without `finish` writes nothing more: the file then ends without its
/// index, and readers recover every block that was flushed (see [`TraceWriter::flush`]).
pub struct TraceWriter<W: Write> {
    out: W,
    offset: u64,
    opts: WriterOptions,
    block: BlockEncoder,
    block_started: Option<Instant>,
    frame_buf: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    summary_compressor: zstd::bulk::Compressor<'static>,
    summary: SummaryEncoder,
    index_blocks: Vec<IndexBlock>,
    index_sections: Vec<(Tag, u64)>,
    index_more: Vec<u64>,
    pending_processes: Vec<ProcessInfo>,
    pending_losses: Vec<LossRecord>,
    pending_containers: Vec<ContainerInfo>,
    pending_v1: Vec<CgroupV1Path>,
    pending_aggregates: Vec<AggregatePeriod>,
    stats: WriterStats,
    /// Set after an I/O error: the file's tail is unknown, so nothing more may be appended.
    failed: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexBlock {
    pub offset: u64,
    pub event_count: u32,
    pub ts_min: u64,
    pub ts_max: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the preamble and header section.
    pub fn try_new(out: W, header: &CaptureHeader, opts: WriterOptions) -> Result<Self, Error> {
        if opts.max_block_events == 0 || opts.max_block_events > MAX_BLOCK_EVENTS {
            return Err(Error::InvalidInput(format!(
                "max_block_events must be 1 to {MAX_BLOCK_EVENTS}, got {}",
                opts.max_block_events
            )));
        }
        let mut compressor = zstd::bulk::Compressor::new(opts.zstd_level)?;
        let mut summary_compressor = zstd::bulk::Compressor::new(opts.zstd_level)?;
        if opts.fast_compression {
            use zstd::zstd_safe::{CParameter, ParamSwitch};
            let raw_literals = CParameter::LiteralCompressionMode(ParamSwitch::Disable);
            compressor.set_parameter(raw_literals)?;
            compressor.set_parameter(CParameter::HashLog(12))?;
            summary_compressor.set_parameter(raw_literals)?;
        }
        let mut w = TraceWriter {
            out,
            offset: 0,
            block: BlockEncoder::new(opts.max_block_events),
            opts,
            block_started: None,
            frame_buf: Vec::new(),
            compressor,
            summary_compressor,
            summary: SummaryEncoder::default(),
            index_blocks: Vec::new(),
            index_sections: Vec::new(),
            index_more: Vec::new(),
            pending_processes: Vec::new(),
            pending_losses: Vec::new(),
            pending_containers: Vec::new(),
            pending_v1: Vec::new(),
            pending_aggregates: Vec::new(),
            stats: WriterStats::default(),
            failed: false,
        };
        w.put(&section::encode_preamble(
            crate::VERSION_MAJOR,
            crate::VERSION_MINOR,
        ))?;
        let body = bincode::encode_to_vec(header, meta::config()).map_err(encode_error)?;
        w.put_section(Tag::HEADER, &body)?;
        Ok(w)
    }

    /// Adds one event to the open block, closing the block when it is full or old.
    pub fn write(&mut self, event: &Event<'_>) -> Result<(), Error> {
        self.check_usable()?;
        if self.block.len() == 0 {
            self.block_started = Some(Instant::now());
        }
        self.block.push(event)?;
        self.stats.events += 1;
        let n = self.block.len();
        if n >= self.opts.max_block_events
            || (n.is_multiple_of(1024)
                && (self.block.raw_len() >= SOFT_BLOCK_RAW || self.block_is_old()))
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Records a process for the process table; written with the next flush.
    pub fn add_process(&mut self, process: ProcessInfo) {
        self.pending_processes.push(process);
    }

    /// Records what a runtime said of a container; written with the next flush.
    pub fn add_container(&mut self, c: ContainerInfo) {
        self.pending_containers.push(c);
    }

    /// Records a process's cgroup v1 path (FORMAT.md 5.2); written with the next flush.
    pub fn add_cgroup_v1(&mut self, p: CgroupV1Path) {
        self.pending_v1.push(p);
    }

    /// Records a period's aggregate records (FORMAT.md 5.3); written with the next flush.
    pub fn add_aggregates(&mut self, period: AggregatePeriod) {
        self.pending_aggregates.push(period);
    }

    /// Records lost events; written with the next flush.
    pub fn add_loss(&mut self, loss: LossRecord) {
        self.stats.lost += loss.lost;
        self.pending_losses.push(loss);
    }

    /// Closes the open block if it is older than `max_block_age`. Returns whether it did.
    /// Call it on a timer so a quiet capture still reaches the disk.
    pub fn poll_flush(&mut self) -> Result<bool, Error> {
        if self.block_is_old()
            || (self.block.len() == 0
                && (!self.pending_processes.is_empty()
                    || !self.pending_losses.is_empty()
                    || !self.pending_containers.is_empty()
                    || !self.pending_v1.is_empty()
                    || !self.pending_aggregates.is_empty()))
        {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the pending side tables and the open block now, and flushes the underlying
    /// writer: after this returns, everything written so far survives a crash of this process.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        let processes = std::mem::take(&mut self.pending_processes);
        if let Some(at) = self.put_side(Tag::PROCESSES, &processes)? {
            self.index_sections.push((Tag::PROCESSES, at));
        }
        let losses = std::mem::take(&mut self.pending_losses);
        if let Some(at) = self.put_side(Tag::LOSSES, &losses)? {
            self.index_sections.push((Tag::LOSSES, at));
        }
        // The 1.3 kinds are listed after `total_events`, not in `sections`: a 1.1 reader takes
        // every `sections` entry for PROC or LOSS (FORMAT.md 6).
        let containers = std::mem::take(&mut self.pending_containers);
        if let Some(at) = self.put_side(Tag::CONTAINERS, &containers)? {
            self.index_more.push(at);
        }
        let v1 = std::mem::take(&mut self.pending_v1);
        if let Some(at) = self.put_side(Tag::CGROUP_V1, &v1)? {
            self.index_more.push(at);
        }
        let aggregates = std::mem::take(&mut self.pending_aggregates);
        if let Some(at) = self.put_side(Tag::AGGREGATES, &aggregates)? {
            self.index_more.push(at);
        }
        if self.block.len() > 0 {
            self.close_block()?;
        }
        self.out.flush().inspect_err(|_| self.failed = true)?;
        Ok(())
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes everything, writes the index and trailer, and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.flush()?;
        let mut body = Vec::new();
        meta::encode_index(
            &self.index_blocks,
            &self.index_sections,
            self.stats.events,
            &self.index_more,
            &mut body,
        );
        let index_offset = self.put_section(Tag::INDEX, &body)?;
        self.put(&section::encode_trailer(index_offset))?;
        self.out.flush().inspect_err(|_| self.failed = true)?;
        Ok(self.out)
    }

    fn block_is_old(&self) -> bool {
        self.block.len() > 0
            && self
                .block_started
                .is_some_and(|t| t.elapsed() >= self.opts.max_block_age)
    }

    fn check_usable(&self) -> Result<(), Error> {
        if self.failed {
            return Err(Error::InvalidInput(
                "the trace writer failed earlier (an I/O error); nothing more can be written"
                    .into(),
            ));
        }
        Ok(())
    }

    fn close_block(&mut self) -> Result<(), Error> {
        let (ts_min, ts_max) = self.block.ts_range();
        let event_count = self.block.len();
        let payload = self.block.payload();
        debug_assert!(payload.len() <= MAX_BLOCK_RAW as usize);
        let header = BlockHeader {
            event_count,
            raw_len: payload.len() as u32,
            ts_min,
            ts_max,
        };
        // The frame is compressed into a buffer kept between blocks and written right after
        // the block header, without copying the two together.
        crate::block::clear_with_room(
            &mut self.frame_buf,
            zstd::zstd_safe::compress_bound(payload.len()),
        );
        self.compressor
            .compress_to_buffer(payload, &mut self.frame_buf)?;
        let frame = std::mem::take(&mut self.frame_buf);
        let at = self.put_section_parts(Tag::BLOCK, &[&header.encode(), &frame]);
        self.frame_buf = frame;
        let at = at?;
        if self.opts.block_summaries {
            let site_count = self.block.site_count();
            let (sites, durations) = self.block.site_and_duration_columns();
            let fixed = self.summary.encode(
                at,
                site_count,
                sites,
                durations,
                &mut self.summary_compressor,
            )?;
            let frame = std::mem::take(&mut self.summary.frame);
            let put = self.put_section_parts(Tag::SUMMARY, &[&fixed, &frame]);
            self.summary.frame = frame;
            put?;
        }
        self.index_blocks.push(IndexBlock {
            offset: at,
            event_count: header.event_count,
            ts_min,
            ts_max,
        });
        self.stats.blocks += 1;
        self.block.clear();
        self.block_started = None;
        Ok(())
    }

    /// Writes one section; returns its offset.
    /// A side table's pending entries as one section; `None` when there are none. (An error
    /// leaves the writer failed, so entries taken for it are not needed again.)
    fn put_side<T: bincode::Encode>(
        &mut self,
        tag: Tag,
        items: &[T],
    ) -> Result<Option<u64>, Error> {
        if items.is_empty() {
            return Ok(None);
        }
        let body = bincode::encode_to_vec(items, meta::config()).map_err(encode_error)?;
        self.put_section(tag, &body).map(Some)
    }

    fn put_section(&mut self, tag: Tag, body: &[u8]) -> Result<u64, Error> {
        self.put_section_parts(tag, &[body])
    }

    /// Writes one section whose body is the concatenation of `parts`; returns its offset.
    fn put_section_parts(&mut self, tag: Tag, parts: &[&[u8]]) -> Result<u64, Error> {
        let header = SectionHeader::for_parts(tag, parts)?;
        let at = self.offset;
        self.put(&header.encode())?;
        for part in parts {
            self.put(part)?;
        }
        Ok(at)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out
            .write_all(bytes)
            .inspect_err(|_| self.failed = true)?;
        self.offset += bytes.len() as u64;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }
}

fn encode_error(e: bincode::error::EncodeError) -> Error {
    Error::InvalidInput(format!("bincode could not encode a section: {e}"))
}
