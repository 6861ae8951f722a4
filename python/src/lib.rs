//! `gsot`: trace files read into `pyarrow.Table`s with exactly the columns of `analyze
//! export` (README, "Parquet schema"), built by the same code (`analyze::export::table`) and
//! handed to pyarrow through the Arrow C stream interface, without a copy and without a second
//! decoder.
//!
//! ```python
//! import gsot
//! t = gsot.read("trace.gsot", where='optname == TCP_INFO', since="10s")
//! gsot.info("trace.gsot")["host_name"]
//! ```

use std::ffi::CString;
use std::path::PathBuf;

use analyze::export::table::{self, ReadError};
use analyze::filter::FilterArgs;
use arrow_array::{RecordBatchIterator, RecordBatchReader};
use arrow_pyarrow::PyArrowType;
use pyo3::create_exception;
use pyo3::exceptions::{PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDateTime, PyString};

create_exception!(
    gsot,
    TraceError,
    PyValueError,
    "A trace file cannot be read, or is damaged (the message names the file and the offset)."
);

fn to_py(e: ReadError) -> PyErr {
    match e {
        ReadError::Usage(s) => PyValueError::new_err(s),
        ReadError::Trace(s) => TraceError::new_err(s),
    }
}

/// One path or several: `str`, `os.PathLike`, or a sequence of them.
fn paths(p: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(one) = p.extract::<PathBuf>() {
        return Ok(vec![one]);
    }
    let many: Vec<PathBuf> = p.extract()?;
    if many.is_empty() {
        return Err(PyValueError::new_err("paths: no file given"));
    }
    Ok(many)
}

/// A time bound as `analyze --since` takes it: the same strings (`10s`, `-5s`, `12:00:01.5`,
/// `2026-01-01T12:00:01Z`), or a `datetime` (naive ones are UTC).
fn time_bound(t: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(t) = t else { return Ok(None) };
    if t.is_instance_of::<PyString>() {
        return Ok(Some(t.extract()?));
    }
    if t.is_instance_of::<PyDateTime>() {
        let py = t.py();
        let utc = py.import("datetime")?.getattr("timezone")?.getattr("utc")?;
        let aware = if t.getattr("tzinfo")?.is_none() {
            t.call_method("replace", (), Some(&[("tzinfo", &utc)].into_py_dict(py)?))?
        } else {
            t.call_method1("astimezone", (&utc,))?
        };
        let s: String = aware
            .call_method1("strftime", ("%Y-%m-%dT%H:%M:%S.%fZ",))?
            .extract()?;
        return Ok(Some(s));
    }
    Err(PyValueError::new_err(
        "since/until: a string as analyze takes it (10s, 2026-01-01T12:00:01Z) or a datetime",
    ))
}

/// read(paths, where=None, since=None, until=None, recover=False, columns=None) -> pyarrow.Table
///
/// The selected events of one or more trace files (in order of their first event), with the
/// columns of `analyze export`. `where`, `since` and `until` are `analyze`'s --where, --since
/// and --until. A damaged file raises TraceError naming the file and the offset, unless
/// `recover=True`: then every complete block is read and each thing skipped is a warning.
/// `columns`: only these columns, in this order (the decoded values, `value_text` and the
/// structs, are most of the work and are not built unless named).
#[pyfunction]
#[pyo3(signature = (paths, r#where=None, since=None, until=None, recover=false, columns=None))]
fn read(
    py: Python<'_>,
    paths: &Bound<'_, PyAny>,
    r#where: Option<String>,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    recover: bool,
    columns: Option<Vec<String>>,
) -> PyResult<Py<PyAny>> {
    let files = self::paths(paths)?;
    let filter = FilterArgs {
        where_expr: r#where,
        since: time_bound(since)?,
        until: time_bound(until)?,
        ..FilterArgs::default()
    };
    // Decoding runs on analyze's thread pool; other Python threads may run meanwhile.
    let t = py
        .detach(|| table::read(&files, &filter, recover, columns.as_deref()))
        .map_err(to_py)?;
    for p in &t.problems {
        let msg = CString::new(p.replace('\0', " ")).expect("NULs replaced");
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
    }
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
        t.batches.into_iter().map(Ok),
        t.schema,
    ));
    let stream = PyArrowType(reader).into_pyobject(py)?;
    Ok(stream.call_method0("read_all")?.unbind())
}

/// info(path) -> dict
///
/// What `analyze info --format json` says of one file: its header (host_name, capture_id,
/// kernel_release, boot_to_wall_ns, ...), time span, event and loss counts, processes, and the
/// problems of a damaged file.
#[pyfunction]
fn info(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let s = py.detach(|| table::info_json(&path)).map_err(to_py)?;
    Ok(py.import("json")?.call_method1("loads", (s,))?.unbind())
}

#[pymodule]
fn gsot(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add("TraceError", m.py().get_type::<TraceError>())?;
    Ok(())
}
