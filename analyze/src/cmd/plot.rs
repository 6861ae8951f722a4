//! `analyze plot`: one picture of a trace: calls per second over time, one line per group, and
//! a latency histogram per group on a log scale. Every line and histogram row is labelled
//! where it is drawn, so the picture reads without a legend.
//!
//! The SVG is written by hand (a few rectangles, polylines and text elements): no plotting
//! library, nothing to compile. A `.png` output is rendered from that SVG by `rsvg-convert`
//! (Debian: librsvg2-bin) when it is installed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use format::DecodedBlock;

use crate::AppError;
use crate::filter::{FileFilter, Filter, FilterArgs, IntField, Tri, to_wall};
use crate::input::{self, all_blocks, for_each_selected, selected_blocks};
use crate::stats::{self, GroupField, Histogram, KeyPart};
use crate::time::{self, format_duration};

const PLOT_HELP: &str = "\
Top: calls per second over time, one line per group (the --top groups by count), labelled at
its right end. Bottom: per group, the latency distribution (syscall entry to exit) over log-scale
buckets (10 per decade), with its count, p50 and p99 written beside it.

The output format follows the file name: .svg, or .png (rendered from the SVG by rsvg-convert,
Debian package librsvg2-bin).

Examples:
  analyze plot cap.gsot -o cap.svg
  analyze plot cap.gsot --by comm --top 5 -o by-comm.svg
  analyze plot cap.gsot --comm nginx --by optname --since 10s --until 20s -o nginx.png";

#[derive(Args, Debug)]
#[command(after_help = PLOT_HELP)]
pub struct PlotArgs {
    /// Trace files; several files are plotted together.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output file: .svg or .png.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: PathBuf,
    /// Group by these fields (as `analyze stats --by`).
    #[arg(long, value_name = "FIELD,...", default_value = "optname")]
    pub by: String,
    /// Groups shown (the largest by count); the rest are summed as "other" in the timeline.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub top: usize,
    /// Width of a timeline bucket (default: about 120 buckets over the time shown).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
}

/// Latency buckets: 10 per decade from 1 ns; bucket b holds [10^(b/10), 10^((b+1)/10)) ns.
const PER_DECADE: f64 = 10.0;
const LAT_BUCKETS: usize = 120;

fn lat_bucket(ns: u64) -> usize {
    if ns <= 1 {
        return 0;
    }
    ((ns as f64).log10() * PER_DECADE)
        .floor()
        .clamp(0.0, (LAT_BUCKETS - 1) as f64) as usize
}

fn bucket_low(b: usize) -> f64 {
    10f64.powf(b as f64 / PER_DECADE)
}

#[derive(Clone, Default)]
struct Acc {
    hist: Histogram,
    lat: Vec<u64>,
    bins: Vec<u64>,
}

