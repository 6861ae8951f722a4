//! `analyze events`: the calls, one per line, in time order.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;

use crate::AppError;
use format::{BlockInfo, DecodedBlock, StreamEnd, StreamItem, StreamReader};

use crate::attr::Attributor;
use crate::filter::{FileFilter, Filter, FilterArgs, Span, Tri, to_wall};
use crate::input::{self, for_each_selected, ordered_blocks, selected_blocks};
use crate::output::{EventFormat, EventWriter, FileCtx, TimeMode, all_fields};

fn fields_help() -> String {
    let mut s = String::from(
        "Text lines: TIME COMM[PID/TID] getsockopt(FD<SOCKET>, LEVEL, OPTION, VALUE, OPTLEN_IN => OPTLEN_OUT) = RET <DURATION>\n\
         SOCKET, when the capture recorded it, is strace -yy style: <TCP:[10.0.0.5:40312->10.0.0.7:5432]>, <TCPv6:[[::1]:8080]>,\n\
         <UDP:[0.0.0.0:5353]>, <UNIX:[/run/app.sock]> (@name when abstract), <NETLINK:[ROUTE:812]>; the socket fields are null when it did not.\n\
         A failed call shows the buffer address instead of a value; a value decoded only in part ends with '...'.\n\n\
         JSON and CSV fields (stable names; --fields picks and orders them):\n",
    );
    for (name, what) in all_fields() {
        s.push_str(&format!("  {name:<16} {what}\n"));
    }
    s.push_str(
        "\nExamples:\n  analyze events cap.gsot --comm 'ngin*' --optname TCP_INFO\n  analyze events cap.gsot --where 'errno == EINVAL' --format json | jq .value\n  analyze events cap.gsot --format csv --fields time,pid,comm,optname_name,duration_ns,errno",
    );
    s
}

#[derive(Args, Debug)]
#[command(after_help = fields_help())]
pub struct EventsArgs {
    /// Trace files; several files (a rotated capture) are read as one stream in time order.
    /// `-` alone reads a trace from standard input as it arrives and prints each block's calls
    /// at once (`recorder record -o - | analyze events -`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    pub format: EventFormat,
    /// How the text format shows time (JSON and CSV always carry `time` in RFC 3339 UTC).
    #[arg(long, value_enum, default_value_t = TimeMode::Wall)]
    pub time: TimeMode,
    /// JSON/CSV fields to write, comma-separated (default: all).
    #[arg(long, value_name = "FIELD,...")]
    pub fields: Option<String>,
    /// Stop after this many events.
    #[arg(short = 'n', long, value_name = "N")]
    pub limit: Option<u64>,
}

