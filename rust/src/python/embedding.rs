//! `embeddings_f32_bytes_many(...)`: a whole save batch of embeddings as float32 bytes in one call.
//!
//! No GIL release: every step reads Python float objects, which needs the GIL, and the
//! arithmetic beside it (a compare and a cast per value) is a few percent of that read.
//! Each `bytes` object is written in place while its list is read: no intermediate copy.
//!
//! A large batch is read by two threads at once while this call keeps holding the GIL: the
//! reads are of cold float objects (DRAM latency, not arithmetic), and a second core doubles
//! the reads in flight. The GIL held throughout is what makes that sound: no Python code can
//! run meanwhile (the module declares `gil_used`, so a free-threaded interpreter keeps its
//! GIL on), so no list is resized and no float is freed while the helper reads them; it only
//! reads (types, values, list slots) and never touches a reference count.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::embedding::{F32Writer, Problem};

/// Why one embedding was refused, in the words of the Python twin (`_records.py`).
fn reason_of(py: Python<'_>, err: PyErr) -> PyResult<String> {
    let text = err.value(py).str()?.to_string();
    if err.is_instance_of::<PyTypeError>(py) {
        Ok(format!("must be a list of numbers: {text}"))
    } else if err.is_instance_of::<PyValueError>(py) {
        Ok(text)
    } else {
        Err(err) // MemoryError, KeyboardInterrupt...: not a verdict on the data
    }
}

/// One embedding's bytes and the verdict on its values.
type Encoded<'py> = (Bound<'py, PyBytes>, Result<(), Problem>);

/// How far ahead (in list items) the float objects are prefetched. A save batch's floats are
/// cold (the embedder wrote them long before) and spread over pymalloc pools, across pages the
/// hardware prefetcher does not follow: 100 x 3072 cold took 1.36 ms without, 1.13 ms with a
/// distance of 96 (256: the same; 16: 1.26), measured interleaved on the Intel Xeon.
const PREFETCH_AHEAD: usize = 96;

/// A hint to load `p`'s cache line; it changes no result (and does nothing off x86-64).
#[inline(always)]
fn prefetch(p: *const pyo3::ffi::PyObject) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint, never a load: it cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reads the `n` items of the exact list `list` into `out` (4 bytes each); `None` when an item is
/// not an exact float (the caller takes the general path), else the verdict on the values.
///
/// # Safety
/// `list` is an exact `list` of length `n`, `out` holds `4 * n` writable bytes that nothing else
/// touches, and the GIL is held (by this thread or by the one that runs this call) for the whole
/// call, with no Python code running: then every item pointer is valid and no item changes.
unsafe fn read_floats(list: *mut pyo3::ffi::PyObject, n: usize, out: &mut [u8]) -> Option<Result<(), Problem>> {
    let mut writer = F32Writer::new(out);
    let float_type = std::ptr::addr_of_mut!(pyo3::ffi::PyFloat_Type);
    for i in 0..n {
        if i + PREFETCH_AHEAD < n {
            prefetch(pyo3::ffi::PyList_GET_ITEM(list, (i + PREFETCH_AHEAD) as pyo3::ffi::Py_ssize_t));
        }
        let item = pyo3::ffi::PyList_GET_ITEM(list, i as pyo3::ffi::Py_ssize_t);
        if pyo3::ffi::Py_TYPE(item) != float_type {
            return None;
        }
        writer.push(pyo3::ffi::PyFloat_AS_DOUBLE(item));
    }
    Some(writer.finish())
}

/// The fast path: an exact `list` of exact `float`s read in place into a new `bytes`. `None` when an
/// item is anything else (an int, a bool, a numpy scalar): the caller takes the general path, which
/// may run Python code (`__float__`), so it is never run while this loop holds raw item pointers.
fn from_list<'py>(py: Python<'py>, list: &Bound<'py, PyList>) -> PyResult<Option<Encoded<'py>>> {
    let n = list.len();
    let mut verdict = None;
    let bytes = PyBytes::new_with(py, n * 4, |buf| {
        // SAFETY: `list` is an exact list of length `n` and we hold the GIL; nothing in this
        // call runs Python code; `buf` is the new object's own `4 * n` bytes.
        verdict = unsafe { read_floats(list.as_ptr(), n, buf) };
        Ok(())
    })?;
    Ok(verdict.map(|v| (bytes, v)))
}

/// Floats in a batch from which it is read by two threads (below, one thread: waking the helper
/// costs more than it saves). 100 x 3072 cold floats: 1.3 ms on one thread of the Intel Xeon.
const PARALLEL_MIN_FLOATS: usize = 64 * 1024;
/// Lists per chunk the threads claim (a late helper costs at most one chunk of waiting).
const LISTS_PER_CHUNK: usize = 8;

/// Batches read on two threads in this process (`embedding_parallel_reads()`: tests, stats).
static PARALLEL_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many save batches this process has read on two threads so far.
#[pyfunction]
fn embedding_parallel_reads() -> u64 {
    PARALLEL_READS.load(std::sync::atomic::Ordering::Relaxed)
}

