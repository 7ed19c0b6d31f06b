//! PyO3 glue for the tool guard: a walker over Python values that feeds the
//! canonical encoding (no JSON text is produced), and the `ToolGuard` class
//! around the plain-Rust window bookkeeping.

use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::string::PyStringData;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};

use super::errors::no_panic;
use crate::toolguard::canon::{self, MARK_TRUNCATED, MAX_DEPTH, MAX_NODES, TAG_FALSE, TAG_NONE, TAG_TRUE};
use crate::toolguard::window::{Guard, GuardConfig, Reason, REASONS};

/// Code points of a Python string, straight from its internal buffer.
fn code_points(s: &Bound<'_, PyString>) -> PyResult<Vec<u32>> {
    // SAFETY: `PyString::data` needs the string not to be mutated while the slice lives:
    // a str visible to Python code is immutable, and the slice borrows `s`, which keeps
    // the object (and its buffer) alive; the slice is dropped before we return.
    let data = unsafe { s.data()? };
    Ok(match data {
        PyStringData::Ucs1(b) => b.iter().map(|&c| c as u32).collect(),
        PyStringData::Ucs2(w) => w.iter().map(|&c| c as u32).collect(),
        PyStringData::Ucs4(d) => d.to_vec(),
    })
}

/// Append a Python string without materialising an intermediate UTF-8 copy.
fn push_str(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> PyResult<()> {
    // SAFETY: as in `code_points`: an immutable str kept alive by `s`; the slice is only
    // read during this call.
    let data = unsafe { s.data()? };
    match data {
        PyStringData::Ucs1(b) if b.is_ascii() => canon::push_utf8(out, b),
        PyStringData::Ucs1(b) => canon::push_code_points(out, b.iter().map(|&c| c as u32)),
        PyStringData::Ucs2(w) => canon::push_code_points(out, w.iter().map(|&c| c as u32)),
        PyStringData::Ucs4(d) => canon::push_code_points(out, d.iter().copied()),
    }
    Ok(())
}

/// A scratch byte buffer and the member ranges encoded into it.
type Scratch = (Vec<u8>, Vec<(usize, usize)>);

struct Walker {
    path: Vec<usize>,
    nodes: usize,
    /// Scratch buffers reused across mappings and sets (one per nesting level in use).
    pool: Vec<Scratch>,
}

impl Walker {
    fn new() -> Self {
        Walker { path: Vec::new(), nodes: 0, pool: Vec::new() }
    }

    fn int(&self, out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(v) = value.extract::<i64>() {
            canon::push_i128(out, v as i128);
        } else if let Ok(v) = value.extract::<i128>() {
            canon::push_i128(out, v);
        } else {
            // int.__repr__, not str(): a subclass may override __str__.
            let py = value.py();
            let text = py.get_type::<PyInt>().getattr("__repr__")?.call1((value,))?;
            canon::push_int_decimal(out, &text.cast::<PyString>()?.to_cow()?);
        }
        Ok(())
    }

    fn object(&self, out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let ty = value.get_type();
        let part = |name: &str| -> Vec<u32> {
            match ty.getattr(name).and_then(|v| v.str()) {
                Ok(s) => code_points(&s).unwrap_or_else(|_| vec![0x3f]),
                Err(_) => vec![0x3f],
            }
        };
        let mut type_name = part("__module__");
        type_name.push(0x2e);
        type_name.extend(part("__qualname__"));
        let shown = match value.repr() {
            Ok(r) => canon::strip_addresses(&code_points(&r)?),
            Err(_) => "<unrepresentable>".chars().map(|c| c as u32).collect(),
        };
        out.push(b'O');
        canon::push_code_points(out, type_name.iter().copied());
        canon::push_code_points(out, shown.iter().copied());
        Ok(())
    }

    fn walk(&mut self, out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            out.extend_from_slice(MARK_TRUNCATED);
            return Ok(());
        }
        let ptr = value.as_ptr();
        // Exact built-in types first (one pointer comparison each), subclasses below.
        // SAFETY: `ptr` is a live object borrowed for this call (GIL held); the *_CheckExact
        // macros only read its type pointer, and each `cast_unchecked` follows the exact check
        // for that type.
        unsafe {
            if ffi::PyUnicode_CheckExact(ptr) != 0 {
                return push_str(out, value.cast_unchecked::<PyString>());
            }
            if ffi::PyLong_CheckExact(ptr) != 0 {
                return self.int(out, value);
            }
            if ffi::PyDict_CheckExact(ptr) != 0 || ffi::PyList_CheckExact(ptr) != 0 || ffi::PyTuple_CheckExact(ptr) != 0
            {
                return self.enter(out, value);
            }
            if ffi::PyFloat_CheckExact(ptr) != 0 {
                canon::push_float(out, value.cast_unchecked::<PyFloat>().value());
                return Ok(());
            }
        }
        if value.is_none() {
            out.extend_from_slice(TAG_NONE);
            return Ok(());
        }
        if let Ok(b) = value.cast::<PyBool>() {
            out.extend_from_slice(if b.is_true() { TAG_TRUE } else { TAG_FALSE });
            return Ok(());
        }
        if value.is_instance_of::<PyInt>() {
            return self.int(out, value);
        }
        if let Ok(f) = value.cast::<PyFloat>() {
            canon::push_float(out, f.value());
            return Ok(());
        }
        if let Ok(s) = value.cast::<PyString>() {
            return push_str(out, s);
        }
        if let Ok(b) = value.cast::<PyBytes>() {
            canon::push_bytes(out, b.as_bytes());
            return Ok(());
        }
        if let Ok(b) = value.cast::<PyByteArray>() {
            canon::push_bytes(out, &b.to_vec());
            return Ok(());
        }
        let is_container = value.is_instance_of::<PyDict>()
            || value.is_instance_of::<PyList>()
            || value.is_instance_of::<PyTuple>()
            || value.is_instance_of::<PySet>()
            || value.is_instance_of::<PyFrozenSet>();
        if !is_container {
            return self.object(out, value);
        }
        self.enter(out, value)
    }

    /// Walk a container, guarding against self-reference and excessive depth.
    fn enter(&mut self, out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let address = value.as_ptr() as usize;
        if let Some(index) = self.path.iter().position(|&p| p == address) {
            canon::push_cycle(out, self.path.len() - index);
            return Ok(());
        }
        if self.path.len() >= MAX_DEPTH {
            out.extend_from_slice(MARK_TRUNCATED);
            return Ok(());
        }
        self.path.push(address);
        let result = self.container(out, value);
        self.path.pop();
        result
    }

    /// Encode each member into one scratch buffer, then emit them sorted (mappings, sets).
    fn sorted_group<'py, I>(&mut self, out: &mut Vec<u8>, tag: u8, members: I) -> PyResult<()>
    where
        I: Iterator<Item = PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)>>,
    {
        let (mut scratch, mut ranges) = self.pool.pop().unwrap_or_default();
        scratch.clear();
        ranges.clear();
        let mut result = Ok(());
        for member in members {
            let (first, second) = match member {
                Ok(pair) => pair,
                Err(err) => {
                    result = Err(err);
                    break;
                }
            };
            let start = scratch.len();
            result = self.walk(&mut scratch, &first);
            if let (Ok(()), Some(second)) = (&result, second) {
                result = self.walk(&mut scratch, &second);
            }
            if result.is_err() {
                break;
            }
            ranges.push((start, scratch.len()));
        }
        if result.is_ok() {
            ranges.sort_unstable_by(|a, b| scratch[a.0..a.1].cmp(&scratch[b.0..b.1]));
            canon::push_header(out, tag, ranges.len());
            out.reserve(scratch.len());
            for &(start, end) in ranges.iter() {
                out.extend_from_slice(&scratch[start..end]);
            }
        }
        self.pool.push((scratch, ranges));
        result
    }

    fn container(&mut self, out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(d) = value.cast::<PyDict>() {
            // Not `d.iter()`: it panics when a `__repr__` walked meanwhile resizes the dict.
            self.sorted_group(out, b'M', DictItems::new(d).map(|r| r.map(|(k, v)| (k, Some(v)))))?;
        } else if let Ok(l) = value.cast::<PyList>() {
            canon::push_header(out, b'L', l.len());
            for item in l.iter() {
                self.walk(out, &item)?;
            }
        } else if let Ok(t) = value.cast::<PyTuple>() {
            canon::push_header(out, b'L', t.len());
            for item in t.iter() {
                self.walk(out, &item)?;
            }
        } else if value.is_instance_of::<PySet>() || value.is_instance_of::<PyFrozenSet>() {
            // Python's own set iterator: a resize raises RuntimeError (pyo3's would panic).
            let members = set_iter(value)?;
            self.sorted_group(out, b'E', members.map(|item| item.map(|item| (item, None))))?;
        }
        Ok(())
    }
}

