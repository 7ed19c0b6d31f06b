//! From Rust values to Python objects, and the bytes of the text arguments.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDateTime, PyDict, PyList, PyMemoryView, PyString, PyTzInfo};
use pyo3::IntoPyObjectExt;

use super::source::{format_error, type_label};
use crate::message::{checks, timestamp_fields, JsonValue};

pub fn to_python<'py>(py: Python<'py>, value: &JsonValue) -> PyResult<Bound<'py, PyAny>> {
    match value {
        JsonValue::Null => Ok(py.None().into_bound(py)),
        JsonValue::Bool(b) => b.into_bound_py_any(py),
        JsonValue::Int(v) => v.into_bound_py_any(py),
        JsonValue::UInt(v) => v.into_bound_py_any(py),
        JsonValue::Float(v) => v.into_bound_py_any(py),
        JsonValue::Str(s) => Ok(PyString::new(py, s).into_any()),
        JsonValue::Array(items) => Ok(list_to_python(py, items)?.into_any()),
        JsonValue::Object(items) => Ok(object_to_python(py, items)?.into_any()),
    }
}

pub fn object_to_python<'py>(py: Python<'py>, items: &[(String, JsonValue)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, item) in items {
        dict.set_item(key, to_python(py, item)?)?;
    }
    Ok(dict)
}

pub fn list_to_python<'py>(py: Python<'py>, items: &[JsonValue]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for item in items {
        list.append(to_python(py, item)?)?;
    }
    Ok(list)
}

/// An aware UTC datetime.
pub fn datetime<'py>(py: Python<'py>, us: i64) -> PyResult<Bound<'py, PyDateTime>> {
    let (year, month, day, hour, minute, second, micros) = timestamp_fields(us);
    let tz = PyTzInfo::utc(py)?.to_owned();
    PyDateTime::new(py, year as i32, month as u8, day as u8, hour as u8, minute as u8, second as u8, micros, Some(&tz))
}

/// Bytes of a `str`, `bytes`, `bytearray` or `memoryview`, as the Python twin accepts.
pub fn text_bytes(py: Python<'_>, text: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(s) = text.cast::<PyString>() {
        return match s.to_str() {
            Ok(t) => Ok(t.as_bytes().to_vec()),
            Err(_) => Err(format_error(py, checks::malformed("str is not valid UTF-8: surrogates not allowed"))),
        };
    }
    if let Ok(b) = text.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = text.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if text.is_instance_of::<PyMemoryView>() {
        return Ok(text.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!("{what}() takes str or bytes, not {}", type_label(text)?)))
}
