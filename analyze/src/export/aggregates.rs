//! `analyze export` of a sampled capture (FORMAT.md 5.3): its aggregate records as a second
//! Parquet file, `OUT.aggregates.parquet` beside the events', one row per period and key.
//! A second file rather than more columns of the events file: the two have different rows
//! (a call each against a (period, key) each), and the events' columns do not change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use format::SAMPLE_ALL;
use format::raw::agg_bucket_range;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::decode::{errno, levels};
use crate::filter::{Filter, to_wall};
use crate::input::Input;
use crate::sampled::{self, Left};

/// The aggregate file of the events file `events`: `cap.parquet` -> `cap.aggregates.parquet`.
pub fn path_for(events: &Path) -> PathBuf {
    let stem = match events.extension().is_some_and(|e| e == "parquet") {
        true => events.with_extension(""),
        false => events.to_path_buf(),
    };
    let mut name = stem.into_os_string();
    name.push(".aggregates.parquet");
    PathBuf::from(name)
}

/// The columns, in order (README, "Parquet schema": the aggregates file).
fn schema() -> Schema {
    let u64s = |n: &str| Field::new(n, DataType::UInt64, false);
    let list = |n: &str| {
        let item = Field::new_list_field(DataType::UInt64, true);
        Field::new(n, DataType::List(Arc::new(item)), false)
    };
    let utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("capture_id", DataType::Utf8, false),
        Field::new("period_start", utc, false),
        u64s("period_start_ns"),
        u64s("period_end_ns"),
        Field::new("sample_p", DataType::Float64, false),
        Field::new("overflow", DataType::Boolean, false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("level", DataType::Int32, false),
        Field::new("level_name", DataType::Utf8, true),
        Field::new("optname", DataType::Int32, false),
        Field::new("optname_name", DataType::Utf8, true),
        Field::new("ret", DataType::Int32, false),
        Field::new("errno", DataType::Utf8, true),
        u64s("calls"),
        u64s("duration_sum_ns"),
        u64s("duration_max_ns"),
        list("bucket_low_ns"),
        list("bucket_calls"),
    ])
}

#[derive(Default)]
struct Columns {
    host: StringBuilder,
    capture: StringBuilder,
    start: TimestampNanosecondBuilder,
    start_ns: UInt64Builder,
    end_ns: UInt64Builder,
    p: Float64Builder,
    overflow: BooleanBuilder,
    pid: UInt32Builder,
    level: Int32Builder,
    level_name: StringBuilder,
    optname: Int32Builder,
    optname_name: StringBuilder,
    ret: Int32Builder,
    errno: StringBuilder,
    calls: UInt64Builder,
    sum: UInt64Builder,
    max: UInt64Builder,
    low: ListBuilder<UInt64Builder>,
    counts: ListBuilder<UInt64Builder>,
    rows: u64,
}

impl Columns {
    fn push(&mut self, inp: &Input, p: &format::AggregatePeriod, e: &format::AggregateEntry) {
        let h = inp.reader.header();
        self.host.append_value(&h.host_name);
        self.capture.append_value(crate::export::hex(&h.capture_id));
        self.start
            .append_value(to_wall(p.start_ns, h.boot_to_wall_ns));
        self.start_ns.append_value(p.start_ns);
        self.end_ns.append_value(p.end_ns);
        self.p.append_value(p.sample_p as f64 / SAMPLE_ALL as f64);
        self.overflow.append_value(e.is_overflow());
        self.pid.append_value(e.tgid);
        self.level.append_value(e.level);
        self.level_name.append_option(levels::level_name(e.level));
        self.optname.append_value(e.optname);
        self.optname_name
            .append_option(levels::option_name(e.level, e.optname));
        self.ret.append_value(e.ret);
        let n = e.ret.unsigned_abs() as i32;
        let name = (e.ret < 0).then(|| errno::name(n).map_or(n.to_string(), str::to_string));
        self.errno.append_option(name);
        self.calls.append_value(e.calls());
        self.sum.append_value(e.duration_sum_ns);
        self.max.append_value(e.duration_max_ns);
        for &(i, c) in &e.buckets {
            self.low.values().append_value(agg_bucket_range(i).0);
            self.counts.values().append_value(c);
        }
        self.low.append(true);
        self.counts.append(true);
        self.rows += 1;
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.host.finish()),
            Arc::new(self.capture.finish()),
            Arc::new(self.start.finish().with_timezone("UTC")),
            Arc::new(self.start_ns.finish()),
            Arc::new(self.end_ns.finish()),
            Arc::new(self.p.finish()),
            Arc::new(self.overflow.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.level_name.finish()),
            Arc::new(self.optname.finish()),
            Arc::new(self.optname_name.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(self.errno.finish()),
            Arc::new(self.calls.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.low.finish()),
            Arc::new(self.counts.finish()),
        ]
    }
}

/// Writes the aggregate records of `inputs` that `filter` selects to `path`; the rows written
/// and what was left out. Nothing is written (`Ok(None)`) when no input has any.
pub fn write(
    inputs: &[&Input],
    filter: &Filter,
    path: &Path,
    zstd_level: i32,
) -> Result<Option<(u64, Left)>, String> {
    if inputs.iter().all(|i| i.reader.aggregates().is_empty()) {
        return Ok(None);
    }
    let mut cols = Columns::default();
    let mut left = Left::default();
    for inp in inputs {
        let ff = filter.for_file(&inp.reader);
        sampled::for_each_selected(inp, &ff, &mut left, |p, e, _, _| cols.push(inp, p, e));
        // The overflow entries are rows too (flagged): the file holds every call.
        for p in inp.reader.aggregates() {
            if sampled::inside(p, &ff) {
                p.entries
                    .iter()
                    .filter(|e| e.is_overflow())
                    .for_each(|e| cols.push(inp, p, e));
            }
        }
    }
    let rows = cols.rows;
    let schema = Arc::new(schema());
    let batch = RecordBatch::try_new(schema.clone(), cols.finish()).map_err(|e| e.to_string())?;
    let level = ZstdLevel::try_new(zstd_level).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .build();
    let file = std::fs::File::create(path)
        .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    let fail = |e: parquet::errors::ParquetError| format!("{}: {e}", path.display());
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(fail)?;
    w.write(&batch).map_err(fail)?;
    w.close().map_err(fail)?;
    Ok(Some((rows, left)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregates_file_sits_beside_the_events_file() {
        assert_eq!(
            path_for(Path::new("a/cap.parquet")),
            Path::new("a/cap.aggregates.parquet")
        );
        assert_eq!(
            path_for(Path::new("cap.pq")),
            Path::new("cap.pq.aggregates.parquet")
        );
    }
}
