//! `vector_top_k(...)` for Python: zero-copy reads of numpy buffers, GIL released while scanning.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::vector::{top_k, Metric, Search};

fn slice_of<'a, T: pyo3::buffer::Element>(buf: &'a PyBuffer<T>, what: &str) -> PyResult<&'a [T]> {
    let ptr =
        buf.as_slice_ptr().ok_or_else(|| PyValueError::new_err(format!("{what} must be a C-contiguous buffer")))?;
    // SAFETY: extracting `PyBuffer<T>` checked the element format and alignment, and
    // `as_slice_ptr` C-contiguity (the slice covers exactly `item_count` elements); `buf` holds the buffer export, and with it a reference to the array, for as long as the
    // slice lives (the slice borrows `buf`). Memory held that way is not freed: numpy's
    // `resize` refuses while another reference exists, and a grown index gets a new array.
    // The slice is read with the GIL released, so the contract of `vector_top_k` is that
    // nobody writes the arrays or calls `resize(refcheck=False)` on them until it returns;
    // RustMemoryStorage meets it by holding its store lock around every search and every
    // write or growth of its index (see memory/_storage.py `search`).
    Ok(unsafe { ptr.as_ref() })
}

/// The `k` best rows of `matrix[:n]` (or of `rows`) for `query`: `(rows, rank scores)`, best first.
///
/// The arrays are read in place with the GIL released: the caller must not write them,
/// or resize them with `refcheck=False`, until this returns.
#[pyfunction]
#[pyo3(signature = (matrix, sqnorms, n, query, rows, k, metric, threads=0))]
#[allow(clippy::too_many_arguments)]
fn vector_top_k(
    py: Python<'_>,
    matrix: PyBuffer<f32>,
    sqnorms: PyBuffer<f32>,
    n: usize,
    query: PyBuffer<f32>,
    rows: Option<PyBuffer<i64>>,
    k: usize,
    metric: u8,
    threads: usize,
) -> PyResult<(Vec<i64>, Vec<f32>)> {
    if matrix.dimensions() != 2 {
        return Err(PyValueError::new_err("matrix must be two-dimensional"));
    }
    let dim = matrix.shape()[1];
    let metric = Metric::from_code(metric)?;
    let search = Search {
        matrix: slice_of(&matrix, "matrix")?,
        dim,
        n,
        sqnorms: slice_of(&sqnorms, "sqnorms")?,
        query: slice_of(&query, "query")?,
        rows: match &rows {
            Some(buf) => Some(slice_of(buf, "rows")?),
            None => None,
        },
        k: k.min(n), // never more hits than rows: a huge k must not size an allocation
        metric,
    };
    let hits = super::errors::no_panic(|| Ok(py.detach(|| top_k(&search, threads))?))?;
    Ok(hits.into_iter().map(|(r, s)| (r as i64, s)).unzip())
}

/// An embedding (sequence of numbers) as float32 bytes; NaN, infinities and float32 overflow raise ValueError.
#[pyfunction]
fn embedding_f32_bytes(py: Python<'_>, values: Vec<f64>) -> PyResult<Bound<'_, PyBytes>> {
    let bytes = crate::vector::f32_bytes(&values)?;
    Ok(PyBytes::new(py, &bytes))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vector_top_k, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_f32_bytes, m)?)?;
    Ok(())
}
