//! Join keys: the positional tuple of `sequence by` + stage `by` values (eql-semantics.md section 4).

use smallvec::SmallVec;

use crate::event::Scalar;

/// One component of a join key, owned (it outlives the event it came from).
///
/// Compared exactly and type-sensitively, as ES compares `fields` API values with
/// `Arrays.deepEquals` (section 4.1). `Null` only occurs for optional (`?field`) keys (section 4.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    /// Missing or null optional key.
    Null,
    /// Boolean value.
    Bool(bool),
    /// Integer value.
    I64(i64),
    /// Integer above i64::MAX.
    U64(u64),
    /// Float, by its bit pattern (so it can be hashed).
    F64(u64),
    /// String value.
    Str(Box<str>),
}

impl KeyValue {
    /// The owned key component for a scalar.
    pub fn from_scalar(s: Scalar<'_>) -> Self {
        match s {
            Scalar::Str(s) => KeyValue::Str(s.into()),
            Scalar::I64(i) => KeyValue::I64(i),
            Scalar::U64(u) => KeyValue::U64(u),
            Scalar::F64(f) => KeyValue::F64(f.to_bits()),
            Scalar::Bool(b) => KeyValue::Bool(b),
        }
    }

    /// The value as a JSON value (as Elasticsearch's EQL API returns `join_keys`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Null => serde_json::Value::Null,
            KeyValue::Bool(b) => serde_json::Value::Bool(*b),
            KeyValue::I64(i) => serde_json::Value::from(*i),
            KeyValue::U64(u) => serde_json::Value::from(*u),
            KeyValue::F64(bits) => serde_json::Value::from(f64::from_bits(*bits)),
            KeyValue::Str(s) => serde_json::Value::String(s.to_string()),
        }
    }
}

/// A join-key tuple: `sequence by` keys followed by the stage's own `by` keys.
pub type Key = SmallVec<[KeyValue; 4]>;
