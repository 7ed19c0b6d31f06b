//! Writing: serde_json's compact output is byte for byte orjson's (same escapes, same
//! shortest float layout `1e+16`/`0.00001`/`2.5e-6`/`100.0`, ties to even); the tests here
//! and the twin tests in Python hold it to that.

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::calendar::format_timestamp;
use super::value::JsonValue;
use super::Message;

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

/// The document: keys in the order of [`super::FIELDS`], absent optional fields left out.
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
}
