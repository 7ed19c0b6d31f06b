//! Conversion of the crate's one error type into Python exceptions.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::InvalidArgument(msg) => PyValueError::new_err(msg),
        }
    }
}

/// Last resort at the Python boundary: a Rust panic becomes a `RuntimeError`
/// (an `Exception`), not pyo3's `PanicException` (a `BaseException` that
/// `except Exception` handlers, CrewAI's included, do not catch).
pub fn no_panic<T>(f: impl FnOnce() -> pyo3::PyResult<T>) -> pyo3::PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(PyRuntimeError::new_err(format!("crewai_rust internal error (please report it): {what}")))
        }
    }
}
