//! One Parquet output file: chunks are buffered up to a row group, then the row group's
//! columns are encoded and compressed in parallel (one column per task on the rayon pool; a
//! struct column's leaves in one task, as its leaves are computed together) and
//! appended in schema order. Row groups are pipelined: the next one may start encoding before
//! the previous one is appended, so no core waits for the slowest column. The file is written under a temporary name and renamed when
//! complete, so a failed or interrupted export never leaves a plausible-looking partial file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::Chunk;

/// How the files are written.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    pub zstd_level: i32,
    /// `gsot.*` key-value metadata.
    pub metadata: Vec<(String, String)>,
}

pub struct Sink {
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<SerializedFileWriter<BufWriter<File>>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    pending: Vec<Chunk>,
    pending_rows: usize,
    row_groups_started: usize,
    pub rows: u64,
}

/// A row group whose columns are being encoded on the rayon pool.
pub struct InFlight {
    rx: mpsc::Receiver<(
        usize,
        Result<Vec<ArrowColumnChunk>, parquet::errors::ParquetError>,
    )>,
    columns: usize,
    rows: usize,
}

/// Columns whose values rarely repeat: a dictionary page would only be built and then
/// abandoned, which costs time for nothing.
const NO_DICTIONARY: &[&str] = &["time", "ts_ns", "duration_ns", "value"];

fn properties(o: &SinkOptions) -> Result<WriterProperties, String> {
    let level = ZstdLevel::try_new(o.zstd_level).map_err(|e| format!("--zstd-level: {e}"))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(None)
        .set_created_by(format!(
            "analyze {} (parquet-rs)",
            env!("CARGO_PKG_VERSION")
        ))
        .set_key_value_metadata(Some(
            o.metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ));
    for name in NO_DICTIONARY {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    Ok(b.build())
}

/// How many Parquet leaf columns an Arrow column of type `t` has.
fn leaves(t: &DataType) -> usize {
    match t {
        DataType::Struct(fields) => fields.iter().map(|f| leaves(f.data_type())).sum(),
        _ => 1,
    }
}

impl Sink {
    pub fn create(path: &Path, schema: SchemaRef, o: &SinkOptions) -> Result<Sink, String> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp_path = path.with_file_name(tmp_name);
        let file = File::create(&tmp_path)
            .map_err(|e| format!("{}: cannot create: {e}", tmp_path.display()))?;
        let opts = ArrowWriterOptions::new().with_properties(properties(o)?);
        // ArrowWriter embeds the Arrow schema (ARROW:schema) so readers get back the exact
        // types (timezone, dictionaries, unsigned widths); then its low-level parts are used to
        // encode columns in parallel.
        let (writer, factory) = ArrowWriter::try_new_with_options(
            BufWriter::with_capacity(1 << 20, file),
            schema.clone(),
            opts,
        )
        .and_then(|w| w.into_serialized_writer())
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Sink {
            final_path: path.to_path_buf(),
            tmp_path,
            writer: Some(writer),
            factory,
            schema,
            pending: Vec::new(),
            pending_rows: 0,
            row_groups_started: 0,
            rows: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.final_path
    }

    pub fn push(&mut self, chunk: Chunk) {
        self.pending_rows += chunk.rows;
        self.pending.push(chunk);
    }

    pub fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    /// Takes the buffered chunks, to be written by [`Sink::write_row_group`].
    pub fn take_pending(&mut self) -> Vec<Chunk> {
        self.pending_rows = 0;
        std::mem::take(&mut self.pending)
    }

    /// Starts encoding `chunks` as the next row group: one rayon task per column, so the
    /// caller can go on decoding (and start the next row group) while they run. Row groups
    /// must be finished in the order they were started.
    pub fn start_row_group(&mut self, chunks: Vec<Chunk>) -> Result<InFlight, String> {
        let rows: usize = chunks.iter().map(|c| c.rows).sum();
        let writers = self
            .factory
            .create_column_writers(self.row_groups_started)
            .map_err(|e| format!("{}: {e}", self.final_path.display()))?;
        self.row_groups_started += 1;
        // The writers are one per leaf, in schema order: each field takes as many as it has.
        let mut writers = writers.into_iter();
        let per_field: Vec<Vec<_>> = self
            .schema
            .fields()
            .iter()
            .map(|f| writers.by_ref().take(leaves(f.data_type())).collect())
            .collect();
        let columns = per_field.len();
        let chunks = Arc::new(chunks);
        let (tx, rx) = mpsc::channel();
        let mut tasks: Vec<_> = per_field.into_iter().enumerate().collect();
        // The value bytes take longest to compress: start them first so they do not end up
        // alone at the end of the row group while the other core waits.
        tasks.sort_by_key(|(ci, _)| self.schema.field(*ci).name() != "value");
        for (ci, mut ws) in tasks {
            let (tx, chunks) = (tx.clone(), chunks.clone());
            let field = self.schema.fields()[ci].clone();
            rayon::spawn(move || {
                let r = (|| {
                    for c in chunks.iter() {
                        for (w, leaf) in ws.iter_mut().zip(compute_leaves(&field, &c.columns[ci])?)
                        {
                            w.write(&leaf)?;
                        }
                    }
                    ws.into_iter().map(|w| w.close()).collect()
                })();
                // The receiver is gone only if the export already failed.
                let _ = tx.send((ci, r));
            });
        }
        Ok(InFlight { rx, columns, rows })
    }

    /// Waits for a started row group's columns and appends them to the file in schema order.
    pub fn finish_row_group(&mut self, f: InFlight) -> Result<(), String> {
        let err = |e: parquet::errors::ParquetError| format!("{}: {e}", self.final_path.display());
        let mut slots: Vec<Option<Vec<ArrowColumnChunk>>> = (0..f.columns).map(|_| None).collect();
        for _ in 0..f.columns {
            let (ci, r) = f
                .rx
                .recv()
                .map_err(|_| format!("{}: a column encoder stopped", self.final_path.display()))?;
            slots[ci] = Some(r.map_err(err)?);
        }
        let writer = self
            .writer
            .as_mut()
            .expect("a sink is not used after finish");
        let mut rg = writer.next_row_group().map_err(err)?;
        for c in slots.into_iter().flatten().flatten() {
            c.append_to_row_group(&mut rg).map_err(err)?;
        }
        rg.close().map_err(err)?;
        self.rows += f.rows as u64;
        Ok(())
    }

    /// Encodes and appends `chunks` as one row group, waiting for it.
    pub fn write_row_group(&mut self, chunks: Vec<Chunk>) -> Result<(), String> {
        if chunks.iter().all(|c| c.rows == 0) {
            return Ok(());
        }
        let f = self.start_row_group(chunks)?;
        self.finish_row_group(f)
    }

    /// Writes what is buffered, closes the file and gives it its final name.
    pub fn finish(mut self) -> Result<u64, String> {
        let pending = self.take_pending();
        let r = self.write_row_group(pending).and_then(|()| {
            let writer = self.writer.take().expect("finish runs once");
            writer
                .close()
                .map_err(|e| format!("{}: {e}", self.final_path.display()))?;
            std::fs::rename(&self.tmp_path, &self.final_path).map_err(|e| {
                format!(
                    "{}: cannot rename into place: {e}",
                    self.final_path.display()
                )
            })
        });
        match r {
            Ok(()) => Ok(self.rows),
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp_path);
                Err(e)
            }
        }
    }

    /// Drops an unfinished file (after an error elsewhere).
    pub fn abandon(mut self) {
        self.writer = None;
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}
