//! `analyze replay`: the events of a recording written to stdout at the pace they were
//! recorded (or faster), so a tool built for live input can consume a recording.
//!
//! Each line is flushed before waiting for the next event's time, so a reader sees it when
//! it is due. Ctrl-C stops between two lines (never inside one) and exits 130; a reader that
//! goes away (`| head`) ends the replay quietly with 0.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::AppError;
use crate::attr::Attributor;
use crate::filter::{Filter, FilterArgs, to_wall};
use crate::input;
use crate::output::{EventFormat, EventWriter, FileCtx, TimeMode};
use crate::time;

const REPLAY_HELP: &str = "\
Pacing: the first event is written at once; each next one when its recorded time, counted from
the first event and divided by --speed, is reached. --max-gap caps each wait between two events
(in recorded time), so long idle stretches do not stall the consumer. Events come in recorded
order (several files: merged by time).

Ctrl-C stops between two lines and exits 130; a closed pipe ends the replay with exit 0.

Examples:
  analyze replay cap.gsot                          # original pacing, text
  analyze replay cap.gsot --speed 10 --format json | my-live-consumer
  analyze replay cap.gsot --speed max --comm nginx
  analyze replay cap.gsot --max-gap 1s";

#[derive(Args, Debug)]
#[command(after_help = REPLAY_HELP)]
pub struct ReplayArgs {
    /// Trace files; several files (a rotated capture) are replayed as one stream in time order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Playback speed: a factor (10 = ten times faster, 0.5 = half speed) or `max`.
    #[arg(long, value_name = "FACTOR|max", default_value = "1")]
    pub speed: String,
    /// Longest wait between two events, in recorded time (e.g. 1s, 100ms).
    #[arg(long, value_name = "DURATION")]
    pub max_gap: Option<String>,
    /// Output format (JSON: one object per line, the fields of `analyze events`).
    #[arg(long, value_enum, default_value_t = EventFormat::Text)]
    pub format: EventFormat,
    /// How the text format shows time.
    #[arg(long, value_enum, default_value_t = TimeMode::Wall)]
    pub time: TimeMode,
    /// JSON/CSV fields to write, comma-separated (default: all).
    #[arg(long, value_name = "FIELD,...")]
    pub fields: Option<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: all a signal handler may safely do here.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_ctrl_c() {
    // SAFETY: installs a handler that only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

fn parse_speed(s: &str) -> Result<Option<f64>, AppError> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
        _ => Err(AppError::usage(format!(
            "--speed: expected a factor above 0 (e.g. 10, 0.5) or max, found {s:?}"
        ))),
    }
}

/// Sleeps until `until`, waking regularly to notice Ctrl-C. Returns false if interrupted.
fn sleep_until(until: Instant) -> bool {
    const SLICE: Duration = Duration::from_millis(20);
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(SLICE));
    }
}

pub fn run(a: &ReplayArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let speed = parse_speed(&a.speed)?;
    let max_gap = a
        .max_gap
        .as_deref()
        .map(time::parse_duration)
        .transpose()
        .map_err(|e| AppError::usage(format!("--max-gap: {e}")))?;
    let inputs = input::open_all(&a.files)?;
    let span = input::span(&inputs);
    let filter = Filter::new(&a.filter, span)?;
    let multi = inputs.len() > 1;
    let w =
        EventWriter::new(a.format, a.time, a.fields.as_deref(), multi).map_err(AppError::usage)?;
    if let Some(h) = w.header() {
        out.write_all(h.as_bytes())?;
    }
    let attrs: Vec<Attributor> = inputs.iter().map(|i| Attributor::new(&i.reader)).collect();
    let ctxs: Vec<FileCtx<'_>> = inputs
        .iter()
        .zip(&attrs)
        .map(|(i, attr)| FileCtx {
            path: &i.path,
            boot_to_wall: i.reader.header().boot_to_wall_ns,
            rel_base: filter.for_file(&i.reader).rel_base,
            attr,
        })
        .collect();
    if speed.is_some() {
        catch_ctrl_c();
    }
    let start = Instant::now();
    // Recorded ns since the first event, with every gap capped at --max-gap.
    let mut virtual_ns: u128 = 0;
    let mut prev_wall: Option<i64> = None;
    let mut line = String::new();
    let flow = input::merge_events(&inputs, &filter, |fi, e| -> Result<_, AppError> {
        let wall = to_wall(e.ts_ns, ctxs[fi].boot_to_wall);
        if let Some(speed) = speed {
            if let Some(p) = prev_wall {
                // Out-of-order events (recorded order is not strictly time order) wait 0.
                let gap = wall.saturating_sub(p).max(0) as u64;
                virtual_ns += max_gap.map_or(gap, |m| gap.min(m)) as u128;
            }
            // Capped at ~30 years so a damaged timestamp or a tiny --speed cannot overflow the
            // clock arithmetic; such a wait still ends with Ctrl-C.
            let wait = (virtual_ns as f64 / 1e9 / speed).min(1e9);
            let due = start + Duration::from_secs_f64(wait);
            if Instant::now() < due {
                // What is written so far must reach the reader before we wait.
                out.flush()?;
                if !sleep_until(due) {
                    return Ok(ControlFlow::Break(()));
                }
            } else if INTERRUPTED.load(Ordering::Relaxed) {
                return Ok(ControlFlow::Break(()));
            }
        }
        prev_wall = Some(wall);
        line.clear();
        w.write(&mut line, e, &ctxs[fi]);
        out.write_all(line.as_bytes())?;
        Ok(ControlFlow::Continue(()))
    })?;
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(AppError::Interrupted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!(parse_speed("max").unwrap(), None);
        assert_eq!(parse_speed("10").unwrap(), Some(10.0));
        assert_eq!(parse_speed("0.5").unwrap(), Some(0.5));
        for bad in ["0", "-1", "fast", "inf", "NaN"] {
            assert!(parse_speed(bad).is_err(), "{bad}");
        }
    }
}
