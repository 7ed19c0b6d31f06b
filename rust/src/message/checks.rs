//! Every check of an AgentMessage document and of its fields, for the compiled twin.
//!
//! Written once, over any [`Source`] of values: parsed JSON text ([`JsonValue`], here) and
//! Python objects (the PyO3 glue, which only says what kind of object it holds). The order
//! of the checks, the error messages and the field names are the Python twin's
//! (`crewai_rust/serialization/_message_schema.py`); the twin tests compare them.

use std::fmt::{self, Write as _};

use super::calendar::{self, IsoError};
use super::value::{object_insert, wide_integer, JsonValue};
use super::{Message, FIELDS, MAX_DEPTH, REQUIRED, ROLES};

/// A piece of an error message: text as is, or a string shown as Python's `repr()` shows it.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Repr(String),
}

/// A malformed or mistyped field; the glue raises `MessageFormatError(message, field=field)`.
///
/// The message is kept in parts so the glue can render the quoted strings with Python's own
/// `repr()` (which escapes every non-printable character the running Python's Unicode
/// database knows); [`FieldError::message`] renders them with [`py_repr`].
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    parts: Vec<Part>,
}

impl FieldError {
    pub fn new(field: &str, detail: String) -> FieldError {
        FieldError::with(field, vec![Part::Text(detail)])
    }

    fn with(field: &str, detail: Vec<Part>) -> FieldError {
        let mut parts = vec![Part::Text("AgentMessage field ".to_owned()), Part::Repr(field.to_owned())];
        parts.push(Part::Text(": ".to_owned()));
        parts.extend(detail);
        FieldError { field: field.to_owned(), parts }
    }

    /// An error about the whole document (`field == ""`).
    pub fn document(message: String) -> FieldError {
        FieldError { field: String::new(), parts: vec![Part::Text(message)] }
    }

    /// The message, with `repr` standing for Python's `repr()` of a string.
    pub fn render(&self, repr: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Repr(text) => out.push_str(&repr(text)),
            }
        }
        out
    }

    pub fn message(&self) -> String {
        self.render(py_repr)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Python's `repr()` of a string, for messages rendered without Python: exact for ASCII and
/// the C1 controls; Python also escapes other non-printable characters (`\u200b`, `\xa0`),
/// which is why the glue renders [`FieldError`]s with Python's own `repr()`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

// ---------------------------------------------------------------------------------------
// Where values come from.

/// An object key as its source holds it.
pub enum Key {
    Str(String),
    /// A string holding a lone surrogate (not UTF-8): Python's `repr()` of it.
    Surrogate(String),
    /// Not a string: its type name, `repr()` and `str()`.
    NotStr {
        label: String,
        repr: String,
        text: String,
    },
}

/// What a check needs to know about one value.
pub enum Kind<S: Source> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// An integer beyond 64 bits, in decimal.
    WideInt(String),
    Float(f64),
    Str(String),
    /// A string holding a lone surrogate (not UTF-8): Python's `repr()` of it.
    Surrogate(String),
    /// A list or a tuple.
    Seq(S::Seq),
    /// A dict.
    Map(S::Map),
    /// Anything else (its type name is the label).
    Other,
}

/// Values to check: the glue implements it for Python objects, this module for parsed JSON.
pub trait Source: Sized {
    /// Failures of the source itself (a Python exception) or of a check.
    type Error: From<FieldError>;
    /// What [`Source::label`] turns into a type name, kept only until an error needs it.
    type Label;
    type Seq: Iterator<Item = Result<Self, Self::Error>>;
    type Map: Iterator<Item = Result<(Key, Self), Self::Error>>;
    /// Whether a `datetime` may stand for the timestamp (it can for Python objects).
    const DATETIMES: bool;

