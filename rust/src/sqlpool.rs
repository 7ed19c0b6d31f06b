//! A pooled SQLite (r2d2 + rusqlite on the system libsqlite3) that behaves like Python's `sqlite3`.
//!
//! The Python glue converts arguments while holding the GIL and then calls the
//! functions here with the GIL released. Parameter binding, row counts and the
//! error cases (wrong number of bindings, missing named values, several
//! statements at once, `executemany` on a non-DML statement) follow CPython's
//! `_sqlite` module so the two twins raise the same things on the same SQL.

use std::collections::HashMap;
use std::time::Duration;

use r2d2::{ManageConnection, Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{ffi, CachedStatement, Connection, OpenFlags, Statement};

/// A pooled connection as handed out by [`SqlPool::get`].
pub type PooledConn = PooledConnection<SqliteConnectionManager>;

/// A bound parameter: a SQLite value, or a token naming a conversion error the
/// glue recorded (raised only if the statement actually binds it, as CPython does).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Value(Value),
    Invalid(usize),
}

/// Parameters of one statement: positional (`?`) or by name (`:name`).
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    Positional(Vec<Param>),
    Named(HashMap<String, Param>),
}

impl Params {
    pub fn none() -> Self {
        Params::Positional(Vec::new())
    }
}

/// One result cell; text keeps its raw bytes so the glue can report bad UTF-8 like CPython.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// Rows of a query, row-major, `columns.len()` cells per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub cells: Vec<Cell>,
}

impl Rows {
    pub fn row_count(&self) -> usize {
        if self.columns.is_empty() {
            0
        } else {
            self.cells.len() / self.columns.len()
        }
    }
}

/// Errors, classified the way CPython's `_sqlite` classifies them.
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// An error reported by SQLite: primary result code, extended code, message.
    Sqlite { code: i32, extended: i32, message: String },
    /// Misuse caught before SQLite ran (maps to `sqlite3.ProgrammingError`).
    Programming(String),
    /// A parameter the glue could not convert, at 1-based `position`.
    InvalidParam { token: usize, position: usize },
    /// No pooled connection became free in time, or one could not be opened
    /// (maps to `sqlite3.OperationalError`).
    Pool(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sqlite { message, .. } | DbError::Programming(message) | DbError::Pool(message) => {
                f.write_str(message)
            }
            DbError::InvalidParam { position, .. } => write!(f, "Error binding parameter {position}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            // (Without rusqlite's `modern_sqlite`, SQL errors arrive here too, not as SqlInputError.)
            rusqlite::Error::SqliteFailure(e, msg) => DbError::Sqlite {
                code: e.extended_code & 0xff,
                extended: e.extended_code,
                message: msg.unwrap_or_else(|| e.to_string()),
            },
            rusqlite::Error::MultipleStatement => DbError::Programming(MULTIPLE_STATEMENTS.to_owned()),
            other => {
                DbError::Sqlite { code: ffi::SQLITE_ERROR, extended: ffi::SQLITE_ERROR, message: other.to_string() }
            }
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(err: r2d2::Error) -> Self {
        DbError::Pool(format!("no pooled SQLite connection available: {err}"))
    }
}

pub type DbResult<T> = std::result::Result<T, DbError>;

const MULTIPLE_STATEMENTS: &str = "You can only execute one statement at a time.";
const NUL_IN_SQL: &str = "the query contains a null character";

/// SQLite stops reading SQL at a NUL byte, so `DELETE FROM t\0 WHERE ...` would
/// run as `DELETE FROM t`; CPython's `sqlite3` refuses such SQL, and so do we.
fn refuse_nul(sql: &str) -> DbResult<()> {
    if sql.as_bytes().contains(&0) {
        return Err(DbError::Programming(NUL_IN_SQL.to_owned()));
    }
    Ok(())
}

/// How every pooled connection is set up.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub size: u32,
    pub busy_timeout: Duration,
    pub statement_cache: usize,
    /// `PRAGMA synchronous` value (OFF, NORMAL, FULL, EXTRA).
    pub synchronous: String,
}

