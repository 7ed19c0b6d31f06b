//! `AgentMessage` held in Rust: conversion from and to Python objects with the same checks
//! and messages as `crewai_rust/serialization/_message_schema.py`; JSON in `crate::message`.

use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple, PyType,
    PyTzInfo,
};
use pyo3::IntoPyObjectExt;

use crate::message::{
    self, check_role, format_timestamp, parse_timestamp, timestamp_fields, timestamp_from_fields, FieldError,
    JsonValue, Message, FIELDS, MAX_DEPTH,
};

const CREWAI_EXTRA: &str = "crewai_extra";

/// `MessageFormatError(message, field=...)` from the Python package, so both twins raise the same class.
fn format_error(py: Python<'_>, err: FieldError) -> PyErr {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let class = match CLASS.import(py, "crewai_rust.serialization._errors", "MessageFormatError") {
        Ok(class) => class,
        Err(import_error) => return import_error,
    };
    let kwargs = PyDict::new(py);
    if let Err(e) = kwargs.set_item("field", &err.field) {
        return e;
    }
    match class.call((err.message,), Some(&kwargs)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// Either a Python error already raised, or a field error to turn into MessageFormatError.
enum Failure {
    Python(PyErr),
    Field(FieldError),
}

impl From<PyErr> for Failure {
    fn from(err: PyErr) -> Failure {
        Failure::Python(err)
    }
}

impl From<FieldError> for Failure {
    fn from(err: FieldError) -> Failure {
        Failure::Field(err)
    }
}

type Checked<T> = Result<T, Failure>;

fn raise(py: Python<'_>, failure: Failure) -> PyErr {
    match failure {
        Failure::Python(err) => err,
        Failure::Field(err) => format_error(py, err),
    }
}

fn type_label(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_none() {
        return Ok("null".to_owned());
    }
    Ok(obj.get_type().qualname()?.to_str()?.to_owned())
}

fn fail(field: &str, detail: String) -> Failure {
    Failure::Field(FieldError::new(field, detail))
}

fn utf8(field: &str, s: &Bound<'_, PyString>) -> Checked<String> {
    match s.to_str() {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => Err(fail(field, "string holds a lone surrogate, which is not UTF-8".to_owned())),
    }
}

fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value > 0.0 {
        "inf".to_owned()
    } else {
        "-inf".to_owned()
    }
}

