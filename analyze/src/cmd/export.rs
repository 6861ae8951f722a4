//! `analyze export`: the selected events as a typed Parquet file, or as a Hive-style dataset
//! partitioned by host and date for query engines.
//!
//! Both cores work all the time: while row groups' columns are being encoded and compressed
//! (one column per task, two row groups in flight), the blocks of the next one are decoded and
//! turned into Arrow arrays (one block per task). Memory is a few row groups of Arrow arrays,
//! whatever the size of the input.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use clap::Args;
use format::BlockInfo;

use crate::AppError;
use crate::decode::json_string;
use crate::export::progress::Progress;
use crate::export::sink::{InFlight, Sink, SinkOptions};
use crate::export::{self, Chunk, FileColumns, Scratch, block_chunks, hex};
use crate::filter::{Filter, FilterArgs};
use crate::input::{self, Input, report_block};

const EXPORT_HELP: &str = "\
Columns (see README, \"Parquet schema\"; also in each file's key-value metadata `gsot.schema`):
  time timestamp[ns, UTC], ts_ns, duration_ns (uint64), pid tid ppid uid gid (uint32),
  comm (dictionary), cgroup_id (uint64), pid_ns mnt_ns cpu (uint32), fd level (int32),
  level_name (dictionary), optname (int32), optname_name (dictionary), optlen_in optlen_out
  ret (int32), errno (dictionary), flags (uint16), optval_ptr optlen_ptr (uint64),
  value (binary), value_int (int64, integer options only), host capture_id (dictionary),
  value_text (utf8: the value as `analyze events` shows it), value_truncated (bool),
  tcp_info linger ucred timeval (structs of the decoded fields; rtt_us, snd_cwnd, ...).
The trace headers are in the metadata key `gsot.headers` (JSON).

With --partition-by, -o names a directory and the files go to
DIR/host=HOST/date=YYYY-MM-DD/part-CAPTUREID-SEQ.parquet (UTC dates); the partition columns
are not repeated inside the files. Exporting the same trace again replaces its part files.

Examples:
  analyze export cap.gsot -o cap.parquet
  analyze export cap.gsot --comm nginx --optname TCP_INFO -o nginx-tcpinfo.parquet
  analyze export fleet/*.gsot -o dataset --partition-by host,date
  duckdb -c \"SELECT host, count(*) FROM read_parquet('dataset/**/*.parquet', hive_partitioning=true) GROUP BY host\"";

#[derive(Args, Debug)]
#[command(after_help = EXPORT_HELP)]
pub struct ExportArgs {
    /// Trace files; several files are exported together (in order of their first event).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output Parquet file, or directory with --partition-by.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: PathBuf,
    /// Write a Hive-style dataset partitioned by these fields: host, date (UTC), or both.
    #[arg(long, value_name = "FIELD,...", value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// Rows per row group (a row group may exceed it by the events of one block).
    #[arg(long, value_name = "N", default_value_t = 1 << 18)]
    pub row_group_rows: usize,
    /// zstd compression level (1 = fastest).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub zstd_level: i32,
    /// Never draw a progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

struct Partitioning {
    host: bool,
    date: bool,
}

fn parse_partitioning(fields: &[String]) -> Result<Option<Partitioning>, AppError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let mut p = Partitioning {
        host: false,
        date: false,
    };
    for f in fields.iter().map(|s| s.trim()) {
        match f {
            "host" => p.host = true,
            "date" => p.date = true,
            _ => {
                return Err(AppError::usage(format!(
                    "--partition-by: unknown field {f:?}; fields: host, date"
                )));
            }
        }
    }
    Ok(Some(p))
}

/// A Hive partition value: `/`, `=`, `%`, control characters and the like percent-escaped, as
/// Hive and the engines that read its layout expect.
fn hive_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        // An empty host name still needs a directory; Hive's own spelling of null.
        return "__HIVE_DEFAULT_PARTITION__".into();
    }
    out
}

fn date_string(day: i64) -> String {
    crate::time::iso(day.saturating_mul(86_400_000_000_000))[..10].to_string()
}

