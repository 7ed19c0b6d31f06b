//! Conversion of the crate's one error type into Python exceptions.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::InvalidArgument(msg) => PyValueError::new_err(msg),
            Error::WrongType(msg) => PyTypeError::new_err(msg),
            Error::InvalidState(msg) => PyRuntimeError::new_err(msg),
        }
    }
}
