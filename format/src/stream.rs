//! [`StreamReader`]: reads a trace from a source that cannot seek (a pipe), section by section
//! as it arrives, the way FORMAT.md 7 scans a file (FORMAT.md 2.3 says how a stream ends).

use std::io::{self, Read};

use crate::block::{BlockHeader, DecodedBlock};
use crate::meta::{self, CaptureHeader, CgroupV1Path, ContainerInfo, LossRecord, ProcessInfo};
use crate::reader::{BlockInfo, SideTables};
use crate::section::{self, PREAMBLE_LEN, SECTION_HEADER_LEN, SectionHeader, TRAILER_LEN, Tag};
use crate::wire::Cursor;
use crate::{Error, VERSION_MAJOR};

/// How a stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// With its index and trailer, as a finished file ends: the writer finished it.
    Finished,
    /// At a section boundary, without an index: the writer stopped before finishing.
    Unfinished,
    /// In the middle of something (the error names the offset and what was missing), or at a
    /// damaged section header, which a reader that cannot look ahead does not search past.
    Cut(Error),
}

/// What [`StreamReader::next`] found.
#[derive(Debug)]
pub enum StreamItem {
    /// A block, decoded into the caller's [`DecodedBlock`].
    Block(BlockInfo),
    /// A side table section (`PROC`, `LOSS`, `CTNR`, `CGV1`): one of the tables grew.
    SideTable,
    /// A section that was skipped, and why (a failed checksum, a block or side table that does
    /// not decode, a second `HEAD`). The stream goes on after it.
    Skipped(Error),
}

/// Reads a trace as it arrives. Memory: one section body at a time (at most 256 MiB, grown as
/// the bytes actually arrive) and the decoded block the caller lends.
pub struct StreamReader<R: Read> {
    src: R,
    offset: u64,
    version: (u16, u16),
    header: CaptureHeader,
    side: SideTables,
    body: Vec<u8>,
    end: Option<StreamEnd>,
}

impl<R: Read> StreamReader<R> {
    /// Reads the preamble and the `HEAD` section: a stream without them is refused whole, as a
    /// file is (FORMAT.md 2.1).
    pub fn try_new(mut src: R) -> Result<StreamReader<R>, Error> {
        let mut preamble = Vec::with_capacity(PREAMBLE_LEN);
        (&mut src)
            .take(PREAMBLE_LEN as u64)
            .read_to_end(&mut preamble)?;
        if preamble.is_empty() {
            return Err(Error::truncated(
                0,
                "the 8-byte trace file magic (the stream is empty)",
            ));
        }
        let version = section::decode_preamble(&preamble)?;
        debug_assert_eq!(version.0, VERSION_MAJOR);
        let mut r = StreamReader {
            src,
            offset: PREAMBLE_LEN as u64,
            version,
            header: CaptureHeader::default(),
            side: SideTables::default(),
            body: Vec::new(),
            end: None,
        };
        let at = r.offset;
        let h = match r.read_header()? {
            Ok(Some(h)) => h,
            Ok(None) => return Err(Error::truncated(at, "a 16-byte section header")),
            Err(e) => return Err(e),
        };
        if h.tag != Tag::HEADER {
            return Err(Error::malformed(
                at,
                format!("the HEAD section, found {}", h.tag.name()),
            ));
        }
        let body_at = r.read_body(&h)?;
        h.check_body(&r.body, body_at)?;
        r.header = meta::decode_header(&mut Cursor::new(&r.body, body_at))?;
        Ok(r)
    }