/// A pool of connections to one database file.
pub struct SqlPool {
    pool: Pool<SqliteConnectionManager>,
}

/// True for the names SQLite treats as a private in-memory database.
pub fn is_memory_path(path: &str) -> bool {
    path.is_empty() || path == ":memory:"
}

/// The SQLite library this crate links (the system `libsqlite3`): its version string.
pub fn library_version() -> String {
    // SAFETY: sqlite3_libversion returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_libversion()) }.to_string_lossy().into_owned()
}

/// Where `sqlite3_libversion` lives in this process, as this crate resolved it.
///
/// Equal to the address another module (CPython's `_sqlite3`) resolves for the same
/// symbol exactly when both use one copy of the library, which is what makes sharing
/// a database file inside one process safe (POSIX lock bookkeeping is per library copy).
pub fn library_address() -> usize {
    ffi::sqlite3_libversion as *const () as usize
}

fn valid_synchronous(value: &str) -> DbResult<&'static str> {
    match value.to_ascii_uppercase().as_str() {
        "OFF" => Ok("OFF"),
        "NORMAL" => Ok("NORMAL"),
        "FULL" => Ok("FULL"),
        "EXTRA" => Ok("EXTRA"),
        _ => Err(DbError::Programming(format!("synchronous must be OFF, NORMAL, FULL or EXTRA, not {value:?}"))),
    }
}

impl SqlPool {
    /// Open (and validate) the database; errors surface here, not on first use.
    pub fn open(path: &str, config: &PoolConfig) -> DbResult<Self> {
        let synchronous = valid_synchronous(&config.synchronous)?;
        let memory = is_memory_path(path);
        let busy = config.busy_timeout;
        let cache = config.statement_cache;
        // CPython's `sqlite3.connect(path)` flags (no SQLITE_OPEN_URI): a `file:` name means
        // what the library's SQLITE_USE_URI default makes of it, for stock code and us alike.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(flags)
            .with_init(move |conn| init_connection(conn, busy, cache, synchronous, memory));
        // Fail fast with SQLite's own error (cannot open, not a database) instead of
        // r2d2's retry-until-timeout on first use.
        drop(manager.connect()?);
        let size = if memory { 1 } else { config.size.max(1) };
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(busy.max(Duration::from_millis(1)))
            .build_unchecked(manager);
        Ok(SqlPool { pool })
    }

    /// Check out a connection, waiting up to the busy timeout for one to free up.
    pub fn get(&self) -> DbResult<PooledConn> {
        Ok(self.pool.get()?)
    }
}

fn init_connection(
    conn: &mut Connection,
    busy: Duration,
    cache: usize,
    synchronous: &str,
    memory: bool,
) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.set_prepared_statement_cache_capacity(cache);
    // Foreign keys off, as in stock builds and the Python twin, even if this library
    // was built with SQLITE_DEFAULT_FOREIGN_KEYS=1 (the bundled build rusqlite offers is).
    conn.execute_batch("PRAGMA foreign_keys=OFF")?;
    if !memory {
        // Also the validity check: a file that is not a database fails here.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    }
    conn.execute_batch(&format!("PRAGMA synchronous={synchronous}"))?;
    Ok(())
}

/// CPython's `lstrip_sql`: skip whitespace and comments; true when nothing remains.
pub fn is_blank_sql(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match sql[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return true,
            },
            _ => return false,
        }
    }
    true
}

/// CPython 3.11's DML test: the first non-whitespace word is INSERT/UPDATE/DELETE/REPLACE.
pub fn is_dml(sql: &str) -> bool {
    let rest = sql.trim_start_matches([' ', '\t', '\n', '\r']);
    let starts =
        |word: &str| rest.len() >= word.len() && rest.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes());
    starts("insert") || starts("update") || starts("delete") || starts("replace")
}

