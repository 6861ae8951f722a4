//! The export's rows in memory, for the Python reader (`python/`, `gsot.read`): the same
//! files in the same order, the same filters and the same [`block_chunks`] as
//! `analyze export`, handed over as Arrow record batches instead of Parquet row groups.
//!
//! Damage is the caller's choice: by default a damaged file is an error naming the file and
//! the offset; with `recover` every complete block is read and each thing skipped is
//! returned as a problem line (what `analyze` says on stderr).

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use format::TraceReader;

use super::{
    Chunk, DECODED_COLUMNS_AT, FileColumns, Scratch, Selection, block_chunks, decoded, schema,
};
use crate::filter::FilterArgs;
use crate::input::Input;

/// What a read returns.
pub struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// What `recover` skipped, one line each, with file and offset.
    pub problems: Vec<String>,
}

/// Why a read failed: one line naming the file (and the offset, for damage).
#[derive(Debug)]
pub enum ReadError {
    /// A filter argument is not valid (`where`, `since`, `until`).
    Usage(String),
    /// A file cannot be read, or is damaged and `recover` was not asked for.
    Trace(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Usage(s) | ReadError::Trace(s) => f.write_str(s),
        }
    }
}

/// Opens `p`; a file that needed a scan (no intact index) is damaged.
fn open(p: &PathBuf, recover: bool, problems: &mut Vec<String>) -> Result<Input, ReadError> {
    let path = p.display().to_string();
    let reader = TraceReader::open(p).map_err(|e| ReadError::Trace(format!("{path}: {e}")))?;
    if let Some(rec) = reader.recovery() {
        let what = format!(
            "{path}: damaged: {}; its complete blocks end at offset {}",
            rec.reason, rec.stopped_at
        );
        if !recover {
            return Err(ReadError::Trace(format!(
                "{what} (recover=True reads them)"
            )));
        }
        problems.push(what);
        problems.extend(rec.problems.iter().map(|e| format!("{path}: skipped: {e}")));
    }
    Ok(Input { path, reader })
}

/// The indexes into [`schema`]`(false)` of the columns named, in the order named.
fn projection(names: &[String]) -> Result<Vec<usize>, ReadError> {
    let all = schema(false);
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let i = all.index_of(n).map_err(|_| {
            ReadError::Usage(format!(
                "columns: no column named {n:?} (README, \"Parquet schema\", lists them)"
            ))
        })?;
        if out.contains(&i) {
            return Err(ReadError::Usage(format!("columns: {n:?} named twice")));
        }
        out.push(i);
    }
    Ok(out)
}

/// Reads the selected events of `paths` (in order of their first event, like `analyze
/// export`) into record batches of [`schema`]`(false)`, one or more per block; with `columns`,
/// only the columns named, in that order (a decoded-value column not named is not built).
pub fn read(
    paths: &[PathBuf],
    filter: &FilterArgs,
    recover: bool,
    columns: Option<&[String]>,
) -> Result<Table, ReadError> {
    let keep = columns.map(projection).transpose()?;
    let mut problems = Vec::new();
    let inputs = paths
        .iter()
        .map(|p| open(p, recover, &mut problems))
        .collect::<Result<Vec<_>, _>>()?;
    let sel = Selection::new(&inputs, filter).map_err(|e| ReadError::Usage(e.0))?;
    let decoded = DECODED_COLUMNS_AT..DECODED_COLUMNS_AT + decoded::COLUMNS;
    let want_decoded = keep
        .as_ref()
        .is_none_or(|k| k.iter().any(|i| decoded.contains(i)));
    let schema = match &keep {
        Some(k) => Arc::new(schema(false).project(k).expect("indexes of the schema")),
        None => schema(false),
    };
    let mut batches = Vec::new();
    for &i in &sel.order {
        let inp = &inputs[i];
        let ff = sel.filter.for_file(&inp.reader);
        let file = FileColumns::of(inp.reader.header());
        let blocks = &sel.blocks[i];
        let results = inp.reader.par_map_blocks(blocks, |_, d| {
            let mut sc = Scratch::default();
            let chunks = block_chunks(d, &ff, &file, false, false, want_decoded, &mut sc);
            // Projected here, so the columns not kept are freed as each block is done.
            let columns = |c: Chunk| match &keep {
                Some(k) => k.iter().map(|&i| c.columns[i].clone()).collect(),
                None => c.columns,
            };
            chunks.into_iter().map(columns).collect::<Vec<_>>()
        });
        for (b, r) in blocks.iter().zip(results) {
            let chunks = match r {
                Ok(c) => c,
                Err(e) => {
                    let what = format!(
                        "{}: the block at offset {} ({} events): {e}",
                        inp.path, b.offset, b.event_count
                    );
                    if !recover {
                        return Err(ReadError::Trace(what));
                    }
                    problems.push(what);
                    continue;
                }
            };
            for columns in chunks {
                // The columns were built for this schema (block_chunks checks the count).
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .expect("a chunk's columns are the schema's");
                batches.push(batch);
            }
        }
    }
    Ok(Table {
        schema,
        batches,
        problems,
    })
}

/// `analyze info --format json` of `path`, as text; a damaged file is read as far as it goes
/// (its `problems` say what was skipped), as `analyze info` does.
pub fn info_json(path: &PathBuf) -> Result<String, ReadError> {
    let mut problems = Vec::new();
    let inp = open(path, true, &mut problems)?;
    Ok(crate::cmd::info::json_of(&inp))
}
