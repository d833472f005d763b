//! JSON value helpers shared by filters, indexes, sorting and aggregates: field paths,
//! numeric-aware equality and ordering, and the canonical key encoding used by maps.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A stored record: field name → value, metadata fields included.
pub type Record = Map<String, Value>;

/// Reads `path` from a record; a dotted path walks into nested objects.
pub(crate) fn get_path<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    if let Some(v) = record.get(path) {
        return Some(v);
    }
    if !path.contains('.') {
        return None;
    }
    let mut parts = path.split('.');
    let mut cur = record.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
}

/// Deep equality where numbers compare by value (`1 == 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering between two numbers or two strings; `None` for any other pair.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Canonical text of a scalar (used by indexes and unique constraints); `None` for
/// objects and arrays, which are never indexed.
pub(crate) fn scalar_key(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("z".to_owned()),
        Value::Bool(b) => Some(format!("b:{b}")),
        Value::Number(n) => Some(format!("n:{}", n.as_f64().unwrap_or(0.0))),
        Value::String(s) => Some(format!("s:{s}")),
        _ => None,
    }
}

/// Canonical text of a record key (any JSON value).
pub(crate) fn key_string(v: &Value) -> String {
    scalar_key(v).unwrap_or_else(|| format!("j:{v}"))
}

/// Whether a record with `_expiresAt` is expired at `now` (ms).
pub(crate) fn is_expired(record: &Record, now: u64) -> bool {
    record
        .get("_expiresAt")
        .and_then(Value::as_u64)
        .is_some_and(|t| t <= now)
}
