//! PyO3 glue: one `#[pymodule]` that registers each component's functions.
//! Components add a `register(m)` call here; their logic stays in plain Rust.

use pyo3::prelude::*;

mod buildinfo;
mod embedding;
mod errors;
mod fanout;
mod message;
mod record_row;
mod sqlpool;
mod toolguard;
mod vector;

// The module holds the GIL-protected state PyO3 expects and has not been tested
// free-threaded, so it says so instead of inheriting a default.
#[pymodule(gil_used = true)]
fn _speedups(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::buildinfo::VERSION)?;
    buildinfo::register(m)?;
    embedding::register(m)?;
    message::register(m)?;
    record_row::register(m)?;
    sqlpool::register(m)?;
    toolguard::register(m)?;
    fanout::register(m)?;
    vector::register(m)?;
    Ok(())
}
