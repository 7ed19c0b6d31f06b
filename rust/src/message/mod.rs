//! AgentMessage in plain Rust, by concern:
//!
//! * [`value`]: the order-preserving JSON value and how it reads from text;
//! * [`writer`]: output byte for byte orjson's;
//! * [`calendar`]: timestamps (epoch microseconds, ISO 8601 in and out);
//! * [`checks`]: every field and document check, over parsed JSON or Python objects.
//!
//! The JSON form (see `crewai_rust/serialization/_message_schema.py`): keys in the order
//! of [`FIELDS`], absent optional fields left out, compact, UTF-8 without ASCII escaping,
//! floats laid out like orjson (`1e+16`, `0.00001`, `2.5e-6`, `100.0`).

pub mod calendar;
pub mod checks;
pub mod value;
pub mod writer;

pub use calendar::{format_timestamp, timestamp_fields, timestamp_from_fields};
pub use checks::FieldError;
pub use value::JsonValue;
pub use writer::to_json_string;

/// Keys of the JSON object, in the order both twins write them.
pub const FIELDS: [&str; 10] =
    ["id", "role", "content", "sender", "task_id", "name", "tool_calls", "tool_call_id", "timestamp", "metadata"];
pub const REQUIRED: [&str; 3] = ["id", "role", "timestamp"];
pub const ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];
/// A field value may nest at most this many containers (same limit in the Python twin).
pub const MAX_DEPTH: usize = 100;
/// The `metadata` key holding the keys of a CrewAI message that AgentMessage has no field for.
pub const CREWAI_EXTRA: &str = "crewai_extra";
/// The keys of a CrewAI `LLMMessage` that map onto AgentMessage fields.
pub const CREWAI_KNOWN: [&str; 5] = ["role", "content", "tool_call_id", "name", "tool_calls"];

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

impl Message {
    /// Check a parsed JSON document field by field, in the Python twin's order.
    pub fn from_document(doc: JsonValue) -> Result<Message, FieldError> {
        checks::document(doc)
    }

    /// Parse one message from JSON text.
    pub fn from_json(text: &[u8]) -> Result<Message, FieldError> {
        Message::from_document(checks::parse_document(text)?)
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
    let docs = checks::document_list(checks::parse_document(text)?)?;
    docs.into_iter()
        .enumerate()
        .map(|(index, doc)| Message::from_document(doc).map_err(|e| checks::at_index(index, e)))
        .collect()
}