/// `set.__iter__(value)` (bypassing a subclass's `__iter__`, as the python twin does).
fn set_iter<'py>(value: &Bound<'py, PyAny>) -> PyResult<impl Iterator<Item = PyResult<Bound<'py, PyAny>>>> {
    let py = value.py();
    let kind = if value.is_instance_of::<PySet>() { py.get_type::<PySet>() } else { py.get_type::<PyFrozenSet>() };
    let iter = kind.getattr(pyo3::intern!(py, "__iter__"))?.call1((value,))?;
    iter.try_iter()
}

/// A dict's (key, value) pairs that raise `RuntimeError`, as CPython's iterator does,
/// instead of panicking when the dict changes size while it is walked.
struct DictItems<'a, 'py> {
    dict: &'a Bound<'py, PyDict>,
    pos: ffi::Py_ssize_t,
    len: usize,
}

impl<'a, 'py> DictItems<'a, 'py> {
    fn new(dict: &'a Bound<'py, PyDict>) -> Self {
        DictItems { dict, pos: 0, len: dict.len() }
    }
}

impl<'py> Iterator for DictItems<'_, 'py> {
    type Item = PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.dict.len() != self.len {
            self.len = usize::MAX; // stays failed
            return Some(Err(pyo3::exceptions::PyRuntimeError::new_err("dictionary changed size during iteration")));
        }
        let mut key: *mut ffi::PyObject = std::ptr::null_mut();
        let mut value: *mut ffi::PyObject = std::ptr::null_mut();
        let py = self.dict.py();
        // SAFETY: we hold the GIL; PyDict_Next is memory-safe on a dict mutated between
        // calls (it may skip or repeat entries), and the borrowed references become
        // owned `Bound`s before any Python code can run.
        unsafe {
            if ffi::PyDict_Next(self.dict.as_ptr(), &mut self.pos, &mut key, &mut value) == 0 {
                return None;
            }
            Some(Ok((Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, value))))
        }
    }
}

