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

/// Parses a duration: a non-negative number of milliseconds, or a string `<digits><unit>` with
/// unit `ms`, `s`, `m`, `h`, `d`, `w` or `y` (`"15m"`, `"30s"`, `"1h"`, `"7d"`); digits alone are ms.
pub fn parse_duration_ms(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 && ms <= MAX_DURATION_MS as f64 => {
                Ok(ms as u64)
            }
            _ => Err(format!(
                "must be a non-negative number of milliseconds, got {n}"
            )),
        },
        Value::String(s) => parse_duration_str(s),
        other => Err(format!(
            "must be a duration (ms number or string like \"15m\"), got {other}"
        )),
    }
}

/// The longest duration accepted (about 100 years), so arithmetic cannot overflow.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

fn parse_duration_str(s: &str) -> Result<u64, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    let bad = || {
        format!(
            "invalid duration {s:?} (expected e.g. \"500ms\", \"30s\", \"15m\", \"1h\", \"7d\")"
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        "y" => 31_536_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(bad)
}

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
