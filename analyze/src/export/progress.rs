//! A one-line progress bar on stderr for long runs, drawn only when stderr is a terminal so
//! logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    total: u64,
    done: u64,
    start: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
    what: &'static str,
}

/// Redraw at most this often.
const REDRAW: Duration = Duration::from_millis(200);
/// Runs shorter than this never show a bar (no flicker for small files).
const QUIET_FOR: Duration = Duration::from_millis(500);

impl Progress {
    /// A bar over `total` units of `what` (e.g. "events"); drawn if `wanted` and stderr is a
    /// terminal.
    pub fn new(total: u64, what: &'static str, wanted: bool) -> Progress {
        Progress {
            total,
            done: 0,
            start: Instant::now(),
            last_draw: None,
            enabled: wanted && std::io::stderr().is_terminal(),
            what,
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) < QUIET_FOR
            || self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < REDRAW)
        {
            return;
        }
        self.last_draw = Some(now);
        let _ = std::io::stderr().write_all(self.line(now).as_bytes());
    }

    fn line(&self, now: Instant) -> String {
        const WIDTH: usize = 30;
        let frac = if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        };
        let filled = (frac * WIDTH as f64) as usize;
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(self.done)) as f64 / rate
        } else {
            0.0
        };
        format!(
            "\r[{}{}] {:3.0}% {}/{} {}  {}/s  ETA {:.0}s \x1b[K",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            frac * 100.0,
            human(self.done as f64),
            human(self.total as f64),
            self.what,
            human(rate),
            eta
        )
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
        self.enabled = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// 1234567 → "1.2M".
fn human(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_fraction_and_counts() {
        let mut p = Progress::new(2_000_000, "events", false);
        p.done = 1_000_000;
        let l = p.line(p.start + Duration::from_secs(1));
        assert!(l.contains(" 50% 1.0M/2.0M events"), "{l}");
        assert!(l.contains("1.0M/s"), "{l}");
        assert!(l.contains("ETA 1s"), "{l}");
    }
}