/// `gsot.export`: what was exported, for whoever finds the file later.
fn export_json(a: &ExportArgs) -> String {
    let f = &a.filter;
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"tool\":\"analyze {}\",\"files\":[",
        env!("CARGO_PKG_VERSION")
    );
    for (i, p) in a.files.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_string(&mut s, &p.display().to_string());
    }
    s.push_str("],\"filters\":{");
    let mut first = true;
    let mut put = |k: &str, v: String| {
        if !first {
            s.push(',');
        }
        first = false;
        json_string(&mut s, k);
        s.push(':');
        json_string(&mut s, &v);
    };
    let join = |v: &[String]| v.join(",");
    let nums = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    for (k, v) in [
        ("pid", nums(&f.pid)),
        ("tid", nums(&f.tid)),
        ("uid", nums(&f.uid)),
        ("comm", join(&f.comm)),
        ("cgroup", join(&f.cgroup)),
        ("level", join(&f.level)),
        ("optname", join(&f.optname)),
        ("errno", join(&f.errno)),
    ] {
        if !v.is_empty() {
            put(k, v);
        }
    }
    if f.errors {
        put("errors", "true".into());
    }
    for (k, v) in [
        ("since", &f.since),
        ("until", &f.until),
        ("min_duration", &f.min_duration),
        ("where", &f.where_expr),
    ] {
        if let Some(v) = v {
            put(k, v.clone());
        }
    }
    s.push_str("}}");
    s
}

/// The open output files of the current step: one in single-file mode, one per partition of
/// the current input file otherwise.
struct Outputs {
    sinks: Vec<(i64, Sink)>,
}

impl Outputs {
    fn abandon(self) {
        for (_, s) in self.sinks {
            s.abandon();
        }
    }
}

/// What the dataset and the single-file export share: the inputs in time order, the blocks
/// the filter selects in each, the schema and the metadata every output file carries.
struct Job {
    inputs: Vec<Input>,
    filter: Filter,
    order: Vec<usize>,
    selections: Vec<Vec<BlockInfo>>,
    drop_host: bool,
    schema: SchemaRef,
    base_meta: Vec<(String, String)>,
    progress: Progress,
}

impl Job {
    /// The `gsot.headers` metadata: the headers of `list`.
    fn headers(list: &[&Input]) -> String {
        let parts: Vec<String> = list
            .iter()
            .map(|i| export::header_json(&i.path, i.reader.header()))
            .collect();
        format!("[{}]", parts.join(","))
    }
}

pub fn run(a: &ExportArgs, out: &mut dyn Write) -> Result<(), AppError> {
    let partitioning = parse_partitioning(&a.partition_by)?;
    if a.row_group_rows == 0 {
        return Err(AppError::usage("--row-group-rows: must be at least 1"));
    }
    if !(1..=22).contains(&a.zstd_level) {
        return Err(AppError::usage("--zstd-level: must be 1 to 22"));
    }
    let inputs = input::open_all(&a.files)?;
    let drop_host = partitioning.as_ref().is_some_and(|p| p.host);
    let export::Selection {
        filter,
        order,
        blocks: selections,
    } = export::Selection::new(&inputs, &a.filter)?;
    let total: u64 = selections
        .iter()
        .flatten()
        .map(|b| b.event_count as u64)
        .sum();
    let mut job = Job {
        inputs,
        filter,
        order,
        selections,
        drop_host,
        schema: export::schema(drop_host),
        base_meta: vec![
            ("gsot.schema".to_string(), export::schema_json(drop_host)),
            ("gsot.export".to_string(), export_json(a)),
        ],
        progress: Progress::new(total, "events", !a.no_progress),
    };
    match &partitioning {
        Some(p) => export_dataset(a, p, &mut job, out),
        None => export_single(a, &mut job, out),
    }
}

