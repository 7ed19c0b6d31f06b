//! AgentMessage in plain Rust: an order-preserving JSON value, a writer that emits the
//! exact bytes orjson writes, the document checks of the Python twin, and timestamps.
//!
//! The JSON form (see `crewai_rust/serialization/_message_schema.py`): keys in the order
//! of [`FIELDS`], absent optional fields left out, compact, UTF-8 without ASCII escaping,
//! floats laid out like orjson (`1e+16`, `0.00001`, `2.5e-6`, `100.0`).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::fmt::Write as _;

/// Keys of the JSON object, in the order both twins write them.
pub const FIELDS: [&str; 10] =
    ["id", "role", "content", "sender", "task_id", "name", "tool_calls", "tool_call_id", "timestamp", "metadata"];
const REQUIRED: [&str; 3] = ["id", "role", "timestamp"];
pub const ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];
/// A field value may nest at most this many containers (same limit in the Python twin).
pub const MAX_DEPTH: usize = 100;

/// A JSON value that keeps object keys in document order (last duplicate wins, in place).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum JsonValue {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// The Python type name the Python twin reports for the same value.
    pub fn type_label(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Bool(_) => "bool",
            JsonValue::Int(_) | JsonValue::UInt(_) => "int",
            JsonValue::Float(_) => "float",
            JsonValue::Str(_) => "str",
            JsonValue::Array(_) => "list",
            JsonValue::Object(_) => "dict",
        }
    }

    /// Nesting depth of containers (a scalar is 0, `{}` is 1).
    pub fn depth(&self) -> usize {
        match self {
            JsonValue::Array(items) => 1 + items.iter().map(JsonValue::depth).max().unwrap_or(0),
            JsonValue::Object(items) => 1 + items.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Insert keeping the first position of a key and the last value, as a Python dict does.
pub fn object_insert(items: &mut Vec<(String, JsonValue)>, key: String, value: JsonValue) {
    if let Some(slot) = items.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        items.push((key, value));
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<JsonValue, E> {
        Ok(i64::try_from(v).map_or(JsonValue::UInt(v), JsonValue::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<JsonValue, E> {
        Ok(JsonValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<JsonValue, E> {
        Ok(JsonValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let mut items: Vec<(String, JsonValue)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, JsonValue>()? {
            object_insert(&mut items, key, value);
        }
        Ok(JsonValue::Object(items))
    }
}

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonValue, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Writing: serde_json's compact output is byte for byte orjson's (same escapes, same
// shortest float layout `1e+16`/`0.00001`/`2.5e-6`/`100.0`, ties to even); the tests and
// the Python twin tests hold it to that.

impl Serialize for JsonValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonValue::Null => serializer.serialize_unit(),
            JsonValue::Bool(b) => serializer.serialize_bool(*b),
            JsonValue::Int(v) => serializer.serialize_i64(*v),
            JsonValue::UInt(v) => serializer.serialize_u64(*v),
            JsonValue::Float(v) => serializer.serialize_f64(*v),
            JsonValue::Str(s) => serializer.serialize_str(s),
            JsonValue::Array(items) => serializer.collect_seq(items),
            JsonValue::Object(items) => Entries(items).serialize(serializer),
        }
    }
}

/// An ordered object, written in its order.
struct Entries<'a>(&'a [(String, JsonValue)]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("role", &self.role)?;
        map.serialize_entry("content", &self.content)?;
        for (key, value) in [("sender", &self.sender), ("task_id", &self.task_id), ("name", &self.name)] {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(calls) = &self.tool_calls {
            map.serialize_entry("tool_calls", calls)?;
        }
        if let Some(value) = &self.tool_call_id {
            map.serialize_entry("tool_call_id", value)?;
        }
        map.serialize_entry("timestamp", &format_timestamp(self.timestamp_us))?;
        map.serialize_entry("metadata", &Entries(&self.metadata))?;
        map.end()
    }
}

/// Compact JSON of any serializable value (writing to a Vec cannot fail for these types).
pub fn to_json_string<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Timestamps: microseconds since the Unix epoch, UTC, years 1..=9999.

pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Broken-down UTC fields of a timestamp: (year, month, day, hour, minute, second, micros).
pub fn timestamp_fields(us: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    (year, month, day, sod / 3600, sod / 60 % 60, sod % 60, micros)
}

/// Microseconds since the epoch from UTC fields, or None outside years 1..=9999.
pub fn timestamp_from_fields(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
) -> Option<i64> {
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || !(0..1_000_000).contains(&micros) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros)
}

fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut buf = [b'0'; 6];
    let mut v = value;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend(buf[..width].iter().map(|b| char::from(*b)));
}

/// `datetime.isoformat()` of an aware UTC datetime: fraction only when non-zero.
pub fn format_timestamp(us: i64) -> String {
    let (year, month, day, hour, minute, second, micros) = timestamp_fields(us);
    let mut text = String::with_capacity(32);
    push_digits(&mut text, year as u32, 4);
    for (sep, value) in [('-', month), ('-', day), ('T', hour), (':', minute), (':', second)] {
        text.push(sep);
        push_digits(&mut text, value, 2);
    }
    if micros != 0 {
        text.push('.');
        push_digits(&mut text, micros, 6);
    }
    text.push_str("+00:00");
    text
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// Strict ISO 8601, the subset both twins parse:
/// `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+hh:mm|-hh:mm]` (no zone = UTC).
pub fn parse_timestamp(text: &str) -> Result<i64, FieldError> {
    let shape =
        || FieldError::new("timestamp", format!("expected ISO 8601 like 2024-05-01T12:00:00Z, got {}", py_repr(text)));
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(shape());
    }
    let field = |range: std::ops::Range<usize>| digits(&b[range]).ok_or_else(shape);
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(after) = rest.strip_prefix(b".") {
        let len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return Err(shape());
        }
        let frac = &after[..len.min(6)];
        micros = digits(frac).ok_or_else(shape)? * 10i64.pow(6 - frac.len() as u32);
        rest = &after[len..];
    }
    let offset_minutes = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2]).ok_or_else(shape)?;
            let minutes = digits(&[*m1, *m2]).ok_or_else(shape)?;
            if hours > 23 || minutes > 59 {
                return Err(FieldError::new("timestamp", format!("bad UTC offset in {}", py_repr(text))));
            }
            (hours * 60 + minutes) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return Err(shape()),
    };
    let invalid =
        || FieldError::new("timestamp", format!("{} is not a valid date and time in years 1-9999 UTC", py_repr(text)));
    let local = timestamp_from_fields(year, month, day, hour, minute, second, micros).ok_or_else(invalid)?;
    let utc = local - offset_minutes * 60_000_000;
    if !(MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&utc) {
        return Err(invalid());
    }
    Ok(utc)
}