    fn classify(self) -> Result<(Kind<Self>, Self::Label), Self::Error>;
    /// The Python type name of a value (`null` for None), as the Python twin reports it.
    fn label(label: &Self::Label) -> Result<String, Self::Error>;
    fn is_null(&self) -> bool;
    /// A null from the same source, for absent optional fields.
    fn null(&self) -> Self;
    /// A value already known to be JSON (parsed from text) skips the walk: only its shape
    /// and depth are checked.
    fn parsed(self) -> Result<JsonValue, Self> {
        Err(self)
    }
    /// The value as microseconds since the epoch when it is a datetime.
    fn datetime_us(&self) -> Option<Result<i64, Self::Error>> {
        None
    }
}

type JsonSeq = std::iter::Map<std::vec::IntoIter<JsonValue>, fn(JsonValue) -> Result<JsonValue, FieldError>>;
type JsonMap = std::iter::Map<
    std::vec::IntoIter<(String, JsonValue)>,
    fn((String, JsonValue)) -> Result<(Key, JsonValue), FieldError>,
>;

fn json_item(value: JsonValue) -> Result<JsonValue, FieldError> {
    Ok(value)
}

fn json_entry((key, value): (String, JsonValue)) -> Result<(Key, JsonValue), FieldError> {
    Ok((Key::Str(key), value))
}

impl Source for JsonValue {
    type Error = FieldError;
    type Label = &'static str;
    type Seq = JsonSeq;
    type Map = JsonMap;
    const DATETIMES: bool = false;

    fn classify(self) -> Result<(Kind<JsonValue>, &'static str), FieldError> {
        let label = self.type_label();
        let kind = match self {
            JsonValue::Null => Kind::Null,
            JsonValue::Bool(b) => Kind::Bool(b),
            JsonValue::Int(v) => Kind::Int(v),
            JsonValue::UInt(v) => Kind::UInt(v),
            JsonValue::Float(v) => Kind::Float(v),
            JsonValue::Str(s) => Kind::Str(s),
            JsonValue::Array(items) => Kind::Seq(items.into_iter().map(json_item as fn(_) -> _)),
            JsonValue::Object(items) => Kind::Map(items.into_iter().map(json_entry as fn(_) -> _)),
        };
        Ok((kind, label))
    }
    fn label(label: &&'static str) -> Result<String, FieldError> {
        Ok((*label).to_owned())
    }
    fn is_null(&self) -> bool {
        matches!(self, JsonValue::Null)
    }
    fn null(&self) -> JsonValue {
        JsonValue::Null
    }
    fn parsed(self) -> Result<JsonValue, JsonValue> {
        Ok(self)
    }
}

// ---------------------------------------------------------------------------------------
// The messages.

fn mismatch<S: Source, T>(field: &str, expected: &str, label: &S::Label) -> Result<T, S::Error> {
    Err(FieldError::new(field, format!("expected {expected}, got {}", S::label(label)?)).into())
}

fn surrogate(field: &str) -> FieldError {
    FieldError::new(field, "string holds a lone surrogate, which is not UTF-8".to_owned())
}

fn too_deep(field: &str) -> FieldError {
    FieldError::new(field, format!("nested deeper than {MAX_DEPTH} levels"))
}

/// A required field the document lacks.
pub fn missing(field: &str) -> FieldError {
    FieldError::new(field, "missing".to_owned())
}

/// JSON text that cannot be read (`detail` says why).
pub fn malformed(detail: impl fmt::Display) -> FieldError {
    FieldError::document(format!("AgentMessage JSON is malformed: {detail}"))
}

/// An aware datetime that leaves years 1-9999 once moved to UTC (`repr` is Python's).
pub fn timestamp_out_of_range(repr: &str) -> FieldError {
    FieldError::new("timestamp", format!("{repr} is out of range in UTC"))
}

/// `from_crewai` was handed something other than a dict (`qualname` of its type).
pub fn crewai_not_a_dict(qualname: &str) -> FieldError {
    FieldError::document(format!("CrewAI message: expected a dict, got {qualname}"))
}