/// One embedding of the batch: its list, its length and the new `bytes` object being filled.
struct Job<'py> {
    list: Bound<'py, PyList>,
    bytes: Bound<'py, PyBytes>,
}

/// The fast path for every exact list of `embeddings` at once, on two threads: per embedding its
/// `bytes` and verdict, `None` where the general path must run (not an exact list of floats).
fn read_all_parallel<'py>(py: Python<'py>, embeddings: &Bound<'py, PyList>) -> PyResult<Vec<Option<Encoded<'py>>>> {
    let mut jobs: Vec<Option<Job<'py>>> = Vec::with_capacity(embeddings.len());
    for emb in embeddings.iter() {
        jobs.push(match emb.cast_exact::<PyList>() {
            Ok(list) => {
                let bytes = PyBytes::new_with(py, list.len() * 4, |_| Ok(()))?;
                Some(Job { list: list.clone(), bytes })
            }
            Err(_) => None,
        });
    }
    // (list pointer, items, buffer pointer) as integers: the helper thread gets no Python handle
    let raw: Vec<Option<(usize, usize, usize)>> = jobs
        .iter()
        .map(|job| {
            job.as_ref().map(|j| {
                // SAFETY: `j.bytes` is a live bytes object; its buffer stays put while we hold it.
                let buf = unsafe { pyo3::ffi::PyBytes_AsString(j.bytes.as_ptr()) } as usize;
                (j.list.as_ptr() as usize, j.list.len(), buf)
            })
        })
        .collect();
    let chunks = raw.len().div_ceil(LISTS_PER_CHUNK);
    PARALLEL_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let verdicts: Vec<Vec<Option<Result<(), Problem>>>> =
        crate::vector::pool::map_chunks(raw.len(), chunks, 2, |start, end| {
            raw[start..end]
                .iter()
                .map(|job| {
                    job.and_then(|(list, n, buf)| {
                        // SAFETY: this call's thread holds the GIL until `map_chunks` returns and runs
                        // no Python code meanwhile; `list` is an exact list of `n` items (read under
                        // the GIL just above, nothing can resize it since); `buf` is the `4 * n` bytes
                        // of a new bytes object only this job writes (each job is in one chunk).
                        unsafe {
                            let out = std::slice::from_raw_parts_mut(buf as *mut u8, n * 4);
                            read_floats(list as *mut pyo3::ffi::PyObject, n, out)
                        }
                    })
                })
                .collect()
        });
    Ok(jobs
        .into_iter()
        .zip(verdicts.into_iter().flatten())
        .map(|(job, verdict)| match (job, verdict) {
            (Some(j), Some(v)) => Some((j.bytes, v)),
            _ => None,
        })
        .collect())
}

/// Float32 bytes of each embedding, in order: `(blobs, -1, "")`, or `(blobs before it, i, reason)`
/// for the first embedding `i` that is refused (NaN/infinite, beyond float32, or not numbers).
#[pyfunction]
fn embeddings_f32_bytes_many<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyList>,
) -> PyResult<(Vec<Bound<'py, PyBytes>>, i64, String)> {
    super::errors::no_panic(|| {
        let floats: usize = embeddings.iter().map(|e| e.cast_exact::<PyList>().map(|l| l.len()).unwrap_or(0)).sum();
        let mut read = if floats >= PARALLEL_MIN_FLOATS && crate::vector::pool::capacity() > 1 {
            read_all_parallel(py, embeddings)?
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(embeddings.len());
        for (i, emb) in embeddings.iter().enumerate() {
            // Read ahead only up to the first embedding that needs the general path: that path may
            // run Python code (`__float__`), so every list after it is read again afterwards, as
            // the one-by-one loop would read it.
            let ahead = read.get_mut(i).and_then(Option::take);
            if ahead.is_none() {
                read.clear();
            }
            let fast = match ahead {
                Some(done) => Some(done),
                None => match emb.cast_exact::<PyList>() {
                    Ok(list) => from_list(py, list)?,
                    Err(_) => None,
                },
            };
            let (bytes, verdict) = match fast {
                Some(done) => done,
                None => match emb.extract::<Vec<f64>>() {
                    Ok(values) => {
                        let verdict = crate::embedding::encode(&values);
                        match verdict {
                            Ok(raw) => (PyBytes::new(py, &raw), Ok(())),
                            Err(problem) => (PyBytes::new(py, b""), Err(problem)),
                        }
                    }
                    Err(err) => return Ok((out, i as i64, reason_of(py, err)?)),
                },
            };
            if let Err(problem) = verdict {
                return Ok((out, i as i64, problem.message().to_string()));
            }
            out.push(bytes);
        }
        Ok((out, -1, String::new()))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(embeddings_f32_bytes_many, m)?)?;
    m.add_function(wrap_pyfunction!(embedding_parallel_reads, m)?)?;
    Ok(())
}
