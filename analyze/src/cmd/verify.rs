//! `analyze verify`: every checksum and every structure, each problem with its offset.
//!
//! Two independent passes: a walk over the file's framing (preamble, every section header and
//! body checksum, the trailer), done here from the layout in FORMAT.md so it also sees sections
//! the index does not mention; and a decode of every block through the `format` reader, which
//! checks each block's payload structure, and the index against what the walk found.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Args;
use format::{BlockSummary, Error, TraceReader};

use crate::AppError;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 when every file is whole, 1 when any problem was found, 3 when a file is not a trace at all.\n\nExamples:\n  analyze verify capture.gsot\n  analyze verify --quiet capture-*.gsot && echo all good"
)]
pub struct VerifyArgs {
    /// Trace files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print problems only, no summary line for whole files.
    #[arg(short, long)]
    pub quiet: bool,
    /// Stop listing problems of a file after this many (the count is still reported).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_problems: usize,
}

const PREAMBLE_LEN: u64 = 16;
const SECTION_HEADER_LEN: u64 = 16;
const TRAILER_LEN: u64 = 24;
const MAX_SECTION_BODY: u64 = 256 << 20;
const END_MAGIC: &[u8; 8] = b"GSOTEND\n";
/// Every kind FORMAT.md defines (CTNR and CGV1 since 1.3, AGGR since 1.4).
const KNOWN_TAGS: [&[u8; 4]; 9] = [
    b"HEAD", b"BLCK", b"BSUM", b"PROC", b"LOSS", b"CTNR", b"CGV1", b"AGGR", b"INDX",
];

/// What the framing walk found.
#[derive(Default)]
struct Walk {
    sections: Vec<([u8; 4], u64)>,
    problems: Vec<(u64, String)>,
    /// What is not damage but worth saying: sections of kinds this reader does not know,
    /// which FORMAT.md §2 and §8 allow (a later minor version's).
    notes: Vec<(u64, String)>,
    clean_trailer: bool,
}

/// What one file is, worst last: the exit code is the worst file's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Whole,
    Damaged,
    Unreadable,
}

pub fn run(a: &VerifyArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let mut worst = Verdict::Whole;
    for p in &a.files {
        let path = p.display().to_string();
        worst = worst.max(verify_one(&path, a, out)?);
    }
    match worst {
        Verdict::Whole => Ok(()),
        Verdict::Damaged => Err(AppError::Damaged),
        Verdict::Unreadable => Err(AppError::UnreadableReported),
    }
}