fn iso_error(error: IsoError, shown: Part) -> FieldError {
    let text = |s: &str| Part::Text(s.to_owned());
    let detail = match error {
        IsoError::Shape => vec![text("expected ISO 8601 like 2024-05-01T12:00:00Z, got "), shown],
        IsoError::Offset => vec![text("bad UTC offset in "), shown],
        IsoError::Invalid => vec![shown, text(" is not a valid date and time in years 1-9999 UTC")],
    };
    FieldError::with("timestamp", detail)
}

fn non_finite(value: f64) -> &'static str {
    if value.is_nan() {
        "nan"
    } else if value > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

// ---------------------------------------------------------------------------------------
// Field checks, in the Python twin's words.

/// A string field (`optional`: null allowed).
pub fn string<S: Source>(field: &str, value: S, optional: bool) -> Result<Option<String>, S::Error> {
    let (kind, label) = value.classify()?;
    match kind {
        Kind::Null if optional => Ok(None),
        Kind::Str(s) => Ok(Some(s)),
        Kind::Surrogate(_) => Err(surrogate(field).into()),
        _ => mismatch::<S, _>(field, if optional { "a string or null" } else { "a string" }, &label),
    }
}

pub fn role<S: Source>(value: S) -> Result<String, S::Error> {
    let (kind, label) = value.classify()?;
    let shown = match kind {
        Kind::Str(s) if ROLES.contains(&s.as_str()) => return Ok(s),
        Kind::Str(s) => Part::Repr(s),
        Kind::Surrogate(repr) => Part::Text(repr),
        _ => return mismatch::<S, _>("role", "a string", &label),
    };
    let expected = Part::Text(format!("expected one of {}, got ", ROLES.join(", ")));
    Err(FieldError::with("role", vec![expected, shown]).into())
}

/// `Null`, a string, or an `Array` of objects.
pub fn content<S: Source>(value: S) -> Result<JsonValue, S::Error> {
    let (kind, label) = value.classify()?;
    match kind {
        Kind::Null => Ok(JsonValue::Null),
        Kind::Str(s) => Ok(JsonValue::Str(s)),
        Kind::Surrogate(_) => Err(surrogate("content").into()),
        Kind::Seq(parts) => Ok(JsonValue::Array(objects::<S>("content", parts)?)),
        _ => mismatch::<S, _>("content", "a string, a list of objects or null", &label),
    }
}

/// Null or a list of objects.
pub fn tool_calls<S: Source>(value: S) -> Result<Option<Vec<JsonValue>>, S::Error> {
    let (kind, label) = value.classify()?;
    match kind {
        Kind::Null => Ok(None),
        Kind::Seq(calls) => Ok(Some(objects::<S>("tool_calls", calls)?)),
        _ => mismatch::<S, _>("tool_calls", "a list of objects or null", &label),
    }
}

/// An object (null means empty).
pub fn metadata<S: Source>(value: S) -> Result<Vec<(String, JsonValue)>, S::Error> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    object(|| "metadata".to_owned(), value)
}

/// An ISO 8601 string (or, from Python, a datetime), as microseconds since the epoch.
pub fn timestamp<S: Source>(value: S) -> Result<i64, S::Error> {
    if let Some(us) = value.datetime_us() {
        return us;
    }
    let (kind, label) = value.classify()?;
    match kind {
        Kind::Str(text) => Ok(parse_timestamp(&text)?),
        Kind::Surrogate(repr) => Err(iso_error(IsoError::Shape, Part::Text(repr)).into()),
        _ if S::DATETIMES => mismatch::<S, _>("timestamp", "an ISO 8601 string or a datetime", &label),
        _ => mismatch::<S, _>("timestamp", "an ISO 8601 string", &label),
    }
}

/// Strict ISO 8601 text (see [`calendar::parse_iso`]) as microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, FieldError> {
    calendar::parse_iso(text).map_err(|error| iso_error(error, Part::Repr(text.to_owned())))
}

