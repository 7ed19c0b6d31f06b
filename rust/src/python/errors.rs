//! Conversion of the crate's one error type into Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::error::Error;

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::InvalidArgument(msg) => PyValueError::new_err(msg),
        }
    }
}
