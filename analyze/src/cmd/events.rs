//! `analyze events`: the calls, one per line, in time order.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;

use crate::AppError;
use crate::filter::{Filter, FilterArgs, Tri};
use crate::input::{self, for_each_selected, ordered_blocks, selected_blocks};
use crate::output::{EVENT_FIELDS, EventFormat, EventWriter, FileCtx, TimeMode};

fn fields_help() -> String {
    let mut s = String::from(
        "Text lines: TIME COMM[PID/TID] getsockopt(FD, LEVEL, OPTION, VALUE, OPTLEN_IN => OPTLEN_OUT) = RET <DURATION>\n\
         A failed call shows the buffer address instead of a value; a value decoded only in part ends with '...'.\n\n\
         JSON and CSV fields (stable names; --fields picks and orders them):\n",
    );
    for (name, what) in EVENT_FIELDS {
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
    let inputs = input::open_all(&a.files)?;
    let span = input::span(&inputs);
    let filter = Filter::new(&a.filter, span)?;
    let multi = inputs.len() > 1;
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
    if multi && overlap {
        // Interleaved files: merge event by event.
        let ctxs: Vec<_> = inputs
            .iter()
            .map(|i| {
                let ff = filter.for_file(&i.reader);
                FileCtx {
                    path: &i.path,
                    boot_to_wall: i.reader.header().boot_to_wall_ns,
                    rel_base: ff.rel_base,
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
        };
        let blocks = selected_blocks(&inp.reader, &ff);
        // Each block is formatted on a worker thread; `ends` marks where each event's text
        // ends so --limit can cut exactly.
        let flow = ordered_blocks(
            inp,
            &blocks,
            |_, d| {
                let mut text = String::new();
                let mut ends = Vec::new();
                let mut verdicts: Vec<Tri> = Vec::new();
                for_each_selected(d, &ff, &mut verdicts, |_, e| {
                    w.write(&mut text, e, &ctx);
                    ends.push(text.len());
                });
                (text, ends)
            },
            |(text, ends): (String, Vec<usize>)| -> Result<_, AppError> {
                if (ends.len() as u64) < left {
                    out.write_all(text.as_bytes())?;
                    left -= ends.len() as u64;
                    return Ok(ControlFlow::Continue(()));
                }
                let cut = ends[left as usize - 1];
                out.write_all(&text.as_bytes()[..cut])?;
                left = 0;
                Ok(ControlFlow::Break(()))
            },
        )?;
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}