/// `--partition-by`: one file per input file (and UTC day), in a hive-style directory tree.
fn export_dataset(
    a: &ExportArgs,
    p: &Partitioning,
    job: &mut Job,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    if a.output.is_file() {
        return Err(AppError::usage(format!(
            "-o {}: with --partition-by the output is a directory, and this is a file",
            a.output.display()
        )));
    }
    std::fs::create_dir_all(&a.output)
        .map_err(|e| AppError::Output(format!("{}: cannot create: {e}", a.output.display())))?;
    let mut used = HashSet::new();
    let (mut files, mut rows) = (0u64, 0u64);
    for &fi in &job.order {
        let inp = &job.inputs[fi];
        let h = inp.reader.header();
        let opts = SinkOptions {
            zstd_level: a.zstd_level,
            metadata: [
                job.base_meta.clone(),
                vec![("gsot.headers".into(), Job::headers(&[inp]))],
            ]
            .concat(),
        };
        let mut dir = a.output.clone();
        if p.host {
            dir.push(format!("host={}", hive_escape(&h.host_name)));
        }
        let stem = format!("part-{}-{}", hex(&h.capture_id), h.sequence);
        let schema = &job.schema;
        let mut new_sink = |day: i64| -> Result<Sink, AppError> {
            let mut d = dir.clone();
            if p.date {
                d.push(format!("date={}", date_string(day)));
            }
            std::fs::create_dir_all(&d)
                .map_err(|e| AppError::Output(format!("{}: cannot create: {e}", d.display())))?;
            let path = unused_path(&mut used, &d, &stem);
            Sink::create(&path, schema.clone(), &opts).map_err(AppError::Output)
        };
        let mut outs = Outputs { sinks: Vec::new() };
        let r = export_file(
            inp,
            &job.selections[fi],
            &job.filter,
            job.drop_host,
            p.date,
            a.row_group_rows,
            &mut outs,
            &mut |day| new_sink(day),
            &mut job.progress,
        );
        if let Err(e) = r {
            outs.abandon();
            return Err(e);
        }
        for (_, s) in outs.sinks {
            rows += s.finish().map_err(AppError::Output)?;
            files += 1;
        }
    }
    job.progress.finish();
    writeln!(
        out,
        "exported {rows} events to {files} files under {}",
        a.output.display()
    )?;
    if files == 0 {
        eprintln!("analyze: no event matched: no file written");
    }
    if job.inputs.iter().any(|i| !i.reader.aggregates().is_empty()) {
        eprintln!(
            "analyze: note: aggregate records are not exported with --partition-by (a dataset's files share one schema); export without it for OUT.aggregates.parquet"
        );
    }
    Ok(())
}

/// `DIR/STEM.parquet`, or `DIR/STEM-2.parquet`, ... if this run has written that already: two
/// inputs of one capture with the same sequence (e.g. a file and a slice of it) must not
/// overwrite each other.
fn unused_path(used: &mut HashSet<PathBuf>, dir: &Path, stem: &str) -> PathBuf {
    let mut path = dir.join(format!("{stem}.parquet"));
    let mut n = 2;
    while !used.insert(path.clone()) {
        path = dir.join(format!("{stem}-{n}.parquet"));
        n += 1;
    }
    path
}

/// Every input into one Parquet file.
fn export_single(a: &ExportArgs, job: &mut Job, out: &mut dyn Write) -> Result<(), AppError> {
    if a.output.is_dir() {
        return Err(AppError::usage(format!(
            "-o {}: is a directory (use --partition-by to write a dataset)",
            a.output.display()
        )));
    }
    let all: Vec<&Input> = job.order.iter().map(|&i| &job.inputs[i]).collect();
    let opts = SinkOptions {
        zstd_level: a.zstd_level,
        metadata: [
            job.base_meta.clone(),
            vec![("gsot.headers".into(), Job::headers(&all))],
        ]
        .concat(),
    };
    let sink = Sink::create(&a.output, job.schema.clone(), &opts).map_err(AppError::Output)?;
    let mut outs = Outputs {
        sinks: vec![(0, sink)],
    };
    for &fi in &job.order {
        let r = export_file(
            &job.inputs[fi],
            &job.selections[fi],
            &job.filter,
            job.drop_host,
            false,
            a.row_group_rows,
            &mut outs,
            &mut |_| unreachable_sink(),
            &mut job.progress,
        );
        if let Err(e) = r {
            outs.abandon();
            return Err(e);
        }
    }
    let (_, sink) = outs.sinks.pop().expect("one sink");
    let rows = sink.finish().map_err(AppError::Output)?;
    job.progress.finish();
    writeln!(out, "exported {rows} events to {}", a.output.display())?;
    export_aggregates(a, &all, &job.filter, out)
}

/// A sampled capture's aggregate records, beside the events (`export::aggregates`).
fn export_aggregates(
    a: &ExportArgs,
    inputs: &[&Input],
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    if let Some(why) =
        crate::sampled::unanswerable(&[], &[], &filter.expr, &crate::sampled::NO_QUERY)
    {
        if inputs.iter().any(|i| !i.reader.aggregates().is_empty()) {
            eprintln!(
                "analyze: note: the aggregate records are not exported: {why} selects calls they cannot (only the events are)"
            );
        }
        return Ok(());
    }
    let path = export::aggregates::path_for(&a.output);
    let written = export::aggregates::write(inputs, filter, &path, a.zstd_level);
    if let Some((rows, left)) = written.map_err(AppError::Output)? {
        writeln!(out, "exported {rows} aggregate rows to {}", path.display())?;
        // Overflow entries are rows of the file (flagged), not left out.
        let left = crate::sampled::Left {
            overflow: 0,
            ..left
        };
        for note in left.notes(0, &[], None) {
            eprintln!("analyze: {note}");
        }
    }
    Ok(())
}