    /// The next block or side table, waiting for it to arrive; `Ok(None)` once the stream has
    /// ended ([`StreamReader::end`] says how). An `Err` is an I/O error of the source.
    pub fn next(&mut self, out: &mut DecodedBlock) -> io::Result<Option<StreamItem>> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            let at = self.offset;
            let h = match self.read_header()? {
                Ok(Some(h)) => h,
                Ok(None) => {
                    self.end = Some(StreamEnd::Unfinished);
                    continue;
                }
                Err(e) => {
                    self.end = Some(StreamEnd::Cut(e));
                    continue;
                }
            };
            let body_at = match self.read_body(&h) {
                Ok(b) => b,
                Err(Error::Io(e)) => return Err(e),
                Err(e) => {
                    self.end = Some(StreamEnd::Cut(e));
                    continue;
                }
            };
            if matches!(h.tag, Tag::SUMMARY) {
                continue;
            }
            if let Err(e) = h.check_body(&self.body, body_at) {
                return Ok(Some(StreamItem::Skipped(e)));
            }
            match h.tag {
                Tag::BLOCK => {
                    let info = BlockHeader::decode(&self.body, body_at).and_then(|b| {
                        out.decode(&self.body, at, body_at)?;
                        Ok(BlockInfo {
                            offset: at,
                            event_count: b.event_count,
                            ts_min: b.ts_min,
                            ts_max: b.ts_max,
                        })
                    });
                    return Ok(Some(match info {
                        Ok(info) => StreamItem::Block(info),
                        Err(e) => StreamItem::Skipped(e),
                    }));
                }
                Tag::PROCESSES
                | Tag::LOSSES
                | Tag::CONTAINERS
                | Tag::CGROUP_V1
                | Tag::AGGREGATES => {
                    let r = self.side.add(h.tag, &self.body, at);
                    return Ok(Some(match r {
                        Ok(()) => StreamItem::SideTable,
                        Err(e) => StreamItem::Skipped(e),
                    }));
                }
                Tag::HEADER => {
                    let e = Error::malformed(at, "one HEAD section only, found a second");
                    return Ok(Some(StreamItem::Skipped(e)));
                }
                Tag::INDEX => self.read_trailer(at)?,
                // A kind of a later minor version (FORMAT.md 8).
                _ => {}
            }
        }
    }

    /// After the `INDX` section at `index_at`: its trailer, then the end of the stream.
    fn read_trailer(&mut self, index_at: u64) -> io::Result<()> {
        let at = self.offset;
        let mut t = Vec::with_capacity(TRAILER_LEN);
        (&mut self.src)
            .take(TRAILER_LEN as u64)
            .read_to_end(&mut t)?;
        self.offset += t.len() as u64;
        let Ok(t) = <[u8; TRAILER_LEN]>::try_from(&t[..]) else {
            self.end = Some(StreamEnd::Cut(Error::truncated(at, "the 24-byte trailer")));
            return Ok(());
        };
        let end = match section::decode_trailer_at(&t, at) {
            Ok(i) if i == index_at => match self.src.read(&mut [0u8; 1])? {
                0 => StreamEnd::Finished,
                _ => StreamEnd::Cut(Error::malformed(
                    self.offset,
                    "the end of the stream after its trailer, found more bytes",
                )),
            },
            Ok(i) => StreamEnd::Cut(Error::malformed(
                at,
                format!("a trailer naming the index at {index_at}, found {i}"),
            )),
            Err(e) => StreamEnd::Cut(e),
        };
        self.end = Some(end);
        Ok(())
    }

    /// The next section header: `Ok(Ok(None))` at a clean end of the stream, `Ok(Err)` when it
    /// is cut or damaged.
    fn read_header(&mut self) -> io::Result<Result<Option<SectionHeader>, Error>> {
        let at = self.offset;
        let mut h = [0u8; SECTION_HEADER_LEN];
        let n = read_full(&mut self.src, &mut h)?;
        self.offset += n as u64;
        Ok(match n {
            0 => Ok(None),
            SECTION_HEADER_LEN => SectionHeader::decode(&h, at).map(Some),
            _ => Err(Error::truncated(at, "a 16-byte section header")),
        })
    }

    /// Reads the body of `h` into `self.body`; returns the body's offset.
    fn read_body(&mut self, h: &SectionHeader) -> Result<u64, Error> {
        let body_at = self.offset;
        self.body.clear();
        // Grown as the bytes arrive, never reserved from the untrusted length.
        (&mut self.src)
            .take(h.body_len as u64)
            .read_to_end(&mut self.body)?;
        self.offset += self.body.len() as u64;
        if self.body.len() < h.body_len as usize {
            return Err(Error::truncated(
                body_at,
                format!(
                    "a {}-byte {} section body, {} bytes left",
                    h.body_len,
                    h.tag.name(),
                    self.body.len()
                ),
            ));
        }
        Ok(body_at)
    }

    /// The format version of the stream: (major, minor).
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    pub fn header(&self) -> &CaptureHeader {
        &self.header
    }

    /// The process table so far.
    pub fn processes(&self) -> &[ProcessInfo] {
        &self.side.processes
    }

    /// The loss records so far.
    pub fn losses(&self) -> &[LossRecord] {
        &self.side.losses
    }

    /// The container table so far (since 1.3).
    pub fn containers(&self) -> &[ContainerInfo] {
        &self.side.containers
    }

    /// The cgroup v1 paths so far (since 1.3).
    pub fn cgroup_v1_paths(&self) -> &[CgroupV1Path] {
        &self.side.cgroup_v1
    }

    /// The aggregate records so far (since 1.4).
    pub fn aggregates(&self) -> &[crate::AggregatePeriod] {
        &self.side.aggregates
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The source, for what it read beyond the trace (or a copy of the trace it kept).
    pub fn into_inner(self) -> R {
        self.src
    }

    /// How the stream ended, once [`StreamReader::next`] has returned `Ok(None)`.
    pub fn end(&self) -> Option<&StreamEnd> {
        self.end.as_ref()
    }
}