fn objects<S: Source>(field: &str, items: S::Seq) -> Result<Vec<JsonValue>, S::Error> {
    let mut out = Vec::with_capacity(items.size_hint().0);
    for (index, item) in items.enumerate() {
        out.push(JsonValue::Object(object(|| format!("{field}[{index}]"), item?)?));
    }
    Ok(out)
}

/// An object field; `field` names it (built only when needed: parsed objects that pass
/// need no name).
fn object<S: Source>(field: impl Fn() -> String, value: S) -> Result<Vec<(String, JsonValue)>, S::Error> {
    match value.parsed() {
        Ok(JsonValue::Object(items)) => {
            if items.iter().any(|(_, item)| item.depth() >= MAX_DEPTH) {
                return Err(too_deep(&field()).into());
            }
            Ok(items)
        }
        Ok(other) => Err(FieldError::new(&field(), format!("expected an object, got {}", other.type_label())).into()),
        Err(value) => {
            let field = field();
            let (kind, label) = value.classify()?;
            match kind {
                Kind::Map(items) => clean_object::<S>(&field, &field, items, 0),
                _ => mismatch::<S, _>(&field, "an object", &label),
            }
        }
    }
}

/// A JSON value from any source: strings UTF-8, integers within 64 bits, floats finite,
/// string keys, at most [`MAX_DEPTH`] levels (an error at depth names `root`).
fn clean<S: Source>(field: &str, root: &str, value: S, depth: usize) -> Result<JsonValue, S::Error> {
    let (kind, label) = value.classify()?;
    match kind {
        Kind::Null => Ok(JsonValue::Null),
        Kind::Bool(b) => Ok(JsonValue::Bool(b)),
        Kind::Int(v) => Ok(JsonValue::Int(v)),
        Kind::UInt(v) => Ok(JsonValue::UInt(v)),
        Kind::WideInt(digits) => {
            Err(FieldError::new(field, format!("integer {digits} is outside the 64-bit range [-2**63, 2**64)")).into())
        }
        Kind::Float(v) if v.is_finite() => Ok(JsonValue::Float(v)),
        Kind::Float(v) => {
            Err(FieldError::new(field, format!("non-finite number {}: JSON has no NaN/Infinity", non_finite(v))).into())
        }
        Kind::Str(s) => Ok(JsonValue::Str(s)),
        Kind::Surrogate(_) => Err(surrogate(field).into()),
        Kind::Seq(_) | Kind::Map(_) if depth >= MAX_DEPTH => Err(too_deep(root).into()),
        Kind::Map(items) => Ok(JsonValue::Object(clean_object::<S>(field, root, items, depth)?)),
        Kind::Seq(items) => {
            let mut out = Vec::new();
            for (index, item) in items.enumerate() {
                out.push(clean(&format!("{field}[{index}]"), root, item?, depth + 1)?);
            }
            Ok(JsonValue::Array(out))
        }
        Kind::Other => Err(FieldError::new(field, format!("{} is not a JSON value", S::label(&label)?)).into()),
    }
}