/// True when the first statement of `sql` compiles and more than comments follow it
/// (CPython reports that as "one statement at a time" before SQLite sees the rest).
fn first_statement_has_tail(conn: &Connection, sql: &str) -> bool {
    let Ok(len) = std::os::raw::c_int::try_from(sql.len()) else {
        return false;
    };
    let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
    let mut tail: *const std::os::raw::c_char = std::ptr::null();
    // SAFETY: the handle is valid for the connection's lifetime; the statement is
    // finalized before returning and `tail` points into `sql`, which outlives it.
    unsafe {
        let rc = ffi::sqlite3_prepare_v2(conn.handle(), sql.as_ptr().cast(), len, &mut stmt, &mut tail);
        if !stmt.is_null() {
            ffi::sqlite3_finalize(stmt);
        }
        if rc != ffi::SQLITE_OK || tail.is_null() {
            return false;
        }
        let offset = tail.offset_from(sql.as_ptr().cast()) as usize;
        offset < sql.len() && !is_blank_sql(&sql[offset..])
    }
}

fn prepare<'c>(conn: &'c Connection, sql: &str) -> DbResult<CachedStatement<'c>> {
    match conn.prepare_cached(sql) {
        Ok(stmt) => Ok(stmt),
        Err(err) => {
            let err = DbError::from(err);
            if matches!(err, DbError::Sqlite { .. }) && first_statement_has_tail(conn, sql) {
                Err(DbError::Programming(MULTIPLE_STATEMENTS.to_owned()))
            } else {
                Err(err)
            }
        }
    }
}

fn bind_one(stmt: &mut Statement<'_>, index: usize, param: &Param) -> DbResult<()> {
    match param {
        Param::Value(value) => {
            stmt.raw_bind_parameter(index, value)?;
            Ok(())
        }
        Param::Invalid(token) => Err(DbError::InvalidParam { token: *token, position: index }),
    }
}

fn bind(stmt: &mut Statement<'_>, params: &Params) -> DbResult<()> {
    let needed = stmt.parameter_count();
    match params {
        Params::Positional(values) => {
            if values.len() != needed {
                return Err(DbError::Programming(format!(
                    "Incorrect number of bindings supplied. The current statement uses {needed}, and there are {} supplied.",
                    values.len()
                )));
            }
            for (i, param) in values.iter().enumerate() {
                bind_one(stmt, i + 1, param)?;
            }
        }
        Params::Named(values) => {
            for index in 1..=needed {
                let Some(name) = stmt.parameter_name(index) else {
                    return Err(DbError::Programming(format!(
                        "Binding {index} has no name, but you supplied a dictionary (which has only names)."
                    )));
                };
                let key = &name[1..];
                let Some(param) = values.get(key) else {
                    return Err(DbError::Programming(format!(
                        "You did not supply a value for binding parameter :{key}."
                    )));
                };
                let param = param.clone();
                bind_one(stmt, index, &param)?;
            }
        }
    }
    Ok(())
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(t.to_vec()),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
    }
}

/// Outcome of a statement that is not read for rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// Rows changed for INSERT/UPDATE/DELETE/REPLACE, -1 otherwise (as `cursor.rowcount`).
    pub rowcount: i64,
    /// `sqlite3_last_insert_rowid` after the statement (as `cursor.lastrowid`).
    pub lastrowid: i64,
}

/// Run one statement to completion, discarding any rows.
pub fn execute(conn: &Connection, sql: &str, params: &Params) -> DbResult<Executed> {
    refuse_nul(sql)?;
    if is_blank_sql(sql) {
        return Ok(Executed { rowcount: -1, lastrowid: conn.last_insert_rowid() });
    }
    let mut stmt = prepare(conn, sql)?;
    bind(&mut stmt, params)?;
    {
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
    }
    let rowcount = if is_dml(sql) { conn.changes() as i64 } else { -1 };
    Ok(Executed { rowcount, lastrowid: conn.last_insert_rowid() })
}

