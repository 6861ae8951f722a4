//! Reading only the front of a block: its thread and site tables, and if asked the time,
//! duration and site columns. That is all a question about sites, durations and times needs
//! (grouping, counting, filtering on anything but values and pointers).
//!
//! A block's payload is one zstd frame laid out (FORMAT.md 4.1) as threads, sites, time
//! delta, duration, site index, then the pointer columns and the value bytes. Those last three
//! are most of the payload, and zstd decompresses a frame front to back, so stopping after
//! the site column skips most of the decompression. Everything read is checked as
//! [`DecodedBlock`](crate::DecodedBlock) checks it: the section and body checksums, every
//! length, every thread and site index, and that the body is one zstd frame and nothing
//! after it. The rest of the frame's content is not looked at: its damage is for a whole
//! decode or `verify` to find.

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use crate::block::{
    BLOCK_HEADER_LEN, BlockHeader, SITE_ENTRY_LEN, Site, THREAD_ENTRY_LEN, ThreadEntry,
    decode_tables, payload_error,
};
use crate::error::Error;
use crate::socket::{SOCKET_MIN_LEN, Socket};

/// How much of a block [`TraceReader::read_block_front`](crate::TraceReader::read_block_front)
/// reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontParts {
    /// The thread and site tables only (with a block summary, enough for durations by site).
    Tables,
    /// The tables and the time delta, duration and site index columns.
    TablesAndTimes,
    /// All of `TablesAndTimes` and the block's sockets (FORMAT.md 4.3), which follow the
    /// values: the whole frame is decompressed, but the pointer columns and values are only
    /// skipped over.
    TablesTimesAndSockets,
}

/// The front of one block. Reuse one per thread: it keeps its buffers from block to block.
#[derive(Default)]
pub struct BlockFront {
    dctx: Option<Decoder<'static>>,
    /// `raw[..filled]` is this block's payload prefix; the buffer only grows, so it is zeroed
    /// once, not once per block.
    raw: Vec<u8>,
    threads: Vec<ThreadEntry>,
    sites: Vec<Site>,
    /// The socket table, after [`FrontParts::TablesTimesAndSockets`] (else empty, and every
    /// site's socket [`Site::SOCKET_NOT_RECORDED`]).
    sockets: Vec<Socket>,
    /// Events in the columns read (0 when only the tables were).
    len: usize,
    /// Start within `raw` of the time delta, duration and site index columns.
    col_start: [usize; 3],
}

impl std::fmt::Debug for BlockFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockFront")
            .field("threads", &self.threads.len())
            .field("sites", &self.sites.len())
            .field("len", &self.len)
            .finish()
    }
}

impl BlockFront {
    pub fn new() -> BlockFront {
        BlockFront::default()
    }

    /// The block's thread table.
    pub fn threads(&self) -> &[ThreadEntry] {
        &self.threads
    }

    /// The block's call site table.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The block's socket table (read with [`FrontParts::TablesTimesAndSockets`] only).
    pub fn sockets(&self) -> &[Socket] {
        &self.sockets
    }

    /// Number of events in the columns read: the block's event count after
    /// [`FrontParts::TablesAndTimes`], 0 after [`FrontParts::Tables`].
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn column<const W: usize>(&self, i: usize) -> &[[u8; W]] {
        &self.raw[self.col_start[i]..][..self.len * W]
            .as_chunks::<W>()
            .0[..self.len]
    }

    /// Event timestamps, boot-time ns (the running sum of the time deltas, modulo 2^64).
    pub fn timestamps(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        let mut ts = 0u64;
        self.column::<8>(0).iter().map(move |b| {
            ts = ts.wrapping_add(u64::from_le_bytes(*b));
            ts
        })
    }

    /// Event durations, ns.
    pub fn durations(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.column::<8>(1).iter().map(|b| u64::from_le_bytes(*b))
    }

