//! Opening trace files and reading their blocks: damage reporting, block selection by time,
//! ordered parallel decoding, and the merge of several files into one stream in time order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use format::{BlockInfo, DecodedBlock, Error, OwnedEvent, TraceReader};

use crate::AppError;
use crate::filter::{FileFilter, Filter, Span, Tri};

/// Set when anything was skipped because a file is damaged: the process then exits with 1.
static DAMAGED: AtomicBool = AtomicBool::new(false);

pub fn damaged() -> bool {
    DAMAGED.load(Ordering::Relaxed)
}

/// Says on stderr what was skipped and remembers that the output is partial.
pub fn report_skip(path: &str, what: &str) {
    DAMAGED.store(true, Ordering::Relaxed);
    eprintln!("analyze: {path}: {what}");
}

/// One opened input file.
pub struct Input {
    pub path: String,
    pub reader: TraceReader,
}

/// The error for a file that cannot be read at all.
pub fn unreadable(path: &str, e: &Error) -> AppError {
    AppError::Unreadable(format!("{path}: {e}"))
}

/// Opens every file; any file that cannot be opened is an error. A file read by scanning
/// (no valid index at its end) is reported on stderr with everything the scan skipped.
pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Input>, AppError> {
    if paths.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(AppError::usage(
            "`-` (standard input) can be given once".to_string(),
        ));
    }
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        out.push(open(p)?);
    }
    Ok(out)
}

pub fn open(p: &Path) -> Result<Input, AppError> {
    let (path, reader) = if is_stdin(p) {
        // Read to its end, then like a file held in memory: what waits for the end anyway
        // (info, stats, verify, ...) needs nothing else. `events -` streams instead.
        let mut bytes = Vec::new();
        stdin()?.read_to_end(&mut bytes)?;
        let r = TraceReader::from_bytes(bytes).map_err(|e| unreadable(STDIN, &e))?;
        (STDIN.to_string(), r)
    } else {
        let path = p.display().to_string();
        let r = TraceReader::open(p).map_err(|e| unreadable(&path, &e))?;
        (path, r)
    };
    if let Some(rec) = reader.recovery() {
        report_skip(
            &path,
            &format!(
                "damaged: {}; read {} events in {} blocks by scanning up to offset {}",
                rec.reason,
                reader.event_count(),
                reader.blocks().len(),
                rec.stopped_at
            ),
        );
        for p in &rec.problems {
            report_skip(&path, &format!("skipped: {p}"));
        }
    }
    Ok(Input { path, reader })
}

/// How messages name the input `-`.
pub const STDIN: &str = "standard input";

/// Whether `p` names standard input (`-`).
pub fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Standard input for reading a trace; a terminal is refused (a trace is binary, and reading
/// one would wait for typing).
pub fn stdin() -> Result<std::io::StdinLock<'static>, AppError> {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(AppError::usage(
            "`-` reads a trace from standard input, which is a terminal: pipe one in \
             (`recorder record -o - | analyze events -`)"
                .to_string(),
        ));
    }
    Ok(stdin.lock())
}

pub fn span(inputs: &[Input]) -> Span {
    let readers: Vec<&TraceReader> = inputs.iter().map(|i| &i.reader).collect();
    Span::of(&readers)
}

/// The blocks of a file that may hold events in the filter's time range, from the index.
pub fn selected_blocks(r: &TraceReader, ff: &FileFilter<'_>) -> Vec<BlockInfo> {
    r.blocks_in_range(ff.from, ff.last).copied().collect()
}

/// Reports a block that could not be decoded.
pub fn report_block(path: &str, b: &BlockInfo, e: &Error) {
    report_skip(
        path,
        &format!(
            "skipped the block at offset {} ({} events): {e}",
            b.offset, b.event_count
        ),
    );
}

