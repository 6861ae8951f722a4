//! `BSUM` sections (format 1.1, `FORMAT.md` section 4.2): the durations of a block's events,
//! grouped by call site and sorted, written right after the block.
//!
//! Most questions asked of a trace are about sites and durations only: how many calls per
//! process and option, how many failed, how slow they were, how many took longer than some
//! threshold. A site carries every field but the time, the pointers and the value, so with
//! the block's site table and this section such a question needs neither the block's columns
//! nor its values, which are nearly all of its bytes. Sorted per site, the durations cost
//! about one byte per event after compression, and a threshold or a percentile is a search.

use crate::block::DecodedBlock;
use crate::section::{SECTION_HEADER_LEN, SectionHeader, Tag};
use crate::wire::put_varint_at;
use crate::{BlockInfo, Error};

/// Bytes before the zstd frame: block offset, event count, site count, raw length.
pub(crate) const SUMMARY_FIXED_LEN: usize = 20;

/// Builds a block's summary at block close, reusing its buffers from block to block.
#[derive(Default)]
pub(crate) struct SummaryEncoder {
    starts: Vec<u32>,
    sorted: Vec<u64>,
    narrow: Vec<u32>,
    /// (site << 32 | duration) pairs, two buffers for the radix passes.
    pairs: [Vec<u64>; 2],
    raw: Vec<u8>,
    pub frame: Vec<u8>,
}

/// Scatters the durations into one run per site (`starts` holds the runs' starts, then their
/// ends), sorts each run and writes the site's count and sorted deltas to `raw` as varints.
/// `raw` has room for 9 bytes per number; returns the bytes written. For blocks with a
/// duration over 32 bits (4.3 s), which are rare.
fn put_runs_wide(
    starts: &mut [u32],
    sites: &[[u8; 4]],
    durations: &[[u8; 8]],
    sorted: &mut Vec<u64>,
    raw: &mut [u8],
) -> usize {
    let site_count = starts.len() - 1;
    // Only grown, never cleared: every element is written before it is read.
    if sorted.len() < sites.len() {
        sorted.resize(sites.len(), 0);
    }
    // `starts[i]` walks forward as site i's durations are placed, ending at `starts[i+1]`.
    let next = &mut starts[..site_count];
    for (s, d) in sites.iter().zip(durations) {
        let at = &mut next[u32::from_le_bytes(*s) as usize];
        sorted[*at as usize] = u64::from_le_bytes(*d);
        *at += 1;
    }
    let mut begin = 0;
    for &end in next.iter() {
        sorted[begin..end as usize].sort_unstable();
        begin = end as usize;
    }
    put_sorted_runs(next, sorted, raw)
}

/// Bits per radix digit: 2,048 counters per pass stay in the L1 cache.
const RADIX_BITS: u32 = 11;
/// Passes for 32-bit durations.
const RADIX_PASSES: usize = 3;

/// [`put_runs_wide`] for durations that fit in 32 bits, without sorting each run: the events
/// are sorted by duration with a least-significant-digit radix sort (one pass per 11 bits the
/// largest duration has), then scattered by site, which keeps that order within each site.
fn put_runs_radix(
    enc: &mut SummaryEncoder,
    sites: &[[u8; 4]],
    durations: &[[u8; 8]],
    high: u32,
    counts: &mut [[u32; 1 << RADIX_BITS]; RADIX_PASSES],
) -> usize {
    let SummaryEncoder {
        starts,
        narrow: sorted,
        pairs,
        raw,
        ..
    } = enc;
    let n = sites.len();
    let site_count = starts.len() - 1;
    let passes = (32 - high.leading_zeros()).div_ceil(RADIX_BITS) as usize;
    // Only grown, never cleared: every element is written before it is read.
    for buf in pairs.iter_mut() {
        if buf.len() < n {
            buf.resize(n, 0);
        }
    }
    if sorted.len() < n {
        sorted.resize(n, 0);
    }
    let mask = (1u64 << RADIX_BITS) - 1;
    for count in counts.iter_mut().take(passes) {
        let mut at = 0u32;
        for c in count.iter_mut() {
            (*c, at) = (at, at + *c);
        }
    }
    let [a, b] = pairs;
    let (mut src, mut dst) = (&mut a[..n], &mut b[..n]);
    // The first pass reads the columns; the pairs it writes carry the site along.
    let pair =
        |s: &[u8; 4], d: &[u8; 8]| (u32::from_le_bytes(*s) as u64) << 32 | u64::from_le_bytes(*d);
    if passes == 0 {
        for (i, (s, d)) in sites.iter().zip(durations).enumerate() {
            src[i] = pair(s, d);
        }
    } else {
        let count = &mut counts[0];
        for (s, d) in sites.iter().zip(durations) {
            let pair = pair(s, d);
            let slot = &mut count[(pair & mask) as usize];
            src[*slot as usize] = pair;
            *slot += 1;
        }
    }
    for (p, count) in counts.iter_mut().enumerate().take(passes).skip(1) {
        let shift = RADIX_BITS as usize * p;
        for &pair in src.iter() {
            // The duration's digit only: the site's bits start at 32, inside the third digit.
            let slot = &mut count[((pair as u32 as u64 >> shift) & mask) as usize];
            dst[*slot as usize] = pair;
            *slot += 1;
        }
        std::mem::swap(&mut src, &mut dst);
    }
    // By site, keeping the duration order: `starts[i]` walks to the end of run i.
    let next = &mut starts[..site_count];
    for &pair in src.iter() {
        let at = &mut next[(pair >> 32) as usize];
        sorted[*at as usize] = pair as u32;
        *at += 1;
    }
    put_sorted_runs(&starts[..site_count], sorted, raw)
}