    /// Each event's index into [`BlockFront::sites`] (checked to be in range).
    pub fn site_indexes(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.column::<4>(2).iter().map(|b| u32::from_le_bytes(*b))
    }

    /// Decodes the front of a block section body (block header + zstd frame) whose checksums
    /// the caller has checked. After an error the front is empty.
    pub(crate) fn decode(
        &mut self,
        body: &[u8],
        body_offset: u64,
        parts: FrontParts,
    ) -> Result<(), Error> {
        self.decode_inner(body, body_offset, parts)
            .inspect_err(|_| {
                self.threads.clear();
                self.sites.clear();
                self.sockets.clear();
                self.len = 0;
            })
    }

    fn decode_inner(
        &mut self,
        body: &[u8],
        body_offset: u64,
        parts: FrontParts,
    ) -> Result<(), Error> {
        self.len = 0;
        self.sockets.clear();
        let h = BlockHeader::decode(body, body_offset)?;
        let (n, raw_len) = (h.event_count as usize, h.raw_len as usize);
        let frame = &body[BLOCK_HEADER_LEN..];
        let frame_offset = body_offset + BLOCK_HEADER_LEN as u64;
        // The same check as a whole decode, so `stats` and `events` agree on which blocks are
        // damaged (FORMAT.md 4); it walks the frame's block headers, decompressing nothing.
        crate::block::exactly_one_frame(frame, frame_offset)?;
        let err = |at: usize, what: String| payload_error(frame_offset, at, what);
        let dz = |e: std::io::Error| Error::Decompress {
            offset: frame_offset,
            message: e.to_string(),
        };
        if self.dctx.is_none() {
            self.dctx = Some(Decoder::new().map_err(dz)?);
        }
        let mut stream = Stream {
            dec: self.dctx.as_mut().expect("set above"),
            input: InBuffer::around(frame),
            raw: &mut self.raw,
            filled: 0,
            raw_len,
            frame_offset,
        };
        stream.dec.reinit().map_err(dz)?;
        // A table's u64 length, checked against the room the payload has left after it.
        let table_len = |s: &Stream<'_>, at: usize, what: &str, width: usize| {
            let len = u64::from_le_bytes(s.raw[at..at + 8].try_into().expect("8 bytes"));
            let room = (raw_len.saturating_sub(at + 8) / width) as u64;
            if len > room {
                return Err(err(
                    at,
                    format!("a {what} length of at most {room}, found {len}"),
                ));
            }
            Ok(len as usize)
        };
        stream.fill_to(8)?;
        let n_threads = table_len(&stream, 0, "thread table", THREAD_ENTRY_LEN)?;
        let sites_len_at = 8 + n_threads * THREAD_ENTRY_LEN;
        stream.fill_to(sites_len_at + 8)?;
        let n_sites = table_len(&stream, sites_len_at, "site table", SITE_ENTRY_LEN)?;
        let tables_end = sites_len_at + 8 + n_sites * SITE_ENTRY_LEN;
        let mut col_start = [0usize; 3];
        let mut at = tables_end;
        let columns = [("time delta", 8), ("duration", 8), ("site index", 4)];
        if parts != FrontParts::Tables {
            for (start, (_, width)) in col_start.iter_mut().zip(columns) {
                *start = at + 8;
                at = *start + n * width;
            }
            if at > raw_len {
                return Err(err(
                    tables_end,
                    format!(
                        "{n} events of time, duration and site after the tables, found {} bytes",
                        raw_len - tables_end
                    ),
                ));
            }
        }
        let with_sockets = parts == FrontParts::TablesTimesAndSockets;
        stream.fill_to(if with_sockets { raw_len } else { at })?;
        let raw = &self.raw[..at];
        decode_tables(
            raw,
            (8, n_threads),
            (sites_len_at + 8, n_sites),
            &mut self.threads,
            &mut self.sites,
            frame_offset,
        )?;
        if parts == FrontParts::Tables {
            return Ok(());
        }
        for (&start, (what, _)) in col_start.iter().zip(columns) {
            let len = u64::from_le_bytes(raw[start - 8..start].try_into().expect("8 bytes"));
            if len != n as u64 {
                return Err(err(
                    start - 8,
                    format!("the {what} column to hold {n} elements, found {len}"),
                ));
            }
        }
        self.col_start = col_start;
        self.len = n;
        let bad = self
            .site_indexes()
            .enumerate()
            .find(|&(_, s)| s as usize >= n_sites);
        if let Some((i, s)) = bad {
            return Err(err(
                col_start[2] + 4 * i,
                format!("a site index below {n_sites}, found {s}"),
            ));
        }
        if with_sockets {
            self.read_sockets(at, n, raw_len, frame_offset)?;
        }
        Ok(())
    }

    /// Skips the pointer columns and the values that start at `at` and reads the socket table
    /// and site socket column after them, if the block has them.
    fn read_sockets(
        &mut self,
        mut at: usize,
        n: usize,
        raw_len: usize,
        frame_offset: u64,
    ) -> Result<(), Error> {
        let raw = &self.raw[..raw_len];
        let err = |at: usize, what: String| payload_error(frame_offset, at, what);
        for (what, width) in [
            ("optval delta column", 8),
            ("optlen delta column", 8),
            ("value bytes", 1),
        ] {
            let len = raw
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            let room = (raw_len.saturating_sub(at + 8) / width) as u64;
            match len {
                Some(len) if len <= room && (width == 1 || len == n as u64) => {
                    at += 8 + len as usize * width
                }
                _ => return Err(err(at, format!("the length of the {what}"))),
            }
        }
        if at == raw_len {
            return Ok(());
        }
        let len = u64::from_le_bytes(
            raw.get(at..at + 8)
                .ok_or_else(|| err(at, "the length of the socket table".into()))?
                .try_into()
                .expect("8 bytes"),
        );
        let room = (raw_len - at - 8) / SOCKET_MIN_LEN;
        if len > room as u64 {
            return Err(err(
                at,
                format!("a socket table length of at most {room}, found {len}"),
            ));
        }
        crate::block::decode_sockets(
            raw,
            at + 8,
            len as usize,
            &mut self.sockets,
            &mut self.sites,
        )
        .map_err(|(at, what)| err(at, what))
    }
}

