//! [`TraceReader`]: opens a trace file in O(1) through its index, or recovers what a crashed
//! recorder left by scanning, and decodes blocks on demand.

use std::fs::File;
use std::path::Path;

use rayon::prelude::*;

use crate::AggregatePeriod;
use crate::block::{BlockHeader, DecodedBlock};
use crate::front::{BlockFront, FrontParts};
use crate::meta::{self, CaptureHeader, CgroupV1Path, ContainerInfo, LossRecord, ProcessInfo};
use crate::section::{self, PREAMBLE_LEN, SECTION_HEADER_LEN, SectionHeader, TRAILER_LEN, Tag};
use crate::summary::{self, BlockSummary};
use crate::wire::Cursor;
use crate::{Error, Event, OwnedEvent};

/// The span a page fault maps around a file-backed address (Linux's `fault_around_bytes`,
/// 64 KiB by default), so the span [`TraceReader::release`] must reach back over.
const FAULT_AROUND: usize = 64 << 10;

/// Where a block is and what it holds, from the index (or from scanning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// File offset of the block's section header.
    pub offset: u64,
    pub event_count: u32,
    /// Boot-time ns of the earliest and latest event in the block.
    pub ts_min: u64,
    pub ts_max: u64,
}

/// How a file without a usable index was read.
#[derive(Debug)]
pub struct Recovery {
    /// Why the index could not be used (the file did not end cleanly, or the index is damaged).
    pub reason: Error,
    /// Where scanning stopped: the file length when it reached the end.
    pub stopped_at: u64,
    /// What was skipped on the way, each with its offset: damaged sections, and the
    /// incomplete section at the end of a file cut short.
    pub problems: Vec<Error>,
}

enum Source {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A trace file opened for reading.
pub struct TraceReader {
    source: Source,
    version: (u16, u16),
    header: CaptureHeader,
    blocks: Vec<BlockInfo>,
    side: SideTables,
    recovery: Option<Recovery>,
}

impl TraceReader {
    /// Memory-maps `path` and opens it.
    ///
    /// The file must not shrink while the reader is in use: reading a mapped page past the
    /// new end of a file that another process truncated raises SIGBUS, which ends this
    /// process (it is not an [`Error`]). Contents changed in place are safe: every byte is
    /// validated when read, so they give errors. A file that may be truncated under you is
    /// read safely from a copy, or from memory with [`TraceReader::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<TraceReader, Error> {
        let file = File::open(path.as_ref())?;
        if file.metadata()?.len() == 0 {
            return Err(Error::truncated(
                0,
                "the 8-byte trace file magic (the file is empty)",
            ));
        }
        // SAFETY: the map is read-only and private to this reader. A trace file that another
        // process truncates while we read it would fault; every byte we read is otherwise
        // validated, so changed contents give errors, not undefined behaviour in our code.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        TraceReader::from_source(Source::Mapped(map))
    }