/// Fills `buf` unless the source ends first; returns the bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OwnedEvent, TraceReader, TraceWriter, WriterOptions};

    fn trace(blocks: u32) -> Vec<u8> {
        let opts = WriterOptions {
            max_block_events: 3,
            ..WriterOptions::default()
        };
        let mut w = TraceWriter::try_new(Vec::new(), &CaptureHeader::default(), opts).unwrap();
        for i in 0..blocks * 3 {
            let e = OwnedEvent {
                ts_ns: 1000 + i as u64,
                fd: i as i32,
                ..OwnedEvent::default()
            };
            w.write(&e.as_event()).unwrap();
        }
        w.finish().unwrap()
    }

    /// Every block's fds, and how the stream ended.
    fn read(bytes: &[u8]) -> (Vec<i32>, StreamEnd) {
        let mut r = StreamReader::try_new(bytes).unwrap();
        let mut d = DecodedBlock::new();
        let mut fds = Vec::new();
        while let Some(item) = r.next(&mut d).unwrap() {
            if let StreamItem::Block(_) = item {
                fds.extend(d.events().map(|e| e.fd));
            }
        }
        (fds, r.end.take().unwrap())
    }

    #[test]
    fn a_whole_stream_reads_like_the_file() {
        let bytes = trace(4);
        let (fds, end) = read(&bytes);
        assert!(matches!(end, StreamEnd::Finished), "{end:?}");
        let file: Vec<i32> = TraceReader::from_bytes(bytes)
            .unwrap()
            .read_all_events()
            .unwrap()
            .iter()
            .map(|e| e.fd)
            .collect();
        assert_eq!(fds, file);
        assert_eq!(fds, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn a_cut_stream_yields_every_complete_block() {
        let bytes = trace(4);
        let reader = TraceReader::from_bytes(bytes.clone()).unwrap();
        let third = reader.blocks()[2].offset as usize;
        // Cut inside the third block's section: the first two blocks remain.
        let (fds, end) = read(&bytes[..third + 20]);
        assert_eq!(fds, (0..6).collect::<Vec<_>>());
        match end {
            StreamEnd::Cut(Error::Truncated { offset, .. }) => {
                assert_eq!(offset, third as u64 + 16)
            }
            e => panic!("{e:?}"),
        }
        // Cut at a section boundary: unfinished, nothing missing.
        let (fds, end) = read(&bytes[..third]);
        assert_eq!(fds.len(), 6);
        assert!(matches!(end, StreamEnd::Unfinished), "{end:?}");
    }

    #[test]
    fn an_empty_stream_is_refused() {
        let e = StreamReader::try_new(&[][..]).err().unwrap();
        assert!(e.to_string().contains("the stream is empty"), "{e}");
    }
}
