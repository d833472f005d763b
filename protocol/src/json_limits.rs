//! A cheap pre-scan of a JSON text against a nesting-depth and a value-count limit, run
//! before `serde_json` builds a tree from it.
//!
//! A parsed `serde_json::Value` costs far more than its text (a one-element array is a few
//! bytes of text but a heap block of several `Value`s), so a request of a few hundred KiB
//! of nested arrays can cost hundreds of MiB while it is parsed. The scan walks the bytes
//! once, allocates nothing, and stops at the first byte over a limit. It does not validate
//! the JSON: text it lets through is parsed (and refused, if invalid) by `serde_json`, which
//! never builds more than the scan counted, because it stops at the first invalid byte.

/// Bounds on one JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects (`{"a": [1]}` is 2 deep).
    pub max_depth: u32,
    /// Most values in the text, object keys included (see [`check_json_limits`] for what
    /// counts).
    pub max_elements: u32,
}

impl JsonLimits {
    /// No limit at all (what [`crate::parse_client_frame`] applies).
    pub const UNLIMITED: JsonLimits = JsonLimits {
        max_depth: u32::MAX,
        max_elements: u32::MAX,
    };
}

/// The limit a text goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLimitExceeded {
    /// Arrays and objects nested deeper than `max_depth`.
    Depth,
    /// More than `max_elements` values.
    Elements,
}

/// Scans `text` and reports the first limit it goes over.
///
/// Every array, object, string (object keys included) and scalar (number, `true`, `false`,
/// `null`) counts as one element; `{"a": [1, 2]}` has 5 (object, key, array, two numbers)
/// and is 2 deep. Strings are skipped with their escapes, so brackets inside them count
/// for nothing.
///
/// ```
/// use noex_protocol::{JsonLimitExceeded, JsonLimits, check_json_limits};
///
/// let limits = JsonLimits { max_depth: 2, max_elements: 5 };
/// assert_eq!(check_json_limits(r#"{"a": [1, 2]}"#, limits), Ok(()));
/// assert_eq!(check_json_limits(r#"{"a": [[1]]}"#, limits), Err(JsonLimitExceeded::Depth));
/// assert_eq!(check_json_limits("[1, 2, 3, 4, 5]", limits), Err(JsonLimitExceeded::Elements));
/// assert_eq!(check_json_limits(r#"["[[[\"]]]"]"#, limits), Ok(()));
/// ```
pub fn check_json_limits(text: &str, limits: JsonLimits) -> Result<(), JsonLimitExceeded> {
    let mut depth: u32 = 0;
    let mut elements: u32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut in_scalar = false;
    let count = |elements: &mut u32| {
        *elements = elements.saturating_add(1);
        if *elements > limits.max_elements {
            Err(JsonLimitExceeded::Elements)
        } else {
            Ok(())
        }
    };
    for &byte in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => {
                in_scalar = false;
                in_string = true;
                count(&mut elements)?;
            }
            b'[' | b'{' => {
                in_scalar = false;
                depth = depth.saturating_add(1);
                if depth > limits.max_depth {
                    return Err(JsonLimitExceeded::Depth);
                }
                count(&mut elements)?;
            }
            b']' | b'}' => {
                in_scalar = false;
                depth = depth.saturating_sub(1);
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => in_scalar = false,
            _ => {
                if !in_scalar {
                    in_scalar = true;
                    count(&mut elements)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_depth: u32, max_elements: u32) -> JsonLimits {
        JsonLimits {
            max_depth,
            max_elements,
        }
    }

    /// Elements and depth of a parsed value, counted the way the scan documents it.
    fn measure(value: &serde_json::Value) -> (u32, u32) {
        match value {
            serde_json::Value::Array(items) => items
                .iter()
                .map(measure)
                .fold((1, 1), |a, b| (a.0 + b.0, a.1.max(b.1 + 1))),
            serde_json::Value::Object(map) => map
                .values()
                .map(measure)
                .fold((1, 1), |a, b| (a.0 + 1 + b.0, a.1.max(b.1 + 1))),
            _ => (1, 0),
        }
    }

    #[test]
    fn counts_match_the_parsed_tree() {
        for text in [
            r#"{"id":1,"type":"store.where","bucket":"b","filter":{"x":{"$in":[[1],[2,3]]}}}"#,
            r#"[true,false,null,-1.5e3,"a\"b\\",{"k":{}},[]]"#,
            r#" { "a" : [ 1 , 2 ] } "#,
            "12",
            r#""[{\"""#,
        ] {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let (elements, depth) = measure(&value);
            assert_eq!(
                check_json_limits(text, limits(depth, elements)),
                Ok(()),
                "{text}"
            );
            if depth > 0 {
                assert_eq!(
                    check_json_limits(text, limits(depth - 1, elements)),
                    Err(JsonLimitExceeded::Depth),
                    "{text}"
                );
            }
            assert_eq!(
                check_json_limits(text, limits(depth, elements - 1)),
                Err(JsonLimitExceeded::Elements),
                "{text}"
            );
        }
    }

    #[test]
    fn brackets_and_quotes_inside_strings_count_for_nothing() {
        let text = r#"["[[[[{{{{", "\\", "\"[[[", "]]]]"]"#;
        assert_eq!(check_json_limits(text, limits(1, 5)), Ok(()));
    }

    #[test]
    fn stops_at_the_first_byte_over_a_limit() {
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert_eq!(
            check_json_limits(&deep, limits(64, u32::MAX)),
            Err(JsonLimitExceeded::Depth)
        );
        let wide = format!("[{}0]", "0,".repeat(1_000_000));
        assert_eq!(
            check_json_limits(&wide, limits(64, 100_000)),
            Err(JsonLimitExceeded::Elements)
        );
        assert_eq!(check_json_limits(&wide, JsonLimits::UNLIMITED), Ok(()));
    }

    #[test]
    fn malformed_text_is_left_to_the_parser() {
        for text in ["]]]]", "{\"a", "\"unterminated", "[1,,,]", ""] {
            assert_eq!(check_json_limits(text, limits(2, 10)), Ok(()), "{text}");
        }
    }
}
