//! `SqlitePool` / `SqliteConn` for Python: convert values like CPython's `sqlite3`,
//! run statements with the GIL released, raise `sqlite3`'s own exception classes.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rusqlite::ffi;
use rusqlite::types::Value;

use crate::sqlpool::{self, Cell, DbError, Param, Params, PoolConfig, PooledConn, Rows, SqlPool};

/// A parameter that could not be converted; raised only if the statement binds it.
enum BadParam {
    Ready(PyErr),
    Unsupported(String),
}

/// Converts Python parameters, remembering conversion errors for [`raise`].
#[derive(Default)]
struct Binder {
    bad: Vec<BadParam>,
}

static ADAPT: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

fn sqlite3_adapt(py: Python<'_>) -> PyResult<&(Py<PyAny>, Py<PyAny>)> {
    ADAPT.get_or_try_init(py, || {
        let module = py.import("sqlite3")?;
        Ok((module.getattr("adapt")?.unbind(), module.getattr("PrepareProtocol")?.unbind()))
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    // CPython's message uses tp_name (e.g. 'decimal.Decimal'), not __name__.
    // SAFETY: `obj` is live while we hold it (GIL held), so its type object is live too,
    // and CPython guarantees tp_name is a NUL-terminated string for every type.
    unsafe {
        let tp = pyo3::ffi::Py_TYPE(obj.as_ptr());
        CStr::from_ptr((*tp).tp_name).to_string_lossy().into_owned()
    }
}

impl Binder {
    fn invalid(&mut self, bad: BadParam) -> Param {
        self.bad.push(bad);
        Param::Invalid(self.bad.len() - 1)
    }

    fn param(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<Param> {
        let py = obj.py();
        if obj.is_none() {
            return Ok(Param::Value(Value::Null));
        }
        if obj.is_exact_instance_of::<PyInt>() {
            return Ok(self.int(obj));
        }
        if obj.is_exact_instance_of::<PyFloat>() {
            return Ok(Param::Value(Value::Real(obj.extract::<f64>()?)));
        }
        if obj.is_exact_instance_of::<PyString>() {
            return Ok(self.text(obj));
        }
        if let Ok(bytes) = obj.cast_exact::<PyBytes>() {
            return Ok(Param::Value(Value::Blob(bytes.as_bytes().to_vec())));
        }
        // Everything else goes through sqlite3's adapter registry, as CPython does.
        let (adapt, protocol) = sqlite3_adapt(py)?;
        let adapted = adapt.bind(py).call1((obj, protocol.bind(py), obj))?;
        if adapted.is_none() {
            Ok(Param::Value(Value::Null))
        } else if adapted.is_instance_of::<PyInt>() {
            Ok(self.int(&adapted))
        } else if adapted.is_instance_of::<PyFloat>() {
            Ok(Param::Value(Value::Real(adapted.extract::<f64>()?)))
        } else if adapted.is_instance_of::<PyString>() {
            Ok(self.text(&adapted))
        // SAFETY: `adapted` is a live object we hold a reference to, with the GIL held;
        // PyObject_CheckBuffer only reads its type's buffer slot and cannot fail.
        } else if unsafe { pyo3::ffi::PyObject_CheckBuffer(adapted.as_ptr()) } == 1 {
            let raw = py.get_type::<PyBytes>().call1((&adapted,))?;
            Ok(Param::Value(Value::Blob(raw.cast::<PyBytes>()?.as_bytes().to_vec())))
        } else {
            Ok(self.invalid(BadParam::Unsupported(type_name(&adapted))))
        }
    }

    fn int(&mut self, obj: &Bound<'_, PyAny>) -> Param {
        match obj.extract::<i64>() {
            Ok(i) => Param::Value(Value::Integer(i)),
            Err(_) => self.invalid(BadParam::Ready(PyOverflowError::new_err(
                "Python int too large to convert to SQLite INTEGER",
            ))),
        }
    }

    fn text(&mut self, obj: &Bound<'_, PyAny>) -> Param {
        match obj.cast::<PyString>().map_err(PyErr::from).and_then(|s| s.to_str().map(str::to_owned)) {
            Ok(s) => Param::Value(Value::Text(s)),
            Err(err) => self.invalid(BadParam::Ready(err)),
        }
    }

    /// One statement's parameters: a sequence binds by position, a dict by name.
    fn params(&mut self, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Params> {
        let Some(obj) = obj else { return Ok(Params::none()) };
        if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
            return tuple.iter().map(|v| self.param(&v)).collect::<PyResult<_>>().map(Params::Positional);
        }
        if let Ok(list) = obj.cast_exact::<PyList>() {
            return list.iter().map(|v| self.param(&v)).collect::<PyResult<_>>().map(Params::Positional);
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            let mut named = HashMap::with_capacity(dict.len());
            // A snapshot of the items: a `__conform__` run by `self.param` may resize the
            // dict, and pyo3's live dict iterator would panic on that.
            for item in dict.items().iter() {
                let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
                if let Ok(key) = key.cast::<PyString>() {
                    named.insert(key.to_str()?.to_owned(), self.param(&value)?);
                }
            }
            return Ok(Params::Named(named));
        }
        // SAFETY: `obj` is a live object borrowed for this call, with the GIL held;
        // PySequence_Check only reads its type slots and cannot fail.
        if unsafe { pyo3::ffi::PySequence_Check(obj.as_ptr()) } == 1 {
            let len = obj.len()?;
            let mut values = Vec::with_capacity(len);
            for i in 0..len {
                values.push(self.param(&obj.get_item(i)?)?);
            }
            return Ok(Params::Positional(values));
        }
        Err(sqlite3_error(obj.py(), "ProgrammingError", "parameters are of unsupported type".into(), None))
    }

    /// The Python exception for a [`DbError`], using the recorded conversion errors.
    fn raise(&mut self, py: Python<'_>, err: DbError) -> PyErr {
        match err {
            DbError::InvalidParam { token, position } => {
                match std::mem::replace(&mut self.bad[token], BadParam::Unsupported(String::new())) {
                    BadParam::Ready(err) => err,
                    BadParam::Unsupported(name) => sqlite3_error(
                        py,
                        "ProgrammingError",
                        format!("Error binding parameter {position}: type '{name}' is not supported"),
                        None,
                    ),
                }
            }
            other => db_error(py, other),
        }
    }
}

/// Build an instance of `sqlite3.<class_name>`; 3.11+ also carries `sqlite_errorcode`.
fn sqlite3_error(py: Python<'_>, class_name: &str, message: String, code: Option<i32>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = py.import("sqlite3")?.getattr(class_name)?.call1((message.clone(),))?;
        if let Some(code) = code {
            if py.version_info() >= (3, 11) {
                exc.setattr("sqlite_errorcode", code)?;
            }
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// CPython's `_pysqlite_seterror` table: SQLite result code -> sqlite3 exception class.
fn class_for(code: i32) -> &'static str {
    match code {
        ffi::SQLITE_INTERNAL | ffi::SQLITE_NOTFOUND => "InternalError",
        ffi::SQLITE_ERROR
        | ffi::SQLITE_PERM
        | ffi::SQLITE_ABORT
        | ffi::SQLITE_BUSY
        | ffi::SQLITE_LOCKED
        | ffi::SQLITE_READONLY
        | ffi::SQLITE_INTERRUPT
        | ffi::SQLITE_IOERR
        | ffi::SQLITE_FULL
        | ffi::SQLITE_CANTOPEN
        | ffi::SQLITE_PROTOCOL
        | ffi::SQLITE_EMPTY
        | ffi::SQLITE_SCHEMA => "OperationalError",
        ffi::SQLITE_TOOBIG => "DataError",
        ffi::SQLITE_CONSTRAINT | ffi::SQLITE_MISMATCH => "IntegrityError",
        ffi::SQLITE_MISUSE | ffi::SQLITE_RANGE => "InterfaceError",
        _ => "DatabaseError",
    }
}

fn db_error(py: Python<'_>, err: DbError) -> PyErr {
    match err {
        DbError::Sqlite { code, .. } if code == ffi::SQLITE_NOMEM => PyMemoryError::new_err(()),
        DbError::Sqlite { code, extended, message } => sqlite3_error(py, class_for(code), message, Some(extended)),
        DbError::Programming(message) => sqlite3_error(py, "ProgrammingError", message, None),
        DbError::Pool(message) => sqlite3_error(py, "OperationalError", message, None),
        DbError::InvalidParam { position, .. } => {
            sqlite3_error(py, "ProgrammingError", format!("Error binding parameter {position}"), None)
        }
    }
}

fn cell_to_py<'py>(py: Python<'py>, cell: &Cell, column: &str) -> PyResult<Bound<'py, PyAny>> {
    Ok(match cell {
        Cell::Null => py.None().into_bound(py),
        Cell::Integer(i) => i.into_pyobject(py)?.into_any(),
        Cell::Real(f) => PyFloat::new(py, *f).into_any(),
        Cell::Blob(b) => PyBytes::new(py, b).into_any(),
        Cell::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => PyString::new(py, s).into_any(),
            Err(_) => {
                return Err(sqlite3_error(
                    py,
                    "OperationalError",
                    format!("Could not decode to UTF-8 column '{column}' with text '{}'", String::from_utf8_lossy(t)),
                    None,
                ))
            }
        },
    })
}

fn row_to_py<'py>(
    py: Python<'py>,
    rows: &Rows,
    index: usize,
    names: Option<&[Bound<'py, PyString>]>,
) -> PyResult<Bound<'py, PyAny>> {
    let width = rows.columns.len();
    let cells = &rows.cells[index * width..(index + 1) * width];
    match names {
        Some(names) => {
            let dict = PyDict::new(py);
            for (i, cell) in cells.iter().enumerate() {
                dict.set_item(&names[i], cell_to_py(py, cell, &rows.columns[i])?)?;
            }
            Ok(dict.into_any())
        }
        None => {
            let values = cells
                .iter()
                .enumerate()
                .map(|(i, c)| cell_to_py(py, c, &rows.columns[i]))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyTuple::new(py, values)?.into_any())
        }
    }
}