/// Writes each site's count and sorted duration deltas (runs laid out in order, `ends[i]`
/// the end of run i) as varints; returns the bytes written.
fn put_sorted_runs<T: Copy + Into<u64>>(ends: &[u32], sorted: &[T], raw: &mut [u8]) -> usize {
    let mut begin = 0usize;
    let mut at = 0usize;
    for &end in ends {
        let run = &sorted[begin..end as usize];
        put_varint_at(raw, &mut at, run.len() as u64);
        let mut prev = 0u64;
        for &d in run {
            let d: u64 = d.into();
            put_varint_at(raw, &mut at, d - prev);
            prev = d;
        }
        begin = end as usize;
    }
    at
}

impl SummaryEncoder {
    /// Encodes the summary of a block of `site_count` sites whose site and duration columns
    /// (little-endian `u32`s and `u64`s, one per event) are given. Returns the fixed part of
    /// the body; the zstd frame that follows it is left in `self.frame`.
    pub fn encode(
        &mut self,
        block_offset: u64,
        site_count: usize,
        site_column: &[u8],
        duration_column: &[u8],
        compressor: &mut zstd::bulk::Compressor<'static>,
    ) -> Result<[u8; SUMMARY_FIXED_LEN], Error> {
        let sites = site_column.as_chunks::<4>().0;
        let durations = duration_column.as_chunks::<8>().0;
        debug_assert_eq!(sites.len(), durations.len());
        let n = sites.len();
        // Counting sort by site: each site's durations become one contiguous run.
        self.starts.clear();
        self.starts.resize(site_count + 1, 0);
        let mut high = 0u64;
        // Also the counts of the radix sort's first two digits (22 bits, 4 ms: nearly every
        // getsockopt), in the same pass; the third's only when a duration needs it.
        let mask = (1u64 << RADIX_BITS) - 1;
        let mut counts = [[0u32; 1 << RADIX_BITS]; RADIX_PASSES];
        let [first, second, third] = &mut counts;
        for (s, d) in sites.iter().zip(durations) {
            self.starts[u32::from_le_bytes(*s) as usize + 1] += 1;
            let d = u64::from_le_bytes(*d);
            high |= d;
            first[(d & mask) as usize] += 1;
            second[((d >> RADIX_BITS) & mask) as usize] += 1;
        }
        if high >> (2 * RADIX_BITS) != 0 && high <= u32::MAX as u64 {
            for d in durations {
                third[((u64::from_le_bytes(*d) >> (2 * RADIX_BITS)) & mask) as usize] += 1;
            }
        }
        for i in 0..site_count {
            self.starts[i + 1] += self.starts[i];
        }
        // Only grown: every byte compressed below is written first.
        let room = 9 * (n + site_count);
        if self.raw.len() < room {
            self.raw.resize(room, 0);
        }
        // Durations nearly always fit in 32 bits (4.3 s): then they are radix-sorted, with no
        // sort per site.
        let raw_len = if high <= u32::MAX as u64 {
            put_runs_radix(self, sites, durations, high as u32, &mut counts)
        } else {
            put_runs_wide(
                &mut self.starts,
                sites,
                durations,
                &mut self.sorted,
                &mut self.raw,
            )
        };
        let raw = &self.raw[..raw_len];
        crate::block::clear_with_room(&mut self.frame, zstd::zstd_safe::compress_bound(raw.len()));
        compressor.compress_to_buffer(raw, &mut self.frame)?;
        let mut fixed = [0u8; SUMMARY_FIXED_LEN];
        fixed[0..8].copy_from_slice(&block_offset.to_le_bytes());
        fixed[8..12].copy_from_slice(&(n as u32).to_le_bytes());
        fixed[12..16].copy_from_slice(&(site_count as u32).to_le_bytes());
        fixed[16..20].copy_from_slice(&(raw_len as u32).to_le_bytes());
        Ok(fixed)
    }
}