/// A frame decompressed as far as asked.
struct Stream<'a> {
    dec: &'a mut Decoder<'static>,
    input: InBuffer<'a>,
    raw: &'a mut Vec<u8>,
    filled: usize,
    raw_len: usize,
    frame_offset: u64,
}

impl Stream<'_> {
    /// Decompresses until the first `need` payload bytes are in `raw` (`need` is at most the
    /// header's `raw_len`, checked by the caller).
    fn fill_to(&mut self, need: usize) -> Result<(), Error> {
        while self.filled < need {
            // Grow with what the frame has really produced (at most doubling it, in steps of at
            // least 64 KiB), never to a size only the header announces (a hostile event count
            // would otherwise size the buffer), and never past the payload's declared end.
            let end = (self.filled * 2)
                .max(self.filled + (64 << 10))
                .min(need)
                .min(self.raw_len);
            if self.raw.len() < end {
                self.raw.resize(end, 0);
            }
            let mut out = OutBuffer::around(&mut self.raw[self.filled..end]);
            let before = self.input.pos();
            self.dec
                .run(&mut self.input, &mut out)
                .map_err(|e| Error::Decompress {
                    offset: self.frame_offset,
                    message: e.to_string(),
                })?;
            let wrote = out.pos();
            self.filled += wrote;
            if wrote == 0 && self.input.pos() == before {
                return Err(payload_error(
                    self.frame_offset,
                    self.filled,
                    format!("a zstd frame of {} bytes, it ended", self.raw_len),
                ));
            }
        }
        Ok(())
    }
}