/// Decodes `blocks` in parallel, a few at a time, and hands `f`'s results to `sink` in block
/// order until `sink` breaks. Memory is bounded by the results of one batch.
pub fn ordered_blocks<T, F, S, E>(
    input: &Input,
    blocks: &[BlockInfo],
    f: F,
    mut sink: S,
) -> Result<ControlFlow<()>, E>
where
    T: Send,
    F: Fn(&BlockInfo, &DecodedBlock) -> T + Sync,
    S: FnMut(T) -> Result<ControlFlow<()>, E>,
{
    let batch = (rayon::current_num_threads() * 2).max(2);
    for chunk in blocks.chunks(batch) {
        for (b, r) in chunk.iter().zip(input.reader.par_map_blocks(chunk, &f)) {
            match r {
                Ok(v) => {
                    if sink(v)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Err(e) => report_block(&input.path, b, &e),
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// [`ordered_blocks`] for a sink that takes every block.
pub fn all_blocks<T, F, S, E>(
    input: &Input,
    blocks: &[BlockInfo],
    f: F,
    mut sink: S,
) -> Result<(), E>
where
    T: Send,
    F: Fn(&BlockInfo, &DecodedBlock) -> T + Sync,
    S: FnMut(T) -> Result<(), E>,
{
    ordered_blocks(input, blocks, f, |v| sink(v).map(ControlFlow::Continue)).map(drop)
}

/// Calls `f(site_index, event)` for each event of a decoded block that passes the filter.
#[inline]
pub fn for_each_selected<'d>(
    d: &'d DecodedBlock,
    ff: &FileFilter<'_>,
    verdicts: &mut Vec<Tri>,
    mut f: impl FnMut(u32, &format::Event<'d>),
) {
    ff.site_verdicts(d.sites(), d.threads(), d.sockets(), verdicts);
    let sites = d.sites();
    let threads = d.threads();
    for (si, e) in d.site_indexes().zip(d.events()) {
        let v = verdicts[si as usize];
        if v == Tri::No {
            continue;
        }
        let s = &sites[si as usize];
        let t = &threads[s.thread as usize];
        if ff.event_passes(v, s, t, d.sockets(), e.ts_ns, e.duration_ns) {
            f(si, &e);
        }
    }
}

/// The order in which to read several files: by the time of their first event. Returns
/// whether their time ranges overlap (then events must be merged one by one).
pub fn time_order(inputs: &[Input]) -> (Vec<usize>, bool) {
    let range = |i: &Input| {
        let b2w = i.reader.header().boot_to_wall_ns;
        let bs = i.reader.blocks().iter().filter(|b| b.event_count > 0);
        let lo = bs
            .clone()
            .map(|b| b.ts_min)
            .min()
            .map(|t| crate::filter::to_wall(t, b2w));
        let hi = bs
            .map(|b| b.ts_max)
            .max()
            .map(|t| crate::filter::to_wall(t, b2w));
        (lo.unwrap_or(i64::MAX), hi.unwrap_or(i64::MIN))
    };
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| (range(&inputs[i]).0, i));
    let overlap = order.windows(2).any(|w| {
        let a = range(&inputs[w[0]]);
        let b = range(&inputs[w[1]]);
        a.1 >= b.0 && b.0 != i64::MAX
    });
    (order, overlap)
}

/// One file's position in a k-way merge: the selected events of its current block, owned.
struct Cursor<'a> {
    input: &'a Input,
    ff: FileFilter<'a>,
    blocks: Vec<BlockInfo>,
    next_block: usize,
    events: Vec<OwnedEvent>,
    pos: usize,
    decoded: DecodedBlock,
    verdicts: Vec<Tri>,
}

impl Cursor<'_> {
    /// Makes sure `events[pos]` exists, decoding further blocks as needed; false at the end.
    fn fill(&mut self) -> bool {
        while self.pos >= self.events.len() {
            let Some(b) = self.blocks.get(self.next_block).copied() else {
                return false;
            };
            self.next_block += 1;
            self.events.clear();
            self.pos = 0;
            match self.input.reader.decode_block(&b, &mut self.decoded) {
                Ok(()) => {
                    self.input.reader.release(&b);
                    let events = &mut self.events;
                    for_each_selected(&self.decoded, &self.ff, &mut self.verdicts, |_, e| {
                        events.push(e.to_owned_event())
                    });
                }
                Err(e) => report_block(&self.input.path, &b, &e),
            }
        }
        true
    }
}

/// Merges the selected events of several files into one stream in time order (ties keep file
/// order) and calls `f(file_index, event)` for each until `f` breaks. Memory: one decoded
/// block per file.
pub fn merge_events<E>(
    inputs: &[Input],
    filter: &Filter,
    mut f: impl FnMut(usize, &format::Event<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<ControlFlow<()>, E> {
    let mut cursors: Vec<Cursor<'_>> = inputs
        .iter()
        .map(|input| {
            let ff = filter.for_file(&input.reader);
            let blocks = selected_blocks(&input.reader, &ff);
            Cursor {
                input,
                ff,
                blocks,
                next_block: 0,
                events: Vec::new(),
                pos: 0,
                decoded: DecodedBlock::new(),
                verdicts: Vec::new(),
            }
        })
        .collect();
    let wall = |c: &Cursor<'_>| {
        crate::filter::to_wall(
            c.events[c.pos].ts_ns,
            c.input.reader.header().boot_to_wall_ns,
        )
    };
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if c.fill() {
            heap.push(Reverse((wall(c), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = &mut cursors[i];
        if f(i, &c.events[c.pos].as_event())?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        c.pos += 1;
        if c.fill() {
            heap.push(Reverse((wall(c), i)));
        }
    }
    Ok(ControlFlow::Continue(()))
}