/// One block's durations by call site, read from its `BSUM` section with
/// [`TraceReader::read_summary`](crate::TraceReader::read_summary). Reuse one per thread: it
/// keeps its buffers from block to block.
#[derive(Default)]
pub struct BlockSummary {
    /// Run boundaries: site `i`'s durations are `durations[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    durations: Vec<u64>,
    raw: Vec<u8>,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    offset: u64,
}

impl std::fmt::Debug for BlockSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSummary")
            .field("offset", &self.offset)
            .field("sites", &self.site_count())
            .field("events", &self.event_count())
            .finish()
    }
}

/// The fixed fields of a `BSUM` body, checked against the block it describes.
struct Fixed {
    events: usize,
    sites: usize,
    raw_len: usize,
}

/// Checks the fixed fields before the frame: they must name `block` and its event count, and
/// bound the site count and the payload's length by that (checked) count.
fn check_fixed(body: &[u8], body_offset: u64, block: &BlockInfo) -> Result<Fixed, Error> {
    if body.len() < SUMMARY_FIXED_LEN {
        return Err(Error::truncated(
            body_offset,
            format!(
                "a block summary of at least {SUMMARY_FIXED_LEN} bytes, found {}",
                body.len()
            ),
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4"));
    let block_offset = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let event_count = u32_at(8);
    let site_count = u32_at(12) as usize;
    let raw_len = u32_at(16) as usize;
    if block_offset != block.offset {
        return Err(Error::malformed(
            body_offset,
            format!(
                "a summary of the block at offset {}, found one of offset {block_offset}",
                block.offset
            ),
        ));
    }
    if event_count != block.event_count {
        return Err(Error::malformed(
            body_offset + 8,
            format!(
                "the block's event count {}, found {event_count}",
                block.event_count
            ),
        ));
    }
    let n = event_count as usize;
    // Every site has at least one event, and every count and duration takes 1 to 9 bytes:
    // so neither length can exceed what the block's own (checked) event count allows.
    if site_count > n {
        return Err(Error::malformed(
            body_offset + 12,
            format!("at most {n} sites (one per event), found {site_count}"),
        ));
    }
    if raw_len < n + site_count || raw_len > 9 * (n + site_count) {
        return Err(Error::malformed(
            body_offset + 16,
            format!(
                "a raw length of {} to {} bytes for {n} events at {site_count} sites, found {raw_len}",
                n + site_count,
                9 * (n + site_count)
            ),
        ));
    }
    Ok(Fixed {
        events: n,
        sites: site_count,
        raw_len,
    })
}

fn payload_error(frame_offset: u64, at: usize, what: &str) -> Error {
    Error::malformed(
        frame_offset,
        format!("in the summary payload at {at}: {what}"),
    )
}

/// Decodes one run of `count` sorted durations starting at `raw[*at]` (the first duration,
/// then the deltas) into `out[..count]`; `out` has 8 slots of room past the run, which may
/// be written. An error is the payload position and what was expected there.
#[inline]
fn decode_run(
    raw: &[u8],
    at: &mut usize,
    out: &mut [u64],
    count: usize,
) -> Result<(), (usize, &'static str)> {
    // The first delta is the duration itself, often a longer varint; sorted durations differ
    // by little, so nearly every later delta is one byte.
    let mut d = varint(raw, at).ok_or((*at, "a duration"))?;
    out[0] = d;
    let mut i = 1;
    while i < count {
        // Up to 8 one-byte deltas at once when the next 8 bytes start no longer varint (a
        // first byte of 251 or more: top bit set, and the low 7 bits plus 5 carry into bit
        // 7). All 8 running sums are written: slots past the run are written again by the
        // next run, or are the room past the last event.
        if let Some(word) = raw.get(*at..*at + 8)
            && d <= u64::MAX - 8 * 255
        {
            let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let take = (count - i).min(8);
            let mask = if take == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * take)) - 1
            };
            let long = (x & 0x7f7f_7f7f_7f7f_7f7f).wrapping_add(0x0505_0505_0505_0505)
                & x
                & 0x8080_8080_8080_8080;
            if long & mask == 0 {
                let mut sum = d;
                for (k, slot) in out[i..i + 8].iter_mut().enumerate() {
                    sum += (x >> (8 * k)) & 0xff;
                    *slot = sum;
                }
                d = out[i + take - 1];
                i += take;
                *at += take;
                continue;
            }
        }
        let delta = match raw.get(*at) {
            Some(&b) if b < 251 => {
                *at += 1;
                b as u64
            }
            _ => varint(raw, at).ok_or((*at, "a duration"))?,
        };
        d = d
            .checked_add(delta)
            .ok_or((*at, "durations that fit in 64 bits"))?;
        out[i] = d;
        i += 1;
    }
    Ok(())
}

