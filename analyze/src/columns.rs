//! Reading only the front of a block: its thread and site tables and the time, duration and
//! site columns, which is all a grouping or counting query needs.
//!
//! A block's payload is one zstd frame laid out (FORMAT.md 4.1) as threads, sites, ts_delta,
//! duration, site, then the pointer columns and the value bytes. Those last three are most of
//! the payload; zstd decompresses a frame front to back, so stopping after the site column
//! skips most of the decompression. `format` has no API for this yet (requested), so this
//! follows the spec directly: it checks the section and body CRCs and every table index as
//! `format` does, and any block it cannot read this way is read through `format` instead, which
//! then gives the proper error.

use std::fs::File;
use std::os::unix::fs::FileExt;

use format::{BlockInfo, Site, ThreadEntry};
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

const SECTION_HEADER_LEN: usize = 16;
const BLOCK_HEADER_LEN: usize = 24;
const THREAD_LEN: usize = 52;
const SITE_LEN: usize = 36;
/// The format's limits (FORMAT.md 2.2 and 4).
const MAX_SECTION_BODY: usize = 256 << 20;
const MAX_BLOCK_EVENTS: usize = 1 << 20;

/// A block's front columns, reused from block to block.
#[derive(Default)]
pub struct Front {
    pub threads: Vec<ThreadEntry>,
    pub sites: Vec<Site>,
    /// Decompressed payload prefix.
    raw: Vec<u8>,
    body: Vec<u8>,
    ts_at: usize,
    dur_at: usize,
    site_at: usize,
    pub len: usize,
    decoder: Option<Decoder<'static>>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Front {
    /// Reads the front of `block` from `file`. `None` when anything is not as the spec says
    /// (the caller then reads the block through `format`, which reports why).
    pub fn read(&mut self, file: &File, block: &BlockInfo) -> Option<()> {
        self.read_to(file, block, true)
    }

    /// Reads only the thread and site tables of `block` (the columns are left empty): what a
    /// question answered from the block's summary needs.
    pub fn read_tables(&mut self, file: &File, block: &BlockInfo) -> Option<()> {
        self.read_to(file, block, false)
    }