fn rows_to_py<'py>(py: Python<'py>, rows: &Rows, as_dict: bool) -> PyResult<Bound<'py, PyList>> {
    let names: Option<Vec<Bound<'py, PyString>>> =
        as_dict.then(|| rows.columns.iter().map(|c| PyString::new(py, c)).collect());
    let list = PyList::empty(py);
    for i in 0..rows.row_count() {
        list.append(row_to_py(py, rows, i, names.as_deref())?)?;
    }
    Ok(list)
}

fn first_row_to_py<'py>(py: Python<'py>, rows: &Rows, as_dict: bool) -> PyResult<Option<Bound<'py, PyAny>>> {
    if rows.row_count() == 0 {
        return Ok(None);
    }
    let names: Option<Vec<Bound<'py, PyString>>> =
        as_dict.then(|| rows.columns.iter().map(|c| PyString::new(py, c)).collect());
    row_to_py(py, rows, 0, names.as_deref()).map(Some)
}

fn closed_error(py: Python<'_>) -> PyErr {
    sqlite3_error(py, "ProgrammingError", "Cannot operate on a closed database.".into(), None)
}

fn batches(binder: &mut Binder, seq: &Bound<'_, PyAny>) -> PyResult<Vec<Params>> {
    seq.try_iter()?.map(|item| binder.params(Some(&item?))).collect()
}