/// Run one DML statement once per parameter set; returns the total rows changed.
/// The caller decides on the transaction (see [`executemany_atomic`]).
pub fn executemany(conn: &Connection, sql: &str, batches: &[Params]) -> DbResult<i64> {
    refuse_nul(sql)?;
    if is_blank_sql(sql) {
        return Ok(-1);
    }
    let mut stmt = prepare(conn, sql)?;
    if !is_dml(sql) {
        return Err(DbError::Programming("executemany() can only execute DML statements.".to_owned()));
    }
    let mut total: i64 = 0;
    for params in batches {
        bind(&mut stmt, params)?;
        {
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
        }
        total += conn.changes() as i64;
    }
    Ok(total)
}

/// [`executemany`] inside its own `BEGIN IMMEDIATE` transaction: all rows or none.
pub fn executemany_atomic(conn: &Connection, sql: &str, batches: &[Params]) -> DbResult<i64> {
    refuse_nul(sql)?;
    if !conn.is_autocommit() {
        return executemany(conn, sql, batches);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match executemany(conn, sql, batches).and_then(|n| conn.execute_batch("COMMIT").map(|_| n).map_err(DbError::from)) {
        Ok(n) => Ok(n),
        Err(err) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(err)
        }
    }
}

/// Run a statement and collect its rows (at most `limit` when given).
pub fn query(conn: &Connection, sql: &str, params: &Params, limit: Option<usize>) -> DbResult<Rows> {
    refuse_nul(sql)?;
    if is_blank_sql(sql) {
        return Ok(Rows::default());
    }
    let mut stmt = prepare(conn, sql)?;
    bind(&mut stmt, params)?;
    let ncols = stmt.column_count();
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut cells = Vec::new();
    let mut rows = stmt.raw_query();
    let mut count = 0usize;
    while limit.is_none_or(|l| count < l) {
        let Some(row) = rows.next()? else { break };
        for i in 0..ncols {
            cells.push(cell(row.get_ref(i)?));
        }
        count += 1;
    }
    Ok(Rows { columns, cells })
}