fn clean_object<S: Source>(
    field: &str,
    root: &str,
    items: S::Map,
    depth: usize,
) -> Result<Vec<(String, JsonValue)>, S::Error> {
    let mut out = Vec::with_capacity(items.size_hint().0);
    for item in items {
        let (key, value) = item?;
        let key = match key {
            Key::Str(key) => key,
            Key::Surrogate(_) => return Err(surrogate(field).into()),
            Key::NotStr { label, repr, .. } => {
                return Err(FieldError::new(field, format!("object keys must be strings, got {label} {repr}")).into())
            }
        };
        let value = clean(&format!("{field}.{key}"), root, value, depth + 1)?;
        object_insert(&mut out, key, value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Whole messages.

/// The fields of a constructor call, before their checks.
pub struct Fields<S> {
    pub id: S,
    pub role: S,
    pub content: S,
    pub sender: S,
    pub task_id: S,
    pub name: S,
    pub tool_calls: S,
    pub tool_call_id: S,
    /// None: now.
    pub timestamp: Option<S>,
    pub metadata: S,
}

/// Check every field, in the Python twin's order.
pub fn message<S: Source>(fields: Fields<S>) -> Result<Message, S::Error> {
    let id = string("id", fields.id, false)?.unwrap_or_default();
    let role = role(fields.role)?;
    let content = content(fields.content)?;
    let sender = string("sender", fields.sender, true)?;
    let task_id = string("task_id", fields.task_id, true)?;
    let name = string("name", fields.name, true)?;
    let tool_calls = tool_calls(fields.tool_calls)?;
    let tool_call_id = string("tool_call_id", fields.tool_call_id, true)?;
    let timestamp_us = match fields.timestamp {
        None => calendar::now_us(),
        Some(value) => timestamp(value)?,
    };
    let metadata = metadata(fields.metadata)?;
    Ok(Message { id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp_us, metadata })
}

/// A document (parsed JSON or a dict): an object of known fields holding the required ones.
pub fn document<S: Source>(doc: S) -> Result<Message, S::Error> {
    let null = doc.null();
    let (kind, label) = doc.classify()?;
    let Kind::Map(items) = kind else {
        let label = S::label(&label)?;
        return Err(FieldError::document(format!("AgentMessage document: expected a JSON object, got {label}")).into());
    };
    let mut slots: [Option<S>; FIELDS.len()] = Default::default();
    for item in items {
        let (key, value) = item?;
        let index = match &key {
            Key::Str(key) => FIELDS.iter().position(|f| f == key),
            _ => None,
        };
        match (index, key) {
            (Some(index), _) => slots[index] = Some(value),
            (None, Key::Str(key) | Key::NotStr { text: key, .. }) => {
                return Err(FieldError::new(&key, "unknown field".to_owned()).into())
            }
            (None, Key::Surrogate(repr)) => {
                let parts = vec![Part::Text(format!("AgentMessage field {repr}: unknown field"))];
                return Err(FieldError { field: repr, parts }.into());
            }
        }
    }
    for key in REQUIRED {
        if slots[FIELDS.iter().position(|f| *f == key).unwrap_or(0)].is_none() {
            return Err(missing(key).into());
        }
    }
    let [id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp, metadata] =
        slots.map(|slot| slot.unwrap_or_else(|| null.null()));
    let timestamp = Some(timestamp);
    message(Fields { id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp, metadata })
}

/// Parse JSON text, refusing integers orjson cannot hold (it would return a lossy float).
pub fn parse_document(text: &[u8]) -> Result<JsonValue, FieldError> {
    let value: JsonValue = serde_json::from_slice(text).map_err(malformed)?;
    if let Some(digits) = wide_integer(text) {
        return Err(malformed(format!(
            "integer {digits} is outside the 64-bit range [-2**63, 2**64) and would be read back as a lossy float"
        )));
    }
    Ok(value)
}

/// The documents of a JSON array.
pub fn document_list(value: JsonValue) -> Result<Vec<JsonValue>, FieldError> {
    match value {
        JsonValue::Array(docs) => Ok(docs),
        other => {
            Err(FieldError::document(format!("AgentMessage list: expected a JSON array, got {}", other.type_label())))
        }
    }
}

/// An error of the document at `index` of a list.
pub fn at_index(index: usize, error: FieldError) -> FieldError {
    let mut parts = vec![Part::Text(format!("message [{index}]: "))];
    parts.extend(error.parts);
    FieldError { field: format!("[{index}].{}", error.field), parts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_errors_name_fields() {
        let text = br#"{"id":"m1","role":"tool","content":[{"type":"text","text":"hi"}],"tool_call_id":"c1","timestamp":"2024-05-01T12:00:00Z","metadata":{"b":1,"a":[1.5,null,true]}}"#;
        let message = Message::from_json(text).unwrap();
        assert_eq!(
            message.to_json(),
            r#"{"id":"m1","role":"tool","content":[{"type":"text","text":"hi"}],"tool_call_id":"c1","timestamp":"2024-05-01T12:00:00+00:00","metadata":{"b":1,"a":[1.5,null,true]}}"#
        );
        let err = Message::from_json(br#"{"id":"m","role":"boss","timestamp":"2024-05-01T12:00:00Z"}"#).unwrap_err();
        assert_eq!(err.field, "role");
        let err = Message::from_json(br#"{"id":"m","role":"user","timestamp":"2024-05-01T12:00:00Z","metadata":[]}"#)
            .unwrap_err();
        assert_eq!(err.field, "metadata");
        assert_eq!(Message::from_json(br#"{"id":"m","role":"user"}"#).unwrap_err().field, "timestamp");
        assert_eq!(Message::from_json(br#"{"id":"m","role":"user","x":1}"#).unwrap_err().field, "x");
        assert_eq!(Message::from_json(br#"{"id":"m""#).unwrap_err().field, "");
    }

    #[test]
    fn messages_are_worded_like_the_python_twin() {
        let doc = |extra: &str| format!(r#"{{"id":"m","role":"user","timestamp":"2024-05-01T12:00:00Z"{extra}}}"#);
        let cases = [
            (
                r#","content":3.5"#,
                "AgentMessage field 'content': expected a string, a list of objects or null, got float",
            ),
            (r#","content":[{},"x"]"#, "AgentMessage field 'content[1]': expected an object, got str"),
            (r#","sender":1"#, "AgentMessage field 'sender': expected a string or null, got int"),
            (r#","tool_calls":{}"#, "AgentMessage field 'tool_calls': expected a list of objects or null, got dict"),
            (r#","metadata":"x""#, "AgentMessage field 'metadata': expected an object, got str"),
        ];
        for (extra, expected) in cases {
            assert_eq!(Message::from_json(doc(extra).as_bytes()).unwrap_err().message(), expected, "{extra}");
        }
        let bad_role = br#"{"id":"m","role":"boss","timestamp":"2024-05-01T12:00:00Z"}"#;
        assert_eq!(
            Message::from_json(bad_role).unwrap_err().message(),
            "AgentMessage field 'role': expected one of user, assistant, system, tool, got 'boss'"
        );
        let stamp = br#"{"id":"m","role":"user","timestamp":5}"#;
        assert_eq!(
            Message::from_json(stamp).unwrap_err().message(),
            "AgentMessage field 'timestamp': expected an ISO 8601 string, got int"
        );
        assert_eq!(parse_timestamp("x").unwrap_err().message().as_str(), {
            "AgentMessage field 'timestamp': expected ISO 8601 like 2024-05-01T12:00:00Z, got 'x'"
        });
        assert_eq!(
            Message::from_json(b"[]").unwrap_err().message(),
            "AgentMessage document: expected a JSON object, got list"
        );
    }

    #[test]
    fn depth_is_limited_per_field() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let doc = |levels: usize| {
            format!(
                r#"{{"id":"m","role":"user","timestamp":"2024-05-01T12:00:00Z","metadata":{{"d":{}}}}}"#,
                nested(levels)
            )
        };
        assert!(Message::from_json(doc(99).as_bytes()).is_ok());
        let err = Message::from_json(doc(100).as_bytes()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message().as_str()),
            ("metadata", "AgentMessage field 'metadata': nested deeper than 100 levels")
        );
    }

    #[test]
    fn lists_name_the_index() {
        let err = loads_many_text(br#"[{"id":"m","role":"user","timestamp":"2024-05-01T12:00:00Z"},{"id":1}]"#);
        assert_eq!(err.field, "[1].role");
        assert!(err.message().starts_with("message [1]: AgentMessage field 'role'"), "{err}");
        assert_eq!(loads_many_text(b"{}").message(), "AgentMessage list: expected a JSON array, got dict");
    }

    fn loads_many_text(text: &[u8]) -> FieldError {
        super::super::loads_many(text).unwrap_err()
    }
}
