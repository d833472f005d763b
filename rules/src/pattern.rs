//! The duration and dot-path helpers every other module uses, and the topic / fact patterns
//! (re-exported from [`noex_model::pattern`], where the one matching engine lives).
//!
//! Fact keys are `:`-separated; in a fact pattern `*` is exactly one segment. Topics are
//! `.`-separated; a topic pattern follows the protocol's grammar (docs/reference/rules.md) (see [`topic_matches`]).

pub use noex_model::pattern::{
    NamePattern, check_fact_pattern, check_topic_pattern, fact_matches, topic_matches,
};
use serde_json::Value;

/// Follows a dot path (`a.b.0.c`) into a JSON value; array elements by index.
/// Returns `None` when any step is missing.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for part in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Durations are parsed by the one parser the store's TTLs use (`noex_model::ttl`): a number
/// is milliseconds, a string is `<digits><unit>?` with unit `ms`, `s`, `m`, `h`, `d`, `w` or
/// `y`, digits alone being milliseconds.
pub use noex_model::ttl::{MAX_DURATION_MS, parse_duration_ms};

/// Renders a JSON value the way string interpolation shows it (strings bare, null empty).
pub fn display_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_accept_ms_and_units() {
        assert_eq!(parse_duration_ms(&json!(250)), Ok(250));
        assert_eq!(parse_duration_ms(&json!("30s")), Ok(30_000));
        assert_eq!(parse_duration_ms(&json!("15m")), Ok(900_000));
        assert_eq!(parse_duration_ms(&json!("1h")), Ok(3_600_000));
        assert_eq!(parse_duration_ms(&json!("7d")), Ok(604_800_000));
        assert_eq!(parse_duration_ms(&json!("500ms")), Ok(500));
        assert!(parse_duration_ms(&json!("abc")).is_err());
        assert!(parse_duration_ms(&json!("5x")).is_err());
        assert!(parse_duration_ms(&json!(-1)).is_err());
        assert!(parse_duration_ms(&json!(true)).is_err());
    }

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(get_path(&v, "a.b.0"), Some(&json!(10)));
        assert_eq!(get_path(&v, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(get_path(&v, "a.z"), None);
        assert_eq!(get_path(&v, "a.b.9"), None);
    }
}
