//! `memory_rows(records, blobs, dim, make)`: the stored rows of a save batch in one call.
//!
//! Twin of the per-record loop in `crewai_rust/memory/_records.py` (`_check_fields` + `_row`).
//! Each record gets either exactly the row the Python twin builds, or `None` when it holds
//! anything this fast path does not cover (a float or another type in its metadata, an aware
//! datetime, a subclass, a content it cannot prove non-blank, a bad blob...): the caller then
//! runs the Python twin on that record, which also raises its errors, in record order.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDateAccess, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTimeAccess, PyTuple,
    PyTzInfoAccess,
};

use crate::record_row::{has_alphanumeric, json_string, NaiveDateTime};

/// Deeper metadata goes to the Python twin (orjson refuses nesting past 254).
const MAX_DEPTH: usize = 64;

/// JSON of a value made only of dicts with str keys, lists, tuples, str, int (64-bit), bool
/// and None; `false` (output unspecified) for anything else.
fn json_value(out: &mut String, value: &Bound<'_, PyAny>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if value.is_none() {
        out.push_str("null");
    } else if let Ok(b) = value.cast_exact::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        match s.to_str() {
            Ok(text) => json_string(out, text),
            Err(_) => return false, // lone surrogates: the twin raises
        }
    } else if value.is_exact_instance_of::<PyInt>() {
        match value.extract::<i64>() {
            Ok(n) => out.push_str(&n.to_string()),
            Err(_) => return false,
        }
    } else if let Ok(dict) = value.cast_exact::<PyDict>() {
        out.push('{');
        for (k, (key, item)) in dict.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let Ok(key) = key.cast_exact::<PyString>() else { return false };
            let Ok(text) = key.to_str() else { return false };
            json_string(out, text);
            out.push(':');
            if !json_value(out, &item, depth + 1) {
                return false;
            }
        }
        out.push('}');
    } else if let Ok(list) = value.cast_exact::<PyList>() {
        return json_items(out, list.iter(), depth);
    } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        return json_items(out, tuple.iter(), depth);
    } else {
        return false;
    }
    true
}

fn json_items<'py>(out: &mut String, items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> bool {
    out.push('[');
    for (k, item) in items.enumerate() {
        if k > 0 {
            out.push(',');
        }
        if !json_value(out, &item, depth + 1) {
            return false;
        }
    }
    out.push(']');
    true
}

/// A naive `datetime` (exactly that type, no tzinfo), or `None`.
fn naive(value: &Bound<'_, PyAny>) -> Option<NaiveDateTime> {
    let dt = value.cast_exact::<PyDateTime>().ok()?;
    if dt.get_tzinfo().is_some() {
        return None;
    }
    Some(NaiveDateTime {
        year: dt.get_year(),
        month: dt.get_month(),
        day: dt.get_day(),
        hour: dt.get_hour(),
        minute: dt.get_minute(),
        second: dt.get_second(),
        microsecond: dt.get_microsecond(),
    })
}

/// An exact `str` attribute, or `None`.
fn exact_str<'py>(value: Bound<'py, PyAny>) -> Option<Bound<'py, PyString>> {
    value.cast_exact::<PyString>().ok().cloned()
}

/// The row of one record (its 12 columns, in `RecordRow` order), or `None` for the Python twin.
fn row_of<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyAny>,
    blob: &Bound<'py, PyAny>,
    dim: usize,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    macro_rules! attr {
        ($name:literal) => {
            match record.getattr(pyo3::intern!(py, $name)) {
                Ok(v) => v,
                Err(_) => return Ok(None), // the twin raises the same AttributeError
            }
        };
    }
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let Some(id) = exact_str(attr!("id")) else { return Ok(None) };
    let content = need!(exact_str(attr!("content")));
    if !has_alphanumeric(need!(content.to_str().ok())) {
        return Ok(None);
    }
    let scope = need!(exact_str(attr!("scope")));
    let categories = attr!("categories");
    let mut cats = String::new();
    let listed = if let Ok(list) = categories.cast_exact::<PyList>() {
        list.iter().all(|c| c.is_exact_instance_of::<PyString>()) && json_items(&mut cats, list.iter(), 0)
    } else if let Ok(tuple) = categories.cast_exact::<PyTuple>() {
        tuple.iter().all(|c| c.is_exact_instance_of::<PyString>()) && json_items(&mut cats, tuple.iter(), 0)
    } else {
        false
    };
    if !listed {
        return Ok(None);
    }
    let metadata = attr!("metadata");
    if !metadata.is_exact_instance_of::<PyDict>() {
        return Ok(None);
    }
    let mut meta = String::new();
    if !json_value(&mut meta, &metadata, 0) {
        return Ok(None);
    }
    let importance = attr!("importance");
    if !importance.is_exact_instance_of::<PyFloat>() {
        return Ok(None);
    }
    let created = need!(naive(&attr!("created_at")));
    let accessed = need!(naive(&attr!("last_accessed")));
    let source = attr!("source");
    let source = if source.is_none() { PyString::new(py, "").into_any() } else { need!(exact_str(source)).into_any() };
    let private = attr!("private");
    if !private.is_exact_instance_of::<PyBool>() {
        return Ok(None);
    }
    let embedding = if blob.is_none() {
        // the record had no (or an empty) embedding: zeros, as LanceDB stores
        let given = attr!("embedding");
        if given.is_truthy().unwrap_or(true) {
            return Ok(None);
        }
        PyBytes::new(py, &vec![0u8; dim * 4]).into_any()
    } else {
        let Ok(bytes) = blob.cast_exact::<PyBytes>() else { return Ok(None) };
        if bytes.as_bytes().len() != dim * 4 {
            return Ok(None); // the twin raises the dimension error
        }
        bytes.clone().into_any()
    };
    let columns: [Bound<'py, PyAny>; 12] = [
        id.into_any(),
        content.into_any(),
        scope.into_any(),
        PyString::new(py, &cats).into_any(),
        PyString::new(py, &meta).into_any(),
        importance,
        PyString::new(py, &created.isoformat()).into_any(),
        created.epoch_micros().into_pyobject(py)?.into_any(),
        PyString::new(py, &accessed.isoformat()).into_any(),
        source,
        private,
        embedding,
    ];
    Ok(Some(PyTuple::new(py, columns)?))
}

/// For each record (with its float32 blob, or `None` when it has no embedding): `make(columns)`
/// (the twin's `RecordRow`), or `None` where the Python twin must build (or refuse) it.
#[pyfunction]
fn memory_rows<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    blobs: &Bound<'py, PyList>,
    dim: usize,
    make: &Bound<'py, PyAny>,
) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    super::errors::no_panic(|| {
        let mut out = Vec::with_capacity(records.len());
        for (k, record) in records.iter().enumerate() {
            let blob = match blobs.get_item(k) {
                Ok(b) => b,
                Err(_) => {
                    out.push(None);
                    continue;
                }
            };
            out.push(match row_of(py, &record, &blob, dim)? {
                Some(columns) => Some(make.call1((columns,))?),
                None => None,
            });
        }
        Ok(out)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(memory_rows, m)?)?;
    Ok(())
}
