//! `embeddings_f32_bytes_many(...)`: a whole save batch of embeddings as float32 bytes in one call.
//!
//! No GIL release: every step reads Python float objects, which needs the GIL, and the
//! arithmetic beside it (a compare and a cast per value) is a few percent of that read.
//! Each `bytes` object is written in place while its list is read: no intermediate copy.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList};

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

/// The fast path: an exact `list` read item by item into a new `bytes`. `None` when an item is
/// not a number (or the list changed length while being read): the caller takes the general path.
fn from_list<'py>(py: Python<'py>, list: &Bound<'py, PyList>) -> PyResult<Option<(Bound<'py, PyBytes>, Result<(), Problem>)>> {
    let n = list.len();
    let mut verdict = Ok(());
    let mut complete = true;
    let bytes = PyBytes::new_with(py, n * 4, |buf| {
        let mut writer = F32Writer::new(buf);
        for item in list.iter() {
            if let Ok(f) = item.cast_exact::<PyFloat>() {
                writer.push(f.value());
            } else if let Ok(v) = item.extract::<f64>() {
                writer.push(v);
            } else {
                complete = false;
                break;
            }
        }
        complete &= writer.len() == n;
        verdict = writer.finish();
        Ok(())
    })?;
    Ok(if complete && list.len() == n { Some((bytes, verdict)) } else { None })
}

/// Float32 bytes of each embedding, in order: `(blobs, -1, "")`, or `(blobs before it, i, reason)`
/// for the first embedding `i` that is refused (NaN/infinite, beyond float32, or not numbers).
#[pyfunction]
fn embeddings_f32_bytes_many<'py>(
    py: Python<'py>,
    embeddings: &Bound<'py, PyList>,
) -> PyResult<(Vec<Bound<'py, PyBytes>>, i64, String)> {
    super::errors::no_panic(|| {
        let mut out = Vec::with_capacity(embeddings.len());
        for (i, emb) in embeddings.iter().enumerate() {
            let fast = match emb.cast_exact::<PyList>() {
                Ok(list) => from_list(py, list)?,
                Err(_) => None,
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
    Ok(())
}