    fn read_to(&mut self, file: &File, block: &BlockInfo, columns: bool) -> Option<()> {
        self.len = 0;
        let mut h = [0u8; SECTION_HEADER_LEN];
        file.read_exact_at(&mut h, block.offset).ok()?;
        if &h[..4] != b"BLCK" || crc32c::crc32c(&h[..12]) != u32_at(&h, 12) {
            return None;
        }
        let body_len = u32_at(&h, 4) as usize;
        if !(BLOCK_HEADER_LEN..=MAX_SECTION_BODY).contains(&body_len) {
            return None;
        }
        // The body's length is covered by the header CRC and the file holds it (the reader
        // checked when it listed the block), so this buffer is sized by checked data.
        self.body.resize(body_len, 0);
        file.read_exact_at(&mut self.body, block.offset + SECTION_HEADER_LEN as u64)
            .ok()?;
        if crc32c::crc32c(&self.body) != u32_at(&h, 8) {
            return None;
        }
        let n = u32_at(&self.body, 0) as usize;
        let raw_len = u32_at(&self.body, 4) as usize;
        if n != block.event_count as usize || n > MAX_BLOCK_EVENTS {
            return None;
        }
        if self.decoder.is_none() {
            self.decoder = Some(Decoder::new().ok()?);
        }
        let dec = self.decoder.as_mut().expect("set above");
        dec.reinit().ok()?;
        let frame = &self.body[BLOCK_HEADER_LEN..];
        let mut input = InBuffer::around(frame);
        // Decompress just as far as needed: first the two table lengths, then the columns.
        // `raw[..filled]` is this block's; the buffer only grows, so it is zeroed once, not
        // once per block.
        let mut filled = 0;
        let mut need = 8;
        let mut stage = 0;
        loop {
            while filled < need {
                let want = (need - filled).max(64 << 10);
                let end = filled + want.min(raw_len.saturating_sub(filled).max(1));
                if self.raw.len() < end {
                    self.raw.resize(end, 0);
                }
                let mut out = OutBuffer::around(&mut self.raw[filled..end]);
                let before = input.pos();
                dec.run(&mut input, &mut out).ok()?;
                let wrote = out.pos();
                filled += wrote;
                if wrote == 0 && input.pos() == before {
                    return None; // the frame ended before the columns did
                }
            }
            match stage {
                0 => {
                    let t = u64_at(&self.raw, 0) as usize;
                    if t > raw_len / THREAD_LEN {
                        return None;
                    }
                    need = 8 + t * THREAD_LEN + 8;
                    stage = 1;
                }
                1 => {
                    let t_end = need - 8;
                    let s = u64_at(&self.raw, t_end) as usize;
                    if s > raw_len / SITE_LEN {
                        return None;
                    }
                    self.ts_at = need + s * SITE_LEN + 8;
                    self.dur_at = self.ts_at + 8 * n + 8;
                    self.site_at = self.dur_at + 8 * n + 8;
                    if self.site_at + 4 * n > raw_len {
                        return None;
                    }
                    need = if columns {
                        self.site_at + 4 * n
                    } else {
                        self.ts_at - 8
                    };
                    stage = 2;
                }
                _ => break,
            }
        }
        let raw = &self.raw;
        let nt = u64_at(raw, 0) as usize;
        let ns = u64_at(raw, 8 + nt * THREAD_LEN) as usize;
        if columns {
            for at in [self.ts_at, self.dur_at, self.site_at] {
                if u64_at(raw, at - 8) as usize != n {
                    return None;
                }
            }
        }
        self.threads.clear();
        for i in 0..nt {
            let b = &raw[8 + i * THREAD_LEN..][..THREAD_LEN];
            self.threads.push(ThreadEntry {
                tgid: u32_at(b, 0),
                tid: u32_at(b, 4),
                ppid: u32_at(b, 8),
                uid: u32_at(b, 12),
                gid: u32_at(b, 16),
                comm: b[20..36].try_into().expect("16 bytes"),
                cgroup_id: u64_at(b, 36),
                pid_ns: u32_at(b, 44),
                mnt_ns: u32_at(b, 48),
            });
        }
        self.sites.clear();
        let sites_at = 8 + nt * THREAD_LEN + 8;
        for i in 0..ns {
            let b = &raw[sites_at + i * SITE_LEN..][..SITE_LEN];
            let thread = u32_at(b, 0);
            if thread as usize >= nt {
                return None;
            }
            self.sites.push(Site {
                thread,
                cpu: u32_at(b, 4),
                fd: u32_at(b, 8) as i32,
                level: u32_at(b, 12) as i32,
                optname: u32_at(b, 16) as i32,
                optlen_in: u32_at(b, 20) as i32,
                optlen_out: u32_at(b, 24) as i32,
                ret: u32_at(b, 28) as i32,
                flags: u16::from_le_bytes([b[32], b[33]]),
                value_len: u16::from_le_bytes([b[34], b[35]]),
            });
        }
        if !columns {
            return Some(());
        }
        self.len = n;
        if self.site_indexes().any(|s| s as usize >= ns) {
            self.len = 0;
            return None;
        }
        Some(())
    }

    pub fn site_indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.raw[self.site_at..self.site_at + 4 * self.len]
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| u32::from_le_bytes(*b))
    }

    pub fn durations(&self) -> impl Iterator<Item = u64> + '_ {
        self.raw[self.dur_at..self.dur_at + 8 * self.len]
            .as_chunks::<8>()
            .0
            .iter()
            .map(|b| u64::from_le_bytes(*b))
    }

    /// Event timestamps (the running sum of the deltas, modulo 2^64).
    pub fn timestamps(&self) -> impl Iterator<Item = u64> + '_ {
        let mut ts = 0u64;
        self.raw[self.ts_at..self.ts_at + 8 * self.len]
            .as_chunks::<8>()
            .0
            .iter()
            .map(move |b| {
                ts = ts.wrapping_add(u64::from_le_bytes(*b));
                ts
            })
    }
}