pub fn run(a: &EventsArgs, out: &mut dyn Write) -> Result<(), AppError> {
    if let [only] = &a.files[..]
        && input::is_stdin(only)
    {
        return run_stream(a, out);
    }
    let inputs = input::open_all(&a.files)?;
    let span = input::span(&inputs);
    let filter = Filter::new(&a.filter, span)?;
    let multi = inputs.len() > 1;
    for i in &inputs {
        let note = crate::sampled::events_note(&i.path, i.reader.header(), i.reader.aggregates());
        note.into_iter().for_each(|n| eprintln!("analyze: {n}"));
    }
    let w =
        EventWriter::new(a.format, a.time, a.fields.as_deref(), multi).map_err(AppError::usage)?;
    if let Some(h) = w.header() {
        out.write_all(h.as_bytes())?;
    }
    let mut left = a.limit.unwrap_or(u64::MAX);
    if left == 0 {
        return Ok(());
    }
    let (order, overlap) = input::time_order(&inputs);
    let attrs: Vec<Attributor> = inputs.iter().map(|i| Attributor::new(&i.reader)).collect();
    if multi && overlap {
        // Interleaved files: merge event by event.
        let ctxs: Vec<_> = inputs
            .iter()
            .zip(&attrs)
            .map(|(i, attr)| {
                let ff = filter.for_file(&i.reader);
                FileCtx {
                    path: &i.path,
                    boot_to_wall: i.reader.header().boot_to_wall_ns,
                    rel_base: ff.rel_base,
                    attr,
                }
            })
            .collect();
        let mut line = String::new();
        let _limit_reached =
            input::merge_events(&inputs, &filter, |fi, e| -> Result<_, AppError> {
                line.clear();
                w.write(&mut line, e, &ctxs[fi]);
                out.write_all(line.as_bytes())?;
                left -= 1;
                Ok(if left == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
        return Ok(());
    }
    for &fi in &order {
        let inp = &inputs[fi];
        let ff = filter.for_file(&inp.reader);
        let ctx = FileCtx {
            path: &inp.path,
            boot_to_wall: inp.reader.header().boot_to_wall_ns,
            rel_base: ff.rel_base,
            attr: &attrs[fi],
        };
        let blocks = selected_blocks(&inp.reader, &ff);
        let limit = left;
        let flow = ordered_blocks(
            inp,
            &blocks,
            |info, d| (*info, render_piece(d, &ff, &w, &ctx, 0, limit)),
            |(info, piece): (BlockInfo, Piece)| -> Result<_, AppError> {
                if write_piece(out, &piece, &mut left)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                let Some(next) = piece.resume else {
                    return Ok(ControlFlow::Continue(()));
                };
                // The rest of a block whose text is more than a piece (a payload can inflate
                // far beyond its file size: FORMAT.md 9), decoded again here while the
                // workers are idle, and dropped when written.
                let mut d = DecodedBlock::new();
                if let Err(e) = inp.reader.decode_block(&info, &mut d) {
                    input::report_block(&inp.path, &info, &e);
                    return Ok(ControlFlow::Continue(()));
                }
                inp.reader.release(&info);
                write_from(out, &d, &ff, &w, &ctx, next, &mut left)
            },
        )?;
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

/// `events -`: each block's calls written and flushed as soon as the block arrives, so a
/// capture piped in shows its calls within the recorder's flush interval. Memory: one block.
fn run_stream(a: &EventsArgs, out: &mut dyn Write) -> Result<(), AppError> {
    use input::STDIN;
    for t in [&a.filter.since, &a.filter.until].into_iter().flatten() {
        if t.trim().starts_with('-') {
            return Err(AppError::usage(format!(
                "{t:?} counts back from the end of the capture, which a stream read as it \
                 arrives has not reached: count from its start (+10s) or give a wall time"
            )));
        }
    }
    let mut r = StreamReader::try_new(input::stdin()?).map_err(|e| input::unreadable(STDIN, &e))?;
    let b2w = r.header().boot_to_wall_ns;
    let span = Span {
        start_wall: to_wall(r.header().start_ts_ns, b2w),
        end_wall: i64::MAX,
    };
    let filter = Filter::new(&a.filter, span)?;
    if let Some(n) = crate::sampled::events_note(STDIN, r.header(), &[]) {
        eprintln!("analyze: {n}");
    }
    let w =
        EventWriter::new(a.format, a.time, a.fields.as_deref(), false).map_err(AppError::usage)?;
    if let Some(h) = w.header() {
        out.write_all(h.as_bytes())?;
    }
    let mut left = a.limit.unwrap_or(u64::MAX);
    if left == 0 {
        return Ok(());
    }
    let tables = |r: &StreamReader<_>| {
        Attributor::of_side_tables(r.processes(), r.containers(), r.cgroup_v1_paths())
    };
    // Both made again when a side table grows: what the blocks after it need.
    let mut attr = tables(&r);
    let mut ff = filter.for_parts(r.header(), || tables(&r));
    let mut d = DecodedBlock::new();
    while let Some(item) = r.next(&mut d)? {
        match item {
            StreamItem::Block(b) => {
                if b.event_count == 0 || b.ts_max < ff.from || b.ts_min > ff.last {
                    continue;
                }
                let ctx = FileCtx {
                    path: STDIN,
                    boot_to_wall: b2w,
                    rel_base: ff.rel_base,
                    attr: &attr,
                };
                if write_from(out, &d, &ff, &w, &ctx, 0, &mut left)?.is_break() {
                    return Ok(());
                }
                out.flush()?;
            }
            StreamItem::SideTable => {
                attr = tables(&r);
                if filter.uses_cgroup_paths {
                    ff = filter.for_parts(r.header(), || tables(&r));
                }
            }
            StreamItem::Skipped(e) => input::report_skip(STDIN, &format!("skipped: {e}")),
        }
    }
    match r.end() {
        Some(StreamEnd::Finished) | None => {}
        Some(StreamEnd::Unfinished) => input::report_skip(
            STDIN,
            &format!(
                "the stream ended at offset {} without its index (its writer stopped before \
                 finishing it); every complete block was read",
                r.offset()
            ),
        ),
        Some(StreamEnd::Cut(e)) => input::report_skip(
            STDIN,
            &format!("the stream was cut: {e}; every complete block before it was read"),
        ),
    }
    Ok(())
}

/// Most text one block's events are rendered into before it is written out.
const PIECE_BYTES: usize = 1 << 20;

/// Some of one block's selected events as text; `ends` marks where each event's text ends
/// so --limit can cut exactly.
struct Piece {
    text: String,
    ends: Vec<usize>,
    /// When more selected events follow: how many of the block's selected events come
    /// before them.
    resume: Option<u64>,
}

/// Renders the block's selected events from the `skip`th on, stopping after `max` events or
/// once the text reaches [`PIECE_BYTES`].
fn render_piece(
    d: &DecodedBlock,
    ff: &FileFilter<'_>,
    w: &EventWriter,
    ctx: &FileCtx<'_>,
    skip: u64,
    max: u64,
) -> Piece {
    let mut p = Piece {
        text: String::new(),
        ends: Vec::new(),
        resume: None,
    };
    let (mut seen, mut full) = (0u64, false);
    let mut verdicts: Vec<Tri> = Vec::new();
    for_each_selected(d, ff, &mut verdicts, |_, e| {
        seen += 1;
        if seen <= skip || p.resume.is_some() {
            return;
        }
        if full {
            p.resume = Some(seen - 1);
            return;
        }
        w.write(&mut p.text, e, ctx);
        p.ends.push(p.text.len());
        full = p.text.len() >= PIECE_BYTES || p.ends.len() as u64 >= max;
    });
    p
}

/// Writes a decoded block's selected events from the `next`th on, a piece at a time, counting
/// them off `left`; breaks when `left` reaches 0.
fn write_from(
    out: &mut dyn Write,
    d: &DecodedBlock,
    ff: &FileFilter<'_>,
    w: &EventWriter,
    ctx: &FileCtx<'_>,
    mut next: u64,
    left: &mut u64,
) -> Result<ControlFlow<()>, AppError> {
    loop {
        let piece = render_piece(d, ff, w, ctx, next, *left);
        if write_piece(out, &piece, left)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        match piece.resume {
            Some(n) => next = n,
            None => return Ok(ControlFlow::Continue(())),
        }
    }
}

/// Writes a piece, or its first `left` events; counts them off `left`.
fn write_piece(
    out: &mut dyn Write,
    p: &Piece,
    left: &mut u64,
) -> Result<ControlFlow<()>, AppError> {
    if (p.ends.len() as u64) < *left {
        out.write_all(p.text.as_bytes())?;
        *left -= p.ends.len() as u64;
        return Ok(ControlFlow::Continue(()));
    }
    let cut = p.ends[*left as usize - 1];
    out.write_all(&p.text.as_bytes()[..cut])?;
    *left = 0;
    Ok(ControlFlow::Break(()))
}
