//! JSON helpers the store and the rule engine share: equality where numbers compare by
//! value, the JSON type name used in messages, the size of a value's JSON text measured
//! only up to a budget, and the one estimate of the memory a parsed value takes (behind the
//! store's `maxRecordBytes` / `maxStoreBytes` and the rule engine's fact, event and
//! temporal-pattern bounds).

use serde_json::{Map, Value};

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

/// Bytes of one `Value` node (inline: the enum with its string, array or map header).
const NODE: usize = std::mem::size_of::<Value>();

/// Estimated bytes one object entry takes besides its key's and value's heap data: the key
/// `String`, the `Value`, and the ordered map's hash and index slots.
const MAP_ENTRY_BYTES: usize =
    std::mem::size_of::<String>() + NODE + 2 * std::mem::size_of::<usize>();

/// Estimated bytes of memory `value` takes: its node plus its heap data (string and key
/// capacities, array buffers by capacity, object entries, and everything below), counted
/// until the total passes `cap` (the result is then some number above `cap`, reached
/// without walking the rest). Approximate (allocator overhead and a map's spare slots are
/// not counted) but of the right order for any shape, unlike the size of its JSON: an array
/// of small numbers takes about 35 times its text. Iterative, so deep nesting cannot
/// overflow the stack.
///
/// ```
/// use noex_model::json::memory_size_within;
/// use serde_json::json;
/// let node = std::mem::size_of::<serde_json::Value>();
/// assert_eq!(memory_size_within(&json!(null), usize::MAX), node);
/// assert!(memory_size_within(&json!([1, 2, 3]), usize::MAX) >= 4 * node);
/// assert!(memory_size_within(&json!("x".repeat(1000)), 10) > 10);
/// ```
pub fn memory_size_within(value: &Value, cap: usize) -> usize {
    let mut stack = vec![value];
    walk(0, &mut stack, cap)
}

/// [`memory_size_within`] of an object given by its map (a stored record), as if it were a
/// `Value::Object`.
pub fn object_memory_size_within(map: &Map<String, Value>, cap: usize) -> usize {
    let mut stack = Vec::new();
    match add_entries(NODE, map, &mut stack, cap) {
        Ok(total) => walk(total, &mut stack, cap),
        Err(over) => over,
    }
}

/// Adds the entries of `map` to `total` and their values to `stack`; `Err(total)` when the
/// entries alone pass `cap`.
fn add_entries<'a>(
    mut total: usize,
    map: &'a Map<String, Value>,
    stack: &mut Vec<&'a Value>,
    cap: usize,
) -> Result<usize, usize> {
    let entries = total.saturating_add(map.len().saturating_mul(MAP_ENTRY_BYTES));
    if entries > cap {
        return Err(entries);
    }
    for (key, item) in map {
        // The value's own node is counted when it is popped.
        total = total
            .saturating_add(MAP_ENTRY_BYTES - NODE)
            .saturating_add(key.capacity());
        stack.push(item);
    }
    Ok(total)
}

fn walk(mut total: usize, stack: &mut Vec<&Value>, cap: usize) -> usize {
    while let Some(v) = stack.pop() {
        total = total.saturating_add(NODE);
        match v {
            Value::String(s) => total = total.saturating_add(s.capacity()),
            Value::Array(items) => {
                // Every slot costs a node (unused capacity too): refuse early without
                // walking the elements.
                let slots = items.capacity().saturating_mul(NODE);
                if total.saturating_add(slots) > cap {
                    return total.saturating_add(slots);
                }
                // The elements' own nodes are counted when they are popped.
                total = total.saturating_add((items.capacity() - items.len()) * NODE);
                stack.extend(items.iter());
            }
            Value::Object(map) => match add_entries(total, map, stack, cap) {
                Ok(t) => total = t,
                Err(over) => return over,
            },
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        if total > cap {
            return total;
        }
    }
    total
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

    #[test]
    fn memory_size_of_a_record_equals_that_of_its_object() {
        let v = json!({"a": [1, 2, {"b": "xyz"}], "c": null});
        let map = v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            object_memory_size_within(&map, usize::MAX),
            memory_size_within(&v, usize::MAX)
        );
        // One entry: its map slot and key, the string node and its bytes.
        let one = json!({"k": "vv"});
        assert_eq!(
            memory_size_within(&one, usize::MAX),
            NODE + MAP_ENTRY_BYTES + 1 + 2
        );
    }

    #[test]
    fn memory_size_stops_past_the_cap_and_survives_deep_nesting() {
        let items: Vec<u32> = (0..10_000).collect();
        let v = json!(items);
        assert!(memory_size_within(&v, usize::MAX) >= 10_000 * NODE);
        assert!(memory_size_within(&v, 100) > 100);
        let mut deep = json!(0);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(memory_size_within(&deep, usize::MAX) > 100_000);
        // Dropping a value this deep recurses in serde_json; unnest it by hand.
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }
}