/// Python's `repr()` of a string, for error messages identical to the Python twin's.
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
// The message and its document checks.

/// A malformed or mistyped field; the glue raises `MessageFormatError(message, field=field)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, detail: String) -> FieldError {
        FieldError { field: field.to_owned(), message: format!("AgentMessage field {}: {detail}", py_repr(field)) }
    }
    pub fn document(message: String) -> FieldError {
        FieldError { field: String::new(), message }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One message of an agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub role: String,
    /// `Null`, `Str`, or an `Array` of objects.
    pub content: JsonValue,
    pub sender: Option<String>,
    pub task_id: Option<String>,
    pub name: Option<String>,
    /// Each item an `Object`.
    pub tool_calls: Option<Vec<JsonValue>>,
    pub tool_call_id: Option<String>,
    pub timestamp_us: i64,
    pub metadata: Vec<(String, JsonValue)>,
}

pub fn check_role(value: &str) -> Result<(), FieldError> {
    if ROLES.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new("role", format!("expected one of {}, got {}", ROLES.join(", "), py_repr(value))))
    }
}

/// Depth check shared by every JSON-valued field.
pub fn check_depth(field: &str, value: &JsonValue) -> Result<(), FieldError> {
    if value.depth() > MAX_DEPTH {
        return Err(FieldError::new(field, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(())
}

fn object_items(field: &str, value: &JsonValue) -> Result<(), FieldError> {
    match value {
        JsonValue::Object(_) => check_depth(field, value),
        other => Err(FieldError::new(field, format!("expected an object, got {}", other.type_label()))),
    }
}

pub fn check_content(value: JsonValue) -> Result<JsonValue, FieldError> {
    match value {
        JsonValue::Null | JsonValue::Str(_) => Ok(value),
        JsonValue::Array(ref parts) => {
            for (i, part) in parts.iter().enumerate() {
                object_items(&format!("content[{i}]"), part)?;
            }
            Ok(value)
        }
        other => Err(FieldError::new(
            "content",
            format!("expected a string, a list of objects or null, got {}", other.type_label()),
        )),
    }
}

pub fn check_tool_calls(value: JsonValue) -> Result<Option<Vec<JsonValue>>, FieldError> {
    match value {
        JsonValue::Null => Ok(None),
        JsonValue::Array(calls) => {
            for (i, call) in calls.iter().enumerate() {
                object_items(&format!("tool_calls[{i}]"), call)?;
            }
            Ok(Some(calls))
        }
        other => Err(FieldError::new(
            "tool_calls",
            format!("expected a list of objects or null, got {}", other.type_label()),
        )),
    }
}

pub fn check_metadata(value: JsonValue) -> Result<Vec<(String, JsonValue)>, FieldError> {
    match value {
        JsonValue::Null => Ok(Vec::new()),
        JsonValue::Object(_) => {
            check_depth("metadata", &value)?;
            match value {
                JsonValue::Object(items) => Ok(items),
                _ => unreachable!("matched above"),
            }
        }
        other => Err(FieldError::new("metadata", format!("expected an object, got {}", other.type_label()))),
    }
}

fn take_string(field: &str, value: JsonValue, optional: bool) -> Result<Option<String>, FieldError> {
    match value {
        JsonValue::Str(s) => Ok(Some(s)),
        JsonValue::Null if optional => Ok(None),
        other => Err(FieldError::new(
            field,
            format!("expected a string{}, got {}", if optional { " or null" } else { "" }, other.type_label()),
        )),
    }
}

impl Message {
    /// Check a parsed JSON document field by field, in the Python twin's order.
    pub fn from_document(doc: JsonValue) -> Result<Message, FieldError> {
        let items = match doc {
            JsonValue::Object(items) => items,
            other => {
                return Err(FieldError::document(format!(
                    "AgentMessage document: expected a JSON object, got {}",
                    other.type_label()
                )))
            }
        };
        if let Some((key, _)) = items.iter().find(|(k, _)| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(key, "unknown field".to_owned()));
        }
        for key in REQUIRED {
            if !items.iter().any(|(k, _)| k == key) {
                return Err(FieldError::new(key, "missing".to_owned()));
            }
        }
        let mut slots: [JsonValue; 10] = Default::default();
        for (key, value) in items {
            let index = FIELDS.iter().position(|f| *f == key).unwrap_or(0);
            slots[index] = value;
        }
        let [id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp, metadata] = slots;
        let id = take_string("id", id, false)?.unwrap_or_default();
        let role = match role {
            JsonValue::Str(s) => s,
            other => return Err(FieldError::new("role", format!("expected a string, got {}", other.type_label()))),
        };
        check_role(&role)?;
        let content = check_content(content)?;
        let sender = take_string("sender", sender, true)?;
        let task_id = take_string("task_id", task_id, true)?;
        let name = take_string("name", name, true)?;
        let tool_calls = check_tool_calls(tool_calls)?;
        let tool_call_id = take_string("tool_call_id", tool_call_id, true)?;
        let timestamp_us = match timestamp {
            JsonValue::Str(s) => parse_timestamp(&s)?,
            other => {
                return Err(FieldError::new(
                    "timestamp",
                    format!("expected an ISO 8601 string, got {}", other.type_label()),
                ))
            }
        };
        let metadata = check_metadata(metadata)?;
        Ok(Message { id, role, content, sender, task_id, name, tool_calls, tool_call_id, timestamp_us, metadata })
    }

    /// Parse one message from JSON text.
    pub fn from_json(text: &[u8]) -> Result<Message, FieldError> {
        Message::from_document(parse_document(text)?)
    }

    pub fn to_json(&self) -> String {
        to_json_string(self)
    }
}

/// A JSON array of messages.
pub fn dumps_many(messages: &[&Message]) -> String {
    to_json_string(messages)
}

/// Parse a JSON array of messages; errors name the index and the field.
pub fn loads_many(text: &[u8]) -> Result<Vec<Message>, FieldError> {
    let docs = match parse_document(text)? {
        JsonValue::Array(docs) => docs,
        other => {
            return Err(FieldError::document(format!(
                "AgentMessage list: expected a JSON array, got {}",
                other.type_label()
            )))
        }
    };
    docs.into_iter()
        .enumerate()
        .map(|(i, doc)| {
            Message::from_document(doc).map_err(|e| FieldError {
                field: format!("[{i}].{}", e.field),
                message: format!("message [{i}]: {}", e.message),
            })
        })
        .collect()
}

/// Parse JSON text, refusing integers orjson cannot hold (it would return a lossy float).
pub fn parse_document(text: &[u8]) -> Result<JsonValue, FieldError> {
    let value: JsonValue = serde_json::from_slice(text)
        .map_err(|e| FieldError::document(format!("AgentMessage JSON is malformed: {e}")))?;
    if let Some(digits) = wide_integer(text) {
        return Err(FieldError::document(format!(
            "AgentMessage JSON is malformed: integer {digits} is outside the 64-bit range [-2**63, 2**64) \
             and would be read back as a lossy float"
        )));
    }
    Ok(value)
}

/// The first integer literal (outside strings) beyond [-2**63, 2**64), in valid JSON text.
pub fn wide_integer(text: &[u8]) -> Option<String> {
    let mut run = 0usize;
    if !text.iter().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 19
    }) {
        return None;
    }
    let (mut i, mut in_string) = (0usize, false);
    while i < text.len() {
        let b = text[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < text.len() && text[i].is_ascii_digit() {
                i += 1;
            }
            let is_float = i < text.len() && matches!(text[i], b'.' | b'e' | b'E');
            while i < text.len() && matches!(text[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                i += 1;
            }
            if !is_float {
                let literal = std::str::from_utf8(&text[start..i]).unwrap_or("");
                let fits = literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok();
                if !fits {
                    return Some(literal.to_owned());
                }
            }
            continue;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> String {
        to_json_string(&JsonValue::Float(v))
    }

    #[test]
    fn floats_are_laid_out_like_orjson() {
        let cases = [
            (1e-4, "0.0001"),
            (1e-5, "0.00001"),
            (1.5e-5, "0.000015"),
            (2.5e-6, "2.5e-6"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e16, "1.2345678901234568e+16"),
            (0.1, "0.1"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123.456, "123.456"),
            (100.0, "100.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (-1.5, "-1.5"),
            (1e15, "1000000000000000.0"),
            (-1113178120592002.2, "-1113178120592002.2"),
            (111659285584252.12, "111659285584252.12"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value:e}");
        }
    }

    #[test]
    fn strings_are_escaped_like_orjson() {
        let s = to_json_string(&JsonValue::Str("a\"\\\n\t\r\u{8}\u{c}\u{b}\u{1f}\u{7f}\u{2028}/é😀".into()));
        assert_eq!(s, "\"a\\\"\\\\\\n\\t\\r\\b\\f\\u000b\\u001f\u{7f}\u{2028}/é😀\"");
    }

    #[test]
    fn timestamps_round_trip_and_match_isoformat() {
        let us = parse_timestamp("2024-02-29T23:59:59.1234567+01:30").unwrap();
        assert_eq!(format_timestamp(us), "2024-02-29T22:29:59.123456+00:00");
        assert_eq!(format_timestamp(parse_timestamp("1970-01-01T00:00:00Z").unwrap()), "1970-01-01T00:00:00+00:00");
        assert_eq!(parse_timestamp("0001-01-01 00:00:00").unwrap(), MIN_TIMESTAMP_US);
        assert_eq!(parse_timestamp("9999-12-31T23:59:59.999999").unwrap(), MAX_TIMESTAMP_US);
        for bad in ["2023-02-29T00:00:00", "2024-01-01", "2024-01-01T24:00:00", "0001-01-01T00:00:00+00:01", "x"] {
            assert_eq!(parse_timestamp(bad).unwrap_err().field, "timestamp", "{bad}");
        }
    }

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
    fn wide_integers_are_found_outside_strings_only() {
        assert_eq!(wide_integer(b"[18446744073709551615, -9223372036854775808]"), None);
        assert_eq!(wide_integer(b"[\"123456789012345678901\", 1.23456789012345678901]"), None);
        assert_eq!(wide_integer(b"{\"a\": 18446744073709551616}").as_deref(), Some("18446744073709551616"));
        assert_eq!(wide_integer(b"[-9223372036854775809]").as_deref(), Some("-9223372036854775809"));
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let value: JsonValue = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(value, JsonValue::Object(vec![("a".into(), JsonValue::Int(3)), ("b".into(), JsonValue::Int(2))]));
    }
}