fn verify_one(path: &str, a: &VerifyArgs, out: &mut dyn Write) -> Result<Verdict, AppError> {
    // A file that cannot be opened as a trace at all is the one-line error every subcommand
    // gives; verify goes on to the next file.
    let reader = match TraceReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("analyze: {path}: {e}");
            return Ok(Verdict::Unreadable);
        }
    };
    let file = File::open(path).map_err(|e| AppError::Unreadable(format!("{path}: {e}")))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut w = walk(&file, len);

    if let Some(rec) = reader.recovery() {
        push_err(&mut w.problems, &rec.reason);
        for p in &rec.problems {
            push_err(&mut w.problems, p);
        }
    } else {
        // The index must name exactly the blocks the walk found intact.
        let walked: std::collections::HashSet<u64> = w
            .sections
            .iter()
            .filter(|s| &s.0 == b"BLCK")
            .map(|s| s.1)
            .collect();
        let indexed: std::collections::HashSet<u64> =
            reader.blocks().iter().map(|b| b.offset).collect();
        for b in reader.blocks() {
            if !walked.contains(&b.offset) {
                w.problems.push((
                    b.offset,
                    "expected an intact BLCK section where the index points".into(),
                ));
            }
        }
        for &o in &walked {
            if !indexed.contains(&o) {
                w.problems.push((
                    o,
                    "expected every block to be in the index, found one that is not".into(),
                ));
            }
        }
    }

    // Decode every block in parallel: payload structure, counts, time bounds, and that its
    // summary (format 1.1) says exactly what the block says.
    let events = AtomicU64::new(0);
    let summaries = AtomicU64::new(0);
    let results = reader.par_map_blocks(reader.blocks(), |info, d| {
        let mut summary = BlockSummary::new();
        // A damaged summary costs only itself: readers fall back to the block (FORMAT.md 4.2).
        let summary_problem = match reader
            .read_summary(info, &mut summary)
            .and_then(|found| found.then(|| summary.check_against(d)).transpose())
        {
            Ok(Some(())) => {
                summaries.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(None) => None,
            Err(e) => Some((
                e.offset().unwrap_or(info.offset),
                format!(
                    "the summary (BSUM) of the block at {} is damaged and not used ({}); the block's events are readable",
                    info.offset,
                    problem_text(&e)
                ),
            )),
        };
        let mut bad = None;
        let mut n = 0u64;
        for e in d.events() {
            n += 1;
            if bad.is_none() && (e.ts_ns < info.ts_min || e.ts_ns > info.ts_max) {
                bad = Some(format!(
                    "expected event {} of the block at {}..{} ns (the block's time range), found {}",
                    n - 1,
                    info.ts_min,
                    info.ts_max,
                    e.ts_ns
                ));
            }
        }
        events.fetch_add(n, Ordering::Relaxed);
        (summary_problem, bad)
    });
    for (b, r) in reader.blocks().iter().zip(results) {
        match r {
            Ok((summary, bad)) => {
                w.problems.extend(summary);
                w.problems.extend(bad.map(|msg| (b.offset, msg)));
            }
            Err(e) => push_err(&mut w.problems, &e),
        }
    }

    w.problems.sort_by_key(|p| p.0);
    w.problems.dedup();
    let decoded = events.load(Ordering::Relaxed);
    if !a.quiet {
        for (off, msg) in &w.notes {
            writeln!(out, "{path}: note: at offset {off}: {msg}")?;
        }
    }
    if w.problems.is_empty() {
        if !a.quiet {
            let (summaries, match_) = match summaries.load(Ordering::Relaxed) {
                0 => (String::new(), ""),
                n => (
                    format!(", {n} block summaries"),
                    " the summaries match their blocks,",
                ),
            };
            writeln!(
                out,
                "{path}: ok: {} sections, {} blocks, {decoded} events{summaries}; every checksum and block structure is intact,{match_} the index matches",
                w.sections.len(),
                reader.blocks().len(),
            )?;
        }
        return Ok(Verdict::Whole);
    }
    for (off, msg) in w.problems.iter().take(a.max_problems) {
        writeln!(out, "{path}: at offset {off}: {msg}")?;
    }
    if w.problems.len() > a.max_problems {
        writeln!(
            out,
            "{path}: ... {} more problems",
            w.problems.len() - a.max_problems
        )?;
    }
    writeln!(
        out,
        "{path}: damaged: {} problems; {} of {} events in {} blocks readable{}",
        w.problems.len(),
        decoded,
        reader.event_count(),
        reader.blocks().len(),
        if w.clean_trailer {
            ""
        } else {
            "; the file has no valid trailer"
        }
    )?;
    Ok(Verdict::Damaged)
}

fn push_err(problems: &mut Vec<(u64, String)>, e: &Error) {
    problems.push((e.offset().unwrap_or(0), problem_text(e)));
}

/// An error's text without its "at offset N: " (the offset is listed as the sort key).
fn problem_text(e: &Error) -> String {
    let msg = e.to_string();
    match msg.strip_prefix("at offset ") {
        Some(rest) => rest
            .split_once(": ")
            .map_or(msg.clone(), |(_, m)| m.to_string()),
        None => msg,
    }
}

fn read_at(f: &File, off: u64, buf: &mut [u8]) -> bool {
    f.read_exact_at(buf, off).is_ok()
}

fn crc_ok(h: &[u8; 16]) -> bool {
    crc32c::crc32c(&h[..12]) == u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"))
}