/// Put a connection back in a clean state: a transaction left open is rolled back.
pub fn reset_connection(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        PoolConfig { size: 2, busy_timeout: Duration::from_secs(5), statement_cache: 16, synchronous: "NORMAL".into() }
    }

    fn temp_db(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("sqlpool-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("t.db").to_string_lossy().into_owned()
    }

    fn int(i: i64) -> Param {
        Param::Value(Value::Integer(i))
    }

    #[test]
    fn round_trip_and_rowcount() {
        let pool = SqlPool::open(&temp_db("rt"), &config()).unwrap();
        let conn = pool.get().unwrap();
        execute(&conn, "CREATE TABLE t(a INTEGER, b TEXT)", &Params::none()).unwrap();
        let batches = vec![
            Params::Positional(vec![int(1), Param::Value(Value::Text("x".into()))]),
            Params::Positional(vec![int(2), Param::Value(Value::Null)]),
        ];
        assert_eq!(executemany_atomic(&conn, "INSERT INTO t VALUES (?, ?)", &batches).unwrap(), 2);
        let rows = query(&conn, "SELECT a, b FROM t ORDER BY a", &Params::none(), None).unwrap();
        assert_eq!(rows.columns, vec!["a", "b"]);
        assert_eq!(rows.cells, vec![Cell::Integer(1), Cell::Text(b"x".to_vec()), Cell::Integer(2), Cell::Null]);
        let done = execute(&conn, "UPDATE t SET b = 'y'", &Params::none()).unwrap();
        assert_eq!(done.rowcount, 2);
        assert_eq!(execute(&conn, "SELECT 1", &Params::none()).unwrap().rowcount, -1);
    }

    #[test]
    fn python_compatible_errors() {
        let pool = SqlPool::open(&temp_db("err"), &config()).unwrap();
        let conn = pool.get().unwrap();
        let err = execute(&conn, "SELECT ?", &Params::Positional(vec![int(1), int(2)])).unwrap_err();
        assert!(matches!(err, DbError::Programming(ref m) if m.contains("uses 1, and there are 2")));
        for sql in ["SELECT 1; SELECT 2", "SELECT 1; garbage"] {
            let err = execute(&conn, sql, &Params::none()).unwrap_err();
            assert_eq!(err, DbError::Programming(MULTIPLE_STATEMENTS.into()));
        }
        let err = execute(&conn, "SELEC 1", &Params::none()).unwrap_err();
        assert!(matches!(err, DbError::Sqlite { code: ffi::SQLITE_ERROR, .. }));
        let err = execute(&conn, "SELECT :a", &Params::Named(HashMap::new())).unwrap_err();
        assert_eq!(err, DbError::Programming("You did not supply a value for binding parameter :a.".into()));
        let err = execute(&conn, "SELECT ?", &Params::Positional(vec![Param::Invalid(7)])).unwrap_err();
        assert_eq!(err, DbError::InvalidParam { token: 7, position: 1 });
        let err = executemany(&conn, "SELECT ?", &[]).unwrap_err();
        assert!(matches!(err, DbError::Programming(_)));
    }

    #[test]
    fn nul_in_sql_is_refused_before_sqlite_sees_it() {
        let pool = SqlPool::open(&temp_db("nul"), &config()).unwrap();
        let conn = pool.get().unwrap();
        execute(&conn, "CREATE TABLE t(a INTEGER)", &Params::none()).unwrap();
        let rows = vec![Params::Positional(vec![int(1)]), Params::Positional(vec![int(2)])];
        executemany_atomic(&conn, "INSERT INTO t VALUES (?)", &rows).unwrap();
        let nul = DbError::Programming(NUL_IN_SQL.into());
        assert_eq!(execute(&conn, "DELETE FROM t\0 WHERE a = 1", &Params::none()).unwrap_err(), nul);
        assert_eq!(executemany_atomic(&conn, "DELETE FROM t\0 WHERE a = ?", &rows).unwrap_err(), nul);
        assert_eq!(query(&conn, "SELECT a FROM t\0", &Params::none(), None).unwrap_err(), nul);
        assert!(conn.is_autocommit());
        let left = query(&conn, "SELECT count(*) FROM t", &Params::none(), None).unwrap();
        assert_eq!(left.cells, vec![Cell::Integer(2)]);
    }

    #[test]
    fn failed_batch_changes_nothing() {
        let pool = SqlPool::open(&temp_db("atomic"), &config()).unwrap();
        let conn = pool.get().unwrap();
        execute(&conn, "CREATE TABLE u(a PRIMARY KEY)", &Params::none()).unwrap();
        let batches = vec![Params::Positional(vec![int(1)]), Params::Positional(vec![int(1)])];
        let err = executemany_atomic(&conn, "INSERT INTO u VALUES (?)", &batches).unwrap_err();
        assert!(matches!(err, DbError::Sqlite { code: ffi::SQLITE_CONSTRAINT, .. }));
        assert!(conn.is_autocommit());
        let rows = query(&conn, "SELECT count(*) FROM u", &Params::none(), None).unwrap();
        assert_eq!(rows.cells, vec![Cell::Integer(0)]);
    }

    #[test]
    fn not_a_database_fails_at_open() {
        let path = temp_db("notadb");
        std::fs::write(&path, b"hello world, I am not SQLite at all".repeat(50)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = SqlPool::open(&path, &config()).err().unwrap();
        assert!(matches!(err, DbError::Sqlite { code: ffi::SQLITE_NOTADB, .. }));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let err = SqlPool::open("/nonexistent-dir/x/y.db", &config()).err().unwrap();
        assert!(matches!(err, DbError::Sqlite { code: ffi::SQLITE_CANTOPEN, .. }));
    }

    #[test]
    fn reports_the_linked_library() {
        let version = library_version();
        assert_eq!(version.split('.').count(), 3, "{version}");
        assert!(version.starts_with("3."), "{version}");
        assert_ne!(library_address(), 0);
        assert_eq!(library_address(), library_address());
    }

    #[test]
    fn sql_helpers() {
        assert!(is_blank_sql("  -- c\n /* d */ "));
        assert!(!is_blank_sql(" ;"));
        assert!(is_dml("\n insert into t"));
        assert!(!is_dml("-- x\ninsert"));
    }
}