impl BlockSummary {
    pub fn new() -> BlockSummary {
        BlockSummary::default()
    }

    /// Number of sites: the same as the block's site table, which the caller must check
    /// against the table it uses ([`TraceReader::read_summary`](crate::TraceReader::read_summary)
    /// checks the event count, not the site table, which it does not decompress).
    pub fn site_count(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn event_count(&self) -> usize {
        self.starts.last().map_or(0, |&end| end as usize)
    }

    /// File offset of the `BSUM` section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The durations (ns) of the events at site `site` of the block, in ascending order.
    /// Panics if `site >= site_count()`.
    pub fn site_durations(&self, site: usize) -> &[u64] {
        &self.durations[self.starts[site] as usize..self.starts[site + 1] as usize]
    }

    /// Decodes a `BSUM` body found at `section_offset`, which must describe `block`. After an
    /// error the summary is empty.
    pub(crate) fn decode(
        &mut self,
        body: &[u8],
        section_offset: u64,
        block: &BlockInfo,
    ) -> Result<(), Error> {
        self.decode_inner(body, section_offset, block)
            .inspect_err(|_| {
                self.starts.clear();
                self.durations.clear();
            })
    }

    fn decode_inner(
        &mut self,
        body: &[u8],
        section_offset: u64,
        block: &BlockInfo,
    ) -> Result<(), Error> {
        self.offset = section_offset;
        self.starts.clear();
        let body_offset = section_offset + SECTION_HEADER_LEN as u64;
        let fixed = check_fixed(body, body_offset, block)?;
        let frame_offset = body_offset + SUMMARY_FIXED_LEN as u64;
        self.decompress(&body[SUMMARY_FIXED_LEN..], frame_offset, fixed.raw_len)?;
        self.decode_runs(fixed.events, fixed.sites, frame_offset)
    }

    /// Decompresses the payload into `self.raw`, which must come out `raw_len` bytes long.
    fn decompress(&mut self, frame: &[u8], frame_offset: u64, raw_len: usize) -> Result<(), Error> {
        if self.dctx.is_none() {
            self.dctx = Some(zstd::bulk::Decompressor::new()?);
        }
        let dctx = self.dctx.as_mut().expect("set above");
        self.raw.clear();
        crate::block::exactly_one_frame(frame, frame_offset)?;
        // raw_len is bounded by the event count (at most 18 MiB, see check_fixed), so
        // reserving it is safe.
        self.raw.reserve(raw_len);
        dctx.decompress_to_buffer(frame, &mut self.raw)
            .map_err(|e| Error::Decompress {
                offset: frame_offset,
                message: e.to_string(),
            })?;
        if self.raw.len() != raw_len {
            return Err(Error::malformed(
                frame_offset,
                format!(
                    "a zstd frame of {raw_len} bytes, it decompressed to {}",
                    self.raw.len()
                ),
            ));
        }
        Ok(())
    }

    /// Decodes the `site_count` runs of the payload, `n` durations in all, into
    /// `self.durations` and `self.starts`.
    fn decode_runs(&mut self, n: usize, site_count: usize, frame_offset: u64) -> Result<(), Error> {
        self.starts.reserve(site_count + 1);
        self.starts.push(0);
        let raw = &self.raw[..];
        let mut at = 0usize;
        // Filled in place: `filled` durations are written so far (n is the block's checked
        // count). The buffer only grows, so it is zeroed once, not once per block; `starts`
        // says what in it is this block's.
        // It has 8 slots of room past the last event, for decode_run's word-wide writes.
        if self.durations.len() < n + 8 {
            self.durations.resize(n + 8, 0);
        }
        let mut filled = 0usize;
        let bad = |at: usize, what: &str| payload_error(frame_offset, at, what);
        for _ in 0..site_count {
            let count = varint(raw, &mut at).ok_or_else(|| bad(at, "a run length"))?;
            if count == 0 || count > (n - filled) as u64 {
                return Err(bad(
                    at,
                    &format!("a run of 1 to {} events, found {count}", n - filled),
                ));
            }
            let count = count as usize;
            decode_run(raw, &mut at, &mut self.durations[filled..], count)
                .map_err(|(at, what)| bad(at, what))?;
            filled += count;
            self.starts.push(filled as u32);
        }
        if filled != n {
            return Err(bad(
                at,
                &format!("runs adding up to {n} events, found {filled}"),
            ));
        }
        if at != raw.len() {
            return Err(bad(at, "the end of the payload"));
        }
        Ok(())
    }

    /// Checks that this summary says exactly what `block` (decoded from the block it
    /// summarises) says: the same sites, and at each the same durations.
    pub fn check_against(&self, block: &DecodedBlock) -> Result<(), Error> {
        let mismatch = |what: String| Error::malformed(self.offset, what);
        if self.site_count() != block.sites().len() {
            return Err(mismatch(format!(
                "a summary of {} sites (the block's), found {}",
                block.sites().len(),
                self.site_count()
            )));
        }
        // The block's runs, built the way the writer builds them, compared run by run.
        let mut per_site: Vec<Vec<u64>> = vec![Vec::new(); block.sites().len()];
        for (s, e) in block.site_indexes().zip(block.events()) {
            per_site[s as usize].push(e.duration_ns);
        }
        for (i, mut run) in per_site.into_iter().enumerate() {
            run.sort_unstable();
            if run != self.site_durations(i) {
                return Err(mismatch(format!(
                    "at site {i}, the block's {} durations; the summary's {} differ",
                    run.len(),
                    self.site_durations(i).len()
                )));
            }
        }
        Ok(())
    }
}

/// A standard-config varint at `*at`; `None` when the bytes end or the first byte is invalid.
#[inline(always)]
fn varint(raw: &[u8], at: &mut usize) -> Option<u64> {
    let first = *raw.get(*at)?;
    let (v, len) = match first {
        b @ 0..=250 => (b as u64, 1),
        251 => (
            u16::from_le_bytes(raw.get(*at + 1..*at + 3)?.try_into().ok()?) as u64,
            3,
        ),
        252 => (
            u32::from_le_bytes(raw.get(*at + 1..*at + 5)?.try_into().ok()?) as u64,
            5,
        ),
        253 => (
            u64::from_le_bytes(raw.get(*at + 1..*at + 9)?.try_into().ok()?),
            9,
        ),
        _ => return None,
    };
    *at += len;
    Some(v)
}

/// Where a block's summary is, and its section header: the section right after the block, if
/// that is a `BSUM`. `Ok(None)` when there is none (a 1.0 file, or a file cut right after the
/// block).
pub(crate) fn locate(
    file: &[u8],
    block: &BlockInfo,
) -> Result<Option<(u64, SectionHeader)>, Error> {
    let h = SectionHeader::decode_at(file, block.offset)?;
    let next = h.end(block.offset);
    match SectionHeader::decode_at(file, next) {
        Ok(s) if s.tag == Tag::SUMMARY => Ok(Some((next, s))),
        // No section, another kind, or a damaged header: in each case no summary to use; the
        // block itself is unaffected, and a scan or `verify` reports the damage.
        _ => Ok(None),
    }
}