/// Walks the framing from the preamble to the trailer, checking every checksum and skipping
/// over damage to the next intact section header.
fn walk(f: &File, len: u64) -> Walk {
    let mut w = Walk::default();
    let mut pre = [0u8; 16];
    if !read_at(f, 0, &mut pre) {
        w.problems
            .push((len, "expected the 16-byte preamble, the file ends".into()));
        return w;
    }
    if !crc_ok(&pre) {
        w.problems
            .push((12, "expected the preamble checksum to match".into()));
    }
    let mut off = PREAMBLE_LEN;
    let mut index_at = None;
    loop {
        if off == len {
            w.problems
                .push((off, "expected the 24-byte trailer, the file ends".into()));
            break;
        }
        if len - off == TRAILER_LEN {
            let mut t = [0u8; 24];
            if read_at(f, off, &mut t) && &t[16..24] == END_MAGIC {
                // The trailer's CRC covers bytes 0..12 and the end magic (FORMAT.md 6).
                let crc = crc32c::crc32c_append(crc32c::crc32c(&t[..12]), &t[16..24]);
                if crc != u32::from_le_bytes(t[12..16].try_into().expect("4 bytes")) {
                    w.problems
                        .push((off + 12, "expected the trailer checksum to match".into()));
                } else {
                    let idx = u64::from_le_bytes(t[..8].try_into().expect("8 bytes"));
                    if Some(idx) != index_at {
                        w.problems.push((
                            off,
                            format!("expected the trailer to point at the INDX section, found offset {idx}"),
                        ));
                    } else {
                        w.clean_trailer = true;
                    }
                }
                break;
            }
        }
        let mut h = [0u8; 16];
        if !read_at(f, off, &mut h) {
            w.problems.push((
                off,
                format!(
                    "expected a 16-byte section header, {} bytes left",
                    len - off
                ),
            ));
            break;
        }
        match check_section(f, &h, off, len) {
            Ok(end) => {
                let tag: [u8; 4] = h[..4].try_into().expect("4 bytes");
                if &tag == b"INDX" {
                    index_at = Some(off);
                }
                if !KNOWN_TAGS.contains(&&tag) {
                    w.notes.push((
                        off,
                        format!(
                            "a section of unknown kind {:?} (skipped by readers)",
                            String::from_utf8_lossy(&tag)
                        ),
                    ));
                }
                w.sections.push((tag, off));
                off = end;
            }
            Err((msg, at, resync)) => {
                w.problems.push((at, msg));
                if !resync {
                    // The header was intact: its length is trusted, skip the body.
                    let body = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as u64;
                    let end = off + SECTION_HEADER_LEN + body;
                    if end <= len {
                        off = end;
                        continue;
                    }
                }
                match next_section(f, off + 1, len) {
                    Some(n) => {
                        w.problems.push((
                            off,
                            format!(
                                "skipped {} bytes to the next intact section at {n}",
                                n - off
                            ),
                        ));
                        off = n;
                    }
                    None => break,
                }
            }
        }
    }
    w
}

/// Checks one section's header and body checksum; returns the offset after it, or the
/// problem, where it is, and whether the header itself is bad (so its length is not trusted).
fn check_section(f: &File, h: &[u8; 16], off: u64, len: u64) -> Result<u64, (String, u64, bool)> {
    if !crc_ok(h) {
        return Err((
            "expected a section header with a matching checksum".into(),
            off,
            true,
        ));
    }
    let body_len = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as u64;
    if body_len > MAX_SECTION_BODY {
        return Err((
            format!(
                "expected a section body of at most {MAX_SECTION_BODY} bytes, found {body_len}"
            ),
            off + 4,
            true,
        ));
    }
    let start = off + SECTION_HEADER_LEN;
    if start + body_len > len {
        return Err((
            format!(
                "file ends, expected a {body_len}-byte {} section body, {} bytes left",
                String::from_utf8_lossy(&h[..4]),
                len.saturating_sub(start)
            ),
            start,
            true,
        ));
    }
    // Stream the body through the checksum: no buffer sized by the file's claims.
    let mut crc = 0u32;
    let mut buf = vec![0u8; (body_len as usize).min(1 << 20)];
    let mut at = start;
    let end = start + body_len;
    while at < end {
        let n = ((end - at) as usize).min(buf.len());
        if !read_at(f, at, &mut buf[..n]) {
            return Err(("expected the section body to be readable".into(), at, false));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    let stored = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if crc != stored {
        return Err((
            format!(
                "checksum mismatch in a {} section body: stored {stored:#010x}, computed {crc:#010x}",
                String::from_utf8_lossy(&h[..4])
            ),
            start,
            false,
        ));
    }
    Ok(end)
}

/// The next offset from `from` where an intact section header of a known kind starts.
fn next_section(f: &File, from: u64, len: u64) -> Option<u64> {
    const WINDOW: u64 = 1 << 20;
    let mut base = from;
    let mut buf = vec![0u8; (WINDOW + SECTION_HEADER_LEN) as usize];
    while base + SECTION_HEADER_LEN <= len {
        let n = (len - base).min(WINDOW + SECTION_HEADER_LEN) as usize;
        if !read_at(f, base, &mut buf[..n]) {
            return None;
        }
        for i in 0..=(n - SECTION_HEADER_LEN as usize) {
            let h: &[u8; 16] = buf[i..i + 16].try_into().expect("16 bytes");
            if KNOWN_TAGS.iter().any(|t| &h[..4] == *t) && crc_ok(h) {
                let body = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as u64;
                let at = base + i as u64;
                if at + SECTION_HEADER_LEN + body <= len {
                    return Some(at);
                }
            }
        }
        base += WINDOW;
    }
    None
}
