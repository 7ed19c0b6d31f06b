//! `build_info()` and `cpu_features()` for Python.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Facts about this compiled module, merged into `crewai_rust.build_info()`.
#[pyfunction]
fn build_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let info = PyDict::new(py);
    info.set_item("version", crate::buildinfo::VERSION)?;
    info.set_item("profile", crate::buildinfo::profile())?;
    info.set_item("cpu_features", crate::buildinfo::cpu_features())?;
    Ok(info)
}

/// SIMD features of this CPU that the kernels can use, sorted.
#[pyfunction]
fn cpu_features() -> Vec<&'static str> {
    crate::buildinfo::cpu_features()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(build_info, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    Ok(())
}