fn canonical_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    Walker::new().walk(&mut out, value)?;
    Ok(out)
}

/// The canonical encoding of a value (for tests and debugging).
#[pyfunction]
fn tool_canonical<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    no_panic(|| Ok(PyBytes::new(py, &canonical_bytes(value)?)))
}

/// Hex BLAKE2b-128 of the canonical encoding of a value.
#[pyfunction]
fn tool_fingerprint(value: &Bound<'_, PyAny>) -> PyResult<String> {
    no_panic(|| Ok(canon::fingerprint_of(&canonical_bytes(value)?)))
}

/// Fingerprint of one tool call: the canonical (agent, tool, args) triple.
#[pyfunction]
fn tool_call_fingerprint(
    agent: &Bound<'_, PyAny>,
    tool: &Bound<'_, PyAny>,
    args: &Bound<'_, PyAny>,
) -> PyResult<String> {
    no_panic(|| {
        let mut out = Vec::with_capacity(128);
        canon::push_header(&mut out, b'L', 3);
        let mut walker = Walker::new();
        walker.nodes += 1; // the triple itself counts as one visited value, as in the python twin
        walker.walk(&mut out, agent)?;
        walker.walk(&mut out, tool)?;
        walker.walk(&mut out, args)?;
        Ok(canon::fingerprint_of(&out))
    })
}

/// The loop guard: per-run windows and budgets, per-tool counters. Thread-safe.
#[pyclass(name = "ToolGuard", module = "crewai_rust._speedups")]
struct PyToolGuard {
    inner: Mutex<Guard>,
}

impl PyToolGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl PyToolGuard {
    #[new]
    #[pyo3(signature = (loop_window, max_repeats, cycle_repeats, max_cycle_length, max_calls=None, max_runs=256))]
    fn new(
        loop_window: usize,
        max_repeats: usize,
        cycle_repeats: usize,
        max_cycle_length: usize,
        max_calls: Option<u64>,
        max_runs: usize,
    ) -> PyResult<Self> {
        let guard =
            Guard::new(GuardConfig { loop_window, max_repeats, cycle_repeats, max_cycle_length, max_calls, max_runs })?;
        Ok(PyToolGuard { inner: Mutex::new(guard) })
    }

    /// None when the call may run (it is recorded), else the refusal reason (counted).
    fn admit(&self, run: &str, fingerprint: &str, tool: &str) -> Option<&'static str> {
        self.lock().admit(run, fingerprint, tool).map(Reason::name)
    }

    /// Count a refusal decided outside the window (recursion, delegation cycle).
    fn note_refusal(&self, tool: &str, reason: &str) -> PyResult<()> {
        let reason = Reason::from_name(reason)?;
        self.lock().note_refusal(tool, reason);
        Ok(())
    }

    fn add_time(&self, tool: &str, seconds: f64) {
        self.lock().add_time(tool, seconds);
    }

    fn run_calls(&self, run: &str) -> u64 {
        self.lock().run_calls(run)
    }

    fn forget_run(&self, run: &str) {
        self.lock().forget_run(run);
    }

    fn reset(&self) {
        self.lock().reset();
    }

    /// {tool: {"calls": n, "refusals": {reason: n}, "seconds": s}} in first-seen order.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let result = PyDict::new(py);
        let guard = self.lock();
        for (tool, c) in guard.counters() {
            let entry = PyDict::new(py);
            entry.set_item("calls", c.calls)?;
            let refusals = PyDict::new(py);
            for (name, n) in REASONS.iter().zip(c.refusals.iter()) {
                refusals.set_item(*name, *n)?;
            }
            entry.set_item("refusals", refusals)?;
            entry.set_item("seconds", c.seconds)?;
            result.set_item(tool, entry)?;
        }
        Ok(result)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tool_canonical, m)?)?;
    m.add_function(wrap_pyfunction!(tool_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(tool_call_fingerprint, m)?)?;
    m.add_class::<PyToolGuard>()?;
    Ok(())
}