/// What a pool and a checked-out connection share: run a statement on some
/// connection with the GIL released. Binding, running and raising are written
/// once on top of it.
trait StatementRunner {
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&rusqlite::Connection) -> sqlpool::DbResult<T> + Send,
    ) -> Result<T, DbError>;

    /// `(rowcount, lastrowid)` of one statement, like a sqlite3 cursor.
    fn run_execute(&self, py: Python<'_>, sql: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<(i64, i64)> {
        super::errors::no_panic(|| {
            let mut binder = Binder::default();
            let params = binder.params(params)?;
            let done = self.with_conn(py, |c| sqlpool::execute(c, sql, &params)).map_err(|e| binder.raise(py, e))?;
            Ok((done.rowcount, done.lastrowid))
        })
    }

    /// The rows of one query, at most `limit`.
    fn run_query(
        &self,
        py: Python<'_>,
        sql: &str,
        params: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
    ) -> PyResult<Rows> {
        super::errors::no_panic(|| {
            let mut binder = Binder::default();
            let params = binder.params(params)?;
            self.with_conn(py, |c| sqlpool::query(c, sql, &params, limit)).map_err(|e| binder.raise(py, e))
        })
    }
}

/// A pool of SQLite connections to one file; every call checks one out for its duration.
#[pyclass(frozen, module = "crewai_rust._speedups")]
pub struct SqlitePool {
    pool: Mutex<Option<Arc<SqlPool>>>,
}

