//! `vector_top_k(...)` for Python: zero-copy reads of numpy buffers, GIL released while scanning.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::vector::batch::top_k_many;
use crate::vector::rerank::{rerank, Candidates};
use crate::vector::shadow::{top_k_shadow, Shadow};
use crate::vector::{simd, threads as thread_policy, top_k, Metric, Search};

fn slice_of<'a, T: pyo3::buffer::Element>(buf: &'a PyBuffer<T>, what: &str) -> PyResult<&'a [T]> {
    let ptr =
        buf.as_slice_ptr().ok_or_else(|| PyValueError::new_err(format!("{what} must be a C-contiguous buffer")))?;
    // SAFETY: extracting `PyBuffer<T>` checked the element format and alignment, and
    // `as_slice_ptr` C-contiguity (the slice covers exactly `item_count` elements); `buf`
    // holds the buffer export, and with it a reference to the array, for as long as the
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

/// [`vector_top_k`] reading a float16 shadow (`halves` as uint16 bits plus its per-row
/// bound terms) and re-scoring in float32: the same rows, order and scores.
///
/// Same contract on the arrays as `vector_top_k` (read in place, GIL released).
#[pyfunction]
#[pyo3(signature = (matrix, sqnorms, n, query, rows, k, metric, halves, inv_scale, norm, err, threads=0))]
#[allow(clippy::too_many_arguments)]
fn vector_top_k_shadow(
    py: Python<'_>,
    matrix: PyBuffer<f32>,
    sqnorms: PyBuffer<f32>,
    n: usize,
    query: PyBuffer<f32>,
    rows: Option<PyBuffer<i64>>,
    k: usize,
    metric: u8,
    halves: PyBuffer<u16>,
    inv_scale: PyBuffer<f32>,
    norm: PyBuffer<f32>,
    err: PyBuffer<f32>,
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
        k: k.min(n),
        metric,
    };
    let shadow = Shadow {
        halves: slice_of(&halves, "halves")?,
        inv_scale: slice_of(&inv_scale, "inv_scale")?,
        norm: slice_of(&norm, "norm")?,
        err: slice_of(&err, "err")?,
    };
    let hits = super::errors::no_panic(|| Ok(py.detach(|| top_k_shadow(&search, &shadow, threads))?))?;
    Ok(hits.into_iter().map(|(r, s)| (r as i64, s)).unzip())
}

/// One `(rows, rank scores)` per row of `queries` (2-D float32), each what `vector_top_k` returns for it,
/// computed in one pass over the matrix.
#[pyfunction]
#[pyo3(signature = (matrix, sqnorms, n, queries, rows, k, metric, threads=0))]
#[allow(clippy::too_many_arguments)]
fn vector_top_k_many(
    py: Python<'_>,
    matrix: PyBuffer<f32>,
    sqnorms: PyBuffer<f32>,
    n: usize,
    queries: PyBuffer<f32>,
    rows: Option<PyBuffer<i64>>,
    k: usize,
    metric: u8,
    threads: usize,
) -> PyResult<Vec<(Vec<i64>, Vec<f32>)>> {
    if matrix.dimensions() != 2 || queries.dimensions() != 2 {
        return Err(PyValueError::new_err("matrix and queries must be two-dimensional"));
    }
    let dim = matrix.shape()[1];
    if queries.shape()[1] != dim {
        return Err(PyValueError::new_err(format!(
            "queries have {} values, the matrix rows have {dim}",
            queries.shape()[1]
        )));
    }
    let metric = Metric::from_code(metric)?;
    let all = slice_of(&queries, "queries")?;
    let search = Search {
        matrix: slice_of(&matrix, "matrix")?,
        dim,
        n,
        sqnorms: slice_of(&sqnorms, "sqnorms")?,
        query: &all[..dim.min(all.len())],
        rows: match &rows {
            Some(buf) => Some(slice_of(buf, "rows")?),
            None => None,
        },
        k: k.min(n),
        metric,
    };
    let hits = super::errors::no_panic(|| Ok(py.detach(|| top_k_many(&search, all, threads))?))?;
    Ok(hits.into_iter().map(|h| h.into_iter().map(|(r, s)| (r as i64, s)).unzip()).collect())
}

/// The float16 shadow of float32 rows (2-D): `(halves as uint16 bytes, inv_scale, norm, err as float32 bytes)`,
/// built exactly as `_vector_py.shadow_rows` builds it.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn vector_shadow_rows<'py>(
    py: Python<'py>,
    block: PyBuffer<f32>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    if block.dimensions() != 2 {
        return Err(PyValueError::new_err("block must be two-dimensional"));
    }
    let dim = block.shape()[1];
    let data = slice_of(&block, "block")?;
    let (halves, inv, norm, err) =
        super::errors::no_panic(|| Ok(py.detach(|| crate::vector::shadow::shadow_rows(data, dim))))?;
    // little-endian bytes, written straight into the bytes objects
    let h = PyBytes::new_with(py, halves.len() * 2, |buf| {
        for (dst, v) in buf.chunks_exact_mut(2).zip(&halves) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    })?;
    let f = |v: &[f32]| {
        PyBytes::new_with(py, v.len() * 4, |buf| {
            for (dst, x) in buf.chunks_exact_mut(4).zip(v) {
                dst.copy_from_slice(&x.to_le_bytes());
            }
            Ok(())
        })
    };
    Ok((h, f(&inv)?, f(&norm)?, f(&err)?))
}