    /// Opens a trace held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TraceReader, Error> {
        TraceReader::from_source(Source::Owned(bytes))
    }

    fn from_source(source: Source) -> Result<TraceReader, Error> {
        let file = match &source {
            Source::Mapped(m) => &m[..],
            Source::Owned(v) => &v[..],
        };
        let version = section::decode_preamble(file)?;
        let head_at = PREAMBLE_LEN as u64;
        let h = SectionHeader::decode_at(file, head_at)?;
        if h.tag != Tag::HEADER {
            return Err(Error::malformed(
                head_at,
                format!("the HEAD section, found {}", h.tag.name()),
            ));
        }
        let body = h.checked_body(file, head_at)?;
        let header =
            meta::decode_header(&mut Cursor::new(body, head_at + SECTION_HEADER_LEN as u64))?;
        let after_header = h.end(head_at);

        let mut reader = TraceReader {
            source: Source::Owned(Vec::new()),
            version,
            header,
            blocks: Vec::new(),
            side: SideTables::default(),
            recovery: None,
        };
        if let Err(reason) = reader.load_index(file) {
            reader.blocks.clear();
            reader.side = SideTables::default();
            let (stopped_at, problems) = reader.scan(file, after_header);
            reader.recovery = Some(Recovery {
                reason,
                stopped_at,
                problems,
            });
        }
        reader.source = source;
        Ok(reader)
    }

    fn load_index(&mut self, file: &[u8]) -> Result<(), Error> {
        let at = section::decode_trailer(file)?;
        let h = SectionHeader::decode_at(file, at)?;
        if h.tag != Tag::INDEX {
            return Err(Error::malformed(
                at,
                format!("the INDX section, found {}", h.tag.name()),
            ));
        }
        let body = h.checked_body(file, at)?;
        let index = meta::decode_index(&mut Cursor::new(body, at + SECTION_HEADER_LEN as u64))?;
        for b in &index.blocks {
            if b.offset < PREAMBLE_LEN as u64 || b.offset >= at {
                return Err(Error::malformed(
                    at,
                    format!("block offsets before the index at {at}, found {}", b.offset),
                ));
            }
            // An entry must point at an intact BLCK header of the same event count (FORMAT.md
            // 6): a wrong index is not used at all. Headers only, so opening stays cheap.
            let h = SectionHeader::decode_at(file, b.offset)?;
            let body_at = b.offset as usize + SECTION_HEADER_LEN;
            let count = file
                .get(body_at..body_at + 4)
                .filter(|_| h.tag == Tag::BLOCK && h.body_len >= 4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
            if count != Some(b.event_count) {
                return Err(Error::malformed(
                    b.offset,
                    format!(
                        "a BLCK section of {} events where the index points, found {}",
                        b.event_count,
                        match count {
                            Some(n) => format!("one of {n}"),
                            None => h.tag.name(),
                        }
                    ),
                ));
            }
            self.blocks.push(BlockInfo {
                offset: b.offset,
                event_count: b.event_count,
                ts_min: b.ts_min,
                ts_max: b.ts_max,
            });
        }
        let counted: u64 = self.blocks.iter().map(|b| b.event_count as u64).sum();
        if counted != index.total_events {
            return Err(Error::malformed(
                at,
                format!(
                    "an index whose blocks add up to its {} events, found {counted}",
                    index.total_events
                ),
            ));
        }
        // Later offsets that name no section of a kind known here before the index are
        // ignored, as their bytes may predate the field (FORMAT.md 6).
        let more = index.more_sections.iter().filter_map(|&o| {
            let tag = SectionHeader::decode_at(file, o).ok()?.tag;
            (o < at && Tag::MORE.contains(&tag)).then_some((tag, o))
        });
        for (tag, offset) in index.sections.iter().copied().chain(more) {
            if offset >= at {
                return Err(Error::malformed(
                    at,
                    format!("section offsets before the index at {at}, found {offset}"),
                ));
            }
            let h = SectionHeader::decode_at(file, offset)?;
            if h.tag != tag {
                return Err(Error::malformed(
                    offset,
                    format!(
                        "a {} section as the index says, found {}",
                        tag.name(),
                        h.tag.name()
                    ),
                ));
            }
            let body = h.checked_body(file, offset)?;
            self.side_section(tag, body, offset)?;
        }
        Ok(())
    }

    fn side_section(&mut self, tag: Tag, body: &[u8], offset: u64) -> Result<(), Error> {
        self.side.add(tag, body, offset)
    }

    /// Walks the sections one by one from `start`, keeping every complete, intact one.
    fn scan(&mut self, file: &[u8], start: u64) -> (u64, Vec<Error>) {
        let len = file.len() as u64;
        let mut problems = Vec::new();
        let mut off = start;
        let mut previous = None;
        loop {
            if off == len {
                return (off, problems);
            }
            // The trailer after the index: whatever is wrong with a whole one is already the
            // recovery's reason; a partial one means the file was cut there.
            if previous == Some(Tag::INDEX) && len - off <= TRAILER_LEN as u64 {
                if len - off < TRAILER_LEN as u64 {
                    problems.push(Error::truncated(off, "the 24-byte trailer"));
                }
                return (len, problems);
            }
            let h = match SectionHeader::decode_at(file, off) {
                Ok(h) => h,
                Err(e @ Error::Truncated { .. }) => {
                    problems.push(e);
                    return (off, problems);
                }
                Err(e) => match resync(file, off + 1) {
                    Some(next) => {
                        problems.push(Error::malformed(
                            off,
                            format!(
                                "a section header, found damaged bytes ({}); skipped {} bytes to the next intact section at {next}",
                                damage(&e),
                                next - off
                            ),
                        ));
                        off = next;
                        previous = None;
                        continue;
                    }
                    None => {
                        problems.push(e);
                        return (off, problems);
                    }
                },
            };
            match h.checked_body(file, off) {
                Ok(body) => {
                    let body_at = off + SECTION_HEADER_LEN as u64;
                    let kept = match h.tag {
                        Tag::BLOCK => BlockHeader::decode(body, body_at).map(|b| {
                            self.blocks.push(BlockInfo {
                                offset: off,
                                event_count: b.event_count,
                                ts_min: b.ts_min,
                                ts_max: b.ts_max,
                            })
                        }),
                        Tag::HEADER => Err(Error::malformed(
                            off,
                            "one HEAD section only, found a second",
                        )),
                        tag => self.side_section(tag, body, off),
                    };
                    if let Err(e) = kept {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(e),
            }
            previous = Some(h.tag);
            off = h.end(off);
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.source {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }

    /// The format version of the file: (major, minor).
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The blocks in file order.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks
    }

    /// The process table: every process the capture named, in the order it was seen.
    pub fn processes(&self) -> &[ProcessInfo] {
        &self.side.processes
    }

    pub fn losses(&self) -> &[LossRecord] {
        &self.side.losses
    }

    /// What container runtimes said of containers during the capture (since 1.3; empty in
    /// older files): names, images and Kubernetes labels by container id.
    pub fn containers(&self) -> &[ContainerInfo] {
        &self.side.containers
    }

    /// cgroup v1 paths of processes whose v2 path is the root (since 1.3; empty in older
    /// files), each for the process table entry with its pid and first_seen_ns.
    pub fn cgroup_v1_paths(&self) -> &[CgroupV1Path] {
        &self.side.cgroup_v1
    }

    /// The aggregate records of a sampled capture (`recorder record --max-rate`; since 1.4,
    /// empty otherwise), period by period in file order.
    pub fn aggregates(&self) -> &[AggregatePeriod] {
        &self.side.aggregates
    }

    /// `Some` when the file had no usable index and was read by scanning.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Events in all readable blocks.
    pub fn event_count(&self) -> u64 {
        self.blocks.iter().map(|b| b.event_count as u64).sum()
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Blocks that may hold events with `from <= ts_ns <= last` (both ends included, so every
    /// timestamp up to 2^64-1 can be asked for), from the index alone.
    pub fn blocks_in_range(&self, from: u64, last: u64) -> impl Iterator<Item = &BlockInfo> + '_ {
        self.blocks
            .iter()
            .filter(move |b| b.event_count > 0 && b.ts_max >= from && b.ts_min <= last)
    }

    /// Checks, decompresses and validates one block into `out`.
    pub fn decode_block(&self, block: &BlockInfo, out: &mut DecodedBlock) -> Result<(), Error> {
        let (body, body_at) = self.block_body(block)?;
        out.decode(body, block.offset, body_at)
    }

    /// Checks one block and decompresses and validates only its front (FORMAT.md 4.1): the
    /// thread and site tables, and with [`FrontParts::TablesAndTimes`] the time, duration and
    /// site columns. Most of a block's payload (pointers and values) is not decompressed.
    pub fn read_block_front(
        &self,
        block: &BlockInfo,
        out: &mut BlockFront,
        parts: FrontParts,
    ) -> Result<(), Error> {
        let (body, body_at) = self.block_body(block)?;
        out.decode(body, body_at, parts)
    }

    /// The checked body of a block section and its file offset.
    fn block_body(&self, block: &BlockInfo) -> Result<(&[u8], u64), Error> {
        let file = self.bytes();
        let h = SectionHeader::decode_at(file, block.offset)?;
        if h.tag != Tag::BLOCK {
            return Err(Error::malformed(
                block.offset,
                format!("a BLCK section, found {}", h.tag.name()),
            ));
        }
        let body = h.checked_body(file, block.offset)?;
        let body_at = block.offset + SECTION_HEADER_LEN as u64;
        let bh = BlockHeader::decode(body, body_at)?;
        if bh.event_count != block.event_count {
            return Err(Error::malformed(
                body_at,
                format!(
                    "{} events as the index says, found {}",
                    block.event_count, bh.event_count
                ),
            ));
        }
        Ok((body, body_at))
    }

    /// Checks and decompresses one block without decoding its events: afterwards
    /// `out.payload()` holds the payload bytes and `out` holds no events. What decoding costs
    /// beyond this is what the format benchmark measures.
    pub fn decompress_block(&self, block: &BlockInfo, out: &mut DecodedBlock) -> Result<(), Error> {
        let file = self.bytes();
        let h = SectionHeader::decode_at(file, block.offset)?;
        let body = h.checked_body(file, block.offset)?;
        out.decompress(body, block.offset, block.offset + SECTION_HEADER_LEN as u64)?;
        Ok(())
    }

    /// Reads the summary of `block` (its `BSUM` section, FORMAT.md 4.2) into `out`.
    /// `Ok(false)` when the block has none (files of format 1.0, or a file cut right after
    /// the block); an error when there is one but it is damaged or does not match the block's
    /// event count. The caller checks [`BlockSummary::site_count`] against the site table it
    /// uses; [`BlockSummary::check_against`] compares everything with the decoded block.
    pub fn read_summary(&self, block: &BlockInfo, out: &mut BlockSummary) -> Result<bool, Error> {
        let file = self.bytes();
        let Some((at, h)) = summary::locate(file, block)? else {
            return Ok(false);
        };
        let body = h.checked_body(file, at)?;
        out.decode(body, at, block)?;
        Ok(true)
    }

    /// Tells the kernel the mapped pages of `block` (and of its summary) are not needed any
    /// more, so a scan of a file larger than memory keeps a resident size bounded by the blocks
    /// in flight.
    pub fn release(&self, block: &BlockInfo) {
        if let Source::Mapped(map) = &self.source {
            // From the start of the 64 KiB window the block's first byte lies in: a page
            // fault maps the pages around it too (the kernel's fault-around, 64 KiB by
            // default), which brings back the tail of the block before, released already.
            // Left mapped, those pages made a scan's resident size grow with the file (40 MiB
            // for 60M events instead of 27).
            let start = block.offset as usize / FAULT_AROUND * FAULT_AROUND;
            let end = match summary::locate(map, block) {
                Ok(Some((at, h))) => Ok(h.end(at) as usize),
                _ => SectionHeader::decode_at(map, block.offset)
                    .map(|h| h.end(block.offset) as usize),
            }
            .unwrap_or(start);
            if end > start {
                // SAFETY: the mapping is read-only, private and file-backed, never written
                // through: dropping its pages only makes the next access (ours or another
                // thread's, even one reading the same page right now) fault them in again from
                // the file with the same contents.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    /// Calls `f` with every event of `blocks`, in order, decoding one block at a time.
    pub fn for_each_event<'a>(
        &self,
        blocks: impl IntoIterator<Item = &'a BlockInfo>,
        mut f: impl FnMut(&Event<'_>),
    ) -> Result<(), Error> {
        let mut decoded = DecodedBlock::new();
        for b in blocks {
            self.decode_block(b, &mut decoded)?;
            self.release(b);
            decoded.events().for_each(|e| f(&e));
        }
        Ok(())
    }

    /// Every event of the file, owned. For tests and small files: memory grows with the file.
    pub fn read_all_events(&self) -> Result<Vec<OwnedEvent>, Error> {
        // The index's count is not trusted to size an allocation: the vector grows as events decode.
        let mut all = Vec::new();
        self.for_each_event(&self.blocks, |e| all.push(e.to_owned_event()))?;
        Ok(all)
    }

    /// Decodes `blocks` on the rayon thread pool (one reused [`DecodedBlock`] per worker) and
    /// returns `f`'s result per block, in the order given.
    pub fn par_map_blocks<T, F>(&self, blocks: &[BlockInfo], f: F) -> Vec<Result<T, Error>>
    where
        T: Send,
        F: Fn(&BlockInfo, &DecodedBlock) -> T + Sync,
    {
        blocks
            .par_iter()
            .map_init(DecodedBlock::new, |decoded, b| {
                self.decode_block(b, decoded)?;
                self.release(b);
                Ok(f(b, decoded))
            })
            .collect()
    }
}

/// The side tables of a trace: every entry of its `PROC`, `LOSS`, `CTNR` and `CGV1` sections
/// in file order (the file reader's and the stream reader's).
#[derive(Debug, Default)]
pub(crate) struct SideTables {
    pub processes: Vec<ProcessInfo>,
    pub losses: Vec<LossRecord>,
    pub containers: Vec<ContainerInfo>,
    pub cgroup_v1: Vec<CgroupV1Path>,
    pub aggregates: Vec<AggregatePeriod>,
}

impl SideTables {
    /// Adds the entries of the side table section at `offset` whose body is `body`; other
    /// kinds add nothing. A section that does not decode is skipped whole (FORMAT.md 7), not
    /// kept in part.
    pub fn add(&mut self, tag: Tag, body: &[u8], offset: u64) -> Result<(), Error> {
        let mut c = Cursor::new(body, offset + SECTION_HEADER_LEN as u64);
        let kept = (
            self.processes.len(),
            self.losses.len(),
            self.containers.len(),
            self.cgroup_v1.len(),
            self.aggregates.len(),
        );
        let r = match tag {
            Tag::PROCESSES => meta::decode_processes(&mut c, &mut self.processes),
            Tag::LOSSES => meta::decode_losses(&mut c, &mut self.losses),
            Tag::CONTAINERS => meta::decode_containers(&mut c, &mut self.containers),
            Tag::CGROUP_V1 => meta::decode_cgroup_v1(&mut c, &mut self.cgroup_v1),
            Tag::AGGREGATES => crate::aggregate::decode_aggregates(&mut c, &mut self.aggregates),
            _ => Ok(()),
        };
        if r.is_err() {
            self.processes.truncate(kept.0);
            self.losses.truncate(kept.1);
            self.containers.truncate(kept.2);
            self.cgroup_v1.truncate(kept.3);
            self.aggregates.truncate(kept.4);
        }
        r
    }
}

/// What is wrong, without the offset that the caller's message already names.
fn damage(e: &Error) -> String {
    match e {
        Error::ChecksumMismatch {
            stored, computed, ..
        } => {
            format!("checksum {stored:#010x}, computed {computed:#010x}")
        }
        Error::Malformed { expected, .. } => format!("expected {expected}"),
        e => e.to_string(),
    }
}

/// The next offset at or after `from` where a whole, intact section starts.
fn resync(file: &[u8], from: u64) -> Option<u64> {
    const KNOWN: [Tag; 9] = [
        Tag::HEADER,
        Tag::BLOCK,
        Tag::SUMMARY,
        Tag::PROCESSES,
        Tag::LOSSES,
        Tag::CONTAINERS,
        Tag::CGROUP_V1,
        Tag::AGGREGATES,
        Tag::INDEX,
    ];
    let last = file.len().checked_sub(SECTION_HEADER_LEN)?;
    (from as usize..=last).map(|p| p as u64).find(|&p| {
        let p_us = p as usize;
        KNOWN.iter().any(|t| file[p_us..p_us + 4] == t.0)
            && SectionHeader::decode_at(file, p)
                .and_then(|h| h.checked_body(file, p).map(|_| ()))
                .is_ok()
    })
}
