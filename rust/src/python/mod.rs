//! PyO3 glue: one `#[pymodule]` that registers each component's functions.
//! Components add a `register(m)` call here; their logic stays in plain Rust.

use pyo3::prelude::*;

mod buildinfo;
mod errors;
mod message;
mod sqlpool;
mod toolguard;
mod fanout;
mod vector;

#[pymodule]
fn _speedups(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::buildinfo::VERSION)?;
    buildinfo::register(m)?;
    message::register(m)?;
    sqlpool::register(m)?;
    toolguard::register(m)?;
    fanout::register(m)?;
    vector::register(m)?;
    Ok(())
}