/// Sum of the first `n` rows of `matrix` on `threads` threads: a pure streaming read, the
/// floor a scan of the same bytes can reach (benchmarks report scan rates beside it).
#[pyfunction]
#[pyo3(signature = (matrix, n, threads=1))]
fn vector_stream_read(py: Python<'_>, matrix: PyBuffer<f32>, n: usize, threads: usize) -> PyResult<f32> {
    if matrix.dimensions() != 2 || n > matrix.shape()[0] {
        return Err(PyValueError::new_err("matrix must be two-dimensional with at least n rows"));
    }
    let data = slice_of(&matrix, "matrix")?;
    let data = &data[..n * matrix.shape()[1]];
    let threads = threads.max(1);
    super::errors::no_panic(|| {
        Ok(py.detach(|| crate::vector::split(data.len(), threads, |a, b| simd::stream_sum(&data[a..b])).iter().sum()))
    })
}

/// Wrapping uint64 sum of each `block`-word block of `words` (1-D, a whole number of blocks or a
/// short last one) on `threads` threads, as little-endian uint64 bytes: the snapshot check,
/// twin of `_snapshot.block_sums`.
#[pyfunction]
#[pyo3(signature = (words, block, threads=1))]
fn snapshot_block_sums<'py>(
    py: Python<'py>,
    words: PyBuffer<u64>,
    block: usize,
    threads: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    if words.dimensions() != 1 || block == 0 {
        return Err(PyValueError::new_err("words must be one-dimensional and block positive"));
    }
    let data = slice_of(&words, "words")?;
    let sums = super::errors::no_panic(|| {
        Ok(py.detach(|| {
            crate::vector::blocksum::block_sums(data, block, threads.clamp(1, crate::vector::pool::capacity()))
        }))
    })?;
    PyBytes::new_with(py, sums.len() * 8, |buf| {
        for (dst, v) in buf.chunks_exact_mut(8).zip(&sums) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    })
}

/// The SIMD tier the kernels run on, and the scan throughput measured so far in this process
/// (per size class: 1 thread, all threads, and whether each prefetches).
#[pyfunction]
fn vector_kernel_info() -> (String, Vec<thread_policy::ClassRates>) {
    (simd::detected_tier().name().to_string(), thread_policy::measured())
}

/// Threads a parallel scan runs on (the caller plus the persistent workers, started by this call).
#[pyfunction]
fn vector_threads() -> usize {
    crate::vector::pool::capacity()
}

/// An embedding (sequence of numbers) as float32 bytes; NaN, infinities and float32 overflow raise ValueError.
#[pyfunction]
fn embedding_f32_bytes(py: Python<'_>, values: Vec<f64>) -> PyResult<Bound<'_, PyBytes>> {
    let bytes = crate::vector::f32_bytes(&values)?;
    Ok(PyBytes::new(py, &bytes))
}

/// The float64 re-rank of candidate `rows` (`_rerank.rerank`'s twin, the same bits):
/// `(rows, scores)` ordered by score descending, then by `seqs` ascending.
///
/// Same contract on the arrays as `vector_top_k` (read in place, GIL released).
#[pyfunction]
fn vector_rerank(
    py: Python<'_>,
    matrix: PyBuffer<f32>,
    seqs: PyBuffer<i64>,
    rows: PyBuffer<i64>,
    query: PyBuffer<f64>,
    metric: u8,
) -> PyResult<(Vec<i64>, Vec<f64>)> {
    if matrix.dimensions() != 2 {
        return Err(PyValueError::new_err("matrix must be two-dimensional"));
    }
    let candidates = Candidates {
        matrix: slice_of(&matrix, "matrix")?,
        dim: matrix.shape()[1],
        seqs: slice_of(&seqs, "seqs")?,
        rows: slice_of(&rows, "rows")?,
        query: slice_of(&query, "query")?,
        l2: Metric::from_code(metric)? == Metric::L2,
    };
    super::errors::no_panic(|| Ok(py.detach(|| rerank(&candidates))?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(vector_rerank, m)?)?;
    m.add_function(wrap_pyfunction!(vector_top_k, m)?)?;
    m.add_function(wrap_pyfunction!(vector_top_k_shadow, m)?)?;
    m.add_function(wrap_pyfunction!(vector_top_k_many, m)?)?;
    m.add_function(wrap_pyfunction!(vector_kernel_info, m)?)?;
    m.add_function(wrap_pyfunction!(vector_threads, m)?)?;
    m.add_function(wrap_pyfunction!(vector_stream_read, m)?)?;
    m.add_function(wrap_pyfunction!(vector_shadow_rows, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot_block_sums, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_f32_bytes, m)?)?;
    Ok(())
}
