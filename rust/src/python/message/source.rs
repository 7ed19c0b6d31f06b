//! Python objects as a [`Source`] of the checks in `crate::message::checks`: this file only
//! says what kind of object it holds (and converts datetimes); deciding and wording what is
//! wrong is the core's job, so both twins' messages come from one place per twin.

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::iter::BoundDictIterator;
use pyo3::types::{
    PyBool, PyDateTime, PyDict, PyFloat, PyInt, PyIterator, PyList, PyString, PyTuple, PyType, PyTzInfo,
};

use crate::message::checks::{self, Key, Kind, Source};
use crate::message::{timestamp_from_fields, FieldError};

/// `MessageFormatError(message, field=...)` from the Python package, so both twins raise the same class.
pub fn format_error(py: Python<'_>, err: FieldError) -> PyErr {
    static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let class = match CLASS.import(py, "crewai_rust.serialization._errors", "MessageFormatError") {
        Ok(class) => class,
        Err(import_error) => return import_error,
    };
    let kwargs = PyDict::new(py);
    if let Err(e) = kwargs.set_item("field", &err.field) {
        return e;
    }
    // Quoted strings as the running Python's repr() shows them (the Python twin's f"{x!r}").
    let message = err.render(|text| match PyString::new(py, text).repr() {
        Ok(repr) => repr.to_string(),
        Err(_) => checks::py_repr(text),
    });
    match class.call((message,), Some(&kwargs)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// Either a Python error already raised, or a field error to turn into MessageFormatError.
pub enum Failure {
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

impl Failure {
    pub fn raise(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Python(err) => err,
            Failure::Field(err) => format_error(py, err),
        }
    }
}

/// The Python twin's `type_label`: `null` for None, else the type's qualified name.
pub fn type_label(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_none() {
        return Ok("null".to_owned());
    }
    qualname(obj)
}

pub fn qualname(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(obj.get_type().qualname()?.to_str()?.to_owned())
}

/// The items of a list or tuple (through `iter()`, as the Python twin's `enumerate`).
pub struct Items<'py>(Bound<'py, PyIterator>);

impl<'py> Iterator for Items<'py> {
    type Item = Result<Bound<'py, PyAny>, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|item| item.map_err(Failure::from))
    }
}

/// The entries of a private copy of a dict: nothing else can resize it while we iterate
/// (PyO3's dict iterator panics on that, and no panic may reach Python).
pub struct Entries<'py>(BoundDictIterator<'py>);

impl<'py> Iterator for Entries<'py> {
    type Item = Result<(Key, Bound<'py, PyAny>), Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = self.0.next()?;
        Some(key_of(&key).map(|key| (key, value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

fn key_of(key: &Bound<'_, PyAny>) -> Result<Key, Failure> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(match s.to_str() {
            Ok(text) => Key::Str(text.to_owned()),
            Err(_) => Key::Surrogate(key.repr()?.to_str()?.to_owned()),
        });
    }
    Ok(Key::NotStr {
        label: type_label(key)?,
        repr: key.repr()?.to_str()?.to_owned(),
        text: key.str()?.to_str()?.to_owned(),
    })
}

fn kind_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Kind<Bound<'py, PyAny>>> {
    if obj.is_none() {
        return Ok(Kind::Null);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Kind::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(match s.to_str() {
            Ok(text) => Kind::Str(text.to_owned()),
            Err(_) => Kind::Surrogate(obj.repr()?.to_str()?.to_owned()),
        });
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Kind::Int(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(Kind::UInt(v));
        }
        return Ok(Kind::WideInt(obj.call_method0("__index__")?.str()?.to_str()?.to_owned()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Kind::Float(f.value()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return Ok(Kind::Map(Entries(dict.copy()?.into_iter())));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return Ok(Kind::Seq(Items(obj.try_iter()?)));
    }
    Ok(Kind::Other)
}

impl<'py> Source for Bound<'py, PyAny> {
    type Error = Failure;
    type Label = Bound<'py, PyAny>;
    type Seq = Items<'py>;
    type Map = Entries<'py>;
    const DATETIMES: bool = true;

    fn classify(self) -> Result<(Kind<Self>, Self), Failure> {
        Ok((kind_of(&self)?, self))
    }

    fn label(label: &Self) -> Result<String, Failure> {
        Ok(type_label(label)?)
    }

    fn is_null(&self) -> bool {
        self.is_none()
    }

    fn null(&self) -> Self {
        self.py().None().into_bound(self.py())
    }

    fn datetime_us(&self) -> Option<Result<i64, Failure>> {
        let dt = self.cast::<PyDateTime>().ok()?;
        Some(datetime_us(dt))
    }
}

/// A datetime as UTC microseconds (naive means UTC), as the Python twin's `check_timestamp`.
fn datetime_us(dt: &Bound<'_, PyDateTime>) -> Result<i64, Failure> {
    let py = dt.py();
    let moment = if dt.getattr("tzinfo")?.is_none() {
        dt.clone().into_any()
    } else {
        match dt.call_method1("astimezone", (PyTzInfo::utc(py)?,)) {
            Ok(moment) => moment,
            Err(e) if e.is_instance_of::<PyOverflowError>(py) => {
                return Err(checks::timestamp_out_of_range(dt.repr()?.to_str()?).into())
            }
            Err(e) => return Err(e.into()),
        }
    };
    let get = |name: &str| -> PyResult<i64> { moment.getattr(name)?.extract::<i64>() };
    let (year, month, day) = (get("year")?, get("month")?, get("day")?);
    let (hour, minute, second, micros) = (get("hour")?, get("minute")?, get("second")?, get("microsecond")?);
    // A datetime is always within years 1-9999; the core's range check holds for the rest.
    timestamp_from_fields(year, month, day, hour, minute, second, micros)
        .ok_or_else(|| checks::timestamp_out_of_range(&dt.repr().map(|r| r.to_string()).unwrap_or_default()).into())
}
