//! PyO3 glue: one `#[pymodule]` that registers each component's functions.
//! Components add a `register(m)` call here; their logic stays in plain Rust.

use pyo3::prelude::*;

mod buildinfo;
mod errors;
mod vector;

#[pymodule]
fn _speedups(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::buildinfo::VERSION)?;
    buildinfo::register(m)?;
    vector::register(m)?;
    Ok(())
}