impl Acc {
    fn new(nbins: usize) -> Acc {
        Acc {
            hist: Histogram::default(),
            lat: vec![0; LAT_BUCKETS],
            bins: vec![0; nbins],
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.hist.merge(&o.hist);
        for (a, b) in self.lat.iter_mut().zip(&o.lat) {
            *a += b;
        }
        for (a, b) in self.bins.iter_mut().zip(&o.bins) {
            *a += b;
        }
    }
}

type Key = Vec<KeyPart>;

/// The time axis: wall-clock ns of bin 0 and the bin width.
#[derive(Clone, Copy)]
struct Axis {
    from: i64,
    width: u64,
    nbins: usize,
}

fn block_groups(
    d: &DecodedBlock,
    ff: &FileFilter<'_>,
    by: &[GroupField],
    axis: Axis,
    b2w: i64,
) -> HashMap<Key, Acc> {
    let mut site_key: Vec<Key> = Vec::with_capacity(d.sites().len());
    for s in d.sites() {
        let t = &d.threads()[s.thread as usize];
        let k = d.sockets();
        site_key.push(
            by.iter()
                .map(|&f| stats::key_part(f, s, t, k, ff.attributor()))
                .collect(),
        );
    }
    let mut groups: HashMap<Key, Acc> = HashMap::new();
    let mut verdicts: Vec<Tri> = Vec::new();
    for_each_selected(d, ff, &mut verdicts, |si, e| {
        let acc = groups
            .entry(site_key[si as usize].clone())
            .or_insert_with(|| Acc::new(axis.nbins));
        acc.hist.add(e.duration_ns);
        acc.lat[lat_bucket(e.duration_ns)] += 1;
        let off = to_wall(e.ts_ns, b2w).saturating_sub(axis.from);
        if off >= 0 {
            let bin = (off as u64 / axis.width) as usize;
            if bin < axis.nbins {
                acc.bins[bin] += 1;
            }
        }
    });
    groups
}

/// A group key part as text, the way `analyze stats` names it, except that a plot labels the
/// successful calls "ok" where a table leaves the errno cell empty.
fn part_label(f: GroupField, v: KeyPart) -> String {
    match (f, v) {
        (GroupField::Int(IntField::Errno), 0) => "ok".into(),
        _ => super::stats::key_text(f, v),
    }
}

fn label(by: &[GroupField], names: &[String], key: &[KeyPart]) -> String {
    let parts: Vec<String> = by
        .iter()
        .zip(key)
        .zip(names)
        .map(|((&f, &v), name)| {
            let text = part_label(f, v);
            match f {
                // Names say what they are; bare numbers need their field.
                GroupField::Int(i) if !matches!(i, IntField::Level | IntField::Errno) => {
                    format!("{name}={text}")
                }
                _ => text,
            }
        })
        .collect();
    if parts.is_empty() {
        "all calls".into()
    } else {
        parts.join(" ")
    }
}

/// 1, 2, 5 × 10^k: the smallest such value at least `v`.
fn nice_at_least(v: f64) -> f64 {
    let v = v.max(1e-300);
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

/// A round axis maximum at least `v`, in finer steps than [`nice_at_least`] so the data
/// fills most of the height.
fn nice_axis_max(v: f64) -> f64 {
    let base = 10f64.powf(v.max(1e-300).log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

/// Tableau 10: distinct hues that stay distinct for most colour-blind readers.
const COLORS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const OTHER_COLOR: &str = "#888888";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line or row of the picture.
struct Series {
    label: String,
    color: &'static str,
    acc: Acc,
}

pub fn run(a: &PlotArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let ext = a
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let png = match ext.as_deref() {
        Some("svg") => false,
        Some("png") => true,
        _ => {
            return Err(AppError::usage(format!(
                "-o {}: the name must end in .svg or .png",
                a.output.display()
            )));
        }
    };
    let (by, by_names) = super::stats::parse_by(&a.by)?;
    if a.top == 0 {
        return Err(AppError::usage("--top: must be at least 1"));
    }
    let interval = super::stats::parse_interval(a.interval.as_deref())?;
    let inputs = input::open_all(&a.files)?;
    let span = input::span(&inputs);
    let mut filter = Filter::new(&a.filter, span)?;
    if crate::stats::needs_attribution(&by) {
        filter = filter.with_attribution();
    }
    // The time shown: the capture (first header start to last event), narrowed by the filter.
    let from = span.start_wall.max(filter.wall_from);
    let to = span
        .end_wall
        .saturating_add(1)
        .min(filter.wall_to)
        .max(from.saturating_add(1));
    // Saturating: a damaged header can put the times anywhere in the i64 range.
    let range = to.saturating_sub(from).max(1) as u64;
    let width = interval.unwrap_or_else(|| nice_at_least(range as f64 / 120.0) as u64);
    let width = width.max(1);
    let nbins = range.div_ceil(width).clamp(1, 100_000) as usize;
    let axis = Axis { from, width, nbins };

    let mut groups: HashMap<Key, Acc> = HashMap::new();
    for inp in &inputs {
        let ff = filter.for_file(&inp.reader);
        let blocks = selected_blocks(&inp.reader, &ff);
        let b2w = inp.reader.header().boot_to_wall_ns;
        all_blocks(
            inp,
            &blocks,
            |_, d| block_groups(d, &ff, &by, axis, b2w),
            |part: HashMap<Key, Acc>| -> Result<(), AppError> {
                for (k, acc) in part {
                    groups
                        .entry(k)
                        .or_insert_with(|| Acc::new(nbins))
                        .merge(&acc);
                }
                Ok(())
            },
        )?;
    }
    let mut all: Vec<(Key, Acc)> = groups.into_iter().collect();
    all.sort_by(|x, y| y.1.hist.count.cmp(&x.1.hist.count).then(x.0.cmp(&y.0)));
    let total: u64 = all.iter().map(|(_, g)| g.hist.count).sum();
    let mut shown: Vec<Series> = Vec::new();
    let mut other: Option<Acc> = None;
    for (i, (k, acc)) in all.into_iter().enumerate() {
        if i < a.top.min(COLORS.len()) {
            shown.push(Series {
                label: label(&by, &by_names, &k),
                color: COLORS[i],
                acc,
            });
        } else {
            other.get_or_insert_with(|| Acc::new(nbins)).merge(&acc);
        }
    }
    let other_groups = other.as_ref().map(|o| o.hist.count).unwrap_or(0);
    let files = match inputs.as_slice() {
        [one] => one.path.rsplit('/').next().unwrap_or(&one.path).to_string(),
        many => format!("{} files", many.len()),
    };
    // Millisecond precision is plenty for a title, and keeps it within the picture.
    let ms = |t: i64| format!("{}Z", &time::iso(t)[..23]);
    let title = format!("{files}: {total} calls, {} to {} UTC", ms(from), ms(to));
    let svg = render(&title, &shown, other.as_ref(), axis, other_groups);
    let write = |bytes: &[u8]| -> Result<(), AppError> {
        std::fs::write(&a.output, bytes)
            .map_err(|e| AppError::Output(format!("{}: cannot write: {e}", a.output.display())))
    };
    if png {
        write(&to_png(&svg, &a.output)?)?;
    } else {
        write(svg.as_bytes())?;
    }
    writeln!(
        out,
        "plotted {total} calls in {} groups to {}",
        shown.len() + other.is_some() as usize,
        a.output.display()
    )?;
    Ok(())
}

fn to_png(svg: &str, out: &std::path::Path) -> Result<Vec<u8>, AppError> {
    let mut child = std::process::Command::new("rsvg-convert")
        .args(["--format", "png", "--background-color", "white"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            AppError::Output(format!(
                "{}: writing PNG needs rsvg-convert (Debian: apt install librsvg2-bin): {e}; or write .svg",
                out.display()
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let svg = svg.to_string();
    // Fed from a thread so a large picture cannot deadlock against rsvg-convert's output.
    let feeder = std::thread::spawn(move || stdin.write_all(svg.as_bytes()));
    let result = child
        .wait_with_output()
        .map_err(|e| AppError::Output(format!("{}: rsvg-convert: {e}", out.display())))?;
    let _ = feeder.join();
    if !result.status.success() || result.stdout.is_empty() {
        return Err(AppError::Output(format!(
            "{}: rsvg-convert failed: {}",
            out.display(),
            String::from_utf8_lossy(&result.stderr).trim()
        )));
    }
    Ok(result.stdout)
}

const W: f64 = 1100.0;
const LEFT: f64 = 80.0;
/// Room at the right of the timeline for the line labels.
const LABEL_ROOM: f64 = 190.0;
const TOP: f64 = 60.0;
const TIMELINE_H: f64 = 280.0;
const ROW_H: f64 = 56.0;

fn render(title: &str, shown: &[Series], other: Option<&Acc>, axis: Axis, other_n: u64) -> String {
    let rows = shown.len();
    let hist_top = TOP + TIMELINE_H + 90.0;
    let height = hist_top + 30.0 + rows as f64 * ROW_H + 50.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>
"#,
        esc(title)
    );
    timeline(&mut s, shown, other, axis, other_n);
    histograms(&mut s, shown, hist_top);
    s.push_str("</svg>\n");
    s
}

/// Calls per second over time, one polyline per group, labelled at its right end.
fn timeline(s: &mut String, shown: &[Series], other: Option<&Acc>, axis: Axis, other_n: u64) {
    let (x0, y0) = (LEFT, TOP);
    let pw = W - LEFT - LABEL_ROOM;
    let ph = TIMELINE_H;
    let secs = axis.width as f64 / 1e9;
    let rate = |c: u64| c as f64 / secs;
    let mut lines: Vec<(&str, &str, &[u64])> = shown
        .iter()
        .map(|g| (g.label.as_str(), g.color, g.acc.bins.as_slice()))
        .collect();
    let other_label = format!("other ({other_n} calls)");
    if let Some(o) = other {
        lines.push((&other_label, OTHER_COLOR, o.bins.as_slice()));
    }
    let ymax = lines
        .iter()
        .flat_map(|l| l.2.iter())
        .map(|&c| rate(c))
        .fold(0.0, f64::max);
    let ymax = nice_axis_max(ymax.max(1.0) * 1.05);
    let _ = writeln!(
        s,
        r##"<text x="{x0}" y="{}" font-weight="bold">Calls per second (buckets of {})</text>"##,
        y0 - 10.0,
        format_duration(axis.width)
    );
    // Axes and grid: y at 0, 1/4, ..., 1 of the maximum.
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = y0 + ph - ph * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            x0 + pw,
            x0 - 6.0,
            y + 4.0,
            human(v)
        );
    }
    let span_ns = axis.width as f64 * axis.nbins as f64;
    let tick = nice_at_least(span_ns / 8.0);
    let mut t = 0.0;
    while t <= span_ns + 1.0 {
        let x = x0 + pw * t / span_ns;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">+{}</text>"##,
            y0 + ph,
            y0 + ph + 5.0,
            y0 + ph + 19.0,
            format_duration(t as u64)
        );
        t += tick;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{x0}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#444"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">time since {}</text>"##,
        y0 + ph,
        x0 + pw,
        y0 + ph,
        x0 + pw / 2.0,
        y0 + ph + 38.0,
        esc(&time::iso(axis.from))
    );
    // Lines, then their labels at the right end, spread so none overlap.
    let mut label_pos: Vec<(f64, &str, &str)> = Vec::new();
    for (name, color, bins) in &lines {
        let n = bins.len().max(1);
        let mut pts = String::new();
        for (i, &c) in bins.iter().enumerate() {
            let x = x0 + pw * (i as f64 + 0.5) / n as f64;
            let y = y0 + ph - ph * rate(c) / ymax;
            let _ = write!(pts, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.6"/>"##,
            pts.trim_end()
        );
        // Label at the height of the line's last non-empty stretch, averaged to steady it.
        let tail: Vec<f64> = bins.iter().rev().take(5).map(|&c| rate(c)).collect();
        let avg = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
        label_pos.push((y0 + ph - ph * avg / ymax, name, color));
    }
    label_pos.sort_by(|a, b| a.0.total_cmp(&b.0));
    let gap = 15.0;
    for i in 1..label_pos.len() {
        if label_pos[i].0 < label_pos[i - 1].0 + gap {
            label_pos[i].0 = label_pos[i - 1].0 + gap;
        }
    }
    // If that pushed labels below the plot, pull them back up from the bottom, moving only
    // the ones that must move.
    if let Some(last) = label_pos.last_mut()
        && last.0 > y0 + ph
    {
        last.0 = y0 + ph;
        for i in (0..label_pos.len() - 1).rev() {
            label_pos[i].0 = label_pos[i].0.min(label_pos[i + 1].0 - gap);
        }
    }
    for (y, name, color) in label_pos {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="{color}" font-weight="bold">{}</text>"##,
            x0 + pw + 8.0,
            y + 4.0,
            esc(name)
        );
    }
}

/// One row per group: latency distribution over log buckets, with count, p50 and p99.
fn histograms(s: &mut String, shown: &[Series], top: f64) {
    let name_w = 170.0;
    let x0 = LEFT + name_w;
    let pw = W - x0 - 170.0;
    let (lo, hi) = shown
        .iter()
        .flat_map(|g| {
            g.acc
                .lat
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(b, _)| b)
        })
        .fold((usize::MAX, 0), |(lo, hi), b| (lo.min(b), hi.max(b)));
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">Latency per group (syscall entry to exit, log scale; bar height: share of the group's calls)</text>"##,
        top - 10.0
    );
    if lo > hi {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{:.1}" fill="#444">no calls selected</text>"##,
            top + 20.0
        );
        return;
    }
    // Whole decades around the data, so tick labels are round numbers.
    let lo = (lo as f64 / PER_DECADE).floor() as usize * PER_DECADE as usize;
    let hi = ((hi + 1) as f64 / PER_DECADE).ceil() as usize * PER_DECADE as usize;
    let nb = (hi - lo).max(1);
    let bw = pw / nb as f64;
    let x_of = |ns: f64| x0 + pw * ((ns.max(1.0).log10() * PER_DECADE) - lo as f64) / nb as f64;
    let bottom = top + 10.0 + shown.len() as f64 * ROW_H;
    let mut b = lo;
    while b <= hi {
        let x = x0 + (b - lo) as f64 * bw;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
            top,
            bottom,
            bottom + 16.0,
            format_duration(bucket_low(b).round() as u64)
        );
        b += PER_DECADE as usize;
    }
    for (r, g) in shown.iter().enumerate() {
        let y_base = top + 10.0 + (r as f64 + 1.0) * ROW_H - 8.0;
        let bar_h = ROW_H - 16.0;
        let max = g.acc.lat[lo..hi.min(LAT_BUCKETS)]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(1);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{}" font-weight="bold">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444" font-size="11">{} call{}</text>"##,
            x0 - 10.0,
            y_base - bar_h / 2.0,
            g.color,
            esc(&g.label),
            x0 - 10.0,
            y_base - bar_h / 2.0 + 14.0,
            g.acc.hist.count,
            if g.acc.hist.count == 1 { "" } else { "s" }
        );
        for (i, &c) in g.acc.lat[lo..hi.min(LAT_BUCKETS)].iter().enumerate() {
            if c == 0 {
                continue;
            }
            let h = bar_h * c as f64 / max as f64;
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"##,
                x0 + i as f64 * bw + 0.5,
                y_base - h,
                (bw - 1.0).max(0.5),
                h,
                g.color
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y_base:.1}" x2="{:.1}" y2="{y_base:.1}" stroke="#999"/>"##,
            x0 + pw
        );
        let p50 = g.acc.hist.quantile(0.5);
        let p99 = g.acc.hist.quantile(0.99);
        for (q, v, dash) in [("p50", p50, "none"), ("p99", p99, "3,2")] {
            let x = x_of(v as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{y_base:.1}" stroke="#222" stroke-dasharray="{dash}"/><title>{q} {}</title>"##,
                y_base - bar_h - 2.0,
                format_duration(v)
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#222" font-size="12">p50 {}  p99 {}</text><text x="{:.1}" y="{:.1}" fill="#444" font-size="11">max {}</text>"##,
            x0 + pw + 10.0,
            y_base - bar_h / 2.0,
            format_duration(p50),
            format_duration(p99),
            x0 + pw + 10.0,
            y_base - bar_h / 2.0 + 14.0,
            format_duration(g.acc.hist.max)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">latency (solid line: p50, dashed: p99)</text>"##,
        x0 + pw / 2.0,
        bottom + 36.0
    );
}

