//! Durations: the one parser of a duration written in a definition (a bucket's `ttl`, a
//! rule's `within`, `window`, timer `duration` and `interval`), and the [`Ttl`] wire type.
//!
//! The grammar is the original noex's: a JSON number is **milliseconds**; a string is
//! digits followed by an optional unit, `ms`, `s`, `m`, `h`, `d`, `w` (7 days) or `y`
//! (365 days), and digits without a unit are milliseconds too (`"90"` is 90 ms, `"90s"` is
//! a minute and a half). Anything longer than [`MAX_DURATION_MS`] (about 100 years) is
//! refused, so adding a duration to a timestamp cannot overflow.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest duration accepted (100 years of 365 days), so arithmetic cannot overflow.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A TTL: milliseconds or a duration string such as `"15m"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum Ttl {
    /// Milliseconds.
    Ms(u64),
    /// `"30s"`, `"15m"`, `"1h"`, `"7d"`.
    Text(String),
}

impl Ttl {
    /// The TTL in milliseconds: a positive duration in the grammar of this module.
    ///
    /// ```
    /// use noex_model::ttl::Ttl;
    /// assert_eq!(Ttl::Ms(1500).as_ms(), Ok(1500));
    /// assert_eq!(Ttl::Text("90".into()).as_ms(), Ok(90)); // a bare number is milliseconds
    /// assert_eq!(Ttl::Text("15m".into()).as_ms(), Ok(900_000));
    /// assert!(Ttl::Ms(0).as_ms().is_err());
    /// ```
    pub fn as_ms(&self) -> Result<u64, DurationError> {
        let ms = match self {
            Ttl::Ms(ms) if *ms <= MAX_DURATION_MS => *ms,
            Ttl::Ms(ms) => return Err(DurationError::TooLong(ms.to_string())),
            Ttl::Text(text) => parse_duration_str(text)?,
        };
        if ms == 0 {
            return Err(DurationError::NotPositive);
        }
        Ok(ms)
    }
}

/// Why a duration was refused. `Display` gives the message the rule engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// A number that is negative, not finite or past [`MAX_DURATION_MS`].
    BadNumber(String),
    /// A string outside the grammar (or past [`MAX_DURATION_MS`]).
    BadText(String),
    /// Neither a number nor a string.
    WrongType(String),
    /// A whole number of milliseconds past [`MAX_DURATION_MS`].
    TooLong(String),
    /// Zero where a positive duration is needed (a TTL).
    NotPositive,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::BadNumber(n) => {
                write!(f, "must be a non-negative number of milliseconds, got {n}")
            }
            DurationError::BadText(s) => write!(
                f,
                "invalid duration {s:?} (expected e.g. \"500ms\", \"30s\", \"15m\", \"1h\", \"7d\")"
            ),
            DurationError::WrongType(v) => write!(
                f,
                "must be a duration (ms number or string like \"15m\"), got {v}"
            ),
            DurationError::TooLong(n) => {
                write!(f, "duration {n} ms is longer than {MAX_DURATION_MS} ms")
            }
            DurationError::NotPositive => f.write_str("duration must be positive"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration given as JSON: a non-negative number of milliseconds (a fraction is
/// dropped) or a string in the grammar of [`parse_duration_str`].
///
/// ```
/// use noex_model::ttl::parse_duration_ms;
/// use serde_json::json;
/// assert_eq!(parse_duration_ms(&json!(250)), Ok(250));
/// assert_eq!(parse_duration_ms(&json!("250")), Ok(250));
/// assert_eq!(parse_duration_ms(&json!("1w")), Ok(604_800_000));
/// assert!(parse_duration_ms(&json!(-1)).is_err());
/// ```
pub fn parse_duration_ms(value: &Value) -> Result<u64, DurationError> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 && ms <= MAX_DURATION_MS as f64 => {
                Ok(ms as u64)
            }
            _ => Err(DurationError::BadNumber(n.to_string())),
        },
        Value::String(s) => parse_duration_str(s),
        other => Err(DurationError::WrongType(other.to_string())),
    }
}

/// Parses `<digits><unit>?` with unit `ms`, `s`, `m`, `h`, `d`, `w` or `y`; no unit means
/// milliseconds. No sign, fraction or whitespace is accepted.
pub fn parse_duration_str(s: &str) -> Result<u64, DurationError> {
    let bad = || DurationError::BadText(s.to_owned());
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bare_number_is_milliseconds_as_number_or_text() {
        assert_eq!(parse_duration_ms(&json!(1500)), Ok(1500));
        assert_eq!(parse_duration_ms(&json!("1500")), Ok(1500));
        assert_eq!(Ttl::Ms(1500).as_ms(), Ok(1500));
        assert_eq!(Ttl::Text("90".into()).as_ms(), Ok(90));
    }

    #[test]
    fn units() {
        let p = |s: &str| parse_duration_str(s);
        assert_eq!(p("500ms"), Ok(500));
        assert_eq!(p("30s"), Ok(30_000));
        assert_eq!(p("15m"), Ok(900_000));
        assert_eq!(p("1h"), Ok(3_600_000));
        assert_eq!(p("7d"), Ok(604_800_000));
        assert_eq!(p("2w"), Ok(1_209_600_000));
        assert_eq!(p("1y"), Ok(31_536_000_000));
        assert_eq!(p("100y"), Ok(MAX_DURATION_MS));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "h",
            "5x",
            "-1s",
            "1.5h",
            " 30s",
            "30 s",
            "101y",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_duration_str(bad),
                Err(DurationError::BadText(bad.into())),
                "{bad}"
            );
        }
        assert!(parse_duration_ms(&json!(-1)).is_err());
        assert!(parse_duration_ms(&json!(true)).is_err());
        assert_eq!(Ttl::Ms(0).as_ms(), Err(DurationError::NotPositive));
        assert_eq!(
            Ttl::Text("0s".into()).as_ms(),
            Err(DurationError::NotPositive)
        );
        assert!(Ttl::Ms(MAX_DURATION_MS + 1).as_ms().is_err());
    }

    #[test]
    fn ttl_wire_shape() {
        assert_eq!(
            serde_json::from_value::<Ttl>(json!(5)).ok(),
            Some(Ttl::Ms(5))
        );
        assert_eq!(
            serde_json::from_value::<Ttl>(json!("5s")).ok(),
            Some(Ttl::Text("5s".into()))
        );
    }
}
