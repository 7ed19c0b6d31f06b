//! `AgentMessage` held in Rust: the PyO3 class and functions. Arguments go through the
//! checks of `crate::message::checks` (Python objects as a [`source`]), results come back
//! through [`objects`]; JSON text is read and written in `crate::message`.

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDateTime, PyDict, PyList, PyString};

use crate::message::checks::{self, Fields};
use crate::message::{self, format_timestamp, JsonValue, Message, CREWAI_EXTRA, CREWAI_KNOWN};

mod objects;
mod source;

use objects::{datetime, list_to_python, object_to_python, text_bytes, to_python};
use source::{format_error, qualname};

fn new_id(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static UUID4: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let uuid4 = UUID4.import(py, "uuid", "uuid4")?;
    Ok(uuid4.call0()?.str()?.into_any())
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

/// The constructor's arguments; `id`/`timestamp` None means "generate".
struct Args<'py> {
    role: Bound<'py, PyAny>,
    content: Option<Bound<'py, PyAny>>,
    id: Option<Bound<'py, PyAny>>,
    sender: Option<Bound<'py, PyAny>>,
    task_id: Option<Bound<'py, PyAny>>,
    name: Option<Bound<'py, PyAny>>,
    tool_calls: Option<Bound<'py, PyAny>>,
    tool_call_id: Option<Bound<'py, PyAny>>,
    timestamp: Option<Bound<'py, PyAny>>,
    metadata: Option<Bound<'py, PyAny>>,
}

impl<'py> Args<'py> {
    fn check(self, py: Python<'py>) -> PyResult<Message> {
        let or_none = |v: Option<Bound<'py, PyAny>>| v.unwrap_or_else(|| py.None().into_bound(py));
        let id = match self.id.filter(|v| !v.is_none()) {
            Some(id) => id,
            None => new_id(py)?,
        };
        checks::message(Fields {
            id,
            role: self.role,
            content: or_none(self.content),
            sender: or_none(self.sender),
            task_id: or_none(self.task_id),
            name: or_none(self.name),
            tool_calls: or_none(self.tool_calls),
            tool_call_id: or_none(self.tool_call_id),
            timestamp: self.timestamp.filter(|v| !v.is_none()),
            metadata: or_none(self.metadata),
        })
        .map_err(|failure| failure.raise(py))
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
        let args = Args {
            role: role.clone(),
            content: content.cloned(),
            id: id.cloned(),
            sender: sender.cloned(),
            task_id: task_id.cloned(),
            name: name.cloned(),
            tool_calls: tool_calls.cloned(),
            tool_call_id: tool_call_id.cloned(),
            timestamp: timestamp.cloned(),
            metadata: metadata.cloned(),
        };
        Ok(RustAgentMessage { inner: args.check(py)? })
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
        datetime(py, self.inner.timestamp_us)
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
        let inner = checks::document(doc.clone()).map_err(|failure| failure.raise(py))?;
        Ok(RustAgentMessage { inner })
    }

    /// From a CrewAI `LLMMessage` dict; its keys AgentMessage has no field for travel in
    /// `metadata["crewai_extra"]` (and are checked there like any metadata).
    #[staticmethod]
    #[pyo3(signature = (message, *, sender=None, task_id=None, id=None, timestamp=None, metadata=None))]
    fn from_crewai<'py>(
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        sender: Option<&Bound<'py, PyAny>>,
        task_id: Option<&Bound<'py, PyAny>>,
        id: Option<&Bound<'py, PyAny>>,
        timestamp: Option<&Bound<'py, PyAny>>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let Ok(fields) = message.cast::<PyDict>() else {
            return Err(format_error(py, checks::crewai_not_a_dict(&qualname(message)?)));
        };
        let Some(role) = fields.get_item("role")? else {
            return Err(format_error(py, checks::missing("role")));
        };
        let merged = match metadata {
            Some(given) if given.is_truthy()? => py.get_type::<PyDict>().call1((given,))?.cast_into::<PyDict>()?,
            _ => PyDict::new(py),
        };
        let extra = PyDict::new(py);
        for (key, value) in fields.copy()? {
            let known = key.cast::<PyString>().is_ok_and(|k| k.to_str().is_ok_and(|k| CREWAI_KNOWN.contains(&k)));
            if !known {
                extra.set_item(key, value)?;
            }
        }
        if !extra.is_empty() {
            merged.set_item(CREWAI_EXTRA, extra)?;
        }
        let args = Args {
            role,
            content: fields.get_item("content")?,
            id: id.cloned(),
            sender: sender.cloned(),
            task_id: task_id.cloned(),
            name: fields.get_item("name")?,
            tool_calls: fields.get_item("tool_calls")?,
            tool_call_id: fields.get_item("tool_call_id")?,
            timestamp: timestamp.cloned(),
            metadata: Some(merged.into_any()),
        };
        Ok(RustAgentMessage { inner: args.check(py)? })
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