/// 1234567.0 → "1.235M", 37500.0 → "37.5k": at most three decimals, no trailing zeros.
fn human(v: f64) -> String {
    let (x, unit) = match v {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    let t = format!("{x:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_ten_per_decade() {
        assert_eq!(lat_bucket(0), 0);
        assert_eq!(lat_bucket(1), 0);
        assert_eq!(lat_bucket(10), 10);
        assert_eq!(lat_bucket(99), 19);
        assert_eq!(lat_bucket(100), 20);
        assert_eq!(lat_bucket(1_000_000), 60);
        assert_eq!(lat_bucket(u64::MAX), LAT_BUCKETS - 1);
        assert!((bucket_low(20) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_at_least(3.0), 5.0);
        assert_eq!(nice_at_least(10.0), 10.0);
        assert_eq!(nice_at_least(11.0), 20.0);
        assert_eq!(nice_at_least(49_000.0), 50_000.0);
        assert_eq!(nice_axis_max(236_000.0), 250_000.0);
        assert_eq!(nice_axis_max(7.0), 8.0);
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(human(37_500.0), "37.5k");
        assert_eq!(human(500_000.0), "500k");
        assert_eq!(human(0.0), "0");
        assert_eq!(human(1_234_567.0), "1.235M");
    }

    #[test]
    fn svg_text_is_escaped() {
        assert_eq!(esc("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
