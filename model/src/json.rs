//! JSON helpers the store and the rule engine share: equality where numbers compare by
//! value, the JSON type name used in messages, and the size of a value's JSON text measured
//! only up to a budget.

use serde_json::Value;

/// Deep equality where numbers compare by value (`1 == 1.0`); object member order does
/// not matter.
///
/// ```
/// use noex_model::json::json_eq;
/// use serde_json::json;
/// assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
/// assert!(!json_eq(&json!("1"), &json!(1)));
/// ```
pub fn json_eq(a: &Value, b: &Value) -> bool {
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

/// The JSON type of `v` as messages name it: `null`, `boolean`, `number`, `string`,
/// `array` or `object`.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Counts the bytes written to it and fails once they pass the budget.
struct ByteCounter {
    written: usize,
    budget: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.budget {
            return Err(std::io::Error::other("over budget"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size in bytes of `v` serialized as JSON, or `None` as soon as it passes `budget`
/// (the walk stops there; nothing is allocated).
///
/// ```
/// use noex_model::json::json_size_within;
/// assert_eq!(json_size_within(&serde_json::json!({"a": 1}), 100), Some(7));
/// assert_eq!(json_size_within(&"x".repeat(100), 10), None);
/// ```
pub fn json_size_within(v: &impl serde::Serialize, budget: usize) -> Option<usize> {
    let mut counter = ByteCounter { written: 0, budget };
    serde_json::to_writer(&mut counter, v).ok()?;
    Some(counter.written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_by_number_value_and_not_by_member_order() {
        assert!(json_eq(
            &json!({"a": 1, "b": 2}),
            &json!({"b": 2.0, "a": 1})
        ));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }

    #[test]
    fn type_names() {
        let names: Vec<_> = [
            json!(null),
            json!(true),
            json!(1),
            json!("s"),
            json!([]),
            json!({}),
        ]
        .iter()
        .map(type_name)
        .collect();
        assert_eq!(
            names,
            ["null", "boolean", "number", "string", "array", "object"]
        );
    }

    #[test]
    fn size_stops_at_the_budget() {
        assert_eq!(json_size_within(&json!([1, 2, 3]), 7), Some(7));
        assert_eq!(json_size_within(&json!([1, 2, 3]), 6), None);
    }
}
