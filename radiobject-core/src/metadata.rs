//! Array and group metadata values.

use serde::{Deserialize, Serialize};

/// One metadata value as stored by TileDB.
///
/// Strings are written as `STRING_UTF8`, integers as `INT64`, floats as `FLOAT64` (what tiledb-py
/// writes for Python `str`, `int` and `float`, so both libraries read each other's metadata). When
/// reading, every integer type is widened to `i64` and `FLOAT32` to `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    /// A UTF-8 string.
    Str(String),
    /// One or more integers.
    Int(Vec<i64>),
    /// One or more floats.
    Float(Vec<f64>),
    /// Opaque bytes (`BLOB`, or a type this crate does not interpret).
    Bytes(Vec<u8>),
}

impl MetaValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a single integer value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            MetaValue::Int(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::Str(s.to_owned())
    }
}

impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::Str(s)
    }
}

impl From<i64> for MetaValue {
    fn from(v: i64) -> Self {
        MetaValue::Int(vec![v])
    }
}

impl From<f64> for MetaValue {
    fn from(v: f64) -> Self {
        MetaValue::Float(vec![v])
    }
}