fn unreachable_sink() -> Result<Sink, AppError> {
    Err(AppError::Output(
        "internal error: a single-file export asked for a partition".into(),
    ))
}

/// Groups blocks into batches of about one row group of events.
fn batches(blocks: &[BlockInfo], rows: usize) -> Vec<&[BlockInfo]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut n = 0usize;
    for (i, b) in blocks.iter().enumerate() {
        n += b.event_count as usize;
        if n >= rows {
            out.push(&blocks[start..=i]);
            start = i + 1;
            n = 0;
        }
    }
    if start < blocks.len() {
        out.push(&blocks[start..]);
    }
    out
}

/// Exports one input file's selected blocks into `outs`, creating partition sinks with
/// `new_sink(day)` when `by_day` (and when `outs` has no sink yet).
#[allow(clippy::too_many_arguments)]
fn export_file(
    inp: &Input,
    blocks: &[BlockInfo],
    filter: &Filter,
    drop_host: bool,
    by_day: bool,
    row_group_rows: usize,
    outs: &mut Outputs,
    new_sink: &mut dyn FnMut(i64) -> Result<Sink, AppError>,
    progress: &mut Progress,
) -> Result<(), AppError> {
    let ff = filter.for_file(&inp.reader);
    let file = FileColumns::of(inp.reader.header());
    let decode = |batch: &[BlockInfo]| -> Vec<Chunk> {
        let results = inp.reader.par_map_blocks(batch, |_, d| {
            block_chunks(
                d,
                &ff,
                &file,
                drop_host,
                by_day,
                true,
                &mut Scratch::default(),
            )
        });
        let mut chunks = Vec::new();
        for (b, r) in batch.iter().zip(results) {
            match r {
                Ok(c) => chunks.extend(c),
                Err(e) => report_block(&inp.path, b, &e),
            }
        }
        chunks
    };
    let batches = batches(blocks, row_group_rows);
    // Row groups being encoded, oldest first, with the index of their sink. Two in flight
    // keep both cores busy (one row group's slowest column overlaps the next one's others)
    // while bounding memory to a few row groups.
    const IN_FLIGHT: usize = 2;
    let mut in_flight: VecDeque<(usize, InFlight)> = VecDeque::new();
    let result = (|| -> Result<(), AppError> {
        for batch in &batches {
            let decoded = decode(batch);
            progress.advance(batch.iter().map(|b| b.event_count as u64).sum());
            for chunk in decoded {
                let key = if by_day { chunk.day } else { 0 };
                let i = match outs.sinks.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        outs.sinks.push((key, new_sink(key)?));
                        outs.sinks.len() - 1
                    }
                };
                let sink = &mut outs.sinks[i].1;
                sink.push(chunk);
                if sink.pending_rows() >= row_group_rows {
                    let chunks = sink.take_pending();
                    in_flight
                        .push_back((i, sink.start_row_group(chunks).map_err(AppError::Output)?));
                }
                while in_flight.len() > IN_FLIGHT {
                    let (i, f) = in_flight.pop_front().expect("not empty");
                    outs.sinks[i]
                        .1
                        .finish_row_group(f)
                        .map_err(AppError::Output)?;
                }
            }
        }
        Ok(())
    })();
    // Row groups already started are appended even after an error elsewhere, so no encoder is
    // left sending to nobody; the caller then abandons the files.
    let mut first_error = result.err();
    for (i, f) in in_flight {
        if let Err(e) = outs.sinks[i].1.finish_row_group(f)
            && first_error.is_none()
        {
            first_error = Some(AppError::Output(e));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_values_are_escaped() {
        assert_eq!(hive_escape("web-1.example"), "web-1.example");
        assert_eq!(hive_escape("a/b=c d"), "a%2Fb%3Dc%20d");
        assert_eq!(hive_escape(""), "__HIVE_DEFAULT_PARTITION__");
        assert_eq!(hive_escape(".."), "__HIVE_DEFAULT_PARTITION__");
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(date_string(20454), "2026-01-01");
    }

    #[test]
    fn batches_cover_all_blocks_in_order() {
        let b = |n| BlockInfo {
            offset: 0,
            event_count: n,
            ts_min: 0,
            ts_max: 0,
        };
        let blocks = [b(3), b(3), b(3), b(1)];
        let got: Vec<usize> = batches(&blocks, 5).iter().map(|s| s.len()).collect();
        assert_eq!(got, vec![2, 2]);
        assert!(batches(&[], 5).is_empty());
    }
}