/// Mirror of `clean_json`: a JSON value from Python objects, errors naming the path.
fn to_json_value(field: &str, root: &str, obj: &Bound<'_, PyAny>, depth: usize) -> Checked<JsonValue> {
    if obj.is_none() {
        return Ok(JsonValue::Null);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(JsonValue::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(JsonValue::Str(utf8(field, s)?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(JsonValue::Int(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(JsonValue::UInt(v));
        }
        let number = obj.call_method0("__index__")?.str()?.to_str()?.to_owned();
        return Err(fail(field, format!("integer {number} is outside the 64-bit range [-2**63, 2**64)")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let value = f.value();
        if !value.is_finite() {
            return Err(fail(
                field,
                format!("non-finite number {}: JSON has no NaN/Infinity", python_float_repr(value)),
            ));
        }
        return Ok(JsonValue::Float(value));
    }
    let is_dict = obj.is_instance_of::<PyDict>();
    let is_list = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if (is_dict || is_list) && depth >= MAX_DEPTH {
        return Err(fail(root, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut items = Vec::with_capacity(dict.len());
        for (key, value) in dict.iter() {
            let key = match key.cast::<PyString>() {
                Ok(k) => utf8(field, k)?,
                Err(_) => {
                    return Err(fail(
                        field,
                        format!("object keys must be strings, got {} {}", type_label(&key)?, key.repr()?.to_str()?),
                    ))
                }
            };
            let item = to_json_value(&format!("{field}.{key}"), root, &value, depth + 1)?;
            message::object_insert(&mut items, key, item);
        }
        return Ok(JsonValue::Object(items));
    }
    if is_list {
        let mut items = Vec::new();
        for (index, item) in obj.try_iter()?.enumerate() {
            items.push(to_json_value(&format!("{field}[{index}]"), root, &item?, depth + 1)?);
        }
        return Ok(JsonValue::Array(items));
    }
    Err(fail(field, format!("{} is not a JSON value", type_label(obj)?)))
}

fn is_sequence(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()
}

fn object_field(field: &str, obj: &Bound<'_, PyAny>) -> Checked<JsonValue> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(fail(field, format!("expected an object, got {}", type_label(obj)?)));
    }
    to_json_value(field, field, obj, 0)
}

fn objects(field: &str, obj: &Bound<'_, PyAny>) -> Checked<Vec<JsonValue>> {
    let mut items = Vec::new();
    for (index, item) in obj.try_iter()?.enumerate() {
        items.push(object_field(&format!("{field}[{index}]"), &item?)?);
    }
    Ok(items)
}

fn check_string(field: &str, obj: &Bound<'_, PyAny>, optional: bool) -> Checked<Option<String>> {
    if optional && obj.is_none() {
        return Ok(None);
    }
    match obj.cast::<PyString>() {
        Ok(s) => Ok(Some(utf8(field, s)?)),
        Err(_) => Err(fail(
            field,
            format!("expected a string{}, got {}", if optional { " or null" } else { "" }, type_label(obj)?),
        )),
    }
}

fn check_content(obj: &Bound<'_, PyAny>) -> Checked<JsonValue> {
    if obj.is_none() {
        return Ok(JsonValue::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(JsonValue::Str(utf8("content", s)?));
    }
    if is_sequence(obj) {
        return Ok(JsonValue::Array(objects("content", obj)?));
    }
    Err(fail("content", format!("expected a string, a list of objects or null, got {}", type_label(obj)?)))
}

fn check_tool_calls(obj: &Bound<'_, PyAny>) -> Checked<Option<Vec<JsonValue>>> {
    if obj.is_none() {
        return Ok(None);
    }
    if !is_sequence(obj) {
        return Err(fail("tool_calls", format!("expected a list of objects or null, got {}", type_label(obj)?)));
    }
    Ok(Some(objects("tool_calls", obj)?))
}

fn check_metadata(obj: &Bound<'_, PyAny>) -> Checked<Vec<(String, JsonValue)>> {
    if obj.is_none() {
        return Ok(Vec::new());
    }
    match object_field("metadata", obj)? {
        JsonValue::Object(items) => Ok(items),
        _ => Ok(Vec::new()),
    }
}

fn utc(py: Python<'_>) -> PyResult<Bound<'_, PyTzInfo>> {
    Ok(PyTzInfo::utc(py)?.to_owned())
}

fn check_timestamp(py: Python<'_>, obj: &Bound<'_, PyAny>) -> Checked<i64> {
    if let Ok(dt) = obj.cast::<PyDateTime>() {
        let moment = if dt.getattr("tzinfo")?.is_none() {
            dt.clone().into_any()
        } else {
            match dt.call_method1("astimezone", (utc(py)?,)) {
                Ok(m) => m,
                Err(e) if e.is_instance_of::<PyOverflowError>(py) => {
                    return Err(fail("timestamp", format!("{} is out of range in UTC", obj.repr()?.to_str()?)))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let get = |name: &str| -> PyResult<i64> { moment.getattr(name)?.extract::<i64>() };
        let fields = (get("year")?, get("month")?, get("day")?, get("hour")?, get("minute")?, get("second")?);
        let micros = get("microsecond")?;
        return timestamp_from_fields(fields.0, fields.1, fields.2, fields.3, fields.4, fields.5, micros)
            .ok_or_else(|| fail("timestamp", "out of range".to_owned()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(parse_timestamp(&utf8("timestamp", s)?)?);
    }
    Err(fail("timestamp", format!("expected an ISO 8601 string or a datetime, got {}", type_label(obj)?)))
}

fn now_us() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_micros()).unwrap_or(0)
}

fn new_id(py: Python<'_>) -> PyResult<String> {
    static UUID4: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let uuid4 = UUID4.import(py, "uuid", "uuid4")?;
    Ok(uuid4.call0()?.str()?.to_str()?.to_owned())
}

/// The shared constructor: `id`/`timestamp` None means "generate" (constructor only).
#[allow(clippy::too_many_arguments)]
fn build(
    py: Python<'_>,
    role: &Bound<'_, PyAny>,
    content: &Bound<'_, PyAny>,
    id: Option<&Bound<'_, PyAny>>,
    sender: &Bound<'_, PyAny>,
    task_id: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    tool_calls: &Bound<'_, PyAny>,
    tool_call_id: &Bound<'_, PyAny>,
    timestamp: Option<&Bound<'_, PyAny>>,
    metadata: &Bound<'_, PyAny>,
) -> Checked<Message> {
    let id = match id {
        None => new_id(py)?,
        Some(obj) => check_string("id", obj, false)?.unwrap_or_default(),
    };
    let role = match role.cast::<PyString>() {
        Ok(s) => utf8("role", s)?,
        Err(_) => return Err(fail("role", format!("expected a string, got {}", type_label(role)?))),
    };
    check_role(&role)?;
    let content = check_content(content)?;
    let sender = check_string("sender", sender, true)?;
    let task_id = check_string("task_id", task_id, true)?;
    let name = check_string("name", name, true)?;
    let tool_calls = check_tool_calls(tool_calls)?;
    let tool_call_id = check_string("tool_call_id", tool_call_id, true)?;
    let timestamp_us = match timestamp {
        None => now_us(),
        Some(obj) => check_timestamp(py, obj)?,
    };
    let metadata = check_metadata(metadata)?;
    Ok(Message { id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp_us, metadata })
}

fn to_python<'py>(py: Python<'py>, value: &JsonValue) -> PyResult<Bound<'py, PyAny>> {
    match value {
        JsonValue::Null => Ok(py.None().into_bound(py)),
        JsonValue::Bool(b) => b.into_bound_py_any(py),
        JsonValue::Int(v) => v.into_bound_py_any(py),
        JsonValue::UInt(v) => v.into_bound_py_any(py),
        JsonValue::Float(v) => v.into_bound_py_any(py),
        JsonValue::Str(s) => Ok(PyString::new(py, s).into_any()),
        JsonValue::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            Ok(list.into_any())
        }
        JsonValue::Object(items) => Ok(object_to_python(py, items)?.into_any()),
    }
}

fn object_to_python<'py>(py: Python<'py>, items: &[(String, JsonValue)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, item) in items {
        dict.set_item(key, to_python(py, item)?)?;
    }
    Ok(dict)
}

fn list_to_python<'py>(py: Python<'py>, items: &[JsonValue]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for item in items {
        list.append(to_python(py, item)?)?;
    }
    Ok(list)
}

/// Bytes of a `str`, `bytes`, `bytearray` or `memoryview`, as the Python twin accepts.
fn text_bytes(py: Python<'_>, text: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(s) = text.cast::<PyString>() {
        return match s.to_str() {
            Ok(t) => Ok(t.as_bytes().to_vec()),
            Err(_) => Err(format_error(
                py,
                FieldError::document(
                    "AgentMessage JSON is malformed: str is not valid UTF-8: surrogates not allowed".to_owned(),
                ),
            )),
        };
    }
    if let Ok(b) = text.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = text.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if text.is_instance_of::<PyMemoryView>() {
        return Ok(text.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!("{what}() takes str or bytes, not {}", type_label(text)?)))
}

/// Parse without the GIL when the text is large enough for other threads to gain from it
/// (releasing and retaking the GIL costs about a microsecond).
fn without_gil_if_large<T: Send>(py: Python<'_>, bytes: &[u8], parse: fn(&[u8]) -> T) -> T {
    if bytes.len() >= 64 * 1024 {
        py.detach(|| parse(bytes))
    } else {
        parse(bytes)
    }
}

/// One message of an agent run, held in Rust; immutable, compared by its JSON form.
#[pyclass(name = "AgentMessage", module = "crewai_rust._speedups", frozen)]
pub struct RustAgentMessage {
    inner: Message,
}

fn other_json(other: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if let Ok(mine) = other.cast::<RustAgentMessage>() {
        return Ok(Some(mine.get().inner.to_json()));
    }
    let implementation = match other.getattr("implementation") {
        Ok(value) => value,
        Err(_) => return Ok(None),
    };
    let known = implementation.extract::<String>().is_ok_and(|s| s == "python" || s == "rust");
    if !known || !other.hasattr("to_json")? {
        return Ok(None);
    }
    Ok(Some(other.call_method0("to_json")?.extract::<String>()?))
}

#[pymethods]
impl RustAgentMessage {
    #[new]
    #[pyo3(signature = (role, content=None, *, id=None, sender=None, task_id=None, name=None, tool_calls=None,
                        tool_call_id=None, timestamp=None, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        role: &Bound<'py, PyAny>,
        content: Option<&Bound<'py, PyAny>>,
        id: Option<&Bound<'py, PyAny>>,
        sender: Option<&Bound<'py, PyAny>>,
        task_id: Option<&Bound<'py, PyAny>>,
        name: Option<&Bound<'py, PyAny>>,
        tool_calls: Option<&Bound<'py, PyAny>>,
        tool_call_id: Option<&Bound<'py, PyAny>>,
        timestamp: Option<&Bound<'py, PyAny>>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let or_none = |v: Option<&Bound<'py, PyAny>>| v.cloned().unwrap_or_else(|| py.None().into_bound(py));
        let id = id.filter(|v| !v.is_none());
        let timestamp = timestamp.filter(|v| !v.is_none());
        let inner = build(
            py,
            role,
            &or_none(content),
            id,
            &or_none(sender),
            &or_none(task_id),
            &or_none(name),
            &or_none(tool_calls),
            &or_none(tool_call_id),
            timestamp,
            &or_none(metadata),
        )
        .map_err(|f| raise(py, f))?;
        Ok(RustAgentMessage { inner })
    }

    #[classattr]
    fn implementation() -> &'static str {
        "rust"
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    #[getter]
    fn role(&self) -> &str {
        &self.inner.role
    }

    #[getter]
    fn content<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.content)
    }

    #[getter]
    fn sender(&self) -> Option<&str> {
        self.inner.sender.as_deref()
    }

    #[getter]
    fn task_id(&self) -> Option<&str> {
        self.inner.task_id.as_deref()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    #[getter]
    fn tool_calls<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        self.inner.tool_calls.as_deref().map(|calls| list_to_python(py, calls)).transpose()
    }

    #[getter]
    fn tool_call_id(&self) -> Option<&str> {
        self.inner.tool_call_id.as_deref()
    }

    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        let (year, month, day, hour, minute, second, micros) = timestamp_fields(self.inner.timestamp_us);
        let tz = utc(py)?;
        PyDateTime::new(
            py,
            year as i32,
            month as u8,
            day as u8,
            hour as u8,
            minute as u8,
            second as u8,
            micros,
            Some(&tz),
        )
    }

    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        object_to_python(py, &self.inner.metadata)
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// A fresh JSON-ready dict, equal to `json.loads(self.to_json())`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let doc = PyDict::new(py);
        doc.set_item("id", &m.id)?;
        doc.set_item("role", &m.role)?;
        doc.set_item("content", to_python(py, &m.content)?)?;
        for (key, value) in [("sender", &m.sender), ("task_id", &m.task_id), ("name", &m.name)] {
            if let Some(value) = value {
                doc.set_item(key, value)?;
            }
        }
        if let Some(calls) = &m.tool_calls {
            doc.set_item("tool_calls", list_to_python(py, calls)?)?;
        }
        if let Some(value) = &m.tool_call_id {
            doc.set_item("tool_call_id", value)?;
        }
        doc.set_item("timestamp", format_timestamp(m.timestamp_us))?;
        doc.set_item("metadata", object_to_python(py, &m.metadata)?)?;
        Ok(doc)
    }

    /// The `LLMMessage` dict CrewAI keeps in `TaskOutput.messages`.
    fn to_crewai<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let out = PyDict::new(py);
        out.set_item("role", &m.role)?;
        out.set_item("content", to_python(py, &m.content)?)?;
        if let Some(value) = &m.tool_call_id {
            out.set_item("tool_call_id", value)?;
        }
        if let Some(value) = &m.name {
            out.set_item("name", value)?;
        }
        if let Some(calls) = &m.tool_calls {
            out.set_item("tool_calls", list_to_python(py, calls)?)?;
        }
        if let Some((_, JsonValue::Object(extra))) = m.metadata.iter().find(|(k, _)| k == CREWAI_EXTRA) {
            for (key, value) in extra {
                out.set_item(key, to_python(py, value)?)?;
            }
        }
        Ok(out)
    }

    #[staticmethod]
    fn from_json(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bytes = text_bytes(py, text, "from_json")?;
        let inner = without_gil_if_large(py, &bytes, Message::from_json).map_err(|e| format_error(py, e))?;
        Ok(RustAgentMessage { inner })
    }

    #[staticmethod]
    fn from_dict(py: Python<'_>, doc: &Bound<'_, PyAny>) -> PyResult<Self> {
        let dict = match doc.cast::<PyDict>() {
            Ok(d) => d,
            Err(_) => {
                let label = type_label(doc)?;
                return Err(format_error(
                    py,
                    FieldError::document(format!("AgentMessage document: expected a JSON object, got {label}")),
                ));
            }
        };
        for key in dict.keys() {
            let key = key.str()?.to_str()?.to_owned();
            if !FIELDS.contains(&key.as_str()) {
                return Err(format_error(py, FieldError::new(&key, "unknown field".to_owned())));
            }
        }
        for key in ["id", "role", "timestamp"] {
            if !dict.contains(key)? {
                return Err(format_error(py, FieldError::new(key, "missing".to_owned())));
            }
        }
        let none = py.None().into_bound(py);
        let get = |key: &str| -> PyResult<Bound<'_, PyAny>> { Ok(dict.get_item(key)?.unwrap_or_else(|| none.clone())) };
        let (id, timestamp) = (get("id")?, get("timestamp")?);
        let inner = build(
            py,
            &get("role")?,
            &get("content")?,
            Some(&id),
            &get("sender")?,
            &get("task_id")?,
            &get("name")?,
            &get("tool_calls")?,
            &get("tool_call_id")?,
            Some(&timestamp),
            &get("metadata")?,
        )
        .map_err(|f| raise(py, f))?;
        Ok(RustAgentMessage { inner })
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let theirs = match op {
            CompareOp::Eq | CompareOp::Ne => other_json(other)?,
            _ => None,
        };
        match theirs {
            None => Ok(py.NotImplemented()),
            Some(json) => {
                let equal = self.inner.to_json() == json;
                Ok(PyBool::new(py, if matches!(op, CompareOp::Eq) { equal } else { !equal })
                    .to_owned()
                    .into_any()
                    .unbind())
            }
        }
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyString::new(py, &self.inner.to_json()).hash()
    }

    fn __repr__(&self) -> String {
        format!("AgentMessage({})", self.inner.to_json())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((slf.get_type().getattr("from_json")?, (slf.get().inner.to_json(),)))
    }
}

/// One JSON array of messages held in Rust.
#[pyfunction]
fn dumps_many(messages: Vec<PyRef<'_, RustAgentMessage>>) -> String {
    message::dumps_many(&messages.iter().map(|m| &m.inner).collect::<Vec<_>>())
}

/// A JSON array of message documents; errors name the index and the field.
#[pyfunction]
fn loads_many(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Vec<RustAgentMessage>> {
    let bytes = text_bytes(py, text, "loads_many")?;
    let messages = without_gil_if_large(py, &bytes, message::loads_many).map_err(|e| format_error(py, e))?;
    Ok(messages.into_iter().map(|inner| RustAgentMessage { inner }).collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RustAgentMessage>()?;
    m.add_function(wrap_pyfunction!(dumps_many, m)?)?;
    m.add_function(wrap_pyfunction!(loads_many, m)?)?;
    Ok(())
}