impl SqlitePool {
    fn pool(&self, py: Python<'_>) -> PyResult<Arc<SqlPool>> {
        self.pool.lock().map_err(|_| closed_error(py))?.clone().ok_or_else(|| closed_error(py))
    }
}

impl StatementRunner for SqlitePool {
    /// Check out a connection and run `f` on it with the GIL released.
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&rusqlite::Connection) -> sqlpool::DbResult<T> + Send,
    ) -> Result<T, DbError> {
        let pool = self.pool(py).map_err(|_| DbError::Programming("Cannot operate on a closed database.".into()))?;
        py.detach(move || {
            let conn = pool.get()?;
            let result = f(&conn);
            sqlpool::reset_connection(&conn);
            result
        })
    }
}

#[pymethods]
impl SqlitePool {
    #[new]
    #[pyo3(signature = (path, pool_size=4, busy_timeout=30.0, statement_cache=256, synchronous="NORMAL"))]
    fn new(
        py: Python<'_>,
        path: &str,
        pool_size: u32,
        busy_timeout: f64,
        statement_cache: usize,
        synchronous: &str,
    ) -> PyResult<Self> {
        let config = PoolConfig {
            size: pool_size,
            busy_timeout: Duration::try_from_secs_f64(busy_timeout.max(0.0))
                .ok()
                .filter(|d| d.as_millis() <= i32::MAX as u128)
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "busy_timeout must be at most {} seconds, got {busy_timeout}",
                        i32::MAX / 1000
                    ))
                })?,
            statement_cache,
            synchronous: synchronous.to_owned(),
        };
        let pool = py.detach(|| SqlPool::open(path, &config)).map_err(|e| db_error(py, e))?;
        Ok(SqlitePool { pool: Mutex::new(Some(Arc::new(pool))) })
    }

    /// Run one statement; returns `(rowcount, lastrowid)` like a sqlite3 cursor.
    #[pyo3(signature = (sql, params=None))]
    fn execute(&self, py: Python<'_>, sql: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<(i64, i64)> {
        self.run_execute(py, sql, params)
    }

    /// Run one DML statement per parameter set in one transaction; returns rows changed.
    fn executemany(&self, py: Python<'_>, sql: &str, seq: &Bound<'_, PyAny>) -> PyResult<i64> {
        super::errors::no_panic(|| {
            let mut binder = Binder::default();
            let all = batches(&mut binder, seq)?;
            self.with_conn(py, |c| sqlpool::executemany_atomic(c, sql, &all)).map_err(|e| binder.raise(py, e))
        })
    }

    /// All rows, as tuples or (``as_dict``) dicts keyed by column name.
    #[pyo3(signature = (sql, params=None, as_dict=false))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        rows_to_py(py, &self.run_query(py, sql, params, None)?, as_dict)
    }

    /// The first row or None.
    #[pyo3(signature = (sql, params=None, as_dict=false))]
    fn query_one<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        first_row_to_py(py, &self.run_query(py, sql, params, Some(1))?, as_dict)
    }

    /// Hold one pooled connection (for a transaction) until `release()`.
    fn checkout(&self, py: Python<'_>) -> PyResult<SqliteConn> {
        let pool = self.pool(py)?;
        let conn = py.detach(move || pool.get()).map_err(|e| db_error(py, e))?;
        Ok(SqliteConn { conn: Mutex::new(Some(conn)) })
    }

    /// Close idle connections now; checked-out ones close when released.
    fn close(&self) {
        if let Ok(mut guard) = self.pool.lock() {
            guard.take();
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.pool.lock().map(|g| g.is_none()).unwrap_or(true)
    }
}

