//! The JSON value of a message field: keeps object keys in document order, as a Python
//! dict does, and reads itself from text with serde.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

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

/// The first integer literal (outside strings) beyond [-2**63, 2**64), in valid JSON text:
/// serde reads it as a float, orjson would return a lossy float, so both twins refuse it.
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

    #[test]
    fn depth_counts_containers() {
        let value: JsonValue = serde_json::from_str(r#"[1, {"a": [[]]}, {}]"#).unwrap();
        assert_eq!((value.depth(), JsonValue::Int(1).depth(), value.type_label()), (4, 0, "list"));
    }
}