/// One pooled connection checked out for a transaction.
#[pyclass(frozen, module = "crewai_rust._speedups")]
pub struct SqliteConn {
    conn: Mutex<Option<PooledConn>>,
}

impl StatementRunner for SqliteConn {
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&rusqlite::Connection) -> sqlpool::DbResult<T> + Send,
    ) -> Result<T, DbError> {
        py.detach(|| {
            let guard = self.conn.lock().map_err(|_| DbError::Programming("connection poisoned".into()))?;
            match guard.as_ref() {
                Some(conn) => f(conn),
                None => Err(DbError::Programming("Cannot operate on a released connection.".into())),
            }
        })
    }
}

#[pymethods]
impl SqliteConn {
    #[pyo3(signature = (sql, params=None))]
    fn execute(&self, py: Python<'_>, sql: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<(i64, i64)> {
        self.run_execute(py, sql, params)
    }

    fn executemany(&self, py: Python<'_>, sql: &str, seq: &Bound<'_, PyAny>) -> PyResult<i64> {
        super::errors::no_panic(|| {
            let mut binder = Binder::default();
            let all = batches(&mut binder, seq)?;
            self.with_conn(py, |c| sqlpool::executemany(c, sql, &all)).map_err(|e| binder.raise(py, e))
        })
    }

    #[pyo3(signature = (sql, params=None, as_dict=false))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        rows_to_py(py, &self.run_query(py, sql, params, None)?, as_dict)
    }

    #[pyo3(signature = (sql, params=None, as_dict=false))]
    fn query_one<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        first_row_to_py(py, &self.run_query(py, sql, params, Some(1))?, as_dict)
    }

    /// True while a transaction is open on this connection.
    #[getter]
    fn in_transaction(&self) -> bool {
        self.conn.lock().ok().and_then(|g| g.as_ref().map(|c| !c.is_autocommit())).unwrap_or(false)
    }

    /// Roll back anything left open and return the connection to its pool.
    fn release(&self, py: Python<'_>) {
        py.detach(|| {
            if let Ok(mut guard) = self.conn.lock() {
                if let Some(conn) = guard.take() {
                    sqlpool::reset_connection(&conn);
                }
            }
        })
    }
}

/// Version of the SQLite library the Rust twin runs on (`sqlite3.sqlite_version` for it).
#[pyfunction]
fn sqlite_version() -> String {
    sqlpool::library_version()
}

/// Address of `sqlite3_libversion` in the library the Rust twin runs on; equal to
/// the one `_sqlite3` resolves exactly when both twins share one SQLite instance.
#[pyfunction]
fn sqlite_library_address() -> usize {
    sqlpool::library_address()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SqlitePool>()?;
    m.add_class::<SqliteConn>()?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_library_address, m)?)?;
    Ok(())
}
